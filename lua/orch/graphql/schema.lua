-- Schema tables for the GraphQL executor: compiles the declarative shape that
-- resolvers are written against (see docs/graphql.md) and coerces input values.
--
--   {
--     query = "Query", mutation = "Mutation",        -- root type names (defaults shown)
--     types = { Query = { fields = { name = field, ... } },
--               Node = { kind = "interface", resolve_type = fn(value) -> type name },
--               T = { interfaces = {"Node"}, fields = {...} } },
--     inputs = { GraphqlSort = { fields = { field = "String!", order = { type = "SortOrder", default = "ASC" } } } },
--     enums = { SortOrder = { "ASC", "DESC" } },
--     scalars = { DateTime = true },                 -- extra leaf types, serialised as they are
--   }
--   field = function resolver | "TypeRef" | true | { type = "TypeRef", resolve = fn, from = "key",
--           args = { name = "TypeRef" | { type = "TypeRef", default = value } } }

local json = require("orch.json")
local parser = require("orch.graphql.parser")

local null = json.null

local schema = {}

schema.BUILTIN_SCALARS = { Int = true, Float = true, String = true, Boolean = true, ID = true, JSON = true }

local compiled = setmetatable({}, { __mode = "k" })
local type_cache = {}

-- Parsed type reference, cached; raises on a malformed declaration (a schema bug).
function schema.type_ref(text)
  if text == nil then
    return nil
  end
  local t = type_cache[text]
  if not t then
    local err
    t, err = parser.parse_type(text)
    if not t then
      error("invalid GraphQL type reference '" .. tostring(text) .. "': " .. err, 3)
    end
    type_cache[text] = t
  end
  return t
end

function schema.named(t)
  while t and t.kind ~= "NamedType" do
    t = t.type
  end
  return t and t.name
end

function schema.type_string(t)
  if t.kind == "NonNullType" then
    return schema.type_string(t.type) .. "!"
  elseif t.kind == "ListType" then
    return "[" .. schema.type_string(t.type) .. "]"
  end
  return t.name
end

local function compile_args(args)
  if args == nil then
    return nil
  end
  local out = {}
  for name, a in pairs(args) do
    if type(a) == "string" then
      out[name] = { type = schema.type_ref(a) }
    else
      out[name] = { type = schema.type_ref(a.type), default = a.default }
    end
  end
  return out
end

local function compile_field(spec)
  local ts = type(spec)
  if ts == "function" then
    return { resolve = spec }
  elseif ts == "string" then
    return { type = schema.type_ref(spec) }
  elseif spec == true then
    return {}
  elseif ts == "table" then
    return {
      type = schema.type_ref(spec.type),
      resolve = spec.resolve,
      from = spec.from,
      args = compile_args(spec.args),
    }
  end
  error("invalid GraphQL field declaration: " .. tostring(spec), 3)
end

-- compile(def) -> the executor's view of a schema; cached per definition table.
function schema.compile(def)
  if def.__compiled then
    return def
  end
  local c = compiled[def]
  if c then
    return c
  end
  c = {
    __compiled = true,
    query = def.query or "Query",
    mutation = def.mutation or (def.types and def.types.Mutation and "Mutation") or nil,
    types = {},
    inputs = {},
    enums = {},
    scalars = {},
    implementations = {},
  }
  for name in pairs(schema.BUILTIN_SCALARS) do
    c.scalars[name] = true
  end
  for name, v in pairs(def.scalars or {}) do
    c.scalars[name] = v
  end
  for name, values in pairs(def.enums or {}) do
    local set = {}
    for _, v in ipairs(values) do
      set[v] = true
    end
    c.enums[name] = set
  end
  for name, input in pairs(def.inputs or {}) do
    local fields = {}
    for fname, f in pairs(input.fields or input) do
      if type(f) == "string" then
        fields[fname] = { type = schema.type_ref(f) }
      else
        fields[fname] = { type = schema.type_ref(f.type), default = f.default }
      end
    end
    c.inputs[name] = { name = name, fields = fields }
  end
  for name, t in pairs(def.types or {}) do
    local ct = { name = name, kind = t.kind or "object", resolve_type = t.resolve_type, interfaces = {} }
    if t.fields then
      ct.fields = {}
      for fname, f in pairs(t.fields) do
        ct.fields[fname] = compile_field(f)
        ct.fields[fname].desc = name .. "." .. fname
      end
    end
    for _, iface in ipairs(t.interfaces or {}) do
      ct.interfaces[iface] = true
      local impl = c.implementations[iface] or {}
      impl[name] = true
      c.implementations[iface] = impl
    end
    c.types[name] = ct
  end
  compiled[def] = c
  return c
