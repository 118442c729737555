import type { Server, ServerResponse } from 'node:http';

/**
 * Fault injection shared by the HTTP stand-ins: the next N requests answer a status, the next request
 * is delayed, and closing cancels pending delays and drops open connections.
 */
export function faultInjection(server: Server) {
  const failures: number[] = [];
  let pendingDelay = 0;
  const timers = new Set<NodeJS.Timeout>();

  return {
    /** Waits out a delay set by `delayNext`; false when the client went away meanwhile. */
    async delay(res: ServerResponse): Promise<boolean> {
      const ms = pendingDelay;
      pendingDelay = 0;
      if (ms <= 0) return true;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t);
          resolve();
        }, ms);
        timers.add(t);
      });
      return !res.destroyed;
    },
    /** The status to fail this request with, if `failNext` asked for one. */
    nextFailure: (): number | undefined => failures.shift(),
    failNext(count: number, status: number): void {
      for (let i = 0; i < count; i++) failures.push(status);
    },
    delayNext(ms: number): void {
      pendingDelay = ms;
    },
    close(): Promise<void> {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      // Idempotent, so a test may close it early to simulate an outage and still clean up after.
      if (!server.listening) return Promise.resolve();
      return new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
