-- 0002_engine.sql
-- The step scheduler's own tables (host/engine.c, host/sched.c; docs/engine.md).
-- Names start with orch_ so that they can never clash with orchestrator-core's.

-- One row per process that has work to do. No row = nothing to do (suspended,
-- awaiting a callback, failed, aborted, completed). The row carries the
-- current state and the index of the next step, so a worker reads one row
-- instead of replaying the step log.
--
-- A lease pushes run_at to the lease expiry, so "claimable" is one condition,
-- run_at <= now(), served by one index: free rows whose time has come and rows
-- whose lease ran out (a dead worker's) sort first; live leases sort behind.
CREATE TABLE orch_work_queue (
    pid           uuid        NOT NULL,
    run_at        timestamptz NOT NULL DEFAULT now(),
    lease_owner   text,
    lease_token   uuid,
    lease_expires timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,  -- tries of the current step that came back waiting
    step_index    integer     NOT NULL DEFAULT 0,  -- the next step to run
    state         jsonb       NOT NULL DEFAULT '{}',
    generation    bigint,                          -- scripts generation that last ran a step
    enqueued_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orch_work_queue_pkey PRIMARY KEY (pid),
    CONSTRAINT orch_work_queue_pid_fkey FOREIGN KEY (pid)
        REFERENCES processes (pid) ON DELETE CASCADE,
    CONSTRAINT orch_work_queue_lease_check CHECK (
        (lease_token IS NULL) = (lease_expires IS NULL) AND (lease_token IS NULL) = (lease_owner IS NULL))
);
-- The claim query: WHERE run_at <= now() ORDER BY run_at LIMIT n FOR UPDATE SKIP LOCKED.
CREATE INDEX orch_work_queue_run_at ON orch_work_queue (run_at);
-- Heartbeats and worker-status count the leases of one host.
CREATE INDEX orch_work_queue_lease_owner ON orch_work_queue (lease_owner) WHERE lease_owner IS NOT NULL;
-- The queue is updated on every step: keep its pages free of dead rows.
ALTER TABLE orch_work_queue SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01,
                                 autovacuum_vacuum_threshold = 200);

-- Hosts running workers, for GET /api/settings/worker-status. A host is
-- online while its heartbeat is younger than its lease time.
CREATE TABLE orch_hosts (
    host_id       text        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    workers       integer     NOT NULL,
    lease_seconds integer     NOT NULL,
    CONSTRAINT orch_hosts_pkey PRIMARY KEY (host_id)
);

-- Pausing or unpausing the engine wakes every worker on every host at once.
-- (Rare writes: the cost of NOTIFY at commit does not matter here.)
CREATE FUNCTION orch_engine_settings_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orch_work', 'engine_settings');
    RETURN NULL;
END;
$$;
CREATE TRIGGER orch_engine_settings_notify AFTER INSERT OR UPDATE ON engine_settings
    FOR EACH STATEMENT EXECUTE FUNCTION orch_engine_settings_notify();
