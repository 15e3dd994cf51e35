-- GraphQL for the API: parse, validate and execute a request body against a
-- schema table of resolvers. See docs/graphql.md for the schema and resolver shapes.
--
--   local graphql = require("orch.graphql")
--   local response = graphql.execute(schema, {query = ..., variables = ..., operationName = ...}, ctx)
--   -- response: {data = ..., errors = [...]} (errors only when there are some); always HTTP 200.

local json = require("orch.json")
local parser = require("orch.graphql.parser")
local executor = require("orch.graphql.executor")
local schema = require("orch.graphql.schema")

local graphql = {}

graphql.parse = parser.parse
graphql.compile_schema = schema.compile
graphql.connection = require("orch.graphql.connection")

-- Raise from a resolver: the message is reported as it is (no file:line prefix).
function graphql.error(message, extensions)
  error({ message = tostring(message), extensions = extensions }, 0)
end

-- Parsed documents by source text: the UI sends the same few small documents over and
-- over. Bounded in count and document size so that odd requests cannot fill the memory.
local cache, cached = {}, 0
local CACHE_MAX, CACHE_MAX_BYTES = 128, 16384

local function parse_cached(source)
  local doc = cache[source]
  if doc then
    return doc
  end
  local err
  doc, err = parser.parse(source)
  if not doc then
    return nil, err
  end
  if #source > CACHE_MAX_BYTES then
    return doc
  end
  if cached >= CACHE_MAX then
    cache, cached = {}, 0
  end
  cache[source] = doc
  cached = cached + 1
  return doc
end

local function request_error(message, locations)
  return { errors = json.array({ { message = message, locations = locations or json.array() } }) }
end

local function absent(v)
  return v == nil or v == json.null
end

-- execute(schema, body, ctx) -> response table. body is the decoded JSON request
-- {query, variables?, operationName?}; ctx is handed to every resolver.
function graphql.execute(schema_def, body, ctx)
  if type(body) ~= "table" or json.is_array(body) then
    return request_error("Request body must be a JSON object.")
  end
  local query, variables, operation_name = body.query, body.variables, body.operationName
  if type(query) ~= "string" then
    return request_error("Must provide query string.")
  end
  if absent(variables) then
    variables = nil
  elseif type(variables) ~= "table" or (next(variables) ~= nil and json.is_array(variables)) then
    return request_error("Variables must be provided as a JSON object.")
  end
  if absent(operation_name) then
    operation_name = nil
  elseif type(operation_name) ~= "string" then
    return request_error("operationName must be a string.")
  end
  local doc, err = parse_cached(query)
  if not doc then
    local locations = json.array()
    for i, l in ipairs(err.locations or {}) do
      locations[i] = l
    end
    return request_error(err.message, locations)
  end
  return executor.execute(schema_def, doc, variables, operation_name, ctx)
end

return graphql
