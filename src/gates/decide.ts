import { randomUUID } from 'node:crypto';
import type { TargetKind } from '../../remediations/types.js';
import { prepare } from '../matrix/match.js';
import type { Action } from '../matrix/types.js';
import type { AlertSnapshot, NewRun } from '../store/types.js';
import { ESCALATE_AFTER, type Budget, type BudgetRequest } from './budget.js';

export interface IntakeGateContext {
  budget: Budget;
  paused: boolean;
  dryRun: boolean;
  configured: ReadonlySet<TargetKind>;
  now: () => Date;
}

interface Pending {
  run: NewRun;
  action: Action;
  request: BudgetRequest;
}

/**
 * Decides the first status of new runs, in gate order: params valid, target configured, kill switch,
 * approval (a required one, or escalation after repeated failures), then cooldown, rate limit and
 * global budget. The budget is only peeked at, for all runs in one round trip: it is taken when a
 * run executes.
 */
export async function decideAll(items: ReadonlyArray<{ action: Action; alert: AlertSnapshot }>, ctx: IntakeGateContext): Promise<NewRun[]> {
  const runs: NewRun[] = [];
  const pending: Pending[] = [];
  for (const { action, alert } of items) {
    const { run, request } = precheck(action, alert, ctx);
    runs.push(run);
    if (request) pending.push({ run, action, request });
  }
  const verdicts = await ctx.budget.peekMany(pending.map((p) => p.request));
  pending.forEach(({ run, action }, i) => {
    const verdict = verdicts[i]!;
    if (!verdict.ok && verdict.reason === 'escalated') askApproval(run, action, ctx, 'escalated');
    else if (action.approval === 'required') askApproval(run, action, ctx, null);
    else if (!verdict.ok) end(run, 'suppressed', verdict.reason, { retryInMs: verdict.retryInMs });
    else run.events.push({ type: 'queued', detail: run.dryRun ? { dryRun: true } : {} });
  });
  return runs;
}

function end(run: NewRun, status: NewRun['status'], reason: string, detail: Record<string, unknown> = {}): NewRun {
  run.status = status;
  run.reason = reason;
  run.events.push({ type: status, detail: { reason, ...detail } });
  return run;
}

function askApproval(run: NewRun, action: Action, ctx: IntakeGateContext, reason: string | null): NewRun {
  run.status = 'pending_approval';
  run.reason = reason;
  run.approvalRequired = true;
  run.expiresAt = new Date(ctx.now().getTime() + action.approvalTimeoutMs).toISOString();
  run.events.push({ type: 'pending_approval', detail: { reason, expiresAt: run.expiresAt } });
  return run;
}

/** The gates decided without Redis; a run still open needs the budget's verdict (`request`). */
function precheck(action: Action, alert: AlertSnapshot, ctx: IntakeGateContext): { run: NewRun; request?: BudgetRequest } {
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
  if (!prepared.ok) {
    run.error = prepared.error;
    return { run: end(run, 'failed', 'invalid_params', { error: prepared.error }) };
  }
  const requires = action.remediation.requires;
  if (!run.dryRun && requires !== 'none' && !ctx.configured.has(requires)) return { run: end(run, 'failed', 'target_not_configured', { requires }) };
  if (ctx.paused) return { run: end(run, 'suppressed', 'paused') };
  return {
    run,
    request: {
      runId: run.id,
      rule: run.rule,
      actionKey: run.action,
      remediation: run.remediation,
      target: prepared.target,
      cooldownMs: action.cooldownMs,
      limit: action.limit,
      escalateAfter: ESCALATE_AFTER,
    },
  };
}
