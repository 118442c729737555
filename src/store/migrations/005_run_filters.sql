-- Listing filters: each is an index probe that yields its runs newest first, so a filtered page of
-- `GET /api/runs` reads only the rows it answers with (and the next page starts where it stopped).
CREATE INDEX runs_alertname_seq ON runs ((alert -> 'labels' ->> 'alertname'), seq DESC);
CREATE INDEX runs_fingerprint_seq ON runs (fingerprint, seq DESC);
CREATE INDEX runs_target_seq ON runs (target, seq DESC) WHERE target IS NOT NULL;
-- `since` / `until` alone: a time window far from now is found without walking every newer run.
CREATE INDEX runs_created_at ON runs (created_at);
