-- The example orchestrator's Port product: an interface of a node (a NetBox
-- interface of the node's device), 10G or 100G by the fixed input speed.

local model = orch.model
local wf = orch.workflow
local kinds = orch.workflows
local F = orch.forms
local nb = require("lib.netbox")
local S = require("lib.shared")

local PORT_MODES = { "tagged", "untagged", "link member" }

-- VLANs and VLAN groups of the SAPs of *active* services on this port (computed on
-- every serialisation, so always current; the IMS payload also counts services
-- still being provisioned, see lib/shared.lua).
local function saps_of(port)
  local ok, rows = pcall(orch.db.must, [[
    SELECT rt.resource_type AS field, v.value, p.product_type FROM subscription_instance_relations r
    JOIN subscription_instances sap ON sap.subscription_instance_id = r.in_use_by_id
    JOIN subscriptions s ON s.subscription_id = sap.subscription_id AND s.status = 'active'
    JOIN products p ON p.product_id = s.product_id
    JOIN subscription_instance_values v ON v.subscription_instance_id = sap.subscription_instance_id
    JOIN resource_types rt ON rt.resource_type_id = v.resource_type_id
    WHERE r.depends_on_id = $1::uuid AND rt.resource_type IN ('vlan', 'ims_id')
    ORDER BY sap.subscription_instance_id]], port.subscription_instance_id)
  return ok and rows or {}
end

