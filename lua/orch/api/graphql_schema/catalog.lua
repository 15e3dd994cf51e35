-- GraphQL catalogue: the root fields `products`, `productBlocks`, `resourceTypes` and
-- the Product, FixedInput, ProductBlock and ResourceType types. Child lists (a product's
-- blocks, a block's resource types, ...) are loaded for the whole page in one query.

local json = require("orch.json")
local common = require("orch.api.graphql_schema.common")
local connection = require("orch.graphql.connection")

local M = {}

local nn, upper = common.nn, common.upper

local PRODUCT_SELECT = "p.product_id::text AS product_id, p.name, p.description, p.product_type, p.tag, p.status, "
  .. "orch_iso(p.created_at) AS created_at, orch_iso(p.end_date) AS end_date"

local function product_item(r)
  return {
    product_id = r.product_id, name = r.name, description = r.description, product_type = r.product_type,
    tag = r.tag, status = upper(r.status), created_at = r.created_at, end_date = nn(r.end_date),
  }
end

local function load_products(rows)
  local items = {}
  for i, r in ipairs(rows) do
    items[i] = product_item(r)
  end
  return common.share_batch(items, function(item)
    return item.product_id
  end)
end

-- Products by id for the whole request (the catalogue is small): one query per request.
function M.product_by_id(ctx, id)
  ctx = ctx or {}
  if not ctx.products_by_id then
    local by_id = {}
    local items = load_products(common.query("SELECT " .. PRODUCT_SELECT .. " FROM products p ORDER BY p.name"))
    for _, item in ipairs(items) do
      by_id[item.product_id] = item
    end
    ctx.products_by_id = by_id
  end
  return ctx.products_by_id[id]
end

local PRODUCT_SPEC = {
  select = PRODUCT_SELECT,
  from = "products p",
  filters = {
    product_id = { expr = "p.product_id", type = "uuid_exact" },
    name = "p.name",
    description = "p.description",
    product_type = "p.product_type",
    tag = "p.tag",
    status = common.code("lower(p.status)"),
    created_at = common.timestamp("p.created_at"),
    end_date = common.timestamp("p.end_date"),
  },
  sorts = {
    productId = "p.product_id", name = "p.name", description = "p.description", productType = "p.product_type",
    tag = "p.tag", status = "p.status", createdAt = "p.created_at", endDate = "p.end_date",
  },
  default_sort = "p.name",
  tiebreak = "p.product_id",
  mode = "partial",
}

local BLOCK_SELECT = "b.product_block_id::text AS product_block_id, b.name, b.description, b.tag, b.status, "
  .. "orch_iso(b.created_at) AS created_at, orch_iso(b.end_date) AS end_date"

local function block_item(r)
  return {
    product_block_id = r.product_block_id, name = r.name, description = r.description, tag = nn(r.tag),
    status = upper(r.status), created_at = r.created_at, end_date = nn(r.end_date), _owner = r.owner,
  }
end

local function load_blocks(rows)
  local items = {}
  for i, r in ipairs(rows) do
    items[i] = block_item(r)
  end
  return common.share_batch(items, function(item)
    return item.product_block_id
  end)
end

local BLOCK_SPEC = {
  select = BLOCK_SELECT,
  from = "product_blocks b",
  filters = {
    product_block_id = { expr = "b.product_block_id", type = "uuid_exact" },
    name = "b.name",
    description = "b.description",
    tag = { expr = "b.tag", nullable = true },
    status = common.code("lower(b.status)"),
    created_at = common.timestamp("b.created_at"),
    end_date = common.timestamp("b.end_date"),
  },
  sorts = {
    productBlockId = "b.product_block_id", name = "b.name", description = "b.description", tag = "b.tag",
    status = "b.status", createdAt = "b.created_at", endDate = "b.end_date",
  },
  default_sort = "b.name",
  tiebreak = "b.product_block_id",
  mode = "partial",
}

local RT_SELECT = "rt.resource_type_id::text AS resource_type_id, rt.resource_type, rt.description"

local function load_resource_types(rows)
  local items = {}
  for i, r in ipairs(rows) do
    items[i] = {
      resource_type_id = r.resource_type_id, resource_type = r.resource_type, description = nn(r.description),
    }
  end
  return common.share_batch(items, function(item)
    return item.resource_type_id
  end)
end

local RT_SPEC = {
  select = RT_SELECT,
  from = "resource_types rt",
  filters = {
    resource_type_id = { expr = "rt.resource_type_id", type = "uuid_exact" },
    resource_type = "rt.resource_type",
    description = { expr = "rt.description", nullable = true },
  },
  sorts = { resourceTypeId = "rt.resource_type_id", resourceType = "rt.resource_type", description = "rt.description" },
  default_sort = "rt.resource_type",
  tiebreak = "rt.resource_type_id",
  mode = "partial",
}

-- Child rows of the page's parents: sql selects an `owner` column (the parent's id as
-- text) and takes the ids as $1 (uuid[]); map turns the rows into items.
local function children(sql, load)
  return function(ids)
    local rows = common.query(sql, common.id_array(ids))
    local items = load(rows)
    local out = {}
    for i, r in ipairs(rows) do
      local list = out[r.owner]
      if not list then
        list = json.array()
        out[r.owner] = list
      end
      list[#list + 1] = items[i]
    end
    return out
  end
end

local PRODUCT_BLOCKS = children("SELECT ppb.product_id::text AS owner, " .. BLOCK_SELECT
  .. " FROM product_product_blocks"
  .. " ppb JOIN product_blocks b ON b.product_block_id = ppb.product_block_id WHERE ppb.product_id = ANY($1::uuid[])"
  .. " ORDER BY b.name", load_blocks)
local DEPENDS_ON = children("SELECT r.in_use_by_id::text AS owner, " .. BLOCK_SELECT
  .. " FROM product_block_relations r"
  .. " JOIN product_blocks b ON b.product_block_id = r.depends_on_id WHERE r.in_use_by_id = ANY($1::uuid[])"
  .. " ORDER BY b.name", load_blocks)
local IN_USE_BY = children("SELECT r.depends_on_id::text AS owner, " .. BLOCK_SELECT
  .. " FROM product_block_relations r"
  .. " JOIN product_blocks b ON b.product_block_id = r.in_use_by_id WHERE r.depends_on_id = ANY($1::uuid[])"
  .. " ORDER BY b.name", load_blocks)
local BLOCK_RESOURCE_TYPES = children("SELECT x.product_block_id::text AS owner, " .. RT_SELECT
  .. " FROM product_block_resource_types x JOIN resource_types rt ON rt.resource_type_id = x.resource_type_id"
  .. " WHERE x.product_block_id = ANY($1::uuid[]) ORDER BY rt.resource_type", load_resource_types)
local RT_BLOCKS = children("SELECT x.resource_type_id::text AS owner, " .. BLOCK_SELECT
  .. " FROM product_block_resource_types x JOIN product_blocks b ON b.product_block_id = x.product_block_id"
  .. " WHERE x.resource_type_id = ANY($1::uuid[]) ORDER BY b.name", load_blocks)
local FIXED_INPUTS = children("SELECT product_id::text AS owner, fixed_input_id::text, name, value, product_id::text,"
  .. " orch_iso(created_at) AS created_at FROM fixed_inputs WHERE product_id = ANY($1::uuid[]) ORDER BY name",
  function(rows)
    local items = {}
    for i, r in ipairs(rows) do
      items[i] = { fixed_input_id = r.fixed_input_id, name = r.name, value = r.value, product_id = r.product_id,
        created_at = r.created_at }
    end
    return items
  end)
local PRODUCT_WORKFLOWS = children("SELECT pw.product_id::text AS owner, w.workflow_id::text AS workflow_id, w.name,"
  .. " w.target, w.description, w.is_task, orch_iso(w.created_at) AS created_at FROM products_workflows pw"
  .. " JOIN workflows w ON w.workflow_id = pw.workflow_id WHERE pw.product_id = ANY($1::uuid[])"
  .. " AND w.deleted_at IS NULL ORDER BY w.name", function(rows)
    return common.area("workflows").load(rows)
  end)

-- Products of the page's workflows (Workflow.products).
M.products_of_workflows = children("SELECT pw.workflow_id::text AS owner, " .. PRODUCT_SELECT
  .. " FROM products_workflows"
  .. " pw JOIN products p ON p.product_id = pw.product_id WHERE pw.workflow_id = ANY($1::uuid[]) ORDER BY p.name",
  load_products)

function M.types(T)
  T.Product = {
    fields = {
      productId = { type = "String!", from = "product_id" },
      name = "String!",
      description = "String!",
      productType = { type = "String!", from = "product_type" },
      type = { type = "String!", from = "product_type" },
      tag = "String!",
      status = "String!",
      createdAt = { type = "String", from = "created_at" },
      endDate = { type = "String", from = "end_date" },
      productBlocks = { type = "[ProductBlock!]!", resolve = common.list_field("product_id", PRODUCT_BLOCKS) },
      allProductBlockNames = {
        type = "[String!]!",
        resolve = function(parent, _, _, info)
          local names = json.array()
          local blocks = common.batched(parent, "blocks-names@" .. info.parent_type, parent.product_id,
            PRODUCT_BLOCKS) or {}
          for i, b in ipairs(blocks) do
            names[i] = b.name
          end
          return names
        end,
      },
      fixedInputs = { type = "[FixedInput!]!", resolve = common.list_field("product_id", FIXED_INPUTS) },
      workflows = { type = "[Workflow!]!", resolve = common.list_field("product_id", PRODUCT_WORKFLOWS) },
      subscriptions = {
        type = "SubscriptionConnection!",
        args = connection.ARGS,
        resolve = common.nested_field(function()
          local spec = common.area("subscriptions").spec()
          spec.parent = "s.product_id"
          return spec
        end, "product_id", function(rows)
          return common.area("subscriptions").load(rows)
        end),
      },
    },
  }
  T.FixedInput = {
    fields = {
      fixedInputId = { type = "String!", from = "fixed_input_id" },
      name = "String!",
      value = "String!",
      productId = { type = "String!", from = "product_id" },
      createdAt = { type = "String", from = "created_at" },
    },
  }
  T.ProductBlock = {
    fields = {
      productBlockId = { type = "String!", from = "product_block_id" },
      name = "String!",
      description = "String!",
      tag = "String",
      status = "String",
      createdAt = { type = "String", from = "created_at" },
      endDate = { type = "String", from = "end_date" },
      resourceTypes = {
        type = "[ResourceType!]!",
        resolve = common.list_field("product_block_id", BLOCK_RESOURCE_TYPES),
      },
      dependsOn = { type = "[ProductBlock!]!", resolve = common.list_field("product_block_id", DEPENDS_ON) },
      inUseBy = { type = "[ProductBlock!]!", resolve = common.list_field("product_block_id", IN_USE_BY) },
    },
  }
  T.ResourceType = {
    fields = {
      resourceTypeId = { type = "String!", from = "resource_type_id" },
      resourceType = { type = "String!", from = "resource_type" },
      description = "String",
      productBlocks = { type = "[ProductBlock!]!", resolve = common.list_field("resource_type_id", RT_BLOCKS) },
    },
  }
  T.ProductConnection = connection.type("Product")
  T.ProductBlockConnection = connection.type("ProductBlock")
  T.ResourceTypeConnection = connection.type("ResourceType")
end

function M.root(Q)
  Q.products = {
    type = "ProductConnection!",
    args = connection.ARGS,
    resolve = function(args, _, info)
      return common.root_connection(args, PRODUCT_SPEC, info, load_products)
    end,
  }
  Q.productBlocks = {
    type = "ProductBlockConnection!",
    args = connection.ARGS,
    resolve = function(args, _, info)
      return common.root_connection(args, BLOCK_SPEC, info, load_blocks)
    end,
  }
  Q.resourceTypes = {
    type = "ResourceTypeConnection!",
    args = connection.ARGS,
    resolve = function(args, _, info)
      return common.root_connection(args, RT_SPEC, info, load_resource_types)
    end,
  }
end

return M
