-- Scalar resource types: how a value is checked when assigned, stored as text
-- (in orchestrator-core's formats, so that either implementation reads the
-- other's rows) and rendered as JSON.
--
-- A type is a table {name, parse, format, json}:
--   parse(v)   -> value | nil, message   (v: a stored text or an assigned Lua value)
--   format(v)  -> text stored in subscription_instance_values.value
--   json(v)    -> what serialisation emits (defaults to v)
-- Strings are always parsed, so "3" assigned to an integer field becomes 3 and
-- "fast" is refused; values already of the right Lua type are checked as such.

local types = {}

local function is_int(v)
  return math.type(v) == "integer" or (math.type(v) == "float" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53)
end

local function quote(v)
  if type(v) == "string" then
    return string.format("%q", v)
  end
  return tostring(v)
end

types.quote = quote

local builtin = {}

builtin.string = {
  parse = function(v)
    if type(v) ~= "string" then
      return nil, "expected a string, got " .. type(v)
    end
    return v
  end,
  format = function(v)
    return v
  end,
}

local function parse_integer(v)
  if type(v) == "number" then
    if is_int(v) then
      return math.tointeger(v)
    end
    return nil, "expected an integer, got " .. tostring(v)
  end
  if type(v) == "string" then
    local s = v:match("^%s*([-+]?%d+)%s*$")
    local n = s and math.tointeger(tonumber(s))
    if n then
      return n
    end
    return nil, "expected an integer, got " .. quote(v)
  end
  return nil, "expected an integer, got " .. type(v)
end

builtin.integer = { parse = parse_integer, format = tostring }

local booleans = { ["True"] = true, ["true"] = true, ["False"] = false, ["false"] = false }

builtin.boolean = {
  parse = function(v)
    if type(v) == "boolean" then
      return v
    end
    if type(v) == "string" and booleans[v] ~= nil then
      return booleans[v]
    end
    return nil, "expected a boolean, got " .. quote(v)
  end,
  -- Python's str(True)
  format = function(v)
    return v and "True" or "False"
  end,
}

builtin.uuid = {
  parse = function(v)
    if type(v) == "string" and orch.uuid.valid(v) then
      return v:lower()
    end
    return nil, "expected a UUID, got " .. quote(v)
  end,
  format = function(v)
    return v
  end,
}

-- ---- IP addresses and prefixes (canonical text as Python's ipaddress writes it) ----

local function parse_ipv4_bytes(s)
  local parts = { s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
  if #parts ~= 4 then
    return nil
  end
  for i, p in ipairs(parts) do
    if #p > 3 or (#p > 1 and p:sub(1, 1) == "0") then
      return nil
    end
    local n = tonumber(p)
    if n > 255 then
      return nil
    end
    parts[i] = n
  end
  return parts
end

-- IPv6 text -> 8 groups of 16 bits, or nil.
local function parse_ipv6_groups(s)
  if s:find("[^%x:.]") then
    return nil
  end
  local tail4
  local v4 = s:match(":([%d.]+)$")
  if v4 and v4:find(".", 1, true) then
    tail4 = parse_ipv4_bytes(v4)
    if not tail4 then
      return nil
    end
    s = s:sub(1, #s - #v4) .. "0:0"
  end
  local head, rest = s:match("^(.-)::(.*)$")
  local function split(part)
    local out = {}
    if part == "" then
      return out
    end
    for g in (part .. ":"):gmatch("([^:]*):") do
      if g == "" or #g > 4 then
        return nil
      end
      out[#out + 1] = tonumber(g, 16)
    end
    return out
  end
  local groups
  if head then
    if rest:find("::", 1, true) then
      return nil
    end
    local a, b = split(head), split(rest)
    if not a or not b or #a + #b > 7 then
      return nil
    end
    groups = a
    for _ = 1, 8 - #a - #b do
      groups[#groups + 1] = 0
    end
    for _, g in ipairs(b) do
      groups[#groups + 1] = g
    end
  else
    groups = split(s)
    if not groups or #groups ~= 8 then
      return nil
    end
  end
  if tail4 then
    groups[7] = tail4[1] * 256 + tail4[2]
    groups[8] = tail4[3] * 256 + tail4[4]
  end
  return groups
end

-- Compress the longest run (at least two) of zero groups, as Python does.
local function format_ipv6_groups(groups)
  local best_start, best_len, start, len = 0, 0, 0, 0
  for i = 1, 8 do
    if groups[i] == 0 then
      if len == 0 then
        start = i
      end
      len = len + 1
      if len > best_len then
        best_start, best_len = start, len
      end
    else
      len = 0
    end
  end
  local hex = {}
  for i = 1, 8 do
    hex[i] = string.format("%x", groups[i])
  end
  if best_len < 2 then
    return table.concat(hex, ":")
  end
  local left = table.concat(hex, ":", 1, best_start - 1)
  local right = table.concat(hex, ":", best_start + best_len, 8)
  return left .. "::" .. right
end

local function bits_of(groups, width)
  -- groups: numbers of `width` bits each; returns an array of bits
  local bits = {}
  for _, g in ipairs(groups) do
    for b = width - 1, 0, -1 do
      bits[#bits + 1] = (g >> b) & 1
    end
  end
  return bits
end

local function host_bits_zero(groups, width, prefix)
  local bits = bits_of(groups, width)
  for i = prefix + 1, #bits do
    if bits[i] ~= 0 then
      return false
    end
  end
  return true
end

local function ip_type(family, prefixed)
  local label = (family == 4 and "IPv4 " or "IPv6 ") .. (prefixed and "prefix" or "address")
  local function parse_addr(s)
    if family == 4 then
      local b = parse_ipv4_bytes(s)
      return b, b and table.concat(b, "."), 8, 32
    end
    local g = parse_ipv6_groups(s)
    return g, g and format_ipv6_groups(g), 16, 128
  end
  return {
    parse = function(v)
      if type(v) ~= "string" then
        return nil, "expected an " .. label .. ", got " .. type(v)
      end
      local s = v:match("^%s*(.-)%s*$")
      local addr, len = s, nil
      if prefixed then
        addr, len = s:match("^([^/]+)/(%d+)$")
        if not addr then
          addr, len = s, nil
        end
      end
      local parts, text, width, max = parse_addr(addr or "")
      if not parts then
        return nil, "expected an " .. label .. ", got " .. quote(v)
      end
      if not prefixed then
        return text
      end
      local n = len and tonumber(len) or max
      if n > max then
        return nil, "expected an " .. label .. ", got " .. quote(v) .. " (prefix length above " .. max .. ")"
      end
      if not host_bits_zero(parts, width, n) then
        return nil, "expected an " .. label .. ", got " .. quote(v) .. " (host bits set)"
      end
      return text .. "/" .. n
    end,
    format = function(v)
      return v
    end,
  }
end

builtin.ipv4_address = ip_type(4, false)
builtin.ipv6_address = ip_type(6, false)
builtin.ipv4_prefix = ip_type(4, true)
builtin.ipv6_prefix = ip_type(6, true)

-- ---- VLAN ranges: "5,10-20" (a set of VLAN ids, canonical text merges and sorts) ----

local vlan_mt = {}
vlan_mt.__index = vlan_mt

local function vlan_text(ranges)
  local out = {}
  for _, r in ipairs(ranges) do
    out[#out + 1] = r[1] == r[2] and tostring(r[1]) or (r[1] .. "-" .. r[2])
  end
  return table.concat(out, ",")
end

vlan_mt.__tostring = function(self)
  return vlan_text(self.ranges)
end
vlan_mt.__eq = function(a, b)
  return vlan_text(a.ranges) == vlan_text(b.ranges)
end

function vlan_mt:contains(vlan)
  for _, r in ipairs(self.ranges) do
    if vlan >= r[1] and vlan <= r[2] then
      return true
    end
  end
  return false
end

function vlan_mt:is_single_vlan()
  return #self.ranges == 1 and self.ranges[1][1] == self.ranges[1][2]
end

function vlan_mt:to_list()
  local out = {}
  for _, r in ipairs(self.ranges) do
    for v = r[1], r[2] do
      out[#out + 1] = v
    end
  end
  return out
end

local function parse_vlans(v)
  if getmetatable(v) == vlan_mt then
    return v
  end
  if math.type(v) == "integer" then
    v = tostring(v)
  end
  if type(v) ~= "string" then
    return nil, "expected VLAN ranges such as \"5,10-20\", got " .. type(v)
  end
  local ranges = {}
  for item in (v .. ","):gmatch("([^,]*),") do
    local a, b = item:match("^%s*(%d+)%s*%-%s*(%d+)%s*$")
    if not a then
      a = item:match("^%s*(%d+)%s*$")
      b = a
    end
    a, b = tonumber(a), tonumber(b)
    if not a or a > b or a < 0 or b > 4095 then
      return nil, "expected VLAN ranges such as \"5,10-20\" (VLAN ids 0-4095), got " .. quote(v)
    end
    ranges[#ranges + 1] = { a, b }
  end
  table.sort(ranges, function(x, y)
    return x[1] < y[1]
  end)
  local merged = {}
  for _, r in ipairs(ranges) do
    local last = merged[#merged]
    if last and r[1] <= last[2] + 1 then
      last[2] = math.max(last[2], r[2])
    else
      merged[#merged + 1] = { r[1], r[2] }
    end
  end
  return setmetatable({ ranges = merged }, vlan_mt)
end

builtin.vlan_ranges = {
  parse = parse_vlans,
  format = tostring,
  json = tostring,
}

types.vlan_ranges = parse_vlans

for name, t in pairs(builtin) do
  t.name = name
  t.builtin = true
end
types.builtin = builtin

-- ---- enums ----

-- enum{values...}: all strings (a string enum) or all integers (an integer enum).
function types.enum(values)
  if type(values) ~= "table" or #values == 0 then
    return nil, "an enum needs a non-empty list of values"
  end
  local kind = math.type(values[1]) == "integer" and "integer" or type(values[1])
  if kind ~= "string" and kind ~= "integer" then
    return nil, "enum values must be strings or integers"
  end
  local allowed = {}
  for _, v in ipairs(values) do
    local k = math.type(v) == "integer" and "integer" or type(v)
    if k ~= kind then
      return nil, "enum values must all be strings or all be integers"
    end
    if allowed[v] then
      return nil, "enum value " .. quote(v) .. " is listed twice"
    end
    allowed[v] = true
  end
  local listing = {}
  for i, v in ipairs(values) do
    listing[i] = quote(v)
  end
  local desc = "one of " .. table.concat(listing, ", ")
  return {
    name = "enum",
    enum = values,
    value_kind = kind,
    parse = function(v)
      local x = v
      if kind == "integer" then
        local n = parse_integer(v)
        x = n
      end
      if x ~= nil and allowed[x] then
        return x
      end
      return nil, "expected " .. desc .. ", got " .. quote(v)
    end,
    format = tostring,
  }
end

-- A user-defined scalar type from {name, parse, format [, validate] [, json]}.
function types.custom(spec)
  local parse, validate = spec.parse, spec.validate
  return {
    name = spec.name,
    description = spec.description,
    parse = function(v)
      local ok, value, err = pcall(parse, v)
      if not ok then
        return nil, tostring(value)
      end
      if value == nil then
        return nil, err or ("not a valid " .. spec.name .. ": " .. quote(v))
      end
      if validate then
        local good, why = validate(value)
        if not good then
          return nil, why or ("not a valid " .. spec.name .. ": " .. quote(v))
        end
      end
      return value
    end,
    format = spec.format,
    json = spec.json or spec.format,
  }
end

-- The JSON rendering of a value of type t.
function types.to_json(t, v)
  if t.json then
    return t.json(v)
  end
  return v
end

return types
