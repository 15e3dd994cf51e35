/* lapi.c - builds the `orch` table from the per-area inject functions. */
#include "orch.h"

#include "lapi.h"

#include <lauxlib.h>

void orch_lapi_push(lua_State *L) {
  lua_createtable(L, 0, 8);
  lua_pushstring(L, ORCH_VERSION);
  lua_setfield(L, -2, "version");
  orch_lapi_log_inject(L);
  orch_lapi_json_inject(L);
  orch_lapi_time_inject(L);
  orch_lapi_uuid_inject(L);
  orch_lapi_db_inject(L);
}
