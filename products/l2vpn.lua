-- The example orchestrator's L2vpn product: a virtual circuit of 2 to 8 service
-- access points (VLANs on tagged ports), built in NetBox as VLAN groups, VLANs
-- and an L2VPN with its terminations. The SAP and VirtualCircuit blocks are
-- shared with Nsistp and Nsip2p.

local model = orch.model
local wf = orch.workflow
local kinds = orch.workflows
local F = orch.forms
local S = require("lib.shared")
local VC = require("lib.vc")

model.block({
  name = "SAP",
  tag = "SAP",
  description = "service access point",
  fields = {
    { "port", model.ref("Port"), required_from = "provisioning" },
    { "vlan", "vlan_ranges", required_from = "provisioning", description = "VLAN ranges" },
    { "ims_id", "integer", required_from = "active" },
  },
  computed = {
    title = function(sap)
      if sap.port == nil then
        return nil
      end
      return ("VLAN %s on port %s of %s"):format(tostring(sap.vlan), tostring(sap.port.port_name),
        tostring(sap.port.node and sap.port.node.node_name))
    end,
  },
})

model.block({
  name = "VirtualCircuit",
  tag = "VC",
  description = "virtual circuit product block",
  fields = {
    { "saps", model.list("SAP", { min = 2, max = 8 }) },
    { "speed", "integer", required_from = "provisioning", description = "speed in Mbit/s" },
    { "speed_policer", "boolean", required_from = "provisioning", description = "speed policer active" },
    { "ims_id", "integer", required_from = "active" },
    { "nrm_id", "integer", required_from = "active" },
  },
  computed = {
    title = function(vc)
      local a, b = vc.saps[1].port, vc.saps[2].port
      if vc.speed == nil or a == nil or b == nil then
        return nil
      end
      return ("%d Mbit/s circuit between %s and %s"):format(vc.speed, tostring(a.node and a.node.node_name),
        tostring(b.node and b.node.node_name))
    end,
  },
})

model.product_type({
  name = "L2vpn",
  fields = { { "virtual_circuit", model.owned("VirtualCircuit") } },
  description = function(sub)
    local vc = sub.virtual_circuit
    return ("L2VPN %s Mbit/s (%s)%s"):format(tostring(vc.speed), VC.node_names(vc),
      vc.speed_policer and " (policer active)" or "")
  end,
  products = { { name = "l2vpn", description = "L2VPN", tag = "L2VPN", status = "active" } },
})

-- ---------------------------------------------------------------- workflows --

local function create_form(state)
  local first = coroutine.yield(F.page({
    title = state.product_name,
    name = "CreateL2vpnForm",
    S.customer_field(),
    F.integer({ "number_of_ports", title = "Number of ports", min = 2, max = 8 }),
    F.integer({ "speed", title = "Speed (Mbit/s)", min = 1, description = "Mbit/s" }),
    F.boolean({ "speed_policer", title = "Speed policer", default = false }),
  }))
  local n = first.number_of_ports
  local second = coroutine.yield(F.page({
    title = state.product_name .. " - ports",
    name = "SelectPortsForm",
    has_next = false,
    F.multi_choice({ "ports", title = "Ports",
      enum_name = "PortChoice", options = S.tagged_port_options, min_items = n, max_items = n,
      unique = true }),
    F.string({ "vlan", title = "VLAN",
      default = "0", validate = { S.validate_vlan("ports"), S.validate_vlan_not_in_use("ports") } }),
  }))
  return { customer_id = first.customer_id, number_of_ports = n, speed = first.speed,
    speed_policer = first.speed_policer, ports = second.ports, vlan = second.vlan }
end

kinds.create_workflow({
  name = "create_l2vpn",
  description = "Create l2vpn",
  products = { "l2vpn" },
  form = create_form,
  steps = {
    VC.construct("Construct Subscription model"),
    kinds.store_process_subscription,
    VC.create_vlans("L2VPN"),
    VC.create_l2vpn("L2VPN"),
    VC.create_terminations("L2VPN"),
    VC.provision_nrm("L2VPN"),
    VC.update_ports(false),
  },
})

kinds.modify_workflow({
  name = "modify_l2vpn",
  description = "Modify l2vpn",
  products = { "l2vpn" },
  form = VC.modify_form,
  steps = {
    kinds.ensure_provisioning_status(VC.update_subscription("Update subscription")),
    wf.step("Update L2VPN in NRM", function() end),
  },
})

-- Reconciling puts NetBox's port VLANs back to what the services say, and tells NRM.
kinds.reconcile_workflow({
  name = "reconcile_l2vpn",
  description = "Reconcile SN8 L2Vpn",
  products = { "l2vpn" },
  steps = {
    VC.update_ports(false),
    wf.step("Update L2VPN in NRM", function() end),
  },
})

kinds.terminate_workflow({
  name = "terminate_l2vpn",
  description = "Terminate l2vpn",
  products = { "l2vpn" },
  form = VC.terminate_form,
  steps = { VC.remove_l2vpn("L2VPN"), VC.remove_vlans(), VC.update_ports(true) },
})

kinds.validate_workflow({
  name = "validate_l2vpn",
  description = "Validate l2vpn",
  products = { "l2vpn" },
  steps = { VC.validate("L2VPN") },
})
