-- The example orchestrator's Nsistp product: an NSI service termination point,
-- a VLAN range on a tagged port reserved for NSI point-to-point services
-- (Nsip2p). It lives only in the orchestrator: no NetBox objects.

local model = orch.model
local wf = orch.workflow
local kinds = orch.workflows
local F = orch.forms
local nb = require("lib.netbox")
local S = require("lib.shared")

local null = orch.json.null

model.block({
  name = "Nsistp",
  tag = "NSISTP",
  description = "NSISTP product block",
  fields = {
    { "sap", model.owned("SAP") },
    { "topology", "string", required_from = "provisioning", description = "NSI topology" },
    { "stp_id", "string", required_from = "provisioning", description = "NSI STP identifier" },
    { "stp_description", "string", description = "STP description" },
    { "is_alias_in", "string", description = "NSI isAlias inbound URN" },
    { "is_alias_out", "string", description = "NSI isAlias outbound URN" },
    { "expose_in_topology", "boolean", description = "shown in the NSI topology" },
    { "bandwidth", "integer", description = "bandwidth in Mbit/s" },
  },
  computed = {
    title = function(stp)
      if stp.stp_id == nil then
        return nil
      end
      return "NSISTP " .. stp.stp_id .. " on " .. tostring(stp.sap.title)
    end,
    -- The Python example's product-level vlan_range: the VLANs of the SAP.
    vlan_range = function(stp)
      return stp.sap.vlan and tostring(stp.sap.vlan) or nil
    end,
  },
})

model.product_type({
  name = "Nsistp",
  fields = { { "nsistp", model.owned("Nsistp") } },
  description = function(sub)
    local n = sub.nsistp
    local port = n.sap.port
    return ("NSISTP %s topology %s %s %s Mbit/s"):format(tostring(n.stp_id), tostring(n.topology),
      tostring(port and port.node and port.node.node_name), tostring(n.bandwidth))
  end,
  products = { { name = "nsistp", description = "NSISTP", tag = "NSISTP", status = "active" } },
})

-- ---------------------------------------------------------------- validators --

local function matches_all(pattern, message)
  return function(value)
    if not value:lower():match(pattern) then
      return nil, message
    end
  end
end

local validate_topology = matches_all("^[%-a-z0-9+,.;=_]+$", "topology may only hold letters, digits and -+,.;=_")
local validate_stp_id = matches_all("^[%-a-z0-9+,.;=_:]+$", "stp_id may only hold letters, digits and -+,.;=_:")

local function validate_description(value)
  if value:find("[<>&]") then
    return nil, "description may not contain <, > or &"
  end
end

local function valid_fqdn(name)
  if #name > 253 or not name:find(".", 1, true) then
    return false
  end
  for label in (name .. "."):gmatch("([^.]*)%.") do
    if #label == 0 or #label > 63 or not label:match("^[%w][%w%-]*$") or label:sub(-1) == "-" then
      return false
    end
  end
  return true
end

local function valid_date(d)
  local n = #d
  if not d:match("^%d+$") or (n ~= 4 and n ~= 6 and n ~= 8) then
    return false
  end
  local month, day = tonumber(d:sub(5, 6)), tonumber(d:sub(7, 8))
  if month and (month < 1 or month > 12) then
    return false
  end
  if day and (day < 1 or day > 31) then
    return false
  end
  return true
end

-- urn:ogf:network:<fqdn>:<YYYY|YYYYMM|YYYYMMDD>:<rest>
local function validate_nsi_urn(value)
  local fqdn, date, rest = value:match("^urn:ogf:network:([^:]+):([^:]+):(.+)$")
  if not fqdn then
    return nil, "not an NSI URN (urn:ogf:network:<fqdn>:<date>:<name>)"
  end
  if not valid_fqdn(fqdn) then
    return nil, fqdn .. " is not a valid FQDN"
  end
  if not valid_date(date) then
    return nil, date .. " is not a valid date (YYYY, YYYYMM or YYYYMMDD)"
  end
  if rest == "" then
    return nil, "the URN needs a name after the date"
  end
end

-- stp_id is unique among Nsistp subscriptions that are not terminated (the product
-- type is "Nsistp"; the Python helper filtered on "NSISTP" and found nothing).
local function validate_stp_id_unique(value, _, _, state)
  local row = orch.db.one([[
    SELECT s.subscription_id::text FROM subscriptions s JOIN products p USING (product_id)
    JOIN subscription_instances i USING (subscription_id)
    JOIN subscription_instance_values v USING (subscription_instance_id)
    JOIN resource_types rt USING (resource_type_id)
    WHERE p.product_type = 'Nsistp' AND s.status <> 'terminated' AND rt.resource_type = 'stp_id'
      AND lower(v.value) = lower($1) AND s.subscription_id::text <> coalesce($2, '')]], value, state.subscription_id)
  if row then
    return nil, "stp_id " .. value .. " is already used by subscription " .. row.subscription_id
  end
end

local function aliases_paired(values)
  local a, b = values.is_alias_in ~= null, values.is_alias_out ~= null
  if a ~= b then
    return nil, "set both is_alias_in and is_alias_out, or neither"
  end
end

-- ---------------------------------------------------------------- workflows --

