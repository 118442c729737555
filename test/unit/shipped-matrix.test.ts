import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { createCatalogue } from '../../remediations/catalogue.js';
import { parseDuration } from '../../src/kernel/duration.js';
import { loadMatrix } from '../../src/matrix/load.js';
import { matchAlert, prepare } from '../../src/matrix/match.js';
import type { PredecessorScope } from '../../src/matrix/template.js';
import type { Action, Rule } from '../../src/matrix/types.js';
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

/** Marks of a predecessor's outcome, to find in what a dependent renders. */
const SUMMARY = 'THE-PREDECESSOR-SUMMARY';
const ERROR = 'THE-PREDECESSOR-ERROR';
/** A predecessor's outcome as a dependent moving on sees it. */
function outcome(status: 'succeeded' | 'failed'): PredecessorScope {
  return status === 'succeeded'
    ? { status, reason: null, error: null, result: { summary: SUMMARY } }
    : { status, reason: 'target_error', error: ERROR, result: null };
}

/** A firing alert of each matrix rule, as its Prometheus rule would send it. */
const alertOfRule = (name: string): AlertSnapshot => {
  const rule = promRules.find((r) => rulesMatching(alertOf(r))[0]?.name === name);
  assert.ok(rule, `no Prometheus rule fires an alert of ${name}`);
  return alertOf(rule);
};

/** The text a notice posts for this alert and predecessor outcome. */
function noticeText(action: Action, a: AlertSnapshot, after?: PredecessorScope): string {
  const p = prepare(action, a, after);
  assert.ok(p.ok, `${action.rule} ${action.key}: ${p.ok ? '' : p.error}`);
  return String(p.params['text']);
}

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
        const p = prepare(action, a, action.after ? outcome(action.after.when === 'failed' ? 'failed' : 'succeeded') : undefined);
        assert.ok(p.ok, `${rule.alert} ${status} -> ${action.remediation.name}: ${p.ok ? '' : p.error}`);
      }
    }
  }
});

test('the matrix only reads labels that the Prometheus rule of its alert produces', () => {
  let lookups = 0;
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
        ...(action.after ? { after: outcome('succeeded') } : {}),
      });
    }
    lookups += read.size;
    const produced = producedLabels(rule);
    for (const name of read)
      assert.ok(produced.has(name), `${rule.alert}: the matrix reads labels.${name}, which the alert rule never sets`);
  }
  // disk-high reads none (its params are constants, its notices name the volume through the summary annotation).
  assert.ok(lookups > 5, 'the proxy sees the label lookups');
});

test('the captured provider-down alert disables openai and notifies; its resolution tests it and re-enables it with approval', () => {
  const firing = fixtureAlert('firing-provider-down');
  const actions = matchAlert(matrix, firing);
  assert.deepEqual(
    actions.map((a) => [a.rule, a.remediation.name, a.approval]),
    [
      ['provider-down', 'conduit.disable-provider', 'auto'],
      ['provider-down', 'notify.webhook', 'auto'],
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
      ['notify.webhook', 'auto'],
    ],
  );
  const test = prepare(back[0]!, resolved, outcome('succeeded'));
  assert.ok(test.ok);
  assert.equal(test.target, 'conduit/provider/openai');
  const enable = prepare(back[1]!, resolved, outcome('succeeded'));
  assert.ok(enable.ok);
  assert.equal(enable.target, 'conduit/provider/openai');
});

/** An action in the table below: its id, remediation, predecessor (`after when`) and approval. */
const chainOf = (a: Action) => [a.id ?? null, a.remediation.name, a.after ? `${a.after.ref} ${a.after.when}` : null, a.approval];

