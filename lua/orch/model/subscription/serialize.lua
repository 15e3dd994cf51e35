-- A subscription tree as the JSON core's API shows (key order of the definitions).
-- Part of orch.model.subscription, which calls this with its module table and internals.

local types = require("orch.model.types")
local json = require("orch.json")

return function(M, internals)
  local D = internals.D
  local null = internals.null
  local methods = internals.methods

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
  local PRODUCT_KEYS = { "product_id", "name", "description", "product_type", "tag", "status", "created_at",
    "end_date" }
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
end
