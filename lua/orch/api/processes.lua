-- /api/processes: list, status counts, detail, start, resume/retry, abort,
-- delete, note, callbacks. Shapes follow orchestrator-core's ProcessSchema.

local db = require("orch.db")
local json = require("orch.json")
local http = require("orch.http")
local workflow = require("orch.workflow")
local processes = require("orch.processes")
local ts = require("orch.api.wire").ts

local api = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
-- Literal paths come before {param} paths: the first match wins.
local S = require("orch.api.schemas")
api.routes = {
  { "GET", "/api/processes", "list", action = "processes.read", summary = "List processes",
    query = { range = "offset,limit (e.g. 0,50)", sort = "key,asc|desc[,...]", filter = "key,value[,...]" },
    response = S.array(S.ProcessSchema) },
  { "GET", "/api/processes/status-counts", "status_counts", action = "processes.read",
    summary = "Processes and tasks counted by status", response = S.ProcessStatusCounts },
  { "PUT", "/api/processes/resume-all", "resume_all", action = "processes.resume",
    summary = "Resume every failed process", response = S.object({ count = S.integer }, { "count" }) },
  { "GET", "/api/processes/{process_id}", "get", action = "processes.read",
    summary = "One process with its steps", response = S.ProcessDetail },
  { "POST", "/api/processes/{workflow_key}", "start", action = "processes.start",
    query = { reporter = "who starts it (at most 100 characters)" },
    summary = "Start a workflow with the user input of its form pages", body = S.FormPages, status = 201,
    response = S.ProcessIdSchema, errors = { [510] = "The form needs another page (the page is in the body)." } },
  { "PUT", "/api/processes/{process_id}/resume", "resume", action = "processes.resume",
    summary = "Resume a suspended or failed process", body = S.FormPages, status = 204 },
  { "PUT", "/api/processes/{process_id}/abort", "abort", action = "processes.abort",
    summary = "Abort a process", status = 204 },
  { "DELETE", "/api/processes/{process_id}", "delete", action = "processes.delete",
    summary = "Delete a process", status = 204 },
  { "PATCH", "/api/processes/{process_id}", "patch", action = "processes.write",
    summary = "Change a process", body = S.ProcessPatch, response = S.ProcessDetail },
  { "POST", "/api/processes/{process_id}/callback/{token}", "callback", action = "processes.callback",
    summary = "Deliver the result an external system was waiting for", body = S.any_object, status = 200 },
  { "POST", "/api/processes/{process_id}/callback/{token}/progress", "callback_progress",
    action = "processes.callback", summary = "Report progress of a callback step", body = {}, status = 200 },
}

