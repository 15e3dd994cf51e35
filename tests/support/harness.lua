-- Test harness for integration specs: a throwaway database per spec, the real
-- `orchestrator` binary started as a child process, and an HTTP client.
-- Environment (set by ctest): ORCH_BIN, ORCH_SOURCE_DIR, ORCH_TEST_PG_STATE.

local proc = require("testproc")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson")

http.TIMEOUT = 30

local H = {}

H.bin = assert(os.getenv("ORCH_BIN"), "ORCH_BIN is not set")
H.source = assert(os.getenv("ORCH_SOURCE_DIR"), "ORCH_SOURCE_DIR is not set")
H.json = cjson

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("a")
  f:close()
  return s
end
H.read_file = read_file

-- lua-cjson 2.1.0 reads every number as a float: whole numbers become integers (in place).
function H.integers(v)
  if type(v) == "number" then
    return math.tointeger(v) or v
  elseif type(v) == "table" then
    for k, x in pairs(v) do
      v[k] = H.integers(x)
    end
  end
  return v
end

H.sleep = proc.sleep
H.now = proc.now
H.proc = proc

function H.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local q = H.shell_quote

-- The socket folder of the shared test cluster.
function H.pg_dir()
  local state = assert(os.getenv("ORCH_TEST_PG_STATE"), "ORCH_TEST_PG_STATE is not set")
  return assert(read_file(state), "test cluster not running (no " .. state .. ")"):gsub("%s+$", "")
end

-- Run psql; returns its output (tuples only, unaligned) or raises.
function H.psql(dir, db, sql)
  local cmd = string.format("psql -X -q -At -v ON_ERROR_STOP=1 -h %s -U postgres -d %s -c %s 2>&1",
    q(dir), q(db), q(sql))
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok = p:close()
  if not ok then
    error("psql failed: " .. out, 2)
  end
  return (out:gsub("%s+$", ""))
end

local counter = 0
-- A new empty database in the shared cluster: returns name, URI.
function H.new_database(dir)
  dir = dir or H.pg_dir()
  counter = counter + 1
  local name = string.format("t_%d_%d_%d", proc.getpid(), os.time() % 100000, counter)
  H.psql(dir, "postgres", "CREATE DATABASE " .. name)
  return name, string.format("postgresql://postgres@/%s?host=%s", name, dir)
end

-- Apply the migrations to a database (raises with the output if that fails); with
-- `products`, that folder's own migrations too (default: the example products').
function H.migrate(uri, products)
  local code, out = H.run({ "db", "upgrade", "--migrations", H.source .. "/migrations", "--products",
    products or (H.source .. "/products") }, { DATABASE_URI = uri })
  if code ~= 0 then
    error("db upgrade failed:\n" .. out, 2)
  end
end

