-- Durability: two hosts share one database. One is killed with SIGKILL mid-run
-- (and later restarted), or stopped with SIGSTOP past its lease and continued:
-- every process completes, no step has two success rows, none is left running,
-- and the take-over happens within the lease time. Also: concurrent identical
-- resumes and callbacks cause exactly one transition.
local H = require("harness")

local LEASE = 3

local function count_rows(dir, name, sql)
  return tonumber(H.psql(dir, name, sql))
end

-- Run N copies of a curl request at once; returns the list of HTTP status codes.
local function concurrent(n, method, url, body)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write("for i in $(seq " .. n .. "); do curl -s -o /dev/null -w '%{http_code}\\n' -X " .. method
    .. " -H 'content-type: application/json' --data " .. H.shell_quote(body) .. " " .. H.shell_quote(url)
    .. " & done; wait\n")
  f:close()
  local p = io.popen("sh " .. script)
  local codes = {}
  for line in p:lines() do
    codes[#codes + 1] = tonumber(line)
  end
  p:close()
  os.remove(script)
  return codes
end

local function tally(codes)
  local t = {}
  for _, c in ipairs(codes) do
    t[c] = (t[c] or 0) + 1
  end
  return t
end

describe("durability", function()
  local dir, name, uri
  local hosts = {}

  local function start_host()
    return H.start_host({ database = uri, products = H.source .. "/tests/fixtures/engine_products",
      env = { ORCH_LEASE_SECONDS = tostring(LEASE) }, args = { "--workers", "2" } })
  end

  setup(function()
    dir = H.pg_dir()
    name, uri = H.new_database()
    H.migrate(uri)
    hosts.a = start_host()
    hosts.b = start_host()
  end)

  teardown(function()
    for _, h in pairs(hosts) do
      if h.pid then
        h:kill()
      end
    end
  end)

  local function no_duplicate_success_rows()
    assert.are.equal(0, count_rows(dir, name, [[
      SELECT count(*) FROM (SELECT pid, name FROM process_steps WHERE status IN ('success', 'complete')
                            GROUP BY pid, name HAVING count(*) > 1) d]]))
  end

  local function wait_all_done(pids, timeout)
    local deadline = H.now() + timeout
    local list = "'" .. table.concat(pids, "','") .. "'"
    while H.now() < deadline do
      local left = count_rows(dir, name, "SELECT count(*) FROM processes WHERE pid IN (" .. list
        .. ") AND last_status <> 'completed'")
      if left == 0 then
        return H.now()
      end
      H.sleep(0.1)
    end
    error("processes still not completed after " .. timeout .. " s")
  end

  it("survives SIGKILL of one of two hosts mid-run", function()
    local pids = {}
    for i = 1, 200 do
      local host = i % 2 == 0 and hosts.a or hosts.b
      local status, _, _, json = host:request("POST", "/api/processes/test_slow_ten_steps", "[{}]")
      assert.are.equal(201, status)
      pids[#pids + 1] = json.id
    end
    -- Let both hosts work, then kill A while it holds leases.
    local held = 0
    for _ = 1, 100 do
      held = count_rows(dir, name, "SELECT count(*) FROM orch_work_queue WHERE lease_owner IS NOT NULL "
        .. "AND lease_expires > now()")
      if held > 0 then
        break
      end
      H.sleep(0.05)
    end
    assert.is_true(held > 0, "no leases were taken")
    H.sleep(0.5)
    hosts.a:kill()
    local killed_at = H.now()
    local done_at = wait_all_done(pids, 120)
    -- Work A held was taken over once its lease ran out: everything finished in
    -- lease time plus the time B needs to run the rest.
    assert.is_true(done_at - killed_at < 120)
    no_duplicate_success_rows()
    assert.are.equal(0, count_rows(dir, name, "SELECT count(*) FROM processes WHERE last_status = 'running'"))
    assert.are.equal(0, count_rows(dir, name, "SELECT count(*) FROM orch_work_queue"))
    -- Every process has exactly 12 rows: Start, 10 steps, Done.
    assert.are.equal(0, count_rows(dir, name, [[SELECT count(*) FROM (SELECT pid FROM process_steps
      GROUP BY pid HAVING count(*) <> 12) bad]]))
    -- The killed host comes back and works normally.
    hosts.a = start_host()
    local status, _, _, json = hosts.a:request("POST", "/api/processes/test_ten_steps", "[{}]")
    assert.are.equal(201, status)
    wait_all_done({ json.id }, 30)
  end)

  it("takes over from a host stopped past its lease; the stopped host cannot commit", function()
    local pids = {}
    for _ = 1, 40 do
      local _, _, _, json = hosts.a:request("POST", "/api/processes/test_slow_ten_steps", "[{}]")
      pids[#pids + 1] = json.id
    end
    H.sleep(0.3)
    H.proc.kill(hosts.a.pid, "STOP")
    local stopped_at = H.now()
    -- B finishes everything after A's leases expire.
    local done_at = wait_all_done(pids, 60)
    H.proc.kill(hosts.a.pid, "CONT")
    H.sleep(1.0)
    no_duplicate_success_rows()
    assert.is_true(done_at - stopped_at < LEASE + 30)
    assert.are.equal(0, count_rows(dir, name, "SELECT count(*) FROM processes WHERE last_status = 'running'"))
  end)

  it("turns 50 concurrent identical retries into exactly one transition", function()
    local _, _, _, json = hosts.b:request("POST", "/api/processes/test_fails", "[{}]")
    local pid = json.id
    for _ = 1, 100 do
      if H.psql(dir, name, "SELECT last_status FROM processes WHERE pid = '" .. pid .. "'") == "failed" then
        break
      end
      H.sleep(0.05)
    end
    local codes = tally(concurrent(50, "PUT", hosts.b.base .. "/api/processes/" .. pid .. "/resume", "{}"))
    assert.are.equal(1, codes[204], "exactly one resume succeeds")
    assert.are.equal(49, codes[409], "the others see the new status")
    wait_all_done({ pid }, 30)
    no_duplicate_success_rows()
  end)

  it("turns 50 concurrent identical callbacks into exactly one transition", function()
    local _, _, _, json = hosts.b:request("POST", "/api/processes/test_callback", "[{}]")
    local pid = json.id
    local route
    for _ = 1, 100 do
      local _, _, _, d = hosts.b:request("GET", "/api/processes/" .. pid)
      if d.last_status == "awaiting_callback" then
        -- the API masks the token: read it from the log, as the external system got it
        route = H.psql(dir, name, "SELECT state->>'route_seen' FROM process_steps WHERE pid = '" .. pid
          .. "' AND state ? 'route_seen' ORDER BY completed_at DESC LIMIT 1")
        break
      end
      H.sleep(0.05)
    end
    assert.is_string(route)
    local codes = tally(concurrent(50, "POST", hosts.b.base .. route, '{"ok": true}'))
    assert.are.equal(1, codes[200], "exactly one callback is taken")
    assert.are.equal(49, codes[409])
    wait_all_done({ pid }, 30)
    assert.are.equal(1, count_rows(dir, name, "SELECT count(*) FROM process_steps WHERE pid = '" .. pid
      .. "' AND name = 'External job' AND status = 'success'"))
  end)
end)
