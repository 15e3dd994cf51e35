-- orch.client: HTTP calls from workflow steps to the services configured in
-- the host's environment (ORCH_SERVICE_<NAME>_URL / _TOKEN / _AUTH_SCHEME; see
-- docs/client.md). Scripts name a service and a path, never a host: that keeps
-- steps from fetching arbitrary URLs. The transfer is host/lapi_client.c.
--
--   local r = orch.client.request{ service = "netbox", method = "POST", path = "/api/dcim/devices/",
--                                  json = { name = "rtr1" } }
--   r.status, r.headers["content-type"], r.body, r.json
--
-- A transport failure or (unless raise_for_status = false) a non-2xx status
-- raises an error object {class, message, details}; a step that raises fails
-- with the message as its reason, a retrystep waits and is retried.

local json = require("orch.json")
local C = orch._client

local client = {}

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true, HEAD = true, OPTIONS = true }
local MAX_BODY_IN_MESSAGE = 2000

local error_mt = {
  __tostring = function(e)
    return e.message
  end,
}

-- The error raised for failed calls. `where` is the product script's "file:line: ".
local function raise(class, where, text, details)
  error(setmetatable({ class = class, message = where .. text, details = details }, error_mt), 0)
end

local function usage_error(text)
  error(C.where() .. "orch.client: " .. text, 0)
end

-- Percent-encode a query value or key (RFC 3986 unreserved characters stay).
local function encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end
client.encode = encode

