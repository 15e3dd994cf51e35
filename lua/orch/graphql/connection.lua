-- Core's Connection pattern for list fields: offset paging with first/after,
-- sortBy [{field, order}], filterBy [{field, value}] and the `query` search language.
-- Result shape: {page = [...], pageInfo = {hasNextPage, hasPreviousPage, startCursor,
-- endCursor, totalItems, sortFields, filterFields}} (cursors are offsets, as in core).

local json = require("orch.json")
local sq = require("orch.search_query")

local connection = {}

-- Declarations to merge into a schema (see docs/graphql.md).
connection.ARGS = {
  first = { type = "Int", default = 10 },
  after = { type = "Int", default = 0 },
  sortBy = "[GraphqlSort!]",
  filterBy = "[GraphqlFilter!]",
  query = "String",
}
connection.INPUTS = {
  GraphqlSort = { fields = { field = "String!", order = { type = "SortOrder", default = "ASC" } } },
  GraphqlFilter = { fields = { field = "String!", value = "String!" } },
}
connection.ENUMS = { SortOrder = { "ASC", "DESC" } }
connection.TYPES = {
  PageInfo = {
    fields = {
      hasNextPage = "Boolean!",
      hasPreviousPage = "Boolean!",
      startCursor = "Int",
      endCursor = "Int",
      totalItems = "Int",
      sortFields = "[String!]!",
      filterFields = "[String!]!",
    },
  },
}

-- The Connection type of an item type: connection.type("ProcessType").
function connection.type(item_type)
  return { fields = { page = "[" .. item_type .. "!]!", pageInfo = "PageInfo!" } }
end

-- Copies the declarations above into a schema definition table (in place).
function connection.install(schema_def)
  local parts = { { "inputs", connection.INPUTS }, { "enums", connection.ENUMS }, { "types", connection.TYPES } }
  for _, part in ipairs(parts) do
    schema_def[part[1]] = schema_def[part[1]] or {}
    for k, v in pairs(part[2]) do
      if schema_def[part[1]][k] == nil then
        schema_def[part[1]][k] = v
      end
    end
  end
  return schema_def
end

-- first/after with core's defaults (10, 0); negatives count as 0.
function connection.page_args(args)
  local first = math.tointeger(args and args.first) or 10
  local after = math.tointeger(args and args.after) or 0
  return math.max(first, 0), math.max(after, 0)
end

-- result(items, first, after, total, sort_fields, filter_fields): items may hold one
-- more than `first` (that extra row only sets hasNextPage).
function connection.result(items, first, after, total, sort_fields, filter_fields)
  local page = json.array()
  for i = 1, math.min(#items, first) do
    page[i] = items[i]
  end
  local n = #page
  return {
    page = page,
    pageInfo = {
      hasNextPage = #items > first,
      hasPreviousPage = after > 0,
      startCursor = n > 0 and after or json.null,
      endCursor = after + n - 1,
      totalItems = total or 0,
      sortFields = json.array(sort_fields or {}),
      filterFields = json.array(filter_fields or {}),
    },
  }
end

local function sort_names(sorts)
  local names = {}
  for k in pairs(sorts or {}) do
    names[#names + 1] = k
  end
  table.sort(names)
  return names
end

local function report(info, message)
  if info and info.add_error then
    info:add_error(message)
  end
end

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
function connection.clauses(args, spec, info, params)
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
      report(info, "Invalid filter arguments (invalid_filters=" .. table.concat(invalid, ",") .. " valid_filter_keys="
        .. table.concat(filter_fields, ",") .. ")")
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
  local sort_fields = sort_names(spec.sorts)
  if #invalid_sorts > 0 then
    report(info, "Invalid sort arguments (invalid_sorting=" .. table.concat(invalid_sorts, ",") .. " valid_sort_keys="
      .. table.concat(sort_fields, ",") .. ")")
  end
  if #order == 0 and spec.default_sort then
    order[1] = spec.default_sort
  end
  if spec.tiebreak then
    order[#order + 1] = spec.tiebreak
  end
  return conds, params, order, sort_fields, filter_fields
end

function connection.plan(args, spec, info)
  args = args or {}
  local first, after = connection.page_args(args)
  local fixed = {}
  for i, v in ipairs(spec.params or {}) do
    fixed[i] = v
  end
  local conds, params, order, sort_fields, filter_fields = connection.clauses(args, spec, info, fixed)
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
function connection.run(args, spec, info, map)
  local db = require("orch.db")
  local plan, err = connection.plan(args, spec, info)
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

-- Filter value matching of core's filterBy for in-memory lists: "!" negates, "|" (and "-"
-- unless the field holds a date or an id) separate alternatives, case-insensitive.
local function matches(item_value, field, value)
  if value:sub(1, 1) == "!" then
    return not matches(item_value, field, value:sub(2))
  end
  local lower = field:lower()
  local pattern = (not lower:find("date", 1, true) and lower:sub(-2) ~= "id") and "[^|%-]+" or "[^|]+"
  local have = tostring(item_value == nil and "" or item_value):lower()
  for alt in value:gmatch(pattern) do
    if have == alt:lower() then
      return true
    end
  end
  return false
end

-- from_list(items, args [, opts]) -> connection table over a Lua list (small lists such as
-- customers). opts = {filters = {camelName = true | fn(item) -> value}, sorts = {camelName =
-- true | fn(item) -> key}, info}. Unknown filter fields empty the page (reported via opts.info).
function connection.from_list(items, args, opts)
  args, opts = args or {}, opts or {}
  local first, after = connection.page_args(args)
  local filters, sorts = opts.filters or {}, opts.sorts or {}
  local function getter(spec, name)
    return type(spec) == "function" and spec or function(item)
      return item[name]
    end
  end
  local selected = {}
  local invalid = false
  for _, item in ipairs(items) do
    local keep = true
    for _, f in ipairs(args.filterBy or {}) do
      local spec = filters[f.field]
      if not spec then
        invalid = true
        keep = false
      elseif keep and not matches(getter(spec, f.field)(item), f.field, f.value) then
        keep = false
      end
    end
    if keep then
      selected[#selected + 1] = item
    end
  end
  local filter_fields, sort_fields = sort_names(filters), sort_names(sorts)
  if invalid then
    report(opts.info, "Invalid filter arguments (valid_filter_keys=" .. table.concat(filter_fields, ",") .. ")")
    selected = {}
  end
  local keys = {}
  for _, s in ipairs(args.sortBy or {}) do
    if sorts[s.field] then
      keys[#keys + 1] = { get = getter(sorts[s.field], s.field), desc = s.order == "DESC" }
    else
      report(opts.info, "Invalid sort arguments (valid_sort_keys=" .. table.concat(sort_fields, ",") .. ")")
    end
  end
  if #keys > 0 then
    local index = {}
    for i, item in ipairs(selected) do
      index[item] = i
    end
    table.sort(selected, function(a, b)
      for _, k in ipairs(keys) do
        local x, y = k.get(a), k.get(b)
        if x ~= y then
          if x == nil then
            return not k.desc
          elseif y == nil then
            return k.desc
          end
          if type(x) ~= "number" or type(y) ~= "number" then
            x, y = tostring(x), tostring(y)
          end
          if x ~= y then
            if k.desc then
              return x > y
            end
            return x < y
          end
        end
      end
      return index[a] < index[b]
    end)
  end
  local window = {}
  for i = after + 1, math.min(#selected, after + first + 1) do
    window[#window + 1] = selected[i]
  end
  return connection.result(window, first, after, #selected, sort_fields, filter_fields)
end

return connection
