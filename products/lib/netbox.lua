-- The NetBox service layer of the example products: thin helpers over
-- orch.client (service "netbox") and the NetBox objects the workflows build.
-- Everything here runs in steps or forms (never while scripts load).

local null = orch.json.null

local nb = {}

local function api(endpoint)
  return "/api/" .. endpoint .. "/"
end

local function object(endpoint, id)
  return "/api/" .. endpoint .. "/" .. tostring(id) .. "/"
end

-- Every object of a list endpoint matching the filters.
function nb.list(endpoint, filters)
  return orch.client.all("netbox", api(endpoint), filters)
end

-- The one object matching the filters, or nil; more than one is an error (pynetbox's get).
function nb.find(endpoint, filters)
  local found = nb.list(endpoint, filters)
  if #found > 1 then
    error(("NetBox %s: %d objects match %s, expected at most one"):format(endpoint, #found,
      orch.json.encode(filters)), 0)
  end
  return found[1]
end

-- The object with this id, or nil when NetBox answers 404.
function nb.get(endpoint, id)
  local r = orch.client.request({ service = "netbox", path = object(endpoint, id), raise_for_status = false })
  if r.status == 404 then
    return nil
  end
  if r.status ~= 200 then
    error(("NetBox GET %s/%s returned %d: %s"):format(endpoint, tostring(id), r.status, r.body), 0)
  end
  return r.json
end

function nb.create(endpoint, body)
  return orch.client.post("netbox", api(endpoint), body).json
end

function nb.update(endpoint, id, body)
  return orch.client.patch("netbox", object(endpoint, id), body).json
end

-- Delete; an object that is already gone counts as deleted (steps are retried).
function nb.delete(endpoint, id)
  if id == nil then
    return false
  end
  local r = orch.client.request({ service = "netbox", method = "DELETE", path = object(endpoint, id),
    raise_for_status = false })
  if r.status == 404 then
    return false
  end
  if r.status >= 300 then
    error(("NetBox DELETE %s/%s returned %d: %s"):format(endpoint, tostring(id), r.status, r.body), 0)
  end
  return true
end

-- Find by filters or create with body (idempotent creation).
function nb.ensure(endpoint, filters, body)
  return nb.find(endpoint, filters) or nb.create(endpoint, body)
end

-- The id inside a nested NetBox object ({id, ...}), or nil.
function nb.id_of(v)
  if type(v) == "table" then
    return v.id
  end
  return nil
end

-- The value of a NetBox choice ({value, label}), or nil.
function nb.value_of(v)
  if type(v) == "table" then
    return v.value
  end
  return nil
end

function nb.slug(text)
  return (text:lower():gsub("[%s/]+", "-"):gsub("[^%w%-_]", ""))
end

-- ---- form choices ----

function nb.site_options()
  local out = {}
  for _, s in ipairs(nb.list("dcim/sites", { status = "active" })) do
    out[#out + 1] = { tostring(s.id), s.name }
  end
  return out
end

function nb.role_options()
  local out = {}
  for _, r in ipairs(nb.list("dcim/device-roles")) do
    out[#out + 1] = { tostring(r.id), r.name }
  end
  return out
end

-- Device types of one manufacturer (the node product's node_type).
function nb.device_type_options(manufacturer)
  local out = {}
  for _, t in ipairs(nb.list("dcim/device-types", { manufacturer = nb.slug(manufacturer) })) do
    out[#out + 1] = { tostring(t.id), t.manufacturer.name .. " " .. t.model }
  end
  return out
end

-- Free (disabled) interfaces of a device with a speed in Mbit/s.
function nb.free_port_options(node_name, speed)
  local out = {}
  if node_name == nil then
    return out
  end
  for _, i in ipairs(nb.list("dcim/interfaces", { device = node_name, speed = speed * 1000, enabled = false })) do
    out[#out + 1] = { tostring(i.id), i.name }
  end
  return out
end

-- ---- payloads: what NetBox should hold for a block ----

function nb.device_payload(node)
  return {
    site = node.site_id,
    device_type = node.type_id,
    role = node.role_id,
    name = node.node_name,
    status = node.node_status,
    primary_ip4 = node.ipv4_ipam_id or null,
    primary_ip6 = node.ipv6_ipam_id or null,
  }
end

-- The same fields read back from a NetBox device.
function nb.device_payload_of(device)
  return {
    site = nb.id_of(device.site),
    device_type = nb.id_of(device.device_type),
    role = nb.id_of(device.role),
    name = device.name,
    status = nb.value_of(device.status),
    primary_ip4 = nb.id_of(device.primary_ip4) or null,
    primary_ip6 = nb.id_of(device.primary_ip6) or null,
  }
end

-- ---- comparing ----

local function show(v)
  if v == nil or v == null then
    return "null"
  end
  if type(v) == "table" then
    return orch.json.encode(v)
  end
  return tostring(v)
end

-- A readable difference between what NetBox holds and what the model expects,
-- one line per field ("field: NetBox has X, expected Y"), or nil when equal.
function nb.diff(actual, expected)
  local keys = {}
  for k in pairs(expected) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local lines = {}
  for _, k in ipairs(keys) do
    local a, e = show(actual[k]), show(expected[k])
    if a ~= e then
      lines[#lines + 1] = ("%s: NetBox has %s, expected %s"):format(k, a, e)
    end
  end
  if #lines == 0 then
    return nil
  end
  return table.concat(lines, "\n")
end

-- Fail a validate step with the difference.
function nb.check(what, actual, expected)
  local d = nb.diff(actual, expected)
  if d then
    error(require("orch.runner").failure("Found difference in IMS for " .. what .. ":\n" .. d,
      { actual = actual, expected = expected }), 0)
  end
end

return nb
