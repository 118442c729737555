import { setTimeout as sleep } from 'node:timers/promises';

export type Attempted<T> = { ok: true; value: T; attempts: number } | { ok: false; gaveUpAfterMs: number };

const RETRY_MAX_MS = 10_000;

/**
 * Calls `attempt` until it answers or `timeoutMs` has passed, waiting 1 s, 2 s, 4 s... (at most 10 s)
 * between tries. Each try gets a signal that fires at the deadline or with `shutdown`; `onFailure`
 * hears about every failed try (`last` for the one it gives up after, with the time spent). A shutdown rethrows.
 */
export async function retryFor<T>(
  attempt: (signal: AbortSignal, n: number) => Promise<T>,
  opts: { timeoutMs: number; shutdown: AbortSignal; onFailure(err: unknown, n: number, last: boolean, elapsedMs: number): Promise<void> },
): Promise<Attempted<T>> {
  const started = Date.now();
  for (let n = 1; ; n++) {
    const left = Math.max(1, opts.timeoutMs - (Date.now() - started));
    try {
      return { ok: true, value: await attempt(AbortSignal.any([opts.shutdown, AbortSignal.timeout(left)]), n), attempts: n };
    } catch (err) {
      if (opts.shutdown.aborted) throw err;
      const remaining = opts.timeoutMs - (Date.now() - started);
      await opts.onFailure(err, n, remaining <= 0, Date.now() - started);
      if (remaining <= 0) return { ok: false, gaveUpAfterMs: Date.now() - started };
      await sleep(Math.min(remaining, 1000 * 2 ** (n - 1), RETRY_MAX_MS), undefined, { signal: opts.shutdown });
    }
  }
}
