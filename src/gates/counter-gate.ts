import type { GlobalLimit } from '../matrix/types.js';
import type { RunGates } from '../schemas/runs.js';

/** The run a counter gate decides about: at intake a new run, at execution a stored one. */
export interface GateSubject {
  runId: string;
  rule: string;
  action: string;
  remediation: string;
  target: string;
  gates: RunGates;
  /** A human approved this run: escalation no longer applies to it. */
  approved: boolean;
}

export interface CounterContext {
  /** A Redis key under the service's prefix: `<prefix>:gates:<parts joined by :>`. */
  key(...parts: string[]): string;
  globalLimit: GlobalLimit | undefined;
}

/**
 * A gate whose state is a counter in Redis, checked and taken by `lua/counters.lua` together with
 * the others. `lua` is the file (in `lua/`) that defines `gates['<name>']`; `spec` says what the
 * script needs for one run, or undefined when the gate does not apply to it.
 */
export interface CounterGate {
  name: 'escalated' | 'cooldown' | 'rate_limit' | 'global_budget';
  lua: string;
  spec(subject: GateSubject, ctx: CounterContext): Record<string, string | number> | undefined;
}
