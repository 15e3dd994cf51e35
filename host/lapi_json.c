/*
 * lapi_json.c - the C half of orch.json (the Lua half, lua/orch/json.lua,
 * wraps lua-cjson). cjson decodes "[]" and "{}" to the same empty table; this
 * scanner rewrites every empty array outside strings into a sentinel string
 * so that the Lua side can turn it into a table marked as an array. The
 * sentinel starts with a NUL; the scanner also reports NUL characters (\u0000)
 * in the input's strings, which the Lua side refuses, so no input string can
 * pass for a sentinel. normalise() is the Lua half's walk over cjson's result (whole floats
 * to integers, sentinels to empty arrays, arrays marked), here because it runs on every
 * decoded step state.
 */
#include "orch.h"

#include "buf.h"
#include "lapi.h"

#include <lauxlib.h>
#include <math.h>
#include <string.h>

#define EMPTY_ARRAY_SENTINEL "\"\\u0000[]\""

/* Whether s[i..] (just after a backslash) is u0000: an escaped NUL. */
static int is_nul_escape(const char *s, size_t i, size_t len) {
  return i + 5 <= len && s[i] == 'u' && s[i + 1] == '0' && s[i + 2] == '0' && s[i + 3] == '0' &&
         s[i + 4] == '0';
}

/* orch._json.mark_empty_arrays(text) -> text', found (boolean), has_nul (boolean) */
static int l_mark_empty_arrays(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  orch_buf out = ORCH_BUF_INIT;
  int found = 0, in_string = 0, has_nul = 0;
  size_t copied = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '\0') has_nul = 1; /* raw (invalid JSON anyway) */
    if (in_string) {
      if (c == '\\') {
        if (is_nul_escape(s, i + 1, len)) has_nul = 1;
        i++;
      } else if (c == '"')
        in_string = 0;
      continue;
    }
    if (c == '"') {
      in_string = 1;
      continue;
    }
    if (c != '[') continue;
    size_t j = i + 1;
    while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
      j++;
    if (j < len && s[j] == ']') {
      orch_buf_append(&out, s + copied, i - copied);
      orch_buf_puts(&out, EMPTY_ARRAY_SENTINEL);
      copied = j + 1;
      i = j;
      found = 1;
    }
  }
  if (!found) {
    lua_pushvalue(L, 1);
  } else {
    orch_buf_append(&out, s + copied, len - copied);
    lua_pushlstring(L, out.data, out.len);
  }
  orch_buf_free(&out);
  lua_pushboolean(L, found);
  lua_pushboolean(L, has_nul);
  return 3;
}

/* ---- decode's tree walk of lua/orch/json.lua, in C (same rules; see its header) ---- */

#define NOT_FINITE  "a number is out of range (JSON has no Infinity or NaN)"
#define EMPTY_ARRAY "\0[]" /* 3 bytes */

static int raise_not_finite(lua_State *L) {
  lua_pushliteral(L, NOT_FINITE);
  return lua_error(L); /* no position: the Lua half reports it as it is */
}

/* [-0, +0, e] Normalise the decoded table at idx (array_mt at index mt): whole floats become
   integers, empty-array sentinels become empty arrays, tables with [1] are marked arrays. */
static void normalise(lua_State *L, int idx, int mt) {
  luaL_checkstack(L, 6, "JSON nesting");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int t = lua_type(L, -1);
    if (t == LUA_TTABLE) {
      normalise(L, lua_gettop(L), mt);
    } else if (t == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number x = lua_tonumber(L, -1);
      if (!isfinite(x)) raise_not_finite(L);
      if (x > -9007199254740992.0 && x < 9007199254740992.0 && x == floor(x)) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)x);
        lua_rawset(L, idx); /* an existing key: allowed during lua_next */
      }
    } else if (t == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      if (len == 3 && !memcmp(s, EMPTY_ARRAY, 3)) {
        lua_pushvalue(L, -2);
        lua_newtable(L);
        lua_pushvalue(L, mt);
        lua_setmetatable(L, -2);
        lua_rawset(L, idx);
      }
    }
    lua_pop(L, 1);
  }
  if (lua_rawgeti(L, idx, 1) != LUA_TNIL) {
    lua_pushvalue(L, mt);
    lua_setmetatable(L, idx);
  }
  lua_pop(L, 1);
}

/* orch._json.normalise(v, array_mt) -> v, normalised in place (see normalise). */
static int l_normalise(lua_State *L) {
  luaL_checktype(L, 2, LUA_TTABLE);
  if (lua_type(L, 1) == LUA_TTABLE) normalise(L, 1, 2);
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg json_funcs[] = {
    {"mark_empty_arrays", l_mark_empty_arrays},
    {"normalise", l_normalise},
    {NULL, NULL},
};

void orch_lapi_json_inject(lua_State *L) {
  luaL_newlib(L, json_funcs);
  lua_setfield(L, -2, "_json");
}
