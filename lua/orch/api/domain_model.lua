-- GET /api/subscriptions/domain-model/{subscription_id}: the subscription's
-- whole block tree (orch.model) extended as orchestrator-core does: every
-- block gets in_use_by_ids and in_use_by_relations, the subscription its
-- customer_descriptions. ETag = md5 of the extended model in a canonical JSON
-- form (sorted keys), so every thread computes the same tag; a matching
-- If-None-Match answers 304.

local http = require("orch.http")
local db = require("orch.db")
local json = require("orch.json")
local customer_descriptions = require("orch.api.customer_descriptions")
local ts = require("orch.api.wire").ts

local domain_model = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
domain_model.routes = {
  { "GET", "/api/subscriptions/domain-model/{subscription_id}", "get", action = "subscriptions.read",
    summary = "A subscription as its domain model",
    query = { filter_owner_relations = "true (default) or false, as orchestrator-core" },
    response = S.DomainModel },
}

local null = json.null

-- Every block table in the dump (depth first), by walking plain tables.
local function blocks_of(t, out)
  if type(t) ~= "table" then
    return out
  end
  if t.subscription_instance_id ~= nil and t.owner_subscription_id ~= nil then
    out[#out + 1] = t
  end
  for _, v in pairs(t) do
    if type(v) == "table" then
      blocks_of(v, out)
    end
  end
  return out
end

-- JSON with object keys sorted: the same text for the same value in every state.
local function canonical(v, out)
  if type(v) ~= "table" or v == null then
    out[#out + 1] = json.encode(v)
  elseif json.is_array(v) then
    out[#out + 1] = "["
    for i, x in ipairs(v) do
      if i > 1 then
        out[#out + 1] = ","
      end
      canonical(x, out)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = tostring(k)
    end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then
        out[#out + 1] = ","
      end
      out[#out + 1] = json.encode(k) .. ":"
      canonical(v[k], out)
    end
    out[#out + 1] = "}"
  end
  return out
end

-- Objects without a key order of their own (the model's tables have one) are written
-- with sorted keys, so that one ETag always goes with the same bytes.
local function stable_keys(v)
  if type(v) ~= "table" or v == null then
    return v
  end
  for _, x in pairs(v) do
    stable_keys(x)
  end
  if getmetatable(v) == nil and not json.is_array(v) then
    json.ordered(v)
  end
  return v
end

local function truthy(s, default)
  if s == nil or s == "" then
    return default
  end
  s = s:lower()
  if s == "true" or s == "1" or s == "yes" or s == "on" then
    return true
  elseif s == "false" or s == "0" or s == "no" or s == "off" then
    return false
  end
  http.raise(422, "filter_owner_relations must be a boolean")
end

-- The extended model of one subscription, or nil if it does not exist.
function domain_model.build(id)
  local ok, sub, err = pcall(orch.model.load, id)
  if not ok then
    if type(sub) == "table" then
      error(sub, 0)
    end
    http.raise(500, tostring(sub))
  end
  if not sub then
    return nil, err
  end
  local ok2, t = pcall(sub.to_table, sub)
  if not ok2 then
    http.raise(500, tostring(t))
  end
  t.product_id, t.name, t.tag = null, null, null -- SubscriptionSchema fields the model dump leaves empty
  t.customer_descriptions = customer_descriptions.of_subscription(id)
  -- SubscriptionDomainModelSchema's datetimes are epoch seconds on the wire (orch.api.wire);
  -- the model's own dump keeps ISO strings, as process state does.
  local times = db.one("SELECT " .. ts("s.start_date") .. " AS start_date, " .. ts("s.end_date") .. " AS end_date, "
    .. ts("p.created_at") .. " AS created_at, " .. ts("p.end_date") .. [[ AS product_end_date
    FROM subscriptions s JOIN products p ON p.product_id = s.product_id WHERE s.subscription_id = $1::uuid]], id)
  if times then
    t.start_date, t.end_date = times.start_date or null, times.end_date or null
    if type(t.product) == "table" then
      t.product.created_at, t.product.end_date = times.created_at or null, times.product_end_date or null
    end
  end
  local blocks = blocks_of(t, {})
  local ids, by_id = {}, {}
  for _, b in ipairs(blocks) do
    b.in_use_by_ids = json.array({})
    b.in_use_by_relations = json.array({})
    if not by_id[b.subscription_instance_id] then
      ids[#ids + 1] = b.subscription_instance_id
      by_id[b.subscription_instance_id] = {}
    end
    table.insert(by_id[b.subscription_instance_id], b)
  end
  if #ids > 0 then
    local rows = db.must([[SELECT r.depends_on_id::text AS block_id, i.subscription_instance_id::text AS instance_id,
        i.subscription_id::text AS subscription_id
      FROM subscription_instance_relations r
      JOIN subscription_instances i ON i.subscription_instance_id = r.in_use_by_id
      WHERE r.depends_on_id = ANY($1::uuid[]) ORDER BY 1, 2, r.order_id]], "{" .. table.concat(ids, ",") .. "}")
    for _, r in ipairs(rows) do
      for _, b in ipairs(by_id[r.block_id]) do
        table.insert(b.in_use_by_ids, r.instance_id)
        table.insert(b.in_use_by_relations, { subscription_instance_id = r.instance_id,
          subscription_id = r.subscription_id })
      end
    end
  end
  return t, nil, blocks
end

function domain_model.get(req)
  local id = req.params.subscription_id
  if not orch.uuid.valid(id) then
    http.raise(422, "subscription_id is not a valid UUID")
  end
  id = id:lower()
  local filter = truthy(req.query.filter_owner_relations, true)
  local t, _, blocks = domain_model.build(id)
  if not t then
    http.raise(404, "Subscription with id: " .. id .. ", not found")
  end
  local etag = db.one("SELECT md5($1) AS h", table.concat(canonical(t, {}))).h
  local wanted = req.headers["if-none-match"]
  if wanted and (wanted == etag or wanted == '"' .. etag .. '"' or wanted == 'W/"' .. etag .. '"') then
    return 304, nil, { ETag = etag }
  end
  if filter then
    -- Ids of instances inside this model (and the subscription id) are not "users".
    local own = { [t.subscription_id] = true }
    for _, b in ipairs(blocks) do
      own[b.subscription_instance_id] = true
    end
    for _, b in ipairs(blocks) do
      local kept = json.array({})
      for _, x in ipairs(b.in_use_by_ids) do
        if not own[x] then
          kept[#kept + 1] = x
        end
      end
      b.in_use_by_ids = kept
    end
  end
  return 200, stable_keys(t), { ETag = etag }
end

return domain_model
