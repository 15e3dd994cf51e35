-- orch.forms: the post_form protocol (510 / 400 / complete / overflow) and replay.
local fake = require("helpers.fake_host")

describe("orch.forms protocol", function()
  local F, json

  before_each(function()
    fake.install()
    json = require("orch.json")
    F = require("orch.forms")
  end)

  -- core's test wizard: page 2 depends on the answer of page 1
  local function wizard(state)
    local first = coroutine.yield(F.page({
      title = "Some title",
      name = "TestForm1",
      F.choice({ "generic_select1", enum_name = "TestChoices", options = { "a", "b" } }),
    }))
    local second
    if first.generic_select1 == "a" then
      second = coroutine.yield(F.page({
        name = "TestForm2",
        F.choice({ "generic_select2", enum_name = "TestChoices", options = { "a", "b" } }),
      }))
    else
      second = coroutine.yield(F.page({
        name = "TestForm3",
        has_next = false,
        F.choice({ "generic_select3", enum_name = "TestChoices", options = { "a", "b" } }),
      }))
    end
    assert(state.generic_select1 == first.generic_select1, "the working state follows the pages")
    return {
      generic_select1 = first.generic_select1,
      generic_select2 = second.generic_select2,
      generic_select3 = second.generic_select3,
      previous = state.previous,
    }
  end

  it("answers 510 with the first page for no inputs", function()
    local r = F.post_form(wizard, { previous = true }, {})
    assert.is_false(r.complete)
    assert.are.equal(510, r.status)
    assert.are.equal(
      '{"$defs":{"TestChoices":{"enum":["a","b"],"title":"TestChoices","type":"string"}},'
        .. '"additionalProperties":false,"properties":{"generic_select1":{"$ref":"#/$defs/TestChoices"}},'
        .. '"required":["generic_select1"],"title":"Some title","type":"object"}',
      json.encode(r.form)
    )
    local body = json.decode(json.encode(r.body))
    assert.are.equal("FormNotCompleteError", body.type)
    assert.are.equal("Form not complete", body.title)
    assert.are.equal(510, body.status)
    assert.are.same({ hasNext = true }, body.meta)
    assert.are.same(json.decode(json.encode(r.form)), body.form)
    assert.are.equal("string", type(body.detail))
    assert.is_truthy(body.detail:find("{'$defs': {'TestChoices': {'enum': ['a', 'b']", 1, true))
  end)

  it("writes the 510 body keys in pydantic-forms' order", function()
    local text = json.encode(F.post_form(wizard, {}, {}).body)
    assert.is_truthy(text:match('^{"type":"FormNotCompleteError","detail":".-","title":"Form not complete",'
      .. '"status":510,"form":{.*},"meta":{"hasNext":true}}$'))
  end)

  it("replays the submitted pages and asks for the page that depends on them", function()
    local r = F.post_form(wizard, { previous = true }, { { generic_select1 = "b" } })
    assert.are.equal(510, r.status)
    assert.are.equal("unknown", r.form.title)
    assert.is_not_nil(r.form.properties.generic_select3)
    assert.are.same({ hasNext = false }, json.decode(json.encode(r.body)).meta)
    r = F.post_form(wizard, { previous = true }, { { generic_select1 = "a" } })
    assert.is_not_nil(r.form.properties.generic_select2)
  end)

  it("completes with the form's result", function()
    local r = F.post_form(wizard, { previous = true }, { { generic_select1 = "b" }, { generic_select3 = "a" } })
    assert.is_true(r.complete)
    assert.are.same({ generic_select1 = "b", generic_select3 = "a", previous = true }, r.result)
    assert.are.equal(2, r.pages)
  end)

  it("answers 400 with the errors of the failing page and pydantic-forms' detail", function()
    local r = F.post_form(wizard, {}, { { generic_select1 = "b" }, { generic_select3 = 1, extra_data = false } })
    assert.are.equal(400, r.status)
    assert.are.equal(2, r.page)
    local body = r.body
    assert.are.equal("FormValidationError", body.type)
    assert.are.equal("Form not valid", body.title)
    assert.are.equal(400, body.status)
    assert.are.equal(
      "2 validation errors for TestForm3\ngeneric_select3\n"
        .. "  Input should be 'a' or 'b' (type=enum; expected='a' or 'b')\n"
        .. "extra_data\n  Extra inputs are not permitted (type=extra_forbidden)",
      body.detail
    )
    local decoded = json.decode(json.encode(body))
    assert.are.same({ "generic_select3" }, decoded.validation_errors[1].loc)
    assert.are.same({ "extra_data" }, decoded.validation_errors[2].loc)
    assert.is_truthy(json.encode(body):match('^{"type":"FormValidationError","detail":".-","title":"Form not valid",'
      .. '"status":400,"validation_errors":%[{"type":"enum","loc":%["generic_select3"%],"msg":'))
  end)

  it("answers 400 FormOverflowError for more pages than the form asks", function()
    local r = F.post_form(wizard, {}, { { generic_select1 = "b" }, { generic_select3 = "a" }, { to_much = true } })
    assert.is_false(r.complete)
    assert.are.equal(400, r.status)
    assert.are.equal(
      '{"type":"FormOverflowError","detail":"Did not process all user_inputs (1 remaining)",'
        .. '"title":"Bad Request","status":400}',
      json.encode(r.body)
    )
  end)

  it("is deterministic: the same inputs give the same answer byte for byte", function()
    local ctx = {
      ports = function()
        return { { "p2", "Port 2" }, { "p1", "Port 1" } }
      end,
    }
    local function form()
      local a = coroutine.yield(F.page({ F.integer({ "n", min = 1 }) }))
      coroutine.yield(F.page({
        F.multi_choice({
          "ports",
          options = function(_, c)
            return c.ports()
          end,
          min_items = a.n,
          max_items = a.n,
        }),
        F.summary({ "s", data = { labels = { "n" }, columns = { { tostring(a.n) } } } }),
      }))
    end
    local inputs = { { n = 2 } }
    local first = json.encode(F.post_form(form, { x = 1 }, inputs, ctx).body)
    for _ = 1, 5 do
      assert.are.equal(first, json.encode(F.post_form(form, { x = 1 }, inputs, ctx).body))
    end
    local bad = { { n = 2 }, { ports = { "p1" }, zz = 1, yy = 2 } }
    local first_400 = json.encode(F.post_form(form, {}, bad, ctx).body)
    assert.are.equal(first_400, json.encode(F.post_form(form, {}, bad, ctx).body))
  end)

  it("does not change the caller's state or inputs", function()
    local state = { keep = json.array() }
    local inputs = { { generic_select1 = "b" } }
    F.post_form(wizard, state, inputs)
    assert.are.same({ keep = {} }, state)
    assert.are.equal(1, #inputs)
    assert.are.equal("[]", json.encode(state.keep))
  end)

  it("returns the merged page values when the form returns nothing", function()
    local function form()
      coroutine.yield(F.page({ F.string({ "a" }) }))
      coroutine.yield(F.page({ F.string({ "b" }), F.label({ "l" }) }))
    end
    local r = F.post_form(form, {}, { { a = "1" }, { b = "2" } })
    assert.are.same({ a = "1", b = "2", l = json.null }, r.result)
  end)

  it("accepts a single page (or a function returning one) as a simple form", function()
    local page = F.page({ F.integer({ "n" }) })
    assert.are.equal(510, F.post_form(page, {}, {}).status)
    assert.are.same({ n = 4 }, F.post_form(page, {}, { { n = "4" } }).result)
    local function simple()
      return page
    end
    assert.are.same({ n = 5 }, F.post_form(simple, {}, { { n = 5 } }).result)
    assert.are.equal(400, F.post_form(page, {}, { { n = 5 }, {} }).status)
  end)

  it("completes with nothing for no form, and replays core's empty default page", function()
    assert.are.same({ complete = true, result = {}, pages = 0 }, F.post_form(nil, {}, {}))
    local r = F.post_form(F.EMPTY_PAGE, {}, {})
    assert.are.equal(510, r.status)
    assert.are.equal(
      '{"additionalProperties":false,"properties":{},"title":"unknown","type":"object"}',
      json.encode(r.form)
    )
    assert.are.equal("null", json.encode(r.body.meta))
    assert.is_true(F.post_form(F.EMPTY_PAGE, {}, { {} }).complete)
    assert.are.equal(400, F.post_form(F.EMPTY_PAGE, {}, { { x = 1 } }).status)
  end)

  it("turns forms.invalid raised by the form body into a 400 for the last page", function()
    local function form()
      local a = coroutine.yield(F.page({ name = "Lookup", F.string({ "name" }) }))
      if a.name == "ghost" then
        F.invalid("Subscription ghost not found", { "name" })
      end
      return a
    end
    local r = F.post_form(form, {}, { { name = "ghost" } })
    assert.are.equal(400, r.status)
    assert.are.same({ "name" }, r.errors[1].loc)
    assert.are.equal("1 validation error for Lookup\nname\n  Subscription ghost not found (type=value_error; "
      .. "error=Subscription ghost not found)", r.body.detail)
  end)

  it("raises the errors of a broken form", function()
    assert.has_error(function()
      F.post_form(function()
        coroutine.yield({ "not a page" })
      end, {}, {})
    end, "form page 1: a form must yield forms.page{...}, got table")
    assert.has_error(function()
      F.post_form(function()
        error("boom", 0)
      end, {}, {})
    end, "boom")
    assert.has_error(function()
      F.post_form(function()
        return 5
      end, {}, {})
    end)
  end)

  it("runs nested forms with forms.run and merges their pages", function()
    local function inner(state)
      coroutine.yield(F.page({ F.string({ "b" }) }))
      coroutine.yield(F.page({ F.string({ "c", default = state.a }) }))
    end
    local function outer(state, ctx)
      local a = coroutine.yield(F.page({ F.string({ "a" }) }))
      local rest = F.run(inner, state, ctx)
      rest.a = a.a
      return rest
    end
    local r = F.post_form(outer, {}, { { a = "x" }, { b = "y" }, {} })
    assert.are.same({ a = "x", b = "y", c = "x" }, r.result)
    assert.has_error(function()
      F.run(inner, {}, {})
    end)
  end)

  it("generates the pending form or nil when complete", function()
    local form = F.generate_form(wizard, {}, { { generic_select1 = "a" } })
    assert.is_not_nil(form.properties.generic_select2)
    assert.is_nil(F.generate_form(wizard, {}, { { generic_select1 = "a" }, { generic_select2 = "b" } }))
    local none, r = F.generate_form(wizard, {}, { { generic_select1 = "x" } })
    assert.is_nil(none)
    assert.are.equal(400, r.status)
  end)
end)
