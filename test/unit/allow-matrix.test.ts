import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createCatalogue } from '../../remediations/catalogue.js';
import { ConfigError } from '../../src/errors.js';
import { outOfScope } from '../../src/gates/scope.js';
import { budgetFor, SEVERITIES, severityRank } from '../../src/gates/severity.js';
import { prepare } from '../../src/matrix/match.js';
import { parseMatrix } from '../../src/matrix/load.js';
import { alert } from '../support/alerts.js';

const catalogue = createCatalogue();
const FILE = 'matrix.yaml';
const parse = (text: string) => parseMatrix(text, FILE, catalogue);

/** 1-based `line:col` of the first occurrence of `needle` in `text`. */
function pos(text: string, needle: string): string {
  const index = text.indexOf(needle);
  assert.ok(index >= 0, `fixture has no ${needle}`);
  const before = text.slice(0, index).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

/** Parses `text`, expects a ConfigError at the position of `at` whose message matches `message`. */
function refusedAt(text: string, at: string, message: RegExp): ConfigError {
  let error: unknown;
  try {
    parse(text);
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
  assert.equal(error.variable, `${FILE}:${pos(text, at)}`, error.message);
  assert.match(error.message, message);
  return error;
}

const scale = (allow: string, severity = 'high') =>
  [
    'rules:',
    '  - name: scale',
    `    matchers: ['alertname="HighErrorRate"']`,
    `    severity: ${severity}`,
    '    actions:',
    '      - remediation: kubernetes.scale-deployment',
    "        params: { namespace: '{{ labels.namespace }}', deployment: '{{ labels.deployment }}', by: 2, max: 10 }",
    `        allow: ${allow}`,
    '',
  ].join('\n');

const budget = (global: string) => [`limits:`, `  global: ${global}`, scale("{ namespace: 'conduit' }")].join('\n');

test('allow: each pattern anchored as a whole, carried by the action with its rule severity', () => {
  const m = parse(scale("{ namespace: 'conduit|conduit-staging', deployment: 'conduit-api', max: '[1-9]|10' }", 'critical'));
  const action = m.rules[0]!.actions[0]!;
  assert.deepEqual(action.allow, {
    namespace: '^(?:conduit|conduit-staging)$',
    deployment: '^(?:conduit-api)$',
    max: '^(?:[1-9]|10)$',
  });
  assert.equal(action.severity, 'critical');
  const render = (labels: Record<string, string>) => {
    const p = prepare(action, alert({ alertname: 'HighErrorRate', ...labels }));
    assert.ok(p.ok, p.ok ? '' : p.error);
    return outOfScope(action.allow, p.params);
  };
  assert.equal(render({ namespace: 'conduit', deployment: 'conduit-api' }), undefined);
  assert.equal(render({ namespace: 'conduit-staging', deployment: 'conduit-api' }), undefined, 'the alternation is inside the anchors');
  assert.deepEqual(render({ namespace: 'kube-system', deployment: 'conduit-api' }), {
    param: 'namespace',
    value: 'kube-system',
    pattern: '^(?:conduit|conduit-staging)$',
    message: `namespace "kube-system" is outside the action's scope: allow.namespace is ^(?:conduit|conduit-staging)$`,
  });
  assert.equal(render({ namespace: 'conduit', deployment: 'conduit-api-canary' })?.param, 'deployment');
  assert.equal(render({ namespace: 'my-conduit', deployment: 'conduit-api' })?.param, 'namespace');
  // An action without allow scopes nothing.
  const none = parse(scale("{ namespace: '.*' }").replace(/ {8}allow: .*\n/, '')).rules[0]!.actions[0]!;
  assert.equal(none.allow, undefined);
  assert.equal(outOfScope(none.allow, { namespace: 'kube-system' }), undefined);
});

test('allow: a param the remediation does not take is refused at its file:line:col', () => {
  const text = scale("{ nspace: 'conduit' }");
  const err = refusedAt(text, "'conduit'", /allow\.nspace: kubernetes\.scale-deployment takes no param "nspace" to scope/);
  assert.match(err.message, /params: namespace, deployment/);
});

test('allow: a pattern that is not a regex is refused at its file:line:col', () => {
  const text = scale("{ namespace: 'conduit(' }");
  refusedAt(text, "'conduit('", /allow\.namespace: not a valid regex: .*Invalid regular expression/);
  refusedAt(scale("{ deployment: '[z-a]' }"), "'[z-a]'", /allow\.deployment: not a valid regex/);
});

test('allow: a pattern that is not a string, and a param that is neither string nor number, are refused', () => {
  refusedAt(scale('{ namespace: 5 }'), '5 }', /allow\.namespace: Expected string/);
  refusedAt(scale('{ namespace: [conduit] }'), '[conduit]', /allow\.namespace: Expected string/);
  const resources = [
    'rules:',
    '  - name: mem',
    `    matchers: ['alertname="ConduitHighMemoryUsage"']`,
    '    actions:',
    '      - remediation: kubernetes.set-resources',
    '        params: { namespace: conduit, deployment: conduit-api, container: api, limits: { memory: 4Gi } }',
    "        allow: { limits: 'x' }",
    '',
  ].join('\n');
  refusedAt(resources, "'x'", /allow\.limits: kubernetes\.set-resources's param "limits" is not a string or a number/);
  const provider = [
    'rules:',
    '  - name: down',
    `    matchers: ['alertname="ConduitProviderDown"']`,
    '    actions:',
    '      - remediation: conduit.disable-provider',
    "        params: { provider: '{{ labels.provider }}' }",
    "        allow: { ifEnabled: 'true' }",
    '',
  ].join('\n');
  refusedAt(provider, "'true'", /param "ifEnabled" is not a string or a number/);
});

test('allow: a constant param of the action outside its own scope is refused at load', () => {
  const archive = (table: string, pattern: string) =>
    [
      'rules:',
      '  - name: disk',
      `    matchers: ['alertname="ConduitDiskUsageHigh"']`,
      '    actions:',
      '      - remediation: postgres.archive-old-data',
      `        params: { table: ${table}, olderThan: 90d }`,
      `        allow: { table: '${pattern}' }`,
      '',
    ].join('\n');
  assert.deepEqual(parse(archive('request_logs', 'request_logs')).rules[0]!.actions[0]!.allow, { table: '^(?:request_logs)$' });
  refusedAt(
    archive('audit_logs', 'request_logs'),
    "'request_logs'",
    /allow\.table: the action's own table "audit_logs" is outside the action's scope: allow\.table is \^\(\?:request_logs\)\$: every run would fail out_of_scope/,
  );
  // A number is compared in decimal.
  refusedAt(scale("{ max: '[1-9]' }"), "'[1-9]'", /the action's own max "10" is outside/);
  assert.ok(parse(scale("{ max: '10', by: '2' }")).rules[0]!.actions[0]!.allow);
});

test('outOfScope: a value shown on one line and truncated; unset, non-string and uncompilable are outside', () => {
  const allow = { text: '^(?:ok)$' };
  const long = `line one\nline two ${'x'.repeat(200)}`;
  const out = outOfScope(allow, { text: long })!;
  assert.equal(out.value, `line one line two ${'x'.repeat(62)}…`);
  assert.ok(!out.message.includes('\n'), out.message);
  assert.ok(out.message.length < 200, out.message);
  assert.equal(outOfScope(allow, { text: 'ok' }), undefined);
  assert.equal(outOfScope(allow, {})?.message, "text (not set) is outside the action's scope: allow.text is ^(?:ok)$");
  assert.equal(outOfScope({ n: '^(?:[0-9])$' }, { n: 7 }), undefined, 'numbers in decimal');
  assert.equal(outOfScope({ n: '^(?:[0-9])$' }, { n: 70 })?.value, '70');
  assert.equal(outOfScope({ o: '^(?:.*)$' }, { o: { a: 1 } })?.param, 'o', 'an object matches no pattern');
  assert.equal(outOfScope({ s: '^(?:(unclosed)$' }, { s: 'x' })?.param, 's', 'a stored pattern that does not compile lets nothing through');
});

test('severities are ordered info < low < warning < medium < high < critical; unknown and none rank lowest', () => {
  assert.deepEqual([...SEVERITIES], ['info', 'low', 'warning', 'medium', 'high', 'critical']);
  const ranks = SEVERITIES.map(severityRank);
  assert.deepEqual(ranks, [0, 1, 2, 3, 4, 5]);
  assert.equal(severityRank('CRITICAL'), 5);
  assert.equal(severityRank('urgent'), -1);
  assert.equal(severityRank(undefined), -1);
  // Shares of a budget of 30 with nested reserves.
  const reserve = { critical: 10, high: 5 };
  assert.deepEqual(
    ['critical', 'high', 'medium', 'warning', 'low', 'info', 'urgent', undefined].map((s) => budgetFor(30, reserve, s)),
    [30, 20, 15, 15, 15, 15, 15, 15],
  );
  assert.equal(budgetFor(30, undefined, 'low'), 30);
  assert.equal(budgetFor(30, { critical: 30 }, 'high'), 0);
  assert.equal(budgetFor(30, { info: 10 }, 'info'), 30, 'a reserve for info is any known severity’s');
  assert.equal(budgetFor(30, { info: 10 }, undefined), 20, 'but not a rule without one');
});

test('limits.global.reserve: severities and counts are compiled', () => {
  const m = parse(budget('{ max: 30, per: 1h, reserve: { Critical: 10, high: 5 } }'));
  assert.deepEqual(m.globalLimit, { max: 30, perMs: 3_600_000, reserve: { critical: 10, high: 5 } });
  assert.deepEqual(parse(budget('{ max: 30, per: 1h, reserve: { critical: 30 } }')).globalLimit?.reserve, { critical: 30 });
  assert.deepEqual(parse(budget('{ max: 30, per: 1h }')).globalLimit, { max: 30, perMs: 3_600_000 });
});

test('limits.global.reserve: a count that is not an integer, more than max, or an unknown severity is refused at its file:line:col', () => {
  refusedAt(budget('{ max: 30, per: 1h, reserve: { critical: 2.5 } }'), '2.5', /limits\.global\.reserve\.critical: Expected integer/);
  refusedAt(budget("{ max: 30, per: 1h, reserve: { critical: 'ten' } }"), "'ten'", /Expected integer/);
  refusedAt(budget('{ max: 30, per: 1h, reserve: { critical: -1 } }'), '-1', /Expected integer to be greater or equal to 0/);
  refusedAt(
    budget('{ max: 30, per: 1h, reserve: { critical: 31 } }'),
    '{ critical: 31 }',
    /limits\.global\.reserve: reserves 31 of a budget of 30: at most max \(30\) can be reserved/,
  );
  refusedAt(budget('{ max: 30, per: 1h, reserve: { critical: 20, high: 11 } }'), '{ critical: 20', /reserves 31 of a budget of 30/);
  refusedAt(
    budget('{ max: 30, per: 1h, reserve: { urgent: 5 } }'),
    '5 }',
    /limits\.global\.reserve\.urgent: unknown severity "urgent" \(severities, lowest first: info, low, warning, medium, high, critical\)/,
  );
  refusedAt(budget('{ max: 30, per: 1h, reserve: { critical: 5, CRITICAL: 5 } }'), '5 }', /severity "critical" is reserved twice/);
});
