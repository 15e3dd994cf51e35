-- How the HTTP API answers a domain error (orch.errors): the one table from kind to status.
-- The host calls to_problem when a handler ends with a domain error (host/lhost.c).

local errors = require("orch.errors")
local http = require("orch.http")
local json = require("orch.json")

local M = {}

M.STATUS = {
  invalid = 400,
  invalid_parameter = 422,
  forbidden = 403,
  not_found = 404,
  conflict = 409,
  precondition = 412,
  unavailable = 503,
  form_not_complete = 510,
  form_invalid = 400,
}

-- The problem detail of a domain error (a problem of 500 for anything else).
function M.to_problem(e)
  local kind = errors.kind(e)
  local status = kind and M.STATUS[kind] or 500
  local p = http.problem(status, kind and e.detail or "Internal Server Error")
  if kind and e.body ~= nil then
    p.body_json = json.encode(e.body)
  end
  return p
end

return M
