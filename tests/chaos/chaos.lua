-- Chaos harness (docs/testing.md, "Chaos"): three hosts (two `serve`, one `worker`) on a
-- PostgreSQL cluster of its own run a mixed load while a seeded fault schedule kills,
-- stops and disconnects them and restarts the database. After every cycle the invariants
-- are checked from the database alone.
--
--   lua5.4 tests/chaos/chaos.lua [--seed N] [--cycles N] [--max-outage S] [--lease S]
--
-- Environment: ORCH_BIN, ORCH_SOURCE_DIR (as for the integration specs); package.path
-- must reach tests/support (harness.lua) and package.cpath the testproc module.
-- Exit status 0 when every invariant held, 1 otherwise; the figures are printed at the end.
local H = require("harness")
local proc = H.proc
local q = H.shell_quote

-- ---- options ----
local opts = { seed = os.time() % 1000000, cycles = 20, max_outage = 5, lease = 3, hosts = 3 }
do
  local i = 1
  while i <= #arg do
    local k, v = arg[i], arg[i + 1]
    local name = k:match("^%-%-([%w%-]+)$")
    if not name or v == nil then
      io.stderr:write("usage: chaos.lua [--seed N] [--cycles N] [--max-outage S] [--lease S] [--hosts 2|3]\n")
      os.exit(2)
    end
    opts[name:gsub("%-", "_")] = tonumber(v)
    i = i + 2
  end
end
math.randomseed(opts.seed)
print(string.format("chaos: seed %d (replay with --seed %d), %d cycles, lease %d s, outages up to %d s",
  opts.seed, opts.seed, opts.cycles, opts.lease, opts.max_outage))

local function say(fmt, ...)
  io.stdout:write(string.format("[%7.1f] " .. fmt .. "\n", H.now() - (opts.t0 or H.now()), ...))
  io.stdout:flush()
end

-- ---- the cluster ----
local pg = {}
pg.bin = io.popen("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1"):read("l")
pg.dir = os.tmpname()
os.remove(pg.dir)
local as_pg = io.popen("id -u"):read("l") == "0" and "runuser -u postgres -- " or ""

local function pg_ctl(action)
  local cmd = string.format("%s%s/pg_ctl -D %s/data -l %s/server.log -w -t 60 -o %s %s >/dev/null 2>&1",
    as_pg, pg.bin, pg.dir, pg.dir,
    q("-k " .. pg.dir .. " -c listen_addresses='' -c fsync=off -c max_connections=300"), action)
  return os.execute(cmd)
end

assert(os.execute(q(H.source .. "/tests/support/testpg") .. " new " .. q(pg.dir)))
local dbname, uri = H.new_database(pg.dir)
local products = H.source .. "/tests/fixtures/chaos"
H.migrate(uri, products)
pg.up = true

-- psql that survives the database being away: nil when it failed.
local function sql(text)
  local p = io.popen(string.format("psql -X -q -At -v ON_ERROR_STOP=1 -h %s -U postgres -d %s -c %s 2>/dev/null",
    q(pg.dir), q(dbname), q(text)))
  local out = p:read("a")
  local ok = p:close()
  if not ok then
    return nil
  end
  return (out:gsub("%s+$", ""))
end
local function must(text)
  for _ = 1, 100 do
    local out = sql(text)
    if out then
      return out
    end
    H.sleep(0.2)
  end
  error("psql failed: " .. text)
