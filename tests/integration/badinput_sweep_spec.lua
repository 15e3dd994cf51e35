-- The bad-input sweep: every route of the table (GET /api/openapi.json) × malformed paths,
-- query strings, headers and bodies. Every answer is a 4xx problem detail or a success
-- (a route may ignore a parameter it does not take): never a 5xx, never a hang; the host
-- stays alive and the database is unchanged (row counts and a checksum of every table).
local H = require("harness")
local socket = require("socket")
local cjson = require("cjson")

local TIMEOUT = 15 -- seconds a single answer may take (never a hang)

-- One request as raw bytes; returns status, headers, body (nil status: no answer).
local function raw(port, method, target, headers, body)
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: 127.0.0.1", "Connection: close" }
  for k, v in pairs(headers or {}) do
    lines[#lines + 1] = k .. ": " .. v
  end
  if body then
    lines[#lines + 1] = "Content-Type: application/json"
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  local sock = socket.tcp()
  sock:settimeout(TIMEOUT)
  assert(sock:connect("127.0.0.1", port))
  -- A server may answer (413) and close before it has read all of a huge body.
  sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
  local chunks = {}
  while true do
    local data, err, partial = sock:receive(65536)
    if data then
      chunks[#chunks + 1] = data
    else
      if partial and #partial > 0 then
        chunks[#chunks + 1] = partial
      end
      if err then
        break
      end
    end
  end
  sock:close()
  local resp = table.concat(chunks)
  local head, rest = resp:match("^(.-)\r\n\r\n(.*)$")
  if not head then
    return nil, {}, resp
  end
  local headers_out = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
    headers_out[k:lower()] = v
  end
  return tonumber(head:match("^HTTP/1%.%d (%d+)")), headers_out, rest
end

-- Every table but orch_hosts (the host's own heartbeat row changes while it runs).
local function db_fingerprint(dir, db)
  local tables = H.psql(dir, db, "SELECT string_agg(quote_ident(tablename), ',' ORDER BY tablename) "
    .. "FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'orch_hosts'")
  local parts = {}
  for t in tables:gmatch("[^,]+") do
    parts[#parts + 1] = string.format("SELECT '%s' AS t, count(*) AS n, md5(coalesce(string_agg(x::text, '|' "
      .. "ORDER BY x::text), '')) AS h FROM %s x", t, t)
  end
  return H.psql(dir, db, table.concat(parts, " UNION ALL ") .. " ORDER BY 1")
end

describe("bad-input sweep over the route table", function()
  local host, db, dir

  setup(function()
    local _, uri = H.new_database()
    dir = H.pg_dir()
    db = uri:match("^postgresql://postgres@/([^?]+)")
    H.migrate(uri)
    host = H.start_host({ database = uri })
  end)

  teardown(function()
    if host then
      host:stop()
    end
  end)

  it("answers every malformed request with a 4xx problem detail and changes nothing", function()
    local status, _, _, doc = host:request("GET", "/api/openapi.json")
    assert.are.equal(200, status)
    local routes = {}
    for path, ops in pairs(doc.paths) do
      for method, op in pairs(ops) do
        if not (op["x-handler"] or ""):match("^host:") then
          routes[#routes + 1] = { method = method:upper(), path = path }
        end
      end
    end
    table.sort(routes, function(a, b)
      return a.path .. a.method < b.path .. b.method
    end)
    assert.is_true(#routes >= 40, #routes .. " routes")

    local before = db_fingerprint(dir, db)

    local path_values = { "not-a-uuid", "00000000-0000-0000-0000-000000000000", "zz_no_such_name", "%ff%fe%fd",
      "a%00b", string.rep("x", 3000), "-1", "99999999999999999999", "%2e%2e", "%0a%0d" }
    local queries = { "range=-1,5", "range=5,1", "range=0,99999999999999999999", "range=a,b", "range=",
      "sort=nosuch,asc", "sort=startedAt,sideways", "sort=,,,", "filter=nosuch,x", "filter=startedAt,notadate",
      "filter=workflowName,%5C", "filter=odd", "filter=" .. string.rep("workflowName,x,", 200),
      "query=" .. string.rep("a%20", 3000), "x=%ff%fe", "x=a%00b", "first=-5&after=-1",
      "first=99999999999999999999", string.rep("p=1&", 300) }
    local deep = string.rep("[", 100000) .. string.rep("]", 100000)
    local bodies = { '{"a":', "[]", '"text"', "1", "null", "true",
      '{"note": 5, "description": [], "global_lock": "x", "name": {}, "product_id": 1}',
      '[{"a": 1e999}]', deep, '{"a": "\255\254"}',
      '{"note": "\255", "description": "\255", "name": "\255"}', '{"a": "b\0c"}',
      string.rep(" ", 2 * 1024 * 1024) .. "{}" }
    local headers = { { ["X-Long"] = string.rep("h", 60000) }, { ["If-None-Match"] = string.rep("\255", 100) },
      { ["Content-Type"] = "text/plain; charset=\255" } }

    local count, by_status, failures, non_json = 0, {}, {}, {}
    local slowest, slowest_what = 0, ""
    local function check(method, target, hdrs, body, what)
      count = count + 1
      local t0 = socket.gettime()
      local st, _, resp = raw(host.port, method, target, hdrs, body)
      local took = socket.gettime() - t0
      if took > slowest then
        slowest, slowest_what = took, what
      end
      by_status[st or "none"] = (by_status[st or "none"] or 0) + 1
      if not st or st >= 500 then
        failures[#failures + 1] = string.format("%s -> %s %s", what, tostring(st), tostring(resp):sub(1, 200))
      elseif st >= 400 then
        local ok, json = pcall(cjson.decode, resp)
        if not ok or type(json) ~= "table" or json.status ~= st or not json.title then
          non_json[#non_json + 1] = string.format("%s -> %d %s", what, st, tostring(resp):sub(1, 120))
        end
      end
    end

    for _, r in ipairs(routes) do
      local has_params = r.path:find("{") ~= nil
      local base = r.path:gsub("{[^}]+}", "00000000-0000-0000-0000-000000000000")
      if has_params then
        for _, v in ipairs(path_values) do
          local target = r.path:gsub("{[^}]+}", (v:gsub("%%", "%%%%")))
          check(r.method, target, nil, nil, r.method .. " " .. r.path .. " param=" .. v:sub(1, 30))
        end
      end
      check(r.method, base .. "/" .. string.rep("y", 5000), nil, nil, r.method .. " " .. r.path .. " long path")
      for _, q in ipairs(queries) do
        check(r.method, base .. "?" .. q, nil, nil, r.method .. " " .. r.path .. " ?" .. q:sub(1, 40))
      end
      for i, hd in ipairs(headers) do
        check(r.method, base, hd, nil, r.method .. " " .. r.path .. " header#" .. i)
      end
      if r.method ~= "GET" then
        for i, b in ipairs(bodies) do
          check(r.method, base, nil, b, r.method .. " " .. r.path .. " body#" .. i)
        end
      end
    end

    local st_health = host:request("GET", "/api/health")
    local after = db_fingerprint(dir, db)
    local summary = {}
    for k, v in pairs(by_status) do
      summary[#summary + 1] = tostring(k) .. "=" .. v
    end
    table.sort(summary)
    print(string.format("\nsweep: %d routes, %d requests; statuses %s; slowest %.2f s (%s)", #routes, count,
      table.concat(summary, " "), slowest, slowest_what))
    assert.are.same({}, failures)
    assert.are.same({}, non_json)
    assert.are.equal(200, st_health)
    assert.are.equal(before, after)
    H.assert_clean_log(host:log())
  end)
end)
