-- Database access for the core ruleset and scripts, on the calling thread's
-- connection (see host/lapi_db.c). Values come back typed: booleans,
-- integers, numbers, strings; SQL NULL is nil; json/jsonb columns decoded.

local errors = require("orch.errors")
local json = require("orch.json")
local C = orch._db

local db = {}

-- Statements sent on this state's connection (round trips; tests and benchmarks read it).
db.stats = { statements = 0 }

-- query(sql, ...) -> rows, affected | nil, err {message, sqlstate, retryable}
function db.query(sql, ...)
  db.stats.statements = db.stats.statements + 1
  local rows, affected, json_columns = C.query(sql, ...)
  if not rows then
    return nil, affected
  end
  if json_columns then
    for _, row in ipairs(rows) do
      for _, name in ipairs(json_columns) do
        local text = row[name]
        if text ~= nil then
          row[name] = json.decode(text)
        end
      end
    end
  end
  return rows, affected
end

-- Set by the HTTP dispatcher (orch.http) while a request runs: a value the database
-- refuses there came from the client (a date that is no date, an invalid LIKE escape, a
-- number out of range), so it is a 400 problem detail rather than a 500.
-- (An upvalue: the module's table is sealed once loaded.)
local in_request = false
function db.serving_request(flag)
  in_request = flag and true or false
end

-- Like query, but raises on error (with the caller's position).
function db.must(sql, ...)
  local rows, err = db.query(sql, ...)
  if not rows then
    -- SQLSTATE class 22: data exception
    if in_request and type(err.sqlstate) == "string" and err.sqlstate:sub(1, 2) == "22" then
      errors.raise("invalid", "Invalid value: " .. tostring(err.message):gsub("^ERROR:%s*", ""))
    end
    error("database: " .. err.message, 2)
  end
  return rows, err
end

-- First row or nil.
function db.one(sql, ...)
  local rows = db.must(sql, ...)
  return rows[1]
end

-- What db.after_commit queued in the running transaction (an upvalue: the module is sealed).
local after_commit

-- Run fn() inside BEGIN/COMMIT; ROLLBACK and re-raise if it fails. After the COMMIT, the
-- functions given to db.after_commit meanwhile run in order.
function db.transaction(fn, ...)
  db.must("BEGIN")
  local pending, outer = {}, after_commit
  after_commit = pending
  local results = table.pack(pcall(fn, ...))
  after_commit = outer
  if not results[1] then
    db.query("ROLLBACK")
    error(results[2], 0)
  end
  db.must("COMMIT")
  for _, f in ipairs(pending) do
    f()
  end
  return table.unpack(results, 2, results.n)
end

-- Run fn once the running db.transaction has committed (at once outside one); never when it
-- rolls back. For what must not be seen before the data is (waking the workers).
function db.after_commit(fn)
  if after_commit then
    after_commit[#after_commit + 1] = fn
  else
    fn()
  end
end

return db
