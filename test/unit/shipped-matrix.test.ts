import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { createCatalogue } from '../../remediations/catalogue.js';
import { parseDuration } from '../../src/kernel/duration.js';
import { loadMatrix } from '../../src/matrix/load.js';
import { matchAlert, prepare } from '../../src/matrix/match.js';
import type { Rule } from '../../src/matrix/types.js';
import type { AlertSnapshot } from '../../src/schemas/runs.js';
import { alert, fixtureAlert } from '../support/alerts.js';

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const matrix = loadMatrix(root('config/response-matrix.yaml'), createCatalogue());
const MIN = 60_000;

interface PromRule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
}
const promRules = (
  parseYaml(readFileSync(root('config/prometheus/alert-rules.yml'), 'utf8')) as { groups: Array<{ rules: PromRule[] }> }
).groups
  .flatMap((g) => g.rules)
  .filter((r): r is PromRule & { alert: string } => r.alert !== undefined);

/** Labels a firing alert of this rule can carry: its static labels, its `by`/`group_left` labels and label_replace targets. */
function producedLabels(rule: PromRule): Set<string> {
  const names = new Set<string>(['alertname', ...Object.keys(rule.labels ?? {})]);
  for (const m of rule.expr.matchAll(/\b(?:by|group_left)\s*\(([^)]*)\)/g)) {
    for (const n of (m[1] ?? '').split(',')) if (n.trim()) names.add(n.trim());
  }
  for (const m of rule.expr.matchAll(/"([a-zA-Z_][a-zA-Z0-9_]*)",\s*"\$\d"/g)) names.add(m[1]!);
  return names;
}

/** Plausible values for every label the shipped rules produce. */
const SAMPLE: Record<string, string> = {
  provider: 'openai',
  namespace: 'conduit',
  deployment: 'conduit-api',
  database: 'conduit',
  datname: 'conduit',
  instance: 'postgres-exporter:9187',
  pod: 'conduit-api-7d4b9c6f5-x2x9z',
  container: 'api',
  persistentvolumeclaim: 'data-postgres-0',
  name: 'conduit-tls',
  certificate: 'conduit-tls',
  service: 'conduit',
};

/** A firing alert as this Prometheus rule would send it. */
function alertOf(rule: PromRule & { alert: string }): AlertSnapshot {
  const labels: Record<string, string> = {};
  for (const name of producedLabels(rule)) {
    const value = rule.labels?.[name];
    labels[name] = value !== undefined && !value.includes('{{') ? value : (SAMPLE[name] ?? `sample-${name}`);
  }
  labels['alertname'] = rule.alert;
  return alert(labels, { annotations: { summary: `${rule.alert} summary` } });
}

const rulesMatching = (a: AlertSnapshot): Rule[] => matrix.rules.filter((r) => r.matchers.every((m) => m.test(a.labels)));
const ruleNamed = (name: string): Rule => {
  const r = matrix.rules.find((x) => x.name === name);
  assert.ok(r, `the shipped matrix has no rule ${name}`);
  return r;
};

test('the shipped matrix loads with the default catalogue', () => {
  assert.equal(matrix.rules.length, 6);
  assert.deepEqual(matrix.globalLimit, { max: 30, perMs: 60 * MIN });
});

test('the shipped Prometheus rules fire exactly the six runbook alerts, and not ProviderUnhealthy', () => {
  assert.deepEqual(promRules.map((r) => r.alert).sort(), [
    'CertificateExpiringSoon',
    'ConduitDiskUsageHigh',
    'ConduitHighMemoryUsage',
    'ConduitProviderDown',
    'DatabaseConnectionPoolExhausted',
    'HighErrorRate',
  ]);
});

test('every shipped alert is matched by exactly one matrix rule, and every rule by an alert', () => {
  const used = new Set<string>();
  for (const rule of promRules) {
    const matched = rulesMatching(alertOf(rule));
    assert.equal(matched.length, 1, `${rule.alert} matches ${matched.map((r) => r.name).join(', ') || 'no rule'}`);
    used.add(matched[0]!.name);
  }
  assert.deepEqual([...used].sort(), matrix.rules.map((r) => r.name).sort());
});

test('every action of the shipped matrix prepares cleanly from the labels its alert carries', () => {
  for (const rule of promRules) {
    for (const status of ['firing', 'resolved'] as const) {
      const a = { ...alertOf(rule), status };
      const actions = matchAlert(matrix, a);
      if (status === 'firing') assert.ok(actions.length > 0, `${rule.alert} triggers nothing`);
      for (const action of actions) {
        const p = prepare(action, a);
        assert.ok(p.ok, `${rule.alert} ${status} -> ${action.remediation.name}: ${p.ok ? '' : p.error}`);
      }
    }
  }
});

