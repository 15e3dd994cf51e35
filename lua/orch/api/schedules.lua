-- /api/schedules: core's schedule API (POST create, PUT update, DELETE delete, each with a
-- JSON body), with core's answers. Core queues these for its scheduler process; here the
-- change is made at once, in the database every host reads (lua/orch/schedules).
-- Schedules defined in the product scripts belong to the scripts: the API cannot change
-- or delete them (409, naming the file and line).

local http = require("orch.http")
local json = require("orch.json")
local schedules = require("orch.schedules")
local store = require("orch.schedules.store")
local workflow = require("orch.workflow")

local api = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
local Message = S.object({ message = S.string, status = S.string }, { "message", "status" })
local Validation = "FastAPI's request validation answer: detail is a list of {type, loc, msg, input}"
local Trigger = { type = "string", enum = { "interval", "cron", "date" } }
local Schedule = S.object({
  id = S.UUID, name = S.string, workflow_id = S.nullable(S.UUID), workflow_name = S.string,
  next_run_time = S.nullable(S.Timestamp), trigger = S.string, trigger_type = Trigger,
  trigger_kwargs = S.any_object, user_inputs = S.array(S.any_object),
  source = { type = "string", enum = { "api", "default", "script" } }, where = S.nullable(S.string),
  timezone = S.string, misfire = { type = "string", enum = { "run_once", "skip" } },
  runs = S.array(S.object({ due_at = S.Timestamp, status = S.string, pid = S.nullable(S.UUID),
    detail = S.nullable(S.string), attempts = S.integer }, { "due_at", "status" })),
}, { "id", "name", "workflow_name", "trigger", "source" })
api.routes = {
  { "GET", "/api/schedules", "list", action = "schedules.read", response = S.array(Schedule),
    summary = "Every schedule with its trigger, source, next run and recent runs (ours; core has none)" },
  { "POST", "/api/schedules", "create", action = "schedules.write", status = 201, response = Message,
    summary = "Create a schedule of a task (core's body)", errors = { [404] = "unknown task", [422] = Validation },
    body = S.object({ name = S.nullable(S.string), workflow_name = S.string, workflow_id = S.UUID,
      trigger = Trigger, trigger_kwargs = S.any_object, user_inputs = S.array(S.any_object),
      scheduled_type = S.string }, { "workflow_name", "workflow_id", "trigger" }) },
  { "PUT", "/api/schedules", "update", action = "schedules.write", response = Message,
    summary = "Rename or re-trigger a schedule (core's body)",
    errors = { [404] = "unknown schedule", [409] = "defined in a script", [422] = Validation },
    body = S.object({ schedule_id = S.UUID, name = S.nullable(S.string), trigger = S.nullable(Trigger),
      trigger_kwargs = S.nullable(S.any_object), scheduled_type = S.string }, { "schedule_id" }) },
  { "DELETE", "/api/schedules", "delete", action = "schedules.write", response = Message,
    summary = "Delete one schedule, or every API/default schedule of a task (core's body)",
    errors = { [404] = "unknown task or schedule", [409] = "defined in a script", [422] = Validation },
    body = S.object({ workflow_id = S.UUID, schedule_id = S.nullable(S.UUID), scheduled_type = S.string },
      { "workflow_id" }) },
}

-- FastAPI's request validation answer: 422 {"detail": [{type, loc, msg, input}]}.
local function invalid(field, msg, kind, input)
  http.raise_validation({ { type = kind or "value_error", loc = { "body", field }, msg = msg, input = input } })
end

-- Workflow RBAC (docs/security.md): who may not start a task may not schedule it either;
-- the task's authorize_callback decides for the caller (req.user, nil with auth off), 403 as
-- a refused start.
local function check_allowed(wf, req)
  if wf and not workflow.allowed(wf, "start", req.user) then
    http.raise(403, "User is not authorized to schedule '" .. wf.name .. "' task")
  end
end

