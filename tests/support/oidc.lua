-- Start the test OIDC provider (tests/oidc/provider.lua) from specs and make
-- tokens the way it does (same keys), or deliberately wrong ones.
local H = require("harness")
local cjson = require("cjson")

package.path = H.source .. "/tests/oidc/?.lua;" .. package.path
local jose = require("jose")

local O = { jose = jose }

local Provider = {}
Provider.__index = Provider

function O.start()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. H.shell_quote(dir)))
  local log = dir .. "/provider.log"
  local pid = H.proc.spawn({ "lua5.4", H.source .. "/tests/oidc/provider.lua", "--dir", dir, "--port", "0" }, {}, log)
  local p = setmetatable({ pid = pid, dir = dir, log_path = log }, Provider)
  for _ = 1, 400 do
    local url = (H.read_file(log) or ""):match("listening on (http://[%d%.]+:%d+)")
    if url then
      p.url = url
      p.conf_url = url .. "/.well-known/openid-configuration"
      return p
    end
    if H.proc.wait(pid, true) then
      error("oidc provider exited:\n" .. (H.read_file(log) or ""), 2)
    end
    H.sleep(0.05)
  end
  error("oidc provider did not start:\n" .. (H.read_file(log) or ""), 2)
end

function Provider:keys()
  return cjson.decode(H.read_file(self.dir .. "/keys.json"))
end

function Provider:set_keys(keys)
  jose.write(self.dir .. "/keys.json", cjson.encode(keys))
end

function Provider:jwks_fetches()
  return tonumber(H.read_file(self.dir .. "/jwks_fetches") or "0")
end

-- claims with good defaults (iss, aud, exp, sub alice in the write group), overridden by over.
function Provider:claims(over)
  local now = os.time()
  local c = { iss = self.url, aud = "orchestrator", sub = "alice", name = "Alice", email = "alice@example.test",
    groups = { "orchestrator-write" }, iat = now, exp = now + 300 }
  for k, v in pairs(over or {}) do
    c[k] = v
  end
  return c
end

-- token(over [, key [, header]]): signed by the current key unless key is given.
function Provider:token(over, key, header)
  return jose.sign(key or self:keys().current, self:claims(over), header)
end

-- A key of the given kind (RSA, EC) added to the JWKS (current unless keep_current).
function Provider:add_key(kind, kid, alg, keep_current)
  local k = kind == "EC" and jose.new_ec(self.dir, kid) or jose.new_rsa(self.dir, kid, alg)
  local keys = self:keys()
  table.insert(keys.jwks.keys, k.jwk)
  if not keep_current then
    keys.current = { kid = k.kid, alg = k.alg, file = k.file }
  end
  self:set_keys(keys)
  return k
end

-- Rotation: a new RSA key replaces every old one.
function Provider:rotate(kid)
  local k = jose.new_rsa(self.dir, kid)
  self:set_keys({ current = { kid = k.kid, alg = k.alg, file = k.file }, jwks = { keys = { k.jwk } } })
  return k
end

function Provider:stop()
  if self.pid then
    H.proc.kill(self.pid, "TERM")
    H.proc.wait(self.pid)
    self.pid = nil
  end
  os.execute("rm -rf " .. H.shell_quote(self.dir))
end

-- The routes of the host's table (lua/orch/api/routes.lua, read per generation), as
-- {method, pattern, action, host} from host's GET /api/openapi.json (public even with
-- authentication on, as in core; every operation carries x-action and x-handler).
-- host: a harness host; `host` of a row is the C handler name ("websocket") for routes
-- the host answers itself, else nil.
function O.routes(host)
  local status, body, _, doc = host:request("GET", "/api/openapi.json")
  assert(status == 200 and doc and doc.paths, "GET /api/openapi.json: " .. tostring(status) .. " " .. tostring(body))
  local out = {}
  for pattern, ops in pairs(doc.paths) do
    for method, op in pairs(ops) do
      if type(op) == "table" and op["x-action"] then
        out[#out + 1] = { method = method:upper(), pattern = pattern, action = op["x-action"],
          host = tostring(op["x-handler"] or ""):match("^host:(.+)$") }
      end
    end
  end
  table.sort(out, function(a, b)
    return a.pattern .. " " .. a.method < b.pattern .. " " .. b.method
  end)
  return out
end

return O
