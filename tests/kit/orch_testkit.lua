-- orch_testkit: test your products and workflows the way orchestrator-core users
-- do with run_workflow / resume_workflow, but against the real engine and a real
-- PostgreSQL. Use it from busted specs (see docs/testing.md):
--
--   local kit = require("orch_testkit")
--   local env = kit.start({ products = "products" })
--   local p = env:run_workflow("create_node", { { product = env:product_id("node Cisco") }, { ... } })
--   p:wait_for("completed")
--   env:stop()
--
-- The database is a fresh one in the test run's cluster (ctest's fixture) or, when
-- no cluster is running, in a private throwaway cluster the kit creates.

local H = require("harness")

local kit = {}

local Env = {}
Env.__index = Env
local Process = {}
Process.__index = Process

local function fail(msg, level)
  error(msg, (level or 1) + 1)
end

-- start{products = folder, workers = 2, env = {...}} -> an environment with a running host.
function kit.start(opts)
  opts = opts or {}
  local self = setmetatable({}, Env)
  local dir
  if os.getenv("ORCH_TEST_PG_STATE") and H.read_file(os.getenv("ORCH_TEST_PG_STATE")) then
    dir = H.pg_dir()
  else
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute(H.shell_quote(H.source .. "/tests/support/testpg") .. " new " .. H.shell_quote(dir)))
    self.private_cluster = dir
  end
  self.pg_dir = dir
  self.database, self.uri = H.new_database(dir)
  local products = opts.products or (H.source .. "/products")
  if products:sub(1, 1) ~= "/" then
    products = H.source .. "/" .. products
  end
  -- The core migrations, then the products folder's own (its migrations/ folder, if any).
  local code, out = H.run({ "db", "upgrade", "--migrations", H.source .. "/migrations", "--products", products },
    { DATABASE_URI = self.uri })
  if code ~= 0 then
    fail("db upgrade failed:\n" .. out, 2)
  end
  self.host = H.start_host({ database = self.uri, products = products, env = opts.env,
    args = { "--workers", tostring(opts.workers or 2) } })
  return self
end

function Env:stop()
  if self.host then
    self.host:stop()
    self.host = nil
  end
  if self.private_cluster then
    local as_pg = io.popen("id -u"):read("l") == "0" and "runuser -u postgres -- " or ""
    local bin = io.popen("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1"):read("l")
    os.execute(as_pg .. bin .. "/pg_ctl -D " .. H.shell_quote(self.private_cluster .. "/data")
      .. " -m immediate stop >/dev/null 2>&1")
    os.execute("rm -rf " .. H.shell_quote(self.private_cluster))
  end
end

-- Plain HTTP against the host. `body` (a table) is sent as JSON. Returns four values:
-- the status code, the decoded JSON body (nil when the body is not JSON), the raw body
-- text and the response headers (lower-case names).
function Env:request(method, path, body, headers)
  local status, text, hdrs, json = self.host:request(method, path, body, headers)
  return status, json, text, hdrs
end

-- SQL in the test database, as psql prints it unaligned without headers: one string,
-- columns separated by "|", rows by newlines, trailing blanks removed ("" for no rows).
-- Handy for one value: env:sql("SELECT count(*) FROM subscriptions") == "3".
-- An SQL error fails the test with psql's message.
function Env:sql(query)
  return H.psql(self.pg_dir, self.database, query)
end

-- The rows of a query (SELECT, VALUES, or a statement with RETURNING) as a list of
-- tables by column name, with JSON types: numbers are Lua numbers (integers where
-- whole), booleans booleans, NULL nil, json/jsonb columns decoded tables.
function Env:rows(query)
  local text = H.psql(self.pg_dir, self.database,
    "WITH q AS (" .. query .. ") SELECT coalesce(json_agg(q), '[]'::json) FROM q")
  local rows = H.integers(H.json.decode(text))
  local function strip(v)
    if type(v) ~= "table" then
      return v
    end
    for k, x in pairs(v) do
      if x == H.json.null then
        v[k] = nil
      else
        strip(x)
      end
    end
    return v
  end
  return strip(rows)
end

-- The first row of env:rows(query), or nil.
function Env:row(query)
  return self:rows(query)[1]
end

