import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createCatalogue } from '../../remediations/catalogue.js';
import { ConfigError } from '../../src/errors.js';
import { loadMatrix, parseMatrix } from '../../src/matrix/load.js';

const catalogue = createCatalogue();
const FILE = 'matrix.yaml';
const MIN = 60_000;

const parse = (text: string) => parseMatrix(text, FILE, catalogue);

/** 1-based line and column of the first occurrence of `needle` in `text` (the `n`th when given). */
function pos(text: string, needle: string, n = 1): string {
  let index = -1;
  for (let i = 0; i < n; i++) {
    index = text.indexOf(needle, index + 1);
    assert.ok(index >= 0, `fixture has no ${needle}`);
  }
  const before = text.slice(0, index).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

/** Parses `text`, expects a ConfigError and returns it. */
function refused(text: string): ConfigError {
  try {
    parse(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.ok(err.message.startsWith(`${err.variable}: `), err.message);
    return err;
  }
  return assert.fail('expected the matrix to be refused');
}

function rule(actions: string, extra = ''): string {
  return (
    ['rules:', '  - name: provider-down', `    matchers: ['alertname="ConduitProviderDown"']`, extra, '    actions:', actions]
      .filter((l) => l !== '')
      .join('\n') + '\n'
  );
}

const NOTIFY = "      - remediation: notify.webhook\n        params: { text: 'hello {{ labels.provider }}' }";

test('a valid matrix compiles rules, actions and limits', () => {
  const text = [
    'limits:',
    '  global: { max: 30, per: 1h }',
    'rules:',
    '  - name: provider-down',
    `    matchers: ['alertname="ConduitProviderDown"', 'severity=~"critical|high"']`,
    '    severity: critical',
    '    responseTime: 5m',
    '    actions:',
    '      - remediation: conduit.disable-provider',
    "        params: { provider: '{{ labels.provider }}' }",
    '        approval: auto',
    '        cooldown: 30m',
    '        limit: { max: 3, per: 1h }',
    NOTIFY,
    '        dryRun: true',
    '    onResolved:',
    '      - remediation: conduit.enable-provider',
    "        params: { provider: '{{ labels.provider }}' }",
    '        approval: required',
    '',
  ].join('\n');
  const m = parse(text);
  assert.equal(m.path, FILE);
  assert.deepEqual(m.globalLimit, { max: 30, perMs: 60 * MIN });
  assert.equal(m.rules.length, 1);
  const r = m.rules[0]!;
  assert.equal(r.name, 'provider-down');
  assert.equal(r.severity, 'critical');
  assert.equal(r.responseTimeMs, 5 * MIN);
  assert.deepEqual(
    r.matchers.map((x) => [x.name, x.op, x.value]),
    [
      ['alertname', '=', 'ConduitProviderDown'],
      ['severity', '=~', 'critical|high'],
    ],
  );
  assert.deepEqual(
    r.actions.map((a) => [a.rule, a.key, a.phase, a.remediation.name, a.approval, a.cooldownMs, a.limit, a.dryRun, a.approvalTimeoutMs]),
    [
      ['provider-down', 'firing:0', 'firing', 'conduit.disable-provider', 'auto', 30 * MIN, { max: 3, perMs: 60 * MIN }, false, 30 * MIN],
      ['provider-down', 'firing:1', 'firing', 'notify.webhook', 'auto', 10 * MIN, undefined, true, 30 * MIN],
    ],
  );
  assert.deepEqual(
    r.onResolved.map((a) => [a.key, a.phase, a.remediation.name, a.approval]),
    [['resolved:0', 'resolved', 'conduit.enable-provider', 'required']],
  );
  assert.strictEqual(r.actions[0]!.remediation, catalogue.get('conduit.disable-provider'));
});

test('defaults: approvalTimeout 30m and cooldown 10m when the matrix sets none', () => {
  const a = parse(rule(NOTIFY)).rules[0]!.actions[0]!;
  assert.equal(a.approvalTimeoutMs, 30 * MIN);
  assert.equal(a.cooldownMs, 10 * MIN);
  assert.equal(a.approval, 'auto');
  assert.equal(a.dryRun, false);
  assert.equal(a.limit, undefined);
  assert.equal(parse(rule(NOTIFY)).globalLimit, undefined);
});

test('defaults: the matrix defaults apply to every action and each action may override them', () => {
  const text =
    'defaults:\n  approvalTimeout: 1h\n  cooldown: 5m\n' +
    rule(`${NOTIFY}\n${NOTIFY}\n        cooldown: 0s\n        approvalTimeout: 2h30m\n${NOTIFY}\n        cooldown: 1d`);
  const actions = parse(text).rules[0]!.actions;
  assert.deepEqual(
    actions.map((a) => [a.cooldownMs, a.approvalTimeoutMs]),
    [
      [5 * MIN, 60 * MIN],
      [0, 150 * MIN],
      [24 * 60 * MIN, 60 * MIN],
    ],
  );
});

test('a rule with only onResolved actions is valid', () => {
  const text = ['rules:', '  - name: recovered', `    matchers: ['alertname="ConduitProviderDown"']`, '    onResolved:', NOTIFY, ''].join(
    '\n',
  );
  const r = parse(text).rules[0]!;
  assert.deepEqual(r.actions, []);
  assert.equal(r.onResolved.length, 1);
});

test('a YAML syntax error names the file, line and column', () => {
  const text = 'rules:\n  - name: a\n    matchers: ["alertname="x"]\n';
  const err = refused(text);
  assert.match(err.variable, /^matrix\.yaml:3:\d+$/);
});

test('a duplicate YAML key is an error at its line', () => {
  const text = 'rules: []\nrules: []\n';
  const err = refused(text);
  assert.match(err.variable, /^matrix\.yaml:2:\d+$/);
  assert.match(err.message, /unique|duplicate/i);
});

test('an unknown top-level key is named with its line', () => {
  const text = 'defaults:\n  cooldown: 5m\nrulez: []\nrules: []\n';
  const err = refused(text);
  assert.match(err.variable, /^matrix\.yaml:3:\d+$/);
  assert.match(err.message, /rulez/);
});

test('an unknown key in an action is named with its line', () => {
  const text = rule(`${NOTIFY}\n        aproval: required`);
  const err = refused(text);
  assert.match(err.variable, new RegExp(`^matrix\\.yaml:${pos(text, 'aproval').split(':')[0]}:\\d+$`));
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.aproval/);
});

test('an unknown remediation is named and the known ones are listed', () => {
  const text = rule('      - remediation: conduit.disable-providers\n        params: { provider: openai }');
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${pos(text, 'conduit.disable-providers')}`);
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.remediation/);
  assert.match(err.message, /unknown remediation "conduit\.disable-providers"/);
  for (const name of catalogue.keys()) assert.ok(err.message.includes(name), `${name} is not listed: ${err.message}`);
});

test('an approval other than auto or required is refused at its position', () => {
  const text = rule(`${NOTIFY}\n        approval: maybe`);
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${pos(text, 'maybe')}`);
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.approval/);
});

