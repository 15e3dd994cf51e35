-- GraphQL executor: runs one operation of a parsed document against a schema
-- (orch.graphql.schema) and returns the response table {data = ..., errors = [...]}.
-- Field errors become null with an entry in `errors` (message, locations, path);
-- a null in a non-null position propagates to the nearest nullable parent.
-- Request errors (unknown operation, bad variables, invalid document) give
-- {errors = [...]} without data. Nothing raised by a resolver escapes.

local json = require("orch.json")
local schema_mod = require("orch.graphql.schema")

local null = json.null
local named, type_string = schema_mod.named, schema_mod.type_string
local is_list, is_null = schema_mod.is_list, schema_mod.is_null

local executor = {}

-- max_field_nodes: selections collected while running (every object of every list counts);
-- max_root_fields, max_aliases, max_fields: of the operation as written, fragments counted
-- wherever they are spread, checked before any resolver runs (a document of 500 aliased
-- connections is refused at once); max_answer_bytes: about the size of the JSON answer, checked
-- while it is built (the answer is encoded afterwards in C, which no budget interrupts).
executor.limits = {
  max_field_nodes = 100000,
  max_errors = 100,
  max_root_fields = 20,
  max_aliases = 100,
  max_fields = 5000,
  max_answer_bytes = 8 * 1024 * 1024,
}

local ABSENT = setmetatable({}, { __name = "absent" })
local PROPAGATE = setmetatable({}, { __name = "null propagation" })

local function loc_list(node)
  if node and node.loc then
    return json.array({ { line = node.loc.line, column = node.loc.column } })
  end
  return json.array()
end

-- Request-level failure: aborts the whole execution.
local function fatal(message, node)
  error({ fatal = true, message = message, locations = loc_list(node) }, 0)
end

-- Account for `bytes` more of the answer; past max_answer_bytes the whole request fails.
local function spend(ex, bytes, node)
  ex.answer_bytes = ex.answer_bytes + bytes
  if ex.answer_bytes > executor.limits.max_answer_bytes then
    fatal("The answer would be larger than " .. executor.limits.max_answer_bytes
      .. " bytes; select fewer fields or ask for smaller pages.", node)
  end
end

-- About the JSON size of a leaf value.
local function leaf_size(v)
  local tv = type(v)
  if tv == "string" then
    return #v + 2
  elseif tv == "table" then
    local text = json.try_encode(v)
    return text and #text or 16
  end
  return 8
end

local function path_copy(path)
  local p = json.array()
  for i = 1, #path do
    p[i] = path[i]
  end
  return p
end

local function add_error(ex, message, node, path, extensions)
  if #ex.errors >= executor.limits.max_errors then
    return
  end
  ex.errors[#ex.errors + 1] = {
    message = message,
    locations = loc_list(node),
    path = path and path_copy(path) or nil,
    extensions = extensions,
  }
end

-- Message and extensions of anything a resolver raised.
local function error_parts(e)
  if type(e) == "table" then
    if e.message ~= nil then
      return tostring(e.message), e.extensions
    end
    return "Unexpected error: " .. tostring(e)
  end
  return tostring(e)
end

-- Values ---------------------------------------------------------------------------

-- Lua value of a literal; variables are substituted (ABSENT when not provided).
local function literal(ex, node)
  local k = node.kind
  if k == "Variable" then
    local v = ex.variables[node.name]
    if v == nil then
      return ABSENT
    end
    return v
  elseif k == "IntValue" then
    return math.tointeger(tonumber(node.value)) or tonumber(node.value)
  elseif k == "FloatValue" then
    return tonumber(node.value) + 0.0
  elseif k == "StringValue" or k == "EnumValue" or k == "BooleanValue" then
    return node.value
  elseif k == "NullValue" then
    return null
  elseif k == "ListValue" then
    local out = json.array()
    for i, v in ipairs(node.values) do
      local x = literal(ex, v)
      out[i] = x == ABSENT and null or x
    end
    return out
  elseif k == "ObjectValue" then
    local out = {}
    for _, f in ipairs(node.fields) do
      local x = literal(ex, f.value)
      if x ~= ABSENT then
        out[f.name] = x
      end
    end
    return out
  end
  return null
