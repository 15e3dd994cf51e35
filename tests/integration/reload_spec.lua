-- Reloading scripts without a restart: new code for the next step of a running
-- process, new workflows, refused broken reloads, processes whose step
-- disappeared, and reloads under traffic.
local H = require("harness")

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- A workflow whose second step fails the first time; `marker` is what step 3 returns.
local function workflow_source(marker, with_step_two)
  return ([[
local wf = orch.workflow
orch.workflows.task({
  name = "reload_me",
  description = "Fails once, then finishes",
  steps = {
    wf.step("One", function() return { one = true } end),
    %s
    wf.step("Three", function() return { marker = %q } end),
  },
})
]]):format(with_step_two and [[wf.step("Two", function(state)
      local n = orch.db.one("SELECT count(*) AS n FROM process_steps WHERE pid = $1 AND status = 'failed'",
                            state.process_id).n
      if n == 0 then error("first try fails") end
      return { two = true }
    end),]] or "", marker)
end

-- A product whose block gains a field in a reload.
local function product_source(extra_field)
  return ([[
orch.model.block({ name = "Thing", description = "a thing",
  fields = { { "thing_name", "string" }, %s } })
orch.model.product_type({ name = "Thing", fields = { { "thing", orch.model.owned("Thing") } },
  products = { { name = "thing", description = "Thing", tag = "THING" } } })
]]):format(extra_field and '{ "colour", "string", description = "the colour" }' or "")
end

-- A workflow that suspends at an input step; without_input leaves that step out.
local function suspending_source(without_input)
  return ([[
local wf = orch.workflow
orch.workflows.task({ name = "wait_me", description = "Suspends", steps = {
  wf.step("Before", function() return { before = true } end),
  %s
  wf.step("After", function() return { after = true } end),
} })
]]):format(without_input and "" or
    'wf.inputstep("Approve", { form = orch.forms.page({ orch.forms.boolean({ "ok" }) }) }),')
end

