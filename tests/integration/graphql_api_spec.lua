-- POST /api/graphql against the real host and PostgreSQL: every root field with its
-- filters, sorts and pagination, core's value traps, the error shape, and requests that
-- select what the orchestrator UI's documents select (written here from the field lists
-- of the UI reference, not copied). Processes run through the real engine; the catalogue
-- and subscriptions are inserted with SQL.
local H = require("harness")

local S1 = "11111111-1111-4111-8111-111111111111"
local S2 = "22222222-2222-4222-8222-222222222222"
local S3 = "33333333-3333-4333-8333-333333333333"
local S4 = "44444444-4444-4444-8444-444444444444"

local CATALOGUE = [[
INSERT INTO resource_types (resource_type_id, resource_type, description) VALUES
  ('a0000000-0000-4000-8000-000000000001', 'node_name', 'name of the node'),
  ('a0000000-0000-4000-8000-000000000002', 'role_id', 'role'),
  ('a0000000-0000-4000-8000-000000000003', 'port_name', NULL);
INSERT INTO product_blocks (product_block_id, name, description, tag, status) VALUES
  ('b0000000-0000-4000-8000-000000000001', 'NodeBlock', 'a node', 'NODE', 'active'),
  ('b0000000-0000-4000-8000-000000000002', 'PortBlock', 'a port', 'PORT', 'active');
INSERT INTO product_block_resource_types VALUES
  ('b0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000001'),
  ('b0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000002'),
  ('b0000000-0000-4000-8000-000000000002', 'a0000000-0000-4000-8000-000000000003');
INSERT INTO product_block_relations (in_use_by_id, depends_on_id) VALUES
  ('b0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000001');
INSERT INTO products (product_id, name, description, product_type, tag, status, created_at) VALUES
  ('c0000000-0000-4000-8000-000000000001', 'node Cisco', 'Network node', 'Node', 'NODE', 'active', '2026-01-01'),
  ('c0000000-0000-4000-8000-000000000002', 'port 10G', 'A port', 'Port', 'PORT', 'phase out', '2026-01-02');
INSERT INTO fixed_inputs (name, value, product_id) VALUES
  ('node_type', 'Cisco', 'c0000000-0000-4000-8000-000000000001'),
  ('speed', '10000', 'c0000000-0000-4000-8000-000000000002');
INSERT INTO product_product_blocks VALUES
  ('c0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001'),
  ('c0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000002');
INSERT INTO workflows (workflow_id, name, target, description, is_task) VALUES
  ('d0000000-0000-4000-8000-000000000001', 'create_node', 'CREATE', 'Create a node', false),
  ('d0000000-0000-4000-8000-000000000002', 'modify_port', 'MODIFY', 'Modify a port', false);
INSERT INTO products_workflows VALUES
  ('c0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8000-000000000001'),
  ('c0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8000-000000000002'),
  ('c0000000-0000-4000-8000-000000000002', 'd0000000-0000-4000-8000-000000000002');
INSERT INTO subscriptions (subscription_id, description, status, product_id, customer_id, insync, start_date, note)
VALUES
  ('11111111-1111-4111-8111-111111111111', 'node ams-pe1', 'active', 'c0000000-0000-4000-8000-000000000001',
   'cust-1', true, '2026-01-01T10:00:00Z', 'first'),
  ('22222222-2222-4222-8222-222222222222', 'node ams-pe2', 'active', 'c0000000-0000-4000-8000-000000000001',
   'cust-1', false, '2026-01-03T10:00:00Z', NULL),
  ('33333333-3333-4333-8333-333333333333', 'port A', 'terminated', 'c0000000-0000-4000-8000-000000000002',
   'cust-2', true, '2026-01-02T10:00:00Z', NULL),
  ('44444444-4444-4444-8444-444444444444', 'port B', 'initial', 'c0000000-0000-4000-8000-000000000002',
   'cust-2', true, NULL, NULL);
INSERT INTO subscription_instances (subscription_instance_id, subscription_id, product_block_id) VALUES
  ('e0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111',
   'b0000000-0000-4000-8000-000000000001'),
  ('e0000000-0000-4000-8000-000000000003', '33333333-3333-4333-8333-333333333333',
   'b0000000-0000-4000-8000-000000000002');
INSERT INTO subscription_instance_values (subscription_instance_id, resource_type_id, value) VALUES
  ('e0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000001', 'ams-pe1'),
  ('e0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000002', '3'),
  ('e0000000-0000-4000-8000-000000000003', 'a0000000-0000-4000-8000-000000000003', 'xe-0/0/1');
INSERT INTO subscription_instance_relations (in_use_by_id, depends_on_id, order_id, domain_model_attr) VALUES
  ('e0000000-0000-4000-8000-000000000003', 'e0000000-0000-4000-8000-000000000001', 0, 'node');
INSERT INTO subscription_metadata VALUES ('11111111-1111-4111-8111-111111111111', '{"rack": "R1"}');
INSERT INTO subscription_customer_descriptions (subscription_id, customer_id, description) VALUES
  ('11111111-1111-4111-8111-111111111111', 'cust-1', 'their name for it');
]]