test('the shipped chains: which action waits for which outcome of which, and which wait for approval', () => {
  const table = Object.fromEntries(
    matrix.rules.map((r) => [r.name, { actions: r.actions.map(chainOf), onResolved: r.onResolved.map(chainOf) }]),
  );
  assert.deepEqual(table, {
    'provider-down': {
      actions: [
        ['disable', 'conduit.disable-provider', null, 'auto'],
        [null, 'notify.webhook', 'disable succeeded', 'auto'],
        [null, 'notify.webhook', 'disable failed', 'auto'],
      ],
      onResolved: [
        ['test', 'conduit.test-provider', 'firing.disable succeeded', 'auto'],
        [null, 'conduit.enable-provider', 'test succeeded', 'required'],
        [null, 'notify.webhook', 'test succeeded', 'auto'],
        [null, 'notify.webhook', 'test failed', 'auto'],
      ],
    },
    'high-error-rate': {
      actions: [
        ['scale', 'kubernetes.scale-deployment', null, 'required'],
        [null, 'notify.webhook', null, 'auto'],
        [null, 'notify.webhook', 'scale succeeded', 'auto'],
      ],
      onResolved: [],
    },
    'database-connection-pool-exhausted': {
      actions: [
        ['kill', 'postgres.kill-idle-connections', null, 'auto'],
        [null, 'kubernetes.rollout-restart', 'kill finished', 'required'],
        [null, 'notify.webhook', 'kill finished', 'auto'],
      ],
      onResolved: [],
    },
    'memory-high': {
      actions: [
        ['flush', 'redis.flush-cache', null, 'auto'],
        [null, 'kubernetes.set-resources', null, 'required'],
        [null, 'kubernetes.delete-pod', null, 'required'],
        [null, 'notify.webhook', 'flush succeeded', 'auto'],
        [null, 'notify.webhook', 'flush failed', 'auto'],
      ],
      onResolved: [],
    },
    'disk-high': {
      actions: [
        ['archive', 'postgres.archive-old-data', null, 'auto'],
        [null, 'notify.webhook', 'archive succeeded', 'auto'],
        [null, 'notify.webhook', 'archive failed', 'auto'],
      ],
      onResolved: [],
    },
    'certificate-expiring': {
      actions: [
        ['renew', 'cert-manager.renew-certificate', null, 'auto'],
        [null, 'notify.webhook', 'renew succeeded', 'auto'],
        [null, 'notify.webhook', 'renew failed', 'auto'],
      ],
      onResolved: [],
    },
  });
  // What the store looks predecessors up by: the action key within the rule and alert episode.
  const [test, enable, recovered, staysDisabled] = ruleNamed('provider-down').onResolved;
  assert.deepEqual(test?.after, { key: 'firing:0', ref: 'firing.disable', when: 'succeeded' });
  for (const a of [enable, recovered, staysDisabled]) assert.equal(a?.after?.key, 'resolved:0');
  for (const r of matrix.rules) {
    for (const a of r.actions) if (a.after) assert.equal(a.after.key, 'firing:0', `${r.name} ${a.key} waits for the rule's first action`);
  }
});

test('every notice that follows an action reports its outcome: the summary when it succeeded, the error when it failed', () => {
  let checked = 0;
  for (const r of matrix.rules) {
    const a = alertOfRule(r.name);
    for (const action of [...r.actions, ...r.onResolved]) {
      if (action.remediation.name !== 'notify.webhook' || !action.after) continue;
      const ofPhase = action.phase === 'firing' ? a : { ...a, status: 'resolved' as const };
      const outcomes = action.after.when === 'finished' ? (['succeeded', 'failed'] as const) : [action.after.when as 'succeeded' | 'failed'];
      for (const status of outcomes) {
        const text = noticeText(action, ofPhase, outcome(status));
        assert.ok(text.includes(status === 'succeeded' ? SUMMARY : ERROR), `${r.name} ${action.key} after ${status}: ${text}`);
        assert.ok(!text.includes(status === 'succeeded' ? ERROR : SUMMARY), `${r.name} ${action.key} after ${status}: ${text}`);
        if (action.phase === 'firing')
          assert.ok(text.includes(a.annotations['summary']!), `${r.name} ${action.key} names the alert: ${text}`);
        checked++;
      }
    }
  }
  assert.equal(checked, 13);
});

test('the one notice sent before anything is done says plainly that nothing was changed', () => {
  const independent = matrix.rules.flatMap((r) => r.actions.filter((a) => a.remediation.name === 'notify.webhook' && !a.after));
  assert.deepEqual(
    independent.map((a) => a.rule),
    ['high-error-rate'],
  );
  const text = noticeText(independent[0]!, alertOfRule('high-error-rate'));
  for (const part of ['Nothing was changed automatically', 'check the API logs', 'waits for approval', 'conduit/conduit-api'])
    assert.ok(text.includes(part), text);
});