model.block({
  name = "Port",
  tag = "PORT",
  description = "Port product block",
  fields = {
    { "port_name", "string", required_from = "provisioning", description = "name of the interface in NetBox" },
    { "port_type", "string", required_from = "provisioning", description = "NetBox interface type" },
    { "port_description", "string", description = "free text about the port" },
    { "port_mode", model.enum(PORT_MODES), required_from = "provisioning",
      description = "tagged, untagged or link member" },
    { "auto_negotiation", "boolean", required_from = "provisioning", description = "auto negotiation on" },
    { "lldp", "boolean", required_from = "provisioning", description = "LLDP on" },
    { "enabled", "boolean", required_from = "provisioning", description = "enabled in IMS" },
    { "node", model.ref("Node"), required_from = "provisioning" },
    { "ims_id", "integer", required_from = "provisioning" },
    { "nrm_id", "integer", required_from = "active" },
  },
  computed = {
    vlans = function(port)
      local out = orch.json.array()
      for _, r in ipairs(saps_of(port)) do
        if r.field == "vlan" then
          for _, v in ipairs((model.vlan_ranges(r.value) or { to_list = function() return {} end }):to_list()) do
            out[#out + 1] = v
          end
        end
      end
      table.sort(out)
      return out
    end,
    vlan_group_ims_ids = function(port)
      local out = orch.json.array()
      for _, r in ipairs(saps_of(port)) do
        if r.field == "ims_id" and r.product_type ~= "Nsistp" then
          out[#out + 1] = math.tointeger(tonumber(r.value))
        end
      end
      table.sort(out)
      return out
    end,
    title = function(port)
      if port.port_name == nil then
        return nil
      end
      return "port " .. port.port_name .. " on " .. tostring(port.node and port.node.node_name)
    end,
  },
})

local function port_product(name, speed)
  return { name = name, description = "Network port", tag = "PORT", status = "active",
    fixed_inputs = { speed = speed } }
end

model.product_type({
  name = "Port",
  fixed_inputs = {
    { "speed", model.enum({ 1000, 10000, 40000, 100000, 400000 }), description = "speed in Mbit/s" },
  },
  fields = { { "port", model.owned("Port") } },
  description = function(sub)
    local p = sub.port
    return ("%s %s %s %s"):format(sub.product.name, tostring(p.node and p.node.node_name), tostring(p.port_name),
      p.port_description or "")
  end,
  products = { port_product("port 10G", 10000), port_product("port 100G", 100000) },
})

-- ---------------------------------------------------------------- workflows --

local PORT_PRODUCTS = { "port 10G", "port 100G" }
local PAGE3 = { "port_ims_id", "port_description", "port_mode", "auto_negotiation", "lldp" }

local function create_port_form(state)
  local speed = tonumber(S.fixed_input(state.product, "speed"))
  local first = coroutine.yield(F.page({
    title = state.product_name,
    name = "CreatePortForm",
    S.customer_field(),
    F.choice({ "node_subscription_id", title = "Node", enum_name = "NodeChoice", options = S.node_options }),
  }))
  local node_name = S.node_name(first.node_subscription_id)
  local second = coroutine.yield(F.page({
    title = state.product_name,
    name = "PortSettingsForm",
    F.label({ "port_settings", title = "Port settings", default = "Port on " .. tostring(node_name) }),
    F.choice({ "port_ims_id", title = "Interface", enum_name = "FreePortChoice", options = function()
      return nb.free_port_options(node_name, speed)
    end }),
    F.string({ "port_description", title = "Port description", min_length = 1 }),
    F.choice({ "port_mode", title = "Port mode", enum_name = "PortModeChoice", options = PORT_MODES }),
    F.boolean({ "auto_negotiation", title = "Auto negotiation", default = false }),
    F.boolean({ "lldp", title = "LLDP", default = false }),
  }))
  coroutine.yield(S.summary_page(state.product_name .. " summary", PAGE3, second, nil, {
    port_ims_id = function()
      return nb.free_port_options(node_name, speed)
    end,
  }))
  local out = { customer_id = first.customer_id, node_subscription_id = first.node_subscription_id }
  for _, k in ipairs(PAGE3) do
    out[k] = second[k]
  end
  return out
end

local function port_update_in_ims(sub, opts)
  local payload = S.port_payload(sub, opts)
  nb.update("dcim/interfaces", sub.port.ims_id, payload)
  return payload
end

local update_in_ims = wf.step("Update port in IMS", function(state)
  local sub = model.get(state.subscription_id)
  return { subscription = sub, payload = port_update_in_ims(sub) }
end)

kinds.create_workflow({
  name = "create_port",
  description = "Create port",
  products = PORT_PRODUCTS,
  form = create_port_form,
  steps = {
    wf.step("Construct Subscription model", function(state)
      local interface = nb.get("dcim/interfaces", state.port_ims_id)
      if not interface then
        error("interface " .. tostring(state.port_ims_id) .. " does not exist in NetBox", 0)
      end
      local sub = model.create({ product = state.product, customer_id = state.customer_id })
      local port = sub.port
      port.node = model.get(state.node_subscription_id).node
      port.port_name = interface.name
      port.port_type = nb.value_of(interface.type)
      port.port_description = state.port_description
      port.port_mode = state.port_mode
      port.auto_negotiation = state.auto_negotiation
      port.lldp = state.lldp
      port.enabled = false
      port.ims_id = state.port_ims_id
      sub:describe()
      sub:set_status("provisioning")
      return { subscription = sub, subscription_id = sub.subscription_id, subscription_description = sub.description }
    end),
    kinds.store_process_subscription,
    wf.step("enable port in IMS", function(state)
      local sub = model.get(state.subscription_id)
      sub.port.enabled = true
      return { subscription = sub }
    end),
    S.lso_interaction(wf.step("Install port config", function(state)
      S.execute_playbook(state, "create_port.yaml", { state.subscription.port.node.node_name },
        { port = state.subscription })
    end)),
    wf.step("Provision port in NRM", function(state)
      local sub = model.get(state.subscription_id)
      sub.port.nrm_id = sub.port.nrm_id or S.nrm_id()
      return { subscription = sub }
    end),
    update_in_ims,
  },
})

local EDITABLE = { "port_description", "auto_negotiation", "lldp" }

kinds.modify_workflow({
  name = "modify_port",
  description = "Modify port",
  products = PORT_PRODUCTS,
  form = function(state)
    local sub = model.get(state.subscription_id)
    local port = sub.port
    local values = coroutine.yield(F.page({
      title = "Modify " .. sub.description,
      name = "ModifyPortForm",
      F.read_only({ "node_name", title = "Node name", value = port.node.node_name }),
      F.read_only({ "port_name", title = "Port name", value = port.port_name }),
      F.read_only({ "port_type", title = "Port type", value = port.port_type }),
      F.read_only({ "port_mode", title = "Port mode", value = port.port_mode }),
      F.string({ "port_description", title = "Port description", default = port.port_description or "" }),
      F.boolean({ "auto_negotiation", title = "Auto negotiation", default = port.auto_negotiation }),
      F.boolean({ "lldp", title = "LLDP", default = port.lldp }),
    }))
    coroutine.yield(S.summary_page("Summary", EDITABLE, values, port))
    return { port_description = values.port_description, auto_negotiation = values.auto_negotiation,
      lldp = values.lldp }
  end,
  steps = {
    kinds.ensure_provisioning_status(wf.step("Update subscription", function(state)
      local sub = model.get(state.subscription_id)
      for _, k in ipairs(EDITABLE) do
        sub.port[k] = state[k]
      end
      sub:describe()
      return { subscription = sub, subscription_description = sub.description }
    end)),
    update_in_ims,
    wf.step("Update port in NRM", function() end),
  },
})

kinds.terminate_workflow({
  name = "terminate_port",
  description = "Terminate port",
  products = PORT_PRODUCTS,
  form = function(state)
    return F.page({ title = "Terminate port", name = "TerminatePortForm", has_next = false,
      F.display_subscription({ "subscription", title = "Subscription", value = state.subscription_id }) })
  end,
  steps = {
    kinds.set_status("provisioning"),
    wf.step("Release port", function(state)
      local sub = model.get(state.subscription_id)
      sub.port.port_description = ""
      sub.port.enabled = false
      return { subscription = sub }
    end),
    update_in_ims, -- the interface is free (disabled) again
  },
})

kinds.validate_workflow({
  name = "validate_port",
  description = "Validate port",
  products = PORT_PRODUCTS,
  steps = {
    wf.step("Validate port in IMS", function(state)
      local sub = model.get(state.subscription_id)
      local interface = nb.get("dcim/interfaces", sub.port.ims_id)
      if not interface then
        error(require("orch.runner").failure("Found difference in IMS: interface " .. tostring(sub.port.ims_id)
          .. " of " .. sub.description .. " does not exist"), 0)
      end
      local expected = S.port_payload(sub)
      nb.check(sub.description, S.port_payload_of(interface), expected)
      return { payload = expected }
    end),
  },
})
