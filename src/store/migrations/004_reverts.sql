-- Reverts: a run of its own (phase `revert`) that undoes a succeeded run, linked to it by
-- `revert_of`. Its dedup key (rule, `revert:<action>`, episode) makes one revert per run.
-- `revert_due`: a run with `revertAfter` is undone at this time, verified or not.
ALTER TABLE runs DROP CONSTRAINT runs_phase_check;
ALTER TABLE runs ADD CONSTRAINT runs_phase_check CHECK (phase IN ('firing', 'resolved', 'revert'));

ALTER TABLE runs
  ADD COLUMN revert_of uuid REFERENCES runs (id) ON DELETE SET NULL,
  ADD COLUMN revert_due timestamptz;

CREATE INDEX runs_revert_of ON runs (revert_of) WHERE revert_of IS NOT NULL;
CREATE INDEX runs_revert_due ON runs (revert_due) WHERE revert_due IS NOT NULL;
