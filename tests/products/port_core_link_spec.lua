-- The Port and CoreLink products over HTTP, and the refusal to terminate a node
-- that ports and core links still use.
local X = require("example_env")

describe("example products Port and CoreLink", function()
  local env, node_a, node_b

  setup(function()
    env = X.start()
    node_a = env:create_node("ams-pe")
    node_b = env:create_node("par-p", { site = "Paris" })
  end)

  teardown(function()
    env:shutdown()
  end)

  local function interface(id)
    return env.fake:must("GET", "/api/dcim/interfaces/" .. id .. "/")
  end

  it("creates, validates, modifies and terminates a port; node termination waits for it", function()
    -- page 3 only offers free ports of the chosen node with the product's speed
    local product = { product = env:product_id("port 100G") }
    local page2 = { customer_id = X.SURF, node_subscription_id = node_a }
    local form = env:next_page("create_port", { product, page2 })
    local labels = {}
    for _, l in pairs(X.options(form, "port_ims_id")) do
      labels[#labels + 1] = l
    end
    table.sort(labels)
    assert.are.same({ "ethernet-1/11", "ethernet-1/12", "ethernet-1/13", "ethernet-1/14" }, labels)
    local errors = env:invalid("create_port", { product, page2, { port_ims_id = "999999", port_description = "",
      port_mode = "tagged" } })
    assert.is_string(errors.port_ims_id)
    assert.matches("at least 1", errors.port_description)

    local port = env:create_port(node_a, { interface = "ethernet-1/1", description = "cust A" })
    local sub = env:subscription(port)
    assert.are.equal("port 10G ams-pe ethernet-1/1 cust A", sub.description)
    assert.are.equal("port ethernet-1/1 on ams-pe", sub.port.title)
    assert.are.equal(node_a, sub.port.node.owner_subscription_id)
    local nif = interface(sub.port.ims_id)
    assert.is_true(nif.enabled)
    assert.are.equal("tagged", nif.mode.value)
    assert.are.equal("cust A", nif.description)
    -- the port is no longer offered as free
    form = env:next_page("create_port", { { product = env:product_id("port 10G") }, page2 })
    assert.is_nil(X.options(form, "port_ims_id")[tostring(sub.port.ims_id)])

    -- in use by: the node's block is used by the port's block
    local node = env:subscription(node_a)
    assert.are.same({ sub.port.subscription_instance_id }, node.node.in_use_by_ids)

    -- terminating the node is refused while the port uses it, with core's reason
    local _, workflows = env:request("GET", "/api/subscriptions/workflows/" .. node_a)
    local terminate
    for _, w in ipairs(workflows.terminate) do
      if w.name == "terminate_node" then
        terminate = w
      end
    end
    assert.are.equal("subscription.no_modify_subscription_in_use_by_others", terminate.reason)
    assert.are.same({ port }, terminate.unterminated_in_use_by_subscriptions)
    errors = env:invalid("terminate_node", { { subscription_id = node_a } })
    assert.matches("This workflow cannot be started", errors.subscription_id or errors.__root__)

    env:run_on("validate_port", port):assert_complete()
    env.fake:must("PATCH", "/api/dcim/interfaces/" .. sub.port.ims_id .. "/", { description = "hacked" })
    local p = env:run_on("validate_port", port)
    local d = p:wait_for("failed")
    assert.matches('description: NetBox has hacked, expected cust A', d.failed_reason, 1, true)
    env.fake:must("PATCH", "/api/dcim/interfaces/" .. sub.port.ims_id .. "/", { description = "cust A" })
    p:resume({})
    p:assert_complete()

    env:run_on("modify_port", port, { { port_description = "cust B", lldp = true }, {} }):assert_complete()
    assert.are.equal("port 10G ams-pe ethernet-1/1 cust B", env:subscription(port).description)
    assert.are.equal("cust B", interface(sub.port.ims_id).description)

    env:terminate("terminate_port", port)
    nif = interface(sub.port.ims_id)
    assert.is_false(nif.enabled)
    assert.are.equal("", nif.description)
    local _, again = env:request("GET", "/api/subscriptions/workflows/" .. node_a)
    for _, w in ipairs(again.terminate) do
      assert.is_nil(w.reason)
    end
  end)

  it("runs the port and core link playbooks on LSO when it is on", function()
    env:set_lso(true)
    local product = { product = env:product_id("port 10G") }
    local p2 = { customer_id = X.SURF, node_subscription_id = node_b }
    local form = env:next_page("create_port", { product, p2 })
    local p3 = { port_ims_id = X.option(form, "port_ims_id", "ethernet-1/3"), port_description = "lso",
      port_mode = "untagged" }
    local p = env:run_workflow("create_port", { product, p2, p3, {} })
    p:wait_for("suspended")
    p:resume({ {} })
    local port = p:assert_complete().current_state.subscription_id
    local runs = env.fake:must("GET", "/api/_fake/lso/runs")
    local run = runs[#runs]
    assert.are.equal("create_port.yaml", run.playbook_name)
    assert.are.equal("par-p\n", run.inventory)
    assert.are.equal("port ethernet-1/3 on par-p", run.extra_vars.port.port.title)
    -- an untagged port validates (NetBox has no mode for it)
    env:set_lso(false)
    env:run_on("validate_port", port):assert_complete()
    env:terminate("terminate_port", port)
  end)

  it("creates, validates, modifies and terminates a core link", function()
    local product = { product = env:product_id("core link 10G") }
    local errors = env:invalid("create_core_link", { product, { customer_id = X.SURF,
      node_subscription_id_a = node_a, node_subscription_id_b = node_a } })
    assert.are.equal("node B cannot be the same as node A", errors.__root__)

    local link = env:create_core_link(node_a, node_b)
    local sub = env:subscription(link)
    assert.are.equal("core link 10G ams-pe ethernet-1/9 <-> ethernet-1/9 par-p", sub.description)
    assert.are.equal("core link between ams-pe and par-p", sub.core_link.title)
    local cable = env.fake:must("GET", "/api/dcim/cables/" .. sub.core_link.ims_id .. "/")
    assert.are.equal(sub.core_link.ports[1].ims_id, cable.a_terminations[1].object_id)
    local prefix = env.fake:must("GET", "/api/ipam/prefixes/" .. sub.core_link.ipv6_prefix_ipam_id .. "/")
    assert.matches("/127$", prefix.prefix)
    local a = interface(sub.core_link.ports[1].ims_id)
    assert.is_true(a.enabled)
    assert.are.equal("core link 10G to par-p", a.description)

    -- both nodes are in use by the link's core ports
    local users = env:subscription(node_b).node.in_use_by_ids
    assert.is_truthy(table.concat(users, ","):find(sub.core_link.ports[2].subscription_instance_id, 1, true))
    local errors2 = env:invalid("terminate_node", { { subscription_id = node_b } })
    assert.is_not_nil(errors2.subscription_id or errors2.__root__)

    env:run_on("validate_core_link", link):assert_complete()
    local a_path = "/api/dcim/interfaces/" .. sub.core_link.ports[1].ims_id .. "/"
    env.fake:must("PATCH", a_path, { enabled = false })
    local p = env:run_on("validate_core_link", link)
    local d = p:wait_for("failed")
    assert.matches("a.enabled: NetBox has false, expected true", d.failed_reason, 1, true)
    assert.are.equal("active false", env:status_of(link))
    env.fake:must("PATCH", a_path, { enabled = true })
    p:resume({})
    p:assert_complete()
    assert.are.equal("active true", env:status_of(link))

    env:run_on("modify_core_link", link, { { under_maintenance = true }, {} }):assert_complete()
    assert.matches("%(maintenance%)$", env:subscription(link).description)

    env:terminate("terminate_core_link", link)
    assert.are.equal(404, (env.fake:request("GET", "/api/ipam/prefixes/" .. sub.core_link.ipv6_prefix_ipam_id .. "/")))
    assert.is_false(interface(sub.core_link.ports[1].ims_id).enabled)
  end)
  -- issue 11 item 10: a rename of a node reaches what other subscriptions derive from it
  it("renames a node; the core link and port using it follow and still validate", function()
    local port = env:create_port(node_a, { interface = "ethernet-1/2", description = "cust R" })
    local link = env:create_core_link(node_a, node_b, { interface_a = "ethernet-1/10", interface_b = "ethernet-1/10" })
    env:run_on("validate_core_link", link):assert_complete()

    env:run_on("modify_node", node_a, { { node_name = "ams-pe2" }, {} }):assert_complete()
    assert.are.equal("node ams-pe2 (active)", env:subscription(node_a).description)

    -- dependants were brought along: descriptions and what NetBox shows of the link
    local sub = env:subscription(link)
    assert.are.equal("core link 10G ams-pe2 ethernet-1/10 <-> ethernet-1/10 par-p", sub.description)
    assert.are.equal("port 10G ams-pe2 ethernet-1/2 cust R", env:subscription(port).description)
    local b = interface(sub.core_link.ports[2].ims_id)
    assert.are.equal("core link 10G to ams-pe2", b.description)
    local cable = env.fake:must("GET", "/api/dcim/cables/" .. sub.core_link.ims_id .. "/")
    assert.are.equal("ams-pe2 <-> par-p", cable.description)

    -- validate of the untouched link completes and leaves everything in sync
    env:run_on("validate_core_link", link):assert_complete()
    assert.are.equal("active true", env:status_of(link))
    env:run_on("validate_port", port):assert_complete()
    -- so both nodes can still be modified
    env:run_on("modify_sync_ports", node_a):assert_complete()
    env:run_on("modify_sync_ports", node_b):assert_complete()
    env:run_on("modify_node", node_b, { { node_description = "renamed neighbour" }, {} }):assert_complete()
    env:run_on("validate_node", node_a):assert_complete()
  end)
end)
