-- The workflows orchestrator-core ships: the system tasks (and, with the forms
-- module, modify_note). Defined in every Lua state, registered in the
-- workflows table like any other workflow.

local db = require("orch.db")
local workflow = require("orch.workflow")
local standard = require("orch.standard")
local runner = require("orch.runner")

local builtin = {}

local step = workflow.step

-- Run predicate: no other process of this workflow is still going.
function builtin.no_uncompleted_instance(name)
  return function()
    local row = db.one([[SELECT count(*) AS n FROM processes p JOIN workflows w ON w.workflow_id = p.workflow_id
                         WHERE w.name = $1 AND p.last_status NOT IN ('completed', 'aborted')]], name)
    if row.n > 0 then
      return false, "Workflow " .. name .. " already has an uncompleted instance"
    end
    return true
  end
end

local function pg_uuid_array(list)
  return "{" .. table.concat(list, ",") .. "}"
end

-- task_resume_workflows: waiting processes run again now (the engine also
-- retries them by itself with backoff).
standard.task({
  name = "task_resume_workflows",
  description = "Resume all workflows that are stuck on tasks with the status 'waiting', 'created' or 'resumed'",
  run_predicate = builtin.no_uncompleted_instance("task_resume_workflows"),
  steps = {
    step("Find waiting workflows", function(state)
      local rows = db.must([[SELECT pid::text, last_status FROM processes
                             WHERE last_status IN ('waiting', 'created', 'resumed') AND pid <> $1]], state.process_id)
      local waiting, resumed, created = {}, {}, {}
      for _, r in ipairs(rows) do
        local list = r.last_status == "waiting" and waiting or r.last_status == "resumed" and resumed or created
        list[#list + 1] = r.pid
      end
      return {
        waiting_process_ids = orch.json.array(waiting),
        resumed_process_ids = orch.json.array(resumed),
        created_process_ids = orch.json.array(created),
      }
    end),
    step("Resume found workflows", function(state, ctx)
      local ids = {}
      for _, key in ipairs({ "waiting_process_ids", "resumed_process_ids", "created_process_ids" }) do
        for _, id in ipairs(state[key] or {}) do
          ids[#ids + 1] = id
        end
      end
      ctx:defer(function()
        if #ids > 0 then
          require("orch.store.orch_work_queue").run_now(ids)
        end
      end)
      return { number_of_resumed_pids = #ids }
    end),
  },
})

-- task_clean_up_tasks: delete completed task processes older than the retention.
standard.task({
  name = "task_clean_up_tasks",
  description = "Clean up old tasks",
  run_predicate = builtin.no_uncompleted_instance("task_clean_up_tasks"),
  steps = {
    step("Clean up completed tasks older than TASK_LOG_RETENTION_DAYS", function(state, ctx)
      local days = tonumber(state.retention_days) or 3
      local rows = db.must([[SELECT pid::text FROM processes WHERE is_task AND last_status = 'completed'
                             AND last_modified_at < now() - make_interval(days => $1)]], days)
      local ids = {}
      for _, r in ipairs(rows) do
        ids[#ids + 1] = r.pid
      end
      ctx:defer(function()
        if #ids > 0 then
          db.must("DELETE FROM processes WHERE pid = ANY($1::uuid[])", pg_uuid_array(ids))
        end
      end)
      return { tasks_removed = #ids, deleted_process_id_list = orch.json.array(ids) }
    end),
  },
})

-- task_validate_products: the catalogue, the workflows and their links agree.
standard.task({
  name = "task_validate_products",
  description = "Validate products",
  run_predicate = builtin.no_uncompleted_instance("task_validate_products"),
  steps = {
    step("Check all workflows in database", function()
      local in_db = {}
      for _, r in ipairs(db.must("SELECT name FROM workflows WHERE deleted_at IS NULL")) do
        in_db[r.name] = true
      end
      local missing, unknown = {}, {}
      for _, wf in ipairs(workflow.list()) do
        if not in_db[wf.name] then
          missing[#missing + 1] = wf.name
        end
        in_db[wf.name] = nil
      end
      for name in pairs(in_db) do
        unknown[#unknown + 1] = name
      end
      table.sort(unknown)
      if #missing > 0 or #unknown > 0 then
        error(runner.failure("Found workflows that are not in the database or not registered",
          { missing_in_database = missing, not_registered = unknown }), 0)
      end
      return { check_all_workflows_are_in_db = true }
    end),
    step("Check that all products have at least one workflow", function()
      local rows = db.must([[SELECT p.name FROM products p WHERE NOT EXISTS (
                               SELECT 1 FROM products_workflows pw JOIN workflows w USING (workflow_id)
                               WHERE pw.product_id = p.product_id AND w.deleted_at IS NULL)]])
      if #rows > 0 then
        local names = {}
        for _, r in ipairs(rows) do
          names[#names + 1] = r.name
        end
        error(runner.failure("Found products that do not have a workflow associated with them", names), 0)
      end
      return { check_workflows_for_products = true }
    end),
    step("Check modify_note for every active product", function()
      local rows = db.must([[SELECT p.name FROM products p WHERE p.status = 'active' AND NOT EXISTS (
                               SELECT 1 FROM products_workflows pw JOIN workflows w USING (workflow_id)
                               WHERE pw.product_id = p.product_id AND w.name = 'modify_note')]])
      if #rows > 0 then
        local names = {}
        for _, r in ipairs(rows) do
          names[#names + 1] = r.name
        end
        error(runner.failure("Found active products without the modify_note workflow", names), 0)
      end
      return { check_modify_note_for_products = true }
    end),
  },
})

-- task_validate_awaiting_callbacks: fail processes whose callback timed out.
standard.task({
  name = "task_validate_awaiting_callbacks",
  description = "Validate processes awaiting callbacks",
  run_predicate = builtin.no_uncompleted_instance("task_validate_awaiting_callbacks"),
  steps = {
    step("Fail timed out callbacks", function(_, ctx)
      local steps_store = require("orch.store.process_steps")
      local ids = steps_store.callbacks_timed_out()
      ctx:defer(function()
        for _, id in ipairs(ids) do
          -- Re-check the status under the row lock: a real callback may have won the race.
          local p = db.one("SELECT last_status FROM processes WHERE pid = $1 FOR UPDATE", id)
          if p and p.last_status == "awaiting_callback" then
            steps_store.fail_last_with_timeout(id)
            db.must([[UPDATE processes SET last_status = 'failed', failed_reason = 'Callback timed out',
                        last_modified_at = now() WHERE pid = $1]], id)
          end
        end
      end)
      return { timed_out_process_ids = orch.json.array(ids) }
    end),
  },
})

-- modify_note: core's note editor (usable while the subscription is out of sync).
workflow.define({
  name = "modify_note",
  target = "MODIFY",
  description = "Modify Note",
  usable_while_out_of_sync = true,
  form = function(state)
    local forms = require("orch.forms")
    local current = db.one("SELECT note FROM subscriptions WHERE subscription_id = $1", state.subscription_id)
    return forms.page({
      title = "Modify note",
      has_next = false,
      forms.long_text({ "note", default = current and current.note or orch.json.null, optional = true,
        max_length = 5000 }),
    })
  end,
  steps = {
    workflow.init,
    standard.store_process_subscription,
    step("Store note", function(state, ctx)
      local id = state.subscription_id
      local row = db.one("SELECT note FROM subscriptions WHERE subscription_id = $1", id)
      local note = state.note
      if note == orch.json.null or (type(note) == "string" and note:match("^%s*$")) then
        note = nil
      end
      ctx:defer(function()
        db.must("UPDATE subscriptions SET note = $2 WHERE subscription_id = $1", id, note)
      end)
      local old = {}
      for k, v in pairs(state.__old_subscriptions__ or {}) do
        old[k] = v
      end
      old[id] = old[id] or { note = row and row.note or orch.json.null }
      return { old_note = row and row.note or orch.json.null, __old_subscriptions__ = old }
    end),
    standard.refresh_subscription_search_index,
    workflow.done,
  },
})

-- task_validate_subscriptions: start the validate workflow of every in-sync subscription
-- whose status allows it.
standard.task({
  name = "task_validate_subscriptions",
  description = "Validate subscriptions",
  run_predicate = builtin.no_uncompleted_instance("task_validate_subscriptions"),
  steps = {
    step("Validate subscriptions", function(state)
      local rows = db.must([[
        SELECT s.subscription_id::text, w.name AS workflow FROM subscriptions s
        JOIN products_workflows pw ON pw.product_id = s.product_id
        JOIN workflows w ON w.workflow_id = pw.workflow_id
        WHERE s.insync AND s.status = 'active' AND w.target = 'VALIDATE' AND w.deleted_at IS NULL
        ORDER BY s.subscription_id]])
      local started, refused = 0, 0
      local processes = require("orch.processes")
      for _, r in ipairs(rows) do
        local ok = pcall(processes.start, r.workflow, { { subscription_id = r.subscription_id } },
          { user = state.reporter or "SYSTEM" })
        if ok then
          started = started + 1
        else
          refused = refused + 1
        end
      end
      return { validations_started = started, validations_refused = refused }
    end),
  },
})

return builtin
