-- orch.forms: validation of submitted pages, errors located at the field.
local fake = require("helpers.fake_host")

describe("orch.forms validation", function()
  local F, json

  before_each(function()
    fake.install()
    json = require("orch.json")
    F = require("orch.forms")
  end)

  -- Post one page; returns the values or the list of errors.
  local function post(page, input, state, ctx)
    local r = F.post_form(page, state or {}, { input }, ctx or {})
    if r.complete then
      return r.result
    end
    assert.are.equal(400, r.status)
    return nil, r.errors
  end

  local function only_error(page, input)
    local values, errs = post(page, input)
    assert.is_nil(values)
    assert.are.equal(1, #errs)
    return errs[1]
  end

  describe("cast rules", function()
    it("casts integers from whole floats and digit strings, and refuses the rest", function()
      local page = F.page({ F.integer({ "n" }) })
      assert.are.equal(3, post(page, { n = 3 }).n)
      assert.are.equal(3, post(page, { n = 3.0 }).n)
      assert.are.equal("integer", math.type(post(page, { n = " 3 " }).n))
      assert.are.equal(-12, post(page, { n = "-12" }).n)
      assert.are.equal("int_from_float", only_error(page, { n = 3.5 }).type)
      assert.are.equal("int_parsing", only_error(page, { n = "3.5" }).type)
      assert.are.equal("int_parsing", only_error(page, { n = "" }).type)
      local e = only_error(page, { n = true })
      assert.are.equal("int_type", e.type)
      assert.are.equal("Input should be a valid integer", e.msg)
    end)

    it("casts booleans like pydantic", function()
      local page = F.page({ F.boolean({ "b" }) })
      for _, t in ipairs({ true, 1, "true", "YES", "on", "t", "1", "y" }) do
        assert.is_true(post(page, { b = t }).b, tostring(t))
      end
      for _, f in ipairs({ false, 0, "false", "No", "off", "f", "0", "n" }) do
        assert.is_false(post(page, { b = f }).b, tostring(f))
      end
      assert.are.equal("bool_parsing", only_error(page, { b = "maybe" }).type)
      assert.are.equal("bool_type", only_error(page, { b = 2 }).type)
    end)

    it("accepts only strings for strings, and checks lengths and a Lua pattern", function()
      local page = F.page({ F.string({ "s", min_length = 2, max_length = 3, match = "^%l+$", pattern = "^[a-z]+$" }) })
      assert.are.equal("abc", post(page, { s = "abc" }).s)
      assert.are.equal("string_type", only_error(page, { s = 12 }).type)
      local e = only_error(page, { s = "a" })
      assert.are.equal("string_too_short", e.type)
      assert.are.equal("String should have at least 2 characters", e.msg)
      assert.are.equal("String should have at most 3 characters", only_error(page, { s = "abcd" }).msg)
      e = only_error(page, { s = "AB" })
      assert.are.equal("string_pattern_mismatch", e.type)
      assert.are.equal("String should match pattern '^[a-z]+$'", e.msg)
    end)

    it("never shows a Lua pattern: the field's message, else the pattern in words", function()
      local page = F.page({ F.string({ "name", match = "^[a-z][a-z0-9%-]*$" }) })
      local e = only_error(page, { name = "Bad Name" })
      assert.are.equal("string_pattern_mismatch", e.type)
      assert.are.equal("String should be a lower-case letter (a-z), then any number of lower-case letters (a-z), "
        .. "digits (0-9) or '-'", e.msg)
      assert.is_nil(e.msg:find("%", 1, true))
      assert.is_nil(e.ctx.pattern)
      page = F.page({ F.string({ "asn", match = "^AS%d+$", message = "an AS number such as AS1103" }) })
      e = only_error(page, { asn = "1103" })
      assert.are.equal("an AS number such as AS1103", e.msg)
      -- What cannot be put in words is said without the pattern.
      page = F.page({ F.string({ "x", match = "^(%d+)$" }) })
      assert.are.equal("String does not have the expected format", only_error(page, { x = "a" }).msg)
    end)

    it("normalises uuids", function()
      local page = F.page({ F.uuid({ "id" }) })
      assert.are.equal(
        "0b0e9a52-3c59-4a43-a9a4-00000000000a",
        post(page, { id = "0B0E9A52-3C59-4A43-A9A4-00000000000A" }).id
      )
      local plain = "0b0e9a523c594a43a9a400000000000a"
      assert.are.equal("0b0e9a52-3c59-4a43-a9a4-00000000000a", post(page, { id = plain }).id)
      assert.are.equal("uuid_parsing", only_error(page, { id = "nope" }).type)
      assert.are.equal("uuid_type", only_error(page, { id = 5 }).type)
    end)

    it("checks numeric bounds", function()
      local page = F.page({ F.integer({ "n", min = 2, max = 8 }), F.number({ "x", gt = 0, lt = 1 }) })
      local _, errs = post(page, { n = 1, x = 1 })
      assert.are.equal(2, #errs)
      assert.are.same({ "n" }, errs[1].loc)
      assert.are.equal("greater_than_equal", errs[1].type)
      assert.are.equal("Input should be greater than or equal to 2", errs[1].msg)
      assert.are.equal(2, errs[1].ctx.ge)
      assert.are.same({ "x" }, errs[2].loc)
      assert.are.equal("less_than", errs[2].type)
      assert.are.equal("less_than_equal", only_error(page, { n = "9", x = 0.5 }).type)
    end)
  end)

  it("reports a missing required field with pydantic's entry", function()
    local e = only_error(F.page({ F.string({ "node_name" }) }), {})
    assert.are.same({ "node_name" }, e.loc)
    assert.are.equal("missing", e.type)
    assert.are.equal("Field required", e.msg)
    assert.are.equal("https://errors.pydantic.dev/2.13/v/missing", e.url)
    assert.are.equal('{"type":"missing","loc":["node_name"],"msg":"Field required","input":{},'
      .. '"url":"https://errors.pydantic.dev/2.13/v/missing"}', json.encode(e))
  end)

  it("refuses unknown inputs after the field errors, in name order", function()
    local _, errs = post(F.page({ F.integer({ "a" }) }), { zz = 1, a = "x", b = true })
    assert.are.same({ "a" }, errs[1].loc)
    assert.are.same({ "b" }, errs[2].loc)
    assert.are.same({ "zz" }, errs[3].loc)
    assert.are.equal("extra_forbidden", errs[2].type)
    assert.are.equal("Extra inputs are not permitted", errs[2].msg)
  end)

  it("checks choices and locates list item errors at their index", function()
    local page = F.page({
      F.choice({ "leg", options = { "a", "b", "c" } }),
      F.multi_choice({ "ports", options = { "p1", "p2" }, min_items = 2, max_items = 2, unique = true }),
    })
    local _, errs = post(page, { leg = "d", ports = { "p1", "p9" } })
    assert.are.equal("enum", errs[1].type)
    assert.are.equal("Input should be 'a', 'b' or 'c'", errs[1].msg)
    assert.are.equal("'a', 'b' or 'c'", errs[1].ctx.expected)
    assert.are.same({ "ports", 1 }, errs[2].loc)
    local e = only_error(page, { leg = "a", ports = { "p1" } })
    assert.are.equal("too_short", e.type)
    assert.are.equal("List should have at least 2 items after validation, not 1", e.msg)
    local r = F.post_form(page, {}, { { leg = "a", ports = { "p1" } } })
    assert.are.equal(
      "1 validation error for FormPage\nports\n  List should have at least 2 items after validation, not 1 "
        .. "(type=too_short; field_type=List; min_length=2; actual_length=1)",
      r.body.detail
    )
    assert.are.equal("List should have at most 2 items after validation, not 3", only_error(page, {
      leg = "a",
      ports = { "p1", "p2", "p1" },
    }).msg)
    assert.are.equal("unique_list", only_error(page, { leg = "a", ports = { "p1", "p1" } }).type)
    assert.are.equal("list_type", only_error(page, { leg = "a", ports = "p1" }).type)
    local values = post(page, { leg = "b", ports = { "p2", "p1" } })
    assert.are.equal('["p2","p1"]', json.encode(values.ports))
  end)

  it("validates items of scalar lists and keeps an empty list an array", function()
    local page = F.page({ F.list({ "vlans", of = "integer", max_items = 3 }) })
    assert.are.same({ 5, 6 }, post(page, { vlans = { "5", 6 } }).vlans)
    assert.are.same({ "vlans", 0 }, only_error(page, { vlans = { "x" } }).loc)
    assert.are.equal('{"vlans":[]}', json.encode(post(page, { vlans = json.array() })))
  end)

  it("fills optional and defaulted fields and validates defaults too", function()
    local seen
    local page = F.page({
      F.string({ "description", optional = true }),
      F.boolean({ "enabled", default = true }),
      F.string({
        "vlan",
        default = "0",
        validate = function(v)
          seen = v
          if v == "0" then
            return nil, "vlan must have a value"
          end
        end,
      }),
    })
    local e = only_error(page, {})
    assert.are.equal("0", seen)
    assert.are.same({ "vlan" }, e.loc)
    assert.are.equal("value_error", e.type)
    assert.are.equal("vlan must have a value", e.msg)
    assert.are.equal("vlan must have a value", e.ctx.error)
    local values = post(page, { vlan = "5", description = json.null })
    assert.are.equal(json.null, values.description)
    assert.is_true(values.enabled)
    assert.are.equal("string_type", only_error(F.page({ F.string({ "s" }) }), { s = json.null }).type)
  end)

  it("runs field validators in order with the values validated so far", function()
    local calls = {}
    local page = F.page({
      F.integer({ "a" }),
      F.integer({ "bad" }),
      F.integer({
        "b",
        validate = {
          function(v, values, ctx, state)
            calls[#calls + 1] = { values.a, values.bad, ctx.who, state.prior }
            return v * 10
          end,
          function(v)
            return v + 1
          end,
        },
      }),
    })
    local _, errs = post(page, { a = 1, bad = "x", b = 2 }, { prior = "yes" }, { who = "ctx" })
    assert.are.same({ { 1, nil, "ctx", "yes" } }, calls)
    assert.are.equal(1, #errs)
    local values = post(page, { a = 1, bad = 5, b = 2 })
    assert.are.equal(21, values.b)
  end)

  it("lets validators raise forms.invalid with a location under the field", function()
    local page = F.page({
      F.list({
        "names",
        validate = function(v)
          for i, n in ipairs(v) do
            if n == "" then
              F.invalid("empty name", { i - 1 })
            end
          end
        end,
      }),
    })
    local e = only_error(page, { names = { "a", "" } })
    assert.are.same({ "names", 1 }, e.loc)
    assert.are.equal("empty name", e.msg)
  end)

  it("propagates errors of validators that are not validation errors", function()
    local page = F.page({
      F.string({
        "s",
        validate = function()
          error("bug in validator")
        end,
      }),
    })
    assert.has_error(function()
      post(page, { s = "x" })
    end)
  end)

  it("runs page validators after the fields, with errors at __root__ or a named field", function()
    local page = F.page({
      F.choice({ "node_a", options = { "n1", "n2" } }),
      F.choice({ "node_b", options = { "n1", "n2" } }),
      validate = function(values)
        if values.node_a == values.node_b then
          return nil, "A and B must differ"
        end
      end,
    })
    local e = only_error(page, { node_a = "n1", node_b = "n1" })
    assert.are.same({ "__root__" }, e.loc)
    assert.are.equal("A and B must differ", e.msg)
    -- not run when a field is already wrong
    assert.are.same({ "node_b" }, only_error(page, { node_a = "n1", node_b = "x" }).loc)
    local named = F.page({
      F.integer({ "a" }),
      validate = function()
        F.invalid("too high", { "a" })
      end,
    })
    assert.are.same({ "a" }, only_error(named, { a = 9 }).loc)
  end)

  it("ignores what is submitted for display-only fields and keeps them in the result", function()
    local page = F.page({
      F.label({ "header", default = "Details" }),
      F.divider({ "d" }),
      F.callout({ "note", message = "x" }),
      F.summary({ "summary", data = { labels = {} } }),
      F.display_subscription({ "sub", value = "s-1" }),
    })
    local values = post(page, { header = "changed", d = "x", sub = "other" })
    assert.are.equal("Details", values.header)
    assert.are.equal(json.null, values.d)
    assert.are.equal(json.null, values.note)
    assert.are.equal(json.null, values.summary)
    assert.are.equal("s-1", values.sub)
  end)

  it("accepts a read-only field omitted or unchanged, and refuses another value", function()
    local page = F.page({ F.read_only({ "node_name", value = "n1" }), F.read_only({ "ids", value = { 1, 2 } }) })
    assert.are.equal("n1", post(page, {}).node_name)
    assert.are.same({ 1, 2 }, post(page, { node_name = "n1", ids = { 1, 2 } }).ids)
    local e = only_error(page, { node_name = "n2" })
    assert.are.equal("literal_error", e.type)
    assert.are.equal("Input should be 'n1'", e.msg)
    e = only_error(page, { ids = { 2, 1 } })
    assert.are.equal("Cannot change values for a readonly list", e.msg)
  end)

  it("refuses a page input that is not an object", function()
    local e = only_error(F.page({ F.string({ "s", optional = true }) }), json.array({ 1 }))
    assert.are.same({ "__root__" }, e.loc)
    assert.are.equal("model_type", e.type)
  end)
end)
