-- Workflow RBAC with core's semantics (docs/security.md): authorize_callback on start,
-- resume_auth_callback / retry_auth_callback with core's resolution order, GraphQL
-- Workflow.isAllowed and Process.userPermissions, and the user recorded on steps.
local H = require("harness")
local O = require("oidc")

describe("workflow RBAC", function()
  local op, host, dbname, products

  setup(function()
    op = O.start()
    local name, uri = H.new_database()
    dbname = name
    H.migrate(uri)
    -- the RBAC workflows next to the engine fixture's widget products
    products = os.tmpname()
    os.remove(products)
    assert(os.execute("mkdir -p " .. H.shell_quote(products) .. " && cp "
      .. H.shell_quote(H.source .. "/tests/fixtures/engine_products") .. "/*.lua "
      .. H.shell_quote(H.source .. "/tests/fixtures/rbac_products") .. "/*.lua " .. H.shell_quote(products)))
    host = H.start_host({ database = uri, products = products,
      args = { "--workers", "1" },
      env = { OAUTH2_ACTIVE = "true", OIDC_CONF_URL = op.conf_url, OAUTH2_RESOURCE_SERVER_ID = "orchestrator",
        ORCH_AUTH_WRITE_GROUP = "staff" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
    if op then
      op:stop()
    end
    os.execute("rm -rf " .. H.shell_quote(products))
  end)

  local function as(name, groups)
    local g = { "staff" }
    for _, x in ipairs(groups or {}) do
      g[#g + 1] = x
    end
    return op:token({ sub = name, name = name, groups = g })
  end

  -- Options of host:wait_status that read the process as a user who may.
  local function watching()
    return { headers = { authorization = "Bearer " .. as("watcher") } }
  end

  local function req(token, method, path, body)
    return host:request(method, path, body, { authorization = "Bearer " .. token })
  end

  local function start(token, name)
    local status, _, _, json = req(token, "POST", "/api/processes/" .. name, "[{}]")
    return status, json
  end

  it("checks authorize_callback on start (403)", function()
    local status, json = start(as("eve"), "rbac_start")
    assert.are.equal(403, status)
    assert.matches("not authorized to execute 'rbac_start'", json.detail)
    status, json = start(as("sam", { "starters" }), "rbac_start")
    assert.are.equal(201, status)
    local d = host:wait_status(json.id, "completed", watching())
    assert.are.equal("sam", d.created_by)
  end)

  it("checks the task's authorize_callback on POST/PUT/DELETE /api/schedules (403)", function()
    local wf_id = H.psql(H.pg_dir(), dbname, "SELECT workflow_id FROM workflows WHERE name = 'rbac_start'")
    local body = { workflow_name = "rbac_start", workflow_id = wf_id, trigger = "interval",
      trigger_kwargs = { hours = 1 } }
    local status, _, _, json = req(as("eve"), "POST", "/api/schedules", body)
    assert.are.equal(403, status)
    assert.matches("not authorized to schedule 'rbac_start'", json.detail)
    assert.are.equal("0", H.psql(H.pg_dir(), dbname,
      "SELECT count(*) FROM orch_schedules WHERE workflow_name = 'rbac_start'"))
    status = req(as("sam", { "starters" }), "POST", "/api/schedules", body)
    assert.are.equal(201, status)
    local id = H.psql(H.pg_dir(), dbname,
      "SELECT schedule_id FROM orch_schedules WHERE workflow_name = 'rbac_start'")
    status, _, _, json = req(as("eve"), "PUT", "/api/schedules", { schedule_id = id, name = "renamed" })
    assert.are.equal(403, status)
    assert.matches("not authorized to schedule 'rbac_start'", json.detail)
    status, _, _, json = req(as("eve"), "DELETE", "/api/schedules", { workflow_id = wf_id, schedule_id = id })
    assert.are.equal(403, status)
    assert.matches("not authorized to schedule 'rbac_start'", json.detail)
    local sam = as("sam", { "starters" })
    assert.are.equal(200, (req(sam, "PUT", "/api/schedules", { schedule_id = id, name = "renamed" })))
    assert.are.equal(200, (req(sam, "DELETE", "/api/schedules", { workflow_id = wf_id, schedule_id = id })))
    assert.are.equal("0", H.psql(H.pg_dir(), dbname,
      "SELECT count(*) FROM orch_schedules WHERE workflow_name = 'rbac_start'"))
  end)

  it("resumes with the input step's resume_auth_callback, else authorize_callback", function()
    local _, json = start(as("sam", { "starters" }), "rbac_resume")
    host:wait_status(json.id, "suspended", watching())
    assert.are.equal(403, (req(as("sam", { "starters" }), "PUT", "/api/processes/" .. json.id .. "/resume",
      { { approved = true } })))
    assert.are.equal(204, (req(as("ann", { "approvers" }), "PUT", "/api/processes/" .. json.id .. "/resume",
      { { approved = true } })))
    local d = host:wait_status(json.id, "completed", watching())
    local by
    for _, s in ipairs(d.steps) do
      if s.name == "Approve" then
        by = s.created_by
      end
    end
    assert.are.equal("ann", by) -- the user on the resumed step
    local _, j2 = start(as("sam", { "starters" }), "rbac_resume_default")
    host:wait_status(j2.id, "suspended", watching())
    assert.are.equal(403, (req(as("ann", { "approvers" }), "PUT", "/api/processes/" .. j2.id .. "/resume",
      { { approved = true } })))
    assert.are.equal(204, (req(as("sam", { "starters" }), "PUT", "/api/processes/" .. j2.id .. "/resume",
      { { approved = true } })))
  end)

  it("retries with the step's retry_auth_callback, else the workflow's, else authorize_callback", function()
    local cases = {
      { "rbac_retry_step", "fixers", "operators" },
      { "rbac_retry_workflow", "operators", "fixers" },
      { "rbac_retry_default", "starters", "fixers" },
    }
    for _, c in ipairs(cases) do
      local _, json = start(as("sam", { "starters" }), c[1])
      host:wait_status(json.id, "failed", watching())
      local path = "/api/processes/" .. json.id .. "/resume"
      local status = req(as("x", { c[3] }), "PUT", path, {})
      assert(status == 403, c[1] .. " retried by the wrong group: " .. tostring(status))
      status = req(as("y", { c[2] }), "PUT", path, {})
      assert(status == 204, c[1] .. " not retried by the right group: " .. tostring(status))
    end
  end)

  it("answers Workflow.isAllowed and Process.userPermissions for the caller", function()
    local q = '{ workflows(first: 50, filterBy: [{field: "name", value: "rbac_start"}]) { page { name isAllowed } } }'
    local _, _, _, json = req(as("eve"), "POST", "/api/graphql", { query = q })
    assert.is_false(json.data.workflows.page[1].isAllowed)
    _, _, _, json = req(as("sam", { "starters" }), "POST", "/api/graphql", { query = q })
    assert.is_true(json.data.workflows.page[1].isAllowed)

    local _, started = start(as("sam", { "starters" }), "rbac_resume")
    host:wait_status(started.id, "suspended", watching())
    local pq = "{ processes(first: 100) { page { processId userPermissions { retryAllowed resumeAllowed } } } }"
    local function perms(token)
      local _, _, _, j = req(token, "POST", "/api/graphql", { query = pq })
      for _, p in ipairs(j.data.processes.page) do
        if p.processId == started.id then
          return p.userPermissions
        end
      end
    end
    assert.is_false(perms(as("sam", { "starters" })).resumeAllowed)
    assert.is_true(perms(as("ann", { "approvers" })).resumeAllowed)
  end)

  it("marks workflows the caller may not start: subscription.insufficient_workflow_permissions", function()
    local widget = H.psql(H.pg_dir(), dbname, "SELECT product_id FROM products WHERE name = 'widget S'")
    local status, _, _, json = req(as("sam"), "POST", "/api/processes/create_widget",
      { { product = widget }, { widget_name = "w1", size = 5 } })
    assert.are.equal(201, status)
    local sub = host:wait_status(json.id, "completed", watching()).current_state.subscription_id
    local function reason(token)
      local _, _, _, j = req(token, "GET", "/api/subscriptions/workflows/" .. sub)
      for _, w in ipairs(j.modify) do
        if w.name == "modify_widget_admins" then
          return w.reason
        end
      end
      error("modify_widget_admins is not listed")
    end
    assert.are.equal("subscription.insufficient_workflow_permissions", reason(as("eve")))
    assert.is_nil(reason(as("ada", { "admins" })))
  end)

  it("records the starter in processes.created_by and the reporter", function()
    local _, json = start(as("rita", { "starters" }), "rbac_start")
    host:wait_status(json.id, "completed", watching())
    assert.are.equal("rita", H.psql(H.pg_dir(), dbname,
      "SELECT created_by FROM processes WHERE pid = '" .. json.id .. "'"))
    local d = host:wait_status(json.id, "completed", watching())
    assert.are.equal("rita", d.current_state.reporter)
  end)
end)
