-- The catalogue follows the Lua definitions: plan() compares the registry with
-- the database (products, fixed inputs, product blocks, resource types, block
-- relations, product<->block links) and apply() carries a plan out in one
-- transaction.
--
-- Every change has a class:
--   add          something new (a product, block, field, fixed input, link)
--   update       a changed description, tag or fixed-input value nobody uses yet
--   remove       something the definitions dropped that holds no data
--   destructive  a removal or change that loses stored data (values of a field,
--                the meaning of a fixed input existing subscriptions have);
--                only with allow_destructive
--   blocked      cannot be done without deleting subscriptions (a product with
--                subscriptions, a block with instances); never done here
-- `serve` applies add and update at start-up; `catalog apply` applies add,
-- update and remove, and destructive ones only when allowed, all or nothing.

local registry = require("orch.model.registry")
local db = require("orch.db")
local types = require("orch.model.types")

local catalog = {}
local field_type_change

local quote = types.quote

-- ---- what the definitions want ----

local function wanted()
  local w = { resource_types = {}, blocks = {}, products = {} }
  for name, rt in pairs(registry.resource_types or {}) do
    w.resource_types[name] = { description = rt.description }
  end
  for _, def in ipairs(registry.block_list) do
    local b = { description = def.description, tag = def.tag, status = def.status, rts = {}, children = {},
      types = {} }
    for _, f in ipairs(def.fields) do
      if f.kind == "scalar" then
        b.rts[f.name] = true
        b.types[f.name] = f
      elseif not b.children[f.block] then
        local min, max
        if f.kind == "list" then
          min, max = f.min, f.max
        end
        b.children[f.block] = { min = min, max = max }
      end
    end
    w.blocks[def.name] = b
  end
  for _, entry in ipairs(registry.product_list) do
    local row, def = entry.row, entry.def
    local p = { description = row.description, product_type = row.product_type, tag = row.tag, status = row.status,
      fixed = {}, blocks = {} }
    for _, f in ipairs(def.fixed_inputs) do
      p.fixed[f.name] = f.type.format(row.fixed_inputs[f.name])
    end
    for _, f in ipairs(def.fields) do
      p.blocks[f.block] = true
    end
    w.products[row.name] = p
  end
  return w
end

-- The name a field's type is recorded under: the type's name, an enum with its values.
local function type_signature(t)
  if t.name == "enum" and t.enum then
    local vals = {}
    for i, v in ipairs(t.enum) do
      vals[i] = quote(v)
    end
    return "enum(" .. table.concat(vals, ", ") .. ")"
  end
  return tostring(t.name)
end
catalog.type_signature = type_signature

-- ---- what the database has ----

local function stored()
  local s = { resource_types = {}, blocks = {}, products = {}, types = nil }
  if db.one("SELECT to_regclass('orch_field_types') IS NOT NULL AS ok").ok then
    s.types = {}
    for _, r in ipairs(db.must("SELECT block, field, field_type FROM orch_field_types")) do
      s.types[r.block .. "." .. r.field] = r.field_type
    end
  end
  for _, r in ipairs(db.must([[SELECT rt.resource_type, rt.description,
      (SELECT count(*) FROM subscription_instance_values v WHERE v.resource_type_id = rt.resource_type_id) AS nvalues
      FROM resource_types rt]])) do
    s.resource_types[r.resource_type] = r
  end
  for _, b in ipairs(db.must([[SELECT b.name, b.description, b.tag, b.status,
      (SELECT count(*) FROM subscription_instances i WHERE i.product_block_id = b.product_block_id) AS ninstances,
      (SELECT coalesce(json_object_agg(rt.resource_type,
          (SELECT count(*) FROM subscription_instance_values v JOIN subscription_instances i
              ON i.subscription_instance_id = v.subscription_instance_id
            WHERE i.product_block_id = b.product_block_id AND v.resource_type_id = rt.resource_type_id)), '{}')
         FROM product_block_resource_types l JOIN resource_types rt ON rt.resource_type_id = l.resource_type_id
        WHERE l.product_block_id = b.product_block_id) AS rts,
      (SELECT coalesce(json_object_agg(c.name, json_build_object('min', r.min, 'max', r.max)), '{}')
         FROM product_block_relations r JOIN product_blocks c ON c.product_block_id = r.depends_on_id
        WHERE r.in_use_by_id = b.product_block_id) AS children
      FROM product_blocks b]])) do
    s.blocks[b.name] = b
  end
  for _, p in ipairs(db.must([[SELECT p.name, p.description, p.product_type, p.tag, p.status,
      (SELECT count(*) FROM subscriptions s WHERE s.product_id = p.product_id) AS nsubscriptions,
      (SELECT coalesce(json_object_agg(f.name, f.value), '{}') FROM fixed_inputs f
        WHERE f.product_id = p.product_id) AS fixed,
      (SELECT coalesce(json_object_agg(b.name, true), '{}') FROM product_product_blocks l
         JOIN product_blocks b ON b.product_block_id = l.product_block_id WHERE l.product_id = p.product_id) AS blocks
      FROM products p]])) do
    s.products[p.name] = p
  end
  return s
