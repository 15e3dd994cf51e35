-- An example of testing workflows with the test kit (docs/testing.md), on the
-- engine's test workflows (tests/fixtures/engine_products).
local kit = require("orch_testkit")

describe("test kit example", function()
  local env

  setup(function()
    env = kit.start({ products = "tests/fixtures/engine_products" })
  end)

  teardown(function()
    env:stop()
  end)

  it("runs a task to completion", function()
    local p = env:run_workflow("test_ten_steps", { {} })
    local d = p:assert_complete()
    assert.are.equal(10, d.current_state.count)
    assert.are.equal("Done:complete", p:step_log()[12])
  end)

  it("resumes a suspended process with its form", function()
    local p = env:run_workflow("test_input", { {} })
    p:wait_for("suspended")
    assert.is_table(p:form().properties.approved)
    p:resume({ { approved = true } })
    assert.is_true(p:assert_complete().current_state.approved)
  end)

  it("answers the callback a process waits for", function()
    local p = env:run_workflow("test_callback", { {} })
    p:callback({ ok = true })
    assert.is_true(p:assert_complete().current_state.validated)
  end)

  it("reads the database as text (env:sql) or as rows (env:rows, env:row)", function()
    local p = env:run_workflow("test_ten_steps", { {} })
    p:assert_complete()
    -- env:sql: psql's unaligned text, "|" between columns
    assert.are.equal("completed|test_ten_steps", env:sql("SELECT last_status, w.name FROM processes p "
      .. "JOIN workflows w USING (workflow_id) WHERE pid = '" .. p.id .. "'"))
    -- env:rows: typed values by column name, NULL as nil
    local rows = env:rows("SELECT pid::text AS id, is_task, failed_reason, 40 + 2 AS n, '{\"a\": [1]}'::jsonb AS j "
      .. "FROM processes WHERE pid = '" .. p.id .. "'")
    assert.are.same({ { id = p.id, is_task = true, n = 42, j = { a = { 1 } } } }, rows)
    assert.are.same({}, env:rows("SELECT 1 AS one WHERE false"))
    assert.are.equal(3, env:row("VALUES (3)").column1)
    -- env:request: status, decoded JSON, raw text, headers
    local status, json, raw, headers = env:request("GET", "/api/processes/" .. p.id)
    assert.are.equal(200, status)
    assert.are.equal(p.id, json.process_id)
    assert.is_string(raw)
    assert.matches("json", headers["content-type"])
  end)

  it("shows the form page a start still needs", function()
    local status, body = env:post_pages("test_ten_steps", {})
    assert.are.equal(510, status)
    assert.are.equal("FormNotCompleteError", body.type)
  end)
end)
