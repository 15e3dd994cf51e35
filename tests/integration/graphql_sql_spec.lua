-- The SQL that orch.search_query and orch.graphql.connection generate, run on the real
-- PostgreSQL of the test cluster: it must be valid, bind its parameters by position and
-- select the rows the query language promises.
local H = require("harness")
local fake = require("helpers.fake_host")

local COLUMNS = {
  name = "i.name",
  tag = { expr = "i.tag", type = "exact" },
  note = { expr = "i.note", nullable = true },
  is_task = { expr = "i.is_task", type = "bool" },
  item_id = { expr = "i.item_id", type = "uuid" },
  exact_id = { expr = "i.item_id", type = "uuid_exact" },
  size = { expr = "i.size", type = "int" },
  started_at = { expr = "i.started_at", type = "timestamp" },
}

local ROWS = {
  -- item_id, name, tag, note, is_task, size, started_at
  { "00000000-0000-4000-8000-000000000001", "create_node", "NODE", "first one", false, 1, "2026-01-01T10:00:00Z" },
  { "00000000-0000-4000-8000-000000000002", "modify_node", "NODE", nil, false, 20, "2026-01-02T10:00:00Z" },
  { "00000000-0000-4000-8000-000000000003", "create_port", "PORT", "Core link", false, 3, "2026-01-03T10:00:00Z" },
  { "00000000-0000-4000-8000-000000000004", "task_clean_up", "TASK", "cleanup job", true, 40, "2026-01-04T10:00:00Z" },
  { "00000000-0000-4000-8000-000000000005", "terminate_port", "PORT", "it's done", false, 5, "2026-01-05T10:00:00Z" },
}

local function literal(v)
  if v == nil then
    return "NULL"
  elseif type(v) == "string" then
    return "'" .. v:gsub("'", "''") .. "'"
  end
  return tostring(v)
end

