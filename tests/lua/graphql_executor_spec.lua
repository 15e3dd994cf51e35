-- orch.graphql executor: selections, aliases, fragments, variables, errors, resolver info.
local fake = require("helpers.fake_host")

describe("orch.graphql executor", function()
  local graphql, json, schema, calls

  before_each(function()
    fake.install()
    graphql = require("orch.graphql")
    json = require("orch.json")
    calls = {}
    local customers = {
      { customerId = "c1", fullname = "Acme", shortcode = "ACM" },
      { customerId = "c2", fullname = "Globex", shortcode = "GLX" },
    }
    local people = {
      { __typename = "Person", id = "p1", name = "Ada", owner_of = { "Engine" } },
      { __typename = "Robot", id = "r1", name = "R2", model = "astromech" },
    }
    schema = graphql.connection.install({
      types = {
        Query = {
          fields = {
            hello = {
              type = "String!",
              args = { name = { type = "String", default = "world" } },
              resolve = function(args)
                return "hello " .. args.name
              end,
            },
            echo = { type = "JSON", resolve = function(args, _, info)
              calls[#calls + 1] = info
              return args
            end },
            customers = {
              type = "CustomerConnection!",
              args = graphql.connection.ARGS,
              resolve = function(args, _, info)
                calls[#calls + 1] = info
                return graphql.connection.from_list(customers, args, {
                  filters = { customerId = true, fullname = true },
                  sorts = { fullname = true },
                  info = info,
                })
              end,
            },
            beings = { type = "[Being!]!", resolve = function()
              return people
            end },
            broken = { type = "Broken", resolve = function()
              return { fine = "yes" }
            end },
            strict = { type = "Broken!", resolve = function()
              return { fine = "yes" }
            end },
            fails = { type = "String", resolve = function()
              graphql.error("no luck", { code = "NOPE" })
            end },
            crashes = { type = "String", resolve = function()
              error("boom")
            end },
            raw = { resolve = function()
              return { nested = { list = json.array({ 1, 2 }) }, empty = json.array(), obj = {} }
            end },
            ctx = { type = "String", resolve = function(_, ctx)
              return ctx.user
            end },
            numbers = { type = "[Int]", resolve = function()
              return { 1, "two", 3 }
            end },
            warns = { type = "Int", resolve = function(_, _, info)
              info:add_error("careful")
              return 5
            end },
          },
        },
        Mutation = {
          fields = {
            bump = { type = "Int!", args = { by = "Int!" }, resolve = function(args)
              return args.by + 1
            end },
          },
        },
        CustomerConnection = graphql.connection.type("Customer"),
        Customer = {
          fields = {
            customerId = "String!",
            fullname = "String",
            shortcode = "String",
            code = { type = "String", from = "shortcode" },
            greeting = { type = "String", args = { prefix = "String!" }, resolve = function(parent, args)
              return args.prefix .. " " .. parent.fullname
            end },
          },
        },
        Being = { kind = "interface" },
        Person = { interfaces = { "Being" }, fields = { id = "ID!", name = "String", owner_of = "[String]" } },
        Robot = { interfaces = { "Being" }, fields = { id = "ID!", name = "String", model = "String" } },
        Broken = {
          fields = {
            fine = "String",
            bad = { type = "String!", resolve = function()
              return nil
            end },
          },
        },
      },
    })
  end)

  local function run(query, variables, operation_name, ctx)
    return graphql.execute(schema, { query = query, variables = variables, operationName = operation_name }, ctx or {})
  end

  local function ok(query, variables, operation_name)
    local r = run(query, variables, operation_name)
    assert.is_nil(r.errors, r.errors and json.encode(r.errors))
    return r.data
  end

  it("returns exactly the selected fields, with aliases and __typename", function()
    local data = ok([[query Q {
      customers(first: 5) {
        page { customerId name: fullname __typename code greeting(prefix: "Hi") }
        info: pageInfo { totalItems }
      }
      __typename
    }]])
    assert.are.same({
      customers = {
        page = {
          { customerId = "c1", name = "Acme", __typename = "Customer", code = "ACM", greeting = "Hi Acme" },
          { customerId = "c2", name = "Globex", __typename = "Customer", code = "GLX", greeting = "Hi Globex" },
        },
        info = { totalItems = 2 },
      },
      __typename = "Query",
    }, data)
    assert.are.equal(getmetatable(json.array()), getmetatable(data.customers.page))
  end)

  it("merges fields of fragments, inline fragments and repeated selections", function()
    local data = ok([[
      query Q { customers { page { ...A ... on Customer { shortcode } fullname customerId } } }
      fragment A on Customer { customerId ...B }
      fragment B on Customer { fullname }
    ]])
    assert.are.same({ customerId = "c1", fullname = "Acme", shortcode = "ACM" }, data.customers.page[1])
  end)

  it("applies type conditions on interfaces and concrete types", function()
    local data = ok([[query Q {
      beings { __typename id ... on Person { name owner_of } ... on Robot { model } ...R }
    }
    fragment R on Robot { name }]])
    assert.are.same({
      { __typename = "Person", id = "p1", name = "Ada", owner_of = { "Engine" } },
      { __typename = "Robot", id = "r1", model = "astromech", name = "R2" },
    }, data.beings)
  end)

  it("honours @include and @skip with literals and variables", function()
    local data = ok([[query Q($yes: Boolean!, $no: Boolean = false) {
      a: hello @include(if: $yes)
      b: hello @skip(if: $yes)
      c: hello @include(if: $no)
      d: hello @skip(if: false)
      ... @include(if: false) { e: hello }
    }]], { yes = true })
    assert.are.same({ a = "hello world", d = "hello world" }, data)
  end)

  it("coerces variables: defaults, single values into lists, input objects with defaults", function()
    local data = ok([[query Q($name: String = "there", $sort: [GraphqlSort!], $filter: [GraphqlFilter!]) {
      hello(name: $name)
      echo(sort: $sort, filter: $filter)
      customers(sortBy: $sort) { page { fullname } }
    }]], {
      sort = { field = "fullname", order = "DESC" },
      filter = json.decode('[{"field":"customerId","value":"c1"}]'),
    })
    assert.are.equal("hello there", data.hello)
    assert.are.same({
      sort = { { field = "fullname", order = "DESC" } },
      filter = { { field = "customerId", value = "c1" } },
    }, data.echo)
    assert.are.same({ { fullname = "Globex" }, { fullname = "Acme" } }, data.customers.page)
    -- The declared argument type fills the input object's default (order = ASC).
    local info = calls[#calls]
    assert.are.equal("customers", info.field_name)
    data = ok([[query Q { customers(sortBy: {field: "fullname"}) { page { fullname } } }]])
    assert.are.same({ { fullname = "Acme" }, { fullname = "Globex" } }, data.customers.page)
  end)

  it("substitutes variables inside object and list literals, also on nested fields", function()
    local data = ok([[query Q($id: String!, $first: Int!, $prefix: String!, $unsetOptional: String) {
      customers(first: $first, filterBy: [{field: "customerId", value: $id}]) {
        page { fullname greeting(prefix: $prefix) }
        pageInfo { totalItems hasNextPage }
      }
      echo(deep: {list: [$id, {again: $first}], missing: $unsetOptional})
    }]], { id = "c2", first = 1, prefix = "Yo" })
    assert.are.same({ { fullname = "Globex", greeting = "Yo Globex" } }, data.customers.page)
    assert.are.same({ totalItems = 1, hasNextPage = false }, data.customers.pageInfo)
    assert.are.same({ deep = { list = { "c2", { again = 1 } } } }, data.echo)
  end)

  it("rejects a document using an undefined variable", function()
    local r = run([[query Q { echo(x: $nope) }]])
    assert.is_nil(r.data)
    assert.are.equal('Variable "$nope" is not defined by operation "Q".', r.errors[1].message)
    assert.are.same({ { line = 1, column = 19 } }, r.errors[1].locations)
  end)

  it("reports bad variables as request errors", function()
    local cases = {
      { "query Q($n: Int!) { hello }", nil, 'Variable "$n" of required type "Int!" was not provided.' },
      { "query Q($n: Int!) { hello }", { n = "x" }, 'Variable "$n" got invalid value ; Int cannot represent '
        .. 'non-integer value: "x"' },
      { "query Q($n: Int!) { hello }", { n = json.null }, 'Variable "$n" got invalid value null; Expected '
        .. 'non-nullable type "Int!" not to be null.' },
      { "query Q($s: [GraphqlSort!]) { hello }", { s = { order = "UP", field = "x" } },
        'Variable "$s" got invalid value ; Value "UP" does not exist in "SortOrder" enum.' },
      { "query Q($s: GraphqlFilter) { hello }", { s = { field = "x" } },
        'Variable "$s" got invalid value ; Field "GraphqlFilter.value" of required type "String!" was not provided.' },
      { "query Q($s: GraphqlFilter) { hello }", { s = { field = "x", value = "y", z = 1 } },
        'Variable "$s" got invalid value ; Field "z" is not defined by type "GraphqlFilter".' },
      { "query Q($n: Int = \"x\") { hello }", nil, 'Variable "$n" has invalid default value: Int cannot represent '
        .. 'non-integer value: "x"' },
    }
    for _, c in ipairs(cases) do
      local r = run(c[1], c[2])
      assert.is_nil(r.data, c[1])
      assert.are.equal(c[3], r.errors[1].message)
    end
  end)

  it("selects the operation by operationName", function()
    local doc = "query A { a: hello } query B { b: hello(name: \"B\") }"
    assert.are.same({ b = "hello B" }, ok(doc, nil, "B"))
    assert.are.same({ a = "hello world" }, ok(doc, nil, "A"))
    local r = run(doc)
    assert.are.equal("Must provide operation name if query contains multiple operations.", r.errors[1].message)
    r = run(doc, nil, "C")
    assert.are.equal('Unknown operation named "C".', r.errors[1].message)
    r = run("query A { hello } query A { hello }", nil, "A")
    assert.are.equal('There can be only one operation named "A".', r.errors[1].message)
    r = run("fragment F on Query { hello }")
    assert.are.equal("Document contains no operation.", r.errors[1].message)
  end)

  it("collects field errors with paths and keeps partial data", function()
    local r = run([[query Q {
      hello
      fails
      crashes
      nullable: broken { fine bad }
      customers { page { greeting } }
    }]])
    assert.are.equal("hello world", r.data.hello)
    assert.are.equal(json.null, r.data.fails)
    assert.are.equal(json.null, r.data.crashes)
    assert.are.equal(json.null, r.data.nullable)
    local by_path = {}
    for _, e in ipairs(r.errors) do
      by_path[table.concat(e.path, "/")] = e
    end
    assert.are.equal("no luck", by_path.fails.message)
    assert.are.same({ code = "NOPE" }, by_path.fails.extensions)
    assert.are.same({ { line = 3, column = 7 } }, by_path.fails.locations)
    assert.matches("boom$", by_path.crashes.message)
    assert.are.equal("Cannot return null for non-nullable field Broken.bad.", by_path["nullable/bad"].message)
    -- A missing required argument nulls the (nullable) field.
    assert.matches('Argument "prefix" of required type "String!" was not provided',
      by_path["customers/page/0/greeting"].message)
    assert.are.equal(json.null, r.data.customers.page[2].greeting)
  end)

  it("propagates a null up to the data root through non-null fields", function()
    local r = run([[query Q { hello strict { bad } }]])
    assert.are.equal(json.null, r.data)
    assert.are.same({ "strict", "bad" }, { r.errors[1].path[1], r.errors[1].path[2] })
    assert.are.equal(1, #r.errors)
  end)

  it("checks leaf values and subselections against declared types", function()
    local r = run([[query Q { numbers echo { x } broken }]])
    assert.are.same({ 1, json.null, 3 }, r.data.numbers)
    local messages = {}
    for _, e in ipairs(r.errors) do
      messages[table.concat(e.path, "/")] = e.message
    end
    assert.are.equal('Int cannot represent non-integer value: "two"', messages["numbers/1"])
    assert.are.equal('Field "Query.echo" must not have a selection since type "JSON" has no subfields.',
      messages.echo)
    assert.are.equal('Field "Query.broken" of type "Broken" must have a selection of subfields.', messages.broken)
  end)

  it("rejects unknown fields and arguments of declared types", function()
    local r = run([[query Q { nope customers(bogus: 1) { page { fullname } } }]])
    local messages = {}
    for _, e in ipairs(r.errors) do
      messages[#messages + 1] = e.message
    end
    table.sort(messages)
    assert.are.same({
      'Cannot query field "nope" on type "Query".',
      'Unknown argument "bogus" on field "Query.customers".',
    }, messages)
  end)

  it("passes undeclared leaves through as JSON and reads plain table fields", function()
    local data = ok([[query Q { raw { nested { list } empty obj } }]])
    assert.are.same({ list = { 1, 2 } }, data.raw.nested)
    assert.are.equal("[]", json.encode(data.raw.empty))
    assert.are.equal("{}", json.encode(data.raw.obj))
    assert.are.equal('{"list":[1,2]}', json.encode(data.raw.nested))
  end)

  it("hands ctx to resolvers and records non-fatal errors", function()
    local r = run("query Q { ctx warns }", nil, nil, { user = "alice" })
    assert.are.same({ ctx = "alice", warns = 5 }, r.data)
    assert.are.equal("careful", r.errors[1].message)
    assert.are.same({ "warns" }, r.errors[1].path)
  end)

  it("tells resolvers which subfields are selected", function()
    ok([[query Q {
      customers {
        page { fullname alias: shortcode ...F }
        pageInfo { totalItems }
      }
    }
    fragment F on Customer { greeting(prefix: "x") }]])
    local info = calls[#calls]
    assert.is_true(info:selects("page"))
    assert.is_true(info:selects("page.fullname"))
    assert.is_true(info:selects("page.shortcode"))
    assert.is_true(info:selects("page.greeting"))
    assert.is_true(info:selects("pageInfo.totalItems"))
    assert.is_false(info:selects("pageInfo.hasNextPage"))
    assert.is_false(info:selects("page.customerId"))
    assert.is_false(info:selects("page.fullname.deeper"))
    assert.are.same({
      page = { fullname = true, shortcode = true, greeting = true },
      pageInfo = { totalItems = true },
    }, info:selections())
    assert.are.same({ "customers" }, info.path)
    assert.are.equal("Query", info.parent_type)
    assert.are.equal("CustomerConnection!", info.return_type)
  end)

  it("runs mutations against the mutation root", function()
    assert.are.same({ bump = 42 }, ok("mutation M { bump(by: 41) }"))
    local r = graphql.execute({ types = { Query = { fields = { a = "Int" } } } }, { query = "mutation { a }" })
    assert.are.equal("Schema is not configured for mutations.", r.errors[1].message)
    r = run("subscription S { hello }")
    assert.matches("not supported", r.errors[1].message)
  end)

  it("rejects invalid documents: unknown fragments, cycles, duplicates, unknown directives", function()
    local cases = {
      { "query Q { ...Missing }", 'Unknown fragment "Missing".' },
      { "query Q { ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        'Cannot spread fragment "A" within itself.' },
      { "query Q { ...A } fragment A on Query { hello } fragment A on Query { hello }",
        'There can be only one fragment named "A".' },
      { "query Q { hello @cached }", 'Unknown directive "@cached".' },
      { "query Q { hello @include }", 'Argument "if" of required type "Boolean!" was not provided on directive '
        .. '"@include".' },
    }
    for _, c in ipairs(cases) do
      local r = run(c[1])
      assert.is_nil(r.data, c[1])
      assert.are.equal(c[2], (r.errors[1].message:gsub('fragment "B" within', 'fragment "A" within')))
    end
  end)

  it("bounds the work of fragment fan-out", function()
    local parts = { "query Q { ...F0 }" }
    for i = 0, 19 do
      parts[#parts + 1] = string.format("fragment F%d on Query { a%d: hello ...F%d ...G%d }", i, i, i + 1, i + 1)
      parts[#parts + 1] = string.format("fragment G%d on Query { b%d: hello ...F%d }", i + 1, i, i + 1)
    end
    parts[#parts + 1] = "fragment F20 on Query { hello }"
    local r = run(table.concat(parts, "\n"))
    assert.is_table(r.data or r.errors)
  end)

  it("validates the request body", function()
    local function msg(body)
      return graphql.execute(schema, body, {}).errors[1].message
    end
    assert.are.equal("Must provide query string.", msg({}))
    assert.are.equal("Must provide query string.", msg({ query = 5 }))
    assert.are.equal("Request body must be a JSON object.", msg("x"))
    assert.are.equal("Variables must be provided as a JSON object.", msg({ query = "{ hello }", variables = { 1 } }))
    assert.are.equal("operationName must be a string.", msg({ query = "{ hello }", operationName = 3 }))
    local r = graphql.execute(schema, { query = "{ hello }", variables = json.null, operationName = json.null }, {})
    assert.are.same({ hello = "hello world" }, r.data)
    r = graphql.execute(schema, { query = "{ hello(" }, {})
    assert.are.same({ { line = 1, column = 9 } }, r.errors[1].locations)
  end)

  it("reports a malformed schema without raising; compile_schema raises early", function()
    local bad = { types = { Query = { fields = { a = "[Int" } } } }
    local r = graphql.execute(bad, { query = "{ a }" }, {})
    assert.matches("^Internal error: .*invalid GraphQL type reference '%[Int'", r.errors[1].message)
    assert.has_error(function()
      graphql.compile_schema(bad)
    end)
    assert.are.equal(graphql.compile_schema(schema), graphql.compile_schema(schema))
  end)

  it("encodes a response as the GraphQL JSON shape", function()
    local r = run('query Q { fails customers(first: 1, after: 1) { page { fullname } pageInfo { startCursor endCursor '
      .. 'hasPreviousPage hasNextPage sortFields filterFields } } }')
    local back = json.decode(json.encode(r))
    assert.are.same({ fullname = "Globex" }, back.data.customers.page[1])
    assert.are.same({ startCursor = 1, endCursor = 1, hasPreviousPage = true, hasNextPage = false,
      sortFields = { "fullname" }, filterFields = { "customerId", "fullname" } }, back.data.customers.pageInfo)
    assert.are.equal(json.null, back.data.fails)
    assert.are.same({ "fails" }, back.errors[1].path)
  end)
  describe("limits of one operation", function()
    local executor, saved

    before_each(function()
      executor = require("orch.graphql.executor") -- the instance orch.graphql uses
      saved = {}
      for k, v in pairs(executor.limits) do
        saved[k] = v
      end
    end)

    after_each(function()
      for k, v in pairs(saved) do
        executor.limits[k] = v
      end
    end)

    local function aliased(n, field)
      local parts = {}
      for i = 1, n do
        parts[i] = "a" .. i .. ": " .. field
      end
      return "{ " .. table.concat(parts, " ") .. " }"
    end

    it("refuses 500 aliased connections before any resolver runs", function()
      local r = run(aliased(500, "customers { page { fullname } }"))
      assert.is_nil(r.data)
      assert.are.equal(1, #r.errors)
      assert.matches("more than 20 root fields", r.errors[1].message)
      assert.are.equal(1, r.errors[1].locations[1].line)
      assert.are.equal(0, #calls)
      -- 20 are fine
      assert.is_nil(run(aliased(20, "customers { page { fullname } }")).errors)
    end)

    it("counts root fields spread by fragments", function()
      local r = run("query { ...F ...F } fragment F on Query { " .. aliased(11, "hello"):sub(3, -3) .. " }")
      assert.matches("more than 20 root fields", r.errors[1].message)
    end)

    it("refuses too many aliases and too many fields", function()
      executor.limits.max_aliases = 3
      local r = run("{ customers { page { a: fullname b: fullname c: fullname d: fullname } } }")
      assert.matches("more than 3 aliases", r.errors[1].message)
      assert.is_nil(r.data)
      executor.limits.max_fields = 10
      -- a fragment spread 4 times counts 4 times: 1 + 1 + 4 * 3 fields
      r = run("{ customers { page { ...C ...C ...C ...C } } } fragment C on Customer { fullname shortcode code }")
      assert.matches("more than 10 fields", r.errors[1].message)
      assert.are.equal(0, #calls)
    end)

    it("caps the size of the answer", function()
      executor.limits.max_answer_bytes = 200
      local r = run("{ customers { page { customerId fullname shortcode } } }")
      assert.is_nil(r.errors, r.errors and json.encode(r.errors))
      r = run("{ " .. aliased(10, "customers { page { customerId fullname shortcode } }"):sub(3, -3) .. " }")
      assert.is_nil(r.data)
      assert.matches("answer would be larger than 200 bytes", r.errors[1].message)
      -- a JSON leaf counts as its encoding
      r = run('{ echo(big: "' .. string.rep("x", 300) .. '") }')
      assert.matches("larger than 200 bytes", r.errors[1].message)
    end)
  end)
end)
