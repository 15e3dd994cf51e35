-- A small WebSocket client (RFC 6455) on luasocket for the integration specs:
-- the handshake, masked frames (or deliberately broken ones), and reading the
-- server's frames with a deadline.

local socket = require("socket")
local mime = require("mime")
local cjson = require("cjson")

local M = {}

M.OP = { cont = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 }

local Client = {}
Client.__index = Client

local function random_bytes(n)
  local t = {}
  for i = 1, n do
    t[i] = string.char(math.random(0, 255))
  end
  return table.concat(t)
end

-- Send a raw request; returns the socket, status, lowercased headers and any
-- bytes the server sent after the header block.
function M.raw_request(port, request)
  local sock = assert(socket.tcp())
  sock:settimeout(5)
  assert(sock:connect("127.0.0.1", port))
  assert(sock:send(request))
  local status_line, err = sock:receive("*l")
  if not status_line then
    sock:close()
    return nil, err
  end
  local status = tonumber(status_line:match("^HTTP/1%.%d (%d+)"))
  local headers = {}
  while true do
    local line = assert(sock:receive("*l"))
    if line == "" then
      break
    end
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then
      headers[k:lower()] = v
    end
  end
  return sock, status, headers
end

-- handshake(port [, opts]) -> client, status, headers. opts.headers replaces or
-- (with false) removes request headers; opts.key is the Sec-WebSocket-Key.
function M.handshake(port, opts)
  opts = opts or {}
  local key = opts.key or (mime.b64(random_bytes(16)))
  local headers = {
    ["Host"] = "127.0.0.1:" .. port,
    ["Upgrade"] = "websocket",
    ["Connection"] = "Upgrade",
    ["Sec-WebSocket-Key"] = key,
    ["Sec-WebSocket-Version"] = "13",
  }
  for k, v in pairs(opts.headers or {}) do
    headers[k] = v or nil
  end
  local lines = { (opts.method or "GET") .. " " .. (opts.path or "/api/ws/events") .. " HTTP/1.1" }
  for k, v in pairs(headers) do
    lines[#lines + 1] = k .. ": " .. v
  end
  local sock, status, resp_headers = M.raw_request(port, table.concat(lines, "\r\n") .. "\r\n\r\n")
  if not sock then
    return nil, status
  end
  if status ~= 101 then
    sock:close()
    return nil, status, resp_headers
  end
  return setmetatable({ sock = sock, key = key, buffer = "" }, Client), status, resp_headers
end

-- Encode one client frame. opts: fin (default true), mask (default true), rsv
-- (0..7), length (claimed payload length, to lie about it).
function M.encode(opcode, payload, opts)
  opts = opts or {}
  payload = payload or ""
  local fin = opts.fin == false and 0 or 0x80
  local b1 = fin | ((opts.rsv or 0) << 4) | opcode
  local len = opts.length or #payload
  local masked = opts.mask ~= false
  local head
  local mbit = masked and 0x80 or 0
  if len < 126 then
    head = string.char(b1, mbit | len)
  elseif len <= 0xFFFF then
    head = string.char(b1, mbit | 126) .. string.pack(">I2", len)
  else
    head = string.char(b1, mbit | 127) .. string.pack(">I8", len)
  end
  if not masked then
    return head .. payload
  end
  local mask = random_bytes(4)
  local out = {}
  for i = 1, #payload do
    out[i] = string.char(payload:byte(i) ~ mask:byte((i - 1) % 4 + 1))
  end
  return head .. mask .. table.concat(out)
end

function Client:send_raw(bytes)
  return self.sock:send(bytes)
end

function Client:send(opcode, payload, opts)
  return self.sock:send(M.encode(opcode, payload, opts))
end

function Client:send_text(text)
  return self:send(M.OP.text, text)
end

-- Exactly n bytes before the deadline (socket.gettime() seconds), or nil, why.
function Client:read(n, deadline)
  while #self.buffer < n do
    local left = deadline - socket.gettime()
    if left <= 0 then
      return nil, "timeout"
    end
    self.sock:settimeout(left)
    local data, err, partial = self.sock:receive(n - #self.buffer)
    data = data or partial
    if data and #data > 0 then
      self.buffer = self.buffer .. data
    elseif err == "closed" then
      return nil, "closed"
    elseif err ~= "timeout" then
      return nil, err
    end
  end
  local out = self.buffer:sub(1, n)
  self.buffer = self.buffer:sub(n + 1)
  return out
end

-- One server frame within `timeout` seconds: opcode, payload, fin; or nil, why.
function Client:frame(timeout)
  local deadline = socket.gettime() + (timeout or 5)
  local head, err = self:read(2, deadline)
  if not head then
    return nil, err
  end
  local b1, b2 = head:byte(1, 2)
  assert(b2 & 0x80 == 0, "the server masked a frame")
  local len = b2 & 0x7F
  if len == 126 then
    len = string.unpack(">I2", assert(self:read(2, deadline)))
  elseif len == 127 then
    len = string.unpack(">I8", assert(self:read(8, deadline)))
  end
  local payload = ""
  if len > 0 then
    payload, err = self:read(len, deadline)
    if not payload then
      return nil, err
    end
  end
  return b1 & 0x0F, payload, b1 & 0x80 ~= 0
end

-- The next text frame (answering nothing), or nil, why.
function Client:text(timeout)
  local deadline = socket.gettime() + (timeout or 5)
  while true do
    local op, payload = self:frame(deadline - socket.gettime())
    if not op then
      return nil, payload
    end
    if op == M.OP.text then
      return payload
    end
    if op == M.OP.close then
      return nil, "close", payload
    end
  end
end

-- The close frame's code, skipping other frames; nil, why if none came.
function Client:close_code(timeout)
  local deadline = socket.gettime() + (timeout or 5)
  while true do
    local op, payload = self:frame(deadline - socket.gettime())
    if not op then
      return nil, payload
    end
    if op == M.OP.close then
      return #payload >= 2 and string.unpack(">I2", payload) or 0
    end
  end
end

-- Collect invalidateCache values until want(seen) is true or the time is up.
-- Returns the list of "type/id" strings (id "-" when absent) seen so far.
function Client:collect(timeout, want)
  local deadline = socket.gettime() + timeout
  local seen = {}
  while socket.gettime() < deadline do
    local text = self:text(deadline - socket.gettime())
    if not text then
      break
    end
    local ok, msg = pcall(cjson.decode, text)
    if ok and type(msg) == "table" and msg.name == "invalidateCache" then
      seen[#seen + 1] = msg.value.type .. "/" .. (msg.value.id or "-")
      if want and want(seen) then
        break
      end
    end
  end
  return seen
end

function Client:close()
  if self.sock then
    pcall(self.sock.send, self.sock, M.encode(M.OP.close, string.pack(">I2", 1000)))
    self.sock:close()
    self.sock = nil
  end
end

-- Does the list contain every one of the wanted entries?
function M.has_all(seen, wanted)
  local set = {}
  for _, s in ipairs(seen) do
    set[s] = true
  end
  for _, w in ipairs(wanted) do
    if not set[w] then
      return false
    end
  end
  return true
end

return M