end

-- ---- the plan ----

local function sorted_keys(t)
  local out = {}
  for k in pairs(t or {}) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

local function nz(v)
  if v == orch.json.null then
    return nil
  end
  return v
end

local marks = { add = "+", update = "~", remove = "-", destructive = "!", blocked = "x" }
-- Order of execution: what others refer to is created first and removed last.
-- `record` is bookkeeping (the type of a field that has none recorded yet): applied
-- with the others, never listed.
local order = { add = 1, update = 2, record = 2, remove = 3, destructive = 3, blocked = 4 }

-- Stored values of a block's field that the field's type does not accept.
local function unconvertible(block, rt, f)
  local rows = db.must([[SELECT v.value FROM subscription_instance_values v
      JOIN subscription_instances i ON i.subscription_instance_id = v.subscription_instance_id
      JOIN product_blocks b ON b.product_block_id = i.product_block_id
      JOIN resource_types r ON r.resource_type_id = v.resource_type_id
     WHERE b.name = $1 AND r.resource_type = $2]], block, rt)
  local bad = 0
  for _, r in ipairs(rows) do
    if f.type.parse(r.value) == nil then
      bad = bad + 1
    end
  end
  return bad, #rows
end

-- A field's type against the one recorded: a changed type is an update when every
-- stored value converts and destructive (a reload and serve refuse it) when some do not.
field_type_change = function(block, rt, f, recorded, linked, change)
  local sig = type_signature(f.type)
  if recorded == sig then
    return
  end
  local record = function()
    db.must([[INSERT INTO orch_field_types (block, field, field_type) VALUES ($1, $2, $3)
      ON CONFLICT (block, field) DO UPDATE SET field_type = EXCLUDED.field_type]], block, rt, sig)
  end
  local bad, total = 0, 0
  if linked then
    bad, total = unconvertible(block, rt, f)
  end
  local values = function(n)
    return n .. " stored value" .. (n == 1 and "" or "s")
  end
  if recorded == nil then
    if bad == 0 then
      change("record", 3, "field " .. block .. "." .. rt .. " has type " .. sig, record)
    else
      local c = change("destructive", 3, "field " .. block .. "." .. rt .. ": " .. values(bad) .. " of "
        .. total .. (bad == 1 and " is" or " are") .. " not a valid " .. sig, record)
      c.refuse_sync = true
    end
  elseif bad == 0 then
    change("update", 3, "field " .. block .. "." .. rt .. ": type " .. recorded .. " -> " .. sig .. " ("
      .. values(total) .. " convert)", record)
  else
    local c = change("destructive", 3, "field " .. block .. "." .. rt .. ": type " .. recorded .. " -> " .. sig
      .. ": " .. values(bad) .. " of " .. total .. " do" .. (bad == 1 and "es" or "") .. " not convert", record)
    c.refuse_sync = true
  end
end

-- Resource types to add or describe anew, for plan().
local function plan_resource_types(w, s, change)
  for _, name in ipairs(sorted_keys(w.resource_types)) do
    local want, have = w.resource_types[name], s.resource_types[name]
    if not have then
      change("add", 1, "resource type " .. name, function()
        db.must("INSERT INTO resource_types (resource_type, description) VALUES ($1, $2)", name, want.description)
      end)
    elseif want.description and want.description ~= nz(have.description) then
      change("update", 1, "resource type " .. name .. ": description " .. quote(nz(have.description) or "")
        .. " -> " .. quote(want.description), function()
        db.must("UPDATE resource_types SET description = $2 WHERE resource_type = $1", name, want.description)
      end)
    end
  end
