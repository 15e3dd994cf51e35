-- orch.model: the product modelling DSL (see docs/products.md) and the
-- subscription runtime. Definitions are registered while product scripts
-- load; everything that touches the database runs later, on a request or a
-- workflow step.

local registry = require("orch.model.registry")
local types = require("orch.model.types")
local subscription = require("orch.model.subscription")

local model = {}

-- ---- definitions ----
model.block = registry.block
model.product_type = registry.product_type
model.scalar_type = registry.scalar_type
model.enum = registry.enum
model.owned = registry.kinds.owned
model.optional = registry.kinds.optional
model.list = registry.kinds.list
model.ref = registry.kinds.ref

-- VLAN ranges as a value: orch.model.vlan_ranges("5,10-20") -> object or nil, message.
model.vlan_ranges = types.vlan_ranges

model.lifecycles = registry.lifecycles
model.safe_users = subscription.safe_users

-- Read-only views of what is registered (for the API and the catalogue).
function model.blocks()
  return registry.block_list
end
function model.product_types()
  return registry.product_type_list
end
function model.product(name)
  local entry = registry.products[name]
  return entry and entry.def
end

-- ---- subscriptions ----
model.create = subscription.create
model.load = subscription.load
model.get = subscription.get
model.save_all = subscription.save_all
model.check_savable = subscription.check_savable
model.is_subscription = subscription.is_subscription
model.is_block = subscription.is_block
model.is_stored = subscription.is_stored
model.in_use_by = subscription.block_in_use_by -- block level; sub:in_use_by() for subscriptions
model.depends_on = subscription.block_depends_on

-- The catalogue sync (orchestrator catalog plan|apply), for tests and tools.
function model.catalog_run(arg)
  return require("orch.model.catalog").run(arg)
end

-- The names workflows may link to: {products = set, product_types = set, product_tags = set}.
function model.known_names()
  local known = { products = {}, product_types = {}, product_tags = {} }
  for name, entry in pairs(registry.products) do
    known.products[name] = true
    if entry.row and entry.row.tag then
      known.product_tags[entry.row.tag] = true
    end
  end
  for name in pairs(registry.product_types) do
    known.product_types[name] = true
  end
  return known
end

-- Cross-file checks, called by the host once every script has loaded.
function model.finalize()
  return registry.finalize()
end

return model
