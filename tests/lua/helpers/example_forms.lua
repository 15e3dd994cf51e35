-- The example-orchestrator's create_node and create_l2vpn forms written with
-- orch.forms, and a context with fake data behind the callbacks that the
-- engine (NetBox, the database) would supply. Used by forms_example_spec.

local F = require("orch.forms")

local M = {}

M.NODE_STATUSES = { "offline", "active", "planned", "staged", "failed", "inventory", "decommissioning" }

local function customer_options(_, ctx)
  local out = {}
  for i, c in ipairs(ctx.customers()) do
    out[i] = { c.customer_id, c.fullname }
  end
  return out
end

-- create_node: after the product page, a page of node settings, then a summary.
function M.create_node(state, ctx)
  local product_name = state.product_name
  local node_type = ctx.fixed_input(state.product, "node_type")
  local node = coroutine.yield(F.page({
    title = product_name,
    name = "CreateNodeForm",
    F.callout({
      "callout_1",
      header = "Note",
      message = "Selecting a customer is configurable.",
      message_type = "primary",
    }),
    F.choice({ "customer_id", enum_name = "CustomersEnum", options = customer_options }),
    F.boolean({ "auto_add_interfaces", default = true }),
    F.label({ "node_settings" }),
    F.choice({
      "type_id",
      enum_name = "NodeTypeEnum",
      options = function(_, c)
        local out = {}
        for _, t in ipairs(c.device_types()) do
          if t.manufacturer == node_type then
            out[#out + 1] = { tostring(t.id), t.manufacturer .. " " .. t.model }
          end
        end
        return out
      end,
    }),
    F.choice({
      "role_id",
      enum_name = "NodeRoleEnum",
      options = function(_, c)
        local out = {}
        for i, r in ipairs(c.device_roles()) do
          out[i] = { tostring(r.id), r.name }
        end
        return out
      end,
    }),
    F.choice({
      "site_id",
      enum_name = "SiteEnum",
      options = function(_, c)
        local out = {}
        for i, s in ipairs(c.sites()) do
          out[i] = { tostring(s.id), s.name }
        end
        return out
      end,
    }),
    F.choice({ "node_status", enum_name = "NodeStatusEnum", options = M.NODE_STATUSES }),
    F.string({ "node_name" }),
    F.string({ "node_description", optional = true }),
  }))
  local names = { "role_id", "type_id", "site_id", "node_status", "node_name", "node_description" }
  local column = {}
  for i, n in ipairs(names) do
    column[i] = node[n] == F.null and "None" or tostring(node[n])
  end
  coroutine.yield(F.page({
    title = product_name .. " summary",
    name = "SummaryForm",
    F.summary({ "product_summary", data = { labels = names, columns = { column } } }),
  }))
  return node
end

-- "5,10-12" → {5 = true, 10 = true, 11 = true, 12 = true}; nil when malformed
local function vlan_set(text)
  local set = {}
  for part in tostring(text):gmatch("[^,]+") do
    local a, b = part:match("^%s*(%d+)%s*%-%s*(%d+)%s*$")
    a = a or part:match("^%s*(%d+)%s*$")
    if not a then
      return nil
    end
    for v = tonumber(a), tonumber(b or a) do
      set[v] = true
    end
  end
  return set
end

local function validate_vlan(vlan, values, ctx)
  local set = vlan_set(vlan)
  if not set then
    return nil, "invalid vlan range " .. tostring(vlan)
  end
  if next(set) == nil or (set[0] and next(set, next(set)) == nil) then
    local port = values.ports and values.ports[1]
    if port then
      return nil, ctx.subscription_tag(port) .. " must have a vlan"
    end
    return nil, "vlan must have a value"
  end
end

local function validate_vlan_not_in_use(vlan, values, ctx)
  local used = {}
  for _, port in ipairs(values.ports or {}) do
    for _, v in ipairs(ctx.allocated_vlans(port)) do
      used[#used + 1] = v
    end
  end
  table.sort(used)
  local set = vlan_set(vlan)
  for _, v in ipairs(used) do
    if set[v] then
      return nil, "Vlan(s) " .. table.concat(used, ",") .. " already in use"
    end
  end
end

-- create_l2vpn: page 2's port list must hold exactly the number of ports
-- chosen on page 1, and its vlan validators read the ports chosen before them.
function M.create_l2vpn(state)
  local first = coroutine.yield(F.page({
    title = state.product_name,
    name = "CreateL2vpnForm",
    F.choice({ "customer_id", enum_name = "CustomersEnum", options = customer_options }),
    F.integer({ "number_of_ports", min = 2, max = 8 }),
    F.integer({ "speed" }),
    F.boolean({ "speed_policer", optional = true, default = false }),
  }))
  local n = first.number_of_ports
  local second = coroutine.yield(F.page({
    title = state.product_name,
    name = "SelectPortsForm",
    F.multi_choice({
      "ports",
      enum_name = "PortsEnum",
      options = function(_, c)
        local out = {}
        for i, s in ipairs(c.subscriptions({ product_type = "Port", port_mode = "tagged" })) do
          out[i] = { s.subscription_id, s.description }
        end
        return out
      end,
      min_items = n,
      max_items = n,
      unique = true,
    }),
    F.string({ "vlan", default = "0", validate = { validate_vlan, validate_vlan_not_in_use } }),
  }))
  local out = {}
  for k, v in pairs(first) do
    out[k] = v
  end
  for k, v in pairs(second) do
    out[k] = v
  end
  return out
end

M.PRODUCTS = {
  { product_id = "6f3d7a4c-0d6e-4b44-9d5c-1a2b3c4d5e01", name = "node Nokia", node_type = "Nokia", tag = "NODE" },
  { product_id = "6f3d7a4c-0d6e-4b44-9d5c-1a2b3c4d5e02", name = "node Cisco", node_type = "Cisco", tag = "NODE" },
  { product_id = "6f3d7a4c-0d6e-4b44-9d5c-1a2b3c4d5e03", name = "l2vpn", tag = "L2VPN" },
}

M.PORTS = {
  { subscription_id = "0b0e9a52-3c59-4a43-a9a4-00000000000a", description = "port A", tag = "PORT", vlans = { 5, 6 } },
  { subscription_id = "0b0e9a52-3c59-4a43-a9a4-00000000000b", description = "port B", tag = "PORT", vlans = {} },
  { subscription_id = "0b0e9a52-3c59-4a43-a9a4-00000000000c", description = "port C", tag = "PORT", vlans = { 9 } },
}

-- A context with the callbacks the forms above and the first pages use.
function M.context(overrides)
  local by_id = {}
  for _, p in ipairs(M.PRODUCTS) do
    by_id[p.product_id] = p
  end
  local ports = {}
  for _, p in ipairs(M.PORTS) do
    ports[p.subscription_id] = p
  end
  local ctx = {
    calls = {},
    products = function(query)
      local out = {}
      for _, p in ipairs(M.PRODUCTS) do
        local kind = p.tag == "NODE" and "create_node" or "create_l2vpn"
        if query.workflow == nil or query.workflow == kind then
          out[#out + 1] = p
        end
      end
      return out
    end,
    fixed_input = function(product_id, name)
      return by_id[product_id][name]
    end,
    customers = function()
      return {
        { customer_id = "c0ffee00-0000-4000-8000-000000000001", fullname = "Acme" },
        { customer_id = "c0ffee00-0000-4000-8000-000000000002", fullname = "Globex" },
      }
    end,
    device_types = function()
      return {
        { id = 1, manufacturer = "Nokia", model = "7750 SR" },
        { id = 2, manufacturer = "Cisco", model = "ASR 9000" },
        { id = 3, manufacturer = "Nokia", model = "7250 IXR" },
      }
    end,
    device_roles = function()
      return { { id = 1, name = "core" }, { id = 2, name = "edge" } }
    end,
    sites = function()
      return { { id = 7, name = "Amsterdam" } }
    end,
    subscriptions = function(query)
      local out = {}
      if query.product_type == "Port" then
        for i, p in ipairs(M.PORTS) do
          out[i] = p
        end
      end
      return out
    end,
    subscription_tag = function(id)
      return ports[id].tag
    end,
    allocated_vlans = function(id)
      return ports[id].vlans
    end,
  }
  for k, v in pairs(overrides or {}) do
    ctx[k] = v
  end
  return ctx
end

return M
