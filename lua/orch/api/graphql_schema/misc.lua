-- GraphQL root fields without a table of their own: `settings`, `version`,
-- `customers` (the products' customers, or core's default one) and `scheduledTasks`
-- (lua/orch/schedules).

local json = require("orch.json")
local common = require("orch.api.graphql_schema.common")
local connection = require("orch.graphql.connection")

local M = {}

-- The UI reads applicationVersions[0] as "<name> <semver>" and wants core >= 5.0.0: we
-- report the core version whose contract this host serves, then our own.
M.CORE_COMPAT_VERSION = "5.3.0"

-- The products' customers (orch.customers.provide), or core's default customer.
local function customers()
  return require("orch.api.graphql_schema.customers").list()
end

function M.types(T)
  T.Customer = {
    fields = {
      customerId = { type = "String!", from = "customer_id" },
      identifier = { type = "String!", from = "customer_id" },
      fullname = "String!",
      shortcode = "String!",
      subscriptions = {
        type = "SubscriptionConnection!",
        args = connection.ARGS,
        resolve = common.nested_field(function()
          local spec = common.area("subscriptions").spec()
          spec.parent = "s.customer_id"
          spec.parent_type = "text"
          return spec
        end, "customer_id", function(rows)
          return common.area("subscriptions").load(rows)
        end),
      },
    },
  }
  T.CustomerConnection = connection.type("Customer")
  T.ScheduledTask = {
    fields = { id = "String!", name = "String!", workflowId = "String!", nextRunTime = "String", trigger = "String!" },
  }
  T.ScheduledTaskConnection = connection.type("ScheduledTask")
  T.EngineSettings = { fields = { globalLock = "Boolean!", runningProcesses = "Int!", globalStatus = "String!" } }
  T.WorkerStatus = {
    fields = {
      executorType = "String!", numberOfWorkersOnline = "Int!", numberOfQueuedJobs = "Int!",
      numberOfRunningJobs = "Int!",
    },
  }
  T.Status = {
    fields = {
      engineSettings = {
        type = "EngineSettings",
        resolve = function()
          local _, s = require("orch.api.settings").get_status()
          return { globalLock = s.global_lock, runningProcesses = s.running_processes, globalStatus = s.global_status }
        end,
      },
      workerStatus = {
        type = "WorkerStatus",
        resolve = function()
          local _, s = require("orch.api.settings").get_worker_status()
          return {
            executorType = s.executor_type, numberOfWorkersOnline = s.number_of_workers_online,
            numberOfQueuedJobs = s.number_of_queued_jobs, numberOfRunningJobs = s.number_of_running_jobs,
          }
        end,
      },
      cacheNames = {
        type = "JSON",
        resolve = function()
          local _, names = require("orch.api.settings").cache_names()
          return names
        end,
      },
    },
  }
  T.Version = { fields = { applicationVersions = "[String!]!" } }
end

function M.root(Q)
  Q.version = {
    type = "Version!",
    resolve = function()
      return {
        applicationVersions = json.array({
          "orchestrator-core " .. M.CORE_COMPAT_VERSION, "orchestrator " .. orch.version,
        }),
      }
    end,
  }
  Q.settings = {
    type = "Status!",
    resolve = function()
      return {}
    end,
  }
  Q.customers = {
    type = "CustomerConnection!",
    args = connection.ARGS,
    resolve = function(args, _, info)
      local result = connection.from_list(customers(), args, {
        info = info,
        filters = {
          customerId = function(c) return c.customer_id end,
          fullname = true,
          shortcode = true,
        },
        sorts = {
          customerId = function(c) return c.customer_id end,
          fullname = true,
          shortcode = true,
        },
      })
      common.share_batch(result.page, function(c)
        return c.customer_id
      end)
      return result
    end,
  }
  Q.scheduledTasks = {
    type = "ScheduledTaskConnection!",
    args = connection.ARGS,
    resolve = function(args, _, info)
      -- Core lists the schedules linked to a workflow; ours all are, unless their task vanished.
      local items = {}
      for _, s in ipairs(require("orch.schedules").list()) do
        if s.workflow_id then
          items[#items + 1] = {
            id = s.id, name = s.name, workflowId = s.workflow_id, trigger = s.trigger,
            nextRunTime = s.next_run_time and orch.time.iso(s.next_run_time) or nil,
          }
        end
      end
      return connection.from_list(items, args, {
        info = info,
        filters = { id = true, name = true, workflowId = true, nextRunTime = true, trigger = true },
        sorts = { id = true, name = true, workflowId = true, nextRunTime = true, trigger = true },
      })
    end,
  }
end

return M