test('a bad duration is refused at its position, wherever it is', () => {
  const cooldown = rule(`${NOTIFY}\n        cooldown: 5x`);
  let err = refused(cooldown);
  assert.equal(err.variable, `${FILE}:${pos(cooldown, '5x')}`);
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.cooldown/);

  const order = rule(`${NOTIFY}\n        approvalTimeout: 1m1h`);
  err = refused(order);
  assert.equal(err.variable, `${FILE}:${pos(order, '1m1h')}`);
  assert.match(err.message, /approvalTimeout/);

  const defaults = 'defaults:\n  cooldown: ten minutes\n' + rule(NOTIFY);
  err = refused(defaults);
  assert.equal(err.variable, `${FILE}:${pos(defaults, 'ten minutes')}`);
  assert.match(err.message, /defaults\.cooldown/);

  const limit = rule(`${NOTIFY}\n        limit: { max: 3, per: 1 hour }`);
  err = refused(limit);
  assert.equal(err.variable, `${FILE}:${pos(limit, '1 hour')}`);
  assert.match(err.message, /limit\.per/);

  const responseTime = rule(NOTIFY, '    responseTime: -5m');
  err = refused(responseTime);
  assert.equal(err.variable, `${FILE}:${pos(responseTime, '-5m')}`);
  assert.match(err.message, /responseTime/);
});

test('a duplicate rule name is refused at the second one', () => {
  const one = rule(NOTIFY);
  const text = one + one.replace(/^rules:\n/, '');
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${pos(text, 'provider-down', 2)}`);
  assert.match(err.message, /rules\[1\]\.name/);
  assert.match(err.message, /duplicate rule name "provider-down"/);
});

test('a rule name that is not a lowercase slug is refused', () => {
  const text = rule(NOTIFY).replace('provider-down', 'Provider Down');
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${pos(text, 'Provider Down')}`);
  assert.match(err.message, /rules\[0\]\.name/);
});

test('a bad matcher is refused at its position with the reason', () => {
  const text = [
    'rules:',
    '  - name: provider-down',
    `    matchers: ['alertname="ConduitProviderDown"', 'severity=~"(critical"']`,
    '    actions:',
    NOTIFY,
    '',
  ].join('\n');
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${pos(text, `'severity`)}`);
  assert.match(err.message, /rules\[0\]\.matchers\[1\]/);
  assert.match(err.message, /invalid regex/);

  const malformed = rule(NOTIFY).replace(`'alertname="ConduitProviderDown"'`, `'alertname'`);
  const err2 = refused(malformed);
  assert.match(err2.message, /rules\[0\]\.matchers\[0\]: "alertname" is not a matcher/);
});

test('a rule needs at least one matcher', () => {
  const text = rule(NOTIFY).replace(`['alertname="ConduitProviderDown"']`, '[]');
  const err = refused(text);
  assert.match(err.message, /rules\[0\]\.matchers/);
});

test('a template with an unknown reference is refused at load', () => {
  const text = rule("      - remediation: notify.webhook\n        params: { text: 'hello {{ label.provider }}' }");
  const err = refused(text);
  assert.match(err.variable, /^matrix\.yaml:6:\d+$/);
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.params/);
  assert.match(err.message, /label\.provider/);
});

test('a param the remediation does not take is refused, listing the ones it takes', () => {
  const text = rule('      - remediation: conduit.disable-provider\n        params: { provider: openai, force: true }');
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${pos(text, 'true')}`);
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.params\.force/);
  assert.match(err.message, /conduit\.disable-provider takes no param "force"/);
  assert.match(err.message, /provider/);
});

