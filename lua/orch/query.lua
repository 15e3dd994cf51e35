-- List queries: a connection's filterBy, query (the search language, orch.search_query)
-- and sortBy turned into SQL for a list spec, the page and count queries built from them,
-- and run. The GraphQL lists use it (orch.api.graphql_schema); the Connection shape itself (page args,
-- pageInfo) is the GraphQL engine's (orch.graphql.connection), which knows no SQL.

local connection = require("orch.graphql.connection")
local db = require("orch.db")
local sq = require("orch.search_query")

local query = {}

-- plan(args, spec [, info]) -> plan | nil, message
-- spec = {
--   select = "trusted column list", from = "trusted FROM clause",
--   where = "fixed condition with $1..$k" (optional), params = {fixed values} (optional),
--   filters = {snake_key = column} for filterBy (see orch.search_query.to_sql),
--   search = {snake_key = column} for `query` (defaults to filters),
--   sorts = {camelName = "sql expression"}, default_sort = "ORDER BY body", tiebreak = "unique column",
--   mode = "exact" | "partial" (matching of words, default "exact" as core),
-- }
-- plan = {sql, count_sql, params, first, after, sort_fields, filter_fields}. Invalid sort or
-- filter fields are reported through info:add_error (an invalid filter empties the page).
-- clauses(args, spec, info [, params]) -> conds, params, order, sort_fields, filter_fields
--                                        | nil, message
-- The WHERE conditions (array of SQL) and ORDER BY terms of a connection's filterBy,
-- query and sortBy for a spec as plan describes it, appending values to params.
function query.clauses(args, spec, info, params)
  params = params or {}
  local conds = {}
  if spec.where then
    conds[#conds + 1] = "(" .. spec.where .. ")"
  end
  local filters = spec.filters or {}
  local filter_fields = sq.field_names(filters)
  if args.filterBy then
    local sql, err_or_params, invalid = sq.filter_by_to_sql(args.filterBy, filters, params, spec)
    if not sql then
      return nil, err_or_params
    end
    if #invalid > 0 then
      connection.report(info, "Invalid filter arguments (invalid_filters=" .. table.concat(invalid, ",")
        .. " valid_filter_keys=" .. table.concat(filter_fields, ",") .. ")")
      sql = "FALSE"
    end
    if sql ~= "TRUE" then
      conds[#conds + 1] = "(" .. sql .. ")"
    end
  end
  if args.query and args.query ~= "" then
    local sql, err = sq.to_sql(args.query, spec.search or filters, params, spec)
    if not sql then
      return nil, "Invalid query: " .. err
    end
    if sql ~= "TRUE" then
      conds[#conds + 1] = "(" .. sql .. ")"
    end
  end
  local order = {}
  local invalid_sorts = {}
  for _, s in ipairs(args.sortBy or {}) do
    local expr = spec.sorts and spec.sorts[s.field]
    if expr then
      order[#order + 1] = expr .. (s.order == "DESC" and " DESC" or " ASC")
    else
      invalid_sorts[#invalid_sorts + 1] = tostring(s.field)
    end
  end
  local sort_fields = connection.sort_names(spec.sorts)
  if #invalid_sorts > 0 then
    connection.report(info, "Invalid sort arguments (invalid_sorting=" .. table.concat(invalid_sorts, ",")
      .. " valid_sort_keys=" .. table.concat(sort_fields, ",") .. ")")
  end
  if #order == 0 and spec.default_sort then
    order[1] = spec.default_sort
  end
  if spec.tiebreak then
    order[#order + 1] = spec.tiebreak
  end
  return conds, params, order, sort_fields, filter_fields
end

function query.plan(args, spec, info)
  args = args or {}
  local first, after = connection.page_args(args)
  local fixed = {}
  for i, v in ipairs(spec.params or {}) do
    fixed[i] = v
  end
  local conds, params, order, sort_fields, filter_fields = query.clauses(args, spec, info, fixed)
  if not conds then
    return nil, params
  end
  local where = #conds > 0 and (" WHERE " .. table.concat(conds, " AND ")) or ""
  local count_sql = "SELECT count(*) AS total FROM " .. spec.from .. where
  params[#params + 1] = first + 1
  local limit = "$" .. #params
  params[#params + 1] = after
  local offset = "$" .. #params
  local sql = "SELECT " .. spec.select .. " FROM " .. spec.from .. where
    .. (#order > 0 and (" ORDER BY " .. table.concat(order, ", ")) or "") .. " LIMIT " .. limit .. " OFFSET " .. offset
  return {
    sql = sql,
    count_sql = count_sql,
    count_params = #params - 2,
    params = params,
    first = first,
    after = after,
    sort_fields = sort_fields,
    filter_fields = filter_fields,
  }
end

-- run(args, spec, info [, map]) -> connection table. Runs the plan with orch.db; the count
-- query only when pageInfo.totalItems is selected, the page query only when page is.
-- map(row) turns a row into the item the type's fields read (optional).
function query.run(args, spec, info, map)
  local plan, err = query.plan(args, spec, info)
  if not plan then
    error({ message = err }, 0)
  end
  local function wants(...)
    for _, path in ipairs({ ... }) do
      if not info or info:selects(path) then
        return true
      end
    end
    return false
  end
  local rows = {}
  if wants("page", "pageInfo.hasNextPage", "pageInfo.startCursor", "pageInfo.endCursor") then
    local r, qerr = db.query(plan.sql, table.unpack(plan.params, 1, #plan.params))
    if not r then
      error({ message = "database: " .. qerr.message }, 0)
    end
    rows = r
  end
  local total
  if wants("pageInfo.totalItems") then
    local r, qerr = db.query(plan.count_sql, table.unpack(plan.params, 1, plan.count_params))
    if not r then
      error({ message = "database: " .. qerr.message }, 0)
    end
    total = r[1] and r[1].total or 0
  end
  if map then
    for i, row in ipairs(rows) do
      rows[i] = map(row)
    end
  end
  return connection.result(rows, plan.first, plan.after, total, plan.sort_fields, plan.filter_fields)
end

return query
