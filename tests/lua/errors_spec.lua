-- orch.errors (the domain errors services raise) and orch.api.errors (the one table that
-- says how the HTTP API answers each).
local fake = require("helpers.fake_host")

describe("domain errors", function()
  local errors, api_errors, json

  before_each(function()
    fake.install()
    errors = require("orch.errors")
    api_errors = require("orch.api.errors")
    json = require("orch.json")
  end)

  it("carry their kind and read as their detail", function()
    local ok, e = pcall(errors.raise, "not_found", "Process not found")
    assert.is_false(ok)
    assert.are.equal("not_found", errors.kind(e))
    assert.are.equal("Process not found", tostring(e))
    assert.are.equal("Process not found", e.message)
    assert.is_nil(errors.kind("a plain error"))
    assert.is_nil(errors.kind({ message = "not a domain error" }))
  end)

  it("refuse an unknown kind at the raiser's line", function()
    local ok, e = pcall(errors.new, "teapot", "short and stout")
    assert.is_false(ok)
    assert.matches("unknown kind 'teapot'", e)
  end)

  it("each have an HTTP status, and only the kinds there are", function()
    for kind in pairs(errors.KINDS) do
      assert.is_number(api_errors.STATUS[kind], kind)
    end
    for kind in pairs(api_errors.STATUS) do
      assert.is_string(errors.KINDS[kind], kind)
    end
  end)

  it("become core's problem details", function()
    local p = api_errors.to_problem(errors.new("conflict", "This process is not in an awaiting state."))
    assert.is_true(p.__problem)
    assert.are.equal(409, p.status)
    assert.are.equal("This process is not in an awaiting state.", p.detail)
    local body = { type = "FormNotCompleteError", title = "Form not complete", status = 510, form = {} }
    p = api_errors.to_problem(errors.new("form_not_complete", "Form not complete", body))
    assert.are.equal(510, p.status)
    assert.are.same(body, json.decode(p.body_json))
    assert.are.equal(500, api_errors.to_problem("boom").status)
  end)
end)
