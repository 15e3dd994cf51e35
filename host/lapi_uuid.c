/* lapi_uuid.c - orch.uuid: random v4 UUIDs, validation and random URL-safe tokens. */
#include "orch.h"

#include "lapi.h"

#include <ctype.h>
#include <lauxlib.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

/* orch.uuid.v4() -> "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" */
static int l_uuid_v4(lua_State *L) {
  char out[37];
  orch_uuid_v4(out);
  lua_pushstring(L, out);
  return 1;
}

/* orch.uuid.valid(s) -> true if s is a UUID in canonical 8-4-4-4-12 form (any case). */
static int l_uuid_valid(lua_State *L) {
  size_t len = 0;
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  lua_pushboolean(L, orch_uuid_valid(s, len));
  return 1;
}

/* orch.uuid.token([bytes=32]) -> URL-safe base64 of that many random bytes (no padding). */
static int l_uuid_token(lua_State *L) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  lua_Integer n = luaL_optinteger(L, 1, 32);
  luaL_argcheck(L, n >= 16 && n <= 256, 1, "between 16 and 256 bytes");
  unsigned char raw[256];
  char out[360];
  orch_random_bytes(raw, (size_t)n);
  size_t o = 0;
  for (lua_Integer i = 0; i < n; i += 3) {
    unsigned v = (unsigned)raw[i] << 16;
    if (i + 1 < n) v |= (unsigned)raw[i + 1] << 8;
    if (i + 2 < n) v |= raw[i + 2];
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    if (i + 1 < n) out[o++] = alphabet[(v >> 6) & 63];
    if (i + 2 < n) out[o++] = alphabet[v & 63];
  }
  lua_pushlstring(L, out, o);
  return 1;
}

/* orch.uuid.equal(a, b) -> true if the strings are equal, compared in constant time
   (for secrets such as callback tokens). */
static int l_uuid_equal(lua_State *L) {
  size_t la, lb;
  const char *a = luaL_checklstring(L, 1, &la);
  const char *b = luaL_checklstring(L, 2, &lb);
  lua_pushboolean(L, la == lb && CRYPTO_memcmp(a, b, la) == 0);
  return 1;
}

static const luaL_Reg uuid_funcs[] = {
    {"equal", l_uuid_equal}, {"v4", l_uuid_v4}, {"valid", l_uuid_valid},
    {"token", l_uuid_token}, {NULL, NULL},
};

void orch_lapi_uuid_inject(lua_State *L) {
  luaL_newlib(L, uuid_funcs);
  lua_setfield(L, -2, "uuid");
}
