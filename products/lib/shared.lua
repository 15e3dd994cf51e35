-- What the example products share: customer and subscription choices, the
-- VLAN validators of the create forms, summaries, the dummy NRM, the LSO
-- interaction and the NetBox interface payload of a port.

local F = orch.forms
local wf = orch.workflow
local db = orch.db
local nb = require("lib.netbox")

local null = orch.json.null

local S = {}

-- ---- choices ----

-- A fixed input of a product (e.g. the node_type of "node Cisco"), as text.
function S.fixed_input(product_id, name)
  local row = db.one("SELECT value FROM fixed_inputs WHERE product_id = $1::uuid AND name = $2", product_id, name)
  return row and row.value
end

function S.customer_options()
  local out = {}
  for _, c in ipairs(db.must("SELECT customer_id, fullname FROM customers ORDER BY fullname, customer_id")) do
    out[#out + 1] = { c.customer_id, c.fullname }
  end
  return out
end

-- A PostgreSQL text[] literal of any strings (for `= ANY($1::text[])`).
function S.text_array(list)
  local quoted = {}
  for i, v in ipairs(list) do
    quoted[i] = '"' .. tostring(v):gsub('[\\"]', "\\%0") .. '"'
  end
  return "{" .. table.concat(quoted, ",") .. "}"
end

-- The API (GraphQL `customers`, a subscription's or process's `customer`, so the UI)
-- shows the example's customers instead of core's single default one.
orch.customers.provide({
  list = function()
    return db.must("SELECT customer_id, fullname, shortcode FROM customers ORDER BY fullname, customer_id")
  end,
  lookup = function(ids)
    local out = {}
    for _, c in ipairs(db.must([[SELECT customer_id, fullname, shortcode FROM customers
                                 WHERE customer_id = ANY($1::text[])]], S.text_array(ids))) do
      out[c.customer_id] = c
    end
    return out
  end,
})

function S.customer_field()
  return F.choice({ "customer_id", title = "Customer", enum_name = "CustomerChoice", options = S.customer_options })
end

-- Active subscriptions of a product type, by description ({value = id, label = description}).
function S.active_subscriptions(product_type, extra_where)
  local rows = db.must([[
    SELECT s.subscription_id::text AS id, s.description FROM subscriptions s
    JOIN products p ON p.product_id = s.product_id
    WHERE p.product_type = $1 AND s.status = 'active' ]] .. (extra_where or "") .. [[
    ORDER BY s.description, s.subscription_id]], product_type)
  local out = {}
  for _, r in ipairs(rows) do
    out[#out + 1] = { r.id, r.description }
  end
  return out
end

function S.node_options()
  return S.active_subscriptions("Node")
end

-- Active Port subscriptions in tagged mode (the ports a service can use).
function S.tagged_port_options()
  return S.active_subscriptions("Port", [[AND EXISTS (
      SELECT 1 FROM subscription_instances i
      JOIN subscription_instance_values v ON v.subscription_instance_id = i.subscription_instance_id
      JOIN resource_types rt ON rt.resource_type_id = v.resource_type_id
      WHERE i.subscription_id = s.subscription_id AND rt.resource_type = 'port_mode' AND v.value = 'tagged')]])
end

-- The node name of a Node subscription (for NetBox look-ups in forms), or nil.
function S.node_name(node_subscription_id)
  local sub = orch.uuid.valid(node_subscription_id or "") and orch.model.load(node_subscription_id)
  return sub and sub.node.node_name or nil
end

-- ---- VLANs ----

-- VLANs of SAPs on the port(s) of these Port subscriptions, of subscriptions that are
-- not terminated (optionally only of one product type and some statuses).
function S.vlans_on_ports(port_subscription_ids, opts)
  opts = opts or {}
  local used = {}
  for _, port_id in ipairs(port_subscription_ids) do
    local rows = db.must([[
      SELECT v.value FROM subscription_instances port_i
      JOIN subscription_instance_relations r ON r.depends_on_id = port_i.subscription_instance_id
      JOIN subscription_instances sap ON sap.subscription_instance_id = r.in_use_by_id
      JOIN subscriptions s ON s.subscription_id = sap.subscription_id
      JOIN products p ON p.product_id = s.product_id
      JOIN subscription_instance_values v ON v.subscription_instance_id = sap.subscription_instance_id
      JOIN resource_types rt ON rt.resource_type_id = v.resource_type_id AND rt.resource_type = 'vlan'
      WHERE port_i.subscription_id = $1::uuid
        AND s.status = ANY($2::text[]) AND ($3::text IS NULL OR p.product_type = $3)
        AND ($4::uuid IS NULL OR s.subscription_id <> $4::uuid)]],
      port_id, "{" .. table.concat(opts.statuses or { "initial", "provisioning", "active" }, ",") .. "}",
      opts.product_type, opts.exclude)
    for _, r in ipairs(rows) do
      local ranges = orch.model.vlan_ranges(r.value)
      for _, v in ipairs(ranges and ranges:to_list() or {}) do
        used[v] = true
      end
    end
  end
  return used
end

local function sorted_keys(set)
  local out = {}
  for v in pairs(set) do
    out[#out + 1] = v
  end
  table.sort(out)
  return out
end

local function text_of(list)
  if #list == 0 then
    return "none"
  end
  return tostring(orch.model.vlan_ranges(table.concat(list, ",")))
end

-- Field validators: (value, values so far, ctx, state). `ports_field` names the field
-- with the chosen port subscription(s), which must come before the vlan field.
local function chosen_ports(values, ports_field)
  local p = values[ports_field]
  if p == nil or p == null then
    return {}
  end
  return type(p) == "table" and p or { p }
end

local function port_tag(port_subscription_id)
  local row = db.one([[SELECT p.tag FROM subscriptions s JOIN products p USING (product_id)
                       WHERE s.subscription_id = $1::uuid]], port_subscription_id)
  return row and row.tag
end

-- A VLAN set ("5,10-20") that holds at least one VLAN other than 0; normalised.
function S.validate_vlan(ports_field)
  return function(value, values)
    local ranges, message = orch.model.vlan_ranges(value)
    if not ranges then
      return nil, message or ("invalid VLAN ranges '" .. tostring(value) .. "'")
    end
    local list = ranges:to_list()
    if #list == 0 or (#list == 1 and list[1] == 0) then
      local ports = chosen_ports(values, ports_field)
      if #ports > 0 then
        return nil, tostring(port_tag(ports[1])) .. " must have a vlan"
      end
      return nil, "vlan must have a value"
    end
    for _, v in ipairs(list) do
      if v < 1 or v > 4094 then
        return nil, "VLAN " .. v .. " is out of range (1-4094)"
      end
    end
    return tostring(ranges)
  end
end

function S.validate_vlan_not_in_use(ports_field)
  return function(value, values)
    local used = S.vlans_on_ports(chosen_ports(values, ports_field))
    local ranges = orch.model.vlan_ranges(value)
    local clash = {}
    for _, v in ipairs(ranges and ranges:to_list() or {}) do
      if used[v] then
        clash[#clash + 1] = v
      end
    end
    if #clash > 0 then
      return nil, "Vlan(s) " .. text_of(clash) .. " already in use"
    end
  end
end

-- Every VLAN must be reserved by a `product_type` subscription on each chosen port.
function S.validate_vlan_reserved_by_product(ports_field, product_type)
  return function(value, values)
    local ranges = orch.model.vlan_ranges(value)
    for _, port in ipairs(chosen_ports(values, ports_field)) do
      local reserved = S.vlans_on_ports({ port }, { product_type = product_type,
        statuses = { "provisioning", "active" } })
      local missing = {}
      for _, v in ipairs(ranges and ranges:to_list() or {}) do
        if not reserved[v] then
          missing[#missing + 1] = v
        end
      end
      if #missing > 0 then
        local desc = db.one("SELECT description FROM subscriptions WHERE subscription_id = $1::uuid", port)
        return nil, ("VLAN(s) %s not reserved by %s on %s. Available vlans: %s"):format(text_of(missing),
          product_type, desc and desc.description or port, text_of(sorted_keys(reserved)))
      end
    end
  end
end

function S.validate_vlan_not_used_by_product(ports_field, product_type)
  return function(value, values)
    local ranges = orch.model.vlan_ranges(value)
    local used = S.vlans_on_ports(chosen_ports(values, ports_field), { product_type = product_type })
    local clash = {}
    for _, v in ipairs(ranges and ranges:to_list() or {}) do
      if used[v] then
        clash[#clash + 1] = v
      end
    end
    if #clash > 0 then
      return nil, ("VLAN(s) %s already in use by %s. Used vlans: %s"):format(text_of(clash), product_type,
        text_of(sorted_keys(used)))
    end
  end
end

-- ---- summaries ----

local function shown(v)
  if v == nil or v == null then
    return "None"
  end
  return tostring(v)
end

-- The titles of the example's fields, for summaries (forms give them to each field).
S.TITLES = {
  customer_id = "Customer", role_id = "Node role", type_id = "Node type", site_id = "Site",
  node_status = "Node status", node_name = "Node name", node_description = "Node description",
  port_ims_id = "Interface", port_description = "Port description", port_mode = "Port mode",
  auto_negotiation = "Auto negotiation", lldp = "LLDP", under_maintenance = "Under maintenance",
  speed = "Speed (Mbit/s)", speed_policer = "Speed policer", port = "Port", vlan = "VLAN", topology = "Topology",
  stp_id = "STP id", stp_description = "STP description", is_alias_in = "Alias in (NSI URN)",
  is_alias_out = "Alias out (NSI URN)", expose_in_topology = "Expose in topology", bandwidth = "Bandwidth (Mbit/s)",
}

-- The label of option `v` in an option list (or a function returning one), else nil.
local function option_label(options, v)
  if type(options) == "function" then
    options = options()
  end
  for _, o in ipairs(options or {}) do
    local value, label = o, o
    if type(o) == "table" then
      value, label = o.value or o[1], o.label or o[2] or o.value or o[1]
    end
    if tostring(value) == tostring(v) then
      return tostring(label)
    end
  end
end

-- How a value reads in a summary: names instead of ids, "-" for nothing, Yes/No.
local function summary_text(v, options)
  if v == nil or v == null or v == "" then
    return "-"
  elseif type(v) == "boolean" then
    return v and "Yes" or "No"
  end
  return options and option_label(options, v) or tostring(v)
end

-- A summary page of the fields `names` in `values` (create), or Before/After columns
-- (modify); rows are titled from S.TITLES, and `choices` = {field = options} shows the
-- option's label (a name) instead of its value (an id).
function S.summary_page(title, names, values, before, choices)
  choices = choices or {}
  local labels, after, old = {}, {}, {}
  for i, n in ipairs(names) do
    labels[i] = S.TITLES[n] or n
    after[i] = summary_text(values[n], choices[n])
    if before then
      old[i] = summary_text(before[n], choices[n])
    end
  end
  local data = { labels = labels, columns = { after } }
  if before then
    data = { labels = labels, headers = { "Before", "After" }, columns = { old, after } }
  end
  return F.page({ title = title, name = "SummaryForm", has_next = false,
    F.summary({ "summary", title = "Summary", data = data }) })
end

-- ---- dependants ----

-- What a product type does when a subscription it uses changed something it derives
-- from (a node's name in its description or in NetBox texts): fn(sub) after sub:describe().
local refreshers = {}

function S.on_dependency_changed(product_type, fn)
  refreshers[product_type] = fn
end

-- Every subscription that uses `sub` (directly or through others, not terminated) is
-- loaded, described again and refreshed by its product type's function; returns the
-- loaded models for the caller to save in its step's transaction.
function S.refresh_dependants(sub)
  local seen, out, queue = { [sub.subscription_id] = true }, {}, { sub }
  while #queue > 0 do
    local current = table.remove(queue, 1)
    for _, user in ipairs(current:in_use_by()) do
      if not seen[user.subscription_id] and user.status ~= "terminated" then
        seen[user.subscription_id] = true
        local dep = orch.model.get(user.subscription_id)
        dep:describe()
        local refresh = refreshers[dep.product.product_type]
        if refresh then
          refresh(dep)
        end
        out[#out + 1] = dep
        queue[#queue + 1] = dep
      end
    end
  end
  return out
end

-- A step that brings the dependants of the process's subscription along.
S.update_dependants = wf.step("Update dependent subscriptions", function(state, ctx)
  local deps = S.refresh_dependants(orch.model.get(state.subscription_id))
  local ids = {}
  for i, dep in ipairs(deps) do
    ids[i] = dep.subscription_id
  end
  ctx:defer(function()
    orch.model.save_all(deps)
  end)
  return { updated_dependants = orch.json.array(ids) }
end)

-- ---- NRM (a dummy, as in the example) ----

function S.nrm_id()
  return math.random(1, 65535)
end

-- ---- LSO ----

-- Whether workflows call LSO: the `lso_enabled` row of example_settings, read when a
-- process reaches an LSO step (switch it with SQL or PUT of the setting; no restart).
function S.lso_enabled()
  local ok, row = pcall(db.one, "SELECT value FROM example_settings WHERE key = 'lso_enabled'")
  return ok and row ~= nil and row.value == "true"
end

-- Run a playbook on LSO; it calls back on the process's callback route.
function S.execute_playbook(state, playbook, inventory, extra_vars)
  orch.client.post("lso", "/api/playbook", {
    playbook_name = playbook,
    inventory = table.concat(inventory, "\n") .. "\n",
    extra_vars = extra_vars,
    callback = orch.client.callback_url(state.callback_route),
  })
end

local evaluate = wf.step("Evaluate provisioning proxy result", function(state)
  local r = state.callback_result
  if type(r) ~= "table" or r.return_code ~= 0 then
    error(require("orch.runner").failure("Provisioning proxy failure", { callback_result = r }), 0)
  end
end)

local confirm = wf.inputstep("Confirm provisioning proxy results", {
  assignee = "SYSTEM",
  form = function(state)
    local r = type(state.callback_result) == "table" and state.callback_result or {}
    return F.page({ title = "Please confirm before continuing", name = "ConfirmRunPage", has_next = false,
      F.read_only({ "run_status", title = "Run status", value = shown(r.status) }),
      F.read_only({ "run_results", title = "Run results", value = orch.json.encode(r), format = "long" }),
    })
  end,
})

-- The example's lso_interaction: when LSO is on, run `action` (a step that calls
-- execute_playbook), wait for LSO's callback, fail on a non-zero return code and
-- ask a person to confirm the results; when off, all of it is skipped.
function S.lso_interaction(action)
  return wf.conditional(S.lso_enabled)({
    wf.callback_step({ name = action.name, action = action, validate = evaluate }),
    confirm,
  })
end

-- ---- ports in NetBox ----

-- NetBox VLAN-group ids of the SAPs (of L2VPN / NSIP2P subscriptions) using this port
-- block; `statuses` default to provisioning and active, so that a service being
-- created is pushed too; `exclude` leaves out a subscription being terminated.
function S.vlan_group_ids(port_block, statuses, exclude)
  local rows = db.must([[
    SELECT DISTINCT v.value::int AS id FROM subscription_instance_relations r
    JOIN subscription_instances sap ON sap.subscription_instance_id = r.in_use_by_id
    JOIN subscriptions s ON s.subscription_id = sap.subscription_id
    JOIN products p ON p.product_id = s.product_id
    JOIN subscription_instance_values v ON v.subscription_instance_id = sap.subscription_instance_id
    JOIN resource_types rt ON rt.resource_type_id = v.resource_type_id AND rt.resource_type = 'ims_id'
    WHERE r.depends_on_id = $1::uuid AND p.product_type IN ('L2vpn', 'Nsip2p')
      AND s.status = ANY($2::text[]) AND ($3::uuid IS NULL OR s.subscription_id <> $3::uuid)
    ORDER BY 1]], port_block.subscription_instance_id,
    "{" .. table.concat(statuses or { "provisioning", "active" }, ",") .. "}", exclude)
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = r.id
  end
  return out
end

-- What NetBox should hold for the interface of a port: `port_sub` a Port subscription.
function S.port_payload(port_sub, opts)
  opts = opts or {}
  local port = port_sub.port
  local vlans = {}
  for _, gid in ipairs(S.vlan_group_ids(port, opts.statuses, opts.exclude)) do
    for _, v in ipairs(nb.list("ipam/vlans", { group_id = gid })) do
      vlans[#vlans + 1] = v.id
    end
  end
  table.sort(vlans)
  return {
    device = port.node.ims_id,
    name = port.port_name,
    type = port.port_type,
    tagged_vlans = orch.json.array(vlans),
    mode = port.port_mode == "tagged" and "tagged" or null,
    description = port.port_description or "",
    enabled = port.enabled,
    speed = port_sub.speed * 1000,
  }
end

-- The same fields read back from a NetBox interface.
function S.port_payload_of(interface)
  local vlans = {}
  for _, v in ipairs(interface.tagged_vlans or {}) do
    vlans[#vlans + 1] = v.id
  end
  table.sort(vlans)
  return {
    device = nb.id_of(interface.device),
    name = interface.name,
    type = nb.value_of(interface.type),
    tagged_vlans = orch.json.array(vlans),
    mode = nb.value_of(interface.mode) or null,
    description = interface.description,
    enabled = interface.enabled,
    speed = interface.speed,
  }
end

-- PATCH the interface of every distinct Port subscription these SAPs use.
function S.update_ports_of_saps(saps, opts)
  local done, payloads = {}, {}
  for _, sap in ipairs(saps) do
    local owner = sap.port and sap.port.owner_subscription_id
    if owner and not done[owner] then
      done[owner] = true
      local port_sub = orch.model.get(owner)
      local payload = S.port_payload(port_sub, opts)
      nb.update("dcim/interfaces", port_sub.port.ims_id, payload)
      payloads[#payloads + 1] = payload
    end
  end
  return payloads
end

return S
