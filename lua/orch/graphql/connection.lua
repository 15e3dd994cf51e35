-- Core's Connection pattern for list fields: offset paging with first/after,
-- sortBy [{field, order}], filterBy [{field, value}] and the `query` search language.
-- Result shape: {page = [...], pageInfo = {hasNextPage, hasPreviousPage, startCursor,
-- endCursor, totalItems, sortFields, filterFields}} (cursors are offsets, as in core).

local json = require("orch.json")

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

-- The sortFields of pageInfo: the names of a spec's sorts, sorted.
function connection.sort_names(sorts)
  local names = {}
  for k in pairs(sorts or {}) do
    names[#names + 1] = k
  end
  table.sort(names)
  return names
end

-- An error of the field being resolved (invalid filter or sort arguments), if info can take one.
function connection.report(info, message)
  if info and info.add_error then
    info:add_error(message)
  end
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
  local filter_fields, sort_fields = connection.sort_names(filters), connection.sort_names(sorts)
  if invalid then
    connection.report(opts.info,
      "Invalid filter arguments (valid_filter_keys=" .. table.concat(filter_fields, ",") .. ")")
    selected = {}
  end
  local keys = {}
  for _, s in ipairs(args.sortBy or {}) do
    if sorts[s.field] then
      keys[#keys + 1] = { get = getter(sorts[s.field], s.field), desc = s.order == "DESC" }
    else
      connection.report(opts.info, "Invalid sort arguments (valid_sort_keys=" .. table.concat(sort_fields, ",") .. ")")
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
