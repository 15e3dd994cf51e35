-- orch.forms: the JSON Schema of every field kind, as pydantic-forms renders it.
local fake = require("helpers.fake_host")

describe("orch.forms schema", function()
  local F, json

  before_each(function()
    fake.install()
    json = require("orch.json")
    F = require("orch.forms")
  end)

  -- JSON of the single property of a one-field page, plus the page's $defs and required.
  local function prop(field, state, ctx)
    local s = F.page_schema(F.page({ field }), state, ctx)
    return json.encode(s.properties[field.name]), s["$defs"] and json.encode(s["$defs"]), s.required
  end

  it("derives titles from field names like pydantic", function()
    assert.are.equal("Node Name", F.title_from_name("node_name"))
    assert.are.equal("Ipv4 Ipam Id", F.title_from_name("ipv4_ipam_id"))
    assert.are.equal("Port Ims Id A", F.title_from_name("port_ims_id_a"))
    assert.are.equal("Speedpolicer", F.title_from_name("speedPolicer"))
    assert.are.equal("Callout 1", F.title_from_name("callout_1"))
  end)

  it("writes the page object with properties in field order", function()
    local page = F.page({
      title = "Node",
      F.string({ "zeta" }),
      F.integer({ "alpha" }),
      F.boolean({ "mid", default = false }),
    })
    assert.are.equal(
      '{"additionalProperties":false,"properties":{"zeta":{"title":"Zeta","type":"string"},'
        .. '"alpha":{"title":"Alpha","type":"integer"},"mid":{"default":false,"title":"Mid","type":"boolean"}},'
        .. '"required":["zeta","alpha"],"title":"Node","type":"object"}',
      json.encode(F.page_schema(page))
    )
  end)

  it("writes an empty page as core's default form, with an object for properties", function()
    assert.are.equal(
      '{"additionalProperties":false,"properties":{},"title":"unknown","type":"object"}',
      json.encode(F.page_schema(F.EMPTY_PAGE))
    )
  end)

  it("renders strings, long text, numbers, booleans and uuids", function()
    assert.are.equal('{"title":"Name","type":"string"}', prop(F.string({ "name" })))
    assert.are.equal(
      '{"maxLength":5,"minLength":1,"pattern":"^[a-z]+$","title":"Code","type":"string"}',
      prop(F.string({ "code", min_length = 1, max_length = 5, pattern = "^[a-z]+$" }))
    )
    assert.are.equal('{"format":"long","title":"Remarks","type":"string"}', prop(F.long_text({ "remarks" })))
    assert.are.equal(
      '{"maximum":8,"minimum":2,"title":"Number Of Ports","type":"integer"}',
      prop(F.integer({ "number_of_ports", min = 2, max = 8 }))
    )
    assert.are.equal(
      '{"exclusiveMaximum":1,"exclusiveMinimum":0,"title":"Ratio","type":"number"}',
      prop(F.number({ "ratio", gt = 0, lt = 1 }))
    )
    assert.are.equal(
      '{"default":true,"title":"Auto Add Interfaces","type":"boolean"}',
      prop(F.boolean({ "auto_add_interfaces", default = true }))
    )
    assert.are.equal('{"format":"uuid","title":"Subscription Id","type":"string"}', prop(F.uuid({ "subscription_id" })))
  end)

  it("renders optional fields as anyOf with a null branch and a default", function()
    local p, _, required = prop(F.string({ "node_description", optional = true }))
    assert.are.equal('{"anyOf":[{"type":"string"},{"type":"null"}],"default":null,"title":"Node Description"}', p)
    assert.is_nil(required)
    assert.are.equal(
      '{"anyOf":[{"type":"boolean"},{"type":"null"}],"default":false,"title":"Speed Policer"}',
      prop(F.boolean({ "speed_policer", optional = true, default = false }))
    )
  end)

  it("renders a choice as an enum definition with labels in `options`", function()
    local p, defs, required = prop(F.choice({ "customer_id", options = { { "c1", "Acme" }, { "c2", "Globex" } } }))
    assert.are.equal('{"$ref":"#/$defs/CustomerIdChoice"}', p)
    assert.are.equal(
      '{"CustomerIdChoice":{"enum":["c1","c2"],"options":{"c1":"Acme","c2":"Globex"},'
        .. '"title":"Customer Id","type":"string"}}',
      defs
    )
    assert.are.same({ "customer_id" }, required)
  end)

  it("keeps the option order and leaves `options` out when labels equal values", function()
    local _, defs = prop(F.choice({ "status", enum_name = "NodeStatusEnum", options = { "z", "a", "m" } }))
    assert.are.equal('{"NodeStatusEnum":{"enum":["z","a","m"],"title":"NodeStatusEnum","type":"string"}}', defs)
    local labelled = { { value = "9", label = "nine" }, { value = "1", label = "one" } }
    local _, defs2 = prop(F.choice({ "pick", options = labelled }))
    assert.is_truthy(defs2:find('"options":{"9":"nine","1":"one"}', 1, true))
  end)

  it("computes options at form time from the working state and the context", function()
    local seen
    local field = F.choice({
      "port",
      options = function(state, ctx)
        seen = { state.node, ctx.tag }
        return { state.node .. "-1", state.node .. "-2" }
      end,
    })
    local _, defs = prop(field, { node = "n7" }, { tag = "ctx" })
    assert.are.same({ "n7", "ctx" }, seen)
    assert.is_truthy(defs:find('"enum":["n7-1","n7-2"]', 1, true))
  end)

  it("writes an empty option list as []", function()
    local _, defs = prop(F.choice({ "none", options = {} }))
    assert.are.equal('{"NoneChoice":{"enum":[],"title":"None","type":"string"}}', defs)
  end)

  it("renders a choice with a default and an explicit title next to the $ref", function()
    assert.are.equal(
      '{"$ref":"#/$defs/LegChoice","default":"b","title":"Leg"}',
      prop(F.choice({ "leg", title = "Leg", enum_name = "LegChoice", options = { "a", "b" }, default = "b" }))
    )
  end)

  it("gives two different choices with the same enum name different definitions", function()
    local s = F.page_schema(F.page({
      F.choice({ "a", enum_name = "E", options = { "x" } }),
      F.choice({ "b", enum_name = "E", options = { "y" } }),
      F.choice({ "c", enum_name = "E", options = { "x" } }),
    }))
    assert.are.equal("#/$defs/E", s.properties.a["$ref"])
    assert.are.equal("#/$defs/E2", s.properties.b["$ref"])
    assert.are.equal("#/$defs/E", s.properties.c["$ref"])
  end)

  it("renders a multi-choice as an array of the enum with minItems always present", function()
    local field = F.multi_choice({ "ports", options = { "p1", "p2" }, min_items = 2, max_items = 2, unique = true })
    local p, defs = prop(field)
    assert.are.equal(
      '{"items":{"$ref":"#/$defs/PortsChoice"},"maxItems":2,"minItems":2,"title":"Ports","type":"array",'
        .. '"uniqueItems":true}',
      p
    )
    assert.is_truthy(defs:find('"PortsChoice"', 1, true))
    assert.are.equal(
      '{"items":{"$ref":"#/$defs/TagsChoice"},"minItems":0,"title":"Tags","type":"array"}',
      prop(F.multi_choice({ "tags", options = { "a" } }))
    )
  end)

  it("renders lists of scalars with min and max items, and list defaults as arrays", function()
    assert.are.equal(
      '{"items":{"type":"integer"},"maxItems":3,"minItems":1,"title":"Vlans","type":"array"}',
      prop(F.list({ "vlans", of = "integer", min_items = 1, max_items = 3 }))
    )
    assert.are.equal(
      '{"default":[],"items":{"type":"string"},"title":"Names","type":"array"}',
      prop(F.list({ "names", default = {} }))
    )
  end)

  it("renders read-only values as const with uniforms and extraProperties", function()
    local p, _, required = prop(F.read_only({ "node_name", value = "n1" }))
    assert.are.equal(
      '{"const":"n1","default":"n1","extraProperties":{"disabled":true,"value":"n1"},"title":"Node Name",'
        .. '"type":"string","uniforms":{"disabled":true,"value":"n1"}}',
      p
    )
    assert.is_nil(required)
    assert.are.equal(
      '{"const":3,"default":3,"extraProperties":{"disabled":true,"value":3},"title":"Count","type":"integer",'
        .. '"uniforms":{"disabled":true,"value":3}}',
      prop(F.read_only({ "count", value = 3 }))
    )
    assert.are.equal(
      '{"default":["a","b"],"extraProperties":{"disabled":true,"value":["a","b"]},"items":{"type":"string"},'
        .. '"title":"Names","type":"array","uniforms":{"disabled":true,"value":["a","b"]}}',
      prop(F.read_only({ "names", value = { "a", "b" } }))
    )
    assert.is_truthy(prop(F.read_only({ "empty", value = json.array() })):find('"default":[]', 1, true))
  end)

  it("renders label and divider as display-only strings", function()
    assert.are.equal(
      '{"anyOf":[{"type":"string"},{"type":"null"}],"default":null,"format":"label","title":"Node Settings",'
        .. '"type":"string"}',
      prop(F.label({ "node_settings" }))
    )
    assert.are.equal(
      '{"anyOf":[{"type":"string"},{"type":"null"}],"default":"Details","format":"label","title":"Header",'
        .. '"type":"string"}',
      prop(F.label({ "header", default = "Details" }))
    )
    assert.are.equal(
      '{"anyOf":[{"type":"string"},{"type":"null"}],"default":null,"format":"divider","title":"Divider 1",'
        .. '"type":"string"}',
      prop(F.divider({ "divider_1" }))
    )
  end)

  it("renders a summary with its data under uniforms and extraProperties", function()
    local p, _, required = prop(F.summary({
      "product_summary",
      data = { headers = { "Before", "After" }, labels = { "speed" }, columns = { { "1" }, { "2" } } },
    }))
    local data = '{"data":{"columns":[["1"],["2"]],"headers":["Before","After"],"labels":["speed"]}}'
    assert.are.equal(
      '{"default":null,"extraProperties":' .. data .. ',"format":"summary","title":"Product Summary",'
        .. '"type":"string","uniforms":' .. data .. "}",
      p
    )
    assert.is_nil(required)
    assert.is_truthy(prop(F.summary({ "s", data = { labels = {} } })):find('"labels":[]', 1, true))
  end)

  it("renders a callout and a displayed subscription", function()
    assert.are.equal(
      '{"default":{"header":"Note","icon_type":"info","message":null,"message_type":"primary"},"format":"callout",'
        .. '"title":"Callout 1","type":"string"}',
      prop(F.callout({ "callout_1", header = "Note" }))
    )
    assert.are.equal(
      '{"default":"0b0e9a52-3c59-4a43-a9a4-00000000000a","format":"subscription","title":"Subscription",'
        .. '"type":"string"}',
      prop(F.display_subscription({ "subscription", value = "0b0e9a52-3c59-4a43-a9a4-00000000000a" }))
    )
  end)

  it("renders a timestamp with the picker settings in uniforms", function()
    assert.are.equal(
      '{"extraProperties":{"dateFormat":null,"locale":null,"max":null,"min":10,"showTimeSelect":true,'
        .. '"timeFormat":null},"format":"timestamp","minimum":10,"title":"Start","type":"number",'
        .. '"uniforms":{"dateFormat":null,"locale":null,"max":null,"min":10,"showTimeSelect":true,"timeFormat":null}}',
      prop(F.timestamp({ "start", min = 10 }))
    )
  end)

  it("takes picker options from the context", function()
    local ctx = {
      products = function(query)
        assert.are.equal("Node", query.product_type)
        return { { product_id = "p1", name = "node Nokia" } }
      end,
      subscriptions = function()
        return { { subscription_id = "s1", description = "port A" } }
      end,
    }
    local p, defs = prop(F.product({ "product", query = { product_type = "Node" } }), {}, ctx)
    assert.are.equal('{"$ref":"#/$defs/ProductChoice","format":"productId"}', p)
    assert.are.equal(
      '{"ProductChoice":{"enum":["p1"],"options":{"p1":"node Nokia"},"title":"ProductChoice","type":"string"}}',
      defs
    )
    local _, sdefs = prop(F.subscription({ "port" }), {}, ctx)
    assert.are.equal('{"PortChoice":{"enum":["s1"],"options":{"s1":"port A"},"title":"Port","type":"string"}}', sdefs)
    assert.has_error(function()
      prop(F.product({ "product" }), {}, {})
    end)
  end)

  it("adds descriptions and extra schema keys", function()
    assert.are.equal(
      '{"description":"help","format":"customerId","title":"Customer","type":"string"}',
      prop(F.string({ "customer", description = "help", schema = { format = "customerId" } }))
    )
  end)

  it("points definition errors at the author's line", function()
    local ok, err = pcall(F.string, { "x", colour = "red" })
    assert.is_false(ok)
    assert.is_truthy(err:find("forms_schema_spec.lua:%d+: forms.string 'x': unknown option 'colour'"), err)
    ok, err = pcall(function()
      local page = F.page({ F.string({ "x" }), F.integer({ "x" }) })
      return page
    end)
    assert.is_false(ok)
    assert.is_truthy(err:find("forms_schema_spec.lua:%d+: forms.page: field 'x' appears twice"), err)
  end)

  it("refuses malformed field and page definitions", function()
    assert.has_error(function()
      F.string({ "bad name" })
    end)
    assert.has_error(function()
      F.string({ "x", colour = "red" })
    end)
    assert.has_error(function()
      F.choice({ "x" })
    end)
    assert.has_error(function()
      F.page({ F.string({ "x" }), F.integer({ "x" }) })
    end)
    assert.has_error(function()
      F.page({ "not a field" })
    end)
  end)
end)
