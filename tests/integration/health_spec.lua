-- Health follows the database: 500 while PostgreSQL is stopped, 200 again
-- when it is back, without restarting the host. Uses a cluster of its own.
local H = require("harness")

describe("health", function()
  local dir, host
  local pgbin

  local function pg_ctl(action)
    local as_pg = io.popen("id -u"):read("l") == "0" and "runuser -u postgres -- " or ""
    local cmd = string.format("%s%s/pg_ctl -D %s/data -l %s/server.log -w -o %s %s >/dev/null 2>&1",
      as_pg, pgbin, dir, dir, H.shell_quote("-k " .. dir .. " -c listen_addresses='' -c fsync=off"), action)
    assert(os.execute(cmd), "pg_ctl " .. action .. " failed")
  end

  setup(function()
    pgbin = io.popen("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1"):read("l")
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute(H.shell_quote(H.source .. "/tests/support/testpg") .. " new " .. H.shell_quote(dir)))
    local _, uri = H.new_database(dir)
    H.migrate(uri)
    host = H.start_host({ database = uri })
  end)

  teardown(function()
    if host then
      host:stop()
    end
    pcall(pg_ctl, "-m immediate stop")
    os.execute("rm -rf " .. H.shell_quote(dir))
  end)

  it("is 200, then 500 while the database is down, then 200 again", function()
    local status = host:request("GET", "/api/health/")
    assert.are.equal(200, status)
    pg_ctl("-m fast stop")
    local _, json
    status, _, _, json = host:request("GET", "/api/health/")
    assert.are.equal(500, status)
    assert.are.equal(500, json.status)
    assert.matches("Database unavailable", json.detail)
    -- Still serving other routes while the database is away.
    status = host:request("GET", "/api/nope")
    assert.are.equal(404, status)
    pg_ctl("start")
    status = host:request("GET", "/api/health/")
    assert.are.equal(200, status)
  end)
end)
