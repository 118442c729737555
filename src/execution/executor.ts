import { RemediationError, type Log, type Remediation, type TargetKind, type Targets } from '../../remediations/types.js';
import { ESCALATE_AFTER, type Budget, type BudgetRequest } from '../gates/budget.js';
import type { Metrics } from '../metrics.js';
import type { Notifier } from '../notify/notifier.js';
import type { RunQueue } from '../queue/queue.js';
import type { RunPatch, RunStore } from '../store/runs.js';
import type { Run } from '../store/types.js';

export interface ExecutorDeps {
  runs: RunStore;
  budget: Budget;
  queue: Pick<RunQueue, 'markExecuted' | 'executedResult'>;
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
/** Beyond the remediation's timeout, how long a claim lasts before another worker may take the run over. */
const LEASE_MARGIN_MS = 2000;
/** A queued run, or a running one whose worker's lease ran out: only then may a worker take it. */
const CLAIMABLE = `AND (status = 'queued' OR lease_until IS NULL OR lease_until < now())`;

function asRemediationError(err: unknown): RemediationError {
  if (err instanceof RemediationError) return err;
  // Anything unexpected (a driver error, a bug in a client) may well pass on the next try.
  return new RemediationError('target_error', (err as Error)?.message ?? String(err), { retryable: true });
}

/** Rejects when the signal fires, so a remediation that ignores its signal still cannot hold the worker. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(new RemediationError(String(signal.reason) === 'timeout' ? 'timeout' : 'aborted', `run ${String(signal.reason)}`, { retryable: true }));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

/**
 * Executes one run: the last gates (kill switch, resolved alert, escalation, cooldown, rate limit,
 * global budget), then the remediation, then the outcome with its timeline. Every status change is
 * one conditional UPDATE, so a run decided elsewhere (cancelled, rejected, already succeeded) is never
 * executed, and a running run is only taken over once its worker's lease has run out.
 */
export function createExecutor(deps: ExecutorDeps) {
  const leaseMs = deps.timeoutMs + LEASE_MARGIN_MS;
  const budgetRequest = (run: Run): BudgetRequest => ({
    runId: run.id,
    rule: run.rule,
    actionKey: run.action,
    remediation: run.remediation,
    target: run.target ?? run.remediation,
    cooldownMs: run.gates.cooldownMs,
    limit: run.gates.limit ?? undefined,
    escalateAfter: run.approval.decidedBy !== null ? 0 : ESCALATE_AFTER,
  });

  async function finish(run: Run, to: Run['status'], event: { type: string; detail?: Record<string, unknown> }, patch: RunPatch, from: readonly Run['status'][] = IN_FLIGHT, where = CLAIMABLE) {
    const moved = await deps.runs.transition(run.id, from, to, event, { leaseMs: null, ...patch }, where);
    if (moved) deps.metrics.runs.inc({ rule: moved.rule, remediation: moved.remediation, status: to });
    return moved;
  }

  async function execute(runId: string, attempt: { number: number; last: boolean }): Promise<Outcome> {
    const found = await deps.runs.getForExecution(runId);
    if (!found || !(IN_FLIGHT as readonly string[]).includes(found.run.status)) return { kind: 'done' };
    const { run } = found;
    if (run.status === 'running' && run.leaseUntil && Date.parse(run.leaseUntil) > Date.now()) {
      return { kind: 'later', delayMs: Date.parse(run.leaseUntil) - Date.now() + 100 };
    }
    if (found.paused) return { kind: 'paused' };
    if (run.phase === 'firing' && found.episodeResolved) {
      await finish(run, 'cancelled', { type: 'cancelled', detail: { reason: 'alert_resolved', at: 'execution' } }, { reason: 'alert_resolved' });
      return { kind: 'done' };
    }

    const remediation = deps.catalogue.get(run.remediation);
    if (!remediation) {
      await finish(run, 'failed', { type: 'failed', detail: { reason: 'unknown_remediation' } }, { reason: 'unknown_remediation', error: `no remediation named ${run.remediation}` });
      return { kind: 'done' };
    }
    const request = budgetRequest(run);
    if (run.dryRun) {
      const verdict = await deps.budget.peek(request);
      if (!verdict.ok && verdict.reason !== 'escalated') return suppress(run, verdict.reason, verdict.retryInMs);
      await finish(run, 'dry_run', { type: 'dry_run', detail: { plan: run.plan } }, { plan: run.plan, reason: null });
      return { kind: 'done' };
    }
    if (remediation.requires !== 'none' && !deps.configured.has(remediation.requires)) {
      await finish(run, 'failed', { type: 'failed', detail: { reason: 'target_not_configured' } }, { reason: 'target_not_configured', error: `${remediation.requires} is not configured` });
      return { kind: 'done' };
    }

    // A previous attempt finished the remediation but could not record it: record it, do not run it again.
    const executed = run.status === 'running' ? await deps.queue.executedResult(run.id) : undefined;
    if (executed) return recordSuccess(run, executed, 0);

    const verdict = await deps.budget.take(request);
    if (!verdict.ok) {
      if (verdict.reason === 'escalated') return escalate(run);
      return suppress(run, verdict.reason, verdict.retryInMs);
    }
    let started: Run | null;
    try {
      started = await deps.runs.transition(run.id, IN_FLIGHT, 'running', { type: 'started', detail: { attempt: attempt.number } }, { incrementAttempts: true, leaseMs }, CLAIMABLE);
    } catch (err) {
      if (verdict.took) await deps.budget.release(request).catch(() => {});
      throw err;
    }
    if (!started) {
      // Decided elsewhere meanwhile (cancelled, taken over): give back only what this call took.
      if (verdict.took) await deps.budget.release(request);
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
    const expiresAt = new Date(deps.now().getTime() + run.gates.approvalTimeoutMs).toISOString();
    const moved = await finish(run, 'pending_approval', { type: 'pending_approval', detail: { reason: 'escalated', expiresAt } }, {
      reason: 'escalated',
      approvalRequired: true,
      expiresAt,
    });
    if (moved) deps.notifier.notify(moved, 'escalated');
    return { kind: 'done' };
  }

  async function recordSuccess(run: Run, result: Record<string, unknown>, durationMs: number): Promise<Outcome> {
    const moved = await finish(run, 'succeeded', { type: 'succeeded', detail: { result, durationMs } }, { result, error: null, reason: null }, IN_FLIGHT, '');
    if (moved) await deps.budget.recordSuccess(run.remediation, run.target ?? run.remediation);
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
        remediation.execute(run.params, { runId: run.id, signal: controller.signal, timeoutMs: deps.timeoutMs, targets: deps.targets, log: deps.log, now: deps.now }),
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
      await deps.queue.markExecuted(run.id, result ?? {}).catch((err: Error) => deps.log.warn({ runId: run.id, err: err.message }, 'could not mark the run executed'));
      return recordSuccess(run, result ?? {}, Math.round(seconds * 1000));
    }
    const detail = { attempt: attempt.number, code: failure.code, error: failure.message, ...(failure.detail ? { detail: failure.detail } : {}) };
    if (failure.code === 'aborted' && String(controller.signal.reason) === 'shutdown') {
      // Not the remediation's fault: leave the run to the next worker.
      await deps.runs.transition(run.id, ['running'], 'queued', { type: 'interrupted', detail }, { leaseMs: null });
      return { kind: 'retry', error: failure };
    }
    if (failure.retryable && !attempt.last) {
      await deps.runs.transition(run.id, ['running'], 'queued', { type: 'attempt_failed', detail }, { error: failure.message, leaseMs: null });
      return { kind: 'retry', error: failure };
    }
    const failed = await finish(run, 'failed', { type: 'failed', detail }, { error: failure.message, reason: failure.code }, ['running'], '');
    if (failed) {
      const streak = await deps.budget.recordFailure(run.remediation, run.target ?? run.remediation);
      if (streak >= ESCALATE_AFTER) await deps.runs.addEvent(run.id, 'escalation_armed', { consecutiveFailures: streak });
      deps.notifier.notify(failed, 'failed');
    }
    return { kind: 'done' };
  }

  /** A job that BullMQ gave up on (stalled too often): its run must not hang in flight. */
  async function abandon(runId: string, reason: string): Promise<void> {
    const run = await deps.runs.get(runId, { events: false });
    if (!run) return;
    const moved = await finish(run, 'failed', { type: 'failed', detail: { reason: 'worker_lost', error: reason } }, { reason: 'worker_lost', error: reason }, IN_FLIGHT, '');
    if (moved) deps.notifier.notify(moved, 'failed');
  }

  return { execute, abandon };
}

export type Executor = ReturnType<typeof createExecutor>;