end

-- A block's row and its fields (resource types and their stored types), for plan();
-- returns what is stored of it (empty for a new block).
local function plan_block(name, want, have, s, change)
  if not have then
    change("add", 2, "product block " .. name .. (want.tag and (" (tag " .. want.tag .. ")") or ""), function()
      db.must("INSERT INTO product_blocks (name, description, tag, status) VALUES ($1, $2, $3, $4)", name,
        want.description, want.tag, want.status)
    end)
    have = { rts = {}, children = {} }
  else
    if want.description ~= have.description then
      change("update", 2, "product block " .. name .. ": description " .. quote(have.description) .. " -> "
        .. quote(want.description), function()
        db.must("UPDATE product_blocks SET description = $2 WHERE name = $1", name, want.description)
      end)
    end
    if want.tag ~= nz(have.tag) then
      change("update", 2, "product block " .. name .. ": tag " .. quote(nz(have.tag) or "") .. " -> "
        .. quote(want.tag or ""), function()
        db.must("UPDATE product_blocks SET tag = $2 WHERE name = $1", name, want.tag)
      end)
    end
  end
  for _, rt in ipairs(sorted_keys(want.rts)) do
    if have.rts[rt] == nil then
      change("add", 3, "field " .. name .. "." .. rt, function()
        db.must([[INSERT INTO product_block_resource_types (product_block_id, resource_type_id)
          SELECT b.product_block_id, rt.resource_type_id FROM product_blocks b, resource_types rt
           WHERE b.name = $1 AND rt.resource_type = $2]], name, rt)
      end)
    end
  end
  for _, rt in ipairs(sorted_keys(have.rts)) do
    if not want.rts[rt] then
      local n = have.rts[rt]
      local unlink = function()
        db.must([[DELETE FROM subscription_instance_values v USING subscription_instances i, product_blocks b,
            resource_types rt
          WHERE v.subscription_instance_id = i.subscription_instance_id AND i.product_block_id = b.product_block_id
            AND v.resource_type_id = rt.resource_type_id AND b.name = $1 AND rt.resource_type = $2]], name, rt)
        db.must([[DELETE FROM product_block_resource_types l USING product_blocks b, resource_types rt
          WHERE l.product_block_id = b.product_block_id AND l.resource_type_id = rt.resource_type_id
            AND b.name = $1 AND rt.resource_type = $2]], name, rt)
      end
      if n > 0 then
        change("destructive", 6, "field " .. name .. "." .. rt .. ": removing it deletes " .. n
          .. " stored value" .. (n == 1 and "" or "s"), unlink)
      else
        change("remove", 6, "field " .. name .. "." .. rt .. " (no stored values)", unlink)
      end
    end
  end
  if s.types then
    for _, rt in ipairs(sorted_keys(want.types)) do
      field_type_change(name, rt, want.types[rt], s.types[name .. "." .. rt], have.rts[rt] ~= nil, change)
    end
  end
  return have
end

-- A block's relations to the blocks it uses (min/max), for plan().
local function plan_block_relations(name, want, have, change)
  for _, child in ipairs(sorted_keys(want.children)) do
    local c, old = want.children[child], have.children[child]
    if not old then
      change("add", 3, "block relation " .. name .. " -> " .. child, function()
        db.must([[INSERT INTO product_block_relations (in_use_by_id, depends_on_id, min, max)
          SELECT p.product_block_id, c.product_block_id, $3, $4 FROM product_blocks p, product_blocks c
           WHERE p.name = $1 AND c.name = $2]], name, child, c.min, c.max)
      end)
    elseif nz(old.min) ~= c.min or nz(old.max) ~= c.max then
      change("update", 3, "block relation " .. name .. " -> " .. child .. ": min/max " .. tostring(nz(old.min))
        .. "/" .. tostring(nz(old.max)) .. " -> " .. tostring(c.min) .. "/" .. tostring(c.max), function()
        db.must([[UPDATE product_block_relations r SET min = $3, max = $4 FROM product_blocks p, product_blocks c
          WHERE r.in_use_by_id = p.product_block_id AND r.depends_on_id = c.product_block_id
            AND p.name = $1 AND c.name = $2]], name, child, c.min, c.max)
      end)
    end
  end
  for _, child in ipairs(sorted_keys(have.children)) do
    if not want.children[child] then
      change("remove", 5, "block relation " .. name .. " -> " .. child, function()
        db.must([[DELETE FROM product_block_relations r USING product_blocks p, product_blocks c
          WHERE r.in_use_by_id = p.product_block_id AND r.depends_on_id = c.product_block_id
            AND p.name = $1 AND c.name = $2]], name, child)
      end)
    end
  end
