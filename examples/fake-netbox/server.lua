-- The fake NetBox and LSO: one single-threaded HTTP server (luasocket) with
-- in-memory state. See README.md in this folder for the routes.
--   lua5.4 server.lua [--host 127.0.0.1] [--port 8001] [--token T] [--no-auth] [--bootstrap] [--verbose]
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local socket = require("socket")
local json = require("json")
local httpd = require("httpd")
local netbox = require("netbox")
local lso = require("lso")

local DEFAULT_TOKEN = "0123456789abcdef0123456789abcdef01234567"

local opts = { host = "127.0.0.1", port = 8001, token = os.getenv("FAKE_NETBOX_TOKEN") or DEFAULT_TOKEN }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--port" then
      opts.port = tonumber(arg[i + 1])
      i = i + 1
    elseif a == "--host" then
      opts.host = arg[i + 1]
      i = i + 1
    elseif a == "--token" then
      opts.token = arg[i + 1]
      i = i + 1
    elseif a == "--no-auth" then
      opts.token = nil
    elseif a == "--bootstrap" then
      opts.bootstrap = true
    elseif a == "--verbose" then
      opts.verbose = true
    elseif a == "--help" or a == "-h" then
      print("usage: run [--host 127.0.0.1] [--port 8001 (0 = any)] [--token T | --no-auth] [--bootstrap] [--verbose]")
      os.exit(0)
    else
      io.stderr:write("fake-netbox: unknown argument " .. a .. "\n")
      os.exit(2)
    end
    i = i + 1
  end
  if not opts.port or not opts.host then
    io.stderr:write("fake-netbox: --port and --host need a value\n")
    os.exit(2)
  end
end

local function json_body(req)
  if req.body == "" then
    return nil
  end
  local ok, v = pcall(json.decode, req.body)
  if not ok then
    return nil, "JSON parse error - " .. tostring(v)
  end
  return v
end

local function authorized(req)
  if not opts.token then
    return true
  end
  local h = req.headers["authorization"]
  if not h then
    return false, "Authentication credentials were not provided."
  end
  local token = h:match("^[Tt]oken%s+(%S+)$") or h:match("^[Bb]earer%s+(%S+)$")
  if token ~= opts.token then
    return false, "Invalid token"
  end
  return true
end

-- ---------------------------------------------------------------- routes --

