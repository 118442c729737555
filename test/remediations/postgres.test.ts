import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Value } from '@sinclair/typebox/value';
import archiveOldData from '../../remediations/postgres/archive-old-data.js';
import killIdleConnections from '../../remediations/postgres/kill-idle-connections.js';
import { RemediationError, type Targets } from '../../remediations/types.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/store/database.js';
import { buildTargets, type BuiltTargets } from '../../src/targets.js';
import { executionContext } from '../support/context.js';

const suffix = randomBytes(4).toString('hex');
const dbA = `rem_test_${suffix}_a`;
const dbB = `rem_test_${suffix}_b`;
/** The service's own database in these tests: openDatabase creates it. */
const dbOwn = `rem_test_${suffix}_own`;
/** A name PostgreSQL accepts only quoted. */
const dbProd = `conduit-prod-${suffix}`;
const connection = (database: string) => ({ host: '127.0.0.1', port: 5432, user: 'postgres', database });
const admin = new pg.Client(connection('postgres'));
const DAY = 86_400_000;

before(async () => {
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbA}`);
  await admin.query(`CREATE DATABASE ${dbB}`);
});

after(async () => {
  for (const db of [dbA, dbB, dbOwn, dbProd]) await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(db)} WITH (FORCE)`);
  await admin.end();
});

/** A session that ran one query and now sits idle, recording how it ends. */
async function idleSession(database: string, applicationName?: string) {
  const client = new pg.Client({
    ...connection(database),
    ...(applicationName === undefined ? {} : { application_name: applicationName }),
  });
  const errors: Error[] = [];
  client.on('error', (err) => errors.push(err));
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { client, pid: rows[0]!.pid, errors, ended };
}

async function livePids(): Promise<Set<number>> {
  const { rows } = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname IN ($1, $2)', [dbA, dbB]);
  return new Set(rows.map((r) => r.pid));
}

function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([promise, sleep(ms).then(() => Promise.reject(new Error(`timed out waiting for ${what}`)))]);
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof RemediationError && err.code === code);
}

