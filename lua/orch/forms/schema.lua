-- JSON Schema of a resolved page, in the shape pydantic-forms'
-- `model_json_schema` gives the UI (docs/forms.md, "JSON Schema"). Every object
-- is a json.ordered table: `properties` keep the field order (the UI renders
-- fields in key order), `options` keep the option order, all other keys are
-- sorted, so the output is reproducible byte for byte.

local json = require("orch.json")
local fields = require("orch.forms.fields")

local M = {}

local null = json.null
local O = json.ordered
local A = json.array

local function copy_json(v)
  if type(v) ~= "table" or v == null then
    return v
  end
  local c = {}
  for k, x in pairs(v) do
    c[k] = copy_json(x)
  end
  if json.is_array(v) then
    return A(c)
  end
  return O(c)
end

local function as_list(v)
  if type(v) ~= "table" or v == null then
    return v
  end
  local c = A()
  for i, x in ipairs(v) do
    c[i] = copy_json(x)
  end
  return c
end

local function json_type(v)
  local t = type(v)
  if t == "string" or v == null then
    return "string"
  elseif t == "boolean" then
    return "boolean"
  elseif t == "number" then
    return math.type(v) == "integer" and "integer" or "number"
  end
  return "string"
end
M.json_type = json_type

function M.title(rf)
  return rf.title or fields.title_from_name(rf.name)
end

-- Register the enum definition of a choice field and return its $ref.
local function choice_ref(rf, defs)
  local base = rf.enum_name or (rf.kind == "product" and "ProductChoice") or (fields.camel(rf.name) .. "Choice")
  local enum, options, labelled = A(), {}, false
  local order = {}
  for i, o in ipairs(rf.options) do
    enum[i] = o.value
    options[o.value] = o.label
    order[i] = o.value
    labelled = labelled or o.label ~= o.value
  end
  local def = O({
    enum = enum,
    options = labelled and O(options, order) or nil,
    title = (rf.enum_name or rf.kind == "product") and base or M.title(rf),
    type = "string",
  })
  local text = json.encode(def)
  local name, n = base, 1
  while defs[name] and json.encode(defs[name]) ~= text do
    n = n + 1
    name = base .. n
  end
  defs[name] = def
  return "#/$defs/" .. name
end

local function number_bounds(s, rf)
  s.minimum, s.maximum = rf.min, rf.max
  s.exclusiveMinimum, s.exclusiveMaximum = rf.gt, rf.lt
  return s
end

local function item_schema(kind)
  if kind == "uuid" then
    return O({ format = "uuid", type = "string" })
  end
  return O({ type = kind })
end

local function timestamp_extra(rf)
  return O({
    showTimeSelect = rf.show_time_select == nil and true or rf.show_time_select,
    locale = rf.locale or null,
    min = rf.min or null,
    max = rf.max or null,
    dateFormat = rf.date_format or null,
    timeFormat = rf.time_format or null,
  })
end

-- The schema of the value itself (without title, default, nullability).
local function base_schema(rf, defs)
  local k = rf.kind
  if k == "string" or k == "long_text" then
    return O({
      type = "string",
      format = k == "long_text" and "long" or rf.format,
      minLength = rf.min_length,
      maxLength = rf.max_length,
      pattern = rf.pattern,
    })
  elseif k == "integer" or k == "number" then
    return number_bounds(O({ type = k }), rf)
  elseif k == "boolean" then
    return O({ type = "boolean" })
  elseif k == "uuid" then
    return O({ format = "uuid", type = "string" })
  elseif k == "timestamp" then
    local extra = timestamp_extra(rf)
    return number_bounds(O({ format = "timestamp", type = "number", uniforms = extra, extraProperties = extra }), rf)
  elseif fields.CHOICE[k] then
    return O({ ["$ref"] = choice_ref(rf, defs) })
  elseif k == "multi_choice" then
    return O({
      type = "array",
      items = O({ ["$ref"] = choice_ref(rf, defs) }),
      minItems = rf.min_items or 0, -- always present, as pydantic-forms' choice_list
      maxItems = rf.max_items,
      uniqueItems = rf.unique and true or nil,
    })
  elseif k == "list" then
    return O({
      type = "array",
      items = item_schema(rf.of),
      minItems = rf.min_items,
      maxItems = rf.max_items,
      uniqueItems = rf.unique and true or nil,
    })
  end
  error("unknown field kind " .. tostring(k))
