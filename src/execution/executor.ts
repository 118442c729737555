import { RemediationError, type Log, type Remediation, type TargetKind, type Targets } from '../../remediations/types.js';
import { ESCALATE_AFTER, type Budget, type BudgetRequest } from '../gates/budget.js';
import type { Metrics } from '../metrics.js';
import type { Notifier } from '../notify/notifier.js';
import type { ControlStore } from '../store/control.js';
import type { RunStore } from '../store/runs.js';
import type { Run } from '../store/types.js';

export interface ExecutorDeps {
  runs: RunStore;
  control: ControlStore;
  budget: Budget;
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
  | { kind: 'retry'; error: Error };

const IN_FLIGHT = ['queued', 'running'] as const;

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
 * Executes one run: the last gates (kill switch, escalation, cooldown, rate limit, global budget),
 * then the remediation, then the outcome with its timeline. Every status change is one conditional
 * UPDATE, so a run decided elsewhere (cancelled, rejected, already succeeded) is never executed.
 */
export function createExecutor(deps: ExecutorDeps) {
  const budgetRequest = (run: Run, approved: boolean): BudgetRequest => ({
    runId: run.id,
    rule: run.rule,
    actionKey: run.action,
    remediation: run.remediation,
    target: run.target ?? run.remediation,
    cooldownMs: run.gates.cooldownMs,
    limit: run.gates.limit ?? undefined,
    escalateAfter: approved ? 0 : ESCALATE_AFTER,
  });

  async function finish(run: Run, to: Run['status'], event: { type: string; detail?: Record<string, unknown> }, patch: Parameters<RunStore['transition']>[4]) {
    const moved = await deps.runs.transition(run.id, IN_FLIGHT, to, event, patch);
    if (moved) deps.metrics.runs.inc({ rule: moved.rule, remediation: moved.remediation, status: to });
    return moved;
  }

  async function execute(runId: string, attempt: { number: number; last: boolean }): Promise<Outcome> {
    const run = await deps.runs.get(runId, { events: false });
    if (!run || !(IN_FLIGHT as readonly string[]).includes(run.status)) return { kind: 'done' };
    if ((await deps.control.get()).paused) return { kind: 'paused' };

    const remediation = deps.catalogue.get(run.remediation);
    if (!remediation) {
      await finish(run, 'failed', { type: 'failed', detail: { reason: 'unknown_remediation' } }, { reason: 'unknown_remediation', error: `no remediation named ${run.remediation}` });
      return { kind: 'done' };
    }
    const approved = run.approval.decidedBy !== null;
    const request = budgetRequest(run, approved);

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

    const verdict = await deps.budget.take(request);
    if (!verdict.ok) {
      if (verdict.reason === 'escalated') return escalate(run);
      return suppress(run, verdict.reason, verdict.retryInMs);
    }
    const started = await deps.runs.transition(run.id, IN_FLIGHT, 'running', { type: 'started', detail: { attempt: attempt.number } }, { incrementAttempts: true });
    if (!started) {
      await deps.budget.release(request);
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

  async function runRemediation(run: Run, remediation: Remediation, attempt: { number: number; last: boolean }): Promise<Outcome> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort('timeout'), deps.timeoutMs);
    const onShutdown = () => controller.abort('shutdown');
    deps.shutdown.addEventListener('abort', onShutdown, { once: true });
    const startedAt = performance.now();
    const log = deps.log;
    try {
      const result = await Promise.race([
        remediation.execute(run.params, {
          runId: run.id,
          signal: controller.signal,
          timeoutMs: deps.timeoutMs,
          targets: deps.targets,
          log,
          now: deps.now,
        }),
        untilAborted(controller.signal),
      ]);
      const seconds = (performance.now() - startedAt) / 1000;
      deps.metrics.runDuration.observe({ remediation: run.remediation }, seconds);
      await deps.runs.transition(run.id, ['running'], 'succeeded', { type: 'succeeded', detail: { result, durationMs: Math.round(seconds * 1000) } }, {
        result,
        error: null,
        reason: null,
      });
      deps.metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: 'succeeded' });
      await deps.budget.recordSuccess(run.remediation, run.target ?? run.remediation);
      return { kind: 'done' };
    } catch (raw) {
      const err = asRemediationError(raw);
      const seconds = (performance.now() - startedAt) / 1000;
      deps.metrics.runDuration.observe({ remediation: run.remediation }, seconds);
      const detail = { attempt: attempt.number, code: err.code, error: err.message, ...(err.detail ? { detail: err.detail } : {}) };
      if (err.retryable && !attempt.last && err.code !== 'aborted') {
        await deps.runs.transition(run.id, ['running'], 'queued', { type: 'attempt_failed', detail }, { error: err.message });
        return { kind: 'retry', error: err };
      }
      if (err.code === 'aborted' && String(controller.signal.reason) === 'shutdown') {
        // Not the remediation's fault: leave the run to the next worker.
        await deps.runs.transition(run.id, ['running'], 'queued', { type: 'interrupted', detail }, {});
        return { kind: 'retry', error: err };
      }
      const failed = await deps.runs.transition(run.id, ['running'], 'failed', { type: 'failed', detail }, { error: err.message, reason: err.code });
      deps.metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: 'failed' });
      const streak = await deps.budget.recordFailure(run.remediation, run.target ?? run.remediation);
      if (failed) {
        if (streak >= ESCALATE_AFTER) await deps.runs.addEvent(run.id, 'escalation_armed', { consecutiveFailures: streak });
        deps.notifier.notify(failed, 'failed');
      }
      return { kind: 'done' };
    } finally {
      clearTimeout(timer);
      deps.shutdown.removeEventListener('abort', onShutdown);
    }
  }

  /** A job that BullMQ gave up on (stalled too often, or its processor crashed): its run must not hang in flight. */
  async function abandon(runId: string, reason: string): Promise<void> {
    const run = await deps.runs.get(runId, { events: false });
    if (!run) return;
    const moved = await finish(run, 'failed', { type: 'failed', detail: { reason: 'worker_lost', error: reason } }, { reason: 'worker_lost', error: reason });
    if (moved) deps.notifier.notify(moved, 'failed');
  }

  return { execute, abandon };
}

export type Executor = ReturnType<typeof createExecutor>;
