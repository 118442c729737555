import { dedupId, dedupKeyOf, type DedupKey } from '../gates/dedup.js';
import { TERMINAL_STATUSES, type NewRun, type Run, type RunEvent, type RunListItem, type RunRef, type RunStatus } from '../schemas/runs.js';
import type { Db } from './database.js';
import { CANCELLED_BY_RESOLUTION, EPISODE_RESOLVED } from './episodes.js';
import {
  fromNewRun,
  isRunId,
  LIST_RELATIONS,
  RELATIONS,
  toInsertRow,
  toRun,
  toRunListItem,
  type ListRow,
  type RunRow,
} from './run-rows.js';
import { PENDING_DETAIL } from './run-transitions.js';

/** A run as a worker needs it: with whether its episode resolved, the kill switch, and how long its lease still holds. */
export interface ForExecution {
  run: Run;
  episodeResolved: boolean;
  paused: boolean;
  /** Milliseconds until a running run's lease runs out, by PostgreSQL's clock (0: no lease, or ran out). */
  leaseLeftMs: number;
}

/** How a dependent's predecessor ended. */
export interface PredecessorOutcome {
  id: string;
  remediation: string;
  status: RunStatus;
  reason: string | null;
  error: string | null;
  result: Record<string, unknown> | null;
  verification: Run['verification'];
}

/** A waiting run ready to move on; `predecessor` is null when the episode has no such run. */
export interface ReadyDependent {
  run: Run;
  predecessor: PredecessorOutcome | null;
  episodeResolved: boolean;
  paused: boolean;
}

interface PredecessorRow {
  p_id: string | null;
  p_remediation: string;
  p_status: RunStatus;
  p_reason: string | null;
  p_error: string | null;
  p_result: Record<string, unknown> | null;
  p_verification: Run['verification'];
}

export type StoredRun = { run: Run; duplicate: false } | { run: RunRef; duplicate: true };

/** The new runs of `$1` (a JSON array of insert rows), stored with their first timeline events, unless `condition` says not to. */
const insertingSql = (condition: string) => `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
    id uuid, rule text, action text, phase text, remediation text, target text, params jsonb, status text,
    reason text, fingerprint text, starts_at text, alert jsonb, approval_required boolean,
    expires_at timestamptz, dry_run boolean, gates jsonb, plan text, error text, after_action text, after_ref text,
    after_when text, revert_of uuid, events jsonb)
), inserted AS (
  INSERT INTO runs (id, rule, action, phase, remediation, target, params, status, reason, fingerprint, starts_at,
                    alert, approval_required, expires_at, dry_run, gates, plan, error, after_action, after_ref, after_when, revert_of)
  SELECT id, rule, action, phase, remediation, target, params, status, reason, fingerprint, starts_at,
         alert, approval_required,
         -- A pending approval expires approvalTimeout from PostgreSQL's now: the clock that expires it.
         CASE WHEN status = 'pending_approval' THEN now() + (gates->>'approvalTimeoutMs')::bigint * interval '1 millisecond' END,
         dry_run, gates, plan, error, after_action, after_ref, after_when, revert_of FROM input
  WHERE ${condition}
  ON CONFLICT ON CONSTRAINT runs_dedup_key DO NOTHING
  RETURNING id, seq, created_at, updated_at, expires_at
), events AS (
  INSERT INTO run_events (run_id, type, detail)
  SELECT i.id, e.value->>'type', ${PENDING_DETAIL('e.value', 'i.expires_at')}
  FROM inserted i JOIN input x ON x.id = i.id, jsonb_array_elements(x.events) WITH ORDINALITY AS e(value, n)
  ORDER BY i.seq, e.n
)`;

const INSERT_SQL = `${insertingSql('true')}
SELECT * FROM inserted`;

