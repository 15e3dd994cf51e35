-- The step runner: runs ONE step of a process and says what the engine must
-- record. The engine (host/engine.c, on a worker of host/sched.c) calls run() with no database transaction
-- open, then - inside its fenced transaction on the same connection -
-- persist() to apply what the step deferred (subscription saves, relation
-- rows...). If the engine lost its lease it drops the result instead.
--
-- run(job) with job = {process_id, workflow_name, step_index, state, created_by, attempt}
-- returns a result:
--   status       "success" | "skipped" | "suspend" | "waiting" | "awaiting_callback"
--                | "abort" | "failed" | "complete"   (core's StepStatus values)
--   step_name    the name logged in process_steps
--   state        the process state after the step (what the next step sees)
--   log_state    what process_steps.state records (the error dict for failed/waiting)
--   next_index   the step to run next (same index to re-run it after a retry/resume)
--   continue     true when the next step may run at once
--   replace_last true when the engine must overwrite the last logged row (step groups)
--   retry_after  seconds to wait before a `waiting` step runs again
--   failed_reason, traceback, assignee
--   process_status  for a failed task: which kind of failure (core's inconsistent_data or
--                api_unavailable); the engine writes it as processes.last_status
--   effects      functions to run in the persist phase, in order

local json = require("orch.json")
local workflow = require("orch.workflow")

local runner = {}

-- State keys that only steer the engine and are never shown as step output.
local INTERNAL_KEYS = { __step_name_override = true, __replace_last_state = true, __remove_keys = true }

local function shallow_copy(t)
  local c = {}
  for k, v in pairs(t or {}) do
    c[k] = v
  end
  return c
end

-- Raise this from a step to fail with a class and details (core's ProcessFailureError).
function runner.failure(message, details, class)
  return setmetatable({ class = class or "ProcessFailureError", message = message, details = details },
    { __tostring = function(e) return e.message end })
end

-- Raise this from a task's step when the data is inconsistent: the task ends as
-- `inconsistent_data` and is assigned to the NOC, as core does for AssertionError.
function runner.inconsistent(message, details)
  return runner.failure(message, details, "InconsistentData")
end

-- The error dict core logs for failed and waiting steps: {class, error, traceback[, details]}.
local function error_dict(err, traceback)
  if type(err) == "table" and err.message then
    return { class = err.class or "ProcessFailureError", error = tostring(err.message), details = err.details,
      traceback = traceback }
  end
  local msg = tostring(err)
  return { class = "LuaError", error = msg, traceback = traceback }
end

-- core's kinds of a failed task, from the error's class: inconsistent data (assigned to the
-- NOC) and an unavailable API (connection errors, 502/503/504 answers), which the resume task
-- retries. Returns the process status and assignee, or nil for a plain failure.
local INCONSISTENT = { AssertionError = true, InconsistentData = true }
local UNREACHABLE = { MaxRetryError = true, HTTPConnectionError = true }
local HTTP_ERRORS = { ApiException = true, HTTPError = true }
local UNAVAILABLE_STATUS = { [502] = true, [503] = true, [504] = true }
local function failed_task_kind(dict)
  if INCONSISTENT[dict.class] then
    return "inconsistent_data", "NOC"
  end
  local details = type(dict.details) == "table" and dict.details or {}
  if UNREACHABLE[dict.class] or (HTTP_ERRORS[dict.class] and UNAVAILABLE_STATUS[tonumber(details.status)]) then
    return "api_unavailable"
  end
  return nil
end

local function backoff(attempt)
  local seconds = 30 * 2 ^ math.min(attempt or 0, 7)
  return math.min(seconds, 3600)
end

-- Subscription models anywhere in a step's result are saved in the step's
-- transaction (as core saves returned SubscriptionModels) and logged as their dump.
local function is_subscription(v)
  local model = orch.model
  return model ~= nil and model.is_subscription ~= nil and model.is_subscription(v)
end

local function collect_models(v, models, depth)
  if type(v) ~= "table" or depth > 20 then
    return v
  end
  if is_subscription(v) then
    models[#models + 1] = v
    return v:to_table()
  end
  local copy
  for k, x in pairs(v) do
    local y = collect_models(x, models, depth + 1)
    if y ~= x then
      copy = copy or shallow_copy(v)
      copy[k] = y
    end
  end
  if copy then
    setmetatable(copy, getmetatable(v))
  end
  return copy or v
end

-- Merge a step's return value into the state, collecting the models to save.
local function merge(state, ret, effects)
  local new = shallow_copy(state)
  if ret == nil then
    return new
  end
  if type(ret) ~= "table" then
    error("a step must return a table of state changes or nil, got " .. type(ret), 0)
  end
  local models = {}
  for k, v in pairs(ret) do
    new[k] = collect_models(v, models, 0)
  end
  if #models > 0 then
    -- Fail the step (nothing written) when a model could not be loaded again.
    for _, m in ipairs(models) do
      if orch.model.check_savable and m:changes() ~= 0 then
        orch.model.check_savable(m)
      end
    end
    effects[#effects + 1] = function()
      orch.model.save_all(models)
    end
  end
  local remove = new.__remove_keys
  if type(remove) == "table" then
    for _, k in ipairs(remove) do
      new[k] = nil
    end
  end
  for k in pairs(INTERNAL_KEYS) do
    new[k] = nil
  end
  return new
end

local function make_ctx(job, step, effects)
  local ctx = {
    process_id = job.process_id,
    workflow_name = job.workflow_name,
    step_name = step.name,
    created_by = job.created_by,
    attempt = job.attempt or 0,
    log = orch.log,
  }
  -- Run fn(ctx) in the persist phase: inside the step's transaction, only if the
  -- engine still holds the process. Database writes of a step belong here.
  function ctx.defer(_, fn)
    effects[#effects + 1] = fn
  end
  return ctx
end

-- Call a step function with focus and a traceback on error: ok, value | false, err, traceback.
local function call_step(step, state, ctx)
  local view = state
  for _, key in ipairs(step.focus or {}) do
    local sub = view[key]
    if type(sub) ~= "table" then
      sub = {}
    end
    view = sub
  end
  local tb
  local ok, ret = xpcall(step.fn, function(e)
    tb = orch.traceback(type(e) == "table" and tostring(e.message) or tostring(e), 2)
    return e
  end, view, ctx)
  if not ok then
    return false, ret, tb
  end
  if step.focus and #step.focus > 0 then
    -- Rebuild the path of sub-tables so that the merge lands under the focus keys.
    local wrapped = ret
    for i = #step.focus, 1, -1 do
      local parent = state
      for j = 1, i - 1 do
        parent = parent[step.focus[j]] or {}
      end
      local sub = shallow_copy(parent[step.focus[i]])
      for k, v in pairs(wrapped or {}) do
        sub[k] = v
      end
      wrapped = { [step.focus[i]] = sub }
    end
    ret = wrapped
  end
  return true, ret
end

local function conditions_hold(step, state)
  for _, pred in ipairs(step.when or {}) do
    if not pred(state) then
      return false
    end
  end
  return true
end

-- Run one plain step (kind step/retry/init/done/abort/input/await_callback) on state.
-- Returns status, new_state, log_state, extra
local function run_simple(step, state, job, effects)
  local kind = step.kind
  if not conditions_hold(step, state) then
    return "skipped", state, state
  end
  if kind == "init" then
    return "success", state, state
  elseif kind == "done" then
    return "complete", state, state
  elseif kind == "abort" then
    return "abort", state, state
  elseif kind == "input" then
    return "suspend", state, state, { assignee = step.assignee }
  elseif kind == "await_callback" then
    local new = shallow_copy(state)
    new.__callback_result_key = step.result_key
    new.__callback_timeout = step.timeout
    return "awaiting_callback", new, new
  end
  local ctx = make_ctx(job, step, effects)
  local ok, ret, tb = call_step(step, state, ctx)
  if not ok then
    local dict = error_dict(ret, tb)
    return kind == "retry" and "waiting" or "failed", state, dict, { error = dict }
  end
  local merged_ok, new = pcall(merge, state, ret, effects)
  if not merged_ok then
    local dict = error_dict(new, nil)
    return "failed", state, dict, { error = dict }
  end
  return "success", new, new
end

local STOPS = { suspend = true, waiting = true, awaiting_callback = true, abort = true, failed = true,
  complete = true }

-- Run the sub-steps of a group from the recorded position until it finishes or stops.
local function run_group(group, state, job, effects)
  local start = 1
  local resumed = state.__step_group == group.name
  if resumed then
    start = tonumber(state.__sub_step) or 1
  end
  local current = shallow_copy(state)
  current.__step_group = group.name
  for k = start, #group.steps do
    local sub = group.steps[k]
    local status, new, log_state, extra = run_simple(sub, current, job, effects)
    if STOPS[status] then
      -- Stopped inside the group: resume continues at the next sub-step after an
      -- await/suspend, and at this one after a failure.
      local carried = shallow_copy(new)
      carried.__step_group = group.name
      carried.__sub_step = (status == "failed" or status == "waiting") and k or k + 1
      if status == "complete" or status == "abort" then
        carried.__step_group, carried.__sub_step = nil, nil
      end
      local logged = log_state
      if status ~= "failed" and status ~= "waiting" then
        logged = carried
      end
      return status, carried, logged, extra, resumed
    end
    current = new
    current.__step_group = group.name
  end
  current.__step_group, current.__sub_step = nil, nil
  return "success", current, current, nil, resumed
end

local CLEARED = { success = true, skipped = true, complete = true }

-- When the scripts were reloaded since this process's previous step, its step
-- index may point elsewhere in the new step list: find the step BY NAME (the one
-- after the last completed step, or the failed/suspended one again). Returns the
-- index, or nil and a reason when the logged step no longer exists.
function runner.realign(job, wf)
  local current = orch._host and orch._host.generation()
  if not job.generation or job.generation == 0 or not current or job.generation == current then
    return nil
  end
  local last = require("orch.store.process_steps").last(job.process_id)
  if not last then
    return nil
  end
  local i = workflow.step_index(wf, last.name)
  if not i then
    return last.name, "workflow changed: step '" .. last.name .. "' no longer exists"
  end
  return CLEARED[last.status] and i + 1 or i
end

function runner.run(job)
  local wf = workflow.get(job.workflow_name)
  if not wf then
    local dict = { class = "WorkflowRemoved", error = "This workflow cannot be resumed because it has been removed" }
    return { status = "failed", step_name = "Unknown", state = job.state, log_state = dict,
      next_index = job.step_index, continue = false, failed_reason = dict.error, effects = {} }
  end
  local index = job.step_index
  local moved, reason = runner.realign(job, wf)
  if reason then
    local dict = { class = "WorkflowChanged", error = reason }
    return { status = "failed", step_name = moved or "Unknown", state = job.state, log_state = dict,
      next_index = index, continue = false, failed_reason = reason, effects = {} }
  end
  index = moved or index
  local step = wf.steps[index]
  if not step then
    -- Past the last step: nothing left (a workflow without Done ends here).
    return { status = "complete", step_name = "Done", state = job.state, log_state = job.state,
      next_index = index, continue = false, effects = {} }
  end
  local effects = {}
  local state = job.state or {}
  local status, new, log_state, extra, replace_last
  if step.kind == "group" then
    if not conditions_hold(step, state) then
      status, new, log_state = "skipped", state, state
    else
      status, new, log_state, extra, replace_last = run_group(step, state, job, effects)
    end
  else
    status, new, log_state, extra = run_simple(step, state, job, effects)
  end
  extra = extra or {}
  local result = {
    status = status,
    step_name = step.name,
    state = new,
    log_state = log_state,
    next_index = index,
    continue = false,
    replace_last = replace_last == true,
    effects = effects,
    assignee = extra.assignee,
  }
  if status == "success" or status == "skipped" then
    result.next_index = index + 1
    result.continue = true
  elseif status == "waiting" then
    result.retry_after = backoff(job.attempt)
  end
  if extra.error then
    result.failed_reason = extra.error.error
    result.traceback = extra.error.traceback
    if status == "failed" and wf.is_task then
      local kind, assignee = failed_task_kind(extra.error)
      result.process_status = kind
      result.assignee = assignee or result.assignee
    end
    -- The traceback goes to the process row, not into the logged step state (as core).
    log_state.traceback = nil
  end
  if result.log_state == nil then
    result.log_state = json.null
  end
  return result
end

-- Apply the deferred effects (inside the engine's transaction).
function runner.persist(result, ctx)
  for _, fn in ipairs(result.effects or {}) do
    fn(ctx or {})
  end
end

return runner
