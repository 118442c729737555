-- Actions that wait for another's outcome: `waiting` until the predecessor reaches a final status,
-- `skipped` when its outcome does not let them go on (or a re-check of the alert could not be made).
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN ('waiting', 'pending_approval', 'queued', 'running', 'succeeded',
  'failed', 'rejected', 'expired', 'cancelled', 'suppressed', 'skipped', 'dry_run'));

-- The predecessor is named by its action key: with the rule and the alert episode (fingerprint,
-- starts_at) that is its dedup key, so it is found whichever replica or delivery created it.
ALTER TABLE runs
  ADD COLUMN after_action text,
  ADD COLUMN after_ref text,
  ADD COLUMN after_when text CHECK (after_when IN ('succeeded', 'failed', 'finished')),
  ADD CONSTRAINT runs_after_complete CHECK ((after_action IS NULL) = (after_when IS NULL));

CREATE INDEX runs_waiting ON runs (updated_at) WHERE status = 'waiting';
