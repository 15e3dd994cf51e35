-- Relations between subscriptions through their blocks (in use by, depends on).
-- Part of orch.model.subscription, which calls this with its module table and internals.

local db = require("orch.db")

return function(M, internals)
  local raise = internals.raise
  local D = internals.D
  local is_block = internals.is_block
  local methods = internals.methods

  -- ---- relations ----

  -- Instances of this subscription and the instances (of other subscriptions) that use them.
  local in_use_by_sql = [[
  SELECT r.depends_on_id::text AS block_id, r.in_use_by_id::text AS instance_id,
         i.subscription_id::text AS subscription_id, s.status
    FROM subscription_instance_relations r
    JOIN subscription_instances i ON i.subscription_instance_id = r.in_use_by_id
    JOIN subscriptions s ON s.subscription_id = i.subscription_id
   WHERE r.depends_on_id IN (SELECT subscription_instance_id FROM subscription_instances
                              WHERE subscription_id = $1::uuid)
     AND i.subscription_id <> $1::uuid]]

  -- Subscriptions using a block of this one: {{subscription_id, status}...} (distinct, sorted).
  function methods.in_use_by(self)
    if not D[self].stored then
      return {}
    end
    local seen, out = {}, {}
    for _, r in ipairs(db.must(in_use_by_sql, D[self].row.subscription_id)) do
      if not seen[r.subscription_id] then
        seen[r.subscription_id] = true
        out[#out + 1] = { subscription_id = r.subscription_id, status = r.status }
      end
    end
    table.sort(out, function(a, b)
      return a.subscription_id < b.subscription_id
    end)
    return out
  end

  -- Subscriptions whose blocks this one references: {{subscription_id, status}...}.
  function methods.depends_on(self)
    local ids, seen = {}, {}
    local function walk(b)
      local d = D[b]
      if seen[b] then
        return
      end
      seen[b] = true
      if d.foreign then
        ids[d.owner] = true
        return
      end
      for _, f in ipairs(d.def.fields) do
        local v = d.values[f.name]
        if f.kind == "list" then
          for _, c in ipairs(v or {}) do
            walk(c)
          end
        elseif f.kind ~= "scalar" and v then
          walk(v)
        end
      end
    end
    for _, f in ipairs(D[self].def.fields) do
      local v = D[self].roots[f.name]
      if f.kind == "list" then
        for _, c in ipairs(v or {}) do
          walk(c)
        end
      elseif v then
        walk(v)
      end
    end
    local list = {}
    for id in pairs(ids) do
      list[#list + 1] = id
    end
    table.sort(list)
    if #list == 0 then
      return {}
    end
    local rows = db.must("SELECT subscription_id::text AS subscription_id, status FROM subscriptions "
      .. "WHERE subscription_id = ANY($1::uuid[]) ORDER BY 1", "{" .. table.concat(list, ",") .. "}")
    return rows
  end

  -- Block level: the instances that use this block {{subscription_instance_id, subscription_id}...}.
  function M.block_in_use_by(block)
    if not is_block(block) then
      raise("orch.model.in_use_by expects a block")
    end
    return db.must([[SELECT i.subscription_instance_id::text AS subscription_instance_id,
        i.subscription_id::text AS subscription_id
      FROM subscription_instance_relations r
      JOIN subscription_instances i ON i.subscription_instance_id = r.in_use_by_id
      WHERE r.depends_on_id = $1::uuid ORDER BY 2, 1]], D[block].id)
  end

  -- Block level: the blocks this block holds or references, in field order.
  function M.block_depends_on(block)
    if not is_block(block) then
      raise("orch.model.depends_on expects a block")
    end
    local d, out = D[block], {}
    for _, f in ipairs(d.def.fields) do
      local v = d.values[f.name]
      if f.kind == "list" then
        for _, c in ipairs(v or {}) do
          out[#out + 1] = c
        end
      elseif f.kind ~= "scalar" and v ~= nil then
        out[#out + 1] = v
      end
    end
    return out
  end
end
