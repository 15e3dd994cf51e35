-- POST /api/graphql: one GraphQL request ({query, variables, operationName}) against the
-- API schema (lua/orch/api/graphql_schema/). Always 200 with {data, errors?}, as GraphQL over HTTP does.

local graphql = require("orch.graphql")
local schema = require("orch.api.graphql_schema")

local api = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
api.routes = {
  { "POST", "/api/graphql", "post", action = "graphql.read", summary = "A GraphQL query (docs/graphql.md)",
    body = S.GraphQLRequest, response = S.GraphQLResponse },
}

local redact = require("orch.redact")

-- Errors for the client: no server paths, no database messages (those go to the
-- log with the request id, which the client gets instead).
local function clean_errors(result, req)
  for _, e in ipairs(type(result) == "table" and result.errors or {}) do
    local msg = tostring(e.message)
    if msg:find("^database: ") or msg:find("^Unexpected error: ") then
      orch.log.error("graphql error (request id " .. tostring(req.request_id) .. "):", msg)
      e.message = "Internal error (request id " .. tostring(req.request_id) .. ")"
    else
      e.message = redact.paths(msg)
    end
  end
  return result
end

api._clean_errors = clean_errors -- for the unit tests

function api.post(req)
  local policy = require("orch.policy")
  local ctx = { request = req }
  -- each root field is an action of its own: graphql.query.<field> / graphql.mutation.<field>
  function ctx.authorize_root(field, operation, args)
    local c = policy.context(req)
    c.action = "graphql." .. operation .. "." .. field
    c.field, c.operation, c.body = field, operation, args
    local ok, reason = policy.check(c)
    if not ok then
      return reason
    end
  end
  return 200, clean_errors(graphql.execute(schema(), req.json, ctx), req)
end

return api
