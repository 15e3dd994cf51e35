-- What `orchestrator check` asks of the loaded definitions besides errors.

local check = {}

-- warnings() -> list of "file:line: warning: message" (repeated step names, ...).
function check.warnings()
  local out = require("orch.json").array()
  for _, w in ipairs(require("orch.workflow").warnings()) do
    local line = tostring(w):gsub("^(.-:%d+: )", "%1warning: ", 1)
    out[#out + 1] = line
  end
  return out
end

return check
