-- Resource limits a hostile or merely heavy client cannot push the host past
-- (docs/input-limits.md): health stays responsive while slow requests hold every Lua lane.
local H = require("harness")
local socket = require("socket")
local ws = require("wsclient")

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- A policy that makes `GET /api/processes/?slow=1` a heavy request: a database statement
-- that takes most of the request's time budget.
local SLOW_POLICY = [[
return function(ctx)
  if ctx.action == "processes.read" and ctx.query.slow then
    orch.db.query("SELECT pg_sleep(2.5)")
  end
end
]]

-- Send a request on a connection of its own without waiting for the answer.
local function send_only(host, path)
  local sock = socket.tcp()
  sock:settimeout(10)
  assert(sock:connect("127.0.0.1", host.port))
  assert(sock:send("GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
  return sock
end

-- Send `text` as is and read until the server closes (or 5 s pass): status, head, body.
local function raw(host, text)
  local sock = socket.tcp()
  sock:settimeout(5)
  assert(sock:connect("127.0.0.1", host.port))
  sock:send(text)
  local data, _, partial = sock:receive("*a")
  sock:close()
  local resp = data or partial or ""
  local head, body = resp:match("^(.-)\r\n\r\n(.*)$")
  return tonumber(resp:match("^HTTP/1%.1 (%d+)")), (head or resp):lower(), body
end

-- Read a whole answer (the server closes); returns the status.
local function finish(sock)
  local text = sock:receive("*a")
  sock:close()
  return tonumber((text or ""):match("^HTTP/1%.1 (%d+)"))
end

describe("resource limits", function()
  local host, products

  setup(function()
    products = os.tmpname()
    os.remove(products)
    assert(os.execute("cp -r " .. H.shell_quote(H.source .. "/tests/fixtures/engine_products") .. " "
      .. H.shell_quote(products)))
    write(products .. "/policy.lua", SLOW_POLICY)
    local _, uri = H.new_database()
    H.migrate(uri)
    host = H.start_host({ database = uri, products = products,
      args = { "--workers", "0", "--http-threads", "2", "--lua-timeout-ms", "4000", "--http-timeout-s", "3" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
    os.execute("rm -rf " .. H.shell_quote(products))
  end)

  describe("the health lane", function()
    it("answers /api/health/ at once while slow requests hold every Lua lane", function()
      assert.are.equal(200, (host:request("GET", "/api/health/")))
      -- Twice as many slow requests as lanes: two run, two wait for a lane.
      local slow = {}
      local t0 = socket.gettime()
      for i = 1, 4 do
        slow[i] = send_only(host, "/api/processes/?slow=1")
      end
      socket.sleep(0.3) -- the slow ones have started
      local worst = 0
      for _ = 1, 5 do
        local t = socket.gettime()
        local status, body = host:request("GET", "/api/health/")
        worst = math.max(worst, socket.gettime() - t)
        assert.are.equal(200, status)
        assert.are.equal('"OK"', body)
      end
      -- The slow requests are still running: the health answers did not wait for them.
      assert.is_true(socket.gettime() - t0 < 2.0, "health waited for the slow requests")
      assert.is_true(worst < 0.5, string.format("health took %.3f s under load", worst))
      -- Every slow request is answered; the waiting ones ran after a lane was free.
      for i = 1, 4 do
        assert.are.equal(200, finish(slow[i]))
      end
      local elapsed = socket.gettime() - t0
      assert.is_true(elapsed >= 4.9, string.format("4 slow requests on 2 lanes took only %.1f s", elapsed))
      -- ... and no lane stayed idle while one waited (two waves of 2.5 s, not three).
      assert.is_true(elapsed < 7.0, string.format("4 slow requests on 2 lanes took %.1f s", elapsed))
      -- HEAD and the health route's other spelling are answered the same way.
      local status, body = host:request("HEAD", "/api/health")
      assert.are.equal(200, status)
      assert.are.equal("", body)
    end)
  end)
  describe("GraphQL", function()
    it("refuses 500 aliased connections up front with a GraphQL error", function()
      local parts = {}
      for i = 1, 500 do
        parts[i] = "s" .. i .. ": subscriptions(first: 100) { page { subscriptionId description } }"
      end
      local t = socket.gettime()
      local status, text, _, json = host:request("POST", "/api/graphql",
        { query = "{ " .. table.concat(parts, " ") .. " }" })
      local took = socket.gettime() - t
      assert.are.equal(200, status, text)
      assert.is_nil(json.data)
      assert.are.equal(1, #json.errors)
      assert.matches("more than 20 root fields", json.errors[1].message)
      assert.is_true(took < 1.0, string.format("the refusal took %.2f s", took))
      assert.is_true(#text < 1000)
      -- 20 connections are answered
      status, text, _, json = host:request("POST", "/api/graphql",
        { query = "{ " .. table.concat(parts, " ", 1, 20) .. " }" })
      assert.are.equal(200, status)
      assert.is_nil(json.errors, text)
      assert.is_table(json.data.s20.page)
    end)
  end)
  describe("the header deadline (ORCH_HTTP_TIMEOUT_S = 3)", function()
    -- Sends `head`, then one more header byte every 0.2 s (the idle timeout never fires);
    -- returns the seconds until the server closed the connection, or nil after `limit` s.
    local function trickle(head, limit)
      local sock = socket.tcp()
      sock:settimeout(0.2)
      assert(sock:connect("127.0.0.1", host.port))
      local t0 = socket.gettime()
      assert(sock:send(head))
      while socket.gettime() - t0 < limit do
        local _, err = sock:receive(1) -- waits 0.2 s
        if err == "closed" or not sock:send("a") then
          sock:close()
          return socket.gettime() - t0
        end
      end
      sock:close()
    end

    it("cuts a connection that trickles its request line or headers", function()
      local took = trickle("GET /api/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", 8)
      assert.is_not_nil(took, "still open after 8 s")
      assert.is_true(took >= 2.5 and took < 4.5, string.format("cut after %.1f s", took))
      took = trickle("GET /api/health/", 8)
      assert.is_not_nil(took, "still open after 8 s")
      assert.is_true(took < 4.5, string.format("cut after %.1f s", took))
      -- the host serves on
      assert.are.equal(200, (host:request("GET", "/api/health/")))
    end)

    it("gives each request of a keep-alive connection the full time, and leaves WebSockets open", function()
      local sock = socket.tcp()
      sock:settimeout(5)
      assert(sock:connect("127.0.0.1", host.port))
      for _ = 1, 3 do
        assert(sock:send("GET /api/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
        local line = sock:receive("*l")
        assert.matches("^HTTP/1%.1 200", line)
        repeat
          line = sock:receive("*l")
        until line == ""
        assert.are.equal('"OK"', sock:receive(4))
        socket.sleep(2) -- 6 s in all on one connection, never 3 s within one request
      end
      sock:close()
      local c, status = ws.handshake(host.port)
      assert.are.equal(101, status)
      socket.sleep(4.5)
      c:send(9, "still there?") -- ping
      local op, why = c:frame(3)
      assert.are.equal(10, op, "no pong: " .. tostring(why)) -- the WebSocket is still open
      c:close()
    end)
  end)
  describe("what libmicrohttpd would answer itself", function()
    it("answers a Host-less HTTP/1.1 request and an unknown transfer coding with problem details", function()
      local status, head, body = raw(host, "GET /api/health/ HTTP/1.1\r\n\r\n")
      assert.are.equal(400, status)
      assert.matches("content%-type: application/json", head)
      assert.are.same({ detail = "Bad Request: an HTTP/1.1 request needs a Host header", status = 400,
        title = "Bad Request" }, require("cjson").decode(body))
      -- it waited for a body it could not frame until the idle timeout before
      local t = socket.gettime()
      status, head, body = raw(host, "POST /api/graphql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
        .. "Content-Type: application/json\r\n\r\n")
      assert.are.equal(400, status)
      assert.matches("connection: close", head)
      assert.matches("only the chunked Transfer%-Encoding", require("cjson").decode(body).detail)
      assert.is_true(socket.gettime() - t < 2)
    end)

    it("keeps the status of the answers it cannot replace (docs/input-limits.md)", function()
      local cases = {
        { 431, "GET /api/health/ HTTP/1.1\r\nHost: x\r\nX-Big: " .. string.rep("a", 200000) .. "\r\n\r\n" },
        { 414, "GET /api/health/?" .. string.rep("a", 200000) .. " HTTP/1.1\r\nHost: x\r\n\r\n" },
        { 505, "GET /api/health/ HTTP/2.5\r\nHost: x\r\n\r\n" },
        { 400, "GET /api/health/ HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n" },
        { 400, "POST /api/graphql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
          .. "Content-Type: application/json\r\n\r\nzz\r\nabc\r\n0\r\n\r\n" },
      }
      for _, c in ipairs(cases) do
        local status = raw(host, c[2])
        assert.are.equal(c[1], status, c[2]:sub(1, 60))
      end
      assert.are.equal(200, (host:request("GET", "/api/health/")))
    end)
  end)
  -- Last: stops the host.
  it("stops cleanly with requests on every lane and more waiting: those answer 503", function()
    local slow = {}
    for i = 1, 4 do
      slow[i] = send_only(host, "/api/processes/?slow=1")
    end
    socket.sleep(0.5)
    host:stop() -- SIGTERM; checks a clean exit without sanitizer reports
    local statuses = {}
    for i = 1, 4 do
      statuses[#statuses + 1] = finish(slow[i])
    end
    table.sort(statuses)
    assert.are.same({ 200, 200, 503, 503 }, statuses)
  end)
end)
