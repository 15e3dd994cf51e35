/*
 * lsandbox.c - the allow-listed environment product code runs in.
 *
 * The state's real globals table is never visible to scripts: each chunk gets
 * its own environment table whose __index reads the read-only base (the
 * allow-list below plus `orch` and `require`) and raises on names that exist
 * nowhere. Scripts may define their own globals in their own environment.
 */
#include "orch.h"

#include "lapi.h"
#include "log.h"
#include "lsandbox.h"

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>
#include <string.h>

/* lua-cjson.h declares only luaopen_cjson. */
int luaopen_cjson_safe(lua_State *L);

/* Registry keys: addresses of static variables cannot collide with strings. */
static const char base_key = 'b';    /* the allow-listed base table */
static const char env_mt_key = 'm';  /* metatable shared by every chunk environment */
static const char loaded_key = 'l';  /* module name -> value */
static const char loading_key = 'x'; /* sentinel while a module is being loaded */
static const char gen_key = 'g';     /* light userdata: the orch_gen */

static const char *const base_functions[] = {
    "assert",   "error",  "ipairs", "next",     "pairs",        "pcall",        "rawequal",
    "rawget",   "rawlen", "rawset", "select",   "setmetatable", "getmetatable", "tonumber",
    "tostring", "type",   "xpcall", "_VERSION", NULL,
};

static const char *const os_allowed[] = {"clock", "date", "difftime", "time", NULL};

/* __index of a chunk environment: base value or an error naming the global. */
static int env_index(lua_State *L) {
  /* stack: env, key */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &base_key); /* env, key, base */
  lua_pushvalue(L, 2);                          /* env, key, base, key */
  if (lua_rawget(L, -2) != LUA_TNIL) return 1;  /* env, key, base, value */
  orch_lapi_where(L, 2);
  if (lua_type(L, 2) == LUA_TSTRING)
    lua_pushfstring(L, "undefined global '%s'", lua_tostring(L, 2));
  else
    lua_pushliteral(L, "undefined global");
  lua_concat(L, 2);
  return lua_error(L);
}

/* [-0, +1] A new chunk environment. */
static void push_env(lua_State *L) {
  lua_newtable(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &env_mt_key);
  lua_setmetatable(L, -2);
}

/* __index of the restricted os table: say what is missing instead of nil. */
static int os_index(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  orch_lapi_where(L, 2);
  lua_pushfstring(L, "os.%s is not available in the sandbox", k ? k : "?");
  lua_concat(L, 2);
  return lua_error(L);
}

/* require(name): modules come only from the generation's scripts. */
static int l_require(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &loaded_key); /* name, loaded */
  lua_getfield(L, 2, name);                       /* name, loaded, value */
  if (lua_touserdata(L, 3) == &loading_key)
    return luaL_error(L, "module '%s' is being loaded (require loop or earlier error)", name);
  if (!lua_isnil(L, 3)) return 1;
  lua_pop(L, 1); /* name, loaded */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &gen_key);
  const orch_gen *g = lua_touserdata(L, -1);
  lua_pop(L, 1);
  const orch_script *s = g ? orch_gen_find_module(g, name) : NULL;
  if (!s) return luaL_error(L, "module '%s' not found in lua/ or the products folder", name);
  lua_pushfstring(L, "@%s", s->path);
  if (luaL_loadbufferx(L, s->source, s->len, lua_tostring(L, -1), "t") != LUA_OK)
    return lua_error(L); /* the message carries file:line */
  lua_remove(L, -2);     /* name, loaded, chunk */
  push_env(L);
  lua_setupvalue(L, -2, 1); /* chunk's _ENV := env */
  lua_pushlightuserdata(L, (void *)&loading_key);
  lua_setfield(L, 2, name);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1); /* name, loaded, result */
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, 2, name);
  return 1;
}

/* load(chunk [, chunkname [, mode [, env]]]) for text chunks only. */
static int l_load(lua_State *L) {
  size_t len;
  const char *chunk = luaL_checklstring(L, 1, &len);
  const char *chunkname = luaL_optstring(L, 2, "=(load)");
  const char *mode = luaL_optstring(L, 3, "t");
  if (strcmp(mode, "t") != 0) return luaL_error(L, "load: only text chunks are allowed");
  int has_env = !lua_isnone(L, 4);
  if (luaL_loadbufferx(L, chunk, len, chunkname, "t") != LUA_OK) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2; /* nil, message */
  }
  if (has_env)
    lua_pushvalue(L, 4);
  else
    push_env(L);
  lua_setupvalue(L, -2, 1);
  return 1;
}

/* print(...) goes to the host log, with the caller's position. */
static int l_print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  orch_lapi_where(L, 1);
  luaL_addvalue(&b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  LOG_INFO("lua", "%s", lua_tostring(L, -1));
  return 0;
}

/*
 * setmetatable(t, mt) without __gc: Lua runs finalizers with hooks off (and inside
 * lua_close), so a finalizer would run outside every budget. Any __gc field counts, even
 * a placeholder, because the function could be put in later. Upvalue 1: the real one.
 */
