-- The product registry of one Lua state: blocks, scalar types and product
-- types registered while the product scripts load. Local mistakes raise at
-- once with the script's file:line; mistakes that need every script (a block
-- that is used but never defined, two products with one name) are collected
-- by finalize() and reported as "file:line: message".

local types = require("orch.model.types")

local registry = {
  blocks = {}, -- name -> block definition
  block_list = {}, -- in registration order
  product_types = {}, -- name -> product type definition
  product_type_list = {},
  products = {}, -- product name -> {def = product type, row = product row}
  product_list = {},
  scalar_types = {}, -- custom scalar types by name
  pending = {}, -- duplicate definitions found while loading, reported by finalize
}

-- Lifecycles of a subscription and how far along each is for `required_from`.
registry.lifecycles = { "initial", "provisioning", "active", "migrating", "disabled", "terminated" }
registry.lifecycle_rank = { initial = 0, provisioning = 1, active = 2, migrating = 0, disabled = 0, terminated = 0 }
local required_rank = { initial = 0, always = 0, provisioning = 1, active = 2, never = math.huge }
registry.product_statuses = { ["active"] = true, ["pre production"] = true, ["phase out"] = true,
  ["end of life"] = true }

-- Names a block field or a product field cannot take (they are attributes or methods).
local reserved_block = { name = true, label = true, subscription_instance_id = true,
  owner_subscription_id = true, in_use_by_ids = true, in_use_by_relations = true, invalid_values = true }
local reserved_subscription = { subscription_id = true, description = true, status = true, customer_id = true,
  insync = true, start_date = true, end_date = true, note = true, version = true, product = true,
  product_id = true, name = true, tag = true, customer_descriptions = true, save = true,
  set_status = true, validate = true, to_table = true, new_block = true, changes = true,
  in_use_by = true, depends_on = true, describe = true }

-- "file:line: " of the code that called the registering function.
local function where(level)
  local _, pos = pcall(error, "", level + 3)
  return pos or ""
end

local function fail(pos, msg)
  error(pos .. msg, 0)
end

-- Definitions are made while the scripts load; finalize() closes the registry.
local function check_open(pos, what)
  if registry.sealed then
    fail(pos, what .. " can only be called while the product scripts load")
  end
end

-- ---- field kinds ----

local kind_mt = { __name = "orch.model.kind" }

local function block_kind(kind, block, opts)
  return setmetatable({ kind = kind, block = block, min = opts and opts.min, max = opts and opts.max }, kind_mt)
end

registry.kinds = {
  owned = function(block)
    return block_kind("owned", block)
  end,
  optional = function(block)
    return block_kind("optional", block)
  end,
  list = function(block, opts)
    return block_kind("list", block, opts or {})
  end,
  ref = function(block)
    return block_kind("ref", block)
  end,
}

local enum_mt = { __name = "orch.model.enum" }

function registry.enum(values)
  local t, err = types.enum(values)
  if not t then
    fail(where(1), err)
  end
  return setmetatable(t, enum_mt)
end

local function is_block_kind(v)
  return getmetatable(v) == kind_mt
end

