-- Runs: one per (rule, action, alert fingerprint, alert startsAt); the unique key is the dedup gate.
CREATE TABLE runs (
  id uuid PRIMARY KEY,
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  rule text NOT NULL,
  action text NOT NULL,
  phase text NOT NULL CHECK (phase IN ('firing', 'resolved')),
  remediation text NOT NULL,
  target text,
  params jsonb NOT NULL,
  status text NOT NULL CHECK (status IN ('pending_approval', 'queued', 'running', 'succeeded', 'failed',
                                         'rejected', 'expired', 'cancelled', 'suppressed', 'dry_run')),
  reason text,
  fingerprint text NOT NULL,
  -- startsAt exactly as Alertmanager sent it (nanoseconds do not fit a timestamptz).
  starts_at text NOT NULL,
  alert jsonb NOT NULL,
  approval_required boolean NOT NULL DEFAULT false,
  expires_at timestamptz,
  decided_by text,
  decided_at timestamptz,
  decision_comment text,
  dry_run boolean NOT NULL DEFAULT false,
  -- The gate settings of the action when the run was created, so a matrix change does not alter them.
  gates jsonb NOT NULL DEFAULT '{}',
  attempts integer NOT NULL DEFAULT 0,
  -- While running: no other worker may take the run over before this (the remediation's timeout has passed).
  lease_until timestamptz,
  plan text,
  result jsonb,
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT runs_dedup_key UNIQUE (rule, action, fingerprint, starts_at)
);

CREATE INDEX runs_status_seq ON runs (status, seq DESC);
CREATE INDEX runs_rule_seq ON runs (rule, seq DESC);
CREATE INDEX runs_remediation_seq ON runs (remediation, seq DESC);
CREATE INDEX runs_episode ON runs (fingerprint, starts_at);
CREATE INDEX runs_pending_expiry ON runs (expires_at) WHERE status = 'pending_approval';
CREATE INDEX runs_in_flight ON runs (updated_at) WHERE status IN ('queued', 'running');

-- Alert episodes Alertmanager reported resolved: their firing runs that have not started are cancelled.
CREATE TABLE resolved_episodes (
  fingerprint text NOT NULL,
  starts_at text NOT NULL,
  resolved_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (fingerprint, starts_at)
);

-- The timeline: every decision about a run, in order.
CREATE TABLE run_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  type text NOT NULL,
  detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX run_events_run ON run_events (run_id, id);

-- The kill switch: one row, shared by every replica, surviving restarts.
CREATE TABLE control (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  paused boolean NOT NULL DEFAULT false,
  reason text,
  changed_by text,
  changed_at timestamptz
);
INSERT INTO control (id) VALUES (true);

-- Who switched what, when: pause and resume are not tied to a run.
CREATE TABLE control_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor text NOT NULL,
  type text NOT NULL,
  detail jsonb NOT NULL DEFAULT '{}'
);
