-- The REST wire format of orchestrator-core, in one place for every REST
-- handler: its response schemas encode each datetime as epoch seconds, a float
-- (Python's dt.timestamp(), e.g. 1764866129.330694), never an ISO string.
-- GraphQL keeps ISO 8601 strings (orch_iso), and process state and forms keep
-- whatever they hold. REST handlers select timestamp columns through ts().

local wire = {}

-- SQL expression of a timestamptz as epoch seconds (double precision, NULL stays
-- NULL); with orch.json writing floats in full, the microseconds survive.
function wire.ts(expr)
  return "extract(epoch FROM " .. expr .. ")::float8"
end

return wire
