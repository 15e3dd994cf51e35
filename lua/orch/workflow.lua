-- Workflows in Lua: steps, step kinds, the standard wrappers of orchestrator-core
-- and the registry of workflows defined by the loaded scripts.
--
-- A workflow is an ordered list of steps. A step is a named function
--   function(state, ctx) return { key = value, ... } end
-- whose result is merged into the state (nil = nothing to merge). Step kinds
-- keep core's semantics and names: step, retrystep, inputstep, conditional,
-- step_group, callback_step, focussteps, and the implicit Start/Done/Abort.
-- The engine runs one step at a time (lua/orch/runner.lua); this module only
-- describes workflows.

local workflow = {}

local TARGETS = { CREATE = true, MODIFY = true, TERMINATE = true, VALIDATE = true, RECONCILE = true, SYSTEM = true }
workflow.TARGETS = TARGETS

-- The position ("file:line: ") of the script line that called into this module.
local function caller_position(level)
  local _, where = pcall(error, "", level + 1)
  return type(where) == "string" and where or ""
end

-- "file:line: " of the product script line that called into the core ruleset (the
-- innermost product-script frame), so that definition errors point at the author's
-- line and not into lua/orch/. Falls back to counting levels outside the host.
local function author_position(level)
  local pos = require("orch.where").author()
  if pos == "" then
    return caller_position(level + 1)
  end
  return pos
end
workflow.author_position = author_position

-- Raise a definition error at the author's line.
local function fail(msg)
  error(author_position(2) .. msg, 0)
end

