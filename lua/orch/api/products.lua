-- /api/products, /api/product_blocks, /api/resource_types: the catalogue as
-- orchestrator-core shapes it (ProductSchema, ProductBlockSchema,
-- ResourceTypeSchema). PATCH answers 201 with the updated entity, as core does.

local http = require("orch.http")
local db = require("orch.db")
local json = require("orch.json")
local ts = require("orch.api.wire").ts

local products = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
products.routes = {
  { "GET", "/api/products", "list", action = "products.read", summary = "List products",
    query = { tag = "only products of this tag", product_type = "only products of this type" },
    response = S.array(S.ProductSchema) },
  { "GET", "/api/products/{product_id}", "get", action = "products.read", summary = "One product",
    response = S.ProductSchema },
  { "PATCH", "/api/products/{product_id}", "patch", action = "products.write",
    summary = "Change a product's description", body = S.DescriptionPatch, status = 201, response = S.ProductSchema },
  { "GET", "/api/product_blocks/{product_block_id}", "get_block", action = "products.read",
    summary = "One product block", response = S.ProductBlockSchema, tags = { "Product blocks" } },
  { "PATCH", "/api/product_blocks/{product_block_id}", "patch_block", action = "products.write",
    summary = "Change a product block's description", body = S.DescriptionPatch, status = 201,
    response = S.ProductBlockSchema, tags = { "Product blocks" } },
  { "GET", "/api/resource_types/{resource_type_id}", "get_resource_type", action = "products.read",
    summary = "One resource type", response = S.ResourceTypeSchema, tags = { "Resource types" } },
  { "PATCH", "/api/resource_types/{resource_type_id}", "patch_resource_type", action = "products.write",
    summary = "Change a resource type's description", body = S.DescriptionPatch, status = 201,
    response = S.ResourceTypeSchema, tags = { "Resource types" } },
}

local null = json.null
local DESCRIPTION_LENGTH = 2000
local PRODUCT_STATUSES = { ["active"] = true, ["pre production"] = true, ["phase out"] = true,
  ["end of life"] = true }

local function check_uuid(id, what)
  if not orch.uuid.valid(id) then
    http.raise(422, what .. " is not a valid UUID")
  end
end

local function nn(v)
  if v == nil then
    return null
  end
  return v
end

-- Resource types of the given blocks: block id -> array of ResourceTypeSchema.
local function resource_types_of(block_ids)
  local out = {}
  if #block_ids == 0 then
    return out
  end
  local rows = db.must([[SELECT l.product_block_id::text AS block_id, rt.resource_type_id::text AS resource_type_id,
      rt.resource_type, rt.description
    FROM product_block_resource_types l JOIN resource_types rt ON rt.resource_type_id = l.resource_type_id
    WHERE l.product_block_id = ANY($1::uuid[]) ORDER BY rt.resource_type]], "{" .. table.concat(block_ids, ",") .. "}")
  for _, r in ipairs(rows) do
    out[r.block_id] = out[r.block_id] or json.array({})
    table.insert(out[r.block_id], { resource_type_id = r.resource_type_id, resource_type = r.resource_type,
      description = nn(r.description) })
  end
  return out
end

local BLOCK_COLUMNS = "b.product_block_id::text AS product_block_id, b.name, b.description, b.tag, b.status, "
  .. ts("b.created_at") .. " AS created_at, " .. ts("b.end_date") .. " AS end_date"

local function block_schema(b, rts)
  return { product_block_id = b.product_block_id, name = b.name, description = b.description, tag = nn(b.tag),
    status = nn(b.status), created_at = b.created_at, end_date = nn(b.end_date),
    resource_types = rts[b.product_block_id] or json.array({}) }
end

local PRODUCT_SQL = "SELECT p.product_id::text AS product_id, p.name, p.description, p.product_type, p.tag, "
  .. "p.status, " .. ts("p.created_at") .. " AS created_at, " .. ts("p.end_date") .. " AS end_date FROM products p"

