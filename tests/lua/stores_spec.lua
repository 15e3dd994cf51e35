-- Each table that has a store (lua/orch/store/<table>.lua) is read and written there only:
-- no other module of lua/ names the table outside its comments.

local function lua_files()
  local out = {}
  local p = assert(io.popen("find lua -name '*.lua' | sort"))
  for path in p:lines() do
    out[#out + 1] = path
  end
  p:close()
  return out
end

local function code_of(path)
  local f = assert(io.open(path))
  local source = f:read("*a")
  f:close()
  -- comments and require("...") names out: what is left is code and SQL
  return (source:gsub("%-%-%[%[.-%]%]", ""):gsub("%-%-[^\n]*", ""):gsub("require%s*%(?%s*[\"'][%w_%.]+[\"']", ""))
end

describe("table stores", function()
  local files = lua_files()
  local tables = {}
  for _, path in ipairs(files) do
    local name = path:match("^lua/orch/store/([%w_]+)%.lua$")
    if name then
      tables[#tables + 1] = name
    end
  end

  it("exist", function()
    assert.is_true(#tables > 0)
  end)

  it("are the one place their table's SQL is written", function()
    local outside = {}
    for _, path in ipairs(files) do
      if not path:find("^lua/orch/store/") then
        local code = code_of(path)
        for _, t in ipairs(tables) do
          if code:find("%f[%w_]" .. t .. "%f[^%w_]") then
            outside[#outside + 1] = path .. " names " .. t
          end
        end
      end
    end
    assert.are.same({}, outside)
  end)
end)
