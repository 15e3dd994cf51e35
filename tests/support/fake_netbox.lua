-- Start and drive the fake NetBox and LSO (examples/fake-netbox) from specs.
local H = require("harness")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson")

local F = {}
F.token = "0123456789abcdef0123456789abcdef01234567"

local Fake = {}
Fake.__index = Fake

-- start{bootstrap = true} -> a fake listening on a free port.
function F.start(opts)
  opts = opts or {}
  local log = os.tmpname()
  local args = { H.source .. "/examples/fake-netbox/run", "--port", "0" }
  if opts.bootstrap then
    args[#args + 1] = "--bootstrap"
  end
  local pid = H.proc.spawn(args, {}, log)
  local fake = setmetatable({ pid = pid, log_path = log }, Fake)
  for _ = 1, 200 do
    local text = H.read_file(log) or ""
    local url = text:match("listening on (http://[%d%.]+:%d+)")
    if url then
      fake.url = url
      return fake
    end
    if H.proc.wait(pid, true) then
      error("fake-netbox exited before listening:\n" .. text, 2)
    end
    H.sleep(0.05)
  end
  fake:stop()
  error("fake-netbox did not start:\n" .. (H.read_file(log) or ""), 2)
end

local integers = H.integers

-- request(method, path [, body [, headers]]) -> status, decoded JSON (or nil), text.
-- The NetBox token is sent unless headers.authorization is false.
function Fake:request(method, path, body, headers)
  local h = {}
  for k, v in pairs(headers or {}) do
    h[k] = v
  end
  if h.authorization == nil then
    h.authorization = "Token " .. F.token
  elseif h.authorization == false then
    h.authorization = nil
  end
  if type(body) == "table" then
    body = cjson.encode(body)
  end
  if body then
    h["content-type"] = "application/json"
    h["content-length"] = tostring(#body)
  end
  local chunks = {}
  local _, status = http.request({ url = self.url .. path, method = method, headers = h,
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(chunks) })
  local text = table.concat(chunks)
  local ok, json = pcall(cjson.decode, text)
  return status, ok and integers(json) or nil, text
end

-- Like request, but asserts the status and returns the JSON.
function Fake:must(method, path, body, want)
  local status, json, text = self:request(method, path, body)
  if status ~= (want or (method == "POST" and 201 or method == "DELETE" and 204 or 200)) then
    error(string.format("%s %s -> %s: %s", method, path, tostring(status), text), 2)
  end
  return json
end

function Fake:log()
  return H.read_file(self.log_path) or ""
end

-- SIGTERM; the run script exits 0.
function Fake:stop()
  if not self.pid then
    return
  end
  H.proc.kill(self.pid, "TERM")
  local how, code = H.proc.wait(self.pid)
  self.pid = nil
  local text = self:log()
  os.remove(self.log_path)
  if how ~= "exited" or code ~= 0 then
    error(string.format("fake-netbox did not exit cleanly (%s %s):\n%s", how, tostring(code), text), 2)
  end
end

return F
