-- The route table: every HTTP route of the API, collected from the `routes`
-- lists the handler modules of lua/orch/api/ declare next to their handlers.
-- The host reads it at every Lua state it builds (host/lhost.c), so a route
-- added here serves after a reload, without a rebuild; the OpenAPI document
-- (orch.api.openapi) and authorization read the same table.
--
-- A declaration in <module>.routes is
--   { METHOD, "/path/{param}", "function", action = "area.verb", summary = "...",
--     body = schema, response = schema, status = 200, tags = {...}, query = {...}, errors = {...},
--     content_type = "text/plain" }
-- `function` names <module>.<function>; `body` makes the host check that the
-- body is JSON (400 before the handler otherwise); `status` is the success
-- status (204 has no body); `errors` adds documented error statuses; `content_type`
-- documents a success body that is not JSON (the handler answers with http.raw).
-- Routes answered by the host itself (C) are declared below with `host`.
-- The first match wins, in the order of MODULES and then of each list.

local routes = {}

-- Handler modules and the OpenAPI tag of their routes.
local MODULES = {
  { "misc", "Misc" }, { "health", "Health" }, { "settings", "Settings" }, { "workflows", "Workflows" },
  { "subscription_actions", "Subscriptions" }, { "processes", "Processes" }, { "graphql", "GraphQL" },
  { "products", "Products" }, { "domain_model", "Subscriptions" },
  { "customer_descriptions", "Customer descriptions" }, { "schedules", "Schedules" }, { "openapi", "Misc" },
  { "metrics", "Metrics" },
}

-- Answered by the host before the table is consulted (host/http.c).
local HOST_ROUTES = {
  { "GET", "/api/ws/events", host = "websocket", action = "events.read", tags = { "Events" },
    summary = "WebSocket of change events (docs/events.md); answers 101 Switching Protocols",
    status = 101 },
}

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }

local function check(r, where)
  local function fail(msg)
    error(where .. ": " .. msg, 0)
  end
  if not METHODS[r.method] then
    fail("method must be one of GET, POST, PUT, PATCH, DELETE (got " .. tostring(r.method) .. ")")
  end
  if type(r.path) ~= "string" or r.path:sub(1, 1) ~= "/" or (#r.path > 1 and r.path:sub(-1) == "/") then
    fail("path must start with / and not end with one (got " .. tostring(r.path) .. ")")
  end
  local rest = r.path:gsub("{[%a_][%w_]*}", "")
  if rest:find("[{}]") then
    fail("path parameters are {name} segments (got " .. r.path .. ")")
  end
  if type(r.action) ~= "string" or not r.action:match("^[%a_]+%.[%a_]+$") then
    fail("action must be 'area.verb' (got " .. tostring(r.action) .. ")")
  end
end

-- Every route, in match order, as
--   {method, path, action, handler = "module.function" | nil, host = name | nil, json_body,
--    summary, tags, body, response, status, query, errors}
-- Raises an error naming the module for a malformed declaration.
function routes.all()
  local out, seen = {}, {}
  local function add(r, where)
    check(r, where)
    local key = r.method .. " " .. r.path
    if seen[key] then
      error(where .. ": " .. key .. " is declared twice (also in " .. seen[key] .. ")", 0)
    end
    seen[key] = where
    out[#out + 1] = r
  end
  for _, m in ipairs(MODULES) do
    local name, tag = m[1], m[2]
    local mod = require("orch.api." .. name)
    if type(mod.routes) ~= "table" then
      error("orch.api." .. name .. " declares no routes", 0)
    end
    for i, d in ipairs(mod.routes) do
      local where = "orch.api." .. name .. ".routes[" .. i .. "]"
      if type(d[3]) ~= "string" or type(mod[d[3]]) ~= "function" then
        error(where .. ": handler '" .. tostring(d[3]) .. "' is not a function of orch.api." .. name, 0)
      end
      add({ method = d[1], path = d[2], action = d.action, handler = name .. "." .. d[3],
        json_body = d.body ~= nil, summary = d.summary, tags = d.tags or { tag }, body = d.body,
        response = d.response, status = d.status or 200, query = d.query, errors = d.errors,
        content_type = d.content_type }, where)
    end
  end
  for i, d in ipairs(HOST_ROUTES) do
    add({ method = d[1], path = d[2], action = d.action, host = d.host, json_body = false, summary = d.summary,
      tags = d.tags, status = d.status or 200 }, "orch.api.routes host route " .. i)
  end
  return out
end

return routes
