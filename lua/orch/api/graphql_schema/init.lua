-- The GraphQL schema of /api/graphql: core's root fields and types, as the
-- orchestrator UI queries them (docs/graphql.md, "The API schema"). Each area lives in
-- its own module and adds its types and root fields here.

local common = require("orch.api.graphql_schema.common")
local connection = require("orch.graphql.connection")

local AREAS = {
  "orch.api.graphql_schema.processes", "orch.api.graphql_schema.subscriptions",
  "orch.api.graphql_schema.catalog", "orch.api.graphql_schema.workflows", "orch.api.graphql_schema.misc",
}

local schema

-- The schema table, built once per Lua state.
return function()
  if not schema then
    local types, query = {}, { fields = {} }
    for _, name in ipairs(AREAS) do
      local area = require(name)
      common.register_area(name:match("[^.]+$"), area)
      area.types(types)
      area.root(query.fields)
    end
    types.Query = query
    schema = connection.install({ query = "Query", types = types })
  end
  return schema
end
