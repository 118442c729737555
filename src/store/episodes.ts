import type { Db } from './database.js';

/**
 * Alert episodes (fingerprint, `startsAt`) that Alertmanager reported resolved. Their firing runs
 * that have not started are cancelled, also when the firing delivery arrives after the resolution.
 */

/** SQL: the run's alert episode was reported resolved. */
export const EPISODE_RESOLVED =
  'EXISTS (SELECT 1 FROM resolved_episodes e WHERE e.fingerprint = runs.fingerprint AND e.starts_at = runs.starts_at)';

export async function recordResolved(db: Db, episodes: ReadonlyArray<{ fingerprint: string; startsAt: string }>): Promise<void> {
  await db.query(
    'INSERT INTO resolved_episodes (fingerprint, starts_at) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING',
    [episodes.map((e) => e.fingerprint), episodes.map((e) => e.startsAt)],
  );
}
