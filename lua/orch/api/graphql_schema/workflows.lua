-- GraphQL workflows: the root field `workflows` and the Workflow type (its products in
-- one query per page, its steps from the registry of the loaded scripts).

local json = require("orch.json")
local common = require("orch.api.graphql_schema.common")
local connection = require("orch.graphql.connection")
local workflow = require("orch.workflow")

local M = {}

local SPEC = {
  select = "w.workflow_id::text AS workflow_id, w.name, w.target, w.description, w.is_task, "
    .. "orch_iso(w.created_at) AS created_at",
  from = "workflows w",
  where = "w.deleted_at IS NULL",
  filters = {
    workflow_id = { expr = "w.workflow_id", type = "uuid_exact" },
    name = "w.name",
    target = common.code("lower(w.target)"),
    description = "w.description",
    is_task = { expr = "w.is_task", type = "bool" },
    created_at = common.timestamp("w.created_at"),
  },
  sorts = {
    workflowId = "w.workflow_id", name = "w.name", target = "w.target", description = "w.description",
    isTask = "w.is_task", createdAt = "w.created_at",
  },
  default_sort = "w.name",
  tiebreak = "w.workflow_id",
}

function M.load(rows)
  local items = {}
  for i, r in ipairs(rows) do
    items[i] = {
      workflow_id = r.workflow_id, name = r.name, target = r.target, description = r.description,
      is_task = r.is_task, created_at = r.created_at,
    }
  end
  return common.share_batch(items, function(item)
    return item.workflow_id
  end)
end

local function steps(parent)
  local out = json.array()
  local wf = workflow.get(parent.name)
  for i, s in ipairs(wf and wf.steps or {}) do
    out[i] = { name = s.name, assignee = s.assignee or "SYSTEM" }
  end
  return out
end

function M.types(T)
  T.Workflow = {
    fields = {
      workflowId = { type = "String!", from = "workflow_id" },
      name = "String!",
      description = "String",
      target = "String!",
      isTask = { type = "Boolean!", from = "is_task" },
      createdAt = { type = "String", from = "created_at" },
      isAllowed = {
        type = "Boolean!",
        resolve = function(parent, _, ctx)
          local user = type(ctx) == "table" and ctx.request and ctx.request.user or nil
          return workflow.allowed(workflow.get(parent.name), "start", user)
        end,
      },
      products = {
        type = "[Product!]!",
        resolve = common.list_field("workflow_id", function(ids)
          return common.area("catalog").products_of_workflows(ids)
        end),
      },
      steps = { type = "[WorkflowStep!]!", resolve = steps },
    },
  }
  T.WorkflowStep = { fields = { name = "String!", assignee = "String" } }
  T.WorkflowConnection = connection.type("Workflow")
end

function M.root(Q)
  Q.workflows = {
    type = "WorkflowConnection!",
    args = connection.ARGS,
    resolve = function(args, _, info)
      return common.root_connection(args, SPEC, info, M.load)
    end,
  }
end

return M