local FIELDS = { "port", "vlan", "topology", "stp_id", "stp_description", "is_alias_in", "is_alias_out",
  "expose_in_topology", "bandwidth" }

local function settings_fields(current)
  current = current or {}
  local function cur(k)
    local v = current[k]
    if v == nil then
      return nil
    end
    return v
  end
  return {
    F.string({ "topology", title = "Topology", default = cur("topology"), validate = validate_topology }),
    F.string({ "stp_description", title = "STP description", optional = true, default = cur("stp_description"),
      validate = validate_description }),
    F.string({ "is_alias_in", title = "Alias in (NSI URN)",
      optional = true, default = cur("is_alias_in"), validate = validate_nsi_urn }),
    F.string({ "is_alias_out", title = "Alias out (NSI URN)",
      optional = true, default = cur("is_alias_out"), validate = validate_nsi_urn }),
    F.boolean({ "expose_in_topology", title = "Expose in topology", default = cur("expose_in_topology") ~= false }),
    F.integer({ "bandwidth", title = "Bandwidth (Mbit/s)",
      min = 1, max = 400000, default = cur("bandwidth"), description = "Mbit/s" }),
  }
end

local function create_form(state)
  local page = {
    title = state.product_name,
    name = "CreateNsistpForm",
    validate = aliases_paired,
    S.customer_field(),
    F.label({ "port_settings", title = "Port settings" }),
    F.choice({ "port", title = "Port", enum_name = "PortChoice", options = S.tagged_port_options }),
    F.string({ "vlan", title = "VLAN", validate = { S.validate_vlan("port"), S.validate_vlan_not_in_use("port") } }),
    F.divider({ "divider", title = "Divider" }),
    F.string({ "stp_id", title = "STP id", validate = { validate_stp_id, validate_stp_id_unique } }),
  }
  for _, f in ipairs(settings_fields()) do
    page[#page + 1] = f
  end
  local values = coroutine.yield(F.page(page))
  coroutine.yield(S.summary_page(state.product_name .. " summary", FIELDS, values, nil,
    { port = S.tagged_port_options }))
  local out = { customer_id = values.customer_id }
  for _, k in ipairs(FIELDS) do
    out[k] = values[k]
  end
  return out
end

local SETTINGS = { "topology", "stp_description", "is_alias_in", "is_alias_out", "expose_in_topology", "bandwidth" }

local function set_settings(stp, state)
  for _, k in ipairs(SETTINGS) do
    local v = state[k]
    if v == null then
      v = nil
    end
    stp[k] = v
  end
end

kinds.create_workflow({
  name = "create_nsistp",
  description = "Create nsistp",
  products = { "nsistp" },
  form = create_form,
  steps = {
    wf.step("Construct Subscription model", function(state)
      local sub = model.create({ product = state.product, customer_id = state.customer_id })
      local stp = sub.nsistp
      local port = model.get(state.port).port
      stp.sap.port = port
      stp.sap.vlan = state.vlan
      stp.sap.ims_id = port.ims_id
      stp.stp_id = state.stp_id
      set_settings(stp, state)
      sub:describe()
      sub:set_status("provisioning")
      return { subscription = sub, subscription_id = sub.subscription_id,
        subscription_description = sub.description }
    end),
    kinds.store_process_subscription,
  },
})

kinds.modify_workflow({
  name = "modify_nsistp",
  description = "Modify nsistp",
  products = { "nsistp" },
  form = function(state)
    local sub = model.get(state.subscription_id)
    local stp = sub.nsistp
    local page = { title = "Modify " .. sub.description, name = "ModifyNsistpForm", validate = aliases_paired,
      F.read_only({ "stp_id", title = "STP id", value = stp.stp_id }), F.divider({ "divider", title = "Divider" }) }
    for _, f in ipairs(settings_fields(stp)) do
      page[#page + 1] = f
    end
    local values = coroutine.yield(F.page(page))
    coroutine.yield(S.summary_page("Summary", SETTINGS, values, stp))
    local out = {}
    for _, k in ipairs(SETTINGS) do
      out[k] = values[k]
    end
    return out
  end,
  steps = kinds.ensure_provisioning_status(wf.step("Update subscription", function(state)
    local sub = model.get(state.subscription_id)
    set_settings(sub.nsistp, state)
    sub:describe()
    return { subscription = sub, subscription_description = sub.description }
  end)),
})

kinds.terminate_workflow({
  name = "terminate_nsistp",
  description = "Terminate nsistp",
  products = { "nsistp" },
  form = function(state)
    return F.page({ title = "Terminate nsistp", name = "TerminateNsistpForm", has_next = false,
      F.display_subscription({ "subscription", title = "Subscription", value = state.subscription_id }) })
  end,
})

-- The STP needs its port's interface in NetBox, in tagged mode.
kinds.validate_workflow({
  name = "validate_nsistp",
  description = "Validate nsistp",
  products = { "nsistp" },
  steps = {
    wf.step("Validate port of the STP in IMS", function(state)
      local sub = model.get(state.subscription_id)
      local port = sub.nsistp.sap.port
      local interface = nb.get("dcim/interfaces", port.ims_id)
      nb.check(sub.description, { interface = interface and interface.id or null,
        mode = interface and nb.value_of(interface.mode) or null }, { interface = port.ims_id, mode = "tagged" })
    end),
  },
})
