-- The catalogue follows the Lua definitions: `orchestrator catalog plan|apply`
-- and the additive sync of `serve` (ORCH_CATALOG_SYNC). Additive changes
-- apply, destructive ones are refused with the reason unless allowed, what
-- subscriptions still use is never removed, and applying twice is a no-op.
-- Also: definition mistakes reported by `orchestrator check` with file:line.
local H = require("harness")

local dir, db, uri
local folders = {}

local function esc(s)
  return (s:gsub("%p", "%%%0"))
end

-- A products folder with the given files {name = source}.
local function products(files)
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p " .. H.shell_quote(path)))
  for name, source in pairs(files) do
    local f = assert(io.open(path .. "/" .. name, "w"))
    f:write(source)
    f:close()
  end
  folders[#folders + 1] = path
  return path
end

local function catalog(sub, folder, extra)
  local args = { "catalog", sub, "--database", uri, "--lua-dir", H.source .. "/lua", "--products", folder }
  for _, a in ipairs(extra or {}) do
    args[#args + 1] = a
  end
  local code, out = H.run(args)
  H.assert_clean_log(out, "catalog " .. sub)
  return code, out
end

local function sql(q)
  return H.psql(dir, db, q)
end

-- Definitions of one block and one product type; `extra` adds fields, `products` lists product rows.
local function definitions(opts)
  local fields = { '{ "a", "string", description = "field a" }' }
  if not opts.drop_b then
    fields[#fields + 1] = '{ "b", "integer" }'
  end
  for _, f in ipairs(opts.extra or {}) do
    fields[#fields + 1] = f
  end
  local rows = {}
  for _, p in ipairs(opts.products) do
    rows[#rows + 1] = string.format('{ name = %q, description = %q, tag = "CAT", fixed_inputs = { k = %q } }',
      p[1], p[2], p[3] or "x")
  end
  return string.format([[
local model = orch.model
model.block({ name = "CBlock", description = "catalogue test block", fields = { %s } })
model.product_type({
  name = "CType",
  fixed_inputs = { { "k", "string" } },
  fields = { { "c", model.owned("CBlock") } },
  products = { %s },
})
]], table.concat(fields, ", "), table.concat(rows, ", "))
end

describe("the catalogue", function()
  setup(function()
    dir = H.pg_dir()
    db, uri = H.new_database(dir)
    local code, out = H.run({ "db", "upgrade", "--database", uri, "--migrations", H.source .. "/migrations" })
    assert.are.equal(0, code, out)
  end)

  teardown(function()
    for _, f in ipairs(folders) do
      os.execute("rm -rf " .. H.shell_quote(f))
    end
  end)

  it("plans, applies, and applying twice changes nothing", function()
    local v1 = products({ ["c.lua"] = definitions({ products = { { "c1", "first" }, { "c2", "second" } } }) })
    local code, out = catalog("plan", v1)
    assert.are.equal(0, code, out)
    assert.matches("%+ product block CBlock", out)
    assert.matches("%+ field CBlock%.a", out)
    assert.matches('%+ product "c1" %(CType, tag CAT%)', out)
    assert.matches('%+ fixed input "c1"%.k = "x"', out)
    assert.matches('%+ product "c2" uses block CBlock', out)
    assert.are.equal("0", sql("SELECT count(*) FROM products")) -- plan writes nothing
    code, out = catalog("apply", v1)
    assert.are.equal(0, code, out)
    assert.matches("applied %d+ changes", out)
    assert.are.equal("c1|first|CType|CAT|active", sql("SELECT name, description, product_type, tag, status "
      .. "FROM products WHERE name = 'c1'"))
    assert.are.equal("field a", sql("SELECT description FROM resource_types WHERE resource_type = 'a'"))
    assert.are.equal("a,b", sql([[SELECT string_agg(rt.resource_type, ',' ORDER BY 1) FROM product_block_resource_types
      JOIN resource_types rt USING (resource_type_id)]]))
    code, out = catalog("apply", v1)
    assert.are.equal(0, code, out)
    assert.matches("applied 0 changes %(the catalogue matches the definitions%)", out)
    code, out = catalog("plan", v1)
    assert.are.equal(0, code, out)
    assert.matches("plan: the catalogue matches the definitions", out)
  end)

  it("applies additive changes at serve start-up", function()
    -- a subscription with a stored value of field b (used by the destructive cases below)
    sql([[INSERT INTO subscriptions (subscription_id, description, status, product_id, customer_id, insync)
            SELECT 'cccccccc-0000-4000-8000-000000000001', 's', 'active', product_id, 'c', true FROM products
             WHERE name = 'c1';
          INSERT INTO subscription_instances (subscription_instance_id, subscription_id, product_block_id)
            SELECT 'cccccccc-0000-4000-8000-000000000002', 'cccccccc-0000-4000-8000-000000000001', product_block_id
              FROM product_blocks WHERE name = 'CBlock';
          INSERT INTO subscription_instance_values (subscription_instance_id, resource_type_id, value)
            SELECT 'cccccccc-0000-4000-8000-000000000002', resource_type_id, '7' FROM resource_types
             WHERE resource_type = 'b';]])
    local v2 = products({ ["c.lua"] = definitions({ extra = { '{ "n", "integer", description = "new field" }' },
      products = { { "c1", "first" }, { "c2", "second, changed" }, { "c3", "third" } } }) })
    local code, out = catalog("plan", v2)
    assert.are.equal(0, code, out)
    assert.matches("%+ field CBlock%.n", out)
    assert.matches('~ product "c2": description "second" %-> "second, changed"', out)
    assert.matches('%+ product "c3"', out)
    local host = H.start_host({ database = uri, products = v2 })
    local log = host:log()
    host:stop()
    assert.matches("catalogue: %d+ changes applied", log)
    assert.are.equal("second, changed", sql("SELECT description FROM products WHERE name = 'c2'"))
    assert.are.equal("1", sql("SELECT count(*) FROM products WHERE name = 'c3'"))
    assert.are.equal("1", sql([[SELECT count(*) FROM product_block_resource_types
      JOIN resource_types USING (resource_type_id) WHERE resource_type = 'n']]))
  end)

  it("refuses destructive changes with the reason unless allowed", function()
    local v3 = products({ ["c.lua"] = definitions({ drop_b = true, extra = { '{ "n", "integer" }' },
      products = { { "c1", "first" }, { "c3", "third" } } }) })
    local code, out = catalog("apply", v3)
    assert.are.equal(1, code, out)
    assert.matches("! field CBlock%.b: removing it deletes 1 stored value", out)
    assert.matches('%- product "c2" %(no subscriptions%)', out)
    assert.matches("! resource type b: removing it deletes 1 stored value", out)
    assert.matches("nothing applied: 2 destructive changes %(marked !%) would delete stored data; pass "
      .. "%-%-allow%-destructive", out)
    assert.are.equal("1", sql("SELECT count(*) FROM products WHERE name = 'c2'")) -- all or nothing
    assert.are.equal("7", sql([[SELECT value FROM subscription_instance_values]]))
    -- serve leaves removals alone and says so
    local host = H.start_host({ database = uri, products = v3 })
    local log = host:log()
    host:stop()
    assert.matches("not applied at start%-up", log)
    assert.are.equal("1", sql("SELECT count(*) FROM subscription_instance_values"))
    code, out = catalog("apply", v3, { "--allow-destructive" })
    assert.are.equal(0, code, out)
    assert.are.equal("0", sql("SELECT count(*) FROM subscription_instance_values"))
    assert.are.equal("0", sql("SELECT count(*) FROM products WHERE name = 'c2'"))
    assert.are.equal("0", sql("SELECT count(*) FROM resource_types WHERE resource_type = 'b'"))
  end)

  it("never removes what subscriptions use", function()
    local v4 = products({ ["c.lua"] = definitions({ drop_b = true, extra = { '{ "n", "integer" }' },
      products = { { "c3", "third" } } }) })
    local code, out = catalog("apply", v4, { "--allow-destructive" })
    assert.are.equal(1, code, out)
    assert.matches('x product "c1" is no longer defined but 1 subscription uses it; it stays', out)
    assert.matches("cannot be made while subscriptions use", out)
    assert.are.equal("1", sql("SELECT count(*) FROM products WHERE name = 'c1'"))
  end)

  it("a fixed-input value that subscriptions have is a destructive change", function()
    local v5 = products({ ["c.lua"] = definitions({ drop_b = true, extra = { '{ "n", "integer" }' },
      products = { { "c1", "first", "y" }, { "c3", "third", "z" } } }) })
    local _, out = catalog("plan", v5)
    assert.matches('! fixed input "c1"%.k: "x" %-> "y" %(1 subscriptions have the old value%)', out)
    assert.matches('~ fixed input "c3"%.k: "x" %-> "z"', out)
  end)

  it("is left alone by serve with ORCH_CATALOG_SYNC=off; the Node products appear otherwise", function()
    local db2, uri2 = H.new_database(dir)
    local code, out = H.run({ "db", "upgrade", "--database", uri2, "--migrations", H.source .. "/migrations" })
    assert.are.equal(0, code, out)
    local host = H.start_host({ database = uri2, env = { ORCH_CATALOG_SYNC = "off" } })
    local status, _, _, body = host:request("GET", "/api/products/")
    host:stop()
    assert.are.equal(200, status)
    assert.are.same({}, body)
    host = H.start_host({ database = uri2 })
    status, _, _, body = host:request("GET", "/api/products/?tag=NODE")
    host:stop()
    assert.are.equal(200, status)
    local names = {}
    for i, p in ipairs(body) do
      names[i] = p.name
      assert.are.equal("Node", p.product_type)
      assert.are.equal("node_type", p.fixed_inputs[1].name)
      assert.are.equal("Node", p.product_blocks[1].name)
    end
    table.sort(names)
    assert.are.same({ "node Cisco", "node Cumulus", "node FRR", "node Nokia" }, names)
    assert.are.equal("10", H.psql(dir, db2, [[SELECT count(*) FROM product_block_resource_types l
      JOIN product_blocks b USING (product_block_id) WHERE b.name = 'Node']]))
  end)
end)

describe("orchestrator check on product definitions", function()
  local function check(folder)
    local code, out = H.run({ "check", "--lua-dir", H.source .. "/lua", "--products", folder })
    H.assert_clean_log(out, "check")
    return code, out
  end

  it("reports local mistakes with file and line", function()
    local folder = "tests/fixtures/model_errors"
    local code, out = check(folder)
    assert.are.equal(1, code, out)
    assert.matches("check failed: 3 errors", out)
    assert.matches(esc(folder) .. "/b_duplicate_field%.lua:2: Dup%.a: duplicate field 'a'", out)
    assert.matches(esc(folder) .. "/c_min_max%.lua:2: Bad%.parts: min %(3%) is greater than max %(2%)", out)
    assert.matches(esc(folder) .. "/g_bad_required%.lua:2: Req%.x: required_from must be", out)
  end)

  it("reports cross-file mistakes with file and line", function()
    local folder = "tests/fixtures/model_cross"
    local code, out = check(folder)
    assert.are.equal(1, code, out)
    assert.matches("check failed: 3 errors", out)
    assert.matches(esc(folder) .. "/a_unknown_type%.lua:2: Widget%.size: unknown type 'no_such_type'", out)
    assert.matches(esc(folder) .. "/d_undefined_block%.lua:2: Holder%.thing: block 'Nowhere' is not defined", out)
    assert.matches(esc(folder) .. "/f_product_two%.lua:2: product 'widget' is already defined at "
      .. esc(folder) .. "/e_product_one%.lua:2", out)
  end)

  it("passes on the test products", function()
    local code, out = check("tests/fixtures/model_products")
    assert.are.equal(0, code, out)
  end)
end)
