-- GET /api/metrics: Prometheus text exposition (version 0.0.4) of this host's
-- counters and histograms (kept in C, host/metrics.c: HTTP requests, steps,
-- hand-offs, claims, reloads, Lua memory and budget kills, database errors,
-- WebSocket clients) followed by gauges read from the database in one round
-- trip: processes by workflow and status, the work queue, leases and schedule
-- runs. The database part is the same on every host of a cluster; the host
-- part is this host's own (docs/operations.md).

local http = require("orch.http")
local db = require("orch.db")

local metrics = {}

local S = require("orch.api.schemas")
metrics.routes = {
  { "GET", "/api/metrics", "get", action = "metrics.read", tags = { "Metrics" },
    summary = "Prometheus metrics of this host and of the database (text exposition format)",
    response = S.string, content_type = "text/plain" },
}

local CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

-- One statement: k names the gauge, a and b are its labels.
local SQL = [[
SELECT 'processes' AS k, w.name AS a, p.last_status AS b, count(*)::float8 AS v
  FROM processes p JOIN workflows w ON w.workflow_id = p.workflow_id GROUP BY w.name, p.last_status
UNION ALL
]] .. require("orch.store.orch_work_queue").GAUGES_SQL .. [[

UNION ALL
SELECT 'schedule_runs', status, NULL, count(*)::float8 FROM orch_schedule_runs GROUP BY status
]]

-- A label value as the exposition format wants it: \\, \" and \n escaped.
function metrics.escape(value)
  return (tostring(value):gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function number(v)
  if v == math.floor(v) and math.abs(v) < 1e15 then
    return string.format("%d", v)
  end
  return string.format("%.9g", v)
end

local GAUGES = {
  { "processes", "orch_processes", "Processes by workflow and last status (database)", { "workflow", "status" } },
  { "queue", "orch_queue_depth", "Processes with work to do: rows of the work queue (database)" },
  { "runnable", "orch_queue_runnable", "Queued processes whose time has come and that no live lease holds (database)" },
  { "oldest", "orch_queue_oldest_runnable_age_seconds", "Age of the oldest runnable queue row (database)" },
  { "leases", "orch_leases_held", "Processes under a live lease, on every host (database)" },
  { "schedule_runs", "orch_schedule_runs", "Schedule runs by status: started, refused, failed, skipped, pending, "
    .. "starting (database)", { "status" } },
}

-- The database gauges as exposition text.
function metrics.database_text(rows)
  local by = {}
  for _, r in ipairs(rows) do
    local list = by[r.k] or {}
    by[r.k] = list
    list[#list + 1] = r
  end
  local out = {}
  for _, g in ipairs(GAUGES) do
    local key, name, help, labels = g[1], g[2], g[3], g[4]
    out[#out + 1] = "# HELP " .. name .. " " .. help .. "\n# TYPE " .. name .. " gauge\n"
    for _, r in ipairs(by[key] or {}) do
      local ls = ""
      if labels then
        local parts = {}
        for i, l in ipairs(labels) do
          parts[i] = l .. '="' .. metrics.escape(i == 1 and r.a or r.b) .. '"'
        end
        ls = "{" .. table.concat(parts, ",") .. "}"
      end
      out[#out + 1] = name .. ls .. " " .. number(r.v) .. "\n"
    end
  end
  return table.concat(out)
end

function metrics.get()
  local rows, err = db.query(SQL)
  local text = orch._host.metrics()
  if rows then
    text = text .. metrics.database_text(rows)
  else
    -- The host's own part still answers while the database is away.
    text = text .. "# database unavailable: " .. tostring(err.message):gsub("\n", " ") .. "\n"
  end
  return 200, http.raw(text, CONTENT_TYPE)
end

return metrics
