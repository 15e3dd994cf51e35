-- The UI's WebSocket /api/ws/events: the RFC 6455 handshake, the keep-alive,
-- invalidateCache messages on process, engine and subscription changes, their
-- delivery to a second host on the same database, and malformed input.
local H = require("harness")
local ws = require("wsclient")

describe("WebSocket events", function()
  local host, other, uri

  setup(function()
    local _
    _, uri = H.new_database()
    H.migrate(uri)
    host = H.start_host({ database = uri, products = H.source .. "/tests/fixtures/engine_products",
      args = { "--workers", "2" } })
  end)

  teardown(function()
    if other then
      other:stop()
    end
    if host then
      host:stop()
    end
  end)

  local function open(h)
    local c, status = ws.handshake((h or host).port)
    assert.are.equal(101, status)
    return c
  end

  -- open, and wait until the host serves the socket (the upgrade's policy check and the
  -- hand-over to the WebSocket thread take a moment on a loaded machine)
  local function open_served(h)
    local c = open(h)
    c:send_text("__ping__")
    assert.are.equal("__pong__", c:text(10))
    return c
  end

  local function start(name, pages, h)
    local status, _, _, json = (h or host):request("POST", "/api/processes/" .. name, pages or { {} })
    assert.are.equal(201, status)
    return json.id
  end

  local function set_lock(h, locked)
    local status = h:request("PUT", "/api/settings/status", { global_lock = locked })
    assert.are.equal(200, status)
  end

  it("answers the handshake with the RFC's accept key and core's subprotocol", function()
    -- The example key of RFC 6455 section 1.3 and its answer.
    local c, status, headers = ws.handshake(host.port, { key = "dGhlIHNhbXBsZSBub25jZQ==" })
    assert.are.equal(101, status)
    assert.are.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", headers["sec-websocket-accept"])
    assert.are.equal("websocket", headers["upgrade"]:lower())
    assert.matches("[Uu]pgrade", headers["connection"])
    assert.is_nil(headers["sec-websocket-protocol"])
    c:close()
    -- With auth on, the UI offers the scheme and the token as two subprotocols.
    c, status, headers = ws.handshake(host.port, { path = "/api/ws/events/",
      headers = { ["Sec-WebSocket-Protocol"] = "base64.bearer.token, eyJhbGciOi.e30.sig" } })
    assert.are.equal(101, status)
    assert.are.equal("base64.bearer.token", headers["sec-websocket-protocol"])
    c:close()
  end)

  it("answers the UI's __ping__ with __pong__, pings with pongs, and reassembles fragments", function()
    local c = open()
    c:send_text("__ping__")
    assert.are.equal("__pong__", c:text(5))
    c:send(ws.OP.ping, "are you there")
    local op, payload = c:frame(5)
    assert.are.equal(ws.OP.pong, op)
    assert.are.equal("are you there", payload)
    -- A fragmented __ping__ with a ping frame in between (control frames may interleave).
    c:send(ws.OP.text, "__pi", { fin = false })
    c:send(ws.OP.ping, "x")
    c:send(ws.OP.cont, "ng__")
    op = c:frame(5)
    assert.are.equal(ws.OP.pong, op)
    assert.are.equal("__pong__", c:text(5))
    -- Other texts are ignored, the connection stays.
    c:send_text("hello")
    c:send_text("__ping__")
    assert.are.equal("__pong__", c:text(5))
    -- A close is answered with a close.
    c:send(ws.OP.close, string.pack(">I2", 1000))
    assert.are.equal(1000, c:close_code(5))
    c:close()
  end)

  it("invalidates the process lists, the process and the counts as a process runs, batched", function()
    local c = open()
    local pid = start("test_ten_steps")
    local seen = c:collect(10, function(s)
      return ws.has_all(s, { "processes/LIST", "processes/" .. pid, "processStatusCounts/-" })
    end)
    assert.is_true(ws.has_all(seen, { "processes/LIST", "processes/" .. pid, "processStatusCounts/-" }),
      table.concat(seen, " "))
    host:wait_status(pid, "completed")
    -- Twelve step commits, but events are deduplicated per window: far fewer detail messages.
    local more = c:collect(0.5)
    local details = 0
    for _, s in ipairs(seen) do
      details = details + (s == "processes/" .. pid and 1 or 0)
    end
    for _, s in ipairs(more) do
      details = details + (s == "processes/" .. pid and 1 or 0)
    end
    assert.is_true(details >= 1 and details < 12, "detail messages: " .. details)
    c:close()
  end)

  it("invalidates the process on abort and sends engineStatus when the engine pauses", function()
    local c = open()
    local pid = start("test_input")
    host:wait_status(pid, "suspended")
    c:collect(0.3) -- drain what the start and the steps caused
    assert.are.equal(204, (host:request("PUT", "/api/processes/" .. pid .. "/abort")))
    local seen = c:collect(5, function(s) return ws.has_all(s, { "processes/" .. pid, "processStatusCounts/-" }) end)
    assert.is_true(ws.has_all(seen, { "processes/LIST", "processes/" .. pid, "processStatusCounts/-" }),
      table.concat(seen, " "))
    set_lock(host, true)
    seen = c:collect(5, function(s) return ws.has_all(s, { "engineStatus/-" }) end)
    assert.is_true(ws.has_all(seen, { "engineStatus/-" }), table.concat(seen, " "))
    set_lock(host, false)
    seen = c:collect(5, function(s) return ws.has_all(s, { "engineStatus/-" }) end)
    assert.is_true(ws.has_all(seen, { "engineStatus/-" }), table.concat(seen, " "))
    c:close()
  end)

  it("invalidates the subscription of a process that ended, on set_in_sync and customer descriptions", function()
    local status, _, _, products = host:request("GET", "/api/products/")
    assert.are.equal(200, status)
    local product
    for _, p in ipairs(products) do
      if p.name == "widget S" then
        product = p.product_id
      end
    end
    assert.is_string(product)
    local pid = start("create_widget", { { product = product }, { widget_name = "ws", size = 2 } })
    local d = host:wait_status(pid, "completed")
    local sid = d.current_state.subscription_id
    -- A modify workflow links the subscription to its process; when it ends, the subscription is invalidated.
    local c = open()
    host:wait_status(start("modify_widget", { { subscription_id = sid }, { size = 3 } }), "completed")
    local seen = c:collect(5, function(s) return ws.has_all(s, { "subscriptions/" .. sid }) end)
    assert.is_true(ws.has_all(seen, { "subscriptions/LIST", "subscriptions/" .. sid }), table.concat(seen, " "))
    assert.are.equal(200, (host:request("PUT", "/api/subscriptions/" .. sid .. "/set_in_sync")))
    seen = c:collect(5, function(s) return ws.has_all(s, { "subscriptions/" .. sid }) end)
    assert.is_true(ws.has_all(seen, { "subscriptions/LIST", "subscriptions/" .. sid }), table.concat(seen, " "))
    -- A customer description is part of the subscription's page.
    assert.are.equal(204, (host:request("POST", "/api/subscription_customer_descriptions/",
      { customer_id = "c1", subscription_id = sid, description = "mine" })))
    seen = c:collect(5, function(s) return ws.has_all(s, { "subscriptions/" .. sid }) end)
    assert.is_true(ws.has_all(seen, { "subscriptions/LIST", "subscriptions/" .. sid }), table.concat(seen, " "))
    c:close()
  end)

  it("refuses bad handshakes with problem details", function()
    local function refused(opts)
      local c, status, headers = ws.handshake(host.port, opts)
      assert.is_nil(c)
      return status, headers
    end
    assert.are.equal(400, (refused({ headers = { ["Sec-WebSocket-Key"] = false } })))
    assert.are.equal(400, (refused({ key = "not base64 at all!!!!!!!" })))
    assert.are.equal(400, (refused({ key = "c2hvcnQ=" })))
    assert.are.equal(400, (refused({ headers = { Upgrade = false } })))
    assert.are.equal(400, (refused({ headers = { Connection = "keep-alive" } })))
    local status, headers = refused({ headers = { ["Sec-WebSocket-Version"] = "8" } })
    assert.are.equal(426, status)
    assert.are.equal("13", headers["sec-websocket-version"])
    status, headers = refused({ method = "POST" })
    assert.are.equal(405, status)
    assert.are.equal("GET", headers["allow"])
    local s2, _, _, json = host:request("GET", "/api/ws/events")
    assert.are.equal(400, s2)
    assert.are.equal("Expected a WebSocket upgrade request", json.detail)
  end)

  it("closes on malformed frames with the RFC's codes and keeps serving", function()
    local cases = {
      { "unmasked", ws.encode(ws.OP.text, "__ping__", { mask = false }), 1002 },
      { "reserved bits", ws.encode(ws.OP.text, "x", { rsv = 4 }), 1002 },
      { "unknown opcode", ws.encode(3, "x"), 1002 },
      { "binary", ws.encode(ws.OP.binary, "\0\1"), 1003 },
      { "invalid UTF-8", ws.encode(ws.OP.text, "\xff\xfe"), 1007 },
      { "too big", ws.encode(ws.OP.text, "", { length = 1 << 20 }), 1009 },
      { "continuation first", ws.encode(ws.OP.cont, "x"), 1002 },
      { "fragmented ping", ws.encode(ws.OP.ping, "x", { fin = false }), 1002 },
      { "huge length", ws.encode(ws.OP.text, "", { length = 1 << 62 }), 1009 },
    }
    for _, case in ipairs(cases) do
      local c = open()
      c:send_raw(case[2])
      assert.are.equal(case[3], c:close_code(5), case[1])
      c:close()
    end
    -- A fragmented message over the limit.
    local c = open()
    local chunk = string.rep("a", 40000)
    c:send(ws.OP.text, chunk, { fin = false })
    c:send(ws.OP.cont, chunk, { fin = false })
    assert.are.equal(1009, c:close_code(5))
    c:close()
    -- Peers that vanish mid-frame or right after the handshake.
    for _ = 1, 5 do
      c = open()
      c:send_raw(ws.encode(ws.OP.text, "__ping__"):sub(1, 5))
      c.sock:close()
      c = open()
      c.sock:close()
    end
    -- A raw garbage request on the path, then the host still works.
    local sock = require("socket").tcp()
    sock:settimeout(5)
    assert(sock:connect("127.0.0.1", host.port))
    sock:send("\0\1\2 garbage\r\n\r\n")
    sock:receive("*a")
    sock:close()
    c = open()
    c:send_text("__ping__")
    assert.are.equal("__pong__", c:text(5))
    c:close()
    assert.are.equal(200, (host:request("GET", "/api/health")))
  end)

  it("hands events caused on one host to the sockets of another host", function()
    other = H.start_host({ database = uri, products = H.source .. "/tests/fixtures/engine_products",
      args = { "--workers", "0" } })
    local on_b = open(other)
    on_b:send_text("__ping__")
    assert.are.equal("__pong__", on_b:text(5)) -- open before the events happen
    H.sleep(0.3) -- B's LISTEN is in place
    set_lock(host, true)
    local seen = on_b:collect(5, function(s) return ws.has_all(s, { "engineStatus/-" }) end)
    assert.is_true(ws.has_all(seen, { "engineStatus/-" }), table.concat(seen, " "))
    set_lock(host, false)
    local pid = start("test_ten_steps")
    seen = on_b:collect(10, function(s) return ws.has_all(s, { "processes/" .. pid, "processStatusCounts/-" }) end)
    assert.is_true(ws.has_all(seen, { "processes/LIST", "processes/" .. pid, "processStatusCounts/-" }),
      table.concat(seen, " "))
    -- The database drops every connection: the hosts reconnect and LISTEN again.
    local dbname = uri:match("^postgresql://postgres@/([^?]+)")
    H.psql(H.pg_dir(), "postgres", "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '"
      .. dbname .. "' AND pid <> pg_backend_pid()")
    local ok = false
    for _ = 1, 50 do -- the first request after the drop may meet a dead connection
      if host:request("PUT", "/api/settings/status", { global_lock = true }) == 200 then
        ok = true
        break
      end
      H.sleep(0.1)
    end
    assert.is_true(ok)
    H.sleep(1.2) -- B's events thread notices and listens again within about a second
    set_lock(host, false)
    seen = on_b:collect(5, function(s) return ws.has_all(s, { "engineStatus/-" }) end)
    assert.is_true(ws.has_all(seen, { "engineStatus/-" }), table.concat(seen, " "))
    -- And the other way round: B's API, A's socket.
    local on_a = open_served(host)
    on_a:collect(0.3)
    set_lock(other, true)
    seen = on_a:collect(5, function(s) return ws.has_all(s, { "engineStatus/-" }) end)
    assert.is_true(ws.has_all(seen, { "engineStatus/-" }), table.concat(seen, " "))
    set_lock(other, false)
    on_a:close()
    on_b:close()
    -- Stopping with a socket open is clean (the harness checks the exit and the sanitizer log).
    local idle = open_served(other)
    other:stop()
    other = nil
    assert.are.equal(1001, idle:close_code(5))
    idle:close()
  end)
end)
