/**
 * The on-call commands over the API: `runs`, `show`, `approve`, `reject`, `pause`, `resume`. Each
 * prints a table (or `-o json`, the API's answer as it came) and throws `ClientError` on failure.
 */
import { parseDuration } from '../kernel/duration.js';
import type { Run, RunEvent, RunListItem } from '../schemas/runs.js';
import { endpoint, request, ClientError, type ConnectionOptions } from './client.js';
import { cell, print, printJson, table, type OutputFormat } from './table.js';

export interface OutputOptions extends ConnectionOptions {
  output: OutputFormat;
}

export interface RunsOptions extends OutputOptions {
  status?: string;
  rule?: string;
  remediation?: string;
  alertname?: string;
  since?: string;
  limit?: string;
  cursor?: string;
}

interface RunList {
  runs: RunListItem[];
  nextCursor: string | null;
}

interface Control {
  paused: boolean;
  dryRun: boolean;
  reason: string | null;
  changedBy: string | null;
  changedAt: string | null;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** A time as the tables show it: to the second, UTC. */
const time = (iso: string | null | undefined) => (iso ? iso.replace(/\.\d+(?=Z$)/, '') : '-');

/**
 * `--since`: a duration back from now (`1h`, `30m`, `2d`) or an RFC 3339 time. Sent to the API as
 * given: a duration is measured back from PostgreSQL's now, the one clock the service uses.
 */
export function sinceParam(text: string): string {
  if (parseDuration(text) !== undefined || (RFC3339.test(text) && !Number.isNaN(Date.parse(text)))) return text;
  throw new ClientError(`--since "${text}" is neither a duration (30m, 1h, 2d) nor an RFC 3339 time (2026-01-02T15:04:05Z)`);
}

function limitParam(text: string): string {
  if (/^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 200) return String(Number(text));
  throw new ClientError(`--limit "${text}" must be a whole number from 1 to 200`);
}

export async function listRuns(opts: RunsOptions): Promise<void> {
  const ep = endpoint(opts);
  const query = new URLSearchParams();
  for (const key of ['status', 'rule', 'remediation', 'alertname', 'cursor'] as const) {
    const value = opts[key];
    if (value !== undefined) query.set(key, value);
  }
  if (opts.since !== undefined) query.set('since', sinceParam(opts.since));
  if (opts.limit !== undefined) query.set('limit', limitParam(opts.limit));
  const qs = query.toString();
  const answer = await request<RunList>(ep, 'GET', `/api/runs${qs ? `?${qs}` : ''}`);
  if (opts.output === 'json') return printJson(answer);
  const rows = [['ID', 'CREATED', 'STATUS', 'REASON', 'RULE', 'ACTION', 'REMEDIATION', 'TARGET', 'ALERT']];
  for (const r of answer.runs) {
    rows.push([
      r.id,
      time(r.createdAt),
      r.status,
      cell(r.reason),
      r.rule,
      r.action,
      r.remediation,
      cell(r.target),
      cell(r.alert.labels['alertname']),
    ]);
  }
  print(answer.runs.length > 0 ? table(rows) : 'no runs');
  if (answer.nextCursor) print(`more runs: add --cursor ${answer.nextCursor}`);
}

function approvalLine(run: Run): string {
  const a = run.approval;
  if (!a.required) return 'not required';
  const parts = ['required'];
  if (a.decidedBy) parts.push(`decided by ${a.decidedBy} at ${time(a.decidedAt)}`);
  else if (a.expiresAt) parts.push(`expires ${time(a.expiresAt)}`);
  if (a.comment) parts.push(`"${a.comment}"`);
  return parts.join(', ');
}

const detail = (event: RunEvent) => (Object.keys(event.detail).length > 0 ? cell(event.detail) : '-');

/** One run: what it is, where it stands, and its timeline of events. */
export function runText(run: Run): string {
  const labels = Object.entries(run.alert.labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(' ');
  const fields: Array<[string, string]> = [
    ['run', run.id],
    ['rule', `${run.rule} (action ${run.action}, phase ${run.phase})`],
    ['remediation', run.remediation],
    ['target', cell(run.target)],
    ['status', run.reason ? `${run.status} (${run.reason})` : run.status],
    ['alert', `${run.alert.status} ${run.alert.fingerprint} since ${time(run.alert.startsAt)} ${labels}`],
    ['params', cell(run.params)],
    ['approval', approvalLine(run)],
  ];
  if (run.after) fields.push(['after', `${run.after.ref} ${run.after.when}${run.after.runId ? ` (run ${run.after.runId})` : ''}`]);
  if (run.dryRun) fields.push(['dry run', 'yes: planned, not executed']);
  fields.push(['plan', cell(run.plan)]);
  if (run.verification) fields.push(['verification', `${run.verification}${run.verifyUntil ? ` (until ${time(run.verifyUntil)})` : ''}`]);
  if (run.result) fields.push(['result', cell(run.result)]);
  if (run.error) fields.push(['error', cell(run.error)]);
  if (run.revertOf) fields.push(['reverts', run.revertOf]);
  if (run.revertedBy) fields.push(['reverted by', run.revertedBy]);
  if (run.dependents?.length) fields.push(['dependents', run.dependents.join(', ')]);
  fields.push(['attempts', String(run.attempts)], ['created', time(run.createdAt)], ['updated', time(run.updatedAt)]);
  const events = [['TIME', 'EVENT', 'DETAIL'], ...(run.events ?? []).map((e) => [time(e.at), e.type, detail(e)])];
  return `${table(fields.map(([k, v]) => [`${k}:`, v]))}\n\n${table(events)}`;
}

export async function showRun(id: string, opts: OutputOptions): Promise<void> {
  const run = await request<Run>(endpoint(opts), 'GET', `/api/runs/${encodeURIComponent(id)}`);
  if (opts.output === 'json') return printJson(run);
  print(runText(run));
}

export async function decide(decision: 'approve' | 'reject', id: string, opts: OutputOptions & { message?: string }): Promise<void> {
  const body = opts.message === undefined ? {} : decision === 'approve' ? { comment: opts.message } : { reason: opts.message };
  const run = await request<Run>(endpoint(opts), 'POST', `/api/runs/${encodeURIComponent(id)}/${decision}`, body);
  if (opts.output === 'json') return printJson(run);
  const by = run.approval.decidedBy ? ` by ${run.approval.decidedBy}` : '';
  print(`${decision === 'approve' ? 'approved' : 'rejected'} run ${run.id}${by}: ${run.rule} ${run.remediation}, now ${run.status}`);
}

function controlText(c: Control): string {
  const since = c.changedBy ? ` (by ${c.changedBy} at ${time(c.changedAt)}${c.reason ? `: ${c.reason}` : ''})` : '';
  return `${c.paused ? 'paused: new runs are suppressed, queued runs wait' : 'running: remediation is not paused'}${since}${c.dryRun ? '; DRY_RUN is on' : ''}`;
}

export async function control(action: 'pause' | 'resume', opts: OutputOptions & { message?: string }): Promise<void> {
  const body = action === 'pause' && opts.message !== undefined ? { reason: opts.message } : action === 'pause' ? {} : undefined;
  const answer = await request<Control>(endpoint(opts), 'POST', `/api/control/${action}`, body);
  if (opts.output === 'json') return printJson(answer);
  print(controlText(answer));
}
