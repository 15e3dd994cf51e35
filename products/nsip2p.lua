-- The example orchestrator's Nsip2p product: an NSI point-to-point circuit, a
-- virtual circuit of exactly two SAPs with one VLAN each, on VLANs that Nsistp
-- subscriptions reserved on those ports. NetBox objects as for L2VPN.

local model = orch.model
local wf = orch.workflow
local kinds = orch.workflows
local F = orch.forms
local S = require("lib.shared")
local VC = require("lib.vc")

model.product_type({
  name = "Nsip2p",
  fields = { { "virtual_circuit", model.owned("VirtualCircuit") } },
  -- every lifecycle: two SAPs, each with a single VLAN once it has one
  validate = function(sub)
    local saps = sub.virtual_circuit.saps
    if #saps ~= 2 then
      return "an NSIP2P needs exactly 2 SAPs, not " .. #saps
    end
    for i, sap in ipairs(saps) do
      if sap.vlan ~= nil and not sap.vlan:is_single_vlan() then
        return "SAP " .. i .. " of an NSIP2P must have a single VLAN, not " .. tostring(sap.vlan)
      end
    end
  end,
  description = function(sub)
    local vc = sub.virtual_circuit
    return ("NSIP2P %s Mbit/s (%s)%s"):format(tostring(vc.speed), VC.node_names(vc),
      vc.speed_policer and " (policer active)" or "")
  end,
  products = { { name = "nsip2p", description = "Network Service Interface Point-to-Point", tag = "NSIP2P",
    status = "active" } },
})

local function single_vlan(value)
  local ranges = model.vlan_ranges(value)
  if ranges and not ranges:is_single_vlan() then
    return nil, "Only one VLAN may be selected per port for NSIP2P"
  end
end

local function create_form(state)
  local first = coroutine.yield(F.page({
    title = state.product_name,
    name = "CreateNsip2pForm",
    S.customer_field(),
    F.integer({ "speed", title = "Speed (Mbit/s)", min = 1, description = "Mbit/s" }),
    F.boolean({ "speed_policer", title = "Speed policer", default = false }),
  }))
  local second = coroutine.yield(F.page({
    title = state.product_name .. " - ports",
    name = "SelectPortsForm",
    has_next = false,
    F.multi_choice({ "ports", title = "Ports",
      enum_name = "PortChoice", options = S.tagged_port_options, min_items = 2, max_items = 2,
      unique = true }),
    F.string({ "vlan", title = "VLAN", default = "0", validate = { S.validate_vlan("ports"), single_vlan,
      S.validate_vlan_reserved_by_product("ports", "Nsistp"),
      S.validate_vlan_not_used_by_product("ports", "Nsip2p") } }),
  }))
  return { customer_id = first.customer_id, speed = first.speed, speed_policer = first.speed_policer,
    ports = second.ports, vlan = second.vlan }
end

kinds.create_workflow({
  name = "create_nsip2p",
  description = "Create nsip2p",
  products = { "nsip2p" },
  form = create_form,
  steps = {
    VC.construct("Construct NSIP2P Subscription model"),
    kinds.store_process_subscription,
    VC.create_vlans("NSIP2P"),
    VC.create_l2vpn("NSIP2P"),
    VC.create_terminations("NSIP2P"),
    VC.provision_nrm("NSIP2P"),
    VC.update_ports(false),
  },
})

kinds.modify_workflow({
  name = "modify_nsip2p",
  description = "Modify nsip2p",
  products = { "nsip2p" },
  form = VC.modify_form,
  steps = {
    kinds.ensure_provisioning_status(VC.update_subscription("Update NSIP2P subscription")),
    wf.step("Update NSIP2P in NRM", function() end),
  },
})

kinds.terminate_workflow({
  name = "terminate_nsip2p",
  description = "Terminate nsip2p",
  products = { "nsip2p" },
  form = VC.terminate_form,
  steps = { VC.remove_l2vpn("NSIP2P"), VC.remove_vlans(), VC.update_ports(true) },
})

kinds.validate_workflow({
  name = "validate_nsip2p",
  description = "Validate nsip2p",
  products = { "nsip2p" },
  steps = { VC.validate("NSIP2P") },
})
