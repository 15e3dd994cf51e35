-- The REST wire format of orchestrator-core (docs/rest.md): timestamps as epoch
-- seconds in every REST answer (GraphQL keeps ISO strings), FastAPI's 422 for a
-- start/resume body that is not a list of form pages, snake_case sort and filter
-- keys on every HTTP thread, and run predicates that hold under concurrent
-- starts on two hosts.
local H = require("harness")
local cjson = require("cjson")

local FIXTURES = H.source .. "/tests/fixtures/wire_products"
local ISO = "^%d%d%d%d%-%d%d%-%d%d[T ]%d%d:%d%d"

-- Run curl once for many transfers at a time (--parallel); returns the status
-- code of each transfer, in no particular order.
local function parallel(urls, opts)
  opts = opts or {}
  local args = { "curl -s --no-progress-meter --parallel --parallel-immediate --parallel-max", tostring(opts.max or 32),
    "-w '%{http_code}\\n'" }
  if opts.method then
    args[#args + 1] = "-X " .. opts.method
  end
  if opts.body then
    args[#args + 1] = "-H 'content-type: application/json' --data " .. H.shell_quote(opts.body)
  end
  for _, u in ipairs(urls) do
    args[#args + 1] = "-o /dev/null " .. H.shell_quote(u)
  end
  local p = io.popen(table.concat(args, " "))
  local codes = {}
  for line in p:lines() do
    codes[#codes + 1] = tonumber(line)
  end
  p:close()
  assert.are.equal(#urls, #codes)
  return codes
end

local function tally(codes)
  local t = {}
  for _, c in ipairs(codes) do
    t[c] = (t[c] or 0) + 1
  end
  return t
end

-- The GET routes of the route table (lua/orch/api/routes.lua), as the host's OpenAPI document lists them.
local function get_routes(host)
  local status, _, _, doc = host:request("GET", "/api/openapi.json")
  assert(status == 200 and doc, "no OpenAPI document")
  local out = {}
  for pattern, ops in pairs(doc.paths) do
    if ops.get and not (ops.get["x-handler"] == nil and pattern:find("/ws/", 1, true)) then
      out[#out + 1] = pattern
    end
  end
  table.sort(out)
  assert(#out > 10, "no GET routes found in the OpenAPI document")
  return out
end

-- Keys whose values are process state or a form, which keep their own encoding.
local NOT_SCHEMA = { current_state = true, state = true, state_delta = true, form = true }

-- Paths (a.b[1].c) of ISO timestamp strings in a REST answer.
local function iso_strings(v, path, out)
  if type(v) == "string" and v:match(ISO) then
    out[#out + 1] = path .. " = " .. v
  elseif type(v) == "table" then
    for k, x in pairs(v) do
      if not NOT_SCHEMA[k] then
        iso_strings(x, path .. (type(k) == "number" and ("[" .. k .. "]") or ("." .. k)), out)
      end
    end
  end
  return out
end

describe("REST wire format", function()
  local dir, dbname, host
  local ids = {}

  local function sql(q)
    return H.psql(dir, dbname, q)
  end

  setup(function()
    local uri
    dir = H.pg_dir()
    dbname, uri = H.new_database(dir)
    H.migrate(uri)
    host = H.start_host({ database = uri, products = FIXTURES, args = { "--workers", "2", "--http-threads", "8" } })
    ids.product_id = sql("SELECT product_id FROM products WHERE name = 'gizmo'")
    local status, text, _, json = host:request("POST", "/api/processes/create_gizmo",
      { { product = ids.product_id }, { gizmo_name = "g1" } })
    assert.are.equal(201, status, text)
    ids.process_id = json.id
    local d = host:wait_status(json.id, "completed")
    ids.subscription_id = d.current_state.subscription_id
    if sql("SELECT count(*) FROM processes_subscriptions") == "0" then -- the process lists its subscription
      sql("INSERT INTO processes_subscriptions (pid, subscription_id) VALUES ('" .. ids.process_id .. "', '"
        .. ids.subscription_id .. "')")
    end
    status, text, _, json = host:request("POST", "/api/processes/test_wire_asks", "[{}]")
    assert.are.equal(201, status, text)
    ids.suspended_id = json.id
    host:wait_status(json.id, "suspended")
    status = host:request("POST", "/api/subscription_customer_descriptions/",
      { customer_id = "wire-customer", subscription_id = ids.subscription_id, description = "mine" })
    assert.are.equal(204, status)
    ids.id = sql("SELECT id FROM subscription_customer_descriptions")
    ids.customer_id = "wire-customer"
    ids.workflow_id = sql("SELECT workflow_id FROM workflows WHERE name = 'create_gizmo'")
    ids.product_block_id = sql("SELECT product_block_id FROM product_blocks WHERE name = 'Gizmo'")
    ids.resource_type_id = sql("SELECT resource_type_id FROM resource_types WHERE resource_type = 'gizmo_name'")
    ids.language = "en-GB"
    sql("INSERT INTO fixed_inputs (name, value, product_id) VALUES ('colour', 'red', '" .. ids.product_id .. "')")
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  describe("timestamps", function()
    local function epoch(q)
      return tonumber(sql("SELECT extract(epoch FROM (" .. q .. "))"))
    end

    local function same_time(expected, got, what)
      assert.is_number(got, what)
      assert.is_true(math.abs(expected - got) < 1e-6, what .. ": " .. tostring(got) .. " ~= " .. expected)
    end

    it("are epoch seconds (floats, microseconds kept) in the process list and detail", function()
      local pid = ids.process_id
      local _, text, _, list = host:request("GET", "/api/processes/?filter=processId," .. pid)
      assert.are.equal(1, #list, text)
      local p = list[1]
      same_time(epoch("SELECT started_at FROM processes WHERE pid = '" .. pid .. "'"), p.started_at, "started_at")
      same_time(epoch("SELECT last_modified_at FROM processes WHERE pid = '" .. pid .. "'"), p.last_modified_at,
        "last_modified_at")
      -- the text carries every digit of the microseconds, as Python writes the float
      local usec = sql("SELECT extract(microseconds FROM started_at)::int % 1000000 FROM processes WHERE pid = '"
        .. pid .. "'")
      local frac = text:match('"started_at":%d+%.?(%d*)')
      assert.are.equal(tonumber(usec), tonumber(((frac or "") .. "000000"):sub(1, 6)))
      local sub = p.subscriptions[1]
      same_time(epoch("SELECT start_date FROM subscriptions WHERE subscription_id = '" .. ids.subscription_id .. "'"),
        sub.start_date, "subscriptions[1].start_date")
      assert.are.equal(cjson.null, sub.end_date)
      local _, _, _, d = host:request("GET", "/api/processes/" .. pid)
      same_time(p.started_at, d.started_at, "detail started_at")
      for i, s in ipairs(d.steps) do
        assert.is_number(s.started, "steps[" .. i .. "].started")
        assert.is_number(s.completed, "steps[" .. i .. "].completed")
        assert.are.equal(s.completed, s.executed)
      end
      -- process state keeps its own encoding: the subscription in the state has ISO dates
      assert.matches(ISO, d.current_state.subscription.start_date)
    end)

    it("are epoch seconds in the catalogue, workflows, customer descriptions and the domain model", function()
      local _, _, _, p = host:request("GET", "/api/products/" .. ids.product_id)
      same_time(epoch("SELECT created_at FROM products WHERE product_id = '" .. ids.product_id .. "'"),
        p.created_at, "product created_at")
      assert.is_number(p.product_blocks[1].created_at)
      assert.is_number(p.fixed_inputs[1].created_at)
      assert.is_number(p.workflows[1].created_at)
      local _, _, _, b = host:request("GET", "/api/product_blocks/" .. ids.product_block_id)
      assert.is_number(b.created_at)
      local _, _, _, w = host:request("GET", "/api/workflows/" .. ids.workflow_id)
      same_time(epoch("SELECT created_at FROM workflows WHERE workflow_id = '" .. ids.workflow_id .. "'"),
        w.created_at, "workflow created_at")
      local _, _, _, cd = host:request("GET", "/api/subscription_customer_descriptions/" .. ids.id)
      same_time(epoch("SELECT created_at FROM subscription_customer_descriptions"), cd.created_at, "cd created_at")
      local _, _, _, dm = host:request("GET", "/api/subscriptions/domain-model/" .. ids.subscription_id)
      same_time(epoch("SELECT start_date FROM subscriptions WHERE subscription_id = '" .. ids.subscription_id .. "'"),
        dm.start_date, "domain model start_date")
      assert.is_number(dm.product.created_at)
      assert.is_number(dm.customer_descriptions[1].created_at)
      local _, _, _, g = host:request("GET", "/api/settings/generation")
      assert.is_number(g.loaded_at)
      assert.is_true(math.abs(g.loaded_at - os.time()) < 3600)
      -- a description written back with the float it was read with keeps its time
      local body = cjson.encode({ id = cd.id, customer_id = cd.customer_id, subscription_id = cd.subscription_id,
        description = "again", version = cd.version }):gsub("}$", string.format(',"created_at":%.17g}', cd.created_at))
      local status = host:request("PUT", "/api/subscription_customer_descriptions/", body)
      assert.are.equal(204, status)
      local _, _, _, cd2 = host:request("GET", "/api/subscription_customer_descriptions/" .. ids.id)
      same_time(cd.created_at, cd2.created_at, "cd created_at after PUT")
    end)

    it("stay ISO 8601 strings in GraphQL", function()
      local _, _, _, json = host:request("POST", "/api/graphql", { query = [[{ processes(first: 1) {
        page { startedAt lastModifiedAt steps { started completed } } } }]] })
      local p = json.data.processes.page[1]
      assert.matches(ISO, p.startedAt)
      assert.matches(ISO, p.lastModifiedAt)
      assert.matches(ISO, p.steps[1].started)
    end)

    it("are never ISO strings in the answer of any GET route of the REST API", function()
      local checked, problems = 0, {}
      for _, pattern in ipairs(get_routes(host)) do
        if pattern ~= "/api/graphql" and pattern ~= "/api/openapi.json" and pattern ~= "/api/ws/events" then
          local path = pattern:gsub("{([%w_]+)}", function(name)
            return assert(ids[name], "no test value for {" .. name .. "} of " .. pattern)
          end)
          if path == "/api/processes" then
            path = path .. "?range=0,50&sort=started_at,desc"
          end
          local status, text, _, json = host:request("GET", path)
          assert.is_true(status == 200, path .. " answered " .. tostring(status) .. ": " .. text)
          for _, hit in ipairs(iso_strings(json, path, {})) do
            problems[#problems + 1] = hit
          end
          checked = checked + 1
        end
      end
      -- the suspended process (with a form) too
      local path = "/api/processes/" .. ids.suspended_id
      local _, _, _, json = host:request("GET", path)
      assert.is_table(json.form)
      iso_strings(json, path, problems)
      assert.is_true(checked >= 15, "only " .. checked .. " routes")
      assert.are.same({}, problems)
    end)
  end)

  describe("start and resume bodies", function()
    local function validation_error(status, json, loc, type_)
      assert.are.equal(422, status)
      assert.are.equal(1, #json.detail)
      local e = json.detail[1]
      assert.are.same(loc, e.loc)
      assert.are.equal(type_, e.type)
      assert.is_string(e.msg)
    end

    it("answer 422 with FastAPI's validation shape when a start body is not a list of pages", function()
      local route = "/api/processes/create_gizmo"
      local status, _, _, json = host:request("POST", route, "{}")
      validation_error(status, json, { "body" }, "list_type")
      assert.are.equal("Input should be a valid list", json.detail[1].msg)
      status, _, _, json = host:request("POST", route, { product = ids.product_id })
      validation_error(status, json, { "body" }, "list_type")
      assert.are.same({ product = ids.product_id }, json.detail[1].input)
      status, _, _, json = host:request("POST", route, '"text"')
      validation_error(status, json, { "body" }, "list_type")
      status, _, _, json = host:request("POST", route, "[1]")
      validation_error(status, json, { "body", 0 }, "dict_type")
      status, _, _, json = host:request("POST", route, "null")
      validation_error(status, json, { "body" }, "missing")
      status, _, _, json = host:request("POST", route)
      validation_error(status, json, { "body" }, "missing")
      -- lists still run the form protocol
      status = host:request("POST", route, "[]")
      assert.are.equal(510, status)
    end)

    it("answer 422 for a resume body that is an object with keys, a scalar or a list of scalars", function()
      local route = "/api/processes/" .. ids.suspended_id .. "/resume"
      local status, _, _, json = host:request("PUT", route, { approved_by = "me" })
      validation_error(status, json, { "body" }, "list_type")
      status, _, _, json = host:request("PUT", route, "5")
      validation_error(status, json, { "body" }, "list_type")
      status, _, _, json = host:request("PUT", route, '[{}, "x"]')
      validation_error(status, json, { "body", 1 }, "dict_type")
      -- the UI's retry body {} stays "no pages": the form is not complete
      status = host:request("PUT", route, "{}")
      assert.are.equal(510, status)
      assert.are.equal("suspended", sql("SELECT last_status FROM processes WHERE pid = '" .. ids.suspended_id .. "'"))
    end)
  end)

  describe("sort and filter keys", function()
    local CAMEL = { "processId", "workflowId", "assignee", "lastStatus", "lastStep", "startedAt", "lastModifiedAt",
      "failedReason", "traceback", "createdBy", "isTask", "note", "workflowName", "target", "workflowTarget",
      "customer", "product", "productName", "productDescription", "productTag", "tag", "subscriptionId",
      "subscriptions" }

    local function snake(k)
      return (k:gsub("%u", function(c) return "_" .. c:lower() end))
    end

    it("accept snake_case as well as camelCase on every HTTP thread, under concurrent list requests", function()
      local urls, base = {}, host.base .. "/api/processes/?range=0,50&sort="
      for _ = 1, 12 do
        for _, k in ipairs(CAMEL) do
          urls[#urls + 1] = base .. k .. ",asc"
          urls[#urls + 1] = base .. snake(k) .. ",desc"
        end
        urls[#urls + 1] = host.base .. "/api/processes/?filter=last_status,completed-suspended&sort=last_step,asc"
        urls[#urls + 1] = host.base .. "/api/processes/?filter=is_task,true,workflow_name,test_wire_asks"
      end
      assert.are.same({ [200] = #urls }, tally(parallel(urls)))
      local again = {}
      for i = 1, 48 do
        again[i] = base .. "started_at,desc"
      end
      assert.are.same({ [200] = #again }, tally(parallel(again)))
      local _, text, _, one = host:request("GET", "/api/processes/?range=0,50&sort=started_at,desc")
      assert.is_table(one, text)
      assert.is_true(#one >= 2)
    end)
  end)

  describe("run predicates", function()
    local db2, hosts = nil, {}

    setup(function()
      local uri
      db2, uri = H.new_database(dir)
      H.migrate(uri)
      -- No workers: a started instance stays uncompleted, so exactly one start may pass.
      for i = 1, 2 do
        hosts[i] = H.start_host({ database = uri, products = FIXTURES,
          args = { "--workers", "0", "--http-threads", "4" } })
      end
      -- Every HTTP thread builds its Lua state on its first request: do that now, so
      -- that the starts below reach the predicate at the same time.
      local warm = {}
      for i = 1, 64 do
        warm[i] = hosts[i % 2 + 1].base .. "/api/processes/?range=0,1"
      end
      parallel(warm)
    end)

    teardown(function()
      for _, h in ipairs(hosts) do
        h:stop()
      end
    end)

    local function race(name, n)
      local urls = {}
      for i = 1, n do
        urls[i] = hosts[i % 2 + 1].base .. "/api/processes/" .. name
      end
      local codes = tally(parallel(urls, { method = "POST", body = "[{}]" }))
      local rows = tonumber(H.psql(dir, db2, "SELECT count(*) FROM processes p JOIN workflows w USING (workflow_id) "
        .. "WHERE w.name = '" .. name .. "'"))
      return codes, rows
    end

    it("let one of concurrent starts through when the predicate is slow (two hosts)", function()
      local codes, rows = race("test_slow_predicate", 8)
      assert.are.same({ [201] = 1, [412] = 7 }, codes)
      assert.are.equal(1, rows)
    end)

    it("let one of concurrent task_resume_workflows starts through (two hosts)", function()
      local codes, rows = race("task_resume_workflows", 16)
      assert.are.same({ [201] = 1, [412] = 15 }, codes)
      assert.are.equal(1, rows)
    end)
  end)
end)