test('the provider-down notices: disabled, could not be disabled, recovered, stays disabled', () => {
  const rule = ruleNamed('provider-down');
  const firing = fixtureAlert('firing-provider-down');
  const resolved = fixtureAlert('resolved-provider-down');
  const [, disabled, notDisabled] = rule.actions;
  const [, , recovered, staysDisabled] = rule.onResolved;
  const summary = (text: string) => ({ status: 'succeeded', reason: null, error: null, result: { summary: text } });
  const failure = (error: string) => ({ status: 'failed', reason: 'not_found', error, result: null });
  assert.equal(
    noticeText(disabled!, firing, summary('Disabled Conduit provider "openai" (id 1)')),
    `${firing.annotations['summary']}: Disabled Conduit provider "openai" (id 1). Conduit routes no requests to it until it is re-enabled, ` +
      "which is proposed for approval once the alert resolves and the provider passes Conduit's connection test.",
  );
  assert.equal(
    noticeText(notDisabled!, firing, failure('Conduit has no provider "openai"; known: azure')),
    `${firing.annotations['summary']}: could not disable provider openai in Conduit: Conduit has no provider "openai"; known: azure. ` +
      'It still gets requests: disable it by hand.',
  );
  assert.equal(
    noticeText(recovered!, resolved, summary('Conduit\'s connection test of provider "openai" (id 1) succeeded; it listed 3 models')),
    'Provider openai recovered: the alert resolved and Conduit\'s connection test of provider "openai" (id 1) succeeded; it listed 3 models. ' +
      'It stays disabled until someone approves re-enabling it.',
  );
  assert.equal(
    noticeText(staysDisabled!, resolved, failure('Conduit\'s connection test of provider "openai" (id 1) failed: invalid key')),
    'Provider openai stays disabled: the alert resolved, but Conduit\'s connection test of provider "openai" (id 1) failed: invalid key. ' +
      'Re-enable it by hand once it works.',
  );
});

test('the connection-pool notice states what killing idle connections did and that the restart waits for approval', () => {
  const rule = ruleNamed('database-connection-pool-exhausted');
  const a = alertOfRule(rule.name);
  const notice = rule.actions[2]!;
  assert.equal(
    noticeText(notice, a, {
      status: 'succeeded',
      reason: null,
      error: null,
      result: { summary: 'Terminated 4 sessions of database "conduit" idle for more than 5m' },
    }),
    `${a.annotations['summary']}.\nKilling idle connections succeeded: Terminated 4 sessions of database "conduit" idle for more than 5m\n` +
      'The rolling restart of conduit/conduit-api waits for approval.',
  );
  assert.equal(
    noticeText(notice, a, { status: 'suppressed', reason: 'cooldown', error: null, result: null }).split('\n')[1],
    'Killing idle connections suppressed: ',
  );
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
  assert.equal(matchAlert(matrix, alert({ ...labels, severity: 'critical' })).length, 3);
  assert.equal(matchAlert(matrix, alert({ ...labels, severity: 'high' })).length, 3);
  assert.deepEqual(matchAlert(matrix, alert({ ...labels, severity: 'low' })), []);
  assert.deepEqual(matchAlert(matrix, alert({ ...labels, severity: 'critical-ish' })), []);
});

test('each runbook row has its severity, response time and remediations', () => {
  const rows: Array<[string, string, number, string[]]> = [
    ['provider-down', 'critical', 5 * MIN, ['conduit.disable-provider', 'notify.webhook', 'notify.webhook']],
    ['high-error-rate', 'high', 15 * MIN, ['kubernetes.scale-deployment', 'notify.webhook', 'notify.webhook']],
    [
      'database-connection-pool-exhausted',
      'high',
      10 * MIN,
      ['postgres.kill-idle-connections', 'kubernetes.rollout-restart', 'notify.webhook'],
    ],
    [
      'memory-high',
      'medium',
      30 * MIN,
      ['redis.flush-cache', 'kubernetes.set-resources', 'kubernetes.delete-pod', 'notify.webhook', 'notify.webhook'],
    ],
    ['disk-high', 'medium', 60 * MIN, ['postgres.archive-old-data', 'notify.webhook', 'notify.webhook']],
    ['certificate-expiring', 'low', 24 * 60 * MIN, ['cert-manager.renew-certificate', 'notify.webhook', 'notify.webhook']],
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