end

-- A product's row, for plan(); returns what is stored of it (empty for a new product).
local function plan_product(name, want, have, used, change)
  if not have then
    change("add", 4, "product " .. quote(name) .. " (" .. want.product_type .. ", tag " .. want.tag .. ")",
      function()
        db.must([[INSERT INTO products (name, description, product_type, tag, status)
          VALUES ($1, $2, $3, $4, $5)]], name, want.description, want.product_type, want.tag, want.status)
      end)
    have = { fixed = {}, blocks = {} }
  else
    for _, col in ipairs({ "description", "tag", "product_type" }) do
      if want[col] ~= have[col] then
        local class = (col == "product_type" and used) and "destructive" or "update"
        local text = "product " .. quote(name) .. ": " .. col .. " " .. quote(have[col]) .. " -> " .. quote(want[col])
        if class == "destructive" then
          text = text .. " (" .. have.nsubscriptions .. " subscriptions would change model)"
        end
        change(class, 4, text, function()
          db.must("UPDATE products SET " .. col .. " = $2 WHERE name = $1", name, want[col])
        end)
      end
    end
  end
  return have
end

-- A product's fixed inputs, for plan().
local function plan_fixed_inputs(name, want, have, used, change)
  for _, fname in ipairs(sorted_keys(want.fixed)) do
    local value, old = want.fixed[fname], have.fixed[fname]
    if old == nil then
      change("add", 5, "fixed input " .. quote(name) .. "." .. fname .. " = " .. quote(value), function()
        db.must([[INSERT INTO fixed_inputs (name, value, product_id) SELECT $2, $3, product_id FROM products
          WHERE name = $1]], name, fname, value)
      end)
    elseif old ~= value then
      local text = "fixed input " .. quote(name) .. "." .. fname .. ": " .. quote(old) .. " -> " .. quote(value)
      change(used and "destructive" or "update", 5,
        text .. (used and (" (" .. have.nsubscriptions .. " subscriptions have the old value)") or ""), function()
        db.must([[UPDATE fixed_inputs f SET value = $3 FROM products p
          WHERE f.product_id = p.product_id AND p.name = $1 AND f.name = $2]], name, fname, value)
      end)
    end
  end
  for _, fname in ipairs(sorted_keys(have.fixed)) do
    if want.fixed[fname] == nil then
      change(used and "destructive" or "remove", 6, "fixed input " .. quote(name) .. "." .. fname
        .. (used and (" (" .. have.nsubscriptions .. " subscriptions have it)") or ""), function()
        db.must([[DELETE FROM fixed_inputs f USING products p WHERE f.product_id = p.product_id AND p.name = $1
          AND f.name = $2]], name, fname)
      end)
    end
  end
end

-- Which blocks a product uses, for plan().
local function plan_product_blocks(name, want, have, change)
  for _, block in ipairs(sorted_keys(want.blocks)) do
    if not have.blocks[block] then
      change("add", 5, "product " .. quote(name) .. " uses block " .. block, function()
        db.must([[INSERT INTO product_product_blocks (product_id, product_block_id)
          SELECT p.product_id, b.product_block_id FROM products p, product_blocks b WHERE p.name = $1
             AND b.name = $2]], name, block)
      end)
    end
  end
  for _, block in ipairs(sorted_keys(have.blocks)) do
    if not want.blocks[block] then
      change("remove", 6, "product " .. quote(name) .. " no longer uses block " .. block, function()
        db.must([[DELETE FROM product_product_blocks l USING products p, product_blocks b
          WHERE l.product_id = p.product_id AND l.product_block_id = b.product_block_id AND p.name = $1
            AND b.name = $2]], name, block)
      end)
    end
  end
end

