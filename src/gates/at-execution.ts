import type { Remediation, TargetKind } from '../../remediations/types.js';
import type { RunQueue } from '../queue/queue.js';
import type { Run } from '../schemas/runs.js';
import { cancelledByResolution } from '../store/episodes.js';
import type { ForExecution } from '../store/runs.js';
import type { ConfirmFiring } from './alert-firing.js';
import type { CheckCondition } from './condition.js';
import type { GateSubject } from './counter-gate.js';
import type { CounterReason, Counters } from './counters.js';
import { outOfScope } from './scope.js';

/** What the gates say about a run a worker picked up. */
export type ExecutionVerdict =
  /** Not queued or running any more: decided elsewhere. */
  | { kind: 'gone' }
  /** Another worker holds the run (its lease has not run out): look again after `delayMs`. */
  | { kind: 'held'; delayMs: number }
  /** The kill switch is on: put the job back. */
  | { kind: 'paused' }
  /** `resolveEpisode`: Alertmanager said the alert no longer fires; the episode is to be recorded resolved. */
  | { kind: 'cancel'; reason: 'alert_resolved'; resolveEpisode?: boolean }
  /** The re-check that the alert still fires could not be made in time. */
  | { kind: 'skip'; reason: 'check_unavailable' }
  /** Before any I/O and before the counters: nothing was taken, nothing is given back. */
  | {
      kind: 'fail';
      reason: 'unknown_remediation' | 'target_not_configured' | 'out_of_scope';
      error: string;
      detail?: Record<string, unknown>;
    }
  | { kind: 'dry_run' }
  | { kind: 'suppress'; reason: Exclude<CounterReason, 'escalated'>; retryInMs: number }
  /** `check.query` answered an empty result: the condition the remediation was for has gone. */
  | { kind: 'suppress'; reason: 'condition_cleared'; retryInMs: 0 }
  | { kind: 'escalate' }
  /** A previous attempt executed the remediation but could not record it: record this result, do not run it again. */
  | { kind: 'record'; result: Record<string, unknown> }
  /** Every gate passed; `took` says whether this call took from the counters (to give back if the claim fails). */
  | { kind: 'execute'; remediation: Remediation; took: boolean };

export interface ExecutionGateDeps {
  counters: Pick<Counters, 'peek' | 'take'>;
  queue: Pick<RunQueue, 'executedResult'>;
  catalogue: ReadonlyMap<string, Remediation>;
  configured: ReadonlySet<TargetKind>;
  /** The re-check with Alertmanager; absent when ALERTMANAGER_URL is unset. */
  confirmFiring?: ConfirmFiring;
  /** `check.query` against Prometheus; absent when PROMETHEUS_URL is unset. */
  checkCondition?: CheckCondition;
}

/** The run as the counter gates see it at execution. */
export const gateSubject = (run: Run): GateSubject => ({
  runId: run.id,
  rule: run.rule,
  action: run.action,
  remediation: run.remediation,
  target: run.target ?? run.remediation,
  gates: run.gates,
  approved: run.approval.decidedBy !== null,
});

const IN_FLIGHT: readonly string[] = ['queued', 'running'];

/**
 * The gates at execution, in order: still in flight, already executed, not leased by another worker,
 * kill switch, resolved alert (reported to the webhook, or answered by Alertmanager), the condition
 * (`check.query`, answered by Prometheus), known remediation, params within the scope the run was created with
 * (`allow`, checked again on the params as stored), dry run (counters peeked only), target configured,
 * then escalation, cooldown, rate limit and global budget, taken all at once or not at all.
 */
export function createExecutionGates(deps: ExecutionGateDeps) {
  return async function check(found: ForExecution): Promise<ExecutionVerdict> {
    const { run } = found;
    if (!IN_FLIGHT.includes(run.status)) return { kind: 'gone' };
    // A remediation that finished while its outcome could not be written (a dry run never does) is recorded at once, not
    // after its worker's lease: nothing is left to wait for, and it must not run again.
    const executed = run.status === 'running' && !run.dryRun ? await deps.queue.executedResult(run.id) : undefined;
    if (executed) return { kind: 'record', result: executed };
    if (run.status === 'running' && found.leaseLeftMs > 0) return { kind: 'held', delayMs: found.leaseLeftMs + 100 };
    if (found.paused) return { kind: 'paused' };
    if (cancelledByResolution(run) && found.episodeResolved) return { kind: 'cancel', reason: 'alert_resolved' };
    const firing = deps.confirmFiring ? await deps.confirmFiring(run) : { kind: 'unchecked' as const };
    if (firing.kind === 'resolved') return { kind: 'cancel', reason: 'alert_resolved', resolveEpisode: true };
    if (firing.kind === 'unavailable' && !firing.proceed) return { kind: 'skip', reason: 'check_unavailable' };
    const condition = deps.checkCondition ? await deps.checkCondition(run) : { kind: 'unchecked' as const };
    if (condition.kind === 'cleared') return { kind: 'suppress', reason: 'condition_cleared', retryInMs: 0 };
    if (condition.kind === 'unavailable' && !condition.proceed) return { kind: 'skip', reason: 'check_unavailable' };

    const remediation = deps.catalogue.get(run.remediation);
    if (!remediation) return { kind: 'fail', reason: 'unknown_remediation', error: `no remediation named ${run.remediation}` };
    const outside = outOfScope(run.gates.allow, run.params);
    if (outside) {
      const { param, value, pattern, message } = outside;
      return { kind: 'fail', reason: 'out_of_scope', error: message, detail: { param, value, pattern, at: 'execution' } };
    }
    const subject = gateSubject(run);
    if (run.dryRun) {
      const [verdict] = await deps.counters.peek([subject]);
      if (verdict && !verdict.ok && verdict.reason !== 'escalated')
        return { kind: 'suppress', reason: verdict.reason, retryInMs: verdict.retryInMs };
      return { kind: 'dry_run' };
    }
    if (remediation.requires !== 'none' && !deps.configured.has(remediation.requires)) {
      return { kind: 'fail', reason: 'target_not_configured', error: `${remediation.requires} is not configured` };
    }
    const verdict = await deps.counters.take(subject);
    if (!verdict.ok)
      return verdict.reason === 'escalated'
        ? { kind: 'escalate' }
        : { kind: 'suppress', reason: verdict.reason, retryInMs: verdict.retryInMs };
    return { kind: 'execute', remediation, took: verdict.took };
  };
}

export type ExecutionGates = ReturnType<typeof createExecutionGates>;
