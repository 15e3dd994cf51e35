-- The example orchestrator's CoreLink product: a cable between ports of two
-- nodes, with a /127 IPv6 transfer network (NetBox cable, prefix, addresses).

local model = orch.model
local wf = orch.workflow
local kinds = orch.workflows
local F = orch.forms
local nb = require("lib.netbox")
local S = require("lib.shared")

local CORE_LINK_PREFIX = "fc00:0:0:10::/64"

model.block({
  name = "CorePort",
  tag = "CORE_PORT",
  description = "core port product block",
  fields = {
    { "port_name", "string", description = "name of the interface in NetBox" },
    { "enabled", "boolean", required_from = "provisioning", default = true, description = "enabled in IMS" },
    { "ims_id", "integer", required_from = "active" },
    { "nrm_id", "integer", required_from = "active" },
    { "node", model.ref("Node"), required_from = "provisioning" },
    { "ipv6_ipam_id", "integer", required_from = "active", description = "NetBox id of an IPv6 address" },
  },
  computed = {
    title = function(port)
      if port.node == nil then
        return nil
      end
      return "core port " .. tostring(port.port_name) .. " on " .. tostring(port.node.node_name)
    end,
  },
})

model.block({
  name = "CoreLink",
  tag = "CORE_LINK",
  description = "core link product block",
  fields = {
    { "ports", model.list("CorePort", { min = 2, max = 2 }) },
    { "ims_id", "integer", required_from = "active" },
    { "ipv6_prefix_ipam_id", "integer", required_from = "active", description = "NetBox id of an IPv6 prefix" },
    { "nrm_id", "integer", required_from = "active" },
    { "under_maintenance", "boolean", required_from = "provisioning", description = "link under maintenance" },
  },
  computed = {
    title = function(link)
      local a, b = link.ports[1].node, link.ports[2].node
      if a == nil or b == nil then
        return nil
      end
      return "core link between " .. tostring(a.node_name) .. " and " .. tostring(b.node_name)
    end,
  },
})

local function core_link_product(name, speed)
  return { name = name, description = "Core link", tag = "CORE_LINK", status = "active",
    fixed_inputs = { speed = speed } }
end

model.product_type({
  name = "CoreLink",
  fixed_inputs = { { "speed", model.enum({ 10000, 100000 }), description = "speed in Mbit/s" } },
  fields = { { "core_link", model.owned("CoreLink") } },
  description = function(sub)
    local a, b = sub.core_link.ports[1], sub.core_link.ports[2]
    local text = ("%s %s %s <-> %s %s"):format(sub.product.name, tostring(a.node and a.node.node_name),
      tostring(a.port_name), tostring(b.port_name), tostring(b.node and b.node.node_name))
    if sub.core_link.under_maintenance then
      text = text .. " (maintenance)"
    end
    return text
  end,
  products = { core_link_product("core link 10G", 10000), core_link_product("core link 100G", 100000) },
})

-- The description NetBox gets for a core port's address.
local function core_port_description(port)
  return "CorePort " .. tostring(port.node.node_name) .. " " .. tostring(port.port_name)
end

-- ---------------------------------------------------------------- workflows --

local PRODUCTS = { "core link 10G", "core link 100G" }
local SIDES = { "a", "b" }

