-- Scheduled tasks (docs/schedules.md). orchestrator-core keeps APScheduler's pickled jobs in
-- apscheduler_jobs, which no other language can read; these tables are ours (orch_*), and the
-- API and GraphQL answer with core's shapes.
--
-- orch_schedules: one row per schedule, from the API ('api'), the defaults ('default') or a
-- product script ('script', keyed by script_key = the name given in Lua). next_run_time is the
-- next due time; a host that finds it passed locks the row (SKIP LOCKED), records the run and
-- moves next_run_time on in one transaction, so each due time is taken once.
CREATE TABLE orch_schedules (
    schedule_id uuid PRIMARY KEY,
    name text NOT NULL,
    workflow_name text NOT NULL,
    trigger text NOT NULL CHECK (trigger IN ('cron', 'interval', 'date')),
    trigger_kwargs jsonb NOT NULL DEFAULT '{}',
    user_inputs jsonb NOT NULL DEFAULT '[{}]',
    timezone text NOT NULL DEFAULT 'UTC',
    misfire text NOT NULL DEFAULT 'run_once' CHECK (misfire IN ('skip', 'run_once')),
    source text NOT NULL CHECK (source IN ('api', 'default', 'script')),
    script_key text UNIQUE,
    script_where text,
    anchor timestamptz NOT NULL DEFAULT now(),
    next_run_time timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orch_schedules_due ON orch_schedules (next_run_time) WHERE next_run_time IS NOT NULL;
CREATE INDEX orch_schedules_workflow ON orch_schedules (workflow_name);

-- orch_schedule_runs: one row per (schedule, due time) - the key that makes a run happen once.
-- pending -> starting (claimed by a host until claimed_until) -> started (pid) | refused (the
-- run predicate or a paused engine said no) | failed (the start itself failed); skipped = a
-- misfire the policy dropped. A claim that lapses (the host died) is taken again; the start uses
-- an idempotency key made of the run's key, so a retried start finds the first one's process.
CREATE TABLE orch_schedule_runs (
    schedule_id uuid NOT NULL REFERENCES orch_schedules ON DELETE CASCADE,
    due_at timestamptz NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'starting', 'started', 'refused', 'failed', 'skipped')),
    pid uuid,
    detail text,
    attempts integer NOT NULL DEFAULT 0,
    claimed_by text,
    claimed_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (schedule_id, due_at)
);
CREATE INDEX orch_schedule_runs_open ON orch_schedule_runs (due_at) WHERE status IN ('pending', 'starting');
