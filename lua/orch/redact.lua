-- What the API never shows: the single-use callback tokens of waiting processes.
-- redact.value(v) returns a copy of v without the keys that start with
-- "__callback" and with the token of every ".../callback/<token>" route in a
-- string replaced by "***". Metatables (JSON arrays, null) are kept.

local redact = {}

local function mask(s)
  return (s:gsub("(/callback/)[^/?#%s\"]+", "%1***"))
end

function redact.value(v)
  local t = type(v)
  if t == "string" then
    return mask(v)
  elseif t ~= "table" then
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    if not (type(k) == "string" and k:sub(1, 10) == "__callback") then
      out[k] = redact.value(x)
    end
  end
  return setmetatable(out, getmetatable(v))
end

local function replace_plain(s, what, with)
  if not what or what == "" then
    return s
  end
  local out, pos = {}, 1
  while true do
    local a, b = s:find(what, pos, true)
    if not a then
      break
    end
    out[#out + 1] = s:sub(pos, a - 1) .. with
    pos = b + 1
  end
  out[#out + 1] = s:sub(pos)
  return table.concat(out)
end

-- A message without server paths: script paths relative to the products folder
-- ("node.lua:12:") or to the core ruleset ("lua/orch/x.lua:3:").
function redact.paths(s)
  if type(s) ~= "string" then
    return s
  end
  local host = orch and orch._host
  if not (host and host.folders) then
    return s
  end
  local lua_dir, products_dir = host.folders()
  s = replace_plain(s, products_dir and products_dir .. "/", "")
  s = replace_plain(s, lua_dir and lua_dir .. "/", "lua/")
  return s
end

return redact
