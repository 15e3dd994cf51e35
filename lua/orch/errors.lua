-- Domain errors: what a service (orch.processes, orch.db, ...) raises when it cannot do
-- what it was asked. They say what went wrong, not how a protocol answers it: the HTTP
-- API turns them into problem details through one table (orch.api.errors); in a step or
-- a schedule they are an error whose message is the detail.
--
--   errors.raise(kind, detail [, body])   never returns
--   errors.kind(e) -> the kind of a caught error, or nil for any other error
--
-- `body` is for the forms protocol, whose refusals carry a whole document
-- (FormNotCompleteError, FormValidationError).

local errors = {}

-- The kinds, each with what it means.
errors.KINDS = {
  invalid = "the request asks for something the operation cannot take",
  invalid_parameter = "a parameter (an id in the path) is not well-formed",
  forbidden = "the user may not do this",
  not_found = "what the request names does not exist",
  conflict = "the thing is not in a state that allows this",
  precondition = "a workflow's start predicate refused",
  unavailable = "the engine is locked or a dependency is away",
  form_not_complete = "the form needs another page",
  form_invalid = "the form's input does not validate",
}

local error_mt = {
  __tostring = function(e)
    return e.message
  end,
}

function errors.new(kind, detail, body)
  if not errors.KINDS[kind] then
    error("orch.errors: unknown kind '" .. tostring(kind) .. "'", 2)
  end
  local message = type(detail) == "string" and detail or kind
  return setmetatable({ __error = kind, detail = detail, message = message, body = body }, error_mt)
end

function errors.raise(kind, detail, body)
  error(errors.new(kind, detail, body), 0)
end

function errors.kind(e)
  if type(e) == "table" then
    local kind = rawget(e, "__error")
    if type(kind) == "string" then
      return kind
    end
  end
  return nil
end

return errors
