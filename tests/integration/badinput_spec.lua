-- Bad input and resource limits (docs/input-limits.md): each case here answered a 500, hung,
-- or was accepted before it was fixed. Real host, real PostgreSQL, raw sockets where
-- the HTTP client would normalise the request.
local H = require("harness")
local socket = require("socket")
local cjson = require("cjson")

-- Send `text` as is; return status, headers (lower-case names), body. Reads until the
-- server closes or `timeout` seconds pass.
local function raw(host, text, timeout)
  local sock = socket.tcp()
  sock:settimeout(timeout or 5)
  assert(sock:connect("127.0.0.1", host.port))
  sock:send(text)
  local chunks = {}
  while true do
    local data, err, partial = sock:receive(8192)
    if data then
      chunks[#chunks + 1] = data
    else
      if partial and #partial > 0 then
        chunks[#chunks + 1] = partial
      end
      if err == "closed" or err == "timeout" then
        break
      end
    end
    local so_far = table.concat(chunks)
    local head, body = so_far:match("^(.-)\r\n\r\n(.*)$")
    if head then
      local len = tonumber(head:lower():match("content%-length:%s*(%d+)"))
      if len and #body >= len then
        break
      end
    end
  end
  sock:close()
  local resp = table.concat(chunks)
  local head, body = resp:match("^(.-)\r\n\r\n(.*)$")
  head = head or resp
  local status = tonumber(head:match("^HTTP/1%.%d (%d+)"))
  local headers = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
    headers[k:lower()] = v
  end
  return status, headers, body or ""
end

local function problem(status, body)
  local ok, json = pcall(cjson.decode, body)
  assert.is_true(ok, "not JSON: " .. tostring(body):sub(1, 200))
  assert.are.equal(status, json.status)
  assert.is_string(json.title)
  assert.is_not_nil(json.detail)
  return json
end

describe("bad input", function()
  local host, db

  setup(function()
    local _, uri = H.new_database()
    db = uri
    H.migrate(db)
    host = H.start_host({ database = db, args = { "--ws-max-connections", "2" },
      env = { ORCH_RELOAD_MIN_INTERVAL_MS = "60000" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  local function req(method, path, body, headers)
    return host:request(method, path, body, headers)
  end

  describe("invalid UTF-8 and NUL", function()
    local some = "6a0e2d0a-0b4e-4f50-9a43-6c1d0bf0e4f1"
    for _, path in ipairs({ "/api/processes/" .. some, "/api/workflows/" .. some, "/api/products/" .. some,
      "/api/product_blocks/" .. some, "/api/resource_types/" .. some }) do
      it("refuses an invalid UTF-8 body of PATCH " .. path:match("^/api/([^/]+)"), function()
        local status, body = req("PATCH", path, '{"note": "\255\254\253", "description": "\255"}')
        assert.are.equal(400, status)
        assert.matches("UTF%-8", problem(400, body).detail)
      end)
    end

    it("refuses invalid UTF-8 in a path segment", function()
      local status, body = req("POST", "/api/processes/%ff%fe%fd", "[]")
      assert.are.equal(400, status)
      problem(400, body)
    end)

    it("refuses invalid UTF-8 in a filter", function()
      local status, body = req("GET", "/api/processes?filter=workflowName,%ff%fe")
      assert.are.equal(400, status)
      problem(400, body)
    end)

    it("does not let %00 cut the path short", function()
      local status, body = req("GET", "/api/health%00/x")
      assert.are.equal(400, status)
      problem(400, body)
      status = req("GET", "/api/processes?filter=workflowName,a%00b")
      assert.are.equal(400, status)
    end)

    it("refuses a raw NUL byte in a body", function()
      local status, body = req("PUT", "/api/settings/status", '{"global_lock": false}\0')
      assert.are.equal(400, status)
      problem(400, body)
    end)
  end)

  describe("list parameters", function()
    it("answers a date filter that is no date with 400", function()
      local status, body = req("GET", "/api/processes?filter=startedAt,notadate")
      assert.are.equal(400, status)
      problem(400, body)
    end)

    it("answers a LIKE escape at the end of a filter with 400", function()
      local status, body = req("GET", "/api/processes?filter=workflowName,%5C")
      assert.is_true(status == 200 or status == 400, "status " .. tostring(status))
      if status == 400 then
        problem(400, body)
      end
    end)

    it("answers more than 64 filter alternatives with 400", function()
      local alts = {}
      for i = 1, 70 do
        alts[i] = "w" .. i
      end
      local status, body = req("GET", "/api/processes?filter=workflowName," .. table.concat(alts, "-"))
      assert.are.equal(400, status)
      problem(400, body)
      local rep = {}
      for i = 1, 200 do
        rep[i] = "workflowName,x"
      end
      status, body = req("GET", "/api/processes?filter=" .. table.concat(rep, ","))
      assert.are.equal(400, status)
      problem(400, body)
    end)

    it("answers a range past the integers with 400", function()
      local status, body = req("GET", "/api/processes?range=0,99999999999999999999")
      assert.are.equal(400, status)
      problem(400, body)
    end)
  end)

  it("answers a number JSON cannot hold (1e999) with 400", function()
    local status, body = req("POST", "/api/processes/task_validate_products", '[{"value": 1e999}]')
    assert.are.equal(400, status)
    problem(400, body)
  end)

  describe("HTTP edge cases", function()
    it("answers HEAD on a GET route as GET without a body", function()
      local status, headers, body = raw(host, "HEAD /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.are.equal(200, status)
      assert.are.equal("", body)
      assert.is_not_nil(headers["content-type"])
    end)

    it("refuses Content-Length together with Transfer-Encoding", function()
      local status, headers, body = raw(host, "POST /api/user/error HTTP/1.1\r\nHost: x\r\n"
        .. "Content-Length: 5\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        .. "2\r\n{}\r\n0\r\n\r\n")
      assert.are.equal(400, status)
      assert.are.equal("close", (headers["connection"] or ""):lower())
      problem(400, body)
    end)

    it("refuses two Content-Length headers", function()
      local status, _, body = raw(host, "POST /api/user/error HTTP/1.1\r\nHost: x\r\n"
        .. "Content-Length: 2\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
      assert.are.equal(400, status)
      problem(400, body)
    end)

    it("answers 500 query parameters with a 431 problem detail, at once", function()
      local parts = {}
      for i = 1, 500 do
        parts[i] = "p" .. i .. "=" .. i
      end
      local t0 = socket.gettime()
      local status, _, body = raw(host, "GET /api/processes?" .. table.concat(parts, "&")
        .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.is_true(socket.gettime() - t0 < 3, "took " .. (socket.gettime() - t0) .. " s")
      assert.are.equal(431, status)
      problem(431, body)
    end)
  end)

  describe("log injection", function()
    it("writes a forged line break in the path escaped", function()
      req("GET", "/api/nothing%0a2030-01-01T00:00:00.000Z%20ERROR%20forged:%20line")
      req("POST", "/api/user/log/someone", '{"message": "a\\nFORGED-LINE \\u0001 x"}')
      H.sleep(0.2)
      local log = host:log()
      for line in log:gmatch("[^\n]+") do
        assert.is_nil(line:match("^2030%-01%-01"), "forged line: " .. line)
        assert.is_nil(line:match("^FORGED%-LINE"), "forged line: " .. line)
        assert.is_nil(line:find("\1", 1, true), "raw control byte: " .. line)
      end
    end)
  end)

  describe("amplification", function()
    it("caps the words of a search query", function()
      local words = string.rep("a ", 3000)
      local t0 = socket.gettime()
      local status, body = req("POST", "/api/graphql",
        { query = '{ subscriptions(query: "' .. words .. '") { page { subscriptionId } } }' })
      assert.is_true(socket.gettime() - t0 < 3, "took " .. (socket.gettime() - t0) .. " s")
      assert.is_true(status == 200 or status == 400, "status " .. tostring(status))
      assert.matches("more than 64 words", body)
    end)

    it("caps the error list of a form page with 50,000 unknown keys", function()
      local keys = {}
      for i = 1, 50000 do
        keys[i] = '"k' .. i .. '":1'
      end
      local page = "[{" .. table.concat(keys, ",") .. "}]"
      local status, body = req("POST", "/api/processes/create_node", page)
      assert.are.equal(400, status, body:sub(1, 600) .. host:log():sub(-1500))
      -- no amplification: the answer is smaller than the question (it was 11.9 MB for 700 KB)
      assert.is_true(#body < #page, #body .. " bytes for a page of " .. #page)
      local json = cjson.decode(body)
      assert.are.equal("FormValidationError", json.type)
      assert.are.equal(100, #json.validation_errors)
    end)

    it("rate-limits reloads through the API", function()
      local first = req("POST", "/api/settings/reload")
      assert.are.equal(200, first)
      local status, body, headers = req("POST", "/api/settings/reload")
      assert.are.equal(429, status)
      problem(429, body)
      assert.is_truthy(tonumber(headers["retry-after"]))
    end)

    it("caps the WebSocket connections (ORCH_WS_MAX_CONNECTIONS)", function()
      local key = "dGhlIHNhbXBsZSBub25jZQ=="
      local upgrade = "GET /api/ws/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        .. "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " .. key .. "\r\n\r\n"
      local socks = {}
      for i = 1, 2 do
        local sock = socket.tcp()
        sock:settimeout(5)
        assert(sock:connect("127.0.0.1", host.port))
        sock:send(upgrade)
        local line = sock:receive("*l")
        assert.matches("101", line)
        socks[i] = sock
      end
      H.sleep(0.3)
      local status, _, body = raw(host, upgrade, 5)
      assert.are.equal(503, status)
      problem(503, body)
      for _, sock in ipairs(socks) do
        sock:close()
      end
    end)
  end)

  it("is still alive and healthy", function()
    local status, body = req("GET", "/api/health")
    assert.are.equal(200, status, body .. "\n" .. host:log():sub(-3000))
  end)
end)
