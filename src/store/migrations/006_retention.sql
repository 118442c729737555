-- RUN_RETENTION: finished runs are deleted oldest update first, and resolved episodes oldest resolution
-- first; each sweep reads only the rows it deletes. The status list is the final statuses of runs_status_check.
CREATE INDEX runs_finished ON runs (updated_at)
  WHERE status IN ('succeeded', 'failed', 'rejected', 'expired', 'cancelled', 'suppressed', 'skipped', 'dry_run');
CREATE INDEX resolved_episodes_resolved_at ON resolved_episodes (resolved_at);