static int l_setmetatable(lua_State *L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return orch_lapi_error(L, "setmetatable: __gc metamethods are not allowed in scripts");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/* The message handler xpcall installs: the script's handler (upvalue 1), except while the
   budget error is being raised. That error comes from the budget hook, where Lua calls
   message handlers with hooks off: a script handler would run unbounded. */
static int xpcall_handler(lua_State *L) {
  if (orch_lapi_budget_killed(L)) return 1; /* the error as it is */
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int xpcall_cont(lua_State *L, int status, lua_KContext ctx) {
  ORCH_UNUSED(status);
  ORCH_UNUSED(ctx);
  return lua_gettop(L);
}

/* xpcall(f, msgh, ...) with msgh wrapped as above (f may yield). Upvalue 1: the real xpcall. */
static int l_xpcall(lua_State *L) {
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, xpcall_handler, 1);
  lua_replace(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, xpcall_cont);
  return lua_gettop(L);
}

/* Run an opener and leave its module on the stack. */
static void open_lib(lua_State *L, const char *name, lua_CFunction fn) {
  luaL_requiref(L, name, fn, 0);
}

void orch_sandbox_open(lua_State *L, const orch_gen *g) {
  int api = lua_gettop(L); /* the orch table */
  lua_pushlightuserdata(L, (void *)g);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &gen_key);

  /* Only these standard libraries are opened at all: no io, os.execute, debug, package. */
  open_lib(L, "_G", luaopen_base);
  int real_g = lua_gettop(L);
  open_lib(L, "string", luaopen_string);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump"); /* binary chunks can't be loaded anyway; don't produce them */
  orch_lapi_pattern_inject(L); /* a matcher that checks the time budget */
  open_lib(L, "table", luaopen_table);
  open_lib(L, "math", luaopen_math);
  open_lib(L, "utf8", luaopen_utf8);
  open_lib(L, "coroutine", luaopen_coroutine);
  open_lib(L, "os", luaopen_os);
  int os_full = lua_gettop(L);

  lua_newtable(L); /* base */
  int base = lua_gettop(L);
  for (const char *const *f = base_functions; *f; f++) {
    lua_getfield(L, real_g, *f);
    lua_setfield(L, base, *f);
  }
  lua_pushvalue(L, os_full - 5);
  lua_setfield(L, base, "string");
  lua_pushvalue(L, os_full - 4);
  lua_setfield(L, base, "table");
  lua_pushvalue(L, os_full - 3);
  lua_setfield(L, base, "math");
  lua_pushvalue(L, os_full - 2);
  lua_setfield(L, base, "utf8");
  lua_pushvalue(L, os_full - 1);
  lua_setfield(L, base, "coroutine");

  lua_newtable(L); /* restricted os */
  for (const char *const *f = os_allowed; *f; f++) {
    lua_getfield(L, os_full, *f);
    lua_setfield(L, -2, *f);
  }
  lua_newtable(L);
  lua_pushcfunction(L, os_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_setfield(L, base, "os");

  lua_getfield(L, real_g, "setmetatable");
  lua_pushcclosure(L, l_setmetatable, 1);
  lua_setfield(L, base, "setmetatable");
  lua_getfield(L, real_g, "xpcall");
  lua_pushcclosure(L, l_xpcall, 1);
  lua_setfield(L, base, "xpcall");
  lua_pushcfunction(L, l_load);
  lua_setfield(L, base, "load");
  lua_pushcfunction(L, l_print);
  lua_setfield(L, base, "print");
  lua_pushcfunction(L, l_require);
  lua_setfield(L, base, "require");
  lua_pushvalue(L, api);
  lua_setfield(L, base, "orch");
  lua_pushvalue(L, base);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &base_key);

  /* The environment metatable, shared by all chunks. */
  lua_newtable(L);
  lua_pushcfunction(L, env_index);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &env_mt_key);

  /* Module cache, with the C modules scripts may require. */
  lua_newtable(L);
  luaopen_cjson(L);
  lua_setfield(L, -2, "cjson");
  luaopen_cjson_safe(L);
  lua_setfield(L, -2, "cjson.safe");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &loaded_key);

  /* Nothing may reach the real globals through the registry's LUA_RIDX_GLOBALS
     either: empty them of everything dangerous that the base library put there. */
  static const char *const drop[] = {
      "dofile", "loadfile", "load", "collectgarbage", "require", "package", "io", "debug", NULL};
  for (const char *const *d = drop; *d; d++) {
    lua_pushnil(L);
    lua_setfield(L, real_g, *d);
  }
  lua_settop(L, api);
}

void orch_sandbox_require(lua_State *L, const char *module) {
  lua_pushcfunction(L, l_require);
  lua_pushstring(L, module);
  lua_call(L, 1, 1);
}

void orch_sandbox_forget_failed(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &loaded_key);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    int failed = lua_touserdata(L, -1) == &loading_key;
    lua_pop(L, 1);
    if (failed) {
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, -4); /* clearing an existing field during traversal is allowed */
    }
  }
  lua_pop(L, 1);
}
