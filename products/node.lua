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

local function node(name, node_type)
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
    node("node Cisco", "Cisco"),
    node("node Nokia", "Nokia"),
    node("node Cumulus", "Cumulus"),
    node("node FRR", "FRR"),
  },
})
