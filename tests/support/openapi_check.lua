-- A structural check of an OpenAPI 3.1 document (the parts of the
-- specification the host's document uses): required top-level fields, path
-- templates and their path parameters, operations with unique operationIds and
-- responses keyed by status, request bodies and media types with schemas, and
-- every $ref resolving to a component. Returns a list of problems (empty when
-- the document is well formed).
local M = {}

local METHODS = { get = true, put = true, post = true, delete = true, options = true, head = true, patch = true,
  trace = true }

function M.check(doc)
  local problems = {}
  local function bad(fmt, ...)
    problems[#problems + 1] = string.format(fmt, ...)
  end
  if type(doc) ~= "table" then
    return { "the document is not an object" }
  end
  if type(doc.openapi) ~= "string" or not doc.openapi:match("^3%.1%.%d+$") then
    bad("openapi must be a 3.1.x version string, got %s", tostring(doc.openapi))
  end
  if type(doc.info) ~= "table" or type(doc.info.title) ~= "string" or type(doc.info.version) ~= "string" then
    bad("info needs a title and a version (strings)")
  end
  local schemas = doc.components and doc.components.schemas or {}
  local function refs(v, where)
    if type(v) ~= "table" then
      return
    end
    for k, sub in pairs(v) do
      if k == "$ref" then
        local name = type(sub) == "string" and sub:match("^#/components/schemas/(.+)$")
        if not name or type(schemas[name]) ~= "table" then
          bad("%s: $ref %s does not resolve", where, tostring(sub))
        end
      else
        refs(sub, where)
      end
    end
  end
  refs(doc.components, "components")
  if type(doc.paths) ~= "table" or next(doc.paths) == nil then
    bad("paths must be a non-empty object")
    return problems
  end
  local op_ids = {}
  for path, item in pairs(doc.paths) do
    if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
      bad("path %s must start with /", tostring(path))
    end
    local templated = {}
    for name in tostring(path):gmatch("{([^}]+)}") do
      templated[name] = true
    end
    for method, op in pairs(item) do
      local where = tostring(method):upper() .. " " .. tostring(path)
      if not METHODS[method] then
        bad("%s: %s is not an HTTP method of a path item", where, tostring(method))
      elseif type(op) ~= "table" then
        bad("%s: the operation must be an object", where)
      else
        if type(op.operationId) ~= "string" then
          bad("%s: operationId missing", where)
        elseif op_ids[op.operationId] then
          bad("%s: operationId %s is not unique", where, op.operationId)
        end
        op_ids[op.operationId or where] = true
        local declared = {}
        for _, p in ipairs(op.parameters or {}) do
          if type(p.name) ~= "string" or not ({ path = 1, query = 1, header = 1, cookie = 1 })[p["in"]] then
            bad("%s: a parameter needs a name and an `in` of path/query/header/cookie", where)
          elseif p["in"] == "path" then
            declared[p.name] = true
            if p.required ~= true then
              bad("%s: path parameter %s must be required", where, p.name)
            end
            if not templated[p.name] then
              bad("%s: path parameter %s is not in the path", where, p.name)
            end
          end
          if type(p.schema) ~= "table" then
            bad("%s: parameter %s has no schema", where, tostring(p.name))
          end
        end
        for name in pairs(templated) do
          if not declared[name] then
            bad("%s: the path parameter {%s} is not declared", where, name)
          end
        end
        local body = op.requestBody
        if body ~= nil and (type(body.content) ~= "table" or next(body.content) == nil) then
          bad("%s: requestBody needs content", where)
        end
        if type(op.responses) ~= "table" or next(op.responses) == nil then
          bad("%s: responses must be a non-empty object", where)
        else
          for status, resp in pairs(op.responses) do
            if status ~= "default" and not tostring(status):match("^[1-5][0-9X][0-9X]$") then
              bad("%s: response key %s is not a status", where, tostring(status))
            end
            if type(resp) ~= "table" or type(resp.description) ~= "string" then
              bad("%s %s: a response needs a description", where, tostring(status))
            end
            for ctype, media in pairs(resp.content or {}) do
              if type(media) ~= "table" or type(media.schema) ~= "table" then
                bad("%s %s: %s has no schema", where, tostring(status), ctype)
              end
            end
          end
        end
        refs(op, where)
      end
    end
  end
  return problems
end

return M
