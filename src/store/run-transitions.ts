import type { Run, RunStatus } from '../schemas/runs.js';
import type { Log } from '../kernel/log.js';
import type { Db } from './database.js';
import { CANCELLED_BY_RESOLUTION, EPISODE_RESOLVED, recordResolved } from './episodes.js';
import { isRunId, toRun, type RunRow } from './run-rows.js';

/**
 * SQL: an event's detail, with the run's `expiresAt` added to a `pending_approval` event: the expiry
 * is PostgreSQL's, so the timeline shows the one that holds.
 */
export const PENDING_DETAIL = (event: string, expiresAt: string) =>
  `CASE WHEN ${event}->>'type' = 'pending_approval' AND ${expiresAt} IS NOT NULL
     THEN COALESCE(${event}->'detail', '{}'::jsonb) || jsonb_build_object('expiresAt', to_char(${expiresAt} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
     ELSE COALESCE(${event}->'detail', '{}'::jsonb) END`;

/** Columns a transition may set; `attempts` is only ever incremented. */
export interface RunPatch {
  reason?: string | null;
  /** Rendered anew when a dependent leaves `waiting`, with its predecessor's outcome. */
  params?: Record<string, unknown>;
  /** Likewise its gate settings, whose check and verify queries may read the predecessor's outcome. */
  gates?: Run['gates'];
  target?: string | null;
  dryRun?: boolean;
  decidedBy?: string;
  decisionComment?: string | null;
  incrementAttempts?: boolean;
  plan?: string | null;
  result?: Record<string, unknown> | null;
  error?: string | null;
  approvalRequired?: boolean;
  /** Sets `expires_at` to PostgreSQL's now plus this many milliseconds; null clears it. */
  expiresInMs?: number | null;
  /** Sets `lease_until` to now plus this many milliseconds; null clears it. */
  leaseMs?: number | null;
  /** Starts a verification: `pending`, first evaluated after `everyMs`, given up after `withinMs`. */
  startVerification?: { everyMs: number; withinMs: number };
  /** Schedules the run's revert (`revertAfter`) this many milliseconds from now. */
  revertAfterMs?: number;
}

/** Conditions a transition may add to "the run is in one of `from`", by name; their SQL stays here. */
const GUARDS = {
  /** A queued run, or a running one whose worker's lease ran out: only then may a worker take it. */
  claimable: `AND (status = 'queued' OR lease_until IS NULL OR lease_until < now())`,
  /** A pending approval that has not expired: only then may a human decide it. */
  undecided: 'AND expires_at > now()',
} as const;
export type Guard = keyof typeof GUARDS;

export interface TransitionEvent {
  type: string;
  detail?: Record<string, unknown>;
}

