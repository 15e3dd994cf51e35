-- Migrations: idempotent, safe when two processes upgrade at once, and the
-- schema matches orchestrator-core's tables column by column.
local H = require("harness")

local migrations = H.source .. "/migrations"

local function upgrade(uri)
  return H.run({ "db", "upgrade", "--migrations", migrations }, { DATABASE_URI = uri })
end

describe("db upgrade", function()
  it("applies every migration once and is a no-op the second time", function()
    local name, uri = H.new_database()
    local code, out = upgrade(uri)
    assert.are.equal(0, code, out)
    assert.matches("applied 0001_core_schema.sql", out)
    local dir = H.pg_dir()
    local before = H.psql(dir, name, "SELECT version, checksum, applied_at FROM orch_schema_migrations ORDER BY 1")
    code, out = upgrade(uri)
    assert.are.equal(0, code, out)
    assert.matches("up to date", out)
    local after = H.psql(dir, name, "SELECT version, checksum, applied_at FROM orch_schema_migrations ORDER BY 1")
    assert.are.equal(before, after)
    assert.are.equal("1", H.psql(dir, name, "SELECT count(*) FROM engine_settings"))
    assert.are.equal("f", H.psql(dir, name, "SELECT global_lock FROM engine_settings"))
  end)

  it("is safe when two processes upgrade one database at once", function()
    local name, uri = H.new_database()
    local pids, logs = {}, {}
    for i = 1, 2 do
      logs[i] = os.tmpname()
      pids[i] = H.proc.spawn({ H.bin, "db", "upgrade", "--migrations", migrations }, { DATABASE_URI = uri }, logs[i])
    end
    local outputs = {}
    for i, pid in ipairs(pids) do
      local how, code = H.proc.wait(pid)
      outputs[i] = H.read_file(logs[i])
      os.remove(logs[i])
      assert.are.equal("exited", how)
      assert.are.equal(0, code, outputs[i])
    end
    -- One of them applied everything, the other found nothing left to do.
    local applied = (outputs[1]:match("applied 0001") and 1 or 0) + (outputs[2]:match("applied 0001") and 1 or 0)
    assert.are.equal(1, applied, outputs[1] .. outputs[2])
    local dir = H.pg_dir()
    local files = 0
    for f in io.popen("ls " .. H.shell_quote(migrations)):lines() do
      if f:match("^%d%d%d%d_.*%.sql$") then
        files = files + 1
      end
    end
    assert.are.equal(tostring(files), H.psql(dir, name, "SELECT count(*) FROM orch_schema_migrations"))
    assert.are.equal("1", H.psql(dir, name, "SELECT count(*) FROM engine_settings"))
  end)

  it("reports a failing migration and leaves nothing half-applied", function()
    local name, uri = H.new_database()
    local bad = os.tmpname()
    os.remove(bad)
    assert(os.execute("mkdir -p " .. H.shell_quote(bad)))
    local f = assert(io.open(bad .. "/0001_ok.sql", "w"))
    f:write("CREATE TABLE first_table (id int);\n")
    f:close()
    f = assert(io.open(bad .. "/0002_broken.sql", "w"))
    f:write("CREATE TABLE second_table (id int);\nSELECT no_such_function();\n")
    f:close()
    local code, out = H.run({ "db", "upgrade", "--migrations", bad }, { DATABASE_URI = uri })
    assert.are_not.equal(0, code)
    assert.matches("0002_broken.sql", out)
    assert.matches("no_such_function", out)
    local dir = H.pg_dir()
    assert.are.equal("1", H.psql(dir, name, "SELECT string_agg(version::text, ',') FROM orch_schema_migrations"))
    assert.are.equal("", H.psql(dir, name, "SELECT to_regclass('second_table')"))
    code, out = H.run({ "db", "status", "--migrations", bad }, { DATABASE_URI = uri })
    assert.are.equal(0, code, out)
    assert.matches("0001_ok.sql%s+applied", out)
    assert.matches("0002_broken.sql%s+pending", out)
    os.execute("rm -rf " .. H.shell_quote(bad))
  end)
end)

describe("schema", function()
  it("matches orchestrator-core's tables, columns, types and nullability", function()
    local name, uri = H.new_database()
    local code, out = upgrade(uri)
    assert.are.equal(0, code, out)
    local expected = {}
    local first = true
    for line in io.lines(H.source .. "/tests/integration/expected_schema.tsv") do
      if first then
        first = false
      elseif line ~= "" then
        expected[#expected + 1] = line
      end
    end
    local tables = {}
    for _, line in ipairs(expected) do
      tables[line:match("^[^\t]+")] = true
    end
    local names = {}
    for t in pairs(tables) do
      names[#names + 1] = "'" .. t .. "'"
    end
    local actual = H.psql(H.pg_dir(), name, [[
      SELECT c.relname || E'\t' || a.attname || E'\t' || format_type(a.atttypid, a.atttypmod)
             || E'\t' || CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
        AND c.relname IN (]] .. table.concat(names, ",") .. [[)
      ORDER BY c.relname COLLATE "C", a.attname COLLATE "C"]])
    local got = {}
    for line in actual:gmatch("[^\n]+") do
      got[#got + 1] = line
    end
    table.sort(expected)
    table.sort(got)
    assert.are.same(expected, got)
    -- The core tables the issue lists are all there.
    for _, t in ipairs({ "products", "fixed_inputs", "product_blocks", "product_block_relations",
      "resource_types", "product_product_blocks", "product_block_resource_types", "workflows",
      "products_workflows", "subscriptions", "subscription_instances", "subscription_instance_values",
      "subscription_instance_relations", "subscription_customer_descriptions", "subscription_metadata",
      "processes", "process_steps", "processes_subscriptions", "input_states", "engine_settings" }) do
      assert.is_true(tables[t], "missing table " .. t)
    end
  end)

  it("increments subscriptions.version on every update, as core's trigger does", function()
    local name, uri = H.new_database()
    assert.are.equal(0, (upgrade(uri)))
    local dir = H.pg_dir()
    H.psql(dir, name, [[
      INSERT INTO products (product_id, name, description, product_type, tag, status)
      VALUES ('00000000-0000-0000-0000-000000000001', 'P', 'd', 'T', 'TAG', 'active');
      INSERT INTO subscriptions (subscription_id, description, status, product_id, customer_id, insync)
      VALUES ('00000000-0000-0000-0000-0000000000aa', 's', 'initial',
              '00000000-0000-0000-0000-000000000001', 'c', false);
      UPDATE subscriptions SET insync = true;
      UPDATE subscriptions SET version = 42;]])
    assert.are.equal("3", H.psql(dir, name, "SELECT version FROM subscriptions"))
  end)
end)
