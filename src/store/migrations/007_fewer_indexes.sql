-- Every index on runs is written by every insert. Two of the listing filters do not need their own:
-- `fingerprint` is served by runs_episode (fingerprint, starts_at), a handful of rows per alert sorted
-- by seq; `since` / `until` by the seq order itself, which follows creation time.
DROP INDEX IF EXISTS runs_fingerprint_seq;
DROP INDEX IF EXISTS runs_created_at;
