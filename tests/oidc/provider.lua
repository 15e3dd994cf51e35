-- A small OpenID Connect provider for tests (never for production): discovery,
-- JWKS, authorize with automatic consent, token (authorization_code with PKCE
-- accepted as sent, refresh_token), userinfo and introspection. Keys are made at
-- start (openssl) and kept in a state folder that the specs may rewrite to rotate
-- them; the provider reads it on every request.
--
--   lua5.4 tests/oidc/provider.lua --dir STATE [--port 0] [--audience orchestrator]
--
-- STATE/keys.json: {current = {kid, alg, file}, keys = [{kid, alg, file}], jwks = {keys = [...]}}
-- STATE/user.json: the claims of the user who "logs in" (default alice, group orchestrator-write)
-- STATE/jwks_fetches: how many times /jwks was read (for the specs)
local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. here .. "/../../examples/fake-netbox/?.lua;" .. package.path

local socket = require("socket")
local cjson = require("cjson")
local httpd = require("httpd")
local jose = require("jose")

local opts = { port = 0, audience = "orchestrator" }
local i = 1
while arg[i] do
  local k = arg[i]:match("^%-%-(.+)$")
  opts[k] = arg[i + 1]
  i = i + 2
end
assert(opts.dir, "--dir STATE is required")
local dir = opts.dir

local function load_json(name, default)
  local f = io.open(dir .. "/" .. name, "rb")
  if not f then
    return default
  end
  local s = f:read("a")
  f:close()
  return cjson.decode(s)
end

if not load_json("keys.json") then
  local k = jose.new_rsa(dir, "k1")
  jose.write(dir .. "/keys.json", cjson.encode({ current = { kid = k.kid, alg = k.alg, file = k.file },
    jwks = { keys = { k.jwk } } }))
end

local server = assert(socket.bind("127.0.0.1", tonumber(opts.port)))
local _, port = server:getsockname()
local base = "http://127.0.0.1:" .. port
local codes, refresh, opaque = {}, {}, {}
local counter = 0

local function user_claims()
  return load_json("user.json", { sub = "alice", name = "Alice", email = "alice@example.test",
    preferred_username = "alice", groups = { "orchestrator-write" } })
end

local function mint(claims, lifetime)
  local keys = load_json("keys.json")
  local now = os.time()
  local c = {}
  for k, v in pairs(claims) do
    c[k] = v
  end
  c.iss, c.iat, c.exp = base, now, now + (lifetime or 300)
  c.aud = c.aud or opts.audience
  return jose.sign(keys.current, c)
end

local function new_id()
  counter = counter + 1
  return jose.b64url(tostring(os.time()) .. ":" .. counter .. ":" .. math.random(1, 1 << 30))
end

local function tokens(client_id, claims, nonce)
  local rt = new_id()
  refresh[rt] = { client_id = client_id, claims = claims }
  local id_claims = {}
  for k, v in pairs(claims) do
    id_claims[k] = v
  end
  id_claims.aud = client_id
  id_claims.nonce = nonce
  return { access_token = mint(claims), id_token = mint(id_claims), refresh_token = rt, token_type = "Bearer",
    expires_in = 300, scope = "openid profile email" }
end

local function handle(req)
  local p = req.path
  if p == "/.well-known/openid-configuration" then
    return 200, {
      issuer = base, jwks_uri = base .. "/jwks", authorization_endpoint = base .. "/authorize",
      token_endpoint = base .. "/token", userinfo_endpoint = base .. "/userinfo",
      introspection_endpoint = base .. "/introspect", end_session_endpoint = base .. "/logout",
      response_types_supported = { "code" }, subject_types_supported = { "public" },
      id_token_signing_alg_values_supported = { "RS256", "PS256", "ES256" },
      code_challenge_methods_supported = { "S256", "plain" },
      grant_types_supported = { "authorization_code", "refresh_token" },
      token_endpoint_auth_methods_supported = { "client_secret_basic", "client_secret_post" },
    }
  elseif p == "/jwks" then
    local n = tonumber((load_json("jwks_fetches", 0))) + 1
    jose.write(dir .. "/jwks_fetches", tostring(n))
    return 200, load_json("keys.json").jwks
  elseif p == "/authorize" then -- automatic consent
    local code = new_id()
    codes[code] = { client_id = req.query.client_id and req.query.client_id[1], claims = user_claims(),
      nonce = req.query.nonce and req.query.nonce[1] }
    local redirect = req.query.redirect_uri and req.query.redirect_uri[1] or "/"
    local state = req.query.state and req.query.state[1]
    local loc = redirect .. (redirect:find("?", 1, true) and "&" or "?") .. "code=" .. code
      .. (state and ("&state=" .. httpd.url_encode(state)) or "")
    return 302, "", { Location = loc }
  elseif p == "/token" and req.method == "POST" then
    local form = httpd.parse_query(req.body)
    local grant = form.grant_type and form.grant_type[1]
    if grant == "authorization_code" then
      local c = codes[form.code and form.code[1] or ""]
      codes[form.code and form.code[1] or ""] = nil
      if not c then
        return 400, { error = "invalid_grant" }
      end
      return 200, tokens(c.client_id or (form.client_id and form.client_id[1]), c.claims, c.nonce)
    elseif grant == "refresh_token" then
      local r = refresh[form.refresh_token and form.refresh_token[1] or ""]
      if not r then
        return 400, { error = "invalid_grant" }
      end
      return 200, tokens(r.client_id, r.claims)
    end
    return 400, { error = "unsupported_grant_type" }
  elseif p == "/userinfo" then
    return 200, user_claims()
  elseif p == "/opaque" and req.method == "POST" then -- test helper: an opaque token for the user
    local t = new_id()
    opaque[t] = user_claims()
    return 200, { token = t }
  elseif p == "/introspect" and req.method == "POST" then
    local form = httpd.parse_query(req.body)
    local c = opaque[form.token and form.token[1] or ""]
    if not c or not (req.headers.authorization or ""):find("^Basic ") then
      return 200, { active = false }
    end
    local out = { active = true, exp = os.time() + 300, iss = base }
    for k, v in pairs(c) do
      out[k] = v
    end
    return 200, out
  elseif p == "/logout" then
    return 200, {}
  end
  return 404, { error = "not found" }
end

io.stdout:setvbuf("line")
print("oidc provider listening on " .. base)
while true do
  local c = server:accept()
  if c then
    c:settimeout(10)
    local req = httpd.read_request(c)
    if req then
      local ok, status, body, headers = pcall(handle, req)
      if not ok then
        status, body = 500, { error = tostring(status) }
      end
      local text = type(body) == "table" and cjson.encode(body) or body or ""
      local head = { string.format("HTTP/1.1 %d X", status), "Connection: close", "Content-Length: " .. #text,
        "Content-Type: application/json", "Access-Control-Allow-Origin: *" }
      for k, v in pairs(headers or {}) do
        head[#head + 1] = k .. ": " .. v
      end
      c:send(table.concat(head, "\r\n") .. "\r\n\r\n" .. text)
    end
    c:close()
  end
end
