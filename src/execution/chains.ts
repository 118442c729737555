import type { TargetKind } from '../../remediations/types.js';
import { decideAll, type GateItem } from '../gates/at-intake.js';
import type { Counters } from '../gates/counters.js';
import type { Log } from '../kernel/log.js';
import type { PredecessorScope } from '../matrix/template.js';
import type { MatrixSource } from '../matrix/source.js';
import type { Action, When } from '../matrix/types.js';
import type { Metrics } from '../metrics.js';
import type { Notifier } from '../notify/notifier.js';
import type { RunQueue } from '../queue/queue.js';
import { isTerminal, type Run, type RunStatus } from '../schemas/runs.js';
import { cancelledByResolution } from '../store/episodes.js';
import type { PredecessorOutcome, ReadyDependent, RunStore } from '../store/runs.js';
import type { TransitionEvent } from '../store/run-transitions.js';
import { observeStatus } from './observe.js';

export interface ChainDeps {
  matrix: MatrixSource;
  runs: RunStore;
  counters: Pick<Counters, 'peek'>;
  queue: Pick<RunQueue, 'enqueue'>;
  metrics: Metrics;
  notifier: Notifier;
  log: Log;
  dryRun: boolean;
  configured: ReadonlySet<TargetKind>;
}

/**
 * Whether a predecessor's outcome lets a dependent go on. A dry run stands for success, so a dry run
 * shows the whole chain; `verified` and `unverified` read the predecessor's verification.
 */
export function holds(when: When, outcome: Pick<PredecessorOutcome, 'status' | 'verification'>): boolean {
  if (when === 'finished') return true;
  if (when === 'failed') return outcome.status === 'failed';
  if (when === 'verified' || when === 'unverified') return outcome.verification === when;
  return outcome.status === 'succeeded' || outcome.status === 'dry_run';
}

/** What a skipped dependent's reason names: the predecessor's verification when `when` was about it, else its status. */
const outcomeName = (when: When, p: PredecessorOutcome): string =>
  (when === 'verified' || when === 'unverified') && p.verification ? p.verification : p.status;

/** Cut-off for a chain moving on in one call: a matrix chain is a handful of steps, never this many. */
const MAX_DEPTH = 64;

/** The predecessor's outcome as one line of an approval notice. */
function outcomeLine(p: PredecessorOutcome): string {
  const summary = typeof p.result?.['summary'] === 'string' ? `: ${p.result['summary']}` : p.error ? `: ${p.error}` : '';
  return `After ${p.remediation} (run ${p.id}) ${p.status}${summary}`;
}

/**
 * Runs that wait for another's outcome (`after`, `when`). A dependent is stored `waiting`; when its
 * predecessor reaches a final status, whoever put it there calls `release`, and the dependent goes
 * through the gates of a new run (approval, cooldown, limits...) with its params rendered from the
 * predecessor's outcome, or ends `skipped` with reason `predecessor_<status>`. The move out of
 * `waiting` is one conditional UPDATE, so it happens once across replicas; the sweeper's `sweep`
 * moves on what a replica that went down (or lost a race with a new dependent) left behind.
 */