end

-- Arguments of a field (or directive) coerced to the declared types. Undeclared
-- arguments pass through when the field declares none. Top-level nulls become nil.
local function coerce_args(ex, arg_nodes, decl, where)
  local args = {}
  local given = {}
  for _, a in ipairs(arg_nodes) do
    if given[a.name] then
      error({ message = 'There can be only one argument named "' .. a.name .. '".', node = a }, 0)
    end
    given[a.name] = a
  end
  if decl == nil then
    for name, a in pairs(given) do
      local v = literal(ex, a.value)
      if v ~= ABSENT and v ~= null then
        args[name] = v
      end
    end
    return args
  end
  for name, a in pairs(given) do
    if not decl[name] then
      error({ message = 'Unknown argument "' .. name .. '" on ' .. where .. ".", node = a }, 0)
    end
  end
  for name, d in pairs(decl) do
    local a = given[name]
    local v = ABSENT
    if a then
      v = literal(ex, a.value)
    end
    if v == ABSENT then
      v = d.default
    end
    if v == nil and d.type and d.type.kind == "NonNullType" then
      error({
        message = 'Argument "' .. name .. '" of required type "' .. type_string(d.type) .. '" was not provided on '
          .. where .. ".",
        node = a,
      }, 0)
    end
    if v ~= nil then
      local cv, err = schema_mod.coerce_input(ex.schema, v, d.type)
      if err then
        error({ message = 'Argument "' .. name .. '" has invalid value: ' .. err, node = a }, 0)
      end
      if cv ~= null then
        args[name] = cv
      end
    end
  end
  return args
end

local DIRECTIVE_ARGS = { ["if"] = { type = schema_mod.type_ref("Boolean!") } }

-- @skip / @include; other directives are rejected.
local function included(ex, node)
  for _, d in ipairs(node.directives or {}) do
    if d.name ~= "skip" and d.name ~= "include" then
      fatal('Unknown directive "@' .. d.name .. '".', d)
    end
    local ok, args = pcall(coerce_args, ex, d.arguments, DIRECTIVE_ARGS, 'directive "@' .. d.name .. '"')
    if not ok then
      fatal(args.message or tostring(args), args.node or d)
    end
    if (d.name == "skip") == (args["if"] == true) then
      return false
    end
  end
  return true
end

-- Selections -----------------------------------------------------------------------

local function fragment_applies(ex, type_name, condition)
  if condition == nil or type_name == nil or condition == type_name then
    return true
  end
  local s = ex.schema
  local t = s.types[type_name]
  if t and t.interfaces[condition] then
    return true
  end
  local impl = s.implementations[condition]
  if impl and impl[type_name] then
    return true
  end
  -- Only skip when both sides are known to be unrelated object types.
  local ct = s.types[condition]
  if t and ct then
    return false
  end
  return true
end

