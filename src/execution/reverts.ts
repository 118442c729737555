import type { Remediation } from '../../remediations/types.js';
import { conflict, notFound } from '../errors.js';
import { decideAll } from '../gates/at-intake.js';
import { dedupId, dedupKey } from '../gates/dedup.js';
import type { Action } from '../matrix/types.js';
import type { Run } from '../schemas/runs.js';
import type { ChainDeps } from './chains.js';
import { observeStatus } from './observe.js';

/** What reverts are decided with: what chains decide their dependents with, and the catalogue for the inverses. */
export interface RevertDeps extends Omit<ChainDeps, 'matrix'> {
  catalogue: ReadonlyMap<string, Remediation>;
}

/** Why a revert run was created. */
export type RevertCause = 'unverified' | 'revert_after' | 'manual';

/** The action key of a run's revert: with the rule and the episode, the revert's dedup key, so a run is reverted once. */
export const revertKey = (run: Pick<Run, 'action'>) => `revert:${run.action}`;

/**
 * Reverts: a remediation that declares its inverse (`revert`) can be undone, from what its run
 * recorded. The revert is a run of its own (phase `revert`, `revertOf` the original), through the
 * gates of any new run: kill switch, global budget and escalation, approval as `revertApproval` says
 * (default: as the original). Its params carry the state the original left, so the inverse refuses
 * (`skipped`, reason `changed_since`) when someone changed the target since. One revert per run:
 * its dedup key is the original's with action `revert:<action>`.
 */
export function createReverts(deps: RevertDeps) {
  /**
   * Creates the revert run of `original`. For a manual revert, a run that cannot be reverted is a
   * conflict (409): not succeeded, no inverse, nothing changed, already reverted. An automatic one
   * records why not on the original instead.
   */
  async function revert(original: Run, cause: RevertCause, by?: string): Promise<Run | null> {
    const refuse = async (why: string): Promise<null> => {
      if (cause === 'manual') throw conflict(`run ${original.id} cannot be reverted: ${why}`);
      await deps.runs.addEvent(original.id, 'revert_not_created', { cause, why });
      return null;
    };
    if (original.phase === 'revert') return refuse('it is a revert itself');
    if (original.status !== 'succeeded') return refuse(`it is ${original.status}; only a succeeded run changed anything`);
    const remediation = deps.catalogue.get(original.remediation);
    if (!remediation?.revert) return refuse(`${original.remediation} has no inverse`);
    const step = remediation.revert(original.params as never, original.result ?? {});
    if (!step) return refuse('it changed nothing');
    const inverse = deps.catalogue.get(step.remediation);
    if (!inverse) return refuse(`its inverse ${step.remediation} is not in the catalogue`);

    const key = dedupKey(original.rule, revertKey(original), original.alert);
    const { existing, paused } = await deps.runs.findByKeys([key]);
    const already = existing.get(dedupId(key));
    if (already) return refuse(`it is reverted already by run ${already.id} (${already.status})`);

    const approval = original.gates.revertApproval ?? (original.approval.required && original.reason !== 'escalated' ? 'required' : 'auto');
    const action: Action = {
      rule: original.rule,
      key: revertKey(original),
      id: undefined,
      phase: 'revert',
      after: undefined,
      checkAlertFiring: false,
      onCheckError: 'skip',
      conditionQuery: undefined,
      verify: undefined,
      onUnverified: 'none',
      revertAfterMs: undefined,
      revertApproval: undefined,
      remediation: inverse,
      renderParams: () => step.params,
      approval,
      cooldownMs: 0,
      limit: undefined,
      dryRun: original.dryRun,
      approvalTimeoutMs: original.gates.approvalTimeoutMs,
      // A revert shares the global budget as the run it undoes: with its rule's severity.
      ...(original.gates.severity !== undefined ? { severity: original.gates.severity } : {}),
    };
    const [decided] = await decideAll([{ action, alert: original.alert }], {
      counters: deps.counters,
      paused,
      dryRun: deps.dryRun,
      configured: deps.configured,
    });
    const run = decided!;
    run.revertOf = original.id;
    run.events[0]!.detail = { ...run.events[0]!.detail, revertOf: original.id, cause, ...(by ? { by } : {}) };
    const [stored] = await deps.runs.insert([run]);
    if (stored!.duplicate) return refuse(`it is reverted already by run ${stored!.run.id}`);
    const created = stored!.run;
    await deps.runs.addEvent(original.id, 'revert_created', { runId: created.id, cause, ...(by ? { by } : {}) });
    deps.metrics.reverts.inc({ remediation: original.remediation });
    observeStatus(created, deps.metrics, deps.notifier, [
      `Reverts run ${original.id} (${original.remediation}, ${cause.replace('_', ' ')})`,
    ]);
    if (created.status === 'queued') await deps.queue.enqueue([created.id]);
    return created;
  }

  /** `POST /api/runs/:id/revert`: revert on demand, by a person. */
  async function revertById(id: string, by: string): Promise<Run> {
    const original = await deps.runs.get(id, { events: false });
    if (!original) throw notFound(`run ${id}`);
    return (await revert(original, 'manual', by))!;
  }

  /** Creates the reverts whose `revertAfter` is due; the sweeper calls it on every replica. */
  async function revertDue(): Promise<number> {
    const due = await deps.runs.claimRevertsDue(60_000, 100);
    for (const run of due) {
      try {
        await revert(run, 'revert_after');
        await deps.runs.clearRevertDue(run.id);
      } catch (err) {
        deps.log.warn({ runId: run.id, err: (err as Error).message }, 'revert not created yet; it is due again after its claim');
      }
    }
    return due.length;
  }

  return { revert, revertById, revertDue };
}

export type Reverts = ReturnType<typeof createReverts>;
