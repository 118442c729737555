/**
 * The statuses of a run, without a schema library: the browser console imports them as they are, the
 * run schema (runs.ts) builds its union from them.
 */
export const RUN_STATUSES = [
  'waiting',
  'pending_approval',
  'queued',
  'running',
  'succeeded',
  'failed',
  'rejected',
  'expired',
  'cancelled',
  'suppressed',
  'skipped',
  'dry_run',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
/** The final statuses: a run in one never changes again, and its dependents move on. */
export const TERMINAL_STATUSES: readonly RunStatus[] = [
  'succeeded',
  'failed',
  'rejected',
  'expired',
  'cancelled',
  'suppressed',
  'skipped',
  'dry_run',
];
export const isTerminal = (status: RunStatus): boolean => TERMINAL_STATUSES.includes(status);
