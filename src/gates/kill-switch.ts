import type { Log } from '../kernel/log.js';
import type { RunQueue } from '../queue/queue.js';
import type { KillSwitchState, KillSwitchStore } from '../store/kill-switch.js';

/**
 * The kill switch: `POST /api/control/pause` stores the flag in PostgreSQL, which every replica
 * reads and which survives restarts. While paused, new runs end `suppressed` (`paused`) at intake
 * (the flag is read with the dedup lookup) and a worker puts queued jobs back (the flag is read
 * with the run). BullMQ's queue pause only spares workers a fetch; the sweeper keeps it in step.
 */
export function createKillSwitch(deps: { store: KillSwitchStore; queue: Pick<RunQueue, 'queue'>; log: Log }) {
  const { store, queue, log } = deps;
  return {
    state: (): Promise<KillSwitchState> => store.get(),
    async pause(actor: string, reason: string | null): Promise<KillSwitchState> {
      const state = await store.set(true, actor, reason);
      await queue.queue.pause().catch((err: Error) => log.warn({ err: err.message }, 'queue not paused yet'));
      return state;
    },
    async resume(actor: string): Promise<KillSwitchState> {
      const state = await store.set(false, actor, null);
      await queue.queue.resume().catch((err: Error) => log.warn({ err: err.message }, 'queue not resumed yet'));
      return state;
    },
    /** Makes the queue's pause follow the flag (Redis may have restarted empty, a replica may have missed a change). */
    async syncQueue(): Promise<void> {
      const { paused } = await store.get();
      if (paused !== (await queue.queue.isPaused())) {
        if (paused) await queue.queue.pause();
        else await queue.queue.resume();
      }
    },
  };
}

export type KillSwitch = ReturnType<typeof createKillSwitch>;
