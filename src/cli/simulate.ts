/**
 * `remediator simulate FILE.json`: what an Alertmanager message would do. Offline (the default) it
 * needs no database and no Redis: each alert is matched and its actions decided by the service's own
 * code (`matchAlert`, the intake gates' `decideAll` with params rendered and validated by `prepare`),
 * with every target taken as configured and the counter gates (cooldown, limits, global budget,
 * escalation) not consulted: their settings are printed instead. With `--url` the message is posted
 * to `POST /api/simulate` of a running service, whose answer includes those gates, existing runs
 * (duplicates), the kill switch and check queries evaluated against Prometheus.
 */
import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import type { TargetKind } from '../../remediations/types.js';
import { createCatalogue } from '../../remediations/catalogue.js';
import { decideAll } from '../gates/at-intake.js';
import type { Counters } from '../gates/counters.js';
import { toSnapshot } from '../intake/intake.js';
import { formatDuration } from '../kernel/duration.js';
import { loadMatrix } from '../matrix/load.js';
import { matchAlert, matchesAnyRule, prepare } from '../matrix/match.js';
import type { Action, Matrix } from '../matrix/types.js';
import { WebhookMessage } from '../schemas/alertmanager.js';
import { ClientError, endpoint, request, type ConnectionOptions } from './client.js';
import { cell, print, printJson, table, type OutputFormat } from './table.js';

export interface SimulateOptions extends ConnectionOptions {
  matrix: string;
  output: OutputFormat;
}

/** One action an alert triggers, as either way of simulating tells it. */
export interface SimulatedAction {
  rule: string;
  /** The action key (`firing:0`). */
  action: string;
  /** The matrix's `id`, offline. */
  id?: string | null;
  remediation: string;
  /** The status the run would be created with, and why. */
  status: string;
  reason: string | null;
  params: Record<string, unknown>;
  target: string | null;
  plan: string | null;
  error: string | null;
  approvalRequired: boolean;
  dryRun: boolean;
  /** Offline: the action's own gate settings. */
  approval?: 'auto' | 'required';
  cooldown?: string | null;
  limit?: string | null;
  after: { ref: string; when: string; needs?: string } | null;
  verify: { query: string; withinMs: number; everyMs: number } | null;
  check: ({ query: string; result?: string } & Record<string, unknown>) | null;
  /** Online: `duplicate` when a run with this dedup key exists. */
  outcome?: string;
  existingRun?: { id: string; status: string } | null;
}

export interface SimulatedAlert {
  fingerprint: string;
  status: string;
  labels: Record<string, string>;
  matched: boolean;
  wouldCancel?: Array<{ id: string; status: string }>;
  actions: SimulatedAction[];
}

export interface Simulation {
  /** Offline: counters, kill switch, existing runs and Prometheus were not consulted. */
  offline?: boolean;
  paused?: boolean;
  dryRun?: boolean;
  alerts: SimulatedAlert[];
}

const EVERY_TARGET: ReadonlySet<TargetKind> = new Set<TargetKind>([
  'conduit',
  'targetDatabase',
  'targetRedis',
  'kubernetes',
  'notify',
  'none',
]);

/** Counters that let everything through: offline, cooldowns and limits are shown, not evaluated. */
const OPEN_COUNTERS: Pick<Counters, 'peek'> = { peek: async (subjects) => subjects.map(() => ({ ok: true, took: false })) };

/** Reads an Alertmanager message from a file (`-` for stdin) and checks it as the webhook does. */
export function readMessage(file: string): WebhookMessage {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new ClientError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ClientError(`${file}: not JSON: ${(err as Error).message}`);
  }
  const first = Value.Errors(WebhookMessage, data).First();
  if (first) throw new ClientError(`${file}: not an Alertmanager v4 message: ${first.path || '/'}: ${first.message}`);
  return data as WebhookMessage;
}

