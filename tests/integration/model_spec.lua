-- Subscriptions against PostgreSQL (lua/orch/model through orch_invoke and the
-- test products in tests/fixtures/model_products): create -> save -> load
-- round trips, orchestrator-core's text formats in both directions, partial
-- updates that write only the changed rows, references across subscriptions,
-- the in-use-by safety table, and the benchmark shapes.
local H = require("harness")
local cjson = require("cjson")

local invoke_bin = assert(os.getenv("ORCH_INVOKE"), "ORCH_INVOKE is not set")
local products = "tests/fixtures/model_products"

local dir, db, uri

local function invoke(func, arg)
  local cmd = string.format("%s --database %s --lua-dir %s --products %s driver %s %s 2>&1", H.shell_quote(invoke_bin),
    H.shell_quote(uri), H.shell_quote(H.source .. "/lua"), H.shell_quote(products), func,
    H.shell_quote(cjson.encode(arg or {})))
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok = p:close()
  H.assert_clean_log(out, "orch_invoke")
  assert(ok, "orch_invoke " .. func .. " failed:\n" .. out)
  return cjson.decode(out)
end

local function must(func, arg)
  local r = invoke(func, arg)
  assert(r.ok, func .. ": " .. tostring(r.error))
  return r.result
end

local function esc(s)
  return (s:gsub("%p", "%%%0"))
end

local function sql(q)
  return H.psql(dir, db, q)
end

-- xmin of every row a subscription owns: a row keeps its xmin until it is written.
local function row_versions(sub_id)
  local out = {}
  local text = sql(string.format([[
    SELECT 's:' || subscription_id || '=' || xmin FROM subscriptions WHERE subscription_id = '%s'
    UNION ALL SELECT 'i:' || subscription_instance_id || '=' || xmin FROM subscription_instances
      WHERE subscription_id = '%s'
    UNION ALL SELECT 'v:' || v.subscription_instance_value_id || '=' || v.xmin FROM subscription_instance_values v
      JOIN subscription_instances i USING (subscription_instance_id) WHERE i.subscription_id = '%s'
    UNION ALL SELECT 'r:' || r.in_use_by_id || '/' || r.depends_on_id || '/' || r.order_id || '=' || r.xmin
      FROM subscription_instance_relations r
      JOIN subscription_instances i ON i.subscription_instance_id = r.in_use_by_id
      WHERE i.subscription_id = '%s']], sub_id, sub_id, sub_id, sub_id))
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^(.-)=(%d+)$")
    out[k] = v
  end
  return out
end

local function changed(before, after)
  local n = { written = 0, added = 0, removed = 0 }
  for k, v in pairs(after) do
    if before[k] == nil then
      n.added = n.added + 1
    elseif before[k] ~= v then
      n.written = n.written + 1
    end
  end
  for k in pairs(before) do
    if after[k] == nil then
      n.removed = n.removed + 1
    end
  end
  return n
end

local port_values = { port_name = "p1", speed = "100", enabled = true, uid = "6F9619FF-8B86-D011-B42D-00C04FC964FF",
  v4 = "10.0.0.1", v6 = "2001:DB8:0:0:0:0:0:1", net4 = "10.1.0.0/16", net6 = "2001:db8::/32",
  vlans = "20-30,5,10-19", mode = "tagged", mtu = "9000", colour = "Red" }

