-- The service products over HTTP: L2VPN (with reconcile), NSISTP and NSIP2P on
-- tagged ports, their VLANs in NetBox and on the ports, and an orderly teardown
-- after which NetBox holds only the reference data again.
local X = require("example_env")

describe("example products L2vpn, Nsistp and Nsip2p", function()
  local env, node_a, node_b, port_a, port_b, port_u

  setup(function()
    env = X.start()
    node_a = env:create_node("ams-pe")
    node_b = env:create_node("par-p", { site = "Paris" })
    port_a = env:create_port(node_a, { interface = "ethernet-1/1", description = "to A" })
    port_b = env:create_port(node_b, { interface = "ethernet-1/1", description = "to B" })
    port_u = env:create_port(node_a, { interface = "ethernet-1/2", description = "untagged", mode = "untagged" })
  end)

  teardown(function()
    env:shutdown()
  end)

  local function interface(port_id)
    local sub = env:subscription(port_id)
    return env.fake:must("GET", "/api/dcim/interfaces/" .. sub.port.ims_id .. "/")
  end

  local function tagged_vids(port_id)
    local out = {}
    for _, v in ipairs(interface(port_id).tagged_vlans) do
      out[#out + 1] = math.tointeger(v.vid)
    end
    table.sort(out)
    return out
  end

  it("creates an L2VPN: VLANs, L2VPN and terminations in NetBox, VLANs pushed to the ports", function()
    local product = { product = env:product_id("l2vpn") }
    local p2 = { customer_id = X.SURF, number_of_ports = 2, speed = 1000 }
    local form = env:next_page("create_l2vpn", { product, p2 })
    local offered = X.options(form, "ports")
    assert.is_not_nil(offered[port_a])
    assert.is_not_nil(offered[port_b])
    assert.is_nil(offered[port_u]) -- only tagged ports
    assert.are.equal(2, form.properties.ports.minItems)

    local errors = env:invalid("create_l2vpn", { product, p2, { ports = { port_a, port_b } } })
    assert.are.equal("PORT must have a vlan", errors.vlan)
    errors = env:invalid("create_l2vpn", { product, p2, { ports = { port_a }, vlan = "100" } })
    assert.is_string(errors.ports)

    local id = env:create_l2vpn({ port_a, port_b }, "100-101")
    local sub = env:subscription(id)
    assert.are.equal("L2VPN 1000 Mbit/s (ams-pe-par-p)", sub.description)
    assert.are.equal("1000 Mbit/s circuit between ams-pe and par-p", sub.virtual_circuit.title)
    assert.are.equal("100-101", sub.virtual_circuit.saps[1].vlan)
    local l2vpn = env.fake:must("GET", "/api/vpn/l2vpns/" .. sub.virtual_circuit.ims_id .. "/")
    assert.are.equal(id, l2vpn.slug)
    local counts = env:netbox_counts()
    assert.are.equal(2, counts["ipam/vlan-groups"])
    assert.are.equal(4, counts["ipam/vlans"])
    assert.are.equal(4, counts["vpn/l2vpn-terminations"])
    -- the new VLANs are on the interfaces at create time
    assert.are.same({ 100, 101 }, tagged_vids(port_a))
    assert.are.same({ 100, 101 }, tagged_vids(port_b))
    -- the port's computed fields walk in-use-by to the active SAPs
    local port = env:subscription(port_a)
    assert.are.same({ 100, 101 }, port.port.vlans)
    assert.are.equal(1, #port.port.in_use_by_ids)
    assert.are.same({ sub.virtual_circuit.saps[1].ims_id }, port.port.vlan_group_ims_ids)

    -- the VLANs are taken now
    errors = env:invalid("create_l2vpn", { product, p2, { ports = { port_a, port_b }, vlan = "101-105" } })
    assert.are.equal("Vlan(s) 101 already in use", errors.vlan)

    -- ports in use cannot be terminated
    errors = env:invalid("terminate_port", { { subscription_id = port_a } })
    assert.is_not_nil(errors.subscription_id or errors.__root__)

    -- drift: the VLANs vanish from a port; validate fails, reconcile puts them back, retry completes
    env:run_on("validate_l2vpn", id):assert_complete()
    env.fake:must("PATCH", "/api/dcim/interfaces/" .. interface(port_b).id .. "/", { tagged_vlans = {} })
    local p = env:run_on("validate_l2vpn", id)
    local d = p:wait_for("failed")
    assert.matches("sap 2 tagged on ethernet-1/1: NetBox has 0, expected 2", d.failed_reason, 1, true)
    assert.are.equal("active false", env:status_of(id))
    env:run_on("reconcile_l2vpn", id):assert_complete()
    assert.are.same({ 100, 101 }, tagged_vids(port_b))
    p:resume({})
    p:assert_complete()
    assert.are.equal("active true", env:status_of(id))

    env:run_on("modify_l2vpn", id, { { speed = 2000, speed_policer = true }, {} }):assert_complete()
    assert.are.equal("L2VPN 2000 Mbit/s (ams-pe-par-p) (policer active)", env:subscription(id).description)

    -- objects already gone from NetBox do not stop the termination
    local group = sub.virtual_circuit.saps[2].ims_id
    for _, vlan in ipairs(env:netbox("ipam/vlans")) do
      if vlan.group.id == group then
        env.fake:must("DELETE", "/api/ipam/vlans/" .. math.tointeger(vlan.id) .. "/")
      end
    end
    env.fake:must("DELETE", "/api/ipam/vlan-groups/" .. group .. "/")
    env:terminate("terminate_l2vpn", id)
    counts = env:netbox_counts()
    assert.are.equal(0, counts["ipam/vlan-groups"])
    assert.are.equal(0, counts["ipam/vlans"])
    assert.are.equal(0, counts["vpn/l2vpns"])
    assert.are.same({}, tagged_vids(port_a))
    assert.are.same({}, env:subscription(port_a).port.vlans)
  end)

  local nsistp_page
  local function nsistp(port, vlan, stp_id, extra)
    local page = { customer_id = X.SURF, port = port, vlan = vlan, topology = "topo", stp_id = stp_id,
      bandwidth = 1000 }
    for k, v in pairs(extra or {}) do
      page[k] = v
    end
    nsistp_page = page
    return { { product = env:product_id("nsistp") }, page }
  end

  it("creates, validates and modifies NSISTPs, and NSIP2Ps on their VLANs", function()
    local errors = env:invalid("create_nsistp", nsistp(port_a, "200-210", "stp a", { is_alias_in = "urn:x" }))
    assert.matches("stp_id may only hold", errors.stp_id)
    assert.matches("not an NSI URN", errors.is_alias_in)
    errors = env:invalid("create_nsistp", nsistp(port_a, "200-210", "stp-a",
      { is_alias_in = "urn:ogf:network:example.net:2024:a" }))
    assert.are.equal("set both is_alias_in and is_alias_out, or neither", errors.__root__)
    errors = env:invalid("create_nsistp", nsistp(port_a, "200-210", "stp-a",
      { is_alias_in = "urn:ogf:network:example.net:2024:a", is_alias_out = "urn:ogf:network:example.net:202413:b" }))
    assert.matches("not a valid date", errors.is_alias_out)

    local pages = nsistp(port_a, "200-210", "stp-a")
    local summary = env:next_page("create_nsistp", pages)
    assert.are.equal("summary", summary.properties.summary.format)
    pages[3] = {}
    local stp_a = env:run_workflow("create_nsistp", pages):assert_complete().current_state.subscription_id
    local sub = env:subscription(stp_a)
    assert.are.equal("NSISTP stp-a topology topo ams-pe 1000 Mbit/s", sub.description)
    assert.are.equal("200-210", sub.nsistp.vlan_range)
    assert.are.equal(nsistp_page.vlan, sub.nsistp.sap.vlan)

    -- stp_id is unique among NSISTPs (of product type Nsistp)
    errors = env:invalid("create_nsistp", nsistp(port_b, "200-210", "STP-A"))
    assert.matches("already used", errors.stp_id)
    pages = nsistp(port_b, "200-210", "stp-b")
    pages[3] = {}
    local stp_b = env:run_workflow("create_nsistp", pages):assert_complete().current_state.subscription_id

    -- drift: the port's interface leaves tagged mode
    env:run_on("validate_nsistp", stp_a):assert_complete()
    local if_path = "/api/dcim/interfaces/" .. interface(port_a).id .. "/"
    env.fake:must("PATCH", if_path, { mode = "access" })
    local v = env:run_on("validate_nsistp", stp_a)
    assert.matches("mode: NetBox has access, expected tagged", v:wait_for("failed").failed_reason, 1, true)
    env.fake:must("PATCH", if_path, { mode = "tagged" })
    v:resume({})
    v:assert_complete()
    env:run_on("modify_nsistp", stp_a, { { topology = "topo2", bandwidth = 2000 }, {} }):assert_complete()
    assert.are.equal("NSISTP stp-a topology topo2 ams-pe 2000 Mbit/s", env:subscription(stp_a).description)

    -- NSIP2P: a single VLAN, reserved by the NSISTPs on both ports, not used by another NSIP2P
    local product = { product = env:product_id("nsip2p") }
    local p2 = { customer_id = X.SURF, speed = 100 }
    errors = env:invalid("create_nsip2p", { product, p2, { ports = { port_a, port_b }, vlan = "300" } })
    assert.are.equal("VLAN(s) 300 not reserved by Nsistp on port 10G ams-pe ethernet-1/1 to A. "
      .. "Available vlans: 200-210", errors.vlan)
    errors = env:invalid("create_nsip2p", { product, p2, { ports = { port_a, port_b }, vlan = "200-201" } })
    assert.are.equal("Only one VLAN may be selected per port for NSIP2P", errors.vlan)
    local p = env:run_workflow("create_nsip2p", { product, p2, { ports = { port_a, port_b }, vlan = "205" } })
    local p2p = p:assert_complete().current_state.subscription_id
    sub = env:subscription(p2p)
    assert.are.equal("NSIP2P 100 Mbit/s (ams-pe-par-p)", sub.description)
    assert.are.same({ 205 }, tagged_vids(port_a))
    errors = env:invalid("create_nsip2p", { product, p2, { ports = { port_a, port_b }, vlan = "205" } })
    assert.matches("already in use by Nsip2p", errors.vlan)

    -- drift: a VLAN's L2VPN termination disappears; putting it back lets the retry pass
    env:run_on("validate_nsip2p", p2p):assert_complete()
    local terminations = env:netbox("vpn/l2vpn-terminations")
    local gone = terminations[1]
    env.fake:must("DELETE", "/api/vpn/l2vpn-terminations/" .. math.tointeger(gone.id) .. "/")
    v = env:run_on("validate_nsip2p", p2p)
    assert.matches("terminations: NetBox has [], expected [205]", v:wait_for("failed").failed_reason, 1, true)
    assert.are.equal("active false", env:status_of(p2p))
    env.fake:must("POST", "/api/vpn/l2vpn-terminations/", { l2vpn = math.tointeger(gone.l2vpn.id),
      assigned_object_type = "ipam.vlan", assigned_object_id = math.tointeger(gone.assigned_object_id) })
    v:resume({})
    v:assert_complete()
    assert.are.equal("active true", env:status_of(p2p))
    env:run_on("modify_nsip2p", p2p, { { speed = 200 }, {} }):assert_complete()
    assert.are.equal("NSIP2P 200 Mbit/s (ams-pe-par-p)", env:subscription(p2p).description)
    env:terminate("terminate_nsip2p", p2p)
    assert.are.same({}, tagged_vids(port_a))
    env:terminate("terminate_nsistp", stp_a)
    env:terminate("terminate_nsistp", stp_b)
  end)

  -- issue 11 item 10: a rename reaches the services through the ports (a chain of dependants)
  it("renames a node; ports and the L2VPN over them follow and the L2VPN still validates", function()
    local id = env:create_l2vpn({ port_a, port_b }, "300")
    assert.are.equal("L2VPN 1000 Mbit/s (ams-pe-par-p)", env:subscription(id).description)
    local d = env:run_on("modify_node", node_b, { { node_name = "par-p2" }, {} }):assert_complete()
    assert.are.same({ port_b, id }, d.current_state.updated_dependants)
    assert.are.equal("port 10G par-p2 ethernet-1/1 to B", env:subscription(port_b).description)
    assert.are.equal("L2VPN 1000 Mbit/s (ams-pe-par-p2)", env:subscription(id).description)
    env:run_on("validate_l2vpn", id):assert_complete()
    assert.are.equal("active true", env:status_of(id))
    env:terminate("terminate_l2vpn", id)
  end)

  it("tears everything down in order, after which NetBox holds only the reference data", function()
    local link = env:create_core_link(node_a, node_b)
    for _, port in ipairs({ port_a, port_b, port_u }) do
      env:terminate("terminate_port", port)
    end
    env:terminate("terminate_core_link", link)
    env:terminate("terminate_node", node_a)
    env:terminate("terminate_node", node_b)
    local counts = env:netbox_counts()
    for _, endpoint in ipairs({ "dcim/devices", "dcim/interfaces", "dcim/cables", "ipam/ip-addresses", "ipam/vlans",
      "ipam/vlan-groups", "vpn/l2vpns", "vpn/l2vpn-terminations" }) do
      assert.are.equal(0, counts[endpoint], endpoint)
    end
    assert.are.equal(4, counts["ipam/prefixes"]) -- the bootstrap's parents only
  end)
end)
