-- GET /api/health/: "OK" when the database answers, 500 otherwise.

local http = require("orch.http")
local db = require("orch.db")

local health = {}

function health.get()
  local rows, err = db.query("SELECT 1 AS ok")
  if not rows then
    http.raise(500, "Database unavailable: " .. err.message)
  end
  return 200, "OK"
end

return health
