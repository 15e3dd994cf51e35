-- The form DSL: field constructors and pages. A field is a table made by one of
-- the constructors below (`forms.string{"name", ...}`); a page is
-- `forms.page{title = ..., field, field, ...}`. Options and defaults may be
-- functions of the working state and the context; they are evaluated once per
-- replay by `resolve`. See docs/forms.md.

local json = require("orch.json")

local M = {}

local null = json.null
M.field_mt = { __name = "orch.forms.field" }
M.page_mt = { __name = "orch.forms.page" }
M.invalid_mt = {
  __name = "orch.forms.invalid",
  __tostring = function(e)
    return "form validation error: " .. tostring(e.msg)
  end,
}

-- Kinds that only show something: never read from the input, never required.
M.DISPLAY = { label = true, divider = true, summary = true, callout = true, display_subscription = true }
-- Kinds whose value is a list.
M.LIST = { list = true, multi_choice = true }
-- Kinds whose value is one of a list of options.
M.CHOICE = { choice = true, product = true, subscription = true }

-- Raise a validation error from a validator (or from the form body). `loc` is
-- a list of path elements: relative to the field in a field validator,
-- absolute in a page validator or form body (default {"__root__"}).
function M.invalid(msg, loc)
  error(setmetatable({ msg = tostring(msg), loc = loc }, M.invalid_mt), 0)
end

function M.is_invalid(e)
  return getmetatable(e) == M.invalid_mt
end

-- pydantic's default field title: Python's str.title() then "_" → " ".
function M.title_from_name(name)
  local out, prev_cased = {}, false
  for i = 1, #name do
    local c = name:sub(i, i)
    if c:match("%a") then
      out[i] = prev_cased and c:lower() or c:upper()
      prev_cased = true
    else
      out[i] = c
      prev_cased = false
    end
  end
  return (table.concat(out):gsub("_", " "):match("^%s*(.-)%s*$"))
end

-- "customer_id" → "CustomerId"
function M.camel(name)
  return (M.title_from_name(name):gsub("[^%w]", ""))
end

local function fail(level, fmt, ...)
  error(string.format(fmt, ...), level + 1)
end

local function list_of_functions(v, what, name)
  if v == nil then
    return {}
  elseif type(v) == "function" then
    return { v }
  elseif type(v) == "table" then
    for i, f in ipairs(v) do
      if type(f) ~= "function" then
        fail(4, "field '%s': %s[%d] must be a function", name, what, i)
      end
    end
    return v
  end
  fail(4, "field '%s': %s must be a function or a list of functions", name, what)
end

local COMMON = {
  [1] = true,
  title = true,
  description = true,
  default = true,
  optional = true,
  validate = true,
  schema = true,
}

local function make(kind, spec, allowed)
  if type(spec) ~= "table" then
    fail(3, "forms.%s expects a table like {\"field_name\", ...}", kind)
  end
  local name = spec[1]
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    fail(3, "forms.%s: the first element must be the field name (letters, digits, _), got %s", kind, tostring(name))
  end
  for k in pairs(spec) do
    if not COMMON[k] and not (allowed and allowed[k]) then
      fail(3, "forms.%s '%s': unknown option '%s'", kind, name, tostring(k))
    end
  end
  local f = { kind = kind, name = name }
  for k, v in pairs(spec) do
    if k ~= 1 then
      f[k] = v
    end
  end
  f.validate = list_of_functions(spec.validate, "validate", name)
  f.has_default = spec.default ~= nil or spec.optional == true
  if spec.schema ~= nil and type(spec.schema) ~= "table" then
    fail(3, "forms.%s '%s': schema must be a table", kind, name)
  end
  return setmetatable(f, M.field_mt)
end

local function set(...)
  local s = {}
  for _, k in ipairs({ ... }) do
    s[k] = true
  end
  return s
end

local STRING_OPTS = set("min_length", "max_length", "pattern", "match", "message", "format")
local NUMBER_OPTS = set("min", "max", "gt", "lt")
local CHOICE_OPTS = set("options", "enum_name", "strict", "format")
local LIST_OPTS = set("min_items", "max_items", "unique", "of")

function M.string(spec)
  return make("string", spec, STRING_OPTS)
end

function M.long_text(spec)
  return make("long_text", spec, STRING_OPTS)
end

function M.integer(spec)
  return make("integer", spec, NUMBER_OPTS)
end

function M.number(spec)
  return make("number", spec, NUMBER_OPTS)
end

function M.boolean(spec)
  return make("boolean", spec)
end

function M.uuid(spec)
  return make("uuid", spec)
end

-- Unix timestamp (integer seconds) with the UI's date picker.
function M.timestamp(spec)
  return make("timestamp", spec, set("min", "max", "show_time_select", "locale", "date_format", "time_format"))
end

function M.choice(spec)
  local f = make("choice", spec, CHOICE_OPTS)
  if f.options == nil then
    fail(2, "forms.choice '%s': options are required (a list or a function)", f.name)
  end
  return f
end

function M.multi_choice(spec)
  local f = make("multi_choice", spec, set("options", "enum_name", "strict", "min_items", "max_items", "unique"))
  if f.options == nil then
    fail(2, "forms.multi_choice '%s': options are required (a list or a function)", f.name)
  end
  return f
end

-- A list of scalar items: `of` is "string" (default), "integer", "number",
-- "boolean" or "uuid".
function M.list(spec)
  local f = make("list", spec, LIST_OPTS)
  f.of = f.of or "string"
  if not set("string", "integer", "number", "boolean", "uuid")[f.of] then
    fail(2, "forms.list '%s': `of` must be string, integer, number, boolean or uuid", f.name)
  end
  return f
