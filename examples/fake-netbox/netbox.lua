-- The NetBox REST subset the example workflows use (reference §2.10), in
-- memory: typed fields, nested objects and choices as NetBox returns them,
-- filters, ?limit&offset pagination, uniqueness, and what deleting an object
-- does to others (cascade, protect, set null) as in NetBox.
local json = require("json")
local ip = require("ip")

local null = json.null
local netbox = {}

-- ---------------------------------------------------------------- schema --

local STATUS = { active = "Active", planned = "Planned", staged = "Staged", failed = "Failed",
  offline = "Offline", inventory = "Inventory", decommissioning = "Decommissioning", retired = "Retired",
  connected = "Connected", reserved = "Reserved", deprecated = "Deprecated", container = "Container",
  dhcp = "DHCP", slaac = "SLAAC" }
local IF_TYPES = { virtual = "Virtual", ["1000base-t"] = "1000BASE-T (1GE)", ["10gbase-x-sfpp"] = "SFP+ (10GE)",
  ["10gbase-x-xfp"] = "XFP (10GE)", ["100gbase-x-cfp"] = "CFP (100GE)", ["100gbase-x-qsfp28"] = "QSFP28 (100GE)",
  ["25gbase-x-sfp28"] = "SFP28 (25GE)", ["40gbase-x-qsfpp"] = "QSFP+ (40GE)", other = "Other" }
local IF_MODES = { access = "Access", tagged = "Tagged", ["tagged-all"] = "Tagged (All)" }
local CABLE_TYPES = { smf = "Singlemode Fiber", mmf = "Multimode Fiber", cat6 = "CAT6",
  ["dac-passive"] = "Direct Attach Copper (Passive)" }
local L2VPN_TYPES = { ["mpls-evpn"] = "MPLS EVPN", vxlan = "VXLAN", ["vxlan-evpn"] = "VXLAN-EVPN", vpls = "VPLS",
  vpws = "VPWS", epl = "EPL", evpl = "EVPL" }
-- Generic foreign keys: NetBox object types -> endpoints.
local OBJECT_TYPES = { ["dcim.interface"] = "dcim/interfaces", ["ipam.vlan"] = "ipam/vlans" }

-- Field kinds: string, int, bool, choice (choices), fk (to), fk_list (to), json, object_type.
-- Options: required, default, nullable (default true unless required).
local TYPES = {}
local ORDER = {} -- endpoints in definition order (the state dump, the reset)

