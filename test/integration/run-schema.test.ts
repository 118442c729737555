import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { FormatRegistry } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { isRunId } from '../../src/store/runs.js';
import request from 'supertest';
import { AlertSummary, Run, RunListItem } from '../../src/schemas/runs.js';
import { alertMessage, isolation, REDIS_URL, startService, TOKENS, WEBHOOK_TOKEN } from '../support/harness.js';

const MATRIX = `
rules:
  - name: approve
    matchers: ['alertname="NeedsApproval"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
        limit: { max: 5, per: 1h }
  - name: plain
    matchers: ['alertname="Plain"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
`;

// Fastify's validator knows `uuid`; TypeBox's Value checks it with the store's own test.
if (!FormatRegistry.Has('uuid')) FormatRegistry.Set('uuid', isRunId);

describe('the store returns runs of exactly the schema the API answers with', (s) => {
  const iso = isolation('schema');
  const svc = startService(s, { databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { TARGET_REDIS_URL: REDIS_URL } });
  after(() => iso.drop());

  const check = (run: unknown, where: string) => {
    // A listed run has the summary of its alert (RunListItem); every other read, the whole alert (Run).
    const schema = where === 'list' ? RunListItem : Run;
    const schemaKeys = Object.keys(schema.properties).sort();
    const problems = [...Value.Errors(schema, run)].map((e) => `${e.path}: ${e.message}`);
    assert.deepEqual(problems, [], `${where} fits the ${where === 'list' ? 'RunListItem' : 'Run'} schema`);
    // A run read on its own or listed carries its dependents' ids; one returned by a status change does not.
    const optional =
      where === 'get' || where === 'list' ? ['events', 'alertFiring'] : ['events', 'alertFiring', 'dependents', 'revertedBy'];
    const keys = Object.keys(run as object)
      .filter((k) => !optional.includes(k))
      .sort();
    assert.deepEqual(
      keys,
      schemaKeys.filter((k) => !optional.includes(k)),
      `${where} has every schema field and no other`,
    );
  };

  it('maps stored, listed, decided and executed rows onto the Run schema', async () => {
    const res = await request(svc.url)
      .post('/webhooks/alertmanager')
      .set('Authorization', `Bearer ${WEBHOOK_TOKEN}`)
      .send(alertMessage([{ labels: { alertname: 'NeedsApproval', key: 'a' } }, { labels: { alertname: 'Plain', key: 'b' } }]))
      .expect(200);
    const [pending, plain] = res.body.runs as Array<{ id: string }>;
    const stored = await svc.services.runs.get(pending!.id);
    check(stored, 'get');
    assert.ok(stored!.events!.length >= 2);
    const listed = await svc.services.runs.list({ limit: 10 });
    assert.equal(listed.runs.length, 2);
    for (const run of listed.runs) check(run, 'list');
    // The listing's alert is the summary and nothing more: no annotations, no generatorURL.
    const summaryKeys = Object.keys(AlertSummary.properties).sort();
    for (const run of listed.runs) {
      assert.deepEqual(
        Object.keys(run.alert).sort(),
        summaryKeys,
        'a listed alert has exactly the summary fields (endsAt as Alertmanager sent it)',
      );
      assert.equal(run.alert.labelCount, Object.keys(run.alert.labels).length);
    }
    const listedPending = listed.runs.find((r) => r.id === pending!.id)!;
    assert.deepEqual(listedPending.alert, {
      fingerprint: stored!.alert.fingerprint,
      status: stored!.alert.status,
      startsAt: stored!.alert.startsAt,
      endsAt: stored!.alert.endsAt,
      labels: stored!.alert.labels,
      labelCount: 2,
    });
    const { alert: _listedAlert, ...listedRest } = listedPending;
    const { alert: _storedAlert, events: _events, ...storedRest } = stored!;
    assert.deepEqual(listedRest, storedRest, 'a listed run is the run read on its own but for its alert and timeline');
    const approved = await request(svc.url)
      .post(`/api/runs/${pending!.id}/approve`)
      .set('Authorization', `Bearer ${TOKENS.approver}`)
      .send({ comment: 'ok' })
      .expect(200);
    check(approved.body, 'approve answer');
    const moved = await svc.services.runs.transition(plain!.id, ['queued', 'running', 'succeeded'], 'succeeded', { type: 'noted' }, {});
    check(moved, 'transition');
    assert.deepEqual(moved!.gates, {
      cooldownMs: 600_000,
      limit: null,
      approvalTimeoutMs: 1_800_000,
      alertFiring: true,
      onCheckError: 'skip',
    });
    assert.deepEqual(stored!.gates.limit, { max: 5, perMs: 3_600_000 });
  });
});
