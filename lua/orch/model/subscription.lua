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

-- ---- validation ----

local function rank_of(lifecycle)
  return registry.lifecycle_rank[lifecycle] or 0
end

local function check_block(b, rank, lifecycle, path, out, seen)
  local d = D[b]
  if seen[b] then
    return
  end
  seen[b] = true
  for _, f in ipairs(d.def.fields) do
    local v = d.values[f.name]
    local where = path .. "." .. f.name
    if f.kind == "list" then
      local n = v and #v or 0
      if n < f.min or (f.max and n > f.max) then
        out[#out + 1] = where .. " (block " .. d.def.name .. ") needs " .. f.min .. (f.max and ("-" .. f.max) or "+")
          .. " blocks, has " .. n
      end
      for i, child in ipairs(v or {}) do
        check_block(child, rank, lifecycle, where .. "[" .. i .. "]", out, seen)
      end
    elseif v == nil then
      if rank >= f.required_rank and not (d.invalid and d.invalid[f.name]) then
        out[#out + 1] = where .. " (block " .. d.def.name .. ") is required in lifecycle '" .. lifecycle
          .. "' but missing"
      end
    elseif f.kind ~= "scalar" then
      check_block(v, rank, lifecycle, where, out, seen)
    end
  end
end

-- Every rule the tree breaks for `lifecycle`: a list of messages (empty if valid).
-- structure_only leaves out the product type's `validate` (what load checks).
function M.problems(self, lifecycle, structure_only)
  local d = D[self]
  local rank = rank_of(lifecycle)
  local out, seen = {}, {}
  for _, f in ipairs(d.def.fields) do
    local v = d.roots[f.name]
    if f.kind == "list" then
      local n = v and #v or 0
      if n < f.min or (f.max and n > f.max) then
        out[#out + 1] = f.name .. " needs " .. f.min .. (f.max and ("-" .. f.max) or "+") .. " blocks, has " .. n
      end
      for i, child in ipairs(v or {}) do
        check_block(child, rank, lifecycle, f.name .. "[" .. i .. "]", out, seen)
      end
    elseif v == nil then
      if rank >= f.required_rank then
        out[#out + 1] = f.name .. " is required in lifecycle '" .. lifecycle .. "' but missing"
      end
    else
      check_block(v, rank, lifecycle, f.name, out, seen)
    end
  end
  if #out == 0 and d.def.validate and not structure_only then
    local err = d.def.validate(self, lifecycle)
    if err ~= nil and err ~= true then
      out[#out + 1] = tostring(err)
    end
  end
  return out
end

-- Nothing is saved that could not be loaded again: the checks of load (list
-- min/max, the fields required in the subscription's lifecycle) and the product
-- type's validate. Raises "subscription X cannot be saved (lifecycle 'L'): path ...: reason".
function M.check_savable(self)
  local d = D[self]
  local lifecycle = d.row.status
  local problems = M.problems(self, lifecycle)
  if #problems > 0 then
    error("subscription " .. d.row.subscription_id .. " cannot be saved (lifecycle '" .. lifecycle .. "'): "
      .. table.concat(problems, "; "), 0)
  end
end

function methods.validate(self, lifecycle)
  lifecycle = lifecycle or D[self].row.status
  local problems = M.problems(self, lifecycle)
  if #problems > 0 then
    raise("subscription " .. D[self].row.subscription_id .. " is not valid for lifecycle '" .. lifecycle .. "': "
      .. table.concat(problems, "; "))
  end
  return true
end

-- ---- relations ----

-- Instances of this subscription and the instances (of other subscriptions) that use them.
local in_use_by_sql = [[
SELECT r.depends_on_id::text AS block_id, r.in_use_by_id::text AS instance_id,
       i.subscription_id::text AS subscription_id, s.status
  FROM subscription_instance_relations r
  JOIN subscription_instances i ON i.subscription_instance_id = r.in_use_by_id
  JOIN subscriptions s ON s.subscription_id = i.subscription_id
 WHERE r.depends_on_id IN (SELECT subscription_instance_id FROM subscription_instances
                            WHERE subscription_id = $1::uuid)
   AND i.subscription_id <> $1::uuid]]

-- Subscriptions using a block of this one: {{subscription_id, status}...} (distinct, sorted).
function methods.in_use_by(self)
  if not D[self].stored then
    return {}
  end
  local seen, out = {}, {}
  for _, r in ipairs(db.must(in_use_by_sql, D[self].row.subscription_id)) do
    if not seen[r.subscription_id] then
      seen[r.subscription_id] = true
      out[#out + 1] = { subscription_id = r.subscription_id, status = r.status }
    end
  end
  table.sort(out, function(a, b)
    return a.subscription_id < b.subscription_id
  end)
  return out
end

-- Subscriptions whose blocks this one references: {{subscription_id, status}...}.
function methods.depends_on(self)
  local ids, seen = {}, {}
  local function walk(b)
    local d = D[b]
    if seen[b] then
      return
    end
    seen[b] = true
    if d.foreign then
      ids[d.owner] = true
      return
    end
    for _, f in ipairs(d.def.fields) do
      local v = d.values[f.name]
      if f.kind == "list" then
        for _, c in ipairs(v or {}) do
          walk(c)
        end
      elseif f.kind ~= "scalar" and v then
        walk(v)
      end
    end
  end
  for _, f in ipairs(D[self].def.fields) do
    local v = D[self].roots[f.name]
    if f.kind == "list" then
      for _, c in ipairs(v or {}) do
        walk(c)
      end
    elseif v then
      walk(v)
    end
  end
  local list = {}
  for id in pairs(ids) do
    list[#list + 1] = id
  end
  table.sort(list)
  if #list == 0 then
    return {}
  end
  local rows = db.must("SELECT subscription_id::text AS subscription_id, status FROM subscriptions "
    .. "WHERE subscription_id = ANY($1::uuid[]) ORDER BY 1", "{" .. table.concat(list, ",") .. "}")
  return rows
end

-- Block level: the instances that use this block {{subscription_instance_id, subscription_id}...}.
function M.block_in_use_by(block)
  if not is_block(block) then
    raise("orch.model.in_use_by expects a block")
  end
  return db.must([[SELECT i.subscription_instance_id::text AS subscription_instance_id,
      i.subscription_id::text AS subscription_id
    FROM subscription_instance_relations r JOIN subscription_instances i ON i.subscription_instance_id = r.in_use_by_id
    WHERE r.depends_on_id = $1::uuid ORDER BY 2, 1]], D[block].id)
end

-- Block level: the blocks this block holds or references, in field order.
function M.block_depends_on(block)
  if not is_block(block) then
    raise("orch.model.depends_on expects a block")
  end
  local d, out = D[block], {}
  for _, f in ipairs(d.def.fields) do
    local v = d.values[f.name]
    if f.kind == "list" then
      for _, c in ipairs(v or {}) do
        out[#out + 1] = c
      end
    elseif f.kind ~= "scalar" and v ~= nil then
      out[#out + 1] = v
    end
  end
  return out
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

-- ---- save ----

-- The rows the tree stands for: instances, values and relations owned by it.
function M.desired(self)
  local d = D[self]
  local sub_id = d.row.subscription_id
  local out = { instances = {}, values = {}, relations = {} }
  local function visit(b, parent, attr, order)
    local bd = D[b]
    if parent then
      local key = parent .. "|" .. bd.id .. "|" .. order
      if out.relations[key] then
        error("block " .. bd.def.name .. " " .. bd.id .. " is linked twice in " .. attr, 0)
      end
      out.relations[key] = attr
    end
    if bd.owner ~= sub_id then
      return -- a block of another subscription: only the relation is ours
    end
    if out.instances[bd.id] then
      error("block " .. bd.def.name .. " " .. bd.id .. " appears twice in subscription " .. sub_id, 0)
    end
    out.instances[bd.id] = { block = bd.def.name, label = bd.label }
    for _, f in ipairs(bd.def.fields) do
      local v = bd.values[f.name]
      if f.kind == "scalar" then
        if v ~= nil then
          out.values[bd.id .. "|" .. f.name] = f.type.format(v)
        elseif bd.invalid and bd.invalid[f.name] then
          out.values[bd.id .. "|" .. f.name] = bd.invalid[f.name].value -- kept as stored
        end
      elseif f.kind == "list" then
        for i, c in ipairs(v or {}) do
          visit(c, bd.id, f.name, i - 1)
        end
      elseif v ~= nil then
        visit(v, bd.id, f.name, 0)
      end
    end
  end
  for _, f in ipairs(d.def.fields) do
    local v = d.roots[f.name]
    if f.kind == "list" then
      for _, c in ipairs(v or {}) do
        if D[c].owner ~= sub_id then
          error("a block of subscription " .. D[c].owner .. " cannot be a root block of " .. sub_id, 0)
        end
        visit(c)
      end
    elseif v ~= nil then
      if D[v].owner ~= sub_id then
        error("a block of subscription " .. D[v].owner .. " cannot be a root block of " .. sub_id, 0)
      end
      visit(v)
    end
  end
  return out
end

local row_columns = { "description", "status", "customer_id", "insync", "note", "start_date", "end_date" }

-- What save would write: {subscription = "insert"|"update"|nil, instances = {...}, ...} with counts.
local function plan(self)
  local d = D[self]
  local want = M.desired(self)
  local have = d.snapshot or { instances = {}, values = {}, relations = {} }
  local p = { ins_inst = {}, upd_inst = {}, del_inst = {}, ins_val = {}, upd_val = {}, del_val = {},
    ins_rel = {}, del_rel = {}, want = want }
  if not d.stored then
    p.subscription = "insert"
  else
    for _, k in ipairs(row_columns) do
      if d.row[k] ~= d.snapshot_row[k] then
        p.subscription = "update"
      end
    end
  end
  for id, i in pairs(want.instances) do
    local old = have.instances[id]
    if not old then
      p.ins_inst[#p.ins_inst + 1] = { id = id, block = i.block, label = i.label or null }
    elseif old.label ~= i.label then
      p.upd_inst[#p.upd_inst + 1] = { id = id, label = i.label or null }
    end
  end
  for id in pairs(have.instances) do
    if not want.instances[id] then
      p.del_inst[#p.del_inst + 1] = id
    end
  end
  local stored_ids = d.stored and d.stored.values or {}
  local value_ids = {}
  for _, v in ipairs(stored_ids) do
    local key = v.i .. "|" .. v.rt
    if value_ids[key] then
      if want.instances[v.i] then
        p.del_val[#p.del_val + 1] = v.id -- a second row for a scalar field
      end
    else
      value_ids[key] = v.id
    end
  end
  for key, text in pairs(want.values) do
    local old = have.values[key]
    if old == nil then
      local i, rt = key:match("^([^|]+)|(.+)$")
      p.ins_val[#p.ins_val + 1] = { i = i, rt = rt, v = text }
    elseif old ~= text then
      p.upd_val[#p.upd_val + 1] = { id = value_ids[key], v = text }
    end
  end
  for key in pairs(have.values) do
    local i = key:match("^([^|]+)|")
    if want.values[key] == nil and want.instances[i] then
      p.del_val[#p.del_val + 1] = value_ids[key]
    end
  end
  for key, attr in pairs(want.relations) do
    local old = have.relations[key]
    if old == nil or old ~= attr then
      local a, c, o = key:match("^([^|]+)|([^|]+)|(%d+)$")
      p.ins_rel[#p.ins_rel + 1] = { p = a, c = c, o = tonumber(o), a = attr }
      if old ~= nil then
        p.del_rel[#p.del_rel + 1] = { p = a, c = c, o = tonumber(o) }
      end
    end
  end
  for key in pairs(have.relations) do
    local a, c, o = key:match("^([^|]+)|([^|]+)|(%d+)$")
    if want.relations[key] == nil and want.instances[a] then
      p.del_rel[#p.del_rel + 1] = { p = a, c = c, o = tonumber(o) }
    end
  end
  return p
end

local function count_of(p)
  return (p.subscription and 1 or 0) + #p.ins_inst + #p.upd_inst + #p.del_inst + #p.ins_val + #p.upd_val
    + #p.del_val + #p.ins_rel + #p.del_rel
end

-- Number of rows save would write (0 = nothing changed).
function methods.changes(self)
  return count_of(plan(self))
end

local function arr(t)
  return json.encode(json.array(t))
end

-- Phase 1: the subscription row and new or relabelled instances.
local function write_instances(self, p)
  local d = D[self]
  local r = d.row
  local id = r.subscription_id
  if p.subscription == "insert" then
    db.must([[INSERT INTO subscriptions (subscription_id, description, status, product_id, customer_id, insync,
      start_date, end_date, note, version) VALUES ($1::uuid, $2, $3, $4::uuid, $5, $6, $7::timestamptz,
      $8::timestamptz, $9, 1)]], id, r.description, r.status, d.product.product_id, r.customer_id, r.insync,
      r.start_date, r.end_date, r.note)
  elseif p.subscription == "update" then
    local row = db.one([[UPDATE subscriptions SET description = $2, status = $3, customer_id = $4, insync = $5,
      start_date = $6::timestamptz, end_date = $7::timestamptz, note = $8 WHERE subscription_id = $1::uuid
      RETURNING version]], id, r.description, r.status, r.customer_id, r.insync, r.start_date, r.end_date, r.note)
    if not row then
      error("subscription " .. id .. " no longer exists", 0)
    end
    r.version = row.version
  end
  if #p.ins_inst > 0 then
    local _, n = db.must([[INSERT INTO subscription_instances (subscription_instance_id, subscription_id,
        product_block_id, label)
      SELECT x.id, $2::uuid, b.product_block_id, x.label
        FROM json_to_recordset($1::json) AS x(id uuid, block text, label text)
        JOIN product_blocks b ON b.name = x.block]], arr(p.ins_inst), id)
    if n ~= #p.ins_inst then
      error("some product blocks of subscription " .. id .. " are missing in the database "
        .. "(run `orchestrator catalog apply`)", 0)
    end
  end
  if #p.upd_inst > 0 then
    db.must([[UPDATE subscription_instances i SET label = x.label
      FROM json_to_recordset($1::json) AS x(id uuid, label text) WHERE i.subscription_instance_id = x.id]],
      arr(p.upd_inst))
  end
end

-- Phase 2: what goes away, and the values.
local function write_rows(self, p)
  local id = D[self].row.subscription_id
  if #p.del_rel > 0 then
    db.must([[DELETE FROM subscription_instance_relations r
      USING json_to_recordset($1::json) AS x(p uuid, c uuid, o int)
      WHERE r.in_use_by_id = x.p AND r.depends_on_id = x.c AND r.order_id = x.o]], arr(p.del_rel))
  end
  if #p.del_inst > 0 then
    db.must([[DELETE FROM subscription_instances WHERE subscription_id = $2::uuid
      AND subscription_instance_id IN (SELECT value::uuid FROM json_array_elements_text($1::json))]],
      arr(p.del_inst), id)
  end
  if #p.del_val > 0 then
    db.must([[DELETE FROM subscription_instance_values
      WHERE subscription_instance_value_id IN (SELECT value::uuid FROM json_array_elements_text($1::json))]],
      arr(p.del_val))
  end
  if #p.upd_val > 0 then
    db.must([[UPDATE subscription_instance_values v SET value = x.v
      FROM json_to_recordset($1::json) AS x(id uuid, v text) WHERE v.subscription_instance_value_id = x.id]],
      arr(p.upd_val))
  end
  if #p.ins_val > 0 then
    local _, n = db.must([[INSERT INTO subscription_instance_values (subscription_instance_id, resource_type_id, value)
      SELECT x.i, rt.resource_type_id, x.v FROM json_to_recordset($1::json) AS x(i uuid, rt text, v text)
        JOIN resource_types rt ON rt.resource_type = x.rt]], arr(p.ins_val))
    if n ~= #p.ins_val then
      error("some resource types of subscription " .. id .. " are missing in the database "
        .. "(run `orchestrator catalog apply`)", 0)
    end
  end
end

-- Phase 3: relations, once every subscription of the save has its instances.
local function write_relations(p)
  if #p.ins_rel > 0 then
    db.must([[INSERT INTO subscription_instance_relations (in_use_by_id, depends_on_id, order_id, domain_model_attr)
      SELECT x.p, x.c, x.o, x.a FROM json_to_recordset($1::json) AS x(p uuid, c uuid, o int, a text)]],
      arr(p.ins_rel))
  end
end

-- Re-read the value ids written by this save (new rows got ids from the database).
local function refresh_stored(self, p)
  local d = D[self]
  local stored = { instances = {}, values = {} }
  for iid, i in pairs(p.want.instances) do
    stored.instances[iid] = i
  end
  if #p.ins_val > 0 or not d.stored then
    local ids = {}
    for iid in pairs(p.want.instances) do
      ids[#ids + 1] = iid
    end
    if #ids > 0 then
      stored.values = db.must([[SELECT v.subscription_instance_value_id::text AS id,
          v.subscription_instance_id::text AS i, rt.resource_type AS rt, v.value AS v
        FROM subscription_instance_values v JOIN resource_types rt ON rt.resource_type_id = v.resource_type_id
        WHERE v.subscription_instance_id = ANY($1::uuid[]) ORDER BY v.value]], "{" .. table.concat(ids, ",") .. "}")
    end
  else
    -- Updates keep the row ids: drop only the rows this save deleted.
    local gone = {}
    for _, vid in ipairs(p.del_val) do
      gone[vid] = true
    end
    stored.values = {}
    for _, v in ipairs(d.stored.values) do
      if not gone[v.id] and p.want.instances[v.i] then
        stored.values[#stored.values + 1] = v
      end
    end
  end
  d.stored = stored
  d.snapshot = p.want
  d.snapshot_row = {}
  for k, v in pairs(d.row) do
    d.snapshot_row[k] = v
  end
end

-- Save subscriptions inside the caller's transaction (the workflow engine calls
-- this inside a step's transaction). Writes only what changed; returns the
-- number of rows written.
function M.save_all(list)
  local total = 0
  local subs, plans, seen = {}, {}, {}
  for i, sub in ipairs(list) do
    if not is_subscription(sub) then
      raise("orch.model.save_all: item " .. i .. " is not a subscription")
    end
    if not seen[sub] then -- the same object listed twice is saved once
      seen[sub] = true
      subs[#subs + 1] = sub
      plans[#subs] = plan(sub)
    end
  end
  -- In phases across all of them, so that subscriptions that reference each other's new
  -- blocks can be saved together in any order. Nothing is written unless all can be.
  local changed = {}
  for i, sub in ipairs(subs) do
    local n = count_of(plans[i])
    if n > 0 then
      M.check_savable(sub)
      changed[#changed + 1] = i
      total = total + n
    end
  end
  for _, i in ipairs(changed) do
    write_instances(subs[i], plans[i])
  end
  for _, i in ipairs(changed) do
    write_rows(subs[i], plans[i])
  end
  for _, i in ipairs(changed) do
    write_relations(plans[i])
  end
  for _, i in ipairs(changed) do
    refresh_stored(subs[i], plans[i])
  end
  return total
end

-- Save one subscription in its own transaction (or the caller's, if one is open).
function methods.save(self)
  local p = plan(self)
  local n = count_of(p)
  if n == 0 then
    return 0 -- nothing changed: not even a BEGIN
  end
  M.check_savable(self)
  db.transaction(function()
    write_instances(self, p)
    write_rows(self, p)
    write_relations(p)
    refresh_stored(self, p)
  end)
  return n
end

-- ---- serialisation ----

local function scalar_json(f, v)
  if v == nil then
    return null
  end
  return types.to_json(f.type, v)
end

-- Key order of the serialised model (stable JSON bytes): the core keys, then the
-- fields in declaration order, then the computed fields; keys added later (the API's
-- in_use_by_ids...) follow sorted.
local BLOCK_KEYS = { "name", "label", "subscription_instance_id", "owner_subscription_id" }
local PRODUCT_KEYS = { "product_id", "name", "description", "product_type", "tag", "status", "created_at", "end_date" }
local SUB_KEYS = { "product", "customer_id", "subscription_id", "description", "status", "insync", "start_date",
  "end_date", "note", "version" }

local function key_order(def, base, cache_key)
  local keys = def[cache_key]
  if keys then
    return keys
  end
  keys = {}
  for _, k in ipairs(base) do
    keys[#keys + 1] = k
  end
  for _, f in ipairs(def.fixed_inputs or {}) do
    keys[#keys + 1] = f.name
  end
  for _, f in ipairs(def.fields) do
    keys[#keys + 1] = f.name
  end
  for _, c in ipairs(def.computed or {}) do
    keys[#keys + 1] = c.name
  end
  def[cache_key] = keys
  return keys
end

local function block_table(b, on_path)
  local d = D[b]
  if on_path[b] then
    return json.ordered({ name = d.def.name, subscription_instance_id = d.id, owner_subscription_id = d.owner },
      BLOCK_KEYS)
  end
  on_path[b] = true
  local t = json.ordered({ name = d.def.name, label = d.label or null, subscription_instance_id = d.id,
    owner_subscription_id = d.owner }, key_order(d.def, BLOCK_KEYS, "__json_keys"))
  for _, f in ipairs(d.def.fields) do
    local v = d.values[f.name]
    if f.kind == "scalar" then
      local bad = d.invalid and d.invalid[f.name]
      if bad then
        t[f.name] = bad.value -- the raw stored text
        t.invalid_values = t.invalid_values or json.ordered({})
        t.invalid_values[f.name] = bad.error
      else
        t[f.name] = scalar_json(f, v)
      end
    elseif f.kind == "list" then
      local list = json.array({})
      for i, c in ipairs(v or {}) do
        list[i] = block_table(c, on_path)
      end
      t[f.name] = list
    else
      t[f.name] = v and block_table(v, on_path) or null
    end
  end
  for _, c in ipairs(d.def.computed) do
    local v = c.fn(b)
    if v == nil then
      v = null
    end
    t[c.name] = v
  end
  on_path[b] = nil
  return t
end

-- The subscription as a plain table (what the state and the domain-model API carry).
function methods.to_table(self)
  local d = D[self]
  local r = d.row
  local t = json.ordered({ subscription_id = r.subscription_id, description = r.description, status = r.status,
    customer_id = r.customer_id, insync = r.insync, start_date = r.start_date or null,
    end_date = r.end_date or null, note = r.note or null, version = r.version, product = {} },
    key_order(d.def, SUB_KEYS, "__json_keys"))
  t.product = json.ordered({}, PRODUCT_KEYS)
  for k, v in pairs(d.product) do
    t.product[k] = v
  end
  t.product.created_at = t.product.created_at or null
  t.product.end_date = t.product.end_date or null
  for _, f in ipairs(d.def.fixed_inputs) do
    t[f.name] = scalar_json(f, d.fixed[f.name])
  end
  for _, f in ipairs(d.def.fields) do
    local v = d.roots[f.name]
    if f.kind == "list" then
      local list = json.array({})
      for i, c in ipairs(v or {}) do
        list[i] = block_table(c, {})
      end
      t[f.name] = list
    else
      t[f.name] = v and block_table(v, {}) or null
    end
  end
  return t
end

-- Whether the subscription exists in the database (it was loaded or saved).
function M.is_stored(self)
  return D[self].stored ~= nil
end

-- The product type definition of a subscription.
function M.definition(self)
  return D[self].def
end

return M
