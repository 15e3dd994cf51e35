-- The SQL of orch_schedules and orch_schedule_runs (migrations/0020_schedules.sql), one
-- function per statement. Times cross this boundary as epoch seconds (floats);
-- the database's clock is the one every host agrees on, so "now" comes from it too.

local db = require("orch.db")
local json = require("orch.json")

local store = {}

local COLUMNS = [[s.schedule_id::text, s.name, s.workflow_name, w.workflow_id::text AS workflow_id,
  s.trigger, s.trigger_kwargs, s.user_inputs, s.timezone, s.misfire, s.source, s.script_key, s.script_where,
  extract(epoch FROM s.anchor)::float8 AS anchor, extract(epoch FROM s.next_run_time)::float8 AS next_run_time,
  extract(epoch FROM s.created_at)::float8 AS created_at]]

local FROM = [[ FROM orch_schedules s LEFT JOIN workflows w ON w.name = s.workflow_name AND w.deleted_at IS NULL]]

function store.now()
  return db.one("SELECT extract(epoch FROM now())::float8 AS now").now
end

function store.all()
  return db.must("SELECT " .. COLUMNS .. FROM .. " ORDER BY s.name, s.schedule_id")
end

function store.get(id)
  return db.one("SELECT " .. COLUMNS .. FROM .. " WHERE s.schedule_id = $1", id)
end

function store.by_workflow(workflow_name)
  return db.must("SELECT " .. COLUMNS .. FROM .. " WHERE s.workflow_name = $1 ORDER BY s.created_at", workflow_name)
end

function store.scripted()
  return db.must("SELECT " .. COLUMNS .. FROM .. " WHERE s.source = 'script'")
end

-- row: {schedule_id, name, workflow_name, trigger, trigger_kwargs, user_inputs, timezone, misfire,
-- source, script_key, script_where, anchor, next_run_time}
function store.insert(row)
  db.must([[INSERT INTO orch_schedules (schedule_id, name, workflow_name, trigger, trigger_kwargs, user_inputs,
              timezone, misfire, source, script_key, script_where, anchor, next_run_time)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11, to_timestamp($12),
                    to_timestamp($13))]],
    row.schedule_id, row.name, row.workflow_name, row.trigger, json.encode(row.trigger_kwargs),
    json.encode(row.user_inputs), row.timezone, row.misfire, row.source, row.script_key, row.script_where,
    row.anchor, row.next_run_time)
end

function store.update(row)
  db.must([[UPDATE orch_schedules SET name = $2, workflow_name = $3, trigger = $4, trigger_kwargs = $5::jsonb,
              user_inputs = $6::jsonb, timezone = $7, misfire = $8, script_where = $9, anchor = to_timestamp($10),
              next_run_time = to_timestamp($11), updated_at = now()
            WHERE schedule_id = $1]],
    row.schedule_id, row.name, row.workflow_name, row.trigger, json.encode(row.trigger_kwargs),
    json.encode(row.user_inputs), row.timezone, row.misfire, row.script_where, row.anchor, row.next_run_time)
end

function store.delete(id)
  local _, n = db.must("DELETE FROM orch_schedules WHERE schedule_id = $1", id)
  return n
end

-- Due schedules, locked for this transaction; the ones another host holds are skipped.
function store.lock_due(limit)
  return db.must("SELECT " .. COLUMNS .. ", extract(epoch FROM now())::float8 AS now" .. FROM .. [[
    WHERE s.next_run_time <= now() ORDER BY s.next_run_time LIMIT $1 FOR UPDATE OF s SKIP LOCKED]], limit)
end

function store.set_next(id, next_run_time)
  db.must("UPDATE orch_schedules SET next_run_time = to_timestamp($2) WHERE schedule_id = $1", id, next_run_time)
end

-- One run per (schedule, due time): a second insert of the same key is a no-op.
function store.insert_run(id, due, status, detail)
  local rows = db.must([[INSERT INTO orch_schedule_runs (schedule_id, due_at, status, detail)
                         VALUES ($1, to_timestamp($2), $3, $4) ON CONFLICT DO NOTHING RETURNING 1 AS ok]],
    id, due, status, detail)
  return #rows == 1
end

-- Claim runs to start: pending ones, and ones whose claimer vanished (its claim lapsed).
function store.claim_runs(owner, limit, claim_seconds)
  return db.must([[
    UPDATE orch_schedule_runs r SET status = 'starting', claimed_by = $1,
      claimed_until = now() + make_interval(secs => $3), attempts = r.attempts + 1
    FROM orch_schedules s
    WHERE s.schedule_id = r.schedule_id AND (r.schedule_id, r.due_at) IN (
      SELECT schedule_id, due_at FROM orch_schedule_runs
      WHERE status = 'pending' OR (status = 'starting' AND claimed_until < now())
      ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING r.schedule_id::text, extract(epoch FROM r.due_at)::float8 AS due_at, r.attempts,
      s.workflow_name, s.user_inputs, s.name]], owner, limit, claim_seconds)
end

-- Claim one given run (a run started by hand).
function store.claim_run(id, due, owner, claim_seconds)
  return db.must([[
    UPDATE orch_schedule_runs r SET status = 'starting', claimed_by = $3,
      claimed_until = now() + make_interval(secs => $4), attempts = r.attempts + 1
    FROM orch_schedules s
    WHERE s.schedule_id = r.schedule_id AND r.schedule_id = $1 AND r.due_at = to_timestamp($2)
      AND r.status = 'pending'
    RETURNING r.schedule_id::text, extract(epoch FROM r.due_at)::float8 AS due_at, r.attempts,
      s.workflow_name, s.user_inputs, s.name]], id, due, owner, claim_seconds)
end

function store.finish_run(id, due, status, pid, detail)
  db.must([[UPDATE orch_schedule_runs SET status = $3, pid = $4, detail = $5, finished_at = now(),
              claimed_until = NULL
            WHERE schedule_id = $1 AND due_at = to_timestamp($2)]], id, due, status, pid, detail)
end

function store.runs(id, limit)
  return db.must([[SELECT extract(epoch FROM due_at)::float8 AS due_at, status, pid::text, detail, attempts
                   FROM orch_schedule_runs WHERE schedule_id = $1 ORDER BY due_at DESC LIMIT $2]], id, limit or 20)
end

-- ---- time zones (PostgreSQL's tz database) ----

function store.zone_exists(name)
  return db.one("SELECT 1 AS ok FROM pg_timezone_names WHERE name = $1", name) ~= nil
end

-- Civil fields of an instant in a zone.
function store.to_local(t, zone)
  local row = db.one([[SELECT to_char(to_timestamp($1::float8) AT TIME ZONE $2, 'YYYY MM DD HH24 MI SS') AS f]],
    t, zone)
  local y, mo, d, h, mi, s = row.f:match("^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$")
  return { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h), min = tonumber(mi),
    sec = tonumber(s) }
end

-- The instant of civil fields in a zone (PostgreSQL's rule in a DST gap or overlap).
function store.from_local(f, zone)
  return db.one([[SELECT extract(epoch FROM make_timestamptz($1, $2, $3, $4, $5, $6::float8, $7))::float8 AS t]],
    f.year, f.month, f.day, f.hour, f.min, f.sec, zone).t
end

return store
