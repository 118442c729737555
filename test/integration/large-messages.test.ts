/**
 * A large alert group is handled, not retried forever: one message of MAX_ALERTS_PER_MESSAGE (5,000)
 * alerts, and 20,000 alerts over four concurrent messages, each become exactly one run per alert; one
 * alert over the default cap is refused whole with a 413 (Alertmanager does not retry a 4xx).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { webhook } from '../support/api.js';
import { alertMessage, isolation, REDIS_URL, startService } from '../support/harness.js';

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: big-group
    matchers: ['suite="large"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.instance }}' }
        dryRun: true
`;

const group = (batch: string, n: number) =>
  alertMessage(
    Array.from({ length: n }, (_, i) => ({
      labels: { alertname: 'ConduitProviderDown', suite: 'large', batch, instance: `${batch}-${i}` },
    })),
  );

describe('large alert groups', (s) => {
  const iso = isolation('large');
  const svc = startService(s, { databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { INTAKE_TIMEOUT: '60s' } });
  // After the service's own hook, which stops it: a worker still finishing a job would write keys after the drop.
  after(() => iso.drop());

  async function runsOf(batch: string): Promise<number> {
    const db = new pg.Client({ connectionString: iso.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(
        "SELECT count(DISTINCT alert->'labels'->>'instance')::int AS n, count(*)::int AS total FROM runs WHERE alert->'labels'->>'batch' = $1",
        [batch],
      );
      assert.equal(rows[0].n, rows[0].total, 'one run per alert');
      return rows[0].n as number;
    } finally {
      await db.end();
    }
  }

  async function totalRuns(): Promise<number> {
    const db = new pg.Client({ connectionString: iso.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query('SELECT count(*)::int AS n FROM runs');
      return rows[0].n as number;
    } finally {
      await db.end();
    }
  }

  it('a message over 500 alerts goes in slices: answered in alert order, an alert repeated in a later slice is its first run', async () => {
    const message = group('sliced', 2500);
    message.alerts.push(message.alerts[3]!);
    const res = await webhook(svc).send(message).expect(200);
    assert.equal(res.body.received, 2501);
    assert.equal(res.body.runs.length, 2501);
    // The same run (which the worker may have executed meanwhile), as a duplicate.
    assert.deepEqual([res.body.runs[2500].id, res.body.runs[2500].duplicate], [res.body.runs[3].id, true]);
    assert.equal(res.body.runs[3].duplicate, false);
    assert.equal(res.body.runs.filter((r: { duplicate: boolean }) => !r.duplicate).length, 2500);
    const db = new pg.Client({ connectionString: iso.databaseUrl });
    await db.connect();
    try {
      const ids = [0, 499, 500, 999, 1000, 2499].map((i) => res.body.runs[i].id);
      const { rows } = await db.query("SELECT id, alert->'labels'->>'instance' AS instance FROM runs WHERE id = ANY($1)", [ids]);
      const instance = new Map(rows.map((r) => [r.id, r.instance]));
      assert.deepEqual(
        ids.map((id) => instance.get(id)),
        ['sliced-0', 'sliced-499', 'sliced-500', 'sliced-999', 'sliced-1000', 'sliced-2499'],
      );
    } finally {
      await db.end();
    }
    assert.equal(await runsOf('sliced'), 2500);
  });

  it('5,000 alerts in one message: 200, one run each', async () => {
    const started = performance.now();
    const res = await webhook(svc).send(group('one', 5000));
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
    assert.equal(res.body.runs.length, 5000);
    assert.equal(await runsOf('one'), 5000);
    console.log(`# 5,000 alerts stored in ${Math.round(performance.now() - started)} ms`);
  });

  it('5,001 alerts with MAX_ALERTS_PER_MESSAGE unset: 413 naming the cap, nothing stored', async () => {
    assert.equal(svc.services.config.maxAlertsPerMessage, 5000, 'the default cap is 5,000');
    const before = await totalRuns();
    const res = await webhook(svc).send(group('over', 5001));
    assert.equal(res.status, 413, JSON.stringify(res.body).slice(0, 500));
    assert.equal(res.body.code, 'PAYLOAD_TOO_LARGE');
    assert.match(res.body.message, /the message has 5001 alerts; at most 5000 \(MAX_ALERTS_PER_MESSAGE\)/);
    assert.equal(await runsOf('over'), 0, 'no run of the refused message');
    assert.equal(await totalRuns(), before, 'nothing stored');
  });

  it('20,000 alerts over four concurrent messages, then the same again (duplicates): 20,000 runs', async () => {
    const messages = ['c0', 'c1', 'c2', 'c3'].map((b) => group(b, 5000));
    const answers = await Promise.all(messages.map((m) => webhook(svc).send(m)));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200],
    );
    const again = await Promise.all(messages.map((m) => webhook(svc).send(m)));
    assert.ok(again.every((a) => a.status === 200 && a.body.runs.every((r: { duplicate: boolean }) => r.duplicate)));
    let total = 0;
    for (const b of ['c0', 'c1', 'c2', 'c3']) total += await runsOf(b);
    assert.equal(total, 20_000);
  });
});

/** Three executing (not dry-run) actions per alert: a 5,000-alert message is 15,000 runs, 1,500 per slice of 500 alerts. */
const TRIPLE_MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: triple
    matchers: ['suite="triple"']
    actions:
      - remediation: test.count
        params: { key: 'a-{{ labels.instance }}' }
      - remediation: test.count
        params: { key: 'b-{{ labels.instance }}' }
      - remediation: test.count
        params: { key: 'c-{{ labels.instance }}' }
