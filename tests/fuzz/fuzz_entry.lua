-- fuzz_entry: the Lua side of the libFuzzer harnesses (tests/fuzz/fuzz_lua.c calls these
-- through orch_lua_invoke with the fuzz input as a string; docs/testing.md, "Fuzzing").
--
-- Each entry feeds the input to one parser or validator and raises only when the code under
-- test misbehaved: a Lua runtime error inside lua/orch (a bug: it would be a 500), a wrong
-- shape of a result, or a round trip that changes the value. Answers the code gives on
-- purpose (nil + message, problem details, GraphQL errors, form validation errors) are fine.
-- The harness aborts on a raise, so libFuzzer records the input.

local json = require("orch.json")

local M = {}

-- Errors of the code under test that are expected without a database or outbound services.
local EXPECTED = {
  "orch.db is not available here", -- the fuzz state has no database connection
  "orch.client", -- outbound calls (the fuzz state reaches no services)
  "no service", -- idem
}

-- Whether err is an answer the code gives on purpose (not a bug).
local function expected(err)
  if type(err) == "table" then
    return err.__problem == true or err.message ~= nil
  end
  local text = tostring(err)
  for _, pattern in ipairs(EXPECTED) do
    if text:find(pattern, 1, true) then
      return true
    end
  end
  return false
end

-- A message that names a file and line of Lua code is a runtime error (a bug), not an answer.
local function is_internal(message)
  return type(message) == "string" and message:find("%.lua:%d+:") ~= nil
end

local function fail(what, detail)
  error("fuzz: " .. what .. ": " .. tostring(detail), 0)
end

local function call(what, fn, ...)
  local ok, a, b, c = pcall(fn, ...)
  if not ok and not expected(a) then
    fail(what, a)
  end
  return ok, a, b, c
end

-- ---- the search query language (orch.search_query) against the real connection specs ----

