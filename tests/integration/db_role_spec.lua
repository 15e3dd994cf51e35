-- The host's database role (issue 14 item 4, docs/deployment.md): migrations and serving work as an
-- ordinary role that owns the database; `serve` warns loudly when connected as a superuser (or a
-- member of the roles that reach server files and programs) and refuses with ORCH_DB_SUPERUSER=refuse.
local H = require("harness")

describe("database role", function()
  local dir, owner, db, owner_uri, super_uri

  setup(function()
    dir = H.pg_dir()
    db = H.new_database(dir)
    owner = db .. "_owner"
    H.psql(dir, "postgres", "CREATE ROLE " .. owner .. " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
    H.psql(dir, "postgres", "ALTER DATABASE " .. db .. " OWNER TO " .. owner)
    owner_uri = string.format("postgresql://%s@/%s?host=%s", owner, db, dir)
    super_uri = string.format("postgresql://postgres@/%s?host=%s", db, dir)
  end)

  local function serve_args()
    return { "serve", "--port", "0", "--workers", "0", "--lua-dir", H.source .. "/lua",
      "--products", H.source .. "/products", "--migrations", H.source .. "/migrations" }
  end

  it("applies every migration as the owner role (extensions included)", function()
    H.migrate(owner_uri)
    local super = H.psql(dir, db, "SELECT rolsuper FROM pg_roles WHERE rolname = '" .. owner .. "'")
    assert.are.equal("f", super)
    local foreign = H.psql(dir, db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
      .. " AND tableowner <> '" .. owner .. "'")
    assert.are.equal("0", foreign)
    assert.are.equal("1", H.psql(dir, db, "SELECT count(*) FROM pg_extension WHERE extname = 'uuid-ossp'"))
  end)

  it("serves as the owner role without a warning, and its SQL has no superuser rights", function()
    local host = H.start_host({ database = owner_uri, args = { "--workers", "0" } })
    local status, _, _, products = host:request("GET", "/api/products/")
    local log = host:log()
    host:stop()
    assert.are.equal(200, status)
    assert.are.equal(11, #products)
    assert.truthy(log:find("database role '" .. owner .. "' (not a superuser)", 1, true), log)
    assert.falsy(log:find("SECURITY", 1, true), log)
  end)

  it("warns at start when connected as a superuser", function()
    local host = H.start_host({ database = super_uri, args = { "--workers", "0" } })
    local log = host:log()
    host:stop()
    assert.truthy(log:find("SECURITY: connected to the database as 'postgres', a superuser", 1, true), log)
  end)

  it("does not start as a superuser with ORCH_DB_SUPERUSER=refuse", function()
    local t0 = H.now()
    local code, out = H.run(serve_args(), { DATABASE_URI = super_uri, ORCH_DB_SUPERUSER = "refuse" })
    assert.are.equal(1, code, out)
    assert.truthy(out:find("connected to the database as 'postgres', a superuser: not starting", 1, true), out)
    assert.falsy(out:find("listening on", 1, true), out)
    assert.is_true(H.now() - t0 < 30)
  end)

  it("treats a member of pg_execute_server_program like a superuser", function()
    local role = db .. "_prog"
    H.psql(dir, "postgres", "CREATE ROLE " .. role .. " LOGIN")
    H.psql(dir, "postgres", "GRANT pg_execute_server_program TO " .. role)
    local uri = string.format("postgresql://%s@/%s?host=%s", role, db, dir)
    local code, out = H.run(serve_args(), { DATABASE_URI = uri, ORCH_DB_SUPERUSER = "refuse" })
    assert.are.equal(1, code, out)
    assert.truthy(out:find("a member of pg_execute_server_program", 1, true), out)
  end)

  it("refuses an unknown ORCH_DB_SUPERUSER value", function()
    local code, out = H.run(serve_args(), { DATABASE_URI = owner_uri, ORCH_DB_SUPERUSER = "maybe" })
    assert.are.equal(2, code, out)
    assert.truthy(out:find("invalid value 'maybe' for ORCH_DB_SUPERUSER", 1, true), out)
  end)
end)
