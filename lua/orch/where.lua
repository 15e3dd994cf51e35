-- where.author(): "file:line: " of the product script line that called into the core
-- ruleset, so that definition and API-misuse errors point at the author's line and not
-- into lua/orch/. The host answers from the generation's list of product scripts; outside
-- the host (the pure-Lua unit tests) the first frame outside lua/orch/ is taken.

local where = {}

local function fallback()
  local ok, dbg = pcall(function()
    return debug -- only outside the host's sandbox
  end)
  if not ok or type(dbg) ~= "table" or not dbg.getinfo then
    return ""
  end
  for level = 3, 40 do
    local info = dbg.getinfo(level, "Sl")
    if not info then
      break
    end
    local src = info.source or ""
    if info.currentline and info.currentline > 0 and src:sub(1, 1) == "@"
      and not src:find("/orch/", 1, true) and not src:find("busted", 1, true) then
      return src:sub(2) .. ":" .. info.currentline .. ": "
    end
  end
  return ""
end

function where.author()
  local host = orch._host
  if host and host.author_where then
    return host.author_where()
  end
  return fallback()
end

-- Raise msg at the author's line.
function where.raise(msg)
  error(where.author() .. msg, 0)
end

return where
