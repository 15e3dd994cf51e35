-- luacheck configuration for lua/, products/ and the Lua tests.
std = "lua54"
max_line_length = 120

-- Scripts run in the host's sandbox, where `orch` is the API table.
read_globals = { "orch" }

files["lua/orch/init.lua"] = { globals = { "orch" } }
files["tests/"] = { std = "+busted" }
files["tests/lua/helpers/fake_host.lua"] = { globals = { "orch" } }
exclude_files = { "tests/fixtures/" } -- deliberately broken scripts
