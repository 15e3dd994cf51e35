-- Scenario tests of the example products: a host with products/ on a fresh
-- database, the fake NetBox + LSO next to it, and helpers that walk the forms
-- the way the UI does (read the choices from each 510 page, post the next page).
local H = require("harness")
local kit = require("orch_testkit")
local fake_netbox = require("fake_netbox")

local M = {}

M.SURF = "d6a2d3c0-5b0f-4b1e-9c3a-000000000001"

local Env = {}

-- start{bootstrap = false}: a NetBox without the reference data (default: with it).
function M.start(opts)
  local fake = fake_netbox.start({ bootstrap = not (opts and opts.bootstrap == false) })
  local env = kit.start({ products = "products", env = {
    ORCH_SERVICE_NETBOX_URL = fake.url,
    ORCH_SERVICE_NETBOX_TOKEN = fake_netbox.token,
    ORCH_SERVICE_LSO_URL = fake.url,
  } })
  env.fake = fake
  for k, v in pairs(Env) do
    env[k] = v
  end
  return env
end

function Env:shutdown()
  self:stop()
  self.fake:stop()
end

-- The options {value = label} of a choice field of a 510 form page.
function M.options(form, field)
  local prop = form.properties[field]
  assert(prop, "no field " .. field .. " in " .. H.json.encode(form))
  local ref = prop["$ref"] or (prop.items and prop.items["$ref"])
  if not ref and prop.anyOf then
    ref = prop.anyOf[1]["$ref"]
  end
  local def = form["$defs"][ref:match("[^/]+$")]
  local out = {}
  for _, v in ipairs(def.enum) do
    out[v] = def.options and def.options[v] or v
  end
  return out
end

-- The label the UI shows for each field of a form page: the property's own title, else
-- (a bare $ref) the title of the referenced definition, as the UI's $ref resolution does.
function M.field_titles(form)
  local out = {}
  for name, prop in pairs(form.properties) do
    local title = prop.title
    local ref = prop["$ref"] or (prop.items and prop.items["$ref"])
    if title == nil and ref then
      title = form["$defs"][ref:match("[^/]+$")].title
    end
    out[name] = title
  end
  return out
end

-- Every field has a title written for people: not the enum's class name
-- ("NodeStatusChoice"), not derived from a compound field name ("Node Name"), no underscores.
local CORE_FIRST_PAGE = { product = true, subscription_id = true, version = true } -- core's own pages

function M.assert_human_titles(form)
  for name, title in pairs(M.field_titles(form)) do
    if CORE_FIRST_PAGE[name] then
      goto continue
    end
    local derived = name:gsub("_", " "):gsub("(%w)(%w*)", function(a, b)
      return a:upper() .. b
    end)
    assert(type(title) == "string" and title ~= "", ("%s: field %s has no title"):format(form.title, name))
    assert(not title:find("Choice$") and not title:find("_") and (title ~= derived or not name:find("_")),
      ("%s: field %s is labelled %q"):format(form.title, name, title))
    ::continue::
  end
end

