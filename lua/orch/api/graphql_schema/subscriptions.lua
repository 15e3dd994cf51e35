-- GraphQL subscriptions: the root fields `subscriptions` and `subscription`, the
-- Subscription type (core's SubscriptionInterface), product block instances, customer
-- descriptions, and the subscription connections nested under processes, products,
-- customers and other subscriptions (in use by / depends on).
--
-- The list query reads the subscriptions table alone (filters on the product are
-- subqueries), so that a page of the default list is an index scan plus a count.

local json = require("orch.json")
local common = require("orch.api.graphql_schema.common")
local connection = require("orch.graphql.connection")

local M = {}

local nn, upper = common.nn, common.upper

-- A condition on the subscription's product. The catalogue is small: the matching product
-- ids are looked up first and the condition becomes `s.product_id = ANY($n)` (or FALSE), which
-- an index serves and the planner estimates right (a free-text search ORs it with others).
local function product_is(col, partial)
  return function(node, param)
    local ids = {}
    for _, r in ipairs(common.query("SELECT product_id::text AS id FROM products WHERE " .. col .. " ILIKE $1",
      common.pattern(node, partial))) do
      ids[#ids + 1] = r.id
    end
    if #ids == 0 then
      return "FALSE"
    end
    return "s.product_id = ANY(" .. param(common.id_array(ids)) .. "::uuid[])"
  end
end
local function product_col(col)
  return "(SELECT pr." .. col .. " FROM products pr WHERE pr.product_id = s.product_id)"
end

local SELECT = "s.subscription_id::text AS subscription_id, s.description, s.status, s.product_id::text AS product_id, "
  .. "s.customer_id, s.insync, orch_iso(s.start_date) AS start_date, orch_iso(s.end_date) AS end_date, "
  .. "s.note, s.version"

-- from/parent: the nested forms join a link and name the parent's id column.
function M.spec(from, parent)
  return {
    select = SELECT,
    from = from or "subscriptions s",
    parent = parent,
    mode = "partial",
    filters = {
      subscription_id = { expr = "s.subscription_id", type = "uuid_exact" },
      description = common.contains("s.description"),
      status = common.code("s.status"),
      insync = { expr = "s.insync", type = "bool" },
      note = { expr = "s.note", nullable = true },
      customer_id = { expr = "s.customer_id", type = "exact" },
      product_id = { expr = "s.product_id", type = "uuid_exact" },
      start_date = common.timestamp("s.start_date"),
      end_date = common.timestamp("s.end_date"),
      product = product_is("name", true),
      product_name = product_is("name", true),
      tag = product_is("tag"),
      product_tag = product_is("tag"),
      product_type = product_is("product_type"),
      product_description = product_is("description", true),
    },
    sorts = {
      subscriptionId = "s.subscription_id", description = "s.description", status = "s.status",
      insync = "s.insync", note = "s.note", customerId = "s.customer_id", startDate = "s.start_date",
      endDate = "s.end_date", productName = product_col("name"), product = product_col("name"),
      tag = product_col("tag"), productTag = product_col("tag"), productType = product_col("product_type"),
      customerFullname = "s.customer_id", customerShortcode = "s.customer_id",
    },
    default_sort = "s.start_date DESC",
    tiebreak = "s.subscription_id",
  }
end

function M.load(rows)
  local items = {}
  for i, r in ipairs(rows) do
    items[i] = {
      subscription_id = r.subscription_id, description = r.description, status = upper(r.status),
      product_id = r.product_id, customer_id = r.customer_id, insync = r.insync, start_date = nn(r.start_date),
      end_date = nn(r.end_date), note = nn(r.note), version = r.version,
    }
  end
  return common.share_batch(items, function(item)
    return item.subscription_id
  end)
end

-- Subscriptions whose blocks use a block of the parent (in use by), or the other way round.
local function related(direction)
  local mine, other = "depends_on_id", "in_use_by_id"
  if direction == "depends_on" then
    mine, other = other, mine
  end
  return "subscriptions s JOIN (SELECT DISTINCT mine.subscription_id AS parent_id, theirs.subscription_id AS sid"
    .. " FROM subscription_instances mine JOIN subscription_instance_relations r ON r." .. mine
    .. " = mine.subscription_instance_id JOIN subscription_instances theirs ON theirs.subscription_instance_id = r."
    .. other .. " WHERE theirs.subscription_id <> mine.subscription_id) rel ON rel.sid = s.subscription_id"
end

local function camel(name)
  return (name:gsub("_(%w)", function(c)
    return c:upper()
  end))
end

-- Product block instances of the page's subscriptions, flat with id/parent as core's
-- get_subscription_product_blocks numbers them (depth first, from the subscription's own
-- top blocks down through every relation, also into blocks of other subscriptions).
local function block_instances(ids)
  local rows = common.query([[
    WITH RECURSIVE tree AS (
      SELECT si.subscription_id AS root, si.subscription_instance_id AS sii, NULL::uuid AS parent_sii,
             ARRAY[si.subscription_instance_id::text] AS path, ARRAY[pb.name::text] AS sort_path, 1 AS depth
      FROM subscription_instances si JOIN product_blocks pb ON pb.product_block_id = si.product_block_id
      WHERE si.subscription_id = ANY($1::uuid[])
        AND NOT EXISTS (SELECT 1 FROM subscription_instance_relations r
                        JOIN subscription_instances up ON up.subscription_instance_id = r.in_use_by_id
                        WHERE r.depends_on_id = si.subscription_instance_id AND up.subscription_id = si.subscription_id)
      UNION ALL
      SELECT t.root, r.depends_on_id, t.sii, t.path || r.depends_on_id::text,
             t.sort_path || (coalesce(r.domain_model_attr, '') || lpad(r.order_id::text, 6, '0')), t.depth + 1
      FROM tree t JOIN subscription_instance_relations r ON r.in_use_by_id = t.sii
      WHERE t.depth < 20 AND NOT r.depends_on_id::text = ANY(t.path)
    )
    SELECT t.root::text AS root, t.sii::text AS sii, t.parent_sii::text AS parent_sii, t.sort_path,
           si.subscription_id::text AS owner, pb.name AS block_name, si.label,
           (SELECT json_agg(json_build_array(rt.resource_type, v.value) ORDER BY rt.resource_type, v.value)
              FROM subscription_instance_values v JOIN resource_types rt ON rt.resource_type_id = v.resource_type_id
             WHERE v.subscription_instance_id = t.sii) AS vals,
           (SELECT json_agg(json_build_object('subscription_instance_id', u.subscription_instance_id,
                                               'subscription_id', u.subscription_id))
              FROM subscription_instance_relations r2
              JOIN subscription_instances u ON u.subscription_instance_id = r2.in_use_by_id
             WHERE r2.depends_on_id = t.sii) AS in_use_by
    FROM tree t
    JOIN subscription_instances si ON si.subscription_instance_id = t.sii
    JOIN product_blocks pb ON pb.product_block_id = si.product_block_id
    ORDER BY t.root, t.sort_path]], common.id_array(ids))
  local out = {}
  local numbers = {}
  for _, r in ipairs(rows) do
    local list = out[r.root]
    if not list then
      list = json.array()
      out[r.root] = list
      numbers[r.root] = {}
    end
    local id = #list
    numbers[r.root][r.sii] = id
    local values = json.array({ { field = "name", value = r.block_name }, { field = "label", value = nn(r.label) } })
    local index = {}
    for _, pair in ipairs(r.vals or {}) do
      local field, value = camel(pair[1]), pair[2]
      local at = index[field]
      if at then
        local v = values[at].value
        if type(v) ~= "table" then
          values[at].value = json.array({ v, value })
        else
          v[#v + 1] = value
        end
      else
        values[#values + 1] = { field = field, value = value }
        index[field] = #values
      end
    end
    list[#list + 1] = {
      id = id,
      parent = r.parent_sii and numbers[r.root][r.parent_sii] or json.null,
      subscription_instance_id = r.sii,
      owner_subscription_id = r.owner,
      product_block_instance_values = values,
      in_use_by_relations = json.array(r.in_use_by or {}),
    }
  end
  local all = {}
  for _, list in pairs(out) do
    for _, item in ipairs(list) do
      all[#all + 1] = item
    end
  end
  common.share_batch(all, function(item)
    return item.owner_subscription_id
  end)
  return out
end

local function by_id(ids)
  local out = {}
  for _, item in ipairs(M.load(common.query("SELECT " .. SELECT .. " FROM subscriptions s "
    .. "WHERE s.subscription_id = ANY($1::uuid[])", common.id_array(ids)))) do
    out[item.subscription_id] = item
  end
  return out
end

local function metadata(ids)
  local out = {}
  for _, r in ipairs(common.query("SELECT subscription_id::text AS id, metadata FROM subscription_metadata "
    .. "WHERE subscription_id = ANY($1::uuid[])", common.id_array(ids))) do
    out[r.id] = r.metadata
  end
  return out
end

local function customer_descriptions(ids)
  return common.group(common.query([[
    SELECT id::text, subscription_id::text, customer_id, description, version, orch_iso(created_at) AS created_at
    FROM subscription_customer_descriptions WHERE subscription_id = ANY($1::uuid[]) ORDER BY created_at]],
    common.id_array(ids)), "subscription_id")
end

-- Fixed inputs of the page's products as [{field, value}] (a JSON leaf, as core).
local function fixed_inputs(product_ids)
  local out = {}
  for _, r in ipairs(common.query("SELECT product_id::text AS product_id, name, value FROM fixed_inputs "
    .. "WHERE product_id = ANY($1::uuid[]) ORDER BY name", common.id_array(product_ids))) do
    local list = out[r.product_id]
    if not list then
      list = json.array()
      out[r.product_id] = list
    end
    list[#list + 1] = { field = r.name, value = r.value }
  end
  return out
end

local function nested(from, parent)
  return common.nested_field(function()
    return M.spec(from, parent)
  end, "subscription_id", M.load)
end

function M.types(T)
  T.Subscription = {
    interfaces = { "SubscriptionInterface" }, -- the UI's fragment is on core's interface
    fields = {
      subscriptionId = { type = "String!", from = "subscription_id" },
      description = "String!",
      status = "String!",
      insync = "Boolean!",
      note = "String",
      startDate = { type = "String", from = "start_date" },
      endDate = { type = "String", from = "end_date" },
      customerId = { type = "String!", from = "customer_id" },
      productId = { type = "String!", from = "product_id" },
      version = "Int!",
      product = {
        type = "Product!",
        resolve = function(parent, _, ctx)
          return common.area("catalog").product_by_id(ctx, parent.product_id)
        end,
      },
      customer = {
        type = "Customer!",
        resolve = function(parent, _, ctx)
          -- one look-up for the customers of the whole page
          return require("orch.api.graphql_schema.customers").of(ctx, parent.customer_id, function()
            local ids = {}
            for i, it in ipairs(parent._batch and parent._batch.items or {}) do
              ids[i] = it.customer_id
            end
            return ids
          end)
        end,
      },
      metadata = {
        type = "JSON!",
        resolve = function(parent, _, _, info)
          local m = common.batched(parent, "metadata@" .. info.parent_type, parent.subscription_id, metadata)
          if type(m) ~= "table" then
            return {} -- the UI calls Object.keys(metadata): never null
          end
          return m
        end,
      },
      fixedInputs = {
        type = "JSON!",
        resolve = function(parent, _, _, info)
          -- batched by product: share the page's product ids through a per-page cache
          local batch = parent._batch
          local key = "fixed_inputs@" .. info.parent_type
          if batch and not batch.cache[key] then
            local seen, pids = {}, {}
            for _, it in ipairs(batch.items or {}) do
              if not seen[it.product_id] then
                seen[it.product_id] = true
                pids[#pids + 1] = it.product_id
              end
            end
            batch.cache[key] = fixed_inputs(#pids > 0 and pids or { parent.product_id })
          end
          local map = batch and batch.cache[key] or fixed_inputs({ parent.product_id })
          return map[parent.product_id] or json.array()
        end,
      },
      customerDescriptions = {
        type = "[CustomerDescription!]!",
        resolve = common.list_field("subscription_id", customer_descriptions),
      },
      productBlockInstances = {
        type = "[ProductBlockInstance!]!",
        resolve = common.list_field("subscription_id", block_instances),
      },
      processes = {
        type = "ProcessConnection!",
        args = connection.ARGS,
        resolve = common.nested_field(function()
          local P = common.area("processes")
          local spec = P.spec("processes p JOIN workflows w ON w.workflow_id = p.workflow_id "
            .. "JOIN processes_subscriptions ps_link ON ps_link.pid = p.pid")
          spec.parent = "ps_link.subscription_id"
          return spec
        end, "subscription_id", function(rows)
          return common.area("processes").load(rows)
        end),
      },
      inUseBySubscriptions = {
        type = "SubscriptionConnection!",
        args = connection.ARGS,
        resolve = nested(related("in_use_by"), "rel.parent_id"),
      },
      dependsOnSubscriptions = {
        type = "SubscriptionConnection!",
        args = connection.ARGS,
        resolve = nested(related("depends_on"), "rel.parent_id"),
      },
    },
  }
  T.SubscriptionInterface = {
    kind = "interface",
    resolve_type = function()
      return "Subscription"
    end,
  }
  T.CustomerDescription = {
    fields = {
      id = "String!",
      subscriptionId = { type = "String!", from = "subscription_id" },
      customerId = { type = "String!", from = "customer_id" },
      description = "String!",
      version = "Int!",
      createdAt = { type = "String", from = "created_at" },
    },
  }
  T.ProductBlockInstance = {
    fields = {
      id = "Int!",
      parent = "Int",
      subscriptionInstanceId = { type = "String!", from = "subscription_instance_id" },
      ownerSubscriptionId = { type = "String!", from = "owner_subscription_id" },
      productBlockInstanceValues = { type = "JSON!", from = "product_block_instance_values" },
      inUseByRelations = { type = "JSON!", from = "in_use_by_relations" },
      subscription = {
        type = "Subscription",
        resolve = function(parent, _, _, info)
          return common.batched(parent, "subscription@" .. info.parent_type, parent.owner_subscription_id, by_id)
        end,
      },
    },
  }
  T.SubscriptionConnection = connection.type("Subscription")
end

function M.root(Q)
  Q.subscriptions = {
    type = "SubscriptionConnection!",
    args = connection.ARGS,
    resolve = function(args, _, info)
      return common.root_connection(args, M.spec(), info, M.load)
    end,
  }
  Q.subscription = {
    type = "Subscription",
    args = { id = "String!" },
    resolve = function(args)
      if not orch.uuid.valid(args.id) then
        return nil
      end
      local rows = common.query("SELECT " .. SELECT .. " FROM subscriptions s WHERE s.subscription_id = $1", args.id)
      return M.load(rows)[1]
    end,
  }
end

return M
