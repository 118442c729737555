import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { createCatalogue } from '../../remediations/catalogue.js';
import { parseDuration } from '../../src/kernel/duration.js';
import { outOfScope } from '../../src/gates/scope.js';
import { budgetFor } from '../../src/gates/severity.js';
import { loadMatrix } from '../../src/matrix/load.js';
import { matchAlert, prepare } from '../../src/matrix/match.js';
import type { PredecessorScope, TemplateScope } from '../../src/matrix/template.js';
import type { Action, QueryTemplate, Rule } from '../../src/matrix/types.js';
import type { AlertSnapshot } from '../../src/schemas/runs.js';
import { promqlString } from '../../src/prometheus/promql.js';
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
const allPromRules = (
  parseYaml(readFileSync(root('config/prometheus/alert-rules.yml'), 'utf8')) as { groups: Array<{ rules: PromRule[] }> }
).groups.flatMap((g) => g.rules);
const promRules = allPromRules.filter((r): r is PromRule & { alert: string } => r.alert !== undefined);
/** The recording rules (`conduit:*`), by the name of the series they record. */
const records = new Map(allPromRules.flatMap((r) => (r.record !== undefined ? [[r.record, r] as const] : [])));

const PROMQL_KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'bool',
  'atan2',
]);
const PROMQL_NUMBERS = new Set(['inf', 'nan']);

/**
 * The series names a PromQL expression reads: its identifiers once string literals, comments, label
 * matchers, range brackets and grouping lists are taken out, less function and aggregation calls,
 * keywords and numbers.
 */
