-- JSON for the fake: lua-cjson, plus arrays marked with json.array() so that an
-- empty list is written as [] (lua-cjson 2.1.0 writes every empty table as {}).
local cjson = require("cjson")

local json = { null = cjson.null, array_mt = { __name = "fake.json.array" } }

local EMPTY = "\0[]"

function json.array(t)
  return setmetatable(t or {}, json.array_mt)
end

function json.is_array(t)
  return type(t) == "table" and (getmetatable(t) == json.array_mt or rawget(t, 1) ~= nil)
end

local function prepare(v)
  if type(v) ~= "table" then
    return v
  end
  if next(v) == nil and getmetatable(v) == json.array_mt then
    return EMPTY
  end
  local c = {}
  for k, x in pairs(v) do
    c[k] = prepare(x)
  end
  return c
end

function json.encode(v)
  return (cjson.encode(prepare(v)):gsub('"\\u0000%[%]"', "[]"))
end

-- lua-cjson 2.1.0 reads every number as a float: whole numbers become integers.
local function integers(v)
  if type(v) == "number" then
    return math.tointeger(v) or v
  elseif type(v) == "table" then
    for k, x in pairs(v) do
      v[k] = integers(x)
    end
  end
  return v
end

function json.decode(text)
  return integers(cjson.decode(text))
end

return json