local function search_specs()
  local specs = {}
  for _, name in ipairs({ "orch.api.graphql_schema.processes", "orch.api.graphql_schema.subscriptions" }) do
    local mod = require(name)
    if type(mod.spec) == "function" then
      specs[#specs + 1] = mod.spec()
    end
  end
  return specs
end

-- Input: "query" or "query\nfield\nvalue" (a filterBy term too).
function M.search(text)
  local sq = require("orch.search_query")
  local list_query = require("orch.query")
  local query, field, value = text, nil, nil
  local nl = text:find("\n", 1, true)
  if nl then
    query = text:sub(1, nl - 1)
    local rest = text:sub(nl + 1)
    local nl2 = rest:find("\n", 1, true)
    field, value = rest:sub(1, (nl2 or #rest + 1) - 1), nl2 and rest:sub(nl2 + 1) or ""
  end
  local _, ast, err = call("search_query.parse", sq.parse, query)
  if ast == nil and is_internal(err) then
    fail("search_query.parse", err)
  end
  if ast then
    local _, ts = call("search_query.to_tsquery", sq.to_tsquery, ast)
    if ts ~= nil and type(ts) ~= "string" then
      fail("to_tsquery", "not a string: " .. type(ts))
    end
  end
  for _, spec in ipairs(search_specs()) do
    local errors = {}
    local info = {
      add_error = function(_, message)
        errors[#errors + 1] = message
      end,
    }
    local args = { query = query }
    if field then
      args.filterBy = { { field = field, value = value } }
      args.sortBy = { { field = field, order = (#value % 2 == 0) and "ASC" or "DESC" } }
    end
    local _, conds, msg = call("query.clauses", list_query.clauses, args, spec, info)
    if conds == nil and is_internal(msg) then
      fail("query.clauses", msg)
    end
    for _, m in ipairs(errors) do
      if is_internal(m) then
        fail("query.clauses", m)
      end
    end
  end
end

-- ---- GraphQL: parse, validate and execute against the API schema (no database) ----

-- Input: a document, optionally followed by "\n#variables\n" and a JSON object.
function M.graphql(text)
  local graphql = require("orch.graphql")
  local schema = require("orch.api.graphql_schema")
  local query, variables = text, nil
  local at = text:find("\n#variables\n", 1, true)
  if at then
    query = text:sub(1, at - 1)
    variables = json.try_decode(text:sub(at + #"\n#variables\n"))
  end
  local _, doc, err = call("graphql.parse", graphql.parse, query)
  if doc == nil and type(err) == "table" and is_internal(err.message) then
    fail("graphql.parse", err.message)
  end
  local body = { query = query, variables = variables }
  local _, response = call("graphql.execute", graphql.execute, schema(), body, { request = { headers = {} } })
  if type(response) ~= "table" then
    fail("graphql.execute", "no response table")
  end
  for _, e in ipairs(response.errors or {}) do
    if type(e) ~= "table" or type(e.message) ~= "string" then
      fail("graphql.execute", "an error without a message")
    end
    if is_internal(e.message) and not expected(e.message) then
      fail("graphql.execute", e.message)
    end
  end
  -- The answer must encode (the host sends it as JSON).
  local encoded, eerr = json.try_encode(response)
  if not encoded then
    fail("graphql response encode", eerr)
  end
end

-- ---- forms: random pages against the example products' forms ----

-- A database-free form context: the host's callbacks answer from fixed data.
local FAKE_PRODUCT = "6b1f6c5e-0000-4000-8000-000000000001"

local function form_context(wf)
  local processes = require("orch.processes")
  local ctx = processes.form_context(wf, "fuzz")
  ctx.products = function()
    return { { product_id = FAKE_PRODUCT, name = "fuzz product" } }
  end
  ctx.check_product = function()
    return nil
  end
  ctx.subscriptions = function()
    return {}
  end
  return ctx
end

-- The example products' forms read the database themselves (customers, fixed inputs, ports;
-- orch.db is read-only for scripts, so it cannot be faked here): their pages after the first
-- stop at "orch.db is not available", an expected error. Core's first pages, the tasks' forms
-- and the validation of every page before the database is reached are fuzzed.
-- Input: a workflow name and a newline (or one byte choosing the workflow), then a JSON array
-- of pages.
function M.forms(text)
  if #text < 1 then
    return
  end
  local workflow = require("orch.workflow")
  local forms = require("orch.forms")
  local processes = require("orch.processes")
  local list = workflow.list()
  if #list == 0 then
    fail("forms", "no workflows loaded")
  end
  local wf, pages_text
  local name, rest = text:match("^([%w_]+)\n(.*)$")
  if name and workflow.get(name) then
    wf, pages_text = workflow.get(name), rest
  else
    wf, pages_text = list[text:byte(1) % #list + 1], text:sub(2)
  end
  local pages = json.try_decode(pages_text)
  if type(pages) ~= "table" then
    return
  end
  local ok, outcome = call("forms.post_form", forms.post_form, processes.initial_form(wf),
    { workflow_name = wf.name, workflow_target = wf.target }, pages, form_context(wf))
  if not ok then
    return { workflow = wf.name, error = tostring(outcome) }
  end
  if type(outcome) ~= "table" then
    fail("forms.post_form", "no outcome table")
  end
  if not outcome.complete then
    if type(outcome.status) ~= "number" or outcome.status < 400 or outcome.status >= 600 then
      fail("forms.post_form", "incomplete without a 4xx/510 status: " .. tostring(outcome.status))
    end
    if outcome.status >= 500 and outcome.status ~= 510 then
      fail("forms.post_form", "status " .. outcome.status)
    end
    local encoded, eerr = json.try_encode(outcome.body)
    if not encoded then
      fail("forms answer encode", eerr)
    end
  else
    local encoded, eerr = json.try_encode(outcome.result or {})
    if not encoded then
      fail("forms state encode", eerr)
    end
  end
  -- what ORCH_FUZZ_SHOW=1 prints
  return { workflow = wf.name, complete = outcome.complete, status = outcome.status, body = outcome.body }
end

-- ---- the JSON bridge (host/lapi_json.c + orch.json) ----

local function same(a, b, depth)
  if depth > 200 then
    return true
  end
  if type(a) ~= type(b) then
    -- integers and floats of the same value are the same JSON number
    return false
  end
  if type(a) ~= "table" then
    if a ~= a and b ~= b then
      return true
    end
    return a == b
  end
  if json.is_array(a) ~= json.is_array(b) then
    return false
  end
  for k, v in pairs(a) do
    if not same(v, b[k], depth + 1) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

-- Input: any text. Decoding either fails with a message or gives a value whose encoding
-- decodes to the same value. (Not the same text: object keys come out in table order, which
-- may differ between two equal tables.)
function M.json(text)
  local _, v, err = call("json.try_decode", json.try_decode, text)
  if v == nil then
    if err == nil and text:match("^%s*null%s*$") == nil then
      fail("json.try_decode", "nil without a message")
    end
    return
  end
  local _, encoded, eerr = call("json.try_encode", json.try_encode, v)
  if not encoded then
    -- whatever decodes must encode again (1e999 used to decode to inf: now refused)
    fail("json.try_encode", tostring(eerr) .. " for " .. text:sub(1, 200))
  end
  local _, v2, err2 = call("json.try_decode (again)", json.try_decode, encoded)
  if v2 == nil then
    fail("round trip", "own output does not decode: " .. tostring(err2) .. " in " .. encoded:sub(1, 200))
  end
  if not same(v, v2, 0) then
    fail("round trip", "value changed: " .. text:sub(1, 200) .. " -> " .. encoded:sub(1, 200))
  end
end

return M
