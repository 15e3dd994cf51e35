-- Validation of a subscription tree per lifecycle (required fields, list sizes).
-- Part of orch.model.subscription, which calls this with its module table and internals.

local registry = require("orch.model.registry")

return function(M, internals)
  local raise = internals.raise
  local D = internals.D
  local methods = internals.methods

  -- ---- validation ----

  local function rank_of(lifecycle)
    return registry.lifecycle_rank[lifecycle] or 0
  end

  local function check_block(b, rank, lifecycle, path, out, seen)
    local d = D[b]
    if seen[b] then
      return
    end
    seen[b] = true
    for _, f in ipairs(d.def.fields) do
      local v = d.values[f.name]
      local where = path .. "." .. f.name
      if f.kind == "list" then
        local n = v and #v or 0
        if n < f.min or (f.max and n > f.max) then
          out[#out + 1] = where .. " (block " .. d.def.name .. ") needs " .. f.min .. (f.max and ("-" .. f.max) or "+")
            .. " blocks, has " .. n
        end
        for i, child in ipairs(v or {}) do
          check_block(child, rank, lifecycle, where .. "[" .. i .. "]", out, seen)
        end
      elseif v == nil then
        if rank >= f.required_rank and not (d.invalid and d.invalid[f.name]) then
          out[#out + 1] = where .. " (block " .. d.def.name .. ") is required in lifecycle '" .. lifecycle
            .. "' but missing"
        end
      elseif f.kind ~= "scalar" then
        check_block(v, rank, lifecycle, where, out, seen)
      end
    end
  end

  -- Every rule the tree breaks for `lifecycle`: a list of messages (empty if valid).
  -- structure_only leaves out the product type's `validate` (what load checks).
  function M.problems(self, lifecycle, structure_only)
    local d = D[self]
    local rank = rank_of(lifecycle)
    local out, seen = {}, {}
    for _, f in ipairs(d.def.fields) do
      local v = d.roots[f.name]
      if f.kind == "list" then
        local n = v and #v or 0
        if n < f.min or (f.max and n > f.max) then
          out[#out + 1] = f.name .. " needs " .. f.min .. (f.max and ("-" .. f.max) or "+") .. " blocks, has " .. n
        end
        for i, child in ipairs(v or {}) do
          check_block(child, rank, lifecycle, f.name .. "[" .. i .. "]", out, seen)
        end
      elseif v == nil then
        if rank >= f.required_rank then
          out[#out + 1] = f.name .. " is required in lifecycle '" .. lifecycle .. "' but missing"
        end
      else
        check_block(v, rank, lifecycle, f.name, out, seen)
      end
    end
    if #out == 0 and d.def.validate and not structure_only then
      local err = d.def.validate(self, lifecycle)
      if err ~= nil and err ~= true then
        out[#out + 1] = tostring(err)
      end
    end
    return out
  end

  -- Nothing is saved that could not be loaded again: the checks of load (list
  -- min/max, the fields required in the subscription's lifecycle) and the product
  -- type's validate. Raises "subscription X cannot be saved (lifecycle 'L'): path ...: reason".
  function M.check_savable(self)
    local d = D[self]
    local lifecycle = d.row.status
    local problems = M.problems(self, lifecycle)
    if #problems > 0 then
      error("subscription " .. d.row.subscription_id .. " cannot be saved (lifecycle '" .. lifecycle .. "'): "
        .. table.concat(problems, "; "), 0)
    end
  end

  function methods.validate(self, lifecycle)
    lifecycle = lifecycle or D[self].row.status
    local problems = M.problems(self, lifecycle)
    if #problems > 0 then
      raise("subscription " .. D[self].row.subscription_id .. " is not valid for lifecycle '" .. lifecycle .. "': "
        .. table.concat(problems, "; "))
    end
    return true
  end
end
