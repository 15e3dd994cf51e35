-- The step workers as the API reports them: worker-status counts hosts and
-- leases, PAUSING/PAUSED follow live leases, and `orchestrator worker` joins
-- and leaves cleanly. (The scheduler's own guarantees are tested in C:
-- tests/c/test_engine.c.)
local H = require("harness")

describe("engine workers", function()
  local dir, name, uri, host

  local function sql(q)
    return H.psql(dir, name, q)
  end

  local function status_of(path)
    local status, body, _, json = host:request("GET", path)
    assert.are.equal(200, status, body)
    return json
  end

  -- Poll until check(json) is true (or fail after `seconds`).
  local function eventually(path, check, seconds)
    local json
    for _ = 1, (seconds or 5) * 20 do
      json = status_of(path)
      if check(json) then
        return json
      end
      H.sleep(0.05)
    end
    error("condition not reached on " .. path .. ": " .. H.json.encode(json), 2)
  end

  setup(function()
    dir = H.pg_dir()
    name, uri = H.new_database()
    H.migrate(uri)
    host = H.start_host({ database = uri, args = { "--workers", "3" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  it("reports this host's workers and an empty queue", function()
    local json = eventually("/api/settings/worker-status", function(j)
      return j.number_of_workers_online == 3
    end)
    assert.are.same({ executor_type = "orchestrator", number_of_workers_online = 3, number_of_queued_jobs = 0,
      number_of_running_jobs = 0 }, json)
    assert.are.same({ global_lock = false, running_processes = 0, global_status = "RUNNING" },
      status_of("/api/settings/status"))
  end)

  it("is PAUSING while a lease is live and PAUSED once it is gone", function()
    local status = host:request("PUT", "/api/settings/status", { global_lock = true })
    assert.are.equal(200, status)
    -- A process held by another host (its lease runs out in a second).
    sql([[INSERT INTO workflows (name, target, description) VALUES ('engine_spec', 'SYSTEM', 'test')]])
    sql([[WITH p AS (INSERT INTO processes (workflow_id, last_status)
            SELECT workflow_id, 'running' FROM workflows WHERE name = 'engine_spec' RETURNING pid)
          INSERT INTO orch_work_queue (pid, lease_owner, lease_token, lease_expires, run_at)
            SELECT pid, 'other-host', gen_random_uuid(), now() + interval '1 second', now() + interval '1 second'
            FROM p]])
    local json = status_of("/api/settings/status")
    assert.are.same({ global_lock = true, running_processes = 1, global_status = "PAUSING" }, json)
    assert.are.equal(1, status_of("/api/settings/worker-status").number_of_running_jobs)
    eventually("/api/settings/status", function(j)
      return j.global_status == "PAUSED"
    end)
    -- Paused: the process is queued, and no worker takes it.
    local ws = status_of("/api/settings/worker-status")
    assert.are.equal(1, ws.number_of_queued_jobs)
    assert.are.equal(0, ws.number_of_running_jobs)
    H.sleep(0.5)
    -- (an expired lease stays as it is until someone claims the row: there is no reaper)
    assert.are.equal("other-host", sql("SELECT string_agg(lease_owner, ',') FROM orch_work_queue"))
    sql("DELETE FROM processes")
    status = host:request("PUT", "/api/settings/status", { global_lock = false })
    assert.are.equal(200, status)
  end)

  it("counts a worker-only host while it runs and forgets it after SIGTERM", function()
    local log = os.tmpname()
    local pid = H.proc.spawn({ H.bin, "worker", "--workers", "2", "--lua-dir", H.source .. "/lua",
      "--products", H.source .. "/products", "--migrations", H.source .. "/migrations" },
      { DATABASE_URI = uri }, log)
    eventually("/api/settings/worker-status", function(j)
      return j.number_of_workers_online == 5
    end)
    H.proc.kill(pid, "TERM")
    local how, code = H.proc.wait(pid)
    local text = H.read_file(log) or ""
    os.remove(log)
    H.assert_clean_log(text, "worker log")
    assert.are.equal("exited", how, text)
    assert.are.equal(0, code, text)
    assert.are.equal(3, status_of("/api/settings/worker-status").number_of_workers_online)
  end)
end)
