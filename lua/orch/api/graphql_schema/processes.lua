-- GraphQL processes: the root fields `processes` and `process`, the Process and
-- ProcessStep types, and the process connection nested under subscriptions.

local json = require("orch.json")
local common = require("orch.api.graphql_schema.common")
local connection = require("orch.graphql.connection")

local M = {}

local nn, upper = common.nn, common.upper

-- Columns of the first subscription of a process (product and customer of the process).
local FIRST_SUB = "(SELECT %s FROM processes_subscriptions ps"
  .. " JOIN subscriptions s ON s.subscription_id = ps.subscription_id"
  .. " JOIN products pr ON pr.product_id = s.product_id WHERE ps.pid = p.pid ORDER BY ps.created_at LIMIT 1)"
local SUBS = "SELECT 1 FROM processes_subscriptions ps JOIN subscriptions s ON s.subscription_id = ps.subscription_id"
  .. " JOIN products pr ON pr.product_id = s.product_id WHERE ps.pid = p.pid"

local function select_of(sel)
  return "p.pid::text AS process_id, p.workflow_id::text AS workflow_id, w.name AS workflow_name, "
    .. "w.target AS workflow_target, p.is_task, p.created_by, p.failed_reason, orch_iso(p.started_at) AS started_at, "
    .. "p.last_status, p.last_step, p.assignee, orch_iso(p.last_modified_at) AS last_modified_at, p.note, "
    .. (sel("traceback") and "p.traceback" or "NULL::text AS traceback")
end

-- The list of processes; `from` may add a join (the nested form adds the link table).
function M.spec(from)
  return {
    select = select_of,
    from = from or "processes p JOIN workflows w ON w.workflow_id = p.workflow_id",
    filters = {
      process_id = { expr = "p.pid", type = "uuid_exact" },
      workflow_id = { expr = "p.workflow_id", type = "uuid_exact" },
      workflow_name = "w.name",
      workflow_target = common.code("lower(w.target)"),
      target = common.code("lower(w.target)"),
      last_status = common.code("p.last_status"),
      last_step = { expr = "p.last_step", nullable = true },
      assignee = "p.assignee",
      created_by = { expr = "p.created_by", nullable = true },
      is_task = { expr = "p.is_task", type = "bool" },
      note = { expr = "p.note", nullable = true },
      failed_reason = { expr = "p.failed_reason", nullable = true },
      started_at = common.timestamp("p.started_at"),
      last_modified_at = common.timestamp("p.last_modified_at"),
      product = common.exists(SUBS, "pr.name"),
      product_name = common.exists(SUBS, "pr.name"),
      product_description = common.exists(SUBS, "pr.description"),
      tag = common.exists(SUBS, "pr.tag"),
      product_tag = common.exists(SUBS, "pr.tag"),
      customer = common.exists(SUBS, "s.customer_id"),
      customer_id = common.exists(SUBS, "s.customer_id"),
      subscription_id = function(node, param)
        return "EXISTS (" .. SUBS .. " AND s.subscription_id::text " .. common.like(node, param) .. ")"
      end,
      subscriptions = common.exists(SUBS, "s.description", true),
    },
    sorts = {
      processId = "p.pid", workflowName = "w.name", workflowTarget = "w.target", target = "w.target",
      lastStep = "p.last_step", lastStatus = "p.last_status", assignee = "p.assignee", createdBy = "p.created_by",
      isTask = "p.is_task", note = "p.note", startedAt = "p.started_at", lastModifiedAt = "p.last_modified_at",
      failedReason = "p.failed_reason",
      productName = FIRST_SUB:format("pr.name"), tag = FIRST_SUB:format("pr.tag"),
      customer = FIRST_SUB:format("s.customer_id"), customerFullname = FIRST_SUB:format("s.customer_id"),
      customerShortcode = FIRST_SUB:format("s.customer_id"),
    },
    default_sort = "p.started_at DESC",
    tiebreak = "p.pid",
  }
end

local function to_item(row)
  return {
    process_id = row.process_id,
    workflow_id = row.workflow_id,
    workflow_name = row.workflow_name,
    workflow_target = nn(row.workflow_target),
    is_task = row.is_task,
    created_by = nn(row.created_by),
    failed_reason = nn(row.failed_reason),
    started_at = row.started_at,
    last_status = upper(row.last_status),
    last_step = nn(row.last_step),
    assignee = row.assignee,
    last_modified_at = row.last_modified_at,
    note = nn(row.note),
    traceback = nn(row.traceback),
  }
end

function M.load(rows)
  local items = {}
  for i, row in ipairs(rows) do
    items[i] = to_item(row)
  end
  return common.share_batch(items, function(item)
    return item.process_id
  end)
end

-- Subscription rows of the page's processes (product, customer and subscriptions fields).
local function linked(ids)
  local rows = common.query([[
    SELECT ps.pid::text AS pid, s.subscription_id::text AS subscription_id, s.customer_id,
           s.product_id::text AS product_id
    FROM processes_subscriptions ps JOIN subscriptions s ON s.subscription_id = ps.subscription_id
    WHERE ps.pid = ANY($1::uuid[]) ORDER BY ps.created_at]], common.id_array(ids))
  return common.group(rows, "pid")
end

local function first_linked(parent, info)
  local list = common.batched(parent, "linked@" .. info.parent_type, parent.process_id, linked)
  return list and list[1]
end

local function iso(column)
  return "orch_iso(" .. column .. ")"
end

