-- lua/orch/schedules/cron.lua: crontab lines and APScheduler's keyword form against a table
-- of expected next times (civil fields, no time zone; zones are tested against PostgreSQL in
-- tests/integration/schedules_spec.lua).
local cron = require("orch.schedules.cron")

local function at(text)
  local y, mo, d, h, mi, s = text:match("^(%d+)-(%d+)-(%d+) (%d+):(%d+):(%d+)$")
  return { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h), min = tonumber(mi),
    sec = tonumber(s) }
end

local function fmt(f)
  return f and string.format("%04d-%02d-%02d %02d:%02d:%02d", f.year, f.month, f.day, f.hour, f.min, f.sec) or "none"
end

local AFTER = "2026-12-04 17:53:10" -- a Friday

describe("cron next times", function()
  local cases = {
    { "0 3 * * *", "2026-12-05 03:00:00" },
    { "*/15 * * * *", "2026-12-04 18:00:00" },
    { "5-10/2 18 * * *", "2026-12-04 18:05:00" },
    { "0 0 29 2 *", "2028-02-29 00:00:00" },
    { "0 9 * * mon-fri", "2026-12-07 09:00:00" },
    { "0 9 * * 1-5", "2026-12-07 09:00:00" },
    { "30 2 * * 0", "2026-12-06 02:30:00" },
    { "30 2 * * 7", "2026-12-06 02:30:00" },
    { "30 2 * * sun", "2026-12-06 02:30:00" },
    { "0 0 13 * 5", "2026-12-11 00:00:00" }, -- day 13 OR a Friday (Vixie cron)
    { "0 0 1 jan *", "2027-01-01 00:00:00" },
    { "0 0 31 * *", "2026-12-31 00:00:00" },
    { "0 0 31 4 *", "2027-04-31 00:00:00" },
    { "15 10 * * * ", "2026-12-05 10:15:00" },
    { "30 * * * * *", "2026-12-04 17:53:30" }, -- six fields: seconds first
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local impossible = c[2] == "2027-04-31 00:00:00" -- April has no 31st: nothing within the horizon
      assert.are.equal(impossible and "none" or c[2], fmt(cron.next_after(cron.parse(c[1]), at(AFTER),
        impossible and 2 or nil)))
    end)
  end

  it("takes APScheduler's keyword form (day_of_week 0 = Monday, all fields must match)", function()
    assert.are.equal("2026-12-05 00:10:00",
      fmt(cron.next_after(cron.from_kwargs({ hour = 0, minute = 10 }), at(AFTER))))
    assert.are.equal("2026-12-11 02:00:00", fmt(cron.next_after(cron.from_kwargs({ day_of_week = "fri", hour = 2 }),
      at(AFTER))))
    assert.are.equal("2026-12-07 00:00:00", fmt(cron.next_after(cron.from_kwargs({ day_of_week = 0 }), at(AFTER))))
    assert.are.equal("2027-02-13 00:00:00", fmt(cron.next_after(cron.from_kwargs({ day = 13, day_of_week = "sat" }),
      at(AFTER))))
  end)

  it("refuses what it does not support, in words", function()
    local function message(fn, arg)
      local ok, err = pcall(fn, arg)
      assert.is_false(ok)
      return err.schedule_error
    end
    assert.are.equal("minute field '61': 61 is outside 0 to 59", message(cron.parse, "61 * * * *"))
    assert.truthy(message(cron.parse, "0 0 L * *"):find("L and W are not supported", 1, true))
    assert.truthy(message(cron.parse, "0 0 * * 5#2"):find("not supported", 1, true))
    assert.truthy(message(cron.parse, "* * *"):find("5 fields", 1, true))
    assert.truthy(message(cron.parse, "0 10-2 * * *"):find("upwards", 1, true))
    assert.truthy(message(cron.from_kwargs, { week = 3 }):find("not supported", 1, true))
    assert.truthy(message(cron.from_kwargs, { hours = 3 }):find("unknown cron argument 'hours'", 1, true))
  end)

  it("does calendar arithmetic across centuries", function()
    for _, days in ipairs({ -719468, -1, 0, 59, 11016, 20426, 2932896 }) do
      local y, m, d = cron.civil_from_days(days)
      assert.are.equal(days, cron.days_from_civil(y, m, d))
    end
    assert.are.equal(5, cron.weekday(2026, 12, 4))
    assert.are.equal(29, cron.days_in_month(2000, 2))
    assert.are.equal(28, cron.days_in_month(2100, 2))
  end)
end)
