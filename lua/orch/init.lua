-- The core ruleset's entry point: completes the `orch` table that the host
-- built in C (log, time, uuid, _json, _db) with the Lua halves of the API.
-- Loaded first in every Lua state; product scripts see the result as `orch`.

orch.json = require("orch.json")
orch.db = require("orch.db")
orch.http = require("orch.http")
-- Outbound HTTP for steps to configured services (docs/client.md); orch.http is the server side.
orch.client = require("orch.client")
orch.forms = require("orch.forms")
orch.workflow = require("orch.workflow")
-- Workflow kinds with core's standard steps: orch.workflows.create_workflow{...}, ...
orch.workflows = require("orch.standard")
orch.model = require("orch.model")
-- The customers the API shows: products plug in their own (docs/products.md).
orch.customers = require("orch.api.graphql_schema.customers")
-- Schedules of workflows: orch.schedule{name, workflow, cron | interval | at, ...} (docs/schedules.md).
local schedules = require("orch.schedules")
orch.schedule = schedules.define
-- Cross-file checks of the product and workflow definitions and the schedules, run by the host
-- after every script loaded (a list of "file:line: message").
function orch._finalize()
  local errors = orch.model.finalize() or {}
  errors = orch.workflow.finalize(orch.model.known_names(), errors) or errors
  for _, message in ipairs(schedules.finalize()) do
    errors[#errors + 1] = message
  end
  return errors
end

-- The workflows core ships (system tasks), defined in every state.
require("orch.builtin")

return orch
