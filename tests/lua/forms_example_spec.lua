-- orch.forms: the example-orchestrator's create forms behind core's automatic
-- first pages, and the subscription first page of modify-type workflows.
local fake = require("helpers.fake_host")

describe("orch.forms first pages and example forms", function()
  local F, json, ex

  before_each(function()
    fake.install()
    json = require("orch.json")
    F = require("orch.forms")
    package.loaded["helpers.example_forms"] = nil -- it holds the orch.forms of the previous test
    ex = require("helpers.example_forms")
  end)

  local NOKIA = "6f3d7a4c-0d6e-4b44-9d5c-1a2b3c4d5e01"
  local L2VPN = "6f3d7a4c-0d6e-4b44-9d5c-1a2b3c4d5e03"
  local ACME = "c0ffee00-0000-4000-8000-000000000001"
  local PORT_A = "0b0e9a52-3c59-4a43-a9a4-00000000000a"
  local PORT_B = "0b0e9a52-3c59-4a43-a9a4-00000000000b"
  local PORT_C = "0b0e9a52-3c59-4a43-a9a4-00000000000c"

  local function start_state(name, target)
    return { process_id = "p-1", reporter = "tester", workflow_name = name, workflow_target = target }
  end

  describe("create_node", function()
    local form, state

    before_each(function()
      form = F.initial_form("CREATE", ex.create_node)
      state = start_state("create_node", "CREATE")
    end)

    it("starts with core's product page listing the workflow's products", function()
      local r = F.post_form(form, state, {}, ex.context())
      assert.are.equal(510, r.status)
      assert.are.equal(
        '{"$defs":{"ProductChoice":{"enum":["' .. NOKIA .. '","6f3d7a4c-0d6e-4b44-9d5c-1a2b3c4d5e02"],'
          .. '"options":{"' .. NOKIA .. '":"node Nokia","6f3d7a4c-0d6e-4b44-9d5c-1a2b3c4d5e02":"node Cisco"},'
          .. '"title":"ProductChoice","type":"string"}},"additionalProperties":false,'
          .. '"properties":{"product":{"$ref":"#/$defs/ProductChoice","format":"productId"}},'
          .. '"required":["product"],"title":"unknown","type":"object"}',
        json.encode(r.form)
      )
      assert.are.equal("null", json.encode(r.body.meta))
    end)

    it("refuses a product that is not linked to the workflow", function()
      local r = F.post_form(form, state, { { product = L2VPN } }, ex.context())
      assert.are.equal(400, r.status)
      assert.are.same({ "product" }, r.errors[1].loc)
      assert.are.equal("enum", r.errors[1].type)
      assert.is_truthy(r.body.detail:find("for NewProductPage", 1, true))
    end)

    it("asks the product's check hook", function()
      local ctx = ex.context({
        check_product = function(product, workflow)
          assert.are.equal("create_node", workflow)
          return product.node_type == "Nokia" or nil
        end,
      })
      local r = F.post_form(form, state, { { product = NOKIA } }, ctx)
      assert.are.equal(400, r.status)
      assert.are.equal("This workflow is not valid for this product", r.errors[1].msg)
    end)

    it("renders the node page from the chosen product, then the summary", function()
      local r = F.post_form(form, state, { { product = NOKIA } }, ex.context())
      assert.are.equal(510, r.status)
      local page = r.form
      assert.are.equal("node Nokia", page.title)
      local order = {}
      for name in json.encode(page.properties):gmatch('"([%w_]+)":{') do
        if page.properties[name] then
          order[#order + 1] = name
        end
      end
      assert.are.same({
        "callout_1",
        "customer_id",
        "auto_add_interfaces",
        "node_settings",
        "type_id",
        "role_id",
        "site_id",
        "node_status",
        "node_name",
        "node_description",
      }, order)
      -- only the device types of the product's manufacturer
      assert.are.same({ "1", "3" }, page["$defs"].NodeTypeEnum.enum)
      assert.are.equal("Nokia 7250 IXR", page["$defs"].NodeTypeEnum.options["3"])
      assert.are.same({ "customer_id", "type_id", "role_id", "site_id", "node_status", "node_name" }, page.required)

      local node = { customer_id = ACME, type_id = "3", role_id = "1", site_id = "7", node_status = "active" }
      node.node_name = "ams-core-1"
      r = F.post_form(form, state, { { product = NOKIA }, node }, ex.context())
      assert.are.equal(510, r.status)
      assert.are.equal("node Nokia summary", r.form.title)
      assert.are.same(
        { { "1", "3", "7", "active", "ams-core-1", "None" } },
        json.decode(json.encode(r.form.properties.product_summary.uniforms.data.columns))
      )

      r = F.post_form(form, state, { { product = NOKIA }, node, {} }, ex.context())
      assert.is_true(r.complete)
      local result = r.result
      assert.are.equal(NOKIA, result.product)
      assert.are.equal("node Nokia", result.product_name)
      assert.are.equal("ams-core-1", result.node_name)
      assert.is_true(result.auto_add_interfaces)
      assert.are.equal(json.null, result.node_description)
      assert.are.equal(json.null, result.node_settings)
    end)

    it("locates the errors of the node page at its fields", function()
      local r = F.post_form(form, state, {
        { product = NOKIA },
        { customer_id = ACME, type_id = "2", role_id = "1", site_id = "7", node_status = "gone" },
      }, ex.context())
      assert.are.equal(400, r.status)
      local locs = {}
      for i, e in ipairs(r.errors) do
        locs[i] = e.loc[1]
      end
      assert.are.same({ "type_id", "node_status", "node_name" }, locs)
      assert.is_truthy(r.body.detail:find("^3 validation errors for CreateNodeForm"))
    end)
  end)

  describe("create_l2vpn", function()
    local form, state

    before_each(function()
      form = F.initial_form("CREATE", ex.create_l2vpn)
      state = start_state("create_l2vpn", "CREATE")
    end)

    local function page1(n)
      return { customer_id = ACME, number_of_ports = n, speed = 1000 }
    end

    it("sizes the port list of page 2 from the answer on page 1", function()
      for _, n in ipairs({ 2, 3 }) do
        local r = F.post_form(form, state, { { product = L2VPN }, page1(n) }, ex.context())
        assert.are.equal(510, r.status)
        local ports = r.form.properties.ports
        assert.are.equal(n, ports.minItems)
        assert.are.equal(n, ports.maxItems)
        assert.is_true(ports.uniqueItems)
        assert.are.same({ PORT_A, PORT_B, PORT_C }, r.form["$defs"].PortsEnum.enum)
        assert.are.equal("0", r.form.properties.vlan.default)
      end
    end)

    it("validates page 1 before page 2 is shown", function()
      local r = F.post_form(form, state, { { product = L2VPN }, page1(9) }, ex.context())
      assert.are.equal(400, r.status)
      assert.are.same({ "number_of_ports" }, r.errors[1].loc)
    end)

    it("checks the port count chosen on page 1", function()
      local r = F.post_form(form, state, {
        { product = L2VPN },
        page1(3),
        { ports = { PORT_A, PORT_B }, vlan = "10" },
      }, ex.context())
      assert.are.equal(400, r.status)
      assert.are.equal("List should have at least 3 items after validation, not 2", r.errors[1].msg)
    end)

    it("runs the vlan validators with the ports validated before them", function()
      local inputs = { { product = L2VPN }, page1(2), { ports = { PORT_A, PORT_B } } }
      local r = F.post_form(form, state, inputs, ex.context())
      assert.are.equal(400, r.status)
      assert.are.same({ "vlan" }, r.errors[1].loc)
      assert.are.equal("PORT must have a vlan", r.errors[1].msg)

      inputs[3] = { ports = { PORT_A, PORT_C }, vlan = "6-7" }
      r = F.post_form(form, state, inputs, ex.context())
      assert.are.equal("Vlan(s) 5,6,9 already in use", r.errors[1].msg)

      inputs[3] = { ports = { PORT_A, PORT_C }, vlan = "7-8" }
      r = F.post_form(form, state, inputs, ex.context())
      assert.is_true(r.complete)
      assert.are.same({ PORT_A, PORT_C }, r.result.ports)
      assert.are.equal("7-8", r.result.vlan)
      assert.are.equal(2, r.result.number_of_ports)
      assert.is_false(r.result.speed_policer)
      assert.are.equal(L2VPN, r.result.product)
      assert.are.equal("l2vpn", r.result.product_name)
    end)
  end)

  describe("subscription first page", function()
    local SUB = "5ab5e3a0-1a1b-4c5d-8e9f-000000000001"
    local subscription = {
      subscription_id = SUB,
      product_id = NOKIA,
      customer_id = ACME,
      version = 4,
    }
    local function ctx(extra)
      local c = {
        subscription = function(id)
          if id == SUB then
            return subscription
          end
        end,
      }
      for k, v in pairs(extra or {}) do
        c[k] = v
      end
      return c
    end

    it("asks for the subscription id and an optional version", function()
      local r = F.post_form(F.modify_form(nil), start_state("modify_node", "MODIFY"), {}, ctx())
      assert.are.equal(510, r.status)
      assert.are.equal(
        '{"additionalProperties":false,"properties":{"subscription_id":{"format":"uuid","title":"Subscription Id",'
          .. '"type":"string"},"version":{"anyOf":[{"type":"integer"},{"type":"null"}],"default":null,'
          .. '"title":"Version"}},"required":["subscription_id"],"title":"unknown","type":"object"}',
        json.encode(r.form)
      )
      assert.are.equal("null", json.encode(r.body.meta))
    end)

    it("adds the subscription's keys and continues with the workflow's own form", function()
      local function own(state)
        return coroutine.yield(F.page({ F.string({ "note", default = state.customer_id }) }))
      end
      local form = F.initial_form("MODIFY", own)
      local r = F.post_form(form, start_state("modify_node", "MODIFY"), { { subscription_id = SUB } }, ctx())
      assert.are.equal(ACME, r.form.properties.note.default)
      local inputs = { { subscription_id = SUB, version = 4 }, {} }
      r = F.post_form(form, start_state("modify_node", "MODIFY"), inputs, ctx())
      assert.is_true(r.complete)
      assert.are.same(
        { subscription_id = SUB, product = NOKIA, customer_id = ACME, version = 4, note = ACME },
        r.result
      )
    end)

    it("refuses a stale version with core's message at __root__", function()
      local r = F.post_form(F.modify_form(nil), {}, { { subscription_id = SUB, version = 3 } }, ctx())
      assert.are.equal(400, r.status)
      assert.are.same({ "__root__" }, r.errors[1].loc)
      assert.are.equal("Stale data: given version (3) does not match the current version (4)", r.errors[1].msg)
      assert.is_truthy(r.body.detail:find("^1 validation error for ModifySubscriptionPage\n__root__\n"))
    end)

    it("refuses an unknown subscription and a workflow that cannot start", function()
      local r = F.post_form(
        F.modify_form(nil),
        {},
        { { subscription_id = "5ab5e3a0-1a1b-4c5d-8e9f-000000000999" } },
        ctx()
      )
      assert.are.same({ "subscription_id" }, r.errors[1].loc)
      assert.are.equal("Subscription not found", r.errors[1].msg)

      local seen
      local terminate = start_state("terminate_node", "TERMINATE")
      r = F.post_form(F.modify_form(nil), terminate, { { subscription_id = SUB } }, ctx({
        check_subscription = function(sub, workflow, target)
          seen = { sub.subscription_id, workflow, target }
          return { reason = "subscription.no_modify_subscription_in_use_by_others" }
        end,
      }))
      assert.are.same({ SUB, "terminate_node", "TERMINATE" }, seen)
      assert.are.equal(
        "This workflow cannot be started: This subscription can not be modified as it is used in other subscriptions",
        r.errors[1].msg
      )

      r = F.post_form(F.modify_form(nil), {}, { { subscription_id = SUB } }, ctx({
        check_subscription = function()
          return "This workflow is not valid for this subscription"
        end,
      }))
      assert.are.equal("This workflow is not valid for this subscription", r.errors[1].msg)
    end)

    it("renders a subscription picker on request", function()
      local r = F.post_form(F.modify_form(nil, { picker = true }), start_state("modify_node", "MODIFY"), {}, ctx({
        subscriptions = function(query)
          assert.are.equal("modify_node", query.workflow)
          return { { subscription_id = SUB, description = "node ams-core-1" } }
        end,
      }))
      assert.are.equal('{"$ref":"#/$defs/SubscriptionIdChoice"}', json.encode(r.form.properties.subscription_id))
      assert.are.equal("node ams-core-1", r.form["$defs"].SubscriptionIdChoice.options[SUB])
    end)

    it("gives validate and reconcile workflows the subscription page only", function()
      for _, target in ipairs({ "VALIDATE", "RECONCILE", "TERMINATE" }) do
        local r = F.post_form(F.initial_form(target), {}, { { subscription_id = SUB } }, ctx())
        assert.is_true(r.complete, target)
        assert.are.equal(4, r.result.version)
      end
      assert.has_error(function()
        F.initial_form("VALIDATE", function() end)
      end)
    end)

    it("gives tasks their own form or core's empty page", function()
      local r = F.post_form(F.initial_form("SYSTEM"), {}, {})
      assert.are.equal(510, r.status)
      assert.is_true(F.post_form(F.initial_form("SYSTEM"), {}, { {} }).complete)
      local page = F.page({ F.integer({ "n" }) })
      assert.are.same({ n = 1 }, F.post_form(F.initial_form("SYSTEM", page), {}, { { n = 1 } }).result)
    end)
  end)
end)
