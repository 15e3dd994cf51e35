-- The `workflows` and `products_workflows` tables follow the workflows defined
-- in Lua, the way the catalogue follows the product definitions:
--  * a defined workflow gets its row (name, target, is_task; the description is
--    taken from Lua only when the row is created - afterwards it belongs to the
--    operators, who edit it with PATCH /api/workflows/{id}, as in core);
--  * a workflow row whose definition disappeared is soft-deleted (deleted_at),
--    which core's queries already hide; it comes back when it is defined again;
--  * links to products follow each definition's `products` (product names),
--    `product_types` and `product_tags`; modify_note is linked to every product
--    (core's DEFAULT_PRODUCT_WORKFLOWS).
-- apply() runs in one transaction and returns what it changed; the schedules defined
-- with orch.schedule follow in a second one (lua/orch/schedules).

local db = require("orch.db")
local workflow = require("orch.workflow")

local sync = {}

local DEFAULT_PRODUCT_WORKFLOWS = { modify_note = true }

local function as_list(v)
  if v == nil then
    return {}
  end
  if type(v) == "string" then
    return { v }
  end
  return v
end

local function pg_array(list)
  local quoted = {}
  for i, v in ipairs(list) do
    quoted[i] = '"' .. tostring(v):gsub('[\\"]', "\\%0") .. '"'
  end
  return "{" .. table.concat(quoted, ",") .. "}"
end

local function product_ids(wf)
  local rows
  if DEFAULT_PRODUCT_WORKFLOWS[wf.name] then
    rows = db.must("SELECT product_id::text FROM products")
  else
    rows = db.must([[SELECT product_id::text FROM products
                     WHERE name = ANY($1::text[]) OR product_type = ANY($2::text[]) OR tag = ANY($3::text[])]],
      pg_array(as_list(wf.products)), pg_array(as_list(wf.product_types)), pg_array(as_list(wf.product_tags)))
  end
  local ids = {}
  for _, r in ipairs(rows) do
    ids[#ids + 1] = r.product_id
  end
  return ids
end

function sync.apply()
  local json = require("orch.json")
  local changes = { created = json.array(), updated = json.array(), deleted = json.array(),
    restored = json.array(), links_added = 0, links_removed = 0 }
  db.transaction(function()
    local existing = {}
    for _, r in ipairs(db.must("SELECT name, target, is_task, deleted_at IS NOT NULL AS deleted FROM workflows")) do
      existing[r.name] = r
    end
    local defined = {}
    for _, wf in ipairs(workflow.list()) do
      defined[wf.name] = true
      local row = existing[wf.name]
      if not row then
        db.must([[INSERT INTO workflows (name, target, description, is_task) VALUES ($1, $2, $3, $4)]],
          wf.name, wf.target, wf.description, wf.is_task)
        changes.created[#changes.created + 1] = wf.name
      elseif row.deleted or row.target ~= wf.target or row.is_task ~= wf.is_task then
        db.must([[UPDATE workflows SET target = $2, is_task = $3, deleted_at = NULL WHERE name = $1]],
          wf.name, wf.target, wf.is_task)
        local list = row.deleted and changes.restored or changes.updated
        list[#list + 1] = wf.name
      end
      local ids = product_ids(wf)
      local added = db.must([[
        INSERT INTO products_workflows (product_id, workflow_id)
        SELECT p::uuid, w.workflow_id FROM unnest($2::text[]) AS p, workflows w WHERE w.name = $1
        ON CONFLICT DO NOTHING RETURNING product_id]], wf.name, pg_array(ids))
      changes.links_added = changes.links_added + #added
      local _, removed = db.must([[
        DELETE FROM products_workflows pw USING workflows w
        WHERE pw.workflow_id = w.workflow_id AND w.name = $1 AND NOT (pw.product_id::text = ANY($2::text[]))]],
        wf.name, pg_array(ids))
      changes.links_removed = changes.links_removed + removed
    end
    for name, row in pairs(existing) do
      if not defined[name] and not row.deleted then
        db.must("UPDATE workflows SET deleted_at = now() WHERE name = $1", name)
        changes.deleted[#changes.deleted + 1] = name
      end
    end
  end)
  -- Schedules start workflows, so they follow once the workflows are in place.
  changes.schedules = require("orch.schedules").sync()
  return changes
end

return sync
