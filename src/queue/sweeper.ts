import type { Chains } from '../execution/chains.js';
import type { Reverts } from '../execution/reverts.js';
import type { Verifier } from '../execution/verifier.js';
import type { Log } from '../kernel/log.js';
import type { Approvals } from '../gates/approval.js';
import type { KillSwitch } from '../gates/kill-switch.js';
import type { RunStore } from '../store/runs.js';
import type { RunQueue } from './queue.js';

export interface SweeperDeps {
  runs: RunStore;
  chains: Pick<Chains, 'sweep'>;
  verifier: Pick<Verifier, 'verifyDue'>;
  reverts: Pick<Reverts, 'revertDue'>;
  approvals: Pick<Approvals, 'expireDue'>;
  killSwitch: Pick<KillSwitch, 'syncQueue'>;
  queue: Pick<RunQueue, 'requeue'>;
  log: Log;
  intervalMs: number;
  requeueAfterMs: number;
  /** RUN_RETENTION: finished runs and resolved episodes older than this are deleted (0 or absent: never). */
  retentionMs?: number;
}

/**
 * Periodic repairs that must happen even when no request arrives: approvals expire at `expiresAt`,
 * waiting runs whose predecessor finished move on (its replica went down, or a new dependent raced it),
 * due verifications are evaluated, due reverts (`revertAfter`) created,
 * runs stored but never enqueued (Redis failed between commit and enqueue) are enqueued, and the
 * queue's pause follows the kill switch kept in PostgreSQL (Redis may have restarted empty), and
 * finished runs and resolved episodes past RUN_RETENTION are deleted, a few batches per sweep.
 * Every replica runs it; each step is a conditional UPDATE or an idempotent enqueue, so they never
 * collide.
 */
export function createSweeper(deps: SweeperDeps) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  async function sweep(): Promise<void> {
    await deps.approvals.expireDue();
    await deps.chains.sweep();
    await deps.verifier.verifyDue();
    await deps.reverts.revertDue();
    for (const id of await deps.runs.staleQueued(deps.requeueAfterMs, 500)) {
      await deps.queue.requeue(id);
    }
    await deps.killSwitch.syncQueue();
    await retention();
  }

  async function retention(): Promise<void> {
    if (!deps.retentionMs) return;
    const deleted = await deps.runs.deleteExpired(deps.retentionMs);
    if (deleted.runs > 0 || deleted.episodes > 0) {
      deps.log.info(
        { runs: deleted.runs, events: deleted.events, episodes: deleted.episodes, more: deleted.more, retentionMs: deps.retentionMs },
        'deleted runs and resolved episodes past RUN_RETENTION',
      );
    }
  }

  async function tick(): Promise<void> {
    try {
      await sweep();
    } catch (err) {
      deps.log.warn({ err: (err as Error).message }, 'sweep failed; will retry');
    }
  }

  return {
    start(): void {
      const loop = () => {
        running = tick().finally(() => {
          running = undefined;
          if (timer) timer = setTimeout(loop, deps.intervalMs);
        });
      };
      timer = setTimeout(loop, deps.intervalMs);
    },
    sweep,
    async stop(): Promise<void> {
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}

export type Sweeper = ReturnType<typeof createSweeper>;
