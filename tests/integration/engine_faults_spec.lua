-- The engine under faults and slow steps (issue 14 items 8, 10, 12), with the
-- real host: a database outage during a step does not repeat the step's side
-- effect (own cluster, stopped and started again); SIGTERM ends within the
-- shutdown deadline even with a stuck worker; a state over the size limit
-- fails its step and the process stays readable. (Slow steps, hand-back and the
-- step time limit are tested in C: tests/c/test_engine.c.)
local H = require("harness")
local F = require("fake_netbox")

local products = H.source .. "/tests/fixtures/engine_faults"

local function start(host, name)
  local status, text, _, json = host:request("POST", "/api/processes/" .. name, "[{}]")
  assert.are.equal(201, status, text)
  return json.id
end

local function wait_sql(dir, db, sql, want, seconds)
  local got
  for _ = 1, seconds * 10 do
    got = H.psql(dir, db, sql)
    if got == want then
      return
    end
    H.sleep(0.1)
  end
  error(string.format("%s: got %s, want %s", sql, tostring(got), want), 2)
end

describe("a database outage during a step", function()
  local dir, pgbin, fake, host, dbname

  local function pg_ctl(action)
    local as_pg = io.popen("id -u"):read("l") == "0" and "runuser -u postgres -- " or ""
    local cmd = string.format("%s%s/pg_ctl -D %s/data -l %s/server.log -w -o %s %s >/dev/null 2>&1",
      as_pg, pgbin, dir, dir, H.shell_quote("-k " .. dir .. " -c listen_addresses='' -c fsync=off"), action)
    assert(os.execute(cmd), "pg_ctl " .. action .. " failed")
  end

  local function sites()
    local _, json = fake:request("GET", "/api/_fake/state")
    return json.counts["dcim/sites"]
  end

  setup(function()
    pgbin = io.popen("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1"):read("l")
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute(H.shell_quote(H.source .. "/tests/support/testpg") .. " new " .. H.shell_quote(dir)))
    local uri
    dbname, uri = H.new_database(dir)
    H.migrate(uri)
    fake = F.start()
    host = H.start_host({ database = uri, products = products, args = { "--workers", "1" },
      env = { ORCH_SERVICE_NETBOX_URL = fake.url, ORCH_SERVICE_NETBOX_TOKEN = F.token } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
    if fake then
      fake:stop()
    end
    pcall(pg_ctl, "-m immediate stop")
    os.execute("rm -rf " .. H.shell_quote(dir))
  end)

  it("does not run the step again until the database is back and the lease is held", function()
    local before = sites()
    local pid = start(host, "test_outage_side_effect")
    -- The step has created its site and waits on the slow call: stop PostgreSQL under it.
    wait_sql(dir, dbname, "SELECT count(*) FROM orch_work_queue WHERE lease_owner IS NOT NULL", "1", 10)
    H.sleep(1.0)
    pg_ctl("-m fast stop")
    local t0 = H.now()
    H.sleep(12) -- longer than the lease (10 s)
    local during = sites() - before
    pg_ctl("start")
    wait_sql(dir, dbname, "SELECT last_status FROM processes WHERE pid = '" .. pid .. "'", "completed", 40)
    local total = sites() - before
    assert.is_true(during <= 1, during .. " sites created during the outage (the step re-ran)")
    assert.is_true(total <= 2, total .. " sites created in all")
    assert.is_true(H.now() - t0 < 40)
  end)

  it("runs work again within a second of the database returning, even after a long outage", function()
    -- Found by the chaos harness: the workers back off up to 5 s while the database is away and
    -- slept out the back-off after it returned, which cost most of the 10 s in which the
    -- throughput must be back. The keeper wakes them when it reconnects.
    pg_ctl("-m fast stop")
    H.sleep(8) -- the back-off doubles to its longest wait (250 ms … 4 s, 5 s)
    pg_ctl("start") -- returns once the server accepts connections
    local t0 = H.now()
    local pid = start(host, "test_quick")
    wait_sql(dir, dbname, "SELECT last_status FROM processes WHERE pid = '" .. pid .. "'", "completed", 10)
    local took = H.now() - t0
    assert.is_true(took < 1.5, string.format("the process completed %.1f s after the database returned", took))
  end)
end)

describe("the engine's limits", function()
  local dir, dbname, uri

  setup(function()
    dir = H.pg_dir()
    dbname, uri = H.new_database()
    H.migrate(uri)
  end)

  it("fails a step whose state is over the limit, and the process stays readable", function()
    local host = H.start_host({ database = uri, products = products,
      args = { "--workers", "1", "--max-state-bytes", "1048576" } })
    local pid = start(host, "test_big_state")
    wait_sql(dir, dbname, "SELECT last_status FROM processes WHERE pid = '" .. pid .. "'", "failed", 20)
    local status, text, _, json = host:request("GET", "/api/processes/" .. pid)
    assert.are.equal(200, status, text)
    assert.matches("step 'Make a big state' returned a state of %d+ bytes, more than the limit of 1048576 "
      .. "bytes %(ORCH_MAX_STATE_BYTES%)", json.failed_reason)
    local failed
    for _, s in ipairs(json.steps) do
      if s.status == "failed" then
        failed = s
      end
    end
    assert.are.equal("StateTooLarge", failed.state.class)
    assert.is_true(#text < 100000)
    host:stop()
  end)

  it("stops within the shutdown deadline with a worker stuck in a step", function()
    local host = H.start_host({ database = uri, products = products,
      args = { "--workers", "1", "--shutdown-timeout-s", "2" } })
    local pid = start(host, "test_stuck_step")
    wait_sql(dir, dbname, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
      .. " AND query LIKE 'SELECT pg_sleep(60)%'", "1", 20)
    local t0 = H.now()
    H.proc.kill(host.pid, "TERM")
    local how, code = H.proc.wait(host.pid)
    local took = H.now() - t0
    host.pid = nil
    local log = host:log()
    H.assert_clean_log(log)
    assert.are.equal("exited", how)
    assert.are.equal(1, code, log)
    assert.is_true(took < 6, "SIGTERM took " .. took .. " s")
    assert.matches("not finished after 2 s", log)
    -- The lease went back and nothing of the stuck step was written.
    assert.are.equal("1|running", H.psql(dir, dbname, "SELECT count(*) || '|' || min(p.last_status)"
      .. " FROM orch_work_queue q JOIN processes p USING (pid) WHERE q.lease_owner IS NULL"
      .. " AND pid = '" .. pid .. "'"))
    assert.are.equal("0", H.psql(dir, dbname, "SELECT count(*) FROM process_steps WHERE name = 'Hang'"))
    H.psql(dir, dbname, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
      .. " WHERE query LIKE 'SELECT pg_sleep(60)%'")
  end)
end)
