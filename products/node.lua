-- The example orchestrator's Node product: a network node (a NetBox device)
-- with a loopback, in four flavours that differ in the fixed input node_type.

local model = orch.model

local node_statuses = { "offline", "active", "planned", "staged", "failed", "inventory", "decommissioning" }

model.block({
  name = "Node",
  tag = "NODE",
  description = "node product block",
  fields = {
    { "role_id", "integer", required_from = "provisioning", description = "NetBox device role id" },
    { "type_id", "integer", required_from = "provisioning", description = "NetBox device type id" },
    { "site_id", "integer", required_from = "provisioning", description = "NetBox site id" },
    { "node_status", model.enum(node_statuses), required_from = "provisioning",
      description = "status of the node in NetBox" },
    { "node_name", "string", required_from = "provisioning", description = "unique name of the node" },
    { "node_description", "string", description = "free text about the node" },
    { "ims_id", "integer", required_from = "active", description = "id in the inventory management system" },
    { "nrm_id", "integer", required_from = "active", description = "id in the network resource manager" },
    { "ipv4_ipam_id", "integer", required_from = "active", description = "NetBox id of the IPv4 loopback address" },
    { "ipv6_ipam_id", "integer", required_from = "active", description = "NetBox id of the IPv6 loopback address" },
  },
  computed = {
    title = function(node)
      if node.node_name == nil then
        return nil
      end
      return "node " .. node.node_name .. " status " .. tostring(node.node_status)
    end,
  },
})

local function node_product(name, node_type)
  return { name = name, description = "Network node", tag = "NODE", status = "active",
    fixed_inputs = { node_type = node_type } }
end

model.product_type({
  name = "Node",
  fixed_inputs = {
    { "node_type", model.enum({ "Cisco", "Nokia", "Cumulus", "FRR" }), description = "make of the node" },
  },
  fields = {
    { "node", model.owned("Node") },
  },
  description = function(sub)
    return "node " .. tostring(sub.node.node_name) .. " (" .. tostring(sub.node.node_status) .. ")"
  end,
  products = {
    node_product("node Cisco", "Cisco"),
    node_product("node Nokia", "Nokia"),
    node_product("node Cumulus", "Cumulus"),
    node_product("node FRR", "FRR"),
  },
})

-- ---------------------------------------------------------------- workflows --

local wf = orch.workflow
local kinds = orch.workflows
local F = orch.forms
local nb = require("lib.netbox")
local S = require("lib.shared")

local NODE_PRODUCTS = { "node Cisco", "node Nokia", "node Cumulus", "node FRR" }
local NODE_FIELDS = { "role_id", "type_id", "site_id", "node_status", "node_name", "node_description" }

local LOOPBACK_PREFIXES = { { 4, "10.0.127.0/24", "ipv4_ipam_id" }, { 6, "fc00:0:0:127::/64", "ipv6_ipam_id" } }

-- The interfaces "Update interfaces" gives every node: ten 10G and four 100G ports.
local function standard_interfaces()
  local out = {}
  for i = 1, 14 do
    local ten = i <= 10
    out[#out + 1] = { name = "ethernet-1/" .. i, type = ten and "10gbase-x-xfp" or "100gbase-x-cfp",
      speed = ten and 10000000 or 100000000 }
  end
  return out
end

local function node_name_is_free(name, _, _, state)
  if nb.find("dcim/devices", { name = name }) then
    return nil, "a device named '" .. name .. "' already exists in NetBox"
  end
  local row = orch.db.one([[
    SELECT 1 AS taken FROM subscriptions s JOIN subscription_instances i USING (subscription_id)
    JOIN subscription_instance_values v USING (subscription_instance_id)
    JOIN resource_types rt USING (resource_type_id)
    WHERE rt.resource_type = 'node_name' AND v.value = $1 AND s.status <> 'terminated'
      AND s.subscription_id::text <> coalesce($2, '')]], name, state.subscription_id)
  if row then
    return nil, "node name '" .. name .. "' is already in use"
  end
end

-- The node settings fields, with defaults from `node` when modifying.
local function node_fields(node_type, node, name_validators)
  local function current(k)
    return node and node[k] ~= nil and tostring(node[k]) or nil
  end
  return {
    F.choice({ "type_id", title = "Node type", enum_name = "NodeTypeChoice", default = current("type_id"),
      options = function()
        return nb.device_type_options(node_type)
      end }),
    F.choice({ "role_id", title = "Node role", enum_name = "NodeRoleChoice", default = current("role_id"),
      options = nb.role_options }),
    F.choice({ "site_id", title = "Site", enum_name = "SiteChoice", default = current("site_id"),
      options = nb.site_options }),
    F.choice({ "node_status", title = "Node status",
      enum_name = "NodeStatusChoice", default = current("node_status") or "active",
      options = node_statuses }),
    F.string({ "node_name", title = "Node name",
      min_length = 1, default = current("node_name"), validate = name_validators }),
    F.string({ "node_description", title = "Node description",
      optional = true, default = current("node_description") }),
  }
