-- GraphQL parser for executable documents (operations and fragments; no type
-- system definitions). parse() never raises: it returns the AST or nil and a
-- GraphQL error {message, locations = {{line, column}}}. Work is bounded by the
-- document size, the token count and the nesting depth.
--
-- AST (every node has kind and loc = {line, column}):
--   Document {definitions}
--   OperationDefinition {operation = "query"|"mutation"|"subscription", name?,
--                        variable_definitions, directives, selection_set}
--   VariableDefinition {variable = name, type, default_value?, directives}
--   FragmentDefinition {name, type_condition, directives, selection_set}
--   SelectionSet {selections}
--   Field {alias?, name, arguments, directives, selection_set?}
--   FragmentSpread {name, directives}   InlineFragment {type_condition?, directives, selection_set}
--   Argument / ObjectField {name, value}   Directive {name, arguments}
--   Values: Variable {name}, IntValue / FloatValue {value = source text},
--           StringValue {value, block}, BooleanValue {value}, NullValue, EnumValue {value},
--           ListValue {values}, ObjectValue {fields}
--   Types: NamedType {name}, ListType {type}, NonNullType {type}

local lexer = require("orch.graphql.lexer")

local parser = {}

parser.limits = { max_bytes = 262144, max_tokens = 50000, max_depth = 48 }

local P = {}
P.__index = P

local function loc_of(tok)
  return { line = tok.line, column = tok.column }
end

function P:advance()
  self.count = self.count + 1
  if self.count > self.limits.max_tokens then
    self:fail_at(self.tok, "Document contains more than " .. self.limits.max_tokens .. " tokens.")
  end
  self.prev = self.tok
  self.tok = self.lex:next()
  return self.prev
end

function P.fail_at(_, tok, message)
  error({ graphql = true, message = message, line = tok.line, column = tok.column }, 0)
end

local function describe(tok)
  if tok.kind == "Name" then
    return 'Name "' .. tok.value .. '"'
  elseif tok.kind == "Int" or tok.kind == "Float" then
    return tok.kind .. ' "' .. tok.value .. '"'
  elseif tok.kind == "String" or tok.kind == "BlockString" then
    return "String"
  elseif tok.kind == "<EOF>" then
    return "<EOF>"
  end
  return '"' .. tok.kind .. '"'
end

function P:unexpected(tok)
  tok = tok or self.tok
  self:fail_at(tok, "Syntax Error: Unexpected " .. describe(tok) .. ".")
end

function P:peek(kind)
  return self.tok.kind == kind
end

function P:skip(kind)
  if self.tok.kind == kind then
    self:advance()
    return true
  end
  return false
end

function P:expect(kind)
  if self.tok.kind ~= kind then
    local want = (kind == "Name" or kind == "<EOF>") and kind or ('"' .. kind .. '"')
    self:fail_at(self.tok, "Syntax Error: Expected " .. want .. ", found " .. describe(self.tok) .. ".")
  end
  return self:advance()
end

function P:expect_keyword(word)
  if self.tok.kind ~= "Name" or self.tok.value ~= word then
    self:fail_at(self.tok, 'Syntax Error: Expected "' .. word .. '", found ' .. describe(self.tok) .. ".")
  end
  return self:advance()
end

function P:name()
  return self:expect("Name").value
end

function P:enter(tok)
  self.depth = self.depth + 1
  if self.depth > self.limits.max_depth then
    self:fail_at(tok, "Document nesting is deeper than " .. self.limits.max_depth .. " levels.")
  end
end

function P:leave()
  self.depth = self.depth - 1
end

