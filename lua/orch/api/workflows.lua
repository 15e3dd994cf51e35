-- /api/workflows/{workflow_id}: WorkflowSchema, and PATCH of the description.

local db = require("orch.db")
local json = require("orch.json")
local http = require("orch.http")
local workflow = require("orch.workflow")
local ts = require("orch.api.wire").ts

local api = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
api.routes = {
  { "GET", "/api/workflows/{workflow_id}", "get", action = "workflows.read", summary = "One workflow",
    response = S.WorkflowSchema },
  { "PATCH", "/api/workflows/{workflow_id}", "patch", action = "workflows.write",
    summary = "Change a workflow's description", body = S.DescriptionPatch, status = 201,
    response = S.WorkflowSchema },
}

local function load(id)
  if not orch.uuid.valid(id) then
    http.raise(422, "workflow_id is not a valid UUID")
  end
  local row = db.one("SELECT workflow_id::text, name, target, is_task, description, " .. ts("created_at")
    .. " AS created_at FROM workflows WHERE workflow_id = $1 AND deleted_at IS NULL", id)
  if not row then
    http.raise(404, "Workflow not found")
  end
  return row
end

local function schema(row)
  local wf = workflow.get(row.name)
  local steps = json.null
  if wf then
    steps = json.array()
    for _, s in ipairs(wf.steps) do
      steps[#steps + 1] = { name = s.name, assignee = s.assignee or "SYSTEM" }
    end
  end
  return {
    workflow_id = row.workflow_id, name = row.name, target = row.target, is_task = row.is_task,
    description = row.description, created_at = row.created_at, steps = steps,
  }
end

function api.get(req)
  return 200, schema(load(req.params.workflow_id))
end

function api.patch(req)
  local row = load(req.params.workflow_id)
  local body = req.json
  if type(body) ~= "table" or type(body.description) ~= "string" or #body.description > 2000 then
    http.raise(422, "The body must be {\"description\": string of at most 2000 characters}")
  end
  db.must("UPDATE workflows SET description = $2 WHERE workflow_id = $1", row.workflow_id, body.description)
  row.description = body.description
  return 201, schema(row)
end

return api