end

-- Input coercion ----------------------------------------------------------------------

local function is_null(v)
  return v == nil or v == null
end

local function is_list(v)
  return type(v) == "table" and (getmetatable(v) == json.array_mt or rawget(v, 1) ~= nil)
end

local function show(v)
  if type(v) == "string" then
    return string.format("%q", v)
  elseif type(v) == "table" then
    local ok, text = pcall(json.encode, v)
    return ok and text or "<table>"
  elseif v == null then
    return "null"
  end
  return tostring(v)
end

local SCALAR_COERCE = {
  Int = function(v)
    local i = type(v) == "number" and math.tointeger(v)
    if not i then
      return nil, "Int cannot represent non-integer value: " .. show(v)
    end
    if i > 2147483647 or i < -2147483648 then
      return nil, "Int cannot represent non 32-bit signed integer value: " .. show(v)
    end
    return i
  end,
  Float = function(v)
    if type(v) ~= "number" then
      return nil, "Float cannot represent non numeric value: " .. show(v)
    end
    return v
  end,
  String = function(v)
    if type(v) ~= "string" then
      return nil, "String cannot represent a non string value: " .. show(v)
    end
    return v
  end,
  Boolean = function(v)
    if type(v) ~= "boolean" then
      return nil, "Boolean cannot represent a non boolean value: " .. show(v)
    end
    return v
  end,
  ID = function(v)
    if type(v) == "string" then
      return v
    elseif math.type(v) == "integer" then
      return tostring(v)
    end
    return nil, "ID cannot represent value: " .. show(v)
  end,
  JSON = function(v)
    return v
  end,
}

-- coerce_input(c, value, t) -> coerced value (null stays json.null) | nil, message.
-- Lists accept a single value (list input coercion); input objects get their defaults.
function schema.coerce_input(c, value, t)
  if t == nil then
    return value
  end
  if t.kind == "NonNullType" then
    if is_null(value) then
      return nil, 'Expected non-nullable type "' .. schema.type_string(t) .. '" not to be null.'
    end
    return schema.coerce_input(c, value, t.type)
  end
  if is_null(value) then
    return null
  end
  if t.kind == "ListType" then
    local out = json.array()
    if is_list(value) then
      for i = 1, #value do
        local v, err = schema.coerce_input(c, value[i], t.type)
        if err then
          return nil, err
        end
        out[i] = v
      end
    else
      local v, err = schema.coerce_input(c, value, t.type)
      if err then
        return nil, err
      end
      out[1] = v
    end
    return out
  end
  local name = t.name
  local coerce = SCALAR_COERCE[name]
  if coerce then
    return coerce(value)
  end
  local enum = c.enums[name]
  if enum then
    if type(value) ~= "string" or not enum[value] then
      return nil, 'Value ' .. show(value) .. ' does not exist in "' .. name .. '" enum.'
    end
    return value
  end
  local input = c.inputs[name]
  if input then
    if type(value) ~= "table" or is_list(value) then
      return nil, 'Expected type "' .. name .. '" to be an object.'
    end
    local out = {}
    for k in pairs(value) do
      if not input.fields[k] then
        return nil, 'Field "' .. tostring(k) .. '" is not defined by type "' .. name .. '".'
      end
    end
    for fname, f in pairs(input.fields) do
      local v = value[fname]
      if v == nil and f.default ~= nil then
        v = f.default
      end
      if v == nil and f.type.kind == "NonNullType" then
        return nil, 'Field "' .. name .. "." .. fname .. '" of required type "' .. schema.type_string(f.type)
          .. '" was not provided.'
      end
      if v ~= nil then
        local cv, err = schema.coerce_input(c, v, f.type)
        if err then
          return nil, err
        end
        if cv ~= null then
          out[fname] = cv
        end
      end
    end
    return out
  end
  -- Custom scalars and undeclared types pass through unchanged.
  return value
end

schema.is_list = is_list
schema.is_null = is_null

return schema
