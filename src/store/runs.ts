import type pg from 'pg';
import type { NewRun, Run, RunEvent, RunStatus } from './types.js';

interface RunRow {
  id: string;
  seq: string;
  rule: string;
  action: string;
  phase: 'firing' | 'resolved';
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
  plan: string | null;
  result: Record<string, unknown> | null;
  error: string | null;
  created_at: Date;
  updated_at: Date;
}

/** SQL: the run's alert episode was reported resolved. */
export const EPISODE_RESOLVED =
  'EXISTS (SELECT 1 FROM resolved_episodes e WHERE e.fingerprint = runs.fingerprint AND e.starts_at = runs.starts_at)';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Only a UUID can name a run; anything else is not found without asking PostgreSQL (the column is uuid). */
export const isRunId = (id: string): boolean => UUID.test(id);

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toRun(row: RunRow): Run {
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
    alert: row.alert,
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
    plan: row.plan,
    result: row.result,
    error: row.error,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

function fromNewRun(r: NewRun, createdAt: Date, updatedAt: Date): Run {
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
    approval: { required: r.approvalRequired, expiresAt: r.expiresAt, decidedBy: null, decidedAt: null, comment: null },
    dryRun: r.dryRun,
    gates: r.gates,
    attempts: 0,
    leaseUntil: null,
    plan: r.plan,
    result: null,
    error: r.error,
    createdAt: createdAt.toISOString(),
    updatedAt: updatedAt.toISOString(),
  };
}

/** Columns a transition may set; `attempts` is only ever incremented. */
export interface RunPatch {
  reason?: string | null;
  decidedBy?: string;
  decisionComment?: string | null;
  incrementAttempts?: boolean;
  plan?: string | null;
  result?: Record<string, unknown> | null;
  error?: string | null;
  approvalRequired?: boolean;
  expiresAt?: string | null;
  /** Sets `lease_until` to now plus this many milliseconds; null clears it. */
  leaseMs?: number | null;
}

/** What a delivery needs of an existing run: who it is and where it stands. */
export interface RunRef {
  id: string;
  rule: string;
  action: string;
  remediation: string;
  status: RunStatus;
  alert: { fingerprint: string; startsAt: string };
}

export type StoredRun = { run: Run; duplicate: false } | { run: RunRef; duplicate: true };

