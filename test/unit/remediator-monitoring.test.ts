/**
 * The monitoring shipped for the service itself, checked without a service: the alert rules pass
 * `promtool check rules` and their unit tests, every alert is shown both firing and silent there and
 * points at a documentation section that exists, and the Grafana dashboard is an importable dashboard
 * whose queries are valid PromQL. test/integration/monitoring.test.ts checks the names they read
 * against a live service's /metrics.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const NO_PROMTOOL = has('promtool') ? false : 'promtool not installed (Debian: apt-get install prometheus)';

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: Array<{ name: string; rules: AlertRule[] }>;
}
interface ExpectedAlert {
  exp_labels?: Record<string, string>;
  exp_annotations?: Record<string, string>;
}
interface UnitTests {
  rule_files: string[];
  tests: Array<{ alert_rule_test?: Array<{ eval_time: string; alertname: string; exp_alerts?: ExpectedAlert[] | null }> }>;
}
interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  id: number | null;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: string }> };
}

const RULES_PATH = 'config/prometheus/remediator-alerts.yml';
const ruleFile = parseYaml(readFileSync(RULES_PATH, 'utf8')) as RuleFile;
const unit = parseYaml(readFileSync('config/prometheus/remediator-alerts.test.yml', 'utf8')) as UnitTests;
const dashboard = JSON.parse(readFileSync('config/grafana/remediator-dashboard.json', 'utf8')) as Dashboard;
const alerts = ruleFile.groups.flatMap((g) => g.rules).filter((r): r is AlertRule & { alert: string } => r.alert !== undefined);
const alertTests = unit.tests.flatMap((t) => t.alert_rule_test ?? []);
const oneLine = (q: string) => q.replace(/\s+/g, ' ').trim();

/** The anchors GitHub gives the headings of a Markdown file. */
function anchors(path: string): Set<string> {
  const slugs = new Set<string>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (!heading) continue;
    slugs.add(
      heading[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return slugs;
}

describe('alert rules of the remediator itself', () => {
  it('pass promtool check rules', { skip: NO_PROMTOOL }, () => {
    const check = spawnSync('promtool', ['check', 'rules', RULES_PATH], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  });

  it('pass their promtool unit tests', { skip: NO_PROMTOOL }, () => {
    const run = spawnSync('promtool', ['test', 'rules', 'remediator-alerts.test.yml'], {
      cwd: 'config/prometheus',
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /SUCCESS/);
    assert.doesNotMatch(run.stdout, /FAILED/);
  });

  it('are all shown firing, with their labels and annotations, and silent, in the unit tests', () => {
    assert.deepEqual(unit.rule_files, ['remediator-alerts.yml']);
    const names = alerts.map((a) => a.alert);
    assert.equal(new Set(names).size, names.length, 'no alert name is used twice');
    // An expectation on a misspelt alert name would pass without testing anything.
    for (const t of alertTests) assert.ok(names.includes(t.alertname), `the unit tests name ${t.alertname}, which no rule defines`);
    for (const alert of alerts) {
      const firing = alertTests.filter((t) => t.alertname === alert.alert && (t.exp_alerts ?? []).length > 0);
      const silent = alertTests.filter((t) => t.alertname === alert.alert && (t.exp_alerts ?? []).length === 0);
      assert.ok(firing.length > 0, `${alert.alert} is never shown firing`);
      assert.ok(silent.length > 0, `${alert.alert} is never shown silent`);
      for (const expected of firing.flatMap((t) => t.exp_alerts ?? [])) {
        assert.equal(expected.exp_labels?.['alertname'], alert.alert);
        assert.equal(expected.exp_labels?.['severity'], alert.labels?.['severity'], `${alert.alert}: its severity is expected`);
        assert.deepEqual(
          Object.keys(expected.exp_annotations ?? {}).sort(),
          Object.keys(alert.annotations ?? {}).sort(),
          `${alert.alert}: every annotation is expected, rendered`,
        );
      }
    }
  });

  it('each has a severity, a summary, a description and a runbook section that exists', () => {
    const docs = new Map([
      ['README.md', anchors('README.md')],
      ['docs/operations.md', anchors('docs/operations.md')],
    ]);
    for (const alert of alerts) {
      assert.ok(['critical', 'warning', 'info'].includes(alert.labels?.['severity'] ?? ''), `${alert.alert}: severity`);
      assert.equal(alert.labels?.['service'], 'conduit-remediator', `${alert.alert}: service label`);
      assert.ok((alert.annotations?.['summary'] ?? '').length > 10, `${alert.alert}: summary`);
      assert.ok((alert.annotations?.['description'] ?? '').length > 40, `${alert.alert}: description`);
      const runbook = /^([\w/.-]+\.md)#([\w-]+)$/.exec(alert.annotations?.['runbook'] ?? '');
      assert.ok(runbook, `${alert.alert}: runbook is <file>.md#<section>, got ${alert.annotations?.['runbook']}`);
      const sections = docs.get(runbook[1]!);
      assert.ok(sections, `${alert.alert}: runbook file ${runbook[1]} is README.md or docs/operations.md`);
      assert.ok(sections.has(runbook[2]!), `${alert.alert}: ${runbook[1]} has no section #${runbook[2]}`);
    }
  });

  it('cover what the service can go wrong on, each reading the metric that shows it', () => {
    const reads = (metric: RegExp) => alerts.filter((a) => metric.test(oneLine(a.expr)));
    const one = (what: string, metric: RegExp) => {
      const found = reads(metric);
      assert.ok(found.length > 0, `no alert on ${what} (${metric})`);
      return found[0]!;
    };
    one('webhook 5xx answers', /remediator_webhook_duration_seconds_count\{code=~"5\.\."\}/);
    one('a queue backlog', /remediator_queue_jobs\{state=~"waiting\|prioritized"\}/);
    one('approvals left pending', /remediator_approvals_pending/);
    one('failing runs', /remediator_runs_total\{status="failed"\}/);
    one('verifications that fail', /remediator_verifications_total\{result="unverified"\}/);
    const paused = one('a long pause', /^max\(remediator_paused\) == 1$/);
    assert.equal(paused.for, '1h');
    one('a refused reload', /^remediator_config_last_reload_successful == 0$/);
    const down = reads(/^up\{job=~"\.\*remediator\.\*"\} == 0$/);
    const absent = reads(/^absent\(up\{job=~"\.\*remediator\.\*"\}\)$/);
    assert.equal(down.length, 1, 'one alert on a replica down');
    assert.equal(absent.length, 1, 'one alert on the service not being scraped at all');
    assert.equal(down[0]!.labels?.['severity'], 'critical');
  });
});

describe('Grafana dashboard of the remediator', () => {
  it('is an importable dashboard with a Prometheus data source variable', () => {
    assert.equal(dashboard.uid, 'conduit-remediator');
    assert.ok(dashboard.title.length > 0);
    assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`);
    assert.equal(dashboard.id, null, 'no database id: Grafana assigns one on import');
    const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
    assert.ok(variable, 'a templating variable named datasource');
    assert.equal(variable.type, 'datasource');
    assert.equal(variable.query, 'prometheus');
  });

  it('has unique panel ids, each panel on ${datasource} with at least one query, and no two panels overlapping', () => {
    assert.ok(dashboard.panels.length >= 10);
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, `panel ids are unique: ${ids.join(', ')}`);
    for (const panel of dashboard.panels) {
      const what = `panel ${panel.id} "${panel.title}"`;
      assert.ok(Number.isInteger(panel.id) && panel.id > 0, `${what}: id`);
      assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, `${what}: datasource`);
      const targets = panel.targets ?? [];
      assert.ok(targets.length > 0, `${what} has a query`);
      const refIds = targets.map((t) => t.refId);
      assert.equal(new Set(refIds).size, refIds.length, `${what}: refIds are unique`);
      for (const target of targets) {
        assert.ok((target.expr ?? '').trim().length > 0, `${what}: target ${target.refId} has an expr`);
        if (target.datasource) assert.equal(target.datasource.uid, '${datasource}', `${what}: target ${target.refId} datasource`);
      }
      const { x, y, w, h } = panel.gridPos;
      assert.ok(x >= 0 && w > 0 && h > 0 && x + w <= 24 && y >= 0, `${what}: gridPos within the 24 columns`);
    }
    for (const [i, a] of dashboard.panels.entries()) {
      for (const b of dashboard.panels.slice(i + 1)) {
        const apart =
          a.gridPos.x + a.gridPos.w <= b.gridPos.x ||
          b.gridPos.x + b.gridPos.w <= a.gridPos.x ||
          a.gridPos.y + a.gridPos.h <= b.gridPos.y ||
          b.gridPos.y + b.gridPos.h <= a.gridPos.y;
        assert.ok(apart, `panels ${a.id} and ${b.id} overlap`);
      }
    }
  });

  it('shows runs, suppressions, approvals, the queue, durations, the webhook, reloads, the kill switch and the closed loop', () => {
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => oneLine(t.expr ?? '')));
    const shows = (what: string, re: RegExp) =>
      assert.ok(
        exprs.some((e) => re.test(e)),
        `no panel shows ${what} (${re})`,
      );
    shows('runs by status', /sum by \(status\) \(rate\(remediator_runs_total\[/);
    shows('runs by rule and status', /sum by \(rule, status\) \(rate\(remediator_runs_total\[/);
    shows('suppressions by reason', /sum by \(reason\) \(rate\(remediator_suppressed_total\[/);
    shows('pending approvals', /remediator_approvals_pending/);
    shows('the queue by state', /by \(state\) \(remediator_queue_jobs\)/);
    shows('run durations', /histogram_quantile\(0\.\d+, sum by \(le, remediation\) \(rate\(remediator_run_duration_seconds_bucket\[/);
    shows(
      'webhook durations by code',
      /histogram_quantile\(0\.\d+, sum by \(le, code\) \(rate\(remediator_webhook_duration_seconds_bucket\[/,
    );
    shows('the last reload', /remediator_config_last_reload_successful/);
    shows('the loaded matrix', /remediator_config_last_reload_success_timestamp_seconds/);
    shows('the kill switch', /remediator_paused/);
    shows('checks', /remediator_checks_total/);
    shows('verifications', /remediator_verifications_total/);
    shows('reverts', /remediator_reverts_total/);
  });

  it('queries valid PromQL: promtool checks each as a recording rule', { skip: NO_PROMTOOL }, () => {
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.id, expr: t.expr ?? '' })));
    // Grafana's range variables are the only variables the queries use.
    const rules = exprs.map(({ panel, expr }, i) => {
      const substituted = expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m');
      assert.doesNotMatch(substituted, /\$/, `panel ${panel}: ${expr} uses a variable`);
      return { record: `dashboard:panel_${panel}:${i}`, expr: substituted };
    });
    const dir = mkdtempSync(join(tmpdir(), 'remediator-dashboard-'));
    try {
      const path = join(dir, 'dashboard-queries.yml');
      writeFileSync(path, stringifyYaml({ groups: [{ name: 'dashboard', rules }] }));
      const check = spawnSync('promtool', ['check', 'rules', path], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(check.status, 0, check.stdout + check.stderr);
      assert.match(check.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