-- ProductSchema for each product row, with blocks, fixed inputs and workflows in three more statements.
local function product_schemas(rows)
  local ids, by_id = {}, {}
  for i, p in ipairs(rows) do
    ids[i] = p.product_id
    by_id[p.product_id] = { product_id = p.product_id, name = p.name, description = p.description,
      product_type = p.product_type, status = p.status, tag = p.tag, created_at = p.created_at,
      end_date = nn(p.end_date), product_blocks = json.array({}), fixed_inputs = json.array({}),
      workflows = json.array({}) }
  end
  if #ids == 0 then
    return json.array({})
  end
  local id_list = "{" .. table.concat(ids, ",") .. "}"
  local blocks = db.must("SELECT l.product_id::text AS pid, " .. BLOCK_COLUMNS .. [[
     FROM product_product_blocks l JOIN product_blocks b ON b.product_block_id = l.product_block_id
    WHERE l.product_id = ANY($1::uuid[]) ORDER BY b.name]], id_list)
  local block_ids, seen = {}, {}
  for _, b in ipairs(blocks) do
    if not seen[b.product_block_id] then
      seen[b.product_block_id] = true
      block_ids[#block_ids + 1] = b.product_block_id
    end
  end
  local rts = resource_types_of(block_ids)
  for _, b in ipairs(blocks) do
    table.insert(by_id[b.pid].product_blocks, block_schema(b, rts))
  end
  for _, f in ipairs(db.must("SELECT f.fixed_input_id::text AS fixed_input_id, f.name, f.value, "
    .. "f.product_id::text AS product_id, " .. ts("f.created_at") .. [[ AS created_at
      FROM fixed_inputs f WHERE f.product_id = ANY($1::uuid[]) ORDER BY f.name]], id_list)) do
    table.insert(by_id[f.product_id].fixed_inputs, f)
  end
  for _, w in ipairs(db.must("SELECT l.product_id::text AS pid, w.workflow_id::text AS workflow_id, w.name, "
    .. "w.target, w.is_task, w.description, " .. ts("w.created_at") .. [[ AS created_at
      FROM products_workflows l JOIN workflows w ON w.workflow_id = l.workflow_id
     WHERE l.product_id = ANY($1::uuid[]) AND w.deleted_at IS NULL ORDER BY w.name]], id_list)) do
    table.insert(by_id[w.pid].workflows, { workflow_id = w.workflow_id, name = w.name, target = w.target,
      is_task = w.is_task, description = nn(w.description), created_at = w.created_at, steps = null })
  end
  local out = json.array({})
  for i, id in ipairs(ids) do
    out[i] = by_id[id]
  end
  return out
end

local function one_product(id)
  check_uuid(id, "product_id")
  local rows = db.must(PRODUCT_SQL .. " WHERE p.product_id = $1::uuid", id)
  if #rows == 0 then
    http.raise(404, "Product id " .. id .. " not found")
  end
  return product_schemas(rows)[1]
end

-- GET /api/products/?tag=&product_type=
function products.list(req)
  local where, args = {}, {}
  for _, k in ipairs({ "tag", "product_type" }) do
    local v = req.query[k]
    if v and v ~= "" then
      args[#args + 1] = v
      where[#where + 1] = "p." .. k .. " = $" .. #args
    end
  end
  local sql = PRODUCT_SQL .. (#where > 0 and (" WHERE " .. table.concat(where, " AND ")) or "") .. " ORDER BY p.name"
  return 200, product_schemas(db.must(sql, table.unpack(args)))
end

function products.get(req)
  return 200, one_product(req.params.product_id)
end

local function patch_body(req, allowed)
  local body = req.json
  if type(body) ~= "table" or json.is_array(body) then
    http.raise(422, "The request body must be a JSON object")
  end
  for k, v in pairs(body) do -- other keys are ignored, as core's schemas do
    if allowed[k] and v ~= null and type(v) ~= "string" then
      http.raise(422, k .. " must be a string")
    end
  end
  if type(body.description) == "string" and #body.description > DESCRIPTION_LENGTH then
    http.raise(422, "description: at most " .. DESCRIPTION_LENGTH .. " characters")
  end
  return body
end

-- PATCH /api/products/{product_id} {description?, status?} -> 201 ProductSchema
function products.patch(req)
  local id = req.params.product_id
  check_uuid(id, "product_id")
  local body = patch_body(req, { description = true, status = true })
  db.transaction(function()
    local row = db.one("SELECT product_id FROM products WHERE product_id = $1::uuid FOR UPDATE", id)
    if not row then
      http.raise(404, "Product id " .. id .. " not found")
    end
    if type(body.description) == "string" then
      db.must("UPDATE products SET description = $2 WHERE product_id = $1::uuid", id, body.description)
    end
    if type(body.status) == "string" then
      if not PRODUCT_STATUSES[body.status] then
        http.raise(422, "status must be one of: active, pre production, phase out, end of life")
      end
      if body.status == "end of life" then
        local n = db.one([[SELECT count(*) AS n FROM subscriptions WHERE product_id = $1::uuid
          AND status <> 'terminated']], id).n
        if n > 0 then
          http.raise(400, "Cannot set product to 'end of life': " .. n
            .. " subscription(s) are not in terminated state")
        end
      end
      db.must("UPDATE products SET status = $2 WHERE product_id = $1::uuid", id, body.status)
    end
  end)
  return 201, one_product(id)
end

-- ---- product blocks ----

local function one_block(id)
  check_uuid(id, "product_block_id")
  local b = db.one("SELECT " .. BLOCK_COLUMNS .. " FROM product_blocks b WHERE b.product_block_id = $1::uuid", id)
  if not b then
    http.raise(404, "Product_block id " .. id .. " not found")
  end
  return block_schema(b, resource_types_of({ b.product_block_id }))
end

function products.get_block(req)
  return 200, one_block(req.params.product_block_id)
end

function products.patch_block(req)
  local id = req.params.product_block_id
  check_uuid(id, "product_block_id")
  local body = patch_body(req, { description = true })
  one_block(id)
  if type(body.description) == "string" then
    db.must("UPDATE product_blocks SET description = $2 WHERE product_block_id = $1::uuid", id, body.description)
  end
  return 201, one_block(id)
end

-- ---- resource types ----

local function one_resource_type(id)
  check_uuid(id, "resource_type_id")
  local r = db.one([[SELECT resource_type_id::text AS resource_type_id, resource_type, description
    FROM resource_types WHERE resource_type_id = $1::uuid]], id)
  if not r then
    http.raise(404, "ResourceType id " .. id .. " not found")
  end
  return { resource_type_id = r.resource_type_id, resource_type = r.resource_type, description = nn(r.description) }
end

function products.get_resource_type(req)
  return 200, one_resource_type(req.params.resource_type_id)
end

function products.patch_resource_type(req)
  local id = req.params.resource_type_id
  check_uuid(id, "resource_type_id")
  local body = patch_body(req, { description = true })
  one_resource_type(id)
  if type(body.description) == "string" then
    db.must("UPDATE resource_types SET description = $2 WHERE resource_type_id = $1::uuid", id, body.description)
  end
  return 201, one_resource_type(id)
end

return products
