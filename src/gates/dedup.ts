/**
 * Dedup: at most one run per (rule, action, alert fingerprint, alert `startsAt`), whatever the number
 * of deliveries or replicas. The gate itself is the unique index `runs_dedup_key` (see the store's
 * insert, `ON CONFLICT ... DO NOTHING`); this file names the key.
 */
export interface DedupKey {
  rule: string;
  action: string;
  fingerprint: string;
  startsAt: string;
}

export const dedupKey = (rule: string, action: string, alert: { fingerprint: string; startsAt: string }): DedupKey => ({
  rule,
  action,
  fingerprint: alert.fingerprint,
  startsAt: alert.startsAt,
});

/** The dedup key of anything shaped like a run. */
export const dedupKeyOf = (run: { rule: string; action: string; alert: { fingerprint: string; startsAt: string } }): DedupKey =>
  dedupKey(run.rule, run.action, run.alert);

/** One string per key, for Map lookups only: it is never parsed back into a key. */
export const dedupId = (k: DedupKey): string => JSON.stringify([k.rule, k.action, k.fingerprint, k.startsAt]);