end

local function display_schema(rf)
  local k, title = rf.kind, M.title(rf)
  if k == "label" or k == "divider" then
    return O({
      anyOf = A({ O({ type = "string" }), O({ type = "null" }) }),
      default = rf.dflt == nil and null or rf.dflt,
      format = k,
      title = title,
      type = "string",
    })
  elseif k == "summary" then
    local d = rf.sdata
    local data = O({ headers = as_list(d.headers), labels = as_list(d.labels), columns = as_list(d.columns) })
    return O({
      default = null,
      format = "summary",
      title = title,
      type = "string",
      uniforms = O({ data = data }),
      extraProperties = O({ data = data }),
    })
  elseif k == "callout" then
    return O({
      default = O({
        header = rf.header or null,
        message = rf.message or null,
        icon_type = rf.icon_type or "info",
        message_type = rf.message_type or "primary",
      }),
      format = "callout",
      title = title,
      type = "string",
    })
  elseif k == "display_subscription" then
    return O({ default = rf.value, format = "subscription", title = title, type = "string" })
  end
end

local function read_only_schema(rf)
  local v, title = rf.value, M.title(rf)
  if type(v) == "table" and v ~= null then
    local list = as_list(v)
    local extra = O({ disabled = true, value = list })
    return O({
      default = list,
      items = O({ type = list[1] ~= nil and json_type(list[1]) or "string" }),
      title = title,
      type = "array",
      format = rf.format,
      uniforms = extra,
      extraProperties = extra,
    })
  end
  local extra = O({ disabled = true, value = v })
  return O({
    const = v,
    default = v,
    title = title,
    type = json_type(v),
    format = rf.format,
    uniforms = extra,
    extraProperties = extra,
  })
end

local function default_value(rf)
  local d = rf.dflt
  if fields.LIST[rf.kind] then
    return as_list(d)
  end
  return copy_json(d)
end

local function property(rf, defs)
  if fields.DISPLAY[rf.kind] then
    return display_schema(rf)
  elseif rf.kind == "read_only" then
    return read_only_schema(rf)
  end
  local base = base_schema(rf, defs)
  local prop
  if rf.optional then
    local d = default_value(rf)
    prop = O({ anyOf = A({ base, O({ type = "null" }) }), default = d == nil and null or d, title = M.title(rf) })
  else
    prop = base
    prop.default = default_value(rf)
    -- pydantic leaves the title off a bare $ref (the definition has one)
    if not (base["$ref"] and not rf.title) then
      prop.title = M.title(rf)
    end
  end
  if rf.kind == "product" then
    prop.format = "productId"
  elseif fields.CHOICE[rf.kind] and rf.format then
    prop.format = rf.format
  end
  prop.description = rf.description
  for k, v in pairs(rf.schema or {}) do
    prop[k] = copy_json(v)
  end
  return prop
end

-- Whether the UI must supply the field.
function M.required(rf)
  return not fields.DISPLAY[rf.kind] and rf.kind ~= "read_only" and not rf.optional and rf.dflt == nil
end

-- The JSON Schema of a resolved page (fields.resolve).
function M.page_schema(resolved)
  local defs, props, order, required = {}, {}, {}, A()
  for i, rf in ipairs(resolved.fields) do
    props[rf.name] = property(rf, defs)
    order[i] = rf.name
    if M.required(rf) then
      required[#required + 1] = rf.name
    end
  end
  return O({
    ["$defs"] = next(defs) and O(defs) or nil,
    additionalProperties = false,
    properties = O(props, order),
    required = required[1] and required or nil,
    title = resolved.page.title,
    type = "object",
  })
end

M.copy_json = copy_json
return M
