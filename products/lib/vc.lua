-- The NetBox side of virtual circuits (L2VPN and NSIP2P): a VLAN group with its
-- VLANs per SAP, an L2VPN object with a termination per VLAN, and the VLANs
-- pushed to the ports. Every step first looks for what an earlier attempt
-- created, so that a retry after a partial failure neither duplicates nor fails.

local wf = orch.workflow
local F = orch.forms
local model = orch.model
local nb = require("lib.netbox")
local S = require("lib.shared")

local null = orch.json.null

local VC = {}

-- "5,10-12" -> {{5, 5}, {10, 12}}
local function vid_ranges(vlan)
  local out, list = {}, vlan:to_list()
  for _, v in ipairs(list) do
    local last = out[#out]
    if last and last[2] == v - 1 then
      last[2] = v
    else
      out[#out + 1] = { v, v }
    end
  end
  return out
end

-- The VLAN group of a SAP is named after the port and the subscription, so two
-- services on one port get two groups.
local function group_name(sub, sap)
  return ("%s %s %s"):format(sap.port.node.node_name, sap.port.port_name, sub.subscription_id:sub(1, 8))
end

local function l2vpn_name(sub)
  return sub.subscription_id:sub(1, 8) .. " " .. sub.description
end

function VC.create_vlans(kind)
  return wf.step("Create VLANs in IMS", function(state)
    local sub = model.get(state.subscription_id)
    local groups, vlans = {}, {}
    for _, sap in ipairs(sub.virtual_circuit.saps) do
      local name = group_name(sub, sap)
      local group_payload = { name = name, slug = nb.slug(name), vid_ranges = vid_ranges(sap.vlan),
        description = kind .. " " .. sub.subscription_id }
      local group = nb.ensure("ipam/vlan-groups", { slug = group_payload.slug }, group_payload)
      groups[#groups + 1] = group_payload
      for _, vid in ipairs(sap.vlan:to_list()) do
        local payload = { vid = vid, name = ("%s %s - %d"):format(sap.port.node.node_name, sap.port.port_name, vid),
          group = group.id, status = "active" }
        nb.ensure("ipam/vlans", { group_id = group.id, vid = vid }, payload)
        vlans[#vlans + 1] = payload
      end
      sap.ims_id = group.id
    end
    return { subscription = sub, vlan_group_payloads = groups, vlan_payloads = vlans }
  end)
end

function VC.create_l2vpn(kind)
  return wf.step("Create " .. kind .. " in IMS", function(state)
    local sub = model.get(state.subscription_id)
    local payload = { name = l2vpn_name(sub), slug = sub.subscription_id, type = "mpls-evpn" }
    sub.virtual_circuit.ims_id = nb.ensure("vpn/l2vpns", { slug = payload.slug }, payload).id
    return { subscription = sub, payload = payload }
  end)
end

function VC.create_terminations(kind)
  return wf.step("Create " .. kind .. " terminations in IMS", function(state)
    local sub = model.get(state.subscription_id)
    local l2vpn = sub.virtual_circuit.ims_id
    local payloads = {}
    for _, sap in ipairs(sub.virtual_circuit.saps) do
      for _, vlan in ipairs(nb.list("ipam/vlans", { group_id = sap.ims_id })) do
        local payload = { l2vpn = l2vpn, assigned_object_type = "ipam.vlan", assigned_object_id = vlan.id }
        if not nb.find("vpn/l2vpn-terminations", { vlan_id = vlan.id }) then
          nb.create("vpn/l2vpn-terminations", payload)
        end
        payloads[#payloads + 1] = payload
      end
    end
    return { payloads = payloads }
  end)
end

function VC.provision_nrm(kind)
  return wf.step("Provision " .. kind .. " in NRM", function(state)
    local sub = model.get(state.subscription_id)
    sub.virtual_circuit.nrm_id = sub.virtual_circuit.nrm_id or S.nrm_id()
    return { subscription = sub }
  end)
end

-- Push the VLANs of the services on the ports to the interfaces; a subscription
-- being terminated is left out (`exclude_self`).
function VC.update_ports(exclude_self)
  return wf.step("Update VLANs on connected ports in IMS", function(state)
    local sub = model.get(state.subscription_id)
    local payloads = S.update_ports_of_saps(sub.virtual_circuit.saps,
      { exclude = exclude_self and sub.subscription_id or nil })
    return { port_payloads = payloads }
  end)
end

function VC.remove_l2vpn(kind)
  return wf.step("Remove " .. kind .. " from IMS", function(state)
    local sub = model.get(state.subscription_id)
    nb.delete("vpn/l2vpns", sub.virtual_circuit.ims_id) -- the terminations go with it
  end)
end

function VC.remove_vlans()
  return wf.step("Remove VLANs from IMS", function(state)
    local sub = model.get(state.subscription_id)
    for _, sap in ipairs(sub.virtual_circuit.saps) do
      if sap.ims_id then
        for _, vlan in ipairs(nb.list("ipam/vlans", { group_id = sap.ims_id })) do
          nb.delete("ipam/vlans", vlan.id)
        end
        nb.delete("ipam/vlan-groups", sap.ims_id)
      end
    end
  end)
end

-- Compare NetBox with the model: the L2VPN, per SAP its VLAN group's VLANs, their
-- terminations, and the VLANs tagged on the port.
function VC.validate(kind)
  return wf.step("Validate " .. kind .. " in IMS", function(state)
    local sub = model.get(state.subscription_id)
    local vc = sub.virtual_circuit
    local actual, expected = {}, {}
    local l2vpn = nb.get("vpn/l2vpns", vc.ims_id)
    actual.l2vpn = l2vpn and l2vpn.slug or null
    expected.l2vpn = sub.subscription_id
    for i, sap in ipairs(vc.saps) do
      local key = "sap " .. i .. " "
      local group = nb.get("ipam/vlan-groups", sap.ims_id)
      local vids, terminated, vlan_ids = {}, {}, {}
      if group then
        for _, vlan in ipairs(nb.list("ipam/vlans", { group_id = group.id })) do
          vids[#vids + 1] = vlan.vid
          vlan_ids[vlan.id] = true
          local t = nb.find("vpn/l2vpn-terminations", { vlan_id = vlan.id })
          if t and nb.id_of(t.l2vpn) == vc.ims_id then
            terminated[#terminated + 1] = vlan.vid
          end
        end
      end
      table.sort(vids)
      table.sort(terminated)
      local want = sap.vlan:to_list()
      actual[key .. "vlans"], expected[key .. "vlans"] = orch.json.array(vids), orch.json.array(want)
      actual[key .. "terminations"], expected[key .. "terminations"] = orch.json.array(terminated),
        orch.json.array(want)
      local interface = nb.get("dcim/interfaces", sap.port.ims_id)
      local tagged = 0
      for _, v in ipairs(interface and interface.tagged_vlans or {}) do
        if vlan_ids[v.id] then
          tagged = tagged + 1
        end
      end
      actual[key .. "tagged on " .. sap.port.port_name], expected[key .. "tagged on " .. sap.port.port_name] =
        tagged, #want
    end
    nb.check(sub.description, actual, expected)
  end)
end

-- Node names of the SAPs' ports, sorted and unique, joined with "-".
function VC.node_names(vc)
  local seen, names = {}, {}
  for _, sap in ipairs(vc.saps) do
    local n = sap.port and sap.port.node and sap.port.node.node_name
    if n and not seen[n] then
      seen[n] = true
      names[#names + 1] = n
    end
  end
  table.sort(names)
  return table.concat(names, "-")
end

-- Construct: one new SAP per chosen port, all with the same VLANs.
function VC.construct(label)
  return wf.step(label, function(state)
    local sub = model.create({ product = state.product, customer_id = state.customer_id })
    local vc = sub.virtual_circuit
    vc.speed = state.speed
    vc.speed_policer = state.speed_policer
    local saps = {}
    for i, port_id in ipairs(state.ports) do
      saps[i] = sub:new_block("SAP", { vlan = state.vlan })
      saps[i].port = model.get(port_id).port
    end
    vc.saps = saps
    sub:describe()
    sub:set_status("provisioning")
    return { subscription = sub, subscription_id = sub.subscription_id, subscription_description = sub.description }
  end)
end

-- Speed and policer, for L2VPN and NSIP2P.
function VC.modify_form(state)
  local sub = model.get(state.subscription_id)
  local vc = sub.virtual_circuit
  local values = coroutine.yield(F.page({ title = "Modify " .. sub.description, name = "ModifyCircuitForm",
    F.integer({ "speed", title = "Speed (Mbit/s)", min = 1, default = vc.speed }),
    F.boolean({ "speed_policer", title = "Speed policer", default = vc.speed_policer }) }))
  coroutine.yield(S.summary_page("Summary", { "speed", "speed_policer" }, values, vc))
  return { speed = values.speed, speed_policer = values.speed_policer }
end

function VC.update_subscription(label)
  return wf.step(label, function(state)
    local sub = model.get(state.subscription_id)
    sub.virtual_circuit.speed = state.speed
    sub.virtual_circuit.speed_policer = state.speed_policer
    sub:describe()
    return { subscription = sub, subscription_description = sub.description }
  end)
end

function VC.terminate_form(state)
  return F.page({ title = "Terminate", name = "TerminateCircuitForm", has_next = false,
    F.display_subscription({ "subscription", title = "Subscription", value = state.subscription_id }) })
end

return VC