test('the matrix only reads labels that the Prometheus rule of its alert produces', () => {
  for (const rule of promRules) {
    const a = alertOf(rule);
    const read = new Set<string>();
    const labels = new Proxy(a.labels, {
      get(target, key, receiver) {
        if (typeof key === 'string') read.add(key);
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    for (const action of [...matchAlert(matrix, a), ...matchAlert(matrix, { ...a, status: 'resolved' })]) {
      action.renderParams({
        labels,
        annotations: a.annotations,
        alert: { fingerprint: a.fingerprint, startsAt: a.startsAt, status: a.status },
      });
    }
    assert.ok(read.size > 0, `${rule.alert}: no label read (is the proxy seeing the lookups?)`);
    const produced = producedLabels(rule);
    for (const name of read)
      assert.ok(produced.has(name), `${rule.alert}: the matrix reads labels.${name}, which the alert rule never sets`);
  }
});

test('the captured provider-down alert disables openai and notifies; its resolution re-enables with approval', () => {
  const firing = fixtureAlert('firing-provider-down');
  const actions = matchAlert(matrix, firing);
  assert.deepEqual(
    actions.map((a) => [a.rule, a.remediation.name, a.approval]),
    [
      ['provider-down', 'conduit.disable-provider', 'auto'],
      ['provider-down', 'notify.webhook', 'auto'],
    ],
  );
  const disable = prepare(actions[0]!, firing);
  assert.ok(disable.ok);
  assert.deepEqual(disable.params, { provider: 'openai' });
  assert.equal(disable.target, 'conduit/provider/openai');

  const resolved = fixtureAlert('resolved-provider-down');
  const back = matchAlert(matrix, resolved);
  assert.deepEqual(
    back.map((a) => [a.remediation.name, a.approval]),
    [
      ['conduit.test-provider', 'auto'],
      ['conduit.enable-provider', 'required'],
      ['notify.webhook', 'auto'],
    ],
  );
  const enable = prepare(back[1]!, resolved);
  assert.ok(enable.ok);
  assert.equal(enable.target, 'conduit/provider/openai');
});

test('no rule acts on ProviderUnhealthy, firing or resolved', () => {
  for (const status of ['firing', 'resolved'] as const) {
    const a = alert({ alertname: 'ProviderUnhealthy', severity: 'critical', provider: 'openai', service: 'conduit' }, { status });
    assert.deepEqual(matchAlert(matrix, a), [], status);
    assert.deepEqual(rulesMatching(a), [], status);
  }
});

test('provider-down acts on critical and high severities only', () => {
  const labels = { alertname: 'ConduitProviderDown', provider: 'openai' };
  assert.equal(matchAlert(matrix, alert({ ...labels, severity: 'critical' })).length, 2);
  assert.equal(matchAlert(matrix, alert({ ...labels, severity: 'high' })).length, 2);
  assert.deepEqual(matchAlert(matrix, alert({ ...labels, severity: 'low' })), []);
  assert.deepEqual(matchAlert(matrix, alert({ ...labels, severity: 'critical-ish' })), []);
});

test('each runbook row has its severity, response time and remediations', () => {
  const rows: Array<[string, string, number, string[]]> = [
    ['provider-down', 'critical', 5 * MIN, ['conduit.disable-provider', 'notify.webhook']],
    ['high-error-rate', 'high', 15 * MIN, ['kubernetes.scale-deployment', 'notify.webhook']],
    [
      'database-connection-pool-exhausted',
      'high',
      10 * MIN,
      ['postgres.kill-idle-connections', 'kubernetes.rollout-restart', 'notify.webhook'],
    ],
    ['memory-high', 'medium', 30 * MIN, ['redis.flush-cache', 'kubernetes.set-resources', 'kubernetes.delete-pod', 'notify.webhook']],
    ['disk-high', 'medium', 60 * MIN, ['postgres.archive-old-data', 'notify.webhook']],
    ['certificate-expiring', 'low', 24 * 60 * MIN, ['cert-manager.renew-certificate']],
  ];
  for (const [name, severity, responseTimeMs, remediations] of rows) {
    const r = ruleNamed(name);
    assert.equal(r.severity, severity, name);
    assert.equal(r.responseTimeMs, responseTimeMs, name);
    assert.deepEqual(
      r.actions.map((a) => a.remediation.name),
      remediations,
      name,
    );
  }
});

test('actions that change capacity or restart pods wait for approval; the others run on their own', () => {
  const required = new Set([
    'kubernetes.scale-deployment',
    'kubernetes.rollout-restart',
    'kubernetes.set-resources',
    'kubernetes.delete-pod',
    'conduit.enable-provider',
  ]);
  for (const r of matrix.rules) {
    for (const a of [...r.actions, ...r.onResolved]) {
      assert.equal(a.approval, required.has(a.remediation.name) ? 'required' : 'auto', `${r.name} ${a.key} ${a.remediation.name}`);
    }
  }
});

test('the shipped defaults and per-action overrides are compiled', () => {
  const [disable] = ruleNamed('provider-down').actions;
  assert.equal(disable?.cooldownMs, 30 * MIN);
  assert.deepEqual(disable?.limit, { max: 3, perMs: 60 * MIN });
  assert.equal(disable?.approvalTimeoutMs, 30 * MIN);
  const enable = ruleNamed('provider-down').onResolved.find((a) => a.remediation.name === 'conduit.enable-provider');
  assert.equal(enable?.cooldownMs, 10 * MIN, 'the default cooldown');

  // Every action: its own cooldown when the file sets one, else the file's default.
  interface RawAction {
    cooldown?: string;
    approvalTimeout?: string;
  }
  const raw = parseYaml(readFileSync(root('config/response-matrix.yaml'), 'utf8')) as {
    defaults: { cooldown: string; approvalTimeout: string };
    rules: Array<{ name: string; actions?: RawAction[]; onResolved?: RawAction[] }>;
  };
  assert.equal(parseDuration(raw.defaults.cooldown), 10 * MIN);
  assert.equal(parseDuration(raw.defaults.approvalTimeout), 30 * MIN);
  for (const r of raw.rules) {
    const compiled = ruleNamed(r.name);
    for (const [list, actions] of [
      [r.actions ?? [], compiled.actions],
      [r.onResolved ?? [], compiled.onResolved],
    ] as const) {
      assert.equal(actions.length, list.length, r.name);
      list.forEach((a, i) => {
        assert.equal(actions[i]!.cooldownMs, parseDuration(a.cooldown ?? raw.defaults.cooldown), `${r.name} ${actions[i]!.key} cooldown`);
        assert.equal(
          actions[i]!.approvalTimeoutMs,
          parseDuration(a.approvalTimeout ?? raw.defaults.approvalTimeout),
          `${r.name} ${actions[i]!.key} approvalTimeout`,
        );
      });
    }
  }
  for (const r of matrix.rules) for (const a of [...r.actions, ...r.onResolved]) assert.equal(a.dryRun, false);
});

test('the concrete params of the shipped matrix', () => {
  const prepared = (rule: string, labels: Record<string, string>) => {
    const a = alert(labels);
    return ruleNamed(rule).actions.map((action) => {
      const p = prepare(action, a);
      assert.ok(p.ok, `${rule} ${action.remediation.name}: ${p.ok ? '' : p.error}`);
      return [action.remediation.name, p.params, p.target];
    });
  };
  assert.deepEqual(prepared('high-error-rate', { alertname: 'HighErrorRate', namespace: 'conduit', deployment: 'conduit-api' })[0], [
    'kubernetes.scale-deployment',
    { namespace: 'conduit', deployment: 'conduit-api', by: 2, max: 10 },
    'kubernetes/conduit/deployment/conduit-api',
  ]);
  assert.deepEqual(
    prepared('database-connection-pool-exhausted', {
      alertname: 'DatabaseConnectionPoolExhausted',
      database: 'conduit',
      namespace: 'conduit',
      deployment: 'conduit-api',
    }).slice(0, 2),
    [
      ['postgres.kill-idle-connections', { database: 'conduit', idleFor: '5m' }, 'postgres/conduit'],
      ['kubernetes.rollout-restart', { namespace: 'conduit', deployment: 'conduit-api' }, 'kubernetes/conduit/deployment/conduit-api'],
    ],
  );
  assert.deepEqual(
    prepared('disk-high', { alertname: 'ConduitDiskUsageHigh', namespace: 'conduit', persistentvolumeclaim: 'data-postgres-0' })[0],
    [
      'postgres.archive-old-data',
      { table: 'request_logs', olderThan: '90d', timestampColumn: 'timestamp', batchSize: 5000 },
      'postgres/table/request_logs',
    ],
  );
  assert.deepEqual(
    prepared('certificate-expiring', {
      alertname: 'CertificateExpiringSoon',
      namespace: 'conduit',
      name: 'conduit-tls',
      certificate: 'conduit-tls',
    })[0],
    ['cert-manager.renew-certificate', { namespace: 'conduit', certificate: 'conduit-tls' }, 'kubernetes/conduit/certificate/conduit-tls'],
  );
});
