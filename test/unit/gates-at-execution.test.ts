/** The gates at execution (`createExecutionGates`), over the in-memory counters: no Redis, no PostgreSQL. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCatalogue } from '../../remediations/catalogue.js';
import type { TargetKind } from '../../remediations/types.js';
import { createExecutionGates, gateSubject, type ExecutionVerdict } from '../../src/gates/at-execution.js';
import { ESCALATE_AFTER } from '../../src/gates/escalation.js';
import type { Limit } from '../../src/matrix/types.js';
import { RUN_STATUSES, type Run } from '../../src/schemas/runs.js';
import { stored } from '../support/runs.js';
import { createFakeCounters, fakeClock, type FakeCounters } from '../support/fake-counters.js';
import { counting, testRemediations } from '../support/test-remediations.js';

const catalogue = createCatalogue(testRemediations);
const CONFIGURED: ReadonlySet<TargetKind> = new Set<TargetKind>(['targetRedis']);

const approvedBy = (who: string): Run['approval'] => ({
  required: true,
  expiresAt: null,
  decidedBy: who,
  decidedAt: new Date().toISOString(),
  comment: null,
});

function setup(
  opts: { configured?: ReadonlySet<TargetKind>; globalLimit?: Limit; executed?: Record<string, Record<string, unknown>> } = {},
) {
  const counters: FakeCounters = createFakeCounters({ clock: fakeClock(), ...(opts.globalLimit ? { globalLimit: opts.globalLimit } : {}) });
  const asked: string[] = [];
  const check = createExecutionGates({
    counters,
    queue: {
      async executedResult(runId: string) {
        asked.push(runId);
        return opts.executed?.[runId];
      },
    },
    catalogue,
    configured: opts.configured ?? CONFIGURED,
  });
  const verdict = (run: Run, found: { episodeResolved?: boolean; paused?: boolean } = {}): Promise<ExecutionVerdict> =>
    check({
      run,
      episodeResolved: found.episodeResolved ?? false,
      paused: found.paused ?? false,
      // What the store measures with PostgreSQL's clock, from the run's lease.
      leaseLeftMs: run.leaseUntil ? Math.max(0, Date.parse(run.leaseUntil) - Date.now()) : 0,
    });
  return { counters, asked, verdict };
}

describe('createExecutionGates: the gates at execution', () => {
  it('executes a run that passes every gate, taking its counters once', async () => {
    const { counters, verdict } = setup();
    const run = stored({ cooldownMs: 60_000 });
    const first = await verdict(run);
    assert.deepEqual(first, { kind: 'execute', remediation: counting, took: true });
    assert.equal(first.kind === 'execute' && first.remediation, catalogue.get('test.count'), 'the catalogue entry itself');
    assert.deepEqual(
      await verdict(run),
      { kind: 'execute', remediation: counting, took: false },
      'a retry keeps its place and takes nothing more',
    );
    assert.deepEqual(
      counters.calls.map((c) => c.mode),
      ['take', 'take'],
    );
    assert.deepEqual(
      await verdict(stored({ cooldownMs: 60_000 })),
      { kind: 'suppress', reason: 'cooldown', retryInMs: 60_000 },
      'the run holds its cooldown',
    );
  });

  it('answers gone for a run no longer queued or running, touching nothing', async () => {
    const { counters, asked, verdict } = setup();
    for (const status of RUN_STATUSES.filter((st) => st !== 'queued' && st !== 'running')) {
      assert.deepEqual(await verdict(stored({ status }), { paused: true, episodeResolved: true }), { kind: 'gone' }, status);
    }
    assert.deepEqual(counters.calls, []);
    assert.deepEqual(asked, []);
  });

  it('holds a running run whose lease has not run out, until a little after it does', async () => {
    const { counters, verdict } = setup();
    const leaseUntil = new Date(Date.now() + 5000).toISOString();
    const held = await verdict(stored({ status: 'running', leaseUntil }), { paused: true });
    assert.equal(held.kind, 'held');
    assert.ok(held.kind === 'held' && held.delayMs > 4800 && held.delayMs <= 5100, `delayMs ${JSON.stringify(held)}`);
    assert.deepEqual(counters.calls, []);
    assert.equal((await verdict(stored({ status: 'queued', leaseUntil }))).kind, 'execute', 'a lease holds only a running run');
    assert.equal(
      (await verdict(stored({ status: 'running', leaseUntil: new Date(Date.now() - 1000).toISOString() }))).kind,
      'execute',
      'an expired lease does not hold',
    );
  });

  it('puts the job back while paused, before the resolved check and the counters', async () => {
    const { counters, verdict } = setup();
    assert.deepEqual(await verdict(stored(), { paused: true, episodeResolved: true }), { kind: 'paused' });
    assert.deepEqual(await verdict(stored({ remediation: 'no.such-thing' }), { paused: true }), { kind: 'paused' });
    assert.deepEqual(counters.calls, []);
  });

  it('cancels a firing run whose episode resolved, but not a run of the resolved phase', async () => {
    const { counters, verdict } = setup();
    assert.deepEqual(await verdict(stored({ dryRun: true }), { episodeResolved: true }), { kind: 'cancel', reason: 'alert_resolved' });
    assert.deepEqual(counters.calls, []);
    const onResolved = stored({ phase: 'resolved', action: 'resolved:0' });
    assert.deepEqual(await verdict(onResolved, { episodeResolved: true }), { kind: 'execute', remediation: counting, took: true });
  });

  it('does not cancel a firing run that does not depend on the alert still firing (check.alertFiring false, as notices)', async () => {
    const { verdict } = setup();
    const base = stored();
    const notice = stored({ target: 'test/n', gates: { ...base.gates, alertFiring: false } });
    assert.deepEqual(await verdict(notice, { episodeResolved: true }), { kind: 'execute', remediation: counting, took: true });
  });

  it('fails an unknown remediation, before the dry run and the counters', async () => {
    const { counters, verdict } = setup();
    assert.deepEqual(await verdict(stored({ remediation: 'no.such-thing', dryRun: true })), {
      kind: 'fail',
      reason: 'unknown_remediation',
      error: 'no remediation named no.such-thing',
    });
    assert.deepEqual(counters.calls, []);
  });

  it('ends a dry run after a peek only: no target needed, no escalation, but the counters still stop it', async () => {
    const { counters, asked, verdict } = setup({ configured: new Set() });
    for (let i = 0; i < ESCALATE_AFTER; i++) await counters.recordFailure('test.count', 'test/a');
    const dry = stored({ dryRun: true, status: 'running', cooldownMs: 60_000, limit: { max: 1, perMs: 60_000 } });
    assert.deepEqual(await verdict(dry), { kind: 'dry_run' });
    assert.deepEqual(await verdict(dry), { kind: 'dry_run' }, 'it took nothing, so nothing holds it');
    assert.deepEqual(
      counters.calls.map((c) => c.mode),
      ['peek', 'peek'],
    );
    assert.deepEqual(counters.keys(), ['fake:gates:streak:test.count:test/a'], 'only the streak exists: no cooldown, limit or hold taken');
    assert.deepEqual(asked, [], 'a dry run never looks for an executed marker');

    const other = setup();
    await other.counters.take(gateSubject(stored({ cooldownMs: 60_000 })));
    assert.deepEqual(await other.verdict(stored({ dryRun: true, cooldownMs: 60_000 })), {
      kind: 'suppress',
      reason: 'cooldown',
      retryInMs: 60_000,
    });
  });

  it('fails a run whose target is not configured, before the counters', async () => {
    const { counters, verdict } = setup({ configured: new Set<TargetKind>(['conduit']) });
    assert.deepEqual(await verdict(stored()), { kind: 'fail', reason: 'target_not_configured', error: 'targetRedis is not configured' });
    assert.deepEqual(counters.calls, []);
  });

  it('records the result a running run already executed with, instead of running it again', async () => {
    const running = stored({ status: 'running', attempts: 1 });
    const queued = stored();
    const { counters, asked, verdict } = setup({ executed: { [running.id]: { execution: 1 }, [queued.id]: { execution: 1 } } });
    assert.deepEqual(await verdict(running), { kind: 'record', result: { execution: 1 } });
    assert.deepEqual(counters.calls, [], 'a recorded run takes nothing');
    assert.equal((await verdict(queued)).kind, 'execute', 'only a running run can have executed');
    assert.deepEqual(asked, [running.id]);
    const fresh = stored({ status: 'running', attempts: 1 });
    assert.deepEqual(await verdict(fresh), { kind: 'execute', remediation: counting, took: true }, 'no marker: run it');
  });

  it('records an executed run at once, even while its first claim is still leased', async () => {
    const leased = stored({ status: 'running', attempts: 1, leaseUntil: new Date(Date.now() + 60_000).toISOString() });
    const { counters, verdict } = setup({ executed: { [leased.id]: { execution: 1 } } });
    assert.deepEqual(await verdict(leased), { kind: 'record', result: { execution: 1 } });
    assert.deepEqual(counters.calls, []);
    const other = stored({ status: 'running', attempts: 1, leaseUntil: leased.leaseUntil });
    assert.equal((await verdict(other)).kind, 'held', 'without a marker the lease still holds');
  });

  it('suppresses on the cooldown, the rate limit and the global budget', async () => {
    const { counters, verdict } = setup({ globalLimit: { max: 2, perMs: 3_600_000 } });
    const limit = { max: 1, perMs: 600_000 };
    assert.equal((await verdict(stored({ cooldownMs: 60_000, limit }))).kind, 'execute');
    assert.deepEqual(await verdict(stored({ cooldownMs: 60_000, limit })), { kind: 'suppress', reason: 'cooldown', retryInMs: 60_000 });
    assert.deepEqual(await verdict(stored({ cooldownMs: 60_000, limit, target: 'test/b' })), {
      kind: 'suppress',
      reason: 'rate_limit',
      retryInMs: 600_000,
    });
    assert.equal((await verdict(stored({ rule: 'other', target: 'test/c' }))).kind, 'execute');
    assert.deepEqual(await verdict(stored({ rule: 'third', target: 'test/d' })), {
      kind: 'suppress',
      reason: 'global_budget',
      retryInMs: 3_600_000,
    });
    assert.deepEqual(
      counters.calls.map((c) => c.mode),
      ['take', 'take', 'take', 'take', 'take'],
    );
  });

  it('escalates after repeated failures, unless a human approved the run', async () => {
    const { counters, verdict } = setup();
    for (let i = 0; i < ESCALATE_AFTER; i++) await counters.recordFailure('test.count', 'test/a');
    assert.deepEqual(await verdict(stored({ cooldownMs: 60_000 })), { kind: 'escalate' });
    assert.deepEqual(await verdict(stored({ approval: approvedBy('bob'), cooldownMs: 60_000 })), {
      kind: 'execute',
      remediation: counting,
      took: true,
    });
    assert.deepEqual(
      await verdict(stored({ target: 'test/b' })),
      { kind: 'execute', remediation: counting, took: true },
      'escalation is per target',
    );
    await counters.recordSuccess('test.count', 'test/a');
    assert.deepEqual(
      await verdict(stored({ target: 'test/a', cooldownMs: 60_000 })),
      { kind: 'suppress', reason: 'cooldown', retryInMs: 60_000 },
      "after a success only the approved run's cooldown stops it",
    );
  });

  it('sees a run without a target as its remediation, and an approved run as approved', () => {
    const run = stored({ target: null, approval: approvedBy('alice'), cooldownMs: 5000 });
    assert.deepEqual(gateSubject(run), {
      runId: run.id,
      rule: 'rule',
      action: 'firing:0',
      remediation: 'test.count',
      target: 'test.count',
      gates: { cooldownMs: 5000, limit: null, approvalTimeoutMs: 1_800_000 },
      approved: true,
    });
    assert.equal(gateSubject(stored()).approved, false);
  });
});
