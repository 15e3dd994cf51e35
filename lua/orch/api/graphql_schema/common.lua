-- Shared pieces of the GraphQL API (lua/orch/api/graphql_schema/): the SQL of core's connections for
-- root lists and for lists nested under every item of a page (one query for the whole
-- page, never one per item), per-page batching of child rows, and small helpers.

local db = require("orch.db")
local json = require("orch.json")
local connection = require("orch.graphql.connection")
local query = require("orch.query")

local null = json.null

local common = {}

-- core's DEFAULT_CUSTOMER_* settings (used when no product provides customers).
common.DEFAULT_CUSTOMER = require("orch.api.graphql_schema.customers").DEFAULT

-- The schema's areas (processes, subscriptions, catalog, workflows, misc) by name, registered
-- by orch.api.graphql_schema as it loads them: an area reaches another's loaders for nested fields through
-- here at resolve time, never by requiring it (the areas would require each other).
local areas = {}

function common.register_area(name, area)
  areas[name] = area
end

function common.area(name)
  local area = areas[name]
  if not area then
    error("orch.api.graphql_schema: area '" .. tostring(name)
      .. "' is not registered (the schema is built by orch.api.graphql_schema)", 2)
  end
  return area
end

function common.nn(v)
  if v == nil then
    return null
  end
  return v
end

function common.upper(v)
  if type(v) == "string" then
    return v:upper()
  end
  return common.nn(v)
end

local function raise(message)
  error({ message = message }, 0)
end
common.raise = raise

function common.query(sql, ...)
  local rows, err = db.query(sql, ...)
  if not rows then
    raise("database: " .. err.message)
  end
  return rows
end

-- A '{a,b}' array literal of ids for `= ANY($n::uuid[])` (ids come from our own rows).
function common.id_array(ids)
  return "{" .. table.concat(ids, ",") .. "}"
end

-- The ILIKE pattern of a search node (Word, PrefixWord, Phrase); partial: match anywhere.
function common.pattern(node, partial)
  local pattern
  if node.kind == "Phrase" then
    local parts = {}
    for i, w in ipairs(node.words) do
      parts[i] = w.kind == "PrefixWord" and (w.value .. "%") or w.value
    end
    pattern = table.concat(parts, " ")
  elseif node.kind == "PrefixWord" then
    pattern = node.value .. "%"
  else
    pattern = node.value
  end
  if partial then
    pattern = "%" .. pattern:gsub("%%$", "") .. "%"
  end
  return pattern
end

-- Matching of a search node as `ILIKE $n`, for function columns.
function common.like(node, param, partial)
  return "ILIKE " .. param(common.pattern(node, partial))
end

-- A lowercase code column (statuses): a plain word is an equality on the column (an index
-- can serve it), a prefix or phrase an ILIKE.
function common.code(expr)
  return function(node, param)
    if node.kind == "Word" then
      return expr .. " = " .. param(node.value:lower())
    end
    return expr .. " " .. common.like(node, param)
  end
end

-- A timestamp column matched on its text (as core does without a range operator). A word
-- with characters that no timestamp text has (letters) cannot match: FALSE without
-- converting every row, which keeps a free-text search from scanning dates.
function common.timestamp(expr)
  return function(node, param)
    local text = node.kind == "Phrase" and "" or node.value
    if node.kind == "Phrase" then
      for _, w in ipairs(node.words) do
        text = text .. " " .. w.value
      end
    end
    if not text:match("^[%d%s:%.%+%-T]*$") then
      return "FALSE"
    end
    return "CAST(" .. expr .. " AS text) " .. common.like(node, param)
  end
end

-- A text column whose words and phrases match anywhere (descriptions).
function common.contains(expr)
  return function(node, param)
    return expr .. " " .. common.like(node, param, true)
  end
end

-- A condition on a related table: EXISTS (subquery WHERE <inner> ILIKE ...).
function common.exists(subquery, inner, partial)
  return function(node, param)
    return "EXISTS (" .. subquery .. " AND " .. inner .. " " .. common.like(node, param, partial) .. ")"
  end
end

-- WHERE conditions and ORDER BY of a connection's arguments (core's filterBy, query and
-- sortBy) for a list spec, as orch.query.plan builds them. Invalid filter
-- fields are reported on `info` and empty the list; invalid sort fields are reported.
-- Returns conds (array of SQL), params, order (array of SQL), sort_fields, filter_fields.
function common.clauses(args, spec, info, params)
  local conds, p, order, sort_fields, filter_fields = query.clauses(args, spec, info, params)
  if not conds then
    raise(p)
  end
  return conds, p, order, sort_fields, filter_fields
end

local function where_of(conds)
  return #conds > 0 and (" WHERE " .. table.concat(conds, " AND ")) or ""
end

-- A selection test relative to the items of a list: sel("customer.fullname").
function common.page_selector(info, prefix)
  return function(path)
    return info:selects(prefix and (prefix .. "." .. path) or path)
  end
end

