-- A small blocking HTTP/1.1 server part for the fake: read one request from a
-- connection, write one response, close. One request per connection
-- (Connection: close), which is all the orchestrator's client and curl need.
local httpd = {}

local MAX_BODY = 16 * 1024 * 1024

local REASONS = {
  [200] = "OK", [201] = "Created", [204] = "No Content", [400] = "Bad Request", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [409] = "Conflict", [411] = "Length Required",
  [413] = "Payload Too Large", [500] = "Internal Server Error", [503] = "Service Unavailable",
}

function httpd.url_decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

function httpd.url_encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- "a=1&b=2&a=3" -> { a = {"1", "3"}, b = {"2"} } and the keys in order of appearance.
function httpd.parse_query(qs)
  local query, order = {}, {}
  for part in (qs or ""):gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=?(.*)$")
    k, v = httpd.url_decode(k), httpd.url_decode(v)
    if not query[k] then
      query[k] = {}
      order[#order + 1] = k
    end
    table.insert(query[k], v)
  end
  return query, order
end

local function read_chunked(c)
  local parts, total = {}, 0
  while true do
    local line, err = c:receive("*l")
    if not line then
      return nil, err
    end
    local size = tonumber(line:match("^%x+"), 16)
    if not size then
      return nil, "bad chunk size"
    end
    if size == 0 then
      repeat
        line = c:receive("*l")
      until not line or line == ""
      return table.concat(parts)
    end
    total = total + size
    if total > MAX_BODY then
      return nil, "too large"
    end
    local data, e = c:receive(size)
    if not data then
      return nil, e
    end
    parts[#parts + 1] = data
    c:receive("*l")
  end
end

-- Read one request: {method, path, query, query_order, raw_query, headers, body} or nil, error.
function httpd.read_request(c)
  local line, err = c:receive("*l")
  if not line then
    return nil, err
  end
  local method, target = line:match("^(%u+)%s+(%S+)%s+HTTP/%d%.%d$")
  if not method then
    return nil, "bad request line"
  end
  local headers = {}
  while true do
    local h, e = c:receive("*l")
    if not h then
      return nil, e
    end
    if h == "" then
      break
    end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then
      headers[name:lower()] = value
    end
  end
  local body = ""
  local te = (headers["transfer-encoding"] or ""):lower()
  if te:find("chunked", 1, true) then
    body, err = read_chunked(c)
    if not body then
      return nil, err
    end
  else
    local len = tonumber(headers["content-length"] or "0")
    if not len or len < 0 or len > MAX_BODY then
      return nil, "bad content-length"
    end
    if len > 0 then
      body, err = c:receive(len)
      if not body then
        return nil, err
      end
    end
  end
  local path, qs = target:match("^([^?]*)%??(.*)$")
  local query, order = httpd.parse_query(qs)
  return { method = method, path = httpd.url_decode(path), query = query, query_order = order, raw_query = qs,
    headers = headers, body = body }
end

function httpd.write_response(c, status, body, content_type)
  body = body or ""
  local head = {
    string.format("HTTP/1.1 %d %s", status, REASONS[status] or "Status"),
    "Server: fake-netbox",
    "Connection: close",
    "Content-Length: " .. #body,
  }
  if status ~= 204 then
    head[#head + 1] = "Content-Type: " .. (content_type or "application/json")
  end
  c:send(table.concat(head, "\r\n") .. "\r\n\r\n" .. body)
end

return httpd
