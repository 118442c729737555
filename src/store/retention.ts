import { TERMINAL_STATUSES } from '../schemas/runs.js';
import type { Db } from './database.js';

/** The final statuses as SQL literals: spelled out, so the planner matches the partial index `runs_finished`. */
const FINAL = TERMINAL_STATUSES.map((s) => `'${s}'`).join(', ');

/** Rows one statement deletes: each statement is short, and holds its locks briefly. */
export const RETENTION_BATCH = 1000;
/** Statements of each kind one sweep runs at most, so a sweep stays short; the rest waits for the next. */
export const RETENTION_BATCHES = 5;

export interface RetentionDeleted {
  runs: number;
  events: number;
  episodes: number;
  /** Whether a kind had more than the sweep's batches could take: the next sweep goes on. */
  more: boolean;
}

/**
 * Runs eligible for deletion: in a final status, not updated within the retention, and nothing
 * still depends on them: no verification pending or revert scheduled (`revert_due`), no revert of
 * them that is not itself past the retention (a revert names its run by `revert_of`), no dependent
 * that has not reached a final status (a dependent finds its predecessor by action and episode).
 * The cutoff is `now() - $1 ms` by PostgreSQL's clock.
 */
const DELETE_RUNS_SQL = `
WITH doomed AS (
  SELECT id FROM runs
  WHERE status IN (${FINAL}) AND updated_at < now() - $1::float8 * interval '1 millisecond'
    AND verification IS DISTINCT FROM 'pending' AND revert_due IS NULL
    AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.revert_of = runs.id
                    AND NOT (r.status IN (${FINAL}) AND r.updated_at < now() - $1::float8 * interval '1 millisecond'))
    AND NOT EXISTS (SELECT 1 FROM runs d WHERE d.fingerprint = runs.fingerprint AND d.starts_at = runs.starts_at
                    AND d.rule = runs.rule AND d.after_action = runs.action AND d.status NOT IN (${FINAL}))
  ORDER BY updated_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), events AS (
  SELECT count(*) AS n FROM run_events WHERE run_id IN (SELECT id FROM doomed)
), deleted AS (
  -- Their events go with them (ON DELETE CASCADE).
  DELETE FROM runs WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT (SELECT count(*) FROM deleted)::int AS runs, (SELECT n FROM events)::int AS events`;

/**
 * Resolved episodes past the retention whose runs have all reached a final status (or are gone):
 * while a run of the episode may still act, its resolution is what keeps it from acting.
 */
const DELETE_EPISODES_SQL = `
WITH doomed AS (
  SELECT fingerprint, starts_at FROM resolved_episodes e
  WHERE resolved_at < now() - $1::float8 * interval '1 millisecond'
    AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.fingerprint = e.fingerprint AND runs.starts_at = e.starts_at
                    AND runs.status NOT IN (${FINAL}))
  ORDER BY resolved_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), deleted AS (
  DELETE FROM resolved_episodes e USING doomed
  WHERE e.fingerprint = doomed.fingerprint AND e.starts_at = doomed.starts_at RETURNING 1
)
SELECT count(*)::int AS episodes FROM deleted`;

/**
 * RUN_RETENTION: deletes finished runs (with their timelines) and resolved episodes older than the
 * retention, in batches of `batch` rows, at most `batches` statements of each kind per call. Replicas
 * may run it at once: rows another one is deleting are skipped (`SKIP LOCKED`).
 */
export function createRetention(db: Db) {
  async function deleteExpired(retentionMs: number, opts: { batch?: number; batches?: number } = {}): Promise<RetentionDeleted> {
    const batch = opts.batch ?? RETENTION_BATCH;
    const batches = opts.batches ?? RETENTION_BATCHES;
    const done: RetentionDeleted = { runs: 0, events: 0, episodes: 0, more: false };
    if (retentionMs <= 0) return done;
    const values = [retentionMs, batch];
    // Unnamed statements: each is planned with its values, so the cutoff meets the partial index.
    let full = true;
    for (let i = 0; i < batches && full; i++) {
      const { rows } = await db.query<{ runs: number; events: number }>(DELETE_RUNS_SQL, values);
      done.runs += rows[0]!.runs;
      done.events += rows[0]!.events;
      full = rows[0]!.runs === batch;
    }
    done.more = full;
    // Runs first: an episode is deleted only once none of its runs can still act.
    full = true;
    for (let i = 0; i < batches && full; i++) {
      const { rows } = await db.query<{ episodes: number }>(DELETE_EPISODES_SQL, values);
      done.episodes += rows[0]!.episodes;
      full = rows[0]!.episodes === batch;
    }
    done.more ||= full;
    return done;
  }

  return { deleteExpired };
}

export type Retention = ReturnType<typeof createRetention>;