end

-- The NetBox names of the ids a summary shows.
local function node_choices(node_type)
  return { customer_id = S.customer_options, role_id = nb.role_options, site_id = nb.site_options,
    type_id = function()
      return nb.device_type_options(node_type)
    end }
end

local function create_node_form(state)
  local node_type = S.fixed_input(state.product, "node_type")
  local page = {
    title = state.product_name,
    name = "CreateNodeForm",
    F.callout({ "customer_info", title = "Customer", header = "Customer",
      message = "The customer list comes from the customers table of the example.", message_type = "primary" }),
    S.customer_field(),
    F.boolean({ "auto_add_interfaces", title = "Add the standard interfaces", default = true }),
    F.label({ "node_settings", title = "Node settings" }),
  }
  for _, f in ipairs(node_fields(node_type, nil, { node_name_is_free })) do
    page[#page + 1] = f
  end
  local values = coroutine.yield(F.page(page))
  coroutine.yield(S.summary_page(state.product_name .. " summary", { "customer_id", table.unpack(NODE_FIELDS) }, values,
    nil, node_choices(node_type)))
  local out = { customer_id = values.customer_id, auto_add_interfaces = values.auto_add_interfaces }
  for _, k in ipairs(NODE_FIELDS) do
    out[k] = values[k]
  end
  return out
end

local construct = wf.step("Construct Subscription model", function(state)
  local sub = model.create({ product = state.product, customer_id = state.customer_id })
  for _, k in ipairs(NODE_FIELDS) do
    if state[k] ~= nil and state[k] ~= orch.json.null then
      sub.node[k] = state[k]
    end
  end
  sub:describe()
  sub:set_status("provisioning")
  return { subscription = sub, subscription_id = sub.subscription_id, subscription_description = sub.description }
end)

-- Create the device, or adopt the one an earlier attempt created (retry-safe).
local create_in_ims = wf.step("Create node in IMS", function(state)
  local sub = model.get(state.subscription_id)
  local payload = nb.device_payload(sub.node)
  local device = nb.find("dcim/devices", { name = sub.node.node_name, site_id = sub.node.site_id })
    or nb.create("dcim/devices", payload)
  sub.node.ims_id = device.id
  return { subscription = sub, payload = payload }
end)

local reserve_loopback = wf.step("Reserve loopback addresses", function(state)
  local sub = model.get(state.subscription_id)
  local node = sub.node
  local loopback = nb.ensure("dcim/interfaces", { device_id = node.ims_id, name = "Loopback0" },
    { device = node.ims_id, name = "Loopback0", type = "virtual", enabled = true })
  local assigned = nb.list("ipam/ip-addresses", { interface_id = loopback.id })
  for _, p in ipairs(LOOPBACK_PREFIXES) do
    local family, prefix_text, field = p[1], p[2], p[3]
    local ip
    for _, a in ipairs(assigned) do
      if a.family.value == family then
        ip = a
      end
    end
    if not ip then
      local prefix = nb.find("ipam/prefixes", { prefix = prefix_text })
      if not prefix then
        error("prefix " .. prefix_text .. " is missing in NetBox (run task_bootstrap_netbox)", 0)
      end
      ip = orch.client.post("netbox", "/api/ipam/prefixes/" .. prefix.id .. "/available-ips/", {
        description = "IPv" .. family .. " loopback " .. node.node_name,
        assigned_object_type = "dcim.interface", assigned_object_id = loopback.id, status = "active",
      }).json
    end
    node[field] = ip.id
  end
  return { subscription = sub }
end)

local install_config = wf.step("Install node config", function(state)
  local sub = state.subscription
  S.execute_playbook(state, "create_node.yaml", { sub.node.node_name }, { node = sub })
end)

local provision_nrm = wf.step("Provision node in NRM", function(state)
  local sub = model.get(state.subscription_id)
  sub.node.nrm_id = sub.node.nrm_id or S.nrm_id()
  return { subscription = sub }
end)

local update_in_ims = wf.step("Update node in IMS", function(state)
  local sub = model.get(state.subscription_id)
  sub:validate("active") -- core's step asks for the active view: every id must be there
  local payload = nb.device_payload(sub.node)
  nb.update("dcim/devices", sub.node.ims_id, payload)
  return { subscription = sub, payload = payload }
end)

-- Create the standard interfaces that are missing (disabled = free), delete others.
local update_interfaces = wf.step("Update interfaces", function(state)
  local sub = model.get(state.subscription_id)
  local existing = {}
  for _, i in ipairs(nb.list("dcim/interfaces", { device_id = sub.node.ims_id })) do
    if not i.name:find("Loopback", 1, true) then
      existing[i.name] = i
    end
  end
  local added, deleted = {}, {}
  for _, want in ipairs(standard_interfaces()) do
    if existing[want.name] then
      existing[want.name] = nil
    else
      nb.create("dcim/interfaces", { device = sub.node.ims_id, name = want.name, type = want.type,
        speed = want.speed, enabled = false })
      added[#added + 1] = want.name
    end
  end
  for name, i in pairs(existing) do
    nb.delete("dcim/interfaces", i.id)
    deleted[#deleted + 1] = name
  end
  table.sort(deleted)
  return { interfaces_added = orch.json.array(added), interfaces_deleted = orch.json.array(deleted) }
end)

kinds.create_workflow({
  name = "create_node",
  description = "Create node",
  products = NODE_PRODUCTS,
  form = create_node_form,
  steps = {
    construct,
    kinds.store_process_subscription,
    create_in_ims,
    reserve_loopback,
    S.lso_interaction(install_config),
    provision_nrm,
    update_in_ims,
    wf.conditional(function(state)
      return state.auto_add_interfaces == true
    end)(update_interfaces),
  },
})

local function modify_node_form(state)
  local sub = model.get(state.subscription_id)
  local node_type = sub.node_type
  local page = { title = "Modify " .. sub.description, name = "ModifyNodeForm",
    F.label({ "node_settings", title = "Node settings" }) }
  for _, f in ipairs(node_fields(node_type, sub.node, { function(name, values, ctx, st)
    if name ~= sub.node.node_name then
      return node_name_is_free(name, values, ctx, st)
    end
  end })) do
    page[#page + 1] = f
  end
  local values = coroutine.yield(F.page(page))
  local before = {}
  for _, k in ipairs(NODE_FIELDS) do
    before[k] = sub.node[k]
  end
  coroutine.yield(S.summary_page("Summary", NODE_FIELDS, values, before, node_choices(node_type)))
  local out = {}
  for _, k in ipairs(NODE_FIELDS) do
    out[k] = values[k]
  end
  return out
end

kinds.modify_workflow({
  name = "modify_node",
  description = "Modify node",
  products = NODE_PRODUCTS,
  form = modify_node_form,
  steps = {
    kinds.ensure_provisioning_status(wf.step("Update subscription", function(state)
      local sub = model.get(state.subscription_id)
      for _, k in ipairs(NODE_FIELDS) do
        local v = state[k]
        if v == orch.json.null then
          v = nil
        end
        sub.node[k] = v
      end
      sub:describe()
      return { subscription = sub, subscription_description = sub.description }
    end)),
    update_in_ims,
    wf.step("Update node in NRM", function() end),
    -- ports, core links and services derive texts from the node's name
    S.update_dependants,
  },
})

kinds.modify_workflow({
  name = "modify_sync_ports",
  description = "Update node interfaces",
  products = NODE_PRODUCTS,
  steps = kinds.ensure_provisioning_status(update_interfaces),
})

kinds.terminate_workflow({
  name = "terminate_node",
  description = "Terminate node",
  products = NODE_PRODUCTS,
  form = function(state)
    return F.page({ title = "Terminate node", name = "TerminateNodeForm", has_next = false,
      F.display_subscription({ "subscription", title = "Subscription", value = state.subscription_id }) })
  end,
  steps = {
    wf.step("Load initial state", function(state)
      local sub = model.get(state.subscription_id)
      return { ims_id = sub.node.ims_id }
    end),
    -- The loopback addresses go explicitly (not through NetBox's cascade), then the device.
    wf.step("Delete node from IMS", function(state)
      local sub = model.get(state.subscription_id)
      nb.delete("ipam/ip-addresses", sub.node.ipv4_ipam_id)
      nb.delete("ipam/ip-addresses", sub.node.ipv6_ipam_id)
      nb.delete("dcim/devices", sub.node.ims_id)
    end),
  },
})

kinds.validate_workflow({
  name = "validate_node",
  description = "Validate node",
  products = NODE_PRODUCTS,
  steps = {
    wf.step("Validate node in IMS", function(state)
      local sub = model.get(state.subscription_id)
      local expected = nb.device_payload(sub.node)
      local device = nb.get("dcim/devices", sub.node.ims_id)
      if not device then
        error(require("orch.runner").failure("Found difference in IMS: device " .. tostring(sub.node.ims_id)
          .. " of node " .. tostring(sub.node.node_name) .. " does not exist"), 0)
      end
      nb.check("node " .. sub.node.node_name, nb.device_payload_of(device), expected)
      return { payload = expected }
    end),
  },
})