export function createChains(deps: ChainDeps) {
  // Only a rule with an `after` has runs that wait for another (a dependent has its predecessor's rule),
  // so a run of any other rule releases nothing and costs no lookup. A dependent the matrix of the moment
  // does not show (created under another one, by a replica reloaded first) is the sweeper's to move on.
  const chainedRules = new WeakMap<object, ReadonlySet<string>>();
  const rulesWithChains = (): ReadonlySet<string> => {
    const matrix = deps.matrix.current;
    let names = chainedRules.get(matrix);
    if (!names) {
      names = new Set(matrix.rules.filter((r) => [...r.actions, ...r.onResolved].some((a) => a.after !== undefined)).map((r) => r.name));
      chainedRules.set(matrix, names);
    }
    return names;
  };
  const chained = () => rulesWithChains().size > 0;

  function actionOf(run: Run): Action | undefined {
    const rule = deps.matrix.current.rules.find((r) => r.name === run.rule);
    return (run.phase === 'firing' ? rule?.actions : rule?.onResolved)?.find((a) => a.key === run.action);
  }

  /** Moves each ready dependent out of `waiting`; returns the ones that ended in a final status. */
  async function moveOn(ready: readonly ReadyDependent[]): Promise<Run[]> {
    const finals: Run[] = [];
    const queued: string[] = [];
    const end = async (r: ReadyDependent, to: RunStatus, events: TransitionEvent[], reason: string) => {
      const moved = await deps.runs.transition(r.run.id, ['waiting'], to, events, { reason });
      if (moved) {
        observeStatus(moved, deps.metrics, deps.notifier);
        finals.push(moved);
      }
    };
    const toDecide: Array<{ r: ReadyDependent; item: GateItem; event: TransitionEvent }> = [];
    for (const r of ready) {
      const { run, predecessor } = r;
      const after = run.after!;
      if (cancelledByResolution(run) && r.episodeResolved) {
        await end(r, 'cancelled', [{ type: 'cancelled', detail: { reason: 'alert_resolved' } }], 'alert_resolved');
        continue;
      }
      if (!predecessor) {
        await end(r, 'skipped', [{ type: 'skipped', detail: { reason: 'no_predecessor', after: after.ref } }], 'no_predecessor');
        continue;
      }
      const goesOn = holds(after.when, predecessor);
      const event = {
        type: 'predecessor_finished',
        detail: {
          runId: predecessor.id,
          status: predecessor.status,
          reason: predecessor.reason,
          ...(predecessor.verification ? { verification: predecessor.verification } : {}),
          when: after.when,
          holds: goesOn,
        },
      };
      if (!goesOn) {
        const reason = `predecessor_${outcomeName(after.when, predecessor)}`;
        await end(r, 'skipped', [event, { type: 'skipped', detail: { reason } }], reason);
        continue;
      }
      const action = actionOf(run);
      if (!action) {
        const error = `the matrix has no action ${run.action} in rule ${run.rule} any more`;
        await end(r, 'failed', [event, { type: 'failed', detail: { reason: 'unknown_action', error } }], 'unknown_action');
        continue;
      }
      const scope: PredecessorScope = {
        status: predecessor.status,
        reason: predecessor.reason,
        error: predecessor.error,
        result: predecessor.result,
      };
      toDecide.push({ r, item: { action, alert: run.alert, after: scope }, event });
    }
    if (toDecide.length > 0) {
      const decisions = await decideAll(
        toDecide.map((d) => d.item),
        {
          counters: deps.counters,
          paused: toDecide.some((d) => d.r.paused),
          dryRun: deps.dryRun,
          configured: deps.configured,
        },
      );
      for (const [i, d] of decisions.entries()) {
        const { r, event } = toDecide[i]!;
        const moved = await deps.runs.transition(
          r.run.id,
          ['waiting'],
          d.status,
          [event, ...d.events.filter((e) => e.type !== 'created')],
          {
            params: d.params,
            gates: d.gates,
            target: d.target,
            plan: d.plan,
            error: d.error,
            reason: d.reason,
            approvalRequired: d.approvalRequired,
            expiresInMs: d.status === 'pending_approval' ? d.gates.approvalTimeoutMs : null,
            dryRun: d.dryRun,
          },
        );
        if (!moved) continue;
        observeStatus(moved, deps.metrics, deps.notifier, [outcomeLine(r.predecessor!)]);
        if (moved.status === 'queued') queued.push(moved.id);
        else if (isTerminal(moved.status)) finals.push(moved);
      }
    }
    // The runs are stored `queued`: a failed enqueue is repaired by the sweeper, like one at intake.
    await deps.queue.enqueue(queued);
    return finals;
  }

  /** Moves on the dependents of runs that just reached a final status, and theirs in turn. */
  async function release(finished: readonly Run[]): Promise<void> {
    const rules = rulesWithChains();
    let done = finished.filter((r) => isTerminal(r.status) && rules.has(r.rule));
    for (let depth = 0; done.length > 0 && depth < MAX_DEPTH; depth++) {
      done = await moveOn(await deps.runs.readyDependents({ predecessors: done.map((r) => r.id) }));
    }
  }

  /** After new runs are stored: the final ones release their dependents, the waiting ones whose predecessor already finished move on. */
  async function settle(created: readonly Run[]): Promise<void> {
    if (!chained()) return;
    const waiting = created.filter((r) => r.status === 'waiting').map((r) => r.id);
    const finals = waiting.length > 0 ? await moveOn(await deps.runs.readyDependents({ dependents: waiting })) : [];
    await release([...created.filter((r) => isTerminal(r.status)), ...finals]);
  }

  /** Every waiting run whose predecessor finished, whichever replica finished it: the sweeper's repair. */
  async function sweep(): Promise<number> {
    const ready = await deps.runs.readyDependents({ limit: 500 });
    if (ready.length === 0) return 0;
    deps.log.info({ runs: ready.length }, 'moving on waiting runs whose predecessor finished');
    await release(await moveOn(ready));
    return ready.length;
  }

  /** `release` for callers whose own outcome is stored already: a failure is left to the sweeper, never theirs. */
  function releaseQuietly(finished: readonly Run[]): Promise<void> {
    return release(finished).catch((err: Error) =>
      deps.log.warn({ err: err.message, runs: finished.map((r) => r.id) }, 'dependents not moved on yet; the sweeper will retry'),
    );
  }

  return { release, releaseQuietly, settle, sweep };
}

export type Chains = ReturnType<typeof createChains>;
