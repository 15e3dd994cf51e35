-- The orch_work_queue table (migrations/0002_engine.sql): the statements the core ruleset
-- runs on it, one named function each. The engine claims, leases and settles rows in C
-- (host/engine.c); here the API queues work and reads what is queued.

local db = require("orch.db")
local json = require("orch.json")

local store = {}

-- Queue a process to run from step_index (0-based) with state, now, under no lease.
function store.put(pid, step_index, state)
  db.must([[INSERT INTO orch_work_queue (pid, step_index, state, run_at)
            VALUES ($1, $2, $3::jsonb, now())
            ON CONFLICT (pid) DO UPDATE SET step_index = EXCLUDED.step_index, state = EXCLUDED.state,
              run_at = now(), attempts = 0, lease_owner = NULL, lease_token = NULL, lease_expires = NULL]],
    pid, step_index, json.encode(state))
end

-- Whether a process has a queue row.
function store.has(pid)
  return db.one("SELECT 1 AS yes FROM orch_work_queue WHERE pid = $1", pid) ~= nil
end

function store.remove(pid)
  db.must("DELETE FROM orch_work_queue WHERE pid = $1", pid)
end

-- The queued state of each of pids that has a row: {[pid] = state}.
function store.states(pids)
  local out = {}
  for _, q in ipairs(db.must("SELECT pid::text, state FROM orch_work_queue WHERE pid = ANY($1::uuid[])",
    "{" .. table.concat(pids, ",") .. "}")) do
    out[q.pid] = q.state
  end
  return out
end

-- Make the unleased rows of pids due now.
function store.run_now(pids)
  db.must("UPDATE orch_work_queue SET run_at = now() WHERE pid = ANY($1::uuid[]) AND lease_owner IS NULL",
    "{" .. table.concat(pids, ",") .. "}")
end

-- Processes under a live lease (being run by a worker), on every host.
function store.running()
  local row = db.one("SELECT count(*) AS n FROM orch_work_queue WHERE lease_expires > now()")
  return row and row.n or 0
end

-- {online, queued, running} in one statement: the workers of the hosts whose heartbeat is
-- younger than their lease time, the rows due and not leased, the rows under a live lease.
function store.worker_status()
  return db.one([[
    SELECT (SELECT coalesce(sum(workers), 0) FROM orch_hosts
             WHERE heartbeat_at > now() - make_interval(secs => lease_seconds)) AS online,
           (SELECT count(*) FROM orch_work_queue
             WHERE run_at <= now() AND (lease_expires IS NULL OR lease_expires <= now())) AS queued,
           (SELECT count(*) FROM orch_work_queue WHERE lease_expires > now()) AS running]])
end

-- The queue's gauges as rows {k, a, b, v} of one SELECT, for the metrics statement to join
-- with its own (UNION ALL): queue depth, runnable rows, the oldest runnable row's age, leases.
store.GAUGES_SQL = [[
SELECT 'queue' AS k, NULL AS a, NULL AS b, count(*)::float8 AS v FROM orch_work_queue
UNION ALL
SELECT 'runnable', NULL, NULL, count(*)::float8 FROM orch_work_queue WHERE run_at <= now()
UNION ALL
SELECT 'oldest', NULL, NULL,
       coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 FROM orch_work_queue WHERE run_at <= now()
UNION ALL
SELECT 'leases', NULL, NULL, count(*)::float8 FROM orch_work_queue WHERE lease_expires > now()]]

return store
