import {
  SUMMARY_LABELS,
  SUMMARY_VALUE_CHARS,
  type AlertSummary,
  type NewRun,
  type Run,
  type RunListItem,
  type RunStatus,
} from '../schemas/runs.js';

/** A row of `runs` as pg returns it. */
export interface RunRow {
  id: string;
  seq: string;
  rule: string;
  action: string;
  phase: Run['phase'];
  remediation: string;
  target: string | null;
  params: Record<string, unknown>;
  status: RunStatus;
  reason: string | null;
  alert: Run['alert'];
  approval_required: boolean;
  expires_at: Date | null;
  decided_by: string | null;
  decided_at: Date | null;
  decision_comment: string | null;
  dry_run: boolean;
  gates: Run['gates'];
  attempts: number;
  lease_until: Date | null;
  after_action: string | null;
  verification: Run['verification'];
  verify_until: Date | null;
  revert_of: string | null;
  revert_due: Date | null;
  /** Only when read with `RELATIONS`: the revert run undoing this one. */
  reverted_by?: string | null;
  after_ref: string | null;
  after_when: NonNullable<Run['after']>['when'] | null;
  /** Only when read with `RELATIONS`: the predecessor's id and the dependents' ids. */
  after_run?: string | null;
  dependents?: string[];
  plan: string | null;
  result: Record<string, unknown> | null;
  error: string | null;
  created_at: Date;
  updated_at: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Only a UUID can name a run; anything else is not found without asking PostgreSQL (the column is uuid). */
export const isRunId = (id: string): boolean => UUID.test(id);

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function after(row: Omit<RunRow, 'alert'>): Run['after'] {
  if (row.after_action === null || row.after_when === null) return null;
  return { action: row.after_action, ref: row.after_ref ?? row.after_action, when: row.after_when, runId: row.after_run ?? null };
}

/** SQL select list of a run with its predecessor's id and its dependents' ids (`after_run`, `dependents`). */
export const RELATIONS = `runs.*, ${relationColumns()}`;

function relationColumns(): string {
  return `(SELECT p.id FROM runs p WHERE p.rule = runs.rule AND p.action = runs.after_action
     AND p.fingerprint = runs.fingerprint AND p.starts_at = runs.starts_at) AS after_run,
  ARRAY(SELECT d.id FROM runs d WHERE d.fingerprint = runs.fingerprint AND d.starts_at = runs.starts_at
     AND d.rule = runs.rule AND d.after_action = runs.action ORDER BY d.seq) AS dependents,
  (SELECT r.id FROM runs r WHERE r.revert_of = runs.id) AS reverted_by`;
}

/** The columns of `runs` but the alert, as the listing reads them (a new column goes here too: the run-schema test checks the listing). */
const COLUMNS_BUT_ALERT = [
  'id',
  'seq',
  'rule',
  'action',
  'phase',
  'remediation',
  'target',
  'params',
  'status',
  'reason',
  'approval_required',
  'expires_at',
  'decided_by',
  'decided_at',
  'decision_comment',
  'dry_run',
  'gates',
  'attempts',
  'lease_until',
  'after_action',
  'after_ref',
  'after_when',
  'verification',
  'verify_until',
  'revert_of',
  'revert_due',
  'plan',
  'result',
  'error',
  'created_at',
  'updated_at',
]
  .map((c) => `runs.${c}`)
  .join(', ');

/**
 * SQL select list of a listed run: `RELATIONS` with the summary of its alert (`alert_summary`)
 * instead of the alert, built by PostgreSQL, so a page never carries whole alerts to the service.
 */
export const LIST_RELATIONS = `${COLUMNS_BUT_ALERT},
  (SELECT jsonb_strip_nulls(jsonb_build_object(
      'fingerprint', runs.fingerprint,
      'status', s.a ->> 'status',
      'startsAt', runs.starts_at,
      'endsAt', s.a ->> 'endsAt',
      'labelCount', (SELECT count(*) FROM jsonb_object_keys(s.a -> 'labels')),
      'labels', COALESCE((SELECT jsonb_object_agg(left(l.key, ${SUMMARY_VALUE_CHARS}),
           CASE WHEN length(l.value) > ${SUMMARY_VALUE_CHARS} THEN left(l.value, ${SUMMARY_VALUE_CHARS - 1}) || '…' ELSE l.value END)
         FROM (SELECT key, value FROM jsonb_each_text(s.a -> 'labels')
               ORDER BY key <> 'alertname', key COLLATE "C" LIMIT ${SUMMARY_LABELS}) l), '{}'::jsonb)))
   -- The stored alert is read (detoasted) once per run, without its annotations; OFFSET 0 keeps it one value.
   FROM (SELECT runs.alert - 'annotations' - 'generatorURL' AS a OFFSET 0) s) AS alert_summary,
  ${relationColumns()}`;

/** A row read with `LIST_RELATIONS`. */
export type ListRow = Omit<RunRow, 'alert'> & { alert_summary: AlertSummary };

export const toRunListItem = (row: ListRow): RunListItem => ({ ...runFields(row), alert: row.alert_summary });

export const toRun = (row: RunRow): Run => ({ ...runFields(row), alert: row.alert });

/** Every field of a run but its alert. */
function runFields(row: Omit<RunRow, 'alert'>): Omit<Run, 'alert'> {
  return {
    id: row.id,
    rule: row.rule,
    action: row.action,
    phase: row.phase,
    remediation: row.remediation,
    target: row.target,
    params: row.params,
    status: row.status,
    reason: row.reason,
    approval: {
      required: row.approval_required,
      expiresAt: iso(row.expires_at),
      decidedBy: row.decided_by,
      decidedAt: iso(row.decided_at),
      comment: row.decision_comment,
    },
    dryRun: row.dry_run,
    gates: row.gates,
    attempts: row.attempts,
    leaseUntil: iso(row.lease_until),
    after: after(row),
    verification: row.verification,
    verifyUntil: iso(row.verify_until),
    revertOf: row.revert_of,
    revertDue: iso(row.revert_due),
    ...(row.reverted_by !== undefined ? { revertedBy: row.reverted_by } : {}),
    ...(row.dependents ? { dependents: row.dependents } : {}),
    plan: row.plan,
    result: row.result,
    error: row.error,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** The run just inserted from `r`, without reading it back: only its timestamps (and approval expiry) come from PostgreSQL. */
export function fromNewRun(r: NewRun, createdAt: Date, updatedAt: Date, expiresAt: Date | null): Run {
  return {
    id: r.id,
    rule: r.rule,
    action: r.action,
    phase: r.phase,
    remediation: r.remediation,
    target: r.target,
    params: r.params,
    status: r.status,
    reason: r.reason,
    alert: r.alert,
    approval: { required: r.approvalRequired, expiresAt: iso(expiresAt), decidedBy: null, decidedAt: null, comment: null },
    dryRun: r.dryRun,
    gates: r.gates,
    attempts: 0,
    leaseUntil: null,
    after: r.after,
    verification: null,
    verifyUntil: null,
    revertOf: r.revertOf,
    revertDue: null,
    plan: r.plan,
    result: null,
    error: r.error,
    createdAt: createdAt.toISOString(),
    updatedAt: updatedAt.toISOString(),
  };
}

/** A new run as the insert statement reads it (`jsonb_to_recordset`), with the events of its first status. */
export function toInsertRow(r: NewRun) {
  return {
    id: r.id,
    rule: r.rule,
    action: r.action,
    phase: r.phase,
    remediation: r.remediation,
    target: r.target,
    params: r.params,
    status: r.status,
    reason: r.reason,
    fingerprint: r.alert.fingerprint,
    starts_at: r.alert.startsAt,
    alert: r.alert,
    approval_required: r.approvalRequired,
    expires_at: r.expiresAt,
    dry_run: r.dryRun,
    gates: r.gates,
    plan: r.plan,
    error: r.error,
    after_action: r.after?.action ?? null,
    after_ref: r.after?.ref ?? null,
    after_when: r.after?.when ?? null,
    revert_of: r.revertOf,
    events: r.events,
  };
}