describe("subscriptions in PostgreSQL", function()
  local node

  setup(function()
    dir = H.pg_dir()
    db, uri = H.new_database(dir)
    local code, out = H.run({ "db", "upgrade", "--database", uri, "--migrations", H.source .. "/migrations" })
    assert.are.equal(0, code, out)
    code, out = H.run({ "catalog", "apply", "--database", uri, "--lua-dir", H.source .. "/lua",
      "--products", products })
    assert.are.equal(0, code, out)
    H.assert_clean_log(out, "catalog apply")
    node = invoke("create_node", { name = "n1", rank = 3, status = "active" })
  end)

  it("round-trip: what was created and saved loads equal", function()
    local created = must("create_port", { node = node.id, values = port_values, extra = "x", leaves = { 1, 2 },
      status = "provisioning" })
    assert.are.equal(0, created.again) -- a second save writes nothing
    local loaded = must("load", { id = created.id })
    assert.are.same(created.table, loaded.table)
    assert.are.equal(1, loaded.statements) -- the whole tree in one round trip
    assert.are.equal(0, loaded.changes)
    local port = loaded.table.port
    assert.are.equal(100, port.speed)
    assert.are.equal(true, port.enabled)
    assert.are.equal("2001:db8::1", port.v6)
    assert.are.equal("5,10-30", port.vlans)
    assert.are.equal(9000, port.mtu)
    assert.are.equal("red", port.colour)
    assert.are.equal("x", port.extra.key)
    assert.are.same({ 1, 2 }, { port.leaves[1].n, port.leaves[2].n })
    assert.are.equal("node n1", port.node.title) -- computed, on a referenced block
    assert.are.equal(node.id, port.node.owner_subscription_id)
    assert.are.equal(10, loaded.table.speed_class)
  end)

  it("stores values in orchestrator-core's text formats", function()
    local created = must("create_port", { node = node.id, values = port_values })
    local rows = sql(string.format([[SELECT rt.resource_type || '=' || v.value FROM subscription_instance_values v
      JOIN resource_types rt USING (resource_type_id) JOIN subscription_instances i USING (subscription_instance_id)
      JOIN product_blocks b USING (product_block_id) WHERE i.subscription_id = '%s' AND b.name = 'TPort'
      ORDER BY 1]], created.id))
    for _, expected in ipairs({ "enabled=True", "speed=100", "uid=6f9619ff-8b86-d011-b42d-00c04fc964ff",
      "v6=2001:db8::1", "vlans=5,10-30", "mtu=9000", "net4=10.1.0.0/16", "colour=red" }) do
      assert.truthy(("\n" .. rows .. "\n"):find("\n" .. expected .. "\n", 1, true), expected .. " in\n" .. rows)
    end
    -- relation to the other subscription's node: order_id 0, the field name as domain_model_attr
    local rel = sql(string.format([[SELECT r.order_id || ' ' || r.domain_model_attr
      FROM subscription_instance_relations r WHERE r.depends_on_id = '%s' AND r.in_use_by_id = '%s']], node.block,
      created.table.port.subscription_instance_id))
    assert.are.equal("0 node", rel)
  end)

  it("loads rows written by orchestrator-core into the right Lua types", function()
    -- A subscription written by hand the way orchestrator-core writes it.
    local sub, inst, conf, leaf = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002",
      "aaaaaaaa-0000-4000-8000-000000000003", "aaaaaaaa-0000-4000-8000-000000000004"
    sql(string.format([[
      INSERT INTO subscriptions (subscription_id, description, status, product_id, customer_id, insync)
        SELECT '%s', 'written by core', 'initial', product_id, 'c', true FROM products WHERE name = 'tport';
      INSERT INTO subscription_instances (subscription_instance_id, subscription_id, product_block_id, label)
        SELECT '%s', '%s', product_block_id, 'the port' FROM product_blocks WHERE name = 'TPort';
      INSERT INTO subscription_instances (subscription_instance_id, subscription_id, product_block_id)
        SELECT '%s', '%s', product_block_id FROM product_blocks WHERE name = 'TConf';
      INSERT INTO subscription_instances (subscription_instance_id, subscription_id, product_block_id)
        SELECT '%s', '%s', product_block_id FROM product_blocks WHERE name = 'TLeaf';
      INSERT INTO subscription_instance_relations (in_use_by_id, depends_on_id, order_id, domain_model_attr)
        VALUES ('%s', '%s', 0, 'conf'), ('%s', '%s', 0, NULL);
      INSERT INTO subscription_instance_values (subscription_instance_id, resource_type_id, value)
        SELECT '%s', resource_type_id, v FROM resource_types
          JOIN (VALUES ('enabled', 'False'), ('speed', '42'), ('v4', '192.168.0.1'), ('v6', 'fe80::1'),
                       ('net6', '2001:db8::/48'), ('vlans', '7'), ('mtu', '1500'),
                       ('uid', 'aaaaaaaa-0000-4000-8000-000000000009'))
            AS x(rt, v) ON x.rt = resource_type;
      INSERT INTO subscription_instance_values (subscription_instance_id, resource_type_id, value)
        SELECT '%s', resource_type_id, 'True' FROM resource_types WHERE resource_type = 'enabled';
      INSERT INTO subscription_instance_values (subscription_instance_id, resource_type_id, value)
        SELECT '%s', resource_type_id, '12' FROM resource_types WHERE resource_type = 'n';]],
      sub, inst, sub, conf, sub, leaf, sub, inst, conf, inst, leaf, inst, conf, leaf))
    local loaded = must("load", { id = sub })
    local port = loaded.table.port
    assert.are.equal(false, port.enabled)
    assert.are.equal(42, port.speed)
    assert.are.equal("192.168.0.1", port.v4)
    assert.are.equal("fe80::1", port.v6)
    assert.are.equal("2001:db8::/48", port.net6)
    assert.are.equal("7", port.vlans)
    assert.are.equal(1500, port.mtu)
    assert.are.equal(true, port.conf.enabled)
    assert.are.equal(12, port.leaves[1].n)
    assert.are.equal("the port", port.label)
    assert.are.equal(cjson.null, port.node)
    assert.are.equal(true, loaded.table.insync)
    -- values are already in canonical form; only the relation written without domain_model_attr
    -- (matched by block name) would be rewritten with it: one delete, one insert
    assert.are.equal(2, loaded.changes)
  end)

  it("writes only the rows that changed", function()
    local created = must("create_port", { node = node.id, values = port_values, leaves = { 1, 2, 3 } })
    local before = row_versions(created.id)
    local r = must("update", { id = created.id, set = { speed = 200 } })
    assert.are.equal(1, r.written)
    assert.are.same({ written = 1, added = 0, removed = 0 }, changed(before, row_versions(created.id)))
    assert.are.equal("200", sql(string.format([[SELECT v.value FROM subscription_instance_values v
      JOIN resource_types rt USING (resource_type_id) JOIN subscription_instances i USING (subscription_instance_id)
      WHERE i.subscription_id = '%s' AND rt.resource_type = 'speed']], created.id)))
    -- clearing a value deletes its row; nothing else is touched
    before = row_versions(created.id)
    r = must("update", { id = created.id, set = { colour = cjson.null } })
    assert.are.equal(1, r.written)
    assert.are.same({ written = 0, added = 0, removed = 1 }, changed(before, row_versions(created.id)))
    -- dropping a list entry deletes the orphaned instance (its value and relation go with it)
    before = row_versions(created.id)
    r = must("update", { id = created.id, drop_leaves = 1 })
    assert.are.same({ written = 0, added = 0, removed = 3 }, changed(before, row_versions(created.id)))
    assert.are.equal(2, #r.table.port.leaves)
    -- a label is the instance row
    before = row_versions(created.id)
    r = must("update", { id = created.id, set = { label = "uplink" } })
    assert.are.equal(1, r.written)
    assert.are.same({ written = 1, added = 0, removed = 0 }, changed(before, row_versions(created.id)))
    assert.are.equal("uplink", must("load", { id = created.id }).table.port.label)
    -- the subscription row only when one of its columns changes (the trigger bumps version)
    before = row_versions(created.id)
    r = must("update", { id = created.id, description = "renamed" })
    assert.are.equal(1, r.written)
    assert.are.same({ written = 1, added = 0, removed = 0 }, changed(before, row_versions(created.id)))
    assert.are.equal(2, r.table.version)
    -- nothing changed: no statement at all
    r = must("update", { id = created.id, set = {} })
    assert.are.equal(0, r.written)
    assert.are.equal(0, r.statements)
  end)

  it("saves several subscriptions together, whatever their order", function()
    local pair = invoke("save_pair")
    assert.are.equal(0, pair.again)
    -- BEGIN, for each kind of change one statement per subscription, COMMIT
    assert.is_true(pair.statements <= 2 + 2 * 6, "statements: " .. pair.statements)
    local port = must("load", { id = pair.port })
    assert.are.equal(pair.node, port.table.port.node.owner_subscription_id)
    assert.are.equal("pair-node", port.table.port.node.node_name)
  end)

  it("never writes into a block owned by another subscription", function()
    local created = must("create_port", { node = node.id, values = port_values })
    local node_rows = row_versions(node.id)
    local out = invoke("bad_assignments", { id = created.id, cases = {
      { on = "node", field = "node_name", value = "hijacked" },
      { field = "speed", value = "fast" },
      { field = "mode", value = "sideways" },
      { field = "colour", value = "invisible" },
      { field = "vlans", value = "5000" },
      { field = "nonsense", value = 1 },
    } })
    assert.matches("owned by subscription " .. esc(node.id) .. " and is read%-only", out[1].error)
    assert.matches('TPort.speed: expected an integer, got "fast"', out[2].error)
    assert.matches("TPort.mode: expected one of", out[3].error)
    assert.matches("invisible is not a colour", out[4].error)
    assert.matches("TPort.vlans: expected VLAN ranges", out[5].error)
    assert.matches("has no field 'nonsense'", out[6].error)
    must("update", { id = created.id, set = { port_name = "p2" } })
    assert.are.same(node_rows, row_versions(node.id))
  end)

  it("validates lifecycles and enforces the in-use-by safety table", function()
    local n2 = invoke("create_node", { name = "n2", rank = 1, status = "active" })
    local port = must("create_port", { node = n2.id, values = port_values, status = "provisioning" })
    -- the port uses the node: the node cannot be terminated while the port is not
    local r = invoke("set_status", { id = n2.id, status = "terminated" })
    assert.is_false(r.ok)
    assert.matches("Unsafe status change of Subscription with depending subscriptions", r.error)
    assert.matches(esc(port.id) .. " %(provisioning%)", r.error)
    -- subscription-level relations
    local p = must("set_status", { id = port.id, status = "active" })
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", p.start_date)
    assert.are.equal(n2.id, p.depends_on[1].subscription_id)
    -- block-level relations
    local rel = invoke("block_relations", { id = port.id })
    local user = { subscription_instance_id = port.table.port.subscription_instance_id, subscription_id = port.id }
    assert.are.same({ user }, rel.node_users)
    assert.are.same({ "TNode", "TConf", "TLeaf" }, rel.port_depends_on)
    -- migrating refuses active users, as core's table says
    r = invoke("set_status", { id = n2.id, status = "migrating" })
    assert.is_false(r.ok)
    p = must("set_status", { id = port.id, status = "terminated" })
    assert.is_string(p.end_date)
    local n = must("set_status", { id = n2.id, status = "terminated" })
    assert.are.equal(port.id, n.in_use_by[1].subscription_id)
    assert.are.equal("terminated", n.in_use_by[1].status)
    assert.is_string(n.end_date)
  end)

  it("names the block and field of a missing required value, on transition and on load", function()
    local bare = must("create_port", { values = { port_name = "forbidden" } })
    local r = invoke("set_status", { id = bare.id, status = "provisioning" })
    assert.is_false(r.ok)
    assert.matches("port.node %(block TPort%) is required in lifecycle 'provisioning'", r.error)
    -- a product-level validator
    local full = must("create_port", { node = node.id, values = port_values, extra = "e" })
    must("update", { id = full.id, set = { port_name = "forbidden" } })
    r = invoke("set_status", { id = full.id, status = "active" })
    assert.matches("a port called forbidden cannot be active", r.error)
    -- a stored subscription whose status asks for more than its rows have
    sql(string.format("UPDATE subscriptions SET status = 'active' WHERE subscription_id = '%s'", bare.id))
    r = invoke("load", { id = bare.id })
    assert.is_false(r.ok)
    assert.matches("port.speed %(block TPort%) is required in lifecycle 'active' but missing", r.error)
  end)

  it("loads and saves orchestrator-core's benchmark shapes in one round trip", function()
    local ids = invoke("build_bench", { items = 100, chain = 10 })
    local bulk = invoke("time_load", { id = ids.bulk, runs = 3 })
    assert.are.equal(1, bulk.statements)
    assert.are.equal(101, bulk.blocks)
    local chain = invoke("time_load", { id = ids.chain, runs = 3 })
    assert.are.equal(1, chain.statements)
    assert.are.equal(10, chain.blocks)
    assert.are.equal("100", sql(string.format([[SELECT count(*) FROM subscription_instance_relations r
      JOIN subscription_instances i ON i.subscription_instance_id = r.in_use_by_id
      WHERE i.subscription_id = '%s']], ids.bulk)))
  end)
end)
