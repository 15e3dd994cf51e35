-- GET /api/health/: "OK" when the database answers, 503 (with Retry-After) otherwise.

local http = require("orch.http")
local db = require("orch.db")

local health = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
health.routes = {
  { "GET", "/api/health", "get", action = "health.read", summary = "\"OK\" when the database answers",
    response = S.string },
}

function health.get()
  local rows, err = db.query("SELECT 1 AS ok")
  if not rows then
    http.raise(503, "Database unavailable: " .. err.message)
  end
  return 200, "OK"
end

return health