-- Run the binary to completion: returns exit code, combined output.
function H.run(args, env)
  local parts = {}
  for k, v in pairs(env or {}) do
    parts[#parts + 1] = k .. "=" .. q(v)
  end
  parts[#parts + 1] = q(H.bin)
  for _, a in ipairs(args) do
    parts[#parts + 1] = q(a)
  end
  local p = io.popen("env " .. table.concat(parts, " ") .. " 2>&1")
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

local sanitizer_marks = { "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:" }

-- Fail if a log shows a sanitizer report.
function H.assert_clean_log(text, what)
  for _, mark in ipairs(sanitizer_marks) do
    if text:find(mark, 1, true) then
      error((what or "log") .. " has a sanitizer report:\n" .. text, 2)
    end
  end
end

local Host = {}
Host.__index = Host

-- Start `orchestrator serve` on a free port. opts: database (URI), env (table),
-- args (extra flags). Returns a host object once it is listening.
function H.start_host(opts)
  opts = opts or {}
  local log = os.tmpname()
  local args = { H.bin, "serve", "--port", "0", "--lua-dir", H.source .. "/lua",
    "--products", opts.products or (H.source .. "/products"),
    "--migrations", H.source .. "/migrations" }
  for _, a in ipairs(opts.args or {}) do
    args[#args + 1] = a
  end
  local env = opts.env or {}
  env.DATABASE_URI = opts.database
  -- Core's default schedules start tasks on their own (every 30 s): only where a spec asks.
  if env.ORCH_SCHEDULE_DEFAULTS == nil then
    env.ORCH_SCHEDULE_DEFAULTS = "0"
  end
  -- Specs reload in quick succession; the API's reload rate limit only where a spec asks.
  if env.ORCH_RELOAD_MIN_INTERVAL_MS == nil then
    env.ORCH_RELOAD_MIN_INTERVAL_MS = "0"
  end
  local pid = proc.spawn(args, env, log)
  local host = setmetatable({ pid = pid, log_path = log }, Host)
  for _ = 1, 600 do
    local text = read_file(log) or ""
    local port = text:match("listening on http://[^:]+:(%d+)")
    if port then
      host.port = tonumber(port)
      host.base = "http://127.0.0.1:" .. port
      return host
    end
    if proc.wait(pid, true) then
      error("orchestrator exited before listening:\n" .. text, 2)
    end
    H.sleep(0.05)
  end
  host:kill()
  error("orchestrator did not start listening:\n" .. (read_file(log) or ""), 2)
end

function Host:log()
  return read_file(self.log_path) or ""
end

-- request(method, path [, body [, headers]]) -> status, body, headers, decoded JSON (or nil)
function Host:request(method, path, body, headers)
  local chunks = {}
  headers = headers or {}
  if type(body) == "table" then
    body = cjson.encode(body)
  end
  if body then
    headers["content-length"] = tostring(#body)
    headers["content-type"] = headers["content-type"] or "application/json"
  end
  local _, status, resp_headers = http.request({
    url = self.base .. path,
    method = method,
    headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  })
  local text = table.concat(chunks)
  local ok, decoded = pcall(cjson.decode, text)
  return status, text, resp_headers or {}, ok and decoded or nil
end

-- wait_status(pid, wanted [, {seconds = 20, headers = {...}}]) -> detail, text
-- Poll GET /api/processes/{pid} until last_status is one of `wanted` (a status, a list of
-- statuses or a set {status = true}); fail with the last detail and the host's log.
function Host:wait_status(pid, wanted, opts)
  opts = opts or {}
  local want = {}
  if type(wanted) == "string" then
    want[wanted] = true
  else
    for k, v in pairs(wanted) do
      want[type(k) == "number" and v or k] = true
    end
  end
  local detail, text
  local deadline = H.now() + (opts.seconds or 20)
  repeat
    local _
    _, text, _, detail = self:request("GET", "/api/processes/" .. pid, nil, opts.headers)
    if detail and want[detail.last_status] then
      return detail, text
    end
    H.sleep(0.05)
  until H.now() > deadline
  error(string.format("process %s is %s (%s), not what was waited for\n%s", pid,
    tostring(detail and detail.last_status), tostring(detail and detail.failed_reason), self:log()), 2)
end

-- SIGTERM, wait, and check a clean exit without sanitizer reports.
function Host:stop()
  if not self.pid then
    return
  end
  proc.kill(self.pid, "TERM")
  local how, code = proc.wait(self.pid)
  self.pid = nil
  local text = self:log()
  H.assert_clean_log(text, "orchestrator log")
  if how ~= "exited" or code ~= 0 then
    error(string.format("orchestrator did not exit cleanly (%s %s):\n%s", how, tostring(code), text), 2)
  end
  os.remove(self.log_path)
end

-- SIGKILL without checks (for crash tests and clean-up).
function Host:kill()
  if self.pid then
    proc.kill(self.pid, "KILL")
    proc.wait(self.pid)
    self.pid = nil
  end
end

return H