end
local function rows(text)
  local list = {}
  for line in (must(text) .. "\n"):gmatch("([^\n]*)\n") do
    if line ~= "" then
      local cols = {}
      for c in (line .. "|"):gmatch("([^|]*)|") do
        cols[#cols + 1] = c
      end
      list[#list + 1] = cols
    end
  end
  return list
end

-- ---- hosts ----
local hosts = {}
local host_env = { ORCH_LEASE_SECONDS = tostring(opts.lease) }

local function copy(t)
  local c = {}
  for k, v in pairs(t) do
    c[k] = v
  end
  return c
end

local function start_host(i)
  local kind = i == 3 and "worker" or "serve"
  local h
  if kind == "serve" then
    h = H.start_host({ database = uri, products = products, env = copy(host_env), args = { "--workers", "2" } })
  else
    local log = os.tmpname()
    local env = copy(host_env)
    env.DATABASE_URI = uri
    env.ORCH_SCHEDULE_DEFAULTS = "0"
    local pid = proc.spawn({ H.bin, "worker", "--lua-dir", H.source .. "/lua", "--products", products,
      "--migrations", H.source .. "/migrations", "--workers", "2" }, env, log)
    h = setmetatable({ pid = pid, log_path = log }, getmetatable(hosts[1]))
  end
  h.kind, h.index = kind, i
  hosts[i] = h
  return h
end

for i = 1, opts.hosts do
  start_host(i)
end

local function serve_hosts()
  local list = {}
  for _, h in ipairs(hosts) do
    if h.kind == "serve" and h.pid and not h.stopped then
      list[#list + 1] = h
    end
  end
  return list
end

local function pick(list)
  return list[math.random(#list)]
end

-- ---- figures ----
local fig = {
  cycles = 0, faults = {}, processes = 0, starts_sent = 0, duplicate_starts = 0, lost = 0, duplicates = 0,
  stuck = 0, wrong_end = 0, double_transitions = 0, worst_recovery = 0, recoveries = {}, outage_answers = {},
  worst_throughput_s = 0, throughput = {}, violations = {}, callbacks = 0, resumes = 0, aborts = 0,
}
local function violation(fmt, ...)
  local msg = string.format(fmt, ...)
  fig.violations[#fig.violations + 1] = string.format("cycle %d: %s", fig.cycles, msg)
  say("VIOLATION: %s", msg)
end

-- ---- the load ----
-- Every accepted start: pid -> {kind, key, want, cycle, acted = {}}
local accepted = {}
local by_key = {}
local pending_starts = {} -- keys whose start got no answer yet: {key, kind}
local KINDS = { "chaos_ten", "chaos_ten", "chaos_retry", "chaos_callback", "chaos_input", "abort" }
local key_n = 0

local function request(h, method, path, body, headers)
  local ok, status, text, hdrs, json = pcall(h.request, h, method, path, body, headers)
  if not ok then
    return nil
  end
  return status, text, hdrs, json
end

local function try_start(p)
  local list = serve_hosts()
  if #list == 0 then
    return
  end
  local workflow = p.kind == "abort" and "chaos_input" or p.kind
  local status, text, _, json = request(pick(list), "POST", "/api/processes/" .. workflow, "[{}]",
    { ["idempotency-key"] = p.key })
  fig.starts_sent = fig.starts_sent + 1
  if status == 201 and json and json.id then
    if by_key[p.key] and by_key[p.key] ~= json.id then
      violation("Idempotency-Key %s answered two processes: %s and %s", p.key, by_key[p.key], json.id)
    end
    if not by_key[p.key] then
      by_key[p.key] = json.id
      accepted[json.id] = { kind = p.kind, key = p.key, cycle = fig.cycles, ok = {} }
      fig.processes = fig.processes + 1
    end
    p.done = true
    -- Sometimes the same start again (a client retrying after a lost answer).
    if math.random() < 0.2 then
      fig.duplicate_starts = fig.duplicate_starts + 1
      p.done = false
    end
  elseif status and status >= 500 and status ~= 503 then
    fig.outage_answers[status] = (fig.outage_answers[status] or 0) + 1
    violation("start answered %s: %s", tostring(status), tostring(text))
  end
end

local function new_starts(n)
  for _ = 1, n do
    key_n = key_n + 1
    local p = { key = string.format("chaos-%d-%d", opts.seed, key_n), kind = KINDS[math.random(#KINDS)] }
    pending_starts[#pending_starts + 1] = p
    try_start(p)
  end
end

-- Keep LOAD background processes in flight (the throughput is measured on them).
local LOAD = 12
local loading = true
local function top_up()
  if not pg.up or not loading then
    return
  end
  local n = tonumber(sql("SELECT count(*) FROM processes WHERE workflow_id = (SELECT workflow_id FROM workflows "
    .. "WHERE name = 'chaos_load') AND last_status NOT IN ('completed', 'aborted', 'failed')"))
  local waiting = 0
  for _, p in ipairs(pending_starts) do
    if p.kind == "chaos_load" then
      waiting = waiting + 1
    end
  end
  for _ = 1, n and math.min(LOAD - n - waiting, 4) or 0 do
    key_n = key_n + 1
    local p = { key = string.format("chaos-%d-%d", opts.seed, key_n), kind = "chaos_load" }
    pending_starts[#pending_starts + 1] = p
  end
end

local function retry_starts()
  top_up()
  local left = {}
  for _, p in ipairs(pending_starts) do
    if not p.done then
      try_start(p)
    end
    if not p.done then
      left[#left + 1] = p
    end
  end
  pending_starts = left
end

-- One pass of the client: answer callbacks, resume input steps, abort, resume waiting processes.
local function act()
  if not pg.up then
    return
  end
  local list = serve_hosts()
  if #list == 0 then
    return
  end
  local out = sql([[SELECT p.pid, p.last_status,
      (SELECT s.state->>'__callback_token' FROM process_steps s WHERE s.pid = p.pid
        AND s.state ? '__callback_token' ORDER BY s.completed_at DESC LIMIT 1)
    FROM processes p WHERE p.last_status IN ('awaiting_callback', 'suspended', 'waiting')]])
  if not out then
    return
  end
  for line in (out .. "\n"):gmatch("([^\n]*)\n") do
    local pid, status, token = line:match("^([^|]+)|([^|]+)|(.*)$")
    local p = pid and accepted[pid]
    if p and math.random() < 0.5 then -- at random times
      local h = pick(list)
      local times = math.random() < 0.3 and 2 or 1 -- sometimes twice: one must be refused
      for _ = 1, times do
        local code
        if status == "awaiting_callback" and token ~= "" then
          code = request(h, "POST", "/api/processes/" .. pid .. "/callback/" .. token, { ok = true })
          if code == 200 then
            p.ok.callback = (p.ok.callback or 0) + 1
            fig.callbacks = fig.callbacks + 1
          end
        elseif status == "suspended" and p.kind == "abort" then
          code = request(h, "PUT", "/api/processes/" .. pid .. "/abort")
          if code and code < 300 then
            p.ok.abort = (p.ok.abort or 0) + 1
            fig.aborts = fig.aborts + 1
          end
        elseif status == "suspended" then
          code = request(h, "PUT", "/api/processes/" .. pid .. "/resume", { { approved = true } })
          if code and code < 300 then
            p.ok.resume = (p.ok.resume or 0) + 1
            fig.resumes = fig.resumes + 1
          end
        elseif status == "waiting" then
          code = request(h, "PUT", "/api/processes/" .. pid .. "/resume", "{}")
        end
        if code and code >= 500 and code ~= 503 then
          violation("%s of %s answered %d", status, pid, code)
        end
      end
    end
  end
end

local function tick(seconds)
  local deadline = H.now() + seconds
  repeat
    retry_starts()
    act()
    H.sleep(0.1)
  until H.now() >= deadline
end

-- ---- faults ----
local function host_pid_pattern(h)
  return "%/" .. h.pid .. "/%"
end

local function wait_dead(h)
  proc.kill(h.pid, "KILL")
  proc.wait(h.pid)
  h.pid = nil
end

local FAULTS = { "kill", "stop", "pg_fast", "pg_immediate", "terminate" }

local function fault_kill()
  local h = hosts[math.random(#hosts)]
  local pattern = host_pid_pattern(h)
  local held = rows("SELECT pid FROM orch_work_queue WHERE lease_owner LIKE '" .. pattern .. "'")
  H.sleep(math.random() * 0.3)
  wait_dead(h)
  local t0 = H.now()
  say("SIGKILL host %d (%s) holding %d leases", h.index, h.kind, #held)
  -- Recovered when no queue row is held by the dead host any more (taken over or finished).
  local took
  while true do
    local n = tonumber(sql("SELECT count(*) FROM orch_work_queue WHERE lease_owner LIKE '" .. pattern .. "'"))
    took = H.now() - t0
    if n == 0 then
      -- Still held by nobody but due: claimable rows must be taken within the lease too.
      break
    end
    if took > opts.lease * 4 + 10 then
      break
    end
    retry_starts()
    act()
    H.sleep(0.05)
  end
  -- The last of them must also have been taken by someone (or be done): rows claimable for
  -- longer than a poll interval would show in the stuck check.
  fig.recoveries[#fig.recoveries + 1] = took
  fig.worst_recovery = math.max(fig.worst_recovery, took)
  if took > opts.lease + 2 then
    violation("recovery after SIGKILL took %.1f s (lease %d s + 2 s)", took, opts.lease)
  end
  say("recovered in %.2f s; restarting host %d", took, h.index)
  start_host(h.index)
end

local function fault_stop()
  local h = hosts[math.random(#hosts)]
  proc.kill(h.pid, "STOP")
  h.stopped = true
  local pause = opts.lease + 1 + math.random() * 2
  say("SIGSTOP host %d (%s) for %.1f s", h.index, h.kind, pause)
  tick(pause)
  proc.kill(h.pid, "CONT")
  h.stopped = false
end

-- Steps committed per second between two epoch times (from the database).
local function rate(from, to)
  local n = tonumber(must(string.format("SELECT count(*) FROM process_steps WHERE completed_at >= to_timestamp(%f) "
    .. "AND completed_at < to_timestamp(%f)", from, to)))
  return n / (to - from)
end

local function epoch()
  return proc.time and proc.time() or tonumber(io.popen("date +%s.%N"):read("l"))
end

local function probe_outage()
  for _, h in ipairs(serve_hosts()) do
    for _, path in ipairs({ "/api/health/", "/api/processes/" }) do
      local status, _, hdrs = request(h, "GET", path)
      if status then
        fig.outage_answers[status] = (fig.outage_answers[status] or 0) + 1
        if status ~= 503 then
          violation("%s answered %d while the database was down", path, status)
        elseif not (hdrs["retry-after"] or ""):match("^%d+$") then
          violation("%s answered 503 without Retry-After", path)
        end
      end
    end
  end
end

local function fault_pg(mode)
  local before_from = epoch()
  tick(3)
  local base = rate(before_from, epoch())
  local outage = 1 + math.random() * (opts.max_outage - 1)
  say("PostgreSQL %s shutdown for %.1f s (throughput before %.0f steps/s)", mode, outage, base)
  pg_ctl("-m " .. mode .. " stop")
  pg.up = false
  local deadline = H.now() + outage
  while H.now() < deadline do
    probe_outage()
    H.sleep(0.5)
  end
  assert(pg_ctl("start"), "PostgreSQL did not start again")
  pg.up = true
  local back = epoch()
  -- Throughput back: the first 3-s window starting after the return whose rate reaches 95 %
  -- of the rate before; it must end within 10 s of the return.
  tick(10)
  local recovered
  for start = 0, 7, 0.5 do
    if rate(back + start, back + start + 3) >= 0.95 * base then
      recovered = start + 3
      break
    end
  end
  fig.throughput[#fig.throughput + 1] = { base = base, recovered = recovered }
  if recovered then
    fig.worst_throughput_s = math.max(fig.worst_throughput_s, recovered)
    say("throughput back to >= 95 %% within %.1f s", recovered)
  elseif base > 0 then
    violation("throughput not back to 95 %% of %.0f steps/s within 10 s of PostgreSQL returning", base)
  end
end

local function fault_terminate()
  say("pg_terminate_backend of random host backends for 4 s")
  for _ = 1, 8 do
    sql("SELECT pg_terminate_backend(pid) FROM (SELECT pid FROM pg_stat_activity "
      .. "WHERE application_name = 'orchestrator' ORDER BY random() LIMIT 2) a")
    tick(0.5)
  end
end

-- ---- invariants ----
local function quiesce(cycle, seconds)
  local deadline = H.now() + seconds
  while H.now() < deadline do
    retry_starts()
    act()
    local open = 0
    for _, p in pairs(accepted) do
      if p.cycle <= cycle and not p.final then
        open = open + 1
      end
    end
    if open == 0 and #pending_starts == 0 then
      return true
    end
    local list = {}
    for pid, p in pairs(accepted) do
      if not p.final then
        list[#list + 1] = "'" .. pid .. "'"
      end
    end
    if #list > 0 then
      for _, r in ipairs(rows("SELECT pid, last_status FROM processes WHERE pid IN (" .. table.concat(list, ",")
        .. ") AND last_status IN ('completed', 'aborted', 'failed')")) do
        accepted[r[1]].final = r[2]
      end
    end
    H.sleep(0.2)
  end
  return false
end

local function check(cycle)
  loading = false
  local quiet = quiesce(cycle, 60 + opts.lease * 2)
  loading = true
  if not quiet then
    for pid, p in pairs(accepted) do
      if not p.final and p.cycle <= cycle then
        violation("process %s (%s) not finished 60 s after the cycle: %s", pid, p.kind,
          must("SELECT last_status FROM processes WHERE pid = '" .. pid .. "'"))
      end
    end
  end
  -- No process lost, each ended as scripted.
  local n_missing = 0
  for pid, p in pairs(accepted) do
    if p.cycle <= cycle and not p.checked and p.final then
      p.checked = true
      local want = p.kind == "abort" and "aborted" or "completed"
      if p.final ~= want then
        fig.wrong_end = fig.wrong_end + 1
        violation("process %s (%s) ended %s, want %s", pid, p.kind, p.final, want)
      end
      if p.kind == "chaos_callback" then
        local n = tonumber(must("SELECT count(*) FROM process_steps WHERE pid = '" .. pid
          .. "' AND name = 'External job' AND status = 'success'"))
        if n ~= 1 or (p.ok.callback or 0) > 1 then
          fig.double_transitions = fig.double_transitions + 1
          violation("callback of %s: %d success rows, %d accepted answers", pid, n, p.ok.callback or 0)
        end
      elseif p.kind == "chaos_input" then
        local n = tonumber(must("SELECT count(*) FROM process_steps WHERE pid = '" .. pid
          .. "' AND name = 'Wait for approval' AND status = 'success'"))
        if n ~= 1 or (p.ok.resume or 0) > 1 then
          fig.double_transitions = fig.double_transitions + 1
          violation("resume of %s: %d success rows, %d accepted answers", pid, n, p.ok.resume or 0)
        end
      elseif p.kind == "abort" and (p.ok.abort or 0) > 1 then
        fig.double_transitions = fig.double_transitions + 1
        violation("abort of %s accepted %d times", pid, p.ok.abort)
      end
    end
  end
  local list = {}
  for pid in pairs(accepted) do
    list[#list + 1] = "('" .. pid .. "'::uuid)"
  end
  if #list > 0 then
    n_missing = tonumber(must("SELECT count(*) FROM (VALUES " .. table.concat(list, ",")
      .. ") v(pid) WHERE NOT EXISTS (SELECT 1 FROM processes p WHERE p.pid = v.pid)"))
  end
  if n_missing > 0 then
    fig.lost = fig.lost + n_missing
    violation("%d accepted processes are missing", n_missing)
  end
  -- Each Idempotency-Key: one process.
  local keys = tonumber(must("SELECT count(*) FROM orch_idempotency_keys WHERE key LIKE 'chaos-%'"))
  local procs = tonumber(must("SELECT count(*) FROM processes"))
  if procs ~= keys then
    violation("%d processes for %d idempotency keys", procs, keys)
  end
  -- No step with two success rows.
  local dup = tonumber(must([[SELECT count(*) FROM (SELECT pid, name FROM process_steps
    WHERE status IN ('success', 'complete') GROUP BY pid, name HAVING count(*) > 1) d]]))
  if dup > 0 then
    fig.duplicates = fig.duplicates + dup
    violation("%d steps have two success rows", dup)
  end
  -- Nothing running without a live lease or a claimable queue row; no claimable row left unclaimed.
  local stuck = tonumber(must([[SELECT count(*) FROM processes p
    WHERE p.last_status IN ('running', 'created', 'resumed')
    AND NOT EXISTS (SELECT 1 FROM orch_work_queue q WHERE q.pid = p.pid)]]))
  local overdue = tonumber(must(string.format(
    "SELECT count(*) FROM orch_work_queue WHERE run_at < now() - interval '%d seconds'",
    opts.lease + 2)))
  if stuck + overdue > 0 then
    fig.stuck = fig.stuck + stuck + overdue
    violation("%d processes running without a queue row, %d queue rows overdue", stuck, overdue)
  end
  -- Every host still alive (nothing needed a restart except the killed ones).
  for _, h in ipairs(hosts) do
    if h.pid and proc.wait(h.pid, true) then
      violation("host %d (%s) died:\n%s", h.index, h.kind, h:log():sub(-2000))
      h.pid = nil
      start_host(h.index)
    end
  end
end

-- ---- the run ----
opts.t0 = H.now()
local ok, err = pcall(function()
  for cycle = 1, opts.cycles do
    fig.cycles = cycle
    new_starts(8 + math.random(8))
    tick(math.random() * 1.5)
    local kind = FAULTS[math.random(#FAULTS)]
    fig.faults[kind] = (fig.faults[kind] or 0) + 1
    say("cycle %d: %s", cycle, kind)
    if kind == "kill" then
      fault_kill()
    elseif kind == "stop" then
      fault_stop()
    elseif kind == "pg_fast" then
      fault_pg("fast")
    elseif kind == "pg_immediate" then
      fault_pg("immediate")
    else
      fault_terminate()
    end
    check(cycle)
  end
end)
if not ok then
  violation("harness error: %s", tostring(err))
end

-- ---- figures and clean-up ----
for _, h in ipairs(hosts) do
  if h.pid then
    if h.stopped then
      proc.kill(h.pid, "CONT")
    end
    proc.kill(h.pid, "TERM")
    local how, code = proc.wait(h.pid)
    local log = h:log()
    if log:find("AddressSanitizer", 1, true) or log:find("runtime error:", 1, true) then
      violation("host %d has a sanitizer report:\n%s", h.index, log)
    end
    if how ~= "exited" or code ~= 0 then
      violation("host %d did not stop cleanly (%s %s)", h.index, tostring(how), tostring(code))
    end
  end
end
pg_ctl("-m immediate stop")
os.execute("rm -rf " .. q(pg.dir))

local faults = {}
for _, k in ipairs(FAULTS) do
  faults[#faults + 1] = k .. " " .. (fig.faults[k] or 0)
end
local answers = {}
for status, n in pairs(fig.outage_answers) do
  answers[#answers + 1] = status .. "×" .. n
end
table.sort(answers)
local tp_ok, tp_n = 0, #fig.throughput
for _, t in ipairs(fig.throughput) do
  if t.recovered then
    tp_ok = tp_ok + 1
  end
end
print(string.format([[
chaos figures (seed %d):
  cycles            %d in %.0f s
  faults            %s
  processes         %d accepted (%d start requests, %d deliberate duplicates), %d callbacks, %d resumes, %d aborts
  lost/duplicate/stuck  %d/%d/%d (wrong end state %d, double transitions %d)
  worst recovery    %.2f s after SIGKILL (lease %d s; %d kills)
  throughput        back to >= 95 %% after %d of %d database restarts, worst %.1f s after PostgreSQL returned
  answers while PostgreSQL was down: %s
  violations        %d]], opts.seed, fig.cycles, H.now() - opts.t0, table.concat(faults, ", "), fig.processes,
  fig.starts_sent, fig.duplicate_starts, fig.callbacks, fig.resumes, fig.aborts, fig.lost, fig.duplicates, fig.stuck,
  fig.wrong_end, fig.double_transitions, fig.worst_recovery, opts.lease, #fig.recoveries, tp_ok, tp_n,
  fig.worst_throughput_s, #answers > 0 and table.concat(answers, " ") or "none", #fig.violations))
for _, v in ipairs(fig.violations) do
  print("  - " .. v)
end
os.exit(#fig.violations == 0 and 0 or 1)
