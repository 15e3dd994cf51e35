-- Cron expressions and calendar arithmetic for the scheduler (docs/schedules.md).
--
-- Two spellings of one thing:
--  * a crontab line, "min hour day month day_of_week" (5 fields; 6 with a
--    leading seconds field), with Vixie cron's rule that a restricted
--    day-of-month and a restricted day-of-week match when EITHER matches, and
--    day-of-week 0-7 (0 and 7 are Sunday) or sun..sat;
--  * APScheduler's keyword form as orchestrator-core's API takes it
--    ({hour = 0, minute = 10}, fields year, month, day, day_of_week, hour,
--    minute, second), where every field must match, day_of_week is 0-6 for
--    mon..sun, and fields less significant than the smallest one given start at
--    their minimum while more significant ones are "*".
-- Each field is "*", "*/n", "a", "a-b", "a-b/n", "a/n" or a comma list of
-- those; months and days of the week also by their English three-letter
-- names. Not supported (refused with a message): L, W, #, ? and week numbers.
--
-- Times here are civil wall-clock fields {year, month, day, hour, min, sec};
-- converting them to instants is the caller's business (the time zone).
-- Pure Lua, no database: lua_unit tests it directly.

local cron = {}

-- ---- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ----

function cron.days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

function cron.civil_from_days(z)
  z = z + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return m <= 2 and y + 1 or y, m, d
end

local function leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

function cron.days_in_month(y, m)
  if m == 2 then
    return leap(y) and 29 or 28
  end
  return (m == 4 or m == 6 or m == 9 or m == 11) and 30 or 31
end

-- ISO weekday: 1 = Monday … 7 = Sunday (1970-01-01 was a Thursday).
function cron.weekday(y, m, d)
  return (cron.days_from_civil(y, m, d) + 3) % 7 + 1
end

-- Civil fields of a UTC epoch second and back.
function cron.utc_fields(t)
  t = math.floor(t)
  local days, secs = t // 86400, t % 86400
  local y, m, d = cron.civil_from_days(days)
  return { year = y, month = m, day = d, hour = secs // 3600, min = secs % 3600 // 60, sec = secs % 60 }
end

function cron.utc_epoch(f)
  return cron.days_from_civil(f.year, f.month, f.day) * 86400 + f.hour * 3600 + f.min * 60 + f.sec
end

-- ---- parsing ----

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8, sep = 9, oct = 10,
  nov = 11, dec = 12 }
-- Day names as each spelling numbers them (converted to ISO weekdays after parsing).
local CRONTAB_DAYS = { sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6 }
local APS_DAYS = { mon = 0, tue = 1, wed = 2, thu = 3, fri = 4, sat = 5, sun = 6 }

-- name, low, high, names: the range of a field as written (day_of_week differs by spelling).
local FIELDS = {
  second = { 0, 59 }, minute = { 0, 59 }, hour = { 0, 23 }, day = { 1, 31 }, month = { 1, 12, MONTHS },
  year = { 1970, 2999 },
}

local function field_error(name, expr, why)
  error({ schedule_error = string.format("%s field '%s': %s", name, tostring(expr), why) }, 0)
end

-- One field expression -> set {value = true}, any (was it "*").
-- to_iso: for day_of_week, maps a written number to the ISO weekday.
local function parse_field(name, expr, lo, hi, names, to_iso)
  expr = tostring(expr):lower():gsub("%s+", "")
  if expr == "" then
    field_error(name, expr, "is empty")
  end
  if expr:find("[#?]") then
    field_error(name, expr, "# and ? are not supported")
  end
  local set, any = {}, expr == "*"
  local function value(text)
    if text:match("^%d*l?w?$") and text:match("[lw]$") then
      field_error(name, expr, "L and W are not supported")
    end
    local n = tonumber(text)
    if not n and names then
      n = names[text]
    end
    if not n or n ~= math.floor(n) then
      field_error(name, expr, "'" .. text .. "' is not a number" .. (names and " or a name" or ""))
    end
    if n < lo or n > hi then
      field_error(name, expr, string.format("%d is outside %d to %d", n, lo, hi))
    end
    return n
  end
  for part in expr:gmatch("[^,]+") do
    local range, step = part:match("^([^/]+)/(%d+)$")
    if not range then
      range = part
    end
    step = step and tonumber(step) or 1
    if step < 1 then
      field_error(name, expr, "a step must be at least 1")
    end
    local a, b
    if range == "*" then
      a, b = lo, hi
    else
      local x, y = range:match("^([%w]+)%-([%w]+)$")
      if x then
        a, b = value(x), value(y)
        if a > b then
          field_error(name, expr, "a range must go upwards")
        end
      else
        a = value(range)
        b = part:find("/") and hi or a
      end
    end
    for v = a, b, step do
      local iso = v
      if to_iso then
        iso = to_iso(v)
      end
      set[iso] = true
    end
  end
  if next(set) == nil then
    field_error(name, expr, "matches nothing")
  end
  return set, any
end

local function all(lo, hi)
  local set = {}
  for v = lo, hi do
    set[v] = true
  end
  return set
end

-- Crontab day-of-week numbers: 0 and 7 are Sunday.
local function crontab_dow(v)
  return v == 0 and 7 or v
end
-- APScheduler day-of-week numbers: 0 is Monday.
local function aps_dow(v)
  return v + 1
end

