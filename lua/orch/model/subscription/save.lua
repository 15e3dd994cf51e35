-- Saving a subscription tree as a diff against the rows it was loaded from.
-- Part of orch.model.subscription, which calls this with its module table and internals.

local json = require("orch.json")
local db = require("orch.db")

return function(M, internals)
  local raise = internals.raise
  local D = internals.D
  local null = internals.null
  local is_subscription = internals.is_subscription
  local methods = internals.methods

  -- ---- save ----

  -- The rows the tree stands for: instances, values and relations owned by it.
  function M.desired(self)
    local d = D[self]
    local sub_id = d.row.subscription_id
    local out = { instances = {}, values = {}, relations = {} }
    local function visit(b, parent, attr, order)
      local bd = D[b]
      if parent then
        local key = parent .. "|" .. bd.id .. "|" .. order
        if out.relations[key] then
          error("block " .. bd.def.name .. " " .. bd.id .. " is linked twice in " .. attr, 0)
        end
        out.relations[key] = attr
      end
      if bd.owner ~= sub_id then
        return -- a block of another subscription: only the relation is ours
      end
      if out.instances[bd.id] then
        error("block " .. bd.def.name .. " " .. bd.id .. " appears twice in subscription " .. sub_id, 0)
      end
      out.instances[bd.id] = { block = bd.def.name, label = bd.label }
      for _, f in ipairs(bd.def.fields) do
        local v = bd.values[f.name]
        if f.kind == "scalar" then
          if v ~= nil then
            out.values[bd.id .. "|" .. f.name] = f.type.format(v)
          elseif bd.invalid and bd.invalid[f.name] then
            out.values[bd.id .. "|" .. f.name] = bd.invalid[f.name].value -- kept as stored
          end
        elseif f.kind == "list" then
          for i, c in ipairs(v or {}) do
            visit(c, bd.id, f.name, i - 1)
          end
        elseif v ~= nil then
          visit(v, bd.id, f.name, 0)
        end
      end
    end
    for _, f in ipairs(d.def.fields) do
      local v = d.roots[f.name]
      if f.kind == "list" then
        for _, c in ipairs(v or {}) do
          if D[c].owner ~= sub_id then
            error("a block of subscription " .. D[c].owner .. " cannot be a root block of " .. sub_id, 0)
          end
          visit(c)
        end
      elseif v ~= nil then
        if D[v].owner ~= sub_id then
          error("a block of subscription " .. D[v].owner .. " cannot be a root block of " .. sub_id, 0)
        end
        visit(v)
      end
    end
    return out
  end

  local row_columns = { "description", "status", "customer_id", "insync", "note", "start_date", "end_date" }

  -- What save would write: {subscription = "insert"|"update"|nil, instances = {...}, ...} with counts.
  local function plan(self)
    local d = D[self]
    local want = M.desired(self)
    local have = d.snapshot or { instances = {}, values = {}, relations = {} }
    local p = { ins_inst = {}, upd_inst = {}, del_inst = {}, ins_val = {}, upd_val = {}, del_val = {},
      ins_rel = {}, del_rel = {}, want = want }
    if not d.stored then
      p.subscription = "insert"
    else
      for _, k in ipairs(row_columns) do
        if d.row[k] ~= d.snapshot_row[k] then
          p.subscription = "update"
        end
      end
    end
    for id, i in pairs(want.instances) do
      local old = have.instances[id]
      if not old then
        p.ins_inst[#p.ins_inst + 1] = { id = id, block = i.block, label = i.label or null }
      elseif old.label ~= i.label then
        p.upd_inst[#p.upd_inst + 1] = { id = id, label = i.label or null }
      end
    end
    for id in pairs(have.instances) do
      if not want.instances[id] then
        p.del_inst[#p.del_inst + 1] = id
      end
    end
    local stored_ids = d.stored and d.stored.values or {}
    local value_ids = {}
    for _, v in ipairs(stored_ids) do
      local key = v.i .. "|" .. v.rt
      if value_ids[key] then
        if want.instances[v.i] then
          p.del_val[#p.del_val + 1] = v.id -- a second row for a scalar field
        end
      else
        value_ids[key] = v.id
      end
    end
    for key, text in pairs(want.values) do
      local old = have.values[key]
      if old == nil then
        local i, rt = key:match("^([^|]+)|(.+)$")
        p.ins_val[#p.ins_val + 1] = { i = i, rt = rt, v = text }
      elseif old ~= text then
        p.upd_val[#p.upd_val + 1] = { id = value_ids[key], v = text }
      end
    end
    for key in pairs(have.values) do
      local i = key:match("^([^|]+)|")
      if want.values[key] == nil and want.instances[i] then
        p.del_val[#p.del_val + 1] = value_ids[key]
      end
    end
    for key, attr in pairs(want.relations) do
      local old = have.relations[key]
      if old == nil or old ~= attr then
        local a, c, o = key:match("^([^|]+)|([^|]+)|(%d+)$")
        p.ins_rel[#p.ins_rel + 1] = { p = a, c = c, o = tonumber(o), a = attr }
        if old ~= nil then
          p.del_rel[#p.del_rel + 1] = { p = a, c = c, o = tonumber(o) }
        end
      end
    end
    for key in pairs(have.relations) do
      local a, c, o = key:match("^([^|]+)|([^|]+)|(%d+)$")
      if want.relations[key] == nil and want.instances[a] then
        p.del_rel[#p.del_rel + 1] = { p = a, c = c, o = tonumber(o) }
      end
    end
    return p
  end

  local function count_of(p)
    return (p.subscription and 1 or 0) + #p.ins_inst + #p.upd_inst + #p.del_inst + #p.ins_val + #p.upd_val
      + #p.del_val + #p.ins_rel + #p.del_rel
  end

  -- Number of rows save would write (0 = nothing changed).
  function methods.changes(self)
    return count_of(plan(self))
  end

  local function arr(t)
    return json.encode(json.array(t))
  end

  -- Phase 1: the subscription row and new or relabelled instances.
  local function write_instances(self, p)
    local d = D[self]
    local r = d.row
    local id = r.subscription_id
    if p.subscription == "insert" then
      db.must([[INSERT INTO subscriptions (subscription_id, description, status, product_id, customer_id, insync,
        start_date, end_date, note, version) VALUES ($1::uuid, $2, $3, $4::uuid, $5, $6, $7::timestamptz,
        $8::timestamptz, $9, 1)]], id, r.description, r.status, d.product.product_id, r.customer_id, r.insync,
        r.start_date, r.end_date, r.note)
    elseif p.subscription == "update" then
      local row = db.one([[UPDATE subscriptions SET description = $2, status = $3, customer_id = $4, insync = $5,
        start_date = $6::timestamptz, end_date = $7::timestamptz, note = $8 WHERE subscription_id = $1::uuid
        RETURNING version]], id, r.description, r.status, r.customer_id, r.insync, r.start_date, r.end_date, r.note)
      if not row then
        error("subscription " .. id .. " no longer exists", 0)
      end
      r.version = row.version
    end
    if #p.ins_inst > 0 then
      local _, n = db.must([[INSERT INTO subscription_instances (subscription_instance_id, subscription_id,
          product_block_id, label)
        SELECT x.id, $2::uuid, b.product_block_id, x.label
          FROM json_to_recordset($1::json) AS x(id uuid, block text, label text)
          JOIN product_blocks b ON b.name = x.block]], arr(p.ins_inst), id)
      if n ~= #p.ins_inst then
        error("some product blocks of subscription " .. id .. " are missing in the database "
          .. "(run `orchestrator catalog apply`)", 0)
      end
    end
    if #p.upd_inst > 0 then
      db.must([[UPDATE subscription_instances i SET label = x.label
        FROM json_to_recordset($1::json) AS x(id uuid, label text) WHERE i.subscription_instance_id = x.id]],
        arr(p.upd_inst))
    end
  end

  -- Phase 2: what goes away, and the values.
  local function write_rows(self, p)
    local id = D[self].row.subscription_id
    if #p.del_rel > 0 then
      db.must([[DELETE FROM subscription_instance_relations r
        USING json_to_recordset($1::json) AS x(p uuid, c uuid, o int)
        WHERE r.in_use_by_id = x.p AND r.depends_on_id = x.c AND r.order_id = x.o]], arr(p.del_rel))
    end
    if #p.del_inst > 0 then
      db.must([[DELETE FROM subscription_instances WHERE subscription_id = $2::uuid
        AND subscription_instance_id IN (SELECT value::uuid FROM json_array_elements_text($1::json))]],
        arr(p.del_inst), id)
    end
    if #p.del_val > 0 then
      db.must([[DELETE FROM subscription_instance_values
        WHERE subscription_instance_value_id IN (SELECT value::uuid FROM json_array_elements_text($1::json))]],
        arr(p.del_val))
    end
    if #p.upd_val > 0 then
      db.must([[UPDATE subscription_instance_values v SET value = x.v
        FROM json_to_recordset($1::json) AS x(id uuid, v text) WHERE v.subscription_instance_value_id = x.id]],
        arr(p.upd_val))
    end
    if #p.ins_val > 0 then
      local _, n = db.must([[INSERT INTO subscription_instance_values
          (subscription_instance_id, resource_type_id, value)
        SELECT x.i, rt.resource_type_id, x.v FROM json_to_recordset($1::json) AS x(i uuid, rt text, v text)
          JOIN resource_types rt ON rt.resource_type = x.rt]], arr(p.ins_val))
      if n ~= #p.ins_val then
        error("some resource types of subscription " .. id .. " are missing in the database "
          .. "(run `orchestrator catalog apply`)", 0)
      end
    end
  end

  -- Phase 3: relations, once every subscription of the save has its instances.
  local function write_relations(p)
    if #p.ins_rel > 0 then
      db.must([[INSERT INTO subscription_instance_relations (in_use_by_id, depends_on_id, order_id, domain_model_attr)
        SELECT x.p, x.c, x.o, x.a FROM json_to_recordset($1::json) AS x(p uuid, c uuid, o int, a text)]],
        arr(p.ins_rel))
    end
  end

  -- Re-read the value ids written by this save (new rows got ids from the database).
  local function refresh_stored(self, p)
    local d = D[self]
    local stored = { instances = {}, values = {} }
    for iid, i in pairs(p.want.instances) do
      stored.instances[iid] = i
    end
    if #p.ins_val > 0 or not d.stored then
      local ids = {}
      for iid in pairs(p.want.instances) do
        ids[#ids + 1] = iid
      end
      if #ids > 0 then
        stored.values = db.must([[SELECT v.subscription_instance_value_id::text AS id,
            v.subscription_instance_id::text AS i, rt.resource_type AS rt, v.value AS v
          FROM subscription_instance_values v JOIN resource_types rt ON rt.resource_type_id = v.resource_type_id
          WHERE v.subscription_instance_id = ANY($1::uuid[]) ORDER BY v.value]], "{" .. table.concat(ids, ",") .. "}")
      end
    else
      -- Updates keep the row ids: drop only the rows this save deleted.
      local gone = {}
      for _, vid in ipairs(p.del_val) do
        gone[vid] = true
      end
      stored.values = {}
      for _, v in ipairs(d.stored.values) do
        if not gone[v.id] and p.want.instances[v.i] then
          stored.values[#stored.values + 1] = v
        end
      end
    end
    d.stored = stored
    d.snapshot = p.want
    d.snapshot_row = {}
    for k, v in pairs(d.row) do
      d.snapshot_row[k] = v
    end
  end

  -- Save subscriptions inside the caller's transaction (the workflow engine calls
  -- this inside a step's transaction). Writes only what changed; returns the
  -- number of rows written.
  function M.save_all(list)
    local total = 0
    local subs, plans, seen = {}, {}, {}
    for i, sub in ipairs(list) do
      if not is_subscription(sub) then
        raise("orch.model.save_all: item " .. i .. " is not a subscription")
      end
      if not seen[sub] then -- the same object listed twice is saved once
        seen[sub] = true
        subs[#subs + 1] = sub
        plans[#subs] = plan(sub)
      end
    end
    -- In phases across all of them, so that subscriptions that reference each other's new
    -- blocks can be saved together in any order. Nothing is written unless all can be.
    local changed = {}
    for i, sub in ipairs(subs) do
      local n = count_of(plans[i])
      if n > 0 then
        M.check_savable(sub)
        changed[#changed + 1] = i
        total = total + n
      end
    end
    for _, i in ipairs(changed) do
      write_instances(subs[i], plans[i])
    end
    for _, i in ipairs(changed) do
      write_rows(subs[i], plans[i])
    end
    for _, i in ipairs(changed) do
      write_relations(plans[i])
    end
    for _, i in ipairs(changed) do
      refresh_stored(subs[i], plans[i])
    end
    return total
  end

  -- Save one subscription in its own transaction (or the caller's, if one is open).
  function methods.save(self)
    local p = plan(self)
    local n = count_of(p)
    if n == 0 then
      return 0 -- nothing changed: not even a BEGIN
    end
    M.check_savable(self)
    db.transaction(function()
      write_instances(self, p)
      write_rows(self, p)
      write_relations(p)
      refresh_stored(self, p)
    end)
    return n
  end
end
