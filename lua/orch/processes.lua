-- Processes: start, resume/retry, abort, delete and callbacks, with
-- orchestrator-core's rules. The HTTP handlers (lua/orch/api/processes.lua), the
-- built-in tasks and the schedules call these; refusals are domain errors
-- (orch.errors), which the API answers with core's status codes (orch.api.errors).
--
-- Every transition runs in one transaction that locks the processes row
-- (SELECT ... FOR UPDATE), so identical concurrent requests serialise: the
-- first one changes the status, the others see the new status and get 409.
-- Work for the engine is a row of the work queue (orch.store.orch_work_queue); once it is
-- committed the host wakes
-- this host's idle workers and, with a NOTIFY at most every few milliseconds, the other
-- hosts' (orch._host.wake_workers: the scheduler's one way to be woken; never per step).

local db = require("orch.db")
local json = require("orch.json")
local errors = require("orch.errors")
local events = require("orch.events")
local workflow = require("orch.workflow")
local forms = require("orch.forms")
local steps_store = require("orch.store.process_steps")
local queue_store = require("orch.store.orch_work_queue")

local processes = {}

local RESUMABLE = {
  suspended = true, waiting = true, awaiting_callback = true, failed = true,
  api_unavailable = true, inconsistent_data = true, resumed = true,
}
processes.RESUMABLE = RESUMABLE

local function engine_locked()
  local row = db.one("SELECT global_lock FROM engine_settings LIMIT 1")
  return row ~= nil and row.global_lock
end

function processes.check_engine_unlocked()
  if engine_locked() then
    errors.raise("unavailable", "Engine is locked cannot accept changes on processes at this time")
  end
end

-- Tell the UI's open pages what changed, after the commit (docs/events.md).
local changed = events.process_changed