local function def(endpoint, spec)
  spec.endpoint = endpoint
  spec.fields = spec.fields or {}
  spec.field_order = spec.field_order or {}
  spec.filters = spec.filters or {}
  spec.unique = spec.unique or {}
  TYPES[endpoint] = spec
  ORDER[#ORDER + 1] = endpoint
end

local function fields(list)
  local f, order = {}, {}
  for _, item in ipairs(list) do
    f[item[1]] = item
    order[#order + 1] = item[1]
  end
  return f, order
end

local function named(endpoint, extra, spec)
  local list = { { "name", kind = "string", required = true }, { "slug", kind = "string", required = true },
    { "description", kind = "string", default = "" } }
  for _, e in ipairs(extra or {}) do
    list[#list + 1] = e
  end
  spec = spec or {}
  spec.fields, spec.field_order = fields(list)
  spec.unique = spec.unique or { { "name" }, { "slug" } }
  spec.brief = spec.brief or { "name", "slug", "description" }
  spec.display = spec.display or function(o)
    return o.name
  end
  spec.filters = spec.filters or {}
  spec.filters.name = spec.filters.name or "name"
  spec.filters.slug = spec.filters.slug or "slug"
  def(endpoint, spec)
end

named("dcim/sites", { { "status", kind = "choice", choices = STATUS, default = "active" } },
  { filters = { status = "status" } })
named("dcim/device-roles", { { "color", kind = "string", default = "9e9e9e" },
  { "vm_role", kind = "bool", default = true } })
named("dcim/manufacturers")

do
  local f, order = fields({
    { "manufacturer", kind = "fk", to = "dcim/manufacturers", required = true, on_delete = "protect" },
    { "model", kind = "string", required = true },
    { "slug", kind = "string", required = true },
    { "u_height", kind = "number", default = 1 },
    { "description", kind = "string", default = "" },
  })
  def("dcim/device-types", {
    fields = f, field_order = order,
    unique = { { "manufacturer", "model" }, { "manufacturer", "slug" } },
    brief = { "manufacturer", "model", "slug", "description" },
    display = function(o)
      return o.model
    end,
    filters = { model = "model", slug = "slug", manufacturer_id = "manufacturer",
      manufacturer = function(o, v, store)
        local m = store["dcim/manufacturers"].by_id[o.manufacturer]
        return m ~= nil and m.slug == v
      end },
  })
end

do
  local f, order = fields({
    { "name", kind = "string" },
    { "device_type", kind = "fk", to = "dcim/device-types", required = true, on_delete = "protect" },
    { "role", kind = "fk", to = "dcim/device-roles", required = true, on_delete = "protect" },
    { "site", kind = "fk", to = "dcim/sites", required = true, on_delete = "protect" },
    { "status", kind = "choice", choices = STATUS, default = "active" },
    { "primary_ip4", kind = "fk", to = "ipam/ip-addresses", on_delete = "set_null" },
    { "primary_ip6", kind = "fk", to = "ipam/ip-addresses", on_delete = "set_null" },
    { "serial", kind = "string", default = "" },
    { "description", kind = "string", default = "" },
  })
  def("dcim/devices", {
    fields = f, field_order = order,
    unique = { { "site", "name" } },
    brief = { "name", "description" },
    display = function(o)
      return o.name ~= null and o.name or ("device " .. o.id)
    end,
    filters = { name = "name", site_id = "site", role_id = "role", device_type_id = "device_type", status = "status",
      site = function(o, v, store)
        return store["dcim/sites"].by_id[o.site].slug == v
      end },
    computed = function(o, out, nb)
      local p = o.primary_ip4 ~= null and o.primary_ip4 or o.primary_ip6
      out.primary_ip = p ~= null and nb.brief("ipam/ip-addresses", p) or null
    end,
  })
end

local function device_name_filter(o, v, store)
  local d = store["dcim/devices"].by_id[o.device]
  return d ~= nil and d.name == v
end

do
  local f, order = fields({
    { "device", kind = "fk", to = "dcim/devices", required = true, on_delete = "cascade" },
    { "name", kind = "string", required = true },
    { "type", kind = "choice", choices = IF_TYPES, required = true },
    { "enabled", kind = "bool", default = true },
    { "speed", kind = "int" },
    { "mtu", kind = "int" },
    { "mode", kind = "choice", choices = IF_MODES },
    { "untagged_vlan", kind = "fk", to = "ipam/vlans", on_delete = "set_null" },
    { "tagged_vlans", kind = "fk_list", to = "ipam/vlans" },
    { "description", kind = "string", default = "" },
  })
  def("dcim/interfaces", {
    fields = f, field_order = order,
    unique = { { "device", "name" } },
    brief = { "device", "name", "description", "cable" },
    display = function(o)
      return o.name
    end,
    filters = { name = "name", device_id = "device", enabled = "enabled", speed = "speed", type = "type",
      mode = "mode", device = device_name_filter },
    computed = function(o, out, nb)
      local cable = nb.cable_of(o.id)
      out.cable = cable and nb.brief("dcim/cables", cable.id) or null
    end,
    brief_computed = function(o, out, nb)
      local cable = nb.cable_of(o.id)
      out.cable = cable and cable.id or null
    end,
  })
end

do
  local f, order = fields({
    { "type", kind = "choice", choices = CABLE_TYPES },
    { "status", kind = "choice", choices = STATUS, default = "connected" },
    { "a_terminations", kind = "terminations", required = true },
    { "b_terminations", kind = "terminations", required = true },
    { "label", kind = "string", default = "" },
    { "description", kind = "string", default = "" },
  })
  def("dcim/cables", {
    fields = f, field_order = order,
    brief = { "label", "description" },
    display = function(o)
      return o.label ~= "" and o.label or ("#" .. o.id)
    end,
    filters = { label = "label", status = "status",
      device_id = function(o, v, store)
        for _, side in ipairs({ o.a_terminations, o.b_terminations }) do
          for _, t in ipairs(side) do
            local i = store["dcim/interfaces"].by_id[t.object_id]
            if i and tostring(i.device) == v then
              return true
            end
          end
        end
        return false
      end },
  })
end

-- Compare addresses and prefixes as NetBox does: parsed, so that any spelling matches; an
-- address without a mask matches any mask.
local function same_cidr(have, want)
  local a, alen = ip.parse_cidr(have)
  local b, blen = ip.parse_cidr(want)
  if not a or not b or a.family ~= b.family or ip.compare(a, b) ~= 0 then
    return false
  end
  return alen == blen or not want:find("/", 1, true)
end

local function family_of(text)
  return text and text:find(":", 1, true) and 6 or 4
end
local function family_value(n)
  return { value = n, label = "IPv" .. n }
end

do
  local f, order = fields({
    { "prefix", kind = "cidr", required = true },
    { "status", kind = "choice", choices = STATUS, default = "active" },
    { "is_pool", kind = "bool", default = false },
    { "mark_utilized", kind = "bool", default = false },
    { "description", kind = "string", default = "" },
  })
  def("ipam/prefixes", {
    fields = f, field_order = order,
    brief = { "prefix", "description" },
    display = function(o)
      return o.prefix
    end,
    filters = { status = "status", is_pool = "is_pool",
      prefix = function(o, v)
        return same_cidr(o.prefix, v)
      end,
      family = function(o, v)
        return tostring(family_of(o.prefix)) == v
      end },
    computed = function(o, out)
      out.family = family_value(family_of(o.prefix))
    end,
    brief_computed = function(o, out)
      out.family = family_value(family_of(o.prefix))
    end,
  })
end

do
  local f, order = fields({
    { "address", kind = "cidr", required = true },
    { "status", kind = "choice", choices = STATUS, default = "active" },
    { "assigned_object_type", kind = "object_type" },
    { "assigned_object_id", kind = "generic_id", type_field = "assigned_object_type", on_delete = "cascade" },
    { "dns_name", kind = "string", default = "" },
    { "description", kind = "string", default = "" },
  })
  def("ipam/ip-addresses", {
    fields = f, field_order = order,
    brief = { "address", "description" },
    display = function(o)
      return o.address
    end,
    filters = { assigned_object_id = "assigned_object_id", status = "status",
      address = function(o, v)
        return same_cidr(o.address, v)
      end,
      interface_id = function(o, v)
        return o.assigned_object_type == "dcim.interface" and tostring(o.assigned_object_id) == v
      end,
      device_id = function(o, v, store)
        if o.assigned_object_type ~= "dcim.interface" then
          return false
        end
        local i = store["dcim/interfaces"].by_id[o.assigned_object_id]
        return i ~= nil and tostring(i.device) == v
      end,
      parent = function(o, v)
        local pa, plen = ip.parse_cidr(v)
        local a = ip.parse_cidr(o.address)
        return pa ~= nil and a ~= nil and ip.contains(pa, plen, a)
      end },
    computed = function(o, out, nb)
      out.family = family_value(family_of(o.address))
      local t = OBJECT_TYPES[o.assigned_object_type]
      out.assigned_object = (t and o.assigned_object_id ~= null) and nb.brief(t, o.assigned_object_id) or null
    end,
    brief_computed = function(o, out)
      out.family = family_value(family_of(o.address))
    end,
  })
end

do
  local f, order = fields({
    { "name", kind = "string", required = true },
    { "slug", kind = "string", required = true },
    { "vid_ranges", kind = "json" },
    { "description", kind = "string", default = "" },
  })
  def("ipam/vlan-groups", {
    fields = f, field_order = order,
    unique = { { "name" }, { "slug" } },
    brief = { "name", "slug", "description" },
    display = function(o)
      return o.name
    end,
    filters = { name = "name", slug = "slug" },
  })
end

do
  local f, order = fields({
    { "vid", kind = "int", required = true },
    { "name", kind = "string", required = true },
    { "group", kind = "fk", to = "ipam/vlan-groups", on_delete = "protect" },
    { "status", kind = "choice", choices = STATUS, default = "active" },
    { "description", kind = "string", default = "" },
  })
  def("ipam/vlans", {
    fields = f, field_order = order,
    unique = { { "group", "vid" }, { "group", "name" } },
    brief = { "vid", "name", "description" },
    display = function(o)
      return o.name
    end,
    filters = { vid = "vid", name = "name", group_id = "group", status = "status" },
  })
end

do
  local f, order = fields({
    { "name", kind = "string", required = true },
    { "slug", kind = "string", required = true },
    { "type", kind = "choice", choices = L2VPN_TYPES, required = true },
    { "identifier", kind = "int" },
    { "description", kind = "string", default = "" },
  })
  def("vpn/l2vpns", {
    fields = f, field_order = order,
    unique = { { "name" }, { "slug" } },
    brief = { "identifier", "name", "slug", "type", "description" },
    display = function(o)
      return o.name
    end,
    filters = { name = "name", slug = "slug", type = "type", identifier = "identifier" },
  })
end

do
  local f, order = fields({
    { "l2vpn", kind = "fk", to = "vpn/l2vpns", required = true, on_delete = "cascade" },
    { "assigned_object_type", kind = "object_type", required = true },
    { "assigned_object_id", kind = "generic_id", type_field = "assigned_object_type", required = true,
      on_delete = "cascade" },
  })
  def("vpn/l2vpn-terminations", {
    fields = f, field_order = order,
    unique = { { "assigned_object_type", "assigned_object_id" } },
    brief = { "l2vpn" },
    display = function(o)
      return "termination " .. o.id
    end,
    filters = { l2vpn_id = "l2vpn", assigned_object_id = "assigned_object_id",
      l2vpn = function(o, v, store)
        return store["vpn/l2vpns"].by_id[o.l2vpn].slug == v
      end,
      vlan_id = function(o, v)
        return o.assigned_object_type == "ipam.vlan" and tostring(o.assigned_object_id) == v
      end },
    computed = function(o, out, nb)
      local t = OBJECT_TYPES[o.assigned_object_type]
      out.assigned_object = t and nb.brief(t, o.assigned_object_id) or null
    end,
  })
end

netbox.TYPES = TYPES
netbox.ORDER = ORDER

-- ----------------------------------------------------------------- store --

local store, next_id

function netbox.reset()
  store, next_id = {}, {}
  for _, e in ipairs(ORDER) do
    store[e] = { by_id = {}, ids = {} }
    next_id[e] = 1
  end
end
netbox.reset()

local base_url = "http://127.0.0.1"
function netbox.set_base_url(url)
  base_url = url
end

local function object_url(endpoint, id)
  return base_url .. "/api/" .. endpoint .. "/" .. id .. "/"
end

local function sorted_ids(t)
  table.sort(t.ids)
  return t.ids
end

-- ------------------------------------------------------------- rendering --

local nb = {} -- the helpers the type specs' computed functions get

function nb.brief(endpoint, id)
  local spec, o = TYPES[endpoint], store[endpoint].by_id[id]
  if not o then
    return null
  end
  local out = { id = o.id, url = object_url(endpoint, o.id), display = spec.display(o) }
  for _, name in ipairs(spec.brief) do
    local field = spec.fields[name]
    local v = o[name]
    if field and field.kind == "fk" then
      out[name] = v ~= null and nb.brief(field.to, v) or null
    elseif field and field.kind == "choice" then
      out[name] = v ~= null and { value = v, label = field.choices[v] } or null
    elseif v ~= nil then
      out[name] = v
    end
  end
  if spec.brief_computed then
    spec.brief_computed(o, out, nb)
  end
  return out
end

function nb.cable_of(interface_id)
  for _, id in ipairs(sorted_ids(store["dcim/cables"])) do
    local c = store["dcim/cables"].by_id[id]
    for _, side in ipairs({ c.a_terminations, c.b_terminations }) do
      for _, t in ipairs(side) do
        if t.object_type == "dcim.interface" and t.object_id == interface_id then
          return c
        end
      end
    end
  end
  return nil
end

local array = json.array

function netbox.render(endpoint, id)
  local spec, o = TYPES[endpoint], store[endpoint].by_id[id]
  local out = { id = o.id, url = object_url(endpoint, o.id), display = spec.display(o),
    created = o._created, last_updated = o._updated }
  for _, name in ipairs(spec.field_order) do
    local field, v = spec.fields[name], o[name]
    if field.kind == "fk" then
      out[name] = v ~= null and nb.brief(field.to, v) or null
    elseif field.kind == "fk_list" then
      local list = {}
      for _, x in ipairs(v) do
        list[#list + 1] = nb.brief(field.to, x)
      end
      out[name] = array(list)
    elseif field.kind == "choice" then
      out[name] = v ~= null and { value = v, label = field.choices[v] } or null
    elseif field.kind == "terminations" then
      local list = {}
      for _, t in ipairs(v) do
        list[#list + 1] = { object_type = t.object_type, object_id = t.object_id,
          object = nb.brief(OBJECT_TYPES[t.object_type], t.object_id) }
      end
      out[name] = array(list)
    else
      out[name] = v
    end
  end
  if spec.computed then
    spec.computed(o, out, nb)
  end
  return out
end

-- ------------------------------------------------------------- validation --

local function is_int(v)
  return math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v))
end

-- Resolve a foreign key given as an id, {id = n} or attributes ({name = ..., slug = ...}).
local function resolve(to, v)
  local id = v
  if type(v) == "table" then
    if v.id ~= nil then
      id = v.id
    else
      local matches = {}
      for _, oid in ipairs(sorted_ids(store[to])) do
        local o = store[to].by_id[oid]
        local all = true
        for k, want in pairs(v) do
          if o[k] ~= want then
            all = false
          end
        end
        if all then
          matches[#matches + 1] = oid
        end
      end
      if #matches ~= 1 then
        return nil, "Related object not found using the provided attributes: " .. json.encode(v)
      end
      return matches[1]
    end
  end
  if type(id) == "string" and id:match("^%d+$") then
    id = tonumber(id)
  end
  if not is_int(id) then
    return nil, "Incorrect type. Expected pk value, received " .. type(id) .. "."
  end
  id = math.tointeger(id)
  if not store[to].by_id[id] then
    return nil, 'Invalid pk "' .. id .. '" - object does not exist.'
  end
  return id
end

-- Convert one input value of a field; returns value or nil, message.
local function convert(field, v, input)
  if v == null then
    if field.required then
      return nil, "This field may not be null."
    end
    if field.kind == "fk_list" or field.kind == "terminations" then
      return array({})
    end
    return null
  end
  local kind = field.kind
  if kind == "string" then
    if type(v) ~= "string" then
      return nil, "Not a valid string."
    end
    return v
  elseif kind == "int" then
    if type(v) == "string" and v:match("^%-?%d+$") then
      v = tonumber(v)
    end
    if not is_int(v) then
      return nil, "A valid integer is required."
    end
    return math.tointeger(v)
  elseif kind == "number" then
    if type(v) ~= "number" then
      return nil, "A valid number is required."
    end
    return v
  elseif kind == "bool" then
    if type(v) ~= "boolean" then
      return nil, "Must be a valid boolean."
    end
    return v
  elseif kind == "choice" then
    if type(v) == "table" then
      v = v.value
    end
    if v == "" and not field.required then
      return null
    end
    if type(v) ~= "string" or not field.choices[v] then
      return nil, '"' .. tostring(v) .. '" is not a valid choice.'
    end
    return v
  elseif kind == "fk" then
    return resolve(field.to, v)
  elseif kind == "fk_list" then
    if type(v) ~= "table" then
      return nil, "Expected a list of items."
    end
    local out = array({})
    for _, x in ipairs(v) do
      local id, err = resolve(field.to, x)
      if not id then
        return nil, err
      end
      out[#out + 1] = id
    end
    return out
  elseif kind == "cidr" then
    local a, len = ip.parse_cidr(v)
    if not a or not v:find("/", 1, true) then
      return nil, "Enter a valid IPv4 or IPv6 address with a mask."
    end
    if field[1] == "prefix" then
      a = ip.network(a, len)
    end
    return ip.format(a) .. "/" .. len
  elseif kind == "object_type" then
    if not OBJECT_TYPES[v] then
      return nil, "Invalid content type: " .. tostring(v)
    end
    return v
  elseif kind == "generic_id" then
    local t = OBJECT_TYPES[input[field.type_field]]
    if not t then
      return nil, "Missing or invalid " .. field.type_field .. "."
    end
    return resolve(t, v)
  elseif kind == "terminations" then
    if type(v) ~= "table" or #v == 0 then
      return nil, "Must define A and B terminations when creating a new cable."
    end
    local out = array({})
    for _, t in ipairs(v) do
      local to = type(t) == "table" and OBJECT_TYPES[t.object_type]
      if not to then
        return nil, "Invalid object type: " .. tostring(type(t) == "table" and t.object_type)
      end
      local id, err = resolve(to, t.object_id)
      if not id then
        return nil, err
      end
      out[#out + 1] = { object_type = t.object_type, object_id = id }
    end
    return out
  end
  return v -- json
end

-- Apply input to a record (new = creating); returns the new record or nil, errors.
local function apply(endpoint, record, input, new)
  local spec = TYPES[endpoint]
  local errors = {}
  if type(input) ~= "table" or json.is_array(input) then
    return nil, { non_field_errors = { "Invalid data. Expected a dictionary." } }
  end
  for k in pairs(input) do
    if not spec.fields[k] and k ~= "id" then
      -- NetBox ignores unknown fields; the fake refuses them so that mistakes show.
      errors[k] = { "Unknown field (the fake NetBox implements only the subset the example workflows use)." }
    end
  end
  local out = {}
  for k, v in pairs(record or {}) do
    out[k] = v
  end
  for _, name in ipairs(spec.field_order) do
    local field = spec.fields[name]
    local v = input[name]
    if v == nil and new then
      if field.required then
        errors[name] = { "This field is required." }
      elseif field.default ~= nil then
        out[name] = field.default
      elseif field.kind == "fk_list" then
        out[name] = array({})
      else
        out[name] = null
      end
    elseif v ~= nil then
      local value, err = convert(field, v, setmetatable({}, { __index = function(_, k)
        if input[k] ~= nil then
          return input[k]
        end
        return out[k]
      end }))
      if value == nil then
        errors[name] = { err }
      else
        out[name] = value
      end
    end
  end
  if next(errors) then
    return nil, errors
  end
  -- Uniqueness within the type.
  for _, set in ipairs(spec.unique) do
    local relevant = true
    for _, k in ipairs(set) do
      if out[k] == null or out[k] == nil then
        relevant = false
      end
    end
    if relevant then
      for _, oid in ipairs(sorted_ids(store[endpoint])) do
        local o = store[endpoint].by_id[oid]
        if oid ~= out.id then
          local same = true
          for _, k in ipairs(set) do
            if o[k] ~= out[k] then
              same = false
            end
          end
          if same then
            return nil, { [set[#set]] = { "An object with this " .. table.concat(set, " and ") .. " already exists." } }
          end
        end
      end
    end
  end
  return out
end

local function now_iso()
  return os.date("!%Y-%m-%dT%H:%M:%S") .. ".000000Z"
end

-- create(endpoint, input) -> status, body
function netbox.create(endpoint, input)
  local record, errors = apply(endpoint, nil, input, true)
  if not record then
    return 400, errors
  end
  local id = next_id[endpoint]
  next_id[endpoint] = id + 1
  record.id = id
  record._created = now_iso()
  record._updated = record._created
  store[endpoint].by_id[id] = record
  table.insert(store[endpoint].ids, id)
  return 201, netbox.render(endpoint, id)
end

function netbox.update(endpoint, id, input, replace)
  local record = store[endpoint].by_id[id]
  if not record then
    return 404, { detail = "No " .. endpoint .. " matches the given query." }
  end
  local updated, errors = apply(endpoint, record, input, replace)
  if not updated then
    return 400, errors
  end
  updated.id, updated._created = id, record._created
  updated._updated = now_iso()
  store[endpoint].by_id[id] = updated
  return 200, netbox.render(endpoint, id)
end

function netbox.get(endpoint, id)
  if not store[endpoint].by_id[id] then
    return 404, { detail = "No " .. endpoint .. " matches the given query." }
  end
  return 200, netbox.render(endpoint, id)
end

function netbox.find(endpoint, id)
  return store[endpoint].by_id[id]
end

-- ---------------------------------------------------------------- delete --

-- Every (endpoint, id, field, action) that points at target (endpoint, id).
local function referrers(t_endpoint, t_id)
  local out = {}
  for _, e in ipairs(ORDER) do
    local spec = TYPES[e]
    for _, oid in ipairs(sorted_ids(store[e])) do
      local o = store[e].by_id[oid]
      for _, name in ipairs(spec.field_order) do
        local f, v = spec.fields[name], o[name]
        if f.kind == "fk" and f.to == t_endpoint and v == t_id then
          out[#out + 1] = { e, oid, name, f.on_delete or "set_null" }
        elseif f.kind == "generic_id" and OBJECT_TYPES[o[f.type_field]] == t_endpoint and v == t_id then
          out[#out + 1] = { e, oid, name, f.on_delete or "cascade" }
        elseif f.kind == "fk_list" and f.to == t_endpoint then
          for _, x in ipairs(v) do
            if x == t_id then
              out[#out + 1] = { e, oid, name, "remove" }
            end
          end
        elseif f.kind == "terminations" then
          for _, t in ipairs(v) do
            if OBJECT_TYPES[t.object_type] == t_endpoint and t.object_id == t_id then
              -- The fake removes the whole cable with one of its ends.
              out[#out + 1] = { e, oid, name, "cascade" }
            end
          end
        end
      end
    end
  end
  return out
end

local function key(e, id)
  return e .. "#" .. id
end

-- delete(endpoint, id) -> status, body: cascades as NetBox, 409 when protected.
function netbox.delete(endpoint, id)
  if not store[endpoint].by_id[id] then
    return 404, { detail = "No " .. endpoint .. " matches the given query." }
  end
  -- The closure of cascading deletes.
  local doomed, queue, order = {}, { { endpoint, id } }, {}
  doomed[key(endpoint, id)] = true
  while #queue > 0 do
    local item = table.remove(queue, 1)
    order[#order + 1] = item
    for _, r in ipairs(referrers(item[1], item[2])) do
      if r[4] == "cascade" and not doomed[key(r[1], r[2])] then
        doomed[key(r[1], r[2])] = true
        queue[#queue + 1] = { r[1], r[2] }
      end
    end
  end
  -- Protection by anything that survives.
  local blockers = {}
  for _, item in ipairs(order) do
    for _, r in ipairs(referrers(item[1], item[2])) do
      if r[4] == "protect" and not doomed[key(r[1], r[2])] then
        blockers[#blockers + 1] = r[1] .. " " .. r[2]
      end
    end
  end
  if #blockers > 0 then
    return 409, { detail = "Unable to delete object. " .. #blockers .. " dependent objects were found: "
      .. table.concat(blockers, ", ") }
  end
  for _, item in ipairs(order) do
    for _, r in ipairs(referrers(item[1], item[2])) do
      if not doomed[key(r[1], r[2])] then
        local o = store[r[1]].by_id[r[2]]
        if r[4] == "remove" then
          local kept = array({})
          for _, x in ipairs(o[r[3]]) do
            if x ~= item[2] then
              kept[#kept + 1] = x
            end
          end
          o[r[3]] = kept
        elseif r[4] == "set_null" then
          o[r[3]] = null
        end
      end
    end
  end
  for _, item in ipairs(order) do
    local t = store[item[1]]
    t.by_id[item[2]] = nil
    for i, x in ipairs(t.ids) do
      if x == item[2] then
        table.remove(t.ids, i)
        break
      end
    end
  end
  return 204, nil
end

-- ---------------------------------------------------------------- lists --

local PAGE_DEFAULT, PAGE_MAX = 50, 1000
local CONTROL = { limit = true, offset = true, ordering = true, brief = true }

local function matches(spec, o, query)
  for name, values in pairs(query) do
    if not CONTROL[name] then
      local filter = spec.filters[name]
      if filter == nil and name == "id" then
        filter = "id"
      end
      local any = false
      for _, v in ipairs(values) do
        local ok
        if type(filter) == "function" then
          ok = filter(o, v, store)
        else
          local have = o[filter]
          if type(have) == "boolean" then
            ok = tostring(have) == v:lower()
          else
            ok = have ~= null and tostring(have) == v
          end
        end
        if ok then
          any = true
        end
      end
      if not any then
        return false
      end
    end
  end
  return true
end

-- list(endpoint, req) -> status, body: {count, next, previous, results}.
function netbox.list(endpoint, req)
  local spec = TYPES[endpoint]
  local query = req.query
  for name in pairs(query) do
    if not CONTROL[name] and not spec.filters[name] and name ~= "id" then
      return 400, { [name] = { "Unknown filter (the fake NetBox implements only the subset the example"
        .. " workflows use)." } }
    end
  end
  local limit = tonumber(query.limit and query.limit[1]) or PAGE_DEFAULT
  local offset = tonumber(query.offset and query.offset[1]) or 0
  if limit <= 0 or limit > PAGE_MAX then
    limit = PAGE_MAX
  end
  local all = {}
  for _, id in ipairs(sorted_ids(store[endpoint])) do
    local o = store[endpoint].by_id[id]
    if matches(spec, o, query) then
      all[#all + 1] = id
    end
  end
  local results = array({})
  for i = offset + 1, math.min(#all, offset + limit) do
    results[#results + 1] = netbox.render(endpoint, all[i])
  end
  local function link(off)
    local parts = {}
    for _, name in ipairs(req.query_order) do
      if name ~= "limit" and name ~= "offset" then
        for _, v in ipairs(query[name]) do
          parts[#parts + 1] = req.encode(name) .. "=" .. req.encode(v)
        end
      end
    end
    parts[#parts + 1] = "limit=" .. limit
    if off > 0 then
      parts[#parts + 1] = "offset=" .. off
    end
    return base_url .. "/api/" .. endpoint .. "/?" .. table.concat(parts, "&")
  end
  return 200, {
    count = #all,
    next = offset + limit < #all and link(offset + limit) or null,
    previous = offset > 0 and link(math.max(0, offset - limit)) or null,
    results = results,
  }
end

-- ------------------------------------------------------ available-ips/prefixes --

-- Used addresses inside a prefix.
local function used_addresses(pa, plen)
  local used = {}
  for _, id in ipairs(sorted_ids(store["ipam/ip-addresses"])) do
    local a = ip.parse_cidr(store["ipam/ip-addresses"].by_id[id].address)
    if a and ip.contains(pa, plen, a) then
      used[ip.format(a)] = true
    end
  end
  return used
end

-- The first `count` free addresses of a prefix, as NetBox hands them out:
-- the IPv4 network and broadcast addresses and the IPv6 subnet-router anycast
-- address are skipped unless the prefix is a pool or a /31 (/127) or smaller.
local function free_addresses(prefix, count)
  local pa, plen = ip.parse_cidr(prefix.prefix)
  local a, last = ip.network(pa, plen), ip.last(pa, plen)
  local whole = prefix.is_pool or plen >= ip.bits(pa) - 1
  local skip_last = not whole and pa.family == 4
  if not whole then
    a = ip.next(a)
  end
  local used = used_addresses(pa, plen)
  local out = {}
  while a and #out < count do
    local cmp = ip.compare(a, last)
    if cmp > 0 or (cmp == 0 and skip_last) then
      break
    end
    if not used[ip.format(a)] then
      out[#out + 1] = ip.format(a) .. "/" .. plen
    end
    a = ip.next(a)
  end
  return out
end

function netbox.available_ips(id, req)
  local prefix = store["ipam/prefixes"].by_id[id]
  if not prefix then
    return 404, { detail = "No ipam/prefixes matches the given query." }
  end
  local limit = tonumber(req.query.limit and req.query.limit[1]) or PAGE_DEFAULT
  local list = array({})
  for _, address in ipairs(free_addresses(prefix, limit)) do
    list[#list + 1] = { family = family_of(address), address = address, vrf = null, description = "" }
  end
  return 200, list
end

function netbox.allocate_ips(id, input)
  local prefix = store["ipam/prefixes"].by_id[id]
  if not prefix then
    return 404, { detail = "No ipam/prefixes matches the given query." }
  end
  local many = json.is_array(input)
  local requests = many and input or { input or {} }
  local free = free_addresses(prefix, #requests)
  if #free < #requests then
    return 409, { detail = "An insufficient number of IP addresses are available within " .. prefix.prefix
      .. " (" .. #requests .. " requested, " .. #free .. " available)" }
  end
  local created = array({})
  for i, r in ipairs(requests) do
    local body = {}
    for k, v in pairs(r) do
      body[k] = v
    end
    body.address = free[i]
    local status, obj = netbox.create("ipam/ip-addresses", body)
    if status ~= 201 then
      return status, obj
    end
    created[#created + 1] = obj
  end
  return 201, many and created or created[1]
end

function netbox.allocate_prefix(id, input)
  local parent = store["ipam/prefixes"].by_id[id]
  if not parent then
    return 404, { detail = "No ipam/prefixes matches the given query." }
  end
  if type(input) ~= "table" or not is_int(input.prefix_length) then
    return 400, { prefix_length = { "This field is required." } }
  end
  local pa, plen = ip.parse_cidr(parent.prefix)
  local want = math.tointeger(input.prefix_length)
  if want < plen or want > ip.bits(pa) then
    return 400, { prefix_length = { "Invalid prefix length (" .. want .. ") for a /" .. plen .. " parent." } }
  end
  -- Existing children (prefixes inside the parent, not the parent itself).
  local children = {}
  for _, cid in ipairs(sorted_ids(store["ipam/prefixes"])) do
    local c = store["ipam/prefixes"].by_id[cid]
    local ca, clen = ip.parse_cidr(c.prefix)
    if cid ~= id and ca.family == pa.family and clen >= plen and ip.contains(pa, plen, ca) then
      children[#children + 1] = { ca, clen }
    end
  end
  local step = ip.bits(pa) - want
  local candidate, last = ip.network(pa, plen), ip.last(pa, plen)
  while candidate and ip.compare(candidate, last) <= 0 do
    local blocked
    for _, c in ipairs(children) do
      if ip.contains(c[1], c[2], candidate) and c[2] <= want then
        blocked = c -- the child covers the candidate: jump past the child
        break
      elseif ip.contains(candidate, want, c[1]) then
        blocked = false -- the candidate covers a child: next candidate
        break
      end
    end
    if blocked == nil then
      local body = { prefix = ip.format(candidate) .. "/" .. want }
      for k, v in pairs(input) do
        if k ~= "prefix_length" then
          body[k] = v
        end
      end
      return netbox.create("ipam/prefixes", body)
    elseif blocked then
      local after = ip.next(ip.last(blocked[1], blocked[2]))
      candidate = after and ip.network(after, want)
      if candidate and ip.compare(candidate, after) < 0 then
        candidate = ip.add_pow2(candidate, step)
      end
    else
      candidate = ip.add_pow2(candidate, step)
    end
  end
  return 409, { detail = "Insufficient space is available to accommodate the requested prefix size(s)" }
end

-- ----------------------------------------------------------- state, seed --

function netbox.dump()
  local out = {}
  for _, e in ipairs(ORDER) do
    local list = array({})
    for _, id in ipairs(sorted_ids(store[e])) do
      list[#list + 1] = netbox.render(e, id)
    end
    out[e] = list
  end
  return out
end

function netbox.counts()
  local out = {}
  for _, e in ipairs(ORDER) do
    out[e] = #store[e].ids
  end
  return out
end

-- The reference data of the example's task_bootstrap_netbox (sites, roles, manufacturers,
-- device types, prefixes), created only where missing.
function netbox.bootstrap()
  local created = 0
  local function ensure(endpoint, body)
    local status = netbox.create(endpoint, body)
    if status == 201 then
      created = created + 1
    end
  end
  for _, site in ipairs({ "Amsterdam", "Paris", "London", "Madrid", "Rome" }) do
    ensure("dcim/sites", { name = site, slug = site:lower(), status = "active" })
  end
  ensure("dcim/device-roles", { name = "Provider", slug = "provider", color = "9e9e9e" })
  ensure("dcim/device-roles", { name = "Provider Edge", slug = "provider-edge", color = "ff9800" })
  for _, m in ipairs({ "Cisco", "Nokia", "Cumulus", "FRR" }) do
    ensure("dcim/manufacturers", { name = m, slug = m:lower() })
  end
  local types = { { "Cisco", "8812", 21 }, { "Cisco", "ASR 903", 3 }, { "Nokia", "7950 XRS-20", 44 },
    { "Nokia", "7210 SAS-R6", 3 }, { "Nokia", "7220 IXR-D2", 1 }, { "Nokia", "7220 IXR-D3", 1 },
    { "Cumulus", "cVX VM", 1 }, { "FRR", "FRR VM", 1 } }
  for _, t in ipairs(types) do
    ensure("dcim/device-types", { manufacturer = { name = t[1], slug = t[1]:lower() }, model = t[2],
      slug = (t[2]:lower():gsub("[^%w]+", "-")), u_height = t[3] })
  end
  for _, p in ipairs({ { "10.0.127.0/24", "IPv4 loopback" }, { "fc00:0:0:127::/64", "IPv6 loopback" },
    { "10.0.10.0/24", "IPv4 core link" }, { "fc00:0:0:10::/64", "IPv6 core link" } }) do
    local exists = false
    for _, id in ipairs(store["ipam/prefixes"].ids) do
      if store["ipam/prefixes"].by_id[id].prefix == p[1] then
        exists = true
      end
    end
    if not exists then
      ensure("ipam/prefixes", { prefix = p[1], description = p[2], is_pool = false })
    end
  end
  return created
end

return netbox
