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

/** `line:col` of the value after `needle`'s `key: ` (the `n`th occurrence of `needle` when given). */
function valuePos(text: string, needle: string, n = 1): string {
  let index = -1;
  for (let i = 0; i < n; i++) {
    index = text.indexOf(needle, index + 1);
    assert.ok(index >= 0, `fixture has no ${needle}`);
  }
  const sep = needle.indexOf(': ');
  assert.ok(sep >= 0, `${needle} has no "key: "`);
  const before = text.slice(0, index + sep + 2).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

/** A rule with firing `actions` and, when given, `onResolved` actions. */
function phases(actions: string, onResolved?: string): string {
  return rule(actions) + (onResolved === undefined ? '' : `    onResolved:\n${onResolved}\n`);
}

const DISABLE = "      - id: disable\n        remediation: conduit.disable-provider\n        params: { provider: '{{ labels.provider }}' }";
const TEST = "      - id: test\n        remediation: conduit.test-provider\n        params: { provider: '{{ labels.provider }}' }";
const ENABLE = "      - remediation: conduit.enable-provider\n        params: { provider: '{{ labels.provider }}' }";
const notifyAfter = (after: string, extra = '') =>
  `      - remediation: notify.webhook\n        after: ${after}\n        params: { text: 'done' }${extra ? `\n${extra}` : ''}`;

const CONTRACT = [
  'rules:',
  '  - name: provider-down',
  `    matchers: ['alertname="ConduitProviderDown"']`,
  '    actions:',
  '      - id: disable',
  '        remediation: conduit.disable-provider',
  "        params: { provider: '{{ labels.provider }}' }",
  '      - remediation: notify.webhook',
  '        after: disable',
  '        when: succeeded',
  "        params: { text: 'Provider {{ labels.provider }} disabled ({{ after.result.summary }})' }",
  '        check: { alertFiring: false }',
  '        onCheckError: proceed',
  '    onResolved:',
  '      - id: test',
  '        remediation: conduit.test-provider',
  '        after: firing.disable',
  "        params: { provider: '{{ labels.provider }}' }",
  '      - remediation: conduit.enable-provider',
  '        after: test',
  '        approval: required',
  "        params: { provider: '{{ labels.provider }}' }",
  '',
].join('\n');

test('after: actions name their predecessor by id, onResolved reaches the firing phase with firing.<id>', () => {
  const r = parse(CONTRACT).rules[0]!;
  assert.deepEqual(
    r.actions.map((a) => [a.key, a.id, a.after, a.checkAlertFiring, a.onCheckError]),
    [
      ['firing:0', 'disable', undefined, true, 'skip'],
      ['firing:1', undefined, { key: 'firing:0', ref: 'disable', when: 'succeeded' }, false, 'proceed'],
    ],
  );
  assert.deepEqual(
    r.onResolved.map((a) => [a.key, a.id, a.phase, a.remediation.name, a.after, a.approval]),
    [
      ['resolved:0', 'test', 'resolved', 'conduit.test-provider', { key: 'firing:0', ref: 'firing.disable', when: 'succeeded' }, 'auto'],
      ['resolved:1', undefined, 'resolved', 'conduit.enable-provider', { key: 'resolved:0', ref: 'test', when: 'succeeded' }, 'required'],
    ],
  );
});

test('after: an action with a predecessor renders its outcome into params', () => {
  const notify = parse(CONTRACT).rules[0]!.actions[1]!;
  const alert = { fingerprint: 'f', startsAt: 's', status: 'firing' };
  assert.deepEqual(
    notify.renderParams({
      labels: { provider: 'openai' },
      annotations: {},
      alert,
      after: { status: 'succeeded', reason: null, error: null, result: { summary: 'Disabled provider openai.' } },
    }),
    { text: 'Provider openai disabled (Disabled provider openai.)' },
  );
  assert.deepEqual(notify.renderParams({ labels: { provider: 'openai' }, annotations: {}, alert }), {
    text: 'Provider openai disabled ()',
  });
});

test('after: when defaults to succeeded and takes failed or finished', () => {
  const text = rule(
    [
      DISABLE,
      notifyAfter('disable'),
      notifyAfter('disable', '        when: failed'),
      notifyAfter('disable', '        when: finished'),
    ].join('\n'),
  );
  assert.deepEqual(
    parse(text).rules[0]!.actions.map((a) => a.after),
    [
      undefined,
      { key: 'firing:0', ref: 'disable', when: 'succeeded' },
      { key: 'firing:0', ref: 'disable', when: 'failed' },
      { key: 'firing:0', ref: 'disable', when: 'finished' },
    ],
  );
});

test('after: the predecessor key is the positional key of the named action, wherever it is in the list', () => {
  const text = phases(
    [
      NOTIFY,
      DISABLE,
      "      - id: tell\n        remediation: notify.webhook\n        params: { text: 'x' }",
      notifyAfter('disable'),
      notifyAfter('tell'),
    ].join('\n'),
    [TEST, ENABLE.replace('      - ', '      - after: firing.tell\n        '), notifyAfter('test')].join('\n'),
  );
  const r = parse(text).rules[0]!;
  assert.deepEqual(
    r.actions.map((a) => [a.key, a.id, a.after?.key]),
    [
      ['firing:0', undefined, undefined],
      ['firing:1', 'disable', undefined],
      ['firing:2', 'tell', undefined],
      ['firing:3', undefined, 'firing:1'],
      ['firing:4', undefined, 'firing:2'],
    ],
  );
  assert.deepEqual(
    r.onResolved.map((a) => [a.key, a.id, a.after]),
    [
      ['resolved:0', 'test', undefined],
      ['resolved:1', undefined, { key: 'firing:2', ref: 'firing.tell', when: 'succeeded' }],
      ['resolved:2', undefined, { key: 'resolved:0', ref: 'test', when: 'succeeded' }],
    ],
  );
});

test('the alert check is on for actions that change something, off for notices, and skips on error by default; check and onCheckError set them', () => {
  const DISABLE_ONE = "      - remediation: conduit.disable-provider\n        params: { provider: '{{ labels.provider }}' }";
  const text = rule(
    [
      DISABLE_ONE,
      `${DISABLE_ONE}\n        check: {}`,
      `${DISABLE_ONE}\n        check: { alertFiring: false }`,
      `${DISABLE_ONE}\n        onCheckError: proceed`,
      NOTIFY,
      `${NOTIFY}\n        check: { alertFiring: true }\n        onCheckError: skip`,
    ].join('\n'),
  );
  const actions = parse(text).rules[0]!.actions;
  assert.deepEqual(
    actions.map((a) => [a.remediation.name, a.checkAlertFiring, a.onCheckError]),
    [
      ['conduit.disable-provider', true, 'skip'],
      ['conduit.disable-provider', true, 'skip'],
      ['conduit.disable-provider', false, 'skip'],
      ['conduit.disable-provider', true, 'proceed'],
      ['notify.webhook', false, 'skip'],
      ['notify.webhook', true, 'skip'],
    ],
  );
});

test('the same id may be used once in each phase', () => {
  const text = phases(DISABLE, DISABLE.replace('conduit.disable-provider', 'conduit.enable-provider'));
  const r = parse(text).rules[0]!;
  assert.equal(r.actions[0]!.id, 'disable');
  assert.equal(r.onResolved[0]!.id, 'disable');
});

test('after naming an unknown id is refused at its position, listing the ids of the phase', () => {
  let text = rule([DISABLE, notifyAfter('disabel')].join('\n'));
  let err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'after: disabel')}`);
  assert.match(err.message, /rules\[0\]\.actions\[1\]\.after: "disabel": no action of this phase has id "disabel" \(ids: disable\)$/);

  text = rule([NOTIFY, notifyAfter('disable')].join('\n'));
  err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'after: disable')}`);
  assert.match(
    err.message,
    /rules\[0\]\.actions\[1\]\.after: "disable": no action of this phase has id "disable" \(no action has an id\)$/,
  );

  // An onResolved id is not visible from actions.
  text = phases(notifyAfter('test'), TEST);
  err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'after: test')}`);
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.after: "test": no action of this phase has id "test"/);
});

test('after naming a firing id from onResolved without firing. is refused with a hint', () => {
  const text = phases(DISABLE, notifyAfter('disable'));
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'after: disable')}`);
  assert.match(
    err.message,
    /rules\[0\]\.onResolved\[0\]\.after: "disable": no action of this phase has id "disable"; did you mean "firing\.disable"\?$/,
  );
});