local function create_form(state)
  local speed = tonumber(S.fixed_input(state.product, "speed"))
  local nodes = coroutine.yield(F.page({
    title = state.product_name .. " - node A and B",
    name = "CoreLinkNodesForm",
    validate = function(values)
      if values.node_subscription_id_a == values.node_subscription_id_b then
        return nil, "node B cannot be the same as node A"
      end
    end,
    S.customer_field(),
    F.choice({ "node_subscription_id_a", title = "Node A", enum_name = "NodeChoice", options = S.node_options }),
    F.choice({ "node_subscription_id_b", title = "Node B", enum_name = "NodeChoice", options = S.node_options }),
  }))
  local name_a, name_b = S.node_name(nodes.node_subscription_id_a), S.node_name(nodes.node_subscription_id_b)
  local ports = coroutine.yield(F.page({
    title = state.product_name .. " - port A and B",
    name = "CoreLinkPortsForm",
    has_next = false,
    F.choice({ "port_ims_id_a", title = "Port on " .. tostring(name_a), enum_name = "PortAChoice",
      options = function()
        return nb.free_port_options(name_a, speed)
      end }),
    F.choice({ "port_ims_id_b", title = "Port on " .. tostring(name_b), enum_name = "PortBChoice",
      options = function()
        return nb.free_port_options(name_b, speed)
      end }),
    F.boolean({ "under_maintenance", title = "Under maintenance", default = false }),
  }))
  return { customer_id = nodes.customer_id, node_subscription_id_a = nodes.node_subscription_id_a,
    node_subscription_id_b = nodes.node_subscription_id_b, port_ims_id_a = ports.port_ims_id_a,
    port_ims_id_b = ports.port_ims_id_b, under_maintenance = ports.under_maintenance }
end

local construct = wf.step("Construct Subscription model", function(state)
  local sub = model.create({ product = state.product, customer_id = state.customer_id })
  for i, side in ipairs(SIDES) do
    local interface = nb.get("dcim/interfaces", state["port_ims_id_" .. side])
    if not interface then
      error("interface " .. tostring(state["port_ims_id_" .. side]) .. " does not exist in NetBox", 0)
    end
    local port = sub.core_link.ports[i]
    port.ims_id = interface.id
    port.port_name = interface.name
    port.node = model.get(state["node_subscription_id_" .. side]).node
  end
  sub.core_link.under_maintenance = state.under_maintenance
  sub:describe()
  sub:set_status("provisioning")
  return { subscription = sub, subscription_id = sub.subscription_id, subscription_description = sub.description }
end)

-- The /127 of this link: the one an earlier attempt made (by id or description), or a new one.
local assign_prefix = wf.step("Assign IPv6 prefix", function(state)
  local sub = model.get(state.subscription_id)
  local link = sub.core_link
  local prefix = link.ipv6_prefix_ipam_id and nb.get("ipam/prefixes", link.ipv6_prefix_ipam_id)
  if not prefix then
    for _, p in ipairs(nb.list("ipam/prefixes", { family = 6 })) do
      if p.description == sub.description and p.prefix:match("/127$") then
        prefix = p
      end
    end
  end
  if not prefix then
    local parent = nb.find("ipam/prefixes", { prefix = CORE_LINK_PREFIX })
    if not parent then
      error("prefix " .. CORE_LINK_PREFIX .. " is missing in NetBox (run task_bootstrap_netbox)", 0)
    end
    prefix = orch.client.post("netbox", "/api/ipam/prefixes/" .. parent.id .. "/available-prefixes/",
      { prefix_length = 127, description = sub.description, is_pool = false }).json
  end
  link.ipv6_prefix_ipam_id = prefix.id
  return { subscription = sub, prefix_ipv6 = prefix.prefix }
end)

local function assign_address(i, side)
  return wf.step("Assign side " .. side:upper() .. " IPv6 address", function(state)
    local sub = model.get(state.subscription_id)
    local port = sub.core_link.ports[i]
    local address = nb.find("ipam/ip-addresses", { interface_id = port.ims_id, parent = state.prefix_ipv6 })
    if not address then
      address = orch.client.post("netbox", "/api/ipam/prefixes/" .. sub.core_link.ipv6_prefix_ipam_id
        .. "/available-ips/", { description = core_port_description(port), assigned_object_type = "dcim.interface",
        assigned_object_id = port.ims_id, status = "active" }).json
    end
    port.ipv6_ipam_id = address.id
    return { subscription = sub, [side .. "_side_ipv6"] = address.address }
  end)
end