local function netbox_route(req, segments)
  -- /api/<app>/<model>/[<id>/[available-ips|available-prefixes/]]
  local endpoint = segments[2] and segments[3] and (segments[2] .. "/" .. segments[3])
  if not endpoint or not netbox.TYPES[endpoint] then
    return 404, { detail = "Not found (the fake NetBox implements only the subset the example workflows use)." }
  end
  local ok, why = authorized(req)
  if not ok then
    return 403, { detail = why }
  end
  local id = segments[4] and tonumber(segments[4]:match("^%d+$"))
  if segments[4] and not id then
    return 404, { detail = "Not found." }
  end
  local body, err = json_body(req)
  if err then
    return 400, { detail = err }
  end
  local m = req.method
  if segments[5] then
    if endpoint ~= "ipam/prefixes" or segments[6] then
      return 404, { detail = "Not found." }
    end
    if segments[5] == "available-ips" then
      if m == "GET" then
        return netbox.available_ips(id, req)
      elseif m == "POST" then
        return netbox.allocate_ips(id, body)
      end
    elseif segments[5] == "available-prefixes" and m == "POST" then
      return netbox.allocate_prefix(id, body)
    else
      return 404, { detail = "Not found." }
    end
    return 405, { detail = 'Method "' .. m .. '" not allowed.' }
  end
  if not id then
    if m == "GET" then
      return netbox.list(endpoint, req)
    elseif m == "POST" then
      if json.is_array(body) then
        local created = json.array({})
        for _, item in ipairs(body) do
          local status, obj = netbox.create(endpoint, item)
          if status ~= 201 then
            return status, obj
          end
          created[#created + 1] = obj
        end
        return 201, created
      end
      return netbox.create(endpoint, body or {})
    end
    return 405, { detail = 'Method "' .. m .. '" not allowed.' }
  end
  if m == "GET" then
    return netbox.get(endpoint, id)
  elseif m == "PATCH" then
    return netbox.update(endpoint, id, body or {}, false)
  elseif m == "PUT" then
    return netbox.update(endpoint, id, body or {}, true)
  elseif m == "DELETE" then
    return netbox.delete(endpoint, id)
  end
  return 405, { detail = 'Method "' .. m .. '" not allowed.' }
end

local function fake_route(req, segments)
  local what, m = segments[3], req.method
  local body, err = json_body(req)
  if err then
    return 400, { detail = err }
  end
  if what == "state" and m == "GET" and not segments[4] then
    return 200, { netbox = netbox.dump(), counts = netbox.counts(), lso = lso.state() }
  elseif what == "reset" and m == "POST" then
    netbox.reset()
    lso.reset()
    local created = 0
    if type(body) == "table" and body.bootstrap then
      created = netbox.bootstrap()
    end
    return 200, { reset = true, objects_created = created }
  elseif what == "bootstrap" and m == "POST" then
    return 200, { objects_created = netbox.bootstrap() }
  elseif what == "lso" and not segments[4] then
    if m == "GET" then
      return 200, lso.settings()
    elseif m == "PUT" then
      return lso.configure(body)
    end
  elseif what == "lso" and segments[4] == "runs" and m == "GET" then
    return 200, lso.state().runs
  elseif what == "respond" and tonumber(segments[4]) then
    -- Any status after an optional delay, for testing clients (errors, retries, timeouts).
    local status = math.tointeger(tonumber(segments[4]))
    local delay = tonumber(req.query.delay_ms and req.query.delay_ms[1]) or 0
    if status < 200 or status > 599 or delay < 0 or delay > 10000 then
      return 400, { detail = "status must be 200..599 and delay_ms 0..10000" }
    end
    local pad = math.min(tonumber(req.query.pad and req.query.pad[1]) or 0, 16 * 1024 * 1024)
    if delay > 0 then
      socket.sleep(delay / 1000)
    end
    return status, { detail = "fake status " .. status, method = m, echo = body or json.null,
      padding = pad > 0 and string.rep("x", pad) or json.null,
      authorized = (authorized(req)), content_type = req.headers["content-type"] or json.null }
  end
  return 404, { detail = "Unknown route of the fake." }
end

local function route(req)
  local segments = {}
  for s in req.path:gmatch("[^/]+") do
    segments[#segments + 1] = s
  end
  if segments[1] ~= "api" then
    return 404, { detail = "Not found." }
  end
  if segments[2] == "_fake" then
    return fake_route(req, segments)
  end
  if segments[2] == "playbook" and not segments[3] then
    if req.method ~= "POST" then
      return 405, { detail = 'Method "' .. req.method .. '" not allowed.' }
    end
    local body, err = json_body(req)
    if err then
      return 400, { detail = err }
    end
    return lso.submit(body)
  end
  if segments[2] == "status" and not segments[3] then
    return 200, { ["netbox-version"] = "4.1-fake", ["python-version"] = "none", plugins = {} }
  end
  return netbox_route(req, segments)
end

local function handle(c)
  c:settimeout(5)
  local req, err = httpd.read_request(c)
  if not req then
    if err ~= "closed" then
      httpd.write_response(c, 400, json.encode({ detail = "bad request: " .. tostring(err) }))
    end
    return
  end
  req.encode = httpd.url_encode
  netbox.set_base_url("http://" .. (req.headers["host"] or (opts.host .. ":" .. opts.port)))
  local ok, status, body = pcall(route, req)
  if not ok then
    io.stderr:write("fake-netbox: error handling ", req.method, " ", req.path, ": ", tostring(status), "\n")
    status, body = 500, { detail = tostring(status) }
  end
  local text = body ~= nil and json.encode(body) or ""
  if status == 204 then
    text = ""
  end
  httpd.write_response(c, status, text)
  if opts.verbose then
    io.stdout:write(string.format("%s %s%s -> %d\n", req.method, req.path,
      req.raw_query ~= "" and ("?" .. req.raw_query) or "", status))
    io.stdout:flush()
  end
end

-- ------------------------------------------------------------------ main --

local server = assert(socket.bind(opts.host, opts.port))
server:settimeout(0)
local _, port = server:getsockname()
opts.port = tonumber(port)
if opts.bootstrap then
  netbox.bootstrap()
end
io.stdout:write(string.format("fake-netbox listening on http://%s:%d\n", opts.host, opts.port))
io.stdout:flush()

while true do
  local wait = lso.next_due_in() or 1
  local readable = socket.select({ server }, nil, math.max(0, math.min(wait, 1)))
  if readable[server] then
    local c = server:accept()
    if c then
      local ok, err = pcall(handle, c)
      if not ok then
        io.stderr:write("fake-netbox: ", tostring(err), "\n")
      end
      c:close()
    end
  end
  lso.deliver_due()
end
