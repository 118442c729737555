/**
 * The statuses of a run, without a schema library: the browser console imports them as they are, the
 * run schema (runs.ts) builds its union from them.
 */
const OPEN_STATUSES = ['waiting', 'pending_approval', 'queued', 'running'] as const;
/** The final statuses: a run in one never changes again, and its dependents move on. */
const FINAL_STATUSES = ['succeeded', 'failed', 'rejected', 'expired', 'cancelled', 'suppressed', 'skipped', 'dry_run'] as const;

export const RUN_STATUSES = [...OPEN_STATUSES, ...FINAL_STATUSES] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const TERMINAL_STATUSES: readonly RunStatus[] = FINAL_STATUSES;
export const isTerminal = (status: RunStatus): boolean => TERMINAL_STATUSES.includes(status);
