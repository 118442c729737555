/**
 * An unverified run's follow-ups (arming the escalation, the notice, the revert) happen after its
 * verification is stored. One that fails (Redis away for a moment) is retried by a later sweep until
 * all are done; then the run leaves the sweep. The real store on PostgreSQL, the verifier as the
 * sweeper calls it, and follow-ups that fail on demand.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { createVerifier } from '../../src/execution/verifier.js';
import { createMetrics } from '../../src/metrics.js';
import type { Notifier } from '../../src/notify/notifier.js';
import type { Run } from '../../src/schemas/runs.js';
import { createDb, openDatabase } from '../../src/store/database.js';
import { migrate } from '../../src/store/migrate.js';
import { createRunStore, type RunStore } from '../../src/store/runs.js';
import { isolation } from '../support/harness.js';
import { newRun } from '../support/runs.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const CLAIM_MS = 200;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('the follow-ups of an unverified run', () => {
  const iso = isolation('verifyfollow');
  let pool: pg.Pool;
  let store: RunStore;
  before(async () => {
    pool = await openDatabase(iso.databaseUrl, { max: 2 });
    await migrate(pool);
    store = createRunStore(createDb(pool));
  });
  after(async () => {
    await pool.end();
    await iso.drop();
  });

  /** A succeeded run whose verification (`onUnverified` as given) is past its deadline. */
  async function overdue(key: string, onUnverified: 'escalate' | 'revert' | 'none'): Promise<Run> {
    const run = newRun(key);
    run.gates = { ...run.gates, verify: { query: `test_ok{key="${key}"} > 0`, withinMs: 1, everyMs: 1 }, onUnverified };
    await store.insert([run]);
    await store.transition(run.id, ['queued'], 'running', { type: 'started' }, { incrementAttempts: true, leaseMs: 60_000 });
    const done = await store.transition(
      run.id,
      ['running'],
      'succeeded',
      { type: 'succeeded' },
      { result: { ok: true }, leaseMs: null, startVerification: { everyMs: 1, withinMs: 1 } },
    );
    assert.equal(done?.verification, 'pending');
    await sleep(5);
    return done!;
  }

  /** The verifier with Prometheus unset (no answer: unverified at the deadline) and follow-ups that fail while `failing` says so. */
  function verifier(failing: { arm: number; revert: number }) {
    const calls = { arm: 0, revert: 0, notices: [] as string[] };
    const v = createVerifier({
      runs: store,
      prometheus: undefined,
      chains: { releaseQuietly: async () => {} },
      streak: {
        async arm() {
          calls.arm++;
          if (failing.arm-- > 0) throw new Error('Redis: connection is closed');
        },
      },
      reverts: {
        async revert() {
          calls.revert++;
          if (failing.revert-- > 0) throw new Error('PostgreSQL: connection terminated');
          return null;
        },
      },
      metrics: createMetrics(),
      notifier: { notify: (run: Run, kind: string) => void calls.notices.push(`${kind} ${run.id}`) } as unknown as Notifier,
      log: silent,
      claimMs: CLAIM_MS,
    });
    return { v, calls };
  }

  const verifyDue = async (runId: string) =>
    (
      await pool.query<{ verification: string; verify_due: Date | null }>('SELECT verification, verify_due FROM runs WHERE id = $1', [
        runId,
      ])
    ).rows[0]!;
  const eventTypes = async (runId: string) => ((await store.get(runId))?.events ?? []).map((e) => e.type);

  it('an escalation that could not be armed is armed by a later sweep, and the run then leaves the sweep', async () => {
    const run = await overdue('esc1', 'escalate');
    const { v, calls } = verifier({ arm: 2, revert: 0 });
    assert.equal(await v.verifyDue(), 1, 'the overdue verification is claimed');
    assert.equal(calls.arm, 1);
    const first = await verifyDue(run.id);
    assert.equal(first.verification, 'unverified', 'the verification is stored before its follow-ups');
    assert.ok(first.verify_due, 'still due: its escalation is not armed');
    assert.deepEqual(calls.notices, [], 'on-call is told only once the escalation is armed');

    assert.equal(await v.verifyDue(), 0, 'claimed: not taken again before the claim runs out');
    await sleep(CLAIM_MS + 50);
    assert.equal(await v.verifyDue(), 1, 'taken again after the claim');
    assert.equal(calls.arm, 2, 'the second try fails too');
    await sleep(CLAIM_MS + 50);
    assert.equal(await v.verifyDue(), 1);
    assert.equal(calls.arm, 3);
    assert.deepEqual(calls.notices, [`unverified ${run.id}`], 'armed, and on-call told');
    assert.equal((await verifyDue(run.id)).verify_due, null, 'done: out of the sweep');
    const types = await eventTypes(run.id);
    assert.equal(types.filter((t) => t === 'unverified').length, 1, 'one unverified end, whatever the retries');
    assert.equal(types.filter((t) => t === 'escalation_armed').length, 1);

    await sleep(CLAIM_MS + 50);
    assert.equal(await v.verifyDue(), 0, 'nothing left to retry');
    assert.equal(calls.arm, 3);
  });

  it('a revert that could not be created is created by a later sweep', async () => {
    const run = await overdue('rev1', 'revert');
    const { v, calls } = verifier({ arm: 0, revert: 1 });
    assert.equal(await v.verifyDue(), 1);
    assert.equal(calls.revert, 1);
    assert.ok((await verifyDue(run.id)).verify_due, 'still due: its revert is not created');
    await sleep(CLAIM_MS + 50);
    assert.equal(await v.verifyDue(), 1);
    assert.equal(calls.revert, 2);
    assert.equal(calls.arm, 0, 'a reverted remediation does not escalate');
    assert.equal((await verifyDue(run.id)).verify_due, null);
  });

  it('an unverified end without follow-ups (onUnverified none) leaves the sweep at once', async () => {
    const run = await overdue('none1', 'none');
    const { v, calls } = verifier({ arm: 0, revert: 0 });
    assert.equal(await v.verifyDue(), 1);
    assert.deepEqual(await verifyDue(run.id), { verification: 'unverified', verify_due: null });
    assert.deepEqual([calls.arm, calls.revert, calls.notices.length], [0, 0, 0]);
  });
});
