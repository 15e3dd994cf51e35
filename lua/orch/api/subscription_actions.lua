-- Subscription routes that belong to the engine: which workflows a subscription
-- may run now (with core's reasons) and the manual "set in sync" unlock.

local db = require("orch.db")
local http = require("orch.http")
local actions = require("orch.subscription_actions")

local api = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
api.routes = {
  { "GET", "/api/subscriptions/workflows/{subscription_id}", "workflows", action = "subscriptions.read",
    summary = "The workflows that may run on a subscription", response = S.SubscriptionWorkflows },
  { "PUT", "/api/subscriptions/{subscription_id}/set_in_sync", "set_in_sync", action = "subscriptions.write",
    summary = "Mark a subscription in sync", response = {} },
}

local function check_uuid(id)
  if not orch.uuid.valid(id) then
    http.raise(422, "subscription_id is not a valid UUID")
  end
end

function api.workflows(req)
  local id = req.params.subscription_id
  check_uuid(id)
  local out = actions.available(id, req.user)
  if not out then
    http.raise(404, "Subscription not found")
  end
  return 200, out
end

-- PUT /api/subscriptions/{id}/set_in_sync: unlock after a failed process, unless
-- workflows (not tasks) linked to it are still going.
function api.set_in_sync(req)
  local id = req.params.subscription_id
  check_uuid(id)
  local status = db.transaction(function()
    local sub = db.one("SELECT insync FROM subscriptions WHERE subscription_id = $1 FOR UPDATE", id)
    if not sub then
      http.raise(404, "Subscription not found")
    end
    if not sub.insync then
      local open = db.must([[SELECT p.pid::text FROM processes p
                             JOIN processes_subscriptions ps ON ps.pid = p.pid
                             WHERE ps.subscription_id = $1 AND NOT p.is_task
                               AND p.last_status NOT IN ('completed', 'aborted')]], id)
      if #open > 0 then
        local pids = {}
        for _, r in ipairs(open) do
          pids[#pids + 1] = r.pid
        end
        http.raise(422, "Subscription " .. id .. " has still failed processes with id's: "
          .. table.concat(pids, ", "))
      end
      db.must("UPDATE subscriptions SET insync = true WHERE subscription_id = $1", id)
    end
    return 200
  end)
  require("orch.events").subscription_changed(id)
  return status
end

return api
