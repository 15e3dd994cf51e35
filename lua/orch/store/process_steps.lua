-- The process_steps table: every statement the core ruleset runs on it, one named function
-- each (the engine writes its own rows in C: host/engine.c). Rows come back in log order
-- (completed_at, then started_at).

local db = require("orch.db")
local json = require("orch.json")

local store = {}

-- The log of one process: {stepid, name, status, state, created_by, commit_hash}.
function store.of_process(pid)
  return db.must([[SELECT stepid::text, name, status, state, created_by, commit_hash FROM process_steps
                   WHERE pid = $1 ORDER BY completed_at, started_at]], pid)
end

-- The logs of several processes in one statement, with pid and the start and completion times
-- as time(column) writes them (the caller's wire format): rows ordered by pid, then log order.
function store.of_processes(pids, time)
  return db.must("SELECT pid::text, stepid::text, name, status, state, created_by, "
    .. time("started_at") .. " AS started, " .. time("completed_at") .. [[ AS completed, commit_hash
    FROM process_steps WHERE pid = ANY($1::uuid[]) ORDER BY pid, completed_at, started_at]],
    "{" .. table.concat(pids, ",") .. "}")
end

-- The newest row of a process ({name, status}), or nil.
function store.last(pid)
  return db.one([[SELECT name, status FROM process_steps WHERE pid = $1
                  ORDER BY completed_at DESC, started_at DESC LIMIT 1]], pid)
end

-- Log a step the API ran itself (start, resume, abort...): started and completed now.
function store.log(pid, name, status, state, user, code_hash)
  db.must([[INSERT INTO process_steps (pid, name, status, state, created_by, started_at, completed_at, commit_hash)
            VALUES ($1, $2, $3, $4::jsonb, $5, now(), now(), left($6, 40))]], pid, name, status, json.encode(state),
    user, code_hash)
end

-- Replace the state a row recorded (a callback's result or progress on its awaiting row).
function store.set_state(stepid, state)
  db.must("UPDATE process_steps SET state = $2::jsonb WHERE stepid = $1", stepid, json.encode(state))
end

-- Processes awaiting a callback whose newest row's __callback_timeout (seconds) has passed.
function store.callbacks_timed_out()
  local rows = db.must([[
    SELECT p.pid::text FROM processes p
    JOIN LATERAL (SELECT state, started_at FROM process_steps s WHERE s.pid = p.pid
                  ORDER BY completed_at DESC LIMIT 1) last ON true
    WHERE p.last_status = 'awaiting_callback' AND last.state ? '__callback_timeout'
      AND jsonb_typeof(last.state -> '__callback_timeout') = 'number'
      AND last.started_at + make_interval(secs => (last.state ->> '__callback_timeout')::float) < now()]])
  local ids = {}
  for _, r in ipairs(rows) do
    ids[#ids + 1] = r.pid
  end
  return ids
end

-- Mark the newest row of a process failed with the callback's timeout.
function store.fail_last_with_timeout(pid)
  db.must([[UPDATE process_steps SET status = 'failed',
              state = state || '{"error": "Callback timed out", "class": "CallbackTimeout"}'::jsonb,
              completed_at = now()
            WHERE stepid = (SELECT stepid FROM process_steps WHERE pid = $1
                            ORDER BY completed_at DESC LIMIT 1)]], pid)
end

return store
