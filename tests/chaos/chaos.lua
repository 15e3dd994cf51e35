-- Chaos harness (docs/testing.md, "Chaos"): three hosts (two `serve`, one `worker`) on a
-- PostgreSQL cluster of its own run a mixed load while a seeded fault schedule kills,
-- stops and disconnects them and restarts the database. After every cycle the invariants
-- are checked from the database alone.
--
--   lua5.4 tests/chaos/chaos.lua [--seed N] [--cycles N] [--max-outage S] [--lease S] [--hosts 2|3]
--     [--minutes M] [--report-every N] [--throughput-strict 0|1]
--
-- --minutes stops starting cycles after M minutes (0: no limit); --report-every prints the
-- figures every N cycles, so that a run cut short still reports; --throughput-strict 0 prints
-- the throughput figures without counting a slow return as a violation (for a noisy CI machine).
--
-- Environment: ORCH_BIN, ORCH_SOURCE_DIR (as for the integration specs), ORCH_CHAOS_SEED (the
-- seed when --seed is not given, e.g. to replay a ctest run); package.path
-- must reach tests/support (harness.lua) and package.cpath the testproc module.
-- Exit status 0 when every invariant held, 1 otherwise; the figures are printed at the end.
local H = require("harness")
local proc = H.proc
local q = H.shell_quote

-- ---- options ----
local opts = {
  seed = tonumber(os.getenv("ORCH_CHAOS_SEED") or "") or os.time() % 1000000,
  cycles = 20, max_outage = 5, lease = 3, hosts = 3, minutes = 0, report_every = 50, throughput_strict = 1, boxes = 6,
}
do
  local i = 1
  while i <= #arg do
    local k, v = arg[i], arg[i + 1]
    local name = k:match("^%-%-([%w%-]+)$")
    name = name and name:gsub("%-", "_")
    if not name or opts[name] == nil or tonumber(v) == nil then
      io.stderr:write("usage: chaos.lua [--seed N] [--cycles N] [--max-outage S] [--lease S] [--hosts 2|3] "
        .. "[--minutes M] [--report-every N] [--throughput-strict 0|1]\n")
      os.exit(2)
    end
    opts[name] = tonumber(v)
    i = i + 2
  end
end
local schedule = {} -- per cycle: the fault and its parameters (drawn first, from the seed alone)
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

local sanitizer_marks = { "AddressSanitizer", "LeakSanitizer", "runtime error:" }
local function sanitizer_report(text)
  for _, mark in ipairs(sanitizer_marks) do
    if text:find(mark, 1, true) then
      return true
    end
  end
  return false
end

local violation -- below, with the figures

