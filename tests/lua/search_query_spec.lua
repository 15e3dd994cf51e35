-- orch.search_query: the list pages' `query` language and filterBy, compiled to SQL with
-- placeholders, and the tsquery text for subscriptions.
local fake = require("helpers.fake_host")

describe("orch.search_query", function()
  local sq

  -- A mapping like a resolver would give for processes.
  local COLUMNS = {
    workflow_name = "p.workflow_name",
    last_status = { expr = "p.last_status", type = "exact" },
    is_task = { expr = "p.is_task", type = "bool" },
    process_id = { expr = "p.process_id", type = "uuid" },
    note = { expr = "p.note", nullable = true },
    subscription_id = function(node, param)
      if node.kind ~= "Word" then
        return "FALSE"
      end
      return "p.process_id IN (SELECT process_id FROM processes_subscriptions WHERE subscription_id::text = "
        .. param(node.value) .. ")"
    end,
  }
  local ANY = "(p.last_status ILIKE %s OR coalesce(p.note, '') ILIKE %s OR CAST(p.process_id AS text) ILIKE %s"
    .. " OR p.process_id IN (SELECT process_id FROM processes_subscriptions WHERE subscription_id::text = %s)"
    .. " OR p.workflow_name ILIKE %s)"
  local function any(ph)
    return string.format(ANY, ph, ph, ph, ph, ph)
  end

  before_each(function()
    fake.install()
    sq = require("orch.search_query")
  end)

  local function compile(q, mode)
    local sql, params = sq.to_sql(q, COLUMNS, nil, { mode = mode })
    assert.is_string(sql, params)
    return sql, params
  end

  it("parses terms, alternatives, negation, groups, phrases, prefixes and key:value", function()
    local ast = sq.parse('a -b* | (c "d e*") key:v k2:(x|"y z") -k3:w')
    assert.are.same({
      kind = "Query",
      exprs = {
        { kind = "AndExpression", terms = {
          { kind = "Word", value = "a" },
          { kind = "Negation", term = { kind = "PrefixWord", value = "b" } },
        } },
        { kind = "AndExpression", terms = {
          { kind = "Group", query = { kind = "Query", exprs = { { kind = "AndExpression", terms = {
            { kind = "Word", value = "c" },
            { kind = "Phrase", words = { { kind = "Word", value = "d" }, { kind = "PrefixWord", value = "e" } } },
          } } } } },
          { kind = "KVTerm", key = { kind = "Word", value = "key" }, value = { kind = "Word", value = "v" } },
          { kind = "KVTerm", key = { kind = "Word", value = "k2" }, value = { kind = "ValueGroup", values = {
            { kind = "Word", value = "x" },
            { kind = "Phrase", words = { { kind = "Word", value = "y" }, { kind = "Word", value = "z" } } },
          } } },
          { kind = "Negation", term = {
            kind = "KVTerm", key = { kind = "Word", value = "k3" }, value = { kind = "Word", value = "w" } } },
        } },
      },
    }, ast)
  end)

  it("keeps dashes inside words and skips the characters core ignores", function()
    local ast = sq.parse("6b1c4e7a-0000-4000-8000-00000000abcd !x <y>")
    assert.are.same({ "6b1c4e7a-0000-4000-8000-00000000abcd", "x", "y" }, {
      ast.exprs[1].terms[1].value, ast.exprs[1].terms[2].value, ast.exprs[1].terms[3].value })
  end)

  it("compiles a bare word to an OR over every column, with one placeholder", function()
    local sql, params = compile("Foo")
    assert.are.equal(any("$1"), sql)
    assert.are.same({ "Foo" }, params)
  end)

  it("compiles words AND-ed, alternatives OR-ed and negations", function()
    local sql, params = compile("foo bar | -baz")
    assert.are.equal("((" .. any("$1") .. " AND " .. any("$2") .. ") OR NOT (" .. any("$3") .. "))", sql)
    assert.are.same({ "foo", "bar", "baz" }, params)
  end)

  it("compiles key:value per column kind, camelCase keys included", function()
    local cases = {
      { "workflowName:create_node", "p.workflow_name ILIKE $1", { "create_node" } },
      { "workflow_name:create*", "p.workflow_name ILIKE $1", { "create%" } },
      { 'workflowName:"create node*"', "p.workflow_name ILIKE $1", { "create node%" } },
      { "lastStatus:(completed|fail*)", "(p.last_status ILIKE $1 OR p.last_status ILIKE $2)",
        { "completed", "fail%" } },
      { "isTask:TRUE", "p.is_task = $1", { true } },
      { "isTask:false", "p.is_task = $1", { false } },
      { "isTask:maybe", "FALSE", {} },
      { "processId:6b1c4e7a*", "CAST(p.process_id AS text) ILIKE $1", { "6b1c4e7a%" } },
      { "note:x", "coalesce(p.note, '') ILIKE $1", { "x" } },
      { "-note:x", "NOT (coalesce(p.note, '') ILIKE $1)", { "x" } },
      { "subscriptionId:abc", "p.process_id IN (SELECT process_id FROM processes_subscriptions WHERE "
        .. "subscription_id::text = $1)", { "abc" } },
      { "customer:acme", "FALSE", {} },
      { '"workflowName":x', "p.workflow_name ILIKE $1", { "x" } },
      { "name*:x", "TRUE", {} },
      { "", "TRUE", {} },
      { "   ", "TRUE", {} },
      { "-", "TRUE", {} },
    }
    for _, c in ipairs(cases) do
      local sql, params = compile(c[1])
      assert.are.equal(c[2], sql, c[1])
      assert.are.same(c[3], params, c[1])
    end
  end)

  it("matches anywhere in partial mode", function()
    local sql, params = compile("workflowName:node lastStatus:comp", "partial")
    assert.are.equal("(p.workflow_name ILIKE $1 AND p.last_status ILIKE $2)", sql)
    assert.are.same({ "%node%", "comp" }, params)
  end)

  it("never puts values into the SQL text", function()
    local sql, params = compile("workflowName:x';DELETE Robert';DROP")
    assert.is_nil(sql:find("DROP", 1, true))
    assert.is_nil(sql:find("DELETE", 1, true))
    assert.is_nil(sql:find("';", 1, true))
    assert.are.same({ "x';DELETE", "Robert';DROP" }, params)
  end)

  it("continues the numbering of existing parameters", function()
    local params = { "fixed" }
    local sql = sq.to_sql("isTask:true foo", COLUMNS, params)
    assert.are.equal("(p.is_task = $2 AND " .. any("$3") .. ")", sql)
    assert.are.same({ "fixed", true, "foo" }, params)
  end)

  it("reports malformed queries", function()
    local cases = {
      { "(a", 'Expected ")", got end of query at position 3' },
      { "a)", 'Expected end of query, got ")" at position 2' },
      { "((a) | b", 'Expected ")", got end of query at position 9' },
      { '"open', 'Expected """, got end of query at position 6' },
      { "key:", "The value after a key can not be empty at position 4" },
      { 'key:""', "The value after a key can not be empty at position 4" },
      { "key:()", 'Expected a value, got ")" at position 6' },
      { "key:(a b)", 'Expected "|" or ")", got a word at position 8' },
      { "--a", 'Expected "|", got "-" at position 2' },
      { "*", 'Expected "|", got "*" at position 1' },
      { string.rep("(", 40) .. "a" .. string.rep(")", 40), "Groups are nested too deeply at position 33" },
    }
    for _, c in ipairs(cases) do
      local sql, err = sq.to_sql(c[1], COLUMNS)
      assert.is_nil(sql, c[1])
      assert.are.equal(c[2], err, c[1])
    end
    assert.are.same({ nil, "query must be a string" }, { sq.parse(5) })
    assert.matches("longer than", select(2, sq.parse(string.rep("a", sq.MAX_LENGTH + 1))))
  end)

  it("never raises on arbitrary input", function()
    local state = 11
    local alphabet = { "a", "b", " ", "|", "-", "*", "(", ")", ":", '"', "!", "<", "x:", "\0", "\255" }
    for _ = 1, 3000 do
      local parts = {}
      for i = 1, state % 17 do
        state = (state * 1103515245 + 12345) % 2147483648
        parts[i] = alphabet[state % #alphabet + 1]
      end
      local text = table.concat(parts)
      local ok, sql, params = pcall(sq.to_sql, text, COLUMNS)
      assert.is_true(ok, sql)
      assert.is_true(sql == nil and type(params) == "string" or type(sql) == "string", text)
      local tok, ts = pcall(sq.to_tsquery, text)
      assert.is_true(tok, ts)
    end
  end)

  it("compiles filterBy with core's value syntax", function()
    local cases = {
      { { { field = "lastStatus", value = "completed-aborted" } }, "(p.last_status ILIKE $1 OR p.last_status ILIKE $2)",
        { "completed", "aborted" } },
      { { { field = "lastStatus", value = "Failed" } }, "p.last_status ILIKE $1", { "Failed" } },
      { { { field = "isTask", value = "true" } }, "p.is_task = $1", { true } },
      { { { field = "lastStatus", value = "!completed" } }, "NOT (p.last_status ILIKE $1)", { "completed" } },
      -- Fields ending in "id" split on "|" only, so UUIDs keep their dashes.
      { { { field = "processId", value = "6b1c4e7a-0000-4000-8000-00000000abcd|x-y" } },
        "(CAST(p.process_id AS text) ILIKE $1 OR CAST(p.process_id AS text) ILIKE $2)",
        { "6b1c4e7a-0000-4000-8000-00000000abcd", "x-y" } },
      { { { field = "isTask", value = "false" }, { field = "workflowName", value = "a|b" } },
        "p.is_task = $1 AND (p.workflow_name ILIKE $2 OR p.workflow_name ILIKE $3)", { false, "a", "b" } },
      { {}, "TRUE", {} },
    }
    for _, c in ipairs(cases) do
      local sql, params, invalid = sq.filter_by_to_sql(c[1], COLUMNS)
      assert.are.equal(c[2], sql)
      assert.are.same(c[3], params)
      assert.are.same({}, invalid)
    end
    local sql, params, invalid = sq.filter_by_to_sql({ { field = "bogus", value = "x" },
      { field = "workflowName", value = "y" } }, COLUMNS)
    assert.are.equal("p.workflow_name ILIKE $1", sql)
    assert.are.same({ "y" }, params)
    assert.are.same({ "bogus" }, invalid)
    local none, err = sq.filter_by_to_sql({ { field = "lastStatus", value = "-|" } }, COLUMNS)
    assert.is_nil(none)
    assert.are.equal("Invalid filter arguments", err)
  end)

  it("names the fields of a mapping in camelCase", function()
    assert.are.same({ "isTask", "lastStatus", "note", "processId", "subscriptionId", "workflowName" },
      sq.field_names(COLUMNS))
    assert.are.equal("product_block_id", sq.camel_to_snake("productBlockId"))
    assert.are.equal("in_use_by_ids", sq.camel_to_snake("inUseByIds"))
    assert.are.equal("already_snake", sq.camel_to_snake("already_snake"))
    assert.are.equal("productBlockId", sq.snake_to_camel("product_block_id"))
  end)

  it("compiles the tsquery text core uses for subscriptions", function()
    local cases = {
      { "", "" },
      { "foo", "foo" },
      { "foo bar", "foo & bar" },
      { "foo | bar", "foo | bar" },
      { "-foo", "!foo" },
      { "pre*", "pre:*" },
      { '"a b*"', "a <-> b:*" },
      { '-"a b"', "!(a <-> b)" },
      { "status:active", "status <-> active" },
      { "productName:(fw|l2vpn*)", "(product <-> name) <-> (fw | l2vpn:*)" },
      { "-insync:false", "!(insync <-> false)" },
      { "(a | b) c", "(a | b) & c" },
      { "ab-cd_ef@gh", "(ab <-> cd <-> ef <-> gh)" },
      { "it's", 'it"s' },
      { "--", nil },
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[2], (sq.to_tsquery(c[1])), c[1])
    end
  end)
end)