local connect = wf.step("Connect ports in IMS", function(state)
  local sub = model.get(state.subscription_id)
  local a, b = sub.core_link.ports[1], sub.core_link.ports[2]
  local interface = nb.get("dcim/interfaces", a.ims_id)
  local cable = interface and nb.id_of(interface.cable)
  local payload = {
    type = "smf", status = "connected",
    a_terminations = { { object_type = "dcim.interface", object_id = a.ims_id } },
    b_terminations = { { object_type = "dcim.interface", object_id = b.ims_id } },
    description = a.node.node_name .. " <-> " .. b.node.node_name,
  }
  sub.core_link.ims_id = cable or nb.create("dcim/cables", payload).id
  return { subscription = sub, payload = payload }
end)

-- PATCH both interfaces: enabled (or not) with a description naming the other side.
local function port_payloads(sub)
  local out = {}
  for i, port in ipairs(sub.core_link.ports) do
    local other = sub.core_link.ports[3 - i]
    local interface = nb.get("dcim/interfaces", port.ims_id)
    out[i] = { device = port.node.ims_id, name = port.port_name, type = nb.value_of(interface.type),
      description = sub.product.name .. " to " .. other.node.node_name, enabled = port.enabled,
      speed = interface.speed }
  end
  return out
end

local function update_ports(sub)
  local payloads = port_payloads(sub)
  for i, port in ipairs(sub.core_link.ports) do
    nb.update("dcim/interfaces", port.ims_id, payloads[i])
  end
  return { subscription = sub, payload_port_a = payloads[1], payload_port_b = payloads[2] }
end

-- A node this link uses changed (e.g. was renamed): the texts NetBox holds follow.
S.on_dependency_changed("CoreLink", function(sub)
  local a, b = sub.core_link.ports[1], sub.core_link.ports[2]
  update_ports(sub)
  nb.update("dcim/cables", sub.core_link.ims_id, { description = a.node.node_name .. " <-> " .. b.node.node_name })
  for _, port in ipairs(sub.core_link.ports) do
    nb.update("ipam/ip-addresses", port.ipv6_ipam_id, { description = core_port_description(port) })
  end
end)

local function node_names(sub)
  return { sub.core_link.ports[1].node.node_name, sub.core_link.ports[2].node.node_name }
end

kinds.create_workflow({
  name = "create_core_link",
  description = "Create core_link",
  products = PRODUCTS,
  form = create_form,
  steps = {
    construct,
    kinds.store_process_subscription,
    assign_prefix,
    assign_address(1, "a"),
    assign_address(2, "b"),
    connect,
    wf.step("enable ports in IMS", function(state)
      local sub = model.get(state.subscription_id)
      for _, port in ipairs(sub.core_link.ports) do
        port.enabled = true
      end
      return update_ports(sub)
    end),
    wf.step("Provision core link in NRM", function(state)
      local sub = model.get(state.subscription_id)
      for _, x in ipairs({ sub.core_link, sub.core_link.ports[1], sub.core_link.ports[2] }) do
        x.nrm_id = x.nrm_id or S.nrm_id()
      end
      return { subscription = sub }
    end),
    S.lso_interaction(wf.step("Install core link config", function(state)
      local sub = model.get(state.subscription_id)
      S.execute_playbook(state, "create_core_link.yaml", node_names(sub), { core_link = state.subscription })
    end)),
  },
})

kinds.modify_workflow({
  name = "modify_core_link",
  description = "Modify core_link",
  products = PRODUCTS,
  form = function(state)
    local sub = model.get(state.subscription_id)
    local values = coroutine.yield(F.page({ title = "Modify " .. sub.description, name = "ModifyCoreLinkForm",
      F.boolean({ "under_maintenance", title = "Under maintenance", default = sub.core_link.under_maintenance }) }))
    coroutine.yield(S.summary_page("Summary", { "under_maintenance" }, values, sub.core_link))
    return { under_maintenance = values.under_maintenance }
  end,
  steps = {
    kinds.ensure_provisioning_status(wf.step("Update subscription", function(state)
      local sub = model.get(state.subscription_id)
      sub.core_link.under_maintenance = state.under_maintenance
      sub:describe()
      return { subscription = sub, subscription_description = sub.description }
    end)),
    wf.step("Update core link in NRM", function() end),
  },
})

