-- A second product written as a new author would (tests/fixtures/authoring_products):
-- resume by position where step names repeat, saves that could not be loaded again,
-- strict `check` of workflow definitions and errors that point at the author's line.
local H = require("harness")

local fixtures = "tests/fixtures/authoring_products"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. H.shell_quote(dir)))
  return dir
end

local function check(products)
  return H.run({ "check", "--lua-dir", H.source .. "/lua", "--products", products })
end

describe("authoring products", function()
  local host, db, dbname

  setup(function()
    dbname, db = H.new_database()
    H.migrate(db)
    host = H.start_host({ database = db, products = fixtures, args = { "--workers", "2" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  local function start(name, page)
    local status, body, _, d = host:request("POST", "/api/processes/" .. name, { page or {} })
    assert.are.equal(201, status, body)
    return d.id
  end

  local function names(d, status)
    local out = {}
    for _, s in ipairs(d.steps) do
      if status == nil or s.status == status then
        out[#out + 1] = s.name
      end
    end
    return out
  end

  local function sql(query)
    return H.psql(H.pg_dir(), dbname, query)
  end

  describe("resume (item 1)", function()
    it("continues at the failed step's position when a step is used twice", function()
      local pid = start("auth_repeat_steps")
      local d = host:wait_status(pid, "waiting")
      -- The second "Flaky call" waits; only "After" and "Done" are still pending.
      assert.are.same({ "After", "Done" }, names(d, "pending"))
      local status = host:request("PUT", "/api/processes/" .. pid .. "/resume", "{}")
      assert.are.equal(204, status)
      d = host:wait_status(pid, "completed")
      assert.are.same({ "Start", "Flaky call", "Enter phase 2", "Flaky call", "Flaky call", "After", "Done" },
        names(d))
      assert.are.same({ "success", "success", "success", "waiting", "success", "success", "complete" },
        (function()
          local st = {}
          for _, s in ipairs(d.steps) do
            st[#st + 1] = s.status
          end
          return st
        end)())
      assert.are.equal(1, d.current_state.phase2)
      assert.are.equal(2, d.current_state.flaky_calls)
    end)
  end)

  describe("saves (item 2)", function()
    local function count_subscriptions()
      return tonumber((sql("SELECT count(*) FROM subscriptions"):gsub("%s", "")))
    end

    it("refuses a list above its max with the field path; nothing is written", function()
      local before = count_subscriptions()
      local pid = start("auth_save", { ranges = 4 })
      local d = host:wait_status(pid, "failed")
      assert.matches("cannot be saved %(lifecycle 'initial'%): "
        .. "block%.ranges %(block AuthPrefix%) needs 1%-3 blocks, has 4", d.failed_reason)
      assert.are.equal(before, count_subscriptions())
    end)

    it("refuses what the product's validate refuses", function()
      local before = count_subscriptions()
      local pid = start("auth_save", { purpose = "forbidden" })
      local d = host:wait_status(pid, "failed")
      assert.matches("cannot be saved %(lifecycle 'initial'%): purpose 'forbidden' is not allowed", d.failed_reason)
      assert.are.equal(before, count_subscriptions())
    end)

    it("refuses to drop a field required in the stored lifecycle and keeps the subscription readable", function()
      local d = host:wait_status(start("auth_save", { status = "active" }), "completed")
      local id = d.current_state.subscription_id
      for _, how in ipairs({ "required", "list", "validate" }) do
        local b = host:wait_status(start("auth_break", { subscription_id = id, how = how }), "failed")
        assert.matches("cannot be saved %(lifecycle 'active'%)", b.failed_reason)
      end
      local status, body, _, dm = host:request("GET", "/api/subscriptions/domain-model/" .. id)
      assert.are.equal(200, status, body)
      assert.are.equal("10.0.0.0/24", dm.block.prefix)
      assert.are.equal(1, #dm.block.ranges)
    end)
  end)

  describe("check (items 1, 4, 5)", function()
    it("warns about repeated step names and still passes", function()
      local code, out = check(fixtures)
      assert.are.equal(0, code, out)
      assert.matches("prefix%.lua:%d+: warning: workflow 'auth_repeat_steps': step 'Flaky call' appears 2 times", out)
    end)

    local cases = {
      {
        "unknown product name",
        [[orch.workflows.task({ name = "t", description = "d", products = { "no such product" },
  steps = {} })]],
        1, "workflow 't': unknown product 'no such product' in products",
      },
      {
        "unknown product type",
        [[orch.workflows.task({ name = "t", description = "d", product_types = { "Nope" },
  steps = {} })]],
        1, "workflow 't': unknown product type 'Nope' in product_types",
      },
      {
        "unknown callback_step option",
        [[local wf = orch.workflow
local s = wf.step("s", function() end)
local c = wf.callback_step({ name = "c", action = s, validate = s, result_kye = "r" })]],
        3, "callback_step 'c': unknown option result_kye",
      },
      {
        "unknown inputstep option",
        [[local wf = orch.workflow
local i = wf.inputstep("i", { frm = orch.forms.page({}) })]],
        2, "inputstep 'i': unknown option frm",
      },
      {
        "unknown workflow option",
        [[orch.workflows.modify_workflow({ name = "t", description = "d", stpes = {} })]],
        1, "workflow 't': unknown option stpes",
      },
      {
        "missing description",
        [[orch.workflows.task({ name = "t", steps = {} })]],
        1, "workflow 't' needs a description",
      },
    }
    for _, case in ipairs(cases) do
      it("refuses an " .. case[1] .. " at the author's line", function()
        local dir = tmpdir()
        write(dir .. "/a.lua", case[2] .. "\n")
        local code, out = check(dir)
        os.execute("rm -rf " .. H.shell_quote(dir))
        assert.are.equal(1, code, out)
        local prefix = (dir .. "/a.lua"):gsub("%p", "%%%0")
        assert.matches(prefix .. ":" .. case[3] .. ": [^\n]*" .. case[4]:gsub("%p", "%%%0"), out)
        assert.not_matches("lua/orch/", out)
      end)
    end

    it("names both places of a duplicate workflow name", function()
      local dir = tmpdir()
      write(dir .. "/a.lua", 'orch.workflows.task({ name = "twice", description = "one", steps = {} })\n')
      write(dir .. "/b.lua", '\norch.workflows.task({ name = "twice", description = "two", steps = {} })\n')
      local code, out = check(dir)
      os.execute("rm -rf " .. H.shell_quote(dir))
      assert.are.equal(1, code, out)
      local a, b = (dir .. "/a.lua"):gsub("%p", "%%%0"), (dir .. "/b.lua"):gsub("%p", "%%%0")
      assert.matches(b .. ":2: workflow 'twice' is defined twice %(first at " .. a .. ":1%)", out)
    end)
  end)

  describe("API misuse at run time (item 5)", function()
    it("model.get(nil) names the product script's line", function()
      local pid = start("auth_get_nil")
      local d = host:wait_status(pid, "failed")
      assert.matches("authoring_products/prefix%.lua:%d+: orch%.model%.load expects a subscription id", d.failed_reason)
    end)
  end)

  describe("domain-model JSON (item 7)", function()
    it("writes the blocks' keys in declaration order, the same bytes every time", function()
      local d = host:wait_status(start("auth_save", { ranges = 2 }), "completed")
      local id = d.current_state.subscription_id
      local first
      for _ = 1, 10 do
        local status, body = host:request("GET", "/api/subscriptions/domain-model/" .. id)
        assert.are.equal(200, status, body)
        first = first or body
        assert.are.equal(first, body)
      end
      -- In the AuthPrefix block: the core keys, then the fields as declared.
      local block = first:match('"block":(%b{})')
      local at = {}
      for _, k in ipairs({ "name", "label", "subscription_instance_id", "owner_subscription_id", "prefix",
        "purpose", "ranges" }) do
        at[#at + 1] = assert(block:find('"' .. k .. '":', 1, true), k)
      end
      for i = 2, #at do
        assert.is_true(at[i - 1] < at[i], block)
      end
      local range = block:match('"ranges":%[(%b{})')
      assert.is_true(range:find('"first":', 1, true) < range:find('"last":', 1, true), range)
    end)
  end)
end)

-- A field's type changes while subscriptions hold values that do not convert (item 3), and
-- what the generation route says about refused reloads (item 6).
describe("changing a field's type", function()
  local host, db, dir

  local function start_host()
    return H.start_host({ database = db, products = dir, args = { "--workers", "1" } })
  end

  local function set_purpose_type(t)
    local text = H.read_file(fixtures .. "/prefix.lua")
    text = text:gsub('{ "purpose", "string" }', '{ "purpose", "' .. t .. '" }')
    write(dir .. "/prefix.lua", text)
  end

  local function catalog(sub, extra)
    local args = { "catalog", sub, "--database", db, "--lua-dir", H.source .. "/lua", "--products", dir }
    for _, a in ipairs(extra or {}) do
      args[#args + 1] = a
    end
    return H.run(args)
  end

  local function generation()
    local _, _, _, g = host:request("GET", "/api/settings/generation")
    return g
  end

  setup(function()
    dir = tmpdir()
    set_purpose_type("string")
    db = select(2, H.new_database())
    H.migrate(db)
    host = start_host()
  end)

  teardown(function()
    if host then
      host:stop()
    end
    os.execute("rm -rf " .. H.shell_quote(dir))
  end)

  it("is shown, refused by reload and serve, applied on request, and the data stays readable", function()
    -- An active subscription whose purpose is text.
    local status, body, _, started = host:request("POST", "/api/processes/auth_save", { { status = "active" } })
    assert.are.equal(201, status, body)
    local id
    for _ = 1, 200 do
      local _, _, _, d = host:request("GET", "/api/processes/" .. started.id)
      if d.last_status == "completed" then
        id = d.current_state.subscription_id
        break
      end
      H.sleep(0.05)
    end
    assert.is_not_nil(id)

    -- A good reload first: its catalogue report is text, without a status prefix.
    local s0, _, _, ok_report = host:request("POST", "/api/settings/reload")
    assert.are.equal(200, s0)
    assert.are.equal("table", type(ok_report.catalog))
    assert.is_true(ok_report.catalog.ok)
    assert.matches("^catalogue: ", ok_report.catalog.text)
    local before = generation()
    assert.are.equal(H.json.null, before.last_error)

    -- The type changes: plan shows it as destructive with the count of values.
    set_purpose_type("integer")
    local code, out = catalog("plan")
    assert.are.equal(0, code, out)
    assert.matches("! field AuthPrefix%.purpose: type string %-> integer: 1 stored value of 1 does not convert", out)
    assert.matches("1 destructive", out)

    -- The reload is refused and says why; the generation number is not used up.
    local s1, _, _, report = host:request("POST", "/api/settings/reload")
    assert.are.equal(400, s1)
    assert.is_false(report.ok)
    assert.is_false(report.catalog.ok)
    assert.matches("type string %-> integer", report.catalog.message)
    local after = generation()
    assert.are.equal(before.generation, after.generation)
    assert.are.equal("api", after.last_error.trigger)
    assert.matches("destructive", after.last_error.message)
    -- SIGHUP records its refusal too.
    H.proc.kill(host.pid, "HUP")
    for _ = 1, 200 do
      if generation().last_error.trigger == "SIGHUP" then
        break
      end
      H.sleep(0.05)
    end
    assert.are.equal("SIGHUP", generation().last_error.trigger)
    -- Still served by the old definitions: the subscription reads as before.
    local s2, _, _, dm = host:request("GET", "/api/subscriptions/domain-model/" .. id)
    assert.are.equal(200, s2)
    assert.are.equal("office lan", dm.block.purpose)
    host:stop()
    host = nil

    -- serve refuses to start with the change unapplied.
    local started_ok, err = pcall(start_host)
    assert.is_false(started_ok)
    assert.matches("catalog apply %-%-allow%-destructive", tostring(err))

    -- apply without the flag refuses, with it applies.
    code, out = catalog("apply")
    assert.are.equal(1, code, out)
    code, out = catalog("apply", { "--allow-destructive" })
    assert.are.equal(0, code, out)
    code, out = catalog("plan")
    assert.are.equal(0, code, out)
    assert.matches("the catalogue matches the definitions", out)

    -- Now it serves; the stored text is shown raw with an error marker instead of a 500.
    host = start_host()
    local s3, b3, _, dm2 = host:request("GET", "/api/subscriptions/domain-model/" .. id)
    assert.are.equal(200, s3, b3)
    assert.are.equal("office lan", dm2.block.purpose)
    assert.matches('stored value "office lan" is invalid: expected an integer', dm2.block.invalid_values.purpose)
    -- The next good reload numbers the generation right after the last published one.
    local g0 = generation().generation
    local s4 = host:request("POST", "/api/settings/reload")
    assert.are.equal(200, s4)
    assert.are.equal(g0 + 1, generation().generation)
    assert.are.equal(H.json.null, generation().last_error)
  end)
end)

-- Products ship their own migrations (item 9): the example products' tables come from
-- products/migrations/ and only to databases that serve those products.
describe("product migrations", function()
  local function upgrade(uri, migrations, products)
    return H.run({ "db", "upgrade", "--database", uri, "--migrations", migrations, "--products", products })
  end

  local function has_table(name, t)
    return H.psql(H.pg_dir(), name, "SELECT to_regclass('" .. t .. "') IS NOT NULL") == "t"
  end

  it("are applied with the products folder that has them, and only there", function()
    local name, uri = H.new_database()
    local code, out = upgrade(uri, H.source .. "/migrations", H.source .. "/" .. fixtures)
    assert.are.equal(0, code, out)
    assert.is_false(has_table(name, "customers"))
    assert.is_false(has_table(name, "example_settings"))

    code, out = upgrade(uri, H.source .. "/migrations", H.source .. "/products")
    assert.are.equal(0, code, out)
    assert.matches("applied products/0010_example_products%.sql", out)
    assert.is_true(has_table(name, "customers"))
    assert.are.equal("3", H.psql(H.pg_dir(), name, "SELECT count(*) FROM customers"))
    code, out = upgrade(uri, H.source .. "/migrations", H.source .. "/products")
    assert.are.equal(0, code, out)
    assert.matches("database is up to date", out)
    code, out = H.run({ "db", "status", "--database", uri, "--migrations", H.source .. "/migrations",
      "--products", H.source .. "/products" })
    assert.are.equal(0, code, out)
    assert.matches("products/0010_example_products%.sql%s+applied", out)
  end)

  it("keep databases that applied 0010 as a core migration working", function()
    -- A database migrated before the move: 0010_example_products.sql among the core migrations.
    local old = tmpdir()
    assert(os.execute("cp " .. H.shell_quote(H.source) .. "/migrations/*.sql " .. H.shell_quote(old) .. "/ && cp "
      .. H.shell_quote(H.source) .. "/products/migrations/0010_example_products.sql " .. H.shell_quote(old) .. "/"))
    local name, uri = H.new_database()
    local code, out = H.run({ "db", "upgrade", "--database", uri, "--migrations", old, "--products",
      H.source .. "/" .. fixtures })
    os.execute("rm -rf " .. H.shell_quote(old))
    assert.are.equal(0, code, out)
    H.psql(H.pg_dir(), name, "UPDATE customers SET fullname = 'SURF (edited)' WHERE shortcode = 'SURF'")
    -- Upgraded with the new layout: recorded, not run again; nothing pending.
    code, out = upgrade(uri, H.source .. "/migrations", H.source .. "/products")
    assert.are.equal(0, code, out)
    assert.matches("recorded products/0010_example_products%.sql", out)
    assert.not_matches("applied products/0010", out)
    assert.are.equal("SURF (edited)",
      H.psql(H.pg_dir(), name, "SELECT fullname FROM customers WHERE shortcode = 'SURF'"))
    code, out = H.run({ "db", "status", "--database", uri, "--migrations", H.source .. "/migrations",
      "--products", H.source .. "/products" })
    assert.are.equal(0, code, out)
    assert.not_matches("pending", out)
  end)
end)

-- A save that breaks the scripts under --watch is refused like any reload (item 6).
describe("refused reloads under --watch", function()
  local host, dir

  setup(function()
    dir = tmpdir()
    write(dir .. "/a.lua", 'orch.workflows.task({ name = "w_one", description = "one", steps = {} })\n')
    local _, db = H.new_database()
    H.migrate(db, dir)
    host = H.start_host({ database = db, products = dir, args = { "--workers", "1", "--watch", "1" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
    os.execute("rm -rf " .. H.shell_quote(dir))
  end)

  local function generation()
    local _, _, _, g = host:request("GET", "/api/settings/generation")
    return g
  end

  it("shows the refusal in last_error and uses up no generation number", function()
    local before = generation()
    write(dir .. "/b.lua", 'orch.workflows.task({ name = "w_two", steps = {} })\n')
    local g
    for _ = 1, 100 do
      g = generation()
      if g.last_error ~= H.json.null then
        break
      end
      H.sleep(0.1)
    end
    assert.are.equal("watch", g.last_error.trigger)
    assert.matches("b%.lua:1: workflow 'w_two' needs a description", g.last_error.message)
    assert.are.equal(before.generation, g.generation)
    write(dir .. "/b.lua", 'orch.workflows.task({ name = "w_two", description = "two", steps = {} })\n')
    for _ = 1, 100 do
      g = generation()
      if g.generation ~= before.generation then
        break
      end
      H.sleep(0.1)
    end
    assert.are.equal(before.generation + 1, g.generation)
    assert.are.equal(H.json.null, g.last_error)
  end)

  it("watches a folder created after the start (a script saved in it reloads)", function()
    os.execute("mkdir " .. H.shell_quote(dir .. "/later"))
    H.sleep(1.5) -- the new folder's own reload (debounced) has come and gone
    local before = generation()
    write(dir .. "/later/c.lua", 'orch.workflows.task({ name = "w_three", description = "three", steps = {} })\n')
    local g
    for _ = 1, 100 do
      g = generation()
      if g.generation ~= before.generation then
        break
      end
      H.sleep(0.1)
    end
    assert.are.equal(before.generation + 1, g.generation)
    local paths = {}
    for _, file in ipairs(g.files) do
      paths[#paths + 1] = file.path
    end
    assert.matches("later/c%.lua", table.concat(paths, " "))
  end)
end)