local function object_body(req)
  local body = req.json
  if type(body) ~= "table" or (next(body) ~= nil and json.is_array(body)) then
    http.raise_validation({ { type = "model_attributes_type", loc = { "body" },
      msg = "Input should be a valid dictionary or object to extract fields from" } })
  end
  return body
end

local function uuid_field(body, field, required)
  local v = body[field]
  if v == nil or v == json.null then
    if required then
      invalid(field, "Field required", "missing")
    end
    return nil
  end
  if type(v) ~= "string" or not orch.uuid.valid(v) then
    invalid(field, "Input should be a valid UUID", "uuid_parsing", v)
  end
  return v:lower()
end

local function optional_string(body, field)
  local v = body[field]
  if v == nil or v == json.null then
    return nil
  end
  if type(v) ~= "string" or #v > 500 then
    invalid(field, "Input should be a valid string of at most 500 characters", "string_type", v)
  end
  return v
end

local function trigger_fields(body, required)
  local trigger = body.trigger
  if trigger == nil or trigger == json.null then
    if required then
      invalid("trigger", "Field required", "missing")
    end
    trigger = nil
  elseif trigger ~= "interval" and trigger ~= "cron" and trigger ~= "date" then
    invalid("trigger", "Input should be 'interval', 'cron' or 'date'", "literal_error", trigger)
  end
  local kwargs = body.trigger_kwargs
  if kwargs == nil or kwargs == json.null then
    kwargs = nil
  elseif type(kwargs) ~= "table" or (next(kwargs) ~= nil and json.is_array(kwargs)) then
    invalid("trigger_kwargs", "Input should be a valid dictionary", "dict_type", kwargs)
  end
  return trigger, kwargs
end

local function check_trigger(trigger, kwargs, timezone)
  local ok, err = pcall(schedules.check_trigger, trigger, kwargs, timezone)
  if not ok then
    local message = schedules.message(err)
    if not message then
      error(err, 0)
    end
    invalid("trigger_kwargs", "Value error, Invalid trigger_kwargs for '" .. trigger .. "' trigger: " .. message,
      "value_error", kwargs)
  end
  local zone = ok and err or "UTC"
  if zone ~= "UTC" and not store.zone_exists(zone) then
    invalid("trigger_kwargs", "Value error, unknown time zone '" .. zone .. "'", "value_error", kwargs)
  end
end

local function task_row(name)
  return require("orch.db").one([[SELECT workflow_id::text, name FROM workflows
                                  WHERE name = $1 AND deleted_at IS NULL]], name)
end

local function owned_by_script(row)
  if row.source == "script" then
    http.raise(409, "Schedule '" .. row.name .. "' is defined in the product scripts ("
      .. tostring(row.script_where or "?"):gsub(": $", "") .. "); change it there")
  end
end

