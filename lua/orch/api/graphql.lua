-- POST /api/graphql: one GraphQL request ({query, variables, operationName}) against the
-- API schema (lua/orch/gql/). Always 200 with {data, errors?}, as GraphQL over HTTP does.

local graphql = require("orch.graphql")
local schema = require("orch.gql")

local api = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
api.routes = {
  { "POST", "/api/graphql", "post", action = "graphql.read", summary = "A GraphQL query (docs/graphql.md)",
    body = S.GraphQLRequest, response = S.GraphQLResponse },
}

function api.post(req)
  return 200, graphql.execute(schema(), req.json, { request = req })
end

return api
