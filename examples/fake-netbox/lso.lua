-- The fake LSO: POST /api/playbook records a playbook run and, after
-- `delay_ms`, POSTs the result to the run's callback URL (the orchestrator's
-- callback route). The result ("success" or "failure") and the delay are set
-- at run time with PUT /api/_fake/lso.
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local json = require("json")

local lso = {}

-- A callback that arrives before the process waits for it gets 409 from the
-- orchestrator: retry for a while, as a real LSO's job would simply take longer.
local RETRY_EVERY, RETRY_FOR, CALL_TIMEOUT = 0.1, 30, 5

local settings, runs, pending, counter

function lso.reset()
  settings = { result = "success", delay_ms = 100 }
  runs, pending, counter = json.array({}), {}, 0
end
lso.reset()

function lso.settings()
  return { result = settings.result, delay_ms = settings.delay_ms }
end

function lso.configure(body)
  if type(body) ~= "table" then
    return 400, { detail = 'expected {"result": "success"|"failure", "delay_ms": n}' }
  end
  if body.result ~= nil and body.result ~= "success" and body.result ~= "failure" then
    return 400, { detail = 'result must be "success" or "failure"' }
  end
  if body.delay_ms ~= nil and (math.type(body.delay_ms) ~= "integer" or body.delay_ms < 0) then
    return 400, { detail = "delay_ms must be a non-negative integer" }
  end
  settings.result = body.result or settings.result
  settings.delay_ms = body.delay_ms or settings.delay_ms
  return 200, lso.settings()
end

function lso.state()
  return { settings = lso.settings(), runs = runs }
end

local function job_id()
  counter = counter + 1
  return string.format("00000000-0000-4000-8000-%012d", counter)
end

-- POST /api/playbook {playbook_name, inventory, extra_vars, callback}
function lso.submit(body)
  if type(body) ~= "table" then
    return 400, { detail = "expected a JSON object" }
  end
  local errors = {}
  if type(body.playbook_name) ~= "string" or body.playbook_name == "" then
    errors[#errors + 1] = "playbook_name is required"
  end
  if type(body.callback) ~= "string" or not body.callback:match("^https?://") then
    errors[#errors + 1] = "callback must be an http(s) URL"
  end
  if body.inventory == nil then
    errors[#errors + 1] = "inventory is required"
  end
  if #errors > 0 then
    return 400, { detail = table.concat(errors, "; ") }
  end
  local run = {
    job_id = job_id(),
    playbook_name = body.playbook_name,
    inventory = body.inventory,
    extra_vars = body.extra_vars or json.null,
    callback = body.callback,
    received_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    result = settings.result,
    callback_status = json.null,
    callback_attempts = 0,
  }
  runs[#runs + 1] = run
  local due = socket.gettime() + settings.delay_ms / 1000
  pending[#pending + 1] = { run = run, due = due, give_up = due + RETRY_FOR }
  return 201, { job_id = run.job_id, status = "running" }
end

local function payload(run)
  local ok = run.result == "success"
  return {
    job_id = run.job_id,
    status = ok and "successful" or "failed",
    return_code = ok and 0 or 2,
    output = string.format("PLAY [%s] ***\nPLAY RECAP *** %s : ok=%d failed=%d", run.playbook_name,
      (tostring(run.inventory):gsub("\n", " ")), ok and 3 or 2, ok and 0 or 1),
  }
end

local function post(url, body)
  local chunks = {}
  local _, status = http.request({
    url = url,
    method = "POST",
    headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body) },
    source = ltn12.source.string(body),
    sink = ltn12.sink.table(chunks),
    create = function()
      local s = socket.tcp()
      s:settimeout(CALL_TIMEOUT)
      return s
    end,
  })
  return status, table.concat(chunks)
end

-- Seconds until the next callback is due (nil when none is pending).
function lso.next_due_in()
  local first
  for _, p in ipairs(pending) do
    first = first and math.min(first, p.due) or p.due
  end
  return first and math.max(0, first - socket.gettime()) or nil
end

-- Deliver the callbacks that are due; retry the ones the orchestrator is not ready for.
function lso.deliver_due()
  local now = socket.gettime()
  local keep = {}
  for _, p in ipairs(pending) do
    if p.due > now then
      keep[#keep + 1] = p
    else
      local run = p.run
      run.callback_attempts = run.callback_attempts + 1
      local body = payload(run)
      local status, text = post(run.callback, json.encode(body))
      run.callback_status = type(status) == "number" and status or json.null
      run.callback_response = text
      if type(status) ~= "number" then
        run.callback_error = tostring(status)
      end
      local retry = type(status) ~= "number" or status == 409 or status >= 500
      if retry and socket.gettime() < p.give_up then
        p.due = socket.gettime() + RETRY_EVERY
        keep[#keep + 1] = p
      else
        run.callback_payload = body
        run.delivered = type(status) == "number" and status >= 200 and status < 300
      end
    end
  end
  pending = keep
end

return lso
