import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import request from 'supertest';
import { createSweeper } from '../../src/queue/sweeper.js';
import { deliver, settled, type DeliveredRun } from '../support/api.js';
import { memoryLog } from '../support/context.js';
import {
  alertMessage,
  eventually,
  fingerprintOf,
  isolation,
  REDIS_URL,
  startService,
  TOKENS,
  type TestService,
} from '../support/harness.js';

/**
 * RUN_RETENTION: finished runs (with their events) and resolved episodes whose last update is older
 * than the retention are deleted by the sweeper; nothing that may still act, or that a run still
 * acting refers to, is. Rows are made old by back-dating them in PostgreSQL.
 */
const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: done
    matchers: ['alertname="Done"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
  - name: pending
    matchers: ['alertname="Pending"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
  - name: waits
    matchers: ['alertname="Waits"']
    actions:
      - id: first
        remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
      - remediation: test.count
        after: first
        params: { key: '{{ labels.key }}-then' }
  - name: gated
    matchers: ['alertname="Gated"']
    actions:
      - id: first
        remediation: test.count
        params: { key: '{{ labels.key }}' }
      - remediation: test.count
        after: first
        params: { key: '{{ labels.key }}-then' }
        approval: required
`;

const DAY = 24 * 3600_000;

async function connect(url: string): Promise<pg.Client> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  return db;
}

/** Alerts of `name` with the given keys, one delivery each; their runs. */
async function fire(svc: TestService, name: string, ...keys: string[]): Promise<DeliveredRun[]> {
  const runs: DeliveredRun[] = [];
  for (const key of keys) runs.push(...(await deliver(svc, alertMessage([{ labels: { alertname: name, key } }]))));
  return runs;
}

async function resolve(svc: TestService, name: string, key: string): Promise<void> {
  await deliver(svc, alertMessage([{ labels: { alertname: name, key }, status: 'resolved' }]));
}

const backdate = (db: pg.Client, ids: string[], days = 100) =>
  db.query(`UPDATE runs SET updated_at = now() - $2::int * interval '1 day' WHERE id = ANY($1::uuid[])`, [ids, days]);
const existing = async (db: pg.Client, ids: string[]) =>
  (await db.query<{ id: string }>('SELECT id FROM runs WHERE id = ANY($1::uuid[])', [ids])).rows.map((r) => r.id).sort();
const eventsOf = async (db: pg.Client, ids: string[]) =>
  Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM run_events WHERE run_id = ANY($1::uuid[])', [ids])).rows[0]!.n);
const episodes = async (db: pg.Client) =>
  (await db.query<{ fingerprint: string }>('SELECT fingerprint FROM resolved_episodes ORDER BY fingerprint')).rows.map(
    (r) => r.fingerprint,
  );
const fp = (name: string, key: string) => fingerprintOf({ alertname: name, key });

describe('RUN_RETENTION=30d: the sweeper deletes old finished runs and resolved episodes, and nothing that may still act', (s) => {
  const iso = isolation('retention');
  const svc = startService(s, {
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX,
    env: { TARGET_REDIS_URL: REDIS_URL, RUN_RETENTION: '30d' },
  });
  let db: pg.Client;
  before(async () => {
    db = await connect(iso.databaseUrl);
  });
  after(async () => {
    await db.end();
    await iso.drop();
  });

  it('deletes what is past the retention, with its events; keeps the rest', async () => {
    const done = await fire(svc, 'Done', 'd1', 'd2', 'd3');
    const recent = await fire(svc, 'Done', 'recent');
    const verifying = await fire(svc, 'Done', 'verifying');
    const reverted = await fire(svc, 'Done', 'reverted');
    const scheduled = await fire(svc, 'Done', 'scheduled');
    const pending = await fire(svc, 'Pending', 'p1');
    const waits = await fire(svc, 'Waits', 'w1'); // pending_approval, then its dependent waiting
    const gated = await fire(svc, 'Gated', 'g1'); // succeeded, then its dependent pending_approval
    for (const r of [...done, ...recent, ...verifying, ...reverted, ...scheduled, gated[0]!]) await settled(svc, r.id, 'succeeded');
    await settled(svc, gated[1]!.id, 'pending_approval');
    assert.deepEqual(
      waits.map((r) => r.status),
      ['pending_approval', 'waiting'],
    );
    // d1's episode resolved long ago; Done/recent's just now; Pending/p1's long ago, but its run still waits for approval.
    await resolve(svc, 'Done', 'd1');
    await resolve(svc, 'Done', 'recent');
    await db.query(
      `INSERT INTO resolved_episodes (fingerprint, starts_at, resolved_at)
                    SELECT fingerprint, starts_at, now() - interval '100 days' FROM runs WHERE id = $1`,
      [pending[0]!.id],
    );
    await db.query(`UPDATE resolved_episodes SET resolved_at = now() - interval '100 days' WHERE fingerprint = $1`, [fp('Done', 'd1')]);
    // A pending verification, a scheduled revert (revertAfter), and a revert (not final) of a run: each keeps its run.
    await db.query(`UPDATE runs SET verification = 'pending' WHERE id = $1`, [verifying[0]!.id]);
    await db.query(`UPDATE runs SET revert_due = now() + interval '1 day' WHERE id = $1`, [scheduled[0]!.id]);
    await db.query('UPDATE runs SET revert_of = $1 WHERE id = $2', [reverted[0]!.id, pending[0]!.id]);
    const old = [...done, ...verifying, ...reverted, ...scheduled, ...pending, ...waits, ...gated].map((r) => r.id);
    const doneIds = done.map((r) => r.id);
    assert.ok((await eventsOf(db, doneIds)) >= 9, 'the finished runs have their timelines');
    await backdate(db, old);

    await eventually(async () => (await existing(db, doneIds)).length === 0, 10_000, 'the old finished runs deleted');
    assert.equal(await eventsOf(db, doneIds), 0, 'their events went with them');
    // A few more sweeps: what is kept stays.
    await new Promise((r) => setTimeout(r, 1000));
    const kept = [recent, verifying, reverted, scheduled, pending, waits, gated].flat().map((r) => r.id);
    assert.deepEqual(
      await existing(db, kept),
      [...kept].sort(),
      'recent, verifying, reverted, scheduled, pending, waiting and gated runs are kept',
    );
    assert.deepEqual(
      await episodes(db),
      [fp('Done', 'recent'), fp('Pending', 'p1')].sort(),
      'only the old resolved episode without a run that may act is deleted',
    );
    const gone = await request(svc.url).get(`/api/runs/${doneIds[0]}`).set('Authorization', `Bearer ${TOKENS.viewer}`);
    assert.equal(gone.status, 404);

    // Once what held them ends (and is old itself), they go too.
    await db.query(`UPDATE runs SET verification = 'verified' WHERE id = $1`, [verifying[0]!.id]);
    await request(svc.url).post(`/api/runs/${gated[1]!.id}/reject`).set('Authorization', `Bearer ${TOKENS.approver}`).send({}).expect(200);
    await backdate(db, [verifying[0]!.id, gated[1]!.id]);
    await eventually(
      async () => (await existing(db, [verifying[0]!.id, ...gated.map((r) => r.id)])).length === 0,
      10_000,
      'the verified run, and the gated predecessor with its rejected dependent, deleted',
    );
    assert.deepEqual(
      await existing(db, [reverted[0]!.id, ...pending.map((r) => r.id), ...waits.map((r) => r.id)]).then((l) => l.length),
      4,
    );
  });
});

describe('RUN_RETENTION=0 keeps everything; the store deletes in bounded batches; the sweeper logs what it deleted', (s) => {
  const iso = isolation('retention0');
  const svc = startService(s, {
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX,
    env: { TARGET_REDIS_URL: REDIS_URL, RUN_RETENTION: '0' },
  });
  let db: pg.Client;
  let runs: DeliveredRun[] = [];
  before(async () => {
    db = await connect(iso.databaseUrl);
  });
  after(async () => {
    await db.end();
    await iso.drop();
  });

  it('RUN_RETENTION=0: old finished runs and resolved episodes stay', async () => {
    assert.equal(svc.services.config.runRetentionMs, 0);
    runs = await fire(svc, 'Done', 'k1', 'k2', 'k3', 'k4', 'k5');
    for (const r of runs) await settled(svc, r.id, 'succeeded');
    await resolve(svc, 'Done', 'k1');
    await backdate(
      db,
      runs.map((r) => r.id),
    );
    await db.query(`UPDATE resolved_episodes SET resolved_at = now() - interval '100 days'`);
    await new Promise((r) => setTimeout(r, 1500)); // several sweeps
    assert.equal(
      (
        await existing(
          db,
          runs.map((r) => r.id),
        )
      ).length,
      5,
    );
    assert.deepEqual(await episodes(db), [fp('Done', 'k1')]);
    assert.deepEqual(await svc.services.runs.deleteExpired(0), { runs: 0, events: 0, episodes: 0, more: false });
  });

  it('deletes in batches, a bounded number per call, and counts runs, events and episodes', async () => {
    const ids = runs.map((r) => r.id);
    const first = await svc.services.runs.deleteExpired(30 * DAY, { batch: 2, batches: 2 });
    assert.deepEqual({ ...first, events: first.events > 0 }, { runs: 4, events: true, episodes: 1, more: true });
    assert.equal((await existing(db, ids)).length, 1);
    const second = await svc.services.runs.deleteExpired(30 * DAY, { batch: 2, batches: 2 });
    assert.equal(second.runs, 1);
    assert.equal(second.more, false);
    assert.deepEqual(await existing(db, ids), []);
    assert.equal(await eventsOf(db, ids), 0);
    assert.deepEqual(await episodes(db), []);
  });

  it('the sweeper logs one info line per sweep that deleted something, and none otherwise', async () => {
    const more = await fire(svc, 'Done', 'm1', 'm2');
    for (const r of more) await settled(svc, r.id, 'succeeded');
    await backdate(
      db,
      more.map((r) => r.id),
    );
    const log = memoryLog();
    const services = svc.services;
    const sweeper = createSweeper({ ...services, log, intervalMs: 60_000, requeueAfterMs: 60_000, retentionMs: 30 * DAY });
    await sweeper.sweep();
    const lines = log.lines.filter((l) => l.msg === 'deleted runs and resolved episodes past RUN_RETENTION');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 'info');
    assert.deepEqual((lines[0]!.obj as { runs: number; episodes: number }).runs, 2);
    await sweeper.sweep();
    assert.equal(
      log.lines.filter((l) => l.msg === 'deleted runs and resolved episodes past RUN_RETENTION').length,
      1,
      'nothing more to delete, nothing logged',
    );
  });
});
