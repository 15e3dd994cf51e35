-- orch.client against the fake NetBox and LSO: steps of the real host call
-- configured services; errors fail the step with status and body, retry steps
-- wait, timeouts and unconfigured services fail clearly, and an LSO playbook
-- run comes back through the orchestrator's callback route.
local H = require("harness")
local F = require("fake_netbox")

describe("orch.client", function()
  local host, fake, dir, dbname

  setup(function()
    fake = F.start({ bootstrap = true })
    dir = H.pg_dir()
    local db
    dbname, db = H.new_database()
    H.migrate(db)
    host = H.start_host({ database = db, products = H.source .. "/tests/fixtures/client_products",
      -- A Lua budget shorter than the slow call of test_client_slow_ok: waiting does not count.
      -- Outbound timeouts capped at 2 s whatever a script asks for (test_client_capped_timeout).
      args = { "--workers", "2", "--lua-timeout-ms", "1000", "--client-max-timeout-ms", "2000" },
      env = {
        ORCH_SERVICE_NETBOX_URL = fake.url .. "/",
        ORCH_SERVICE_NETBOX_TOKEN = F.token,
        ORCH_SERVICE_LSO_URL = fake.url,
        ORCH_SERVICE_CLOSED_URL = "http://127.0.0.1:1",
        ORCH_CLIENT_MAX_RESPONSE_BYTES = "200000",
      } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
    if fake then
      fake:stop()
    end
  end)

  local function failed_step(d)
    for _, s in ipairs(d.steps) do
      if s.status == "failed" then
        return s
      end
    end
    error("no failed step: " .. H.json.encode(d.steps))
  end

  local function start(name)
    local status, text, _, json = host:request("POST", "/api/processes/" .. name, "[{}]")
    assert.are.equal(201, status, text)
    return json.id
  end

  it("sends and receives JSON through a configured service", function()
    local d = host:wait_status(start("test_client_roundtrip"), { "completed", "failed" })
    assert.are.equal("completed", d.last_status, d.failed_reason)
    local s = d.current_state
    assert.are.equal(201, s.created_status)
    assert.are.equal(s.site_name, s.read_name)
    assert.are.equal("caf\u{e9} \"quoted\"", s.read_description)
    assert.are.same({ value = "active", label = "Active" }, s.read_status)
    assert.are.equal("application/json", s.content_type)
    assert.are.equal(1, s.listed)
    -- Five bootstrap sites plus this one, fetched two per page by following `next`.
    assert.are.equal(6, s.all_sites)
    assert.are.equal("Amsterdam", s.first_site)
    assert.are.equal(404, s.missing_status)
    assert.matches("No dcim/devices matches", s.missing_detail)
    assert.are.same({ hello = "world", list = {} }, s.echo.echo)
    assert.are.equal("PUT", s.echo.method)
    assert.is_true(s.echo.authorized) -- the token from the environment was sent
    assert.are.equal("application/json", s.echo.content_type)
    -- The fake holds what the step created.
    local sites = fake:must("GET", "/api/dcim/sites/?slug=site-" .. d.process_id:sub(1, 8))
    assert.are.equal(1, sites.count)
  end)

  it("runs the NetBox calls of create_node and terminate_node against the fake", function()
    local d = host:wait_status(start("test_client_node"), { "completed", "failed", "waiting" })
    assert.are.equal("completed", d.last_status, d.failed_reason)
    local s = d.current_state
    assert.are.equal("10.0.127.1/24", s.ipv4)
    assert.matches("^fc00:0:0:127::%x+/64$", s.ipv6)
    assert.are.equal(s.ipv4, s.primary_ip)
    assert.are.equal("Amsterdam", s.site_name)
    assert.are.equal("Nokia", s.manufacturer)
    assert.are.equal(3, s.free_ports)
    assert.are.equal(404, s.gone_status)
    -- The device delete cascaded to its interfaces and addresses.
    local state = fake:must("GET", "/api/_fake/state")
    for _, i in ipairs(state.netbox["dcim/interfaces"]) do
      assert.are_not.equal(s.ims_id, i.device.id)
    end
    for _, ip in ipairs(state.netbox["ipam/ip-addresses"]) do
      assert.are_not.equal(s.ipv4, ip.address)
    end
  end)

  it("fails the step on a non-2xx status, with the status and the body in the reason", function()
    local d = host:wait_status(start("test_client_http_error"), { "failed" })
    assert.matches("client_workflows%.lua:%d+: netbox: POST /api/dcim/devices/ returned 400: ", d.failed_reason)
    assert.matches("This field is required", d.failed_reason)
    local last = failed_step(d)
    assert.are.equal("HTTPError", last.state.class)
    assert.are.equal(400, last.state.details.status)
    assert.are.equal("netbox", last.state.details.service)
  end)

  it("puts a retry step that gets a 503 in waiting", function()
    local d = host:wait_status(start("test_client_retry"), { "waiting", "failed" })
    assert.are.equal("waiting", d.last_status)
    assert.matches("returned 503: .*fake status 503", d.failed_reason)
  end)

  -- These run as tasks: a connection error fails a task as `api_unavailable`, as core does.
  it("times out a slow call and fails the step", function()
    local t0 = H.now()
    local d = host:wait_status(start("test_client_timeout"), { "api_unavailable" })
    assert.matches("netbox: GET /api/_fake/respond/200%?delay_ms=2000 failed %(timeout%): timed out after 300 ms",
      d.failed_reason)
    assert.is_true(H.now() - t0 < 5)
    assert.are.equal("HTTPConnectionError", failed_step(d).state.class)
  end)

  it("caps a script's timeout at the host's limit", function()
    local t0 = H.now()
    local d = host:wait_status(start("test_client_capped_timeout"), { "api_unavailable", "completed" })
    assert.are.equal("api_unavailable", d.last_status)
    assert.matches("failed %(timeout%): timed out after 2000 ms", d.failed_reason)
    assert.is_true(H.now() - t0 < 3.9, "took " .. (H.now() - t0) .. " s")
    fake:request("GET", "/api/_fake/state") -- returns once the single-threaded fake slept that off
  end)

  it("does not count the wait for a response against the Lua time budget", function()
    local d = host:wait_status(start("test_client_slow_ok"), { "completed", "failed" })
    assert.are.equal("completed", d.last_status, d.failed_reason)
    assert.are.equal(200, d.current_state.slow_status)
  end)

  it("caps the size of a response", function()
    local d = host:wait_status(start("test_client_too_large"), { "completed", "failed" })
    assert.are.equal("completed", d.last_status, d.failed_reason)
    local s = d.current_state
    assert.is_true(s.small_ok)
    assert.is_false(s.big_ok)
    assert.matches("failed %(too_large%): response larger than 200000 bytes", s.big_error)
    assert.are.equal("HTTPConnectionError", s.big_class)
  end)

  it("refuses services that are not configured and paths outside a service", function()
    local d = host:wait_status(start("test_client_unconfigured"), { "failed" })
    assert.matches("client_workflows%.lua:%d+: orch.client: crm: GET /api/customers/: service 'crm' is not configured",
      d.failed_reason)
    d = host:wait_status(start("test_client_escape"), { "completed", "failed" })
    assert.are.equal("completed", d.last_status, d.failed_reason)
    local refused = d.current_state.refused
    assert.are.equal(5, #refused)
    for _, r in ipairs(refused) do
      assert.matches("path must start with '/' and stay below the service's URL", r)
    end
  end)

  it("is not available while scripts load", function()
    local code, out = H.run({ "check", "--lua-dir", H.source .. "/lua", "--products",
      "tests/fixtures/client_load" }, { ORCH_SERVICE_NETBOX_URL = fake.url })
    assert.are.equal(1, code, out)
    assert.matches("at_load%.lua:2: orch.client is not available while scripts are being loaded", out)
    assert.are.equal(0, #fake:must("GET", "/api/_fake/lso/runs")) -- nothing was called
  end)

  it("reports a refused connection", function()
    local d = host:wait_status(start("test_client_refused"), { "api_unavailable" })
    assert.matches("closed: GET /api/ failed %(connect%)", d.failed_reason)
  end)

  describe("the LSO callback", function()
    local function set_lso(enabled)
      H.psql(dir, dbname, [[CREATE TABLE IF NOT EXISTS example_settings (key text PRIMARY KEY, value text NOT NULL);
        INSERT INTO example_settings VALUES ('lso_enabled', ']] .. tostring(enabled) .. [[')
        ON CONFLICT (key) DO UPDATE SET value = excluded.value]])
    end

    it("completes the step when the playbook succeeds", function()
      set_lso(true)
      fake:must("PUT", "/api/_fake/lso", { result = "success", delay_ms = 50 })
      local pid = start("test_client_lso")
      local d = host:wait_status(pid, { "completed", "failed" })
      assert.are.equal("completed", d.last_status, d.failed_reason)
      assert.are.equal("successful", d.current_state.lso_status)
      assert.is_true(d.current_state.after)
      local runs = fake:must("GET", "/api/_fake/lso/runs")
      local run = runs[#runs]
      assert.are.equal(d.current_state.lso_job_id, run.job_id)
      assert.are.equal("create_node.yaml", run.playbook_name)
      assert.are.equal("rtr-" .. pid:sub(1, 8) .. "\n", run.inventory)
      assert.are.equal(1, run.callback:find(host.base .. "/api/processes/" .. pid .. "/callback/", 1, true))
      assert.are.equal(200, run.callback_status)
      assert.is_true(run.delivered)
    end)

    it("fails the process when the playbook fails", function()
      set_lso(true)
      fake:must("PUT", "/api/_fake/lso", { result = "failure", delay_ms = 0 })
      local d = host:wait_status(start("test_client_lso"), { "completed", "failed" })
      assert.are.equal("failed", d.last_status)
      assert.matches("Provisioning proxy failure: failed", d.failed_reason)
      local runs = fake:must("GET", "/api/_fake/lso/runs")
      assert.are.equal(2, runs[#runs].callback_payload.return_code)
      assert.is_true(runs[#runs].delivered)
      fake:must("PUT", "/api/_fake/lso", { result = "success" })
    end)

    it("is skipped when LSO is switched off at run time", function()
      set_lso(false)
      local before = #fake:must("GET", "/api/_fake/lso/runs")
      local d = host:wait_status(start("test_client_lso"), { "completed", "failed" })
      assert.are.equal("completed", d.last_status, d.failed_reason)
      assert.are.equal("skipped", d.steps[2].status)
      assert.are.equal(before, #fake:must("GET", "/api/_fake/lso/runs"))
    end)
  end)
end)
