-- Test-only JOSE with the openssl command line: keys (RSA, EC P-256) as JWKs and
-- compact JWS tokens (RS256, PS256, ES256, HS256 and unsigned "none"). For the test
-- OIDC provider and the specs that need tokens, never for production.
local mime = require("mime")
local cjson = require("cjson")

local jose = {}

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = p:read("a")
  local ok = p:close()
  assert(ok, "command failed: " .. cmd)
  return out
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end
jose.read, jose.write = read, write

function jose.b64url(s)
  return (mime.b64(s):gsub("+", "-"):gsub("/", "_"):gsub("=", ""))
end

local function unhex(h)
  return (h:gsub("%x%x", function(x)
    return string.char(tonumber(x, 16))
  end))
end

-- A new RSA key: {kid, alg, file, pub_file, jwk}.
function jose.new_rsa(dir, kid, alg)
  local file = dir .. "/" .. kid .. ".pem"
  run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " .. q(file))
  run("openssl pkey -in " .. q(file) .. " -pubout -out " .. q(file .. ".pub"))
  local n = run("openssl rsa -in " .. q(file) .. " -noout -modulus"):match("Modulus=(%x+)")
  return { kid = kid, alg = alg or "RS256", file = file, pub_file = file .. ".pub",
    jwk = { kty = "RSA", kid = kid, use = "sig", alg = alg or "RS256", n = jose.b64url(unhex(n)), e = "AQAB" } }
end

-- A new EC P-256 key (ES256).
function jose.new_ec(dir, kid)
  local file = dir .. "/" .. kid .. ".pem"
  run("openssl ecparam -name prime256v1 -genkey -noout -out " .. q(file))
  run("openssl pkey -in " .. q(file) .. " -pubout -out " .. q(file .. ".pub"))
  local der = run("openssl pkey -in " .. q(file) .. " -pubout -outform DER")
  local point = der:sub(-65) -- 0x04 || x || y
  return { kid = kid, alg = "ES256", file = file, pub_file = file .. ".pub",
    jwk = { kty = "EC", kid = kid, use = "sig", alg = "ES256", crv = "P-256",
      x = jose.b64url(point:sub(2, 33)), y = jose.b64url(point:sub(34, 65)) } }
end

-- DER ECDSA signature -> r || s (32 bytes each), as JWS wants it.
local function der_to_raw(der)
  local pos = 3
  if der:byte(2) > 0x80 then
    pos = pos + (der:byte(2) - 0x80)
  end
  local parts = {}
  for i = 1, 2 do
    assert(der:byte(pos) == 0x02, "bad DER")
    local len = der:byte(pos + 1)
    local v = der:sub(pos + 2, pos + 1 + len):gsub("^%z+", "")
    parts[i] = string.rep("\0", 32 - #v) .. v
    pos = pos + 2 + len
  end
  return parts[1] .. parts[2]
end

-- sign(key, claims [, header]) -> compact JWS. key = {alg, file [, kid]} or {alg = "HS256", secret}
-- or {alg = "none"}.
function jose.sign(key, claims, header)
  header = header or {}
  header.alg = header.alg or key.alg
  header.typ = header.typ or "JWT"
  if header.kid == nil then
    header.kid = key.kid
  end
  local input = jose.b64url(cjson.encode(header)) .. "." .. jose.b64url(cjson.encode(claims))
  local alg = header.alg
  if alg == "none" then
    return input .. "."
  end
  local tmp = os.tmpname()
  write(tmp, input)
  local sig
  if alg == "HS256" then
    local hex = key.secret:gsub(".", function(c)
      return string.format("%02x", c:byte())
    end)
    sig = run("openssl dgst -sha256 -mac HMAC -macopt hexkey:" .. hex .. " -binary " .. q(tmp))
  elseif alg == "RS256" then
    sig = run("openssl dgst -sha256 -sign " .. q(key.file) .. " -binary " .. q(tmp))
  elseif alg == "PS256" then
    sig = run("openssl dgst -sha256 -sign " .. q(key.file)
      .. " -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -binary " .. q(tmp))
  elseif alg == "ES256" then
    sig = der_to_raw(run("openssl dgst -sha256 -sign " .. q(key.file) .. " -binary " .. q(tmp)))
  else
    os.remove(tmp)
    error("jose.sign: unsupported alg " .. tostring(alg))
  end
  os.remove(tmp)
  return input .. "." .. jose.b64url(sig)
end

return jose