describe("reload", function()
  local host, dir

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. H.shell_quote(dir)))
    write(dir .. "/reload_me.lua", workflow_source("v1", true))
    write(dir .. "/thing.lua", product_source(false))
    write(dir .. "/wait_me.lua", suspending_source(false))
    local _, db = H.new_database()
    H.migrate(db)
    host = H.start_host({ database = db, products = dir, args = { "--workers", "2" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
    os.execute("rm -rf " .. H.shell_quote(dir))
  end)

  local function reload()
    local status, _, _, report = host:request("POST", "/api/settings/reload")
    return status, report
  end

  it("runs the next step of a running process with the new code", function()
    local _, _, _, started = host:request("POST", "/api/processes/reload_me", "[{}]")
    host:wait_status(started.id, "failed")
    write(dir .. "/reload_me.lua", workflow_source("v2", true))
    local status, report = reload()
    assert.are.equal(200, status, H.json.encode(report))
    assert.is_true(report.ok)
    assert.are.same({ dir .. "/reload_me.lua" }, report.changed)
    host:request("PUT", "/api/processes/" .. started.id .. "/resume", "{}")
    local d = host:wait_status(started.id, "completed")
    assert.are.equal("v2", d.current_state.marker)
    -- Each step records the scripts that ran it: before and after the reload differ.
    local _, _, _, gen = host:request("GET", "/api/settings/generation")
    local by_name = {}
    for _, s in ipairs(d.steps) do
      by_name[s.name] = s.commit_hash
    end
    assert.are.equal(gen.code_hash, by_name.Three)
    assert.are.equal(40, #by_name.One)
    assert.are_not.equal(by_name.One, by_name.Three)
  end)

  it("makes a new workflow available without a restart", function()
    write(dir .. "/extra.lua", [[
orch.workflows.task({ name = "brand_new", description = "Added by a reload",
  steps = { orch.workflow.step("Hello", function() return { hello = "world" } end) } })
]])
    local status, report = reload()
    assert.are.equal(200, status)
    assert.are.same({ dir .. "/extra.lua" }, report.added)
    local s2, _, _, started = host:request("POST", "/api/processes/brand_new", "[{}]")
    assert.are.equal(201, s2)
    assert.are.equal("world", host:wait_status(started.id, "completed").current_state.hello)
  end)

  it("refuses a broken reload, keeps serving the old scripts and says where the error is", function()
    local _, _, _, before = host:request("GET", "/api/settings/generation")
    write(dir .. "/broken.lua", "local x = = 1\n")
    local status, report = reload()
    assert.are.equal(400, status)
    assert.is_false(report.ok)
    assert.are.equal(dir .. "/broken.lua", report.errors[1].file)
    assert.are.equal(1, report.errors[1].line)
    local _, _, _, after = host:request("GET", "/api/settings/generation")
    assert.are.equal(before.generation, after.generation)
    assert.are.equal(1, #after.last_reload_errors)
    local s2 = host:request("POST", "/api/processes/brand_new", "[{}]")
    assert.are.equal(201, s2)
    os.remove(dir .. "/broken.lua")
    status = reload()
    assert.are.equal(200, status)
  end)

  it("fails a process whose step disappeared with a clear reason; putting it back lets it finish", function()
    local _, _, _, started = host:request("POST", "/api/processes/reload_me", "[{}]")
    host:wait_status(started.id, "failed")
    write(dir .. "/reload_me.lua", workflow_source("v3", false))
    assert.are.equal(200, (reload()))
    local status, _, _, problem = host:request("PUT", "/api/processes/" .. started.id .. "/resume", "{}")
    assert.are.equal(409, status)
    assert.matches("workflow changed: step 'Two' no longer exists", problem.detail)
    local d = host:wait_status(started.id, "failed")
    assert.matches("step 'Two' no longer exists", d.failed_reason)
    write(dir .. "/reload_me.lua", workflow_source("v4", true))
    assert.are.equal(200, (reload()))
    status = host:request("PUT", "/api/processes/" .. started.id .. "/resume", "{}")
    assert.are.equal(204, status)
    assert.are.equal("v4", host:wait_status(started.id, "completed").current_state.marker)
  end)

  it("updates the catalogue when a product gains a field", function()
    write(dir .. "/thing.lua", product_source(true))
    local status, report = reload()
    assert.are.equal(200, status, H.json.encode(report))
    assert.matches("Thing.colour", H.json.encode(report.catalog))
    local _, _, _, products = host:request("GET", "/api/products/?tag=THING")
    local names = {}
    for _, rt in ipairs(products[1].product_blocks[1].resource_types) do
      names[rt.resource_type] = rt.description
    end
    assert.are.equal("the colour", names.colour)
  end)

  it("fails a suspended process whose input step disappeared; putting it back lets it finish", function()
    local _, _, _, started = host:request("POST", "/api/processes/wait_me", "[{}]")
    host:wait_status(started.id, "suspended")
    write(dir .. "/wait_me.lua", suspending_source(true))
    assert.are.equal(200, (reload()))
    local status, _, _, problem = host:request("PUT", "/api/processes/" .. started.id .. "/resume", { { ok = true } })
    assert.are.equal(409, status)
    assert.matches("workflow changed: step 'Approve' no longer exists", problem.detail)
    assert.matches("step 'Approve' no longer exists", host:wait_status(started.id, "failed").failed_reason)
    write(dir .. "/wait_me.lua", suspending_source(false))
    assert.are.equal(200, (reload()))
    status = host:request("PUT", "/api/processes/" .. started.id .. "/resume", "{}")
    assert.are.equal(204, status)
    host:wait_status(started.id, "suspended")
    status = host:request("PUT", "/api/processes/" .. started.id .. "/resume", { { ok = true } })
    assert.are.equal(204, status)
    local d = host:wait_status(started.id, "completed")
    assert.is_true(d.current_state.ok)
    assert.is_true(d.current_state.after)
  end)

  it("loses no request and no step during 20 reloads under traffic", function()
    local pids = {}
    for round = 1, 20 do
      for _ = 1, 3 do
        local status, _, _, started = host:request("POST", "/api/processes/brand_new", "[{}]")
        assert.are.equal(201, status)
        pids[#pids + 1] = started.id
        local s2 = host:request("GET", "/api/settings/status")
        assert.are.equal(200, s2)
      end
      write(dir .. "/extra.lua", ([[
orch.workflows.task({ name = "brand_new", description = "Round %d",
  steps = { orch.workflow.step("Hello", function() return { hello = "world", round = %d } end) } })
]]):format(round, round))
      local status = reload()
      assert.are.equal(200, status)
    end
    for _, pid in ipairs(pids) do
      local d = host:wait_status(pid, "completed")
      assert.are.equal("world", d.current_state.hello)
    end
  end)
end)

describe("development mode (--watch)", function()
  local host, dir

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. H.shell_quote(dir)))
    write(dir .. "/reload_me.lua", workflow_source("v1", true))
    local _, db = H.new_database()
    H.migrate(db)
    host = H.start_host({ database = db, products = dir, args = { "--workers", "1", "--watch", "1" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
    os.execute("rm -rf " .. H.shell_quote(dir))
  end)

  it("reloads by itself when a script is saved", function()
    local _, _, _, before = host:request("GET", "/api/settings/generation")
    write(dir .. "/saved.lua", [[
orch.workflows.task({ name = "saved_task", description = "Appears on save",
  steps = { orch.workflow.step("Hi", function() return {} end) } })
]])
    local status
    for _ = 1, 100 do
      status = host:request("POST", "/api/processes/saved_task", "[{}]")
      if status == 201 then
        break
      end
      H.sleep(0.1)
    end
    assert.are.equal(201, status)
    local _, _, _, after = host:request("GET", "/api/settings/generation")
    assert.is_true(after.generation > before.generation)
  end)
end)
