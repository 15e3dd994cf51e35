-- The sandbox over HTTP and on workers (issue 14): the time budget stops pattern
-- backtracking in a request handler and in a step, and a database statement that
-- outlasts the step (the process fails instead of hanging a thread); text with NUL
-- is refused with 400.
local H = require("harness")

describe("sandbox", function()
  local host

  setup(function()
    local _, db = H.new_database()
    H.migrate(db)
    host = H.start_host({ database = db, products = H.source .. "/tests/fixtures/sandbox_http",
      args = { "--workers", "1", "--lua-timeout-ms", "1500" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  local function start(name, body)
    local status, text, _, json = host:request("POST", "/api/processes/" .. name, body or "[{}]")
    return status, json, text
  end

  it("stops a form handler that backtracks, and keeps serving", function()
    for _ = 1, 2 do
      local t0 = os.time()
      local status, json, text = start("backtracking_form")
      assert.are.equal(500, status, text)
      assert.are.equal(500, json.status)
      assert.is_true(os.time() - t0 < 30, "the request took " .. (os.time() - t0) .. " s")
    end
    local status = host:request("GET", "/api/health")
    assert.are.equal(200, status)
  end)

  -- Start a task and wait (up to 30 s) for it to fail; returns the detail and the seconds taken.
  local function run_to_failure(name)
    local t0 = os.time()
    local status, json, text = start(name)
    assert.are.equal(201, status, text)
    local detail
    for _ = 1, 600 do
      local _, _, _, d = host:request("GET", "/api/processes/" .. json.id)
      detail = d
      if d and d.last_status == "failed" then
        break
      end
      H.sleep(0.05)
    end
    assert.are.equal("failed", detail and detail.last_status, "process did not fail in time")
    return detail, os.time() - t0
  end

  it("fails a step that backtracks instead of hanging the worker", function()
    local detail = run_to_failure("backtracking_step")
    assert.matches("time limit exceeded %(1500 ms%)", tostring(detail.failed_reason))
  end)

  it("cancels a database statement that outlasts the step's budget", function()
    local detail, seconds = run_to_failure("sleeping_step")
    assert.matches("time limit exceeded %(1500 ms%)", tostring(detail.failed_reason))
    assert.is_true(seconds < 20, "took " .. seconds .. " s for a 1.5 s budget (the statement sleeps 60 s)")
  end)

  it("refuses text with a NUL character with 400", function()
    local status, json, text = start("echo_input", '[{"text": "a\\u0000b"}]')
    assert.are.equal(400, status, text)
    assert.are.equal(400, json.status)
    assert.matches("NUL", json.detail)
    status = start("echo_input", '[{"text": "ab"}]')
    assert.are.equal(201, status)
  end)
end)