local function unassign_address(i, side)
  return wf.step("Unassign side " .. side .. " IPv6 address", function(state)
    local sub = model.get(state.subscription_id)
    nb.delete("ipam/ip-addresses", sub.core_link.ports[i].ipv6_ipam_id)
  end)
end

kinds.terminate_workflow({
  name = "terminate_core_link",
  description = "Terminate core_link",
  products = PRODUCTS,
  form = function(state)
    return F.page({ title = "Terminate core link", name = "TerminateCoreLinkForm", has_next = false,
      F.display_subscription({ "subscription", title = "Subscription", value = state.subscription_id }) })
  end,
  steps = {
    wf.step("Disconnect ports in IMS", function(state)
      local sub = model.get(state.subscription_id)
      nb.delete("dcim/cables", sub.core_link.ims_id)
    end),
    S.lso_interaction(wf.step("Remove core link config", function(state)
      local sub = model.get(state.subscription_id)
      S.execute_playbook(state, "delete_core_link.yaml", node_names(sub), { core_link = state.subscription })
    end)),
    unassign_address(2, "B"),
    unassign_address(1, "A"),
    wf.step("Unassign IPv6 prefix", function(state)
      local sub = model.get(state.subscription_id)
      nb.delete("ipam/prefixes", sub.core_link.ipv6_prefix_ipam_id)
    end),
    wf.step("disable ports in IMS", function(state)
      local sub = model.get(state.subscription_id)
      for _, port in ipairs(sub.core_link.ports) do
        port.enabled = false
      end
      return update_ports(sub)
    end),
  },
})

-- What NetBox holds for the link, next to what the model says it should hold.
kinds.validate_workflow({
  name = "validate_core_link",
  description = "Validate core_link",
  products = PRODUCTS,
  steps = {
    wf.step("validate core link in IMS", function(state)
      local sub = model.get(state.subscription_id)
      local link = sub.core_link
      local cable = nb.get("dcim/cables", link.ims_id)
      local prefix = nb.get("ipam/prefixes", link.ipv6_prefix_ipam_id)
      local function ends(side)
        local t = cable and cable[side .. "_terminations"] and cable[side .. "_terminations"][1]
        return t and t.object_id or orch.json.null
      end
      nb.check(sub.description, {
        cable = cable and cable.id or orch.json.null, cable_a = ends("a"), cable_b = ends("b"),
        prefix = prefix and prefix.id or orch.json.null,
      }, {
        cable = link.ims_id, cable_a = link.ports[1].ims_id, cable_b = link.ports[2].ims_id,
        prefix = link.ipv6_prefix_ipam_id,
      })
    end),
    wf.step("validate core ports in IMS", function(state)
      local sub = model.get(state.subscription_id)
      local actual, expected = {}, {}
      local payloads = port_payloads(sub)
      for i, port in ipairs(sub.core_link.ports) do
        local side = SIDES[i]
        local interface = nb.get("dcim/interfaces", port.ims_id)
        local address = nb.get("ipam/ip-addresses", port.ipv6_ipam_id)
        actual[side .. ".enabled"] = interface and interface.enabled
        expected[side .. ".enabled"] = payloads[i].enabled
        actual[side .. ".description"] = interface and interface.description
        expected[side .. ".description"] = payloads[i].description
        actual[side .. ".address_on"] = address and address.assigned_object_id or orch.json.null
        expected[side .. ".address_on"] = port.ims_id
      end
      nb.check("the ports of " .. sub.description, actual, expected)
    end),
  },
})
