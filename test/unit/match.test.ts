import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createCatalogue } from '../../remediations/catalogue.js';
import { parseMatrix } from '../../src/matrix/load.js';
import { matchAlert, prepare, prepareParams } from '../../src/matrix/match.js';
import { alert, fixtureAlert } from '../support/alerts.js';

const catalogue = createCatalogue();
const remediation = (name: string) => {
  const r = catalogue.get(name);
  if (!r) throw new Error(`no remediation ${name}`);
  return r;
};

const matrix = parseMatrix(
  `
rules:
  - name: provider-down
    matchers: ['alertname="ConduitProviderDown"', 'severity=~"critical|high"']
    actions:
      - remediation: conduit.disable-provider
        params: { provider: '{{ labels.provider }}' }
      - remediation: notify.webhook
        params: { text: 'Provider {{ labels.provider }} disabled: {{ annotations.summary }} [{{ alert.fingerprint }} {{ alert.status }}]' }
    onResolved:
      - remediation: conduit.enable-provider
        params: { provider: '{{ labels.provider }}' }
        approval: required
      - remediation: notify.webhook
        params: { text: 'Provider {{ labels.provider }} {{ alert.status }} since {{ alert.startsAt }}' }
  - name: any-provider
    matchers: ['provider=~".+"']
    actions:
      - remediation: conduit.test-provider
        params: { provider: '{{ labels.provider }}' }
  - name: scale
    matchers: ['alertname="HighErrorRate"']
    actions:
      - remediation: kubernetes.scale-deployment
        params: { namespace: '{{ labels.namespace }}', deployment: '{{ labels.deployment }}', by: '{{ labels.by }}', max: 10 }
  - name: pool
    matchers: ['alertname="DatabaseConnectionPoolExhausted"']
    actions:
      - remediation: postgres.kill-idle-connections
        params: { database: '{{ labels.database }}' }
`,
  'unit.yaml',
  catalogue,
);

test('the captured firing alert triggers provider-down: disable the provider, then notify', () => {
  const firing = fixtureAlert('firing-provider-down');
  const actions = matchAlert(matrix, firing).filter((a) => a.rule === 'provider-down');
  assert.deepEqual(
    actions.map((a) => [a.key, a.remediation.name]),
    [
      ['firing:0', 'conduit.disable-provider'],
      ['firing:1', 'notify.webhook'],
    ],
  );

  const disable = prepare(actions[0]!, firing);
  assert.ok(disable.ok, JSON.stringify(disable));
  assert.deepEqual(disable.params, { provider: 'openai' });
  assert.equal(disable.target, 'conduit/provider/openai');
  assert.match(disable.plan, /openai/);
  assert.match(disable.plan, /isEnabled=false/);

  const notify = prepare(actions[1]!, firing);
  assert.ok(notify.ok, JSON.stringify(notify));
  assert.deepEqual(notify.params, { text: 'Provider openai disabled: Provider openai down [54e69878f8d451e8 firing]' });
  assert.match(notify.target, /^notify\/webhook/);
});

test('every matching rule contributes its actions, in matrix order', () => {
  const firing = fixtureAlert('firing-provider-down');
  assert.deepEqual(
    matchAlert(matrix, firing).map((a) => `${a.rule}/${a.key}/${a.remediation.name}`),
    [
      'provider-down/firing:0/conduit.disable-provider',
      'provider-down/firing:1/notify.webhook',
      'any-provider/firing:0/conduit.test-provider',
    ],
  );
});

test('the captured resolved alert yields the onResolved actions only', () => {
  const resolved = fixtureAlert('resolved-provider-down');
  const actions = matchAlert(matrix, resolved);
  assert.deepEqual(
    actions.map((a) => `${a.rule}/${a.key}/${a.phase}/${a.remediation.name}/${a.approval}`),
    ['provider-down/resolved:0/resolved/conduit.enable-provider/required', 'provider-down/resolved:1/resolved/notify.webhook/auto'],
  );
  const enable = prepare(actions[0]!, resolved);
  assert.ok(enable.ok, JSON.stringify(enable));
  assert.deepEqual(enable.params, { provider: 'openai' });
  assert.equal(enable.target, 'conduit/provider/openai');
  assert.match(enable.plan, /isEnabled=true/);
  const notify = prepare(actions[1]!, resolved);
  assert.ok(notify.ok);
  assert.deepEqual(notify.params, { text: 'Provider openai resolved since 2026-11-27T13:31:39.202045328Z' });
});

test('an alert that no rule matches yields nothing', () => {
  assert.deepEqual(matchAlert(matrix, alert({ alertname: 'ConduitProviderDown', severity: 'low' })), []);
  assert.deepEqual(matchAlert(matrix, alert({ alertname: 'ProviderUnhealthy', severity: 'critical' })), []);
  assert.deepEqual(
    matchAlert(matrix, alert({ alertname: 'HighErrorRate' }, { status: 'resolved' })),
    [],
    'a rule without onResolved does nothing on resolve',
  );
});

test('a label that does not fit the schema fails preparation, naming the param', () => {
  const bad = alert({ alertname: 'ConduitProviderDown', severity: 'critical', provider: 'x; DROP TABLE' });
  const action = matchAlert(matrix, bad)[0]!;
  assert.equal(action.remediation.name, 'conduit.disable-provider');
  const p = prepare(action, bad);
  assert.equal(p.ok, false);
  assert.ok(!p.ok);
  assert.match(p.error, /^provider: /);
  assert.deepEqual(p.params, { provider: 'x; DROP TABLE' }, 'the rendered params are kept for the record');
});

