-- IPv4/IPv6 arithmetic for available-ips and available-prefixes. An address
-- is an array of 16-bit words (2 for IPv4, 8 for IPv6) plus its family.
local ip = {}

local function parse_v4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then
    return nil
  end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then
    return nil
  end
  return { family = 4, a * 256 + b, c * 256 + d }
end

local function parse_groups(s)
  local out = {}
  if s == "" then
    return out
  end
  for g in (s .. ":"):gmatch("([^:]*):") do
    if not g:match("^%x%x?%x?%x?$") then
      return nil
    end
    out[#out + 1] = tonumber(g, 16)
  end
  return out
end

local function parse_v6(s)
  local head, tail = s:match("^(.-)::(.*)$")
  local words
  if head then
    local h, t = parse_groups(head), parse_groups(tail)
    if not h or not t or #h + #t > 7 then
      return nil
    end
    words = { family = 6 }
    for _, w in ipairs(h) do
      words[#words + 1] = w
    end
    for _ = 1, 8 - #h - #t do
      words[#words + 1] = 0
    end
    for _, w in ipairs(t) do
      words[#words + 1] = w
    end
  else
    local g = parse_groups(s)
    if not g or #g ~= 8 then
      return nil
    end
    words = g
    words.family = 6
  end
  return words
end

-- "10.0.0.1" or "fc00::1" -> address, or nil.
function ip.parse(s)
  if type(s) ~= "string" then
    return nil
  end
  if s:find(":", 1, true) then
    return parse_v6(s:lower())
  end
  return parse_v4(s)
end

-- "10.0.0.0/24" -> address, length (or nil). Without "/", the full length.
function ip.parse_cidr(s)
  if type(s) ~= "string" then
    return nil
  end
  local a, len = s:match("^([^/]+)/(%d+)$")
  a = ip.parse(a or s)
  if not a then
    return nil
  end
  local bits = #a * 16
  len = tonumber(len) or bits
  if len > bits then
    return nil
  end
  return a, len
end

function ip.bits(a)
  return #a * 16
end

function ip.format(a)
  if a.family == 4 then
    return string.format("%d.%d.%d.%d", a[1] >> 8, a[1] & 255, a[2] >> 8, a[2] & 255)
  end
  -- RFC 5952: the longest run (at least two) of zero words becomes "::".
  local best_start, best_len, i = nil, 1, 1
  while i <= 8 do
    if a[i] == 0 then
      local j = i
      while j <= 8 and a[j] == 0 do
        j = j + 1
      end
      if j - i > best_len then
        best_start, best_len = i, j - i
      end
      i = j
    else
      i = i + 1
    end
  end
  local parts = {}
  for k = 1, 8 do
    parts[k] = string.format("%x", a[k])
  end
  if not best_start then
    return table.concat(parts, ":")
  end
  local left = table.concat(parts, ":", 1, best_start - 1)
  local right = table.concat(parts, ":", best_start + best_len, 8)
  return left .. "::" .. right
end

local function copy(a)
  local c = { family = a.family }
  for i = 1, #a do
    c[i] = a[i]
  end
  return c
end

-- Keep the first len bits; host bits set to `fill` (0 or 1).
local function masked(a, len, fill)
  local c = copy(a)
  for i = 1, #c do
    local lo = (i - 1) * 16
    local keep = math.max(0, math.min(16, len - lo))
    local hostmask = (1 << (16 - keep)) - 1
    if fill == 1 then
      c[i] = c[i] | hostmask
    else
      c[i] = c[i] & (~hostmask & 0xffff)
    end
  end
  return c
end

function ip.network(a, len)
  return masked(a, len, 0)
end

function ip.last(a, len)
  return masked(a, len, 1)
end

function ip.compare(a, b)
  for i = 1, #a do
    if a[i] ~= b[i] then
      return a[i] < b[i] and -1 or 1
    end
  end
  return 0
end

-- a + 2^k (k counted from the lowest bit); nil on overflow.
function ip.add_pow2(a, k)
  local c = copy(a)
  local i = #c - (k // 16)
  local carry = 1 << (k % 16)
  while i >= 1 and carry > 0 do
    local v = c[i] + carry
    c[i] = v & 0xffff
    carry = v >> 16
    i = i - 1
  end
  if carry > 0 then
    return nil
  end
  return c
end

function ip.next(a)
  return ip.add_pow2(a, 0)
end

-- Is address b inside prefix a/len?
function ip.contains(a, len, b)
  return a.family == b.family and ip.compare(ip.network(a, len), ip.network(b, len)) == 0
end

return ip