-- What the definitions dropped (products, blocks, resource types), for plan().
local function plan_dropped(w, s, change)
  for _, name in ipairs(sorted_keys(s.products)) do
    local have = s.products[name]
    if not w.products[name] then
      if have.nsubscriptions > 0 then
        change("blocked", 7, "product " .. quote(name) .. " is no longer defined but " .. have.nsubscriptions
          .. " subscription" .. (have.nsubscriptions == 1 and " uses" or "s use") .. " it; it stays")
      else
        change("remove", 7, "product " .. quote(name) .. " (no subscriptions)", function()
          db.must("DELETE FROM products WHERE name = $1", name)
        end)
      end
    end
  end
  for _, name in ipairs(sorted_keys(s.blocks)) do
    local have = s.blocks[name]
    if not w.blocks[name] then
      if have.ninstances > 0 then
        change("blocked", 8, "product block " .. name .. " is no longer defined but " .. have.ninstances
          .. " subscription instance" .. (have.ninstances == 1 and " uses" or "s use") .. " it; it stays")
      else
        change("remove", 8, "product block " .. name .. " (no instances)", function()
          db.must("DELETE FROM product_blocks WHERE name = $1", name)
        end)
      end
    end
  end
  for _, name in ipairs(sorted_keys(s.resource_types)) do
    local have = s.resource_types[name]
    if not w.resource_types[name] then
      local run = function()
        db.must([[DELETE FROM subscription_instance_values v USING resource_types rt
          WHERE v.resource_type_id = rt.resource_type_id AND rt.resource_type = $1]], name)
        db.must("DELETE FROM resource_types WHERE resource_type = $1", name)
      end
      if have.nvalues > 0 then
        change("destructive", 9, "resource type " .. name .. ": removing it deletes " .. have.nvalues
          .. " stored value" .. (have.nvalues == 1 and "" or "s"), run)
      else
        change("remove", 9, "resource type " .. name .. " (no stored values)", run)
      end
    end
  end
end