test('a missing label renders empty and fails preparation, naming the param', () => {
  const missing = alert({ alertname: 'ConduitProviderDown', severity: 'critical' });
  const p = prepare(matchAlert(matrix, missing)[0]!, missing);
  assert.ok(!p.ok);
  assert.match(p.error, /^provider: /);
  assert.deepEqual(p.params, { provider: '' });
});

test('numeric label values are converted for integer params', () => {
  const a = alert({ alertname: 'HighErrorRate', namespace: 'conduit', deployment: 'conduit-api', by: '2' });
  const [action] = matchAlert(matrix, a);
  assert.equal(action?.remediation.name, 'kubernetes.scale-deployment');
  const p = prepare(action!, a);
  assert.ok(p.ok, JSON.stringify(p));
  assert.deepEqual(p.params, { namespace: 'conduit', deployment: 'conduit-api', by: 2, max: 10 });
  assert.strictEqual(p.params['by'], 2);
  assert.equal(p.target, 'kubernetes/conduit/deployment/conduit-api');
  assert.match(p.plan, /by \+2 replicas/);

  const negative = prepare(action!, { ...a, labels: { ...a.labels, by: '-1' } });
  assert.ok(negative.ok, JSON.stringify(negative));
  assert.strictEqual(negative.params['by'], -1);
});

test('a non-numeric label for an integer param fails preparation, naming the param', () => {
  for (const by of ['two', '', '2 replicas', '-']) {
    const a = alert({ alertname: 'HighErrorRate', namespace: 'conduit', deployment: 'conduit-api', by });
    const p = prepare(matchAlert(matrix, a)[0]!, a);
    assert.ok(!p.ok, by);
    assert.match(p.error, /^by: /, by);
  }
});

test('a bad Kubernetes name from a label fails preparation', () => {
  const a = alert({ alertname: 'HighErrorRate', namespace: 'conduit', deployment: '../../secrets', by: '1' });
  const p = prepare(matchAlert(matrix, a)[0]!, a);
  assert.ok(!p.ok);
  assert.match(p.error, /^deployment: /);
});

test('schema defaults are applied', () => {
  const a = alert({ alertname: 'DatabaseConnectionPoolExhausted', database: 'conduit' });
  const p = prepare(matchAlert(matrix, a)[0]!, a);
  assert.ok(p.ok, JSON.stringify(p));
  assert.deepEqual(p.params, { database: 'conduit', idleFor: '5m' });
  assert.equal(p.target, 'postgres/conduit');

  const archive = prepareParams(remediation('postgres.archive-old-data'), { table: 'request_logs' });
  assert.ok(archive.ok, JSON.stringify(archive));
  assert.deepEqual(archive.params, { table: 'request_logs', olderThan: '90d', timestampColumn: 'timestamp', batchSize: 5000 });
  assert.equal(archive.target, 'postgres/table/request_logs');
});

test('given values win over schema defaults', () => {
  const p = prepareParams(remediation('postgres.kill-idle-connections'), { database: 'conduit', idleFor: '30m' });
  assert.ok(p.ok);
  assert.equal(p.params['idleFor'], '30m');
});

test('prepareParams: unknown params are refused', () => {
  const p = prepareParams(remediation('conduit.disable-provider'), { provider: 'openai', force: true });
  assert.ok(!p.ok);
  assert.match(p.error, /force|Unexpected property/);
});

test('prepareParams: the target is normalised the way the remediation counts it', () => {
  const p = prepareParams(remediation('conduit.disable-provider'), { provider: 'OpenAI' });
  assert.ok(p.ok);
  assert.equal(p.target, 'conduit/provider/openai');
  assert.deepEqual(p.params, { provider: 'OpenAI' }, 'the provider name itself is passed on as given');
});

test('prepareParams: a remediation that refuses the combination in plan() fails preparation', () => {
  const p = prepareParams(remediation('kubernetes.scale-deployment'), {
    namespace: 'conduit',
    deployment: 'conduit-api',
    by: 1,
    replicas: 3,
    max: 5,
  });
  assert.ok(!p.ok);
  assert.match(p.error, /exactly one of/);
});

test('prepareParams does not change the params it is given', () => {
  const raw = { namespace: 'conduit', deployment: 'conduit-api', by: '2', max: '10' };
  const copy = structuredClone(raw);
  const p = prepareParams(remediation('kubernetes.scale-deployment'), raw);
  assert.ok(p.ok);
  assert.deepEqual(raw, copy);
  const d = prepareParams(remediation('postgres.kill-idle-connections'), { database: 'conduit' });
  assert.ok(d.ok);
  const again = { database: 'conduit' };
  prepareParams(remediation('postgres.kill-idle-connections'), again);
  assert.deepEqual(again, { database: 'conduit' });
});

test('numbers are converted strictly: "2" is 2, "2.5", "1e3" and "0x10" are refused for an integer', () => {
  const scale = createCatalogue().get('kubernetes.scale-deployment')!;
  const base = { namespace: 'conduit', deployment: 'conduit-api', max: 10 };
  const ok = prepareParams(scale, { ...base, by: '2' });
  assert.equal(ok.ok, true);
  assert.equal(ok.params['by'], 2);
  for (const by of ['2.5', '1e3', '0x10', 'true', '']) {
    const bad = prepareParams(scale, { ...base, by });
    assert.equal(bad.ok, false, `by=${by}`);
    assert.match((bad as { error: string }).error, /^by: /);
  }
});
