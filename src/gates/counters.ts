import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { on } from '../errors.js';
import type { GlobalLimit } from '../matrix/types.js';
import { cooldown } from './cooldown.js';
import type { CounterContext, CounterGate, GateSubject } from './counter-gate.js';
import { escalation } from './escalation.js';
import { globalBudget } from './global-budget.js';
import { rateLimit } from './rate-limit.js';

/** The counter gates, in the order they are checked: the first that stops a run names its reason. */
export const COUNTER_GATES: readonly CounterGate[] = [escalation, cooldown, rateLimit, globalBudget];

export type CounterReason = CounterGate['name'];

export type CounterVerdict =
  /** `took`: this call took from the gates (false for a peek, or for a run that already held its place). */
  { ok: true; took: boolean } | { ok: false; reason: CounterReason; retryInMs: number };

const LUA_DIR = join(dirname(fileURLToPath(import.meta.url)), 'lua');
const lua = (file: string) => readFileSync(join(LUA_DIR, file), 'utf8');

/** The script: the gates' definitions (`window.lua` serves two of them), then `counters.lua`. */
function script(gates: readonly CounterGate[]): string {
  return ['local gates = {}', lua('window.lua'), ...gates.map((g) => lua(g.lua)), lua('counters.lua')].join('\n');
}

const COMMAND = 'remediatorCounters';

/**
 * The counter gates in Redis, so they hold across replicas. `peek` asks what they would say for many
 * runs in one round trip; `take` passes a run through all of them or takes nothing, idempotently per
 * run (a retry is not stopped by its own cooldown); `release` gives back what a take took.
 */
export function createCounters(
  redis: Redis,
  prefix: string,
  /** The global budget, or how to read it (it changes when the matrix is reloaded). */
  globalLimit: GlobalLimit | undefined | (() => GlobalLimit | undefined),
  gates: readonly CounterGate[] = COUNTER_GATES,
) {
  const r = redis as Redis & Record<string, (json: string) => Promise<string>>;
  if (typeof r[COMMAND] !== 'function') r.defineCommand(COMMAND, { numberOfKeys: 0, lua: script(gates) });
  const readLimit = typeof globalLimit === 'function' ? globalLimit : () => globalLimit;
  const ctx: CounterContext = {
    key: (...parts) => `${prefix}:gates:${parts.join(':')}`,
    get globalLimit() {
      return readLimit();
    },
  };
  const order = gates.map((g) => g.name);

  const request = (s: GateSubject) => {
    const specs: Record<string, unknown> = {};
    for (const gate of gates) {
      const spec = gate.spec(s, ctx);
      if (spec) specs[gate.name] = spec;
    }
    return { id: s.runId, held: ctx.key('held', s.runId), gates: specs };
  };

  async function call(mode: 'peek' | 'take' | 'release', subjects: readonly GateSubject[]): Promise<CounterVerdict[]> {
    if (subjects.length === 0) return [];
    const json = JSON.stringify({ mode, order, runs: subjects.map(request) });
    const answer = JSON.parse(await on('Redis', `gate counters (${mode})`, r[COMMAND]!.call(r, json))) as Array<{
      ok: boolean;
      took?: boolean;
      gate?: CounterReason;
      ms?: number;
    }>;
    return answer.map((a): CounterVerdict =>
      a.ok ? { ok: true, took: a.took === true } : { ok: false, reason: a.gate!, retryInMs: Number(a.ms) },
    );
  }

  return {
    /** What the gates would say now for each subject, taking nothing. */
    peek: (subjects: readonly GateSubject[]) => call('peek', subjects),
    take: async (subject: GateSubject): Promise<CounterVerdict> => (await call('take', [subject]))[0]!,
    async release(subject: GateSubject): Promise<void> {
      await call('release', [subject]);
    },
    key: ctx.key,
  };
}

export type Counters = ReturnType<typeof createCounters>;
