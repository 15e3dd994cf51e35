-- 0003_process_api.sql
-- Helpers of the process API (lua/orch/api/processes.lua). Our own names (orch_*).

-- Timestamps as FastAPI writes them: ISO 8601 in UTC with microseconds and "+00:00".
CREATE FUNCTION orch_iso(ts timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"');

-- Idempotent starts: one process per Idempotency-Key.
CREATE TABLE orch_idempotency_keys (
    key        text        NOT NULL,
    pid        uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orch_idempotency_keys_pkey PRIMARY KEY (key),
    -- Deferred: the key is claimed first, the process row follows in the same transaction.
    CONSTRAINT orch_idempotency_keys_pid_fkey FOREIGN KEY (pid) REFERENCES processes (pid)
        ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);

-- The process list sorts and filters on these.
CREATE INDEX IF NOT EXISTS orch_processes_started_at ON processes (started_at);
CREATE INDEX IF NOT EXISTS orch_processes_last_status ON processes (last_status);
CREATE INDEX IF NOT EXISTS orch_process_steps_pid_completed ON process_steps (pid, completed_at);
