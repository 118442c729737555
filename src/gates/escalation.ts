import type { Redis } from 'ioredis';
import type { CounterGate } from './counter-gate.js';

/** Consecutive failures of a remediation on one target after which its runs need approval. */
export const ESCALATE_AFTER = 3;

const streakParts = (remediation: string, target: string) => ['streak', remediation, target];

/**
 * Escalation: a remediation that failed `ESCALATE_AFTER` times in a row on one target stops
 * running on its own; its next runs are `pending_approval` with reason `escalated` until one succeeds.
 */
export const escalation: CounterGate = {
  name: 'escalated',
  lua: 'escalation.lua',
  spec: (s, ctx) => (s.approved ? undefined : { key: ctx.key(...streakParts(s.remediation, s.target)), after: ESCALATE_AFTER }),
};

/** The failure streak, counted by the executor as outcomes are recorded. */
export function createFailureStreak(redis: Redis, key: (...parts: string[]) => string) {
  return {
    /** Returns the streak after this failure. */
    recordFailure: (remediation: string, target: string): Promise<number> => redis.incr(key(...streakParts(remediation, target))),
    async recordSuccess(remediation: string, target: string): Promise<void> {
      await redis.del(key(...streakParts(remediation, target)));
    },
    /** Escalates at once: a remediation that did not help needs a human for its next runs on this target. */
    async arm(remediation: string, target: string): Promise<void> {
      const k = key(...streakParts(remediation, target));
      await redis.eval(
        `if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end`,
        1,
        k,
        ESCALATE_AFTER,
      );
    },
  };
}