-- Unknown option keys are errors (a typo such as `result_kye` or `frm` would
-- otherwise be ignored silently).
local function check_keys(what, opts, allowed)
  if type(opts) ~= "table" then
    return
  end
  local unknown = {}
  for k in pairs(opts) do
    if not allowed[k] then
      unknown[#unknown + 1] = tostring(k)
    end
  end
  if #unknown > 0 then
    table.sort(unknown)
    local names = {}
    for k in pairs(allowed) do
      names[#names + 1] = k
    end
    table.sort(names)
    fail(what .. ": unknown option" .. (#unknown > 1 and "s " or " ") .. table.concat(unknown, ", ")
      .. " (known: " .. table.concat(names, ", ") .. ")")
  end
end

local function keyset(list)
  local t = {}
  for _, k in ipairs(list) do
    t[k] = true
  end
  return t
end

local function is_step(x)
  return type(x) == "table" and x.__step == true
end
workflow.is_step = is_step

local function new_step(kind, name, fields, level)
  if type(name) ~= "string" or name == "" then
    fail("a step needs a name (a non-empty string)")
  end
  local s = { __step = true, kind = kind, name = name, where = author_position(level + 1) }
  for k, v in pairs(fields or {}) do
    s[k] = v
  end
  return s
end

-- Workflow RBAC of a step (docs/security.md): opts.retry_auth_callback and
-- opts.resume_auth_callback, functions(user) -> boolean.
local function auth_fields(fields, opts, name, level)
  for _, k in ipairs({ "retry_auth_callback", "resume_auth_callback" }) do
    local cb = opts and opts[k]
    if cb ~= nil and type(cb) ~= "function" then
      error("step '" .. tostring(name) .. "': " .. k .. " must be a function", level + 1)
    end
    fields[k] = cb
  end
  return fields
end

-- step(name, fn [, opts]): runs fn(state, ctx) and merges what it returns; an error
-- fails the process. opts: retry_auth_callback, resume_auth_callback.
function workflow.step(name, fn, opts)
  if type(fn) ~= "function" then
    fail("step '" .. tostring(name) .. "' needs a function")
  end
  return new_step("step", name, auth_fields({ fn = fn }, opts, name, 2), 2)
end

-- retrystep(name, fn): like step, but an error puts the process in `waiting`;
-- the engine retries it later with backoff.
function workflow.retrystep(name, fn, opts)
  if type(fn) ~= "function" then
    fail("retrystep '" .. tostring(name) .. "' needs a function")
  end
  return new_step("retry", name, auth_fields({ fn = fn }, opts, name, 2), 2)
end

-- inputstep(name, {form = f, assignee = "SYSTEM", resume_auth_callback, retry_auth_callback}):
-- suspends the process with a form; resuming it with the form's answers merges them into the state.
local INPUTSTEP_KEYS = keyset({ "form", "assignee", "resume_auth_callback", "retry_auth_callback" })

function workflow.inputstep(name, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    fail("inputstep '" .. tostring(name) .. "': options must be a table {form = ..., assignee = ...}")
  end
  check_keys("inputstep '" .. tostring(name) .. "'", opts, INPUTSTEP_KEYS)
  if opts.form == nil then
    fail("inputstep '" .. tostring(name) .. "' needs a form")
  end
  return new_step("input", name,
    auth_fields({ form = opts.form, assignee = opts.assignee or "SYSTEM" }, opts, name, 2), 2)
end

-- Flatten nested arrays of steps into one array, checking every element.
local function flatten(steps, out, level)
  out = out or {}
  if is_step(steps) then
    out[#out + 1] = steps
    return out
  end
  if type(steps) ~= "table" then
    fail("expected a step or a list of steps, got " .. type(steps))
  end
  for i = 1, #steps do
    local s = steps[i]
    if is_step(s) then
      out[#out + 1] = s
    elseif type(s) == "table" then
      flatten(s, out, level + 1)
    else
      fail("element " .. i .. " of the step list is not a step (" .. type(s) .. ")")
    end
  end
  return out
end
workflow.flatten = function(steps)
  return flatten(steps, nil, 2)
end

local function copy_step(s)
  local c = {}
  for k, v in pairs(s) do
    c[k] = v
  end
  return c
end

-- conditional(pred)(steps): each step runs only when pred(state) is true,
-- otherwise it is recorded as `skipped` with the state unchanged.
function workflow.conditional(pred)
  if type(pred) ~= "function" then
    fail("conditional needs a predicate function")
  end
  return function(steps)
    local out = {}
    for _, s in ipairs(flatten(steps, nil, 2)) do
      local c = copy_step(s)
      local preds = { pred }
      for _, p in ipairs(s.when or {}) do
        preds[#preds + 1] = p
      end
      c.when = preds
      out[#out + 1] = c
    end
    return out
  end
end

-- focussteps(key)(steps): the steps see state[key] as their state, and what they
-- return is merged into state[key].
function workflow.focussteps(key)
  if type(key) ~= "string" then
    fail("focussteps needs a state key")
  end
  return function(steps)
    local out = {}
    for _, s in ipairs(flatten(steps, nil, 2)) do
      local c = copy_step(s)
      local focus = {}
      for _, k in ipairs(s.focus or {}) do
        focus[#focus + 1] = k
      end
      table.insert(focus, 1, key)
      c.focus = focus
      out[#out + 1] = c
    end
    return out
  end
end

-- step_group(name, steps): sub-steps run as one logical step, logged as one row.
function workflow.step_group(name, steps)
  local subs = flatten(steps, nil, 2)
  if #subs == 0 then
    fail("step_group '" .. tostring(name) .. "' has no steps")
  end
  for _, s in ipairs(subs) do
    if s.kind == "group" then
      fail("step_group '" .. tostring(name) .. "' cannot contain another group ('" .. s.name .. "')")
    end
  end
  local form
  for _, s in ipairs(subs) do
    if s.kind == "input" then
      form = s.form
      break
    end
  end
  return new_step("group", name, { steps = subs, form = form }, 2)
end

-- callback_step{name, action, validate, result_key = "callback_result", timeout = seconds}:
-- create a single-use callback route, run the action (which hands the route to an
-- external system), wait for the callback, validate its result, clean up.
local CALLBACK_KEYS = keyset({ "name", "action", "validate", "result_key", "callback_route_key", "timeout" })

function workflow.callback_step(opts)
  if type(opts) ~= "table" then
    fail("callback_step needs a table {name, action, validate, result_key, timeout}")
  end
  local name = opts.name
  check_keys("callback_step '" .. tostring(name) .. "'", opts, CALLBACK_KEYS)
  if type(name) ~= "string" or name == "" then
    fail("callback_step needs a name (a non-empty string)")
  end
  if not is_step(opts.action) or not is_step(opts.validate) then
    fail("callback_step '" .. tostring(name) .. "' needs action and validate steps")
  end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout <= 0) then
    fail("callback_step '" .. tostring(name) .. "': timeout must be a positive number of seconds")
  end
  local result_key = opts.result_key or "callback_result"
  local route_key = opts.callback_route_key or "callback_route"
  local timeout = opts.timeout
  local create = workflow.step(name .. " - Create endpoint", function(state)
    local token = orch.uuid.token(32)
    return {
      [route_key] = "/api/processes/" .. state.process_id .. "/callback/" .. token,
      __callback_token = token,
    }
  end)
  local await = new_step("await_callback", name .. " - Await callback", {
    result_key = result_key,
    timeout = timeout,
  }, 2)
  local cleanup = workflow.step(name .. " - Cleanup callback step", function()
    return { __remove_keys = { "__callback_token", "__callback_result_key", "__callback_timeout" } }
  end)
  local group = workflow.step_group(name, { create, opts.action, await, opts.validate, cleanup })
  group.where = author_position(2)
  return group
end

-- The implicit steps.
workflow.init = new_step("init", "Start", {}, 1)
workflow.done = new_step("done", "Done", {}, 1)
workflow.abort = new_step("abort", "Abort", {}, 1)

-- ---- the registry of defined workflows ----

local registry = { by_name = {}, ordered = {} }

-- define{name, target, description, is_task, form, steps, run_predicate, products,
-- authorize_callback, retry_auth_callback}: register a workflow whose step list is used as given (it should start
-- with workflow.init and end with workflow.done, as core's @workflow).
local DEFINE_KEYS = keyset({ "name", "target", "description", "is_task", "form", "steps", "run_predicate",
  "products", "product_types", "product_tags", "authorize", "authorize_callback", "retry_auth_callback", "kind",
  "usable_while_out_of_sync" })
workflow.DEFINE_KEYS = DEFINE_KEYS

local function check_names(wf_name, key, v)
  if v == nil then
    return
  end
  if type(v) == "string" then
    return
  end
  if type(v) ~= "table" then
    fail("workflow '" .. wf_name .. "': " .. key .. " must be a list of names, got " .. type(v))
  end
  for i, x in ipairs(v) do
    if type(x) ~= "string" then
      fail("workflow '" .. wf_name .. "': " .. key .. "[" .. i .. "] must be a name (a string), got " .. type(x))
    end
  end
end

-- define(def, level, extra_keys): extra_keys are the options a wrapper (create_workflow...)
-- takes on top of DEFINE_KEYS.
function workflow.define(def, level, extra_keys)
  level = (level or 1) + 1
  if type(def) ~= "table" then
    fail("workflow definition must be a table")
  end
  local name = def.name
  if type(name) ~= "string" or not name:match("^[%w_%-]+$") then
    fail("workflow needs a name made of letters, digits, '_' and '-'")
  end
  local allowed = DEFINE_KEYS
  if extra_keys then
    allowed = {}
    for k in pairs(DEFINE_KEYS) do
      allowed[k] = true
    end
    for k in pairs(extra_keys) do
      allowed[k] = true
    end
  end
  check_keys("workflow '" .. name .. "'", def, allowed)
  local target = def.target or "SYSTEM"
  if not TARGETS[target] then
    fail("workflow '" .. name .. "': unknown target '" .. tostring(target) .. "'")
  end
  if type(def.description) ~= "string" or def.description == "" then
    fail("workflow '" .. name .. "' needs a description")
  end
  for _, key in ipairs({ "products", "product_types", "product_tags" }) do
    check_names(name, key, def[key])
  end
  for _, k in ipairs({ "authorize_callback", "retry_auth_callback" }) do
    if def[k] ~= nil and type(def[k]) ~= "function" then
      error("workflow '" .. name .. "': " .. k .. " must be a function", level)
    end
  end
  local steps = flatten(def.steps or {}, nil, level)
  local where = author_position(level)
  if registry.by_name[name] then
    fail("workflow '" .. name .. "' is defined twice (first at " .. registry.by_name[name].where:gsub(": $", "")
      .. ")")
  end
  local wf = {
    name = name,
    target = target,
    description = def.description,
    is_task = def.is_task == true,
    form = def.form,
    steps = steps,
    run_predicate = def.run_predicate,
    products = def.products or {},
    product_types = def.product_types,
    product_tags = def.product_tags,
    authorize_callback = def.authorize_callback,
    retry_auth_callback = def.retry_auth_callback,
    where = where,
    kind = def.kind or "workflow",
    usable_while_out_of_sync = def.usable_while_out_of_sync == true,
  }
  registry.by_name[name] = wf
  registry.ordered[#registry.ordered + 1] = wf
  return wf
end

function workflow.get(name)
  return registry.by_name[name]
end

local function as_list(v)
  if type(v) == "string" then
    return { v }
  end
  return v or {}
end

-- Cross-file checks once every script has loaded: the product names, product types
-- and tags a workflow links to must be defined (a typo would serve an empty product
-- picker). `known` = {products = set, product_types = set, product_tags = set}.
-- Appends "file:line: message" to errors.
function workflow.finalize(known, errors)
  local what = { products = "product", product_types = "product type", product_tags = "product tag" }
  for _, wf in ipairs(registry.ordered) do
    for _, key in ipairs({ "products", "product_types", "product_tags" }) do
      for _, n in ipairs(as_list(wf[key])) do
        if not known[key][n] then
          errors[#errors + 1] = wf.where .. "workflow '" .. wf.name .. "': unknown " .. what[key] .. " '"
            .. tostring(n) .. "' in " .. key
        end
      end
    end
  end
  return errors
end

-- Warnings for `orchestrator check`: step names that repeat within one workflow
-- (resume counts the occurrences, but the log and the UI are easier to read with
-- distinct names). Returns a list of "file:line: message".
function workflow.warnings()
  local out = {}
  for _, wf in ipairs(registry.ordered) do
    local count, order = {}, {}
    for _, s in ipairs(wf.steps) do
      if not count[s.name] then
        order[#order + 1] = s.name
      end
      count[s.name] = (count[s.name] or 0) + 1
    end
    for _, n in ipairs(order) do
      if count[n] > 1 then
        out[#out + 1] = wf.where .. "workflow '" .. wf.name .. "': step '" .. n .. "' appears " .. count[n]
          .. " times (resume counts the occurrences; distinct names read better in the log)"
      end
    end
  end
  return out
end

-- The position of the `occurrence`-th step named `name` in wf.steps, or nil.
function workflow.step_occurrence(wf, name, occurrence)
  local seen = 0
  for i, s in ipairs(wf.steps) do
    if s.name == name then
      seen = seen + 1
      if seen == occurrence then
        return i
      end
    end
  end
  return nil
end

-- The defined workflows in definition order (a new list: the registry itself is not shared).
function workflow.list()
  return { table.unpack(registry.ordered) }
end

-- Index of the step named `name` in wf.steps (first match), or nil.
function workflow.step_index(wf, name)
  for i, s in ipairs(wf.steps) do
    if s.name == name then
      return i
    end
  end
  return nil
end

-- The callback deciding `action` ("start", "resume", "retry") for a user:
-- start: the workflow's authorize_callback. resume (a suspended process): the
-- latest resume_auth_callback among the executed steps and the current one, else
-- authorize_callback. retry: the latest step retry_auth_callback or
-- resume_auth_callback, else the workflow's retry_auth_callback, else authorize_callback.
local function auth_callback(wf, action, at)
  if action ~= "start" and at then
    for i = math.min(at.index + 1, #wf.steps), 1, -1 do
      local s = wf.steps[i]
      if action == "retry" and s.retry_auth_callback then
        return s.retry_auth_callback
      end
      if s.resume_auth_callback then
        return s.resume_auth_callback
      end
    end
  end
  if action == "retry" and wf.retry_auth_callback then
    return wf.retry_auth_callback
  end
  return wf.authorize_callback
end

-- allowed(wf, action, user [, at]) -> boolean; user is the authenticated user table
-- (nil with auth off). A callback that raises denies (logged).
function workflow.allowed(wf, action, user, at)
  local cb = wf and auth_callback(wf, action, at)
  if not cb then
    return true
  end
  local ok, verdict = pcall(cb, user)
  if not ok then
    orch.log.error("auth callback of workflow " .. wf.name .. " failed (denied):", tostring(verdict))
    return false
  end
  return verdict == true
end

return workflow
