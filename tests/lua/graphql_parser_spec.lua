-- orch.graphql parser: the syntax the UI's documents use (reference orchestrator-ui.md §3.5)
-- and the rest of the executable grammar, errors with locations, and bounded work.
local fake = require("helpers.fake_host")

describe("orch.graphql.parser", function()
  local parser, graphql

  before_each(function()
    fake.install()
    parser = require("orch.graphql.parser")
    graphql = require("orch.graphql")
  end)

  local function parse_ok(text)
    local doc, err = parser.parse(text)
    assert.is_nil(err and err.message, err and err.message)
    assert.are.equal("Document", doc.kind)
    return doc
  end

  local function parse_err(text)
    local doc, err = parser.parse(text)
    assert.is_nil(doc)
    assert.is_string(err.message)
    assert.are.equal(1, #err.locations)
    return err
  end

  -- Written for these tests: the shapes the UI sends (named queries, the five variable
  -- types, literals of every kind with variables inside objects and lists, a fragment
  -- defined after the operation, a variable in a nested field's arguments, depth 6).
  local UI_LIKE = {
    [[query Header { version { applicationVersions } }]],
    [[
      query Pick($first: Int!, $after: Int!, $sortBy: [GraphqlSort!], $filterBy: [GraphqlFilter!], $query: String) {
        processes(first: $first, after: $after, sortBy: $sortBy, filterBy: $filterBy, query: $query) {
          page { processId product { name tag } customer { fullname } subscriptions { page { subscriptionId } } }
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor totalItems sortFields filterFields }
        }
      }]],
    [[
      query One($id: String!) {
        subscriptions(filterBy: {field: "subscriptionId", value: $id}) { page { ...Detail } }
      }
      fragment Detail on SubscriptionInterface {
        subscriptionId metadata
        processes(first: 1000000, after: 0, sortBy: {field: "startedAt", order: ASC}) {
          page { processId lastStatus }
        }
        productBlockInstances { id subscription { subscriptionId } parent }
      }]],
    [[
      query Many($ids: String!) {
        subscriptions(first: 1000000, after: 0,
                      filterBy: [{field: "subscriptionId", value: $ids}, {field: "status", value: "active|initial"}]) {
          page { product { name } status }
        }
      }]],
    [[
      query Cards($first: Int!, $after: Int!, $sortBy: [GraphqlSort!], $filterBy: [GraphqlFilter!]) {
        products(first: $first, after: $after, sortBy: $sortBy) {
          page { name subscriptions(filterBy: $filterBy) { pageInfo { totalItems } } }
        }
      }]],
    [[
      query Deep($a: Int!) {
        l1 { l2(n: $a) { l3 { l4 { l5 { l6 } } } } }
      }]],
  }

  it("parses documents with every syntax feature the UI uses", function()
    for _, text in ipairs(UI_LIKE) do
      parse_ok(text)
    end
  end)

  it("builds the AST with names, arguments, variables and locations", function()
    local doc = parse_ok(UI_LIKE[3])
    assert.are.equal(2, #doc.definitions)
    local op, frag = doc.definitions[1], doc.definitions[2]
    assert.are.equal("OperationDefinition", op.kind)
    assert.are.equal("query", op.operation)
    assert.are.equal("One", op.name)
    assert.are.same({ line = 1, column = 7 }, op.loc)
    local vd = op.variable_definitions[1]
    assert.are.equal("id", vd.variable)
    assert.are.equal("NonNullType", vd.type.kind)
    assert.are.equal("String", vd.type.type.name)
    local field = op.selection_set.selections[1]
    assert.are.equal("subscriptions", field.name)
    assert.are.same({ line = 2, column = 9 }, field.loc)
    local arg = field.arguments[1]
    assert.are.equal("filterBy", arg.name)
    assert.are.equal("ObjectValue", arg.value.kind)
    assert.are.equal("field", arg.value.fields[1].name)
    assert.are.same({ kind = "StringValue", value = "subscriptionId", block = false, loc = { line = 2, column = 41 } },
      arg.value.fields[1].value)
    assert.are.same({ kind = "Variable", name = "id", loc = { line = 2, column = 66 } }, arg.value.fields[2].value)
    local spread = field.selection_set.selections[1].selection_set.selections[1]
    assert.are.same({ kind = "FragmentSpread", name = "Detail", directives = {}, loc = { line = 2, column = 81 } },
      spread)
    assert.are.equal("FragmentDefinition", frag.kind)
    assert.are.equal("Detail", frag.name)
    assert.are.equal("SubscriptionInterface", frag.type_condition)
    local processes = frag.selection_set.selections[3]
    local sort = processes.arguments[3].value
    assert.are.equal("EnumValue", sort.fields[2].value.kind)
    assert.are.equal("ASC", sort.fields[2].value.value)
    assert.are.equal("IntValue", processes.arguments[1].value.kind)
    assert.are.equal("1000000", processes.arguments[1].value.value)
  end)

  it("parses the rest of the executable grammar", function()
    local doc = parse_ok([==[
      # a comment
      query Everything($n: Int = 10, $f: Float = -1.5e3, $s: String = "x", $b: Boolean = true,
                       $list: [[Int!]!] = [[1, 2], [3]], $o: In = {a: null, b: [ENUM]}) @live {
        alias: field(int: -0, float: 0.25, str: "q\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00", block: """
            first
              second \""" quote
        """, yes: true, no: false, nothing: null, enum: DESC, list: [1, "two", THREE],
        obj: {nested: {deeper: [$n, {x: $s}]}}) @include(if: $b) @skip(if: false) {
          ... on Thing { id }
          ... @include(if: true) { other }
          ...Named @skip(if: false)
          __typename
        }
      }
      fragment Named on Thing { name }
      mutation Change { doIt(x: 1) { ok } }
      subscription Watch { events }
      { shorthand }
    ]==])
    assert.are.equal(5, #doc.definitions)
    local op = doc.definitions[1]
    assert.are.equal("Float", op.variable_definitions[2].type.name)
    assert.are.equal("-1.5e3", op.variable_definitions[2].default_value.value)
    local list_type = op.variable_definitions[5].type
    assert.are.equal("ListType", list_type.kind)
    assert.are.equal("NonNullType", list_type.type.kind)
    assert.are.equal("live", op.directives[1].name)
    local f = op.selection_set.selections[1]
    assert.are.equal("alias", f.alias)
    assert.are.equal("field", f.name)
    local args = {}
    for _, a in ipairs(f.arguments) do
      args[a.name] = a.value
    end
    assert.are.equal("FloatValue", args.float.kind)
    assert.are.equal('q"\\/\b\f\n\r\t\u{e9}\u{1F600}', args.str.value)
    assert.is_true(args.block.block)
    assert.are.equal('first\n  second """ quote', args.block.value)
    assert.are.equal(true, args.yes.value)
    assert.are.equal(false, args.no.value)
    assert.are.equal("NullValue", args.nothing.kind)
    assert.are.equal("EnumValue", args.enum.kind)
    assert.are.equal(3, #args.list.values)
    assert.are.equal("Variable", args.obj.fields[1].value.fields[1].value.values[2].fields[1].value.kind)
    assert.are.same({ "include", "skip" }, { f.directives[1].name, f.directives[2].name })
    local sels = f.selection_set.selections
    assert.are.equal("InlineFragment", sels[1].kind)
    assert.are.equal("Thing", sels[1].type_condition)
    assert.are.equal("InlineFragment", sels[2].kind)
    assert.is_nil(sels[2].type_condition)
    assert.are.equal("FragmentSpread", sels[3].kind)
    assert.are.equal("__typename", sels[4].name)
    assert.are.equal("mutation", doc.definitions[3].operation)
    assert.are.equal("subscription", doc.definitions[4].operation)
    assert.is_nil(doc.definitions[5].name)
  end)

  it("reports malformed documents as GraphQL errors with locations", function()
    local cases = {
      { "", "Syntax Error: Unexpected <EOF>.", 1, 1 },
      { "query Q { a", "Syntax Error: Expected Name, found <EOF>.", 1, 12 },
      { "query Q { }", 'Syntax Error: Expected Name, found "}".', 1, 11 },
      { "query Q {\n  a(x: ) }", 'Syntax Error: Unexpected ")".', 2, 8 },
      { 'query Q { a(x: "open) }', "Syntax Error: Unterminated string.", 1, 24 },
      { "query Q { a(x: 01) }", 'Syntax Error: Invalid number, unexpected digit after 0: "1".', 1, 16 },
      { "query Q { a(x: 1.) }", 'Syntax Error: Invalid number, expected digit but got: ")".', 1, 18 },
      { "query Q { a(x: 'q') }", "Syntax Error: Unexpected single quote character ('), did you mean to use a double "
        .. 'quote (")?', 1, 16 },
      { 'query Q { a(x: "\\q") }', "Syntax Error: Invalid character escape sequence: \\q.", 1, 17 },
      { 'query Q { a(x: "\\uD800") }', "Syntax Error: Invalid Unicode escape sequence: unpaired surrogate.", 1, 17 },
      { "query Q($v Int) { a }", 'Syntax Error: Expected ":", found Name "Int".', 1, 12 },
      { "query Q($v: Int = $w) { a }", 'Syntax Error: Unexpected "$".', 1, 19 },
      { "fragment on on T { a }", 'Syntax Error: Unexpected Name "on".', 1, 10 },
      { "fragment F T { a }", 'Syntax Error: Expected "on", found Name "T".', 1, 12 },
      { "query Q { a } garbage", 'Syntax Error: Unexpected Name "garbage".', 1, 15 },
      { "query Q { a } .", 'Syntax Error: Unexpected ".".', 1, 15 },
      { "query Q { ä }", "Syntax Error: Unexpected character: U+00E4.", 1, 11 },
      { "query Q {\n\n   a(x: [1, 2 }", 'Syntax Error: Unexpected "}".', 3, 15 },
    }
    for _, c in ipairs(cases) do
      local err = parse_err(c[1])
      assert.are.equal(c[2], err.message, c[1])
      assert.are.same({ line = c[3], column = c[4] }, err.locations[1], c[1])
    end
  end)

  it("bounds the size, the token count and the nesting depth", function()
    local big = "query Q { " .. string.rep("a ", 200000) .. "}"
    assert.matches("larger than", parse_err(big).message)
    local many = "query Q { " .. string.rep("a ", 60000) .. "}"
    assert.matches("more than 50000 tokens", parse_err(many).message)
    local deep = "query Q " .. string.rep("{ a ", 100) .. string.rep("}", 100)
    assert.matches("deeper than", parse_err(deep).message)
    local deep_value = "query Q { a(x: " .. string.rep("[", 1000) .. string.rep("]", 1000) .. ") }"
    assert.matches("deeper than", parse_err(deep_value).message)
    parse_ok("query Q " .. string.rep("{ a ", 40) .. string.rep("}", 40))
  end)

  it("parses type references for schema declarations", function()
    local t = parser.parse_type("[GraphqlSort!]!")
    assert.are.equal("NonNullType", t.kind)
    assert.are.equal("GraphqlSort", t.type.type.type.name)
    local bad, err = parser.parse_type("[Int")
    assert.is_nil(bad)
    assert.matches("Expected", err)
  end)

  -- A tiny deterministic generator so that failures are reproducible.
  local function rng(seed)
    local state = seed
    return function(n)
      state = (state * 1103515245 + 12345) % 2147483648
      return state % n
    end
  end

  it("never raises on random bytes, token soup or truncated documents", function()
    local schema = { types = { Query = { fields = { a = function()
      return 1
    end } } } }
    local function check(text)
      local ok, doc, err = pcall(parser.parse, text)
      assert.is_true(ok, doc)
      if not doc then
        assert.is_string(err.message)
        assert.is_number(err.locations[1].line)
        assert.is_number(err.locations[1].column)
      end
      local eok, response = pcall(graphql.execute, schema, { query = text }, {})
      assert.is_true(eok, response)
      assert.is_table(response.data or response.errors)
    end
    local r = rng(7)
    for _ = 1, 1500 do
      local bytes = {}
      for i = 1, r(60) do
        bytes[i] = string.char(r(256))
      end
      check(table.concat(bytes))
    end
    local soup = { "{", "}", "(", ")", "[", "]", "$", ":", "!", "=", "@", "...", "on", "query", "fragment", "a",
      '"s"', '"""b"""', "1", "-2.5e3", "true", "null", "|", "&", "#c\n", "\\u", '"\\u12', "\n", "\r\n", "\239\187\191" }
    for _ = 1, 1500 do
      local parts = {}
      for i = 1, r(40) do
        parts[i] = soup[r(#soup) + 1]
      end
      check(table.concat(parts, " "))
    end
    for _, text in ipairs(UI_LIKE) do
      for n = 0, #text do
        check(text:sub(1, n))
      end
    end
  end)
end)
