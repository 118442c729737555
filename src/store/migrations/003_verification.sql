-- The closed loop: a run that succeeded may still have to prove it helped (`verify`): its
-- verification is `pending` until a Prometheus query says so (`verified`) or `verify_until` passes
-- (`unverified`). The sweeper evaluates what is due (`verify_due`), on whichever replica.
ALTER TABLE runs DROP CONSTRAINT runs_after_when_check;
ALTER TABLE runs ADD CONSTRAINT runs_after_when_check
  CHECK (after_when IN ('succeeded', 'failed', 'finished', 'verified', 'unverified'));

ALTER TABLE runs
  ADD COLUMN verification text CHECK (verification IN ('pending', 'verified', 'unverified')),
  ADD COLUMN verify_due timestamptz,
  ADD COLUMN verify_until timestamptz;

CREATE INDEX runs_verify_due ON runs (verify_due) WHERE verification = 'pending';
