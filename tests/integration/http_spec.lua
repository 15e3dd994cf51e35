-- HTTP basics against the real binary: routing, problem details, limits, CORS, settings.
local H = require("harness")

describe("HTTP basics", function()
  local host, db

  setup(function()
    local _, uri = H.new_database()
    db = uri
    H.migrate(db)
    host = H.start_host({ database = db, args = { "--max-body", "4096" },
      env = { ORCH_UI_ORIGIN = "http://ui.example:3000" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  local function is_problem(status, json)
    assert.is_table(json)
    assert.are.equal(status, json.status)
    assert.is_string(json.title)
    assert.is_not_nil(json.detail)
  end

  -- Every case runs twice so that state leaking between requests shows.
  for round = 1, 2 do
    describe("round " .. round, function()
      it("answers health with and without the trailing slash", function()
        for _, path in ipairs({ "/api/health/", "/api/health" }) do
          local status, body, headers = host:request("GET", path)
          assert.are.equal(200, status)
          assert.are.equal('"OK"', body)
          assert.is_nil(headers["access-control-allow-origin"]) -- no Origin, no CORS
        end
      end)

      it("answers an unknown route with a 404 problem detail", function()
        local status, _, headers, json = host:request("GET", "/api/no-such-thing")
        assert.are.equal(404, status)
        is_problem(404, json)
        assert.are.equal("Not Found", json.title)
        assert.is_nil(headers["access-control-allow-origin"])
      end)

      it("answers a wrong method with 405 and Allow", function()
        local status, _, headers, json = host:request("DELETE", "/api/settings/status")
        assert.are.equal(405, status)
        is_problem(405, json)
        assert.matches("GET", headers["allow"])
        assert.matches("PUT", headers["allow"])
      end)

      it("answers malformed JSON with 400 and writes nothing", function()
        local status, _, _, json = host:request("PUT", "/api/settings/status", '{"global_lock": tru')
        assert.are.equal(400, status)
        is_problem(400, json)
        assert.matches("Malformed JSON", json.detail)
        local _, _, _, now = host:request("GET", "/api/settings/status")
        assert.is_false(now.global_lock)
      end)

      it("answers an oversized body with 413", function()
        local status, _, _, json = host:request("PUT", "/api/settings/status", string.rep("x", 5000))
        assert.are.equal(413, status)
        is_problem(413, json)
      end)

      it("answers a CORS preflight from the UI's origin", function()
        local status, _, headers = host:request("OPTIONS", "/api/settings/status", nil, {
          origin = "http://ui.example:3000",
          ["access-control-request-method"] = "PUT",
          ["access-control-request-headers"] = "content-type",
        })
        assert.is_true(status == 200 or status == 204)
        assert.are.equal("http://ui.example:3000", headers["access-control-allow-origin"])
        for _, m in ipairs({ "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" }) do
          assert.matches(m, headers["access-control-allow-methods"])
        end
        assert.matches("content%-type", headers["access-control-allow-headers"])
        assert.matches("authorization", headers["access-control-allow-headers"])
      end)

      it("reads and writes the engine lock", function()
        local status, _, _, json = host:request("GET", "/api/settings/status")
        assert.are.equal(200, status)
        assert.are.same({ global_lock = false, running_processes = 0, global_status = "RUNNING" }, json)
        status, _, _, json = host:request("PUT", "/api/settings/status", { global_lock = true })
        assert.are.equal(200, status)
        assert.are.same({ global_lock = true, running_processes = 0, global_status = "PAUSED" }, json)
        status, _, _, json = host:request("PUT", "/api/settings/status/", { global_lock = false })
        assert.are.equal(200, status)
        assert.are.equal("RUNNING", json.global_status)
      end)

      it("refuses a settings body without a boolean global_lock", function()
        local status, _, _, json = host:request("PUT", "/api/settings/status", { global_lock = "yes" })
        assert.are.equal(422, status)
        is_problem(422, json)
        status, _, _, json = host:request("PUT", "/api/settings/status", "")
        assert.are.equal(422, status)
        is_problem(422, json)
      end)
    end)
  end

  it("writes one access log line per request", function()
    host:request("GET", "/api/health/")
    assert.matches('"GET /api/health/" 200', host:log())
  end)
end)

describe("CORS with a configured origin list", function()
  local host

  setup(function()
    local _, db = H.new_database()
    host = H.start_host({ database = db, env = { ORCH_CORS_ORIGINS = "http://a.example, http://b.example" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  it("echoes an allowed origin and refuses others", function()
    local status, _, headers = host:request("GET", "/api/health/", nil, { origin = "http://b.example" })
    assert.are.equal(200, status)
    assert.are.equal("http://b.example", headers["access-control-allow-origin"])
    status, _, headers = host:request("GET", "/api/health/", nil, { origin = "http://evil.example" })
    assert.are.equal(200, status)
    assert.is_nil(headers["access-control-allow-origin"])
    local json
    status, _, _, json = host:request("OPTIONS", "/api/health/", nil,
      { origin = "http://evil.example", ["access-control-request-method"] = "GET" })
    assert.are.equal(400, status)
    assert.are.equal(400, json.status)
  end)
end)
