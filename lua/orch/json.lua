-- JSON for scripts: lua-cjson, wrapped so that what a script reads is what it
-- writes back.
--  * JSON null is `json.null` (cjson.null), never nil, so keys survive.
--  * Arrays decode as tables marked with `json.array_mt`; an empty array stays
--    an array when encoded again. Build one with `json.array{...}`; a plain
--    empty table `{}` encodes as an object.
--  * Whole numbers decode as Lua integers (cjson alone gives floats: 5.0).
--  * Integers beyond 14 digits are written exactly (cjson alone rounds them).
-- Limits: floats keep 14 significant digits; integers in input beyond 2^53
-- lose precision (cjson parses numbers as doubles).

local cjson = require("cjson")
local C = orch._json

local json = {}

local codec = cjson.new()
codec.decode_max_depth(200)
codec.encode_max_depth(200)
codec.decode_invalid_numbers(false)
codec.encode_invalid_numbers(false)
codec.encode_sparse_array(true)

json.null = cjson.null
json.array_mt = { __name = "orch.json.array" }

local array_mt = json.array_mt
local null = cjson.null
local EMPTY_ARRAY = "\0[]"
local BIG_INT = "\0#"
local tointeger, mtype = math.tointeger, math.type

function json.array(t)
  return setmetatable(t or {}, array_mt)
end

function json.is_array(t)
  return type(t) == "table" and (getmetatable(t) == array_mt or rawget(t, 1) ~= nil)
end

-- Turn cjson's output into what the comment above promises, in place.
local function normalise(v)
  if type(v) ~= "table" then
    return v
  end
  for k, x in pairs(v) do
    local tx = type(x)
    if tx == "table" then
      normalise(x)
    elseif tx == "number" and mtype(x) == "float" then
      local i = tointeger(x)
      if i and x > -2 ^ 53 and x < 2 ^ 53 then
        v[k] = i
      end
    elseif x == EMPTY_ARRAY then
      v[k] = setmetatable({}, array_mt)
    end
  end
  if rawget(v, 1) ~= nil then
    setmetatable(v, array_mt)
  end
  return v
end

-- Decode or return nil and a message.
function json.try_decode(text)
  if type(text) ~= "string" then
    return nil, "expected a JSON string, got " .. type(text)
  end
  local marked = C.mark_empty_arrays(text)
  local ok, v = pcall(codec.decode, marked)
  if not ok then
    return nil, (tostring(v):gsub("^.-:%d+: ", ""))
  end
  if v == EMPTY_ARRAY then
    return setmetatable({}, array_mt)
  end
  if mtype(v) == "float" and tointeger(v) then
    return tointeger(v)
  end
  return normalise(v)
end

-- Decode or raise.
function json.decode(text)
  local v, err = json.try_decode(text)
  if err then
    error("invalid JSON: " .. err, 2)
  end
  return v
end

-- Copy-on-write walk that replaces what cjson would get wrong with sentinels.
local function prepare(v, depth)
  local tv = type(v)
  if tv == "number" then
    if mtype(v) == "integer" and (v >= 1e14 or v <= -1e14) then
      return BIG_INT .. tostring(v)
    end
    return v
  elseif tv ~= "table" or depth > 200 then
    return v
  end
  if next(v) == nil then
    return getmetatable(v) == array_mt and EMPTY_ARRAY or v
  end
  local copy
  for k, x in pairs(v) do
    local y = prepare(x, depth + 1)
    if y ~= x then
      if not copy then
        copy = {}
        for k2, x2 in pairs(v) do
          copy[k2] = x2
        end
      end
      copy[k] = y
    end
  end
  return copy or v
end

local function unescape(out)
  if out:find("\\u0000", 1, true) then
    out = out:gsub('"\\u0000%[%]"', "[]"):gsub('"\\u0000#(%-?%d+)"', "%1")
  end
  if out:find("\\/", 1, true) then
    out = out:gsub("\\/", "/")
  end
  return out
end

-- Encode or return nil and a message.
function json.try_encode(v)
  local ok, out = pcall(codec.encode, prepare(v, 0))
  if not ok then
    return nil, (tostring(out):gsub("^.-:%d+: ", ""))
  end
  return unescape(out)
end

-- Encode or raise.
function json.encode(v)
  local out, err = json.try_encode(v)
  if not out then
    error("cannot encode as JSON: " .. err, 2)
  end
  return out
end

json._null = null
return json
