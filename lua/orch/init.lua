-- The core ruleset's entry point: completes the `orch` table that the host
-- built in C (log, time, uuid, _json, _db) with the Lua halves of the API.
-- Loaded first in every Lua state; product scripts see the result as `orch`.

orch.json = require("orch.json")
orch.db = require("orch.db")
orch.http = require("orch.http")

return orch