-- The root list: a connection over spec for args. load(rows, sel) turns the page's rows
-- into items (batching their children); spec.select may be a function(sel) -> SQL.
function common.root_connection(args, spec, info, load)
  local first, after = connection.page_args(args)
  local conds, params, order, sort_fields, filter_fields = common.clauses(args, spec, info)
  local where = where_of(conds)
  local sel = common.page_selector(info, "page")
  local rows = {}
  if info:selects("page") or info:selects("pageInfo.hasNextPage") or info:selects("pageInfo.endCursor")
    or info:selects("pageInfo.startCursor") then
    local select = type(spec.select) == "function" and spec.select(sel) or spec.select
    local p = { table.unpack(params) }
    p[#p + 1] = first + 1
    p[#p + 1] = after
    rows = common.query("SELECT " .. select .. " FROM " .. spec.from .. where .. " ORDER BY "
      .. table.concat(order, ", ") .. " LIMIT $" .. (#p - 1) .. " OFFSET $" .. #p, table.unpack(p))
  end
  local total
  if info:selects("pageInfo.totalItems") then
    total = common.query("SELECT count(*) AS n FROM " .. spec.from .. where, table.unpack(params))[1].n
  end
  local items = load(rows, sel)
  return connection.result(items, first, after, total, sort_fields, filter_fields)
end

-- A connection under each parent of a page, in one or two statements for the whole page:
-- returns {[parent_id] = connection}. spec.parent is the SQL expression of the parent's
-- id (text) in spec.from; ids the parents of the page.
function common.nested_connections(args, spec, info, ids, load)
  local first, after = connection.page_args(args)
  local conds, params, order, sort_fields, filter_fields = common.clauses(args, spec, info)
  params[#params + 1] = common.id_array(ids)
  conds[#conds + 1] = spec.parent .. " = ANY($" .. #params .. "::" .. (spec.parent_type or "uuid") .. "[])"
  local where = where_of(conds)
  local sel = common.page_selector(info, "page")
  local by_parent, totals = {}, {}
  if info:selects("page") or info:selects("pageInfo.hasNextPage") or info:selects("pageInfo.endCursor")
    or info:selects("pageInfo.startCursor") then
    local select = type(spec.select) == "function" and spec.select(sel) or spec.select
    local p = { table.unpack(params) }
    p[#p + 1] = after
    p[#p + 1] = after + first + 1
    local rows = common.query("SELECT * FROM (SELECT " .. select .. ", " .. spec.parent .. "::text AS _parent, "
      .. "row_number() OVER (PARTITION BY " .. spec.parent .. " ORDER BY " .. table.concat(order, ", ")
      .. ") AS _rn FROM " .. spec.from .. where .. ") x WHERE _rn > $" .. (#p - 1) .. " AND _rn <= $" .. #p
      .. " ORDER BY _parent, _rn", table.unpack(p))
    local items = load(rows, sel)
    for i, row in ipairs(rows) do
      local list = by_parent[row._parent]
      if not list then
        list = {}
        by_parent[row._parent] = list
      end
      list[#list + 1] = items[i]
    end
  end
  if info:selects("pageInfo.totalItems") then
    for _, r in ipairs(common.query("SELECT " .. spec.parent .. "::text AS parent, count(*) AS n FROM " .. spec.from
      .. where .. " GROUP BY 1", table.unpack(params))) do
      totals[r.parent] = r.n
    end
  end
  local out = {}
  for _, id in ipairs(ids) do
    out[id] = connection.result(by_parent[id] or {}, first, after, totals[id] or 0, sort_fields, filter_fields)
  end
  return out
end

-- Items of one page share a batch: the first item whose child field is resolved loads
-- that field for all of them (one query), the others take their part from it.
function common.share_batch(items, key_of)
  local batch = { ids = {}, cache = {}, items = items }
  for _, item in ipairs(items) do
    item._batch = batch
    batch.ids[#batch.ids + 1] = key_of(item)
  end
  return items
end

-- batched(parent, key, load) -> load(ids)[parent id]; load runs once per page and field.
function common.batched(parent, key, id, load)
  local batch = parent._batch
  if not batch then
    batch = { ids = { id }, cache = {} }
  end
  local cached = batch.cache[key]
  if not cached then
    cached = load(batch.ids)
    batch.cache[key] = cached
  end
  return cached[id]
end

-- A nested connection field: resolve = common.nested_field(spec_fn, id_key, load).
-- Nested arguments can differ between fields of the same name (aliases), so the batch is
-- keyed by the response key.
function common.nested_field(spec_of, id_key, load)
  return function(parent, args, _, info)
    local id = parent[id_key]
    local key = info.response_key .. "@" .. info.parent_type
    local result = common.batched(parent, key, id, function(ids)
      return common.nested_connections(args, spec_of(), info, ids, load)
    end)
    return result or connection.result({}, connection.page_args(args))
  end
end

-- Group rows by a key column: {[key] = {row, ...}}.
function common.group(rows, key)
  local out = {}
  for _, r in ipairs(rows) do
    local k = r[key]
    local list = out[k]
    if not list then
      list = json.array()
      out[k] = list
    end
    list[#list + 1] = r
  end
  return out
end

-- A batched list field: resolve = common.list_field(id_key, fn(ids) -> {[id] = array}).
function common.list_field(id_key, load)
  return function(parent, _, _, info)
    local id = parent[id_key]
    return common.batched(parent, info.response_key .. "@" .. info.parent_type, id, load) or json.array()
  end
end

return common
