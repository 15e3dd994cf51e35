-- The example's tasks: NetBox bootstrap (re-runnable), wipe (guarded by its form),
-- and the engine showcase task with its conditional, input, callback and failure steps.
local X = require("example_env")

describe("example tasks", function()
  local env

  setup(function()
    env = X.start({ bootstrap = false })
  end)

  teardown(function()
    env:shutdown()
  end)

  it("bootstraps NetBox once, is a no-op the second time, and wipes it empty", function()
    local d = env:run_workflow("task_bootstrap_netbox", { {} }):assert_complete()
    assert.are.equal(19, #d.current_state.objects_created)
    assert.are.equal(4, #d.current_state.prefixes_created)
    d = env:run_workflow("task_bootstrap_netbox", { {} }):assert_complete()
    assert.are.equal(0, #d.current_state.objects_created)
    assert.are.equal(0, #d.current_state.prefixes_created)

    -- the bootstrap data is what the node form offers
    local node = env:create_node("ams-pe")
    env:terminate("terminate_node", node)

    local errors = env:invalid("task_wipe_netbox", { {} })
    assert.are.equal("Will not continue unless you check this box", errors.annihilate)
    d = env:run_workflow("task_wipe_netbox", { { annihilate = true } }):assert_complete()
    assert.are.equal(5, d.current_state.objects_deleted["dcim/sites"])
    for endpoint, n in pairs(env:netbox_counts()) do
      assert.are.equal(0, n, endpoint)
    end
  end)

  local function showcase(extra)
    local page = { text_value = "hello", multi_choice = { "one", "two" } }
    for k, v in pairs(extra or {}) do
      page[k] = v
    end
    return { page, {} }
  end

  it("shows every step kind in the showcase task", function()
    local errors = env:invalid("task_showcase", { { text_value = "reserved", constrained_integer = 11,
      multi_choice = { "one" } } })
    assert.are.equal("'reserved' is a reserved word", errors.text_value)
    assert.matches("less than or equal to 10", errors.constrained_integer)
    errors = env:invalid("task_showcase", { { text_value = "x", multi_choice = { "one" }, wait_for_callback = true,
      fail_on_purpose = true } })
    assert.is_string(errors.__root__)
    local summary = env:next_page("task_showcase", { showcase()[1] })
    assert.matches("text_value: hello", summary.properties.summary.default, 1, true)

    local p = env:run_workflow("task_showcase", showcase())
    local d = p:assert_complete()
    assert.is_true(d.current_state.e2e_conditional_step_ran)
    assert.is_true(d.current_state.e2e_failure_step_checked)

    p = env:run_workflow("task_showcase", showcase({ run_conditional_step = false }))
    p:assert_complete()
    local log = table.concat(p:step_log(), ",")
    assert.matches("Conditional step:skipped", log, 1, true)

    p = env:run_workflow("task_showcase", showcase({ show_suspended_step = true }))
    p:wait_for("suspended")
    assert.is_table(p:form().properties.confirmed)
    p:resume({ { confirmation_text = "ok" } })
    assert.are.equal("ok", p:assert_complete().current_state.confirmation_text)

    p = env:run_workflow("task_showcase", showcase({ wait_for_callback = true }))
    p:callback({ answer = 42 })
    assert.are.equal(42, p:assert_complete().current_state.e2e_callback_result.answer)

    p = env:run_workflow("task_showcase", showcase({ fail_on_purpose = true }))
    d = p:wait_for("failed")
    assert.are.equal("Failing on purpose, as asked", d.failed_reason)
  end)
end)
