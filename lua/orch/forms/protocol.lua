-- The pydantic-forms protocol (orchestrator-core's post_form): replay a form
-- coroutine with the submitted pages, validate each, and answer with the next
-- page (510), the validation errors (400), an overflow (500) or the result.

local json = require("orch.json")
local fields = require("orch.forms.fields")
local schema = require("orch.forms.schema")
local check = require("orch.forms.check")

local M = {}

local null = json.null
local O = json.ordered

-- Per running form coroutine: the values of the pages validated so far, so
-- that a form (or a nested one, see M.run) returning nothing returns them.
local runs = setmetatable({}, { __mode = "k" })

local function deep_copy(v)
  if type(v) ~= "table" or v == null then
    return v
  end
  local c = {}
  for k, x in pairs(v) do
    c[k] = deep_copy(x)
  end
  local mt = getmetatable(v)
  if mt == json.array_mt then
    setmetatable(c, mt)
  end
  return c
end
M.deep_copy = deep_copy

local function merge_pages(log, from)
  local out = {}
  for i = from, #log do
    for k, v in pairs(log[i]) do
      out[k] = v
    end
  end
  return out
end

-- Python's repr, for the `detail` of a 510 (pydantic-forms sends str(form)).
local function pyrepr(v)
  local t = type(v)
  if v == nil or v == null then
    return "None"
  elseif t == "boolean" then
    return v and "True" or "False"
  elseif t == "number" then
    return tostring(v)
  elseif t == "string" then
    return check.pyrepr_str(v)
  elseif t ~= "table" then
    return "None"
  end
  local parts = {}
  if json.is_array(v) then
    for i, x in ipairs(v) do
      parts[i] = pyrepr(x)
    end
    return "[" .. table.concat(parts, ", ") .. "]"
  end
  local mt = getmetatable(v)
  local keys, seen = {}, {}
  for _, k in ipairs(mt and mt.__jsonorder or {}) do
    if v[k] ~= nil then
      keys[#keys + 1], seen[k] = k, true
    end
  end
  local rest = {}
  for k in pairs(v) do
    if not seen[k] then
      rest[#rest + 1] = k
    end
  end
  table.sort(rest, function(a, b)
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(rest) do
    keys[#keys + 1] = k
  end
  for i, k in ipairs(keys) do
    parts[i] = pyrepr(tostring(k)) .. ": " .. pyrepr(v[k])
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.pyrepr = pyrepr

local BODY_KEYS = { "type", "detail", "title", "status", "form", "meta", "validation_errors" }

-- 510 body of pydantic-forms' exception handler.
function M.not_complete_body(form_schema, meta)
  return O({
    type = "FormNotCompleteError",
    detail = pyrepr(form_schema),
    title = "Form not complete",
    status = 510,
    form = form_schema,
    meta = meta == nil and null or schema.copy_json(meta),
  }, BODY_KEYS)
end

-- Validation errors listed in one answer: a page with 50,000 unknown keys would
-- otherwise be answered with megabytes (docs/input-limits.md).
M.MAX_ERRORS = 100
-- Largest input (values and keys, nested ones included) an error repeats.
M.MAX_INPUT_VALUES = 256

-- Whether v holds more than `left` values (a bounded walk).
local function too_big(v, left)
  local function walk(t)
    for _, x in pairs(t) do
      left = left - 1
      if left < 0 or (type(x) == "table" and walk(x)) then
        return true
      end
    end
    return false
  end
  return walk(v)
end

-- 400 body.
function M.validation_body(page_name, errors)
  local more = ""
  if #errors > M.MAX_ERRORS then
    more = ("\n(the first %d of %d errors)"):format(M.MAX_ERRORS, #errors)
    errors = table.move(errors, 1, M.MAX_ERRORS, 1, {})
  end
  -- An error about the whole page (a missing field) repeats the page as its input: a
  -- large page is summarised instead, so that the answer stays smaller than the request.
  for i, e in ipairs(errors) do
    if type(e) == "table" and type(e.input) == "table" and too_big(e.input, M.MAX_INPUT_VALUES) then
      local copy = setmetatable({}, getmetatable(e))
      for k, v in pairs(e) do
        copy[k] = v
      end
      copy.input = ("(more than %d values, not repeated)"):format(M.MAX_INPUT_VALUES)
      errors[i] = copy
    end
  end
  return O({
    type = "FormValidationError",
    detail = check.detail(page_name, errors) .. more,
    title = "Form not valid",
    status = 400,
    validation_errors = json.array(errors),
  }, BODY_KEYS)
end

-- 400 body of any other form error (overflow: more pages than the form asks is the
-- client's mistake, not the server's).
function M.error_body(etype, detail)
  return O({ type = etype, detail = detail, title = "Bad Request", status = 400 }, BODY_KEYS)
end

local function as_form_function(form)
  if fields.is_page(form) then
    return function()
      coroutine.yield(form)
    end
  elseif type(form) ~= "function" then
    error("a form is a function (state, ctx) or a forms.page{...}, got " .. type(form), 3)
  end
  return form
end

-- Run a form inside the running one (a wrapper's "yield from"): its pages are
-- asked in turn and its result returned; a form that returns nothing returns
-- the merged values of the pages it asked.
function M.run(form, state, ctx)
  local rec = runs[coroutine.running()]
  if not rec then
    error("forms.run must be called from inside a form being posted", 2)
  end
  local from = #rec.log + 1
  local result = as_form_function(form)(state, ctx)
  if fields.is_page(result) then -- a simple form returns its only page
    coroutine.yield(result)
    result = nil
  end
  if result == nil then
    return merge_pages(rec.log, from)
  end
  return result
end

local function page_of(v, index)
  if not fields.is_page(v) then
    error(("form page %d: a form must yield forms.page{...}, got %s"):format(index, type(v)), 0)
  end
  return v
end

local function resume(co, ...)
  local ok, v = coroutine.resume(co, ...)
  if not ok then
    error(v, 0)
  end
  return v
end

-- Feed `user_inputs` (a list of page objects) to `form` (see docs/forms.md).
-- Returns one of
--   {complete = true, result = <state additions>, pages = n}
--   {complete = false, status = 510, body = <FormNotCompleteError>, form = <schema>, meta = ...}
--   {complete = false, status = 400, body = <FormValidationError>, errors = {...}, page = i}
--   {complete = false, status = 400, body = <FormOverflowError>}
-- Errors other than validation errors (bugs in the form) are raised.
function M.post_form(form, state, user_inputs, ctx)
  if form == nil then
    return { complete = true, result = {}, pages = 0 }
  end
  local fn = as_form_function(form)
  local inputs = user_inputs or {}
  if type(inputs) ~= "table" or (next(inputs) ~= nil and not json.is_array(inputs)) then
    error("user_inputs must be a list of page objects", 2)
  end
  ctx = ctx or {}
  local working = deep_copy(state or {})
  local rec = { log = {} }
  local co = coroutine.create(function(s, c)
    rec.co = coroutine.running()
    runs[rec.co] = rec
    local result = fn(s, c)
    if fields.is_page(result) then -- a simple form: return its page instead of yielding it
      coroutine.yield(result)
      result = nil
    end
    return { result = result }
  end)
  local index = 1
  local ok, yielded = pcall(resume, co, working, ctx)
  while true do
    if not ok then
      if fields.is_invalid(yielded) and rec.page then
        -- a form body that raised forms.invalid after a page: a 400 for that page
        local e = check.error("value_error", yielded.loc or { "__root__" }, yielded.msg, null, { error = yielded.msg })
        return { complete = false, status = 400, body = M.validation_body(rec.page.name, { e }), errors = { e } }
      end
      error(yielded, 0)
    end
    if coroutine.status(co) == "dead" then
      local remaining = #inputs - index + 1
      if remaining > 0 then
        local detail = ("Did not process all user_inputs (%d remaining)"):format(remaining)
        return { complete = false, status = 400, body = M.error_body("FormOverflowError", detail) }
      end
      local result = yielded.result
      if result == nil then
        result = merge_pages(rec.log, 1)
      elseif type(result) ~= "table" then
        error("a form must return a table of state additions (or nothing), got " .. type(result), 0)
      end
      return { complete = true, result = result, pages = #rec.log }
    end
    local page = page_of(yielded, index)
    rec.page = page
    local resolved = fields.resolve(page, working, ctx)
    if index > #inputs then
      local form_schema = schema.page_schema(resolved)
      return {
        complete = false,
        status = 510,
        body = M.not_complete_body(form_schema, page.meta),
        form = form_schema,
        meta = page.meta,
      }
    end
    local values, errors = check.validate_page(resolved, inputs[index], working, ctx)
    if not values then
      return {
        complete = false,
        status = 400,
        body = M.validation_body(page.name, errors),
        errors = errors,
        page = index,
      }
    end
    for k, v in pairs(values) do
      working[k] = deep_copy(v)
    end
    rec.log[#rec.log + 1] = values
    index = index + 1
    ok, yielded = pcall(resume, co, deep_copy(values))
  end
end

-- The JSON Schema of the next page for these inputs, or nil when the form is
-- complete (orchestrator-core's generate_form, used for a suspended step's
-- `form`). A validation error or overflow is returned as nil, response.
function M.generate_form(form, state, user_inputs, ctx)
  local r = M.post_form(form, state, user_inputs or {}, ctx)
  if r.complete then
    return nil
  elseif r.status == 510 then
    return r.form
  end
  return nil, r
end

return M
