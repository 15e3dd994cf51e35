-- Validation of one submitted page: type checks with the cast rules of
-- docs/forms.md, constraints, field validators (in field order, seeing the
-- values validated so far) and page validators. Errors are pydantic's error
-- entries {type, loc, msg, input, ctx?, url?} as pydantic-forms sends them.

local json = require("orch.json")
local fields = require("orch.forms.fields")
local schema = require("orch.forms.schema")

local M = {}

local null = json.null
local O = json.ordered
local A = json.array
local mtype = math.type

M.PYDANTIC_VERSION = "2.13" -- orchestrator-core's pin; only used in the error `url`

-- Error kinds that pydantic defines (and links to); custom ones have no url.
local PYDANTIC_TYPES = {}
for t in
  ([[missing extra_forbidden string_type int_type int_parsing int_from_float float_type float_parsing
  bool_type bool_parsing enum list_type too_short too_long string_too_short string_too_long
  string_pattern_mismatch greater_than greater_than_equal less_than less_than_equal value_error
  literal_error uuid_type uuid_parsing model_type]]):gmatch("%S+")
do
  PYDANTIC_TYPES[t] = true
end

local ERROR_KEYS = { "type", "loc", "msg", "input", "ctx", "url" }

-- `ctx_order`: the order pydantic gives the ctx keys (they show in the detail).
function M.error(etype, loc, msg, input, ctx, ctx_order)
  local e = {
    type = etype,
    loc = A(loc),
    msg = msg,
    input = schema.copy_json(input == nil and null or input),
    ctx = ctx and O(ctx, ctx_order) or nil,
  }
  if PYDANTIC_TYPES[etype] then
    e.url = "https://errors.pydantic.dev/" .. M.PYDANTIC_VERSION .. "/v/" .. etype
  end
  return O(e, ERROR_KEYS)
end

-- Python's repr of a string, as pydantic quotes values in messages.
function M.pyrepr_str(s)
  if s:find("'", 1, true) and not s:find('"', 1, true) then
    return '"' .. s .. '"'
  end
  return "'" .. s:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'"
end

local function literal(v)
  if v == null or v == nil then
    return "None"
  elseif type(v) == "boolean" then
    return v and "True" or "False"
  elseif type(v) == "string" then
    return M.pyrepr_str(v)
  end
  return tostring(v)
end

