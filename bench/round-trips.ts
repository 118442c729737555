import type { Child } from './processes.js';

// ---------------------------------------------------------------------------------------------------
// Round trips: the service counts what it sends to PostgreSQL and Redis.

export interface OpTiming {
  calls: number;
  totalMs: number;
  maxMs: number;
}

export interface Counters {
  pgQueries: number;
  redisCommands: number;
  /** The intake's steps, timed in the service (see service.ts). */
  timings: Record<string, OpTiming>;
}

async function counters(svc: Child): Promise<Counters> {
  const line = svc.waitLine('COUNTERS ', 10_000);
  svc.send('counters');
  return JSON.parse((await line).slice('COUNTERS '.length)) as Counters;
}

/** Runs `fn` and returns what the service sent to PostgreSQL and Redis meanwhile, and its step timings. */
export async function counted<T>(svc: Child, fn: () => Promise<T>): Promise<{ value: T; sent: Counters }> {
  const before = await counters(svc);
  const value = await fn();
  const after = await counters(svc);
  return {
    value,
    sent: {
      pgQueries: after.pgQueries - before.pgQueries,
      redisCommands: after.redisCommands - before.redisCommands,
      timings: after.timings,
    },
  };
}
