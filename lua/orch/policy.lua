-- Authorization (docs/security.md): every request's action, each GraphQL root field
-- and the WebSocket upgrade are put to the policy of the products folder
-- (policy.lua, reloaded with the products) before anything runs:
--
--   return function(ctx)   -- or a table with authorize(ctx)
--     -- ctx = {action, method, path, params, query, body, user = {sub, name, email,
--     --        groups, claims} | nil, field (GraphQL root field), operation}
--     return "allow" | "deny", reason | nil (abstain)
--   end
--
-- Also accepted: true (allow) and false (deny). Abstaining, or no policy at all,
-- falls back to the default rule: with auth off everything is allowed; with auth
-- on, authenticated users read and the members of ORCH_AUTH_WRITE_GROUP write.
-- A policy that raises denies, and the error goes to the log.

local policy = {}

local READ_ACTIONS = { ["user.log"] = true, ["graphql.read"] = true }
-- Public as in core: health, translations and the OpenAPI document (FastAPI serves
-- /api/openapi.json outside the routers' auth dependencies). host/auth.c has the same list.
local PUBLIC_ACTIONS = { ["health.read"] = true, ["translations.read"] = true, ["openapi.read"] = true }

local function is_read(action)
  return action:find("%.read$") ~= nil or action:find("^graphql%.query%.") ~= nil or READ_ACTIONS[action]
end

local function in_group(user, group)
  for _, g in ipairs(user and user.groups or {}) do
    if g == group then
      return true
    end
  end
  return false
end

-- The host's settings do not change while it runs: read them once per Lua state.
local auth_settings
local function settings()
  if not auth_settings then
    local host = orch and orch._host
    auth_settings = host and host.auth and host.auth() or {} -- no host (unit tests): auth off
  end
  return auth_settings
end

function policy.default(ctx)
  local auth = settings()
  if not auth.active or PUBLIC_ACTIONS[ctx.action] then
    return true
  end
  if not ctx.user then
    return false, "Not authenticated"
  end
  if is_read(ctx.action) then
    return true
  end
  if auth.write_group and in_group(ctx.user, auth.write_group) then
    return true
  end
  return false, "Not authorized: " .. ctx.action .. " needs the write group or a policy that allows it"
end

-- The policy function of this generation, or nil without a policy.lua.
local loaded, fn
local function policy_fn()
  if loaded then
    return fn
  end
  loaded = true
  local ok, mod = pcall(require, "policy")
  if not ok then
    if tostring(mod):find("module 'policy' not found", 1, true) then
      return nil
    end
    orch.log.error("policy.lua does not load:", tostring(mod))
    fn = function()
      error("policy.lua does not load", 0)
    end
    return fn
  end
  if type(mod) == "table" then
    mod = mod.authorize
  end
  if type(mod) ~= "function" then
    orch.log.error("policy.lua must return a function or a table with authorize(ctx)")
    fn = function()
      error("policy.lua returns no function", 0)
    end
  else
    fn = mod
  end
  return fn
end

-- check(ctx) -> true | false, reason
function policy.check(ctx)
  local f = policy_fn()
  if f then
    local ok, verdict, reason = pcall(f, ctx)
    if not ok then
      orch.log.error("policy error for " .. tostring(ctx.action) .. " (denied):", tostring(verdict))
      return false, "Not authorized (policy error)"
    end
    if verdict == true or verdict == "allow" then
      return true
    elseif verdict == false or verdict == "deny" then
      return false, reason and tostring(reason) or ("Not authorized: " .. tostring(ctx.action))
    end
  end
  return policy.default(ctx)
end

-- The action of the current request (from the route table; one place to re-point).
function policy.action_of(req)
  return req.action
end

-- The context of a request (body: the decoded JSON, when the route takes one).
function policy.context(req)
  return {
    action = policy.action_of(req),
    method = req.method,
    path = req.path,
    params = req.params or {},
    query = req.query or {},
    body = req.json,
    user = req.user,
  }
end

return policy