-- POST /api/schedules {name?, workflow_name, workflow_id, trigger, trigger_kwargs, user_inputs}
function api.create(req)
  local body = object_body(req)
  local name = optional_string(body, "name")
  local workflow_name = body.workflow_name
  if workflow_name == nil or workflow_name == json.null then
    invalid("workflow_name", "Field required", "missing")
  elseif type(workflow_name) ~= "string" then
    invalid("workflow_name", "Input should be a valid string", "string_type", workflow_name)
  end
  local workflow_id = uuid_field(body, "workflow_id", true)
  local trigger, kwargs = trigger_fields(body, true)
  kwargs = kwargs or {}
  local inputs = body.user_inputs
  if inputs == nil or inputs == json.null then
    inputs = { {} }
  elseif type(inputs) ~= "table" or not json.is_array(inputs) and next(inputs) ~= nil then
    invalid("user_inputs", "Input should be a valid list", "list_type", inputs)
  end
  for i, page in ipairs(inputs) do
    if type(page) ~= "table" or (next(page) ~= nil and json.is_array(page)) then
      http.raise_validation({ { type = "dict_type", loc = { "body", "user_inputs", i - 1 },
        msg = "Input should be a valid dictionary", input = page } })
    end
  end
  if #inputs == 0 then
    inputs = { {} }
  end
  check_trigger(trigger, kwargs)
  local wf, row = workflow.get(workflow_name), task_row(workflow_name)
  if not wf or not row then
    http.raise(404, "Task does not exist")
  end
  if row.workflow_id ~= workflow_id then
    invalid("workflow_id", "Value error, workflow_id is not the id of workflow '" .. workflow_name .. "'",
      "value_error", workflow_id)
  end
  check_allowed(wf, req)
  require("orch.db").transaction(function()
    local now = store.now()
    local new = {
      schedule_id = orch.uuid.v4(), name = name or wf.description or workflow_name, workflow_name = workflow_name,
      trigger = trigger, trigger_kwargs = kwargs, user_inputs = inputs, timezone = "UTC", misfire = "run_once",
      source = "api", anchor = now,
    }
    new.next_run_time = schedules.first_due(new, now)
    store.insert(new)
  end)
  return 201, { message = "Added to Create Queue", status = "CREATED" }
end

-- PUT /api/schedules {schedule_id, name?, trigger?, trigger_kwargs?}
function api.update(req)
  local body = object_body(req)
  local id = uuid_field(body, "schedule_id", true)
  local name = optional_string(body, "name")
  local trigger, kwargs = trigger_fields(body, false)
  if trigger and kwargs == nil then
    kwargs = {}
  end
  local row = store.get(id)
  if not row then
    http.raise(404, "Schedule does not exist")
  end
  local wf = workflow.get(row.workflow_name)
  if not wf then
    http.raise(404, "Task does not exist")
  end
  check_allowed(wf, req)
  owned_by_script(row)
  trigger = trigger or row.trigger
  kwargs = kwargs or row.trigger_kwargs
  check_trigger(trigger, kwargs, row.timezone)
  require("orch.db").transaction(function()
    local now = store.now()
    local changed = trigger ~= row.trigger or json.encode(kwargs) ~= json.encode(row.trigger_kwargs)
    row.name = name or row.name
    if changed then
      row.trigger, row.trigger_kwargs, row.anchor = trigger, kwargs, now
      row.next_run_time = schedules.first_due(row, now)
    end
    store.update(row)
  end)
  return 200, { message = "Added to Update Queue", status = "UPDATED" }
end

-- DELETE /api/schedules {workflow_id, schedule_id?}: one schedule, or every schedule of the task
-- that the API or the defaults made.
function api.delete(req)
  local body = object_body(req)
  local workflow_id = uuid_field(body, "workflow_id", true)
  local id = uuid_field(body, "schedule_id", false)
  local wf = require("orch.db").one([[SELECT name FROM workflows WHERE workflow_id = $1 AND deleted_at IS NULL]],
    workflow_id)
  if not wf then
    http.raise(404, "Task does not exist")
  end
  check_allowed(workflow.get(wf.name), req)
  if id then
    local row = store.get(id)
    if not row or row.workflow_name ~= wf.name then
      http.raise(404, "Schedule does not exist")
    end
    owned_by_script(row)
    store.delete(id)
  else
    for _, row in ipairs(store.by_workflow(wf.name)) do
      if row.source ~= "script" then
        store.delete(row.schedule_id)
      end
    end
  end
  return 200, { message = "Added to Delete Queue", status = "DELETED" }
end

-- GET /api/schedules: our addition - every schedule with its trigger, source and recent runs.
function api.list()
  local out = json.array()
  for _, s in ipairs(schedules.list()) do
    s.runs = json.array(store.runs(s.id, 5))
    s.where = s.where and s.where:gsub(": $", "") or json.null
    s.workflow_id = s.workflow_id or json.null
    s.next_run_time = s.next_run_time or json.null
    out[#out + 1] = s
  end
  return 200, out
end

return api
