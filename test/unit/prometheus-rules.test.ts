import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ record?: string; alert?: string; expr: string; for?: string }> }>;
}
interface UnitTests {
  rule_files: string[];
  group_eval_order?: string[];
  tests: Array<{
    promql_expr_test?: Array<{ expr: string; eval_time: string; exp_samples?: unknown[] | null }>;
    alert_rule_test?: Array<{ eval_time: string; alertname: string; exp_alerts?: unknown[] | null }>;
  }>;
}
const ruleFile = parseYaml(readFileSync('config/prometheus/alert-rules.yml', 'utf8')) as RuleFile;
const unit = parseYaml(readFileSync('config/prometheus/alert-rules.test.yml', 'utf8')) as UnitTests;
const allRules = ruleFile.groups.flatMap((g) => g.rules);
const recordNames = allRules.flatMap((r) => (r.record !== undefined ? [r.record] : []));
const oneLine = (q: string) => q.replace(/\s+/g, ' ').trim();
/** Minutes of a promtool duration such as `16m` or `2h`. */
const minutes = (d: string) => {
  const m = /^(\d+)([mh])$/.exec(d);
  assert.ok(m, `unexpected eval_time ${d}`);
  return Number(m[1]) * (m[2] === 'h' ? 60 : 1);
};

describe('shipped Prometheus and Alertmanager configuration', () => {
  it('alert rules pass promtool check and their unit tests', { skip: has('promtool') ? false : 'promtool not installed' }, () => {
    const check = spawnSync('promtool', ['check', 'rules', 'config/prometheus/alert-rules.yml'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, new RegExp(`SUCCESS: ${allRules.length} rules found`));
    const unitRun = spawnSync('promtool', ['test', 'rules', 'alert-rules.test.yml'], {
      cwd: 'config/prometheus',
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(unitRun.status, 0, unitRun.stdout + unitRun.stderr);
    assert.match(unitRun.stdout, /SUCCESS/);
  });

  it('the recording rules are one group of conduit: series, which the unit tests evaluate first', () => {
    const recording = ruleFile.groups.filter((g) => g.rules.some((r) => r.record !== undefined));
    assert.deepEqual(
      recording.map((g) => g.name),
      ['conduit-remediator.recording'],
    );
    assert.ok(
      recording[0]!.rules.every((r) => r.record?.startsWith('conduit:')),
      'the recording group holds conduit: recording rules only',
    );
    assert.equal(new Set(recordNames).size, recordNames.length, 'no series is recorded twice');
    // Alerts in other groups read the recorded series: promtool orders groups only when told to.
    assert.deepEqual(
      unit.group_eval_order,
      ruleFile.groups.map((g) => g.name),
    );
    assert.equal(unit.group_eval_order?.[0], 'conduit-remediator.recording');
  });

  it('every recording rule is shown with its values at given times', () => {
    const exprTests = unit.tests.flatMap((t) => t.promql_expr_test ?? []);
    for (const name of recordNames) {
      const shown = exprTests.filter((t) => new RegExp(`^${name}(\\{[^}]*\\})?$`).test(t.expr.trim()) && (t.exp_samples ?? []).length > 0);
      assert.ok(shown.length > 0, `alert-rules.test.yml never evaluates ${name} on its own`);
    }
  });

  it('every alert reads the recorded series rather than repeating their expressions', () => {
    for (const rule of allRules.filter((r) => r.alert !== undefined)) {
      const read = [...rule.expr.matchAll(/conduit:[a-zA-Z0-9_:]+/g)].map((m) => m[0]);
      assert.ok(read.length > 0, `${rule.alert} reads no conduit: series`);
      for (const name of read) assert.ok(recordNames.includes(name), `${rule.alert} reads ${name}, which no rule records`);
    }
  });

  it('the unit tests show a provider outage: HighErrorRate fires first, and the scale-up check stays empty throughout', () => {
    // promtool proves what these expectations say (the first test above); this one makes sure they are there.
    const outage = unit.tests.find((t) =>
      (t.promql_expr_test ?? []).some((e) =>
        /^count_over_time\(\(.*unless on \(\) conduit:provider_down\)\[\d+m:1m\]\)$/.test(oneLine(e.expr)),
      ),
    );
    assert.ok(outage, 'no test evaluates the scale-up check over a whole provider outage');
    const alerts = outage.alert_rule_test ?? [];
    const firstFiring = (name: string) =>
      Math.min(...alerts.filter((a) => a.alertname === name && (a.exp_alerts ?? []).length > 0).map((a) => minutes(a.eval_time)));
    const lastPending = (name: string) =>
      Math.max(...alerts.filter((a) => a.alertname === name && (a.exp_alerts ?? []).length === 0).map((a) => minutes(a.eval_time)));
    const high = firstFiring('HighErrorRate');
    const down = firstFiring('ConduitProviderDown');
    assert.ok(Number.isFinite(high) && Number.isFinite(down), 'both alerts are shown firing');
    assert.ok(lastPending('HighErrorRate') === high - 1, 'HighErrorRate is shown pending the minute before it fires');
    assert.ok(lastPending('ConduitProviderDown') >= high, 'ConduitProviderDown is shown still pending when HighErrorRate fires');
    assert.ok(high < down, `HighErrorRate fires at ${high}m, before ConduitProviderDown at ${down}m`);
    // The check is empty at every minute from before HighErrorRate fires to the end of the series.
    const whole = (outage.promql_expr_test ?? []).find((e) => oneLine(e.expr).startsWith('count_over_time(('))!;
    const range = Number(/\[(\d+)m:1m\]\)$/.exec(oneLine(whole.expr))![1]);
    assert.deepEqual(whole.exp_samples ?? [], []);
    assert.ok(minutes(whole.eval_time) - range <= high, `the check is shown empty from ${minutes(whole.eval_time) - range}m`);
  });

  it(
    'the Alertmanager config is valid and routes ConduitProviderDown to the remediator',
    { skip: has('amtool') ? false : 'amtool not installed' },
    () => {
      const check = spawnSync('amtool', ['check-config', 'config/alertmanager/alertmanager.yml'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(check.status, 0, check.stdout + check.stderr);
      const route = spawnSync(
        'amtool',
        [
          'config',
          'routes',
          'test',
          '--config.file=config/alertmanager/alertmanager.yml',
          'alertname=ConduitProviderDown',
          'provider=openai',
          'severity=critical',
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      assert.equal(route.status, 0, route.stdout + route.stderr);
      assert.match(route.stdout, /remediator/);
    },
  );
});