-- Items between open and close, at least one.
function P:many(open, item, close)
  local start = self:expect(open)
  self:enter(start)
  local list = { item(self) }
  while not self:skip(close) do
    list[#list + 1] = item(self)
  end
  self:leave()
  return list
end

function P:value(const)
  local tok = self.tok
  local kind = tok.kind
  local loc = loc_of(tok)
  if kind == "[" then
    self:advance()
    self:enter(tok)
    local values = {}
    while not self:skip("]") do
      values[#values + 1] = self:value(const)
    end
    self:leave()
    return { kind = "ListValue", values = values, loc = loc }
  elseif kind == "{" then
    self:advance()
    self:enter(tok)
    local fields = {}
    while not self:skip("}") do
      local ftok = self.tok
      local name = self:name()
      self:expect(":")
      fields[#fields + 1] = { kind = "ObjectField", name = name, value = self:value(const), loc = loc_of(ftok) }
    end
    self:leave()
    return { kind = "ObjectValue", fields = fields, loc = loc }
  elseif kind == "Int" then
    self:advance()
    return { kind = "IntValue", value = tok.value, loc = loc }
  elseif kind == "Float" then
    self:advance()
    return { kind = "FloatValue", value = tok.value, loc = loc }
  elseif kind == "String" or kind == "BlockString" then
    self:advance()
    return { kind = "StringValue", value = tok.value, block = kind == "BlockString", loc = loc }
  elseif kind == "Name" then
    self:advance()
    local v = tok.value
    if v == "true" or v == "false" then
      return { kind = "BooleanValue", value = v == "true", loc = loc }
    elseif v == "null" then
      return { kind = "NullValue", loc = loc }
    end
    return { kind = "EnumValue", value = v, loc = loc }
  elseif kind == "$" and not const then
    self:advance()
    return { kind = "Variable", name = self:name(), loc = loc }
  end
  self:unexpected(tok)
end

function P:arguments(const)
  if not self:peek("(") then
    return {}
  end
  return self:many("(", function(p)
    local tok = p.tok
    local name = p:name()
    p:expect(":")
    return { kind = "Argument", name = name, value = p:value(const), loc = loc_of(tok) }
  end, ")")
end

function P:directives(const)
  local list = {}
  while self:peek("@") do
    local tok = self:advance()
    list[#list + 1] = { kind = "Directive", name = self:name(), arguments = self:arguments(const), loc = loc_of(tok) }
  end
  return list
end

function P:type_ref()
  local tok = self.tok
  local t
  if self:skip("[") then
    self:enter(tok)
    t = { kind = "ListType", type = self:type_ref(), loc = loc_of(tok) }
    self:expect("]")
    self:leave()
  else
    t = { kind = "NamedType", name = self:name(), loc = loc_of(tok) }
  end
  if self:skip("!") then
    return { kind = "NonNullType", type = t, loc = loc_of(tok) }
  end
  return t
end

function P:selection_set()
  local tok = self.tok
  return { kind = "SelectionSet", selections = self:many("{", P.selection, "}"), loc = loc_of(tok) }
end

function P:selection()
  local tok = self.tok
  if self:skip("...") then
    if self.tok.kind == "Name" and self.tok.value ~= "on" then
      return {
        kind = "FragmentSpread",
        name = self:name(),
        directives = self:directives(false),
        loc = loc_of(tok),
      }
    end
    local cond
    if self.tok.kind == "Name" then
      self:advance()
      cond = self:name()
    end
    return {
      kind = "InlineFragment",
      type_condition = cond,
      directives = self:directives(false),
      selection_set = self:selection_set(),
      loc = loc_of(tok),
    }
  end
  local name = self:name()
  local alias
  if self:skip(":") then
    alias, name = name, self:name()
  end
  local field = {
    kind = "Field",
    alias = alias,
    name = name,
    arguments = self:arguments(false),
    directives = self:directives(false),
    loc = loc_of(tok),
  }
  if self:peek("{") then
    field.selection_set = self:selection_set()
  end
  return field
end

function P:variable_definitions()
  if not self:peek("(") then
    return {}
  end
  return self:many("(", function(p)
    local tok = p:expect("$")
    local def = { kind = "VariableDefinition", variable = p:name(), loc = loc_of(tok) }
    p:expect(":")
    def.type = p:type_ref()
    if p:skip("=") then
      def.default_value = p:value(true)
    end
    def.directives = p:directives(true)
    return def
  end, ")")
end

local OPERATIONS = { query = true, mutation = true, subscription = true }

function P:definition()
  local tok = self.tok
  if tok.kind == "{" then
    return {
      kind = "OperationDefinition",
      operation = "query",
      variable_definitions = {},
      directives = {},
      selection_set = self:selection_set(),
      loc = loc_of(tok),
    }
  elseif tok.kind == "Name" and OPERATIONS[tok.value] then
    self:advance()
    local op = { kind = "OperationDefinition", operation = tok.value, loc = loc_of(tok) }
    if self:peek("Name") then
      op.name = self:name()
    end
    op.variable_definitions = self:variable_definitions()
    op.directives = self:directives(false)
    op.selection_set = self:selection_set()
    return op
  elseif tok.kind == "Name" and tok.value == "fragment" then
    self:advance()
    local ntok = self.tok
    local name = self:name()
    if name == "on" then
      self:unexpected(ntok)
    end
    self:expect_keyword("on")
    return {
      kind = "FragmentDefinition",
      name = name,
      type_condition = self:name(),
      directives = self:directives(false),
      selection_set = self:selection_set(),
      loc = loc_of(tok),
    }
  end
  self:unexpected(tok)
end

local function to_error(e)
  if type(e) == "table" and e.graphql then
    return { message = e.message, locations = { { line = e.line, column = e.column } } }
  end
  -- Not expected: a bug in this module. Report it as an error of the document all the same.
  return { message = "Syntax Error: " .. tostring(e), locations = { { line = 1, column = 1 } } }
end

-- parse(source [, limits]) -> Document | nil, {message, locations}
function parser.parse(source, limits)
  if type(source) ~= "string" then
    return nil, { message = "Must provide query string.", locations = {} }
  end
  limits = limits or parser.limits
  if #source > limits.max_bytes then
    return nil, {
      message = "Document is larger than " .. limits.max_bytes .. " bytes.",
      locations = { { line = 1, column = 1 } },
    }
  end
  local ok, doc = pcall(function()
    local self = setmetatable({ lex = lexer.new(source), count = 0, depth = 0, limits = limits }, P)
    self.tok = self.lex:next()
    local doc = { kind = "Document", definitions = {}, loc = loc_of(self.tok) }
    repeat
      doc.definitions[#doc.definitions + 1] = self:definition()
    until self:peek("<EOF>")
    return doc
  end)
  if not ok then
    return nil, to_error(doc)
  end
  return doc
end

-- Parses a type reference such as "[GraphqlSort!]!" (used for schema declarations).
function parser.parse_type(text)
  local ok, t = pcall(function()
    local self = setmetatable({ lex = lexer.new(text), count = 0, depth = 0, limits = parser.limits }, P)
    self.tok = self.lex:next()
    local t = self:type_ref()
    self:expect("<EOF>")
    return t
  end)
  if not ok then
    return nil, to_error(t).message
  end
  return t
end

return parser
