import { RemediationError, type Remediation, type TargetKind, type Targets } from '../../remediations/types.js';
import type { RunSilences } from '../alertmanager/silences.js';
import type { ConfirmFiring } from '../gates/alert-firing.js';
import type { CheckCondition } from '../gates/condition.js';
import { createExecutionGates, gateSubject } from '../gates/at-execution.js';
import type { Counters } from '../gates/counters.js';
import { ESCALATE_AFTER, type createFailureStreak } from '../gates/escalation.js';
import type { Log } from '../kernel/log.js';
import type { Metrics } from '../metrics.js';
import type { Notifier } from '../notify/notifier.js';
import type { RunQueue } from '../queue/queue.js';
import { isTerminal, type Run } from '../schemas/runs.js';
import type { Chains } from './chains.js';
import type { Guard, RunPatch, RunStore } from '../store/runs.js';
import type { TransitionEvent } from '../store/run-transitions.js';

export interface ExecutorDeps {
  runs: RunStore;
  chains: Pick<Chains, 'releaseQuietly'>;
  counters: Pick<Counters, 'peek' | 'take' | 'release'>;
  streak: ReturnType<typeof createFailureStreak>;
  queue: Pick<RunQueue, 'markExecuted' | 'executedResult'>;
  /** The re-check with Alertmanager before acting; absent when ALERTMANAGER_URL is unset. */
  confirmFiring?: ConfirmFiring;
  /** `check.query` against Prometheus before acting. */
  checkCondition?: CheckCondition;
  /** Alertmanager silences of runs whose action has `silence`. */
  silences?: Pick<RunSilences, 'silence' | 'expire'>;
  catalogue: ReadonlyMap<string, Remediation>;
  targets: Targets;
  configured: ReadonlySet<TargetKind>;
  metrics: Metrics;
  notifier: Notifier;
  log: Log;
  timeoutMs: number;
  /** Aborted when the process shuts down: running remediations stop at their next step. */
  shutdown: AbortSignal;
  now: () => Date;
}

/** What the queue should do with the job after `execute` returned. */
export type Outcome =
  | { kind: 'done' }
  | { kind: 'paused' }
  /** Another worker holds the run (its lease has not run out): look again after `delayMs`. */
  | { kind: 'later'; delayMs: number }
  | { kind: 'retry'; error: Error };

const IN_FLIGHT = ['queued', 'running'] as const;
/**
 * Failures that leave the target as it was, so the run gives back its counters: its params did not
 * fit (`invalid_params`, also the target refusing the change as invalid), or were out of scope, what it
 * names does not exist (`not_found`: a provider, a table, a Kubernetes object), or its target is not
 * configured.
 */
const UNTOUCHED: ReadonlySet<string> = new Set(['invalid_params', 'out_of_scope', 'not_found', 'target_not_configured']);
/** Beyond the remediation's timeout, how long a claim lasts before another worker may take the run over. */
const LEASE_MARGIN_MS = 2000;

function asRemediationError(err: unknown): RemediationError {
  if (err instanceof RemediationError) return err;
  // Anything unexpected (a driver error, a bug in a client) may well pass on the next try.
  return new RemediationError('target_error', (err as Error)?.message ?? String(err), { retryable: true });
}

/** Rejects when the signal fires, so a remediation that ignores its signal still cannot hold the worker. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () =>
      reject(
        new RemediationError(String(signal.reason) === 'timeout' ? 'timeout' : 'aborted', `run ${String(signal.reason)}`, {
          retryable: true,
        }),
      );
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

/**
 * Executes one run: the gates at execution (`gates/at-execution.ts`), then the remediation, then
 * the outcome with its timeline. Every status change is one conditional UPDATE, so a run decided
 * elsewhere (cancelled, rejected, already succeeded) is never executed, and a running run is only
 * taken over once its worker's lease has run out.
 */
