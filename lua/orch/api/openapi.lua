-- GET /api/openapi.json: the OpenAPI 3.1 document of the API, generated from
-- the route table (orch.api.routes) and the schemas declared with the routes
-- (orch.api.schemas). Nothing in it is written twice, so it cannot drift from
-- what is served. docs/openapi.md says how to read and extend it.

local json = require("orch.json")
local S = require("orch.api.schemas")

local openapi = {}

openapi.routes = {
  { "GET", "/api/openapi.json", "get", action = "openapi.read", summary = "This OpenAPI 3.1 document",
    response = S.any_object },
}

local REASONS = { ["101"] = "Switching Protocols", ["200"] = "OK", ["201"] = "Created", ["204"] = "No Content" }

local function problem_response(description)
  return { description = description, content = { ["application/json"] = { schema = S.Problem } } }
end

local function operation(r)
  local op = {
    operationId = (r.handler or ("host." .. r.host)):gsub("%.", "_"),
    summary = r.summary, tags = json.array(r.tags or {}),
    ["x-action"] = r.action,
    ["x-handler"] = r.handler or ("host:" .. r.host),
  }
  local params = json.array()
  for name in r.path:gmatch("{([%w_]+)}") do
    params[#params + 1] = { name = name, ["in"] = "path", required = true, schema = S.string }
  end
  local qnames = {}
  for name in pairs(r.query or {}) do
    qnames[#qnames + 1] = name
  end
  table.sort(qnames)
  for _, name in ipairs(qnames) do
    params[#params + 1] = { name = name, ["in"] = "query", required = false, description = r.query[name],
      schema = S.string }
  end
  if #params > 0 then
    op.parameters = params
  end
  if r.body then
    op.requestBody = { required = true, content = { ["application/json"] = { schema = r.body } } }
  end
  local status = tostring(r.status)
  local ok = { description = REASONS[status] or "Success" }
  if r.response and status ~= "204" and status ~= "101" then
    ok.content = { [r.content_type or "application/json"] = { schema = r.response } }
  end
  op.responses = { [status] = ok, default = problem_response("An error: a problem detail") }
  for code, text in pairs(r.errors or {}) do
    op.responses[tostring(code)] = problem_response(text)
  end
  return op
end

-- The document as a Lua table (built from the current route table).
function openapi.document()
  local paths = {}
  for _, r in ipairs(require("orch.api.routes").all()) do
    -- trailing slashes are ignored when matching; list paths as orchestrator-core does
    local p = paths[r.path] or {}
    paths[r.path] = p
    p[r.method:lower()] = operation(r)
  end
  return {
    openapi = "3.1.0",
    info = {
      title = "Orchestrator Core",
      version = orch.version,
      description = "The REST API of the orchestrator. Generated from the route table "
        .. "(lua/orch/api/routes.lua) and the schemas next to the handlers.",
    },
    paths = paths,
    components = { schemas = S.components },
  }
end

local cached -- one document per Lua state, i.e. per generation of the scripts

function openapi.get()
  cached = cached or json.encode(openapi.document())
  return 200, require("orch.http").raw(cached, "application/json")
end

return openapi