-- Query string of a table: keys sorted; array values repeat the key (?id=1&id=2); booleans as true/false.
function client.query_string(query)
  local pairs_list = {}
  for k, v in pairs(query) do
    pairs_list[#pairs_list + 1] = { key = tostring(k), value = v }
  end
  table.sort(pairs_list, function(a, b)
    return a.key < b.key
  end)
  local parts = {}
  for _, p in ipairs(pairs_list) do
    if type(p.value) == "table" then
      for _, item in ipairs(p.value) do
        parts[#parts + 1] = encode(p.key) .. "=" .. encode(item)
      end
    elseif p.value ~= json.null then
      parts[#parts + 1] = encode(p.key) .. "=" .. encode(p.value)
    end
  end
  return table.concat(parts, "&")
end

local function shorten(body)
  if #body > MAX_BODY_IN_MESSAGE then
    return body:sub(1, MAX_BODY_IN_MESSAGE) .. "... (" .. #body .. " bytes)"
  end
  return body
end

-- request{method, service, path, query, json, body, headers, timeout_ms, raise_for_status}
--   -> {status, headers, body, json}
function client.request(opts)
  if type(opts) ~= "table" then
    usage_error("request needs a table of options")
  end
  local service, path = opts.service, opts.path
  if type(service) ~= "string" or service == "" then
    usage_error("request needs a service name (configured as ORCH_SERVICE_<NAME>_URL)")
  end
  if type(path) ~= "string" then
    usage_error("request needs a path")
  end
  local method = string.upper(opts.method or "GET")
  if not METHODS[method] then
    usage_error("unsupported method '" .. tostring(opts.method) .. "'")
  end
  if opts.query ~= nil then
    if type(opts.query) ~= "table" then
      usage_error("query must be a table")
    end
    local qs = client.query_string(opts.query)
    if qs ~= "" then
      path = path .. (path:find("?", 1, true) and "&" or "?") .. qs
    end
  end
  local headers, has = {}, {}
  for name, value in pairs(opts.headers or {}) do
    headers[#headers + 1] = tostring(name) .. ": " .. tostring(value)
    has[string.lower(tostring(name))] = true
  end
  local body = opts.body
  if opts.json ~= nil then
    body = json.encode(opts.json)
    if not has["content-type"] then
      headers[#headers + 1] = "Content-Type: application/json"
    end
  end
  if body ~= nil and type(body) ~= "string" then
    usage_error("body must be a string (use json = table for JSON)")
  end
  if not has["accept"] then
    headers[#headers + 1] = "Accept: application/json"
  end
  local timeout = opts.timeout_ms
  if timeout ~= nil and (math.type(timeout) ~= "integer" or timeout <= 0) then
    usage_error("timeout_ms must be a positive integer")
  end

  local what = service .. ": " .. method .. " " .. path
  local status, resp_headers, resp_body, url = C.perform(service, method, path, headers, body, timeout)
  if not status then
    local message, kind = resp_headers, resp_body
    if kind == "config" or kind == "invalid" then
      usage_error(what .. ": " .. message)
    end
    raise("HTTPConnectionError", C.where(), what .. " failed (" .. kind .. "): " .. message,
      { service = service, method = method, path = path, url = url, kind = kind })
  end

  local response = { status = status, headers = resp_headers, body = resp_body }
  local ctype = resp_headers["content-type"] or ""
  if resp_body ~= "" and ctype:find("json", 1, true) then
    local ok, decoded = pcall(json.decode, resp_body)
    if ok then
      response.json = decoded
    elseif status >= 200 and status < 300 then
      raise("HTTPError", C.where(), what .. ": response is not valid JSON: " .. tostring(decoded),
        { service = service, method = method, path = path, status = status, body = resp_body })
    end
  end
  if (status < 200 or status >= 300) and opts.raise_for_status ~= false then
    raise("HTTPError", C.where(), what .. " returned " .. status .. ": " .. shorten(resp_body),
      { service = service, method = method, path = path, status = status, body = resp_body })
  end
  return response
end

-- Shorthands: get/delete(service, path[, opts]); post/put/patch(service, path, json[, opts]).
local function shorthand(method, with_body)
  return function(service, path, a, b)
    local opts = {}
    local extra = with_body and b or a
    for k, v in pairs(extra or {}) do
      opts[k] = v
    end
    opts.method, opts.service, opts.path = method, service, path
    if with_body then
      opts.json = a
    end
    return client.request(opts)
  end
end
client.get = shorthand("GET", false)
client.delete = shorthand("DELETE", false)
client.post = shorthand("POST", true)
client.put = shorthand("PUT", true)
client.patch = shorthand("PATCH", true)

-- Every item of a paginated list ({count, next, previous, results}, as NetBox and
-- orchestrator-core return it). Of each `next` link only the path and query are used,
-- on the same configured service: a link cannot lead anywhere else.
function client.all(service, path, query, opts)
  local base_path = (C.base_url(service) or ""):match("^%a[%w+.-]*://[^/]+(/.*)$") or ""
  local items = {}
  local o = {}
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  o.service, o.path, o.query, o.method = service, path, query, "GET"
  for _ = 1, 100000 do
    local page = client.request(o).json
    if type(page) ~= "table" or type(page.results) ~= "table" then
      usage_error(service .. ": GET " .. o.path .. " is not a paginated list")
    end
    for _, item in ipairs(page.results) do
      items[#items + 1] = item
    end
    local next_url = page.next
    if type(next_url) ~= "string" then
      break
    end
    local next_path = next_url:match("^%a[%w+.-]*://[^/]+(/.*)$") or next_url
    if base_path ~= "" and next_path:sub(1, #base_path) == base_path then
      next_path = next_path:sub(#base_path + 1)
    end
    o.path, o.query = next_path, nil
  end
  return items
end

-- The configured base URL of a service (never its token), or nil.
function client.base_url(service)
  return C.base_url(service)
end

-- The absolute URL of a route of this orchestrator (e.g. a callback_route) for an
-- external system to call back: ORCH_PUBLIC_URL, else the address the host listens on.
function client.callback_url(route)
  if type(route) ~= "string" or route:sub(1, 1) ~= "/" then
    usage_error("callback_url needs a route starting with '/'")
  end
  local base = C.public_url()
  if not base then
    usage_error("the orchestrator's public URL is unknown (set ORCH_PUBLIC_URL)")
  end
  return base .. route
end

-- Whether a call failed with this HTTP status (for pcall users): client.status_of(err) -> number or nil.
function client.status_of(err)
  return type(err) == "table" and type(err.details) == "table" and err.details.status or nil
end

return client
