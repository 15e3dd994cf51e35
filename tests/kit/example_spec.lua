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

  it("shows the form page a start still needs", function()
    local status, body = env:post_pages("test_ten_steps", {})
    assert.are.equal(510, status)
    assert.are.equal("FormNotCompleteError", body.type)
  end)
end)