-- plan() -> the changes that make the catalogue tables what the definitions say, in the
-- order they must run: {class, stage, text, run}.
function catalog.plan()
  local w, s = wanted(), stored()
  local changes = {}
  local function change(class, stage, text, run)
    changes[#changes + 1] = { class = class, stage = stage, text = text, run = run }
    return changes[#changes]
  end
  plan_resource_types(w, s, change)
  for _, name in ipairs(sorted_keys(w.blocks)) do
    local want = w.blocks[name]
    local have = plan_block(name, want, s.blocks[name], s, change)
    plan_block_relations(name, want, have, change)
  end
  for _, name in ipairs(sorted_keys(w.products)) do
    local want, have = w.products[name], s.products[name]
    local used = have and have.nsubscriptions > 0
    have = plan_product(name, want, have, used, change)
    plan_fixed_inputs(name, want, have, used, change)
    plan_product_blocks(name, want, have, change)
  end
  plan_dropped(w, s, change)
  table.sort(changes, function(a, b)
    if a.stage ~= b.stage then
      return a.stage < b.stage
    end
    if order[a.class] ~= order[b.class] then
      return order[a.class] < order[b.class]
    end
    return a.text < b.text
  end)
  return changes
end

local function counts(changes)
  local c = { add = 0, update = 0, remove = 0, destructive = 0, blocked = 0, record = 0 }
  for _, ch in ipairs(changes) do
    c[ch.class] = c[ch.class] + 1
  end
  return c
end
catalog.counts = counts

-- Apply the changes of the given classes (inside the caller's transaction); returns the number applied.
function catalog.apply(changes, classes)
  local n = 0
  for _, ch in ipairs(changes) do
    if classes[ch.class] then
      ch.run()
      n = n + 1
    end
  end
  return n
end

local function lines_of(changes, filter)
  local out = {}
  for _, ch in ipairs(changes) do
    if marks[ch.class] and (not filter or filter[ch.class]) then
      out[#out + 1] = marks[ch.class] .. " " .. ch.text
    end
  end
  return out
end

local function summary(c)
  return string.format("%d to add, %d to update, %d to remove, %d destructive, %d blocked", c.add, c.update,
    c.remove, c.destructive, c.blocked)
end

-- The host's entry point (orchestrator catalog plan|apply, serve start-up):
-- arg = {mode = "plan"|"apply"|"sync", allow_destructive = bool}
-- -> {lines = {...}, summary = string, applied = n, ok = bool, message = string}
function catalog.run(arg)
  arg = arg or {}
  if arg.mode == "plan" then
    return catalog.execute(arg)
  end
  -- One transaction under a lock: hosts starting together plan and apply one after the other.
  return db.transaction(function()
    db.must("SELECT pg_advisory_xact_lock(hashtext('orchestrator catalogue'))")
    return catalog.execute(arg)
  end)
end

-- Plan and, for apply and sync, apply (inside run's transaction).
function catalog.execute(arg)
  local changes = catalog.plan()
  local c = counts(changes)
  local result = { lines = orch.json.array(lines_of(changes)), summary = summary(c), applied = 0, ok = true }
  if #changes == c.record then
    result.summary = "the catalogue matches the definitions"
  end
  local refused = {}
  for _, ch in ipairs(changes) do
    if ch.refuse_sync then
      refused[#refused + 1] = marks[ch.class] .. " " .. ch.text
    end
  end
  if arg.mode == "plan" then
    return result
  elseif arg.mode == "sync" then
    if #refused > 0 then
      -- Stored values would no longer load: nothing is applied, and a reload or
      -- `serve` refuses the definitions until the author applies them.
      result.ok = false
      result.refused = orch.json.array(refused)
      result.message = "refused: " .. table.concat(refused, "; ") .. " (a field's type changed and stored values "
        .. "do not convert; check with `orchestrator catalog plan`, apply with `orchestrator catalog apply "
        .. "--allow-destructive`: those values then read as invalid until they are replaced)"
      return result
    end
    result.applied = catalog.apply(changes, { add = true, update = true, record = true })
    local pending = c.remove + c.destructive + c.blocked
    if pending > 0 then
      result.message = pending .. " change" .. (pending == 1 and "" or "s")
        .. " not applied at start-up (removals need `orchestrator catalog apply`)"
      result.pending = orch.json.array(lines_of(changes, { remove = true, destructive = true, blocked = true }))
    end
    return result
  elseif arg.mode == "apply" then
    if c.blocked > 0 or (c.destructive > 0 and not arg.allow_destructive) then
      result.ok = false
      local why = {}
      if c.destructive > 0 and not arg.allow_destructive then
        why[#why + 1] = c.destructive .. " destructive change" .. (c.destructive == 1 and "" or "s")
          .. " (marked !) would delete stored data; pass --allow-destructive to apply them"
      end
      if c.blocked > 0 then
        why[#why + 1] = c.blocked .. " change" .. (c.blocked == 1 and "" or "s")
          .. " (marked x) cannot be made while subscriptions use what would be removed"
      end
      result.message = "nothing applied: " .. table.concat(why, "; ")
      return result
    end
    result.applied = catalog.apply(changes, { add = true, update = true, remove = true, destructive = true,
      record = true })
    return result
  end
  error("catalog.run: unknown mode " .. quote(arg.mode), 2)
end

-- For host/reload.c: {ok, text, message}; ok false = refused, nothing applied.
function catalog.reload(arg)
  local r = catalog.run(arg)
  local lines = catalog.cli_lines(arg, r)
  return { ok = r.ok, text = table.concat(lines, "\n"), message = r.message or orch.json.null }
end

-- For host/catalog.c: the report as text, "<0 done|1 refused>\n<lines>".
function catalog.cli(arg)
  local r = catalog.run(arg)
  return (r.ok and "0" or "1") .. "\n" .. table.concat(catalog.cli_lines(arg, r), "\n") .. "\n"
end

-- The report's lines.
function catalog.cli_lines(arg, r)
  local out = {}
  for _, line in ipairs(r.lines) do
    out[#out + 1] = line
  end
  if arg.mode == "plan" then
    out[#out + 1] = "plan: " .. r.summary
  elseif arg.mode == "sync" then
    out[#out + 1] = "catalogue: " .. r.applied .. " change" .. (r.applied == 1 and "" or "s") .. " applied ("
      .. r.summary .. ")"
    if r.message then
      out[#out + 1] = r.message
    end
  elseif r.ok then
    out[#out + 1] = "applied " .. r.applied .. " change" .. (r.applied == 1 and "" or "s") .. " (" .. r.summary .. ")"
  else
    out[#out + 1] = r.message
  end
  return out
end

return catalog
