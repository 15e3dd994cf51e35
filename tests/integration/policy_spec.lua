-- Authorization by policy.lua in the products folder (docs/security.md): one denied
-- action answers 403 there and only there, the policy sees the user, GraphQL root
-- fields and the WebSocket upgrade are put to it, errors deny, and it reloads with
-- the products.
local H = require("harness")
local O = require("oidc")
local ws = require("wsclient")

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local POLICY_V1 = [[
return function(ctx)
  if ctx.action == "processes.delete" then
    return "deny", "deleting is off for " .. tostring(ctx.user and ctx.user.name)
  end
  if ctx.action == "graphql.query.subscriptions" then
    return false, "no subscriptions for you"
  end
  if ctx.action == "settings.reload" or ctx.action == "processes.start" then
    return "allow"
  end
  if ctx.action == "events.read" and ctx.user and ctx.user.sub == "mallory" then
    return "deny", "not mallory"
  end
  if ctx.action == "processes.read" and ctx.query.boom then
    error("policy bug")
  end
  if ctx.action == "workflows.read" and ctx.query.probe then
    -- a product script: the restricted orch view, read-only
    local host_ok, host_err = pcall(function() return orch._host end)
    local write_ok = pcall(function() orch.probe = 1 end)
    return "deny", "host=" .. tostring(host_ok) .. " (" .. tostring(host_err) .. ") write=" .. tostring(write_ok)
      .. " db=" .. type(orch.db)
  end
end
]]

local POLICY_V2 = [[
return function(ctx)
  if ctx.action == "processes.read" then
    return "deny", "reading is off now"
  end
  if ctx.action == "settings.reload" then
    return "allow"
  end
end
]]

describe("policy.lua", function()
  local op, host, products

  setup(function()
    op = O.start()
    products = os.tmpname()
    os.remove(products)
    assert(os.execute("cp -r " .. H.shell_quote(H.source .. "/tests/fixtures/engine_products") .. " "
      .. H.shell_quote(products)))
    write(products .. "/policy.lua", POLICY_V1)
    local _, uri = H.new_database()
    H.migrate(uri)
    host = H.start_host({ database = uri, products = products, args = { "--workers", "1" },
      env = { OAUTH2_ACTIVE = "true", OIDC_CONF_URL = op.conf_url, OAUTH2_RESOURCE_SERVER_ID = "orchestrator" } })
  end)

  teardown(function()
    if host then
      host:stop()
    end
    if op then
      op:stop()
    end
    os.execute("rm -rf " .. H.shell_quote(products))
  end)

  local function req(method, path, body, token)
    return host:request(method, path, body, { authorization = "Bearer " .. (token or op:token()) })
  end

  it("denies the one action with 403 and its reason, and nothing else", function()
    local status, _, _, json = req("POST", "/api/processes/test_ten_steps", "[{}]")
    assert.are.equal(201, status, json and json.detail) -- allowed by the policy (no write group is set)
    local pid = json.id
    status, _, _, json = req("DELETE", "/api/processes/" .. pid)
    assert.are.equal(403, status)
    assert.are.equal("deleting is off for Alice", json.detail)
    assert.are.equal(200, (req("GET", "/api/processes/" .. pid)))
    assert.are.equal(200, (req("GET", "/api/settings/status")))
  end)

  it("puts each GraphQL root field to the policy", function()
    local _, _, _, json = req("POST", "/api/graphql", { query = "{ processes(first: 1) { page { processId } } }" })
    assert.is_nil(json.errors)
    assert.is_table(json.data.processes)
    _, _, _, json = req("POST", "/api/graphql", { query = "{ subscriptions(first: 1) { page { subscriptionId } } }" })
    assert.are.equal(1, #json.errors)
    assert.are.equal("no subscriptions for you", json.errors[1].message)
    assert.are.equal("not_authorized", json.errors[1].extensions.error_type)
    assert.are.same({ "subscriptions" }, json.errors[1].path)
  end)

  it("puts the WebSocket upgrade to the policy (1008 when denied)", function()
    local c, status = ws.handshake(host.port,
      { headers = { ["Sec-WebSocket-Protocol"] = "base64.bearer.token, " .. op:token({ sub = "mallory" }) } })
    assert.are.equal(101, status)
    assert.are.equal(1008, c:close_code(5))
    c:close()
    c, status = ws.handshake(host.port,
      { headers = { ["Sec-WebSocket-Protocol"] = "base64.bearer.token, " .. op:token() } })
    assert.are.equal(101, status)
    c:send_text("__ping__")
    assert.are.equal("__pong__", c:text(5))
    c:close()
  end)

  it("runs policy.lua as a product script: no orch._* halves, orch read-only", function()
    local status, _, _, json = req("GET", "/api/workflows/00000000-0000-4000-8000-000000000000?probe=1")
    assert.are.equal(403, status)
    assert.matches("^host=false %(.*orch%._host is not available to product scripts.*%) write=false db=table$",
      json.detail)
  end)

  it("denies when the policy raises, and logs why", function()
    local status, _, _, json = req("GET", "/api/processes?boom=1")
    assert.are.equal(403, status)
    assert.matches("policy error", json.detail)
    assert.matches("policy bug", host:log())
  end)

  it("reloads with the products", function()
    write(products .. "/policy.lua", POLICY_V2)
    local status, text = req("POST", "/api/settings/reload")
    assert.are.equal(200, status, text)
    local _, _, _, json = req("GET", "/api/processes")
    assert.are.equal("reading is off now", json.detail)
    local pid = req("POST", "/api/processes/test_ten_steps", "[{}]")
    assert.are.equal(403, pid) -- no write group, no allow: the default rule denies writes
  end)
end)
