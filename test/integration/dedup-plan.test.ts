/**
 * The dedup lookup is prepared once per connection, so its plan may be made while the runs table is
 * empty: it must still probe an index per key once the table holds many runs.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { createDb, openDatabase } from '../../src/store/database.js';
import { migrate } from '../../src/store/migrate.js';
import { createRunRecords } from '../../src/store/run-records.js';
import { isolation, PG_ADMIN_URL } from '../support/harness.js';
import { newRun } from '../support/runs.js';

describe('the dedup lookup plan', () => {
  const iso = isolation('dedup_plan');
  after(() => iso.drop());

  it('made on an empty table, still probes an index per key with 30,000 runs stored', async () => {
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(iso.database)}`);
    await admin.end();
    // One connection: the statements the store prepares are the ones EXPLAIN EXECUTE shows.
    const pool = new pg.Pool({ connectionString: iso.databaseUrl, max: 1 });
    try {
      await migrate(pool);
      const records = createRunRecords(createDb(pool));
      // More executions than PostgreSQL's five custom plans: from here on it may use its generic plan.
      for (let i = 0; i < 8; i++) {
        await records.findByKeys([{ rule: 'rule', action: 'firing:0', fingerprint: `none${i}`, startsAt: 'x' }]);
        const { stored } = await records.insertOrFind([newRun(`early${i}`)]);
        assert.equal(stored?.length, 1);
      }
      for (let i = 0; i < 30; i++) await records.insert(Array.from({ length: 1000 }, (_, j) => newRun(`bulk${i}x${j}`)));
      await pool.query('ANALYZE runs');
      // A thousand keys, as a storm's batch has: planned as a join, that would be a hash over a scan of the table.
      const many = Array.from({ length: 1000 }, (_, i) => newRun(`bulk7x${i}`).alert.fingerprint);
      const keys = `'{${many.map(() => 'rule').join(',')}}', '{${many.map(() => 'firing:0').join(',')}}', '{${many.join(',')}}', '{${many.map(() => '2026-11-27T13:31:39Z').join(',')}}'`;
      const plans = [
        await pool.query(`EXPLAIN EXECUTE "runs-by-keys"(${keys})`),
        await pool.query(`EXPLAIN EXECUTE "runs-insert-or-find"('[]', ${keys})`),
      ].map((r) => r.rows.map((row) => row['QUERY PLAN'] as string).join('\n'));
      for (const plan of plans) {
        assert.match(plan, /Index (Only )?Scan using runs_\w+ on runs/, plan);
        assert.doesNotMatch(plan, /Seq Scan on runs/, plan);
      }
      const { existing } = await records.findByKeys([
        { rule: 'rule', action: 'firing:0', fingerprint: newRun('early3').alert.fingerprint, startsAt: newRun('early3').alert.startsAt },
      ]);
      assert.equal(existing.size, 1);
    } finally {
      await pool.end();
    }
  });

  it('is planned once per session of the service pool, not again at each execution', async () => {
    // openDatabase creates the database when it is missing; the test above made it already.
    const pool = await openDatabase(iso.databaseUrl, { max: 1 });
    try {
      await migrate(pool);
      const records = createRunRecords(createDb(pool));
      for (let i = 0; i < 12; i++) {
        const { stored } = await records.insertOrFind(Array.from({ length: 4 }, (_, j) => newRun(`session${i}x${j}`)));
        assert.equal(stored?.length, 4);
      }
      const { rows } = await pool.query<{ generic_plans: string; custom_plans: string }>(
        `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'runs-insert-or-find'`,
      );
      assert.equal(rows.length, 1, 'prepared on this session');
      assert.deepEqual({ generic: Number(rows[0]!.generic_plans), custom: Number(rows[0]!.custom_plans) }, { generic: 12, custom: 0 });
    } finally {
      await pool.end();
    }
  });
});