/** Every status change of a run: one conditional UPDATE, with its timeline event in the same statement. */
export function createRunTransitions(db: Db, log?: Log) {
  /**
   * Moves a run from one of `from` to `to`, if `guard` holds too, with its timeline event(s), in order.
   * Returns null when the run was not in one of `from`: the caller lost a race or the run moved on.
   */
  async function transition(
    id: string,
    from: readonly RunStatus[],
    to: RunStatus,
    event: TransitionEvent | readonly TransitionEvent[],
    patch: RunPatch = {},
    guard?: Guard,
  ): Promise<Run | null> {
    if (!isRunId(id)) return null;
    const events = (Array.isArray(event) ? event : [event]) as readonly TransitionEvent[];
    const values: unknown[] = [id, from, to, JSON.stringify(events.map((e) => ({ type: e.type, detail: e.detail ?? {} })))];
    const sets = ['status = $3', 'updated_at = now()'];
    const set = (column: string, value: unknown) => {
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    };
    if (patch.reason !== undefined) set('reason', patch.reason);
    if (patch.params !== undefined) set('params', JSON.stringify(patch.params));
    if (patch.gates !== undefined) set('gates', JSON.stringify(patch.gates));
    if (patch.target !== undefined) set('target', patch.target);
    if (patch.dryRun !== undefined) set('dry_run', patch.dryRun);
    if (patch.decidedBy !== undefined) {
      set('decided_by', patch.decidedBy);
      sets.push('decided_at = now()');
    }
    if (patch.decisionComment !== undefined) set('decision_comment', patch.decisionComment);
    if (patch.incrementAttempts) sets.push('attempts = attempts + 1');
    if (patch.plan !== undefined) set('plan', patch.plan);
    if (patch.result !== undefined) set('result', patch.result === null ? null : JSON.stringify(patch.result));
    if (patch.error !== undefined) set('error', patch.error);
    if (patch.approvalRequired !== undefined) set('approval_required', patch.approvalRequired);
    if (patch.expiresInMs === null) sets.push('expires_at = NULL');
    else if (patch.expiresInMs !== undefined) {
      values.push(patch.expiresInMs);
      sets.push(`expires_at = now() + $${values.length} * interval '1 millisecond'`);
    }
    if (patch.startVerification) {
      sets.push(`verification = 'pending'`);
      // First evaluated after `every`, or at the deadline when that comes first.
      values.push(Math.min(patch.startVerification.everyMs, patch.startVerification.withinMs));
      sets.push(`verify_due = now() + $${values.length} * interval '1 millisecond'`);
      values.push(patch.startVerification.withinMs);
      sets.push(`verify_until = now() + $${values.length} * interval '1 millisecond'`);
    }
    if (patch.revertAfterMs !== undefined) {
      values.push(patch.revertAfterMs);
      sets.push(`revert_due = now() + $${values.length} * interval '1 millisecond'`);
    }
    if (patch.leaseMs === null) sets.push('lease_until = NULL');
    else if (patch.leaseMs !== undefined) {
      values.push(patch.leaseMs);
      sets.push(`lease_until = now() + $${values.length} * interval '1 millisecond'`);
    }
    const sql = `
      WITH updated AS (
        UPDATE runs SET ${sets.join(', ')} FROM (SELECT status AS from_status FROM runs WHERE id = $1) before
        WHERE id = $1 AND status = ANY($2::text[]) ${guard ? GUARDS[guard] : ''} RETURNING runs.*, before.from_status
      ), events AS (
        INSERT INTO run_events (run_id, type, detail)
        SELECT updated.id, e.value->>'type', ${PENDING_DETAIL('e.value', 'updated.expires_at')}
        FROM updated, jsonb_array_elements($4::jsonb) WITH ORDINALITY AS e(value, n) ORDER BY e.n
      )
      SELECT * FROM updated`;
    const { rows } = await db.query<RunRow & { from_status: RunStatus }>(sql, values);
    const row = rows[0];
    if (!row) return null;
    const { from_status, ...stored } = row;
    const run = toRun(stored);
    logChange(run, from_status);
    return run;
  }

  /** One info line per status change: the audit trail in the log, for "what happened to my alert?". */
  function logChange(run: Run, from: string): void {
    log?.info(
      { runId: run.id, rule: run.rule, remediation: run.remediation, from, to: run.status, reason: run.reason },
      'run status changed',
    );
  }

  /** Records an event without changing the status (a retry scheduled, a notification sent). */
  async function addEvent(id: string, type: string, detail: Record<string, unknown> = {}): Promise<void> {
    await db.query('INSERT INTO run_events (run_id, type, detail) VALUES ($1, $2, $3)', [id, type, JSON.stringify(detail)]);
  }

  /** A bulk status move of the runs `where` selects, each with its event. */
  async function transitionWhere(
    from: string,
    where: string,
    values: unknown[],
    to: RunStatus,
    event: TransitionEvent,
    reason: string | null,
  ): Promise<Run[]> {
    const n = values.length;
    const sql = `
      WITH updated AS (
        UPDATE runs SET status = $${n + 1}, reason = $${n + 2}, updated_at = now() WHERE ${where} RETURNING *
      ), events AS (
        INSERT INTO run_events (run_id, type, detail) SELECT id, $${n + 3}, $${n + 4}::jsonb FROM updated
      )
      SELECT * FROM updated`;
    const { rows } = await db.query<RunRow>(sql, [...values, to, reason, event.type, JSON.stringify(event.detail ?? {})]);
    const runs = rows.map(toRun);
    for (const run of runs) logChange(run, from);
    return runs;
  }

  const CANCELLED = { type: 'cancelled', detail: { reason: 'alert_resolved' } };

  /**
   * Records alert episodes as resolved, then cancels their firing runs still waiting (for approval or a predecessor).
   * The record is committed before the cancel reads, and `cancelResolved` runs after new firing runs
   * are committed: of a resolution and a firing delivery racing on two replicas, one always sees the other.
   */
  async function resolveEpisodes(episodes: ReadonlyArray<{ fingerprint: string; startsAt: string }>): Promise<Run[]> {
    await recordResolved(db, episodes);
    return transitionWhere(
      'pending_approval|waiting',
      `(fingerprint, starts_at) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND ${CANCELLED_BY_RESOLUTION} AND status IN ('pending_approval', 'waiting')`,
      [episodes.map((e) => e.fingerprint), episodes.map((e) => e.startsAt)],
      'cancelled',
      CANCELLED,
      'alert_resolved',
    );
  }

  /** Cancels those of `ids` (new firing runs) waiting for approval or a predecessor whose episode resolved meanwhile. */
  async function cancelResolved(ids: readonly string[]): Promise<Run[]> {
    if (ids.length === 0) return [];
    return transitionWhere(
      'pending_approval|waiting',
      `id = ANY($1::uuid[]) AND ${CANCELLED_BY_RESOLUTION} AND status IN ('pending_approval', 'waiting') AND ${EPISODE_RESOLVED}`,
      [ids],
      'cancelled',
      CANCELLED,
      'alert_resolved',
    );
  }

  /** Pending approvals past `expiresAt` become `expired`. */
  async function expireDue(): Promise<Run[]> {
    return transitionWhere(
      'pending_approval',
      `status = 'pending_approval' AND expires_at <= now()`,
      [],
      'expired',
      { type: 'expired', detail: { reason: 'approval_timeout' } },
      'approval_timeout',
    );
  }

  /** Queued runs untouched for `olderThanMs`: their job may have been lost between commit and enqueue. */
  async function staleQueued(olderThanMs: number, limit: number): Promise<string[]> {
    const { rows } = await db.query<{ id: string }>(
      `UPDATE runs SET updated_at = now() WHERE id IN (
         SELECT id FROM runs WHERE status IN ('queued', 'running') AND updated_at < now() - $1 * interval '1 millisecond'
         ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING id`,
      [olderThanMs, limit],
    );
    return rows.map((r) => r.id);
  }

  /**
   * Verifications due now, claimed for `claimMs` (their `verify_due` moves on) so that another
   * replica's sweeper does not take them at the same time: pending ones, with whether each is past
   * `verify_until`, and unverified ones whose follow-ups are not all done yet.
   */
  async function claimVerifications(claimMs: number, limit: number): Promise<Array<{ run: Run; expired: boolean }>> {
    const { rows } = await db.query<RunRow & { expired: boolean }>(
      `UPDATE runs SET verify_due = now() + $1 * interval '1 millisecond' WHERE id IN (
         SELECT id FROM runs WHERE verify_due IS NOT NULL AND verify_due <= now() AND verification IN ('pending', 'unverified')
         ORDER BY verify_due LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING *, verify_until <= now() AS expired`,
      [claimMs, limit],
    );
    return rows.map((row) => ({ run: toRun(row), expired: row.expired }));
  }

  /**
   * Ends a pending verification, once: null when it was settled already (by another replica). With
   * `followUpInMs`, the run stays claimed for that long instead of leaving the sweep: if its follow-ups
   * are not done by then (`followUpsDone`), the sweeper takes it again.
   */
  async function settleVerification(
    id: string,
    result: 'verified' | 'unverified',
    event: TransitionEvent,
    followUpInMs: number | null = null,
  ): Promise<Run | null> {
    const { rows } = await db.query<RunRow>(
      `WITH updated AS (
         UPDATE runs SET verification = $2, updated_at = now(),
           verify_due = CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() + $5::float8 * interval '1 millisecond' END
         WHERE id = $1 AND verification = 'pending' RETURNING *
       ), events AS (
         INSERT INTO run_events (run_id, type, detail) SELECT id, $3, $4::jsonb FROM updated
       )
       SELECT * FROM updated`,
      [id, result, event.type, JSON.stringify(event.detail ?? {}), followUpInMs],
    );
    return rows[0] ? toRun(rows[0]) : null;
  }

  /** An unverified run's follow-ups are all done: it leaves the sweep. */
  async function followUpsDone(id: string): Promise<void> {
    await db.query(`UPDATE runs SET verify_due = NULL WHERE id = $1 AND verification = 'unverified'`, [id]);
  }

  /** Schedules a pending verification's next evaluation after `inMs` (at the latest at its deadline), recording this one. */
  async function nextVerification(id: string, inMs: number, event: TransitionEvent): Promise<void> {
    await db.query(
      `WITH updated AS (
         UPDATE runs SET verify_due = LEAST(now() + $2 * interval '1 millisecond', verify_until)
         WHERE id = $1 AND verification = 'pending' RETURNING id
       )
       INSERT INTO run_events (run_id, type, detail) SELECT id, $3, $4::jsonb FROM updated`,
      [id, inMs, event.type, JSON.stringify(event.detail ?? {})],
    );
  }

  /** Runs whose `revertAfter` is due, claimed for `claimMs` (their `revert_due` moves on) while their revert is created. */
  async function claimRevertsDue(claimMs: number, limit: number): Promise<Run[]> {
    const { rows } = await db.query<RunRow>(
      `UPDATE runs SET revert_due = now() + $1 * interval '1 millisecond' WHERE id IN (
         SELECT id FROM runs WHERE revert_due <= now() ORDER BY revert_due LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [claimMs, limit],
    );
    return rows.map(toRun);
  }

  /** The scheduled revert is created (or no longer needed): nothing is due any more. */
  async function clearRevertDue(id: string): Promise<void> {
    await db.query('UPDATE runs SET revert_due = NULL WHERE id = $1', [id]);
  }

  return {
    claimRevertsDue,
    clearRevertDue,
    transition,
    addEvent,
    resolveEpisodes,
    cancelResolved,
    expireDue,
    staleQueued,
    claimVerifications,
    settleVerification,
    followUpsDone,
    nextVerification,
  };
}
