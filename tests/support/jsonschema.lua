-- A small JSON Schema (2020-12) validator for the tests: the keywords the
-- OpenAPI document of the host uses (type, properties, required,
-- additionalProperties, items, anyOf, enum, format uuid, $ref into
-- #/components/schemas/). Values are as lua-cjson decodes them: cjson.null is
-- null, and an empty table is both an empty array and an empty object (cjson
-- cannot tell them apart). An unknown keyword is an error, so the validator
-- cannot silently accept what it does not check.
local cjson = require("cjson")

local M = {}

local KNOWN = { type = true, properties = true, required = true, additionalProperties = true, items = true,
  anyOf = true, enum = true, format = true, ["$ref"] = true, description = true }

local function is_array(v)
  if type(v) ~= "table" then
    return false
  end
  local n = 0
  for _ in pairs(v) do
    n = n + 1
  end
  return n == #v
end

local function is_object(v)
  if type(v) ~= "table" then
    return false
  end
  if next(v) == nil then
    return true
  end
  for k in pairs(v) do
    if type(k) ~= "string" then
      return false
    end
  end
  return true
end

local TYPES = {
  null = function(v)
    return v == cjson.null
  end,
  boolean = function(v)
    return type(v) == "boolean"
  end,
  string = function(v)
    return type(v) == "string"
  end,
  number = function(v)
    return type(v) == "number"
  end,
  integer = function(v)
    return type(v) == "number" and v == math.floor(v)
  end,
  array = is_array,
  object = is_object,
}

local FORMATS = {
  uuid = function(v)
    return v:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
  end,
  ["date-time"] = function(v)
    return v:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d") ~= nil
  end,
}

local validate

local function resolve(doc, ref)
  local name = ref:match("^#/components/schemas/(.+)$")
  local target = name and doc.components and doc.components.schemas and doc.components.schemas[name]
  if not target then
    error("unresolvable $ref " .. ref, 0)
  end
  return target
end

-- Append the errors of `value` against `schema` at `path` to errs.
validate = function(doc, schema, value, path, errs)
  if type(schema) ~= "table" then
    error(path .. ": a schema must be an object", 0)
  end
  for k in pairs(schema) do
    if not KNOWN[k] then
      error(path .. ": the test validator does not know the keyword '" .. tostring(k) .. "'", 0)
    end
  end
  if schema["$ref"] then
    validate(doc, resolve(doc, schema["$ref"]), value, path, errs)
  end
  if schema.type then
    local types = type(schema.type) == "table" and schema.type or { schema.type }
    local ok = false
    for _, t in ipairs(types) do
      local check = TYPES[t] or error(path .. ": unknown type " .. tostring(t), 0)
      ok = ok or check(value)
    end
    if not ok then
      errs[#errs + 1] = path .. ": expected " .. table.concat(types, "|") .. ", got "
        .. (value == cjson.null and "null" or type(value)) .. " " .. tostring(value)
      return
    end
  end
  if schema.enum then
    local found = false
    for _, e in ipairs(schema.enum) do
      found = found or e == value
    end
    if not found then
      errs[#errs + 1] = path .. ": " .. tostring(value) .. " is not in the enum"
    end
  end
  if schema.format and type(value) == "string" and FORMATS[schema.format] and not FORMATS[schema.format](value) then
    errs[#errs + 1] = path .. ": '" .. value .. "' is not a " .. schema.format
  end
  if schema.anyOf then
    local ok = false
    for _, s in ipairs(schema.anyOf) do
      local sub = {}
      validate(doc, s, value, path, sub)
      ok = ok or #sub == 0
    end
    if not ok then
      errs[#errs + 1] = path .. ": matches none of anyOf"
    end
  end
  if type(value) == "table" and is_object(value) and next(value) ~= nil then
    for _, k in ipairs(schema.required or {}) do
      if value[k] == nil then
        errs[#errs + 1] = path .. ": required property '" .. k .. "' is missing"
      end
    end
    for k, v in pairs(value) do
      local sub = schema.properties and schema.properties[k]
      if sub then
        validate(doc, sub, v, path .. "." .. k, errs)
      elseif schema.additionalProperties == false then
        errs[#errs + 1] = path .. ": property '" .. k .. "' is not allowed"
      elseif type(schema.additionalProperties) == "table" then
        validate(doc, schema.additionalProperties, v, path .. "." .. k, errs)
      end
    end
  elseif type(value) == "table" and next(value) == nil then
    for _, k in ipairs(schema.required or {}) do
      if schema.type == "object" then
        errs[#errs + 1] = path .. ": required property '" .. k .. "' is missing"
      end
    end
  end
  if schema.items and is_array(value) then
    for i, v in ipairs(value) do
      validate(doc, schema.items, v, path .. "[" .. i .. "]", errs)
    end
  end
end

-- nil when value is valid, else a list of messages. doc holds the components.
function M.validate(doc, schema, value)
  local errs = {}
  validate(doc, schema, value, "$", errs)
  return #errs > 0 and errs or nil
end

return M
