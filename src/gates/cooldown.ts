import type { CounterGate } from './counter-gate.js';

/**
 * Cooldown per (remediation, target), taken when a run executes: `cooldown: 30m` means a second
 * episode of the same alert within 30 minutes ends `suppressed` (`cooldown`). Matrix: `cooldown`
 * per action, `defaults.cooldown`.
 */
export const cooldown: CounterGate = {
  name: 'cooldown',
  lua: 'cooldown.lua',
  spec: (s, ctx) => (s.gates.cooldownMs > 0 ? { key: ctx.key('cooldown', s.remediation, s.target), ms: s.gates.cooldownMs } : undefined),
};
