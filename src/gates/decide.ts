import { randomUUID } from 'node:crypto';
import type { TargetKind } from '../../remediations/types.js';
import { prepare } from '../matrix/match.js';
import type { Action } from '../matrix/types.js';
import type { AlertSnapshot, NewRun } from '../store/types.js';
import { ESCALATE_AFTER, type Budget } from './budget.js';

export interface IntakeGateContext {
  budget: Budget;
  paused: boolean;
  dryRun: boolean;
  configured: ReadonlySet<TargetKind>;
  now: () => Date;
}

/**
 * Decides the first status of a new run, in gate order: params valid, target configured, kill switch,
 * approval (a required one, or escalation after repeated failures), then cooldown, rate limit and
 * global budget. Nothing is taken from the budget here: that happens when the run executes.
 */
export async function decide(action: Action, alert: AlertSnapshot, ctx: IntakeGateContext): Promise<NewRun> {
  const prepared = prepare(action, alert);
  const run: NewRun = {
    id: randomUUID(),
    rule: action.rule,
    action: action.key,
    phase: action.phase,
    remediation: action.remediation.name,
    target: prepared.ok ? prepared.target : null,
    params: prepared.params,
    status: 'queued',
    reason: null,
    alert,
    approvalRequired: false,
    expiresAt: null,
    dryRun: ctx.dryRun || action.dryRun,
    gates: { cooldownMs: action.cooldownMs, limit: action.limit ?? null, approvalTimeoutMs: action.approvalTimeoutMs },
    plan: prepared.ok ? prepared.plan : null,
    error: null,
    events: [{ type: 'created', detail: { rule: action.rule, action: action.key, alertStatus: alert.status } }],
  };
  const end = (status: NewRun['status'], reason: string, detail: Record<string, unknown> = {}) => {
    run.status = status;
    run.reason = reason;
    run.events.push({ type: status, detail: { reason, ...detail } });
    return run;
  };
  const askApproval = (reason: string | null) => {
    run.status = 'pending_approval';
    run.reason = reason;
    run.approvalRequired = true;
    run.expiresAt = new Date(ctx.now().getTime() + action.approvalTimeoutMs).toISOString();
    run.events.push({ type: 'pending_approval', detail: { reason, expiresAt: run.expiresAt } });
    return run;
  };

  if (!prepared.ok) {
    run.error = prepared.error;
    return end('failed', 'invalid_params', { error: prepared.error });
  }
  const requires = action.remediation.requires;
  if (!run.dryRun && requires !== 'none' && !ctx.configured.has(requires)) return end('failed', 'target_not_configured', { requires });
  if (ctx.paused) return end('suppressed', 'paused');

  const verdict = await ctx.budget.peek({
    runId: run.id,
    rule: run.rule,
    actionKey: run.action,
    remediation: run.remediation,
    target: prepared.target,
    cooldownMs: action.cooldownMs,
    limit: action.limit,
    escalateAfter: ESCALATE_AFTER,
  });
  if (!verdict.ok && verdict.reason === 'escalated') return askApproval('escalated');
  if (action.approval === 'required') return askApproval(null);
  if (!verdict.ok) return end('suppressed', verdict.reason, { retryInMs: verdict.retryInMs });
  run.events.push({ type: 'queued', detail: run.dryRun ? { dryRun: true } : {} });
  return run;
}