test('a constant param the schema rejects is refused at load', () => {
  const bad = [
    [
      '      - remediation: kubernetes.scale-deployment\n        params: { namespace: conduit, deployment: conduit-api, by: 2, max: 0 }',
      'params.max',
    ],
    [
      '      - remediation: kubernetes.scale-deployment\n        params: { namespace: conduit, deployment: conduit-api, by: two, max: 5 }',
      'params.by',
    ],
    ["      - remediation: postgres.archive-old-data\n        params: { table: 'request_logs; DROP TABLE x' }", 'params.table'],
    ['      - remediation: postgres.archive-old-data\n        params: { table: request_logs, olderThan: 90 days }', 'params.olderThan'],
    [
      '      - remediation: kubernetes.rollout-restart\n        params: { namespace: Conduit_NS, deployment: conduit-api }',
      'params.namespace',
    ],
    [
      '      - remediation: kubernetes.set-resources\n        params: { namespace: conduit, deployment: api, container: api, limits: { memory: lots } }',
      'params.limits',
    ],
  ] as const;
  for (const [actions, field] of bad) {
    const err = refused(rule(actions));
    assert.match(err.variable, /^matrix\.yaml:6:\d+$/, actions);
    assert.ok(err.message.includes(`rules[0].actions[0].${field}`), `${field} not named: ${err.message}`);
  }
});

test('constant params are converted the way they will be at run time', () => {
  const a = parse(
    rule(
      "      - remediation: kubernetes.scale-deployment\n        params: { namespace: conduit, deployment: conduit-api, by: '2', max: 10 }",
    ),
  );
  assert.equal(a.rules[0]!.actions[0]!.remediation.name, 'kubernetes.scale-deployment');
});

test('templated params are not checked at load: the alert decides', () => {
  const m = parse(rule("      - remediation: conduit.disable-provider\n        params: { provider: '{{ labels.provider }}' }"));
  assert.equal(m.rules[0]!.actions.length, 1);
});

test('a rule with no actions is refused', () => {
  const empty = rule('      []').replace('    actions:\n      []', '    actions: []');
  let err = refused(empty);
  assert.equal(err.variable, `${FILE}:${pos(empty, 'name: provider-down')}`);
  assert.match(err.message, /rules\[0\]: a rule needs at least one action/);

  const none = 'rules:\n  - name: provider-down\n    matchers: [\'alertname="x"\']\n    onResolved: []\n';
  err = refused(none);
  assert.match(err.message, /rules\[0\]: a rule needs at least one action/);
});

test('an action without a remediation is refused', () => {
  const err = refused(rule("      - params: { text: 'hi' }"));
  assert.match(err.message, /rules\[0\]\.actions\[0\]/);
});

test('an empty file or a file without rules is refused', () => {
  assert.match(refused('').variable, /^matrix\.yaml:1:1$/);
  assert.match(refused('defaults:\n  cooldown: 5m\n').message, /rules/);
});

test('loadMatrix reads a file and names it in errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'matrix-'));
  try {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, rule(NOTIFY));
    const m = loadMatrix(good, catalogue);
    assert.equal(m.path, good);
    assert.equal(m.rules[0]!.name, 'provider-down');

    const bad = join(dir, 'bad.yaml');
    const text = rule(`${NOTIFY}\n        approval: maybe`);
    writeFileSync(bad, text);
    assert.throws(
      () => loadMatrix(bad, catalogue),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.variable, `${bad}:${pos(text, 'maybe')}`);
        return true;
      },
    );

    assert.throws(
      () => loadMatrix(join(dir, 'missing.yaml'), catalogue),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.variable, 'MATRIX_PATH');
        assert.match(err.message, /missing\.yaml/);
        assert.match(err.message, /ENOENT/);
        return true;
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a required param missing from an action stops the load, naming the remediation and the param', () => {
  const yaml = `rules:\n  - name: r\n    matchers: ['alertname="A"']\n    actions:\n      - remediation: conduit.disable-provider\n`;
  assert.throws(() => parseMatrix(yaml, 'm.yaml', createCatalogue()), /conduit\.disable-provider needs param provider/);
  const zero = `rules:\n  - name: r\n    matchers: ['alertname="A"']\n    actions:\n      - remediation: conduit.disable-provider\n        params: { provider: x }\n        cooldown: 0\n`;
  assert.equal(parseMatrix(zero, 'm.yaml', createCatalogue()).rules[0]!.actions[0]!.cooldownMs, 0);
});
