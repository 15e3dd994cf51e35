-- GET /api/metrics: the Prometheus text exposition follows the format's rules,
-- and its counters move as a run does (steps, processes, HTTP requests,
-- hand-offs, reloads, leases). The exposition rules themselves are also checked
-- in C (tests/c/test_metrics.c).
local H = require("harness")

describe("metrics", function()
  local dir, name, uri, host

  setup(function()
    dir = H.pg_dir()
    name, uri = H.new_database()
    H.migrate(uri)
    host = H.start_host({ database = uri, products = H.source .. "/tests/fixtures/engine_products",
      args = { "--workers", "2" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  local NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*"

  -- Parse an exposition: checks the line grammar, HELP/TYPE before a family's
  -- samples, histogram buckets cumulative and ending in +Inf = _count.
  -- Returns samples[name .. "{" .. labels .. "}"] = value and types[family].
  local function parse(text)
    local samples, types, seen_help = {}, {}, {}
    local hist = {}
    assert.are.equal("\n", text:sub(-1), "the exposition ends with a newline")
    for line in text:gmatch("([^\n]*)\n") do
      if line:sub(1, 1) == "#" then
        local kind, fam, rest = line:match("^# (%u+) (" .. NAME .. ") (.*)$")
        if kind == "HELP" then
          assert.is_nil(seen_help[fam], "one HELP per family: " .. fam)
          seen_help[fam] = true
        elseif kind == "TYPE" then
          assert.is_nil(types[fam], "one TYPE per family: " .. fam)
          assert.truthy(({ counter = true, gauge = true, histogram = true })[rest], line)
          types[fam] = rest
        else
          assert.truthy(line:match("^# database unavailable"), "comment line: " .. line)
        end
      else
        local sname, labels, value = line:match("^(" .. NAME .. ")({?.-}?) (%S+)$")
        assert.truthy(sname, "sample line: " .. line)
        local v = tonumber(value) or (value == "+Inf" and math.huge) or nil
        assert.truthy(v, "value of " .. line)
        local fam = sname
        local suffix
        for _, s in ipairs({ "_bucket", "_sum", "_count" }) do
          if sname:sub(-#s) == s and types[sname:sub(1, -#s - 1)] == "histogram" then
            fam, suffix = sname:sub(1, -#s - 1), s
          end
        end
        assert.truthy(types[fam], "TYPE before the samples of " .. fam)
        if types[fam] == "counter" then
          assert.truthy(fam:match("_total$"), "a counter's name ends in _total: " .. fam)
        end
        -- Labels: name="value" pairs, values escaped.
        local inner = labels:match("^{(.*)}$") or ""
        local rest = inner
        local le, others = nil, {}
        while rest ~= "" do
          -- a value ends at the first quote not preceded by a backslash
          local key, pos = rest:match('^(' .. NAME .. ')="()')
          assert.truthy(key, "label pair in " .. line)
          local i = pos
          while true do
            local c = rest:sub(i, i)
            assert.truthy(c ~= "", "unterminated label value in " .. line)
            if c == "\\" then
              assert.truthy(({ ["\\"] = true, ['"'] = true, n = true })[rest:sub(i + 1, i + 1)],
                "escape in " .. line)
              i = i + 2
            elseif c == '"' then
              break
            else
              i = i + 1
            end
          end
          local val = rest:sub(pos, i - 1)
          rest = rest:sub(i + 1):gsub("^,", "")
          if key == "le" then
            le = val
          else
            others[#others + 1] = key .. "=" .. val
          end
        end
        if suffix == "_bucket" then
          assert.truthy(le, "a bucket has le: " .. line)
          local id = fam .. "{" .. table.concat(others, ",") .. "}"
          local h = hist[id] or { last = -1, bound = -math.huge }
          hist[id] = h
          local bound = le == "+Inf" and math.huge or tonumber(le)
          assert.truthy(bound > h.bound, "buckets ascend: " .. line)
          assert.truthy(v >= h.last, "buckets are cumulative: " .. line)
          h.bound, h.last = bound, v
          if bound == math.huge then
            h.inf = v
          end
        elseif suffix == "_count" then
          local id = fam .. "{" .. table.concat(others, ",") .. "}"
          assert.truthy(hist[id] and hist[id].inf == v, "+Inf bucket equals _count: " .. line)
        end
        samples[sname .. labels] = v
      end
    end
    return samples, types
  end

  local function scrape()
    local status, body, headers = host:request("GET", "/api/metrics")
    assert.are.equal(200, status, body)
    assert.truthy((headers["content-type"] or ""):find("text/plain; version=0.0.4", 1, true))
    return parse(body)
  end

  local function start(workflow)
    local status, body, _, json = host:request("POST", "/api/processes/" .. workflow, "[{}]")
    assert.are.equal(201, status, body)
    return json.id
  end

  it("follows the exposition format and moves with a run", function()
    local before, types = scrape()
    assert.are.equal("histogram", types.orch_step_duration_seconds)
    assert.are.equal("histogram", types.orch_http_request_duration_seconds)
    assert.are.equal("gauge", types.orch_processes)
    assert.are.equal(0, before['orch_queue_depth'])
    assert.is_nil(before['orch_steps_total{workflow="test_ten_steps",status="success"}'])

    local ten = start("test_ten_steps")
    local slow = start("test_slow_ten_steps")
    -- During the run: the slow process is queued or leased, and some steps are counted.
    local during
    for _ = 1, 100 do
      during = scrape()
      if (during['orch_steps_total{workflow="test_slow_ten_steps",status="success"}'] or 0) > 0 then
        break
      end
      H.sleep(0.02)
    end
    assert.truthy(during['orch_steps_total{workflow="test_slow_ten_steps",status="success"}'] > 0)
    host:wait_status(ten, "completed")
    host:wait_status(slow, "completed")
    local fails = start("test_fails")
    host:wait_status(fails, "failed")

    local after = scrape()
    -- Start + ten steps + Done, each recorded once.
    local ten_steps = (after['orch_steps_total{workflow="test_ten_steps",status="success"}'] or 0)
      + (after['orch_steps_total{workflow="test_ten_steps",status="complete"}'] or 0)
    assert.are.equal(12, ten_steps)
    assert.are.equal(1, after['orch_steps_total{workflow="test_fails",status="failed"}'])
    assert.are.equal(ten_steps, after['orch_step_duration_seconds_count{workflow="test_ten_steps"}'])
    assert.truthy(after['orch_step_duration_seconds_sum{workflow="test_ten_steps"}'] > 0)
    assert.truthy(after["orch_step_handoff_seconds_count"] > 0)
    assert.truthy(after["orch_claims_total"] >= 3)
    assert.are.equal(1, after['orch_processes{workflow="test_ten_steps",status="completed"}'])
    assert.are.equal(1, after['orch_processes{workflow="test_slow_ten_steps",status="completed"}'])
    assert.are.equal(1, after['orch_processes{workflow="test_fails",status="failed"}'])
    assert.are.equal(0, after["orch_queue_depth"])
    assert.are.equal(0, after["orch_leases_held"])
    -- Three starts through the API, each counted once with its status.
    assert.are.equal(3, after['orch_http_requests_total{action="processes.start",status="201"}'])
    assert.truthy(after['orch_http_request_duration_seconds_count{action="processes.start"}'] >= 3)
    -- Unmatched routes are counted under "none".
    local before404 = after['orch_http_requests_total{action="none",status="404"}'] or 0
    host:request("GET", "/api/no-such-route")
    local s = scrape()
    assert.are.equal(before404 + 1, s['orch_http_requests_total{action="none",status="404"}'])
    assert.truthy(s["orch_lua_memory_bytes"] > 0)
    assert.truthy(s["orch_resident_memory_bytes"] > 0)
  end)

  it("has every metric the Grafana dashboard and docs/operations.md name", function()
    local _, types = scrape()
    for _, file in ipairs({ "/examples/grafana/dashboard.json", "/docs/operations.md" }) do
      local f = assert(io.open(H.source .. file))
      local text = f:read("a")
      f:close()
      local n = 0
      -- (in the docs: the metric tables' rows, not table names such as orch_work_queue)
      local names = file:match("%.md$") and text:gmatch("\n| `(orch_[%w_]+)`") or text:gmatch("orch_[%w_]+")
      for metric in names do
        local family = metric:gsub("_bucket$", "")
        assert.is_string(types[family], file .. " names " .. metric .. ", which /api/metrics does not have")
        n = n + 1
      end
      assert.is_true(n >= 15, file)
    end
  end)

  it("counts reloads and shows the generation", function()
    local before = scrape()
    local generation = before["orch_scripts_generation"]
    assert.truthy(generation >= 1)
    local status, body = host:request("POST", "/api/settings/reload")
    assert.are.equal(200, status, body)
    local after = scrape()
    assert.are.equal((before['orch_reloads_total{result="ok"}'] or 0) + 1, after['orch_reloads_total{result="ok"}'])
    assert.are.equal(generation + 1, after["orch_scripts_generation"])
  end)

  it("counts a lease taken over from a host that died", function()
    local before = scrape()
    H.psql(dir, name, [[WITH p AS (INSERT INTO processes (workflow_id, last_status)
        SELECT workflow_id, 'running' FROM workflows WHERE name = 'test_ten_steps' RETURNING pid)
      INSERT INTO orch_work_queue (pid, lease_owner, lease_token, lease_expires, run_at)
        SELECT pid, 'dead-host', gen_random_uuid(), now() - interval '1 second', now() - interval '1 second'
        FROM p]])
    local after
    for _ = 1, 100 do
      after = scrape()
      if after["orch_queue_depth"] == 0 then
        break
      end
      H.sleep(0.05)
    end
    assert.are.equal(0, after["orch_queue_depth"])
    assert.are.equal((before["orch_leases_taken_over_total"] or 0) + 1, after["orch_leases_taken_over_total"])
  end)

  it("writes JSON log lines with the request id and the process id (ORCH_LOG_FORMAT=json)", function()
    host:stop()
    host = nil
    -- A catalogue of one task whose step logs, in a database of its own.
    local products = os.tmpname()
    os.remove(products)
    assert(os.execute("mkdir -p " .. H.shell_quote(products)))
    local f = assert(io.open(products .. "/logs.lua", "w"))
    f:write([[orch.workflows.task({ name = "test_logs", description = "Logs in its step",
      steps = { orch.workflow.step("Say", function() orch.log.info("hello from a step"); return {} end) } })
]])
    f:close()
    local _, uri2 = H.new_database()
    H.migrate(uri2, products)
    host = H.start_host({ database = uri2, products = products, args = { "--workers", "1" },
      env = { ORCH_LOG_FORMAT = "json" } })
    local status, _, headers = host:request("GET", "/api/settings/status")
    assert.are.equal(200, status)
    local request_id = headers["x-request-id"]
    assert.is_string(request_id)
    local pid = start("test_logs")
    host:wait_status(pid, "completed")
    os.execute("rm -rf " .. H.shell_quote(products))
    local access, step_line
    for _ = 1, 50 do
      for line in host:log():gmatch("[^\n]+") do
        local ok, rec = pcall(H.json.decode, line)
        assert.is_true(ok and type(rec) == "table", "a JSON object per line: " .. line)
        assert.is_string(rec.time)
        assert.is_string(rec.level)
        assert.is_string(rec.module)
        assert.is_string(rec.message)
        if rec.module == "access" and rec.request_id == request_id then
          access = rec
        end
        if rec.process_id == pid and rec.message:find("hello from a step", 1, true) then
          step_line = rec
        end
      end
      if access and step_line then
        break
      end
      H.sleep(0.1)
    end
    assert.is_table(access, "the access line carries the request id")
    assert.truthy(access.message:find("GET /api/settings/status", 1, true))
    assert.is_table(step_line, "a line logged while the step ran carries the process id")
  end)
end)
