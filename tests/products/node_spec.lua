-- The Node product over HTTP against the real host and the fake NetBox/LSO.
local X = require("example_env")

describe("example product Node", function()
  local env

  setup(function()
    env = X.start()
  end)

  teardown(function()
    env:shutdown()
  end)

  it("registers the eleven products with their workflows", function()
    local _, products = env:request("GET", "/api/products/")
    local names = {}
    for _, p in ipairs(products) do
      names[#names + 1] = p.name
    end
    table.sort(names)
    assert.are.same({ "core link 100G", "core link 10G", "l2vpn", "node Cisco", "node Cumulus", "node FRR",
      "node Nokia", "nsip2p", "nsistp", "port 100G", "port 10G" }, names)
    assert.are.equal("create_node,modify_node,modify_note,modify_sync_ports,terminate_node,validate_node",
      env:sql([[SELECT string_agg(w.name, ',' ORDER BY w.name) FROM workflows w
                JOIN products_workflows pw USING (workflow_id) JOIN products p USING (product_id)
                WHERE p.name = 'node FRR']]))
    assert.are.equal("RECONCILE", env:sql("SELECT target FROM workflows WHERE name = 'reconcile_l2vpn'"))
  end)

  it("offers the node settings filtered by the product's make, then a summary", function()
    local product = { product = env:product_id("node Cisco") }
    local form = env:next_page("create_node", { product })
    assert.are.equal("node Cisco", form.title)
    local types = X.options(form, "type_id")
    local labels = {}
    for _, l in pairs(types) do
      labels[#labels + 1] = l
    end
    table.sort(labels)
    assert.are.same({ "Cisco 8812", "Cisco ASR 903" }, labels)
    assert.are.equal("SURF", X.options(form, "customer_id")[X.SURF])
    local page = { customer_id = X.SURF, type_id = X.option(form, "type_id", "8812"),
      role_id = X.option(form, "role_id", "Provider"), site_id = X.option(form, "site_id", "Paris"),
      node_status = "active", node_name = "par-p" }
    local summary = env:next_page("create_node", { product, page })
    assert.are.equal("summary", summary.properties.summary.format)
  end)

  -- issue 11 item 11: what the official UI shows of the example's forms
  it("labels every field for people and shows names on the summary page", function()
    local product = { product = env:product_id("node Nokia") }
    local form = env:next_page("create_node", { product })
    X.assert_human_titles(form)
    local titles = X.field_titles(form)
    assert.are.equal("Node status", titles.node_status)
    assert.are.equal("Node role", titles.role_id)
    local page = { customer_id = X.SURF, type_id = X.option(form, "type_id", "7950 XRS-20"),
      role_id = X.option(form, "role_id", "Provider Edge"), site_id = X.option(form, "site_id", "Amsterdam"),
      node_status = "active", node_name = "sum-pe" }
    local summary = env:next_page("create_node", { product, page })
    local rows, data = X.summary_rows(summary)
    assert.are.same({ "Customer", "Node role", "Node type", "Site", "Node status", "Node name", "Node description" },
      data.labels)
    assert.are.equal("SURF", rows["Customer"])
    assert.are.equal("Provider Edge", rows["Node role"])
    assert.are.equal("Nokia 7950 XRS-20", rows["Node type"])
    assert.are.equal("Amsterdam", rows["Site"])
    assert.are.equal("-", rows["Node description"])
    for _, v in pairs(rows) do
      assert.is_nil(v:find("None", 1, true))
    end

    -- the modify form and its Before/After summary as well
    local id = env:create_node("sum-pe", { description = "" })
    form = env:next_page("modify_node", { { subscription_id = id } })
    X.assert_human_titles(form)
    summary = env:next_page("modify_node", { { subscription_id = id },
      { site_id = X.option(form, "site_id", "Paris") } })
    local _, mdata = X.summary_rows(summary)
    assert.are.same({ "Node role", "Node type", "Site", "Node status", "Node name", "Node description" },
      mdata.labels)
    assert.are.same({ "Amsterdam", "Paris" }, { mdata.columns[1][3], mdata.columns[2][3] })
    env:terminate("terminate_node", id)
  end)

  -- issue 11 item 11: the customers of the example reach the API (and so the UI)
  it("shows the example's customers through GraphQL customers and customer", function()
    local d = env:graphql("{ customers(first: 10, after: 0) { page { customerId fullname shortcode } } }")
    local names = {}
    for _, c in ipairs(d.customers.page) do
      names[#names + 1] = c.fullname
    end
    table.sort(names)
    assert.are.same({ "ESnet", "GÉANT", "SURF" }, names)
    d = env:graphql([[query Customer($customerId: String!, $first: Int!) { customers(first: $first,
      filterBy: [{field: "customerId", value: $customerId}]) { page { customerId fullname shortcode } } }]],
      { customerId = X.SURF, first = 1 })
    assert.are.same({ { customerId = X.SURF, fullname = "SURF", shortcode = "SURF" } }, d.customers.page)

    local id, p = env:create_node("cust-pe")
    d = env:graphql([[query S($id: String!) { subscriptions(filterBy: [{field: "subscriptionId", value: $id}])
      { page { customerId customer { customerId fullname shortcode } } } }]], { id = id })
    assert.are.same({ customerId = X.SURF, fullname = "SURF", shortcode = "SURF" }, d.subscriptions.page[1].customer)
    d = env:graphql([[query P($id: String!) { processes(filterBy: [{field: "processId", value: $id}])
      { page { customer { fullname } } } }]], { id = p.id })
    assert.are.equal("SURF", d.processes.page[1].customer.fullname)
    -- a customer's subscriptions
    d = env:graphql([[query C($c: String!) { customers(filterBy: [{field: "customerId", value: $c}])
      { page { fullname subscriptions(first: 100, after: 0) { pageInfo { totalItems } } } } }]], { c = X.SURF })
    assert.is_true(d.customers.page[1].subscriptions.pageInfo.totalItems >= 1)
    env:terminate("terminate_node", id)
  end)

  it("refuses invalid input with the message at the field", function()
    local product = { product = env:product_id("node Nokia") }
    local form = env:next_page("create_node", { product })
    local errors = env:invalid("create_node", { product, { customer_id = X.SURF,
      type_id = X.option(form, "type_id", "7950"), role_id = "999999", site_id = X.option(form, "site_id", "Rome"),
      node_status = "exploded", node_name = "rom-pe" } })
    assert.is_string(errors.role_id)
    assert.is_string(errors.node_status)
    assert.is_nil(errors.node_name)
  end)

  it("creates a node in NetBox with loopbacks and interfaces, validates, modifies and terminates it", function()
    local id = env:create_node("ams-pe")
    local sub = env:subscription(id)
    assert.are.equal("active", sub.status)
    assert.are.equal("node ams-pe (active)", sub.description)
    assert.are.equal("node ams-pe status active", sub.node.title)
    local device
    for _, d in ipairs(env:netbox("dcim/devices")) do
      if d.name == "ams-pe" then
        device = d
      end
    end
    assert.are.equal(sub.node.ims_id, device.id)
    assert.are.equal(sub.node.ipv4_ipam_id, device.primary_ip4.id)
    assert.are.equal(sub.node.ipv6_ipam_id, device.primary_ip6.id)
    local names = {}
    for _, i in ipairs(env:netbox("dcim/interfaces")) do
      if i.device.id == device.id then
        names[#names + 1] = i.name
      end
    end
    assert.are.equal(15, #names) -- 14 ports and Loopback0

    -- a second node may not take the same name
    local product = { product = env:product_id("node Nokia") }
    local form = env:next_page("create_node", { product })
    local errors = env:invalid("create_node", { product, { customer_id = X.SURF,
      type_id = X.option(form, "type_id", "7950"), role_id = X.option(form, "role_id", "Provider"),
      site_id = X.option(form, "site_id", "Rome"), node_status = "active", node_name = "ams-pe" } })
    assert.matches("already", errors.node_name)

    env:run_on("validate_node", id):assert_complete()

    -- drift in NetBox: validate fails with a readable diff, the subscription stays out of sync
    env.fake:must("PATCH", "/api/dcim/devices/" .. device.id .. "/", { status = "offline" })
    local p = env:run_on("validate_node", id)
    local d = p:wait_for("failed")
    assert.matches("Found difference in IMS", d.failed_reason)
    assert.matches("status: NetBox has offline, expected active", d.failed_reason, 1, true)
    assert.are.equal("active false", env:status_of(id))
    env.fake:must("PATCH", "/api/dcim/devices/" .. device.id .. "/", { status = "active" })
    p:resume({})
    p:assert_complete()
    assert.are.equal("active true", env:status_of(id))

    -- modify: pre-filled page, Before/After summary, NetBox follows
    form = env:next_page("modify_node", { { subscription_id = id } })
    assert.are.equal("ams-pe", form.properties.node_name.default)
    local summary = env:next_page("modify_node", { { subscription_id = id }, { node_name = "ams-pe1",
      node_status = "planned" } })
    assert.are.same({ "Before", "After" }, summary.properties.summary.uniforms.data.headers)
    env:run_on("modify_node", id, { { node_name = "ams-pe1", node_status = "planned" }, {} }):assert_complete()
    sub = env:subscription(id)
    assert.are.equal("node ams-pe1 (planned)", sub.description)
    local after = env.fake:must("GET", "/api/dcim/devices/" .. device.id .. "/")
    assert.are.equal("ams-pe1", after.name)
    assert.are.equal("planned", after.status.value)

    -- modify_sync_ports puts back a deleted interface
    local eth5
    for _, i in ipairs(env:netbox("dcim/interfaces")) do
      if i.device.id == device.id and i.name == "ethernet-1/5" then
        eth5 = i
      end
    end
    env.fake:must("DELETE", "/api/dcim/interfaces/" .. eth5.id .. "/")
    local sync = env:run_on("modify_sync_ports", id):assert_complete()
    assert.are.same({ "ethernet-1/5" }, sync.current_state.interfaces_added)

    env:terminate("terminate_node", id)
    assert.are.equal(404, (env.fake:request("GET", "/api/dcim/devices/" .. device.id .. "/")))
  end)

  it("retries a half-done step without duplicating what NetBox already has", function()
    -- without the IPv6 loopback prefix, "Reserve loopback addresses" fails after Loopback0 and
    -- the IPv4 address exist; the bootstrap task puts the prefix back and the retry completes
    local prefix
    for _, pr in ipairs(env:netbox("ipam/prefixes")) do
      if pr.prefix == "fc00:0:0:127::/64" then
        prefix = pr
      end
    end
    env.fake:must("DELETE", "/api/ipam/prefixes/" .. math.tointeger(prefix.id) .. "/")
    local p = env:create_node("rom-pe", { site = "Rome", no_wait = true })
    local d = p:wait_for("failed")
    assert.matches("prefix fc00:0:0:127::/64 is missing in NetBox", d.failed_reason, 1, true)
    env:run_workflow("task_bootstrap_netbox", { {} }):assert_complete()
    p:resume({})
    local id = p:assert_complete().current_state.subscription_id
    local sub = env:subscription(id)
    local loopbacks, addresses = 0, 0
    for _, i in ipairs(env:netbox("dcim/interfaces")) do
      if i.device.id == sub.node.ims_id and i.name == "Loopback0" then
        loopbacks = loopbacks + 1
        for _, a in ipairs(env:netbox("ipam/ip-addresses")) do
          if a.assigned_object_id == i.id then
            addresses = addresses + 1
          end
        end
      end
    end
    assert.are.equal(1, loopbacks)
    assert.are.equal(2, addresses)
    env:terminate("terminate_node", id)
  end)

  it("runs the LSO playbook when LSO is on: success is confirmed, failure fails the process", function()
    env:set_lso(true)
    local p = env:create_node("lon-pe", { no_wait = true })
    local d = p:wait_for("suspended")
    assert.are.equal("successful", d.current_state.callback_result.status)
    assert.are.equal("successful", p:form().properties.run_status.default)
    p:resume({ {} })
    local id = p:assert_complete().current_state.subscription_id
    local runs = env.fake:must("GET", "/api/_fake/lso/runs")
    local last = runs[#runs]
    assert.are.equal("create_node.yaml", last.playbook_name)

    env.fake:must("PUT", "/api/_fake/lso", { result = "failure" })
    local failing = env:create_node("mad-pe", { no_wait = true })
    d = failing:wait_for("failed")
    assert.matches("Provisioning proxy failure", d.failed_reason)
    env.fake:must("PUT", "/api/_fake/lso", { result = "success" })
    env:set_lso(false)
    env:terminate("terminate_node", id)
  end)
end)
