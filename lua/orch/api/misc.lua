-- Small routes that belong to no resource.

local misc = {}

-- GET /: the name orchestrator-core answers with.
function misc.root()
  return 200, "Orchestrator Core"
end

return misc
