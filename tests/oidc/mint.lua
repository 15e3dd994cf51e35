-- Print a token of the test provider: lua5.4 tests/oidc/mint.lua STATE ISSUER [sub [group...]]
-- (signed with its current key; audience "orchestrator", valid for an hour).
local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local jose = require("jose")
local cjson = require("cjson")

local dir, issuer, sub = arg[1], arg[2], arg[3] or "alice"
assert(dir and issuer, "usage: mint.lua STATE ISSUER [sub [group...]]")
local groups = {}
for i = 4, #arg do
  groups[#groups + 1] = arg[i]
end
local keys = cjson.decode(jose.read(dir .. "/keys.json"))
local now = os.time()
io.write(jose.sign(keys.current, { iss = issuer, aud = "orchestrator", sub = sub, name = sub,
  groups = groups, iat = now, exp = now + 3600 }))