/** What the matrix does with the message, decided by the intake's code with nothing stored or asked. */
export async function simulateOffline(matrix: Matrix, message: WebhookMessage): Promise<Simulation> {
  const alerts: SimulatedAlert[] = [];
  for (const alert of message.alerts) {
    const snapshot = toSnapshot(alert);
    const actions = matchAlert(matrix, snapshot);
    const decided = await decideAll(
      actions.map((action) => ({ action, alert: snapshot })),
      { counters: OPEN_COUNTERS, paused: false, dryRun: false, configured: EVERY_TARGET },
    );
    alerts.push({
      fingerprint: snapshot.fingerprint,
      status: snapshot.status,
      labels: snapshot.labels,
      matched: matchesAnyRule(matrix, snapshot),
      actions: decided.map((run, i) => {
        const action: Action = actions[i]!;
        // A waiting run is decided again with its predecessor's outcome; its params as they render now are still checked.
        const now = run.status === 'waiting' ? prepare(action, snapshot) : undefined;
        return {
          rule: run.rule,
          action: run.action,
          id: action.id ?? null,
          remediation: run.remediation,
          status: run.status,
          reason: run.reason,
          params: run.params,
          target: run.target,
          plan: run.plan,
          error: run.error ?? (now && !now.ok ? now.error : null),
          approvalRequired: run.approvalRequired,
          dryRun: run.dryRun,
          approval: action.approval,
          cooldown: action.cooldownMs > 0 ? formatDuration(action.cooldownMs) : null,
          limit: action.limit ? `${action.limit.max}/${formatDuration(action.limit.perMs)}` : null,
          after: action.after ? { ref: action.after.ref, when: action.after.when } : null,
          verify: run.gates.verify ?? null,
          check: run.gates.checkQuery !== undefined ? { query: run.gates.checkQuery } : null,
        };
      }),
    });
  }
  return { offline: true, alerts };
}

function statusCell(a: SimulatedAction): string {
  if (a.outcome === 'duplicate') return `duplicate${a.existingRun ? ` (${a.existingRun.status})` : ''}`;
  return a.reason ? `${a.status} ${a.reason}` : a.status;
}

/** Per alert: a table of the actions it triggers, then each action's params, plan, error and loop. */
export function simulationText(sim: Simulation): string {
  const out: string[] = [];
  if (sim.offline) {
    out.push('offline: cooldowns, limits, the global budget, the kill switch and existing runs are not consulted (use --url)');
  } else {
    out.push(`service: ${sim.paused ? 'paused' : 'not paused'}${sim.dryRun ? ', DRY_RUN' : ''}`);
  }
  for (const alert of sim.alerts) {
    const labels = Object.entries(alert.labels)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(' ');
    out.push('', `alert ${alert.fingerprint} ${alert.status} ${labels}`);
    if (alert.actions.length === 0) {
      out.push(alert.matched ? `  matched, but its rules have nothing to do when an alert is ${alert.status}` : '  matches no rule');
    }
    for (const c of alert.wouldCancel ?? []) out.push(`  would cancel run ${c.id} (${c.status})`);
    if (alert.actions.length === 0) continue;
    const offline = sim.offline === true;
    const head = ['RULE', 'ACTION', 'REMEDIATION', 'STATUS', 'APPROVAL', ...(offline ? ['COOLDOWN', 'LIMIT'] : []), 'AFTER'];
    const rows = [head];
    const details: string[][] = [];
    for (const a of alert.actions) {
      const name = a.id ?? a.action;
      rows.push([
        a.rule,
        name,
        a.remediation,
        statusCell(a),
        a.approval ?? (a.approvalRequired ? 'required' : 'auto'),
        ...(offline ? [cell(a.cooldown), cell(a.limit)] : []),
        a.after ? `${a.after.ref} ${a.after.when}` : '-',
      ]);
      const label = `${a.rule}/${name}`;
      details.push([label, 'params', cell(a.params)]);
      if (a.target) details.push([label, 'target', a.target]);
      if (a.plan) details.push([label, 'plan', cell(a.plan)]);
      if (a.error) details.push([label, 'error', cell(a.error)]);
      if (a.status === 'waiting' && a.after && a.outcome !== 'duplicate')
        details.push([label, 'waits', `for ${a.after.ref} (${a.after.when}); its params are rendered again then`]);
      if (a.dryRun) details.push([label, 'dry run', 'planned, not executed']);
      if (a.existingRun) details.push([label, 'existing', `run ${a.existingRun.id} (${a.existingRun.status})`]);
      if (a.check) {
        const why = typeof a.check['reason'] === 'string' ? ` (${a.check['reason']})` : '';
        details.push([label, 'check', `${cell(a.check.query)}${a.check.result ? `: ${a.check.result}${why}` : ''}`]);
      }
      if (a.verify) {
        details.push([
          label,
          'verify',
          `${cell(a.verify.query)} within ${formatDuration(a.verify.withinMs)} every ${formatDuration(a.verify.everyMs)}`,
        ]);
      }
    }
    out.push(table(rows), table(details).replace(/^/gm, '  '));
  }
  return out.join('\n');
}

export async function simulateCommand(file: string, opts: SimulateOptions): Promise<void> {
  const message = readMessage(file);
  let sim: Simulation;
  if (opts.url !== undefined) {
    sim = await request<Simulation>(endpoint(opts), 'POST', '/api/simulate', message);
  } else {
    sim = await simulateOffline(loadMatrix(opts.matrix, createCatalogue()), message);
  }
  if (opts.output === 'json') return printJson(sim);
  print(simulationText(sim));
}
