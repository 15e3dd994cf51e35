-- The Lua examples of docs/*.md are code that works:
--  * every ```lua block compiles (blocks that are deliberately incomplete say ```lua fragment);
--  * every ```lua example block is a complete product script: all of them together pass
--    `orchestrator check` as one products folder, and a host serving that folder runs the
--    workflows they define the way the docs say.
local H = require("harness")
local kit = require("orch_testkit")

local DOCS = H.source .. "/docs"

-- {file, line, info, body} of every fenced Lua block of the docs.
local function lua_blocks()
  local out = {}
  local p = io.popen("ls " .. H.shell_quote(DOCS) .. "/*.md")
  for path in p:lines() do
    local text = "\n" .. H.read_file(path)
    local name = path:match("[^/]+$")
    for start, info, body in text:gmatch("\n()```(lua[^\n]*)\n(.-)\n```") do
      local _, newlines = text:sub(1, start):gsub("\n", "")
      out[#out + 1] = { file = name, line = newlines, info = info, body = body }
    end
  end
  p:close()
  return out
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("the Lua examples of docs/", function()
  local blocks = lua_blocks()
  local folder, env

  setup(function()
    folder = os.tmpname()
    os.remove(folder)
    assert(os.execute("mkdir -p " .. H.shell_quote(folder)))
    for _, b in ipairs(blocks) do
      if b.info == "lua example" then
        write(("%s/%s_%04d.lua"):format(folder, b.file:gsub("%.md$", ""), b.line), b.body .. "\n")
      end
    end
  end)

  teardown(function()
    if env then
      env:stop()
    end
    os.execute("rm -rf " .. H.shell_quote(folder))
  end)

  it("are marked lua, lua fragment or lua example", function()
    assert.is_true(#blocks > 10)
    for _, b in ipairs(blocks) do
      assert(b.info == "lua" or b.info == "lua fragment" or b.info == "lua example",
        ("%s:%d: unknown block kind ```%s"):format(b.file, b.line, b.info))
    end
  end)

  it("compile (all but fragments)", function()
    for _, b in ipairs(blocks) do
      if b.info ~= "lua fragment" then
        local ok, err = load(b.body, "=" .. b.file .. ":" .. b.line)
        assert(ok, ("docs/%s:%d: the example does not compile: %s"):format(b.file, b.line, tostring(err)))
      end
    end
  end)

  it("pass orchestrator check when complete", function()
    local n = 0
    for _, b in ipairs(blocks) do
      n = n + (b.info == "lua example" and 1 or 0)
    end
    assert.is_true(n >= 3, "too few complete examples")
    local code, out = H.run({ "check", "--lua-dir", H.source .. "/lua", "--products", folder })
    assert.are.equal(0, code, out)
  end)

  describe("run", function()
    setup(function()
      env = kit.start({ products = folder })
    end)

    local function create_pool()
      local p = env:run_workflow("docs_create_pool", { { product = env:product_id("docs pool") },
        { customer_id = "c1", pool_name = "lab", first_prefix = "10.0.1.0/24" } })
      return p:assert_complete().current_state.subscription_id
    end

    local function prefixes(id)
      local _, sub = env:request("GET", "/api/subscriptions/domain-model/" .. id)
      local out = {}
      for i, p in ipairs(sub.pool.prefixes) do
        out[i] = p.prefix
      end
      return out, sub
    end

    it("change a list field, in create, modify and validate workflows", function()
      local id = create_pool()
      assert.are.same({ "10.0.1.0/24" }, prefixes(id))
      local p = env:run_workflow("docs_add_prefix", { { subscription_id = id }, { prefix = "10.0.2.0/24" } })
      local d = p:assert_complete()
      -- state.subscription: the dump of the model the step returned
      assert.are.same("pool lab (2 prefixes)", d.current_state.subscription.description)
      env:run_workflow("docs_add_prefix", { { subscription_id = id }, { prefix = "10.0.3.0/24" } }):assert_complete()
      local list, sub = prefixes(id)
      assert.are.same({ "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24" }, list)
      assert.are.equal("pool lab (3 prefixes)", sub.description)

      env:run_workflow("docs_drop_first_prefix", { { subscription_id = id } }):assert_complete()
      assert.are.same({ "10.0.2.0/24", "10.0.3.0/24" }, prefixes(id))
      assert.are.equal("0", env:sql("SELECT count(*) FROM subscription_instance_values v JOIN resource_types r "
        .. "USING (resource_type_id) WHERE r.resource_type = 'prefix' AND v.value = '10.0.1.0/24'"))

      d = env:run_workflow("docs_validate_pool", { { subscription_id = id } }):assert_complete()
      assert.are.equal(2, d.current_state.checked_prefixes)
      assert.are.equal("pool lab (2 prefixes)", d.current_state.subscription.description)
    end)

    it("supply the customers GraphQL shows", function()
      local id = create_pool()
      env:sql("UPDATE subscriptions SET customer_id = 'docs-2' WHERE subscription_id = '" .. id .. "'")
      local status, body = env:request("POST", "/api/graphql", { query = [[query S($id: String!) {
        subscriptions(filterBy: [{field: "subscriptionId", value: $id}]) { page { customer { fullname shortcode } } }
        customers(first: 10, after: 0) { page { customerId fullname } } }]], variables = { id = id } })
      assert.are.equal(200, status)
      assert.is_nil(body.errors)
      assert.are.same({ fullname = "Docs Example Network", shortcode = "DEN" },
        body.data.subscriptions.page[1].customer)
      assert.are.equal(2, #body.data.customers.page)
    end)

    it("give the form's ctx the functions a product adds", function()
      local status, body = env:post_pages("docs_create_pool", { { product = env:product_id("docs pool") } })
      assert.are.equal(510, status)
      assert.are.same({ "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24", "10.0.4.0/24" },
        body.form["$defs"].FirstPrefixChoice.enum)
    end)

    it("wait for a callback, store it under result_key and validate it", function()
      local p = env:run_workflow("docs_external_job", { {} })
      local d = p:wait_for("awaiting_callback")
      -- the API masks the token in both (and hides the __callback_* keys); the log has them
      assert.are.equal(d.current_state.callback_route, d.current_state.route_given)
      assert.is_nil(d.current_state.__callback_timeout)
      assert.are.equal(p:callback_route(), env:sql("SELECT state->>'route_given' FROM process_steps WHERE pid = '"
        .. p.id .. "' AND state ? 'route_given' ORDER BY completed_at DESC LIMIT 1"))
      assert.are.equal("600", env:sql("SELECT state->>'__callback_timeout' FROM process_steps WHERE pid = '"
        .. p.id .. "' AND state ? '__callback_timeout' ORDER BY completed_at DESC LIMIT 1"))
      p:callback({ ok = true })
      d = p:assert_complete()
      assert.is_true(d.current_state.job_done)
      assert.are.same({ ok = true }, d.current_state.job_result)
    end)

    it("restart the whole callback step when a failed validate is retried", function()
      local p = env:run_workflow("docs_external_job", { {} })
      local first = p:callback_route()
      p:callback({ ok = false, message = "disk full" })
      local d = p:wait_for("failed")
      assert.matches("the job failed: disk full", d.failed_reason, 1, true)
      -- the retry starts the callback step over from the state it began with: a new
      -- endpoint, the action again, a new wait
      p:resume({})
      d = p:wait_for("awaiting_callback")
      local second = p:callback_route()
      assert.are_not.equal(first, second)
      assert.are.equal(d.current_state.callback_route, d.current_state.route_given)
      assert.are.equal(1, d.current_state.job_attempts)
      assert.is_nil(d.current_state.job_result)
      -- the first route is spent
      assert.are.equal(404, (env:request("POST", first, { ok = true })))
      assert.are.equal(200, (env:request("POST", second, { ok = true })))
      assert.is_true(p:assert_complete().current_state.job_done)
    end)
  end)
end)
