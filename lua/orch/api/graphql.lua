-- POST /api/graphql: one GraphQL request ({query, variables, operationName}) against the
-- API schema (lua/orch/gql/). Always 200 with {data, errors?}, as GraphQL over HTTP does.

local graphql = require("orch.graphql")
local schema = require("orch.gql")

local api = {}

function api.post(req)
  return 200, graphql.execute(schema(), req.json, { request = req })
end

return api
