import { conflict, notFound } from '../errors.js';
import type { Log } from '../kernel/log.js';
import type { Metrics } from '../metrics.js';
import type { Notifier } from '../notify/notifier.js';
import type { RunQueue } from '../queue/queue.js';
import type { NewRun, Run } from '../schemas/runs.js';
import type { RunStore } from '../store/runs.js';

/**
 * Approval: `approval: required` (or escalation) creates a run `pending_approval` with `expiresAt`
 * (`approvalTimeout`). A human's decision is one conditional UPDATE (`status = 'pending_approval'`,
 * guard `undecided`: not expired), so of concurrent decisions on any replica exactly one wins; the
 * others get 409. The sweeper expires what nobody decided in time; such a run never executes.
 */

/**
 * Makes a new run wait for a human; `reason` is `escalated` when repeated failures asked for it.
 * Its `expiresAt` (`approvalTimeout` from now) is set by the store with PostgreSQL's clock, the one
 * that also expires it, so a replica's clock running behind or ahead changes nothing.
 */
export function askApproval(run: NewRun, reason: string | null): NewRun {
  run.status = 'pending_approval';
  run.reason = reason;
  run.approvalRequired = true;
  run.events.push({ type: 'pending_approval', detail: { reason } });
  return run;
}

export interface ApprovalDeps {
  runs: RunStore;
  /** Moves on the runs waiting for a rejected or expired one (`Chains.releaseQuietly`). */
  chains: { releaseQuietly(finished: readonly Run[]): Promise<void> };
  queue: Pick<RunQueue, 'requeue'>;
  metrics: Metrics;
  notifier: Notifier;
  log: Log;
}

export function createApprovals(deps: ApprovalDeps) {
  async function refuse(id: string): Promise<never> {
    const run = await deps.runs.get(id, { events: false });
    if (!run) throw notFound(`run ${id}`);
    if (run.status === 'pending_approval') throw conflict(`run ${id} expired at ${run.approval.expiresAt}`);
    throw conflict(
      `run ${id} is ${run.status}${run.approval.decidedBy ? ` (decided by ${run.approval.decidedBy})` : ''}; only pending_approval runs can be decided`,
    );
  }

  const observeWait = (run: Run) =>
    deps.metrics.approvalWait.observe((Date.parse(run.approval.decidedAt ?? run.updatedAt) - Date.parse(run.createdAt)) / 1000);

  async function approve(id: string, by: string, comment: string | null): Promise<Run> {
    const run = await deps.runs.transition(
      id,
      ['pending_approval'],
      'queued',
      { type: 'approved', detail: { by, comment } },
      {
        decidedBy: by,
        decisionComment: comment,
      },
      'undecided',
    );
    if (!run) return refuse(id);
    deps.metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: 'queued' });
    observeWait(run);
    try {
      // requeue, not enqueue: an escalated run's earlier job may still be kept as completed under the same id.
      await deps.queue.requeue(run.id);
    } catch (err) {
      // The approval is stored; the sweeper enqueues queued runs whose job went missing.
      deps.log.warn({ runId: run.id, err: (err as Error).message }, 'approved run not enqueued yet; the sweeper will retry');
    }
    return run;
  }

  async function reject(id: string, by: string, reason: string | null): Promise<Run> {
    const run = await deps.runs.transition(
      id,
      ['pending_approval'],
      'rejected',
      { type: 'rejected', detail: { by, reason } },
      {
        decidedBy: by,
        decisionComment: reason,
        reason: 'rejected',
      },
      'undecided',
    );
    if (!run) return refuse(id);
    deps.metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: 'rejected' });
    observeWait(run);
    await deps.chains.releaseQuietly([run]);
    return run;
  }

  /** Expires the pending approvals past `expiresAt`, even when no request arrives (the sweeper calls it). */
  async function expireDue(): Promise<void> {
    const expired = await deps.runs.expireDue();
    for (const run of expired) {
      deps.metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: 'expired' });
      deps.metrics.approvalWait.observe((Date.now() - Date.parse(run.createdAt)) / 1000);
      deps.notifier.notify(run, 'expired');
    }
    await deps.chains.releaseQuietly(expired);
  }

  return { approve, reject, expireDue };
}

export type Approvals = ReturnType<typeof createApprovals>;
