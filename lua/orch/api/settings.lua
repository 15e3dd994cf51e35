-- /api/settings: the engine's global lock (engine_settings), as orchestrator-core
-- shapes it: {global_lock, running_processes, global_status}.

local http = require("orch.http")
local db = require("orch.db")
local queue_store = require("orch.store.orch_work_queue")

local settings = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
settings.routes = {
  { "GET", "/api/settings/status", "get_status", action = "settings.read", summary = "The engine status",
    response = S.EngineSettingsSchema },
  { "PUT", "/api/settings/status", "put_status", action = "settings.write",
    summary = "Lock or unlock the engine", body = S.GlobalLockBody, response = S.EngineSettingsSchema },
  { "GET", "/api/settings/worker-status", "get_worker_status", action = "settings.read",
    summary = "Workers online and jobs queued or running", response = S.WorkerStatus },
  { "GET", "/api/settings/cache-names", "cache_names", action = "settings.read", summary = "The cache names",
    response = { type = "object", additionalProperties = S.string } },
  { "DELETE", "/api/settings/cache/{name}", "clear_cache", action = "settings.write",
    summary = "Clear a cache (there is none to clear)", response = S.integer },
  { "POST", "/api/settings/search-index/reset", "reset_search_index", action = "settings.write",
    summary = "Reset the search index (a no-op)", response = S.string },
  { "GET", "/api/settings/overview", "overview", action = "settings.read", summary = "Application settings",
    response = S.array(S.any_object) },
  { "POST", "/api/settings/reload", "reload", action = "settings.reload",
    summary = "Load a new generation of the scripts", response = S.ReloadReport,
    errors = { [400] = "The scripts have errors; the current generation keeps serving." } },
  { "GET", "/api/settings/generation", "generation", action = "settings.read",
    summary = "The scripts in use and the last reload error", response = S.GenerationSchema },
}

-- Processes a worker is executing right now: those under a live lease
-- (migrations/0002_engine.sql). A paused engine gives its leases back, so
-- PAUSING turns into PAUSED when the last running step has committed.
local function running_processes()
  return queue_store.running()
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
  require("orch.events").emit("engineStatus") -- the UI's engine badge, on every host
  return 200, current()
end

-- Caches: this host keeps none that an operator would flush (no Redis), so the
-- one name core offers, "all", flushes nothing and answers 0.
function settings.cache_names()
  return 200, { all = "All caches" }
end

function settings.clear_cache(req)
  if req.params.name ~= "all" then
    http.raise(400, "Invalid cache name")
  end
  return 200, 0
end

-- There is no search view to refresh (core's subscriptions_search is not used).
function settings.reset_search_index()
  return 200, "OK"
end

-- Exposed settings ([] unless ORCH_EXPOSE_SETTINGS is on; see orch.settings in docs/lua.md).
function settings.overview()
  return 200, require("orch.json").array()
end

-- GET /api/settings/worker-status: hosts whose heartbeat is younger than
-- their lease time are online; queued = due and not leased, running = leased.
function settings.get_worker_status()
  local row = queue_store.worker_status()
  return 200, {
    executor_type = "orchestrator",
    number_of_workers_online = row.online,
    number_of_queued_jobs = row.queued,
    number_of_running_jobs = row.running,
  }
end

-- POST /api/settings/reload: build, validate and publish a new generation of the
-- scripts; 200 with what changed, or 400 with the errors (file, line, message)
-- while the current generation keeps serving.
-- At most one reload per ORCH_RELOAD_MIN_INTERVAL_MS in a process: a reload builds and
-- checks every script, so a loop of them slows every other request (429, Retry-After).
function settings.reload()
  local text, wait_ms = orch._host.reload()
  if not text then
    local retry = tostring(math.max(1, math.ceil(wait_ms / 1000)))
    local json = require("orch.json")
    return 429, json.ordered({ detail = "Too Many Requests: the scripts were reloaded moments ago "
      .. "(ORCH_RELOAD_MIN_INTERVAL_MS); retry in " .. retry .. " s",
      status = 429, title = "Too Many Requests" }, { "detail", "status", "title" }),
      { ["Retry-After"] = retry }
  end
  local report = require("orch.json").decode(text)
  return report.ok and 200 or 400, report
end

-- GET /api/settings/generation: the scripts in use (files and hashes) and the last reload error.
function settings.generation()
  local json = require("orch.json")
  local status = json.decode(orch._host.status())
  if status.last_reload_errors ~= nil and status.last_reload_errors ~= json.null then
    -- file names relative to their folder, never the server's paths
    status.last_reload_errors = json.decode(require("orch.redact").paths(json.encode(status.last_reload_errors)))
  end
  return 200, status
end

return settings
