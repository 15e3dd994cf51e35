-- `orchestrator check`: every kind of broken product script is reported with
-- file and line (or the limit it hit), with a non-zero exit and no crash.
local H = require("harness")

local fixtures = H.source .. "/tests/fixtures/sandbox"

local function check(products, extra)
  local args = { "check", "--lua-dir", H.source .. "/lua", "--products", products,
    "--lua-timeout-ms", "300", "--lua-memory-mb", "32" }
  for _, a in ipairs(extra or {}) do
    args[#args + 1] = a
  end
  return H.run(args)
end

describe("orchestrator check", function()
  local code, out

  setup(function()
    code, out = check(fixtures)
  end)

  it("exits non-zero without crashing", function()
    assert.are.equal(1, code, out)
    H.assert_clean_log(out, "check output")
    assert.matches("check failed: 9 errors", out)
  end)

  local cases = {
    { "syntax_error.lua", 2, "unexpected symbol" },
    { "runtime_error.lua", 3, "boom at load" },
    { "undefined_global.lua", 2, "undefined global 'undefined_thing'" },
    { "os_execute.lua", 2, "os.execute is not available in the sandbox" },
    { "io_open.lua", 2, "undefined global 'io'" },
    { "endless_loop.lua", nil, "time limit exceeded %(300 ms%)" },
    { "pcall_swallow.lua", nil, "time limit exceeded" },
    { "unbounded_table.lua", nil, "memory limit exceeded %(32 MiB%)" },
    { "pcall_memory.lua", nil, "memory limit exceeded" },
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
