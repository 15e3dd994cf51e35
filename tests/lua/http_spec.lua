-- orch.http.dispatch: handler resolution, JSON bodies and problem errors.
local fake = require("helpers.fake_host")

describe("orch.http", function()
  local http

  before_each(function()
    fake.install()
    http = require("orch.http")
    package.loaded["orch.api.test_handlers"] = {
      echo = function(req)
        return 201, { got = req.json }, { ["X-Test"] = "yes" }
      end,
      text = function()
        return 200, http.raw("plain", "text/plain")
      end,
      missing = function()
        http.raise(404, "Thing not found")
      end,
    }
  end)

  it("decodes a JSON body and encodes the result", function()
    local status, body, headers = http.dispatch({ handler = "test_handlers.echo", json_body = true, body = '{"a":[]}' })
    assert.are.equal(201, status)
    assert.are.equal('{"got":{"a":[]}}', body)
    assert.are.equal("yes", headers["X-Test"])
  end)

  it("turns malformed JSON into a 400 problem", function()
    local ok, err = pcall(http.dispatch, { handler = "test_handlers.echo", json_body = true, body = "{" })
    assert.is_false(ok)
    assert.is_true(err.__problem)
    assert.are.equal(400, err.status)
    assert.matches("Malformed JSON", err.detail)
  end)

  it("passes raw bodies through with their content type", function()
    local status, body, _, ctype = http.dispatch({ handler = "test_handlers.text" })
    assert.are.equal(200, status)
    assert.are.equal("plain", body)
    assert.are.equal("text/plain", ctype)
  end)

  it("raises problems with status and detail", function()
    local ok, err = pcall(http.dispatch, { handler = "test_handlers.missing" })
    assert.is_false(ok)
    assert.are.equal(404, err.status)
    assert.are.equal("Thing not found", err.detail)
    assert.are.equal("HTTP 404: Thing not found", tostring(err))
  end)

  it("fails clearly for a handler that does not exist", function()
    assert.has_error(function()
      http.dispatch({ handler = "test_handlers.nope" })
    end, "route handler 'test_handlers.nope' does not exist")
  end)
end)
