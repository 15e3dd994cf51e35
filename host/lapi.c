/* lapi.c - builds the `orch` table from the per-area inject functions. */
#include "orch.h"

#include "lapi.h"

#include <lauxlib.h>

/* orch.traceback([msg [, level]]) -> msg followed by the Lua call stack (for xpcall handlers;
   scripts have no debug library). */
static int l_traceback(lua_State *L) {
  const char *msg = luaL_optstring(L, 1, NULL);
  int level = (int)luaL_optinteger(L, 2, 1);
  luaL_traceback(L, L, msg, level);
  return 1;
}

void orch_lapi_push(lua_State *L) {
  lua_createtable(L, 0, 8);
  lua_pushstring(L, ORCH_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushcfunction(L, l_traceback);
  lua_setfield(L, -2, "traceback");
  orch_lapi_log_inject(L);
  orch_lapi_json_inject(L);
  orch_lapi_time_inject(L);
  orch_lapi_uuid_inject(L);
  orch_lapi_db_inject(L);
  orch_lapi_host_inject(L);
  orch_lapi_http_client_inject(L);
}
