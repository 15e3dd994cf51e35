-- What answers never show (orch.redact) and the policy's decisions (orch.policy),
-- without the host (docs/security.md).
local fake = require("helpers.fake_host")

describe("orch.redact", function()
  local redact, json

  before_each(function()
    fake.install()
    package.loaded["orch.redact"] = nil
    redact = require("orch.redact")
    json = require("orch.json")
  end)

  it("drops __callback keys and masks callback tokens, keeping arrays and null", function()
    local v = {
      current_state = { __callback_token = "abc", __callback_timeout = 5, keep = 1,
        callback_route = "/api/processes/p/callback/abcdef0123", nested = { __callback_result_key = "x" } },
      steps = json.array({ { state = { route = "/x/callback/tok/progress" } } }),
      gone = json.null,
    }
    local r = redact.value(v)
    assert.is_nil(r.current_state.__callback_token)
    assert.is_nil(r.current_state.__callback_timeout)
    assert.is_nil(r.current_state.nested.__callback_result_key)
    assert.are.equal(1, r.current_state.keep)
    assert.are.equal("/api/processes/p/callback/***", r.current_state.callback_route)
    assert.are.equal("/x/callback/***/progress", r.steps[1].state.route)
    assert.is_true(json.is_array(r.steps))
    assert.are.equal(json.null, r.gone)
    assert.are.equal("abc", v.current_state.__callback_token) -- a copy: the input is untouched
  end)

  it("makes script paths relative to their folder", function()
    _G.orch._host = { folders = function()
      return "/srv/orch/lua", "/srv/orch/products"
    end }
    assert.are.equal("node.lua:12: boom; lua/orch/x.lua:3: in function",
      redact.paths("/srv/orch/products/node.lua:12: boom; /srv/orch/lua/orch/x.lua:3: in function"))
  end)
end)

describe("GraphQL errors for the client", function()
  it("hide database messages behind the request id and make paths relative", function()
    fake.install()
    local logged = {}
    _G.orch.log = setmetatable({}, { __index = function()
      return function(...)
        logged[#logged + 1] = table.concat({ ... }, " ")
      end
    end })
    _G.orch._host = { folders = function()
      return "/srv/lua", "/srv/products"
    end }
    local api = require("orch.api.graphql")
    local result = api._clean_errors({ errors = {
      { message = 'database: relation "secret_table" does not exist' },
      { message = "/srv/products/node.lua:3: attempt to index a nil value" },
      { message = 'Cannot query field "x" on type "Query".' },
    } }, { request_id = "abc123" })
    assert.are.equal("Internal error (request id abc123)", result.errors[1].message)
    assert.are.equal("node.lua:3: attempt to index a nil value", result.errors[2].message)
    assert.are.equal('Cannot query field "x" on type "Query".', result.errors[3].message)
    assert.matches("abc123", logged[1])
    assert.matches("secret_table", logged[1])
  end)
end)

describe("orch.policy", function()
  local policy

  before_each(function()
    fake.install()
    package.loaded["orch.policy"] = nil
    package.loaded.policy = nil
  end)

  local function load(auth, fn)
    _G.orch._host = { auth = function()
      return auth
    end }
    package.loaded.policy = fn
    policy = require("orch.policy")
  end

  it("allows everything with auth off and no policy", function()
    load({ active = false }, nil)
    assert.is_true((policy.check({ action = "processes.delete" })))
  end)

  it("lets users read and the write group write with auth on", function()
    load({ active = true, write_group = "w" }, nil)
    local reader, writer = { groups = { "r" } }, { groups = { "w" } }
    assert.is_true((policy.check({ action = "processes.read", user = reader })))
    assert.is_true((policy.check({ action = "graphql.query.processes", user = reader })))
    assert.is_true((policy.check({ action = "health.read" })))
    local ok, reason = policy.check({ action = "processes.start", user = reader })
    assert.is_false(ok)
    assert.matches("processes.start", reason)
    assert.is_true((policy.check({ action = "processes.start", user = writer })))
    ok, reason = policy.check({ action = "processes.read" })
    assert.is_false(ok)
    assert.are.equal("Not authenticated", reason)
  end)

  it("follows the policy's allow, deny and abstain; errors deny", function()
    load({ active = true }, function(ctx)
      if ctx.action == "a" then
        return "allow"
      elseif ctx.action == "b" then
        return "deny", "no b"
      elseif ctx.action == "c" then
        error("bug")
      end
    end)
    local user = { groups = {} }
    assert.is_true((policy.check({ action = "a", user = user })))
    assert.are.same({ false, "no b" }, { policy.check({ action = "b", user = user }) })
    local ok, reason = policy.check({ action = "c", user = user })
    assert.is_false(ok)
    assert.matches("policy error", reason)
    assert.is_true((policy.check({ action = "x.read", user = user }))) -- abstain: default
    assert.is_false((policy.check({ action = "x.write", user = user })))
  end)
end)
