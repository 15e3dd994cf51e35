-- Health follows the database: 503 (with Retry-After) while PostgreSQL is stopped, 200
-- again when it is back, without restarting the host; every route that needs the
-- database answers 503 meanwhile, not 500. Uses a cluster of its own.
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

  local function assert_unavailable(method, path)
    local status, text, headers, json = host:request(method, path)
    assert.are.equal(503, status, path .. ": " .. text)
    assert.are.equal(503, json.status)
    assert.are.equal("Service Unavailable", json.title)
    assert.is_string(json.detail)
    assert.matches("^%d+$", headers["retry-after"] or "", path .. " has no Retry-After")
    return json
  end

  it("is 200, then 503 with Retry-After while the database is down, then 200 again", function()
    local status = host:request("GET", "/api/health/")
    assert.are.equal(200, status)
    assert.are.equal(200, (host:request("GET", "/api/processes/")))
    for _, mode in ipairs({ "fast", "immediate" }) do
      pg_ctl("-m " .. mode .. " stop")
      assert.matches("Database unavailable", assert_unavailable("GET", "/api/health/").detail)
      -- Routes that need the database: 503 too (they answered 500 before).
      assert.matches("database is unavailable", assert_unavailable("GET", "/api/processes/").detail)
      assert_unavailable("GET", "/api/settings/status")
      -- Still serving other routes while the database is away.
      status = host:request("GET", "/api/nope")
      assert.are.equal(404, status)
      pg_ctl("start")
      -- Every thread's connection of before the restart is replaced, not failed once more.
      for _ = 1, 8 do
        local text
        status, text = host:request("GET", "/api/health/")
        assert.are.equal(200, status, text)
      end
      assert.are.equal(200, (host:request("GET", "/api/processes/")))
    end
    assert.is_nil(host:log():find("Internal server error", 1, true))
  end)
end)
