-- The step runner: one step at a time, core's step kinds and results.
local fake = require("helpers.fake_host")

describe("workflow runner", function()
  local workflow, runner, wf_count

  before_each(function()
    fake.install()
    package.loaded["orch.workflow"] = nil
    package.loaded["orch.runner"] = nil
    workflow = require("orch.workflow")
    runner = require("orch.runner")
    wf_count = 0
  end)

  local function define(steps)
    wf_count = wf_count + 1
    local name = "wf_" .. wf_count
    workflow.define({ name = name, description = "test", steps = steps })
    return name
  end

  -- Run from step 1 until the runner stops; returns the list of results.
  local function run_all(name, state, from)
    local results, index = {}, from or 1
    state = state or { process_id = "p1" }
    for _ = 1, 50 do
      local r = runner.run({ process_id = "p1", workflow_name = name, step_index = index, state = state })
      results[#results + 1] = r
      state, index = r.state, r.next_index
      if not r.continue then
        break
      end
    end
    return results
  end

  it("merges what steps return and completes at Done", function()
    local name = define({
      workflow.init,
      workflow.step("One", function() return { a = 1 } end),
      workflow.step("Two", function(state) return { b = state.a + 1 } end),
      workflow.step("Nothing", function() end),
      workflow.done,
    })
    local rs = run_all(name)
    assert.are.same({ "Start", "One", "Two", "Nothing", "Done" }, (function()
      local t = {}
      for _, r in ipairs(rs) do t[#t + 1] = r.step_name end
      return t
    end)())
    assert.are.equal("complete", rs[5].status)
    assert.are.equal(2, rs[5].state.b)
    assert.is_false(rs[5].continue)
  end)

  it("skips conditional steps whose predicate is false", function()
    local name = define({
      workflow.init,
      workflow.conditional(function(s) return s.go end)({
        workflow.step("Maybe", function() return { ran = true } end),
      }),
      workflow.done,
    })
    local rs = run_all(name, { process_id = "p1", go = false })
    assert.are.equal("skipped", rs[2].status)
    assert.is_nil(rs[3].state.ran)
    rs = run_all(name, { process_id = "p1", go = true })
    assert.are.equal("success", rs[2].status)
    assert.is_true(rs[3].state.ran)
  end)

  it("fails with core's error dict and keeps the last good state", function()
    local name = define({
      workflow.init,
      workflow.step("Good", function() return { good = 1 } end),
      workflow.step("Bad", function() error("broken thing") end),
      workflow.done,
    })
    local rs = run_all(name)
    local r = rs[3]
    assert.are.equal("failed", r.status)
    assert.are.equal(3, r.next_index)
    assert.are.equal(1, r.state.good)
    assert.are.equal("LuaError", r.log_state.class)
    assert.matches("broken thing", r.log_state.error)
    assert.matches("broken thing", r.failed_reason)
    assert.is_string(r.traceback)
    assert.is_nil(r.log_state.traceback)
  end)

  it("puts a failing retrystep in waiting with a backoff", function()
    local name = define({ workflow.init, workflow.retrystep("Flaky", function() error("later") end), workflow.done })
    local rs = run_all(name)
    assert.are.equal("waiting", rs[2].status)
    assert.are.equal(2, rs[2].next_index)
    assert.is_true(rs[2].retry_after > 0)
  end)

  it("suspends at an input step with its assignee", function()
    local confirm = workflow.inputstep("Confirm", { form = {}, assignee = "NOC" })
    local name = define({ workflow.init, confirm, workflow.done })
    local rs = run_all(name)
    assert.are.equal("suspend", rs[2].status)
    assert.are.equal("NOC", rs[2].assignee)
    assert.are.equal(2, rs[2].next_index)
  end)

  it("runs a callback step: endpoint, action, await, then validate and cleanup after the callback", function()
    local seen_route
    local name = define({
      workflow.init,
      workflow.callback_step({
        name = "Provision",
        action = workflow.step("Call LSO", function(state) seen_route = state.callback_route end),
        validate = workflow.step("Check result", function(state)
          if state.callback_result.return_code ~= 0 then error("failed") end
          return { validated = true }
        end),
      }),
      workflow.done,
    })
    local rs = run_all(name)
    local await = rs[2]
    assert.are.equal("awaiting_callback", await.status)
    assert.are.equal("Provision", await.step_name)
    assert.matches("^/api/processes/p1/callback/", seen_route)
    assert.are.equal("callback_result", await.state.__callback_result_key)
    assert.are.equal(4, await.state.__sub_step)
    assert.is_false(await.replace_last)
    -- The callback API stores the payload and lets the engine run the group again.
    local state = await.state
    state.callback_result = { return_code = 0 }
    local after = run_all(name, state, 2)
    assert.are.equal("success", after[1].status)
    assert.is_true(after[1].replace_last)
    assert.is_true(after[1].state.validated)
    assert.is_nil(after[1].state.__callback_token)
    assert.is_nil(after[1].state.__step_group)
    assert.are.equal("complete", after[2].status)
  end)

  it("focuses steps on a sub-key of the state", function()
    local name = define({
      workflow.init,
      workflow.focussteps("sub")({ workflow.step("Inner", function(s) return { n = (s.n or 0) + 1 } end) }),
      workflow.done,
    })
    local rs = run_all(name, { process_id = "p1", sub = { n = 1, keep = true } })
    assert.are.same({ n = 2, keep = true }, rs[3].state.sub)
  end)

  it("defers database work to the persist phase", function()
    local log = {}
    local name = define({
      workflow.init,
      workflow.step("Write", function(_, ctx)
        ctx:defer(function() log[#log + 1] = "written" end)
        return { x = 1 }
      end),
      workflow.done,
    })
    local rs = run_all(name)
    assert.are.same({}, log)
    runner.persist(rs[2])
    assert.are.same({ "written" }, log)
  end)

  it("removes keys named in __remove_keys", function()
    local name = define({
      workflow.init,
      workflow.step("Drop", function() return { __remove_keys = { "secret" }, kept = 1 } end),
      workflow.done,
    })
    local rs = run_all(name, { process_id = "p1", secret = "x" })
    assert.is_nil(rs[2].state.secret)
    assert.is_nil(rs[2].state.__remove_keys)
    assert.are.equal(1, rs[2].state.kept)
  end)

  it("fails a process whose workflow no longer exists", function()
    local r = runner.run({ process_id = "p", workflow_name = "gone", step_index = 1, state = {} })
    assert.are.equal("failed", r.status)
    assert.matches("removed", r.failed_reason)
  end)

  it("rejects definitions with mistakes", function()
    assert.has_error(function() workflow.step("x") end)
    assert.has_error(function() workflow.define({ name = "bad name", description = "d" }) end)
    assert.has_error(function() workflow.define({ name = "t", target = "NOPE", description = "d" }) end)
    assert.has_error(function() workflow.define({ name = "t", description = "d", steps = { 42 } }) end)
    workflow.define({ name = "twice", description = "d" })
    assert.has_error(function() workflow.define({ name = "twice", description = "d" }) end)
  end)
end)
