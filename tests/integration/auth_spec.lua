-- Authentication (issue 13, docs/security.md): bearer JWTs verified locally against
-- the test OIDC provider's JWKS (tests/oidc), introspection of opaque tokens, key
-- rotation, the default rule without a policy, the WebSocket's token, and the
-- secure default of `serve` with auth off.
local H = require("harness")
local O = require("oidc")
local ws = require("wsclient")

local function fill(pattern)
  return (pattern:gsub("{([^}]+)}", function(name)
    if name:find("id$") or name == "id" then
      return "00000000-0000-4000-8000-000000000000"
    end
    return "x"
  end))
end

describe("authentication", function()
  local op, host

  setup(function()
    op = O.start()
    local _, uri = H.new_database()
    H.migrate(uri)
    host = H.start_host({ database = uri, products = H.source .. "/tests/fixtures/engine_products",
      args = { "--workers", "1" },
      env = { OAUTH2_ACTIVE = "true", OIDC_CONF_URL = op.conf_url, OAUTH2_RESOURCE_SERVER_ID = "orchestrator",
        ORCH_AUTH_WRITE_GROUP = "orchestrator-write", OAUTH2_RESOURCE_SERVER_SECRET = "s3cret",
        ORCH_JWKS_REFETCH_SECONDS = "1" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
    if op then
      op:stop()
    end
  end)

  local function get(path, token)
    return host:request("GET", path, nil, token and { authorization = "Bearer " .. token } or nil)
  end

  it("lets a valid RS256, PS256 and ES256 token in", function()
    local status, _, _, json = get("/api/processes", op:token())
    assert.are.equal(200, status)
    assert.is_table(json)
    local ps = op:add_key("RSA", "ps1", "PS256", true)
    local ec = op:add_key("EC", "ec1", nil, true)
    H.sleep(1.1) -- new kids: one refetch, at most one a second here
    status = get("/api/processes", op:token(nil, { alg = "PS256", kid = "ps1", file = ps.file }))
    assert.are.equal(200, status)
    status = get("/api/processes", op:token(nil, { alg = "ES256", kid = "ec1", file = ec.file }))
    assert.are.equal(200, status)
    -- a key published for RS256 does not take PS256 tokens (the JWK's alg is binding)
    local key = op:keys().current
    status = get("/api/processes", op:token(nil, { alg = "PS256", kid = key.kid, file = key.file }))
    assert.are.equal(401, status)
  end)

  it("keeps health, translations and the OpenAPI document public", function()
    assert.are.equal(200, (get("/api/health")))
    assert.are.equal(200, (get("/api/translations/en-GB")))
    assert.are.equal(200, (get("/api/openapi.json")))
  end)

  it("answers 401 to every protected route for every bad token", function()
    local key = op:keys().current
    local stranger = O.jose.new_rsa(op.dir, "stranger")
    local now = os.time()
    local bad = {
      missing = false,
      garbage = "garbage",
      dots = "a.b.c",
      unknown_key = op:token(nil, { alg = "RS256", kid = "stranger", file = stranger.file }),
      unknown_key_known_kid = op:token(nil, { alg = "RS256", kid = key.kid, file = stranger.file }),
      expired = op:token({ exp = now - 3600, iat = now - 7200 }),
      not_yet = op:token({ nbf = now + 3600 }),
      no_exp = op:token({ exp = H.json.null }),
      wrong_aud = op:token({ aud = "someone-else" }),
      wrong_iss = op:token({ iss = "http://evil.example" }),
      alg_none = op:token(nil, { alg = "none" }, { kid = key.kid }),
      hs256_public_key = op:token(nil, { alg = "HS256", secret = H.read_file(key.file .. ".pub") },
        { kid = key.kid }),
    }
    local routes = O.routes(host)
    assert.is_true(#routes > 20)
    local protected, walked = 0, {}
    for _, r in ipairs(routes) do
      walked[r.method .. " " .. r.pattern] = true
      -- the WebSocket route (host = "websocket") closes with 1008 instead: its own spec
      if r.action ~= "health.read" and r.action ~= "translations.read" and r.action ~= "openapi.read"
        and not r.host then
        protected = protected + 1
        for what, token in pairs(bad) do
          local headers = token and { authorization = "Bearer " .. token } or {}
          local body = (r.method == "POST" or r.method == "PUT" or r.method == "PATCH") and "{}" or nil
          local status, _, rh, json = host:request(r.method, fill(r.pattern), body, headers)
          assert(status == 401, string.format("%s %s with %s token: %s", r.method, r.pattern, what, tostring(status)))
          assert.are.equal(401, json.status)
          assert.matches("Bearer", rh["www-authenticate"])
        end
      end
    end
    assert.is_true(protected > 20)
    -- routes added since the table became Lua data are walked too
    for _, k in ipairs({ "GET /api/schedules", "POST /api/schedules", "PUT /api/schedules",
      "DELETE /api/schedules" }) do
      assert(walked[k], k .. " not in the route walk")
    end
    assert.is_nil(host:log():find(bad.expired, 1, true)) -- tokens never reach the log
  end)

  it("picks up a rotated key with one refetch, rate-limited", function()
    H.sleep(1.1)
    local before = op:jwks_fetches()
    op:rotate("k2")
    local status = get("/api/processes", op:token())
    assert.are.equal(200, status)
    assert.are.equal(before + 1, op:jwks_fetches())
    -- unknown kids right after: no more fetches for a while
    local stranger = O.jose.new_rsa(op.dir, "stranger2")
    local t0 = os.time()
    local tokens = {}
    for i = 1, 3 do
      tokens[i] = op:token({ jti = tostring(i) }, { alg = "RS256", kid = "stranger2", file = stranger.file })
    end
    H.sleep(1.1) -- the next unknown kid may fetch once more; the two after it may not
    before = op:jwks_fetches()
    for i = 1, 3 do
      status = get("/api/processes", tokens[i])
      assert.are.equal(401, status)
    end
    assert.is_true(os.time() - t0 < 4)
    assert.is_true(op:jwks_fetches() <= before + 1)
  end)

  it("checks opaque tokens with the introspection endpoint", function()
    local body = require("socket.http").request(op.url .. "/opaque", "")
    local json = H.json.decode(body)
    assert.are.equal(200, (get("/api/processes", json.token)))
    assert.are.equal(401, (get("/api/processes", "not-a-known-opaque-token")))
  end)

  it("lets the write group write and others only read (no policy.lua)", function()
    local reader = op:token({ sub = "bob", groups = { "readers" } })
    assert.are.equal(200, (get("/api/settings/status", reader)))
    local status, _, _, json = host:request("PUT", "/api/settings/status", { global_lock = false },
      { authorization = "Bearer " .. reader })
    assert.are.equal(403, status)
    assert.matches("settings.write", json.detail)
    status = host:request("PUT", "/api/settings/status", { global_lock = false },
      { authorization = "Bearer " .. op:token() })
    assert.are.equal(200, status)
    -- GraphQL: queries read, mutations write (each root field is checked)
    local _, _, _, g = host:request("POST", "/api/graphql",
      { query = "{ processes(first: 1) { page { processId } } }" }, { authorization = "Bearer " .. reader })
    assert.is_nil(g.errors)
  end)

  it("takes the WebSocket token from the subprotocol or ?token=, else closes with 1008", function()
    local c, status, headers = ws.handshake(host.port,
      { headers = { ["Sec-WebSocket-Protocol"] = "base64.bearer.token, " .. op:token() } })
    assert.are.equal(101, status)
    assert.are.equal("base64.bearer.token", headers["sec-websocket-protocol"])
    c:send_text("__ping__")
    assert.are.equal("__pong__", c:text(5))
    c:close()
    c, status = ws.handshake(host.port, { path = "/api/ws/events?token=" .. op:token() })
    assert.are.equal(101, status)
    c:send_text("__ping__")
    assert.are.equal("__pong__", c:text(5))
    c:close()
    for _, proto in ipairs({ false, "base64.bearer.token, garbage" }) do
      c, status = ws.handshake(host.port, { headers = { ["Sec-WebSocket-Protocol"] = proto or false } })
      assert.are.equal(101, status)
      assert.are.equal(1008, c:close_code(5))
      c:close()
    end
  end)

  it("works with the test provider's login: authorize, token, refresh", function()
    local http = require("socket.http")
    local ltn12 = require("ltn12")
    local _, code, headers = http.request({ url = op.url .. "/authorize?response_type=code&client_id=orchestrator-ui"
      .. "&redirect_uri=http%3A%2F%2Fui.test%2Fcb&state=s1&nonce=n1&code_challenge=x&code_challenge_method=S256",
      redirect = false })
    assert.are.equal(302, code)
    local loc = headers.location
    assert.matches("^http://ui.test/cb%?code=", loc)
    assert.matches("state=s1", loc)
    local function token(form)
      local out = {}
      http.request({ url = op.url .. "/token", method = "POST", source = ltn12.source.string(form),
        headers = { ["content-type"] = "application/x-www-form-urlencoded", ["content-length"] = tostring(#form) },
        sink = ltn12.sink.table(out) })
      return H.json.decode(table.concat(out))
    end
    local t = token("grant_type=authorization_code&code=" .. loc:match("code=([^&]+)") .. "&code_verifier=x")
    assert.are.equal("Bearer", t.token_type)
    assert.are.equal(200, (get("/api/processes", t.access_token)))
    local part = t.id_token:match("^[^.]+%.([^.]+)"):gsub("-", "+"):gsub("_", "/")
    part = part .. string.rep("=", (4 - #part % 4) % 4)
    local id = H.json.decode((require("mime").unb64(part)))
    assert.are.equal("n1", id.nonce)
    assert.are.equal("orchestrator-ui", id.aud)
    local r = token("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
    assert.are.equal(200, (get("/api/processes", r.access_token)))
  end)

  it("records who started a process", function()
    local status, _, _, json = host:request("POST", "/api/processes/test_ten_steps", "[{}]",
      { authorization = "Bearer " .. op:token({ sub = "carol", name = "Carol", groups = { "orchestrator-write" } }) })
    assert.are.equal(201, status)
    local d
    for _ = 1, 100 do
      _, _, _, d = get("/api/processes/" .. json.id, op:token())
      if d.last_status == "completed" then
        break
      end
      H.sleep(0.05)
    end
    assert.are.equal("Carol", d.created_by)
  end)
end)

describe("callbacks with auth on", function()
  it("need the single-use token and a bearer token the policy allows", function()
    local op = O.start()
    local name, uri = H.new_database()
    H.migrate(uri)
    local host = H.start_host({ database = uri, products = H.source .. "/tests/fixtures/engine_products",
      args = { "--workers", "1" },
      env = { OAUTH2_ACTIVE = "true", OIDC_CONF_URL = op.conf_url, OAUTH2_RESOURCE_SERVER_ID = "orchestrator",
        ORCH_AUTH_WRITE_GROUP = "orchestrator-write" } })
    local writer = { authorization = "Bearer " .. op:token() }
    local _, _, _, json = host:request("POST", "/api/processes/test_callback", "[{}]", writer)
    local pid = json.id
    local d
    for _ = 1, 100 do
      _, _, _, d = host:request("GET", "/api/processes/" .. pid, nil, { authorization = writer.authorization })
      if d.last_status == "awaiting_callback" then
        break
      end
      H.sleep(0.05)
    end
    assert.are.equal("awaiting_callback", d.last_status)
    local route = H.psql(H.pg_dir(), name, "SELECT state->>'route_seen' FROM process_steps WHERE pid = '"
      .. pid .. "' AND state ? 'route_seen' ORDER BY completed_at DESC LIMIT 1")
    assert.are.equal(401, (host:request("POST", route, { ok = true })))
    local reader = { authorization = "Bearer " .. op:token({ sub = "lso", groups = { "systems" } }) }
    assert.are.equal(403, (host:request("POST", route, { ok = true }, reader)))
    assert.are.equal(404, (host:request("POST", "/api/processes/" .. pid .. "/callback/wrong", { ok = true },
      { authorization = writer.authorization })))
    assert.are.equal(200, (host:request("POST", route, { ok = true }, { authorization = writer.authorization })))
    host:stop()
    op:stop()
  end)
end)

describe("serve with auth off", function()
  it("refuses a public address unless --insecure-public", function()
    local _, uri = H.new_database()
    local code, out = H.run({ "serve", "--host", "0.0.0.0", "--port", "0", "--lua-dir", H.source .. "/lua",
      "--products", H.source .. "/products" }, { DATABASE_URI = uri })
    assert.are.equal(2, code)
    assert.matches("OAUTH2_ACTIVE", out)
    H.migrate(uri)
    local host = H.start_host({ database = uri, args = { "--host", "0.0.0.0", "--insecure-public" } })
    assert.matches("authentication OFF", host:log())
    host:stop()
  end)
end)
