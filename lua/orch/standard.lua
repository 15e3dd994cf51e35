-- orchestrator-core's standard steps and workflow kinds (create, modify,
-- terminate, validate, reconcile, task), with core's step names, so that
-- process logs read the same as core's.
--
-- Database writes happen in the persist phase (ctx:defer), inside the engine's
-- fenced transaction: a step whose lease was lost writes nothing.

local workflow = require("orch.workflow")
local db = require("orch.db")

local standard = {}

local step = workflow.step

-- The subscription a process works on: state.subscription_id, or the id inside state.subscription.
local function subscription_id_of(state)
  local id = state.subscription_id
  if id == nil and type(state.subscription) == "table" then
    id = state.subscription.subscription_id
  end
  if type(id) ~= "string" then
    error("the state holds no subscription_id", 0)
  end
  return id
end
standard.subscription_id_of = subscription_id_of

standard.store_process_subscription = step("Create Process Subscription relation", function(state, ctx)
  local id = subscription_id_of(state)
  ctx:defer(function()
    db.must([[INSERT INTO processes_subscriptions (pid, subscription_id, workflow_target)
              VALUES ($1, $2, $3)]], state.process_id, id, state.workflow_target)
  end)
end)

-- Snapshot of the subscription row for __old_subscriptions__ (the domain model, when
-- loaded, replaces this with the full model dump).
local function snapshot(id)
  local row = db.one([[
    SELECT subscription_id::text, description, status, product_id::text, customer_id, insync, note, version,
           to_char(start_date AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS start_date,
           to_char(end_date AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS end_date
    FROM subscriptions WHERE subscription_id = $1]], id)
  if not row then
    error("subscription " .. id .. " does not exist", 0)
  end
  return row
end

local function lock(checked)
  return function(state, ctx)
    local id = subscription_id_of(state)
    local row = snapshot(id)
    -- The backup is the full domain model when the product is defined, else the row.
    local ok, sub = pcall(orch.model.get, id)
    local backup = ok and sub:to_table() or row
    if checked and not row.insync then
      error("Subscription is already out of sync, cannot continue!", 0)
    end
    ctx:defer(function()
      db.must("UPDATE subscriptions SET insync = false WHERE subscription_id = $1", id)
    end)
    local old = {}
    for k, v in pairs(state.__old_subscriptions__ or {}) do
      old[k] = v
    end
    if old[id] == nil then
      old[id] = backup
    end
    return { __old_subscriptions__ = old }
  end
end

standard.unsync = step("Lock subscription", lock(true))
standard.unsync_unchecked = step("Lock subscription", lock(false))

standard.resync = step("Unlock subscription", function(state, ctx)
  local id = subscription_id_of(state)
  ctx:defer(function()
    db.must("UPDATE subscriptions SET insync = true WHERE subscription_id = $1", id)
  end)
end)

-- "Set subscription to '<status>'": the lifecycle change through the domain model
-- (the whole tree is validated for the new lifecycle, core's in-use-by safety table
-- is checked, start/end dates are stamped); the model is saved with the step.
function standard.set_status(status)
  local lifecycles = require("orch.model.registry").lifecycles
  local known = false
  for _, l in ipairs(lifecycles) do
    known = known or l == status
  end
  if not known then
    error("orch.workflows.set_status: expected a lifecycle status (" .. table.concat(lifecycles, ", ")
      .. "), got " .. (type(status) == "string" and "'" .. status .. "'" or type(status)), 2)
  end
  return step("Set subscription to '" .. status .. "'", function(state)
    local sub = orch.model.get(subscription_id_of(state))
    sub:set_status(status)
    return { subscription = sub }
  end)
end

-- Kept for step-list compatibility with core; this host keeps no search view to refresh.
standard.refresh_subscription_search_index = step("Refresh subscription search index", function() end)
standard.refresh_process_search_index = step("Refresh process search index", function() end)

-- ensure_provisioning_status(steps): provisioning before, active after.
function standard.ensure_provisioning_status(steps)
  return { standard.set_status("provisioning"), steps, standard.set_status("active") }
end

local WRAPPER_KEYS = { additional_steps = true, status = true }

local function define(def, target, before, after, defaults)
  if type(def) ~= "table" then
    error(workflow.author_position(2) .. "workflow definition must be a table", 0)
  end
  local d = {}
  for k, v in pairs(defaults or {}) do
    d[k] = v
  end
  for k, v in pairs(def) do
    d[k] = v
  end
  d.target = target
  d.kind = target:lower()
  d.steps = { workflow.init, before, def.steps or {}, def.additional_steps or {}, after, workflow.done }
  return workflow.define(d, 3, WRAPPER_KEYS)
end

-- create_workflow{name, description, form, steps, additional_steps, status = "active", products}
function standard.create_workflow(def)
  local status = def.status or "active"
  return define(def, "CREATE", {}, {
    standard.set_status(status), standard.resync,
    standard.refresh_subscription_search_index, standard.refresh_process_search_index,
  })
end

function standard.modify_workflow(def)
  return define(def, "MODIFY", { standard.store_process_subscription, standard.unsync }, {
    standard.resync, standard.refresh_subscription_search_index, standard.refresh_process_search_index,
  })
end

function standard.terminate_workflow(def)
  return define(def, "TERMINATE", { standard.store_process_subscription, standard.unsync }, {
    standard.set_status("terminated"), standard.resync,
    standard.refresh_subscription_search_index, standard.refresh_process_search_index,
  })
end

function standard.validate_workflow(def)
  if def.additional_steps then
    error(workflow.author_position(2) .. "validate workflows take no additional_steps", 0)
  end
  return define(def, "VALIDATE", { standard.store_process_subscription, standard.unsync_unchecked },
    { standard.resync }, { is_task = true })
end

function standard.reconcile_workflow(def)
  return define(def, "RECONCILE", { standard.store_process_subscription, standard.unsync_unchecked }, {
    standard.resync, standard.refresh_subscription_search_index, standard.refresh_process_search_index,
  })
end

-- subscription_step(name, fn [, {retry = true}]): a step that gets the process's
-- subscription as a live model, the same way in every workflow kind:
--   fn(sub, state, ctx) -> state changes or nil
-- `sub` is orch.model.get(state.subscription_id) at the start of the step; after fn
-- it is saved in the step's transaction (only what changed) and its dump becomes
-- state.subscription, unless fn returned a `subscription` of its own.
function standard.subscription_step(name, fn, opts)
  if type(fn) ~= "function" then
    error("subscription_step '" .. tostring(name) .. "' needs a function (sub, state, ctx)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("subscription_step '" .. tostring(name) .. "': options must be a table", 2)
  end
  for k in pairs(opts or {}) do
    if k ~= "retry" then
      error("subscription_step '" .. tostring(name) .. "': unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local make = opts and opts.retry and workflow.retrystep or step
  local s = make(name, function(state, ctx)
    local sub = orch.model.get(subscription_id_of(state))
    local out = fn(sub, state, ctx)
    if out ~= nil and type(out) ~= "table" then
      error("a step must return a table of state changes or nil, got " .. type(out), 0)
    end
    out = out or {}
    if out.subscription == nil then
      out.subscription = sub
    end
    return out
  end)
  local _, where = pcall(error, "", 3)
  s.where = type(where) == "string" and where or s.where
  return s
end

-- task{name, description, form, steps, run_predicate}: SYSTEM, is_task.
function standard.task(def)
  return define(def, "SYSTEM", {}, {}, { is_task = true })
end

return standard
