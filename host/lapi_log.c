/* lapi_log.c - orch.log.{debug,info,warn,error}(...): host log lines from Lua. */
#include "orch.h"

#include "lapi.h"
#include "log.h"

#include <lauxlib.h>

/* Concatenate the arguments like print does, prefixed with the caller's position. */
static int log_at(lua_State *L, int level) {
  orch_lapi_push_line(L, ' ');
  orch_log(level, "lua", "%s", lua_tostring(L, -1));
  return 0;
}

static int l_log_debug(lua_State *L) {
  return log_at(L, ORCH_LOG_DEBUG);
}
static int l_log_info(lua_State *L) {
  return log_at(L, ORCH_LOG_INFO);
}
static int l_log_warn(lua_State *L) {
  return log_at(L, ORCH_LOG_WARN);
}
static int l_log_error(lua_State *L) {
  return log_at(L, ORCH_LOG_ERROR);
}

static const luaL_Reg log_funcs[] = {
    {"debug", l_log_debug}, {"info", l_log_info}, {"warn", l_log_warn},
    {"error", l_log_error}, {NULL, NULL},
};

void orch_lapi_log_inject(lua_State *L) {
  luaL_newlib(L, log_funcs);
  lua_setfield(L, -2, "log");
}