function seriesNames(expr: string): Set<string> {
  const code = expr
    .replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`/g, '""')
    .replace(/#[^\n]*/g, '')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of code.matchAll(/[0-9.][0-9a-zA-Z_.]*|([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (name && !call && !PROMQL_KEYWORDS.has(name.toLowerCase()) && !PROMQL_NUMBERS.has(name.toLowerCase())) names.add(name);
  }
  return names;
}

/** What the rules read from the exporters (Conduit, postgres_exporter, cAdvisor, kube-state-metrics, kubelet, cert-manager). */
const scrapedMetrics = new Set(allPromRules.flatMap((r) => [...seriesNames(r.expr)].filter((n) => !records.has(n))));

/**
 * Labels a firing alert (or a recorded series) of this rule can carry: its static labels, its
 * `by`/`group_left` labels, label_replace targets, and the labels of the recorded series it reads.
 */
function producedLabels(rule: PromRule): Set<string> {
  const names = new Set<string>(['alertname', ...Object.keys(rule.labels ?? {})]);
  for (const m of rule.expr.matchAll(/\b(?:by|group_left)\s*\(([^)]*)\)/g)) {
    for (const n of (m[1] ?? '').split(',')) if (n.trim()) names.add(n.trim());
  }
  for (const m of rule.expr.matchAll(/"([a-zA-Z_][a-zA-Z0-9_]*)",\s*"\$\d"/g)) names.add(m[1]!);
  for (const name of seriesNames(rule.expr)) {
    const recorded = records.get(name);
    if (recorded && recorded !== rule) for (const label of producedLabels(recorded)) names.add(label);
  }
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

/** An action's Prometheus queries: its `check.query` and its `verify.query`. */
function queriesOf(action: Action): Array<{ kind: 'check' | 'verify'; template: QueryTemplate }> {
  return [
    ...(action.conditionQuery ? [{ kind: 'check' as const, template: action.conditionQuery }] : []),
    ...(action.verify ? [{ kind: 'verify' as const, template: action.verify.query }] : []),
  ];
}
const allActions = () => matrix.rules.flatMap((r) => [...r.actions, ...r.onResolved]);
const scopeOf = (labels: Record<string, string>, action: Action): TemplateScope => ({
  labels,
  annotations: {},
  alert: { fingerprint: 'a1b2c3d4e5f60718', startsAt: '2026-11-27T13:31:39Z', status: action.phase === 'firing' ? 'firing' : 'resolved' },
  ...(action.after ? { after: outcome('succeeded') } : {}),
});
/** PromQL as written, with its runs of white space made one space: a folded YAML string reads the same. */
const oneLine = (q: string) => q.replace(/\s+/g, ' ').trim();

test('the shipped matrix loads with the default catalogue', () => {
  assert.equal(matrix.rules.length, 6);
  assert.deepEqual(matrix.globalLimit, { max: 30, perMs: 60 * MIN, reserve: { critical: 10, high: 5 } });
});

test('the global budget keeps its last 10 for critical rules and 5 more for high ones: the others fill 15 of 30', () => {
  const { max, reserve } = matrix.globalLimit!;
  const shares = Object.fromEntries(matrix.rules.map((r) => [r.name, budgetFor(max, reserve, r.severity)]));
  assert.deepEqual(shares, {
    'provider-down': 30,
    'high-error-rate': 20,
    'database-connection-pool-exhausted': 20,
    'memory-high': 15,
    'disk-high': 15,
    'certificate-expiring': 15,
  });
  for (const r of matrix.rules) for (const a of [...r.actions, ...r.onResolved]) assert.equal(a.severity, r.severity, `${r.name} ${a.key}`);
});

/** The scope of every action that acts on Kubernetes, PostgreSQL or Redis, by rule and action key. */
const SCOPES: Record<string, Record<string, Record<string, string>>> = {
  'high-error-rate': { 'firing:0': { namespace: 'conduit|conduit-staging', deployment: 'conduit-api' } },
  'database-connection-pool-exhausted': {
    'firing:0': { database: 'conduit' },
    'firing:1': { namespace: 'conduit|conduit-staging', deployment: 'conduit-api' },
    'firing:2': { namespace: 'conduit|conduit-staging', deployment: 'conduit-api' },
  },
  'memory-high': {
    'firing:0': { pattern: 'cache:(?:[A-Za-z0-9_-]+:)*\\*' },
    'firing:1': { namespace: 'conduit|conduit-staging', deployment: 'conduit-api' },
    'firing:2': { namespace: 'conduit|conduit-staging', pod: 'conduit-api-[a-z0-9]{1,10}-[a-z0-9]{5}' },
  },
  'disk-high': { 'firing:0': { table: 'request_logs' } },
  'certificate-expiring': { 'firing:0': { namespace: 'conduit|conduit-staging', certificate: 'conduit(?:-[a-z0-9]+)*-tls' } },
};

test('every Kubernetes, PostgreSQL and Redis action is scoped to Conduit; Conduit and notices are not', () => {
  const anchored = (scope: Record<string, string>) => Object.fromEntries(Object.entries(scope).map(([k, v]) => [k, `^(?:${v})$`]));
  let scoped = 0;
  for (const a of allActions()) {
    const expected = SCOPES[a.rule]?.[a.key];
    const what = `${a.rule} ${a.key} ${a.remediation.name}`;
    if (/^(kubernetes|cert-manager|postgres|redis)\./.test(a.remediation.name)) {
      assert.ok(expected, `${what} has no scope in this table`);
      assert.deepEqual(a.allow, anchored(expected), what);
      // Whatever the Kubernetes action, its namespace is one of Conduit's.
      if (/^(kubernetes|cert-manager)\./.test(a.remediation.name)) assert.ok(a.allow?.['namespace'], `${what}: namespace`);
      scoped++;
    } else {
      assert.equal(expected, undefined, what);
      assert.equal(a.allow, undefined, what);
    }
  }
  assert.equal(scoped, 9);
});

test("the shipped scopes let the runbook's own targets through and refuse what an alert label could point elsewhere", () => {
  const outside = (rule: string, key: string, labels: Record<string, string>) => {
    const action = [...ruleNamed(rule).actions, ...ruleNamed(rule).onResolved].find((a) => a.key === key)!;
    const a = { ...alertOfRule(rule), labels: { ...alertOfRule(rule).labels, ...labels } };
    const p = prepare(action, a, action.after ? outcome(action.after.when === 'failed' ? 'failed' : 'succeeded') : undefined);
    assert.ok(p.ok, `${rule} ${key}: ${p.ok ? '' : p.error}`);
    return outOfScope(action.allow, p.params)?.param ?? null;
  };
  // The labels the Prometheus rules set, with the runbook's names: inside.
  for (const [rule, keys] of Object.entries(SCOPES))
    for (const key of Object.keys(keys)) assert.equal(outside(rule, key, {}), null, `${rule} ${key}`);
  assert.equal(outside('high-error-rate', 'firing:0', { namespace: 'conduit-staging' }), null);
  assert.equal(outside('certificate-expiring', 'firing:0', { certificate: 'conduit-api-tls' }), null);
  // kube-system, and other objects of Conduit's namespace: outside.
  for (const [rule, key] of [
    ['high-error-rate', 'firing:0'],
    ['database-connection-pool-exhausted', 'firing:1'],
    ['memory-high', 'firing:1'],
    ['memory-high', 'firing:2'],
    ['certificate-expiring', 'firing:0'],
  ] as const)
    assert.equal(outside(rule, key, { namespace: 'kube-system' }), 'namespace', `${rule} ${key} in kube-system`);
  assert.equal(outside('high-error-rate', 'firing:0', { deployment: 'coredns' }), 'deployment');
  assert.equal(outside('high-error-rate', 'firing:0', { namespace: 'conduit-staging-x' }), 'namespace', 'anchored at the end');
  assert.equal(outside('high-error-rate', 'firing:0', { namespace: 'x-conduit' }), 'namespace', 'anchored at the start');
  assert.equal(outside('memory-high', 'firing:2', { pod: 'postgres-0' }), 'pod');
  assert.equal(outside('certificate-expiring', 'firing:0', { certificate: 'random-3f9a' }), 'certificate');
  assert.equal(outside('database-connection-pool-exhausted', 'firing:0', { database: 'billing' }), 'database');
  assert.equal(outside('database-connection-pool-exhausted', 'firing:0', { database: 'remediator' }), 'database');
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

test('the matrix only reads labels that the Prometheus rule of its alert produces, in params and in queries', () => {
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
      const scope: TemplateScope = {
        labels,
        annotations: a.annotations,
        alert: { fingerprint: a.fingerprint, startsAt: a.startsAt, status: a.status },
        ...(action.after ? { after: outcome('succeeded') } : {}),
      };
      action.renderParams(scope);
      for (const query of queriesOf(action)) query.template.render(scope);
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
        [null, 'kubernetes.rollout-restart', 'kill unverified', 'required'],
        [null, 'kubernetes.rollout-restart', 'kill failed', 'required'],
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
      const outcomes =
        action.after.when === 'finished' ? (['succeeded', 'failed'] as const) : [action.after.when as 'succeeded' | 'failed'];
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
  for (const part of [
    'Nothing was changed automatically',
    'check the API logs',
    'waits for approval',
    'conduit/conduit-api',
    'skipped if the error ratio is back under 5% or a provider is down',
  ])
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

test('the connection-pool notice states what killing idle connections did and when a restart is proposed', () => {
  const rule = ruleNamed('database-connection-pool-exhausted');
  const a = alertOfRule(rule.name);
  const notice = rule.actions[3]!;
  assert.equal(
    noticeText(notice, a, {
      status: 'succeeded',
      reason: null,
      error: null,
      result: { summary: 'Terminated 4 sessions of database "conduit" idle for more than 5m' },
    }),
    `${a.annotations['summary']}.\nKilling idle connections succeeded: Terminated 4 sessions of database "conduit" idle for more than 5m\n` +
      'If it succeeded and the server is not back under 90% of its connection slots within 2 minutes, or if it failed, ' +
      'a rolling restart of conduit/conduit-api is proposed for approval.',
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
      ['postgres.kill-idle-connections', 'kubernetes.rollout-restart', 'kubernetes.rollout-restart', 'notify.webhook'],
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

/** What an action checks before executing and verifies after succeeding, as the table below lists it. */
function loopOf(a: Action) {
  return {
    check: a.conditionQuery ? oneLine(a.conditionQuery.text) : null,
    verify: a.verify ? { query: oneLine(a.verify.query.text), withinMin: a.verify.withinMs / MIN, everyS: a.verify.everyMs / 1000 } : null,
    onUnverified: a.verify ? a.onUnverified : null,
  };
}

test('the closed loop: what each action checks right before executing and what verifies that it helped', () => {
  const db = 'instance="{{ labels.instance }}", database="{{ labels.database }}"';
  const pod = 'namespace="{{ labels.namespace }}", pod="{{ labels.pod }}", container="{{ labels.container }}"';
  const deployment = 'namespace="{{ labels.namespace }}", deployment="{{ labels.deployment }}", container="{{ labels.container }}"';
  const api = 'namespace="{{ labels.namespace }}", deployment="{{ labels.deployment }}"';
  const none = { check: null, verify: null, onUnverified: null };
  const restart = {
    check: `conduit:database_connection_usage_ratio{${db}} > 0.9`,
    verify: { query: `conduit:database_connection_usage_ratio{${db}} < 0.9`, withinMin: 10, everyS: 30 },
    onUnverified: 'escalate',
  };
  const table = Object.fromEntries(
    matrix.rules.map((r) => [r.name, [...r.actions, ...r.onResolved].map((a) => [a.key, a.remediation.name, loopOf(a)])]),
  );
  assert.deepEqual(table, {
    'provider-down': [
      [
        'firing:0',
        'conduit.disable-provider',
        { check: null, verify: { query: 'conduit:gateway_error_ratio < 0.05', withinMin: 7, everyS: 30 }, onUnverified: 'escalate' },
      ],
      ['firing:1', 'notify.webhook', none],
      ['firing:2', 'notify.webhook', none],
      ['resolved:0', 'conduit.test-provider', none],
      [
        'resolved:1',
        'conduit.enable-provider',
        {
          check: null,
          verify: { query: 'conduit:provider_error_ratio{provider="{{ labels.provider }}"} < 0.5', withinMin: 15, everyS: 30 },
          onUnverified: 'escalate',
        },
      ],
      ['resolved:2', 'notify.webhook', none],
      ['resolved:3', 'notify.webhook', none],
    ],
    'high-error-rate': [
      [
        'firing:0',
        'kubernetes.scale-deployment',
        {
          check: `conduit:http_error_ratio{${api}} > 0.05 unless on () conduit:provider_down`,
          verify: { query: `conduit:http_error_ratio{${api}} < 0.05`, withinMin: 10, everyS: 30 },
          onUnverified: 'escalate',
        },
      ],
      ['firing:1', 'notify.webhook', none],
      ['firing:2', 'notify.webhook', none],
    ],
    'database-connection-pool-exhausted': [
      [
        'firing:0',
        'postgres.kill-idle-connections',
        {
          check: null,
          verify: { query: `conduit:database_connection_usage_ratio{${db}} < 0.9`, withinMin: 2, everyS: 30 },
          onUnverified: 'escalate',
        },
      ],
      ['firing:1', 'kubernetes.rollout-restart', restart],
      ['firing:2', 'kubernetes.rollout-restart', restart],
      ['firing:3', 'notify.webhook', none],
    ],
    'memory-high': [
      [
        'firing:0',
        'redis.flush-cache',
        {
          check: null,
          verify: { query: `conduit:container_memory_usage_ratio{${pod}} < 0.9`, withinMin: 5, everyS: 30 },
          onUnverified: 'escalate',
        },
      ],
      [
        'firing:1',
        'kubernetes.set-resources',
        {
          check: `max(conduit:container_memory_usage_ratio{${deployment}}) > 0.9`,
          verify: { query: `max(conduit:container_memory_usage_ratio{${deployment}}) < 0.9`, withinMin: 10, everyS: 30 },
          onUnverified: 'escalate',
        },
      ],
      [
        'firing:2',
        'kubernetes.delete-pod',
        {
          check: `conduit:container_memory_usage_ratio{${pod}} > 0.9`,
          verify: { query: `max(conduit:container_memory_usage_ratio{${deployment}}) < 0.9`, withinMin: 5, everyS: 30 },
          onUnverified: 'escalate',
        },
      ],
      ['firing:3', 'notify.webhook', none],
      ['firing:4', 'notify.webhook', none],
    ],
    // The archived rows stay on the same volume: nothing to verify (see the matrix).
    'disk-high': [
      ['firing:0', 'postgres.archive-old-data', none],
      ['firing:1', 'notify.webhook', none],
      ['firing:2', 'notify.webhook', none],
    ],
    'certificate-expiring': [
      [
        'firing:0',
        'cert-manager.renew-certificate',
        {
          check: null,
          verify: {
            query: 'conduit:certificate_expiry_seconds{namespace="{{ labels.namespace }}", name="{{ labels.name }}"} > 30 * 24 * 3600',
            withinMin: 15,
            everyS: 60,
          },
          onUnverified: 'escalate',
        },
      ],
      ['firing:1', 'notify.webhook', none],
      ['firing:2', 'notify.webhook', none],
    ],
  });
  // The kill's restart waits for its verification (proposed when it did not help) or for its failure.
  const [, unverified, failed] = ruleNamed('database-connection-pool-exhausted').actions;
  assert.deepEqual(unverified?.after, { key: 'firing:0', ref: 'kill', when: 'unverified' });
  assert.deepEqual(failed?.after, { key: 'firing:0', ref: 'kill', when: 'failed' });
});

test('every action with an effect Prometheus can see verifies it; every one waiting for approval checks it is still needed', () => {
  // A notice and Conduit's connection test change nothing; the archive's rows stay on the volume.
  const nothingToVerify = new Set(['notify.webhook', 'conduit.test-provider', 'postgres.archive-old-data']);
  // While disabled, a provider gets no requests: only Conduit's connection test can say it works.
  const nothingToCheck = new Set(['conduit.enable-provider']);
  for (const a of allActions()) {
    const what = `${a.rule} ${a.key} ${a.remediation.name}`;
    assert.equal(a.verify !== undefined, !nothingToVerify.has(a.remediation.name), `${what}: verify`);
    assert.equal(
      a.conditionQuery !== undefined,
      a.approval === 'required' && !nothingToCheck.has(a.remediation.name),
      `${what}: check.query`,
    );
    // Unverified always tells on-call ('revert' is not available).
    if (a.verify) assert.equal(a.onUnverified, 'escalate', what);
  }
});

test('seriesNames reads the series of a PromQL expression, not its functions, labels, keywords or strings', () => {
  assert.deepEqual(
    [
      ...seriesNames(
        'sum by (a, b) (rate(x_total{l="y{z} w", m!~\'q"\'}[5m] offset 1m)) / on (c) group_left (d) rec:ratio ' +
          'unless ignoring (e) max without (f) (other) > 1e3 and NaN == Inf # comment_name\n or vector(0) - time()',
      ),
    ].sort(),
    ['other', 'rec:ratio', 'x_total'],
  );
});

test('every check and verify query reads recording rules of alert-rules.yml (or, failing that, a metric its rules read)', () => {
  assert.ok(scrapedMetrics.has('conduit_http_requests_total') && scrapedMetrics.has('pg_stat_activity_count'), [...scrapedMetrics].join());
  let queries = 0;
  for (const a of allActions()) {
    for (const { kind, template } of queriesOf(a)) {
      const names = [...seriesNames(template.text)];
      assert.ok(names.length > 0, `${a.rule} ${a.key} ${kind}: reads no series: ${template.text}`);
      for (const name of names) {
        assert.ok(
          records.has(name) || scrapedMetrics.has(name),
          `${a.rule} ${a.key} ${kind} reads ${name}, which config/prometheus neither records nor reads`,
        );
        // Today every query reads recorded series only: short, and the very ratios the alerts fire on.
        assert.ok(records.has(name), `${a.rule} ${a.key} ${kind} reads ${name} directly rather than a conduit: recording rule`);
      }
      queries++;
    }
  }
  assert.equal(queries, 15);
});

/** Runs `promtool check rules` on recording rules whose expressions are the given queries: a real PromQL parse. */
function promtoolParses(exprs: string[]): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'matrix-queries-'));
  try {
    const file = join(dir, 'queries.yml');
    const rules = exprs.map((expr, i) => ({ record: `matrix:query_${i}`, expr }));
    writeFileSync(file, stringifyYaml({ groups: [{ name: 'matrix-queries', rules }] }));
    const run = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 60_000 });
    return { status: run.status, output: run.stdout + run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const hasPromtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0;

test(
  'every query renders from the labels its alert carries, whatever their values, into PromQL that promtool parses',
  { skip: hasPromtool ? false : 'promtool not installed' },
  () => {
    // A label value that would break out of its string literal, were it not escaped.
    const hostile = 'x"} or vector(1) # \'\\\n{{ labels.pod }}\u2028';
    const rendered: string[] = [];
    for (const rule of promRules) {
      const a = alertOf(rule);
      const evil = Object.fromEntries(Object.keys(a.labels).map((k) => [k, k === 'alertname' ? a.labels[k]! : hostile]));
      for (const status of ['firing', 'resolved'] as const) {
        for (const action of matchAlert(matrix, { ...a, status })) {
          for (const { template } of queriesOf(action)) {
            const plain = template.render(scopeOf(a.labels, action));
            assert.ok(!plain.includes('{{'), plain);
            const escaped = template.render(scopeOf(evil, action));
            // The value lands where the template names a label, escaped, and nowhere else.
            assert.equal(
              escaped.split(promqlString(hostile)).join('<value>'),
              template.text.replace(/\{\{\s*labels\.[a-zA-Z_]+\s*\}\}/g, '<value>'),
            );
            rendered.push(plain, escaped);
          }
        }
      }
    }
    assert.equal(rendered.length, 30, 'each of the 15 queries, with plain and hostile label values');
    const parsed = promtoolParses(rendered);
    assert.equal(parsed.status, 0, parsed.output);
    assert.match(parsed.output, /SUCCESS: 30 rules found/);
    // The same check rejects what is not PromQL.
    const broken = promtoolParses(['conduit:http_error_ratio{namespace="conduit" > 0.05']);
    assert.notEqual(broken.status, 0, broken.output);
  },
);

interface PromtoolTests {
  tests: Array<{
    promql_expr_test?: Array<{ expr: string; eval_time: string; exp_samples?: unknown[] | null }>;
    alert_rule_test?: Array<{ alertname: string; exp_alerts?: Array<{ exp_labels?: Record<string, string> }> | null }>;
  }>;
}

test('every query, rendered with the labels of its alert in alert-rules.test.yml, is evaluated there both empty and not', () => {
  const unit = parseYaml(readFileSync(root('config/prometheus/alert-rules.test.yml'), 'utf8')) as PromtoolTests;
  const exprTests = unit.tests.flatMap((t) => t.promql_expr_test ?? []);
  const firstLabels = (alertname: string) =>
    unit.tests
      .flatMap((t) => t.alert_rule_test ?? [])
      .flatMap((t) => t.exp_alerts ?? [])
      .map((e) => e.exp_labels)
      .find((l) => l?.['alertname'] === alertname);
  let queries = 0;
  for (const r of matrix.rules) {
    const alertname = alertOfRule(r.name).labels['alertname']!;
    const labels = firstLabels(alertname);
    assert.ok(labels, `alert-rules.test.yml shows no ${alertname} firing`);
    for (const action of [...r.actions, ...r.onResolved]) {
      for (const { kind, template } of queriesOf(action)) {
        const query = oneLine(template.render(scopeOf(labels, action)));
        const results = exprTests.filter((t) => oneLine(t.expr) === query).map((t) => (t.exp_samples ?? []).length);
        const what = `${r.name} ${action.key} ${kind}: ${query}`;
        assert.ok(results.includes(0), `${what} is never shown empty in alert-rules.test.yml`);
        assert.ok(
          results.some((n) => n > 0),
          `${what} is never shown returning a series in alert-rules.test.yml`,
        );
        queries++;
      }
    }
  }
  assert.equal(queries, 15);
});