-- cron.parse(text) -> spec for a crontab line; raises {schedule_error = message}.
function cron.parse(text)
  if type(text) ~= "string" then
    field_error("cron", text, "must be a string")
  end
  local parts = {}
  for p in text:gmatch("%S+") do
    parts[#parts + 1] = p
  end
  if #parts == 5 then
    table.insert(parts, 1, "0")
  elseif #parts ~= 6 then
    error({ schedule_error = "a cron line has 5 fields (minute hour day month day_of_week), or 6 with seconds "
      .. "first; got " .. #parts }, 0)
  end
  local spec = { text = text, or_days = true }
  local any
  spec.second = parse_field("second", parts[1], 0, 59)
  spec.minute = parse_field("minute", parts[2], 0, 59)
  spec.hour = parse_field("hour", parts[3], 0, 23)
  spec.day, spec.day_any = parse_field("day", parts[4], 1, 31)
  spec.month = parse_field("month", parts[5], 1, 12, MONTHS)
  spec.dow, any = parse_field("day_of_week", parts[6], 0, 7, CRONTAB_DAYS, crontab_dow)
  spec.dow_any = any
  spec.year = all(1970, 2999)
  return spec
end

local KW_ORDER = { "year", "month", "day", "day_of_week", "hour", "minute", "second" }
local KW_KNOWN = { year = true, month = true, day = true, week = true, day_of_week = true, hour = true,
  minute = true, second = true, timezone = true }

-- cron.from_kwargs(kwargs) -> spec for APScheduler's keyword form; raises {schedule_error}.
function cron.from_kwargs(kw)
  for k in pairs(kw) do
    if not KW_KNOWN[k] then
      error({ schedule_error = "unknown cron argument '" .. tostring(k) .. "' (known: year, month, day, "
        .. "day_of_week, hour, minute, second, timezone)" }, 0)
    end
  end
  if kw.week ~= nil then
    error({ schedule_error = "cron argument 'week' (ISO week numbers) is not supported" }, 0)
  end
  -- Fields after the most significant one given default to their minimum (APScheduler's rule).
  local seen = false
  local exprs = {}
  for _, k in ipairs(KW_ORDER) do
    if kw[k] ~= nil then
      seen = true
      exprs[k] = tostring(kw[k])
    elseif seen and k ~= "day_of_week" then
      exprs[k] = tostring(k == "day" and 1 or k == "month" and 1 or 0)
    else
      exprs[k] = "*"
    end
  end
  if not seen then
    error({ schedule_error = "a cron trigger needs at least one of year, month, day, day_of_week, hour, "
      .. "minute, second" }, 0)
  end
  local spec = { or_days = false }
  spec.year = parse_field("year", exprs.year, FIELDS.year[1], FIELDS.year[2])
  spec.month = parse_field("month", exprs.month, 1, 12, MONTHS)
  spec.day, spec.day_any = parse_field("day", exprs.day, 1, 31)
  spec.dow, spec.dow_any = parse_field("day_of_week", exprs.day_of_week, 0, 6, APS_DAYS, aps_dow)
  spec.hour = parse_field("hour", exprs.hour, 0, 23)
  spec.minute = parse_field("minute", exprs.minute, 0, 59)
  spec.second = parse_field("second", exprs.second, 0, 59)
  return spec
end

-- ---- the next matching time ----

local function day_matches(spec, y, m, d)
  if d > cron.days_in_month(y, m) then
    return false
  end
  local dom, dow = spec.day[d] == true, spec.dow[cron.weekday(y, m, d)] == true
  if spec.or_days and not spec.day_any and not spec.dow_any then
    return dom or dow
  end
  return dom and dow
end

-- Normalise a cursor whose fields ran over (one carry step each).
local function carry(c)
  if c.sec > 59 then
    c.sec, c.min = 0, c.min + 1
  end
  if c.min > 59 then
    c.min, c.hour = 0, c.hour + 1
  end
  if c.hour > 23 then
    c.hour, c.day = 0, c.day + 1
  end
  if c.month <= 12 and c.day > cron.days_in_month(c.year, c.month) then
    c.day, c.month = 1, c.month + 1
  end
  if c.month > 12 then
    c.month, c.year = 1, c.year + 1
  end
end

-- The first civil time strictly after `after` (fields) that the spec matches,
-- or nil within `horizon` years (default 8). Each miss moves the least
-- significant wrong field on and resets the ones below it, so a search costs at
-- most a few thousand steps.
function cron.next_after(spec, after, horizon)
  local c = cron.utc_fields(cron.utc_epoch(after) + 1) -- plain civil arithmetic, no zone involved
  local last_year = after.year + (horizon or 8)
  while c.year <= last_year do
    if not spec.year[c.year] then
      c.year, c.month, c.day, c.hour, c.min, c.sec = c.year + 1, 1, 1, 0, 0, 0
    elseif not spec.month[c.month] then
      c.month, c.day, c.hour, c.min, c.sec = c.month + 1, 1, 0, 0, 0
    elseif not day_matches(spec, c.year, c.month, c.day) then
      c.day, c.hour, c.min, c.sec = c.day + 1, 0, 0, 0
    elseif not spec.hour[c.hour] then
      c.hour, c.min, c.sec = c.hour + 1, 0, 0
    elseif not spec.minute[c.min] then
      c.min, c.sec = c.min + 1, 0
    elseif not spec.second[c.sec] then
      c.sec = c.sec + 1
    else
      return c
    end
    carry(c)
  end
  return nil
end

return cron