test('firing.<id> naming no firing action is refused at its position', () => {
  const text = phases(DISABLE, [TEST, notifyAfter('firing.test')].join('\n'));
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'after: firing.test')}`);
  assert.match(err.message, /rules\[0\]\.onResolved\[1\]\.after: "firing\.test": no firing action has id "test" \(ids: disable\)$/);

  const none = phases(NOTIFY, notifyAfter('firing.disable'));
  const err2 = refused(none);
  assert.equal(err2.variable, `${FILE}:${valuePos(none, 'after: firing.disable')}`);
  assert.match(
    err2.message,
    /rules\[0\]\.onResolved\[0\]\.after: "firing\.disable": no firing action has id "disable" \(no action has an id\)$/,
  );
});

test('firing.<id> inside actions is refused at its position', () => {
  const text = rule([DISABLE, notifyAfter('firing.disable')].join('\n'));
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'after: firing.disable')}`);
  assert.match(
    err.message,
    /rules\[0\]\.actions\[1\]\.after: "firing\.disable": firing\.<id> is for onResolved actions; in actions, name the id alone$/,
  );
});

test('after pointing to a later action is refused at its position', () => {
  const text = rule([notifyAfter('disable'), DISABLE].join('\n'));
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'after: disable')}`);
  assert.match(
    err.message,
    /rules\[0\]\.actions\[0\]\.after: "disable" comes later in the list: an action can only wait for one before it$/,
  );

  const resolved = phases(DISABLE, [notifyAfter('test'), TEST].join('\n'));
  const err2 = refused(resolved);
  assert.equal(err2.variable, `${FILE}:${valuePos(resolved, 'after: test')}`);
  assert.match(err2.message, /rules\[0\]\.onResolved\[0\]\.after: "test" comes later in the list/);
});

test('an action waiting for itself, or two waiting for each other, is refused', () => {
  const self = rule("      - id: loop\n        remediation: notify.webhook\n        after: loop\n        params: { text: 'x' }");
  let err = refused(self);
  assert.equal(err.variable, `${FILE}:${valuePos(self, 'after: loop')}`);
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.after: "loop": an action cannot wait for itself$/);

  const selfResolved = phases(
    NOTIFY,
    "      - id: loop\n        remediation: notify.webhook\n        after: loop\n        params: { text: 'x' }",
  );
  err = refused(selfResolved);
  assert.equal(err.variable, `${FILE}:${valuePos(selfResolved, 'after: loop')}`);
  assert.match(err.message, /rules\[0\]\.onResolved\[0\]\.after: "loop": an action cannot wait for itself$/);

  const pair = rule(
    [
      "      - id: a\n        remediation: notify.webhook\n        after: b\n        params: { text: 'x' }",
      "      - id: b\n        remediation: notify.webhook\n        after: a\n        params: { text: 'y' }",
    ].join('\n'),
  );
  err = refused(pair);
  assert.equal(err.variable, `${FILE}:${valuePos(pair, 'after: b')}`);
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.after: "b" comes later in the list/);
});

test('a duplicate action id in a phase is refused at the second one', () => {
  const text = rule([DISABLE, DISABLE.replace('conduit.disable-provider', 'conduit.enable-provider')].join('\n'));
  let err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'id: disable', 2)}`);
  assert.match(err.message, /rules\[0\]\.actions\[1\]\.id: duplicate action id "disable" in actions$/);

  const resolved = phases(NOTIFY, [NOTIFY, TEST, TEST].join('\n'));
  err = refused(resolved);
  assert.equal(err.variable, `${FILE}:${valuePos(resolved, 'id: test', 2)}`);
  assert.match(err.message, /rules\[0\]\.onResolved\[2\]\.id: duplicate action id "test" in onResolved$/);
});

