-- Which workflows a subscription may run now, with orchestrator-core's reasons (the
-- subscription's status and sync, its relations, the workflow's authorization). The
-- API (orch.api.subscription_actions, GET /api/subscriptions/workflows/{id}) and the
-- start of a workflow on a subscription (orch.processes) ask it.

local db = require("orch.db")
local json = require("orch.json")
local workflow = require("orch.workflow")

local M = {}

-- Statuses in which a workflow of a target may run (core's TARGET_DEFAULT_USABLE_MAP).
local USABLE = {
  CREATE = {}, MODIFY = { "active" }, TERMINATE = { "active", "provisioning" },
  SYSTEM = { "active" }, VALIDATE = { "active" }, RECONCILE = { "active" },
}
local USABLE_WHILE_OUT_OF_SYNC = { modify_note = true }

-- Subscriptions related to `id` through block relations: in use by (they depend on
-- one of its blocks) or depends on (it uses one of theirs).
local RELATED = [[
  SELECT DISTINCT s.subscription_id::text, s.description AS subscription_description, s.insync, s.status, %s AS kind
  FROM subscription_instances mine
  JOIN subscription_instance_relations r ON r.%s = mine.subscription_instance_id
  JOIN subscription_instances other ON other.subscription_instance_id = r.%s
  JOIN subscriptions s ON s.subscription_id = other.subscription_id
  WHERE mine.subscription_id = $1 AND other.subscription_id <> $1]]

local function relations(id)
  local in_use_by = db.must(RELATED:format("'in_use_by'", "depends_on_id", "in_use_by_id"), id)
  local depends_on = db.must(RELATED:format("'depends_on'", "in_use_by_id", "depends_on_id"), id)
  local locked, unterminated = {}, {}
  local function detail(r)
    return { subscription_id = r.subscription_id, subscription_description = r.subscription_description }
  end
  for _, r in ipairs(in_use_by) do
    if not r.insync then
      locked[#locked + 1] = detail(r)
    end
    if r.status ~= "terminated" then
      unterminated[#unterminated + 1] = detail(r)
    end
  end
  for _, r in ipairs(depends_on) do
    if not r.insync then
      locked[#locked + 1] = detail(r)
    end
  end
  return locked, unterminated
end

local function ids(list)
  local out = json.array()
  for _, r in ipairs(list) do
    out[#out + 1] = r.subscription_id
  end
  return out
end

-- The workflows subscription `id` may run now, with core's reasons (nil if it does not exist).
-- With `user` (the authenticated user), a workflow whose authorize_callback refuses them
-- is marked "subscription.insufficient_workflow_permissions".
function M.available(id, user)
  local sub = db.one("SELECT subscription_id::text, status, insync, product_id::text FROM subscriptions "
    .. "WHERE subscription_id = $1", id)
  if not sub then
    return nil
  end
  local locked, unterminated = relations(id)
  local default = {}
  if not sub.insync then
    default.reason = "subscription.not_in_sync"
  elseif #locked > 0 then
    default.reason = "subscription.relations_not_in_sync"
    default.locked_relations = ids(locked)
    default.locked_relations_detail = json.array(locked)
  end
  local out = {
    create = json.array(), modify = json.array(), terminate = json.array(),
    system = json.array(), validate = json.array(), reconcile = json.array(),
  }
  local wfs = db.must([[SELECT w.name, w.description, w.target, w.is_task FROM workflows w
                        JOIN products_workflows pw ON pw.workflow_id = w.workflow_id
                        WHERE pw.product_id = $1 AND w.deleted_at IS NULL ORDER BY w.name]], sub.product_id)
  for _, w in ipairs(wfs) do
    local entry = { name = w.name, description = w.description }
    if not (USABLE_WHILE_OUT_OF_SYNC[w.name] or w.is_task or w.target == "RECONCILE") then
      for k, v in pairs(default) do
        entry[k] = v
      end
    end
    if entry.reason == nil then
      local usable = USABLE[w.target] or {}
      local ok = false
      for _, s in ipairs(usable) do
        ok = ok or s == sub.status
      end
      local action = w.target == "TERMINATE" and "terminated" or "modified"
      if not ok then
        entry.reason = "subscription.no_modify_invalid_status"
        entry.usable_when = json.array({ table.unpack(usable) })
        entry.status = sub.status
        entry.action = action
      end
      if w.target == "TERMINATE" and #unterminated > 0 then
        entry.reason = "subscription.no_modify_subscription_in_use_by_others"
        entry.unterminated_in_use_by_subscriptions = ids(unterminated)
        entry.unterminated_in_use_by_subscriptions_detail = json.array(unterminated)
        entry.action = action
      end
    end
    if entry.reason == nil and user ~= nil
      and not workflow.allowed(workflow.get(w.name), "start", user) then
      entry.reason = "subscription.insufficient_workflow_permissions"
    end
    local list = out[w.target:lower()]
    list[#list + 1] = entry
  end
  for k, v in pairs(default) do
    out[k] = v
  end
  return out
end

return M
