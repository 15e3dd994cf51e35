-- REST routes of the catalogue, the domain model and customer descriptions
-- against the real binary: orchestrator-core's field sets, 404 for unknown ids,
-- 422 for malformed ones, PATCH rules, ETag / If-None-Match, the version check.
local H = require("harness")
local cjson = require("cjson")

local invoke_bin = assert(os.getenv("ORCH_INVOKE"), "ORCH_INVOKE is not set")
local products = "tests/fixtures/model_products"
local MISSING = "00000000-0000-4000-8000-000000000000"

local dir, uri, host

local function invoke(func, arg)
  local cmd = string.format("%s --database %s --lua-dir %s --products %s driver %s %s 2>&1", H.shell_quote(invoke_bin),
    H.shell_quote(uri), H.shell_quote(H.source .. "/lua"), H.shell_quote(products), func,
    H.shell_quote(cjson.encode(arg or {})))
  local p = io.popen(cmd)
  local out = p:read("a")
  assert(p:close(), out)
  return cjson.decode(out)
end

local function keys(t)
  local out = {}
  for k in pairs(t) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

local function set(list)
  table.sort(list)
  return list
end

local function problem(status, body)
  assert.are.same({ "detail", "status", "title" }, keys(body))
  assert.are.equal(status, body.status)
end

local PRODUCT_FIELDS = set({ "product_id", "name", "description", "product_type", "status", "tag", "created_at",
  "end_date", "product_blocks", "fixed_inputs", "workflows" })
local BLOCK_FIELDS = set({ "product_block_id", "name", "description", "tag", "status", "created_at", "end_date",
  "resource_types" })
local RT_FIELDS = set({ "resource_type_id", "resource_type", "description" })
local FI_FIELDS = set({ "fixed_input_id", "name", "value", "product_id", "created_at" })
local CD_FIELDS = set({ "id", "description", "customer_id", "subscription_id", "created_at", "version" })