function Env:product_id(name)
  local id = self:sql("SELECT product_id FROM products WHERE name = '" .. name:gsub("'", "''") .. "'")
  if id == "" then
    fail("no product named '" .. name .. "'", 2)
  end
  return id
end

-- Post form pages to start a workflow. Returns status and body: 510 with the next
-- page's schema in body.form, 400 with body.validation_errors, 201 with body.id.
function Env:post_pages(workflow, pages)
  pages = pages or { {} }
  if next(pages) == nil then
    pages = "[]" -- the body must be a JSON list; cjson writes an empty table as {}
  end
  local status, json = self:request("POST", "/api/processes/" .. workflow, pages)
  return status, json
end

-- Start a workflow with all its form pages; fails the test unless it starts.
function Env:run_workflow(workflow, pages)
  local status, json = self:post_pages(workflow, pages)
  if status == 510 then
    fail("the form wants another page: " .. H.json.encode(json.form), 2)
  elseif status ~= 201 then
    fail("starting " .. workflow .. " answered " .. tostring(status) .. ": " .. H.json.encode(json), 2)
  end
  return setmetatable({ env = self, id = json.id, workflow = workflow }, Process)
end

function Process:detail()
  local status, json = self.env:request("GET", "/api/processes/" .. self.id)
  if status ~= 200 then
    fail("GET process " .. self.id .. " answered " .. tostring(status), 2)
  end
  return json
end

function Process:status()
  return self:detail().last_status
end

function Process:state()
  return self:detail().current_state
end

-- The pending input step's form (JSON Schema), or nil.
function Process:form()
  local f = self:detail().form
  return f ~= H.json.null and f or nil
end

-- Wait until the process reaches `status` (default timeout 30 s); returns the detail.
-- A process that ends in another final status fails the test with its reason.
function Process:wait_for(status, timeout)
  local final = { completed = true, failed = true, aborted = true, inconsistent_data = true, api_unavailable = true }
  local deadline = H.now() + (timeout or 30)
  local d
  repeat
    d = self:detail()
    if d.last_status == status then
      return d
    end
    if final[d.last_status] then
      fail(("process %s (%s) is %s, not %s: %s"):format(self.id, self.workflow, d.last_status, status,
        tostring(d.failed_reason)), 2)
    end
    H.sleep(0.05)
  until H.now() > deadline
  fail(("process %s (%s) is still %s after %s s, not %s"):format(self.id, self.workflow, d.last_status,
    timeout or 30, status), 2)
end

function Process:assert_complete(timeout)
  return self:wait_for("completed", timeout)
end

-- Resume a suspended process with form pages (or retry a failed one with no pages).
function Process:resume(pages)
  local status, json = self.env:request("PUT", "/api/processes/" .. self.id .. "/resume", pages or {})
  if status ~= 204 then
    fail("resume answered " .. tostring(status) .. ": " .. H.json.encode(json), 2)
  end
  return self
end

-- The callback route the process is waiting on, with its single-use token. The API
-- never shows the token (docs/security.md): it is read from the process log in the
-- database, as the external system would have got it from the step.
function Process:callback_route()
  self:wait_for("awaiting_callback")
  local token = H.psql(self.env.pg_dir, self.env.database, "SELECT state->>'__callback_token' FROM process_steps "
    .. "WHERE pid = '" .. self.id .. "' AND state ? '__callback_token' ORDER BY completed_at DESC LIMIT 1")
  if token == "" then
    fail("process " .. self.id .. " waits for a callback but has no callback token", 3)
  end
  return "/api/processes/" .. self.id .. "/callback/" .. token
end

-- Post the external system's answer to the callback route the process is waiting on.
function Process:callback(payload)
  local status, json = self.env:request("POST", self:callback_route(), payload or {})
  if status ~= 200 then
    fail("callback answered " .. tostring(status) .. ": " .. H.json.encode(json), 2)
  end
  return self
end

-- The names and statuses of the logged steps, e.g. {"Start:success", ...}.
function Process:step_log()
  local out = {}
  for _, s in ipairs(self:detail().steps) do
    if s.status ~= "pending" then
      out[#out + 1] = s.name .. ":" .. s.status
    end
  end
  return out
end

return kit