-- Check one field descriptor {name, type, required_from=, default=, description=}.
local function read_field(pos, owner, f, seen, reserved)
  if type(f) ~= "table" then
    fail(pos, owner .. ": a field must be a table {name, type, ...}, got " .. type(f))
  end
  local name, ftype = f[1] or f.name, f[2] or f.type
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    fail(pos, owner .. ": field name must be an identifier, got " .. types.quote(name))
  end
  local where_name = owner .. "." .. name
  if seen[name] then
    fail(pos, where_name .. ": duplicate field '" .. name .. "'")
  end
  if reserved[name] then
    fail(pos, where_name .. ": '" .. name .. "' is reserved")
  end
  seen[name] = true
  local field = { name = name, description = f.description, default = f.default, pos = pos }
  for k in pairs(f) do
    if k ~= 1 and k ~= 2 and k ~= "name" and k ~= "type" and k ~= "required_from" and k ~= "default"
      and k ~= "description" then
      fail(pos, where_name .. ": unknown option '" .. tostring(k) .. "'")
    end
  end
  local rf = f.required_from
  if is_block_kind(ftype) then
    field.kind, field.block, field.min, field.max = ftype.kind, ftype.block, ftype.min, ftype.max
    if type(field.block) ~= "string" then
      fail(pos, where_name .. ": expected a block name, got " .. type(field.block))
    end
    if field.kind == "list" then
      field.min = field.min or 0
      if math.type(field.min) ~= "integer" or field.min < 0
        or (field.max ~= nil and math.type(field.max) ~= "integer") then
        fail(pos, where_name .. ": min and max must be non-negative integers")
      end
      if field.max and field.min > field.max then
        fail(pos, where_name .. ": min (" .. field.min .. ") is greater than max (" .. field.max .. ")")
      end
      if rf ~= nil then
        fail(pos, where_name .. ": a list takes min/max, not required_from")
      end
    elseif field.kind == "owned" and rf ~= nil then
      fail(pos, where_name .. ": an owned block is required in every lifecycle; use orch.model.optional "
        .. "for one that may be missing")
    end
    if field.default ~= nil then
      fail(pos, where_name .. ": only scalar fields take a default")
    end
  elseif getmetatable(ftype) == enum_mt then
    field.kind, field.type = "scalar", ftype
  elseif type(ftype) == "string" then
    field.kind, field.type_name = "scalar", ftype -- resolved in finalize (types may come from later files)
  else
    fail(pos, where_name .. ": unknown type " .. types.quote(ftype))
  end
  if field.kind == "owned" then
    rf = "initial"
  end
  rf = rf or "never"
  if field.kind ~= "list" and not required_rank[rf] then
    fail(pos, where_name .. ": required_from must be initial, provisioning, active or never, got "
      .. types.quote(rf))
  end
  field.required_from = field.kind ~= "list" and rf or nil
  field.required_rank = required_rank[rf]
  return field
end

local function read_fields(pos, owner, list, reserved)
  if type(list) ~= "table" then
    fail(pos, owner .. ": fields must be a list")
  end
  local seen, out, by_name = {}, {}, {}
  for i, f in ipairs(list) do
    out[i] = read_field(pos, owner, f, seen, reserved)
    by_name[out[i].name] = out[i]
  end
  return out, by_name
end

local function check_keys(pos, what, t, allowed)
  for k in pairs(t) do
    if not allowed[k] then
      fail(pos, what .. ": unknown key '" .. tostring(k) .. "'")
    end
  end
end

-- ---- registration ----

