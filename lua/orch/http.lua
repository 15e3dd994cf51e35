-- The Lua side of the HTTP API: the host matches the route against the table
-- the scripts declare (lua/orch/api/routes.lua, read into host/routes.c by lhost.c at each
-- generation) and calls dispatch(req) with
--   req = {method, path, route, handler, action, request_id, params, query,
--          headers, body, json_body, user_json}
-- where `route` is the matched pattern ("/api/products/{product_id}"), and
-- `action` the matched route's action ("products.read"): what authorization
-- checks (C reads the same value as req->route->action).
-- The policy (orch.policy, docs/security.md) decides before the handler runs;
-- req.user is the authenticated user (nil with auth off).
-- Handlers live in lua/orch/api/<module>.lua and return
--   status, body [, headers [, content_type]]
-- where a table body (or any non-string) is sent as JSON and http.raw(s, ctype)
-- is sent as is. Errors for the client are raised with http.raise(status, detail)
-- and become problem details {"detail", "status", "title"}.

local json = require("orch.json")

local http = {}

local problem_mt = {
  __tostring = function(p)
    return string.format("HTTP %d: %s", p.status, tostring(p.detail))
  end,
}

function http.problem(status, detail)
  return setmetatable({ __problem = true, status = status, detail = detail }, problem_mt)
end

-- Raise a problem detail; never returns.
function http.raise(status, detail)
  error(http.problem(status, detail), 0)
end

-- Raise FastAPI's answer to a request body that fails validation: 422 with
-- {"detail": [{"type", "loc", "msg", "input"}, ...]} (plus our "status" and
-- "title"). errors: a list of {type=, loc={"body", ...}, msg=, input=}.
function http.raise_validation(errors)
  local list = json.array()
  for i, e in ipairs(errors) do
    list[i] = json.ordered({ type = e.type, loc = json.array(e.loc), msg = e.msg,
      input = e.input == nil and json.null or e.input }, { "type", "loc", "msg", "input" })
  end
  local p = http.problem(422, errors[1] and errors[1].msg or "Unprocessable Entity")
  p.body_json = json.encode(json.ordered({ detail = list, status = 422, title = "Unprocessable Entity" },
    { "detail", "status", "title" }))
  error(p, 0)
end

local raw_mt = {}

-- A body that is sent as it is, with its content type.
function http.raw(text, content_type)
  return setmetatable({ text = text, content_type = content_type or "text/plain; charset=utf-8" }, raw_mt)
end

local handlers = {}
local policy -- orch.policy, required on first use

-- The decoded user of a user JSON text: the same token comes again and again, so a
-- few recent ones are kept (treat req.user as read-only).
local users, nusers = {}, 0
local function user_of(text)
  local u = users[text]
  if not u then
    if nusers >= 64 then
      users, nusers = {}, 0
    end
    u = json.decode(text)
    users[text], nusers = u, nusers + 1
  end
  return u
end

local function resolve(name)
  local fn = handlers[name]
  if fn then
    return fn
  end
  local module, func = name:match("^(.*)%.([^.]+)$")
  local mod = module and require("orch.api." .. module)
  fn = mod and mod[func]
  if type(fn) ~= "function" then
    error("route handler '" .. name .. "' does not exist", 0)
  end
  handlers[name] = fn
  return fn
end

local db_mod

function http.dispatch(req)
  local handler = resolve(req.handler)
  db_mod = db_mod or require("orch.db")
  db_mod.serving_request(true)
  if req.json_body and req.body ~= nil and req.body ~= "" then
    local value, err = json.try_decode(req.body)
    if err then
      http.raise(400, "Malformed JSON in request body: " .. err)
    end
    req.json = value
  end
  if req.user_json then
    req.user = user_of(req.user_json)
    req.user_json = nil
  end
  policy = policy or require("orch.policy")
  local ok, reason = policy.check(policy.context(req))
  if not ok then
    http.raise(reason == "Not authenticated" and 401 or 403, reason)
  end
  local status, body, headers, content_type = handler(req)
  if body == nil then
    return status, nil, headers, content_type
  end
  if getmetatable(body) == raw_mt then
    return status, body.text, headers, body.content_type
  end
  return status, json.encode(body), headers, content_type
end

return http
