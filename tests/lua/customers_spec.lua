-- orch.customers (lua/orch/api/graphql_schema/customers.lua): the customers the API shows, from a
-- product's provider or core's default customer.
describe("orch.customers", function()
  local C

  before_each(function()
    package.loaded["orch.api.graphql_schema.customers"] = nil -- the provider lives in the module
    C = require("orch.api.graphql_schema.customers")
  end)

  it("answers core's default customer without a provider", function()
    assert.is_false(C.provided())
    assert.are.same({ C.DEFAULT }, C.list())
    local c = C.lookup({ "cust-1" })["cust-1"]
    assert.are.same({ customer_id = "cust-1", fullname = "Default::Orchestrator-Core Customer",
      shortcode = "default-cust" }, c)
  end)

  it("lists and looks up a provider's customers; unknown ids read as their id", function()
    C.provide(function()
      return { { customer_id = "a", fullname = "Alpha", shortcode = "ALP" }, { customer_id = "b", fullname = "Beta" } }
    end)
    assert.is_true(C.provided())
    assert.are.same({ { customer_id = "a", fullname = "Alpha", shortcode = "ALP" },
      { customer_id = "b", fullname = "Beta", shortcode = "b" } }, C.list())
    local found = C.lookup({ "a", "zz" })
    assert.are.equal("Alpha", found.a.fullname)
    assert.are.same({ customer_id = "zz", fullname = "zz", shortcode = "zz" }, found.zz)
  end)

  it("uses lookup for ids, once per request context for the ids of a page", function()
    local calls = {}
    C.provide({
      list = function()
        error("list must not be called for look-ups")
      end,
      lookup = function(ids)
        calls[#calls + 1] = table.concat(ids, ",")
        local out = {}
        for _, id in ipairs(ids) do
          out[id] = { fullname = "name of " .. id }
        end
        return out
      end,
    })
    local ctx = {}
    local page = function()
      return { "x", "y", "x" }
    end
    assert.are.equal("name of x", C.of(ctx, "x", page).fullname)
    assert.are.equal("name of y", C.of(ctx, "y", page).fullname)
    assert.are.same({ "x,y" }, calls)
    assert.is_nil(C.of(ctx, nil, page))
  end)

  it("refuses a provider of the wrong shape", function()
    assert.has_error(function()
      C.provide(42)
    end, "orch.customers.provide expects a function or {list = function, lookup = function}")
    assert.has_error(function()
      C.provide({ list = function() end, lokup = function() end })
    end, "orch.customers.provide: unknown option 'lokup'")
  end)
end)
