-- Workflow kinds over HTTP with a real product: create through the form pages,
-- modify with the insync lock, terminate refused while in use, validate,
-- modify_note, set_in_sync and the available-workflow reasons of core.
local H = require("harness")

describe("workflow kinds", function()
  local host, dir, name

  setup(function()
    dir = H.pg_dir()
    local uri
    name, uri = H.new_database()
    H.migrate(uri)
    host = H.start_host({ database = uri, products = H.source .. "/tests/fixtures/engine_products",
      args = { "--workers", "2" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  local function sql(q)
    return H.psql(dir, name, q)
  end

  local function start(workflow, pages)
    local status, _, _, json = host:request("POST", "/api/processes/" .. workflow, pages)
    return status, json
  end

  local widget_product, widget_id

  local function available(id)
    local status, _, _, json = host:request("GET", "/api/subscriptions/workflows/" .. id)
    assert.are.equal(200, status)
    local by_name = {}
    for _, target in ipairs({ "modify", "terminate", "validate", "system", "reconcile" }) do
      for _, w in ipairs(json[target]) do
        by_name[w.name] = w
      end
    end
    return by_name, json
  end

  it("creates a subscription through core's product page and the workflow's own page", function()
    widget_product = sql("SELECT product_id FROM products WHERE name = 'widget S'")
    local status, json = start("create_widget", "[]")
    assert.are.equal(510, status)
    assert.is_table(json.form.properties.product)
    status, json = start("create_widget", { { product = widget_product } })
    assert.are.equal(510, status)
    assert.is_table(json.form.properties.widget_name)
    status, json = start("create_widget", { { product = widget_product }, { widget_name = "w1", size = 5 } })
    assert.are.equal(201, status)
    local d = host:wait_status(json.id, "completed")
    widget_id = d.current_state.subscription_id
    assert.are.equal("active", sql("SELECT status FROM subscriptions WHERE subscription_id = '" .. widget_id .. "'"))
    assert.are.equal("t", sql("SELECT insync FROM subscriptions WHERE subscription_id = '" .. widget_id .. "'"))
    local names = {}
    for _, s in ipairs(d.steps) do
      names[#names + 1] = s.name
    end
    assert.are.same({ "Start", "Construct widget", "Set subscription to 'active'", "Unlock subscription",
      "Refresh subscription search index", "Refresh process search index", "Done" }, names)
    assert.are.equal("widget w1", d.current_state.subscription.description)
  end)

  it("refuses a product that the workflow is not linked to", function()
    local gadget = sql("SELECT product_id FROM products WHERE name = 'gadget'")
    local status, json = start("create_widget", { { product = gadget }, { widget_name = "x" } })
    assert.are.equal(400, status)
    assert.are.equal("product", json.validation_errors[1].loc[1])
  end)

  it("modifies with the lock, the version check and core's step names", function()
    local version = tonumber(sql("SELECT version FROM subscriptions WHERE subscription_id = '" .. widget_id .. "'"))
    local stale = { subscription_id = widget_id, version = version + 7 }
    local status, json = start("modify_widget", { stale, { size = 9 } })
    assert.are.equal(400, status)
    assert.matches("Stale data", H.json.encode(json.validation_errors))
    status, json = start("modify_widget", { { subscription_id = widget_id }, { size = 9 } })
    assert.are.equal(201, status)
    local d = host:wait_status(json.id, "completed")
    assert.are.equal(9, d.current_state.subscription.widget.size)
    assert.is_table(d.current_state.__old_subscriptions__[widget_id])
    local names = {}
    for _, s in ipairs(d.steps) do
      names[#names + 1] = s.name
    end
    assert.are.same({ "Start", "Create Process Subscription relation", "Lock subscription",
      "Set subscription to 'provisioning'", "Update widget", "Set subscription to 'active'", "Unlock subscription",
      "Refresh subscription search index", "Refresh process search index", "Done" }, names)
  end)

  it("does not start a modify workflow on an out-of-sync subscription, but modify_note works", function()
    sql("UPDATE subscriptions SET insync = false WHERE subscription_id = '" .. widget_id .. "'")
    local by_name, json = available(widget_id)
    assert.are.equal("subscription.not_in_sync", json.reason)
    assert.are.equal("subscription.not_in_sync", by_name.modify_widget.reason)
    assert.is_nil(by_name.modify_note.reason)
    assert.is_nil(by_name.validate_widget.reason)
    local status, body = start("modify_widget", { { subscription_id = widget_id }, { size = 3 } })
    assert.are.equal(400, status)
    assert.matches("This workflow cannot be started", H.json.encode(body.validation_errors))
    status, body = start("modify_note", { { subscription_id = widget_id }, { note = "hello" } })
    assert.are.equal(201, status)
    host:wait_status(body.id, "completed")
    assert.are.equal("hello", sql("SELECT note FROM subscriptions WHERE subscription_id = '" .. widget_id .. "'"))
    -- set_in_sync unlocks (no open workflow holds it).
    local s2 = host:request("PUT", "/api/subscriptions/" .. widget_id .. "/set_in_sync")
    assert.are.equal(200, s2)
    assert.are.equal("t", sql("SELECT insync FROM subscriptions WHERE subscription_id = '" .. widget_id .. "'"))
  end)

  it("refuses to terminate a widget a gadget uses, with core's reason", function()
    local gadget_product = sql("SELECT product_id FROM products WHERE name = 'gadget'")
    local pages = { { product = gadget_product }, { widget_subscription_id = widget_id } }
    local status, json = start("create_gadget", pages)
    assert.are.equal(201, status)
    local d = host:wait_status(json.id, "completed")
    local gadget_id = d.current_state.subscription_id
    local by_name = available(widget_id)
    assert.are.equal("subscription.no_modify_subscription_in_use_by_others", by_name.terminate_widget.reason)
    assert.are.same({ gadget_id }, by_name.terminate_widget.unterminated_in_use_by_subscriptions)
    status = start("terminate_widget", { { subscription_id = widget_id } })
    assert.are.equal(400, status)
    -- Terminate the gadget first, then the widget may go.
    status, json = start("terminate_gadget", { { subscription_id = gadget_id } })
    assert.are.equal(201, status)
    host:wait_status(json.id, "completed")
    local gadget_status = sql("SELECT status FROM subscriptions WHERE subscription_id = '" .. gadget_id .. "'")
    assert.are.equal("terminated", gadget_status)
    by_name = available(widget_id)
    assert.is_nil(by_name.terminate_widget.reason)
    status, json = start("terminate_widget", { { subscription_id = widget_id } })
    assert.are.equal(201, status)
    host:wait_status(json.id, "completed")
    local widget_status = sql("SELECT status FROM subscriptions WHERE subscription_id = '" .. widget_id .. "'")
    assert.are.equal("terminated", widget_status)
    local ended = sql("SELECT end_date FROM subscriptions WHERE subscription_id = '" .. widget_id .. "'")
    assert.are_not.equal("", ended)
    by_name = available(widget_id)
    assert.are.equal("subscription.no_modify_invalid_status", by_name.modify_widget.reason)
  end)

  it("runs a validate workflow as a task on an active subscription", function()
    local status, json = start("create_widget", { { product = widget_product }, { widget_name = "w2", size = 500 } })
    assert.are.equal(201, status)
    local id = host:wait_status(json.id, "completed").current_state.subscription_id
    status, json = start("validate_widget", { { subscription_id = id } })
    assert.are.equal(201, status)
    local d = host:wait_status(json.id, "failed")
    assert.is_true(d.is_task)
    assert.matches("widget too big", d.failed_reason)
    -- Validation leaves the lock taken until someone looks: the subscription is out of sync.
    assert.are.equal("f", sql("SELECT insync FROM subscriptions WHERE subscription_id = '" .. id .. "'"))
  end)

  it("shows the domain model of a subscription", function()
    local status, _, _, json = host:request("GET", "/api/subscriptions/domain-model/" .. widget_id)
    assert.are.equal(200, status)
    assert.are.equal("w1", json.widget.widget_name)
  end)
end)
