import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import request from 'supertest';
import { startConduitAdmin, type ConduitAdmin } from '../support/conduit-admin.js';
import { alertMessage, eventually, isolation, REDIS_URL, startService, TOKENS, WEBHOOK_TOKEN, writeMatrix } from '../support/harness.js';
import { startRedisServer } from '../support/redis-server.js';
import { executionsKey } from '../support/test-remediations.js';
import { spawnWorker } from '../support/worker-child.js';

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: provider-down
    matchers: ['alertname="ConduitProviderDown"']
    actions:
      - remediation: conduit.disable-provider
        params: { provider: '{{ labels.provider }}' }
  - name: slow
    matchers: ['alertname="Slow"']
    actions:
      - remediation: test.slow
        params: { key: '{{ labels.key }}', firstMs: 60000 }
`;

const providerDown = (provider: string, startsAt?: string) =>
  alertMessage([{ labels: { alertname: 'ConduitProviderDown', provider }, ...(startsAt ? { startsAt } : {}) }]);

describe('faults: retries, Redis outages, dead workers, concurrent starts', () => {
  const iso = isolation('faults');
  let conduit: ConduitAdmin;
  let db: pg.Pool;

  before(async () => {
    conduit = await startConduitAdmin({
      providers: [
        { id: 1, providerName: 'openai', baseUrl: 'https://api.openai.com/v1', isEnabled: true },
        { id: 2, providerName: 'anthropic', baseUrl: 'https://api.anthropic.com', isEnabled: true },
        { id: 3, providerName: 'mistral', baseUrl: 'https://api.mistral.ai', isEnabled: true },
      ],
    });
    db = new pg.Pool({ connectionString: iso.databaseUrl, max: 2 });
  });
  after(async () => {
    await db.end();
    await conduit.close();
    await iso.drop();
  });

  const conduitEnv = () => ({ CONDUIT_ADMIN_URL: conduit.url, CONDUIT_ADMIN_KEY: conduit.apiKey });
  const getRun = async (url: string, id: string) =>
    (await request(url).get(`/api/runs/${id}`).set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200)).body;

  it('retries a failing target with backoff and succeeds on the third attempt, all in the timeline', async () => {
    const svc = await startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: conduitEnv() });
    try {
      conduit.failNext(2, 503);
      const res = await request(svc.url)
        .post('/webhooks/alertmanager')
        .set('Authorization', `Bearer ${WEBHOOK_TOKEN}`)
        .send(providerDown('openai'))
        .expect(200);
      const id = res.body.runs[0].id;
      const run = await eventually(
        async () => {
          const r = await getRun(svc.url, id);
          return r.status === 'succeeded' ? r : undefined;
        },
        15_000,
        'the run to succeed',
      );
      assert.equal(run.attempts, 3);
      assert.deepEqual(
        run.events.map((e: { type: string }) => e.type),
        ['created', 'queued', 'started', 'attempt_failed', 'started', 'attempt_failed', 'started', 'succeeded'],
      );
      const failures = run.events.filter((e: { type: string }) => e.type === 'attempt_failed');
      assert.ok(failures.every((e: { detail: { code: string } }) => e.detail.code === 'target_error'));
      assert.equal(conduit.providers.find((p) => p.providerName === 'openai')!.isEnabled, false);
    } finally {
      await svc.close();
    }
  });

  it('answers 503 while Redis is down, stores nothing that cannot run, and executes once after Redis is back', async () => {
    const redis = await startRedisServer();
    const svc = await startService({
      databaseUrl: iso.databaseUrl,
      prefix: iso.prefix,
      matrix: MATRIX,
      env: { ...conduitEnv(), REDIS_URL: redis.url },
    });
    try {
      const msg = providerDown('anthropic');
      await redis.stop();
      const down = await request(svc.url).post('/webhooks/alertmanager').set('Authorization', `Bearer ${WEBHOOK_TOKEN}`).send(msg);
      assert.equal(down.status, 503);
      assert.equal(down.body.code, 'UNAVAILABLE');
      assert.match(down.body.message, /Redis/);
      const ready = await request(svc.url).get('/health/ready').expect(503);
      assert.equal(ready.body.checks.redis, 'unreachable');
      const stored = await db.query(`SELECT status FROM runs WHERE alert->'labels'->>'provider' = 'anthropic'`);
      assert.ok(
        stored.rows.every((r) => r.status === 'queued'),
        'anything stored is still runnable',
      );

      await redis.start();
      await eventually(async () => (await request(svc.url).get('/health/ready')).status === 200, 10_000, 'ready again');
      const retry = await request(svc.url)
        .post('/webhooks/alertmanager')
        .set('Authorization', `Bearer ${WEBHOOK_TOKEN}`)
        .send(msg)
        .expect(200);
      const id = retry.body.runs[0].id;
      await eventually(async () => (await getRun(svc.url, id)).status === 'succeeded', 15_000, 'the run to succeed');
      const { rows } = await db.query(`SELECT count(*) AS n FROM runs WHERE alert->'labels'->>'provider' = 'anthropic'`);
      assert.equal(Number(rows[0].n), 1);
      assert.equal(conduit.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/2')).length, 1);
    } finally {
      await svc.close();
      await redis.stop();
    }
  });

  it('executes a run whose job Redis lost after the commit (restart without persistence)', async () => {
    const redis = await startRedisServer();
    const env = { ...conduitEnv(), REDIS_URL: redis.url };
    const api = await startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { ...env, ROLE: 'api' } });
    try {
      const res = await request(api.url)
        .post('/webhooks/alertmanager')
        .set('Authorization', `Bearer ${WEBHOOK_TOKEN}`)
        .send(providerDown('mistral'))
        .expect(200);
      const id = res.body.runs[0].id;
      await redis.stop();
      await redis.start();
      const worker = await startService({
        databaseUrl: iso.databaseUrl,
        prefix: iso.prefix,
        matrix: MATRIX,
        env: { ...env, ROLE: 'worker' },
      });
      try {
        await eventually(
          async () => (await db.query('SELECT status FROM runs WHERE id = $1', [id])).rows[0]?.status === 'succeeded',
          15_000,
          'the sweeper to re-enqueue and the worker to run it',
        );
        assert.equal(conduit.providers.find((p) => p.providerName === 'mistral')!.isEnabled, false);
      } finally {
        await worker.close();
      }
    } finally {
      await api.close();
      await redis.stop();
    }
  });

  it('picks up a run whose worker was killed mid-run, and never executes a succeeded run again', async () => {
    // The lease of a running run is the remediation timeout plus a margin: short here, so the takeover is quick.
    const env = { TARGET_REDIS_URL: REDIS_URL, STALLED_INTERVAL: '1s', REMEDIATION_TIMEOUT: '3s' };
    const api = await startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { ...env, ROLE: 'api' } });
    const matrixPath = writeMatrix(MATRIX);
    const child = await spawnWorker({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrixPath, env });
    const redis = new Redis(REDIS_URL);
    try {
      const res = await request(api.url)
        .post('/webhooks/alertmanager')
        .set('Authorization', `Bearer ${WEBHOOK_TOKEN}`)
        .send(alertMessage([{ labels: { alertname: 'Slow', key: 'k1' } }]))
        .expect(200);
      const id = res.body.runs[0].id;
      const key = executionsKey(iso.prefix, 'slow', id);
      await eventually(async () => (await redis.get(key)) === '1', 10_000, 'the first execution to start');
      assert.equal((await getRun(api.url, id)).status, 'running');
      child.kill('SIGKILL');
      await once(child, 'exit');

      const worker = await startService({
        databaseUrl: iso.databaseUrl,
        prefix: iso.prefix,
        matrix: MATRIX,
        env: { ...env, ROLE: 'worker' },
      });
      try {
        const run = await eventually(
          async () => {
            const r = await getRun(api.url, id);
            return r.status === 'succeeded' ? r : undefined;
          },
          20_000,
          'the stalled run to be picked up',
        );
        assert.equal(await redis.get(key), '2');
        assert.equal(run.events.filter((e: { type: string }) => e.type === 'started').length, 2);

        await worker.services.queue.requeue(id);
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal(await redis.get(key), '2', 'a succeeded run is not executed again');
        assert.equal((await getRun(api.url, id)).status, 'succeeded');
      } finally {
        await worker.close();
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      redis.disconnect();
      await api.close();
    }
  });
});