describe("catalogue and subscription REST routes", function()
  local node, port, tport

  setup(function()
    dir = H.pg_dir()
    local _
    _, uri = H.new_database(dir)
    local code, out = H.run({ "db", "upgrade", "--database", uri, "--migrations", H.source .. "/migrations" })
    assert.are.equal(0, code, out)
    host = H.start_host({ database = uri, products = products }) -- the start-up sync fills the catalogue
    node = invoke("create_node", { name = "n1", rank = 1, status = "active" })
    local r = invoke("create_port", { node = node.id, values = { port_name = "p1", speed = 10, vlans = "3" },
      leaves = { 1, 2 }, status = "provisioning" })
    assert(r.ok, r.error)
    port = r.result
    local _, _, _, list = host:request("GET", "/api/products/?tag=TPORT")
    tport = list[1]
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  it("lists products in core's shape, filtered by tag and product_type", function()
    local status, _, _, body = host:request("GET", "/api/products/")
    assert.are.equal(200, status)
    assert.are.equal(4, #body)
    for _, p in ipairs(body) do
      assert.are.same(PRODUCT_FIELDS, keys(p))
    end
    assert.are.equal("tport", tport.name)
    assert.are.same(FI_FIELDS, keys(tport.fixed_inputs[1]))
    assert.are.equal("10", tport.fixed_inputs[1].value)
    assert.are.equal("TPort", tport.product_blocks[1].name)
    assert.are.same(BLOCK_FIELDS, keys(tport.product_blocks[1]))
    assert.are.same(RT_FIELDS, keys(tport.product_blocks[1].resource_types[1]))
    assert.are.equal(12, #tport.product_blocks[1].resource_types)
    status, _, _, body = host:request("GET", "/api/products/?product_type=TNodeType")
    assert.are.equal(200, status)
    assert.are.equal(1, #body)
    assert.are.equal("tnode", body[1].name)
    status, _, _, body = host:request("GET", "/api/products/?tag=NOPE")
    assert.are.equal(200, status)
    assert.are.equal("[]", cjson.encode(body):gsub("{}", "[]"))
  end)

  it("gets and patches one product", function()
    local status, _, _, body = host:request("GET", "/api/products/" .. tport.product_id)
    assert.are.equal(200, status)
    assert.are.same(PRODUCT_FIELDS, keys(body))
    _, _, _, body = host:request("GET", "/api/products/" .. MISSING)
    problem(404, body)
    _, _, _, body = host:request("GET", "/api/products/not-a-uuid")
    problem(422, body)
    status, _, _, body = host:request("PATCH", "/api/products/" .. tport.product_id, { description = "new words" })
    assert.are.equal(201, status)
    assert.are.equal("new words", body.description)
    -- end of life is refused while a subscription is not terminated
    _, _, _, body = host:request("PATCH", "/api/products/" .. tport.product_id, { status = "end of life" })
    problem(400, body)
    assert.matches("1 subscription%(s%) are not in terminated state", body.detail)
    _, _, _, body = host:request("PATCH", "/api/products/" .. tport.product_id, { status = "retired" })
    problem(422, body)
    status, _, _, body = host:request("PATCH", "/api/products/" .. tport.product_id, { status = "phase out" })
    assert.are.equal(201, status)
    assert.are.equal("phase out", body.status)
    _, _, _, body = host:request("PATCH", "/api/products/" .. MISSING, { description = "x" })
    problem(404, body)
  end)

  it("gets and patches product blocks and resource types", function()
    local block = tport.product_blocks[1]
    local status, _, _, body = host:request("GET", "/api/product_blocks/" .. block.product_block_id)
    assert.are.equal(200, status)
    assert.are.same(BLOCK_FIELDS, keys(body))
    status, _, _, body = host:request("PATCH", "/api/product_blocks/" .. block.product_block_id,
      { description = "patched block" })
    assert.are.equal(201, status)
    assert.are.equal("patched block", body.description)
    _, _, _, body = host:request("GET", "/api/product_blocks/" .. MISSING)
    problem(404, body)
    _, _, _, body = host:request("GET", "/api/product_blocks/123")
    problem(422, body)
    local rt = block.resource_types[1]
    status, _, _, body = host:request("GET", "/api/resource_types/" .. rt.resource_type_id)
    assert.are.equal(200, status)
    assert.are.same(RT_FIELDS, keys(body))
    status, _, _, body = host:request("PATCH", "/api/resource_types/" .. rt.resource_type_id,
      { description = "patched type" })
    assert.are.equal(201, status)
    assert.are.equal("patched type", body.description)
    _, _, _, body = host:request("GET", "/api/resource_types/" .. MISSING)
    problem(404, body)
    _, _, _, body = host:request("PATCH", "/api/resource_types/x", { description = "y" })
    problem(422, body)
    _, _, _, body = host:request("PATCH", "/api/resource_types/" .. rt.resource_type_id, { description = 5 })
    problem(422, body)
  end)

  it("answers the domain model with relations, customer descriptions and an ETag", function()
    local status, _, headers, body = host:request("GET", "/api/subscriptions/domain-model/" .. port.id)
    assert.are.equal(200, status)
    for _, k in ipairs({ "subscription_id", "start_date", "end_date", "description", "status", "product_id",
      "customer_id", "insync", "note", "name", "product", "customer_descriptions", "tag", "version", "port",
      "speed_class" }) do
      assert.is_not_nil(body[k], k)
    end
    assert.are.equal("provisioning", body.status)
    assert.are.equal("3", body.port.vlans)
    assert.are.equal(2, #body.port.leaves)
    for _, b in ipairs({ body.port, body.port.conf, body.port.leaves[1], body.port.node }) do
      assert.is_not_nil(b.in_use_by_ids, b.name)
      assert.is_not_nil(b.in_use_by_relations, b.name)
    end
    -- owner relations are filtered from in_use_by_ids by default, not from in_use_by_relations
    assert.are.equal(0, #body.port.conf.in_use_by_ids)
    assert.are.same({ { subscription_instance_id = body.port.subscription_instance_id, subscription_id = port.id } },
      body.port.conf.in_use_by_relations)
    assert.are.same({}, body.port.node.in_use_by_ids) -- the port is in this model
    local etag = headers.etag
    assert.matches("^%x+$", etag)
    -- the node's own model shows the port as its user
    local _, _, _, nbody = host:request("GET", "/api/subscriptions/domain-model/" .. node.id)
    assert.are.same({ body.port.subscription_instance_id }, nbody.node.in_use_by_ids)
    assert.are.equal(port.id, nbody.node.in_use_by_relations[1].subscription_id)
    -- unfiltered
    local _, _, _, raw = host:request("GET", "/api/subscriptions/domain-model/" .. port.id
      .. "?filter_owner_relations=false")
    assert.are.same({ body.port.subscription_instance_id }, raw.port.conf.in_use_by_ids)
    -- ETag / If-None-Match
    local s304, text = host:request("GET", "/api/subscriptions/domain-model/" .. port.id, nil,
      { ["if-none-match"] = etag })
    assert.are.equal(304, s304)
    assert.are.equal("", text)
    local s200 = host:request("GET", "/api/subscriptions/domain-model/" .. port.id, nil,
      { ["if-none-match"] = "stale" })
    assert.are.equal(200, s200)
    -- a change gives a new tag
    local _, _, _, cd = host:request("POST", "/api/subscription_customer_descriptions/",
      { customer_id = "etag-customer", subscription_id = port.id, description = "changes the tag" })
    assert.is_nil(cd)
    local _, _, headers2, body2 = host:request("GET", "/api/subscriptions/domain-model/" .. port.id)
    assert.are_not.equal(etag, headers2.etag)
    assert.are.equal("changes the tag", body2.customer_descriptions[1].description)
    assert.are.same(CD_FIELDS, keys(body2.customer_descriptions[1]))
    local _, _, _, nf = host:request("GET", "/api/subscriptions/domain-model/" .. MISSING)
    problem(404, nf)
    local _, _, _, bad = host:request("GET", "/api/subscriptions/domain-model/nope")
    problem(422, bad)
  end)

  it("manages customer descriptions with the version check", function()
    local base = "/api/subscription_customer_descriptions"
    local status = host:request("POST", base .. "/", { customer_id = "cust-1", subscription_id = node.id,
      description = "my node" })
    assert.are.equal(204, status)
    local _, _, _, dup = host:request("POST", base .. "/", { customer_id = "cust-1", subscription_id = node.id,
      description = "again" })
    problem(409, dup)
    local _, _, _, missing = host:request("POST", base .. "/", { customer_id = "cust-1", subscription_id = MISSING,
      description = "x" })
    problem(404, missing)
    local _, _, _, malformed = host:request("POST", base .. "/", { customer_id = "cust-1", subscription_id = "x",
      description = "x" })
    problem(422, malformed)
    local s, _, _, cd = host:request("GET", base .. "/customer/cust-1/subscription/" .. node.id)
    assert.are.equal(200, s)
    assert.are.same(CD_FIELDS, keys(cd))
    assert.are.equal(1, cd.version)
    s, _, _, cd = host:request("GET", base .. "/" .. cd.id)
    assert.are.equal(200, s)
    assert.are.equal("my node", cd.description)
    -- a stale version is refused, the current one accepted
    local _, _, _, stale = host:request("PUT", base .. "/", { id = cd.id, customer_id = "cust-1",
      subscription_id = node.id, description = "late", version = 7 })
    problem(400, stale)
    assert.matches("Stale data: given version %(7%) does not match the current version %(1%)", stale.detail)
    s = host:request("PUT", base .. "/", { id = cd.id, customer_id = "cust-1", subscription_id = node.id,
      description = "renamed", version = 1 })
    assert.are.equal(204, s)
    _, _, _, cd = host:request("GET", base .. "/" .. cd.id)
    assert.are.equal("renamed", cd.description)
    assert.are.equal(2, cd.version)
    s = host:request("DELETE", base .. "/" .. cd.id)
    assert.are.equal(204, s)
    local _, _, _, gone = host:request("GET", base .. "/" .. cd.id)
    problem(404, gone)
    _, _, _, gone = host:request("GET", base .. "/customer/cust-1/subscription/" .. node.id)
    problem(404, gone)
    local _, _, _, bad = host:request("GET", base .. "/not-a-uuid")
    problem(422, bad)
    bad = select(4, host:request("DELETE", base .. "/not-a-uuid"))
    problem(422, bad)
  end)
end)
