import type { Run } from '../schemas/runs.js';
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

/**
 * Whether the resolution of its alert cancels a run that has not started: a firing-phase run, unless
 * it does not depend on the alert still firing (`check: { alertFiring: false }`, the default of
 * notices, which report what was done whatever the alert does now).
 */
export const cancelledByResolution = (run: Pick<Run, 'phase' | 'gates'>): boolean =>
  run.phase === 'firing' && run.gates.alertFiring !== false;

/** SQL twin of `cancelledByResolution`, for the bulk cancels of a resolved episode. */
export const CANCELLED_BY_RESOLUTION = `phase = 'firing' AND (gates->>'alertFiring') IS DISTINCT FROM 'false'`;
