-- orch.forms.context: functions products add to every form's ctx.
local fake = require("helpers.fake_host")

describe("orch.forms.context", function()
  local F

  before_each(function()
    fake.install()
    package.loaded["orch.forms"] = nil -- the functions live in the module (one per Lua state)
    F = require("orch.forms")
  end)

  local function form(_, ctx)
    local values = coroutine.yield(F.page({
      F.choice({ "site", title = "Site", options = function(_, c)
        return c.sites()
      end }),
    }))
    return { site = values.site, label = ctx.site_label(values.site), who = ctx.user }
  end

  it("gives options, validators and the form body the products' functions", function()
    F.context({
      sites = function()
        return { { "1", "Amsterdam" }, { "2", "Paris" } }
      end,
      site_label = function(id)
        return id == "1" and "Amsterdam" or "Paris"
      end,
    })
    local r = F.post_form(form, {}, {}, { user = "alice" })
    assert.are.equal(510, r.status)
    assert.are.same({ "1", "2" }, r.form["$defs"].SiteChoice.enum)
    r = F.post_form(form, {}, { { site = "2" } }, { user = "alice" })
    assert.is_true(r.complete)
    assert.are.same({ site = "2", label = "Paris", who = "alice" }, r.result)
    -- a function the caller's ctx brings wins (e.g. a test's stand-in)
    r = F.post_form(form, {}, { { site = "x" } }, { sites = function() return { "x" } end,
      site_label = function() return "stand-in" end })
    assert.are.equal("stand-in", r.result.label)
    -- page_schema and generate_form see them as well
    assert.are.same({ "1", "2" }, F.generate_form(form, {}, {}, {})["$defs"].SiteChoice.enum)
  end)

  it("refuses the host's own ctx entries, redefinitions and non-functions", function()
    assert.has_error(function()
      F.context({ subscriptions = function() end })
    end, "orch.forms.context: 'subscriptions' is the host's own ctx.subscriptions and cannot be replaced")
    F.context({ sites = function() end })
    assert.has_error(function()
      F.context({ sites = function() end })
    end, "orch.forms.context: ctx.sites is already defined")
    assert.has_error(function()
      F.context({ sites2 = 42 })
    end, "orch.forms.context: 'sites2' must name a function")
  end)
end)
