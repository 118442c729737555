/**
 * The store's statements with parameters are prepared once per session under a name derived from
 * their text, so a worker's status changes are not parsed and planned at every run; a session whose
 * prepared statement a migration made stale is replaced, not left failing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createDb, openDatabase, statementName } from '../../src/store/database.js';
import { migrate } from '../../src/store/migrate.js';
import { createRunStore } from '../../src/store/runs.js';
import { isolation } from '../support/harness.js';
import { newRun } from '../support/runs.js';

describe('statements prepared by name', () => {
  const iso = isolation('prepared');
  let pool: pg.Pool;
  before(async () => {
    // One session, so the statements prepared are the ones pg_prepared_statements shows.
    pool = await openDatabase(iso.databaseUrl, { max: 1 });
    await migrate(pool);
  });
  after(async () => {
    await pool.end();
    await iso.drop();
  });

  it('names a text by its content: the same text the same name, another text another', () => {
    const a = statementName('SELECT $1::int');
    assert.equal(statementName('SELECT $1::int'), a);
    assert.notEqual(statementName('SELECT $1::text'), a);
    assert.match(a, /^q[0-9a-f]{24}$/);
  });

  it("prepares a worker's status changes and run reads once per session, not at each run", async () => {
    const store = createRunStore(createDb(pool));
    const runs = Array.from({ length: 5 }, (_, i) => newRun(`worker${i}`));
    await store.insert(runs);
    for (const run of runs) {
      assert.ok(await store.getForExecution(run.id));
      const running = await store.transition(
        run.id,
        ['queued'],
        'running',
        { type: 'started' },
        { incrementAttempts: true, leaseMs: 60_000 },
      );
      assert.equal(running?.status, 'running');
      const done = await store.transition(run.id, ['running'], 'succeeded', { type: 'succeeded' }, { result: { ok: true }, leaseMs: null });
      assert.equal(done?.status, 'succeeded');
    }
    const { rows } = await pool.query<{ statement: string; generic_plans: string; custom_plans: string }>(
      `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE name LIKE 'q%'`,
    );
    const of = (pattern: RegExp) => rows.filter((r) => pattern.test(r.statement));
    const started = of(/attempts = attempts \+ 1/);
    const finished = of(/SET status = \$3, updated_at = now\(\), result = /);
    const reads = of(/AS lease_left_ms/);
    for (const [what, found] of [
      ['start', started],
      ['finish', finished],
      ['read', reads],
    ] as const) {
      assert.equal(found.length, 1, `one prepared ${what} statement: ${rows.map((r) => r.statement.slice(0, 80)).join(' | ')}`);
      assert.equal(Number(found[0]!.generic_plans) + Number(found[0]!.custom_plans), 5, `${what} planned for its 5 executions once`);
    }
  });

  it('keeps listings unprepared, planned for their own filter values', async () => {
    const store = createRunStore(createDb(pool));
    const page = await store.list({ status: 'succeeded', limit: 10 });
    assert.ok(page.runs.length >= 5);
    const { rows } = await pool.query(`SELECT 1 FROM pg_prepared_statements WHERE statement LIKE '%ORDER BY seq DESC LIMIT%'`);
    assert.equal(rows.length, 0);
  });

  it('replaces a session whose prepared statement a migration made stale, and answers', async () => {
    const store = createRunStore(createDb(pool));
    const run = newRun('stale');
    await store.insert([run]);
    assert.ok(await store.getForExecution(run.id));
    const before = (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    // Another replica's migration adds a column: `runs.*` no longer has the prepared result type.
    const admin = new pg.Client({ connectionString: iso.databaseUrl });
    await admin.connect();
    try {
      await admin.query('ALTER TABLE runs ADD COLUMN added_by_a_newer_release integer');
    } finally {
      await admin.end();
    }
    const read = await store.getForExecution(run.id);
    assert.equal(read?.run.id, run.id);
    const afterPid = (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    assert.notEqual(afterPid, before, 'the stale session was closed');
  });
});