test('when without after is refused at its position', () => {
  const text = rule(`${NOTIFY}\n        when: failed`);
  let err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'when: failed')}`);
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.when: `when` needs `after`/);

  const resolved = phases(NOTIFY, `${NOTIFY}\n        when: finished`);
  err = refused(resolved);
  assert.equal(err.variable, `${FILE}:${valuePos(resolved, 'when: finished')}`);
  assert.match(err.message, /rules\[0\]\.onResolved\[0\]\.when: `when` needs `after`/);
});

test('a when other than succeeded, failed or finished is refused at its position', () => {
  const text = rule([DISABLE, notifyAfter('disable', '        when: done')].join('\n'));
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'when: done')}`);
  assert.match(err.message, /rules\[0\]\.actions\[1\]\.when/);
});

test('an id that is not a lowercase slug is refused at its position', () => {
  const text = rule(DISABLE.replace('id: disable', 'id: Disable Provider'));
  const err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, 'id: Disable Provider')}`);
  assert.match(err.message, /rules\[0\]\.actions\[0\]\.id/);
});

test('{{ after.* }} in an action without after is refused at load at its params', () => {
  const text = rule(
    [DISABLE, "      - remediation: notify.webhook\n        params: { text: 'done ({{ after.result.summary }})' }"].join('\n'),
  );
  let err = refused(text);
  assert.equal(err.variable, `${FILE}:${valuePos(text, "params: { text: 'done")}`);
  assert.match(err.message, /rules\[0\]\.actions\[1\]\.params: "\{\{ after\.result\.summary \}\}" needs `after`/);

  const resolved = phases(NOTIFY, "      - remediation: notify.webhook\n        params: { text: '{{ after.status }}' }");
  err = refused(resolved);
  assert.equal(err.variable, `${FILE}:${valuePos(resolved, "params: { text: '{{ after")}`);
  assert.match(err.message, /rules\[0\]\.onResolved\[0\]\.params: "\{\{ after\.status \}\}" needs `after`/);
});

test('{{ after.* }} in an action with after loads, and an unknown predecessor field is refused at its params', () => {
  const ok = phases(
    [
      DISABLE,
      "      - remediation: notify.webhook\n        after: disable\n        when: finished\n        params: { text: '{{ after.status }} {{ after.reason }} {{ after.error }} {{ after.result.a.b }}' }",
    ].join('\n'),
    "      - remediation: notify.webhook\n        after: firing.disable\n        params: { text: '{{ after.result.summary }}' }",
  );
  const r = parse(ok).rules[0]!;
  assert.equal(r.actions[1]!.after?.when, 'finished');
  assert.equal(r.onResolved[0]!.after?.key, 'firing:0');

  const bad = rule(
    [DISABLE, "      - remediation: notify.webhook\n        after: disable\n        params: { text: '{{ after.outcome }}' }"].join('\n'),
  );
  const err = refused(bad);
  assert.equal(err.variable, `${FILE}:${valuePos(bad, "params: { text: '{{ after")}`);
  assert.match(err.message, /rules\[0\]\.actions\[1\]\.params: "\{\{ after\.outcome \}\}" is not a predecessor field/);
});

test('check.query and verify compile to query templates whose label values stay inside their string literals', () => {
  const text = rule(
    [
      DISABLE,
      `        check: { query: 'conduit:provider_error_ratio{provider="{{ labels.provider }}"} > 0.5' }`,
      `        verify: { query: 'conduit:provider_error_ratio{provider="{{ labels.provider }}"} < 0.5', within: 5m }`,
      '        onUnverified: revert',
      '        revertAfter: 2h',
      '        revertApproval: required',
    ].join('\n'),
  );
  const action = parse(text).rules[0]!.actions[0]!;
  const scope = {
    labels: { provider: 'x"} or vector(1) or {a="' },
    annotations: {},
    alert: { fingerprint: 'f', startsAt: 's', status: 'firing' },
  };
  const rendered = action.conditionQuery!.render(scope);
  assert.ok(!rendered.includes('"} or vector(1)'), rendered);
  assert.ok(rendered.startsWith('conduit:provider_error_ratio{provider="x\\x22} or vector(1) or {a=\\x22"}'), rendered);
  assert.equal(action.verify!.withinMs, 5 * MIN);
  assert.equal(action.verify!.everyMs, 30_000, 'every defaults to 30s');
  assert.equal(action.onUnverified, 'revert');
  assert.equal(action.revertAfterMs, 120 * MIN);
  assert.equal(action.revertApproval, 'required');
});

test('closed-loop mistakes are refused at load, naming the field', () => {
  const cases: Array<[string, RegExp]> = [
    [`${DISABLE}\n        check: { query: 'up{job={{ labels.provider }}}' }`, /check\.query: .*string literal/],
    [`${DISABLE}\n        onUnverified: escalate`, /onUnverified: `onUnverified` needs `verify`/],
    [`${DISABLE}\n        verify: { query: 'up == 1', within: 5m, every: 0 }`, /verify\.every: must be more than 0/],
    [`${DISABLE}\n${NOTIFY}\n        after: disable\n        when: verified`, /when: "verified" needs a verify on "disable"/],
    [`${NOTIFY}\n        revertAfter: 1h`, /revertAfter: notify\.webhook has no inverse/],
  ];
  for (const [actions, message] of cases) assert.match(refused(rule(actions)).message, message, actions);
});
