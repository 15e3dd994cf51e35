-- What a browser on another site or an anonymous client must not do (issue 13):
-- origins come from an allow-list (CORS, writes, WebSocket upgrades), JSON routes
-- take JSON only, and no answer or log line carries a callback token or a server path.
local H = require("harness")
local ws = require("wsclient")

describe("HTTP hygiene", function()
  local host, dbname

  setup(function()
    local name, uri = H.new_database()
    dbname = name
    H.migrate(uri)
    host = H.start_host({ database = uri, products = H.source .. "/tests/fixtures/engine_products",
      args = { "--workers", "2" }, env = { ORCH_UI_ORIGIN = "http://ui.example:3000" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  local function self_origin()
    return "http://127.0.0.1:" .. host.port
  end

  describe("CORS", function()
    it("allows no foreign origin by default, only the same one and the UI's", function()
      local _, _, headers = host:request("GET", "/api/health", nil, { origin = "http://evil.example" })
      assert.is_nil(headers["access-control-allow-origin"])
      _, _, headers = host:request("GET", "/api/health", nil, { origin = self_origin() })
      assert.are.equal(self_origin(), headers["access-control-allow-origin"])
      _, _, headers = host:request("GET", "/api/health", nil, { origin = "http://ui.example:3000" })
      assert.are.equal("http://ui.example:3000", headers["access-control-allow-origin"])
    end)

    it("approves preflights for allowed origins only", function()
      local status, _, headers = host:request("OPTIONS", "/api/processes/test_ten_steps", nil,
        { origin = "http://evil.example", ["access-control-request-method"] = "POST" })
      assert.are.equal(400, status)
      assert.is_nil(headers["access-control-allow-methods"])
      status, _, headers = host:request("OPTIONS", "/api/processes/test_ten_steps", nil,
        { origin = "http://ui.example:3000", ["access-control-request-method"] = "POST" })
      assert.are.equal(200, status)
      assert.matches("POST", headers["access-control-allow-methods"])
    end)

    it("refuses writes from a foreign origin with 403 (no process starts)", function()
      local status, _, _, json = host:request("PUT", "/api/settings/status", { global_lock = true },
        { origin = "http://evil.example" })
      assert.are.equal(403, status)
      assert.are.equal(403, json.status)
      local _, _, _, now = host:request("GET", "/api/settings/status")
      assert.is_false(now.global_lock)
    end)

    it("refuses WebSocket upgrades from a foreign origin", function()
      local c, status = ws.handshake(host.port, { headers = { Origin = "http://evil.example" } })
      assert.are.equal(403, status)
      if c then
        c:close()
      end
      c, status = ws.handshake(host.port, { headers = { Origin = "http://ui.example:3000" } })
      assert.are.equal(101, status)
      c:close()
      c, status = ws.handshake(host.port) -- no Origin: not a browser
      assert.are.equal(101, status)
      c:close()
    end)
  end)

  describe("content type", function()
    it("answers a text/plain body on a JSON route with 415 and starts nothing", function()
      local before = H.psql(H.pg_dir(), dbname, "SELECT count(*) FROM processes")
      for _, ct in ipairs({ "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x" }) do
        local status, _, _, json = host:request("POST", "/api/processes/test_ten_steps", "[{}]",
          { ["content-type"] = ct })
        assert.are.equal(415, status)
        assert.are.equal(415, json.status)
        assert.are.equal("Unsupported Media Type", json.title)
      end
      assert.are.equal(before, H.psql(H.pg_dir(), dbname, "SELECT count(*) FROM processes"))
    end)

    it("takes application/json with parameters", function()
      local status = host:request("POST", "/api/processes/test_ten_steps", "[{}]",
        { ["content-type"] = "application/json; charset=utf-8" })
      assert.are.equal(201, status)
    end)
  end)

  describe("leaks", function()
    it("shows no callback token in REST, GraphQL or the access log", function()
      local _, _, _, started = host:request("POST", "/api/processes/test_callback", "[{}]")
      local pid = started.id
      local _, text = host:wait_status(pid, { awaiting_callback = true })
      local route = H.psql(H.pg_dir(), dbname, "SELECT state->>'route_seen' FROM process_steps WHERE pid = '"
        .. pid .. "' AND state ? 'route_seen' ORDER BY completed_at DESC LIMIT 1")
      local token = route:match("/callback/([^/]+)$")
      assert.is_true(#token >= 32)
      assert.is_nil(text:find(token, 1, true))
      assert.is_nil(text:find("__callback", 1, true))
      local _, gtext, _, gjson = host:request("POST", "/api/graphql", {
        query = "{ processes(first: 100) { page { processId currentState steps { state stateDelta } } } }",
      })
      assert.is_nil(gjson.errors)
      local seen = false
      for _, p in ipairs(gjson.data.processes.page) do
        seen = seen or p.processId == pid
      end
      assert.is_true(seen)
      assert.is_nil(gtext:find(token, 1, true))
      assert.is_nil(gtext:find("__callback", 1, true))
      local status = host:request("POST", route .. "/progress", '"half way"')
      assert.are.equal(200, status)
      status = host:request("POST", route, { ok = true })
      assert.are.equal(200, status)
      local d, dtext = host:wait_status(pid, { completed = true })
      assert.is_true(d.current_state.validated)
      assert.is_nil(dtext:find(token, 1, true))
      -- the redacted answer keeps the REST wire format: epoch-second timestamps
      assert.is_number(d.started_at)
      assert.is_number(d.last_modified_at)
      for i, s in ipairs(d.steps) do
        assert.is_number(s.started, "steps[" .. i .. "].started")
      end
      local log = host:log()
      assert.matches("/callback/%*%*%*", log)
      assert.is_nil(log:find(token, 1, true))
    end)

    it("shows no server path in the generation", function()
      local status, text, _, json = host:request("GET", "/api/settings/generation")
      assert.are.equal(200, status)
      assert.is_nil(text:find(H.source, 1, true))
      local folders = {}
      for _, f in ipairs(json.files) do
        assert.are.equal(nil, f.path:find("^/"))
        folders[f.folder] = true
      end
      assert.is_true(folders.lua and folders.products)
    end)
  end)
end)
