-- `orchestrator check`: every kind of broken product script is reported with
-- file and line (or the limit it hit), with a non-zero exit and no crash.
local H = require("harness")

-- ctest runs specs in the source folder; paths there are reported relative to it.
local fixtures = "tests/fixtures/sandbox"

local function check(products, extra)
  local args = { "check", "--lua-dir", H.source .. "/lua", "--products", products,
    "--lua-timeout-ms", "2000", "--lua-memory-mb", "32" }
  for _, a in ipairs(extra or {}) do
    args[#args + 1] = a
  end
  return H.run(args)
end

describe("orchestrator check", function()
  local code, out

  local elapsed

  setup(function()
    local t0 = os.time()
    code, out = check(fixtures)
    elapsed = os.time() - t0
  end)

  it("exits non-zero without crashing", function()
    assert.are.equal(1, code, out)
    H.assert_clean_log(out, "check output")
    assert.matches("check failed: 12 errors", out)
  end)

  it("finishes although scripts try to run past their budget", function()
    -- four scripts hit the 2 s budget (a loop, pcall, pattern backtracking, an xpcall
    -- handler); generous for ASan on a busy machine, far below "never"
    assert.is_true(elapsed < 90, "check took " .. elapsed .. " s")
  end)

  local cases = {
    { "syntax_error.lua", 2, "unexpected symbol" },
    { "runtime_error.lua", 3, "boom at load" },
    { "undefined_global.lua", 2, "undefined global 'undefined_thing'" },
    { "os_execute.lua", 2, "os.execute is not available in the sandbox" },
    { "io_open.lua", 2, "undefined global 'io'" },
    { "endless_loop.lua", nil, "time limit exceeded %(2000 ms%)" },
    { "pcall_swallow.lua", nil, "time limit exceeded" },
    { "pattern_backtracking.lua", 3, "time limit exceeded %(2000 ms%)" },
    { "xpcall_handler.lua", nil, "time limit exceeded %(2000 ms%)" },
    { "gc_finalizer.lua", 2, "setmetatable: __gc metamethods are not allowed in scripts" },
    { "tamper_string.lua", 2, "string.upper: the table is read%-only" },
    { "c_halves.lua", 2, "orch._db is not available to product scripts" },
  }
  for _, case in ipairs(cases) do
    local file, line, message = case[1], case[2], case[3]
    it("reports " .. file, function()
      local prefix = (fixtures .. "/" .. file):gsub("%p", "%%%0")
      if line then
        assert.matches(prefix .. ":" .. line .. ": [^\n]*" .. message, out)
      else
        assert.matches(prefix .. ":%d+: [^\n]*" .. message, out)
      end
    end)
  end

  it("stops scripts that grow without bound at the memory cap", function()
    -- A long time budget so that the memory cap, not the clock, stops them (also under ASan).
    local dir = "tests/fixtures/sandbox_memory"
    local c, o = check(dir, { "--lua-timeout-ms", "60000", "--lua-memory-mb", "16" })
    assert.are.equal(1, c, o)
    H.assert_clean_log(o, "check output")
    assert.matches("check failed: 2 errors", o)
    for _, file in ipairs({ "unbounded_table.lua", "pcall_memory.lua" }) do
      local prefix = (dir .. "/" .. file):gsub("%p", "%%%0")
      assert.matches(prefix .. ":%d+: memory limit exceeded %(16 MiB%)", o)
    end
  end)

  -- Definitions found by fuzz_check (tests/fuzz): the loader must blame the script's line
  -- with a message, never fail inside lua/orch.
  it("reports malformed definitions at the script, not inside the core", function()
    local dir = "tests/fixtures/check_fuzz"
    local c, o = check(dir)
    assert.are.equal(1, c, o)
    H.assert_clean_log(o, "check output")
    assert.is_nil(o:find("lua/orch/", 1, true), o)
    local fuzz_cases = {
      { "set_status.lua", 3, "set_status: expected a lifecycle status" },
    }
    assert.matches("check failed: " .. #fuzz_cases .. " errors?\n", o)
    for _, case in ipairs(fuzz_cases) do
      local prefix = (dir .. "/" .. case[1]):gsub("%p", "%%%0")
      assert.matches(prefix .. ":" .. case[2] .. ": [^\n]*" .. case[3], o)
    end
  end)

  it("passes on the shipped products", function()
    local ok_code, ok_out = check(H.source .. "/products")
    assert.are.equal(0, ok_code, ok_out)
    assert.matches("^ok:", ok_out)
  end)

  it("refuses a missing products folder with a clear message", function()
    local c, o = check("/nonexistent/products")
    assert.are.equal(1, c)
    assert.matches("cannot open folder '/nonexistent/products'", o)
  end)
end)
