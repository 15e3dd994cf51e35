-- The process API against the real engine: start, run to completion, failure and
-- retry, waiting, input steps, callbacks, abort, delete, duplicates, idempotency.
local H = require("harness")

describe("processes", function()
  local host, dbname

  setup(function()
    local name, db = H.new_database()
    dbname = name
    H.migrate(db)
    host = H.start_host({ database = db, products = H.source .. "/tests/fixtures/engine_products",
      args = { "--workers", "2" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  local function start(name, body, headers)
    local status, text, _, json = host:request("POST", "/api/processes/" .. name, body or "[{}]", headers)
    return status, json, text
  end

  -- Poll until the process reaches one of the statuses; returns the detail.
  it("runs a ten-step task to completion, one success row per step", function()
    local status, json = start("test_ten_steps")
    assert.are.equal(201, status)
    local d = host:wait_status(json.id, { "completed" })
    local names = {}
    for _, s in ipairs(d.steps) do
      names[#names + 1] = s.name .. ":" .. s.status
    end
    assert.are.equal("Start:success", names[1])
    assert.are.equal("Step 10:success", names[11])
    assert.are.equal("Done:complete", names[12])
    assert.are.equal(12, #names)
    assert.are.equal(10, d.current_state.count)
    assert.are.equal("test_ten_steps", d.current_state.workflow_name)
  end)

  it("answers 404 for an unknown workflow and 422 for a malformed process id", function()
    local status, json = start("no_such_workflow")
    assert.are.equal(404, status)
    assert.are.equal("Workflow does not exist", json.detail)
    local s2, _, _, j2 = host:request("GET", "/api/processes/not-a-uuid")
    assert.are.equal(422, s2)
    assert.are.equal(422, j2.status)
    local s3 = host:request("GET", "/api/processes/00000000-0000-4000-8000-000000000000")
    assert.are.equal(404, s3)
  end)

  it("fails a step with core's error dict, then a retry completes it", function()
    local _, json = start("test_fails")
    local d = host:wait_status(json.id, { "failed" })
    assert.are.equal("Maybe fail", d.last_step)
    assert.matches("the fake system is broken", d.failed_reason)
    local last = d.steps[3]
    assert.are.equal("failed", last.status)
    assert.are.equal("LuaError", last.state.class)
    -- A retry is a resume with an empty object body.
    local status = host:request("PUT", "/api/processes/" .. json.id .. "/resume", "{}")
    assert.are.equal(204, status)
    d = host:wait_status(json.id, { "completed" })
    assert.is_true(d.current_state.succeeded_on_retry)
    assert.is_true(d.current_state.prepared)
    -- Resuming a completed process is refused.
    status = host:request("PUT", "/api/processes/" .. json.id .. "/resume", "{}")
    assert.are.equal(409, status)
  end)

  it("puts a failing retry step in waiting", function()
    local _, json = start("test_retry")
    local d = host:wait_status(json.id, { "waiting" })
    assert.are.equal("Flaky call", d.last_step)
    assert.are.equal("waiting", d.steps[#d.steps - 1].status)
  end)

  it("suspends at an input step with its form and resumes with the answers", function()
    local _, json = start("test_input")
    local d = host:wait_status(json.id, { "suspended" })
    assert.are.equal("NOC", d.assignee)
    assert.are.equal("Wait for approval", d.last_step)
    assert.is_table(d.form)
    assert.is_table(d.form.properties.approved)
    -- Invalid answers: 400 located at the field, nothing changes.
    local status, _, _, bad = host:request("PUT", "/api/processes/" .. json.id .. "/resume",
      { { approved = "maybe" } })
    assert.are.equal(400, status)
    assert.are.equal("FormValidationError", bad.type)
    assert.are.equal("approved", bad.validation_errors[1].loc[1])
    status = host:request("PUT", "/api/processes/" .. json.id .. "/resume", { { approved = true, comment = "ok" } })
    assert.are.equal(204, status)
    d = host:wait_status(json.id, { "completed" })
    assert.is_true(d.current_state.approved)
    assert.is_true(d.current_state.after)
    -- The suspend row stays in the log, followed by the success row with the answers.
    local statuses = {}
    for _, s in ipairs(d.steps) do
      if s.name == "Wait for approval" then
        statuses[#statuses + 1] = s.status
      end
    end
    assert.are.same({ "suspend", "success" }, statuses)
  end)

  it("answers 412 when the run predicate refuses, and creates nothing", function()
    local before = select(4, host:request("GET", "/api/processes/status-counts"))
    local status, json = start("test_refused")
    assert.are.equal(412, status)
    assert.are.equal("Not on a test day", json.detail)
    local after = select(4, host:request("GET", "/api/processes/status-counts"))
    assert.are.same(before, after)
  end)

  it("answers a start without pages with core's empty form page (510)", function()
    local status, json = start("test_ten_steps", "[]")
    assert.are.equal(510, status)
    assert.are.equal("FormNotCompleteError", json.type)
    assert.is_table(json.form)
  end)

  it("answers a start with extra form input with 400", function()
    local status, json = start("test_ten_steps", '[{"unexpected": 1}]')
    assert.are.equal(400, status)
    assert.are.equal("FormValidationError", json.type)
  end)

  it("sub-classifies failed tasks as core does (inconsistent_data, api_unavailable)", function()
    local _, a = start("test_inconsistent")
    local d = host:wait_status(a.id, { "inconsistent_data" })
    assert.are.equal("NOC", d.assignee)
    assert.are.equal("two records disagree", d.failed_reason)
    local _, b = start("test_api_down")
    d = host:wait_status(b.id, { "api_unavailable" })
    assert.are.equal("SYSTEM", d.assignee)
    -- Both are resumable, and resume-all retries failed tasks of every kind.
    local status, _, _, body = host:request("PUT", "/api/processes/resume-all")
    assert.are.equal(200, status)
    assert.is_true(body.count >= 2)
  end)

  it("runs focused steps on a sub-key of the state", function()
    local _, json = start("test_focus")
    local d = host:wait_status(json.id, { "completed" })
    assert.are.same({ n = 2, keep = "yes" }, d.current_state.settings)
  end)

  it("skips conditional steps", function()
    local _, json = start("test_conditional")
    local d = host:wait_status(json.id, { "completed" })
    assert.are.equal("skipped", d.steps[2].status)
    assert.is_nil(d.current_state.ran)
  end)

  it("waits for a callback; bad tokens and duplicates do not move it", function()
    local _, json = start("test_callback")
    local d = host:wait_status(json.id, { "awaiting_callback" })
    -- The API masks the token (the external system gets the route from the action step).
    assert.are.equal("/api/processes/" .. json.id .. "/callback/***", d.current_state.route_seen)
    local route = H.psql(H.pg_dir(), dbname, "SELECT state->>'route_seen' FROM process_steps WHERE pid = '"
      .. json.id .. "' AND state ? 'route_seen' ORDER BY completed_at DESC LIMIT 1")
    assert.are.equal(1, route:find("/api/processes/" .. json.id .. "/callback/", 1, true))
    local status = host:request("POST", "/api/processes/" .. json.id .. "/callback/wrong-token", { ok = true })
    assert.are.equal(404, status)
    status = host:request("POST", route .. "/progress", '"half way"')
    assert.are.equal(200, status)
    status = host:request("POST", route, { ok = true })
    assert.are.equal(200, status)
    status = host:request("POST", route, { ok = true })
    assert.are.equal(409, status)
    d = host:wait_status(json.id, { "completed" })
    assert.is_true(d.current_state.validated)
    assert.is_nil(d.current_state.__callback_token)
  end)

  it("aborts a process and deletes a task", function()
    local _, json = start("test_retry")
    host:wait_status(json.id, { "waiting" })
    local status = host:request("PUT", "/api/processes/" .. json.id .. "/abort")
    assert.are.equal(204, status)
    local d = host:wait_status(json.id, { "aborted" })
    assert.are.equal("User Aborted", d.last_step)
    status = host:request("DELETE", "/api/processes/" .. json.id)
    assert.are.equal(204, status)
    status = host:request("GET", "/api/processes/" .. json.id)
    assert.are.equal(404, status)
  end)

  it("creates one process for concurrent starts with one Idempotency-Key", function()
    local ids = {}
    for _ = 1, 5 do
      local status, json = start("test_ten_steps", "[{}]", { ["idempotency-key"] = "key-123" })
      assert.are.equal(201, status)
      ids[json.id] = true
    end
    local n = 0
    for _ in pairs(ids) do
      n = n + 1
    end
    assert.are.equal(1, n)
  end)

  it("lists processes with Content-Range, ETag and 304", function()
    local page = "/api/processes?range=0,2&sort=startedAt,asc&filter=lastStatus,completed"
    local status, _, headers, list = host:request("GET", page)
    assert.are.equal(200, status)
    assert.are.equal(2, #list)
    assert.matches("^processes 0%-2/%d+$", headers["content-range"])
    local tag = headers["etag"]:match('^W/"(.*)"$')
    status = host:request("GET", page, nil, { ["if-none-match"] = tag })
    assert.are.equal(304, status)
    status = host:request("GET", "/api/processes?filter=lastStatus")
    assert.are.equal(400, status)
    status = host:request("GET", "/api/processes?filter=nope,x")
    assert.are.equal(400, status)
    local _, _, _, counts = host:request("GET", "/api/processes/status-counts")
    assert.is_true(counts.task_counts.completed >= 3)
  end)

  it("pauses the engine between steps (PAUSING, PAUSED) and continues after unpausing", function()
    local _, json = start("test_slow_ten_steps")
    host:wait_status(json.id, { "running" })
    local status, _, _, settings = host:request("PUT", "/api/settings/status", { global_lock = true })
    assert.are.equal(200, status)
    assert.is_true(settings.global_status == "PAUSING" or settings.global_status == "PAUSED")
    local paused
    for _ = 1, 200 do
      local _, _, _, st = host:request("GET", "/api/settings/status")
      if st.global_status == "PAUSED" then
        paused = st
        break
      end
      H.sleep(0.05)
    end
    assert.is_table(paused, "the engine never reported PAUSED")
    assert.are.equal(0, paused.running_processes)
    local function executed(d)
      local n = 0
      for _, s in ipairs(d.steps) do
        n = n + (s.status ~= "pending" and 1 or 0)
      end
      return n
    end
    local d1 = select(4, host:request("GET", "/api/processes/" .. json.id))
    assert.are.equal("running", d1.last_status) -- as core: paused processes stay running
    assert.is_true(executed(d1) < 12, "the process finished before the pause took effect")
    H.sleep(0.5)
    local d2 = select(4, host:request("GET", "/api/processes/" .. json.id))
    assert.are.equal(executed(d1), executed(d2), "no step ran while paused")
    status = host:request("PUT", "/api/settings/status", { global_lock = false })
    assert.are.equal(200, status)
    local done = host:wait_status(json.id, { "completed" })
    assert.are.equal(10, done.current_state.count)
  end)

  it("refuses starts, resumes and callbacks with 503 while the engine is paused", function()
    local status = host:request("PUT", "/api/settings/status", { global_lock = true })
    assert.are.equal(200, status)
    status = start("test_ten_steps")
    assert.are.equal(503, status)
    status = host:request("PUT", "/api/settings/status", { global_lock = false })
    assert.are.equal(200, status)
  end)
end)
