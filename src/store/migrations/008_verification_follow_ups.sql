-- An unverified run's follow-ups (arming the escalation, the notice, the revert, the silence's early
-- end) call Redis, Alertmanager and PostgreSQL after the verification is stored. Until they have all
-- been done, the run keeps a `verify_due`: the sweeper claims it again and retries them. So the
-- index serves every run with a `verify_due`, pending or not.
DROP INDEX IF EXISTS runs_verify_due;
CREATE INDEX runs_verify_due ON runs (verify_due) WHERE verify_due IS NOT NULL;
