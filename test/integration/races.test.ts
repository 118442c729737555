import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import request from 'supertest';
import { createExecutor } from '../../src/execution/executor.js';
import type { RunStore } from '../../src/store/runs.js';
import type { NewRun } from '../../src/schemas/runs.js';
import {
  alertMessage,
  eventually,
  isolation,
  REDIS_URL,
  startService,
  TOKENS,
  WEBHOOK_TOKEN,
  type TestService,
} from '../support/harness.js';
import { executionsKey } from '../support/test-remediations.js';

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: approve
    matchers: ['alertname="NeedsApproval"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
        approvalTimeout: 1s
  - name: plain
    matchers: ['alertname="Plain"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
`;

describe('races and partial failures', () => {
  const iso = isolation('races');
  let api: TestService;
  let redis: Redis;
  let db: pg.Pool;
  const deliver = (msg: object) =>
    request(api.url).post('/webhooks/alertmanager').set('Authorization', `Bearer ${WEBHOOK_TOKEN}`).send(msg);

  before(async () => {
    api = await startService({
      databaseUrl: iso.databaseUrl,
      prefix: iso.prefix,
      matrix: MATRIX,
      env: { TARGET_REDIS_URL: REDIS_URL, ROLE: 'api', SWEEP_INTERVAL: '1h' },
    });
    redis = new Redis(REDIS_URL);
    db = new pg.Pool({ connectionString: iso.databaseUrl, max: 2 });
  });
  after(async () => {
    redis.disconnect();
    await db.end();
    await api.close();
    await iso.drop();
  });

  it('never leaves an approval open for an episode whose resolution raced its firing delivery', async () => {
    const episodes = Array.from({ length: 12 }, (_, i) => ({
      key: `race-${i}`,
      startsAt: `2026-11-27T09:00:${String(i).padStart(2, '0')}Z`,
    }));
    await Promise.all(
      episodes.flatMap(({ key, startsAt }) => [
        deliver(alertMessage([{ labels: { alertname: 'NeedsApproval', key }, startsAt }])).expect(200),
        deliver(alertMessage([{ labels: { alertname: 'NeedsApproval', key }, startsAt, status: 'resolved' }])).expect(200),
      ]),
    );
    const { rows } = await db.query(
      `SELECT status, reason FROM runs WHERE rule = 'approve' AND phase = 'firing' AND params->>'key' LIKE 'race-%'`,
    );
    assert.equal(rows.length, episodes.length);
    assert.ok(
      rows.every((r) => r.status === 'cancelled' && r.reason === 'alert_resolved'),
      JSON.stringify(rows),
    );
  });

  it('inserts overlapping batches concurrently without deadlocks, one run per key', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    const newRun = (key: string): NewRun => ({
      id: randomUUID(),
      rule: 'plain',
      action: 'firing:0',
      phase: 'firing',
      remediation: 'test.count',
      target: `test/${key}`,
      params: { key },
      status: 'suppressed',
      reason: 'test',
      approvalRequired: false,
      expiresAt: null,
      dryRun: false,
      gates: { cooldownMs: 0, limit: null, approvalTimeoutMs: 1000 },
      plan: null,
      error: null,
      after: null,
      revertOf: null,
      alert: { fingerprint: `f${key}`, status: 'firing', startsAt: '2026-11-27T08:00:00Z', labels: {}, annotations: {} },
      events: [{ type: 'created' }],
    });
    const shuffled = () => [...keys].sort(() => Math.random() - 0.5).map(newRun);
    const results = await Promise.allSettled(Array.from({ length: 40 }, () => api.services.runs.insert(shuffled())));
    assert.deepEqual(
      results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
      [],
    );
    const { rows } = await db.query(`SELECT count(*) AS n FROM runs WHERE rule = 'plain' AND fingerprint LIKE 'fk%'`);
    assert.equal(Number(rows[0].n), keys.length);
  });

  it('takes an alert whose labels hold a NUL character, storing it as U+FFFD (PostgreSQL stores no NUL; a 4xx would lose the group)', async () => {
    const res = await deliver(alertMessage([{ labels: { alertname: 'Plain', key: 'nul\u0000' } }])).expect(200);
    assert.equal(res.body.runs.length, 1);
    const { rows } = await db.query('SELECT alert FROM runs WHERE id = $1', [res.body.runs[0].id]);
    assert.equal(rows[0].alert.labels.key, 'nul\ufffd');
  });

  it('refuses to reject an approval past its expiry, even before the sweeper marks it', async () => {
    const res = await deliver(alertMessage([{ labels: { alertname: 'NeedsApproval', key: 'late-reject' } }])).expect(200);
    const id = res.body.runs[0].id;
    await new Promise((r) => setTimeout(r, 1200));
    const late = await request(api.url).post(`/api/runs/${id}/reject`).set('Authorization', `Bearer ${TOKENS.approver}`).send({});
    assert.equal(late.status, 409);
    assert.match(late.body.message, /expired/);
  });

  it('records a remediation whose outcome could not be written at first, without executing it again', async () => {
    const res = await deliver(alertMessage([{ labels: { alertname: 'Plain', key: 'bookkeeping' } }])).expect(200);
    const id = res.body.runs[0].id;
    const s = api.services;
    let failNext = true;
    const runs: RunStore = {
      ...s.runs,
      async transition(...args: Parameters<RunStore['transition']>) {
        if (args[2] === 'succeeded' && failNext) {
          failNext = false;
          throw new Error('connection terminated unexpectedly');
        }
        return s.runs.transition(...args);
      },
    };
    const executor = createExecutor({
      runs,
      chains: s.chains,
      counters: s.counters,
      streak: s.streak,
      queue: s.queue,
      catalogue: s.catalogue,
      targets: s.targets.targets,
      configured: s.targets.configured,
      metrics: s.metrics,
      notifier: s.notifier,
      log: s.log,
      timeoutMs: 2000,
      shutdown: new AbortController().signal,
      now: () => new Date(),
    });
    await assert.rejects(executor.execute(id, { number: 1, last: false }), /connection terminated/);
    assert.equal(await redis.get(executionsKey(iso.prefix, 'count', id)), '1');
    // The executed marker is read before the lease: the next attempt records the outcome at once,
    // without waiting for the first claim's lease to run out, and without executing again.
    const outcome = await executor.execute(id, { number: 2, last: true });
    assert.equal(outcome.kind, 'done');
    assert.equal(await redis.get(executionsKey(iso.prefix, 'count', id)), '1', 'executed once');
    const run = (await request(api.url).get(`/api/runs/${id}`).set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200)).body;
    assert.equal(run.status, 'succeeded');
    assert.deepEqual(run.result, { execution: 1 });
  });
});