describe('postgres.kill-idle-connections', () => {
  test('terminates exactly the old idle sessions of the named database', { timeout: 20_000 }, async () => {
    const appName = `rem-kill-${suffix}`;
    const pool = new pg.Pool({ ...connection(dbA), application_name: appName, max: 2 });
    const poolErrors: Error[] = [];
    pool.on('error', (err) => poolErrors.push(err));
    const sessions: Array<Awaited<ReturnType<typeof idleSession>>> = [];
    try {
      // Two pooled connections, so one sits idle in the pool while the other runs the remediation.
      const pooled = await Promise.all([pool.connect(), pool.connect()]);
      const poolPids = await Promise.all(
        pooled.map(async (c) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid),
      );
      pooled.forEach((c) => c.release());
      const idleA = [await idleSession(dbA), await idleSession(dbA)];
      const idleB = [await idleSession(dbB)];
      // Busy for longer than idleFor by the time the remediation runs: only its state sets it apart.
      const active = await idleSession(dbA);
      sessions.push(...idleA, ...idleB, active);
      const sleeping = active.client.query('SELECT pg_sleep(4)');
      while ((await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [active.pid])).rowCount === 0)
        await sleep(20);
      await sleep(1500);

      const ctx = executionContext({ targetDatabase: pool });
      const tooYoung = await killIdleConnections.execute({ database: dbA, idleFor: '1h' }, ctx);
      assert.deepEqual(tooYoung, {
        terminated: 0,
        pids: [],
        summary: `Terminated no sessions of database "${dbA}": none had been idle for more than 1h`,
      });

      const result = await killIdleConnections.execute({ database: dbA, idleFor: '1s' }, ctx);
      assert.equal(result.terminated, 2);
      assert.equal(result.summary, `Terminated 2 sessions of database "${dbA}" idle for more than 1s`);
      assert.deepEqual(new Set(result.pids as number[]), new Set(idleA.map((s) => s.pid)));

      await within(5000, Promise.all(idleA.map((s) => s.ended)), 'terminated sessions to end');
      for (const s of idleA) await assert.rejects(s.client.query('SELECT 1'));
      const live = await livePids();
      for (const s of idleA) assert.ok(!live.has(s.pid), `idle session ${s.pid} on A still alive`);
      for (const pid of [...idleB.map((s) => s.pid), active.pid, ...poolPids]) assert.ok(live.has(pid), `session ${pid} was terminated`);

      assert.deepEqual((await sleeping).rows, [{ pg_sleep: '' }]);
      assert.deepEqual((await idleB[0]!.client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
      const { rows } = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [appName]);
      assert.deepEqual(new Set(rows.map((r) => r.pid)), new Set(poolPids));
      assert.deepEqual(poolErrors, []);
    } finally {
      await Promise.all(sessions.map((s) => s.client.end().catch(() => undefined)));
      await pool.end();
    }
  });

  test('max terminates the oldest idle sessions first', { timeout: 20_000 }, async () => {
    const pool = new pg.Pool({ ...connection(dbA), max: 1 });
    const oldest = await idleSession(dbA);
    await sleep(200);
    const newer = await idleSession(dbA);
    try {
      await sleep(1200);
      const result = await killIdleConnections.execute(
        { database: dbA, idleFor: '1s', max: 1 },
        executionContext({ targetDatabase: pool }),
      );
      assert.deepEqual(result, {
        terminated: 1,
        pids: [oldest.pid],
        summary: `Terminated 1 session of database "${dbA}" idle for more than 1s, stopping at max 1`,
      });
      await within(5000, oldest.ended, 'the oldest session to end');
      assert.deepEqual((await newer.client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    } finally {
      await Promise.all([oldest, newer].map((s) => s.client.end().catch(() => undefined)));
      await pool.end();
    }
  });

  test('bad params and a missing target fail before any query', async () => {
    const ctx = executionContext({});
    for (const database of ['', 'conduit\n; drop table x', 'conduit\u0000', 'x'.repeat(64), 'é'.repeat(32)])
      await rejectsWith(killIdleConnections.execute({ database, idleFor: '5m' }, ctx), 'invalid_params');
    await rejectsWith(killIdleConnections.execute({ database: 'conduit', idleFor: 'five minutes' }, ctx), 'invalid_params');
    await rejectsWith(killIdleConnections.execute({ database: 'conduit', idleFor: '0' }, ctx), 'refused');
    await rejectsWith(killIdleConnections.execute({ database: 'conduit' }, ctx), 'target_not_configured');
  });

  test('target and plan name the database and the change', () => {
    assert.equal(killIdleConnections.target({ database: 'conduit', idleFor: '5m' }), 'postgres/conduit');
    assert.equal(killIdleConnections.target({ database: 'conduit-prod' }), 'postgres/conduit-prod');
    // Not the key of archiving table request_logs, nor one with a Redis separator in it.
    assert.equal(killIdleConnections.target({ database: 'table/request_logs' }), 'postgres/table%2Frequest_logs');
    assert.equal(killIdleConnections.target({ database: 'a:b' }), 'postgres/a%3Ab');
    const plan = killIdleConnections.plan({ database: 'conduit', idleFor: '10m', max: 20 });
    for (const part of ['"conduit"', 'pg_terminate_backend', "'idle'", '10m', 'at most 20', 'its own database'])
      assert.ok(plan.includes(part), plan);
    assert.ok(killIdleConnections.plan({ database: 'conduit' }).includes('5m'));
    // Quoted as an identifier: a double quote in the name is doubled.
    assert.ok(killIdleConnections.plan({ database: 'conduit-prod' }).includes('database "conduit-prod" in state'));
    assert.ok(killIdleConnections.plan({ database: 'a"b' }).includes('database "a""b" in state'));
  });

  test('database names follow PostgreSQL: any name up to 63 bytes without control characters', () => {
    const accepts = (database: string) => Value.Check(killIdleConnections.params, { database });
    for (const name of ['conduit', 'conduit-prod', 'Conduit', 'billing.eu', 'a"b', 'conduit; drop table x', 'é'.repeat(31), 'x'.repeat(63)])
      assert.ok(accepts(name), name);
    for (const name of ['', 'x'.repeat(64), 'conduit\n', 'con\u0000duit', 'tab\there', 'c1\u0085'])
      assert.ok(!accepts(name), JSON.stringify(name));
  });
});

describe("postgres.* and the service's own sessions and database", () => {
  const ownUrl = `postgres://postgres@127.0.0.1:5432/${dbOwn}`;
  const prodUrl = `postgres://postgres@127.0.0.1:5432/${encodeURIComponent(dbProd)}`;
  let ownPool: pg.Pool;
  let built: BuiltTargets;

  before(async () => {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(dbProd)}`);
    // As the service opens them: its own store (created by openDatabase), and the target from the configuration.
    ownPool = await openDatabase(ownUrl, { max: 3 });
    const { config } = loadConfig({
      DATABASE_URL: ownUrl,
      TARGET_DATABASE_URL: prodUrl,
      WEBHOOK_TOKEN: 'webhook-token-0123456789abcdef',
      API_TOKENS: 'root:admin:admin-token-0123456789abcdef',
      TOKENS_FILE: join(tmpdir(), `remediator-no-tokens-${suffix}.env`),
    });
    built = await buildTargets(config);
  });
  after(async () => {
    await ownPool.end();
    await built.close();
  });

  /** `count` sessions of the service's own pool, checked out at once and returned: they sit idle in the pool. */
  async function ownIdleSessions(count: number): Promise<number[]> {
    const clients = await Promise.all(Array.from({ length: count }, () => ownPool.connect()));
    const pids = await Promise.all(
      clients.map(async (c) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid),
    );
    clients.forEach((c) => c.release());
    return pids;
  }

  async function sessions(database: string): Promise<Map<number, string>> {
    const { rows } = await admin.query<{ pid: number; application_name: string }>(
      'SELECT pid, application_name FROM pg_stat_activity WHERE datname = $1',
      [database],
    );
    return new Map(rows.map((r) => [r.pid, r.application_name]));
  }

  test('every pool the service opens names its sessions conduit-remediator, or PG_APPLICATION_NAME', async () => {
    const own = await ownIdleSessions(2);
    const target = await built.targets.targetDatabase!.query<{ pid: number; name: string }>(
      "SELECT pg_backend_pid() AS pid, current_setting('application_name') AS name",
    );
    const [onOwn, onProd] = [await sessions(dbOwn), await sessions(dbProd)];
    for (const pid of own) assert.equal(onOwn.get(pid), 'conduit-remediator', `own pool session ${pid}`);
    assert.equal(onProd.get(target.rows[0]!.pid), 'conduit-remediator', 'target pool session');
    assert.deepEqual(built.targets.settings.ownDatabase, { name: dbOwn, host: '127.0.0.1', port: 5432 });
    assert.equal(built.targets.settings.applicationName, 'conduit-remediator');

    const { config } = loadConfig({
      DATABASE_URL: ownUrl,
      TARGET_DATABASE_URL: prodUrl,
      PG_APPLICATION_NAME: 'remediator-blue',
      WEBHOOK_TOKEN: 'webhook-token-0123456789abcdef',
      API_TOKENS: 'root:admin:admin-token-0123456789abcdef',
      TOKENS_FILE: join(tmpdir(), `remediator-no-tokens-${suffix}.env`),
    });
    const blue = await buildTargets(config);
    const bluePool = await openDatabase(ownUrl, { max: 1, applicationName: config.applicationName });
    try {
      const ownName = await bluePool.query<{ name: string }>("SELECT current_setting('application_name') AS name");
      const targetName = await blue.targets.targetDatabase!.query<{ name: string }>("SELECT current_setting('application_name') AS name");
      assert.deepEqual([ownName.rows[0]!.name, targetName.rows[0]!.name], ['remediator-blue', 'remediator-blue']);
      assert.equal(blue.targets.settings.applicationName, 'remediator-blue');
    } finally {
      await bluePool.end();
      await blue.close();
    }
  });

  test("kill-idle-connections refuses the service's own database: its idle sessions all survive", { timeout: 20_000 }, async () => {
    const own = await ownIdleSessions(3);
    // Someone else's session on the service's database: spared as well, the whole database is off limits.
    const visitor = await idleSession(dbOwn, 'psql');
    try {
      await sleep(1200);
      const before = await sessions(dbOwn);
      for (const pid of [...own, visitor.pid]) assert.ok(before.has(pid), `session ${pid} is there to begin with`);

      let refusal: unknown;
      await killIdleConnections
        .execute({ database: dbOwn, idleFor: '1s' }, executionContext(built.targets))
        .catch((err) => (refusal = err));
      assert.ok(refusal instanceof RemediationError, String(refusal));
      assert.equal(refusal.code, 'refused');
      assert.equal(refusal.retryable, false);
      assert.equal(
        refusal.message,
        `postgres.kill-idle-connections never acts on the service's own database "${dbOwn}" (DATABASE_URL, on 127.0.0.1:5432): ` +
          "it holds the remediator's runs and sessions",
      );
      // Refused before any I/O: without a target pool the refusal is the same.
      await rejectsWith(
        killIdleConnections.execute({ database: dbOwn, idleFor: '1s' }, executionContext({ settings: built.targets.settings })),
        'refused',
      );

      const after = await sessions(dbOwn);
      for (const pid of [...own, visitor.pid]) assert.ok(after.has(pid), `session ${pid} was terminated`);
      assert.deepEqual(visitor.errors, []);
      assert.deepEqual((await ownPool.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    } finally {
      await visitor.client.end().catch(() => undefined);
    }
  });

  test(
    "without the own database known, the service's sessions are still spared by their application_name",
    { timeout: 20_000 },
    async () => {
      const own = await ownIdleSessions(2);
      const visitor = await idleSession(dbOwn, 'psql');
      // A target pool under another name (an application_name in TARGET_DATABASE_URL): the service's name is spared anyway.
      const otherNamed = new pg.Pool({ ...connection('postgres'), application_name: 'ops-tool', max: 1 });
      otherNamed.on('error', () => undefined);
      try {
        await sleep(1200);
        const settings: Targets['settings'] = { ...built.targets.settings };
        delete settings.ownDatabase;
        const result = await killIdleConnections.execute(
          { database: dbOwn, idleFor: '1s' },
          executionContext({ targetDatabase: otherNamed, settings }),
        );
        assert.deepEqual(result.pids, [visitor.pid]);
        await within(5000, visitor.ended, 'the visitor session to end');
        const after = await sessions(dbOwn);
        for (const pid of own) assert.ok(after.has(pid), `own pool session ${pid} was terminated`);
      } finally {
        await visitor.client.end().catch(() => undefined);
        await otherNamed.end();
      }
    },
  );

  test("a database named like conduit-prod is accepted: its idle sessions end, the service's stay", { timeout: 20_000 }, async () => {
    const target = built.targets.targetDatabase!;
    // Two target pool sessions, so one sits idle while the other runs the statement.
    const pooled = await Promise.all([target.connect(), target.connect()]);
    const targetPids = await Promise.all(
      pooled.map(async (c) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid),
    );
    pooled.forEach((c) => c.release());
    const others = [await idleSession(dbProd, 'conduit-api'), await idleSession(dbProd, 'conduit-api'), await idleSession(dbProd)];
    // Another replica of the service, connected to the same database.
    const replica = await idleSession(dbProd, 'conduit-remediator');
    const own = await ownIdleSessions(1);
    try {
      await sleep(1200);
      const result = await killIdleConnections.execute({ database: dbProd, idleFor: '1s' }, executionContext(built.targets));
      assert.deepEqual(new Set(result.pids as number[]), new Set(others.map((s) => s.pid)));
      assert.equal(result.summary, `Terminated 3 sessions of database "${dbProd}" idle for more than 1s`);
      await within(5000, Promise.all(others.map((s) => s.ended)), 'the terminated sessions to end');

      const [onProd, onOwn] = [await sessions(dbProd), await sessions(dbOwn)];
      for (const s of others) assert.ok(!onProd.has(s.pid), `session ${s.pid} still alive`);
      for (const pid of [...targetPids, replica.pid]) assert.equal(onProd.get(pid), 'conduit-remediator', `session ${pid} was terminated`);
      for (const pid of own) assert.ok(onOwn.has(pid), `own pool session ${pid} was terminated`);
      assert.deepEqual((await replica.client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    } finally {
      await Promise.all([...others, replica].map((s) => s.client.end().catch(() => undefined)));
    }
  });
});

describe('postgres.archive-old-data', () => {
  const NOW = new Date('2025-06-01T12:00:00.000Z');
  const CUTOFF = new Date(NOW.getTime() - 90 * DAY);
  let pool: pg.Pool;

  before(() => {
    pool = new pg.Pool({ ...connection(dbA), application_name: `rem-archive-${suffix}`, max: 2 });
    pool.on('error', () => undefined);
  });
  after(() => pool.end());

  /** Ids 1..old are older than the cut-off, oldest first, one minute apart; the next `young` rows start exactly at it. */
  async function seed(old: number, young: number): Promise<void> {
    await pool.query('DROP TABLE IF EXISTS request_logs_archive, request_logs');
    await pool.query(
      'CREATE TABLE request_logs (id bigint PRIMARY KEY, "timestamp" timestamptz NOT NULL, model text NOT NULL DEFAULT \'gpt-4\')',
    );
    await pool.query(
      `INSERT INTO request_logs (id, "timestamp")
       SELECT i, CASE WHEN i <= $2 THEN $1::timestamptz - make_interval(mins => $2 - i + 1) ELSE $1::timestamptz + make_interval(mins => i - $2 - 1) END
       FROM generate_series(1, $3::int) AS i`,
      [CUTOFF.toISOString(), old, old + young],
    );
  }

  async function ids(table: string): Promise<number[]> {
    const { rows } = await pool.query<{ id: string }>(`SELECT id FROM ${table} ORDER BY id`);
    return rows.map((r) => Number(r.id));
  }

  /** Every original id is in exactly one of the two tables, and each old one that moved is in the archive. */
  async function assertNothingLostOrDuplicated(total: number, archived: number): Promise<void> {
    const [source, archive] = [await ids('request_logs'), await ids('request_logs_archive')];
    assert.equal(archive.length, archived);
    assert.equal(source.length + archive.length, total);
    const all = new Set([...source, ...archive]);
    assert.equal(all.size, total, 'an id is in both tables');
    for (let id = 1; id <= total; id += 1) assert.ok(all.has(id), `id ${id} was lost`);
    assert.deepEqual(
      archive,
      Array.from({ length: archived }, (_, i) => i + 1),
      'the oldest rows move first',
    );
  }

  test('moves exactly the rows older than the cut-off, in batches', { timeout: 60_000 }, async () => {
    await seed(12_000, 8_000);
    const ctx = executionContext({ targetDatabase: pool }, { now: () => NOW });
    const result = await archiveOldData.execute({ table: 'request_logs', olderThan: '90d', batchSize: 1000 }, ctx);
    assert.deepEqual(result, {
      table: 'request_logs',
      archiveTable: 'request_logs_archive',
      moved: 12_000,
      batches: 12,
      cutoff: CUTOFF.toISOString(),
      summary:
        `Moved 12000 rows of table "request_logs" older than 90d (timestamp before ${CUTOFF.toISOString()}) ` +
        'to "request_logs_archive" in 12 batches',
    });
    assert.deepEqual(
      await ids('request_logs'),
      Array.from({ length: 8000 }, (_, i) => i + 12_001),
    );
    await assertNothingLostOrDuplicated(20_000, 12_000);
    const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM request_logs_archive WHERE "timestamp" >= $1', [
      CUTOFF.toISOString(),
    ]);
    assert.equal(rows[0]!.n, '0');

    const again = await archiveOldData.execute({ table: 'request_logs', olderThan: '90d', batchSize: 1000 }, ctx);
    assert.equal(again.moved, 0);
    assert.equal(
      again.summary,
      `Moved no rows of table "request_logs": none was older than 90d (timestamp before ${CUTOFF.toISOString()})`,
    );
    await assertNothingLostOrDuplicated(20_000, 12_000);
  });

  test('an abort and a killed backend mid-batch lose and duplicate nothing', { timeout: 60_000 }, async () => {
    await seed(5000, 1000);
    const params = { table: 'request_logs', olderThan: '90d', batchSize: 1000 };

    const controller = new AbortController();
    const aborting = executionContext({ targetDatabase: pool }, { now: () => NOW, signal: controller.signal });
    const info = aborting.log.info.bind(aborting.log);
    aborting.log.info = (obj, msg) => {
      info(obj, msg);
      if ((obj as { batch?: number }).batch === 2) controller.abort('test');
    };
    await assert.rejects(archiveOldData.execute(params, aborting), (err: unknown) => {
      return err instanceof RemediationError && err.code === 'aborted' && err.detail?.moved === 2000;
    });
    await assertNothingLostOrDuplicated(6000, 2000);

    // A pool whose connection is terminated after a batch's DELETE ... INSERT ran, before its COMMIT.
    const crashing = new pg.Pool({ ...connection(dbA), max: 1 });
    crashing.on('error', () => undefined);
    const crash = { armed: true, rowsBeforeKill: -1 };
    crashing.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => Promise<pg.QueryResult>;
      const pid = (client as unknown as { processID: number }).processID;
      (client as unknown as { query: unknown }).query = async (...args: unknown[]) => {
        const result = await query(...args);
        if (crash.armed && typeof args[0] === 'string' && args[0].includes('WITH moved')) {
          crash.armed = false;
          crash.rowsBeforeKill = result.rowCount ?? 0;
          await admin.query('SELECT pg_terminate_backend($1, 5000)', [pid]);
        }
        return result;
      };
    });
    try {
      const ctx = executionContext({ targetDatabase: crashing }, { now: () => NOW });
      await rejectsWith(archiveOldData.execute(params, ctx), 'target_error');
    } finally {
      await crashing.end();
    }
    assert.equal(crash.rowsBeforeKill, 1000, 'the backend died after the batch had moved its rows');
    await assertNothingLostOrDuplicated(6000, 2000);

    const result = await archiveOldData.execute(params, executionContext({ targetDatabase: pool }, { now: () => NOW }));
    assert.equal(result.moved, 3000);
    await assertNothingLostOrDuplicated(6000, 5000);
  });

  test('refuses a table off the allowlist, a bad identifier or duration before any query', async () => {
    // No pool at all: reaching I/O would fail with target_not_configured instead.
    const ctx = executionContext({});
    await rejectsWith(archiveOldData.execute({ table: 'users', olderThan: '90d' }, ctx), 'refused');
    await rejectsWith(archiveOldData.execute({ table: 'request_logs; drop table x', olderThan: '90d' }, ctx), 'invalid_params');
    await rejectsWith(archiveOldData.execute({ table: 'request_logs', timestampColumn: 'ts"; --' }, ctx), 'invalid_params');
    await rejectsWith(archiveOldData.execute({ table: 'request_logs', olderThan: '90 days' }, ctx), 'invalid_params');
    await rejectsWith(archiveOldData.execute({ table: 'request_logs', olderThan: '1m' }, ctx), 'refused');
    await rejectsWith(archiveOldData.execute({ table: 'request_logs', batchSize: 0 }, ctx), 'invalid_params');
    await rejectsWith(archiveOldData.execute({ table: 'request_logs' }, ctx), 'target_not_configured');
  });

  test("never archives in the service's own database, whatever ARCHIVE_TABLES says", async () => {
    await seed(10, 5);
    const settings = { archiveTables: ['request_logs'], queuePrefix: 'remediator', ownDatabase: { name: dbA, host: 'db', port: 5432 } };
    const ctx = executionContext({ targetDatabase: pool, settings }, { now: () => NOW });
    const err = await archiveOldData.execute({ table: 'request_logs' }, ctx).then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof RemediationError && err.code === 'refused', String(err));
    assert.match(
      err.message,
      new RegExp(`postgres.archive-old-data never acts on the service's own database "${dbA}" \\(DATABASE_URL, on db:5432\\)`),
    );
    assert.equal((await ids('request_logs')).length, 15);
    const { rows } = await pool.query<{ found: boolean }>("SELECT to_regclass('request_logs_archive') IS NOT NULL AS found");
    assert.equal(rows[0]!.found, false, 'no archive table was created');

    // Another database of that server is archived as usual.
    const elsewhere = executionContext(
      { targetDatabase: pool, settings: { ...settings, ownDatabase: { name: dbB, host: 'db', port: 5432 } } },
      { now: () => NOW },
    );
    assert.equal((await archiveOldData.execute({ table: 'request_logs' }, elsewhere)).moved, 10);
  });

  test('a missing table or timestamp column is not_found', async () => {
    await pool.query('DROP TABLE IF EXISTS request_logs_archive, request_logs');
    const ctx = executionContext({ targetDatabase: pool }, { now: () => NOW });
    await rejectsWith(archiveOldData.execute({ table: 'request_logs' }, ctx), 'not_found');
    await pool.query('CREATE TABLE request_logs (id bigint PRIMARY KEY, created_at timestamptz)');
    await rejectsWith(archiveOldData.execute({ table: 'request_logs' }, ctx), 'not_found');
  });

  test('target and plan name the table and the change', () => {
    assert.equal(archiveOldData.target({ table: 'request_logs' }), 'postgres/table/request_logs');
    const plan = archiveOldData.plan({ table: 'request_logs', olderThan: '30d', timestampColumn: 'created_at', batchSize: 200 });
    for (const part of ['"request_logs"', '"created_at"', '30d', '"request_logs_archive"', 'batches of 200', 'one transaction'])
      assert.ok(plan.includes(part), plan);
    const defaults = archiveOldData.plan({ table: 'request_logs' });
    for (const part of ['"timestamp"', '90d', 'batches of 5000']) assert.ok(defaults.includes(part), defaults);
  });
});