`;

const tripleGroup = (n: number) =>
  alertMessage(
    Array.from({ length: n }, (_, i) => ({
      labels: { alertname: 'ConduitProviderDown', suite: 'triple', instance: `t-${i}` },
    })),
  );

describe('15,000 queued runs from one message, delivered again with jobs lost from Redis', (s) => {
  const iso = isolation('large_batch');
  // API only: no worker takes the jobs, and the sweeper (which re-adds lost jobs too) does not run
  // within the test, so only the re-delivery can bring the deleted jobs back.
  const svc = startService(s, {
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: TRIPLE_MATRIX,
    env: { ROLE: 'api', TARGET_REDIS_URL: REDIS_URL, SWEEP_INTERVAL: '1h', REQUEUE_AFTER: '1h', INTAKE_TIMEOUT: '60s' },
  });
  after(() => iso.drop());

  it('5,000 alerts x 3 actions: 200 twice, 15,000 runs, the deleted jobs re-added by the re-delivery', { timeout: 60_000 }, async () => {
    const message = tripleGroup(5000);
    const first = await webhook(svc).send(message);
    assert.equal(first.status, 200, JSON.stringify(first.body).slice(0, 500));
    const runs = first.body.runs as Array<{ id: string; status: string; duplicate: boolean }>;
    assert.equal(runs.length, 15_000);
    assert.ok(
      runs.every((r) => r.status === 'queued' && !r.duplicate),
      'every run is new and queued',
    );

    const db = new pg.Client({ connectionString: iso.databaseUrl });
    await db.connect();
    const redis = new Redis(REDIS_URL);
    try {
      const stored = await db.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'queued')::int AS queued FROM runs");
      assert.deepEqual(stored.rows[0], { n: 15_000, queued: 15_000 });

      const jobKey = (id: string) => `${iso.prefix}:runs:${id}`;
      const existing = async (ids: string[]) => {
        let n = 0;
        for (let i = 0; i < ids.length; i += 1000) {
          const slice = ids.slice(i, i + 1000);
          n += await redis.exists(...slice.map(jobKey));
        }
        return n;
      };
      const ids = runs.map((r) => r.id);
      assert.equal(await existing(ids), 15_000, 'every run has its job in Redis');

      // Lose the jobs of every fifth run (as a Redis restart without persistence would): 3,000 of them.
      const lost = ids.filter((_, i) => i % 5 === 0);
      for (let i = 0; i < lost.length; i += 1000) await redis.del(...lost.slice(i, i + 1000).map(jobKey));
      assert.equal(await existing(lost), 0, 'the jobs are gone');

      const again = await webhook(svc).send(message);
      assert.equal(again.status, 200, JSON.stringify(again.body).slice(0, 500));
      const rerun = again.body.runs as Array<{ id: string; duplicate: boolean }>;
      assert.equal(rerun.length, 15_000);
      assert.ok(
        rerun.every((r) => r.duplicate),
        'every run of the re-delivery is a duplicate',
      );
      assert.deepEqual(new Set(rerun.map((r) => r.id)), new Set(ids), 'the re-delivery names the same runs');

      const afterwards = await db.query('SELECT count(*)::int AS n FROM runs');
      assert.equal(afterwards.rows[0].n, 15_000, 'no run added by the re-delivery');
      assert.equal(await existing(lost), lost.length, 'every lost job is back in Redis');
      assert.equal(await existing(ids), 15_000);
      // The re-added jobs are the runs' own: BullMQ's job hash names the run it executes.
      for (const id of lost.slice(0, 50)) {
        const data = await redis.hget(jobKey(id), 'data');
        assert.deepEqual(JSON.parse(data ?? 'null'), { runId: id });
      }
    } finally {
      redis.disconnect();
      await db.end();
    }
  });
});