function registry.block(spec)
  local pos = where(1)
  check_open(pos, "orch.model.block")
  if type(spec) ~= "table" then
    fail(pos, "orch.model.block expects a table")
  end
  check_keys(pos, "block " .. tostring(spec.name), spec, { name = true, tag = true, description = true,
    fields = true, computed = true, status = true })
  if type(spec.name) ~= "string" or spec.name == "" then
    fail(pos, "block: name must be a non-empty string")
  end
  local name = spec.name
  if spec.description ~= nil and type(spec.description) ~= "string" then
    fail(pos, "block " .. name .. ": description must be a string")
  end
  if spec.tag ~= nil and (type(spec.tag) ~= "string" or #spec.tag > 20) then
    fail(pos, "block " .. name .. ": tag must be a string of at most 20 characters")
  end
  local fields, by_name = read_fields(pos, name, spec.fields or {}, reserved_block)
  local computed = {}
  for cname, fn in pairs(spec.computed or {}) do
    if type(fn) ~= "function" then
      fail(pos, name .. "." .. tostring(cname) .. ": a computed field must be a function")
    end
    if by_name[cname] or reserved_block[cname] then
      fail(pos, name .. "." .. cname .. ": computed field clashes with a field of that name")
    end
    computed[#computed + 1] = { name = cname, fn = fn }
  end
  table.sort(computed, function(a, b)
    return a.name < b.name
  end)
  local def = { name = name, tag = spec.tag, description = spec.description or name, status = spec.status or "active",
    fields = fields, by_name = by_name, computed = computed, pos = pos }
  if not registry.product_statuses[def.status] then
    fail(pos, "block " .. name .. ": unknown status " .. types.quote(def.status))
  end
  if registry.blocks[name] then
    registry.pending[#registry.pending + 1] = pos .. "block '" .. name .. "' is already defined at "
      .. registry.blocks[name].pos:gsub(": $", "")
  else
    registry.blocks[name] = def
    registry.block_list[#registry.block_list + 1] = def
  end
  return def
end

function registry.scalar_type(spec)
  local pos = where(1)
  check_open(pos, "orch.model.scalar_type")
  if type(spec) ~= "table" or type(spec.name) ~= "string" then
    fail(pos, "orch.model.scalar_type expects {name = ..., parse = fn, format = fn}")
  end
  check_keys(pos, "scalar type " .. spec.name, spec, { name = true, parse = true, format = true,
    validate = true, json = true, description = true })
  if types.builtin[spec.name] then
    fail(pos, "scalar type '" .. spec.name .. "' is built in")
  end
  for _, k in ipairs({ "parse", "format" }) do
    if type(spec[k]) ~= "function" then
      fail(pos, "scalar type " .. spec.name .. ": " .. k .. " must be a function")
    end
  end
  for _, k in ipairs({ "validate", "json" }) do
    if spec[k] ~= nil and type(spec[k]) ~= "function" then
      fail(pos, "scalar type " .. spec.name .. ": " .. k .. " must be a function")
    end
  end
  local t = types.custom(spec)
  t.pos = pos
  if registry.scalar_types[spec.name] then
    registry.pending[#registry.pending + 1] = pos .. "scalar type '" .. spec.name .. "' is already defined at "
      .. registry.scalar_types[spec.name].pos:gsub(": $", "")
  else
    registry.scalar_types[spec.name] = t
  end
  return t
end

local product_keys = { name = true, description = true, tag = true, status = true, fixed_inputs = true }

function registry.product_type(spec)
  local pos = where(1)
  check_open(pos, "orch.model.product_type")
  if type(spec) ~= "table" then
    fail(pos, "orch.model.product_type expects a table")
  end
  check_keys(pos, "product type " .. tostring(spec.name), spec, { name = true, fixed_inputs = true, fields = true,
    products = true, validate = true, description = true })
  if type(spec.name) ~= "string" or spec.name == "" then
    fail(pos, "product type: name must be a non-empty string")
  end
  local name = spec.name
  for _, k in ipairs({ "validate", "description" }) do
    if spec[k] ~= nil and type(spec[k]) ~= "function" then
      fail(pos, "product type " .. name .. ": " .. k .. " must be a function")
    end
  end
  local fixed, fixed_by_name = read_fields(pos, name, spec.fixed_inputs or {}, reserved_subscription)
  for _, f in ipairs(fixed) do
    if f.kind ~= "scalar" then
      fail(pos, name .. "." .. f.name .. ": a fixed input must be a scalar type")
    end
  end
  local fields, by_name = read_fields(pos, name, spec.fields or {}, reserved_subscription)
  if #fields == 0 then
    fail(pos, "product type " .. name .. ": needs at least one root block field")
  end
  for _, f in ipairs(fields) do
    if f.kind == "scalar" then
      fail(pos, name .. "." .. f.name .. ": a product's fields are blocks (orch.model.owned/optional/list)")
    elseif f.kind == "ref" then
      fail(pos, name .. "." .. f.name .. ": a root field cannot reference another subscription's block")
    elseif fixed_by_name[f.name] then
      fail(pos, name .. "." .. f.name .. ": clashes with the fixed input of that name")
    end
  end
  local def = { name = name, fixed_inputs = fixed, fixed_by_name = fixed_by_name, fields = fields,
    by_name = by_name, validate = spec.validate, describe = spec.description, pos = pos, products = {} }
  if type(spec.products) ~= "table" or #spec.products == 0 then
    fail(pos, "product type " .. name .. ": needs a non-empty list of products")
  end
  for _, p in ipairs(spec.products) do
    if type(p) ~= "table" or type(p.name) ~= "string" or p.name == "" then
      fail(pos, "product type " .. name .. ": every product needs a name")
    end
    check_keys(pos, "product " .. p.name, p, product_keys)
    if type(p.description) ~= "string" or type(p.tag) ~= "string" or #p.tag > 20 then
      fail(pos, "product " .. p.name .. ": needs a description and a tag (at most 20 characters)")
    end
    local status = p.status or "active"
    if not registry.product_statuses[status] then
      fail(pos, "product " .. p.name .. ": unknown status " .. types.quote(status))
    end
    local values = p.fixed_inputs or {}
    for k in pairs(values) do
      if not fixed_by_name[k] then
        fail(pos, "product " .. p.name .. ": unknown fixed input '" .. tostring(k) .. "'")
      end
    end
    for _, f in ipairs(fixed) do
      if values[f.name] == nil then
        fail(pos, "product " .. p.name .. ": missing a value for fixed input '" .. f.name .. "'")
      end
    end
    local row = { name = p.name, description = p.description, tag = p.tag, status = status, product_type = name,
      fixed_inputs = values, pos = pos }
    def.products[#def.products + 1] = row
    if registry.products[p.name] then
      registry.pending[#registry.pending + 1] = pos .. "product '" .. p.name .. "' is already defined at "
        .. registry.products[p.name].row.pos:gsub(": $", "")
    else
      registry.products[p.name] = { def = def, row = row }
      registry.product_list[#registry.product_list + 1] = registry.products[p.name]
    end
  end
  if registry.product_types[name] then
    registry.pending[#registry.pending + 1] = pos .. "product type '" .. name .. "' is already defined at "
      .. registry.product_types[name].pos:gsub(": $", "")
  else
    registry.product_types[name] = def
    registry.product_type_list[#registry.product_type_list + 1] = def
  end
  return def
end

-- ---- cross-file checks ----

local function resolve_field(f, owner, errors)
  if f.kind == "scalar" then
    if not f.type then
      f.type = types.builtin[f.type_name] or registry.scalar_types[f.type_name]
      if not f.type then
        errors[#errors + 1] = f.pos .. owner .. "." .. f.name .. ": unknown type '" .. f.type_name .. "'"
        return
      end
    end
    if f.default ~= nil then
      local v, err = f.type.parse(f.default)
      if v == nil then
        errors[#errors + 1] = f.pos .. owner .. "." .. f.name .. ": invalid default: " .. err
      else
        f.default_value = v
      end
    end
  elseif not registry.blocks[f.block] then
    errors[#errors + 1] = f.pos .. owner .. "." .. f.name .. ": block '" .. f.block .. "' is not defined"
  end
end

-- Owned single blocks are created with their parent: a cycle of them never ends.
local function find_owned_cycle(def, path, on_path, errors)
  on_path[def.name] = true
  for _, f in ipairs(def.fields) do
    local child = (f.kind == "owned" or (f.kind == "list" and f.min > 0)) and registry.blocks[f.block]
    if child then
      if on_path[child.name] then
        errors[#errors + 1] = f.pos .. def.name .. "." .. f.name .. ": blocks that own each other ("
          .. table.concat(path, " -> ") .. " -> " .. child.name .. ") would be created without end"
        return true
      end
      path[#path + 1] = child.name
      if find_owned_cycle(child, path, on_path, errors) then
        return true
      end
      path[#path] = nil
    end
  end
  on_path[def.name] = nil
  return false
end

function registry.finalize()
  registry.sealed = true
  local errors = {}
  for _, msg in ipairs(registry.pending) do
    errors[#errors + 1] = msg
  end
  for _, def in ipairs(registry.block_list) do
    for _, f in ipairs(def.fields) do
      resolve_field(f, def.name, errors)
    end
  end
  for _, def in ipairs(registry.product_type_list) do
    for _, f in ipairs(def.fixed_inputs) do
      resolve_field(f, def.name, errors)
    end
    for _, f in ipairs(def.fields) do
      resolve_field(f, def.name, errors)
    end
    for _, row in ipairs(def.products) do
      for _, f in ipairs(def.fixed_inputs) do
        local raw = row.fixed_inputs[f.name]
        if f.type and raw ~= nil then
          local v, err = f.type.parse(raw)
          if v == nil then
            errors[#errors + 1] = row.pos .. "product " .. row.name .. ": fixed input " .. f.name .. ": " .. err
          else
            row.fixed_inputs[f.name] = v
          end
        end
      end
    end
  end
  if #errors == 0 then
    for _, def in ipairs(registry.block_list) do
      if find_owned_cycle(def, { def.name }, {}, errors) then
        break
      end
    end
  end
  -- Resource types are global by name: one name, one description.
  registry.resource_types = {}
  for _, def in ipairs(registry.block_list) do
    for _, f in ipairs(def.fields) do
      if f.kind == "scalar" then
        local rt = registry.resource_types[f.name]
        if not rt then
          registry.resource_types[f.name] = { name = f.name, description = f.description, pos = f.pos }
        elseif not rt.description then
          rt.description = f.description -- the first description wins (names are shared by blocks)
        end
      end
    end
  end
  return errors
end

return registry