describe("generated SQL on PostgreSQL", function()
  local dir, db, sq, connection, query

  setup(function()
    fake.install()
    sq = require("orch.search_query")
    connection = require("orch.graphql.connection")
    query = require("orch.query")
    dir = H.pg_dir()
    db = H.new_database(dir)
    H.psql(dir, db, "CREATE TABLE items (item_id uuid PRIMARY KEY, name text NOT NULL, tag text NOT NULL, note text,"
      .. " is_task boolean NOT NULL, size int NOT NULL, started_at timestamptz NOT NULL)")
    for _, r in ipairs(ROWS) do
      local values = {}
      for i = 1, 7 do
        values[i] = literal(r[i])
      end
      H.psql(dir, db, "INSERT INTO items VALUES (" .. table.concat(values, ", ") .. ")")
    end
  end)

  -- Runs sql with params bound through PREPARE/EXECUTE; returns the first column's values.
  local function run(sql, params, n)
    local args = {}
    for i = 1, n or #params do
      args[i] = literal(params[i])
    end
    local execute = #args > 0 and ("EXECUTE q(" .. table.concat(args, ", ") .. ");") or "EXECUTE q;"
    local script = "SET TimeZone = 'UTC';\nPREPARE q AS " .. sql .. ";\n" .. execute
    local out = H.psql(dir, db, script)
    local values = {}
    for line in out:gmatch("[^\n]+") do
      values[#values + 1] = line
    end
    return values
  end

  local function names(where, params)
    return run("SELECT i.name FROM items i WHERE " .. where .. " ORDER BY i.name", params)
  end

  it("selects the rows the query language describes", function()
    local cases = {
      { "", { "create_node", "create_port", "modify_node", "task_clean_up", "terminate_port" } },
      { "create_node", { "create_node" } },
      { "CREATE_NODE", { "create_node" } },
      { "create*", { "create_node", "create_port" } },
      { "tag:node", { "create_node", "modify_node" } },
      { "tag:(port|task)", { "create_port", "task_clean_up", "terminate_port" } },
      { "-tag:node -isTask:true", { "create_port", "terminate_port" } },
      { "isTask:true | name:create_port", { "create_port", "task_clean_up" } },
      { "(tag:node | tag:port) -name:create*", { "modify_node", "terminate_port" } },
      { '"core link"', { "create_port" } },
      { '"first o*"', { "create_node" } },
      { "-note:first", { "create_node", "create_port", "modify_node", "task_clean_up", "terminate_port" } },
      { "-note:first*", { "create_port", "modify_node", "task_clean_up", "terminate_port" } },
      { "itemId:00000000-0000-4000-8000-000000000004", { "task_clean_up" } },
      { "exactId:00000000-0000-4000-8000-000000000002", { "modify_node" } },
      { "exactId:not-a-uuid", {} },
      { "size:20", { "modify_node" } },
      { "startedAt:2026-01-03*", { "create_port" } },
      { "unknownKey:x", {} },
      { "it's*", { "terminate_port" } },
    }
    for _, c in ipairs(cases) do
      local where, params = sq.to_sql(c[1], COLUMNS)
      assert.is_string(where, params)
      assert.are.same(c[2], names(where, params), c[1] .. " -> " .. where)
    end
    local where, params = sq.to_sql("node", COLUMNS, nil, { mode = "partial" })
    assert.are.same({ "create_node", "modify_node" }, names(where, params))
  end)

  it("applies filterBy values as core does", function()
    local cases = {
      { { { field = "tag", value = "node-TASK" } }, { "create_node", "modify_node", "task_clean_up" } },
      { { { field = "tag", value = "!port" } }, { "create_node", "modify_node", "task_clean_up" } },
      { { { field = "isTask", value = "false" }, { field = "name", value = "create_port|terminate_port" } },
        { "create_port", "terminate_port" } },
      { { { field = "itemId", value = "00000000-0000-4000-8000-000000000001|00000000-0000-4000-8000-000000000005" } },
        { "create_node", "terminate_port" } },
    }
    for _, c in ipairs(cases) do
      local where, params = sq.filter_by_to_sql(c[1], COLUMNS)
      assert.are.same(c[2], names(where, params), where)
    end
  end)

  it("pages a connection plan and counts its rows", function()
    local spec = {
      select = "i.name",
      from = "items i",
      where = "i.size < $1",
      params = { 100 },
      filters = COLUMNS,
      sorts = { startedAt = "i.started_at", name = "i.name" },
      default_sort = "i.started_at DESC",
      tiebreak = "i.item_id",
    }
    local plan = query.plan({ first = 2, after = 1, filterBy = { { field = "isTask", value = "false" } },
      query = "-name:modify*" }, spec)
    local rows = run(plan.sql, plan.params)
    local page = connection.result(rows, plan.first, plan.after, tonumber(run(plan.count_sql, plan.params,
      plan.count_params)[1]))
    assert.are.same({ "create_port", "create_node" }, page.page)
    assert.are.same({ hasNextPage = false, hasPreviousPage = true, startCursor = 1, endCursor = 2, totalItems = 3,
      sortFields = {}, filterFields = {} }, page.pageInfo)
    plan = query.plan({ first = 3, sortBy = { { field = "name", order = "ASC" } } }, spec)
    rows = run(plan.sql, plan.params)
    assert.are.same({ "create_node", "create_port", "modify_node", "task_clean_up" }, rows)
  end)

  -- The same through the host: our modules in the sandbox, orch.db binding the parameters
  -- and the host's JSON encoding of the response (tests/fixtures/graphql_products).
  local function graphql(body)
    local invoke_bin = assert(os.getenv("ORCH_INVOKE"), "ORCH_INVOKE is not set")
    local uri = string.format("postgresql://postgres@/%s?host=%s", db, dir)
    local cmd = string.format("%s --database %s --lua-dir %s --products %s gqlprobe execute %s 2>&1",
      H.shell_quote(invoke_bin), H.shell_quote(uri), H.shell_quote(H.source .. "/lua"),
      H.shell_quote(H.source .. "/tests/fixtures/graphql_products"), H.shell_quote(H.json.encode(body)))
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok = p:close()
    assert(ok, "orch_invoke failed:\n" .. out)
    return out, H.json.decode(out)
  end

  it("answers a UI-shaped request inside the host", function()
    local text, r = graphql({
      operationName = "ItemList",
      query = [[query ItemList($first: Int!, $after: Int!, $sortBy: [GraphqlSort!], $filterBy: [GraphqlFilter!],
                                $query: String) {
        items(first: $first, after: $after, sortBy: $sortBy, filterBy: $filterBy, query: $query) {
          page { itemId name note isTask size startedAt metadata lastStatus }
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor totalItems sortFields filterFields }
        }
        version { applicationVersions }
      }]],
      variables = { first = 2, after = 0, sortBy = { field = "size", order = "DESC" },
        filterBy = { { field = "tag", value = "port-task" } }, query = "-name:terminate*" },
    })
    assert.is_nil(r.errors, text)
    assert.are.same({ "orchestrator-core 4.6.1" }, r.data.version.applicationVersions)
    local page = r.data.items.page
    assert.are.same({ "task_clean_up", "create_port" }, { page[1].name, page[2].name })
    assert.are.same({ "00000000-0000-4000-8000-000000000004", true, 40, "2026-01-04T10:00:00+00:00", "COMPLETED" },
      { page[1].itemId, page[1].isTask, page[1].size, page[1].startedAt, page[1].lastStatus })
    assert.are.equal("RUNNING", page[2].lastStatus)
    -- metadata is {} (never null).
    assert.matches('"metadata":{}', text, 1, true)
    assert.matches('"note":"Core link"', text, 1, true)
    assert.are.same({ hasNextPage = false, hasPreviousPage = false, startCursor = 0, endCursor = 1, totalItems = 2,
      sortFields = { "name", "size", "startedAt" }, filterFields = { "isTask", "itemId", "name", "note", "tag" } },
      r.data.items.pageInfo)
    text, r = graphql({ query = '{ items(filterBy: [{field: "name", value: "modify_node"}]) { page { name note } } }' })
    assert.are.same({ { name = "modify_node", note = H.json.null } }, r.data.items.page, text)
    assert.matches('"note":null', text, 1, true)
  end)

  it("reports errors the GraphQL way inside the host", function()
    local text, r = graphql({ query = "query Q { items(query: \"(open\") { page { name } } }" })
    assert.are.equal(H.json.null, r.data, text)
    assert.are.equal('Invalid query: Expected ")", got end of query at position 6', r.errors[1].message)
    assert.are.same({ "items" }, r.errors[1].path)
    assert.are.same({ { line = 1, column = 11 } }, r.errors[1].locations)
    text, r = graphql({ query = "query Q { items { page { name } }" })
    assert.is_nil(r.data, text)
    assert.are.equal("Syntax Error: Expected Name, found <EOF>.", r.errors[1].message)
    text, r = graphql({ query = "{ items(filterBy: {field: \"colour\", value: \"red\"}) { page { name } "
      .. "pageInfo { totalItems } } }" })
    assert.are.same({}, r.data.items.page, text)
    assert.matches("^Invalid filter arguments", r.errors[1].message)
  end)

  it("produces tsquery text PostgreSQL accepts", function()
    for _, q in ipairs({ "foo", "foo bar | -baz", "pre*", '"a b*"', "status:(active|term*)", "-insync:false",
      "(a | b) c", "ab-cd_ef", "it's" }) do
      local ts = sq.to_tsquery(q)
      local out = run("SELECT to_tsquery('simple', $1)::text", { ts })
      assert.are.equal(1, #out, q)
    end
  end)
end)
