-- Schedules: workflows (usually tasks) started by a cron, interval or one-off trigger
-- (docs/schedules.md). They come from three places, all stored in orch_schedules:
--  * product scripts: orch.schedule{name, workflow, cron | interval | at, input, timezone,
--    misfire}, synced to the database with the workflows at start and on every reload;
--  * the API (POST/PUT/DELETE /api/schedules, core's bodies and answers);
--  * core's default schedules, loaded at start (ORCH_SCHEDULE_DEFAULTS) or by
--    `orchestrator schedule load-defaults`.
-- Every host runs tick() about once a second (host/schedule.c): due schedules are locked
-- with SKIP LOCKED, their run recorded under the key (schedule, due time) and their next
-- time moved on, in one transaction; then recorded runs are claimed and started like a user
-- would start them, with an idempotency key made of the run's key. So each due time runs
-- once, whichever hosts are up, and a host that dies mid-way leaves a claim that lapses.

local errors = require("orch.errors")
local json = require("orch.json")
local cron = require("orch.schedules.cron")
local store = require("orch.schedules.store")

local schedules = {}

local TRIGGERS = { cron = true, interval = true, date = true }
local MISFIRE = { skip = true, run_once = true }
local INTERVAL_UNITS = { weeks = 604800, days = 86400, hours = 3600, minutes = 60, seconds = 1 }
-- The longest period: its next time must stay within what PostgreSQL's timestamptz holds.
local MAX_INTERVAL = 1000 * 366 * 86400

-- A problem with a trigger or a definition: raised as {schedule_error = message}.
local function fail(message)
  error({ schedule_error = message }, 0)
end
schedules.fail = fail

function schedules.message(err)
  if type(err) == "table" and err.schedule_error then
    return err.schedule_error
  end
  return nil
end

-- ---- time zones ----

local function zone_of(kwargs, timezone)
  local zone = kwargs.timezone or timezone or "UTC"
  if type(zone) ~= "string" or not zone:match("^[%w_+%-/]+$") or #zone > 64 then
    fail("timezone must be a time zone name such as 'Europe/Amsterdam'")
  end
  return zone
end

local function is_utc(zone)
  return zone == "UTC" or zone == "Etc/UTC" or zone == "GMT" or zone == "Z"
end

local function to_local(t, zone)
  if is_utc(zone) then
    return cron.utc_fields(t)
  end
  return store.to_local(t, zone)
end

local function from_local(f, zone)
  if is_utc(zone) then
    return cron.utc_epoch(f)
  end
  return store.from_local(f, zone)
end

-- "2027-01-01T00:00:00Z", "2027-01-01 02:30:00+01:00" or a civil time -> civil fields and the
-- offset in seconds (nil: a wall-clock time in the schedule's zone). Needs no database, so
-- check_trigger uses it when the scripts load; raises {schedule_error}.
local function parse_fields(text, what)
  if type(text) ~= "string" then
    fail(what .. " must be a date and time such as '2027-01-01T00:00:00Z'")
  end
  local y, mo, d, rest = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then
    fail(what .. " must be a date and time such as '2027-01-01T00:00:00Z'; got '" .. text .. "'")
  end
  local h, mi, s, offset = 0, 0, 0, nil
  if rest ~= "" then
    local hh, mm, tail = rest:match("^[T ](%d%d):(%d%d)(.*)$")
    if not hh then
      fail(what .. ": the time of day must follow as 'T12:30' or ' 12:30'; got '" .. text .. "'")
    end
    h, mi = tonumber(hh), tonumber(mm)
    local ss, frac_tail = tail:match("^:(%d%d)(.*)$")
    if ss then
      s, tail = tonumber(ss), frac_tail:gsub("^%.%d+", "")
    end
    if tail == "Z" or tail == "z" then
      offset = 0
    elseif tail ~= "" then
      local sign, oh, om = tail:match("^([+-])(%d%d):?(%d%d)$")
      if not sign then
        fail(what .. ": unknown time zone offset '" .. tail .. "'")
      end
      offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
    end
  end
  local f = { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = h, min = mi, sec = s }
  if f.month < 1 or f.month > 12 or f.day < 1 or f.day > cron.days_in_month(f.year, f.month) or h > 23
    or mi > 59 or s > 59 then
    fail(what .. ": '" .. text .. "' is not a valid date and time")
  end
  return f, offset
end

-- The same text -> epoch seconds (a wall-clock time through the zone's rules).
local function parse_time(text, zone, what)
  local f, offset = parse_fields(text, what)
  if offset then
    return cron.utc_epoch(f) - offset
  end
  return from_local(f, zone)
end

-- ---- triggers ----

local function interval_seconds(kw)
  local total = 0
  for k, v in pairs(kw) do
    local unit = INTERVAL_UNITS[k]
    if unit then
      if type(v) ~= "number" or v < 0 or v ~= v or v == math.huge then
        fail("interval " .. k .. " must be a number of 0 or more")
      end
      total = total + v * unit
    elseif k ~= "start_date" and k ~= "timezone" then
      fail("unknown interval argument '" .. tostring(k) .. "' (known: weeks, days, hours, minutes, seconds, "
        .. "start_date, timezone)")
    end
  end
  if total < 1 then
    fail("an interval trigger needs a period of at least one second (weeks, days, hours, minutes, seconds)")
  elseif total > MAX_INTERVAL then
    fail("an interval trigger takes a period of at most 1000 years")
  end
  return total
end

local function cron_spec(kw)
  if kw.crontab ~= nil then
    for k in pairs(kw) do
      if k ~= "crontab" and k ~= "timezone" then
        fail("a crontab line cannot be combined with '" .. tostring(k) .. "'")
      end
    end
    return cron.parse(kw.crontab)
  end
  return cron.from_kwargs(kw)
end

-- Check a trigger and its arguments (core's 422 for bad kwargs); raises {schedule_error}.
function schedules.check_trigger(trigger, kwargs, timezone)
  if not TRIGGERS[trigger] then
    fail("trigger must be one of 'interval', 'cron', 'date'; got '" .. tostring(trigger) .. "'")
  end
  if type(kwargs) ~= "table" or (next(kwargs) ~= nil and kwargs[1] ~= nil) then
    fail("trigger_kwargs must be an object")
  end
  local zone = zone_of(kwargs, timezone)
  if trigger == "cron" then
    cron_spec(kwargs)
  elseif trigger == "interval" then
    interval_seconds(kwargs)
    if kwargs.start_date ~= nil then
      parse_fields(kwargs.start_date, "start_date")
    end
  else
    for k in pairs(kwargs) do
      if k ~= "run_date" and k ~= "timezone" then
        fail("unknown date argument '" .. tostring(k) .. "' (known: run_date, timezone)")
      end
    end
    if kwargs.run_date == nil then
      fail("a date trigger needs run_date")
    end
    parse_fields(kwargs.run_date, "run_date")
  end
  return zone
end

-- The first due time strictly after `after` (epoch seconds), or nil when there is none.
function schedules.next_after(row, after)
  local kw, zone = row.trigger_kwargs, zone_of(row.trigger_kwargs, row.timezone)
  if row.trigger == "interval" then
    local period = interval_seconds(kw)
    local anchor = kw.start_date and parse_time(kw.start_date, zone, "start_date") or row.anchor
    if after < anchor then
      return anchor
    end
    return anchor + (math.floor((after - anchor) / period) + 1) * period
  elseif row.trigger == "date" then
    local at = parse_time(kw.run_date, zone, "run_date")
    return at > after and at or nil
  end
  local spec = cron_spec(kw)
  local cursor = to_local(after, zone)
  -- A wall-clock time may map to an instant at or before `after` (the repeated hour when clocks
  -- go back): look further until the instant is later.
  for _ = 1, 32 do
    local f = cron.next_after(spec, cursor)
    if not f then
      return nil
    end
    local t = from_local(f, zone)
    if t > after then
      return t
    end
    cursor = f
  end
  return nil
end

-- preview{trigger, trigger_kwargs, timezone, after, count} -> the next `count` due times
-- (epoch seconds) after `after`; raises {schedule_error} for a bad trigger.
function schedules.preview(args)
  local row = { trigger = args.trigger, trigger_kwargs = args.trigger_kwargs or {}, timezone = args.timezone,
    anchor = args.anchor or args.after }
  schedules.check_trigger(row.trigger, row.trigger_kwargs, row.timezone)
  local out, t = json.array(), args.after
  for _ = 1, math.min(args.count or 5, 100) do
    t = schedules.next_after(row, t)
    if not t then
      break
    end
    out[#out + 1] = t
  end
  return out
end

-- The first due time of a new or changed schedule. An interval starts counting now (its first
-- run is one period away, as APScheduler does); a one-off date may already have passed, which
-- the misfire policy then settles.
function schedules.first_due(row, now)
  if row.trigger == "date" then
    return parse_time(row.trigger_kwargs.run_date, zone_of(row.trigger_kwargs, row.timezone), "run_date")
  end
  return schedules.next_after(row, now)
end

local function fmt_seconds(total)
  local days = total // 86400
  local rest = total % 86400
  local hms = string.format("%d:%02d:%02d", rest // 3600, rest % 3600 // 60, rest % 60)
  if days > 0 then
    return string.format("%d day%s, %s", days, days == 1 and "" or "s", hms)
  end
  return hms
end

local CRON_ORDER = { "crontab", "year", "month", "day", "week", "day_of_week", "hour", "minute", "second" }

-- A trigger as APScheduler's str() shows it: interval[1:00:00], cron[hour='0', minute='10'],
-- date[2027-01-01 00:00:00 UTC]. The GraphQL `trigger` field and the CLI show this.
function schedules.describe(trigger, kwargs, timezone)
  kwargs = kwargs or {}
  if trigger == "interval" then
    local ok, total = pcall(interval_seconds, kwargs)
    return "interval[" .. (ok and fmt_seconds(math.floor(total)) or "?") .. "]"
  elseif trigger == "date" then
    return "date[" .. tostring(kwargs.run_date) .. " " .. (kwargs.timezone or timezone or "UTC") .. "]"
  end
  local parts = {}
  for _, k in ipairs(CRON_ORDER) do
    if kwargs[k] ~= nil then
      parts[#parts + 1] = string.format("%s='%s'", k, tostring(kwargs[k]))
    end
  end
  local zone = kwargs.timezone or timezone
  if zone and zone ~= "UTC" then
    parts[#parts + 1] = string.format("timezone='%s'", zone)
  end
  return "cron[" .. table.concat(parts, ", ") .. "]"
end

-- ---- schedules defined in product scripts ----

local registry = { by_name = {}, ordered = {} }
schedules.registry = registry

-- "file:line: " of the function `level` frames above the caller (as lua/orch/workflow.lua does).
local function caller_position(level)
  local _, where = pcall(error, "", level + 1)
  return type(where) == "string" and where or ""
end

local DEF_KEYS = { name = true, workflow = true, cron = true, interval = true, at = true, input = true,
  timezone = true, misfire = true, description = true }

-- orch.schedule{name, workflow, cron = "0 3 * * *" | interval = {hours = 1} |
-- at = "2027-01-01T00:00:00Z", input = {...} | {{...}, ...}, timezone = "UTC",
-- misfire = "run_once" | "skip"}
function schedules.define(def)
  local level = 2
  local where = caller_position(level + 1)
  local function bad(message)
    error("schedule" .. (type(def) == "table" and def.name and (" '" .. tostring(def.name) .. "'") or "") .. ": "
      .. message, level + 1)
  end
  if type(def) ~= "table" then
    bad("the definition must be a table")
  end
  for k in pairs(def) do
    if not DEF_KEYS[k] then
      bad("unknown option '" .. tostring(k) .. "'")
    end
  end
  if type(def.name) ~= "string" or def.name == "" or #def.name > 200 then
    bad("needs a name")
  end
  if registry.by_name[def.name] then
    bad("is defined twice (first at " .. registry.by_name[def.name].where:gsub(": $", "") .. ")")
  end
  if type(def.workflow) ~= "string" or def.workflow == "" then
    bad("needs the name of the workflow it starts (workflow = 'task_...')")
  end
  local given = (def.cron and 1 or 0) + (def.interval and 1 or 0) + (def.at and 1 or 0)
  if given ~= 1 then
    bad("needs exactly one of cron, interval or at")
  end
  local trigger, kwargs
  if def.cron then
    trigger = "cron"
    kwargs = type(def.cron) == "string" and { crontab = def.cron } or def.cron
  elseif def.interval then
    trigger, kwargs = "interval", def.interval
  else
    trigger, kwargs = "date", { run_date = def.at }
  end
  local misfire = def.misfire or "run_once"
  if not MISFIRE[misfire] then
    bad("misfire must be 'run_once' or 'skip'")
  end
  local inputs = def.input or {}
  if type(inputs) ~= "table" then
    bad("input must be a table (one form page) or a list of pages")
  end
  if inputs[1] == nil then
    inputs = { inputs }
  end
  local ok, err = pcall(schedules.check_trigger, trigger, kwargs, def.timezone)
  if not ok then
    bad(schedules.message(err) or tostring(err))
  end
  local entry = {
    name = def.name, workflow_name = def.workflow, trigger = trigger, trigger_kwargs = kwargs,
    user_inputs = inputs, timezone = def.timezone or "UTC", misfire = misfire, where = where,
  }
  registry.by_name[def.name] = entry
  registry.ordered[#registry.ordered + 1] = entry
  return entry
end

-- Cross-file check (orchestrator check, reload): every schedule starts a defined workflow.
function schedules.finalize()
  local workflow = require("orch.workflow")
  local problems = {}
  for _, s in ipairs(registry.ordered) do
    if not workflow.get(s.workflow_name) then
      problems[#problems + 1] = string.format("%sschedule '%s' starts workflow '%s', which is not defined",
        s.where, s.name, s.workflow_name)
    end
  end
  return problems
end

local function same(a, b)
  return json.encode(a) == json.encode(b)
end

-- Every time zone the definitions use must be one PostgreSQL knows. `orchestrator check` cannot
-- tell (it runs without a database), and an unknown zone would otherwise fail deep in SQL
-- without the script's position: raise "file:line: schedule 'x': unknown time zone 'y'".
local function check_zones()
  local known = {}
  for _, def in ipairs(registry.ordered) do
    local zone = zone_of(def.trigger_kwargs, def.timezone)
    if not is_utc(zone) then
      if known[zone] == nil then
        known[zone] = store.zone_exists(zone)
      end
      if not known[zone] then
        error(string.format("%sschedule '%s': unknown time zone '%s' (see PostgreSQL's pg_timezone_names)",
          def.where, def.name, zone), 0)
      end
    end
  end
end

-- Bring the 'script' rows in line with the definitions: create, change, remove. One transaction.
function schedules.sync()
  local db = require("orch.db")
  check_zones()
  local changes = { created = json.array(), updated = json.array(), deleted = json.array() }
  db.transaction(function()
    local now = store.now()
    local existing = {}
    for _, row in ipairs(store.scripted()) do
      existing[row.script_key] = row
    end
    for _, def in ipairs(registry.ordered) do
      local row = existing[def.name]
      existing[def.name] = nil
      local wanted = {
        name = def.name, workflow_name = def.workflow_name, trigger = def.trigger,
        trigger_kwargs = def.trigger_kwargs, user_inputs = def.user_inputs, timezone = def.timezone,
        misfire = def.misfire, source = "script", script_key = def.name, script_where = def.where, anchor = now,
      }
      if not row then
        wanted.schedule_id = orch.uuid.v4()
        wanted.next_run_time = schedules.first_due(wanted, now)
        store.insert(wanted)
        changes.created[#changes.created + 1] = def.name
      elseif row.trigger ~= def.trigger or not same(row.trigger_kwargs, def.trigger_kwargs)
        or row.timezone ~= def.timezone or row.workflow_name ~= def.workflow_name
        or not same(row.user_inputs, def.user_inputs) or row.misfire ~= def.misfire then
        wanted.schedule_id = row.schedule_id
        wanted.next_run_time = schedules.first_due(wanted, now)
        store.update(wanted)
        changes.updated[#changes.updated + 1] = def.name
      elseif row.script_where ~= def.where then
        wanted.schedule_id, wanted.anchor, wanted.next_run_time = row.schedule_id, row.anchor, row.next_run_time
        store.update(wanted)
      end
    end
    for key, row in pairs(existing) do
      store.delete(row.schedule_id)
      changes.deleted[#changes.deleted + 1] = key
    end
  end)
  return changes
end

-- ---- core's default schedules ----

schedules.DEFAULTS = {
  { name = "Task Resume Workflows", workflow_name = "task_resume_workflows", trigger = "interval",
    trigger_kwargs = { hours = 1 } },
  { name = "Task Clean Up Tasks", workflow_name = "task_clean_up_tasks", trigger = "interval",
    trigger_kwargs = { hours = 6 } },
  { name = "Task Validate Subscriptions", workflow_name = "task_validate_subscriptions", trigger = "cron",
    trigger_kwargs = { hour = 0, minute = 10 } },
  { name = "Task Validate Products", workflow_name = "task_validate_products", trigger = "cron",
    trigger_kwargs = { hour = 2, minute = 30 } },
  { name = "Task Validate Awaiting Callbacks", workflow_name = "task_validate_awaiting_callbacks",
    trigger = "interval", trigger_kwargs = { seconds = 30 } },
}

-- Create the defaults whose task has no schedule yet (core's load-initial-schedule);
-- {recreate = true} replaces the existing default rows first.
function schedules.load_defaults(opts)
  opts = opts or {}
  local db = require("orch.db")
  local workflow = require("orch.workflow")
  local report = { created = json.array(), skipped = json.array() }
  db.transaction(function()
    -- One loader at a time across hosts, so two starting hosts do not both create them.
    db.must("SELECT pg_advisory_xact_lock(hashtext('orch_schedule_defaults'))")
    local now = store.now()
    for _, d in ipairs(schedules.DEFAULTS) do
      local existing = store.by_workflow(d.workflow_name)
      if opts.recreate then
        for _, row in ipairs(existing) do
          if row.source == "default" then
            store.delete(row.schedule_id)
          end
        end
        existing = store.by_workflow(d.workflow_name)
      end
      if not workflow.get(d.workflow_name) or #existing > 0 then
        report.skipped[#report.skipped + 1] = d.name
      else
        local row = {
          schedule_id = orch.uuid.v4(), name = d.name, workflow_name = d.workflow_name, trigger = d.trigger,
          trigger_kwargs = d.trigger_kwargs, user_inputs = { {} }, timezone = "UTC", misfire = "run_once",
          source = "default", anchor = now,
        }
        row.next_run_time = schedules.first_due(row, now)
        store.insert(row)
        report.created[#report.created + 1] = d.name
      end
    end
  end)
  return report
end

-- ---- firing ----

local function log_warn(fmt, ...)
  orch.log.warn(string.format(fmt, ...))
end

-- Lock the due schedules, record their runs and move them on. Returns the number recorded.
local function fire_due(limit, grace)
  local db = require("orch.db")
  return db.transaction(function()
    local fired = 0
    for _, row in ipairs(store.lock_due(limit)) do
      local now, due = row.now, row.next_run_time
      local late = now - due > grace
      local status, detail = "pending", nil
      if late and row.misfire == "skip" then
        status, detail = "skipped", string.format("missed by %.0f s (misfire policy 'skip')", now - due)
      end
      if store.insert_run(row.schedule_id, due, status, detail) and status == "pending" then
        fired = fired + 1
      end
      -- Coalesce: the next due time is after now, however many were missed.
      local ok, next_time = pcall(schedules.next_after, row, math.max(now, due))
      if not ok then
        log_warn("schedule '%s': cannot compute its next run: %s", row.name,
          schedules.message(next_time) or tostring(next_time))
        next_time = nil
      end
      store.set_next(row.schedule_id, next_time)
    end
    return fired
  end)
end

-- A start the engine's state refused (not a failure of the schedule).
local REFUSED = { precondition = true, unavailable = true, conflict = true }

-- What a refused or failed start says, from the error processes.start raised.
local function start_outcome(err)
  local kind = errors.kind(err)
  if kind then
    local detail = err.detail
    if type(detail) ~= "string" then
      detail = json.encode(err.body or detail)
    end
    if REFUSED[kind] then
      return "refused", detail
    end
    return "failed", string.format("%s: %s", kind, detail)
  end
  return "failed", type(err) == "table" and (err.message or json.encode(err)) or tostring(err)
end

-- Start one claimed run like a user would (forms with the stored inputs, run predicates);
-- the idempotency key makes a retried start (after a claimer died) find the first process.
-- Returns the run's final status and the pid or the reason.
local function start_run(run)
  local key = string.format("schedule:%s:%.3f", run.schedule_id, run.due_at)
  local inputs = run.user_inputs
  if type(inputs) ~= "table" or inputs[1] == nil then
    inputs = { {} }
  end
  local processes = require("orch.processes")
  local ok, pid = pcall(processes.start, run.workflow_name, inputs, { idempotency_key = key, reporter = "scheduler" })
  if ok then
    store.finish_run(run.schedule_id, run.due_at, "started", pid, nil)
    return "started", pid
  end
  local status, detail = start_outcome(pid)
  store.finish_run(run.schedule_id, run.due_at, status, nil, detail)
  orch.log.info(string.format("schedule '%s': run %s %s: %s", run.name, key, status, detail))
  return status, detail
end

-- Start the recorded runs this host claims. Returns started, refused, failed counts.
local function start_runs(owner, limit, claim_seconds)
  local counts = { started = 0, refused = 0, failed = 0 }
  for _, run in ipairs(store.claim_runs(owner, limit, claim_seconds)) do
    local status = start_run(run)
    counts[status] = counts[status] + 1
  end
  return counts
end

-- Run a schedule now, outside its trigger (`orchestrator schedule run ID`): a run keyed by
-- the current time, started at once. Returns status, pid or reason.
function schedules.run_now(id, owner)
  local row = store.get(id)
  if not row then
    return nil, "no schedule with id " .. tostring(id)
  end
  local now = store.now()
  store.insert_run(id, now, "pending", "run by hand")
  local run = store.claim_run(id, now, owner or "cli", 60)[1]
  if not run then
    return nil, "the run was claimed by another host"
  end
  return start_run(run)
end

-- tick{owner, grace_seconds, limit, claim_seconds}: called by every host about once a second.
function schedules.tick(args)
  args = args or {}
  local fired = fire_due(args.limit or 100, args.grace_seconds or 60)
  local counts = start_runs(args.owner or "host", args.limit or 100, args.claim_seconds or 60)
  counts.fired = fired
  return counts
end

-- ---- reading ----

-- Every schedule as core's ScheduledTask (GraphQL) with our extras.
function schedules.list()
  local out = {}
  for _, row in ipairs(store.all()) do
    out[#out + 1] = {
      id = row.schedule_id, name = row.name, workflow_id = row.workflow_id, workflow_name = row.workflow_name,
      next_run_time = row.next_run_time, trigger = schedules.describe(row.trigger, row.trigger_kwargs, row.timezone),
      trigger_type = row.trigger, trigger_kwargs = row.trigger_kwargs, user_inputs = row.user_inputs,
      source = row.source, where = row.script_where, timezone = row.timezone, misfire = row.misfire,
    }
  end
  return out
end

-- ---- `orchestrator schedule ...` (host/schedule.c prints the report) ----

local function fmt_time(t)
  if not t then
    return "-"
  end
  local f = cron.utc_fields(t)
  return string.format("%04d-%02d-%02d %02d:%02d:%02d UTC", f.year, f.month, f.day, f.hour, f.min, f.sec)
end

-- cli{command, argument} -> "<0|1>\n<text>"
function schedules.cli(args)
  local lines = {}
  if args.command == "list" then
    lines[1] = string.format("%-36s  %-32s  %-7s  %-23s  %s", "id", "name", "source", "next run", "trigger")
    for _, s in ipairs(schedules.list()) do
      lines[#lines + 1] = string.format("%-36s  %-32s  %-7s  %-23s  %s", s.id, s.name, s.source,
        fmt_time(s.next_run_time), s.trigger)
    end
    return "0\n" .. table.concat(lines, "\n") .. "\n"
  elseif args.command == "run" then
    if not orch.uuid.valid(args.argument) then
      return "1\n'" .. tostring(args.argument) .. "' is not a schedule id (see `orchestrator schedule list`)\n"
    end
    local status, detail = schedules.run_now(args.argument:lower())
    if status == "started" then
      return "0\nstarted process " .. detail .. "\n"
    end
    return "1\n" .. (status and (status .. ": ") or "") .. tostring(detail) .. "\n"
  elseif args.command == "load-defaults" then
    local report = schedules.load_defaults({ recreate = args.argument == "--recreate" })
    for _, name in ipairs(report.created) do
      lines[#lines + 1] = "created: " .. name
    end
    for _, name in ipairs(report.skipped) do
      lines[#lines + 1] = "skipped (its task has a schedule or is not defined): " .. name
    end
    return "0\n" .. table.concat(lines, "\n") .. "\n"
  end
  return "1\nunknown command\n"
end

schedules.store = store

return schedules