-- Steps, current state and form: the detail service the REST detail uses too (orch.processes),
-- for the whole page at once (two statements) the first time a process of it asks.
local function detail(parent)
  local batch = parent._batch or { items = { parent }, cache = {} }
  local details = batch.cache.detail
  if not details then
    local workflow = require("orch.workflow")
    local list = {}
    for i, item in ipairs(batch.items) do
      list[i] = { pid = item.process_id, wf = workflow.get(item.workflow_name),
        last_status = tostring(item.last_status):lower() }
    end
    details = require("orch.redact").value(require("orch.processes").details(list, iso))
    batch.cache.detail = details
  end
  return details[parent.process_id] or {}
end

local function steps(parent)
  local out = json.array()
  for i, s in ipairs(detail(parent).steps or {}) do
    out[i] = {
      step_id = nn(s.step_id), name = s.name, status = s.status, created_by = nn(s.created_by),
      started = nn(s.started), completed = nn(s.completed), state = nn(s.state), state_delta = nn(s.state_delta),
      commit_hash = nn(s.commit_hash),
    }
  end
  return out
end

function M.types(T)
  T.Process = {
    fields = {
      processId = { type = "String!", from = "process_id" },
      workflowId = { type = "String!", from = "workflow_id" },
      workflowName = { type = "String!", from = "workflow_name" },
      workflowTarget = { type = "String", from = "workflow_target" },
      isTask = { type = "Boolean!", from = "is_task" },
      createdBy = { type = "String", from = "created_by" },
      failedReason = { type = "String", from = "failed_reason" },
      startedAt = { type = "String!", from = "started_at" },
      lastStatus = { type = "String!", from = "last_status" },
      lastStep = { type = "String", from = "last_step" },
      assignee = "String!",
      lastModifiedAt = { type = "String!", from = "last_modified_at" },
      note = "String",
      traceback = "String",
      productId = {
        type = "String",
        resolve = function(parent, _, _, info)
          local s = first_linked(parent, info)
          return s and s.product_id
        end,
      },
      customerId = {
        type = "String",
        resolve = function(parent, _, _, info)
          local s = first_linked(parent, info)
          return s and s.customer_id
        end,
      },
      product = {
        type = "Product",
        resolve = function(parent, _, ctx, info)
          local s = first_linked(parent, info)
          return s and common.area("catalog").product_by_id(ctx, s.product_id)
        end,
      },
      customer = {
        type = "Customer!",
        -- the customer of the process's first subscription (core's default without one)
        resolve = function(parent, _, ctx, info)
          local s = first_linked(parent, info)
          if not s then
            local d = common.DEFAULT_CUSTOMER -- a copy: what resolvers return gets annotated
            return { customer_id = d.customer_id, fullname = d.fullname, shortcode = d.shortcode }
          end
          return require("orch.api.graphql_schema.customers").of(ctx, s.customer_id, function()
            local ids = {}
            local linked_map = parent._batch and parent._batch.cache["linked@" .. info.parent_type] or {}
            for _, list in pairs(linked_map) do
              ids[#ids + 1] = list[1] and list[1].customer_id
            end
            return ids
          end)
        end,
      },
      userPermissions = {
        type = "FormUserPermissions!",
        resolve = function(parent, _, ctx)
          local workflow = require("orch.workflow")
          local user = type(ctx) == "table" and ctx.request and ctx.request.user or nil
          local wf = workflow.get(parent.workflow_name)
          local at = wf and require("orch.processes").recover(parent.process_id, wf)
          return { retryAllowed = workflow.allowed(wf, "retry", user, at),
            resumeAllowed = workflow.allowed(wf, "resume", user, at) }
        end,
      },
      steps = { type = "[ProcessStep!]!", resolve = steps },
      form = {
        type = "JSON",
        resolve = function(parent)
          return detail(parent).form
        end,
      },
      currentState = {
        type = "JSON",
        resolve = function(parent)
          return detail(parent).current_state
        end,
      },
      subscriptions = {
        type = "SubscriptionConnection!",
        args = connection.ARGS,
        resolve = common.nested_field(function()
          return common.area("subscriptions").spec(
            "subscriptions s JOIN processes_subscriptions ps_link ON ps_link.subscription_id = s.subscription_id",
            "ps_link.pid")
        end, "process_id", function(rows, sel)
          return common.area("subscriptions").load(rows, sel)
        end),
      },
    },
  }
  T.ProcessStep = {
    fields = {
      stepId = { type = "String", from = "step_id" },
      name = "String!",
      status = "String!",
      createdBy = { type = "String", from = "created_by" },
      started = "String",
      completed = "String",
      executed = { type = "String", from = "completed" },
      commitHash = { type = "String", from = "commit_hash" },
      state = "JSON",
      stateDelta = { type = "JSON", from = "state_delta" },
    },
  }
  T.FormUserPermissions = { fields = { retryAllowed = "Boolean!", resumeAllowed = "Boolean!" } }
  T.ProcessConnection = connection.type("Process")
end

function M.root(Q)
  Q.processes = {
    type = "ProcessConnection!",
    args = connection.ARGS,
    resolve = function(args, _, info)
      return common.root_connection(args, M.spec(), info, M.load)
    end,
  }
  Q.process = {
    type = "Process",
    args = { processId = "String!" },
    resolve = function(args, _, info)
      local spec = M.spec()
      local by_id = { filterBy = { { field = "processId", value = args.processId } } }
      local conds, params = common.clauses(by_id, spec, info)
      local rows = common.query("SELECT " .. select_of(common.page_selector(info)) .. " FROM " .. spec.from .. " WHERE "
        .. table.concat(conds, " AND "), table.unpack(params))
      return M.load(rows)[1]
    end,
  }
end

return M