// The existing runs of the dedup keys in parameters `first` .. `first + 3` (rule, action, fingerprint
// and startsAt arrays). Each key one probe of an index: the LIMIT (a key has at most one run) keeps
// the planner from turning the lookup into a join, which it hashes over a scan of the whole table
// once there are a few hundred keys, or whenever its statistics are older than a burst of new runs
// (a probe is a few pages, a scan all of them). So the plan is the same for any table, and the
// statements that use it are prepared once per connection: a plan made while the table was empty
// still probes the index when it holds millions of runs.
const probeSql = (first: number) => `
FROM unnest($${first}::text[], $${first + 1}::text[], $${first + 2}::text[], $${first + 3}::text[]) AS x(rule, action, fingerprint, starts_at)
CROSS JOIN LATERAL (
  SELECT * FROM runs
  WHERE rule = x.rule AND action = x.action AND fingerprint = x.fingerprint AND starts_at = x.starts_at
  LIMIT 1
) r`;

// The kill switch comes in the same round trip, as an extra row (kind 'control').
const EXISTING_SQL = `
SELECT 'old' AS kind, r.id, r.rule, r.action, r.remediation, r.status, r.fingerprint, r.starts_at, NULL::boolean AS paused ${probeSql(1)}
UNION ALL SELECT 'control', NULL, NULL, NULL, NULL, NULL, NULL, NULL, paused FROM control`;

// The dedup lookup, the kill switch and the insert in one statement. The lookup reads the runs as
// they were before the statement, so it finds the existing runs and not the ones it inserts; while
// the kill switch is on, nothing is inserted. One row per inserted run (kind 'new'), per existing
// run ('old'), and the kill switch ('control').
const INSERT_OR_FIND_SQL = `${insertingSql('NOT (SELECT paused FROM control)')}
SELECT 'new' AS kind, id, NULL AS rule, NULL AS action, NULL AS remediation, NULL AS status, NULL AS fingerprint,
       NULL AS starts_at, created_at, updated_at, expires_at, NULL::boolean AS paused FROM inserted
UNION ALL
SELECT 'old', r.id, r.rule, r.action, r.remediation, r.status, r.fingerprint, r.starts_at, NULL, NULL, NULL, NULL ${probeSql(2)}
UNION ALL SELECT 'control', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, paused FROM control`;

/** A bound of the creation time: a time (RFC 3339, as PostgreSQL reads it) or this long before PostgreSQL's now. */
export type TimeBound = { at: string } | { agoMs: number };

export interface RunFilter {
  status?: RunStatus;
  rule?: string;
  remediation?: string;
  /** The alert's `labels.alertname`. */
  alertname?: string;
  fingerprint?: string;
  target?: string;
  /** Created at or after. */
  since?: TimeBound;
  /** Created before. */
  until?: TimeBound;
  limit: number;
  cursor?: string;
}

interface InsertedRow {
  id: string;
  created_at: Date;
  updated_at: Date;
  expires_at: Date | null;
}

interface ExistingRow {
  id: string;
  rule: string;
  action: string;
  remediation: string;
  status: RunStatus;
  fingerprint: string;
  starts_at: string;
}

/** Dedup keys as the four arrays `probeSql` reads. */
const keyColumns = (keys: readonly DedupKey[]) => [
  keys.map((k) => k.rule),
  keys.map((k) => k.action),
  keys.map((k) => k.fingerprint),
  keys.map((k) => k.startsAt),
];

/** A row of the lookup (`probeSql`, kind 'old') or of the kill switch ('control'), as `EXISTING_SQL` and `INSERT_OR_FIND_SQL` return them. */
type LookupRow = (ExistingRow & { kind: 'old' }) | { kind: 'control'; paused: boolean };

