-- orch.graphql.connection: core's offset Connection (page + pageInfo) and in-memory lists;
-- orch.query: the SQL plan for first/after/sortBy/filterBy/query, run through orch.db.
local fake = require("helpers.fake_host")

describe("orch.graphql.connection", function()
  local connection, graphql, json, query

  local SPEC = {
    select = "p.process_id, p.workflow_name",
    from = "processes p",
    where = "p.is_task = $1",
    params = { false },
    filters = {
      workflow_name = "p.workflow_name",
      last_status = { expr = "p.last_status", type = "exact" },
      is_task = { expr = "p.is_task", type = "bool" },
    },
    sorts = { startedAt = "p.started_at", workflowName = "p.workflow_name" },
    default_sort = "p.started_at DESC",
    tiebreak = "p.process_id",
  }

  local function recorder()
    local errors = {}
    return errors, { add_error = function(_, message)
      errors[#errors + 1] = message
    end }
  end

  before_each(function()
    fake.install()
    connection = require("orch.graphql.connection")
    query = require("orch.query")
    graphql = require("orch.graphql")
    json = require("orch.json")
  end)

  it("computes pageInfo as core does", function()
    local r = connection.result({ "a", "b", "c" }, 2, 30, 100, { "x" }, { "y" })
    assert.are.same({ "a", "b" }, r.page)
    assert.are.same({ hasNextPage = true, hasPreviousPage = true, startCursor = 30, endCursor = 31, totalItems = 100,
      sortFields = { "x" }, filterFields = { "y" } }, r.pageInfo)
    r = connection.result({}, 10, 0, nil)
    assert.are.equal("[]", json.encode(r.page))
    assert.are.same({ hasNextPage = false, hasPreviousPage = false, startCursor = json.null, endCursor = -1,
      totalItems = 0, sortFields = {}, filterFields = {} }, r.pageInfo)
    assert.are.equal("[]", json.encode(r.pageInfo.sortFields))
    assert.are.same({ 10, 0 }, { connection.page_args({}) })
    assert.are.same({ 0, 0 }, { connection.page_args({ first = -5, after = -1 }) })
  end)

  it("plans the page and count queries with placeholders after the fixed ones", function()
    local errors, info = recorder()
    local plan = query.plan({
      first = 15,
      after = 30,
      sortBy = { { field = "workflowName", order = "DESC" }, { field = "startedAt", order = "ASC" } },
      filterBy = { { field = "lastStatus", value = "completed-aborted" } },
      query = "workflowName:create* node",
    }, SPEC, info)
    assert.are.same({}, errors)
    -- "node" is not a boolean: the bool column drops out of the bare word's OR.
    local where = " WHERE (p.is_task = $1) AND ((p.last_status ILIKE $2 OR p.last_status ILIKE $3))"
      .. " AND ((p.workflow_name ILIKE $4 AND (p.last_status ILIKE $5 OR p.workflow_name ILIKE $5)))"
    assert.are.equal("SELECT p.process_id, p.workflow_name FROM processes p" .. where
      .. " ORDER BY p.workflow_name DESC, p.started_at ASC, p.process_id LIMIT $6 OFFSET $7", plan.sql)
    assert.are.equal("SELECT count(*) AS total FROM processes p" .. where, plan.count_sql)
    assert.are.same({ false, "completed", "aborted", "create%", "node", 16, 30 }, plan.params)
    assert.are.equal(7, #plan.params)
    assert.are.equal(5, plan.count_params)
    assert.are.same({ "startedAt", "workflowName" }, plan.sort_fields)
    assert.are.same({ "isTask", "lastStatus", "workflowName" }, plan.filter_fields)
  end)

  it("uses the default sort and reports invalid sorts and filters", function()
    local errors, info = recorder()
    local plan = query.plan({ sortBy = { { field = "nope", order = "ASC" } },
      filterBy = { { field = "color", value = "red" } } }, SPEC, info)
    assert.are.equal("SELECT p.process_id, p.workflow_name FROM processes p WHERE (p.is_task = $1) AND (FALSE)"
      .. " ORDER BY p.started_at DESC, p.process_id LIMIT $2 OFFSET $3", plan.sql)
    assert.are.same({ false, 11, 0 }, plan.params)
    assert.are.same({
      "Invalid filter arguments (invalid_filters=color valid_filter_keys=isTask,lastStatus,workflowName)",
      "Invalid sort arguments (invalid_sorting=nope valid_sort_keys=startedAt,workflowName)",
    }, errors)
    local bad, err = query.plan({ query = "(unbalanced" }, SPEC)
    assert.is_nil(bad)
    assert.are.equal('Invalid query: Expected ")", got end of query at position 12', err)
  end)

  describe("as a resolver through the executor", function()
    local schema

    before_each(function()
      schema = connection.install({
        types = {
          Query = {
            fields = {
              processes = { type = "ProcessConnection!", args = connection.ARGS, resolve = function(args, _, info)
                return query.run(args, SPEC, info, function(row)
                  return { processId = row.process_id, workflowName = row.workflow_name }
                end)
              end },
            },
          },
          ProcessConnection = connection.type("Process"),
          Process = { fields = { processId = "String!", workflowName = "String" } },
        },
      })
    end)

    it("runs the page and count queries and builds the connection", function()
      fake.queue({ { process_id = "p1", workflow_name = "a" }, { process_id = "p2", workflow_name = "b" } }, 2)
      fake.queue({ { total = 7 } }, 1)
      local r = graphql.execute(schema, { query = [[query P($first: Int!, $sortBy: [GraphqlSort!]) {
        processes(first: $first, after: 3, sortBy: $sortBy) {
          page { processId workflowName } pageInfo { totalItems hasNextPage endCursor }
        }
      }]], variables = { first = 1, sortBy = { field = "startedAt" } } }, {})
      assert.is_nil(r.errors)
      assert.are.same({
        page = { { processId = "p1", workflowName = "a" } },
        pageInfo = { totalItems = 7, hasNextPage = true, endCursor = 3 },
      }, r.data.processes)
      assert.are.equal(2, #fake.queries)
      assert.matches("ORDER BY p.started_at ASC, p.process_id LIMIT %$2 OFFSET %$3$", fake.queries[1].sql)
      assert.are.same({ false, 2, 3, n = 3 }, fake.queries[1].params)
      assert.matches("^SELECT count", fake.queries[2].sql)
      assert.are.same({ false, n = 1 }, fake.queries[2].params)
    end)

    it("skips the count when totalItems is not selected, and the page when only the count is", function()
      fake.queue({}, 0)
      local r = graphql.execute(schema, { query = "{ processes { page { processId } } }" }, {})
      assert.is_nil(r.errors)
      assert.are.equal(1, #fake.queries)
      assert.is_nil(r.data.processes.pageInfo)
      fake.queries = {}
      fake.queue({ { total = 4 } }, 1)
      r = graphql.execute(schema, { query = "{ processes { pageInfo { totalItems } } }" }, {})
      assert.are.same({ totalItems = 4 }, r.data.processes.pageInfo)
      assert.are.equal(1, #fake.queries)
      assert.matches("^SELECT count", fake.queries[1].sql)
    end)

    it("turns a malformed query or a database error into a field error", function()
      local r = graphql.execute(schema, { query = '{ processes(query: "a:") { page { processId } } }' }, {})
      assert.are.equal(json.null, r.data)
      assert.are.equal("Invalid query: The value after a key can not be empty at position 2", r.errors[1].message)
      assert.are.same({ "processes" }, r.errors[1].path)
      fake.queue(nil, { message = "relation does not exist" })
      r = graphql.execute(schema, { query = "{ processes { page { processId } } }" }, {})
      assert.are.equal("database: relation does not exist", r.errors[1].message)
    end)
  end)

  it("pages, filters and sorts a Lua list", function()
    local items = {}
    for i = 1, 12 do
      items[i] = { id = "id-" .. i, n = i, status = i % 3 == 0 and "Terminated" or "active" }
    end
    local errors, info = recorder()
    local opts = { filters = { status = true, id = true }, sorts = { n = true }, info = info }
    local r = connection.from_list(items, { first = 3, after = 2, sortBy = { { field = "n", order = "DESC" } },
      filterBy = { { field = "status", value = "!terminated" } } }, opts)
    assert.are.same({ 8, 7, 5 }, { r.page[1].n, r.page[2].n, r.page[3].n })
    assert.are.same({ hasNextPage = true, hasPreviousPage = true, startCursor = 2, endCursor = 4, totalItems = 8,
      sortFields = { "n" }, filterFields = { "id", "status" } }, r.pageInfo)
    r = connection.from_list(items, { filterBy = { { field = "id", value = "id-2|id-11" } } }, opts)
    assert.are.same({ "id-2", "id-11" }, { r.page[1].id, r.page[2].id })
    r = connection.from_list(items, { filterBy = { { field = "status", value = "ACTIVE-terminated" } } }, opts)
    assert.are.equal(12, r.pageInfo.totalItems)
    assert.are.same({}, errors)
    r = connection.from_list(items, { filterBy = { { field = "color", value = "x" } } }, opts)
    assert.are.equal(0, #r.page)
    assert.are.equal(1, #errors)
  end)
end)
