-- orch.api.settings against a fake database: the engine status shape of core.
local fake = require("helpers.fake_host")

describe("settings API", function()
  local settings

  before_each(function()
    fake.install()
    settings = require("orch.api.settings")
  end)

  it("reports PAUSING while processes still run under the lock", function()
    fake.queue({ { global_lock = true } }, 1)
    fake.queue({ { n = 2 } }, 1)
    local status, body = settings.get_status()
    assert.are.equal(200, status)
    assert.are.same({ global_lock = true, running_processes = 2, global_status = "PAUSING" }, body)
  end)

  it("writes the lock with a parameter, not by string building", function()
    fake.queue({}, 1)
    fake.queue({ { global_lock = false } }, 1)
    fake.queue({ { n = 0 } }, 1)
    local status, body = settings.put_status({ json = { global_lock = false } })
    assert.are.equal(200, status)
    assert.are.equal("RUNNING", body.global_status)
    assert.are.equal("UPDATE engine_settings SET global_lock = $1", fake.queries[1].sql)
    assert.is_false(fake.queries[1].params[1])
  end)

  it("reports the engine's workers and jobs from its own tables", function()
    fake.queue({ { online = 4, queued = 3, running = 2 } }, 1)
    local status, body = settings.get_worker_status()
    assert.are.equal(200, status)
    assert.are.same({ executor_type = "orchestrator", number_of_workers_online = 4, number_of_queued_jobs = 3,
      number_of_running_jobs = 2 }, body)
    assert.matches("orch_hosts", fake.queries[1].sql)
    assert.matches("lease_expires > now%(%)", fake.queries[1].sql)
  end)

  it("refuses a body without a boolean", function()
    local ok, err = pcall(settings.put_status, { json = { global_lock = 1 } })
    assert.is_false(ok)
    assert.are.equal(422, err.status)
  end)
end)