end

-- Subscription picker: a choice whose options come from ctx.subscriptions.
function M.subscription(spec)
  return make("subscription", spec, set("query", "enum_name", "strict", "options"))
end

-- Product picker: a choice (format "productId") whose options come from ctx.products.
function M.product(spec)
  return make("product", spec, set("query", "enum_name", "strict", "options"))
end

-- A value shown disabled; submitting another value is an error.
function M.read_only(spec)
  local f = make("read_only", spec, set("value", "format"))
  if f.value == nil then
    fail(2, "forms.read_only '%s': value is required", f.name)
  end
  f.has_default = true
  return f
end

function M.label(spec)
  return make("label", spec)
end

function M.divider(spec)
  return make("divider", spec)
end

-- data = {headers = {...}, labels = {...}, columns = {{...}, ...}}
function M.summary(spec)
  local f = make("summary", spec, set("data"))
  if type(f.data) ~= "table" and type(f.data) ~= "function" then
    fail(2, "forms.summary '%s': data {headers, labels, columns} is required", f.name)
  end
  return f
end

function M.callout(spec)
  return make("callout", spec, set("header", "message", "icon_type", "message_type"))
end

function M.display_subscription(spec)
  local f = make("display_subscription", spec, set("value"))
  if f.value == nil then
    fail(2, "forms.display_subscription '%s': value (a subscription id) is required", f.name)
  end
  return f
end

local PAGE_OPTS = set("title", "name", "validate", "has_next", "meta")

-- A form page: the fields in order in the array part, options by name.
function M.page(spec)
  if type(spec) ~= "table" then
    fail(2, "forms.page expects a table")
  end
  local p = { fields = {}, by_name = {} }
  for k, v in pairs(spec) do
    if math.type(k) == "integer" then
      if getmetatable(v) ~= M.field_mt then
        fail(2, "forms.page: element %d is not a field (use forms.string{...} and friends)", k)
      end
    elseif not PAGE_OPTS[k] then
      fail(2, "forms.page: unknown option '%s'", tostring(k))
    end
  end
  for i = 1, #spec do
    local f = spec[i]
    if p.by_name[f.name] then
      fail(2, "forms.page: field '%s' appears twice", f.name)
    end
    p.fields[i] = f
    p.by_name[f.name] = f
  end
  p.title = spec.title or "unknown"
  p.name = spec.name or "FormPage"
  p.validate = list_of_functions(spec.validate, "validate", "(page)")
  if spec.meta ~= nil then
    p.meta = spec.meta
  elseif spec.has_next ~= nil then
    p.meta = { hasNext = spec.has_next and true or false }
  else
    p.meta = { hasNext = true } -- orchestrator-core's FormPage
  end
  return setmetatable(p, M.page_mt)
end

function M.is_page(v)
  return getmetatable(v) == M.page_mt
end

-- Options given as {"a", "b"}, {{"a", "Label A"}}, {{value = "a", label = "Label A"}}.
local function normalise_options(name, raw)
  if type(raw) ~= "table" then
    fail(4, "field '%s': options must be a list, got %s", name, type(raw))
  end
  local out = {}
  for i, o in ipairs(raw) do
    local value, label
    if type(o) == "table" then
      value = o.value
      label = o.label
      if value == nil then
        value, label = o[1], o[2]
      end
    else
      value = o
    end
    if type(value) ~= "string" and type(value) ~= "number" then
      fail(4, "field '%s': option %d has no string value", name, i)
    end
    value = tostring(value)
    out[i] = { value = value, label = label ~= nil and tostring(label) or value }
  end
  return out
end

local function call_or_value(v, state, ctx)
  if type(v) == "function" then
    return v(state, ctx)
  end
  return v
end

local function need_ctx(ctx, key, field)
  local fn = ctx[key]
  if type(fn) ~= "function" then
    fail(4, "field '%s' needs ctx.%s (a function) to list its options", field.name, key)
  end
  return fn
end

-- Evaluate a page's option lists and computed defaults for one replay.
function M.resolve(page, state, ctx)
  local r = { page = page, fields = {} }
  for i, f in ipairs(page.fields) do
    -- resolved values under their own names: a nil result must not fall back to f's function
    local rf = setmetatable({ dflt = call_or_value(f.default, state, ctx) }, { __index = f })
    if f.kind == "summary" then
      rf.sdata = call_or_value(f.data, state, ctx) or {}
    end
    if M.CHOICE[f.kind] or f.kind == "multi_choice" then
      local raw
      if f.options ~= nil then
        raw = call_or_value(f.options, state, ctx)
      elseif f.kind == "product" then
        raw = {}
        for j, p in ipairs(need_ctx(ctx, "products", f)(f.query or {}, state) or {}) do
          raw[j] = { value = p.product_id, label = p.name }
        end
      elseif f.kind == "subscription" then
        raw = {}
        for j, s in ipairs(need_ctx(ctx, "subscriptions", f)(f.query or {}, state) or {}) do
          raw[j] = { value = s.subscription_id, label = s.description or s.subscription_id }
        end
      end
      rf.options = normalise_options(f.name, raw or {})
      rf.option_set = {}
      for _, o in ipairs(rf.options) do
        rf.option_set[o.value] = true
      end
    end
    r.fields[i] = rf
  end
  return r
end

M.null = null
return M
