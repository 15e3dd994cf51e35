-- Small routes that belong to no resource: the root, translations for the UI,
-- and the user log routes.

local http = require("orch.http")

local misc = {}

-- Routes of this module (collected by orch.api.routes; see docs/openapi.md).
local S = require("orch.api.schemas")
misc.routes = {
  { "GET", "/", "root", action = "root.read", summary = "The name of the service",
    response = S.string, tags = { "Misc" } },
  { "GET", "/api/translations/{language}", "translations", action = "translations.read",
    summary = "UI labels of a language (core labels merged with the products' own)", response = S.Translations,
    tags = { "Translations" } },
  { "POST", "/api/user/error", "user_error", action = "user.log", summary = "Log an error seen in the UI",
    response = S.any_object, tags = { "User" } },
  { "POST", "/api/user/log/{user_name}", "user_log", action = "user.log", summary = "Log a UI message of a user",
    response = S.any_object, tags = { "User" } },
}

-- GET /: the name orchestrator-core answers with.
function misc.root()
  return 200, "Orchestrator Core"
end

local function deep_merge(into, from)
  for k, v in pairs(from) do
    if type(v) == "table" and type(into[k]) == "table" then
      deep_merge(into[k], v)
    else
      into[k] = v
    end
  end
  return into
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do
    c[k] = type(v) == "table" and copy(v) or v
  end
  return c
end

local function try_require(name)
  local ok, mod = pcall(require, name)
  if ok and type(mod) == "table" then
    return mod
  end
  if not ok and not tostring(mod):find("not found", 1, true) then
    error(mod, 0) -- a broken translation file is an error, a missing one is not
  end
  return nil
end

-- GET /api/translations/{language}: core labels merged with the products' own
-- (<products>/translations/<xx_YY>.lua). Unknown languages get the empty shape.
function misc.translations(req)
  local lang = req.params.language
  if not lang:match("^%a%a%-%a%a$") then
    http.raise(422, "language must look like en-GB")
  end
  local module = lang:gsub("%-", "_")
  local out = { forms = { fields = {} } }
  local core = try_require("orch.translations." .. module)
  if core then
    deep_merge(out, copy(core))
  end
  local products = try_require("translations." .. module)
  if products then
    deep_merge(out, copy(products))
  end
  return 200, out
end

-- POST /api/user/error and /api/user/log/{user_name}: the UI reports to the server log.
function misc.user_error(req)
  orch.log.warn("UI error:", req.body or "")
  return 200, {}
end

function misc.user_log(req)
  orch.log.info("UI log from " .. tostring(req.params.user_name) .. ":", req.body or "")
  return 200, {}
end

return misc
