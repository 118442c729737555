import type { CounterGate } from './counter-gate.js';

/**
 * The global budget, `limits.global: { max: 30, per: 1h }`, over every executed run: the blast
 * radius of the whole service. Runs over it end `suppressed` (`global_budget`).
 */
export const globalBudget: CounterGate = {
  name: 'global_budget',
  lua: 'global-budget.lua',
  spec: (_s, ctx) => {
    const limit = ctx.globalLimit;
    return limit && limit.max > 0 ? { key: ctx.key('global'), max: limit.max, per: limit.perMs } : undefined;
  },
};
