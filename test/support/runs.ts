import { randomUUID } from 'node:crypto';
import type { Limit } from '../../src/matrix/types.js';
import type { NewRun, Run } from '../../src/schemas/runs.js';
import { alert } from './alerts.js';

/** A stored run of test.count on test/a, queued, with no gate settings unless given: for the gate tests that need no store. */
export function stored(over: Partial<Run> & { cooldownMs?: number; limit?: Limit | null } = {}): Run {
  const { cooldownMs = 0, limit = null, ...rest } = over;
  const now = new Date().toISOString();
  return {
    id: randomUUID(),
    rule: 'rule',
    action: 'firing:0',
    phase: 'firing',
    remediation: 'test.count',
    target: 'test/a',
    params: { key: 'a' },
    status: 'queued',
    reason: null,
    alert: alert({ alertname: 'Plain', key: 'a' }),
    approval: { required: false, expiresAt: null, decidedBy: null, decidedAt: null, comment: null },
    dryRun: false,
    gates: { cooldownMs, limit, approvalTimeoutMs: 1_800_000 },
    attempts: 0,
    leaseUntil: null,
    after: null,
    verification: null,
    verifyUntil: null,
    revertOf: null,
    revertDue: null,
    plan: 'count an execution for a',
    result: null,
    error: null,
    createdAt: now,
    updatedAt: now,
    ...rest,
  };
}

/** Hostile alert data as the notice tests use it: `value` in the run's target, params, alert, plan and error. */
export function hostileRun(value: string, over: Partial<Run> = {}): Run {
  return stored({
    rule: 'provider-down',
    remediation: 'conduit.enable-provider',
    target: `conduit/provider/${value}`,
    params: { provider: value },
    status: 'pending_approval',
    alert: alert({ alertname: 'ConduitProviderDown', provider: value }),
    approval: { required: true, expiresAt: '2026-11-27T14:01:47.000Z', decidedBy: null, decidedAt: null, comment: null },
    plan: `Set isEnabled=true on Conduit provider "${value}"`,
    error: `Conduit has no provider "${value}"`,
    ...over,
  });
}

/** A new queued run of test.count for the store's own tests, its target and fingerprint from `key`. */
export const newRun = (key: string): NewRun => ({
  id: randomUUID(),
  rule: 'rule',
  action: 'firing:0',
  phase: 'firing',
  remediation: 'test.count',
  target: `test/${key}`,
  params: { key },
  status: 'queued',
  reason: null,
  alert: { ...alert({ alertname: 'Plain', key }), fingerprint: key.padStart(16, '0') },
  dryRun: false,
  gates: { cooldownMs: 0, limit: null, approvalTimeoutMs: 1_800_000 },
  plan: `count an execution for ${key}`,
  error: null,
  after: null,
  revertOf: null,
  approvalRequired: false,
  expiresAt: null,
  events: [{ type: 'created' }, { type: 'queued' }],
});