-- The rows of a summary page: {label = value} (first column) and the raw data.
function M.summary_rows(form)
  local data = form.properties.summary.uniforms.data
  local out = {}
  for i, label in ipairs(data.labels) do
    out[label] = data.columns[#data.columns][i]
  end
  return out, data
end

-- A GraphQL query; returns `data` (errors fail the test).
function Env:graphql(query, variables)
  local status, body = self:request("POST", "/api/graphql", { query = query, variables = variables })
  assert(status == 200 and body.errors == nil, "GraphQL answered " .. tostring(status) .. ": " .. H.json.encode(body))
  return body.data
end

-- The value whose label is `label` (or contains it).
function M.option(form, field, label)
  local found
  for v, l in pairs(M.options(form, field)) do
    if l == label then
      return v
    end
    if l:find(label, 1, true) then
      found = v
    end
  end
  assert(found, "no option '" .. label .. "' for " .. field .. ": " .. H.json.encode(M.options(form, field)))
  return found
end

-- Post pages and expect a 510; returns the next page's form. Every page of the
-- example's own forms must label its fields for people (M.assert_human_titles).
function Env:next_page(workflow, pages)
  local status, body = self:post_pages(workflow, pages)
  assert(status == 510, workflow .. ": expected 510, got " .. tostring(status) .. ": " .. H.json.encode(body))
  M.assert_human_titles(body.form)
  return body.form
end

-- Post pages and expect a 400; returns {field = msg}.
function Env:invalid(workflow, pages)
  local status, body = self:post_pages(workflow, pages)
  assert(status == 400, workflow .. ": expected 400, got " .. tostring(status) .. ": " .. H.json.encode(body))
  local out = {}
  for _, e in ipairs(body.validation_errors) do
    out[table.concat(e.loc, ".")] = e.msg
  end
  return out
end

local integers = H.integers

-- The domain model of a subscription.
function Env:subscription(id)
  local status, json = self:request("GET", "/api/subscriptions/domain-model/" .. id)
  assert(status == 200, "domain model of " .. id .. ": " .. tostring(status))
  return integers(json)
end

function Env:status_of(id)
  return self:sql("SELECT status || ' ' || insync FROM subscriptions WHERE subscription_id = '" .. id .. "'")
end

function Env:set_lso(enabled)
  self:sql("UPDATE example_settings SET value = '" .. tostring(enabled) .. "' WHERE key = 'lso_enabled'")
end

-- Run a modify/terminate/validate-kind workflow with the subscription page + pages.
function Env:run_on(workflow, subscription_id, pages)
  local all = { { subscription_id = subscription_id } }
  for _, p in ipairs(pages or {}) do
    all[#all + 1] = p
  end
  return self:run_workflow(workflow, all)
end

-- ---- building blocks of the scenarios ----

-- Create a node through its three pages; returns the subscription id.
function Env:create_node(name, opts)
  opts = opts or {}
  local product = { product = self:product_id(opts.product or "node Nokia") }
  local form = self:next_page("create_node", { product })
  local page = {
    customer_id = M.SURF,
    type_id = M.option(form, "type_id", opts.type or "7950 XRS-20"),
    role_id = M.option(form, "role_id", "Provider Edge"),
    site_id = M.option(form, "site_id", opts.site or "Amsterdam"),
    node_status = "active",
    node_name = name,
    node_description = opts.description or ("node " .. name),
    auto_add_interfaces = opts.auto_add_interfaces,
  }
  self:next_page("create_node", { product, page })
  local p = self:run_workflow("create_node", { product, page, {} })
  if opts.no_wait then
    return p
  end
  return p:assert_complete().current_state.subscription_id, p
end

-- Create a port on a node; `interface` the interface name (default: the first free one).
function Env:create_port(node_id, opts)
  opts = opts or {}
  local product = { product = self:product_id(opts.product or "port 10G") }
  local form = self:next_page("create_port", { product })
  assert(M.options(form, "node_subscription_id")[node_id], "node not offered")
  local p2 = { customer_id = M.SURF, node_subscription_id = node_id }
  form = self:next_page("create_port", { product, p2 })
  local p3 = {
    port_ims_id = M.option(form, "port_ims_id", opts.interface or "ethernet-1/1"),
    port_description = opts.description or "customer port",
    port_mode = opts.mode or "tagged",
  }
  self:next_page("create_port", { product, p2, p3 })
  local p = self:run_workflow("create_port", { product, p2, p3, {} })
  return p:assert_complete().current_state.subscription_id, p
end

function Env:create_core_link(node_a, node_b, opts)
  opts = opts or {}
  local product = { product = self:product_id(opts.product or "core link 10G") }
  self:next_page("create_core_link", { product })
  local p2 = { customer_id = M.SURF, node_subscription_id_a = node_a, node_subscription_id_b = node_b }
  local form = self:next_page("create_core_link", { product, p2 })
  local p3 = {
    port_ims_id_a = M.option(form, "port_ims_id_a", opts.interface_a or "ethernet-1/9"),
    port_ims_id_b = M.option(form, "port_ims_id_b", opts.interface_b or "ethernet-1/9"),
  }
  local p = self:run_workflow("create_core_link", { product, p2, p3 })
  return p:assert_complete().current_state.subscription_id, p
end

function Env:create_l2vpn(ports, vlan, opts)
  opts = opts or {}
  local product = { product = self:product_id("l2vpn") }
  self:next_page("create_l2vpn", { product })
  local p2 = { customer_id = M.SURF, number_of_ports = #ports, speed = opts.speed or 1000,
    speed_policer = opts.speed_policer or false }
  self:next_page("create_l2vpn", { product, p2 })
  local p = self:run_workflow("create_l2vpn", { product, p2, { ports = ports, vlan = vlan } })
  return p:assert_complete().current_state.subscription_id, p
end

function Env:terminate(workflow, id)
  self:run_on(workflow, id, { {} }):assert_complete()
  assert(self:status_of(id) == "terminated true", "not terminated: " .. self:status_of(id))
end

-- The fake's objects of one endpoint, e.g. "dcim/devices".
function Env:netbox(endpoint)
  local state = self.fake:must("GET", "/api/_fake/state")
  return state.netbox[endpoint] or {}
end

function Env:netbox_counts()
  return self.fake:must("GET", "/api/_fake/state").counts
end

return M