local function linked_subscriptions(pid)
  local ids = {}
  for _, r in ipairs(db.must("SELECT subscription_id::text FROM processes_subscriptions WHERE pid = $1", pid)) do
    ids[#ids + 1] = r.subscription_id
  end
  return ids
end

local function wake_workers()
  db.after_commit(orch._host.wake_workers)
end

local queue = queue_store.put

local function workflow_row(name)
  return db.one([[SELECT workflow_id::text, name, target, is_task, description
                  FROM workflows WHERE name = $1 AND deleted_at IS NULL]], name)
end

-- ---- start ----

-- The first form pages core adds by workflow kind, then the workflow's own form.
function processes.initial_form(wf)
  return forms.initial_form(wf.target, wf.form)
end

-- The database-backed callbacks the forms module asks for (docs/forms.md, "Context").
function processes.form_context(wf, user)
  local ctx = { user = user, workflow = wf, workflow_name = wf and wf.name, workflow_target = wf and wf.target }
  function ctx.products(query)
    local name = query and query.workflow or (wf and wf.name)
    return db.must([[SELECT p.product_id::text, p.name FROM products p
                     JOIN products_workflows pw ON pw.product_id = p.product_id
                     JOIN workflows w ON w.workflow_id = pw.workflow_id
                     WHERE w.name = $1 ORDER BY p.name]], name)
  end
  function ctx.check_product(product, workflow_name)
    local row = db.one([[SELECT 1 AS ok FROM products_workflows pw JOIN workflows w USING (workflow_id)
                         WHERE pw.product_id::text = $1 AND w.name = $2]],
      type(product) == "table" and product.product_id or product, workflow_name)
    if not row then
      return "This workflow is not valid for this product"
    end
    return nil
  end
  function ctx.subscriptions(query)
    local sql = [[SELECT s.subscription_id::text, s.description FROM subscriptions s
                  JOIN products p ON p.product_id = s.product_id]]
    local where, params = {}, {}
    if query and query.product_type then
      params[#params + 1] = query.product_type
      where[#where + 1] = "p.product_type = $" .. #params
    end
    if query and query.statuses then
      params[#params + 1] = "{" .. table.concat(query.statuses, ",") .. "}"
      where[#where + 1] = "s.status = ANY($" .. #params .. "::text[])"
    end
    if #where > 0 then
      sql = sql .. " WHERE " .. table.concat(where, " AND ")
    end
    return db.must(sql .. " ORDER BY s.description", table.unpack(params))
  end
  function ctx.subscription(id)
    if not orch.uuid.valid(id) then
      return nil
    end
    return db.one([[SELECT subscription_id::text, product_id::text, customer_id, version
                    FROM subscriptions WHERE subscription_id = $1]], id)
  end
  function ctx.check_subscription(sub, workflow_name, target)
    local available = require("orch.subscription_actions").available(sub.subscription_id)
    for _, entry in ipairs(available and available[(target or "MODIFY"):lower()] or {}) do
      if entry.name == workflow_name then
        if entry.reason then
          return { reason = entry.reason }
        end
        return nil
      end
    end
    return "This workflow is not valid for this subscription"
  end
  return ctx
end

-- Run the form protocol; returns the final state or raises the 510/400 answer.
local function post_form(form, state, inputs, ctx)
  local outcome = forms.post_form(form, state, inputs, ctx)
  if not outcome.complete then
    errors.raise(outcome.status == 510 and "form_not_complete" or "form_invalid", outcome.body.detail
      or outcome.body.title, outcome.body)
  end
  return outcome.result or {}
end

local function new_pid()
  return orch.uuid.v4()
end

local function check_run_predicate(wf)
  if wf.run_predicate then
    local ok, message = wf.run_predicate({ workflow = wf })
    if not ok then
      errors.raise("precondition", message or "Start predicate not satisfied")
    end
  end
end

-- ---- workflow RBAC (core's semantics; docs/security.md) ----

-- start(name, inputs, {user, reporter, idempotency_key}) -> pid
-- A workflow with a run predicate is checked before its form (412 comes first)
-- and again inside the transaction that inserts the process, under an advisory
-- lock per workflow: concurrent starts on any host take turns, and each one's
-- check sees the processes the earlier ones committed.
function processes.start(name, inputs, opts)
  opts = opts or {}
  local wf = workflow.get(name)
  local row = workflow_row(name)
  if not wf or not row then
    errors.raise("not_found", "Workflow does not exist")
  end
  processes.check_engine_unlocked()
  if opts.idempotency_key then
    local existing = db.one("SELECT pid::text FROM orch_idempotency_keys WHERE key = $1", opts.idempotency_key)
    if existing then
      return existing.pid, true
    end
  end
  if not workflow.allowed(wf, "start", opts.user_info) then
    errors.raise("forbidden", "User is not authorized to execute '" .. name .. "' workflow")
  end
  check_run_predicate(wf)
  local user = opts.reporter or opts.user or "SYSTEM"
  local form_state = post_form(processes.initial_form(wf), { workflow_name = name, workflow_target = wf.target },
    inputs or {}, processes.form_context(wf, user))
  local pid = new_pid()
  local state = {}
  for k, v in pairs(form_state) do
    state[k] = v
  end
  state.process_id = pid
  state.reporter = user
  state.workflow_name = name
  state.workflow_target = wf.target
  local result_pid = db.transaction(function()
    if opts.idempotency_key then
      -- Concurrent starts with one key: the loser waits for the winner's commit and gets its pid.
      local claimed = db.must([[INSERT INTO orch_idempotency_keys (key, pid) VALUES ($1, $2)
                                ON CONFLICT (key) DO NOTHING RETURNING pid::text]], opts.idempotency_key, pid)
      if #claimed == 0 then
        return nil
      end
    end
    if wf.run_predicate then
      db.must("SELECT pg_advisory_xact_lock(hashtext('orch.start'), hashtext($1)) AS locked", name)
      check_run_predicate(wf)
    end
    db.must([[INSERT INTO processes (pid, workflow_id, assignee, last_status, created_by, is_task)
              VALUES ($1, $2, 'SYSTEM', 'created', $3, $4)]], pid, row.workflow_id, user, row.is_task)
    db.must([[INSERT INTO input_states (pid, input_state, input_type, input_time)
              VALUES ($1, $2::jsonb, 'initial_state', now())]], pid, json.encode(form_state))
    queue(pid, 0, state)
    wake_workers()
    return pid
  end)
  if result_pid == nil then
    local existing = db.one("SELECT pid::text FROM orch_idempotency_keys WHERE key = $1", opts.idempotency_key)
    return existing.pid, true
  end
  changed(result_pid)
  return result_pid, false
end

-- ---- recovering a process from its log ----

local CLEARED = { success = true, skipped = true, complete = true }

local step_rows = steps_store.of_process

-- The code hash of the scripts this state runs (process_steps.commit_hash), or nil.
local function code_hash()
  local host = orch._host
  return host and host.code_hash and host.code_hash() or nil
end

-- Whether the log was written by the scripts this state runs: the newest row that
-- names its scripts names these (rows written by the API name none). With no hash
-- to compare, the log counts as written by these scripts.
local function same_scripts(rows)
  local current = code_hash()
  if not current then
    return true
  end
  for i = #rows, 1, -1 do
    local h = rows[i].commit_hash
    if h ~= nil and h ~= json.null and h ~= "" then
      return h == current:sub(1, #h)
    end
  end
  return true
end

-- The position (1-based) in wf.steps of the step a log row stands for. Within one
-- script generation it is the step's POSITION: where names repeat, the cleared rows
-- with that name before it tell which occurrence it is. After a reload the step list
-- may differ, so the log is aligned BY NAME (the first step with that name).
local function position_of(wf, name, occurrence, positional)
  if positional then
    local i = workflow.step_occurrence(wf, name, occurrence)
    if i then
      return i
    end
  end
  return workflow.step_index(wf, name)
end

-- Where a process stands: {state, index (0-based, the step to run), last (row), wf}.
-- The index is the step after the last cleared one (or the failed/waiting/suspended
-- step itself), counted by position within one script generation and by name across
-- a reload, so a changed step list never makes a process silently run the wrong step.
function processes.recover(pid, wf, rows)
  rows = rows or step_rows(pid)
  local last = rows[#rows]
  local state, cleared = {}, 0
  local last_cleared_name
  local passed = {} -- name -> cleared rows with that name
  for _, r in ipairs(rows) do
    if CLEARED[r.status] then
      state = r.state
      cleared = cleared + 1
      last_cleared_name = r.name
      passed[r.name] = (passed[r.name] or 0) + 1
    end
  end
  if last and (last.status == "suspend" or last.status == "awaiting_callback") then
    state = last.state
  end
  local index = 0
  if wf then
    local positional = same_scripts(rows)
    if last and not CLEARED[last.status] then
      local i = position_of(wf, last.name, (passed[last.name] or 0) + 1, positional)
      if not i then
        return nil, "workflow changed: step '" .. last.name .. "' no longer exists"
      end
      index = i - 1
    elseif last_cleared_name then
      local i = position_of(wf, last_cleared_name, passed[last_cleared_name], positional)
      if not i then
        return nil, "workflow changed: step '" .. last_cleared_name .. "' no longer exists"
      end
      index = i
    end
  end
  return { state = state, index = index, last = last, rows = rows, cleared = cleared }
end

local function lock_process(pid)
  if not orch.uuid.valid(pid) then
    errors.raise("invalid_parameter", "process_id is not a valid UUID")
  end
  local p = db.one([[SELECT p.pid::text, p.last_status, p.is_task, p.created_by, w.name AS workflow_name,
                            w.target AS workflow_target
                     FROM processes p JOIN workflows w ON w.workflow_id = p.workflow_id
                     WHERE p.pid = $1 FOR UPDATE OF p]], pid)
  if not p then
    errors.raise("not_found", "Process not found")
  end
  return p
end
processes.lock_process = lock_process

local function log_step(pid, name, status, state, user)
  steps_store.log(pid, name, status, state, user, code_hash())
end

local function set_status(pid, status, step_name, clear_failure)
  if clear_failure then
    db.must([[UPDATE processes SET last_status = $2, last_step = COALESCE($3, last_step),
                failed_reason = NULL, traceback = NULL, last_modified_at = now() WHERE pid = $1]],
      pid, status, step_name)
  else
    db.must([[UPDATE processes SET last_status = $2, last_step = COALESCE($3, last_step),
                last_modified_at = now() WHERE pid = $1]], pid, status, step_name)
  end
end

-- ---- resume / retry ----

-- resume(pid, inputs, {user}): a suspended input step gets its form answers; a
-- failed/waiting step (and the rest) runs again from the last good state.
function processes.resume(pid, inputs, opts)
  opts = opts or {}
  local user = opts.reporter or opts.user or "SYSTEM"
  local outcome = db.transaction(function()
    local p = lock_process(pid)
    -- `resumed` is resumable in core; here it means "already queued", and queuing it
    -- twice would be the double resume of core's issue #242.
    local queued = queue_store.has(pid)
    if not RESUMABLE[p.last_status] or (queued and p.last_status ~= "waiting") then
      errors.raise("conflict", "Resuming a " .. p.last_status:lower() .. " workflow is not possible")
    end
    processes.check_engine_unlocked()
    local wf = workflow.get(p.workflow_name)
    if not wf then
      errors.raise("conflict", "This workflow cannot be resumed because it has been removed")
    end
    local at, reason = processes.recover(pid, wf)
    if not at then
      -- The step list no longer matches the log: fail loudly instead of jumping
      -- (committed, then answered with 409).
      db.must([[UPDATE processes SET last_status = 'failed', failed_reason = $2, last_modified_at = now()
                WHERE pid = $1]], pid, reason)
      return { conflict = reason }
    end
    local state = at.state
    local index = at.index
    local action = p.last_status == "suspended" and "resume" or "retry"
    if not workflow.allowed(wf, action, opts.user_info, at) then
      errors.raise("forbidden", "User is not authorized to " .. action .. " this workflow")
    end
    if p.last_status == "suspended" then
      local step = wf.steps[index + 1]
      local answers = {}
      if step and step.form then
        answers = post_form(step.form, state, inputs or {}, processes.form_context(wf, user))
      end
      local merged = {}
      for k, v in pairs(state) do
        merged[k] = v
      end
      for k, v in pairs(answers) do
        merged[k] = v
      end
      if step and step.kind == "group" then
        -- An input step inside a group: the group goes on at the next sub-step.
        queue(pid, index, merged)
      else
        log_step(pid, step and step.name or at.last.name, "success", merged, user)
        queue(pid, index + 1, merged)
      end
      db.must([[INSERT INTO input_states (pid, input_state, input_type, input_time)
                VALUES ($1, $2::jsonb, 'user_input', now())]], pid, json.encode(answers))
    else
      queue(pid, index, state)
    end
    set_status(pid, "resumed", nil, true)
    wake_workers()
    return {}
  end)
  changed(pid)
  if outcome.conflict then
    errors.raise("conflict", outcome.conflict)
  end
  return true
end

-- ---- abort / delete ----

function processes.abort(pid, opts)
  local user = (opts or {}).user or "SYSTEM"
  local subscription_ids
  local aborted = db.transaction(function()
    local p = lock_process(pid)
    if p.last_status == "completed" or p.last_status == "aborted" then
      return false
    end
    local at = processes.recover(pid, nil) or { state = {} }
    queue_store.remove(pid)
    log_step(pid, "User Aborted", "abort", at.state, user)
    set_status(pid, "aborted", "User Aborted", false)
    subscription_ids = linked_subscriptions(pid)
    return true
  end)
  if aborted then
    changed(pid, subscription_ids)
  end
  return aborted
end

function processes.delete(pid)
  db.transaction(function()
    local p = lock_process(pid)
    if not p.is_task then
      errors.raise("invalid", "Only tasks can be deleted")
    end
    db.must("DELETE FROM processes WHERE pid = $1", pid)
  end)
  changed(pid)
end

-- ---- callbacks ----

local function awaiting(pid, token)
  local p = lock_process(pid)
  if p.last_status ~= "awaiting_callback" then
    errors.raise("conflict", "This process is not in an awaiting state.")
  end
  local rows = step_rows(pid)
  local last = rows[#rows]
  local expected = last and type(last.state) == "table" and last.state.__callback_token
  if type(expected) ~= "string" or not orch.uuid.equal(expected, token) then
    errors.raise("not_found", "Invalid token")
  end
  return p, last
end

-- callback(pid, token, payload): store the payload and let the process go on.
function processes.callback(pid, token, payload)
  db.transaction(function()
    processes.check_engine_unlocked()
    local p, last = awaiting(pid, token)
    local wf = workflow.get(p.workflow_name)
    if not wf then
      errors.raise("conflict", "This workflow cannot be resumed because it has been removed")
    end
    local state = last.state
    local key = state.__callback_result_key or "callback_result"
    state[key] = payload
    state.callback_progress = nil
    steps_store.set_state(last.stepid, state)
    local at, reason = processes.recover(pid, wf)
    if not at then
      errors.raise("conflict", reason)
    end
    queue(pid, at.index, state)
    set_status(pid, "resumed", nil, false)
    wake_workers()
  end)
  changed(pid)
end

function processes.callback_progress(pid, token, progress)
  db.transaction(function()
    local _, last = awaiting(pid, token)
    local state = last.state
    state.callback_progress = progress
    steps_store.set_state(last.stepid, state)
    db.must("UPDATE processes SET last_modified_at = now() WHERE pid = $1", pid)
  end)
  events.emit("processes", pid)
end

-- ---- resume-all (tasks only) ----

function processes.resume_all(user)
  processes.check_engine_unlocked()
  local got = db.one("SELECT pg_try_advisory_lock(hashtext('orch resume-all')) AS ok")
  if not got.ok then
    errors.raise("conflict", "Another request to resume all processes is in progress")
  end
  local ok, count = pcall(function()
    local rows = db.must([[SELECT pid::text FROM processes WHERE is_task
                           AND last_status IN ('failed', 'waiting', 'api_unavailable', 'inconsistent_data')]])
    local n = 0
    for _, r in ipairs(rows) do
      local resumed = pcall(processes.resume, r.pid, { {} }, { user = user })
      if resumed then
        n = n + 1
      end
    end
    return n
  end)
  db.query("SELECT pg_advisory_unlock(hashtext('orch resume-all'))")
  if not ok then
    error(count, 0)
  end
  return count
end

local FINISHED = { success = true, skipped = true, complete = true }

-- Keys of `new` whose values differ from `old` (core's get_dict_updates).
local function delta(old, new)
  if type(new) ~= "table" then
    return new
  end
  local d = {}
  for k, v in pairs(new) do
    if type(old) ~= "table" or json.encode(old[k]) ~= json.encode(v) then
      d[k] = v
    end
  end
  return d
end

local function nn(v)
  if v == nil then
    return json.null
  end
  return v
end

-- details(list, time) -> {[pid] = {steps, current_state, form}} for list = {{pid, wf,
-- last_status}, ...}: what the detail of a process shows besides its row (REST
-- GET /api/processes/{id} and GraphQL's Process.steps, currentState and form read it), for a
-- whole page in two statements. steps: the recorded steps in order, with the state each
-- changed (state_delta), then the workflow's steps still to run as "pending"; current_state:
-- the newest state (the queue row's while the process is queued); form: the input form of a
-- suspended process (nil otherwise). time(column) is the SQL of a timestamp as the caller's
-- wire format wants it (epoch seconds for REST, ISO text for GraphQL).
function processes.details(list, time)
  local pids = {}
  for i, p in ipairs(list) do
    pids[i] = p.pid
  end
  local by_pid = {}
  for _, s in ipairs(steps_store.of_processes(pids, time)) do
    local rows = by_pid[s.pid] or {}
    rows[#rows + 1] = s
    by_pid[s.pid] = rows
  end
  -- A queued process (created, resumed, running) carries its newest state in the queue row.
  local queued = queue_store.states(pids)
  local out = {}
  for _, p in ipairs(list) do
    out[p.pid] = processes.detail_of(p.pid, p.wf, p.last_status, by_pid[p.pid] or {}, queued[p.pid])
  end
  return out
end

-- The detail of one process from its step rows (in log order) and its queued state.
function processes.detail_of(pid, wf, last_status, steps, queued_state)
  local list = json.array()
  local previous
  for _, s in ipairs(steps) do
    list[#list + 1] = {
      name = s.name, status = s.status, state = nn(s.state), created_by = nn(s.created_by),
      step_id = s.stepid, stepid = s.stepid, executed = s.completed, started = s.started,
      completed = s.completed, commit_hash = nn(s.commit_hash),
      state_delta = previous and delta(previous.state, s.state) or nn(s.state),
    }
    if FINISHED[s.status] then
      previous = s
    end
  end
  local at = processes.recover(pid, wf, steps)
  local current = queued_state or (at and at.state) or {}
  local form
  if at and wf and last_status ~= "completed" and last_status ~= "aborted" then
    local from = at.index + 1
    if steps[#steps] and FINISHED[steps[#steps].status] == nil and wf.steps[from]
      and wf.steps[from].name == steps[#steps].name then
      from = from + 1 -- the failed/suspended step is already listed
    end
    for i = from, #wf.steps do
      list[#list + 1] = { name = wf.steps[i].name, status = "pending" }
    end
    if last_status == "suspended" then
      local step = wf.steps[at.index + 1]
      if step and step.form then
        form = forms.generate_form(step.form, current, {}, processes.form_context(wf, "SYSTEM")) or json.null
      end
    end
  end
  return { steps = list, current_state = current, form = form }
end

-- detail(pid, wf, last_status, time): details() of one process.
function processes.detail(pid, wf, last_status, time)
  return processes.details({ { pid = pid, wf = wf, last_status = last_status } }, time)[pid]
end

return processes
