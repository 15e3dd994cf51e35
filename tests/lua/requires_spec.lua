-- The require graph of the core ruleset (lua/), read from the sources: every literal
-- require("...") counts, also those inside functions (a require deferred to the first
-- call still ties the modules together). No cycles; services know no HTTP; the GraphQL
-- engine knows no database and no schema (docs/architecture.md, "The Lua side").

local function modules_under(root)
  local found = {}
  local p = assert(io.popen("cd " .. root .. " && find . -name '*.lua' | sort"))
  for path in p:lines() do
    local name = path:gsub("^%./", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    local f = assert(io.open(root .. "/" .. (path:gsub("^%./", ""))))
    local source = f:read("*a")
    f:close()
    local requires = {}
    local code = source:gsub("%-%-%[%[.-%]%]", ""):gsub("%-%-[^\n]*", "") -- comments out
    for _, target in code:gmatch("require%s*%(?%s*([\"'])([%w_%.]+)%1") do
      requires[target] = true
    end
    found[name] = requires
  end
  p:close()
  return found
end

-- Every cycle's members (strongly connected components of two or more modules, or a module
-- requiring itself), each sorted, as strings.
local function cycles(graph)
  local index, low, on_stack, stack, counter, out = {}, {}, {}, {}, 0, {}
  local function connect(v)
    counter = counter + 1
    index[v], low[v] = counter, counter
    stack[#stack + 1], on_stack[v] = v, true
    for w in pairs(graph[v]) do
      if graph[w] then
        if not index[w] then
          connect(w)
          low[v] = math.min(low[v], low[w])
        elseif on_stack[w] then
          low[v] = math.min(low[v], index[w])
        end
      end
    end
    if low[v] == index[v] then
      local component = {}
      repeat
        local w = table.remove(stack)
        on_stack[w] = nil
        component[#component + 1] = w
      until w == v
      if #component > 1 or graph[v][v] then
        table.sort(component)
        out[#out + 1] = table.concat(component, " ")
      end
    end
  end
  local names = {}
  for name in pairs(graph) do
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    if not index[name] then
      connect(name)
    end
  end
  return out
end

local function edges_matching(graph, from, to)
  local out = {}
  for name, requires in pairs(graph) do
    if from(name) then
      for target in pairs(requires) do
        if to(target) then
          out[#out + 1] = name .. " -> " .. target
        end
      end
    end
  end
  table.sort(out)
  return out
end

local function starts(prefix)
  return function(name)
    return name == prefix or name:sub(1, #prefix + 1) == prefix .. "."
  end
end

describe("the require graph of lua/", function()
  local graph = modules_under("lua")

  it("is read from the sources", function()
    assert.is_truthy(graph["orch.processes"])
    assert.is_true(graph["orch.processes"]["orch.db"])
  end)

  it("has no cycle", function()
    assert.are.same({}, cycles(graph))
  end)

  it("finds a cycle when there is one (the check itself)", function()
    local g = { a = { b = true }, b = { c = true }, c = { a = true }, d = { a = true } }
    assert.are.same({ "a b c" }, cycles(g))
  end)

  it("keeps HTTP out of the services: only the API layer requires orch.http and orch.api", function()
    local api = function(name)
      return starts("orch.api")(name) or name == "orch.http"
        or name == "orch" -- the orch table exports orch.http to the API modules
    end
    local services = function(name)
      return not api(name)
    end
    local http_side = function(name)
      return name == "orch.http" or starts("orch.api")(name)
    end
    assert.are.same({}, edges_matching(graph, services, http_side))
  end)

  it("keeps the GraphQL engine generic: orch.graphql requires only itself and orch.json", function()
    local outside = function(name)
      return not starts("orch.graphql")(name) and name ~= "orch.json"
    end
    assert.are.same({}, edges_matching(graph, starts("orch.graphql"), outside))
  end)
end)
