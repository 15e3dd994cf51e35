/*
 * lapi_json.c - the C half of orch.json (the Lua half, lua/orch/json.lua,
 * wraps lua-cjson). cjson decodes "[]" and "{}" to the same empty table; this
 * scanner rewrites every empty array outside strings into a sentinel string
 * so that the Lua side can turn it into a table marked as an array. The
 * sentinel starts with a NUL; the scanner also reports NUL characters (\u0000)
 * in the input's strings, which the Lua side refuses, so no input string can
 * pass for a sentinel.
 */
#include "orch.h"

#include "buf.h"
#include "lapi.h"

#include <lauxlib.h>

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

static const luaL_Reg json_funcs[] = {
    {"mark_empty_arrays", l_mark_empty_arrays},
    {NULL, NULL},
};

void orch_lapi_json_inject(lua_State *L) {
  luaL_newlib(L, json_funcs);
  lua_setfield(L, -2, "_json");
}