-- Who acts: the authenticated user's name (auth on), else the reporter query
-- argument, else SYSTEM (core's resolve_user_name).
local function user_of(req)
  if req.user then
    return tostring(req.user.name or req.user.sub or "SYSTEM"):sub(1, 100)
  end
  local reporter = req.query and req.query.reporter
  if reporter and #reporter > 100 then
    http.raise(422, "reporter: at most 100 characters")
  end
  return reporter or "SYSTEM"
end

local function check_uuid(id, what)
  if not orch.uuid.valid(id) then
    http.raise(422, (what or "id") .. " is not a valid UUID")
  end
end

-- The columns of ProcessSchema, with the process's subscriptions as one JSON array
-- (timestamps as epoch seconds: orch.api.wire).
local SELECT_PROCESS = ([[
  SELECT p.pid::text AS process_id, p.workflow_id::text, w.name AS workflow_name, w.target AS workflow_target,
         p.is_task, p.created_by, p.failed_reason, @started_at AS started_at, p.last_status,
         p.last_step, p.assignee, @last_modified_at AS last_modified_at, %s AS traceback, p.note,
         COALESCE(s.subs, '[]'::json) AS subscriptions
  FROM processes p
  JOIN workflows w ON w.workflow_id = p.workflow_id
  LEFT JOIN LATERAL (
    SELECT json_agg(json_build_object(
             'subscription_id', sub.subscription_id, 'customer_id', sub.customer_id,
             'product_id', sub.product_id, 'description', sub.description, 'insync', sub.insync,
             'status', sub.status, 'note', sub.note, 'start_date', @start_date,
             'end_date', @end_date, 'version', sub.version,
             'product', json_build_object('product_id', pr.product_id, 'description', pr.description,
                                          'name', pr.name, 'tag', pr.tag, 'status', pr.status,
                                          'product_type', pr.product_type))
             ORDER BY ps.created_at) AS subs
    FROM processes_subscriptions ps
    JOIN subscriptions sub ON sub.subscription_id = ps.subscription_id
    JOIN products pr ON pr.product_id = sub.product_id
    WHERE ps.pid = p.pid) s ON true
]]):gsub("@([%w_]+)", {
  started_at = ts("p.started_at"), last_modified_at = ts("p.last_modified_at"),
  start_date = ts("sub.start_date"), end_date = ts("sub.end_date"),
})

local null = json.null

local function n(v)
  if v == nil then
    return null
  end
  return v
end

local function process_json(row)
  local subs = row.subscriptions or {}
  local first = subs[1]
  return {
    process_id = row.process_id,
    workflow_id = row.workflow_id,
    workflow_name = row.workflow_name,
    workflow_target = n(row.workflow_target),
    is_task = row.is_task,
    created_by = n(row.created_by),
    failed_reason = n(row.failed_reason),
    started_at = row.started_at,
    last_status = row.last_status,
    last_step = n(row.last_step),
    assignee = row.assignee,
    last_modified_at = row.last_modified_at,
    traceback = n(row.traceback),
    note = n(row.note),
    product_id = first and first.product_id or null,
    customer_id = first and first.customer_id or null,
    product = first and first.product or null,
    subscriptions = json.array(subs),
    current_state = null,
    steps = null,
    form = null,
  }
end

-- ---- list ----

-- filter/sort keys (camelCase and snake_case) -> SQL expression and kind.
local COLUMNS = {
  processId = { "p.pid::text", "id" }, workflowId = { "p.workflow_id::text", "id" },
  assignee = { "p.assignee", "text" }, lastStatus = { "p.last_status", "text" },
  lastStep = { "p.last_step", "text" }, startedAt = { "p.started_at", "date" },
  lastModifiedAt = { "p.last_modified_at", "date" }, failedReason = { "p.failed_reason", "text" },
  traceback = { "p.traceback", "text" }, createdBy = { "p.created_by", "text" },
  isTask = { "p.is_task", "bool" }, note = { "p.note", "text" },
  workflowName = { "w.name", "text" }, target = { "w.target", "text" }, workflowTarget = { "w.target", "text" },
  customer = { "sub1.customer_id", "text" }, product = { "pr1.name", "text" },
  productName = { "pr1.name", "text" }, productDescription = { "pr1.description", "text" },
  productTag = { "pr1.tag", "text" }, tag = { "pr1.tag", "text" },
  subscriptionId = { "sub1.subscription_id::text", "id" }, subscriptions = { "sub1.description", "text" },
}
local function snake(k)
  return (k:gsub("%u", function(c) return "_" .. c:lower() end))
end
-- The snake_case names go into a table of their own first: adding keys to
-- COLUMNS while pairs() walks it is undefined in Lua, and with each state's
-- own hash seed it lost different keys on different HTTP threads.
local snake_columns = {}
for k, v in pairs(COLUMNS) do
  snake_columns[snake(k)] = v
end
for k, v in pairs(snake_columns) do
  COLUMNS[k] = v
end

local function valid_keys()
  local keys = {}
  for k in pairs(COLUMNS) do
    if not k:find("_") then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys)
  return table.concat(keys, ", ")
end

local function column(key)
  local c = COLUMNS[key]
  if not c then
    http.raise(400, "Invalid filter or sort key '" .. key .. "'; valid keys: " .. valid_keys())
  end
  return c
end

-- Bounds of a list request (docs/input-limits.md): the alternatives of all filters together,
-- and the end of a range.
local MAX_FILTER_VALUES = 32
local MAX_RANGE_END = 1000000000

