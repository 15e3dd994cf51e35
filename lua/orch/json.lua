-- JSON for scripts: lua-cjson, wrapped so that what a script reads is what it
-- writes back.
--  * JSON null is `json.null` (cjson.null), never nil, so keys survive.
--  * Arrays decode as tables marked with `json.array_mt`; an empty array stays
--    an array when encoded again. Build one with `json.array{...}`; a plain
--    empty table `{}` encodes as an object.
--  * Whole numbers decode as Lua integers (cjson alone gives floats: 5.0).
--  * Integers beyond 14 digits are written exactly (cjson alone rounds them).
--  * json.ordered(t, keys) objects keep their key order when written (cjson
--    alone writes keys in hash order).
--  * Floats are written with the fewest digits that read back as the same
--    double (as Python does; cjson alone keeps 14 significant digits, which
--    cuts the microseconds off an epoch timestamp).
--  * Text with a NUL character (\u0000) is refused by decode: NUL cannot be
--    stored in PostgreSQL text or bound as a statement parameter.
-- Limits: integers in input beyond 2^53 lose precision (cjson parses numbers
-- as doubles).
--
-- Internally, what cjson cannot express travels through it as strings that start
-- with a NUL (an empty array, a number's exact text, an ordered object's finished
-- text). No data can pass for one: decode refuses input with NUL, and encode writes
-- every string that contains a NUL (value or key) itself, outside cjson's output.

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
local NUMBER = "\0#" -- a number written as the text that follows
local FRAGMENT = "\0@"
local tointeger, mtype = math.tointeger, math.type

function json.array(t)
  return setmetatable(t or {}, array_mt)
end

function json.is_array(t)
  return type(t) == "table" and (getmetatable(t) == array_mt or rawget(t, 1) ~= nil)
end

-- Mark t as an object whose keys are written in a fixed order: the keys listed
-- in `keys` first (those present), then the others sorted. Used where the order
-- is part of the contract (JSON Schema `properties` render in key order) and to
-- make output reproducible. The mark is per table and not kept by decode.
function json.ordered(t, keys)
  return setmetatable(t or {}, { __name = "orch.json.object", __jsonorder = keys or {} })
end

-- cjson's output is turned into what the comment above promises, in place, by C's
-- normalise (host/lapi_json.c).
local NOT_FINITE = "a number is out of range (JSON has no Infinity or NaN)"

-- Decode or return nil and a message.
function json.try_decode(text)
  if type(text) ~= "string" then
    return nil, "expected a JSON string, got " .. type(text)
  end
  local marked, _, has_nul = C.mark_empty_arrays(text)
  if has_nul then
    return nil, "text with a NUL character (\\u0000) is not accepted"
  end
  local ok, v = pcall(codec.decode, marked)
  if not ok then
    return nil, (tostring(v):gsub("^.-:%d+: ", ""))
  end
  if v == EMPTY_ARRAY then
    return setmetatable({}, array_mt)
  end
  if mtype(v) == "float" then
    if v ~= v or v == math.huge or v == -math.huge then
      return nil, NOT_FINITE
    end
    return tointeger(v) or v
  end
  local fine, result = pcall(C.normalise, v, array_mt)
  if not fine then
    return nil, tostring(result)
  end
  return result
end

-- Decode or raise.
function json.decode(text)
  local v, err = json.try_decode(text)
  if err then
    error("invalid JSON: " .. err, 2)
  end
  return v
end

local encode_text

-- An ordered object is written here, piece by piece, and left in cjson's output
-- as a sentinel that refers to the finished text in `frags`.
local function ordered_fragment(v, keys, depth, frags)
  local parts, seen, rest = {}, {}, {}
  local function add(k)
    if type(k) ~= "string" and mtype(k) ~= "integer" then
      error("cannot serialise a " .. type(k) .. " key", 0)
    end
    parts[#parts + 1] = encode_text(tostring(k), depth) .. ":" .. encode_text(v[k], depth + 1)
  end
  for _, k in ipairs(keys) do
    if v[k] ~= nil and not seen[k] then
      seen[k] = true
      add(k)
    end
  end
  for k in pairs(v) do
    if not seen[k] then
      rest[#rest + 1] = k
    end
  end
  table.sort(rest, function(a, b)
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(rest) do
    add(k)
  end
  frags[#frags + 1] = "{" .. table.concat(parts, ",") .. "}"
  return FRAGMENT .. #frags
end

-- Copy-on-write walk that replaces what cjson would get wrong with sentinels.
-- Shortest text of a finite float that reads back exactly, or nil when cjson's 14 digits do.
local function float_text(v)
  if v ~= v or v == math.huge or v == -math.huge or tonumber(string.format("%.14g", v)) == v then
    return nil
  end
  for digits = 15, 17 do
    local s = string.format("%." .. digits .. "g", v)
    if tonumber(s) == v then
      return s
    end
  end
end

local function prepare(v, depth, frags)
  local tv = type(v)
  if tv == "string" then
    if v:find("\0", 1, true) then
      -- written here, so that no data in cjson's output looks like a sentinel
      frags[#frags + 1] = codec.encode(v)
      return FRAGMENT .. #frags
    end
    return v
  elseif tv == "number" then
    if mtype(v) == "integer" then
      if v >= 1e14 or v <= -1e14 then
        return NUMBER .. tostring(v)
      end
    else
      local text = float_text(v)
      if text then
        return NUMBER .. text
      end
    end
    return v
  elseif tv ~= "table" or depth > 200 then
    return v
  end
  local mt = getmetatable(v)
  if mt and mt.__jsonorder then
    return ordered_fragment(v, mt.__jsonorder, depth, frags)
  end
  for k in pairs(v) do
    if type(k) == "string" and k:find("\0", 1, true) then
      -- a key with a NUL: the object is written piece by piece (keys as strings above)
      return ordered_fragment(v, {}, depth, frags)
    end
  end
  if next(v) == nil then
    return mt == array_mt and EMPTY_ARRAY or v
  end
  local copy
  for k, x in pairs(v) do
    local y = prepare(x, depth + 1, frags)
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

local function unescape(out, frags)
  if out:find("\\u0000", 1, true) then
    out = out:gsub('"\\u0000%[%]"', "[]"):gsub('"\\u0000#([%-+.%deE]+)"', "%1")
  end
  if out:find("\\/", 1, true) then
    out = out:gsub("\\/", "/")
  end
  if frags[1] then
    -- last, so that finished fragments are not rewritten again
    out = out:gsub('"\\u0000@(%d+)"', function(i)
      return frags[tonumber(i)]
    end)
  end
  return out
end

-- Finished JSON text of v; raises on error.
function encode_text(v, depth)
  local frags = {}
  return unescape(codec.encode(prepare(v, depth or 0, frags)), frags)
end

-- Encode or return nil and a message.
function json.try_encode(v)
  local ok, out = pcall(encode_text, v, 0)
  if not ok then
    return nil, (tostring(out):gsub("^.-:%d+: ", ""))
  end
  return out
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
