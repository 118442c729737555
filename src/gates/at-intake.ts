import { randomUUID } from 'node:crypto';
import type { TargetKind } from '../../remediations/types.js';
import { prepare } from '../matrix/match.js';
import type { PredecessorScope } from '../matrix/template.js';
import type { Action } from '../matrix/types.js';
import type { AlertSnapshot, NewRun } from '../schemas/runs.js';
import { askApproval } from './approval.js';
import type { GateSubject } from './counter-gate.js';
import type { Counters } from './counters.js';
import { isDryRun } from './dry-run.js';
import { outOfScope } from './scope.js';

export interface IntakeGateContext {
  counters: Pick<Counters, 'peek'>;
  /** The kill switch, read with the dedup lookup. */
  paused: boolean;
  dryRun: boolean;
  configured: ReadonlySet<TargetKind>;
}

/** An action to decide for an alert; `after` is its predecessor's outcome when a waiting run moves on. */
export interface GateItem {
  action: Action;
  alert: AlertSnapshot;
  after?: PredecessorScope;
}

/**
 * The gates at intake: decides the first status of new runs, in gate order: a predecessor to wait
 * for (`waiting`, decided again with its outcome), params valid, params within the action's scope
 * (`allow`, `out_of_scope`), target configured, kill switch,
 * approval (a required one, or escalation after repeated failures), then cooldown, rate limit and
 * global budget. The counters are only peeked at, for all runs in one round trip: they are taken
 * when a run executes. (Dedup happens at the insert, by unique index.)
 */
export async function decideAll(items: ReadonlyArray<GateItem>, ctx: IntakeGateContext): Promise<NewRun[]> {
  const runs: NewRun[] = [];
  const open: Array<{ run: NewRun; action: Action; subject: GateSubject }> = [];
  for (const item of items) {
    const { action } = item;
    const { run, subject } = precheck(item, ctx);
    runs.push(run);
    if (subject) open.push({ run, action, subject });
  }
  const verdicts = await ctx.counters.peek(open.map((o) => o.subject));
  open.forEach(({ run, action }, i) => {
    const verdict = verdicts[i]!;
    if (!verdict.ok && verdict.reason === 'escalated') askApproval(run, 'escalated');
    else if (action.approval === 'required') askApproval(run, null);
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

/** The action's Prometheus queries, rendered for this alert (and predecessor): kept with the run like its other gate settings. */
function queries(action: Action, alert: AlertSnapshot, after: PredecessorScope | undefined): Partial<NewRun['gates']> {
  if (!action.conditionQuery && !action.verify) return {};
  const scope = {
    labels: alert.labels,
    annotations: alert.annotations,
    alert: { fingerprint: alert.fingerprint, startsAt: alert.startsAt, status: alert.status },
    ...(after ? { after } : {}),
  };
  return {
    ...(action.conditionQuery ? { checkQuery: action.conditionQuery.render(scope) } : {}),
    ...(action.verify
      ? {
          verify: { query: action.verify.query.render(scope), withinMs: action.verify.withinMs, everyMs: action.verify.everyMs },
          onUnverified: action.onUnverified,
        }
      : {}),
  };
}

/** The gates decided without Redis; a run still open needs the counters' verdict (`subject`). */
function precheck({ action, alert, after }: GateItem, ctx: IntakeGateContext): { run: NewRun; subject?: GateSubject } {
  const prepared = prepare(action, alert, after);
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
    dryRun: isDryRun(ctx.dryRun, action),
    gates: {
      cooldownMs: action.cooldownMs,
      limit: action.limit ?? null,
      approvalTimeoutMs: action.approvalTimeoutMs,
      alertFiring: action.checkAlertFiring,
      onCheckError: action.onCheckError,
      ...queries(action, alert, after),
      ...(action.revertAfterMs !== undefined ? { revertAfterMs: action.revertAfterMs } : {}),
      ...(action.revertApproval !== undefined ? { revertApproval: action.revertApproval } : {}),
      ...(action.silenceMs !== undefined ? { silenceMs: action.silenceMs } : {}),
      ...(action.allow ? { allow: { ...action.allow } } : {}),
      ...(action.severity !== undefined ? { severity: action.severity } : {}),
      ...(action.remediation.requires === 'notify' ? { globalBudget: false as const } : {}),
    },
    plan: prepared.ok ? prepared.plan : null,
    error: null,
    after: action.after ? { action: action.after.key, ref: action.after.ref, when: action.after.when, runId: null } : null,
    revertOf: null,
    events: [{ type: 'created', detail: { rule: action.rule, action: action.key, alertStatus: alert.status } }],
  };
  // Its params may read the predecessor's outcome: they are rendered and checked again when it moves on.
  if (action.after && !after) {
    run.status = 'waiting';
    run.events.push({ type: 'waiting', detail: { after: action.after.ref, when: action.after.when } });
    return { run };
  }
  if (!prepared.ok) {
    run.error = prepared.error;
    return { run: end(run, 'failed', 'invalid_params', { error: prepared.error }) };
  }
  const outside = outOfScope(run.gates.allow, prepared.params);
  if (outside) {
    run.error = outside.message;
    const { param, value, pattern, message } = outside;
    return { run: end(run, 'failed', 'out_of_scope', { param, value, pattern, error: message }) };
  }
  const requires = action.remediation.requires;
  if (!run.dryRun && requires !== 'none' && !ctx.configured.has(requires))
    return { run: end(run, 'failed', 'target_not_configured', { requires }) };
  if (ctx.paused) return { run: end(run, 'suppressed', 'paused') };
  return {
    run,
    subject: {
      runId: run.id,
      rule: run.rule,
      action: run.action,
      remediation: run.remediation,
      target: prepared.target,
      gates: run.gates,
      approved: false,
    },
  };
}
