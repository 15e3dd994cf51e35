-- The `query` search language of the list pages (as core's utils/search_query.py):
--   terms AND-ed by whitespace, `|` between alternatives, a leading `-` negates,
--   `( )` groups, "phrases", `word*` prefixes, `key:value` and `key:(v1|v2)`.
-- parse() gives an AST; to_sql() compiles it to a WHERE fragment over a column
-- mapping with $n placeholders (values only ever travel as parameters);
-- to_tsquery() gives the PostgreSQL tsquery text core uses for subscriptions.
-- filter_by_to_sql() compiles GraphQL filterBy [{field, value}] over the same mapping.
--
-- AST nodes (core's names): {kind = "Query", exprs = {AndExpression...}},
-- {kind = "AndExpression", terms}, {kind = "Negation", term}, {kind = "Group", query},
-- {kind = "Word", value}, {kind = "PrefixWord", value}, {kind = "Phrase", words},
-- {kind = "KVTerm", key, value}, {kind = "ValueGroup", values}.

local sq = {}

sq.MAX_LENGTH = 10000
sq.MAX_DEPTH = 32
-- Words in one query: each becomes a condition over the searched text, so thousands of
-- them make one statement run for seconds (docs/input-limits.md).
sq.MAX_TERMS = 64

local SPECIAL = { ["|"] = "|", ["-"] = "-", ["*"] = "*", ["("] = "(", [")"] = ")", [":"] = ":", ['"'] = '"' }
-- Separate words but are not tokens themselves (core skips them).
local BOUNDARY = "[()|!:<>*%s\"]"

local function lex(source)
  local tokens, pos, n = {}, 1, #source
  while pos <= n do
    local c = source:sub(pos, pos)
    if SPECIAL[c] then
      tokens[#tokens + 1] = { kind = c, pos = pos }
      pos = pos + 1
    elseif c:match(BOUNDARY) then
      pos = pos + 1
    else
      local e = source:find(BOUNDARY, pos) or (n + 1)
      tokens[#tokens + 1] = { kind = "WORD", value = source:sub(pos, e - 1), pos = pos }
      pos = e
    end
  end
  tokens[#tokens + 1] = { kind = "END", pos = n + 1 }
  return tokens
end

local P = {}
P.__index = P

local NAMES = { END = "end of query", WORD = "a word" }

local function show(tok)
  return NAMES[tok.kind] or ('"' .. tok.kind .. '"')
end

function P:peek()
  return self.tokens[self.i]
end

function P:next()
  local t = self.tokens[self.i]
  self.i = self.i + 1
  return t
end

function P:fail(message, tok)
  error({ search_query = true, message = message .. " at position " .. (tok or self:peek()).pos }, 0)
end

function P:expect(kind)
  local t = self:next()
  if t.kind ~= kind then
    self:fail("Expected " .. (NAMES[kind] or ('"' .. kind .. '"')) .. ", got " .. show(t), t)
  end
  return t
end

function P:search_word()
  local w = self:expect("WORD")
  if self:peek().kind == "*" then
    self:next()
    return { kind = "PrefixWord", value = w.value }
  end
  return { kind = "Word", value = w.value }
end

function P:phrase()
  self:expect('"')
  local words = {}
  while self:peek().kind == "WORD" do
    words[#words + 1] = self:search_word()
  end
  self:expect('"')
  return { kind = "Phrase", words = words }
end

function P:value()
  local k = self:peek().kind
  if k == '"' then
    return self:phrase()
  elseif k == "WORD" then
    return self:search_word()
  end
  return nil
end

function P:value_group()
  self:expect("(")
  local first = self:value()
  if not first then
    self:fail("Expected a value, got " .. show(self:peek()))
  end
  local values = { first }
  while self:peek().kind ~= ")" do
    if self:peek().kind ~= "|" then
      self:fail('Expected "|" or ")", got ' .. show(self:peek()))
    end
    self:next()
    local v = self:value()
    if v then
      values[#values + 1] = v
    end
  end
  self:expect(")")
  return { kind = "ValueGroup", values = values }
end

function P:positive_term()
  local tok = self:peek()
  if tok.kind == "(" then
    self:next()
    self.depth = self.depth + 1
    if self.depth > sq.MAX_DEPTH then
      self:fail("Groups are nested too deeply", tok)
    end
    local q = self:query()
    self:expect(")")
    self.depth = self.depth - 1
    return { kind = "Group", query = q }
  end
  local v = self:value()
  if not v then
    return nil
  end
  if self:peek().kind == ":" then
    local colon = self:next()
    local kv
    if self:peek().kind == "(" then
      kv = self:value_group()
    else
      kv = self:value()
    end
    if not kv or (kv.kind == "Phrase" and #kv.words == 0) then
      self:fail("The value after a key can not be empty", colon)
    end
    return { kind = "KVTerm", key = v, value = kv }
  end
  return v
end

function P:term()
  if self:peek().kind == "-" then
    self:next()
    local t = self:positive_term()
    return t and { kind = "Negation", term = t } or nil
  end
  return self:positive_term()
end

function P:and_expression()
  local terms = {}
  while true do
    local t = self:term()
    if not t then
      break
    end
    terms[#terms + 1] = t
  end
  return #terms > 0 and { kind = "AndExpression", terms = terms } or nil
end

function P:query()
  local exprs = {}
  while true do
    local e = self:and_expression()
    if e then
      exprs[#exprs + 1] = e
    end
    local k = self:peek().kind
    if k == "END" or k == ")" then
      break
    end
    self:expect("|")
  end
  return { kind = "Query", exprs = exprs }
end

-- parse(text) -> AST | nil, message
function sq.parse(text)
  if type(text) ~= "string" then
    return nil, "query must be a string"
  end
  if #text > sq.MAX_LENGTH then
    return nil, "query is longer than " .. sq.MAX_LENGTH .. " characters"
  end
  local tokens = lex(text)
  local words = 0
  for _, t in ipairs(tokens) do
    if t.kind == "WORD" then
      words = words + 1
    end
  end
  if words > sq.MAX_TERMS then
    return nil, "query has more than " .. sq.MAX_TERMS .. " words"
  end
  local p = setmetatable({ tokens = tokens, i = 1, depth = 0 }, P)
  local ok, q = pcall(function()
    local q = p:query()
    p:expect("END")
    return q
  end)
  if not ok then
    if type(q) == "table" and q.search_query then
      return nil, q.message
    end
    return nil, tostring(q)
  end
  return q
end

-- "productBlockId" -> "product_block_id" (keys of the mappings are snake_case, as in core).
function sq.camel_to_snake(s)
  return (s:gsub("([%l%d])(%u)", "%1_%2"):gsub("(%u)(%u%l)", "%1_%2"):lower())
end

-- "product_block_id" -> "productBlockId"
function sq.snake_to_camel(s)
  return (s:gsub("_(%w)", string.upper))
end

-- SQL ----------------------------------------------------------------------------------

-- Column kinds: string (ILIKE), exact (ILIKE without implicit wildcards), uuid (text ILIKE),
-- uuid_exact (= only for a valid UUID), bool (true/false), int and timestamp (text ILIKE, as core
-- does when no range operator applies), or a function(node, param) -> SQL | nil.
local function column_spec(spec)
  if type(spec) == "string" then
    return { expr = spec, type = "string" }
  end
  return spec
end

local function phrase_pattern(node)
  local parts = {}
  for i, w in ipairs(node.words) do
    parts[i] = w.kind == "PrefixWord" and (w.value .. "%") or w.value
  end
  return table.concat(parts, " ")
end

local function like_pattern(node, kind, mode)
  if node.kind == "Phrase" then
    return phrase_pattern(node)
  elseif node.kind == "PrefixWord" then
    return (mode == "partial" and kind ~= "exact") and ("%" .. node.value .. "%") or (node.value .. "%")
  end
  return (mode == "partial" and kind ~= "exact") and ("%" .. node.value .. "%") or node.value
end

local function node_text(node)
  if node.kind == "Phrase" or node.kind == "ValueGroup" then
    local parts = {}
    for i, w in ipairs(node.words or node.values) do
      parts[i] = w.value or ""
    end
    return table.concat(parts, " ")
  end
  return node.value
end

local function as_bool(s)
  s = s and s:lower()
  if s == "true" then
    return true
  elseif s == "false" then
    return false
  end
  return nil
end

local function is_uuid(s)
  return type(s) == "string"
    and s:lower():match("^%x%x%x%x%x%x%x%x%-?%x%x%x%x%-?%x%x%x%x%-?%x%x%x%x%-?%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

-- One condition of a column for a Word, PrefixWord or Phrase node.
local function leaf(spec, node, param, mode)
  spec = column_spec(spec)
  if type(spec) == "function" then
    return spec(node, param)
  end
  local kind, expr = spec.type or "string", spec.expr
  if kind == "bool" then
    local words = node.kind == "Phrase" and node.words or { node }
    local conds = {}
    for _, w in ipairs(words) do
      local b = as_bool(w.value)
      if b ~= nil then
        conds[#conds + 1] = expr .. " = " .. param(b)
      end
    end
    if #conds == 0 then
      return "FALSE"
    end
    return #conds == 1 and conds[1] or ("(" .. table.concat(conds, " OR ") .. ")")
  elseif kind == "uuid_exact" then
    local v = node_text(node)
    if not is_uuid(v) then
      return "FALSE"
    end
    return expr .. " = " .. param(v:lower()) .. "::uuid"
  end
  local target = expr
  if kind == "uuid" or kind == "int" or kind == "timestamp" then
    target = "CAST(" .. expr .. " AS text)"
  elseif spec.nullable then
    target = "coalesce(" .. expr .. ", '')"
  end
  return target .. " ILIKE " .. param(like_pattern(node, kind, mode))
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

local function any_column(columns, node, param, mode)
  local conds = {}
  for _, k in ipairs(sorted_keys(columns)) do
    local c = leaf(columns[k], node, param, mode)
    if c and c ~= "FALSE" then
      conds[#conds + 1] = c
    end
  end
  if #conds == 0 then
    return "FALSE"
  end
  return "(" .. table.concat(conds, " OR ") .. ")"
end

local compile_query

local function lookup(columns, key)
  return columns[sq.camel_to_snake(key)] or columns[key]
end

local function compile_kv(node, columns, param, mode)
  local key = node.key
  if key.kind == "Phrase" and #key.words == 1 then
    key = key.words[1]
  end
  if key.kind ~= "Word" then
    return "TRUE" -- core ignores such terms
  end
  local spec = lookup(columns, key.value)
  if not spec then
    return "FALSE" -- unknown key: no results
  end
  local v = node.value
  if v.kind == "ValueGroup" then
    local conds = {}
    for i, item in ipairs(v.values) do
      conds[i] = leaf(spec, item, param, mode) or "FALSE"
    end
    return "(" .. table.concat(conds, " OR ") .. ")"
  end
  return leaf(spec, v, param, mode) or "FALSE"
end

local function compile_term(node, columns, param, mode)
  local k = node.kind
  if k == "KVTerm" then
    return compile_kv(node, columns, param, mode)
  elseif k == "Negation" then
    return "NOT (" .. compile_term(node.term, columns, param, mode) .. ")"
  elseif k == "Group" then
    return "(" .. compile_query(node.query, columns, param, mode) .. ")"
  end
  return any_column(columns, node, param, mode)
end

compile_query = function(node, columns, param, mode)
  local ors = {}
  for _, e in ipairs(node.exprs) do
    local ands = {}
    for i, t in ipairs(e.terms) do
      ands[i] = compile_term(t, columns, param, mode)
    end
    ors[#ors + 1] = #ands == 1 and ands[1] or ("(" .. table.concat(ands, " AND ") .. ")")
  end
  if #ors == 0 then
    return "TRUE"
  end
  return #ors == 1 and ors[1] or ("(" .. table.concat(ors, " OR ") .. ")")
end

-- Appends a value to params and gives its placeholder; a value repeated within one
-- compilation (a word tried on every column) reuses its placeholder.
local function param_fn(params)
  local seen = {}
  return function(v)
    local key = type(v) .. ":" .. tostring(v)
    if not seen[key] then
      params[#params + 1] = v
      seen[key] = "$" .. #params
    end
    return seen[key]
  end
end

-- to_sql(query, columns [, params [, opts]]) -> sql, params | nil, message
-- query: text or AST; columns: {snake_key = "sql expr" | {expr, type, nullable} | function};
-- params: array the values are appended to (placeholders continue its numbering);
-- opts.mode: "exact" (default, as core) or "partial" (words match anywhere).
function sq.to_sql(query, columns, params, opts)
  params = params or {}
  local ast = query
  if type(query) ~= "table" then
    local err
    ast, err = sq.parse(query)
    if not ast then
      return nil, err
    end
  end
  return compile_query(ast, columns, param_fn(params), (opts and opts.mode) or "exact"), params
end

-- filterBy value syntax (core db/filters/filters.py): a leading "!" negates; "-" and "|"
-- separate alternatives, but only "|" for fields containing "date" or ending in "id".
local function filter_node(field, value)
  if value:sub(1, 1) == "!" then
    local inner, err = filter_node(field, value:sub(2))
    if not inner then
      return nil, err
    end
    return { kind = "Negation", term = inner }
  end
  local lower = field:lower()
  local split_dash = not lower:find("date", 1, true) and lower:sub(-2) ~= "id"
  local parts = {}
  for part in (value .. "|"):gmatch(split_dash and "([^|%-]*)[|%-]" or "([^|]*)|") do
    parts[#parts + 1] = part
  end
  local key = { kind = "Word", value = field }
  if #parts > 1 then
    local values = {}
    for _, p in ipairs(parts) do
      if p ~= "" then
        values[#values + 1] = { kind = "Word", value = p }
      end
    end
    if #values == 0 then
      return nil, "Invalid filter arguments"
    end
    return { kind = "KVTerm", key = key, value = { kind = "ValueGroup", values = values } }
  end
  return { kind = "KVTerm", key = key, value = { kind = "Word", value = value } }
end

-- filter_by_to_sql(filter_by, columns [, params [, opts]]) -> sql, params, invalid_fields
-- filter_by: array of {field, value}. Filters on unknown fields are left out and listed
-- in invalid_fields (the caller reports them); a malformed value gives nil, message.
function sq.filter_by_to_sql(filter_by, columns, params, opts)
  params = params or {}
  local param, mode = param_fn(params), (opts and opts.mode) or "exact"
  local conds, invalid = {}, {}
  for _, f in ipairs(filter_by or {}) do
    local field, value = f.field, f.value
    if type(field) ~= "string" or type(value) ~= "string" or not lookup(columns, field) then
      invalid[#invalid + 1] = tostring(field)
    else
      local node, err = filter_node(field, value)
      if not node then
        return nil, err
      end
      conds[#conds + 1] = compile_term(node, columns, param, mode)
    end
  end
  if #conds == 0 then
    return "TRUE", params, invalid
  end
  return table.concat(conds, " AND "), params, invalid
end

-- camelCase names of a mapping's keys, sorted (pageInfo.filterFields).
function sq.field_names(columns)
  local names = {}
  for _, k in ipairs(sorted_keys(columns)) do
    names[#names + 1] = sq.snake_to_camel(k)
  end
  table.sort(names)
  return names
end

-- tsquery --------------------------------------------------------------------------------

local function ts_word(node)
  local text = node.value:gsub("'", '"')
  local parts = {}
  for part in text:gmatch("[^%-_@#%$%%%^&]+") do
    if part:match("%S") then
      parts[#parts + 1] = part:match("^%s*(.-)%s*$")
    end
  end
  if #parts == 0 then
    return nil
  end
  local s = table.concat(parts, " <-> ")
  if node.kind == "PrefixWord" then
    s = s .. ":*"
  end
  return #parts > 1 and ("(" .. s .. ")") or s
end

local ts_query

local function joined(items, sep)
  local out = {}
  for _, s in ipairs(items) do
    if s and s ~= "" then
      out[#out + 1] = s
    end
  end
  return table.concat(out, sep)
end

local function ts_term(node)
  local k = node.kind
  if k == "Word" or k == "PrefixWord" then
    return ts_word(node)
  elseif k == "Phrase" then
    local items = {}
    for i, w in ipairs(node.words) do
      items[i] = ts_word(w) or ""
    end
    return joined(items, " <-> ")
  elseif k == "KVTerm" then
    local key = node.key
    if key.kind == "Word" then
      key = { kind = "Word", value = sq.camel_to_snake(key.value) }
    end
    local v
    if node.value.kind == "ValueGroup" then
      local items = {}
      for i, w in ipairs(node.value.values) do
        items[i] = ts_term(w) or ""
      end
      v = "(" .. joined(items, " | ") .. ")"
    else
      v = ts_term(node.value)
    end
    return joined({ ts_term(key) or "", v or "" }, " <-> ")
  elseif k == "Group" then
    local inner = ts_query(node.query)
    return inner ~= "" and ("(" .. inner .. ")") or ""
  elseif k == "Negation" then
    local inner = ts_term(node.term)
    if not inner or inner == "" then
      return ""
    end
    if node.term.kind == "Phrase" or node.term.kind == "KVTerm" then
      inner = "(" .. inner .. ")"
    end
    return "!" .. inner
  end
  return ""
end

ts_query = function(node)
  local ors = {}
  for _, e in ipairs(node.exprs) do
    local ands = {}
    for i, t in ipairs(e.terms) do
      ands[i] = ts_term(t) or ""
    end
    ors[#ors + 1] = joined(ands, " & ")
  end
  return joined(ors, " | ")
end

-- to_tsquery(query) -> tsquery text (pass it as a parameter to to_tsquery()) | nil, message
function sq.to_tsquery(query)
  local ast = query
  if type(query) ~= "table" then
    local err
    ast, err = sq.parse(query)
    if not ast then
      return nil, err
    end
  end
  return ts_query(ast)
end

return sq
