-- check.lua - the layers of host/ (top CMakeLists.txt) hold: each layer links alone with
-- the layers below it (BUILD_DIR/tests/<layer>_alone, linked with the whole library, ran),
-- and in the C modules' call graph, read from the objects with nm, no module is in a call
-- cycle and none calls a module of a layer above its own.
--
--   lua5.4 tests/layers/check.lua BUILD_DIR LAYER...   (layers from the lowest, e.g. orch_base)
--
-- A module is one host/*.c; its layer is the library whose object folder holds it
-- (BUILD_DIR/CMakeFiles/<layer>.dir/host/<module>.c.o). Exits 1 with every offending edge.
local build, layers = arg[1], { table.unpack(arg, 2) }
if not build or #layers == 0 then
  io.stderr:write("usage: check.lua BUILD_DIR LAYER...\n")
  os.exit(2)
end

for _, layer in ipairs(layers) do
  local program = build .. "/tests/" .. layer .. "_alone"
  if not os.execute(string.format("%q >/dev/null", program)) then
    io.stderr:write(program .. " is missing or fails: the layer does not link alone\n")
    os.exit(1)
  end
end

local function lines(cmd)
  local out = {}
  local p = assert(io.popen(cmd))
  for l in p:lines() do
    out[#out + 1] = l
  end
  p:close()
  return out
end

local modules, rank, defined, used = {}, {}, {}, {}
for i, layer in ipairs(layers) do
  local dir = build .. "/CMakeFiles/" .. layer .. ".dir/host"
  local objects = lines("ls " .. dir .. "/*.c.o 2>/dev/null")
  if #objects == 0 then
    io.stderr:write("check.lua: no objects in " .. dir .. "\n")
    os.exit(2)
  end
  for _, object in ipairs(objects) do
    local m = object:match("([%w_]+)%.c%.o$")
    modules[#modules + 1], rank[m], used[m] = m, i, {}
    for _, l in ipairs(lines("nm " .. object)) do
      local kind, sym = l:match("^%s*%x*%s+(%a)%s+(%S+)$")
      if kind and kind:match("^[TDBR]$") then
        defined[sym] = m
      elseif kind == "U" then
        used[m][sym] = true
      end
    end
  end
end

-- edges[a][b] = the symbols of b that a calls
local edges = {}
for _, a in ipairs(modules) do
  edges[a] = {}
  for sym in pairs(used[a]) do
    local b = defined[sym]
    if b and b ~= a then
      edges[a][b] = edges[a][b] or {}
      table.insert(edges[a][b], sym)
    end
  end
end

local failures = 0
local function fail(fmt, ...)
  failures = failures + 1
  print(string.format(fmt, ...))
end
local function syms(list)
  table.sort(list)
  return table.concat(list, ", ")
end

for _, a in ipairs(modules) do
  for b, list in pairs(edges[a]) do
    if rank[b] > rank[a] then
      fail("layer: %s (%s) calls %s (%s): %s", a, layers[rank[a]], b, layers[rank[b]], syms(list))
    end
  end
end

-- Strongly connected components (Tarjan): any with two or more modules is a cycle.
local index, low, on_stack, stack, counter = {}, {}, {}, {}, 0
local function connect(v)
  counter = counter + 1
  index[v], low[v] = counter, counter
  stack[#stack + 1], on_stack[v] = v, true
  for w in pairs(edges[v]) do
    if not index[w] then
      connect(w)
      low[v] = math.min(low[v], low[w])
    elseif on_stack[w] then
      low[v] = math.min(low[v], index[w])
    end
  end
  if low[v] == index[v] then
    local component, member = {}, {}
    repeat
      local w = table.remove(stack)
      on_stack[w] = nil
      component[#component + 1], member[w] = w, true
    until w == v
    if #component > 1 then
      table.sort(component)
      fail("cycle: %s", table.concat(component, " "))
      for _, a in ipairs(component) do
        for b, list in pairs(edges[a]) do
          if member[b] then
            print(string.format("  %s -> %s: %s", a, b, syms(list)))
          end
        end
      end
    end
  end
end
for _, m in ipairs(modules) do
  if not index[m] then
    connect(m)
  end
end

local count = 0
for _, a in ipairs(modules) do
  for _ in pairs(edges[a]) do
    count = count + 1
  end
end
print(string.format("%d modules in %d layers, %d calling edges: %s", #modules, #layers, count,
  failures == 0 and "no cycle, no call upward" or failures .. " problem(s)"))
os.exit(failures == 0 and 0 or 1)