local function expected_list(values)
  local q = {}
  for i, v in ipairs(values) do
    q[i] = literal(v)
  end
  if #q <= 1 then
    return q[1] or ""
  end
  return table.concat(q, ", ", 1, #q - 1) .. " or " .. q[#q]
end

local function plural(n, word)
  return n == 1 and word or word .. "s"
end

local function trim(s)
  return s:match("^%s*(.-)%s*$")
end

-- Cast one scalar; returns value or nil, type, msg.
local casts = {}

function casts.string(v)
  if type(v) ~= "string" then
    return nil, "string_type", "Input should be a valid string"
  end
  return v
end

function casts.integer(v)
  if mtype(v) == "integer" then
    return v
  elseif mtype(v) == "float" then
    if v ~= v or v == math.huge or v == -math.huge then
      return nil, "int_parsing", "Input should be a finite number"
    end
    local i = math.tointeger(v)
    if i then
      return i
    end
    return nil, "int_from_float", "Input should be a valid integer, got a number with a fractional part"
  elseif type(v) == "string" then
    local s = trim(v):gsub("_", "")
    local i = s:match("^[+-]?%d+$") and math.tointeger(tonumber(s))
    if i then
      return i
    end
    return nil, "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
  end
  return nil, "int_type", "Input should be a valid integer"
end

function casts.number(v)
  if type(v) == "number" then
    return v
  elseif type(v) == "string" then
    local s = trim(v)
    local n = s:match("^[+-]?[%d.]+[eE]?[+-]?%d*$") and tonumber(s)
    if n then
      return n
    end
    return nil, "float_parsing", "Input should be a valid number, unable to parse string as a number"
  end
  return nil, "float_type", "Input should be a valid number"
end

local TRUE = { ["1"] = true, on = true, t = true, ["true"] = true, y = true, yes = true }
local FALSE = { ["0"] = true, off = true, f = true, ["false"] = true, n = true, no = true }

function casts.boolean(v)
  if type(v) == "boolean" then
    return v
  elseif v == 0 or v == 1 then
    return v == 1
  elseif type(v) == "string" then
    local s = v:lower()
    if TRUE[s] then
      return true
    elseif FALSE[s] then
      return false
    end
    return nil, "bool_parsing", "Input should be a valid boolean, unable to interpret input"
  end
  return nil, "bool_type", "Input should be a valid boolean"
end

function casts.uuid(v)
  if type(v) ~= "string" then
    return nil, "uuid_type", "UUID input should be a string, bytes or UUID object"
  end
  local hex = v:lower():gsub("^urn:uuid:", ""):gsub("^{(.*)}$", "%1")
  local plain = hex:gsub("-", "")
  local dashed = hex:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$")
  if #plain ~= 32 or not plain:match("^%x+$") or (hex:find("-", 1, true) and not dashed) then
    return nil, "uuid_parsing", "Input should be a valid UUID, unable to parse string as a UUID"
  end
  return plain:sub(1, 8) .. "-" .. plain:sub(9, 12) .. "-" .. plain:sub(13, 16) .. "-" .. plain:sub(17, 20) .. "-" ..
    plain:sub(21)
end

casts.long_text = casts.string
casts.timestamp = casts.integer

-- Type check and constraints of a single (non-list) value; appends errors.
local function check_scalar(rf, kind, v, loc, errs)
  if fields.CHOICE[kind] or kind == "multi_choice" then
    if type(v) ~= "string" or (rf.strict ~= false and not rf.option_set[v]) then
      local values = {}
      for i, o in ipairs(rf.options) do
        values[i] = o.value
      end
      local expected = expected_list(values)
      if rf.strict == false then
        errs[#errs + 1] = M.error("string_type", loc, "Input should be a valid string", v)
      else
        errs[#errs + 1] = M.error("enum", loc, "Input should be " .. expected, v, { expected = expected })
      end
      return nil
    end
    return v
  end
  local out, etype, msg = casts[kind](v)
  if out == nil then
    errs[#errs + 1] = M.error(etype, loc, msg, v)
    return nil
  end
  local n = #errs
  if kind == "integer" or kind == "number" or kind == "timestamp" then
    if rf.gt and out <= rf.gt then
      errs[#errs + 1] = M.error("greater_than", loc, "Input should be greater than " .. rf.gt, v, { gt = rf.gt })
    end
    if rf.min and out < rf.min then
      errs[#errs + 1] =
        M.error("greater_than_equal", loc, "Input should be greater than or equal to " .. rf.min, v, { ge = rf.min })
    end
    if rf.lt and out >= rf.lt then
      errs[#errs + 1] = M.error("less_than", loc, "Input should be less than " .. rf.lt, v, { lt = rf.lt })
    end
    if rf.max and out > rf.max then
      errs[#errs + 1] =
        M.error("less_than_equal", loc, "Input should be less than or equal to " .. rf.max, v, { le = rf.max })
    end
  elseif kind == "string" or kind == "long_text" then
    local len = utf8.len(out) or #out
    if rf.min_length and len < rf.min_length then
      errs[#errs + 1] = M.error(
        "string_too_short",
        loc,
        ("String should have at least %d %s"):format(rf.min_length, plural(rf.min_length, "character")),
        v,
        { min_length = rf.min_length }
      )
    end
    if rf.max_length and len > rf.max_length then
      errs[#errs + 1] = M.error(
        "string_too_long",
        loc,
        ("String should have at most %d %s"):format(rf.max_length, plural(rf.max_length, "character")),
        v,
        { max_length = rf.max_length }
      )
    end
    if rf.match and not out:find(rf.match) then
      -- The field's own message, else pydantic's for the regular expression the UI got,
      -- else the Lua pattern described in words (a Lua pattern never reaches the user).
      local text, info
      if rf.message then
        text, info = rf.message, { expected = rf.message }
      elseif rf.pattern then
        text, info = "String should match pattern " .. M.pyrepr_str(rf.pattern), { pattern = rf.pattern }
      else
        local words = M.describe_pattern(rf.match)
        text = words and ("String should " .. words) or "String does not have the expected format"
        info = { expected = words or "the expected format" }
      end
      errs[#errs + 1] = M.error("string_pattern_mismatch", loc, text, v, info)
    end
  end
  if #errs > n then
    return nil
  end
  return out
end

local function deep_equal(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    return a == b
  end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

local function check_list(rf, v, loc, errs)
  if type(v) ~= "table" or v == null or (next(v) ~= nil and not json.is_array(v)) then
    errs[#errs + 1] = M.error("list_type", loc, "Input should be a valid list", v)
    return nil
  end
  local item_kind = rf.kind == "multi_choice" and "multi_choice" or rf.of
  local out, n = A(), #errs
  for i, x in ipairs(v) do
    local item_loc = { table.unpack(loc) }
    item_loc[#item_loc + 1] = i - 1
    out[i] = check_scalar(rf, item_kind, x, item_loc, errs)
  end
  if #errs > n then
    return nil
  end
  local len = #out
  if rf.min_items and len < rf.min_items then
    errs[#errs + 1] = M.error(
      "too_short",
      loc,
      ("List should have at least %d %s after validation, not %d"):format(
        rf.min_items,
        plural(rf.min_items, "item"),
        len
      ),
      v,
      { field_type = "List", min_length = rf.min_items, actual_length = len },
      { "field_type", "min_length", "actual_length" }
    )
  elseif rf.max_items and len > rf.max_items then
    errs[#errs + 1] = M.error(
      "too_long",
      loc,
      ("List should have at most %d %s after validation, not %d"):format(
        rf.max_items,
        plural(rf.max_items, "item"),
        len
      ),
      v,
      { field_type = "List", max_length = rf.max_items, actual_length = len },
      { "field_type", "max_length", "actual_length" }
    )
  elseif rf.unique then
    local seen = {}
    for _, x in ipairs(out) do
      if seen[x] then
        errs[#errs + 1] = M.error("unique_list", loc, "List must be unique", v)
        break
      end
      seen[x] = true
    end
  end
  if #errs > n then
    return nil
  end
  return out
end

local function check_read_only(rf, v, loc, errs)
  local want = rf.value
  if type(want) == "table" and want ~= null then
    if type(v) ~= "table" or not deep_equal(v, want) then
      local msg = "Cannot change values for a readonly list"
      errs[#errs + 1] = M.error("value_error", loc, msg, v, { error = msg })
      return nil
    end
    return schema.copy_json(want)
  end
  if v ~= want and not (type(want) == "string" and casts.uuid(want) and casts.uuid(v) == casts.uuid(want)) then
    local expected = literal(want)
    errs[#errs + 1] = M.error("literal_error", loc, "Input should be " .. expected, v, { expected = expected })
    return nil
  end
  return want
end

-- Run a list of validators; returns value or nil after appending an error.
-- `base_loc` is where errors of a validator land unless it names a place.
local function run_validators(list, value, args, base_loc, absolute, input, errs)
  for _, fn in ipairs(list) do
    local ok, out, msg = pcall(fn, value, table.unpack(args, 1, args.n))
    if not ok then
      if not fields.is_invalid(out) then
        error(out, 0)
      end
      local loc = base_loc
      if out.loc then
        if absolute then
          loc = out.loc
        else
          loc = { table.unpack(base_loc) }
          for _, p in ipairs(out.loc) do
            loc[#loc + 1] = p
          end
        end
      end
      errs[#errs + 1] = M.error("value_error", loc, out.msg, input, { error = out.msg })
      return nil
    elseif msg ~= nil then
      msg = tostring(msg)
      errs[#errs + 1] = M.error("value_error", base_loc, msg, input, { error = msg })
      return nil
    elseif out ~= nil then
      value = out
    end
  end
  return value, true
end

local function is_object(v)
  return type(v) == "table" and v ~= null and not json.is_array(v)
end

-- Validate the input of one page. Returns values, or nil and a list of errors.
function M.validate_page(resolved, input, state, ctx)
  local errs = {}
  if not is_object(input) then
    return nil,
      { M.error("model_type", { "__root__" }, "Input should be a valid dictionary or instance of a form page", input) }
  end
  local values = {}
  for _, rf in ipairs(resolved.fields) do
    local name, loc = rf.name, { rf.name }
    local raw = input[name]
    local v, checked
    if fields.DISPLAY[rf.kind] then
      -- display only: whatever is submitted is replaced by the default
      if rf.kind == "display_subscription" then
        values[name] = rf.value
      else
        values[name] = rf.dflt == nil and null or rf.dflt
      end
      goto continue
    end
    if raw == nil then
      if rf.kind == "read_only" then
        raw = rf.value
      elseif rf.dflt ~= nil then
        raw = rf.dflt -- defaults are validated too, as pydantic-forms does
      elseif rf.optional then
        raw = null
      else
        errs[#errs + 1] = M.error("missing", loc, "Field required", input)
        goto continue
      end
    end
    if raw == null and rf.optional then
      values[name] = null
      goto continue
    end
    local n = #errs
    if rf.kind == "read_only" then
      v = check_read_only(rf, raw, loc, errs)
    elseif fields.LIST[rf.kind] then
      v = check_list(rf, raw, loc, errs)
    else
      v = check_scalar(rf, rf.kind, raw, loc, errs)
    end
    if #errs > n then
      goto continue
    end
    v, checked = run_validators(rf.validate, v, table.pack(values, ctx, state), loc, false, raw, errs)
    if checked then
      values[name] = v
    end
    ::continue::
  end
  -- extra inputs come after the field errors, sorted (decoded objects have no order)
  local extra = {}
  for k in pairs(input) do
    if resolved.page.by_name[k] == nil then
      extra[#extra + 1] = k
    end
  end
  table.sort(extra, function(a, b)
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(extra) do
    errs[#errs + 1] = M.error("extra_forbidden", { k }, "Extra inputs are not permitted", input[k])
  end
  if #errs > 0 then
    return nil, errs
  end
  local args = table.pack(ctx, state)
  local out, ok = run_validators(resolved.page.validate, values, args, { "__root__" }, true, values, errs)
  if not ok then
    return nil, errs
  end
  if type(out) ~= "table" then
    error("a page validator must return nothing, the values table, or nil and a message", 0)
  end
  return out
end

-- pydantic-forms' text of a FormValidationError (the `detail` of the 400).
function M.detail(page_name, errs)
  local lines = { ("%d validation error%s for %s"):format(#errs, #errs == 1 and "" or "s", page_name) }
  for _, e in ipairs(errs) do
    local loc = {}
    for i, p in ipairs(e.loc) do
      loc[i] = tostring(p)
    end
    local t = "type=" .. e.type
    if e.ctx then
      local keys, seen = {}, {}
      for _, k in ipairs((getmetatable(e.ctx) or {}).__jsonorder or {}) do
        keys[#keys + 1], seen[k] = k, true
      end
      local rest = {}
      for k in pairs(e.ctx) do
        if not seen[k] then
          rest[#rest + 1] = k
        end
      end
      table.sort(rest)
      table.move(rest, 1, #rest, #keys + 1, keys)
      for _, k in ipairs(keys) do
        t = t .. "; " .. k .. "=" .. tostring(e.ctx[k])
      end
    end
    lines[#lines + 1] = table.concat(loc, " -> ")
    lines[#lines + 1] = "  " .. e.msg .. " (" .. t .. ")"
  end
  return table.concat(lines, "\n")
end

-- ---- Lua patterns in words ----

local CLASS_WORDS = {
  a = "letters", d = "digits (0-9)", l = "lower-case letters (a-z)", u = "upper-case letters (A-Z)",
  w = "letters or digits", s = "spaces", x = "hexadecimal digits", p = "punctuation",
}
local ONE_WORDS = {
  a = "a letter", d = "a digit (0-9)", l = "a lower-case letter (a-z)", u = "an upper-case letter (A-Z)",
  w = "a letter or digit", s = "a space", x = "a hexadecimal digit", p = "a punctuation character",
}

local function range_words(a, b, many)
  if a == "a" and b == "z" then
    return many and "lower-case letters (a-z)" or "a lower-case letter (a-z)"
  elseif a == "A" and b == "Z" then
    return many and "upper-case letters (A-Z)" or "an upper-case letter (A-Z)"
  elseif a == "0" and b == "9" then
    return many and "digits (0-9)" or "a digit (0-9)"
  end
  return (many and "characters " or "a character ") .. a .. "-" .. b
end

-- One set [...] in words (nil when it uses what this does not describe).
local function set_words(body, many)
  local negate = body:sub(1, 1) == "^"
  if negate then
    body = body:sub(2)
  end
  local parts, i = {}, 1
  while i <= #body do
    local c = body:sub(i, i)
    if c == "%" then
      local e = body:sub(i + 1, i + 1)
      if e == "" then
        return nil
      end
      local w = (many and CLASS_WORDS or ONE_WORDS)[e]
      parts[#parts + 1] = w or ("'" .. e .. "'")
      i = i + 2
    elseif body:sub(i + 1, i + 1) == "-" and i + 2 <= #body then
      parts[#parts + 1] = range_words(c, body:sub(i + 2, i + 2), many)
      i = i + 3
    else
      parts[#parts + 1] = "'" .. c .. "'"
      i = i + 1
    end
  end
  if #parts == 0 then
    return nil
  end
  local text = #parts == 1 and parts[1]
    or table.concat(parts, ", ", 1, #parts - 1) .. " or " .. parts[#parts]
  if negate then
    return (many and "characters other than " or "a character other than ") .. text
  end
  return text
end

-- describe_pattern("^[a-z][a-z0-9%-]*$") -> "be a lower-case letter (a-z), then any number of
-- lower-case letters (a-z), digits (0-9) or '-'"; nil for what it cannot put in words
-- (captures, %b, %f, back references).
function M.describe_pattern(p)
  if type(p) ~= "string" or p == "" then
    return nil
  end
  local anchored_start, anchored_end = p:sub(1, 1) == "^", false
  if anchored_start then
    p = p:sub(2)
  end
  if p:sub(-1) == "$" and p:sub(-2, -2) ~= "%" then
    anchored_end = true
    p = p:sub(1, -2)
  end
  local items, i = {}, 1
  while i <= #p do
    local c = p:sub(i, i)
    local one, many, nexti
    if c == "(" or c == ")" then
      return nil
    elseif c == "%" then
      local e = p:sub(i + 1, i + 1)
      if e == "" or e == "b" or e == "f" or e:match("%d") then
        return nil
      end
      one, many = ONE_WORDS[e], CLASS_WORDS[e]
      if not one then
        one, many = "'" .. e .. "'", "'" .. e .. "'"
      end
      nexti = i + 2
    elseif c == "[" then
      local close = p:find("]", i + 2, true)
      if not close then
        return nil
      end
      local body = p:sub(i + 1, close - 1)
      one, many = set_words(body, false), set_words(body, true)
      if not one then
        return nil
      end
      nexti = close + 1
    elseif c == "." then
      one, many, nexti = "any character", "any characters", i + 1
    else
      one, many, nexti = "'" .. c .. "'", "'" .. c .. "'", i + 1
    end
    local q = p:sub(nexti, nexti)
    if q == "*" or q == "-" then
      items[#items + 1] = "any number of " .. many
      nexti = nexti + 1
    elseif q == "+" then
      items[#items + 1] = "one or more " .. many
      nexti = nexti + 1
    elseif q == "?" then
      items[#items + 1] = "optionally " .. one
      nexti = nexti + 1
    else
      items[#items + 1] = one
    end
    i = nexti
  end
  if #items == 0 then
    return nil
  end
  -- Runs of literal characters read better as one text: 'a', 'b' -> 'ab'.
  local merged = {}
  for _, it in ipairs(items) do
    local prev = merged[#merged]
    if prev and prev:match("^'[^']*'$") and it:match("^'[^']'$") then
      merged[#merged] = prev:sub(1, -2) .. it:sub(2)
    else
      merged[#merged + 1] = it
    end
  end
  local text = table.concat(merged, ", then ")
  if anchored_start and anchored_end then
    return "be " .. text
  elseif anchored_start then
    return "start with " .. text
  elseif anchored_end then
    return "end with " .. text
  end
  return "contain " .. text
end

return M
