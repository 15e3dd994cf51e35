-- The product modelling DSL (lua/orch/model) with the pure-Lua fake of the
-- host: definitions and their errors (with file and line), every field kind,
-- defaults, computed fields, custom scalar types, assignment rules, lifecycle
-- rules and serialisation. Database round trips are in tests/integration/model_spec.lua.
local fake = require("helpers.fake_host")

local model, json

local function line()
  return debug.getinfo(2, "l").currentline
end

-- The error message of fn(), which must fail.
local function failure(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function me()
  return debug.getinfo(1, "S").short_src
end

local function pos_pattern(l)
  return (me():gsub("%p", "%%%0")) .. ":" .. l .. ": "
end

local PRODUCT_ID = "11111111-2222-4333-8444-555555555555"

-- A product row as the create query answers it.
local function queue_product(name, product_type, fixed)
  fake.queue({ { product_id = PRODUCT_ID, name = name, description = name .. " product", product_type = product_type,
    tag = "T", status = "active", created_at = "2026-01-01T00:00:00+00:00", fixed = fixed } }, 1, nil)
end

local function define_basics()
  model.block({
    name = "Node",
    fields = {
      { "node_name", "string", required_from = "provisioning", description = "node name" },
      { "rank", "integer", required_from = "active" },
    },
    computed = { title = function(b)
      return "node " .. tostring(b.node_name)
    end },
  })
  model.block({ name = "Leaf", fields = { { "n", "integer" } } })
  model.block({ name = "Conf", fields = { { "on", "boolean", default = true }, { "key", "string" } } })
  model.block({
    name = "Port",
    fields = {
      { "port_name", "string", required_from = "provisioning" },
      { "speed", "integer", required_from = "active" },
      { "mode", model.enum({ "tagged", "untagged" }) },
      { "mtu", model.enum({ 1500, 9000 }), default = 1500 },
      { "vlans", "vlan_ranges" },
      { "node", model.ref("Node"), required_from = "provisioning" },
      { "conf", model.owned("Conf") },
      { "extra", model.optional("Conf"), required_from = "active" },
      { "leaves", model.list("Leaf", { min = 2, max = 3 }) },
    },
  })
  model.product_type({
    name = "PortType",
    fixed_inputs = { { "speed_class", model.enum({ 10, 100 }) } },
    fields = { { "port", model.owned("Port") } },
    validate = function(sub, lifecycle)
      if lifecycle == "active" and sub.port.port_name == "forbidden" then
        return "forbidden ports cannot be active"
      end
    end,
    products = { { name = "port 10", description = "port", tag = "PORT", fixed_inputs = { speed_class = 10 } } },
  })
  model.product_type({
    name = "NodeType",
    fields = { { "node", model.owned("Node") } },
    description = function(sub)
      return "node " .. tostring(sub.node.node_name)
    end,
    products = { { name = "node", description = "node", tag = "NODE" } },
  })
  assert.are.same({}, model.finalize())
end

describe("orch.model", function()
  before_each(function()
    fake.install()
    json = require("orch.json")
    model = require("orch.model")
  end)

  describe("scalar types", function()
    local types
    before_each(function()
      types = require("orch.model.types")
    end)

    local cases = {
      { "string", "abc", "abc", "abc" },
      { "integer", "42", 42, "42" },
      { "integer", -7, -7, "-7" },
      { "boolean", "True", true, "True" },
      { "boolean", "false", false, "False" },
      { "boolean", true, true, "True" },
      { "uuid", "6F9619FF-8B86-D011-B42D-00C04FC964FF", "6f9619ff-8b86-d011-b42d-00c04fc964ff",
        "6f9619ff-8b86-d011-b42d-00c04fc964ff" },
      { "ipv4_address", "192.168.1.10", "192.168.1.10", "192.168.1.10" },
      { "ipv6_address", "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1", "2001:db8::1" },
      { "ipv6_address", "fe80:0:0:1:0:0:0:1", "fe80:0:0:1::1", "fe80:0:0:1::1" },
      { "ipv6_address", "::", "::", "::" },
      { "ipv6_address", "::ffff:10.0.0.1", "::ffff:a00:1", "::ffff:a00:1" },
      { "ipv4_prefix", "10.0.0.0/8", "10.0.0.0/8", "10.0.0.0/8" },
      { "ipv6_prefix", "2001:db8::/32", "2001:db8::/32", "2001:db8::/32" },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " parses " .. tostring(c[2]) .. " and stores it as core does", function()
        local t = types.builtin[c[1]]
        local v, err = t.parse(c[2])
        assert.is_nil(err)
        assert.are.equal(c[3], v)
        assert.are.equal(c[4], t.format(v))
      end)
    end

    local bad = {
      { "integer", "fast" }, { "integer", 1.5 }, { "boolean", "yes" }, { "uuid", "nope" },
      { "ipv4_address", "256.0.0.1" }, { "ipv4_address", "01.2.3.4" }, { "ipv6_address", "1::2::3" },
      { "ipv4_prefix", "10.0.0.1/8" }, { "ipv6_prefix", "2001:db8::1/32" }, { "string", 5 },
      { "vlan_ranges", "5-3" }, { "vlan_ranges", "5000" },
    }
    for _, c in ipairs(bad) do
      it(c[1] .. " refuses " .. tostring(c[2]), function()
        local v, err = types.builtin[c[1]].parse(c[2])
        assert.is_nil(v)
        assert.is_string(err)
      end)
    end

    it("vlan_ranges merges, sorts and answers questions", function()
      local v = assert(model.vlan_ranges("20-30, 5,10-19"))
      assert.are.equal("5,10-30", tostring(v))
      assert.is_true(v:contains(25))
      assert.is_false(v:contains(6))
      assert.is_false(v:is_single_vlan())
      assert.is_true(assert(model.vlan_ranges("7")):is_single_vlan())
      assert.are.same({ 1, 2, 3 }, assert(model.vlan_ranges("1-3")):to_list())
    end)

    it("enums are string- or integer-valued and check membership", function()
      local e = model.enum({ 1000, 10000 })
      assert.are.equal(10000, e.parse("10000"))
      assert.is_nil(e.parse(5))
      local s = model.enum({ "a", "b" })
      assert.are.equal("b", s.parse("b"))
      assert.matches('one of "a", "b"', select(2, s.parse("c")))
      assert.matches("all be strings or all be integers", failure(function()
        model.enum({ "a", 1 })
      end))
    end)
  end)

  describe("definitions", function()
    it("keep the order of fields and their options", function()
      define_basics()
      local port = model.blocks()[4]
      local names = {}
      for i, f in ipairs(port.fields) do
        names[i] = f.name
      end
      assert.are.same({ "port_name", "speed", "mode", "mtu", "vlans", "node", "conf", "extra", "leaves" }, names)
      assert.are.equal("provisioning", port.by_name.port_name.required_from)
      assert.are.equal("never", port.by_name.mode.required_from)
      assert.are.equal("initial", port.by_name.conf.required_from)
      assert.are.equal(2, port.by_name.leaves.min)
      assert.are.equal(1500, port.by_name.mtu.default_value)
    end)

    it("report local mistakes at the caller's line", function()
      local dup_fields = { { "a", "string" }, { "a", "integer" } }
      local l = line() + 1
      local err = failure(function() model.block({ name = "B", fields = dup_fields }) end)
      assert.matches(pos_pattern(l) .. "B.a: duplicate field 'a'", err)
      local bad_list = { { "l", model.list("B", { min = 3, max = 1 }) } }
      l = line() + 1
      err = failure(function() model.block({ name = "C", fields = bad_list }) end)
      assert.matches(pos_pattern(l) .. "C.l: min %(3%) is greater than max %(1%)", err)
      local bad_required = { { "x", "integer", required_from = "later" } }
      l = line() + 1
      err = failure(function() model.block({ name = "D", fields = bad_required }) end)
      assert.matches(pos_pattern(l) .. "D.x: required_from must be", err)
      err = failure(function()
        model.block({ name = "E", fields = { { "name", "string" } } })
      end)
      assert.matches("E.name: 'name' is reserved", err)
      err = failure(function()
        model.block({ name = "F", fields = { { "o", model.owned("B"), required_from = "active" } } })
      end)
      assert.matches("an owned block is required in every lifecycle", err)
      err = failure(function()
        model.product_type({ name = "P", fields = { { "b", model.ref("B") } }, products = { { name = "p" } } })
      end)
      assert.matches("a root field cannot reference", err)
      err = failure(function()
        model.product_type({ name = "Q", fixed_inputs = { { "k", "string" } }, fields = { { "b", model.owned("B") } },
          products = { { name = "q", description = "q", tag = "Q" } } })
      end)
      assert.matches("missing a value for fixed input 'k'", err)
    end)

    it("report cross-file mistakes from finalize with the definition's line", function()
      local l1 = line() + 1
      model.block({ name = "A", fields = { { "t", "no_such_type" }, { "r", model.ref("Nowhere") } } })
      local fields, dup = { { "a", model.owned("A") } }, { { name = "dup", description = "d", tag = "D" } }
      local l2 = line() + 1
      model.product_type({ name = "T1", fields = fields, products = dup })
      local l3 = line() + 1
      model.product_type({ name = "T2", fields = fields, products = dup })
      local errors = model.finalize()
      local text = table.concat(errors, "\n")
      assert.matches(pos_pattern(l1) .. "A.t: unknown type 'no_such_type'", text)
      assert.matches(pos_pattern(l1) .. "A.r: block 'Nowhere' is not defined", text)
      assert.matches(pos_pattern(l3) .. "product 'dup' is already defined at [^\n]*:" .. l2, text)
    end)

    it("are closed once every script has loaded", function()
      assert.are.same({}, model.finalize())
      assert.matches("orch.model.block can only be called while the product scripts load", failure(function()
        model.block({ name = "Late" })
      end))
    end)

    it("find blocks that own each other without end", function()
      model.block({ name = "X", fields = { { "y", model.owned("Y") } } })
      model.block({ name = "Y", fields = { { "x", model.owned("X") } } })
      assert.matches("would be created without end", table.concat(model.finalize(), "\n"))
    end)

    it("check defaults and fixed-input values against their types", function()
      model.block({ name = "D", fields = { { "n", "integer", default = "many" } } })
      model.product_type({ name = "DT", fixed_inputs = { { "k", model.enum({ 1, 2 }) } },
        fields = { { "d", model.owned("D") } },
        products = { { name = "d", description = "d", tag = "D", fixed_inputs = { k = 3 } } } })
      local text = table.concat(model.finalize(), "\n")
      assert.matches("D.n: invalid default", text)
      assert.matches("fixed input k: expected one of 1, 2, got 3", text)
    end)
  end)

  describe("custom scalar types", function()
    it("parse, validate and format through the type's functions", function()
      model.scalar_type({
        name = "colour",
        parse = function(v)
          return type(v) == "string" and v:lower() or nil
        end,
        validate = function(v)
          return v ~= "invisible", "invisible is not a colour"
        end,
        format = function(v)
          return v
        end,
      })
      model.block({ name = "Paint", fields = { { "c", "colour" } } })
      model.product_type({ name = "PaintType", fields = { { "paint", model.owned("Paint") } },
        products = { { name = "paint", description = "paint", tag = "P" } } })
      assert.are.same({}, model.finalize())
      queue_product("paint", "PaintType", nil)
      local sub = model.create({ product = "paint", customer_id = "c" })
      sub.paint.c = "RED"
      assert.are.equal("red", sub.paint.c)
      assert.matches("Paint.c: invisible is not a colour", failure(function()
        sub.paint.c = "invisible"
      end))
      assert.matches("Paint.c: not a valid colour", failure(function()
        sub.paint.c = 5
      end))
    end)

    it("cannot shadow a built-in type", function()
      assert.matches("is built in", failure(function()
        model.scalar_type({ name = "integer", parse = tostring, format = tostring })
      end))
    end)
  end)

  describe("subscriptions", function()
    local sub
    before_each(function()
      define_basics()
      queue_product("port 10", "PortType", { speed_class = "10" })
      sub = model.create({ product = "port 10", customer_id = "customer" })
    end)

    it("are created with fixed inputs, owned blocks, min list entries, defaults and nil optionals", function()
      assert.are.equal(10, sub.speed_class)
      assert.are.equal("initial", sub.status)
      assert.are.equal("Initial subscription of port 10 product", sub.description)
      assert.is_false(sub.insync)
      assert.is_true(model.is_block(sub.port.conf))
      assert.is_true(sub.port.conf.on) -- default
      assert.is_nil(sub.port.extra)
      assert.is_nil(sub.port.node)
      assert.are.equal(2, #sub.port.leaves)
      assert.are.equal(1500, sub.port.mtu)
      assert.are.equal(sub.subscription_id, sub.port.owner_subscription_id)
      assert.are.equal("Port", sub.port.name)
    end)

    it("check assignments and cast strings by the field type", function()
      sub.port.speed = "100"
      assert.are.equal(100, sub.port.speed)
      local l = line() + 1
      local err = failure(function() sub.port.speed = "fast" end)
      assert.matches(pos_pattern(l) .. 'Port.speed: expected an integer, got "fast"', err)
      assert.matches("Port.mode: expected one of", failure(function()
        sub.port.mode = "sideways"
      end))
      assert.matches("has no field 'colour'", failure(function()
        sub.port.colour = "red"
      end))
      assert.matches("Port.node: expected a Node block, got a Conf block", failure(function()
        sub.port.node = sub.port.conf
      end))
      assert.matches("cannot be removed", failure(function()
        sub.port.conf = nil
      end))
      assert.matches("fixed input", failure(function()
        sub.speed_class = 100
      end))
      assert.matches("set_status", failure(function()
        sub.status = "active"
      end))
      sub.port.vlans = "10-12,3"
      assert.are.equal("3,10-12", tostring(sub.port.vlans))
      sub.port.label = "a label"
      assert.are.equal("a label", sub.port.label)
      sub.note = "  "
      assert.is_nil(sub.note)
    end)

    it("validate required fields per lifecycle, through references too", function()
      local err = failure(function()
        sub:set_status("provisioning")
      end)
      assert.matches("port.port_name %(block Port%) is required in lifecycle 'provisioning'", err)
      assert.matches("port.node %(block Port%) is required", err)
      sub.port.port_name = "p1"
      queue_product("node", "NodeType", nil)
      local node_sub = model.create({ product = "node", customer_id = "c" })
      sub.port.node = node_sub.node
      assert.matches("port.node.node_name %(block Node%) is required", failure(function()
        sub:set_status("provisioning")
      end))
      node_sub.node.node_name = "n1"
      sub:set_status("provisioning")
      assert.are.equal("provisioning", sub.status)
      assert.is_nil(sub.start_date)
      -- active needs speed, the optional extra block and the node's rank
      err = failure(function()
        sub:set_status("active")
      end)
      assert.matches("port.speed", err)
      assert.matches("port.extra", err)
      assert.matches("port.node.rank", err)
      sub.port.speed = 10
      sub.port.extra = sub:new_block("Conf", { key = "k" })
      node_sub.node.rank = 1
      sub.port.port_name = "forbidden"
      assert.matches("forbidden ports cannot be active", failure(function()
        sub:set_status("active")
      end))
      sub.port.port_name = "p1"
      sub:set_status("active")
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", sub.start_date)
      sub:set_status("terminated")
      assert.is_string(sub.end_date)
    end)

    it("compute their description with the product type's function", function()
      queue_product("node", "NodeType", nil)
      local node_sub = model.create({ product = "node", customer_id = "c" })
      node_sub.node.node_name = "ams1"
      assert.are.equal("node ams1", node_sub:describe())
      assert.are.equal("node ams1", node_sub.description)
      assert.are.equal(sub.description, sub:describe()) -- no function: unchanged
    end)

    it("are validated when created in a later lifecycle", function()
      queue_product("port 10", "PortType", { speed_class = "10" })
      assert.matches("is not valid for lifecycle 'provisioning': port.port_name", failure(function()
        model.create({ product = "port 10", customer_id = "c", status = "provisioning" })
      end))
    end)

    it("check list lengths", function()
      sub.port.leaves = { sub:new_block("Leaf") }
      local problems = require("orch.model.subscription").problems(sub, "initial")
      assert.matches("port.leaves %(block Port%) needs 2%-3 blocks, has 1", table.concat(problems, ";"))
      sub.port.leaves = { sub:new_block("Leaf"), sub:new_block("Leaf"), sub:new_block("Leaf"), sub:new_block("Leaf") }
      problems = require("orch.model.subscription").problems(sub, "initial")
      assert.matches("port.leaves %(block Port%) needs 2%-3 blocks, has 4", table.concat(problems, ";"))
    end)

    it("serialise with computed fields, nulls and JSON arrays", function()
      queue_product("node", "NodeType", nil)
      local node_sub = model.create({ product = "node", customer_id = "c" })
      node_sub.node.node_name = "n1"
      sub.port.node = node_sub.node
      sub.port.vlans = "5"
      local t = sub:to_table()
      assert.are.equal("node n1", t.port.node.title)
      assert.are.equal(json.null, t.port.extra)
      assert.are.equal(json.null, t.port.speed)
      assert.are.equal("5", t.port.vlans)
      assert.is_true(json.is_array(t.port.leaves))
      assert.are.equal(10, t.speed_class)
      assert.are.equal("port 10", t.product.name)
      local decoded = json.decode(json.encode(t))
      assert.are.equal(t.port.subscription_instance_id, decoded.port.subscription_instance_id)
    end)

    it("treat blocks of other subscriptions as read-only once loaded", function()
      -- a block whose owner is another subscription (as load marks them)
      queue_product("node", "NodeType", nil)
      local node_sub = model.create({ product = "node", customer_id = "c" })
      sub.port.node = node_sub.node
      -- Save plans only owned rows: the referenced block is a relation only.
      local want = require("orch.model.subscription").desired(sub)
      local owned = 0
      for _ in pairs(want.instances) do
        owned = owned + 1
      end
      assert.are.equal(4, owned) -- port, conf, two leaves; not the node
      local relation
      for key, attr in pairs(want.relations) do
        if attr == "node" then
          relation = key
        end
      end
      assert.are.equal(sub.port.subscription_instance_id .. "|" .. node_sub.node.subscription_instance_id .. "|0",
        relation)
    end)
  end)
end)
