-- GraphQL lexer (the October 2021 spec's lexical grammar) for executable documents.
-- Errors are raised as tables {graphql = true, message = ..., line = ..., column = ...}
-- so that the parser can turn them into a GraphQL error; nothing else is raised.

local lexer = {}

local byte, sub, find, char = string.byte, string.sub, string.find, string.char

local PUNCT = {
  [33] = "!",
  [36] = "$",
  [38] = "&",
  [40] = "(",
  [41] = ")",
  [58] = ":",
  [61] = "=",
  [64] = "@",
  [91] = "[",
  [93] = "]",
  [123] = "{",
  [124] = "|",
  [125] = "}",
}

local Lexer = {}
Lexer.__index = Lexer

function lexer.new(source)
  local self = setmetatable({ src = source, pos = 1, line = 1, line_start = 1 }, Lexer)
  if sub(source, 1, 3) == "\239\187\191" then -- byte order mark
    self.pos = 4
    self.line_start = 4
  end
  return self
end

-- Column in characters (UTF-8), 1-based, of byte position `pos` on the current line.
-- Counts on from the previous answer on the same line, so a long line stays linear.
function Lexer:column(pos, line_start)
  line_start = line_start or self.line_start
  local from, col = line_start, 1
  if self.col_line == line_start and self.col_pos <= pos then
    from, col = self.col_pos, self.col
  end
  local n = utf8.len(self.src, from, pos - 1, true) or (pos - from)
  self.col_line, self.col_pos, self.col = line_start, pos, col + n
  return col + n
end

function Lexer:fail(message, pos, line, line_start)
  error({
    graphql = true,
    message = "Syntax Error: " .. message,
    line = line or self.line,
    column = self:column(pos or self.pos, line_start),
  }, 0)
end

local function describe(c)
  if c == nil then
    return "<EOF>"
  elseif c >= 32 and c < 127 then
    return '"' .. char(c) .. '"'
  end
  return string.format("U+%04X", c)
end

-- Skips whitespace, line terminators, commas and comments.
function Lexer:skip_ignored()
  local src = self.src
  while true do
    local c = byte(src, self.pos)
    if c == 32 or c == 9 or c == 44 then
      self.pos = self.pos + 1
    elseif c == 10 then
      self.pos = self.pos + 1
      self.line = self.line + 1
      self.line_start = self.pos
    elseif c == 13 then
      self.pos = self.pos + (byte(src, self.pos + 1) == 10 and 2 or 1)
      self.line = self.line + 1
      self.line_start = self.pos
    elseif c == 35 then -- '#' comment up to the end of the line
      local e = find(src, "[\r\n]", self.pos)
      self.pos = e or (#src + 1)
    elseif c == 239 and sub(src, self.pos, self.pos + 2) == "\239\187\191" then
      self.pos = self.pos + 3
    else
      return
    end
  end
end

local function hexval(s)
  if not s:match("^%x%x%x%x$") then
    return nil
  end
  return tonumber(s, 16)
end

function Lexer:read_string(start)
  local src, out, i = self.src, {}, start + 1
  local chunk = i
  while true do
    local c = byte(src, i)
    if c == nil or c == 10 or c == 13 then
      self:fail("Unterminated string.", i)
    elseif c == 34 then
      out[#out + 1] = sub(src, chunk, i - 1)
      self.pos = i + 1
      return table.concat(out)
    elseif c == 92 then
      out[#out + 1] = sub(src, chunk, i - 1)
      local e = byte(src, i + 1)
      local simple = ({
        [34] = '"',
        [92] = "\\",
        [47] = "/",
        [98] = "\b",
        [102] = "\f",
        [110] = "\n",
        [114] = "\r",
        [116] = "\t",
      })[e]
      if simple then
        out[#out + 1] = simple
        i = i + 2
      elseif e == 117 then -- \uXXXX, with surrogate pairs
        local cp = hexval(sub(src, i + 2, i + 5))
        if not cp then
          self:fail("Invalid Unicode escape sequence: " .. sub(src, i, i + 5) .. ".", i)
        end
        i = i + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = sub(src, i, i + 1) == "\\u" and hexval(sub(src, i + 2, i + 5))
          if not lo or lo < 0xDC00 or lo > 0xDFFF then
            self:fail("Invalid Unicode escape sequence: unpaired surrogate.", i - 6)
          end
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
          i = i + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          self:fail("Invalid Unicode escape sequence: unpaired surrogate.", i - 6)
        end
        out[#out + 1] = utf8.char(cp)
      else
        self:fail("Invalid character escape sequence: \\" .. (e and char(e) or "") .. ".", i)
      end
      chunk = i
    elseif c < 32 and c ~= 9 then
      self:fail("Invalid character within String: " .. describe(c) .. ".", i)
    else
      i = i + 1
    end
  end
end

-- Block string value per the spec's BlockStringValue(): common indent removed,
-- leading and trailing blank lines dropped.
local function block_value(raw)
  local lines = {}
  for line in (raw .. "\n"):gmatch("(.-)\r?\n") do
    lines[#lines + 1] = line
  end
  local common
  for i = 2, #lines do
    local indent = #lines[i]:match("^[ \t]*")
    if indent < #lines[i] and (common == nil or indent < common) then
      common = indent
    end
  end
  if common and common > 0 then
    for i = 2, #lines do
      lines[i] = sub(lines[i], common + 1)
    end
  end
  while #lines > 0 and lines[1]:match("^[ \t]*$") do
    table.remove(lines, 1)
  end
  while #lines > 0 and lines[#lines]:match("^[ \t]*$") do
    lines[#lines] = nil
  end
  return table.concat(lines, "\n")
end

function Lexer:read_block_string(start)
  local src, i = self.src, start + 3
  local parts, chunk = {}, i
  while true do
    local c = byte(src, i)
    if c == nil then
      self:fail("Unterminated string.", i)
    elseif c == 34 and sub(src, i, i + 2) == '"""' then
      parts[#parts + 1] = sub(src, chunk, i - 1)
      self.pos = i + 3
      return block_value(table.concat(parts))
    elseif c == 92 and sub(src, i, i + 3) == '\\"""' then
      parts[#parts + 1] = sub(src, chunk, i - 1) .. '"""'
      i = i + 4
      chunk = i
    elseif c == 10 or c == 13 then
      i = i + ((c == 13 and byte(src, i + 1) == 10) and 2 or 1)
      self.line = self.line + 1
      self.line_start = i
    elseif c < 32 and c ~= 9 then
      self:fail("Invalid character within String: " .. describe(c) .. ".", i)
    else
      i = i + 1
    end
  end
end

function Lexer:read_number(start)
  local src = self.src
  local int = src:match("^%-?%d+", start)
  if not int then
    self:fail("Invalid number, expected digit but got: " .. describe(byte(src, start + 1)) .. ".", start + 1)
  end
  if int:match("^%-?0%d") then
    self:fail("Invalid number, unexpected digit after 0: " .. describe(byte(int, int:find("0") + 1)) .. ".", start)
  end
  local i = start + #int
  local is_float = false
  if byte(src, i) == 46 then -- '.'
    local frac = src:match("^%d+", i + 1)
    if not frac then
      self:fail("Invalid number, expected digit but got: " .. describe(byte(src, i + 1)) .. ".", i + 1)
    end
    i = i + 1 + #frac
    is_float = true
  end
  local e = byte(src, i)
  if e == 101 or e == 69 then -- exponent
    local exp = src:match("^[+-]?%d+", i + 1)
    if not exp then
      self:fail("Invalid number, expected digit but got: " .. describe(byte(src, i + 1)) .. ".", i + 1)
    end
    i = i + 1 + #exp
    is_float = true
  end
  local follow = byte(src, i)
  if follow and (follow == 46 or follow == 95 or char(follow):match("%a")) then
    self:fail("Invalid number, expected digit but got: " .. describe(follow) .. ".", i)
  end
  self.pos = i
  return is_float and "Float" or "Int", sub(src, start, i - 1)
end

-- Next token: {kind = "Name"|"Int"|"Float"|"String"|"BlockString"|"<EOF>"|punctuator,
-- value = text, line = n, column = n}.
function Lexer:next()
  self:skip_ignored()
  local src, start = self.src, self.pos
  local tok = { line = self.line, column = self:column(start) }
  local c = byte(src, start)
  if c == nil then
    tok.kind = "<EOF>"
    return tok
  end
  local p = PUNCT[c]
  if p then
    tok.kind = p
    self.pos = start + 1
  elseif c == 46 then
    if sub(src, start, start + 2) ~= "..." then
      self:fail('Unexpected ".".', start)
    end
    tok.kind = "..."
    self.pos = start + 3
  elseif c == 95 or (c >= 65 and c <= 90) or (c >= 97 and c <= 122) then
    local name = src:match("^[_%a][_%w]*", start)
    tok.kind, tok.value = "Name", name
    self.pos = start + #name
  elseif c == 45 or (c >= 48 and c <= 57) then
    tok.kind, tok.value = self:read_number(start)
  elseif c == 34 then
    if sub(src, start, start + 2) == '"""' then
      tok.kind, tok.value = "BlockString", self:read_block_string(start)
    else
      tok.kind, tok.value = "String", self:read_string(start)
    end
  else
    if c == 39 then
      self:fail("Unexpected single quote character ('), did you mean to use a double quote (\")?", start)
    end
    local ok, cp = pcall(utf8.codepoint, src, start, start, true)
    self:fail("Unexpected character: " .. describe(ok and cp or c) .. ".", start)
  end
  return tok
end

return lexer
