import type { CounterGate } from './counter-gate.js';
import { budgetFor } from './severity.js';

/**
 * The global budget, `limits.global: { max: 30, per: 1h }`, over every executed run: the blast
 * radius of the whole service. Runs over it end `suppressed` (`global_budget`).
 *
 * `reserve: { critical: 10 }` keeps the last 10 of `max` for runs of rules of that severity or
 * higher (`gates/severity.ts`): lower ones stop at 20 executions in the window, critical ones at 30;
 * several reserves nest (`{ critical: 10, high: 5 }`: high stops at 20, lower ones at 15). Each run's
 * share is passed to the script as its `max`, so the check and the take stay one atomic step.
 * A notice (`globalBudget: false` in its gates: remediations that require `notify`) is neither counted
 * nor stopped: on-call hears of what happened even with the budget spent.
 */
export const globalBudget: CounterGate = {
  name: 'global_budget',
  lua: 'global-budget.lua',
  spec: (s, ctx) => {
    const limit = ctx.globalLimit;
    if (!limit || limit.max <= 0 || s.gates.globalBudget === false) return undefined;
    return { key: ctx.key('global'), max: budgetFor(limit.max, limit.reserve, s.gates.severity), per: limit.perMs };
  },
};