-- One filter value in core's syntax: leading ! negates, - or | separate alternatives
-- (| only for ids and dates), comparison prefixes for dates.
local function filter_sql(key, value, params)
  local expr, kind = column(key)[1], column(key)[2]
  local negate = value:sub(1, 1) == "!"
  if negate then
    value = value:sub(2)
  end
  local parts = {}
  local sep = (kind == "id" or kind == "date") and "[^|]+" or "[^|%-]+"
  local clauses = {}
  for v in value:gmatch(sep) do
    parts[#parts + 1] = v
  end
  if #params + #parts > MAX_FILTER_VALUES then
    http.raise(400, "Too many filter values (at most " .. MAX_FILTER_VALUES .. " alternatives in all)")
  end
  for _, v in ipairs(parts) do
    if kind == "bool" then
      params[#params + 1] = v:lower() == "true"
      clauses[#clauses + 1] = expr .. " = $" .. #params
    elseif kind == "date" then
      local op, rest = v:match("^([<>]=?)(.*)$")
      params[#params + 1] = rest or v
      clauses[#clauses + 1] = expr .. " " .. (op or ">=") .. " $" .. #params .. "::timestamptz"
    else
      params[#params + 1] = v
      clauses[#clauses + 1] = expr .. " ILIKE $" .. #params
    end
  end
  if #clauses == 0 then
    return nil
  end
  local sql = "(" .. table.concat(clauses, " OR ") .. ")"
  return negate and ("NOT COALESCE(" .. sql .. ", false)") or sql
end

local function split_commas(s)
  local out = {}
  for part in (s .. ","):gmatch("([^,]*),") do
    out[#out + 1] = part
  end
  return out
end

function api.list(req)
  local q = req.query or {}
  local params, where = {}, {}
  if q.filter and q.filter ~= "" then
    local f = split_commas(q.filter)
    if #f % 2 ~= 0 then
      http.raise(400, "Invalid number of filter arguments")
    end
    for i = 1, #f, 2 do
      where[#where + 1] = filter_sql(f[i], f[i + 1], params)
    end
  end
  local order = {}
  if q.sort and q.sort ~= "" then
    local s = split_commas(q.sort)
    for i = 1, #s - 1, 2 do
      local dir = s[i + 1]:upper()
      if dir ~= "ASC" and dir ~= "DESC" then
        http.raise(400, "Invalid sort order '" .. s[i + 1] .. "'")
      end
      order[#order + 1] = column(s[i])[1] .. " " .. dir .. " NULLS LAST"
    end
  end
  order[#order + 1] = "p.started_at DESC"
  order[#order + 1] = "p.pid"
  local offset, limit = 0, 100
  if q.range and q.range ~= "" then
    local a, b = q.range:match("^(%d+),(%d+)$")
    -- integers only (20 digits would read as a float and reach SQL as 1e+20)
    a, b = math.tointeger(tonumber(a)), math.tointeger(tonumber(b))
    if a and b and b > MAX_RANGE_END then
      http.raise(400, "range end must be at most " .. MAX_RANGE_END)
    end
    if not a or not b or a >= b then
      http.raise(400, "range must be 'start,end' with start < end")
    end
    offset, limit = a, b - a
  end
  local from = [[
    FROM processes p JOIN workflows w ON w.workflow_id = p.workflow_id
    LEFT JOIN LATERAL (SELECT ps.subscription_id FROM processes_subscriptions ps WHERE ps.pid = p.pid
                       ORDER BY ps.created_at LIMIT 1) first_sub ON true
    LEFT JOIN subscriptions sub1 ON sub1.subscription_id = first_sub.subscription_id
    LEFT JOIN products pr1 ON pr1.product_id = sub1.product_id]]
  local where_sql = #where > 0 and (" WHERE " .. table.concat(where, " AND ")) or ""
  local total = db.one("SELECT count(*) AS n " .. from .. where_sql, table.unpack(params)).n
  local page_params = { table.unpack(params) }
  page_params[#page_params + 1] = limit
  page_params[#page_params + 1] = offset
  local ids = db.must("SELECT p.pid::text AS pid, p.last_modified_at::text AS modified " .. from .. where_sql
    .. " ORDER BY " .. table.concat(order, ", ") .. " LIMIT $" .. (#params + 1) .. " OFFSET $" .. (#params + 2),
    table.unpack(page_params))
  -- The ETag changes when the page's processes or their last_modified_at change (FNV-1a).
  local hash, list = 0x811c9dc5, {}
  for _, r in ipairs(ids) do
    list[#list + 1] = r.pid
    for i = 1, #r.pid + #r.modified do
      local c = i <= #r.pid and r.pid:byte(i) or r.modified:byte(i - #r.pid)
      hash = ((hash ~ c) * 0x01000193) & 0xffffffff
    end
  end
  local rows = {}
  if #list > 0 then
    local by_id = {}
    for _, r in ipairs(db.must(SELECT_PROCESS:format("NULL::text") .. " WHERE p.pid = ANY($1::uuid[])",
      "{" .. table.concat(list, ",") .. "}")) do
      by_id[r.process_id] = r
    end
    for _, id in ipairs(list) do
      rows[#rows + 1] = by_id[id]
    end
  end
  local etag_row = { t = string.format("%08x", hash) }
  local tag = "0x" .. etag_row.t
  local headers = {
    ["ETag"] = 'W/"' .. tag .. '"',
    ["Content-Range"] = string.format("processes %d-%d/%d", offset, offset + #rows, total),
  }
  local inm = req.headers and req.headers["if-none-match"]
  if inm and (inm == tag or inm == 'W/"' .. tag .. '"') then
    return 304, nil, headers
  end
  local out = json.array()
  for _, r in ipairs(rows) do
    out[#out + 1] = process_json(r)
  end
  return 200, out, headers
end

function api.status_counts()
  local rows = db.must("SELECT is_task, last_status, count(*) AS n FROM processes GROUP BY 1, 2")
  local pc, tc = json.ordered({}), json.ordered({})
  for _, r in ipairs(rows) do
    if r.is_task then
      tc[r.last_status] = r.n
    else
      pc[r.last_status] = r.n
    end
  end
  return 200, { process_counts = pc, task_counts = tc }
end

-- ---- detail ----

function api.get(req)
  local pid = req.params.process_id
  check_uuid(pid, "process_id")
  local row = db.one(SELECT_PROCESS:format("p.traceback") .. " WHERE p.pid = $1", pid)
  if not row then
    http.raise(404, "Process not found")
  end
  local out = process_json(row)
  local detail = processes.detail(pid, workflow.get(row.workflow_name), row.last_status, ts)
  out.steps = detail.steps
  out.current_state = detail.current_state
  if detail.form ~= nil then
    out.form = detail.form
  end
  return 200, require("orch.redact").value(out) -- no callback tokens in answers
end

-- ---- mutations ----

-- The body of a start or resume: a JSON list of form pages (objects), else
-- FastAPI's 422 (loc ["body"] / ["body", i]). A resume also takes the empty
-- object, which the UI's Retry button sends, as no pages.
local function pages(req, empty_object_ok)
  local body = req.json
  if body == nil or body == null then
    http.raise_validation({ { type = "missing", loc = { "body" }, msg = "Field required" } })
  end
  if type(body) == "table" and not json.is_array(body) and next(body) == nil and empty_object_ok then
    return json.array()
  end
  if type(body) ~= "table" or not json.is_array(body) then
    http.raise_validation({ { type = "list_type", loc = { "body" }, msg = "Input should be a valid list",
      input = body } })
  end
  local errors = {}
  for i, page in ipairs(body) do
    if type(page) ~= "table" or json.is_array(page) then
      errors[#errors + 1] = { type = "dict_type", loc = { "body", i - 1 }, msg = "Input should be a valid dictionary",
        input = page }
    end
  end
  if #errors > 0 then
    http.raise_validation(errors)
  end
  return body
end

function api.start(req)
  local name = req.params.workflow_key
  local key = req.headers and req.headers["idempotency-key"]
  if key and (#key == 0 or #key > 255) then
    http.raise(422, "Idempotency-Key must have 1 to 255 characters")
  end
  local pid = processes.start(name, pages(req),
    { reporter = user_of(req), idempotency_key = key, user_info = req.user })
  return 201, { id = pid }
end

function api.resume(req)
  local pid = req.params.process_id
  check_uuid(pid, "process_id")
  processes.resume(pid, pages(req, true), { user = user_of(req), user_info = req.user })
  return 204
end

function api.resume_all(req)
  return 200, { count = processes.resume_all(user_of(req)) }
end

function api.abort(req)
  local pid = req.params.process_id
  check_uuid(pid, "process_id")
  processes.abort(pid, { user = user_of(req) })
  return 204
end

function api.delete(req)
  local pid = req.params.process_id
  check_uuid(pid, "process_id")
  processes.delete(pid)
  return 204
end

function api.patch(req)
  local pid = req.params.process_id
  check_uuid(pid, "process_id")
  local body = req.json
  if type(body) ~= "table" or json.is_array(body) then
    http.raise(422, "The request body must be a JSON object")
  end
  local note = body.note
  if note ~= nil and note ~= null and (type(note) ~= "string" or #note > 5000) then
    http.raise(422, "note must be a string of at most 5000 characters or null")
  end
  if note == null or (type(note) == "string" and note:match("^%s*$")) then
    note = nil
  end
  if body.note ~= nil then
    local _, affected = db.must("UPDATE processes SET note = $2, last_modified_at = now() WHERE pid = $1", pid, note)
    if affected == 0 then
      http.raise(404, "Process id " .. pid .. " not found")
    end
  end
  return api.get(req)
end

function api.callback(req)
  local pid = req.params.process_id
  check_uuid(pid, "process_id")
  local payload = req.json
  if type(payload) ~= "table" or (json.is_array(payload) and next(payload) ~= nil) then
    http.raise(400, "The callback body must be a JSON object")
  end
  processes.callback(pid, req.params.token, payload)
  return 200
end

function api.callback_progress(req)
  local pid = req.params.process_id
  check_uuid(pid, "process_id")
  local progress = req.json
  if progress == nil then
    progress = req.body or ""
  end
  processes.callback_progress(pid, req.params.token, progress)
  return 200
end

return api
