-- /api/settings: the engine's global lock (engine_settings), as orchestrator-core
-- shapes it: {global_lock, running_processes, global_status}.

local http = require("orch.http")
local db = require("orch.db")

local settings = {}

-- Processes that are running right now; the engine keeps this table current.
local function running_processes()
  local row = db.one("SELECT count(*) AS n FROM processes WHERE last_status = 'running'")
  return row and row.n or 0
end

local function status_of(locked, running)
  if not locked then
    return "RUNNING"
  end
  return running > 0 and "PAUSING" or "PAUSED"
end

local function current()
  local row = db.one("SELECT global_lock FROM engine_settings LIMIT 1")
  if not row then
    http.raise(500, "engine_settings has no row; run `orchestrator db upgrade`")
  end
  local running = running_processes()
  return {
    global_lock = row.global_lock,
    running_processes = running,
    global_status = status_of(row.global_lock, running),
  }
end

function settings.get_status()
  return 200, current()
end

function settings.put_status(req)
  local body = req.json
  if type(body) ~= "table" or type(body.global_lock) ~= "boolean" then
    http.raise(422, "Request body must be a JSON object with a boolean field 'global_lock'")
  end
  db.must("UPDATE engine_settings SET global_lock = $1", body.global_lock)
  return 200, current()
end

return settings
