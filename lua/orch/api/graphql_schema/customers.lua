-- Customers as the API shows them (GraphQL `customers`, and `customer` of subscriptions
-- and processes). orchestrator-core has no customer table: a deployment plugs in its
-- own customer source. Here products do that with a hook, set while their scripts load:
--
--   orch.customers.provide({
--     list = function() return { { customer_id = "...", fullname = "SURF", shortcode = "surf" } } end,
--     lookup = function(ids) ... end,   -- optional: {[id] = customer} for these ids
--   })
--
-- Without a provider every customer id reads as core's default customer
-- ("Default::Orchestrator-Core Customer"), as orchestrator-core does out of the box.

local M = {}

-- core's DEFAULT_CUSTOMER_* settings
M.DEFAULT = {
  customer_id = "59289a57-70fb-4ff5-9c93-10fe67b12434",
  fullname = "Default::Orchestrator-Core Customer",
  shortcode = "default-cust",
}

local provider -- {list = fn, lookup = fn?}, per Lua state (set again on every load)

-- provide(fn) or provide{list = fn, lookup = fn}: the products' customers.
function M.provide(p)
  if type(p) == "function" then
    p = { list = p }
  end
  if type(p) ~= "table" or type(p.list) ~= "function" then
    error("orch.customers.provide expects a function or {list = function, lookup = function}", 2)
  end
  for k in pairs(p) do
    if k ~= "list" and k ~= "lookup" then
      error("orch.customers.provide: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  if p.lookup ~= nil and type(p.lookup) ~= "function" then
    error("orch.customers.provide: lookup must be a function", 2)
  end
  provider = { list = p.list, lookup = p.lookup }
end

function M.provided()
  return provider ~= nil
end

-- A customer record in the API's shape; missing names fall back to the id.
local function normalise(c, id)
  id = tostring(c.customer_id or id)
  return { customer_id = id, fullname = tostring(c.fullname or id), shortcode = tostring(c.shortcode or id) }
end

-- Every customer: the provider's list, or core's default customer.
function M.list()
  if not provider then
    return { normalise(M.DEFAULT) } -- a copy: the resolvers annotate what they get (orch.* is read-only)
  end
  local out = {}
  for i, c in ipairs(provider.list() or {}) do
    out[i] = normalise(c)
  end
  return out
end

-- {[id] = customer} for these ids; ids the provider does not know read as their id.
function M.lookup(ids)
  local out = {}
  if not provider then
    for _, id in ipairs(ids) do
      out[id] = { customer_id = id, fullname = M.DEFAULT.fullname, shortcode = M.DEFAULT.shortcode }
    end
    return out
  end
  local found = {}
  if provider.lookup then
    for k, c in pairs(provider.lookup(ids) or {}) do
      local c2 = normalise(c, type(k) == "string" and k or nil)
      found[c2.customer_id] = c2
    end
  else
    for _, c in ipairs(M.list()) do
      found[c.customer_id] = c
    end
  end
  for _, id in ipairs(ids) do
    out[id] = found[id] or { customer_id = id, fullname = id, shortcode = id }
  end
  return out
end

-- The customer of one id, looked up once per GraphQL request for all the ids that
-- `ids_of()` names (the page's), cached in the request context `ctx`.
function M.of(ctx, id, ids_of)
  if id == nil then
    return nil
  end
  ctx = ctx or {}
  local cache = ctx.customers_by_id
  if not cache then
    cache = {}
    ctx.customers_by_id = cache
  end
  if not cache[id] then
    local ids, seen = {}, {}
    for _, x in ipairs(ids_of and ids_of() or {}) do
      if x ~= nil and not seen[x] and not cache[x] then
        seen[x] = true
        ids[#ids + 1] = x
      end
    end
    if not seen[id] then
      ids[#ids + 1] = id
    end
    for k, c in pairs(M.lookup(ids)) do
      cache[k] = c
    end
  end
  return cache[id]
end

return M
