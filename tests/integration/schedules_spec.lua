-- Scheduled tasks (docs/schedules.md): cron arithmetic in a zone with DST (through the
-- database's tz data), schedules defined in Lua and synced, core's schedule API and its
-- answers, GraphQL scheduledTasks, misfire policies after a host was down, exactly-once
-- firing with two hosts on one database, and a run whose claimer died.
local H = require("harness")
local cjson = require("cjson")

local invoke_bin = assert(os.getenv("ORCH_INVOKE"), "ORCH_INVOKE is not set")
local products = "tests/fixtures/schedule_products"

describe("schedules", function()
  local dir, name, uri
  local hosts = {}

  local function sql(q)
    return H.psql(dir, name, q)
  end

  local function start_host(env)
    env = env or {}
    env.ORCH_SCHEDULE_TICK_MS = env.ORCH_SCHEDULE_TICK_MS or "200"
    local host = H.start_host({ database = uri, products = H.source .. "/" .. products, env = env,
      args = { "--workers", "1" } })
    hosts[#hosts + 1] = host
    return host
  end

  local function stop_all()
    for _, h in ipairs(hosts) do
      h:stop()
    end
    hosts = {}
  end

  local function wait_until(what, fn, seconds)
    for _ = 1, (seconds or 20) * 20 do
      if fn() then
        return
      end
      H.sleep(0.05)
    end
    error("timed out waiting for " .. what .. "\n" .. (hosts[1] and hosts[1]:log() or ""))
  end

  local function invoke(func, arg)
    local cmd = string.format("%s --database %s --lua-dir %s --products %s orch.schedules %s %s 2>&1",
      H.shell_quote(invoke_bin), H.shell_quote(uri), H.shell_quote(H.source .. "/lua"), H.shell_quote(products),
      func, H.shell_quote(cjson.encode(arg)))
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok = p:close()
    H.assert_clean_log(out, "orch_invoke")
    assert(ok, "orch_invoke " .. func .. " failed:\n" .. out)
    return cjson.decode(out)
  end

  setup(function()
    dir = H.pg_dir()
    name, uri = H.new_database()
    H.migrate(uri)
  end)

  teardown(function()
    stop_all()
  end)

  describe("next due times", function()
    it("follows a daily cron through the spring DST gap of Europe/Amsterdam", function()
      local times = invoke("preview", { trigger = "cron", trigger_kwargs = { crontab = "30 2 * * *" },
        timezone = "Europe/Amsterdam", after = 1806148800, count = 2 }) -- 2027-03-27 12:00 UTC
      -- 02:30 does not exist on 2027-03-28: PostgreSQL's rule places it at 01:30 UTC (03:30 CEST).
      assert.are.same({ 1806197400, 1806280200 }, H.integers(times))
    end)

    it("runs a daily cron once on the day the clocks go back", function()
      local times = invoke("preview", { trigger = "cron", trigger_kwargs = { crontab = "30 2 * * *" },
        timezone = "Europe/Amsterdam", after = 1824897600, count = 2 }) -- 2027-10-30 12:00 UTC
      assert.are.equal(2, #times)
      -- one run on 2027-10-31 (02:30 happens twice; one of them), the next on 2027-11-01 at 01:30 UTC
      assert.is_true(times[1] == 1824942600 or times[1] == 1824946200, tostring(times[1]))
      assert.are.equal(1825032600, times[2])
    end)

    it("runs an hourly cron once per wall-clock time across the repeated hour", function()
      local times = invoke("preview", { trigger = "cron", trigger_kwargs = { minute = 30 },
        timezone = "Europe/Amsterdam", after = 1824937200, count = 4 }) -- 2027-10-30 23:00 UTC
      -- 01:30 CEST, then 02:30 (PostgreSQL takes the second, CET, instance of the repeated hour), 03:30, 04:30
      assert.are.same({ 1824939000, 1824946200, 1824949800, 1824953400 }, H.integers(times))
    end)

    it("names the script line of a time zone PostgreSQL does not know, and syncs nothing", function()
      local cmd = string.format("%s --database %s --lua-dir %s --products %s orch.schedules sync '{}' 2>&1",
        H.shell_quote(invoke_bin), H.shell_quote(uri), H.shell_quote(H.source .. "/lua"),
        H.shell_quote("tests/fixtures/schedule_bad_zone"))
      local p = io.popen(cmd)
      local out = p:read("a")
      assert.is_nil(p:close(), out)
      H.assert_clean_log(out, "orch_invoke")
      assert.truthy(out:find("zones.lua:4: schedule 'on mars': unknown time zone 'Mars/Olympus'", 1, true), out)
      assert.are.equal("0", sql("SELECT count(*) FROM orch_schedules"))
    end)

    it("counts intervals from their anchor and ends one-off dates", function()
      assert.are.same({ 1796407690, 1796412190 }, H.integers(invoke("preview", { trigger = "interval",
        trigger_kwargs = { hours = 1, minutes = 15 }, after = 1796406790, anchor = 1796403190, count = 2 })))
      assert.are.same({ 1798761600 }, H.integers(invoke("preview", { trigger = "date",
        trigger_kwargs = { run_date = "2027-01-01T00:00:00Z" }, after = 1796406790, count = 3 })))
      assert.are.same({ 1798758000 }, H.integers(invoke("preview", { trigger = "date",
        trigger_kwargs = { run_date = "2027-01-01T00:00:00" }, timezone = "Europe/Amsterdam", after = 1796406790,
        count = 1 })))
    end)
  end)

  describe("over the API and in Lua", function()
    local host, tick_id

    setup(function()
      host = start_host({ ORCH_SCHEDULE_DEFAULTS = "1" })
      tick_id = sql("SELECT workflow_id FROM workflows WHERE name = 'task_tick'")
      -- the script schedules are synced before serving
      wait_until("the late runs", function()
        return sql("SELECT count(*) FROM orch_schedule_runs WHERE status IN ('started', 'skipped')") == "2"
      end)
    end)

    it("syncs the schedules of the scripts and applies their misfire policy", function()
      assert.are.equal("late once|script|started\nlate skip|script|skipped\nnightly amsterdam|script|",
        sql([[SELECT s.name, s.source, coalesce(r.status, '') FROM orch_schedules s
              LEFT JOIN orch_schedule_runs r USING (schedule_id) WHERE s.source = 'script' ORDER BY 1]]))
      assert.are.equal("0", sql([[SELECT count(*) FROM processes p JOIN workflows w USING (workflow_id)
                                  WHERE w.name = 'task_late_skip']]))
      local pid = sql([[SELECT p.pid FROM processes p JOIN workflows w USING (workflow_id)
                        WHERE w.name = 'task_late_once']])
      assert.are.equal(36, #pid)
      assert.are.equal("scheduler", sql("SELECT created_by FROM processes WHERE pid = '" .. pid .. "'"))
      assert.are.equal("from the script", sql([[SELECT input_state ->> 'note' FROM input_states
                                                WHERE pid = ']] .. pid .. "'"))
      -- a date that passed has no next time
      assert.are.equal("", sql("SELECT coalesce(next_run_time::text, '') FROM orch_schedules WHERE name = 'late once'"))
    end)

    it("loads core's default schedules for the tasks that have none", function()
      assert.are.equal(table.concat({
        "Task Clean Up Tasks|interval|{\"hours\": 6}",
        "Task Resume Workflows|interval|{\"hours\": 1}",
        "Task Validate Awaiting Callbacks|interval|{\"seconds\": 30}",
        "Task Validate Products|cron|{\"hour\": 2, \"minute\": 30}",
        "Task Validate Subscriptions|cron|{\"hour\": 0, \"minute\": 10}",
      }, "\n"), sql("SELECT name, trigger, trigger_kwargs FROM orch_schedules WHERE source = 'default' ORDER BY 1"))
    end)

    it("creates, updates and deletes with core's answers", function()
      local status, _, _, body = host:request("POST", "/api/schedules/", { name = "every hour", workflow_name =
        "task_tick", workflow_id = tick_id, trigger = "interval", trigger_kwargs = { hours = 1 } })
      assert.are.equal(201, status)
      assert.are.same({ message = "Added to Create Queue", status = "CREATED" }, body)
      local id = sql("SELECT schedule_id FROM orch_schedules WHERE name = 'every hour'")
      assert.are.equal("t", sql("SELECT next_run_time BETWEEN now() + interval '59 min' AND now() + interval '61 min'"
        .. " FROM orch_schedules WHERE schedule_id = '" .. id .. "'"))

      status, _, _, body = host:request("PUT", "/api/schedules/", { schedule_id = id, name = "renamed",
        trigger = "cron", trigger_kwargs = { crontab = "0 3 * * *" } })
      assert.are.equal(200, status)
      assert.are.same({ message = "Added to Update Queue", status = "UPDATED" }, body)
      assert.are.equal("renamed|cron|03:00:00", sql("SELECT name, trigger, (next_run_time AT TIME ZONE 'UTC')::time"
        .. " FROM orch_schedules WHERE schedule_id = '" .. id .. "'"))

      status, _, _, body = host:request("DELETE", "/api/schedules/", { workflow_id = tick_id, schedule_id = id })
      assert.are.equal(200, status)
      assert.are.same({ message = "Added to Delete Queue", status = "DELETED" }, body)
      assert.are.equal("0", sql("SELECT count(*) FROM orch_schedules WHERE schedule_id = '" .. id .. "'"))
    end)

    it("refuses bad bodies with 422, unknown tasks and schedules with 404, script schedules with 409", function()
      local function post(body)
        local status, _, _, json = host:request("POST", "/api/schedules/", body)
        return status, json
      end
      local status, body = post({ workflow_name = "task_tick", workflow_id = tick_id, trigger = "cron",
        trigger_kwargs = { minute = "61" } })
      assert.are.equal(422, status)
      assert.are.same({ "body", "trigger_kwargs" }, body.detail[1].loc)
      assert.truthy(body.detail[1].msg:find("61 is outside 0 to 59", 1, true), body.detail[1].msg)
      status, body = post({ workflow_name = "task_tick", workflow_id = tick_id, trigger = "weekly" })
      assert.are.equal(422, status)
      assert.are.same({ "body", "trigger" }, body.detail[1].loc)
      status, body = post({ workflow_name = "task_tick", trigger = "interval", trigger_kwargs = { hours = 1 } })
      assert.are.equal(422, status)
      assert.are.same({ "body", "workflow_id" }, body.detail[1].loc)
      assert.are.equal("missing", body.detail[1].type)
      status = post({ workflow_name = "task_tick", workflow_id = tick_id, trigger = "interval",
        trigger_kwargs = { hours = 1, fortnights = 2 } })
      assert.are.equal(422, status)
      status = post({ workflow_name = "task_tick", workflow_id = tick_id, trigger = "cron",
        trigger_kwargs = { hour = 1, timezone = "Mars/Olympus" } })
      assert.are.equal(422, status)
      -- dates are checked before anything is computed from them (a 500 before)
      for _, kwargs in ipairs({ { run_date = "garbage" }, { run_date = "2027-02-30T00:00:00Z" }, { run_date = 5 } }) do
        status, body = post({ workflow_name = "task_tick", workflow_id = tick_id, trigger = "date",
          trigger_kwargs = kwargs })
        assert.are.equal(422, status, cjson.encode(kwargs))
        assert.are.same({ "body", "trigger_kwargs" }, body.detail[1].loc)
        assert.truthy(body.detail[1].msg:find("run_date", 1, true), body.detail[1].msg)
      end
      -- a period whose next time PostgreSQL cannot store (a 500 before)
      status, body = post({ workflow_name = "task_tick", workflow_id = tick_id, trigger = "interval",
        trigger_kwargs = { days = 1e9 } })
      assert.are.equal(422, status)
      assert.truthy(body.detail[1].msg:find("at most", 1, true), body.detail[1].msg)
      status, body = post({ workflow_name = "task_tick", workflow_id = tick_id, trigger = "interval",
        trigger_kwargs = { hours = 1, start_date = "soon" } })
      assert.are.equal(422, status)
      assert.truthy(body.detail[1].msg:find("start_date", 1, true), body.detail[1].msg)
      status, body = post({ workflow_name = "no_such_task", workflow_id = tick_id, trigger = "interval",
        trigger_kwargs = { hours = 1 } })
      assert.are.equal(404, status)
      assert.are.equal("Task does not exist", body.detail)
      status = host:request("PUT", "/api/schedules/", { schedule_id = "00000000-0000-4000-8000-000000000000" })
      assert.are.equal(404, status)
      status = host:request("DELETE", "/api/schedules/", { workflow_id = "00000000-0000-4000-8000-000000000000" })
      assert.are.equal(404, status)
      local script_id = sql("SELECT schedule_id FROM orch_schedules WHERE name = 'nightly amsterdam'")
      local _
      status, _, _, body = host:request("PUT", "/api/schedules/", { schedule_id = script_id, name = "x" })
      assert.are.equal(409, status)
      assert.truthy(body.detail:find("tasks.lua:", 1, true), body.detail)
      status = host:request("POST", "/api/schedules/", "[1, 2]")
      assert.are.equal(422, status)
      assert.are.equal("0", sql("SELECT count(*) FROM orch_schedules WHERE source = 'api'"))
    end)

    it("lists the schedules in GraphQL scheduledTasks as the UI asks for them", function()
      local status, _, _, body = host:request("POST", "/api/graphql", { query = [[
        query ScheduledTasks($first: Int!, $after: Int!, $sortBy: [GraphqlSort!]) {
          scheduledTasks(first: $first, after: $after, sortBy: $sortBy) {
            page { id name nextRunTime trigger workflowId }
            pageInfo { totalItems startCursor endCursor hasNextPage }
          }
        }]], variables = { first = 15, after = 0, sortBy = { { field = "name", order = "ASC" } } } })
      assert.are.equal(200, status)
      assert.is_nil(body.errors)
      local page = body.data.scheduledTasks.page
      local by_name = {}
      for _, t in ipairs(page) do
        by_name[t.name] = t
      end
      assert.are.equal(8, body.data.scheduledTasks.pageInfo.totalItems)
      assert.are.equal("Task Clean Up Tasks", page[1].name)
      assert.are.equal("interval[1:00:00]", by_name["Task Resume Workflows"].trigger)
      assert.are.equal("cron[hour='0', minute='10']", by_name["Task Validate Subscriptions"].trigger)
      assert.are.equal("cron[crontab='30 2 * * *', timezone='Europe/Amsterdam']",
        by_name["nightly amsterdam"].trigger)
      assert.truthy(by_name["nightly amsterdam"].nextRunTime:match("^%d%d%d%d%-%d%d%-%d%dT00:30:00")
        or by_name["nightly amsterdam"].nextRunTime:match("^%d%d%d%d%-%d%d%-%d%dT01:30:00"))
      assert.are.equal(sql("SELECT workflow_id FROM workflows WHERE name = 'task_cron'"),
        by_name["nightly amsterdam"].workflowId)
      assert.are.equal(cjson.null, by_name["late once"].nextRunTime)
    end)

    it("runs a schedule by hand from the command line", function()
      local id = sql("SELECT schedule_id FROM orch_schedules WHERE name = 'nightly amsterdam'")
      local code, out = H.run({ "schedule", "run", id, "--lua-dir", H.source .. "/lua", "--products",
        H.source .. "/" .. products }, { DATABASE_URI = uri })
      assert.are.equal(0, code, out)
      local pid = out:match("started process (%x+%-[%x%-]+)")
      assert.truthy(pid, out)
      assert.are.equal("task_cron", sql([[SELECT w.name FROM processes p JOIN workflows w USING (workflow_id)
                                         WHERE p.pid = ']] .. pid .. "'"))
      code, out = H.run({ "schedule", "list", "--lua-dir", H.source .. "/lua", "--products",
        H.source .. "/" .. products }, { DATABASE_URI = uri })
      assert.are.equal(0, code, out)
      assert.truthy(out:find("nightly amsterdam%s+script%s+%d%d%d%d%-"), out)
    end)

    teardown(stop_all)
  end)

  describe("firing", function()
    local tick_id

    setup(function()
      tick_id = sql("SELECT workflow_id FROM workflows WHERE name = 'task_tick'")
    end)

    after_each(stop_all)

    it("runs 50 schedules due in the same second exactly once with two hosts", function()
      sql("DELETE FROM orch_schedule_runs; DELETE FROM processes; DELETE FROM orch_schedules WHERE source = 'api'")
      local due = sql("SELECT to_char((now() + interval '4 s') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
      local a = start_host()
      start_host()
      for i = 1, 50 do
        local status = a:request("POST", "/api/schedules/", { name = "same second " .. i, workflow_name = "task_tick",
          workflow_id = tick_id, trigger = "date", trigger_kwargs = { run_date = due },
          user_inputs = { { note = tostring(i) } } })
        assert.are.equal(201, status)
      end
      wait_until("50 started runs", function()
        return sql("SELECT count(*) FROM orch_schedule_runs WHERE status = 'started'") == "50"
      end, 30)
      H.sleep(1.5) -- several more ticks on both hosts
      assert.are.equal("50|50", sql("SELECT count(*), count(DISTINCT schedule_id) FROM orch_schedule_runs"))
      assert.are.equal("50|50", sql([[SELECT count(*), count(DISTINCT i.input_state ->> 'note') FROM processes p
        JOIN workflows w USING (workflow_id) JOIN input_states i USING (pid) WHERE w.name = 'task_tick']]))
      -- the runs were shared out between the hosts or taken by one; either way each ran once
      assert.are.equal("0",
        sql("SELECT count(*) FROM orch_schedules WHERE source = 'api' AND next_run_time IS NOT NULL"))
    end)

    it("starts once a run whose claimer died, whether or not its process was created", function()
      sql("DELETE FROM orch_schedule_runs; DELETE FROM processes; DELETE FROM orch_schedules WHERE source = 'api'")
      local host = start_host({ ORCH_SCHEDULE_TICK_MS = "60000" }) -- only the first tick, at start
      local status = host:request("POST", "/api/schedules/", { name = "orphan", workflow_name = "task_tick",
        workflow_id = tick_id, trigger = "interval", trigger_kwargs = { days = 1 } })
      assert.are.equal(201, status)
      local id = sql("SELECT schedule_id FROM orch_schedules WHERE name = 'orphan'")
      -- Two runs a dead host claimed: for the second it had already created the process.
      sql(string.format([[INSERT INTO orch_schedule_runs (schedule_id, due_at, status, claimed_by, claimed_until)
        VALUES ('%s', 'epoch'::timestamptz + interval '1000 s', 'starting', 'dead/1', now() - interval '1 s'),
               ('%s', 'epoch'::timestamptz + interval '2000 s', 'starting', 'dead/1', now() - interval '1 s')]],
        id, id))
      local key = string.format("schedule:%s:%.3f", id, 2000)
      local s2, _, _, started = host:request("POST", "/api/processes/task_tick", { {} }, { ["Idempotency-Key"] = key })
      assert.are.equal(201, s2)
      host:stop()
      hosts = {}
      start_host()
      wait_until("both runs started", function()
        return sql("SELECT count(*) FROM orch_schedule_runs WHERE status = 'started'") == "2"
      end)
      assert.are.equal("2", sql("SELECT count(*) FROM processes"))
      assert.are.equal(started.id, sql(string.format([[SELECT pid FROM orch_schedule_runs
        WHERE schedule_id = '%s' AND due_at = 'epoch'::timestamptz + interval '2000 s']], id)))
    end)

    it("applies the misfire policy to a schedule missed while every host was down", function()
      sql("DELETE FROM orch_schedule_runs; DELETE FROM processes; DELETE FROM orch_schedules WHERE source = 'default'")
      -- As if the hosts had been down for ten nights: run_once coalesces, skip drops.
      sql([[UPDATE orch_schedules SET next_run_time = now() - interval '10 days' WHERE name = 'nightly amsterdam';
            INSERT INTO orch_schedules (schedule_id, name, workflow_name, trigger, trigger_kwargs, misfire, source,
              next_run_time)
            VALUES ('11111111-1111-4111-8111-111111111111', 'missed skip', 'task_cron', 'cron',
              '{"minute": 0}', 'skip', 'api', now() - interval '10 hours')]])
      start_host()
      wait_until("both misfires handled", function()
        return sql("SELECT count(*) FROM orch_schedule_runs WHERE status IN ('started', 'skipped')") == "2"
      end)
      H.sleep(1)
      assert.are.equal("missed skip|skipped\nnightly amsterdam|started", sql([[SELECT s.name, r.status
        FROM orch_schedule_runs r JOIN orch_schedules s USING (schedule_id) ORDER BY 1]]))
      assert.are.equal("t", sql([[SELECT bool_and(next_run_time > now()) FROM orch_schedules
                                  WHERE name IN ('nightly amsterdam', 'missed skip')]]))
      assert.are.equal("1", sql("SELECT count(*) FROM processes"))
    end)
  end)
end)
