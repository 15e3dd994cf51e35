-- Subscriptions at run time: typed object trees created from a product,
-- loaded from the database in one statement, validated per lifecycle and
-- saved as a diff against the rows they were loaded from.
--
-- Objects: a subscription and its blocks are proxies; assignment goes through
-- __newindex and is type-checked. Blocks owned by another subscription (read
-- through a `ref` field) are read-only. Nothing is written until save.

local registry = require("orch.model.registry")
local types = require("orch.model.types")
local json = require("orch.json")
local db = require("orch.db")

local M = {}

-- Raise an API-misuse error at the product script's line that made the call (the
-- innermost product-script frame), not inside lua/orch/.
local raise = require("orch.where").raise

local D = setmetatable({}, { __mode = "k" }) -- proxy -> its data
local block_mt, sub_mt = { __name = "orch.model.block" }, { __name = "orch.model.subscription" }

local null = json.null
local quote = types.quote

-- Safe statuses of the *users* of a block per target status (core's table).
M.safe_users = {
  initial = { initial = true },
  active = { initial = true, provisioning = true, migrating = true, active = true, terminated = true,
    disabled = true },
  migrating = { initial = true, migrating = true, terminated = true },
  provisioning = { initial = true, provisioning = true, active = true, terminated = true },
  terminated = { initial = true, terminated = true },
  disabled = { initial = true, disabled = true, terminated = true },
}

local function is_block(v)
  return getmetatable(v) == block_mt
end
M.is_block = is_block

local function is_subscription(v)
  return getmetatable(v) == sub_mt
end
M.is_subscription = is_subscription

-- ---- assignment checks ----

local function check_block_value(f, where, v)
  if f.kind == "list" then
    if type(v) ~= "table" or is_block(v) then
      raise(where .. ": expected a list of " .. f.block .. " blocks, got " .. type(v))
    end
    for i, b in ipairs(v) do
      if not is_block(b) or D[b].def.name ~= f.block then
        raise(where .. "[" .. i .. "]: expected a " .. f.block .. " block")
      end
    end
    return json.array(v)
  end
  if v == nil then
    if f.kind == "owned" then
      raise(where .. ": an owned " .. f.block .. " block cannot be removed")
    end
    return nil
  end
  if not is_block(v) then
    raise(where .. ": expected a " .. f.block .. " block, got " .. type(v))
  end
  if D[v].def.name ~= f.block then
    raise(where .. ": expected a " .. f.block .. " block, got a " .. D[v].def.name .. " block")
  end
  return v
end

local function check_value(f, where, v)
  if f.kind ~= "scalar" then
    return check_block_value(f, where, v)
  end
  if v == nil or v == null then
    return nil
  end
  local x, err = f.type.parse(v)
  if x == nil then
    raise(where .. ": " .. err)
  end
  return x
end

-- ---- blocks ----

block_mt.__index = function(self, k)
  local d = D[self]
  local f = d.def.by_name[k]
  if f then
    return d.values[k]
  end
  if k == "name" then
    return d.def.name
  elseif k == "subscription_instance_id" then
    return d.id
  elseif k == "owner_subscription_id" then
    return d.owner
  elseif k == "label" then
    return d.label
  end
  for _, c in ipairs(d.def.computed) do
    if c.name == k then
      return c.fn(self)
    end
  end
  raise("block " .. d.def.name .. " has no field '" .. tostring(k) .. "'")
end

block_mt.__newindex = function(self, k, v)
  local d = D[self]
  if d.foreign then
    raise("block " .. d.def.name .. " (" .. d.id .. ") is owned by subscription " .. d.owner
      .. " and is read-only here")
  end
  if k == "label" then
    if v ~= nil and type(v) ~= "string" then
      raise(d.def.name .. ".label: expected a string")
    end
    d.label = v
    return
  end
  local f = d.def.by_name[k]
  if not f then
    raise("block " .. d.def.name .. " has no field '" .. tostring(k) .. "'")
  end
  d.values[k] = check_value(f, d.def.name .. "." .. k, v)
  if d.invalid then
    d.invalid[k] = nil
  end
end

block_mt.__tostring = function(self)
  return "block " .. D[self].def.name .. " " .. D[self].id
end

local function new_block(def, owner, values)
  local self = setmetatable({}, block_mt)
  local d = { def = def, id = orch.uuid.v4(), owner = owner, values = {} }
  D[self] = d
  for _, f in ipairs(def.fields) do
    if f.kind == "scalar" then
      d.values[f.name] = f.default_value
    elseif f.kind == "owned" then
      d.values[f.name] = new_block(registry.blocks[f.block], owner)
    elseif f.kind == "list" then
      local list = json.array({})
      for i = 1, f.min do
        list[i] = new_block(registry.blocks[f.block], owner)
      end
      d.values[f.name] = list
    end
  end
  for k, v in pairs(values or {}) do
    self[k] = v
  end
  return self
end

-- ---- subscriptions ----

local columns = { description = true, customer_id = true, insync = true, note = true, start_date = true,
  end_date = true }

sub_mt.__index = function(self, k)
  local d = D[self]
  if M.methods[k] then
    return M.methods[k]
  end
  if d.def.by_name[k] then
    return d.roots[k]
  end
  if d.def.fixed_by_name[k] then
    return d.fixed[k]
  end
  if d.row[k] ~= nil or columns[k] or k == "subscription_id" or k == "status" or k == "version" then
    return d.row[k]
  end
  if k == "product" then
    return d.product
  end
  raise("subscription of product type " .. d.def.name .. " has no field '" .. tostring(k) .. "'")
end

sub_mt.__newindex = function(self, k, v)
  local d = D[self]
  local f = d.def.by_name[k]
  if f then
    d.roots[k] = check_value(f, d.def.name .. "." .. k, v)
    return
  end
  if k == "status" then
    raise("set the status with subscription:set_status(lifecycle); it validates the whole tree")
  end
  if d.def.fixed_by_name[k] then
    raise(d.def.name .. "." .. k .. " is a fixed input of the product and cannot be changed")
  end
  if not columns[k] then
    raise("subscription of product type " .. d.def.name .. " has no field '" .. tostring(k) .. "'")
  end
  if k == "insync" then
    if type(v) ~= "boolean" then
      raise("subscription.insync: expected a boolean")
    end
  elseif k == "customer_id" or k == "description" then
    if type(v) ~= "string" then
      raise("subscription." .. k .. ": expected a string")
    end
  elseif v ~= nil and type(v) ~= "string" then
    raise("subscription." .. k .. ": expected a string or nil")
  end
  if k == "note" and v ~= nil and not v:find("%S") then
    v = nil -- as core: an empty note is NULL
  end
  d.row[k] = v
end

sub_mt.__tostring = function(self)
  return "subscription " .. D[self].row.subscription_id
end

M.methods = {}
local methods = M.methods

-- A new block owned by this subscription (not attached to the tree yet).
function methods.new_block(self, name, values)
  local def = registry.blocks[name]
  if not def then
    raise("block '" .. tostring(name) .. "' is not defined")
  end
  return new_block(def, D[self].row.subscription_id, values)
end

-- Set the description from the product type's description function (if any); returns it.
function methods.describe(self)
  local d = D[self]
  if d.def.describe then
    local text = d.def.describe(self)
    if type(text) ~= "string" then
      raise("the description function of product type " .. d.def.name .. " must return a string")
    end
    d.row.description = text
  end
  return d.row.description
end

-- ---- the catalogue rows a subscription needs ----

local product_sql = [[
SELECT p.product_id::text AS product_id, p.name, p.description, p.product_type, p.tag, p.status,
       to_json(p.created_at) #>> '{}' AS created_at, to_json(p.end_date) #>> '{}' AS end_date,
       (SELECT json_object_agg(f.name, f.value) FROM fixed_inputs f WHERE f.product_id = p.product_id) AS fixed
  FROM products p WHERE ]]

local function product_def(product_row)
  local entry = registry.products[product_row.name]
  local def = entry and entry.def or registry.product_types[product_row.product_type]
  if not def then
    raise("product '" .. product_row.name .. "' (type " .. product_row.product_type .. ") is not defined "
      .. "by any product script")
  end
  return def
end

local function product_table(p)
  return { product_id = p.product_id, name = p.name, description = p.description, product_type = p.product_type,
    tag = p.tag, status = p.status, created_at = p.created_at, end_date = p.end_date }
end

local function typed_fixed_inputs(def, stored, where)
  local out = {}
  for _, f in ipairs(def.fixed_inputs) do
    local raw = stored and stored[f.name]
    if raw == nil then
      raise(where .. ": fixed input '" .. f.name .. "' is missing in the database")
    end
    local v, err = f.type.parse(raw)
    if v == nil then
      raise(where .. ": fixed input '" .. f.name .. "': " .. err)
    end
    out[f.name] = v
  end
  return out
end

-- ---- create ----

-- create{product = name or product_id, customer_id = ..., [status, description, insync, note]}
function M.create(opts)
  if type(opts) ~= "table" or type(opts.product) ~= "string" or type(opts.customer_id) ~= "string" then
    raise("orch.model.create expects {product = name or id, customer_id = string}")
  end
  local p
  if orch.uuid.valid(opts.product) then
    p = db.one(product_sql .. "p.product_id = $1::uuid", opts.product)
  else
    p = db.one(product_sql .. "p.name = $1", opts.product)
  end
  if not p then
    raise("product '" .. opts.product .. "' does not exist in the database (run `orchestrator catalog apply`)")
  end
  local def = product_def(p)
  local self = setmetatable({}, sub_mt)
  local id = orch.uuid.v4()
  local status = opts.status or "initial"
  if not registry.lifecycle_rank[status] then
    raise("unknown lifecycle " .. quote(status))
  end
  D[self] = {
    def = def,
    product = product_table(p),
    fixed = typed_fixed_inputs(def, p.fixed, "product " .. p.name),
    roots = {},
    row = { subscription_id = id, description = opts.description or ("Initial subscription of " .. p.description),
      status = status, customer_id = opts.customer_id, insync = opts.insync == true, note = opts.note,
      start_date = nil, end_date = nil, version = 1 },
    stored = nil, -- nothing in the database yet
  }
  local d = D[self]
  for _, f in ipairs(def.fields) do
    local bdef = registry.blocks[f.block]
    if f.kind == "owned" then
      d.roots[f.name] = new_block(bdef, id)
    elseif f.kind == "list" then
      local list = json.array({})
      for i = 1, f.min do
        list[i] = new_block(bdef, id)
      end
      d.roots[f.name] = list
    end
  end
  if status ~= "initial" then
    local problems = M.problems(self, status)
    if #problems > 0 then
      raise("a new subscription of " .. p.name .. " is not valid for lifecycle '" .. status .. "': "
        .. table.concat(problems, "; "))
    end
  end
  return self
end

-- ---- load ----

-- One statement: the subscription with its product and fixed inputs, and every
-- instance reachable from the instances it owns (owned ones and, through
-- relations, blocks of other subscriptions), with their values and relations.
local load_sql = [[
WITH RECURSIVE tree(id) AS (
  SELECT subscription_instance_id FROM subscription_instances WHERE subscription_id = $1::uuid
  UNION
  SELECT r.depends_on_id FROM subscription_instance_relations r JOIN tree t ON r.in_use_by_id = t.id
)
SELECT
  (SELECT row_to_json(x) FROM (
     SELECT s.subscription_id, s.description, s.status, s.customer_id, s.insync, s.note, s.version,
            to_json(s.start_date) #>> '{}' AS start_date, to_json(s.end_date) #>> '{}' AS end_date,
            p.product_id, p.name AS product_name, p.description AS product_description, p.product_type,
            p.tag, p.status AS product_status, to_json(p.created_at) #>> '{}' AS product_created_at,
            to_json(p.end_date) #>> '{}' AS product_end_date,
            (SELECT json_object_agg(f.name, f.value) FROM fixed_inputs f WHERE f.product_id = p.product_id) AS fixed
       FROM subscriptions s JOIN products p ON p.product_id = s.product_id
      WHERE s.subscription_id = $1::uuid) x) AS subscription,
  (SELECT coalesce(json_agg(json_build_object('id', i.subscription_instance_id, 'owner', i.subscription_id,
            'block', b.name, 'label', i.label)), '[]')
     FROM tree t JOIN subscription_instances i ON i.subscription_instance_id = t.id
     JOIN product_blocks b ON b.product_block_id = i.product_block_id) AS instances,
  (SELECT coalesce(json_agg(json_build_object('id', v.subscription_instance_value_id,
            'i', v.subscription_instance_id, 'rt', rt.resource_type, 'v', v.value) ORDER BY v.value), '[]')
     FROM tree t JOIN subscription_instance_values v ON v.subscription_instance_id = t.id
     JOIN resource_types rt ON rt.resource_type_id = v.resource_type_id) AS values,
  (SELECT coalesce(json_agg(json_build_object('p', r.in_use_by_id, 'c', r.depends_on_id, 'o', r.order_id,
            'a', r.domain_model_attr) ORDER BY r.order_id), '[]')
     FROM tree t JOIN subscription_instance_relations r ON r.in_use_by_id = t.id) AS relations
]]

local function nonnull(v)
  if v == null then
    return nil
  end
  return v
end

-- Build the proxy of instance `id` (and, recursively, its children) from the loaded rows.
local function build_block(ctx, id, sub_id, path)
  local inst = ctx.instances[id]
  if ctx.built[id] then
    return ctx.built[id]
  end
  local def = registry.blocks[inst.block]
  if not def then
    error("subscription " .. sub_id .. ": " .. path .. " is a '" .. inst.block .. "' block, which no product "
      .. "script defines", 0)
  end
  local self = setmetatable({}, block_mt)
  local d = { def = def, id = id, owner = inst.owner, label = nonnull(inst.label), values = {},
    foreign = inst.owner ~= sub_id }
  D[self] = d
  ctx.built[id] = self
  local vals = ctx.values[id] or {}
  local kids = ctx.children[id] or {}
  for _, f in ipairs(def.fields) do
    local where = path .. "." .. f.name
    if f.kind == "scalar" then
      local rows = vals[f.name]
      if rows then
        local v, err = f.type.parse(rows[1].v)
        if v == nil then
          -- A value the field's type no longer accepts (the type changed and the author
          -- applied it with --allow-destructive): the subscription stays readable; the
          -- field reads nil, the stored text stays as it is until a new value is assigned,
          -- and the serialised model shows the raw text with an error marker.
          d.invalid = d.invalid or {}
          d.invalid[f.name] = { value = rows[1].v, error = "stored value " .. quote(rows[1].v) .. " is invalid: "
            .. tostring(err) }
        else
          d.values[f.name] = v
        end
      end
    else
      local rels = kids[f.name]
      if not rels then
        -- Rows without domain_model_attr (written before core had it): match by block name.
        rels = {}
        for _, r in ipairs(kids["?"] or {}) do
          if ctx.instances[r.c] and ctx.instances[r.c].block == f.block then
            rels[#rels + 1] = r
          end
        end
      end
      table.sort(rels, function(a, b)
        return a.o < b.o
      end)
      if f.kind == "list" then
        local list = json.array({})
        for i, r in ipairs(rels) do
          list[i] = build_block(ctx, r.c, sub_id, where .. "[" .. i .. "]")
        end
        d.values[f.name] = list
      elseif rels[1] then
        d.values[f.name] = build_block(ctx, rels[1].c, sub_id, where)
      end
    end
  end
  return self
end

function M.load(subscription_id)
  if type(subscription_id) ~= "string" or not orch.uuid.valid(subscription_id) then
    raise("orch.model.load expects a subscription id (UUID), got " .. quote(subscription_id))
  end
  local row = db.one(load_sql, subscription_id)
  local s = row and nonnull(row.subscription)
  if not s then
    return nil, "subscription " .. subscription_id .. " does not exist"
  end
  local p = { product_id = s.product_id, name = s.product_name, description = s.product_description,
    product_type = s.product_type, tag = s.tag, status = s.product_status, created_at = nonnull(s.product_created_at),
    end_date = nonnull(s.product_end_date) }
  local def = product_def(p)
  local sub_id = s.subscription_id
  local ctx = { instances = {}, values = {}, children = {}, built = {} }
  local stored = { instances = {}, values = {}, relations = {} }
  for _, i in ipairs(row.instances) do
    ctx.instances[i.id] = i
    if i.owner == sub_id then
      stored.instances[i.id] = { block = i.block, label = nonnull(i.label) }
    end
  end
  for _, v in ipairs(row.values) do
    local per = ctx.values[v.i] or {}
    ctx.values[v.i] = per
    per[v.rt] = per[v.rt] or {}
    table.insert(per[v.rt], v)
    if stored.instances[v.i] then
      stored.values[#stored.values + 1] = { id = v.id, i = v.i, rt = v.rt, v = v.v }
    end
  end
  local has_parent = {}
  for _, r in ipairs(row.relations) do
    local attr = nonnull(r.a) or "?"
    local per = ctx.children[r.p] or {}
    ctx.children[r.p] = per
    per[attr] = per[attr] or {}
    table.insert(per[attr], r)
    if stored.instances[r.p] then
      stored.relations[r.p .. "|" .. r.c .. "|" .. r.o] = nonnull(r.a) or null
      if stored.instances[r.c] then
        has_parent[r.c] = true
      end
    end
  end
  local self = setmetatable({}, sub_mt)
  D[self] = {
    def = def,
    product = product_table(p),
    fixed = typed_fixed_inputs(def, nonnull(s.fixed), "product " .. p.name),
    roots = {},
    row = { subscription_id = sub_id, description = s.description, status = s.status, customer_id = s.customer_id,
      insync = s.insync, note = nonnull(s.note), start_date = nonnull(s.start_date),
      end_date = nonnull(s.end_date), version = s.version },
    stored = stored,
  }
  local d = D[self]
  -- Root instances: owned ones that no owned instance depends on, matched to root fields by block name.
  local roots_by_block = {}
  for id, i in pairs(stored.instances) do
    if not has_parent[id] then
      roots_by_block[i.block] = roots_by_block[i.block] or {}
      table.insert(roots_by_block[i.block], id)
    end
  end
  for _, ids in pairs(roots_by_block) do
    table.sort(ids)
  end
  for _, f in ipairs(def.fields) do
    local ids = roots_by_block[f.block] or {}
    if f.kind == "list" then
      local list = json.array({})
      for i, id in ipairs(ids) do
        list[i] = build_block(ctx, id, sub_id, f.name .. "[" .. i .. "]")
      end
      d.roots[f.name] = list
    elseif ids[1] then
      d.roots[f.name] = build_block(ctx, table.remove(ids, 1), sub_id, f.name)
    end
  end
  -- What is stored, in the shape save compares against.
  local snapshot = { instances = stored.instances, values = {}, relations = stored.relations }
  for _, v in ipairs(stored.values) do
    local key = v.i .. "|" .. v.rt
    if snapshot.values[key] == nil then
      snapshot.values[key] = v.v
    end
  end
  d.snapshot = snapshot
  d.snapshot_row = {}
  for k, v in pairs(d.row) do
    d.snapshot_row[k] = v
  end
  -- The structure only: a product's validate runs when the subscription is saved and
  -- when its status changes, so a changed validate never makes stored data unreadable.
  local problems = M.problems(self, s.status, true)
  if #problems > 0 then
    error("subscription " .. sub_id .. " (" .. s.status .. "): " .. table.concat(problems, "; "), 0)
  end
  return self
end

-- Load or raise.
function M.get(subscription_id)
  local sub, err = M.load(subscription_id)
  if not sub then
    raise(err)
  end
  return sub
end

-- ---- lifecycle ----

function methods.set_status(self, target)
  local d = D[self]
  if not registry.lifecycle_rank[target] then
    raise("unknown lifecycle " .. quote(target) .. " (one of " .. table.concat(registry.lifecycles, ", ") .. ")")
  end
  local problems = M.problems(self, target)
  if #problems > 0 then
    raise("subscription " .. d.row.subscription_id .. " cannot move to '" .. target .. "': "
      .. table.concat(problems, "; "))
  end
  local unsafe = {}
  for _, user in ipairs(methods.in_use_by(self)) do
    if not M.safe_users[target][user.status] then
      unsafe[#unsafe + 1] = user.subscription_id .. " (" .. user.status .. ")"
    end
  end
  if #unsafe > 0 then
    raise("Unsafe status change of Subscription with depending subscriptions: " .. d.row.subscription_id
      .. " cannot move to '" .. target .. "' while used by " .. table.concat(unsafe, ", "))
  end
  if target == "active" and not d.row.start_date then
    d.row.start_date = orch.time.iso()
  end
  if target == "terminated" and not d.row.end_date then
    d.row.end_date = orch.time.iso()
  end
  d.row.status = target
  return self
end

-- The validation, relations, save and serialisation parts (lua/orch/model/subscription/),
-- given the module table and the internals they share with the core.
local internals = {
  D = D, methods = methods, raise = raise, null = null, is_block = is_block, is_subscription = is_subscription,
}
require("orch.model.subscription.validate")(M, internals)
require("orch.model.subscription.relations")(M, internals)
require("orch.model.subscription.save")(M, internals)
require("orch.model.subscription.serialize")(M, internals)

return M
