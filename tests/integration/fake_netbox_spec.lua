-- The fake NetBox (examples/fake-netbox): the REST subset of the example
-- workflows with NetBox's shapes - token auth, pagination, nested objects and
-- choices, filters, available IPs and prefixes, uniqueness, cascades and
-- protection on delete - plus its debug, reset and LSO routes. (The LSO
-- callback into the orchestrator is covered by client_spec.lua.)
local F = require("fake_netbox")
local null = require("cjson").null

describe("fake NetBox", function()
  local fake

  setup(function()
    fake = F.start()
  end)

  teardown(function()
    if fake then
      fake:stop() -- SIGTERM: exits 0
    end
  end)

  before_each(function()
    fake:must("POST", "/api/_fake/reset", { bootstrap = true }, 200)
  end)

  local function id_of(path, query)
    local list = fake:must("GET", path .. "?" .. query)
    assert.are.equal(1, list.count, path .. "?" .. query)
    return list.results[1].id
  end

  -- A device with two free 10G interfaces and a loopback; returns their ids.
  local function device(name)
    local d = fake:must("POST", "/api/dcim/devices/", { name = name, site = id_of("/api/dcim/sites/", "slug=paris"),
      role = id_of("/api/dcim/device-roles/", "slug=provider"),
      device_type = id_of("/api/dcim/device-types/", "model=7950%20XRS-20"), status = "active",
      primary_ip4 = null, primary_ip6 = null })
    local ifs = {}
    for i, n in ipairs({ "ethernet-1/1", "ethernet-1/2" }) do
      ifs[i] = fake:must("POST", "/api/dcim/interfaces/", { device = d.id, name = n, type = "10gbase-x-xfp",
        speed = 10000000, enabled = false }).id
    end
    local lo = fake:must("POST", "/api/dcim/interfaces/", { device = d.id, name = "Loopback0", type = "virtual",
      enabled = true })
    return d, ifs, lo.id
  end

  it("checks the token", function()
    local status, json = fake:request("GET", "/api/dcim/sites/", nil, { authorization = false })
    assert.are.equal(403, status)
    assert.are.equal("Authentication credentials were not provided.", json.detail)
    status, json = fake:request("GET", "/api/dcim/sites/", nil, { authorization = "Token wrong" })
    assert.are.equal(403, status)
    assert.are.equal("Invalid token", json.detail)
    status = fake:request("GET", "/api/dcim/sites/", nil, { authorization = "Bearer " .. F.token })
    assert.are.equal(200, status)
  end)

  it("paginates with limit and offset", function()
    local page = fake:must("GET", "/api/dcim/sites/?status=active&limit=2")
    assert.are.equal(5, page.count)
    assert.are.equal(2, #page.results)
    assert.are.equal("Amsterdam", page.results[1].name)
    assert.are.equal(fake.url .. "/api/dcim/sites/?status=active&limit=2&offset=2", page.next)
    assert.are.equal(null, page.previous)
    local last = fake:must("GET", "/api/dcim/sites/?status=active&limit=2&offset=4")
    assert.are.equal(1, #last.results)
    assert.are.equal("Rome", last.results[1].name)
    assert.are.equal(null, last.next)
    assert.are.equal(fake.url .. "/api/dcim/sites/?status=active&limit=2&offset=2", last.previous)
    -- The default page is 50; limit=0 means as many as allowed.
    assert.are.equal(8, #fake:must("GET", "/api/dcim/device-types/?limit=0").results)
    -- Filters the subset does not know are refused, not ignored.
    local status, json = fake:request("GET", "/api/dcim/sites/?colour=red")
    assert.are.equal(400, status)
    assert.is_table(json.colour)
  end)

  it("returns nested objects and choices as NetBox does", function()
    local types = fake:must("GET", "/api/dcim/device-types/?manufacturer=nokia")
    assert.are.equal(4, types.count)
    local t = types.results[1]
    assert.are.equal("Nokia", t.manufacturer.name)
    assert.are.equal(fake.url .. "/api/dcim/manufacturers/" .. t.manufacturer.id .. "/", t.manufacturer.url)
    local d, ifs, lo = device("rtr1")
    assert.are.same({ value = "active", label = "Active" }, d.status)
    assert.are.equal("Paris", d.site.name)
    assert.are.equal("paris", d.site.slug)
    assert.are.equal("Provider", d.role.name)
    assert.are.equal("Nokia", d.device_type.manufacturer.name)
    local free = fake:must("GET", "/api/dcim/interfaces/?device=rtr1&speed=10000000&enabled=false")
    assert.are.equal(2, free.count)
    assert.are.equal(ifs[1], free.results[1].id)
    assert.are.equal("rtr1", free.results[1].device.name)
    assert.are.same({ value = "10gbase-x-xfp", label = "XFP (10GE)" }, free.results[1].type)
    assert.are.equal(3, fake:must("GET", "/api/dcim/interfaces/?device_id=" .. d.id).count)
    -- A nested object given by attributes resolves to the one matching object.
    local m = fake:must("POST", "/api/dcim/device-types/", { manufacturer = { name = "FRR", slug = "frr" },
      model = "FRR VM2", slug = "frr-vm2" })
    assert.are.equal("FRR", m.manufacturer.name)
    -- Uniqueness as NetBox enforces it.
    local status, json = fake:request("POST", "/api/dcim/sites/", { name = "Paris", slug = "paris2" })
    assert.are.equal(400, status)
    assert.is_table(json.name)
    status, json = fake:request("POST", "/api/dcim/devices/", { name = "x" })
    assert.are.equal(400, status)
    assert.are.same({ "This field is required." }, json.site)
    -- PATCH changes the given fields only; primary IPs come back nested.
    local ip = fake:must("POST", "/api/ipam/prefixes/" .. id_of("/api/ipam/prefixes/", "prefix=10.0.127.0/24")
      .. "/available-ips/", { assigned_object_type = "dcim.interface", assigned_object_id = lo,
        description = "IPv4 loopback rtr1", status = "active" }, 201)
    assert.are.equal("Loopback0", ip.assigned_object.name)
    assert.are.equal("rtr1", ip.assigned_object.device.name)
    local patched = fake:must("PATCH", "/api/dcim/devices/" .. d.id .. "/", { primary_ip4 = ip.id })
    assert.are.equal("10.0.127.1/24", patched.primary_ip4.address)
    assert.are.equal("rtr1", patched.name)
    assert.are.equal("Paris", patched.site.name)
  end)

  it("hands out available IPs and prefixes", function()
    local _, _, lo = device("rtr1")
    local v4 = id_of("/api/ipam/prefixes/", "prefix=10.0.127.0/24")
    local v6 = id_of("/api/ipam/prefixes/", "prefix=fc00:0:0:127::/64")
    -- Prefixes and addresses are matched parsed, whatever their spelling.
    assert.are.equal(v6, id_of("/api/ipam/prefixes/", "prefix=FC00:0000:0:127:0::/64"))
    local avail = fake:must("GET", "/api/ipam/prefixes/" .. v4 .. "/available-ips/?limit=3")
    assert.are.same({ "10.0.127.1/24", "10.0.127.2/24", "10.0.127.3/24" },
      { avail[1].address, avail[2].address, avail[3].address })
    local a = fake:must("POST", "/api/ipam/prefixes/" .. v4 .. "/available-ips/",
      { assigned_object_type = "dcim.interface", assigned_object_id = lo }, 201)
    local b = fake:must("POST", "/api/ipam/prefixes/" .. v4 .. "/available-ips/", { description = "next" }, 201)
    assert.are.equal("10.0.127.1/24", a.address)
    assert.are.equal("10.0.127.2/24", b.address)
    assert.are.equal(b.id, id_of("/api/ipam/ip-addresses/", "address=10.0.127.2"))
    assert.are.equal(0, fake:must("GET", "/api/ipam/ip-addresses/?address=10.0.127.2/32").count)
    assert.are.equal("fc00:0:0:127::1/64", fake:must("POST", "/api/ipam/prefixes/" .. v6 .. "/available-ips/",
      {}, 201).address)
    -- Core-link /127s out of the IPv6 core-link prefix, then both addresses of one.
    local core = id_of("/api/ipam/prefixes/", "prefix=fc00:0:0:10::/64")
    local p1 = fake:must("POST", "/api/ipam/prefixes/" .. core .. "/available-prefixes/",
      { prefix_length = 127, description = "link 1", is_pool = false }, 201)
    local p2 = fake:must("POST", "/api/ipam/prefixes/" .. core .. "/available-prefixes/",
      { prefix_length = 127, description = "link 2" }, 201)
    assert.are.equal("fc00:0:0:10::/127", p1.prefix)
    assert.are.equal("fc00:0:0:10::2/127", p2.prefix)
    local x = fake:must("POST", "/api/ipam/prefixes/" .. p1.id .. "/available-ips/", {}, 201)
    local y = fake:must("POST", "/api/ipam/prefixes/" .. p1.id .. "/available-ips/", {}, 201)
    assert.are.same({ "fc00:0:0:10::/127", "fc00:0:0:10::1/127" }, { x.address, y.address })
    local status = fake:request("POST", "/api/ipam/prefixes/" .. p1.id .. "/available-ips/", {})
    assert.are.equal(409, status)
    -- A freed address and prefix are handed out again.
    fake:must("DELETE", "/api/ipam/ip-addresses/" .. a.id .. "/")
    assert.are.equal("10.0.127.1/24", fake:must("POST", "/api/ipam/prefixes/" .. v4 .. "/available-ips/", {},
      201).address)
    fake:must("DELETE", "/api/ipam/prefixes/" .. p1.id .. "/")
    assert.are.equal("fc00:0:0:10::/127", fake:must("POST", "/api/ipam/prefixes/" .. core
      .. "/available-prefixes/", { prefix_length = 127 }, 201).prefix)
  end)

  it("cascades and protects on delete", function()
    local d, ifs, lo = device("rtr1")
    local d2, ifs2 = device("rtr2")
    local v4 = id_of("/api/ipam/prefixes/", "prefix=10.0.127.0/24")
    local ip = fake:must("POST", "/api/ipam/prefixes/" .. v4 .. "/available-ips/",
      { assigned_object_type = "dcim.interface", assigned_object_id = lo }, 201)
    fake:must("PATCH", "/api/dcim/devices/" .. d.id .. "/", { primary_ip4 = ip.id })
    local cable = fake:must("POST", "/api/dcim/cables/", { type = "smf", status = "connected",
      a_terminations = { { object_type = "dcim.interface", object_id = ifs[1] } },
      b_terminations = { { object_type = "dcim.interface", object_id = ifs2[1] } }, description = "rtr1 <-> rtr2" })
    assert.are.equal(ifs[1], cable.a_terminations[1].object.id)
    assert.are.equal(cable.id, fake:must("GET", "/api/dcim/interfaces/" .. ifs2[1] .. "/").cable.id)
    -- A site in use by a device is protected.
    local status, json = fake:request("DELETE", "/api/dcim/sites/" .. d.site.id .. "/")
    assert.are.equal(409, status)
    assert.matches("dependent objects", json.detail)
    -- Deleting a device takes its interfaces, their IPs and cables along.
    fake:must("DELETE", "/api/dcim/devices/" .. d.id .. "/")
    assert.are.equal(404, (fake:request("GET", "/api/dcim/interfaces/" .. ifs[1] .. "/")))
    assert.are.equal(404, (fake:request("GET", "/api/ipam/ip-addresses/" .. ip.id .. "/")))
    assert.are.equal(404, (fake:request("GET", "/api/dcim/cables/" .. cable.id .. "/")))
    assert.are.equal(3, fake:must("GET", "/api/dcim/interfaces/?device_id=" .. d2.id).count)

    -- VLANs, L2VPNs and terminations.
    local group = fake:must("POST", "/api/ipam/vlan-groups/", { name = "rtr2 ethernet-1/2",
      slug = "rtr2-ethernet-1-2", vid_ranges = { { 10, 11 } } })
    local vlans = {}
    for _, vid in ipairs({ 10, 11 }) do
      vlans[#vlans + 1] = fake:must("POST", "/api/ipam/vlans/", { vid = vid, name = "rtr2 ethernet-1/2 - " .. vid,
        group = group.id, status = "active" })
    end
    assert.are.equal(2, fake:must("GET", "/api/ipam/vlans/?group_id=" .. group.id).count)
    local port = fake:must("PATCH", "/api/dcim/interfaces/" .. ifs2[2] .. "/",
      { mode = "tagged", tagged_vlans = { vlans[1].id, vlans[2].id }, enabled = true })
    assert.are.same({ 10, 11 }, { port.tagged_vlans[1].vid, port.tagged_vlans[2].vid })
    local l2vpn = fake:must("POST", "/api/vpn/l2vpns/", { name = "abcdef12 L2VPN ", slug = "abcdef12",
      type = "mpls-evpn" })
    assert.are.same({ value = "mpls-evpn", label = "MPLS EVPN" }, l2vpn.type)
    assert.are.equal(l2vpn.id, fake:must("GET", "/api/vpn/l2vpns/?name=abcdef12%20L2VPN%20").results[1].id)
    local terms = {}
    for i, v in ipairs(vlans) do
      terms[i] = fake:must("POST", "/api/vpn/l2vpn-terminations/", { l2vpn = l2vpn.id,
        assigned_object_type = "ipam.vlan", assigned_object_id = v.id })
    end
    assert.are.equal(11, terms[2].assigned_object.vid)
    -- A VLAN group with VLANs is protected; deleting a VLAN takes its termination and its port tag.
    status = fake:request("DELETE", "/api/ipam/vlan-groups/" .. group.id .. "/")
    assert.are.equal(409, status)
    fake:must("DELETE", "/api/ipam/vlans/" .. vlans[1].id .. "/")
    assert.are.equal(404, (fake:request("GET", "/api/vpn/l2vpn-terminations/" .. terms[1].id .. "/")))
    port = fake:must("GET", "/api/dcim/interfaces/" .. ifs2[2] .. "/")
    assert.are.equal(1, #port.tagged_vlans)
    -- Deleting the L2VPN takes the remaining terminations.
    fake:must("DELETE", "/api/vpn/l2vpns/" .. l2vpn.id .. "/")
    assert.are.equal(0, fake:must("GET", "/api/vpn/l2vpn-terminations/").count)
    fake:must("DELETE", "/api/ipam/vlans/" .. vlans[2].id .. "/")
    fake:must("DELETE", "/api/ipam/vlan-groups/" .. group.id .. "/")
    assert.are.same({}, fake:must("GET", "/api/dcim/interfaces/" .. ifs2[2] .. "/").tagged_vlans)
  end)

  it("has debug, reset and LSO settings routes", function()
    device("rtr1")
    local state = fake:must("GET", "/api/_fake/state")
    assert.are.equal(1, state.counts["dcim/devices"])
    assert.are.equal("rtr1", state.netbox["dcim/devices"][1].name)
    assert.are.same({ result = "success", delay_ms = 100 }, state.lso.settings)
    fake:must("POST", "/api/_fake/reset", {}, 200)
    state = fake:must("GET", "/api/_fake/state")
    for endpoint, n in pairs(state.counts) do
      assert.are.equal(0, n, endpoint)
    end
    assert.are.same({ result = "failure", delay_ms = 5 }, fake:must("PUT", "/api/_fake/lso",
      { result = "failure", delay_ms = 5 }))
    assert.are.equal(400, (fake:request("PUT", "/api/_fake/lso", { result = "maybe" })))
    -- A playbook run needs a name, an inventory and a callback URL.
    local status, json = fake:request("POST", "/api/playbook", { playbook_name = "x.yaml" })
    assert.are.equal(400, status)
    assert.matches("callback must be an http%(s%) URL", json.detail)
  end)
end)
