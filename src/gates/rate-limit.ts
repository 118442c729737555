import type { CounterGate } from './counter-gate.js';

/**
 * Rate limit per action over all its targets: `limit: { max: 3, per: 1h }` lets three executions
 * through per sliding hour; the rest end `suppressed` (`rate_limit`).
 */
export const rateLimit: CounterGate = {
  name: 'rate_limit',
  lua: 'rate-limit.lua',
  spec: (s, ctx) => {
    const limit = s.gates.limit;
    return limit && limit.max > 0 ? { key: ctx.key('limit', s.rule, s.action), max: limit.max, per: limit.perMs } : undefined;
  },
};
