import type { Log } from '../../remediations/types.js';
import { conflict, notFound } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { RunQueue } from '../queue/queue.js';
import type { RunStore } from '../store/runs.js';
import type { Run } from '../store/types.js';

export interface ApprovalDeps {
  runs: RunStore;
  queue: RunQueue;
  metrics: Metrics;
  log: Log;
}

/**
 * A human's decision on a pending run. The decision is one conditional UPDATE
 * (`status = 'pending_approval' AND expires_at > now()`), so of concurrent decisions on any
 * replica exactly one wins; the others get 409.
 */
export function createApprovals(deps: ApprovalDeps) {
  async function refuse(id: string): Promise<never> {
    const run = await deps.runs.get(id, { events: false });
    if (!run) throw notFound(`run ${id}`);
    if (run.status === 'pending_approval') throw conflict(`run ${id} expired at ${run.approval.expiresAt}`);
    throw conflict(`run ${id} is ${run.status}${run.approval.decidedBy ? ` (decided by ${run.approval.decidedBy})` : ''}; only pending_approval runs can be decided`);
  }

  const observeWait = (run: Run) => deps.metrics.approvalWait.observe((Date.parse(run.approval.decidedAt ?? run.updatedAt) - Date.parse(run.createdAt)) / 1000);

  async function approve(id: string, by: string, comment: string | null): Promise<Run> {
    const run = await deps.runs.transition(id, ['pending_approval'], 'queued', { type: 'approved', detail: { by, comment } }, {
      decidedBy: by,
      decisionComment: comment,
    }, 'AND expires_at > now()');
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
    const run = await deps.runs.transition(id, ['pending_approval'], 'rejected', { type: 'rejected', detail: { by, reason } }, {
      decidedBy: by,
      decisionComment: reason,
      reason: 'rejected',
    }, 'AND expires_at > now()');
    if (!run) return refuse(id);
    deps.metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: 'rejected' });
    observeWait(run);
    return run;
  }

  return { approve, reject };
}

export type Approvals = ReturnType<typeof createApprovals>;
