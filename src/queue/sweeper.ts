import type { Log } from '../../remediations/types.js';
import type { Metrics } from '../metrics.js';
import type { Notifier } from '../notify/notifier.js';
import type { ControlStore } from '../store/control.js';
import type { RunStore } from '../store/runs.js';
import type { RunQueue } from './queue.js';

export interface SweeperDeps {
  runs: RunStore;
  control: ControlStore;
  queue: RunQueue;
  metrics: Metrics;
  notifier: Notifier;
  log: Log;
  intervalMs: number;
  requeueAfterMs: number;
}

/**
 * Periodic repairs that must happen even when no request arrives: approvals expire at `expiresAt`,
 * runs stored but never enqueued (Redis failed between commit and enqueue) are enqueued, and the
 * queue's pause follows the kill switch kept in PostgreSQL (Redis may have restarted empty).
 * Every replica runs it; each step is a conditional UPDATE or an idempotent enqueue, so they never
 * collide.
 */
export function createSweeper(deps: SweeperDeps) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  async function sweep(): Promise<void> {
    for (const run of await deps.runs.expireDue()) {
      deps.metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: 'expired' });
      deps.metrics.approvalWait.observe((Date.now() - Date.parse(run.createdAt)) / 1000);
      deps.notifier.notify(run, 'expired');
    }
    for (const id of await deps.runs.staleQueued(deps.requeueAfterMs, 500)) {
      await deps.queue.requeue(id);
    }
    const { paused } = await deps.control.get();
    if (paused !== (await deps.queue.queue.isPaused())) {
      if (paused) await deps.queue.queue.pause();
      else await deps.queue.queue.resume();
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