const INSERT_SQL = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
    id uuid, rule text, action text, phase text, remediation text, target text, params jsonb, status text,
    reason text, fingerprint text, starts_at text, alert jsonb, approval_required boolean,
    expires_at timestamptz, dry_run boolean, gates jsonb, plan text, error text, events jsonb)
), inserted AS (
  INSERT INTO runs (id, rule, action, phase, remediation, target, params, status, reason, fingerprint, starts_at,
                    alert, approval_required, expires_at, dry_run, gates, plan, error)
  SELECT id, rule, action, phase, remediation, target, params, status, reason, fingerprint, starts_at,
         alert, approval_required, expires_at, dry_run, gates, plan, error FROM input
  ON CONFLICT ON CONSTRAINT runs_dedup_key DO NOTHING
  RETURNING id, seq, created_at, updated_at
), events AS (
  INSERT INTO run_events (run_id, type, detail)
  SELECT i.id, e.value->>'type', COALESCE(e.value->'detail', '{}'::jsonb)
  FROM inserted i JOIN input x ON x.id = i.id, jsonb_array_elements(x.events) WITH ORDINALITY AS e(value, n)
  ORDER BY i.seq, e.n
)
SELECT * FROM inserted`;

// LATERAL makes each key one probe of the unique index: as a join, the planner would rather scan
// the whole table when its statistics are older than a burst of new runs.
const EXISTING_SQL = `
SELECT r.id, r.rule, r.action, r.remediation, r.status, r.fingerprint, r.starts_at, false AS paused
FROM jsonb_to_recordset($1::jsonb) AS x(rule text, action text, fingerprint text, starts_at text)
CROSS JOIN LATERAL (
  SELECT * FROM runs
  WHERE rule = x.rule AND action = x.action AND fingerprint = x.fingerprint AND starts_at = x.starts_at
) r`;

/** The dedup key of a run: rule, action, alert fingerprint and `startsAt`, as the unique index has it. */
export const dedupKey = (rule: string, action: string, alert: { fingerprint: string; startsAt: string }) =>
  `${rule}\u0000${action}\u0000${alert.fingerprint}\u0000${alert.startsAt}`;
const EXISTING_REFS_SQL = `${EXISTING_SQL}
UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, paused FROM control`;
const keyOf = (r: { rule: string; action: string; alert: { fingerprint: string; startsAt: string } }) => dedupKey(r.rule, r.action, r.alert);

export function createRunStore(pool: pg.Pool) {
  /**
   * Stores new runs in one statement. A run whose dedup key exists already is not stored again:
   * the existing run is returned with `duplicate: true`, also when another replica inserted it concurrently.
   */
  async function insert(runs: NewRun[]): Promise<StoredRun[]> {
    if (runs.length === 0) return [];
    // In dedup-key order, so concurrent inserts with overlapping keys wait on each other instead of deadlocking.
    const ordered = [...runs].sort((x, y) => (keyOf(x) < keyOf(y) ? -1 : keyOf(x) > keyOf(y) ? 1 : 0));
    const payload = ordered.map((r) => ({
      id: r.id, rule: r.rule, action: r.action, phase: r.phase, remediation: r.remediation, target: r.target,
      params: r.params, status: r.status, reason: r.reason, fingerprint: r.alert.fingerprint,
      starts_at: r.alert.startsAt, alert: r.alert, approval_required: r.approvalRequired, expires_at: r.expiresAt,
      dry_run: r.dryRun, gates: r.gates, plan: r.plan, error: r.error, events: r.events,
    }));
    const { rows } = await pool.query<{ id: string; created_at: Date; updated_at: Date }>({
      name: 'runs-insert',
      text: INSERT_SQL,
      values: [JSON.stringify(payload)],
    });
    // What was inserted is what was sent: only the ids and timestamps come back.
    const sent = new Map(runs.map((r) => [r.id, r]));
    const byKey = new Map<string, Run | RunRef>();
    for (const row of rows) {
      const run = fromNewRun(sent.get(row.id)!, row.created_at, row.updated_at);
      byKey.set(keyOf(run), run);
    }
    const missing = runs.filter((r) => !byKey.has(keyOf(r)));
    if (missing.length > 0) {
      // A new statement sees rows committed by concurrent inserts that the first one conflicted with.
      for (const [key, run] of (await findByKeys(missing.map(keyOf))).existing) byKey.set(key, run);
    }
    return runs.map((r) => {
      const run = byKey.get(keyOf(r));
      if (!run) throw new Error(`run ${r.rule}/${r.action} was neither inserted nor found`);
      return run.id === r.id ? { run: run as Run, duplicate: false as const } : { run, duplicate: true as const };
    });
  }

  /**
   * Existing runs by dedup key (see `dedupKey`), only the columns a delivery answers with, and the
   * kill switch read in the same round trip (an extra row with a null id).
   */
  async function findByKeys(keys: readonly string[]): Promise<{ existing: Map<string, RunRef>; paused: boolean }> {
    const found = new Map<string, RunRef>();
    const payload = keys.map((k) => {
      const [rule, action, fingerprint, starts_at] = k.split('\u0000');
      return { rule, action, fingerprint, starts_at };
    });
    // Unnamed on purpose: a named statement's cached generic plan, made while the table was empty,
    // keeps scanning it whole long after it has grown.
    const { rows } = await pool.query<{ id: string | null; rule: string; action: string; remediation: string; status: RunStatus; fingerprint: string; starts_at: string; paused: boolean }>(
      EXISTING_REFS_SQL,
      [JSON.stringify(payload)],
    );
    let paused = false;
    for (const row of rows) {
      if (row.id === null) {
        paused = row.paused;
        continue;
      }
      const ref: RunRef = { id: row.id, rule: row.rule, action: row.action, remediation: row.remediation, status: row.status, alert: { fingerprint: row.fingerprint, startsAt: row.starts_at } };
      found.set(keyOf(ref), ref);
    }
    return { existing: found, paused };
  }

  /** A run as a worker needs it, with whether its episode resolved and the kill switch, in one round trip. */
  async function getForExecution(id: string): Promise<{ run: Run; episodeResolved: boolean; paused: boolean } | null> {
    if (!isRunId(id)) return null;
    const { rows } = await pool.query<RunRow & { episode_resolved: boolean; paused: boolean }>(
      `SELECT runs.*, ${EPISODE_RESOLVED} AS episode_resolved, (SELECT paused FROM control) AS paused FROM runs WHERE id = $1`,
      [id],
    );
    const row = rows[0];
    return row ? { run: toRun(row), episodeResolved: row.episode_resolved, paused: row.paused } : null;
  }

  async function get(id: string, opts: { events?: boolean } = {}): Promise<Run | null> {
    if (!isRunId(id)) return null;
    const { rows } = await pool.query<RunRow>('SELECT * FROM runs WHERE id = $1', [id]);
    const row = rows[0];
    if (!row) return null;
    if (opts.events === false) return toRun(row);
    const events = await pool.query<{ at: Date; type: string; detail: Record<string, unknown> }>(
      'SELECT at, type, detail FROM run_events WHERE run_id = $1 ORDER BY id',
      [id],
    );
    const run = toRun(row);
    run.events = events.rows.map((e): RunEvent => ({ at: e.at.toISOString(), type: e.type, detail: e.detail }));
    return run;
  }

  async function list(filter: { status?: RunStatus; rule?: string; remediation?: string; limit: number; cursor?: string }) {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      values.push(value);
      where.push(sql.replace('?', `$${values.length}`));
    };
    if (filter.status) add('status = ?', filter.status);
    if (filter.rule) add('rule = ?', filter.rule);
    if (filter.remediation) add('remediation = ?', filter.remediation);
    if (filter.cursor) add('seq < ?', filter.cursor);
    values.push(filter.limit + 1);
    const sql = `SELECT * FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${values.length}`;
    const { rows } = await pool.query<RunRow>(sql, values);
    const page = rows.slice(0, filter.limit);
    const nextCursor = rows.length > filter.limit ? page[page.length - 1]!.seq : null;
    return { runs: page.map(toRun), nextCursor };
  }

  /**
   * Moves a run from one of `from` to `to` in one statement, with its timeline event.
   * Returns null when the run was not in one of `from`: the caller lost a race or the run moved on.
   */
  async function transition(
    id: string,
    from: readonly RunStatus[],
    to: RunStatus,
    event: { type: string; detail?: Record<string, unknown> },
    patch: RunPatch = {},
    extraWhere = '',
  ): Promise<Run | null> {
    if (!isRunId(id)) return null;
    const values: unknown[] = [id, from, to, event.type, JSON.stringify(event.detail ?? {})];
    const sets = ['status = $3', 'updated_at = now()'];
    const set = (column: string, value: unknown) => {
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    };
    if (patch.reason !== undefined) set('reason', patch.reason);
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
    if (patch.expiresAt !== undefined) set('expires_at', patch.expiresAt);
    if (patch.leaseMs === null) sets.push('lease_until = NULL');
    else if (patch.leaseMs !== undefined) {
      values.push(patch.leaseMs);
      sets.push(`lease_until = now() + $${values.length} * interval '1 millisecond'`);
    }
    const sql = `
      WITH updated AS (
        UPDATE runs SET ${sets.join(', ')} WHERE id = $1 AND status = ANY($2::text[]) ${extraWhere} RETURNING *
      ), events AS (
        INSERT INTO run_events (run_id, type, detail) SELECT id, $4, $5::jsonb FROM updated
      )
      SELECT * FROM updated`;
    const { rows } = await pool.query<RunRow>(sql, values);
    return rows[0] ? toRun(rows[0]) : null;
  }

  /** Records an event without changing the status (a retry scheduled, a notification sent). */
  async function addEvent(id: string, type: string, detail: Record<string, unknown> = {}): Promise<void> {
    await pool.query('INSERT INTO run_events (run_id, type, detail) VALUES ($1, $2, $3)', [id, type, JSON.stringify(detail)]);
  }

  /** Runs of several ids with a bulk status move, for the sweeper and for resolved alerts. */
  async function transitionWhere(
    where: string,
    values: unknown[],
    to: RunStatus,
    event: { type: string; detail?: Record<string, unknown> },
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
    const { rows } = await pool.query<RunRow>(sql, [...values, to, reason, event.type, JSON.stringify(event.detail ?? {})]);
    return rows.map(toRun);
  }

  /**
   * Records alert episodes as resolved, then cancels their firing runs still waiting for approval.
   * The record is committed before the cancel reads, and `cancelResolved` runs after new firing runs
   * are committed: of a resolution and a firing delivery racing on two replicas, one always sees the other.
   */
  async function resolveEpisodes(episodes: ReadonlyArray<{ fingerprint: string; startsAt: string }>): Promise<Run[]> {
    const fingerprints = episodes.map((e) => e.fingerprint);
    const startsAts = episodes.map((e) => e.startsAt);
    await pool.query(
      'INSERT INTO resolved_episodes (fingerprint, starts_at) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING',
      [fingerprints, startsAts],
    );
    return transitionWhere(
      `(fingerprint, starts_at) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND phase = 'firing' AND status = 'pending_approval'`,
      [fingerprints, startsAts],
      'cancelled',
      { type: 'cancelled', detail: { reason: 'alert_resolved' } },
      'alert_resolved',
    );
  }

  /** Cancels those of `ids` (new firing runs) waiting for approval whose episode resolved meanwhile. */
  async function cancelResolved(ids: readonly string[]): Promise<Run[]> {
    if (ids.length === 0) return [];
    return transitionWhere(
      `id = ANY($1::uuid[]) AND phase = 'firing' AND status = 'pending_approval' AND ${EPISODE_RESOLVED}`,
      [ids],
      'cancelled',
      { type: 'cancelled', detail: { reason: 'alert_resolved' } },
      'alert_resolved',
    );
  }

  async function expireDue(): Promise<Run[]> {
    return transitionWhere(
      `status = 'pending_approval' AND expires_at <= now()`,
      [],
      'expired',
      { type: 'expired', detail: { reason: 'approval_timeout' } },
      'approval_timeout',
    );
  }

  /** Queued runs untouched for `olderThanMs`: their job may have been lost between commit and enqueue. */
  async function staleQueued(olderThanMs: number, limit: number): Promise<string[]> {
    const { rows } = await pool.query<{ id: string }>(
      `UPDATE runs SET updated_at = now() WHERE id IN (
         SELECT id FROM runs WHERE status IN ('queued', 'running') AND updated_at < now() - $1 * interval '1 millisecond'
         ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING id`,
      [olderThanMs, limit],
    );
    return rows.map((r) => r.id);
  }

  /** The firing runs of an episode still waiting for approval: what its resolution would cancel. */
  async function pendingOfEpisode(fingerprint: string, startsAt: string): Promise<Array<{ id: string; status: RunStatus }>> {
    const { rows } = await pool.query<{ id: string; status: RunStatus }>(
      `SELECT id, status FROM runs WHERE fingerprint = $1 AND starts_at = $2 AND phase = 'firing' AND status = 'pending_approval'`,
      [fingerprint, startsAt],
    );
    return rows;
  }

  async function countByStatus(status: RunStatus): Promise<number> {
    const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM runs WHERE status = $1', [status]);
    return Number(rows[0]?.n ?? 0);
  }

  return { insert, findByKeys, get, getForExecution, list, transition, addEvent, resolveEpisodes, cancelResolved, pendingOfEpisode, expireDue, staleQueued, countByStatus };
}

export type RunStore = ReturnType<typeof createRunStore>;
