-- A pure-Lua stand-in for the C half of `orch` (host/lapi_*.c), so that the
-- core ruleset in lua/ can be unit-tested with busted outside the host.
-- The real C half is exercised by tests/c/test_lua.c, test_sandbox.c and the integration specs.

local fake = {}

-- Same contract as host/lapi_json.c: empty arrays outside strings become "\u0000[]".
local function mark_empty_arrays(text)
  local out, i, n, found, in_string = {}, 1, #text, false, false
  local start = 1
  while i <= n do
    local c = text:sub(i, i)
    if in_string then
      if c == "\\" then
        i = i + 1
      elseif c == '"' then
        in_string = false
      end
    elseif c == '"' then
      in_string = true
    elseif c == "[" then
      local j = i + 1
      while j <= n and text:sub(j, j):match("[ \t\r\n]") do
        j = j + 1
      end
      if text:sub(j, j) == "]" then
        out[#out + 1] = text:sub(start, i - 1)
        out[#out + 1] = '"\\u0000[]"'
        start = j + 1
        i = j
        found = true
      end
    end
    i = i + 1
  end
  if not found then
    return text, false
  end
  out[#out + 1] = text:sub(start)
  return table.concat(out), true
end

-- host/lapi_json.c's normalise in plain Lua (the same rules).
local NOT_FINITE = "a number is out of range (JSON has no Infinity or NaN)"
local EMPTY_ARRAY = "\0[]"
local mtype, tointeger = math.type, math.tointeger

local function normalise(v, array_mt)
  if type(v) ~= "table" then
    return v
  end
  for k, x in pairs(v) do
    local tx = type(x)
    if tx == "table" then
      normalise(x, array_mt)
    elseif tx == "number" and mtype(x) == "float" then
      if x ~= x or x == math.huge or x == -math.huge then
        error(NOT_FINITE, 0)
      end
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

function fake.install()
  fake.queries = {}
  fake.results = {}
  _G.orch = {
    version = "test",
    log = {
      debug = function() end,
      info = function() end,
      warn = function() end,
      error = function() end,
    },
    _json = { mark_empty_arrays = mark_empty_arrays, normalise = normalise },
    -- host/lapi_time.c in plain Lua
    time = {
      now = function()
        return os.time()
      end,
      iso = function()
        return os.date("!%Y-%m-%dT%H:%M:%S+00:00")
      end,
      monotonic_ms = function()
        return os.clock() * 1000
      end,
    },
    traceback = function(msg)
      return debug.traceback(msg, 2)
    end,
    uuid = {
      token = function()
        return string.format("tok%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
      end,
      v4 = function()
        return string.format("%08x-0000-4000-8000-%012x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
      end,
      valid = function(s)
        return type(s) == "string" and s:match("^%x+%-%x+%-%x+%-%x+%-%x+$") ~= nil
      end,
    },
    _db = {
      -- Records every statement; answers with the next queued result.
      query = function(sql, ...)
        fake.queries[#fake.queries + 1] = { sql = sql, params = table.pack(...) }
        local r = table.remove(fake.results, 1)
        if r == nil then
          return {}, 0, nil
        end
        return table.unpack(r)
      end,
    },
  }
  for name in pairs(package.loaded) do
    if name == "orch" or name:match("^orch%.") then
      package.loaded[name] = nil
    end
  end
  return _G.orch
end

-- Queue the result of the next orch._db.query call: rows, affected, json_columns | nil, err.
function fake.queue(...)
  fake.results[#fake.results + 1] = table.pack(...)
end

return fake