describe("GraphQL API", function()
  local host, dir, dbname
  local pids = {}

  local function gql(query, variables, operation)
    local body = { query = query, operationName = operation }
    if variables then
      body.variables = variables
    end
    local status, text, _, json = host:request("POST", "/api/graphql", body)
    assert.are.equal(200, status, text)
    assert.is_table(json, text)
    return json, text
  end

  -- data of a request that must succeed without errors
  local function data(query, variables)
    local json, text = gql(query, variables)
    assert.is_nil(json.errors, text)
    return json.data, text
  end

  local function start(name)
    local status, text, _, json = host:request("POST", "/api/processes/" .. name, "[{}]")
    assert.are.equal(201, status, text)
    return json.id
  end

  local function names(page, key)
    local out = {}
    for i, item in ipairs(page) do
      out[i] = item[key]
    end
    return out
  end

  setup(function()
    local uri
    dir = H.pg_dir()
    dbname, uri = H.new_database(dir)
    H.migrate(uri)
    host = H.start_host({ database = uri, products = H.source .. "/tests/fixtures/engine_products",
      args = { "--workers", "2" } })
    pids.completed = start("test_ten_steps")
    pids.failed = start("test_fails")
    pids.suspended = start("test_input")
    host:wait_status(pids.completed, "completed")
    host:wait_status(pids.failed, "failed")
    host:wait_status(pids.suspended, "suspended")
    H.psql(dir, dbname, CATALOGUE)
    -- the completed and the failed process worked on S1 (oldest link first)
    H.psql(dir, dbname, "INSERT INTO processes_subscriptions (pid, subscription_id, created_at) VALUES ('"
      .. pids.completed .. "', '" .. S1 .. "', now() - interval '1 minute'), ('" .. pids.failed .. "', '" .. S1
      .. "', now())")
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  describe("transport and errors", function()
    it("answers a syntax error with 200 and {errors: [{message, locations}]} without data", function()
      local json = gql("query Broken { processes { page { processId } ")
      assert.is_nil(json.data)
      assert.are.equal(1, #json.errors)
      assert.matches("^Syntax Error", json.errors[1].message)
      assert.are.equal(1, json.errors[1].locations[1].line)
      assert.is_number(json.errors[1].locations[1].column)
    end)

    it("reports an unknown field with its location", function()
      local json = gql("{\n  version { nope }\n}")
      assert.matches('Cannot query field "nope"', json.errors[1].message)
      assert.are.equal(2, json.errors[1].locations[1].line)
    end)

    it("reports an invalid filter field at the field's path and returns an empty page", function()
      local json = gql([[{ subscriptions(filterBy: {field: "colour", value: "red"}) {
        page { subscriptionId } pageInfo { totalItems } } }]])
      assert.are.equal(0, #json.data.subscriptions.page)
      assert.are.equal(0, json.data.subscriptions.pageInfo.totalItems)
      assert.matches("Invalid filter arguments", json.errors[1].message)
      assert.are.same({ "subscriptions" }, json.errors[1].path)
      assert.is_table(json.errors[1].locations)
    end)

    it("reports an invalid sort field but still returns the page", function()
      local json = gql([[{ subscriptions(sortBy: {field: "colour", order: DESC}) { page { subscriptionId } } }]])
      assert.matches("Invalid sort arguments", json.errors[1].message)
      assert.are.equal(4, #json.data.subscriptions.page)
    end)

    it("reports a malformed query string as a field error", function()
      local json = gql([[{ processes(query: "(unbalanced") { page { processId } } }]])
      assert.matches("Invalid query", json.errors[1].message)
      assert.are.same({ "processes" }, json.errors[1].path)
    end)

    it("answers a body that is not a GraphQL request with a GraphQL error", function()
      local status, _, _, json = host:request("POST", "/api/graphql", "[1, 2]")
      assert.are.equal(200, status)
      assert.is_string(json.errors[1].message)
      status = host:request("GET", "/api/graphql")
      assert.are.equal(405, status)
    end)
  end)

  describe("header, sidebar and settings", function()
    it("reports the core version the UI checks (Versions)", function()
      local json, text = gql("query Versions { version { applicationVersions } }", nil, "Versions")
      assert.is_nil(json.errors, text)
      local first = json.data.version.applicationVersions[1]
      local major = tonumber(first:match("^orchestrator%-core (%d+)%.%d+%.%d+$"))
      assert.is_true(major >= 5, first)
    end)

    it("lists create workflows with their products (StartOptions, workflow variant)", function()
      local d = data([[query StartOptions { workflows(first: 1000000, after: 0,
        filterBy: [{field: "target", value: "CREATE"}]) { page { name isAllowed
        products { productType productId name tag status } } } }]])
      local by_name = {}
      for _, w in ipairs(d.workflows.page) do
        by_name[w.name] = w
        assert.is_true(w.isAllowed)
      end
      assert.is_nil(by_name.modify_port)
      assert.are.same({ { productType = "Node", productId = "c0000000-0000-4000-8000-000000000001",
        name = "node Cisco", tag = "NODE", status = "ACTIVE" } }, by_name.create_node.products)
    end)

    it("lists tasks (StartOptions, task variant)", function()
      local d = data([[query StartOptions { workflows(first: 1000000, after: 0,
        filterBy: [{field: "isTask", value: "true"}]) { page { name isAllowed description } } }]])
      local by_name = {}
      for _, w in ipairs(d.workflows.page) do
        by_name[w.name] = w
      end
      assert.is_nil(by_name.create_node)
      assert.are.equal("Ten no-op steps", by_name.test_ten_steps.description)
      assert.is_table(by_name.test_input)
    end)

    it("shows engine settings, worker status and cache names", function()
      local d = data([[{ settings { engineSettings { globalLock runningProcesses globalStatus }
        workerStatus { executorType numberOfWorkersOnline numberOfQueuedJobs numberOfRunningJobs } cacheNames } }]])
      assert.is_false(d.settings.engineSettings.globalLock)
      assert.are.equal("RUNNING", d.settings.engineSettings.globalStatus)
      assert.are.equal(2, d.settings.workerStatus.numberOfWorkersOnline)
      assert.are.same({ all = "All caches" }, d.settings.cacheNames)
    end)

    it("lists the default customer (Customers, Customer)", function()
      local d = data([[query Customers { customers(first: 1000000, after: 0) {
        page { fullname customerId shortcode } } }]])
      assert.are.same({ { fullname = "Default::Orchestrator-Core Customer",
        customerId = "59289a57-70fb-4ff5-9c93-10fe67b12434", shortcode = "default-cust" } }, d.customers.page)
      d = data([[query Customer($customerId: String!, $first: Int!) { customers(first: $first,
        filterBy: [{field: "customerId", value: $customerId}]) { page { customerId fullname shortcode } } }]],
        { customerId = "nobody|59289a57-70fb-4ff5-9c93-10fe67b12434", first = 10 })
      assert.are.equal(1, #d.customers.page)
      d = data([[{ customers(filterBy: {field: "customerId", value: "nobody"}) { page { customerId }
        pageInfo { totalItems } } }]])
      assert.are.equal(0, #d.customers.page)
    end)

    it("answers scheduledTasks with an empty page in core's shape", function()
      local d = data([[query ScheduledTasks($first: Int!, $after: Int!, $sortBy: [GraphqlSort!]) {
        scheduledTasks(first: $first, after: $after, sortBy: $sortBy) { page { id name nextRunTime trigger workflowId }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor totalItems sortFields filterFields } } }]],
        { first = 15, after = 0, sortBy = { field = "name", order = "ASC" } })
      local info = d.scheduledTasks.pageInfo
      assert.are.equal(0, #d.scheduledTasks.page)
      assert.are.equal(H.json.null, info.startCursor)
      assert.are.equal(-1, info.endCursor)
      assert.are.equal(0, info.totalItems)
      assert.is_false(info.hasNextPage)
      assert.is_true(#info.sortFields > 0)
    end)
  end)

  describe("processes", function()
    local LIST = [[query ProcessList($first: Int!, $after: Int!, $sortBy: [GraphqlSort!], $filterBy: [GraphqlFilter!],
      $query: String) { processes(first: $first, after: $after, sortBy: $sortBy, filterBy: $filterBy, query: $query) {
      page { workflowName lastStep lastStatus workflowTarget product { name tag } customer { fullname shortcode }
        createdBy assignee processId startedAt lastModifiedAt isTask
        subscriptions { page { subscriptionId description } }
        note }
      pageInfo { hasNextPage hasPreviousPage startCursor totalItems endCursor sortFields filterFields } } }]]

    it("lists tasks with uppercase lastStatus, customer and linked subscriptions (ProcessList)", function()
      local d = data(LIST, { first = 15, after = 0, sortBy = { field = "lastModifiedAt", order = "DESC" },
        filterBy = { { field = "isTask", value = "true" }, { field = "lastStatus", value = "completed-failed" } } })
      local page = d.processes.page
      assert.are.equal(2, #page)
      local by_id = {}
      for _, p in ipairs(page) do
        by_id[p.processId] = p
        assert.are.equal("Default::Orchestrator-Core Customer", p.customer.fullname)
        assert.is_true(p.isTask)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+%+00:00$", p.startedAt)
      end
      assert.are.equal("COMPLETED", by_id[pids.completed].lastStatus)
      assert.are.equal("FAILED", by_id[pids.failed].lastStatus)
      assert.are.same({ { subscriptionId = S1, description = "node ams-pe1" } },
        by_id[pids.completed].subscriptions.page)
      assert.are.same({ name = "node Cisco", tag = "NODE" }, by_id[pids.completed].product)
      local info = d.processes.pageInfo
      assert.are.equal(2, info.totalItems)
      assert.are.equal(0, info.startCursor)
      assert.are.equal(1, info.endCursor)
      assert.is_false(info.hasNextPage)
      assert.is_false(info.hasPreviousPage)
      assert.is_truthy(table.concat(info.sortFields, ","):find("lastModifiedAt", 1, true))
      assert.is_truthy(table.concat(info.filterFields, ","):find("lastStatus", 1, true))
    end)

    it("pages with first/after and sorts both ways", function()
      local q = [[query($first: Int!, $after: Int!, $sortBy: [GraphqlSort!]) { processes(first: $first, after: $after,
        sortBy: $sortBy) { page { workflowName } pageInfo { hasNextPage hasPreviousPage startCursor endCursor
        totalItems } } }]]
      local asc = data(q, { first = 3, after = 0, sortBy = { field = "workflowName", order = "ASC" } }).processes
      assert.are.same({ "test_fails", "test_input", "test_ten_steps" }, names(asc.page, "workflowName"))
      local p2 = data(q, { first = 2, after = 1, sortBy = { field = "workflowName", order = "ASC" } }).processes
      assert.are.same({ "test_input", "test_ten_steps" }, names(p2.page, "workflowName"))
      assert.are.same({ hasNextPage = false, hasPreviousPage = true, startCursor = 1, endCursor = 2, totalItems = 3 },
        p2.pageInfo)
      local p1 = data(q, { first = 1, after = 0, sortBy = { field = "workflowName", order = "DESC" } }).processes
      assert.are.same({ "test_ten_steps" }, names(p1.page, "workflowName"))
      assert.is_true(p1.pageInfo.hasNextPage)
    end)

    it("filters by createdBy, lastStatus negation and the query language", function()
      local q = [[query($filterBy: [GraphqlFilter!], $query: String) { processes(filterBy: $filterBy, query: $query)
        { page { workflowName } } }]]
      local function run(filter, query)
        local list = names(data(q, { filterBy = filter, query = query }).processes.page, "workflowName")
        table.sort(list)
        return list
      end
      assert.are.same({ "test_input" }, run({ { field = "lastStatus", value = "suspended" } }))
      assert.are.same({ "test_fails", "test_ten_steps" }, run({ { field = "lastStatus", value = "!suspended" } }))
      assert.are.same({}, run({ { field = "createdBy", value = "someone-else" } }))
      assert.are.same({ "test_fails", "test_input", "test_ten_steps" },
        run({ { field = "createdBy", value = "SYSTEM" } }))
      assert.are.same({ "test_input", "test_ten_steps" }, run(nil, "workflowName:(test_input|test_ten_steps)"))
      assert.are.same({ "test_fails", "test_ten_steps" }, run(nil, "tag:NODE"))
      assert.are.same({ "test_input" }, run(nil, "-subscriptions:ams"))
      assert.are.same({ "test_fails" }, run(nil, "test_f*"))
    end)

    it("shows the detail with steps, form and permissions (ProcessDetail)", function()
      local d = data([[query ProcessDetail($processId: String!) { processes(filterBy: {value: $processId,
        field: "processId"}) { page { processId lastStatus createdBy startedAt lastModifiedAt lastStep workflowName
        isTask form traceback note userPermissions { retryAllowed resumeAllowed }
        steps { name status stepId stateDelta started completed } customer { fullname }
        subscriptions { page { product { name } description subscriptionId } } } } }]],
        { processId = pids.suspended })
      local p = d.processes.page[1]
      assert.are.equal(1, #d.processes.page)
      assert.are.equal("SUSPENDED", p.lastStatus)
      assert.are.equal("Wait for approval", p.lastStep)
      assert.is_true(p.userPermissions.resumeAllowed)
      assert.is_table(p.form.properties.approved)
      local statuses = {}
      for _, s in ipairs(p.steps) do
        statuses[#statuses + 1] = s.name .. ":" .. s.status
      end
      assert.is_truthy(table.concat(statuses, ","):find("Wait for approval:suspend", 1, true))
      assert.is_truthy(table.concat(statuses, ","):find("After:pending", 1, true))
      assert.is_table(p.steps[1].stateDelta)
      assert.is_string(p.steps[1].stepId)
      assert.are.same({}, p.subscriptions.page)
    end)

    it("answers process(processId) and a failed process's traceback", function()
      local d = data("query($id: String!) { process(processId: $id) { processId lastStatus failedReason traceback } }",
        { id = pids.failed })
      assert.are.equal("FAILED", d.process.lastStatus)
      assert.matches("the fake system is broken", d.process.failedReason)
      d = data('{ process(processId: "00000000-0000-4000-8000-000000000000") { processId } }')
      assert.are.equal(H.json.null, d.process)
    end)

    it("lists a workflow's steps with assignees (ProcessSteps) and its description", function()
      local d = data([[query ProcessSteps($processName: String!) { workflows(filterBy: {field: "name",
        value: $processName}) { page { steps { name assignee } } } }]], { processName = "test_input" })
      local steps = d.workflows.page[1].steps
      local found
      for _, s in ipairs(steps) do
        if s.name == "Wait for approval" then
          found = s.assignee
        end
      end
      assert.are.equal("NOC", found)
      d = data([[query MetadataWorkflowsDescription($workflowName: String!) { workflows(filterBy: [{field: "name",
        value: $workflowName}]) { page { name description } } }]], { workflowName = "test_input" })
      assert.are.same({ { name = "test_input", description = "Suspends for input" } }, d.workflows.page)
    end)

    it("gives the start page summary (ProcessListSummary)", function()
      local d = data([[query ProcessListSummary($first: Int!, $after: Int!, $sortBy: [GraphqlSort!],
        $filterBy: [GraphqlFilter!], $query: String) { processes(first: $first, after: $after, sortBy: $sortBy,
        filterBy: $filterBy, query: $query) { page { processId workflowName startedAt }
        pageInfo { totalItems startCursor endCursor } } }]],
        { first = 5, after = 0, sortBy = { field = "startedAt", order = "DESC" }, filterBy = {
          { field = "isTask", value = "true" }, { field = "lastStatus", value = "failed-inconsistent_data" } } })
      assert.are.same({ "test_fails" }, names(d.processes.page, "workflowName"))
      assert.are.same({ totalItems = 1, startCursor = 0, endCursor = 0 }, d.processes.pageInfo)
    end)
  end)

  describe("subscriptions", function()
    local LIST = [[query SubscriptionsList($first: Int!, $after: Int!, $sortBy: [GraphqlSort!],
      $filterBy: [GraphqlFilter!], $query: String) { subscriptions(first: $first, after: $after, sortBy: $sortBy,
      filterBy: $filterBy, query: $query) { page { note startDate endDate description insync status subscriptionId
      product { name tag productType } customer { customerId fullname shortcode } metadata }
      pageInfo { totalItems startCursor hasPreviousPage hasNextPage endCursor sortFields filterFields } } }]]

    local function ids(vars)
      local d = data(LIST, vars)
      return names(d.subscriptions.page, "subscriptionId"), d.subscriptions
    end

    it("lists the page the UI opens with, metadata {} never null (SubscriptionsList)", function()
      local d, text = data(LIST, { first = 15, after = 0, sortBy = { field = "startDate", order = "DESC" },
        filterBy = { { field = "status", value = "active" } } })
      local page = d.subscriptions.page
      assert.are.same({ S2, S1 }, names(page, "subscriptionId"))
      assert.are.equal("ACTIVE", page[1].status)
      assert.is_false(page[1].insync)
      assert.are.same({ name = "node Cisco", tag = "NODE", productType = "Node" }, page[1].product)
      assert.are.equal("cust-1", page[1].customer.customerId)
      assert.are.equal("Default::Orchestrator-Core Customer", page[1].customer.fullname)
      assert.are.same({ rack = "R1" }, page[2].metadata)
      assert.is_truthy(text:find('"metadata":{}', 1, true), text)
      assert.are.equal("2026-01-03T10:00:00.000000+00:00", page[1].startDate)
      assert.are.equal(H.json.null, page[1].endDate)
      local info = d.subscriptions.pageInfo
      assert.are.equal(2, info.totalItems)
      assert.are.equal(0, info.startCursor)
      assert.are.equal(1, info.endCursor)
      assert.is_truthy(table.concat(info.sortFields, ","):find("startDate", 1, true))
      assert.is_truthy(table.concat(info.filterFields, ","):find("status", 1, true))
    end)

    it("applies core's filterBy value syntax", function()
      assert.are.same({ S2, S1 }, (ids({ first = 15, after = 0,
        filterBy = { { field = "status", value = "Active" } } })))
      assert.are.same({ S2, S3, S1 }, (ids({ first = 15, after = 0,
        filterBy = { { field = "status", value = "active-terminated" } } })))
      -- descending start dates put NULL first, as PostgreSQL does
      assert.are.same({ S4, S2, S1 }, (ids({ first = 15, after = 0,
        filterBy = { { field = "status", value = "!terminated" } } })))
      assert.are.same({ S3, S1 }, (ids({ first = 15, after = 0,
        filterBy = { { field = "subscriptionId", value = S1 .. "|" .. S3 } } })))
      assert.are.same({ S4 }, (ids({ first = 15, after = 0,
        filterBy = { { field = "status", value = "initial-provisioning-migrating" } } })))
      assert.are.same({ S3, S4 }, (ids({ first = 15, after = 0, sortBy = { field = "description", order = "ASC" },
        filterBy = { { field = "tag", value = "PORT" } } })))
    end)

    it("searches with the query language", function()
      assert.are.same({ S2 }, (ids({ first = 15, after = 0, query = "insync:false" })))
      assert.are.same({ S2, S1 }, (ids({ first = 15, after = 0, query = "ams" })))
      assert.are.same({ S1 }, (ids({ first = 15, after = 0, query = "ams -insync:false" })))
      assert.are.same({ S4, S3 }, (ids({ first = 15, after = 0, query = "productName:port*" })))
      assert.are.same({ S2, S3 }, (ids({ first = 15, after = 0, query = "status:active pe2 | status:terminated" })))
      assert.are.same({ S1 }, (ids({ first = 15, after = 0, query = '"ams-pe1"' })))
      assert.are.same({ S2 }, (ids({ first = 15, after = 0, query = "startDate:2026-01-03*" })))
      assert.are.same({}, (ids({ first = 15, after = 0, query = "startDate:yesterday" })))
      -- the start page card: summary selection, query plus a status filter
      local d = data([[query SubscriptionsList($first: Int!, $after: Int!, $sortBy: [GraphqlSort!],
        $filterBy: [GraphqlFilter!], $query: String) { subscriptions(first: $first, after: $after, sortBy: $sortBy,
        filterBy: $filterBy, query: $query) { page { startDate description subscriptionId }
        pageInfo { totalItems startCursor endCursor } } }]], { first = 5, after = 0, query = "insync:false",
        filterBy = { { field = "status", value = "Active-Provisioning" } } })
      assert.are.same({ S2 }, names(d.subscriptions.page, "subscriptionId"))
      assert.are.same({ totalItems = 1, startCursor = 0, endCursor = 0 }, d.subscriptions.pageInfo)
    end)

    it("sorts by every kind of column and pages", function()
      local function sorted(field, order)
        return (ids({ first = 15, after = 0, sortBy = { field = field, order = order } }))
      end
      assert.are.same({ S4, S2, S3, S1 }, sorted("startDate", "DESC")) -- NULL first when descending, as PostgreSQL
      assert.are.same({ S1, S3, S2, S4 }, sorted("startDate", "ASC"))
      assert.are.same({ S1, S2, S3, S4 }, sorted("productName", "ASC"))
      assert.are.same({ S3, S4, S1, S2 }, sorted("tag", "DESC"))
      local list, conn = ids({ first = 2, after = 2, sortBy = { field = "subscriptionId", order = "ASC" } })
      assert.are.same({ S3, S4 }, list)
      assert.are.same({ hasNextPage = false, hasPreviousPage = true, startCursor = 2, endCursor = 3, totalItems = 4,
        sortFields = conn.pageInfo.sortFields, filterFields = conn.pageInfo.filterFields }, conn.pageInfo)
      list, conn = ids({ first = 2, after = 0, sortBy = { field = "subscriptionId", order = "ASC" } })
      assert.are.same({ S1, S2 }, list)
      assert.is_true(conn.pageInfo.hasNextPage)
      list, conn = ids({ first = 15, after = 10 })
      assert.are.same({}, list)
      assert.are.equal(H.json.null, conn.pageInfo.startCursor)
    end)

    local DETAIL = [[query SubscriptionDetail($subscriptionId: String!) {
      subscriptions(filterBy: {field: "subscriptionId", value: $subscriptionId}) { page { ...SubscriptionDetail } } }
    fragment SubscriptionDetail on SubscriptionInterface {
      subscriptionId description fixedInputs insync note
      product { createdAt name status endDate description tag productType productId }
      endDate startDate status customerId metadata customer { fullname customerId shortcode }
      customerDescriptions { id subscriptionId description customerId }
      productBlockInstances { id subscription { subscriptionId description } parent productBlockInstanceValues
        subscriptionInstanceId inUseByRelations }
      processes(first: 1000000, after: 0, sortBy: {field: "startedAt", order: ASC}) { page { processId lastStatus
        startedAt createdBy workflowTarget workflowName isTask note } } }]]

    it("shows a subscription's detail through the fragment (SubscriptionDetail)", function()
      local d = data(DETAIL, { subscriptionId = S1 })
      local s = d.subscriptions.page[1]
      assert.are.same({ { field = "node_type", value = "Cisco" } }, s.fixedInputs)
      assert.are.same({ rack = "R1" }, s.metadata)
      assert.are.equal("ACTIVE", s.product.status)
      assert.are.equal("2026-01-01T00:00:00.000000+00:00", s.product.createdAt)
      assert.are.same({ "their name for it" }, names(s.customerDescriptions, "description"))
      assert.are.same({ pids.completed, pids.failed }, names(s.processes.page, "processId"))
      assert.are.same({ "COMPLETED", "FAILED" }, names(s.processes.page, "lastStatus"))
      local blocks = s.productBlockInstances
      assert.are.equal(1, #blocks)
      assert.are.equal(0, blocks[1].id)
      assert.are.equal(H.json.null, blocks[1].parent)
      assert.are.same({ { field = "name", value = "NodeBlock" }, { field = "label", value = H.json.null },
        { field = "nodeName", value = "ams-pe1" }, { field = "roleId", value = "3" } },
        blocks[1].productBlockInstanceValues)
      assert.are.same({ { subscription_instance_id = "e0000000-0000-4000-8000-000000000003", subscription_id = S3 } },
        blocks[1].inUseByRelations)
      assert.are.same({ subscriptionId = S1, description = "node ams-pe1" }, blocks[1].subscription)
    end)

    it("flattens block trees across subscriptions with id and parent", function()
      local d = data(DETAIL, { subscriptionId = S3 })
      local blocks = d.subscriptions.page[1].productBlockInstances
      assert.are.equal(2, #blocks)
      assert.are.equal("PortBlock", blocks[1].productBlockInstanceValues[1].value)
      assert.are.equal(0, blocks[1].id)
      assert.are.equal(1, blocks[2].id)
      assert.are.equal(0, blocks[2].parent)
      assert.are.equal(S1, blocks[2].subscription.subscriptionId)
      assert.are.same({}, d.subscriptions.page[1].metadata)
    end)

    it("lists related subscriptions and in-use-by details", function()
      local q = [[query RelatedSubscriptions($subscriptionId: String!, $first: Int!, $after: Int!,
        $sortBy: [GraphqlSort!], $terminatedSubscriptionFilter: [GraphqlFilter!]) {
        subscriptions(filterBy: {value: $subscriptionId, field: "subscriptionId"}) { page { subscriptionId
          inUseBySubscriptions(first: $first, after: $after, sortBy: $sortBy,
            filterBy: $terminatedSubscriptionFilter) { page { subscriptionId customer { fullname } description insync
            startDate status product { tag } } pageInfo { endCursor hasNextPage hasPreviousPage startCursor totalItems
            sortFields filterFields } } } } }]]
      local d = data(q, { subscriptionId = S1, first = 5, after = 0,
        sortBy = { field = "startDate", order = "ASC" } })
      local related = d.subscriptions.page[1].inUseBySubscriptions
      assert.are.same({ S3 }, names(related.page, "subscriptionId"))
      assert.are.equal("PORT", related.page[1].product.tag)
      assert.are.equal(1, related.pageInfo.totalItems)
      -- a single object in a list-typed variable
      d = data(q, { subscriptionId = S1, first = 5, after = 0, sortBy = { field = "startDate", order = "ASC" },
        terminatedSubscriptionFilter = { field = "status", value = "!terminated" } })
      related = d.subscriptions.page[1].inUseBySubscriptions
      assert.are.equal(0, #related.page)
      assert.are.equal(0, related.pageInfo.totalItems)
      d = data([[query SubscriptionsInUseByRelationsDetails($subscriptionIds: String!) { subscriptions(first: 1000000,
        after: 0, filterBy: [{field: "subscriptionId", value: $subscriptionIds}, {field: "status",
        value: "initial|active|migrating|disabled|provisioning"}]) { page { product { name } description
        subscriptionId status } } }]], { subscriptionIds = S1 .. "|" .. S3 })
      assert.are.same({ { product = { name = "node Cisco" }, description = "node ams-pe1", subscriptionId = S1,
        status = "ACTIVE" } }, d.subscriptions.page)
      d = data('query($id: String!) { subscription(id: $id) { subscriptionId dependsOnSubscriptions { page { '
        .. 'subscriptionId } } } }', { id = S3 })
      assert.are.same({ S1 }, names(d.subscription.dependsOnSubscriptions.page, "subscriptionId"))
    end)

    it("serves the subscription dropdown (blocks, fixed inputs, customer) in a few statements", function()
      local d = data([[query SubscriptionDropdownOptions($filterBy: [GraphqlFilter!]) { subscriptions(
        filterBy: $filterBy, first: 1000000, after: 0) { page { description subscriptionId product { tag productId }
        customer { fullname identifier } productBlockInstances { id ownerSubscriptionId parent
        productBlockInstanceValues subscriptionInstanceId inUseByRelations } fixedInputs } } }]],
        { filterBy = { { field = "tag", value = "NODE-PORT" }, { field = "status", value = "active-terminated" } } })
      local page = d.subscriptions.page
      assert.are.same({ S2, S3, S1 }, names(page, "subscriptionId"))
      assert.are.equal(0, #page[1].productBlockInstances)
      assert.are.equal(2, #page[2].productBlockInstances)
      assert.are.same({ { field = "speed", value = "10000" } }, page[2].fixedInputs)
      assert.are.equal("cust-2", page[2].customer.identifier)
    end)
  end)

  describe("metadata pages", function()
    local INFO = "pageInfo { totalItems hasNextPage hasPreviousPage startCursor endCursor sortFields filterFields }"

    it("lists products with blocks and fixed inputs (MetadataProducts)", function()
      local d = data([[query MetadataProducts($first: Int!, $after: Int!, $sortBy: [GraphqlSort!], $query: String) {
        products(first: $first, after: $after, sortBy: $sortBy, query: $query) { page { productId name description
        tag createdAt productType status productBlocks { name } fixedInputs { name value } endDate } ]] .. INFO
        .. " } }", { first = 15, after = 0, sortBy = { field = "name", order = "ASC" }, query = "tag:(NODE|PORT)" })
      local page = d.products.page
      assert.are.same({ "node Cisco", "port 10G" }, names(page, "name"))
      assert.are.same({ { name = "NodeBlock" } }, page[1].productBlocks)
      assert.are.same({ { name = "speed", value = "10000" } }, page[2].fixedInputs)
      assert.are.equal("PHASE OUT", page[2].status)
      assert.are.equal(2, d.products.pageInfo.totalItems)
      d = data([[query($query: String) { products(query: $query) { page { name } } }]], { query = "tag:PORT" })
      assert.are.same({ "port 10G" }, names(d.products.page, "name"))
    end)

    it("counts each product's subscriptions with a nested filter variable (start page card)", function()
      local d = data([[query MetadataProducts($first: Int!, $after: Int!, $sortBy: [GraphqlSort!],
        $filterBy: [GraphqlFilter!]) { products(first: $first, after: $after, sortBy: $sortBy) { page { name
        subscriptions(filterBy: $filterBy) { pageInfo { totalItems } } } pageInfo { totalItems startCursor endCursor }
        } }]], { first = 1000, after = 0, sortBy = { field = "name", order = "ASC" },
        filterBy = { { field = "status", value = "!terminated" } } })
      local by_name = {}
      for _, p in ipairs(d.products.page) do
        by_name[p.name] = p.subscriptions.pageInfo.totalItems
      end
      assert.are.equal(2, by_name["node Cisco"])
      assert.are.equal(1, by_name["port 10G"])
    end)

    it("lists product blocks with resource types and dependencies (MetadataProductBlocks)", function()
      local d = data([[query MetadataProductBlocks($first: Int!, $after: Int!, $sortBy: [GraphqlSort!],
        $query: String) { productBlocks(first: $first, after: $after, sortBy: $sortBy, query: $query) { page {
        productBlockId name tag description status createdAt endDate resourceTypes { description resourceType
        resourceTypeId } dependsOn { productBlockId name tag description status createdAt endDate } } ]] .. INFO
        .. " } }", { first = 15, after = 0, sortBy = { field = "name", order = "DESC" }, query = "tag:(NODE|PORT)" })
      local page = d.productBlocks.page
      assert.are.same({ "PortBlock", "NodeBlock" }, names(page, "name"))
      assert.are.same({ "NodeBlock" }, names(page[1].dependsOn, "name"))
      assert.are.same({ "node_name", "role_id" }, names(page[2].resourceTypes, "resourceType"))
      assert.are.equal("ACTIVE", page[1].status)
      d = data('{ productBlocks(query: "NODE") { page { name } } }')
      assert.are.same({ "NodeBlock" }, names(d.productBlocks.page, "name"))
    end)

    it("lists resource types with their blocks (MetadataResourceTypes)", function()
      local d = data([[query MetadataResourceTypes($first: Int!, $after: Int!, $sortBy: [GraphqlSort!],
        $query: String) { resourceTypes(first: $first, after: $after, sortBy: $sortBy, query: $query) { page {
        resourceTypeId resourceType description productBlocks { description name productBlockId status createdAt
        endDate } } ]] .. INFO .. " } }", { first = 2, after = 0, sortBy = { field = "resourceType", order = "ASC" },
        query = "resourceType:(node_name|port_name|role_id)" })
      local page = d.resourceTypes.page
      assert.are.same({ "node_name", "port_name" }, names(page, "resourceType"))
      assert.are.same({ "NodeBlock" }, names(page[1].productBlocks, "name"))
      assert.are.equal(H.json.null, page[2].description)
      assert.is_true(d.resourceTypes.pageInfo.hasNextPage)
      assert.are.equal(3, d.resourceTypes.pageInfo.totalItems)
    end)

    it("filters and sorts the catalogue lists by their columns", function()
      local function list(field, args, key)
        local d = data("query($filterBy: [GraphqlFilter!], $sortBy: [GraphqlSort!]) { " .. field
          .. "(filterBy: $filterBy, sortBy: $sortBy, first: 100) { page { " .. key .. " } } }", args)
        return names(d[field].page, key)
      end
      assert.are.same({ "port 10G" }, list("products", { filterBy = { { field = "status", value = "phase out" } } },
        "name"))
      assert.are.same({ "port 10G", "node Cisco" }, list("products", { filterBy = { { field = "tag",
        value = "NODE-PORT" } }, sortBy = { { field = "productType", order = "DESC" } } }, "name"))
      assert.are.same({ "node Cisco" }, list("products", { filterBy = { { field = "productId",
        value = "c0000000-0000-4000-8000-000000000001" } } }, "name"))
      assert.are.same({ "PortBlock" }, list("productBlocks", { filterBy = { { field = "tag", value = "PORT" } } },
        "name"))
      assert.are.same({ "role_id", "port_name", "node_name" }, list("resourceTypes", { filterBy = { {
        field = "resourceType", value = "node_name|port_name|role_id" } }, sortBy = { field = "resourceType",
        order = "DESC" } }, "resourceType"))
      assert.are.same({ "modify_port", "create_node" }, list("workflows", { filterBy = { { field = "name",
        value = "create_node|modify_port" } }, sortBy = { { field = "target", order = "DESC" } } }, "name"))
    end)

    it("lists workflows and tasks (MetadataWorkflows, MetadataTasks)", function()
      local q = [[query MetadataWorkflows($first: Int!, $after: Int!, $sortBy: [GraphqlSort!], $query: String) {
        workflows(first: $first, after: $after, sortBy: $sortBy, query: $query, filterBy: {field: "target",
        value: "CREATE|MODIFY|TERMINATE|RECONCILE"}) { page { workflowId name description target isTask
        products { tag } createdAt } ]] .. INFO .. " } }"
      local d = data(q, { first = 15, after = 0, sortBy = { field = "name", order = "ASC" },
        query = "name:(create_node|modify_port)" })
      local page = d.workflows.page
      assert.are.same({ "create_node", "modify_port" }, names(page, "name"))
      assert.are.same({ { tag = "NODE" }, { tag = "PORT" } }, page[2].products)
      assert.are.equal("MODIFY", page[2].target)
      d = data(q, { first = 15, after = 0, query = "modify_p*" })
      assert.are.same({ "modify_port" }, names(d.workflows.page, "name"))
      d = data([[query MetadataTasks($first: Int!, $after: Int!) { workflows(first: $first, after: $after,
        filterBy: {field: "isTask", value: "true"}) { page { name isTask target } pageInfo { totalItems } } }]],
        { first = 2, after = 0 })
      assert.are.equal(2, #d.workflows.page)
      assert.is_true(d.workflows.page[1].isTask)
      assert.is_true(d.workflows.pageInfo.totalItems >= 6)
    end)
  end)

  -- A GraphQL request through tests/fixtures/graphql_api/gqlcount (orch_invoke): the decoded
  -- {response, statements} and the raw output.
  local function counted(body)
    local invoke_bin = assert(os.getenv("ORCH_INVOKE"), "ORCH_INVOKE is not set")
    local cmd = string.format("%s --database %s --lua-dir %s --products %s gqlcount execute %s 2>&1",
      H.shell_quote(invoke_bin), H.shell_quote(string.format("postgresql://postgres@/%s?host=%s", dbname, dir)),
      H.shell_quote(H.source .. "/lua"), H.shell_quote(H.source .. "/tests/fixtures/graphql_api"),
      H.shell_quote(H.json.encode(body)))
    local p = io.popen(cmd)
    local out = p:read("a")
    assert(p:close(), "orch_invoke failed:\n" .. out)
    return H.json.decode(out), out
  end

  it("reads the steps of a whole page of processes in a bounded number of statements", function()
    local body = { query = [[{ processes(first: 15) { page { processId steps { name status stateDelta }
      currentState } pageInfo { totalItems } } }]] }
    local result, out = counted(body)
    assert.is_nil(result.response.errors, out)
    local page = result.response.data.processes.page
    assert.is_true(#page >= 3, out)
    for _, proc in ipairs(page) do
      assert.is_true(#proc.steps > 0, out)
    end
    -- page + count, then the steps and the queue rows of the whole page (not per process)
    assert.is_true(result.statements <= 4, "statements: " .. result.statements)
  end)

  it("loads nested lists for a whole page in a bounded number of statements", function()
    -- 40 more subscriptions with one process each: the list with nested processes, products and
    -- metadata must not issue one statement per row.
    H.psql(dir, dbname, [[
      INSERT INTO subscriptions (description, status, product_id, customer_id, insync, start_date)
      SELECT 'bulk ' || i, 'active', 'c0000000-0000-4000-8000-000000000001', 'cust-3', true,
             '2025-01-01'::timestamptz + i * interval '1 hour' FROM generate_series(1, 40) i;
      INSERT INTO processes_subscriptions (pid, subscription_id)
      SELECT ']] .. pids.completed .. [['::uuid, subscription_id FROM subscriptions WHERE customer_id = 'cust-3';
      ]])
    local body = { query = [[{ subscriptions(first: 50, filterBy: {field: "customerId", value: "cust-3"}) { page {
      subscriptionId metadata fixedInputs product { name productBlocks { name } } customerDescriptions { id }
      productBlockInstances { id }
      processes { page { processId workflowName product { name } } pageInfo { totalItems } } }
      pageInfo { totalItems } } }]] }
    local result, out = counted(body)
    assert.is_nil(result.response.errors, out)
    local d = result.response.data
    assert.are.equal(40, #d.subscriptions.page)
    assert.are.equal(40, d.subscriptions.pageInfo.totalItems)
    for _, s in ipairs(d.subscriptions.page) do
      assert.are.same({ "test_ten_steps" }, names(s.processes.page, "workflowName"))
      assert.are.equal(1, s.processes.pageInfo.totalItems)
    end
    -- page + count, products, blocks, fixed inputs, metadata, descriptions, block instances,
    -- processes page + count, the processes' links
    assert.is_true(result.statements <= 12, "statements: " .. result.statements)
  end)
end)
