-- GET /api/openapi.json against the real binary: a well-formed OpenAPI 3.1
-- document, every documented route served by the router, and the real answers
-- of every GET route (with data present) valid against their documented
-- response schema.
local H = require("harness")
local cjson = require("cjson")
local jsonschema = require("jsonschema")
local openapi_check = require("openapi_check")

local invoke_bin = assert(os.getenv("ORCH_INVOKE"), "ORCH_INVOKE is not set")
local products = "tests/fixtures/model_products"
local MISSING = "00000000-0000-4000-8000-000000000000"

local uri, host, doc

local function invoke(func, arg)
  local cmd = string.format("%s --database %s --lua-dir %s --products %s driver %s %s 2>&1", H.shell_quote(invoke_bin),
    H.shell_quote(uri), H.shell_quote(H.source .. "/lua"), H.shell_quote(products), func,
    H.shell_quote(cjson.encode(arg or {})))
  local p = io.popen(cmd)
  local out = p:read("a")
  assert(p:close(), out)
  return cjson.decode(out)
end

local function operations()
  local out = {}
  for path, item in pairs(doc.paths) do
    for method, op in pairs(item) do
      out[#out + 1] = { path = path, method = method:upper(), op = op }
    end
  end
  table.sort(out, function(a, b)
    return a.path .. a.method < b.path .. b.method
  end)
  return out
end

-- The documented success status (1xx/2xx) of an operation and its response.
local function success(op)
  for status, response in pairs(op.responses) do
    if status:match("^[12]") then
      return status, response
    end
  end
  error("no success response documented for " .. op.operationId)
end

local function fill(path, values)
  return (path:gsub("{([%w_]+)}", function(name)
    return assert(values[name], "no sample value for {" .. name .. "} in " .. path)
  end))
end

describe("the OpenAPI document", function()
  local samples

  setup(function()
    local dir = H.pg_dir()
    local _
    _, uri = H.new_database(dir)
    H.migrate(uri)
    host = H.start_host({ database = uri, products = products })
    local node = invoke("create_node", { name = "n1", rank = 1, status = "active" })
    local r = invoke("create_port", { node = node.id, values = { port_name = "p1", speed = 10, vlans = "3" },
      leaves = { 1, 2 }, status = "provisioning" })
    assert(r.ok, r.error)
    local _, _, _, list = host:request("GET", "/api/products/?tag=TPORT")
    local tport = list[1]
    assert.are.equal(201, (host:request("POST", "/api/processes/task_validate_subscriptions", "[{}]")))
    assert.are.equal(204, (host:request("POST", "/api/subscription_customer_descriptions",
      { customer_id = "cust-1", subscription_id = r.result.id, description = "my port" })))
    local _, _, _, procs = host:request("GET", "/api/processes/")
    local _, _, _, cd = host:request("GET", "/api/subscription_customer_descriptions/customer/cust-1/subscription/"
      .. r.result.id)
    samples = {
      product_id = tport.product_id, product_block_id = tport.product_blocks[1].product_block_id,
      resource_type_id = tport.product_blocks[1].resource_types[1].resource_type_id,
      workflow_id = tport.workflows[1].workflow_id, subscription_id = r.result.id,
      process_id = procs[1].process_id, language = "en-GB", customer_id = "cust-1", id = cd.id,
    }
    local status, text
    status, text, _, doc = host:request("GET", "/api/openapi.json")
    assert.are.equal(200, status, text)
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  it("is well-formed OpenAPI 3.1", function()
    assert.are.same({}, openapi_check.check(doc))
    assert.are.equal("3.1.0", doc.openapi)
  end)

  it("catches malformed documents (the structural check can fail)", function()
    local broken = cjson.decode(cjson.encode(doc))
    broken.openapi = "3.0.3"
    broken.paths["/api/products/{product_id}"].get.parameters = nil
    broken.paths["/api/health"].get.responses["200"].content["application/json"].schema = { ["$ref"] =
      "#/components/schemas/Nope" }
    local problems = openapi_check.check(broken)
    assert.are.equal(3, #problems, table.concat(problems, "\n"))
  end)

  it("documents only routes the router serves, each with its action", function()
    local n = 0
    for _, o in ipairs(operations()) do
      assert.is_string(o.op["x-action"], o.method .. " " .. o.path)
      if not o.op["x-handler"]:match("^host:") then
        n = n + 1
        -- an id that exists nowhere: the handler answers (404/422/...), the router does not refuse
        local values = setmetatable({ language = "en-GB" }, { __index = function()
          return MISSING
        end })
        local body = o.op.requestBody and "{}" or nil
        local status, text, _, json = host:request(o.method, fill(o.path, values), body)
        assert.are_not.equal(405, status, o.method .. " " .. o.path)
        assert.is_false(status == 404 and type(json) == "table" and json.detail == "Not Found",
          o.method .. " " .. o.path .. " is documented but not routed: " .. tostring(text))
        assert.is_true(status < 500, o.method .. " " .. o.path .. ": " .. tostring(text))
      end
    end
    assert.is_true(n >= 40)
    -- the WebSocket route is answered by the host (C) and documented all the same
    assert.are.equal("host:websocket", doc.paths["/api/ws/events"].get["x-handler"])
    assert.is_table(doc.paths["/api/ws/events"].get.responses["101"])
  end)

  it("validates the real answer of every GET route against its documented schema", function()
    local checked = 0
    for _, o in ipairs(operations()) do
      if o.method == "GET" and not o.op["x-handler"]:match("^host:") then
        local path = fill(o.path, samples)
        local status, text, _, json = host:request("GET", path)
        local expected, response = success(o.op)
        assert.are.equal(tonumber(expected), status, path .. ": " .. tostring(text))
        local media, content = next(response.content)
        if media == "application/json" then
          local errs = jsonschema.validate(doc, content.schema, json)
          assert.is_nil(errs, path .. ":\n" .. table.concat(errs or {}, "\n"))
        else -- a text answer (GET /api/metrics): its content type as documented
          local _, _, headers = host:request("GET", path)
          assert.are.equal(media, (headers["content-type"] or ""):match("^[^;]+"), path)
          assert.are.equal("string", content.schema.type, path)
        end
        checked = checked + 1
      end
    end
    assert.is_true(checked >= 20, "only " .. checked .. " GET routes checked")
  end)

  it("validates the real answers of write routes against their documented schemas", function()
    local writes = {
      { "PUT", "/api/settings/status", { global_lock = false } },
      { "PATCH", "/api/workflows/{workflow_id}", { description = "described" } },
      { "PATCH", "/api/products/{product_id}", { description = "described" } },
      { "PATCH", "/api/product_blocks/{product_block_id}", { description = "described" } },
      { "PATCH", "/api/resource_types/{resource_type_id}", { description = "described" } },
      { "POST", "/api/graphql", { query = "{ __typename }" } },
      { "POST", "/api/processes/{workflow_key}", "[{}]" },
      { "PUT", "/api/processes/resume-all" },
    }
    local values = setmetatable({ workflow_key = "task_validate_subscriptions" }, { __index = samples })
    for _, w in ipairs(writes) do
      local op = doc.paths[w[2]][w[1]:lower()]
      local status, text, _, json = host:request(w[1], fill(w[2], values), w[3])
      local expected, response = success(op)
      assert.are.equal(tonumber(expected), status, w[1] .. " " .. w[2] .. ": " .. tostring(text))
      local errs = jsonschema.validate(doc, response.content["application/json"].schema, json)
      assert.is_nil(errs, w[1] .. " " .. w[2] .. ":\n" .. table.concat(errs or {}, "\n"))
    end
  end)

  it("rejects answers that do not match (the validator can fail)", function()
    local product = doc.components.schemas.ProductSchema
    local when = doc.components.schemas.Timestamp.type == "number" and 1764806400 or "2026-01-01T00:00:00+00:00"
    assert.is_nil(jsonschema.validate(doc, product, { product_id = MISSING, name = "n", description = "d",
      product_type = "t", status = "active", tag = "T", created_at = when,
      product_blocks = {}, fixed_inputs = {}, workflows = {} }))
    local errs = jsonschema.validate(doc, product, { product_id = "x", name = 1, created_at = cjson.null,
      product_blocks = { { name = "b" } } })
    assert.is_table(errs)
    local text = table.concat(errs, "\n")
    assert.matches("product_id", text)
    assert.matches("$.name: expected string", text, 1, true)
    assert.matches("required property 'tag'", text, 1, true)
    assert.matches("product_blocks[1]", text, 1, true)
    assert.matches("created_at", text)
  end)
end)

describe("routes as data", function()
  local dir, lua_dir, h

  local function append(path, text)
    local f = assert(io.open(path, "a"))
    f:write(text)
    f:close()
  end

  setup(function()
    dir = H.pg_dir()
    local _, db = H.new_database(dir)
    H.migrate(db)
    lua_dir = os.tmpname()
    os.remove(lua_dir)
    assert(os.execute("cp -r " .. H.shell_quote(H.source .. "/lua") .. " " .. H.shell_quote(lua_dir)))
    h = H.start_host({ database = db, products = products, args = { "--lua-dir", lua_dir } })
  end)

  teardown(function()
    if h then
      h:stop()
    end
    os.execute("rm -rf " .. H.shell_quote(lua_dir))
  end)

  it("serves and documents a route added to a handler module after a reload, without a rebuild", function()
    assert.are.equal(404, (h:request("GET", "/api/hello")))
    append(lua_dir .. "/orch/api/health.lua", [[
function health.hello(req)
  return 200, { hello = req.action .. " " .. req.route }
end
health.routes[#health.routes + 1] = { "GET", "/api/hello", "hello", action = "health.hello",
  response = S.object({ hello = S.string }, { "hello" }) }
return health
]])
    -- the module now returns early; the appended lines come after the original `return`,
    -- so move that one out of the way
    local f = assert(io.open(lua_dir .. "/orch/api/health.lua"))
    local text = f:read("a"):gsub("\nreturn health\n", "\n", 1)
    f:close()
    f = assert(io.open(lua_dir .. "/orch/api/health.lua", "w"))
    f:write(text)
    f:close()
    local status, text2 = h:request("POST", "/api/settings/reload")
    assert.are.equal(200, status, text2)
    local s, _, _, body = h:request("GET", "/api/hello/")
    assert.are.equal(200, s)
    assert.are.equal("health.hello /api/hello", body.hello) -- the matched route's action reaches the handler
    local _, _, _, document = h:request("GET", "/api/openapi.json")
    assert.are.equal("health.hello", document.paths["/api/hello"].get["x-action"])
  end)

  it("refuses a reload whose route table is malformed and keeps serving the old one", function()
    local f = assert(io.open(lua_dir .. "/orch/api/misc.lua"))
    local text = f:read("a"):gsub("\nreturn misc\n", [[

misc.routes[#misc.routes + 1] = { "FETCH", "/api/broken", "root", action = "root.read" }
return misc
]], 1)
    f:close()
    f = assert(io.open(lua_dir .. "/orch/api/misc.lua", "w"))
    f:write(text)
    f:close()
    local status, _, _, report = h:request("POST", "/api/settings/reload")
    assert.are.equal(400, status)
    assert.matches("orch.api.misc.routes%[%d+%]: method must be one of", report.errors[1].message)
    assert.are.equal(200, (h:request("GET", "/")))
    assert.are.equal(404, (h:request("GET", "/api/broken")))
  end)
end)