-- Groups the fields of a selection set by response key, in document order.
local function collect_fields(ex, type_name, selection_set, out, visited)
  for _, sel in ipairs(selection_set.selections) do
    ex.budget = ex.budget - 1
    if ex.budget < 0 then
      fatal("Query is too complex.", sel)
    end
    if included(ex, sel) then
      if sel.kind == "Field" then
        local key = sel.alias or sel.name
        local group = out.by_key[key]
        if not group then
          group = {}
          out.by_key[key] = group
          out.keys[#out.keys + 1] = key
        end
        group[#group + 1] = sel
      elseif sel.kind == "FragmentSpread" then
        if not visited[sel.name] then
          visited[sel.name] = true
          local frag = ex.fragments[sel.name]
          if frag and fragment_applies(ex, type_name, frag.type_condition) then
            collect_fields(ex, type_name, frag.selection_set, out, visited)
          end
        end
      elseif fragment_applies(ex, type_name, sel.type_condition) then
        collect_fields(ex, type_name, sel.selection_set, out, visited)
      end
    end
  end
  return out
end

-- Cached per (field nodes, type): every item of a list shares the same nodes.
local function sub_fields(ex, type_name, nodes)
  local per_nodes = ex.field_cache[nodes]
  if not per_nodes then
    per_nodes = {}
    ex.field_cache[nodes] = per_nodes
  end
  local cache_key = type_name or ex.field_cache
  if per_nodes[cache_key] then
    return per_nodes[cache_key]
  end
  local out = { keys = {}, by_key = {} }
  per_nodes[cache_key] = out
  for _, n in ipairs(nodes) do
    if n.selection_set then
      collect_fields(ex, type_name, n.selection_set, out, {})
    end
  end
  return out
end

-- Resolver info --------------------------------------------------------------------

local Info = {}
Info.__index = Info

local function selection_tree(ex, selection_set, tree, visited, depth)
  if depth > 64 then
    return tree
  end
  for _, sel in ipairs(selection_set.selections) do
    if included(ex, sel) then
      if sel.kind == "Field" then
        if sel.selection_set then
          local sub = type(tree[sel.name]) == "table" and tree[sel.name] or {}
          tree[sel.name] = selection_tree(ex, sel.selection_set, sub, {}, depth + 1)
        elseif tree[sel.name] == nil then
          tree[sel.name] = true
        end
      elseif sel.kind == "FragmentSpread" then
        local frag = ex.fragments[sel.name]
        if frag and not visited[sel.name] then
          visited[sel.name] = true
          selection_tree(ex, frag.selection_set, tree, visited, depth + 1)
        end
      else
        selection_tree(ex, sel.selection_set, tree, visited, depth + 1)
      end
    end
  end
  return tree
end

-- Subfields selected under this field, by field name (aliases and fragments merged,
-- type conditions ignored): {name = true | {sub tree}}.
function Info:selections()
  if not self._tree then
    local tree = {}
    for _, n in ipairs(self.nodes) do
      if n.selection_set then
        selection_tree(self._ex, n.selection_set, tree, {}, 0)
      end
    end
    self._tree = tree
  end
  return self._tree
end

-- info:selects("page.customer.fullname") -> whether that subfield is selected.
function Info:selects(dotted)
  local t = self:selections()
  for part in tostring(dotted):gmatch("[^.]+") do
    if type(t) ~= "table" then
      return false
    end
    t = t[part]
    if t == nil then
      return false
    end
  end
  return true
end

-- A non-fatal error at this field (the field keeps its value).
function Info:add_error(message, extensions)
  add_error(self._ex, tostring(message), self.nodes[1], self.path, extensions)
end

-- Execution ------------------------------------------------------------------------

local execute_fields

local function object_type_of(ex, t, value)
  local name = type(value) == "table" and rawget(value, "__typename")
  if type(name) == "string" then
    return name
  end
  local declared = t and named(t)
  local dt = declared and ex.schema.types[declared]
  if dt and dt.resolve_type then
    return dt.resolve_type(value)
  end
  return declared
end

local function complete(ex, t, nodes, path, value, field_desc)
  if t and t.kind == "NonNullType" then
    local r = complete(ex, t.type, nodes, path, value, field_desc)
    if r == null then
      add_error(ex, "Cannot return null for non-nullable field " .. field_desc .. ".", nodes[1], path)
      error(PROPAGATE, 0)
    end
    return r
  end
  if is_null(value) then
    return null
  end
  local has_selection = nodes[1].selection_set ~= nil
  if (t and t.kind == "ListType") or (not t and is_list(value) and has_selection) then
    if type(value) ~= "table" then
      error({ message = "Expected a list for field " .. field_desc .. ", got " .. type(value) .. "." }, 0)
    end
    local inner = t and t.type
    local out = json.array()
    for i = 1, #value do
      path[#path + 1] = i - 1
      local ok, r = pcall(complete, ex, inner, nodes, path, value[i], field_desc)
      if not ok then
        if type(r) == "table" and r.fatal then
          error(r, 0)
        end
        if r ~= PROPAGATE then
          local message, ext = error_parts(r)
          add_error(ex, message, nodes[1], path, ext)
        end
        if inner and inner.kind == "NonNullType" then
          path[#path] = nil
          error(PROPAGATE, 0)
        end
        r = null
      end
      out[i] = r
      path[#path] = nil
    end
    return out
  end
  local tname = t and t.name
  local s = ex.schema
  if tname and (s.scalars[tname] or s.enums[tname]) then
    if has_selection then
      error({ message = 'Field "' .. field_desc .. '" must not have a selection since type "' .. tname
        .. '" has no subfields.' }, 0)
    end
    if tname == "JSON" or not schema_mod.BUILTIN_SCALARS[tname] and not s.enums[tname] then
      spend(ex, leaf_size(value), nodes[1])
      return value
    end
    spend(ex, leaf_size(value), nodes[1])
    if (tname == "String" or tname == "ID") and (type(value) == "number" or type(value) == "boolean") then
      return tostring(value)
    end
    local v, err = schema_mod.coerce_input(s, value, t)
    if err then
      error({ message = err }, 0)
    end
    if tname == "Float" then
      return v + 0.0
    end
    return v
  end
  if not has_selection then
    if tname and s.types[tname] then
      local message = 'Field "' .. field_desc .. '" of type "' .. tname .. '" must have a selection of subfields.'
      error({ message = message }, 0)
    end
    spend(ex, leaf_size(value), nodes[1])
    return value -- an undeclared leaf: JSON as it is
  end
  if type(value) ~= "table" then
    error({ message = "Expected an object for field " .. field_desc .. ", got " .. type(value) .. "." }, 0)
  end
  local runtime = object_type_of(ex, t, value)
  return execute_fields(ex, runtime, value, sub_fields(ex, runtime, nodes), path, false)
end

local function resolve_field(ex, type_name, parent, nodes, path, is_root)
  local node = nodes[1]
  local name = node.name
  if name == "__typename" then
    return type_name or null
  end
  local t = type_name and ex.schema.types[type_name]
  local fdef = t and t.fields and t.fields[name]
  if t and t.fields and not fdef then
    error({ message = 'Cannot query field "' .. name .. '" on type "' .. type_name .. '".' }, 0)
  end
  fdef = fdef or {}
  local desc = fdef.desc or ((type_name or "?") .. "." .. name)
  local args
  if #node.arguments > 0 or fdef.args then
    args = coerce_args(ex, node.arguments, fdef.args, 'field "' .. desc .. '"')
  end
  -- Authorization of each root field (ctx.authorize_root(field, operation, args) -> nil | reason).
  if is_root and type(ex.ctx) == "table" and ex.ctx.authorize_root then
    local why = ex.ctx.authorize_root(name, ex.operation and ex.operation.operation or "query", args)
    if why then
      error({ message = why, extensions = { error_type = "not_authorized" } }, 0)
    end
  end
  local value
  if fdef.resolve then
    args = args or {}
    local info = setmetatable({
      _ex = ex,
      field_name = name,
      response_key = node.alias or name,
      parent_type = type_name,
      return_type = fdef.type and type_string(fdef.type) or nil,
      path = path_copy(path),
      nodes = nodes,
      variables = ex.variables,
      operation = ex.operation,
      schema = ex.schema,
    }, Info)
    if is_root then
      value = fdef.resolve(args, ex.ctx, info)
    else
      value = fdef.resolve(parent, args, ex.ctx, info)
    end
  elseif type(parent) == "table" then
    value = parent[fdef.from or name]
  end
  return complete(ex, fdef.type, nodes, path, value, desc)
end

local function field_type(ex, type_name, name)
  local t = type_name and ex.schema.types[type_name]
  local f = t and t.fields and t.fields[name]
  return f and f.type
end

execute_fields = function(ex, type_name, parent, fields, path, is_root)
  local out = {}
  for _, key in ipairs(fields.keys) do
    local nodes = fields.by_key[key]
    path[#path + 1] = key
    local ok, r = pcall(resolve_field, ex, type_name, parent, nodes, path, is_root)
    if not ok then
      if type(r) == "table" and r.fatal then
        error(r, 0)
      end
      if r ~= PROPAGATE then
        local message, ext = error_parts(r)
        add_error(ex, message, r and type(r) == "table" and r.node or nodes[1], path, ext)
      end
      local ft = field_type(ex, type_name, nodes[1].name)
      if ft and ft.kind == "NonNullType" then
        path[#path] = nil
        error(PROPAGATE, 0)
      end
      r = null
    end
    spend(ex, #key + 4, nodes[1])
    out[key] = r
    path[#path] = nil
  end
  return out
end

-- Validation -----------------------------------------------------------------------

local function walk_values(node, fn)
  if node.kind == "Variable" then
    fn(node)
  elseif node.kind == "ListValue" then
    for _, v in ipairs(node.values) do
      walk_values(v, fn)
    end
  elseif node.kind == "ObjectValue" then
    for _, f in ipairs(node.fields) do
      walk_values(f.value, fn)
    end
  end
end

-- Variables used by a selection set, following fragment spreads once each.
local function variable_uses(ex, selection_set, fn, seen, depth)
  if depth > 128 then
    return
  end
  for _, sel in ipairs(selection_set.selections) do
    for _, d in ipairs(sel.directives or {}) do
      for _, a in ipairs(d.arguments) do
        walk_values(a.value, fn)
      end
    end
    if sel.kind == "Field" then
      for _, a in ipairs(sel.arguments) do
        walk_values(a.value, fn)
      end
      if sel.selection_set then
        variable_uses(ex, sel.selection_set, fn, seen, depth + 1)
      end
    elseif sel.kind == "FragmentSpread" then
      local frag = ex.fragments[sel.name]
      if not frag then
        fatal('Unknown fragment "' .. sel.name .. '".', sel)
      end
      if not seen[sel.name] then
        seen[sel.name] = true
        variable_uses(ex, frag.selection_set, fn, seen, depth + 1)
      end
    else
      variable_uses(ex, sel.selection_set, fn, seen, depth + 1)
    end
  end
end

-- The operation as written, fragments counted wherever they are spread: too many root fields,
-- aliases or fields in all is a request error before anything runs. The walk stops at the
-- first limit it passes, so its work is bounded by the limits (fragment cycles are refused
-- before).
local function check_complexity(ex, op)
  local L = executor.limits
  local fields, roots, aliases = 0, 0, 0
  local function walk(selection_set, root, depth)
    if depth > 128 then
      fatal("Query is nested too deeply.", selection_set)
    end
    for _, sel in ipairs(selection_set.selections) do
      if sel.kind == "Field" then
        fields = fields + 1
        if fields > L.max_fields then
          fatal("Query has more than " .. L.max_fields .. " fields (a fragment counts wherever it is spread).", sel)
        end
        if root then
          roots = roots + 1
          if roots > L.max_root_fields then
            fatal("Query has more than " .. L.max_root_fields
              .. " root fields (aliases included); send several requests instead.", sel)
          end
        end
        if sel.alias then
          aliases = aliases + 1
          if aliases > L.max_aliases then
            fatal("Query has more than " .. L.max_aliases .. " aliases.", sel)
          end
        end
        if sel.selection_set then
          walk(sel.selection_set, false, depth + 1)
        end
      elseif sel.kind == "FragmentSpread" then
        local frag = ex.fragments[sel.name]
        if frag then
          walk(frag.selection_set, root, depth + 1)
        end
      else
        walk(sel.selection_set, root, depth + 1)
      end
    end
  end
  walk(op.selection_set, true, 0)
end

local function spreads_of(selection_set, out)
  for _, sel in ipairs(selection_set.selections) do
    if sel.kind == "FragmentSpread" then
      out[#out + 1] = sel
    elseif sel.selection_set then
      spreads_of(sel.selection_set, out)
    end
  end
  return out
end

local function check_fragment_cycles(ex)
  local state = {} -- nil: unvisited, 1: on the stack, 2: done
  local function visit(name, depth)
    state[name] = 1
    for _, spread in ipairs(spreads_of(ex.fragments[name].selection_set, {})) do
      local s = state[spread.name]
      if s == 1 then
        fatal('Cannot spread fragment "' .. spread.name .. '" within itself.', spread)
      elseif s == nil and ex.fragments[spread.name] then
        if depth > 64 then
          fatal("Fragments are nested too deeply.", spread)
        end
        visit(spread.name, depth + 1)
      end
    end
    state[name] = 2
  end
  for name in pairs(ex.fragments) do
    if state[name] == nil then
      visit(name, 0)
    end
  end
end

local function select_operation(ex, document, operation_name)
  local ops, names = {}, {}
  for _, def in ipairs(document.definitions) do
    if def.kind == "OperationDefinition" then
      if def.name then
        if names[def.name] then
          fatal('There can be only one operation named "' .. def.name .. '".', def)
        end
        names[def.name] = def
      end
      ops[#ops + 1] = def
    else
      if ex.fragments[def.name] then
        fatal('There can be only one fragment named "' .. def.name .. '".', def)
      end
      ex.fragments[def.name] = def
    end
  end
  if #ops == 0 then
    fatal("Document contains no operation.", document)
  end
  if operation_name ~= nil then
    local op = names[operation_name]
    if not op then
      fatal('Unknown operation named "' .. tostring(operation_name) .. '".')
    end
    return op
  end
  if #ops > 1 then
    fatal("Must provide operation name if query contains multiple operations.")
  end
  return ops[1]
end

local function coerce_variables(ex, op, given)
  local out = {}
  local defined = {}
  for _, def in ipairs(op.variable_definitions) do
    local name = def.variable
    if defined[name] then
      fatal('There can be only one variable named "$' .. name .. '".', def)
    end
    defined[name] = true
    local v = given[name]
    local tstr = type_string(def.type)
    if v == nil and def.default_value then
      local lit = literal({ variables = {} }, def.default_value)
      local cv, err = schema_mod.coerce_input(ex.schema, lit, def.type)
      if err then
        fatal('Variable "$' .. name .. '" has invalid default value: ' .. err, def)
      end
      out[name] = cv
    elseif v == nil then
      if def.type.kind == "NonNullType" then
        fatal('Variable "$' .. name .. '" of required type "' .. tstr .. '" was not provided.', def)
      end
    else
      local cv, err = schema_mod.coerce_input(ex.schema, v, def.type)
      if err then
        fatal('Variable "$' .. name .. '" got invalid value ' .. (v == null and "null" or "") .. "; " .. err, def)
      end
      out[name] = cv
    end
  end
  local opname = op.name and (' by operation "' .. op.name .. '"') or ""
  variable_uses(ex, op.selection_set, function(var)
    if not defined[var.name] then
      fatal('Variable "$' .. var.name .. '" is not defined' .. opname .. ".", var)
    end
  end, {}, 0)
  return out
end

-- execute(schema, document, variables, operation_name, ctx) -> response table
function executor.execute(schema_def, document, variables, operation_name, ctx)
  local ex = {
    fragments = {},
    errors = {},
    field_cache = setmetatable({}, { __mode = "k" }),
    ctx = ctx,
    budget = executor.limits.max_field_nodes,
    answer_bytes = 0,
  }
  local ok, result = pcall(function()
    ex.schema = schema_mod.compile(schema_def)
    local op = select_operation(ex, document, operation_name)
    ex.operation = op
    check_fragment_cycles(ex)
    ex.variables = coerce_variables(ex, op, variables or {})
    check_complexity(ex, op)
    local root
    if op.operation == "query" then
      root = ex.schema.query
    elseif op.operation == "mutation" then
      root = ex.schema.mutation
      if not root then
        fatal("Schema is not configured for mutations.", op)
      end
    else
      fatal("Subscriptions are not supported; use the WebSocket events.", op)
    end
    if not included(ex, op) then
      return {}
    end
    local fields = collect_fields(ex, root, op.selection_set, { keys = {}, by_key = {} }, {})
    local pok, data = pcall(execute_fields, ex, root, nil, fields, {}, true)
    if not pok then
      if data == PROPAGATE then
        return null
      end
      error(data, 0)
    end
    return data
  end)
  if not ok then
    if type(result) == "table" and result.fatal then
      return { errors = json.array({ { message = result.message, locations = result.locations } }) }
    end
    return { errors = json.array({ { message = "Internal error: " .. tostring(result), locations = json.array() } }) }
  end
  local response = { data = result }
  if #ex.errors > 0 then
    response.errors = json.array(ex.errors)
  end
  return response
end

return executor
