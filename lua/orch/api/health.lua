-- GET /api/health/: "OK" when the database answers, 503 (with Retry-After) otherwise.
-- The host answers GET and HEAD of /api/health itself, in C and without a Lua lane
-- (host/http.c, docs/input-limits.md), the same way; this row declares the route (OpenAPI)
-- and answers what the host passes on (a request with a query string).

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