export function createExecutor(deps: ExecutorDeps) {
  const leaseMs = deps.timeoutMs + LEASE_MARGIN_MS;
  const gates = createExecutionGates(deps);

  async function finish(
    run: Run,
    to: Run['status'],
    event: TransitionEvent | TransitionEvent[],
    patch: RunPatch,
    from: readonly Run['status'][] = IN_FLIGHT,
    guard: Guard | null = 'claimable',
  ) {
    const moved = await deps.runs.transition(run.id, from, to, event, { leaseMs: null, ...patch }, guard ?? undefined);
    if (moved) {
      deps.metrics.runs.inc({ rule: moved.rule, remediation: moved.remediation, status: to });
      // Whatever did not end in success (failed, timed out, lost, cancelled, skipped, escalated) gives the alert back to
      // on-call; a dry run silenced nothing.
      if (to !== 'succeeded' && to !== 'dry_run' && moved.gates.silenceMs !== undefined) await deps.silences?.expire(moved, to);
      if (isTerminal(to)) await deps.chains.releaseQuietly([moved]);
    }
    return moved;
  }

  async function execute(runId: string, attempt: { number: number; last: boolean }): Promise<Outcome> {
    const found = await deps.runs.getForExecution(runId);
    if (!found) return { kind: 'done' };
    const { run } = found;
    const verdict = await gates(found);
    switch (verdict.kind) {
      case 'gone':
        return { kind: 'done' };
      case 'held':
        return { kind: 'later', delayMs: verdict.delayMs };
      case 'paused':
        return { kind: 'paused' };
      case 'cancel':
        if (verdict.resolveEpisode) await resolveEpisode(run);
        await finish(
          run,
          'cancelled',
          { type: 'cancelled', detail: { reason: verdict.reason, at: 'execution' } },
          { reason: verdict.reason },
        );
        return { kind: 'done' };
      case 'skip':
        await finish(run, 'skipped', { type: 'skipped', detail: { reason: verdict.reason } }, { reason: verdict.reason });
        return { kind: 'done' };
      case 'fail':
        await finish(
          run,
          'failed',
          { type: 'failed', detail: { reason: verdict.reason, ...verdict.detail } },
          { reason: verdict.reason, error: verdict.error },
        );
        return { kind: 'done' };
      case 'dry_run':
        await finish(run, 'dry_run', { type: 'dry_run', detail: { plan: run.plan } }, { plan: run.plan, reason: null });
        return { kind: 'done' };
      case 'suppress':
        return suppress(run, verdict.reason, verdict.retryInMs);
      case 'escalate':
        return escalate(run);
      case 'record':
        return recordSuccess(run, verdict.result, 0);
      case 'execute':
        return claim(run, verdict.remediation, verdict.took, attempt);
    }
  }

  /**
   * Alertmanager no longer lists the alert: the episode is over even if its resolved notice never
   * reached the webhook. Recording it cancels the episode's other unstarted firing runs too.
   */
  async function resolveEpisode(run: Run): Promise<void> {
    const cancelled = await deps.runs.resolveEpisodes([run.alert]);
    for (const r of cancelled) deps.metrics.runs.inc({ rule: r.rule, remediation: r.remediation, status: 'cancelled' });
    await deps.chains.releaseQuietly(cancelled);
  }

  /**
   * Moves the run to `running` under a lease; gives back what the gates took if another worker or a decision got there first.
   * A run whose action has `silence` silences its alert first (before the lease starts, so a slow Alertmanager does not eat
   * into it); an earlier attempt's silence that still holds is kept.
   */
  async function claim(run: Run, remediation: Remediation, took: boolean, attempt: { number: number; last: boolean }): Promise<Outcome> {
    const silenced =
      deps.silences && run.gates.silenceMs !== undefined && !run.dryRun ? await deps.silences.silence(run, deps.shutdown) : null;
    const unsilence = async () => {
      if (silenced?.created) await deps.silences?.expire(run, 'not_started', [silenced.silence]);
    };
    let started: Run | null;
    try {
      // A running run here is one whose worker's lease ran out: say so before it starts again.
      const takeover =
        run.status === 'running' ? [{ type: 'taken_over', detail: { previousAttempt: run.attempts, leaseUntil: run.leaseUntil } }] : [];
      started = await deps.runs.transition(
        run.id,
        IN_FLIGHT,
        'running',
        [...takeover, { type: 'started', detail: { attempt: attempt.number, attempts: run.attempts + 1 } }],
        { incrementAttempts: true, leaseMs },
        'claimable',
      );
    } catch (err) {
      if (took) await deps.counters.release(gateSubject(run)).catch(() => {});
      await unsilence();
      throw err;
    }
    if (!started) {
      // Decided elsewhere meanwhile (cancelled, taken over): give back only what this call took.
      await unsilence();
      if (took) await deps.counters.release(gateSubject(run));
      return { kind: 'done' };
    }
    if (run.status !== 'running') deps.metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: 'running' });
    return runRemediation(started, remediation, attempt);
  }

  async function suppress(run: Run, reason: string, retryInMs: number): Promise<Outcome> {
    const moved = await finish(run, 'suppressed', { type: 'suppressed', detail: { reason, retryInMs, at: 'execution' } }, { reason });
    if (moved) deps.metrics.suppressed.inc({ remediation: run.remediation, reason });
    return { kind: 'done' };
  }

  async function escalate(run: Run): Promise<Outcome> {
    const moved = await finish(
      run,
      'pending_approval',
      { type: 'pending_approval', detail: { reason: 'escalated' } },
      { reason: 'escalated', approvalRequired: true, expiresInMs: run.gates.approvalTimeoutMs },
    );
    if (moved) deps.notifier.notify(moved, 'escalated');
    return { kind: 'done' };
  }

  async function recordSuccess(run: Run, result: Record<string, unknown>, durationMs: number): Promise<Outcome> {
    // With `verify`, success is where the proof starts: pending until Prometheus says it helped, or `within` runs out.
    const verify = run.gates.verify;
    const moved = await finish(
      run,
      'succeeded',
      [
        { type: 'succeeded', detail: { result, durationMs } },
        ...(verify
          ? [{ type: 'verification_pending', detail: { query: verify.query, withinMs: verify.withinMs, everyMs: verify.everyMs } }]
          : []),
      ],
      {
        result,
        error: null,
        reason: null,
        ...(verify ? { startVerification: { everyMs: verify.everyMs, withinMs: verify.withinMs } } : {}),
        ...(run.gates.revertAfterMs !== undefined && !run.dryRun ? { revertAfterMs: run.gates.revertAfterMs } : {}),
      },
      IN_FLIGHT,
      null,
    );
    if (moved) await deps.streak.recordSuccess(run.remediation, run.target ?? run.remediation);
    return { kind: 'done' };
  }

  async function runRemediation(run: Run, remediation: Remediation, attempt: { number: number; last: boolean }): Promise<Outcome> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort('timeout'), deps.timeoutMs);
    const onShutdown = () => controller.abort('shutdown');
    deps.shutdown.addEventListener('abort', onShutdown, { once: true });
    const startedAt = performance.now();
    let result: Record<string, unknown> | undefined;
    let failure: RemediationError | undefined;
    try {
      result = await Promise.race([
        remediation.execute(run.params, {
          runId: run.id,
          rule: run.rule,
          signal: controller.signal,
          timeoutMs: deps.timeoutMs,
          targets: deps.targets,
          log: deps.log,
          now: deps.now,
        }),
        untilAborted(controller.signal),
      ]);
    } catch (raw) {
      failure = asRemediationError(raw);
    } finally {
      clearTimeout(timer);
      deps.shutdown.removeEventListener('abort', onShutdown);
    }
    const seconds = (performance.now() - startedAt) / 1000;
    deps.metrics.runDuration.observe({ remediation: run.remediation }, seconds);

    // Bookkeeping failures below are not the remediation's: they propagate, the job is retried, and
    // the retry records the outcome from the marker instead of executing again.
    if (!failure) {
      await deps.queue
        .markExecuted(run.id, result ?? {})
        .catch((err: Error) => deps.log.warn({ runId: run.id, err: err.message }, 'could not mark the run executed'));
      return recordSuccess(run, result ?? {}, Math.round(seconds * 1000));
    }
    const detail = {
      attempt: attempt.number,
      code: failure.code,
      error: failure.message,
      ...(failure.detail ? { detail: failure.detail } : {}),
    };
    if (failure.code === 'changed_since') {
      // A revert that found the target changed by someone else: nothing failed, and nothing is undone.
      await finish(
        run,
        'skipped',
        { type: 'skipped', detail: { reason: 'changed_since', ...detail } },
        { reason: 'changed_since', error: failure.message },
        ['running'],
        null,
      );
      return { kind: 'done' };
    }
    if (failure.code === 'aborted' && String(controller.signal.reason) === 'shutdown') {
      // Not the remediation's fault: leave the run to the next worker.
      await deps.runs.transition(run.id, ['running'], 'queued', { type: 'interrupted', detail }, { leaseMs: null });
      return { kind: 'retry', error: failure };
    }
    if (failure.retryable && !attempt.last) {
      await deps.runs.transition(
        run.id,
        ['running'],
        'queued',
        { type: 'attempt_failed', detail },
        { error: failure.message, leaseMs: null },
      );
      return { kind: 'retry', error: failure };
    }
    // Given back before the run is recorded failed, so that a failed run seen is one whose counters are back.
    const released = await giveBack(run, failure.code);
    const failed = await finish(
      run,
      'failed',
      [{ type: 'failed', detail }, ...(released ? [{ type: 'counters_released', detail: { reason: failure.code } }] : [])],
      { error: failure.message, reason: failure.code },
      ['running'],
      null,
    );
    if (failed) await recordFailed(failed);
    return { kind: 'done' };
  }

  /** A run just recorded failed: one more in its remediation's failure streak on the target (escalation), and on-call told. */
  async function recordFailed(failed: Run): Promise<void> {
    const streak = await deps.streak.recordFailure(failed.remediation, failed.target ?? failed.remediation);
    if (streak >= ESCALATE_AFTER) await deps.runs.addEvent(failed.id, 'escalation_armed', { consecutiveFailures: streak });
    deps.notifier.notify(failed, 'failed');
  }

  /**
   * A run that failed without touching its target gives back what it took (its global budget slot,
   * its rate-limit slot, its cooldown), so that it spends nothing of the blast radius: the failure is
   * one of `UNTOUCHED` and this was its first attempt (an earlier one may have reached the target).
   */
  async function giveBack(run: Run, code: string): Promise<boolean> {
    if (!UNTOUCHED.has(code) || run.attempts > 1) return false;
    try {
      await deps.counters.release(gateSubject(run));
      return true;
    } catch (err) {
      deps.log.warn(
        { runId: run.id, err: (err as Error).message },
        'could not give back the counters of a run that did not touch its target',
      );
      return false;
    }
  }

  /** A job that BullMQ gave up on (stalled too often): its run must not hang in flight. */
  async function abandon(runId: string, reason: string): Promise<void> {
    const run = await deps.runs.get(runId, { events: false });
    if (!run) return;
    const moved = await finish(
      run,
      'failed',
      { type: 'failed', detail: { reason: 'worker_lost', error: reason } },
      { reason: 'worker_lost', error: reason },
      IN_FLIGHT,
      null,
    );
    // A remediation that keeps losing its worker (crashing it, or hanging past its lease) fails like any
    // other: it counts towards escalation, so it stops running on its own after ESCALATE_AFTER.
    if (moved) await recordFailed(moved);
  }

  return { execute, abandon };
}

export type Executor = ReturnType<typeof createExecutor>;