/** The existing runs by `dedupId` and the kill switch, from the lookup's rows; any other row goes to `other`. */
function readLookup<O extends { kind: 'new' }>(
  rows: ReadonlyArray<LookupRow | O>,
  other: (row: O) => void = () => {},
): { existing: Map<string, RunRef>; paused: boolean } {
  const existing = new Map<string, RunRef>();
  let paused = false;
  for (const row of rows) {
    if (row.kind === 'old') {
      const ref: RunRef = {
        id: row.id,
        rule: row.rule,
        action: row.action,
        remediation: row.remediation,
        status: row.status,
        alert: { fingerprint: row.fingerprint, startsAt: row.starts_at },
      };
      existing.set(dedupId(dedupKeyOf(ref)), ref);
    } else if (row.kind === 'control') paused = row.paused;
    else other(row);
  }
  return { existing, paused };
}

/** Runs as they are stored, found and listed: every read of `runs`, and the insert of new ones. */
export function createRunRecords(db: Db) {
  /**
   * Stores new runs in one statement. A run whose dedup key exists already is not stored again:
   * the existing run is returned with `duplicate: true`, also when another replica inserted it concurrently.
   */
  async function insert(runs: NewRun[]): Promise<StoredRun[]> {
    if (runs.length === 0) return [];
    const ids = idsOf(runs);
    const { rows } = await db.query<InsertedRow>({ name: 'runs-insert', text: INSERT_SQL, values: [insertPayload(runs, ids)] });
    return assemble(runs, ids, rows, new Map());
  }

  /**
   * `insert` and the dedup lookup in one statement, for runs decided before their keys were looked
   * up: those of `runs` whose key exists come back as the existing run (`duplicate: true`). While the
   * kill switch is on nothing is stored and `stored` is null: the caller decides the runs again,
   * paused, and inserts those whose key is not in `existing`.
   */
  async function insertOrFind(
    runs: NewRun[],
  ): Promise<{ stored: StoredRun[]; paused: false } | { stored: null; paused: true; existing: Map<string, RunRef> }> {
    if (runs.length === 0) return { stored: [], paused: false };
    const ids = idsOf(runs);
    // Prepared once per connection: its plan probes an index per key whatever the size of the table when it was made (see probeSql).
    const { rows } = await db.query<(InsertedRow & { kind: 'new' }) | LookupRow>({
      name: 'runs-insert-or-find',
      text: INSERT_OR_FIND_SQL,
      values: [insertPayload(runs, ids), ...keyColumns(runs.map(dedupKeyOf))],
    });
    const inserted: InsertedRow[] = [];
    const { existing, paused } = readLookup(rows, (row) => inserted.push(row));
    if (paused) return { stored: null, paused, existing };
    return { stored: await assemble(runs, ids, inserted, existing), paused };
  }

  /** Each run's `dedupId`, computed once for the insert's order and for matching what comes back. */
  const idsOf = (runs: NewRun[]): string[] => runs.map((r) => dedupId(dedupKeyOf(r)));

  /**
   * The JSON array of insert rows for `runs` (whose `dedupId`s are `ids`), in dedup-key order: inserts
   * in this order wait on each other instead of deadlocking.
   */
  function insertPayload(runs: NewRun[], ids: string[]): string {
    const keyed = runs.map((run, i) => ({ id: ids[i]!, run }));
    keyed.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    return JSON.stringify(keyed.map((k) => toInsertRow(k.run)));
  }

  /** Each of `runs` (whose `dedupId`s are `ids`) as inserted (`rows`), or as the run of its key found before (`known`) or now. */
  async function assemble(runs: NewRun[], ids: string[], rows: InsertedRow[], known: Map<string, RunRef>): Promise<StoredRun[]> {
    // What was inserted is what was sent: only the ids and timestamps come back.
    const sent = new Map(runs.map((r, i) => [r.id, { run: r, key: ids[i]! }]));
    const byKey = new Map<string, Run | RunRef>(known);
    for (const row of rows) {
      const { run: newRun, key } = sent.get(row.id)!;
      byKey.set(key, fromNewRun(newRun, row.created_at, row.updated_at, row.expires_at));
    }
    const missing = runs.filter((_, i) => !byKey.has(ids[i]!));
    if (missing.length > 0) {
      // A new statement sees rows committed by concurrent inserts that the first one conflicted with.
      for (const [id, run] of (await findByKeys(missing.map(dedupKeyOf))).existing) byKey.set(id, run);
    }
    return runs.map((r, i) => {
      const run = byKey.get(ids[i]!);
      if (!run) throw new Error(`run ${r.rule}/${r.action} was neither inserted nor found`);
      return run.id === r.id ? { run: run as Run, duplicate: false as const } : { run, duplicate: true as const };
    });
  }

  /**
   * Existing runs by dedup key, keyed by `dedupId`, with only the columns a delivery answers with,
   * and the kill switch read in the same round trip.
   */
  async function findByKeys(keys: readonly DedupKey[]): Promise<{ existing: Map<string, RunRef>; paused: boolean }> {
    const { rows } = await db.query<LookupRow>({ name: 'runs-by-keys', text: EXISTING_SQL, values: keyColumns(keys) });
    return readLookup(rows);
  }

  /** A run as a worker needs it, with whether its episode resolved and the kill switch, in one round trip. */
  async function getForExecution(id: string): Promise<ForExecution | null> {
    if (!isRunId(id)) return null;
    // The lease is measured with PostgreSQL's clock, the one that set it: a worker's clock does not matter.
    const { rows } = await db.query<RunRow & { episode_resolved: boolean; paused: boolean; lease_left_ms: number }>(
      `SELECT runs.*, ${EPISODE_RESOLVED} AS episode_resolved, (SELECT paused FROM control) AS paused,
              GREATEST(0, COALESCE(ceil(extract(epoch FROM lease_until - now()) * 1000), 0))::int AS lease_left_ms
       FROM runs WHERE id = $1`,
      [id],
    );
    const row = rows[0];
    return row ? { run: toRun(row), episodeResolved: row.episode_resolved, paused: row.paused, leaseLeftMs: row.lease_left_ms } : null;
  }

  async function get(id: string, opts: { events?: boolean } = {}): Promise<Run | null> {
    if (!isRunId(id)) return null;
    const { rows } = await db.query<RunRow>(`SELECT ${RELATIONS} FROM runs WHERE id = $1`, [id]);
    const row = rows[0];
    if (!row) return null;
    if (opts.events === false) return toRun(row);
    const events = await db.query<{ at: Date; type: string; detail: Record<string, unknown> }>(
      'SELECT at, type, detail FROM run_events WHERE run_id = $1 ORDER BY id',
      [id],
    );
    const run = toRun(row);
    run.events = events.rows.map((e): RunEvent => ({ at: e.at.toISOString(), type: e.type, detail: e.detail }));
    return run;
  }

  /** A page of runs, newest first, each with the summary of its alert (`LIST_RELATIONS`), not the alert. */
  async function list(filter: RunFilter): Promise<{ runs: RunListItem[]; nextCursor: string | null }> {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      values.push(value);
      where.push(sql.replace('?', `$${values.length}`));
    };
    if (filter.status) add('status = ?', filter.status);
    if (filter.rule) add('rule = ?', filter.rule);
    if (filter.remediation) add('remediation = ?', filter.remediation);
    // The same expression as the index runs_alertname_seq, so the planner can use it.
    if (filter.alertname) add("(alert -> 'labels' ->> 'alertname') = ?", filter.alertname);
    if (filter.fingerprint) add('fingerprint = ?', filter.fingerprint);
    if (filter.target) add('target = ?', filter.target);
    // The column stays bare on its side: the bound is computed once (now() is fixed for the statement).
    const bound = (op: '>=' | '<', b: TimeBound) =>
      'at' in b
        ? add(`created_at ${op} ?::timestamptz`, b.at)
        : add(`created_at ${op} now() - ?::float8 * interval '1 millisecond'`, b.agoMs);
    if (filter.since) bound('>=', filter.since);
    if (filter.until) bound('<', filter.until);
    if (filter.cursor) add('seq < ?', filter.cursor);
    values.push(filter.limit + 1);
    const sql = `SELECT ${LIST_RELATIONS} FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${values.length}`;
    // Planned for each request's own values (a text with parameters would be prepared by name, with a
    // generic plan): a listing is rare, and how selective its filter values are decides its best plan.
    const { rows } = await db.query<ListRow>({ text: sql, values });
    const page = rows.slice(0, filter.limit);
    const nextCursor = rows.length > filter.limit ? page[page.length - 1]!.seq : null;
    return { runs: page.map(toRunListItem), nextCursor };
  }

  /** The firing runs of an episode still waiting (for approval or a predecessor): what its resolution would cancel. */
  async function pendingOfEpisode(fingerprint: string, startsAt: string): Promise<Array<{ id: string; status: RunStatus }>> {
    const { rows } = await db.query<{ id: string; status: RunStatus }>(
      `SELECT id, status FROM runs WHERE fingerprint = $1 AND starts_at = $2 AND ${CANCELLED_BY_RESOLUTION} AND status IN ('pending_approval', 'waiting')`,
      [fingerprint, startsAt],
    );
    return rows;
  }

  /**
   * Waiting runs whose predecessor reached a final status (and, for `when: verified | unverified`,
   * ended its verification) or has no run in the episode, with the
   * predecessor's outcome: those whose predecessor is one of `predecessors`, those of `dependents`,
   * or (neither given) any, oldest first.
   */
  async function readyDependents(scope: { predecessors?: readonly string[]; dependents?: readonly string[]; limit?: number }) {
    const values: unknown[] = [TERMINAL_STATUSES];
    let where = 'true';
    if (scope.predecessors) {
      values.push(scope.predecessors);
      where = `p.id = ANY($2::uuid[])`;
    } else if (scope.dependents) {
      values.push(scope.dependents);
      where = `runs.id = ANY($2::uuid[])`;
    }
    values.push(scope.limit ?? 500);
    const { rows } = await db.query<RunRow & PredecessorRow & { episode_resolved: boolean; paused: boolean }>(
      `SELECT runs.*, p.id AS p_id, p.remediation AS p_remediation, p.status AS p_status, p.reason AS p_reason,
              p.error AS p_error, p.result AS p_result, p.verification AS p_verification,
              ${EPISODE_RESOLVED} AS episode_resolved, (SELECT paused FROM control) AS paused
       FROM runs LEFT JOIN runs p ON p.rule = runs.rule AND p.action = runs.after_action
         AND p.fingerprint = runs.fingerprint AND p.starts_at = runs.starts_at
       WHERE runs.status = 'waiting' AND ${where} AND (p.id IS NULL OR (p.status = ANY($1::text[])
         -- waiting for a verification: not before it has ended
         AND (runs.after_when NOT IN ('verified', 'unverified') OR p.verification IS DISTINCT FROM 'pending')))
       ORDER BY runs.seq LIMIT $${values.length}`,
      values,
    );
    return rows.map((row): ReadyDependent => ({
      run: toRun({ ...row, after_run: row.p_id }),
      predecessor:
        row.p_id === null
          ? null
          : {
              id: row.p_id,
              remediation: row.p_remediation,
              status: row.p_status,
              reason: row.p_reason,
              error: row.p_error,
              result: row.p_result,
              verification: row.p_verification,
            },
      episodeResolved: row.episode_resolved,
      paused: row.paused,
    }));
  }

  async function countByStatus(status: RunStatus): Promise<number> {
    const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM runs WHERE status = $1', [status]);
    return Number(rows[0]?.n ?? 0);
  }

  return { insert, insertOrFind, findByKeys, getForExecution, get, list, pendingOfEpisode, readyDependents, countByStatus };
}