local function start_host(i)
  local kind = i == 3 and "worker" or "serve"
  local old = hosts[i]
  if old then
    -- The log of the host this one replaces (killed, or died): a sanitizer report is a finding.
    local text = old:log()
    if sanitizer_report(text) then
      violation("host %d (%s) has a sanitizer report:\n%s", i, old.kind, text:sub(-4000))
    end
    os.remove(old.log_path)
  end
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
  worst_throughput_s = 0, throughput = {}, violations = {}, callbacks = 0, resumes = 0, aborts = 0, modifies = 0,
  throughput_late = 0, locked = {}, stale_leases = 0, worst_first_step = 0, races = 0,
}
function violation(fmt, ...)
  local msg = string.format(fmt, ...)
  fig.violations[#fig.violations + 1] = string.format("cycle %d: %s", fig.cycles, msg)
  say("VIOLATION: %s", msg)
end

-- ---- the load ----
-- Every accepted start: pid -> {kind, key, want, cycle, acted = {}}
local accepted = {}
local by_key = {}
local pending_starts = {} -- keys whose start got no answer yet: {key, kind}
local KINDS = { "chaos_ten", "chaos_ten", "chaos_retry", "chaos_callback", "chaos_input", "abort", "modify", "modify" }
local WORKFLOW = { abort = "chaos_input", modify = "modify_chaos_box" }
local key_n = 0
-- Subscriptions (made before the first cycle) that "modify" processes turn, one at a time each:
-- subscription id -> true while a modify of it is in flight.
local boxes, box_busy = {}, {}

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
  local workflow = WORKFLOW[p.kind] or p.kind
  local status, text, _, json = request(pick(list), "POST", "/api/processes/" .. workflow, p.body or "[{}]",
    { ["idempotency-key"] = p.key })
  fig.starts_sent = fig.starts_sent + 1
  if status == 201 and json and json.id then
    if by_key[p.key] and by_key[p.key] ~= json.id then
      violation("Idempotency-Key %s answered two processes: %s and %s", p.key, by_key[p.key], json.id)
    end
    if not by_key[p.key] then
      by_key[p.key] = json.id
      accepted[json.id] = { kind = p.kind, key = p.key, cycle = fig.cycles, ok = {}, box = p.box }
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
  elseif status and status >= 400 and status < 500 then
    -- Every start is valid (a modify only of a subscription no other modify holds): a refusal
    -- is a finding, and retrying it would never end.
    violation("start of %s (key %s) answered %d: %s", p.kind, p.key, status, tostring(text))
    p.done = true
    if p.box and not by_key[p.key] then
      box_busy[p.box] = nil
    end
  end
end

local function free_box()
  local free = {}
  for _, id in ipairs(boxes) do
    if not box_busy[id] then
      free[#free + 1] = id
    end
  end
  return #free > 0 and pick(free) or nil
end

local function new_starts(n)
  for _ = 1, n do
    key_n = key_n + 1
    local p = { key = string.format("chaos-%d-%d", opts.seed, key_n), kind = KINDS[math.random(#KINDS)] }
    if p.kind == "modify" then
      p.box = free_box()
      if p.box then
        box_busy[p.box] = true
        p.body = string.format('[{"subscription_id": "%s"}, {"turn": 1}]', p.box)
      else
        p.kind = "chaos_ten"
      end
    end
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

-- The same request at the same moment on two hosts (two curl processes): their status codes
-- (nil for no answer). Of two racing callbacks or resumes exactly one may make the transition.
local function race(two, method, path, body)
  local cmds = {}
  for i, h in ipairs(two) do
    cmds[i] = string.format("curl -s -o /dev/null -w 'R%d %%{http_code}\\n' -m 20 -X %s %s %s &", i, method,
      body and ("-H 'content-type: application/json' --data " .. q(body)) or "", q(h.base .. path))
  end
  local p = io.popen("{ " .. table.concat(cmds, " ") .. " wait; } 2>/dev/null")
  local out = p:read("a")
  p:close()
  local codes = {}
  for i, code in out:gmatch("R(%d) (%d+)") do
    codes[tonumber(i)] = code ~= "000" and tonumber(code) or nil
  end
  return { codes[1], codes[2] }
end

-- One pass of the client: answer callbacks, resume input steps, abort, resume waiting processes.
-- Sometimes twice: one after the other on one host, or at the same moment on two hosts.
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
      local method, path, body, counter, ok
      if status == "awaiting_callback" and token ~= "" then
        method, path, body = "POST", "/api/processes/" .. pid .. "/callback/" .. token, '{"ok": true}'
        counter = "callback"
        ok = function(code) return code == 200 end
      elseif status == "suspended" and p.kind == "abort" then
        method, path, counter = "PUT", "/api/processes/" .. pid .. "/abort", "abort"
      elseif status == "suspended" then
        method, path, body, counter = "PUT", "/api/processes/" .. pid .. "/resume", '[{"approved": true}]', "resume"
      elseif status == "waiting" then
        method, path, body = "PUT", "/api/processes/" .. pid .. "/resume", "{}"
      end
      ok = ok or function(code) return code < 300 end
      local codes = {}
      if method and #list >= 2 and math.random() < 0.15 then
        local a = math.random(#list)
        local b = (a % #list) + 1
        codes = race({ list[a], list[b] }, method, path, body)
        fig.races = fig.races + 1
      elseif method then
        local h = pick(list)
        for i = 1, math.random() < 0.3 and 2 or 1 do -- sometimes twice: the second must be refused
          codes[i] = request(h, method, path, body)
        end
      end
      for i = 1, 2 do
        local code = codes[i]
        if code and counter and ok(code) then
          p.ok[counter] = (p.ok[counter] or 0) + 1
          fig[counter .. "s"] = fig[counter .. "s"] + 1
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

-- Seconds from t0 until no queue row is held by the host of `pattern` any more (taken over by
-- another host, or finished), keeping the client going meanwhile; gives up after `limit`.
local function recovery(pattern, t0, limit)
  while true do
    local n = tonumber(sql("SELECT count(*) FROM orch_work_queue WHERE lease_owner LIKE '" .. pattern .. "'"))
    local took = H.now() - t0
    if n == 0 or took > limit then
      return took, n
    end
    retry_starts()
    act()
    H.sleep(0.05)
  end
end

local function record_recovery(what, took, held)
  fig.recoveries[#fig.recoveries + 1] = took
  fig.worst_recovery = math.max(fig.worst_recovery, took)
  if took > opts.lease + 2 then
    violation("recovery after %s took %.1f s, %d leases still held (limit: lease %d s + 2 s)", what, took,
      held or 0, opts.lease)
  end
end

local function fault_kill(f)
  local h = hosts[f.host]
  local pattern = host_pid_pattern(h)
  local held = rows("SELECT pid FROM orch_work_queue WHERE lease_owner LIKE '" .. pattern .. "'")
  H.sleep(f.delay) -- at a random moment, often inside a step or its commit
  wait_dead(h)
  local t0 = H.now()
  say("SIGKILL host %d (%s) holding %d leases", h.index, h.kind, #held)
  local took, left = recovery(pattern, t0, opts.lease * 4 + 10)
  record_recovery("SIGKILL", took, left)
  say("recovered in %.2f s; restarting host %d", took, h.index)
  start_host(h.index)
end

-- SIGSTOP past the lease: the other hosts must take the stopped host's leases over within
-- lease + 2 s, and the stopped host, once continued, must not commit a step it lost.
local function fault_stop(f)
  local h = hosts[f.host]
  local pattern = host_pid_pattern(h)
  proc.kill(h.pid, "STOP")
  h.stopped = true
  local t0 = H.now()
  local pause = opts.lease + 2.5 + f.pause
  local held = tonumber(sql("SELECT count(*) FROM orch_work_queue WHERE lease_owner LIKE '" .. pattern .. "'")) or 0
  say("SIGSTOP host %d (%s) holding %d leases for %.1f s", h.index, h.kind, held, pause)
  local took, left = recovery(pattern, t0, opts.lease + 2.2)
  record_recovery("SIGSTOP", took, left)
  tick(math.max(0, pause - (H.now() - t0)))
  proc.kill(h.pid, "CONT")
  h.stopped = false
  say("leases taken over in %.2f s; SIGCONT host %d", took, h.index)
end

-- Steps committed per second between two epoch times (from the database). The workers are
-- saturated (the steady load keeps twelve processes in flight), so this is the hosts' capacity
-- whatever the mix of kinds.
local function rate(from, to)
  local n = tonumber(must(string.format("SELECT count(*) FROM process_steps "
    .. "WHERE completed_at >= to_timestamp(%f) AND completed_at < to_timestamp(%f)", from, to)))
  return n / (to - from)
end

-- The median of the 1-s rates from `from` on: one busy or idle second does not set the bar.
local function median_rate(from, seconds)
  local list = {}
  for i = 0, seconds - 1 do
    list[#list + 1] = rate(from + i, from + i + 1)
  end
  table.sort(list)
  return list[(#list + 1) // 2]
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

local function fault_pg(mode, f)
  local before_from = epoch()
  tick(5)
  local base = median_rate(before_from, 5)
  local outage = f.outage
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
  -- of the median 1-s rate of the 5 s before; it must end within 10 s of the return.
  tick(10)
  local first = tonumber(must(string.format("SELECT coalesce(extract(epoch FROM min(completed_at)) - %f, -1) "
    .. "FROM process_steps WHERE completed_at >= to_timestamp(%f)", back, back)))
  if first and first >= 0 then
    fig.worst_first_step = math.max(fig.worst_first_step, first)
  end
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
    say("throughput back to >= 95 %% within %.1f s (first step %.2f s after the return)", recovered, first or -1)
  elseif base > 0 then
    fig.throughput_late = fig.throughput_late + 1
    local seconds = {}
    for i = 0, 9 do
      seconds[#seconds + 1] = string.format("%.0f", rate(back + i, back + i + 1))
    end
    say("steps per second after the return: %s (first step %.2f s after it)", table.concat(seconds, " "),
      first or -1)
    if opts.throughput_strict ~= 0 then
      violation("throughput not back to 95 %% of %.0f steps/s within 10 s of PostgreSQL returning", base)
    else
      say("throughput not back to 95 %% of %.0f steps/s within 10 s (not enforced: --throughput-strict 0)", base)
    end
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
-- Right after a fault, with the load still in flight: nothing `running` without a queue row,
-- and no lease expired for more than 2 s without another host taking it over.
local function check_leases(what)
  local out = sql(string.format([[SELECT
      (SELECT count(*) FROM processes p WHERE p.last_status IN ('running', 'created', 'resumed')
        AND NOT EXISTS (SELECT 1 FROM orch_work_queue q WHERE q.pid = p.pid)),
      (SELECT count(*) FROM orch_work_queue WHERE lease_owner IS NOT NULL
        AND lease_expires < now() - interval '2 seconds'),
      (SELECT string_agg(pid::text, ' ') FROM (SELECT pid FROM orch_work_queue WHERE lease_owner IS NOT NULL
        AND lease_expires < now() - interval '2 seconds' LIMIT 3) x)]]))
  local orphans, stale, which = (out or ""):match("^(%d+)|(%d+)|(.*)$")
  if not orphans then
    return
  end
  orphans, stale = tonumber(orphans), tonumber(stale)
  if orphans + stale > 0 then
    fig.stuck = fig.stuck + orphans + stale
    fig.stale_leases = fig.stale_leases + stale
    violation("after %s: %d processes running without a queue row, %d leases expired > 2 s ago and not "
      .. "taken over (%s)", what, orphans, stale, which)
  end
end

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
        local p = accepted[r[1]]
        p.final = r[2]
        if p.box then
          box_busy[p.box] = nil
        end
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
      elseif p.kind == "abort" then
        -- A second abort of an aborted process is answered 204 without a transition (as a
        -- retried request should be): the log must hold exactly one "User Aborted".
        local n = tonumber(must("SELECT count(*) FROM process_steps WHERE pid = '" .. pid
          .. "' AND name = 'User Aborted'"))
        if p.final == "aborted" and n ~= 1 then
          fig.double_transitions = fig.double_transitions + 1
          violation("abort of %s: %d 'User Aborted' rows, %d accepted answers", pid, n, p.ok.abort or 0)
        end
      elseif p.kind == "modify" then
        fig.modifies = fig.modifies + 1
      end
    end
  end
  local list = {}
  -- A final status was read from the database, so only the others can be missing (the list
  -- stays short: one argument of psql's command line holds at most 128 KiB).
  for pid, p in pairs(accepted) do
    if not p.final then
      list[#list + 1] = "('" .. pid .. "'::uuid)"
    end
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
  if #pending_starts > 0 then
    violation("%d starts still unanswered 60 s after the cycle (first: %s)", #pending_starts, pending_starts[1].key)
  end
  -- Subscriptions' insync locks released: every modify was scripted to complete, so once all
  -- processes ended no subscription may stay locked unless a process on it did not complete
  -- (that one is reported above as a wrong end state).
  local locked = rows([[SELECT s.subscription_id FROM subscriptions s WHERE NOT s.insync
    AND NOT EXISTS (SELECT 1 FROM processes_subscriptions ps JOIN processes p ON p.pid = ps.pid
                    WHERE ps.subscription_id = s.subscription_id AND p.last_status <> 'completed')]])
  if #locked > 0 then
    for _, r in ipairs(locked) do
      fig.locked[r[1]] = true
    end
    violation("%d subscriptions left out of sync after their processes completed (first: %s)", #locked,
      locked[1][1])
  end
  local turns = rows([[SELECT s.subscription_id, (i.value)::int,
      (SELECT count(*) FROM processes_subscriptions ps JOIN processes p ON p.pid = ps.pid
       JOIN workflows w ON w.workflow_id = p.workflow_id
       WHERE ps.subscription_id = s.subscription_id AND w.name = 'modify_chaos_box' AND p.last_status = 'completed')
    FROM subscriptions s JOIN subscription_instances si ON si.subscription_id = s.subscription_id
    JOIN subscription_instance_values i ON i.subscription_instance_id = si.subscription_instance_id
    JOIN resource_types r ON r.resource_type_id = i.resource_type_id AND r.resource_type = 'turns']])
  if #turns ~= #boxes then
    violation("read the turns of %d subscriptions, want %d", #turns, #boxes)
  end
  for _, r in ipairs(turns) do
    if r[2] ~= r[3] then
      fig.double_transitions = fig.double_transitions + 1
      violation("subscription %s turned %s times by %s completed modifies", r[1], r[2], r[3])
    end
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

-- The figures so far (at the end, and every --report-every cycles so that a cut run reports).
local function report(title)
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
  local n_locked = 0
  for _ in pairs(fig.locked) do
    n_locked = n_locked + 1
  end
  local worst_tp = "none late"
  if fig.throughput_late > 0 then
    worst_tp = fig.throughput_late .. " not back within 10 s"
  end
  print(string.format([[
%s (seed %d):
  cycles            %d in %.0f s
  faults            %s
  processes         %d accepted (%d start requests, %d deliberate duplicates),
                    %d callbacks, %d resumes, %d aborts, %d modifies; %d callbacks/resumes/aborts raced on two hosts
  lost/duplicate/stuck  %d/%d/%d (wrong end state %d, double transitions %d, leases not taken over %d,
                    subscriptions left locked %d)
  worst recovery    %.2f s after SIGKILL/SIGSTOP (limit lease %d s + 2 s; %d kills and stops)
  throughput        back to >= 95 %% after %d of %d database restarts (%s%s), worst %.1f s after PostgreSQL returned;
                    first step after the return: worst %.2f s
  answers while PostgreSQL was down: %s
  violations        %d]], title, opts.seed, fig.cycles, H.now() - opts.t0, table.concat(faults, ", "), fig.processes,
    fig.starts_sent, fig.duplicate_starts, fig.callbacks, fig.resumes, fig.aborts, fig.modifies, fig.races, fig.lost,
    fig.duplicates, fig.stuck, fig.wrong_end, fig.double_transitions, fig.stale_leases, n_locked,
    fig.worst_recovery, opts.lease, #fig.recoveries, tp_ok, tp_n, worst_tp,
    opts.throughput_strict == 0 and ", not enforced" or "", fig.worst_throughput_s, fig.worst_first_step,
    #answers > 0 and table.concat(answers, " ") or "none", #fig.violations))
  for _, v in ipairs(fig.violations) do
    print("  - " .. v)
  end
  io.stdout:flush()
end

-- ---- the run ----
-- The fault schedule comes from the seed alone, drawn before anything else, so that a seed
-- replays the same faults (the load's own draws depend on timing and are not replayed exactly).
math.randomseed(opts.seed)
for cycle = 1, opts.cycles do
  schedule[cycle] = {
    starts = 8 + math.random(8), before = math.random() * 1.5, kind = FAULTS[math.random(#FAULTS)],
    host = math.random(opts.hosts), delay = math.random() * 0.3, pause = math.random() * 2,
    outage = 1 + math.random() * (opts.max_outage - 1),
  }
end
opts.t0 = H.now()
do -- the subscriptions that "modify" processes turn
  local product = must("SELECT product_id FROM products WHERE name = 'chaos box'")
  local pids = {}
  for i = 1, opts.boxes do
    local status, text, _, json = request(hosts[1], "POST", "/api/processes/create_chaos_box",
      string.format('[{"product": "%s"}, {"box_name": "box-%d"}]', product, i),
      { ["idempotency-key"] = "chaos-box-" .. i })
    assert(status == 201 and json, "create_chaos_box answered " .. tostring(status) .. ": " .. tostring(text))
    pids[#pids + 1] = "'" .. json.id .. "'"
  end
  for _ = 1, 300 do
    if must("SELECT count(*) FROM processes WHERE pid IN (" .. table.concat(pids, ",")
      .. ") AND last_status = 'completed'") == tostring(#pids) then
      break
    end
    H.sleep(0.1)
  end
  for _, r in ipairs(rows("SELECT subscription_id FROM subscriptions WHERE status = 'active' ORDER BY 1")) do
    boxes[#boxes + 1] = r[1]
  end
  assert(#boxes == opts.boxes, "the chaos boxes were not created")
  say("%d subscriptions to modify", #boxes)
end
local ok, err = pcall(function()
  for cycle = 1, opts.cycles do
    fig.cycles = cycle
    local f = schedule[cycle]
    new_starts(f.starts)
    tick(f.before)
    local kind = f.kind
    fig.faults[kind] = (fig.faults[kind] or 0) + 1
    say("cycle %d: %s", cycle, kind)
    if kind == "kill" then
      fault_kill(f)
    elseif kind == "stop" then
      fault_stop(f)
    elseif kind == "pg_fast" then
      fault_pg("fast", f)
    elseif kind == "pg_immediate" then
      fault_pg("immediate", f)
    else
      fault_terminate()
    end
    check_leases(kind)
    check(cycle)
    if opts.report_every > 0 and cycle % opts.report_every == 0 and cycle < opts.cycles then
      report("running figures after cycle " .. cycle)
    end
    if opts.minutes > 0 and H.now() - opts.t0 >= opts.minutes * 60 then
      say("--minutes %d reached after %d cycles: stopping", opts.minutes, cycle)
      break
    end
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
    if sanitizer_report(log) then
      violation("host %d has a sanitizer report:\n%s", h.index, log:sub(-6000))
    end
    if how ~= "exited" or code ~= 0 then
      violation("host %d did not stop cleanly (%s %s):\n%s", h.index, tostring(how), tostring(code), log:sub(-2000))
    end
    os.remove(h.log_path)
  end
end
pg_ctl("-m immediate stop")
os.execute("rm -rf " .. q(pg.dir))

report("chaos figures")
os.exit(#fig.violations == 0 and 0 or 1)
