/*
 * lsandbox.c - the allow-listed environment product code runs in.
 *
 * The state's real globals table is never visible to scripts: each chunk gets
 * its own environment table whose __index reads the read-only base (the
 * allow-list below plus `orch` and `require`) and raises on names that exist
 * nowhere. Scripts may define their own globals in their own environment.
 *
 * What every script shares is read-only (see freeze): the standard libraries, the
 * cjson modules and, once the core ruleset built it, `orch` and everything below it.
 * Product chunks get their own base whose `orch` hides the C halves (orch._*).
 * setmetatable refuses __gc (finalizers run outside every budget) and xpcall's
 * message handler is skipped for the budget error (Lua calls it with hooks off).
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
static const char env_mt_key = 'm';  /* metatable of core chunk environments */
static const char penv_mt_key = 'p'; /* metatable of product chunk environments */
static const char frozen_key = 'f';  /* in a frozen table's metatable: its contents */
static const char api_key = 'o';     /* the real `orch` table */
static const char loaded_key = 'l';  /* module name -> value */
static const char loading_key = 'x'; /* sentinel while a module is being loaded */
static const char gen_key = 'g';     /* light userdata: the orch_gen */

static const char *const base_functions[] = {
    "assert",   "error",  "ipairs", "next",     "pairs",        "pcall",        "rawequal",
    "rawget",   "rawlen", "rawset", "select",   "setmetatable", "getmetatable", "tonumber",
    "tostring", "type",   "xpcall", "_VERSION", NULL,
};

static const char *const os_allowed[] = {"clock", "date", "difftime", "time", NULL};

/* __index of a chunk environment: base value (upvalue 1) or an error naming the global. */
static int env_index(lua_State *L) {
  /* stack: env, key */
  lua_pushvalue(L, 2);                                          /* env, key, key */
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1; /* env, key, value */
  orch_lapi_where(L, 2);
  if (lua_type(L, 2) == LUA_TSTRING)
    lua_pushfstring(L, "undefined global '%s'", lua_tostring(L, 2));
  else
    lua_pushliteral(L, "undefined global");
  lua_concat(L, 2);
  return lua_error(L);
}

/* [-0, +1] A new chunk environment: a product's or the core ruleset's. */
static void push_env(lua_State *L, int product) {
  lua_newtable(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, product ? &penv_mt_key : &env_mt_key);
  lua_setmetatable(L, -2);
}

/* ---- read-only tables ----
 * A frozen table is empty; its metatable (protected by __metatable) reads the contents
 * from a hidden table, refuses assignments, and iterates and counts the contents. The
 * table keeps its identity, so code that compares or indexes by it is unaffected. The
 * sandbox's rawset refuses frozen tables and its rawget reads their contents. */

/* __newindex of a frozen table; upvalue 1: its name. */
static int frozen_newindex(lua_State *L) {
  const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
  return orch_lapi_error(L, "%s.%s: the table is read-only", lua_tostring(L, lua_upvalueindex(1)),
                         key);
}

/* __pairs of a frozen table; upvalues: next, contents. */
static int frozen_pairs(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushnil(L);
  return 3;
}

/* __len of a frozen table; upvalue 1: contents. */
static int frozen_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
  return 1;
}

/* [-0, +1] The contents of the frozen table at idx, or nil if it is not frozen. */
static int push_frozen_contents(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) {
    lua_pushnil(L);
    return 0;
  }
  int found = lua_rawgetp(L, -1, &frozen_key) == LUA_TTABLE;
  lua_remove(L, -2);
  return found;
}

/* [-0, +0, e] Make the table at idx read-only (tables with a metatable are left alone,
   frozen ones too). */
static void freeze(lua_State *L, int idx, const char *name) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) return;
  if (lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L); /* contents */
  int contents = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, contents);
  }
  /* clear the table itself (clearing existing fields while traversing is allowed) */
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, idx);
  }
  lua_createtable(L, 0, 6); /* the metatable */
  lua_pushvalue(L, contents);
  lua_setfield(L, -2, "__index");
  lua_pushstring(L, name);
  lua_pushcclosure(L, frozen_newindex, 1);
  lua_setfield(L, -2, "__newindex");
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_getfield(L, -1, "next");
  lua_remove(L, -2);
  lua_pushvalue(L, contents);
  lua_pushcclosure(L, frozen_pairs, 2);
  lua_setfield(L, -2, "__pairs");
  lua_pushvalue(L, contents);
  lua_pushcclosure(L, frozen_len, 1);
  lua_setfield(L, -2, "__len");
  lua_pushliteral(L, "read-only");
  lua_setfield(L, -2, "__metatable");
  lua_pushvalue(L, contents);
  lua_rawsetp(L, -2, &frozen_key);
  lua_setmetatable(L, idx);
  lua_pop(L, 1); /* contents */
}

/* rawset(t, k, v) except on read-only tables. */
static int l_rawset(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  push_frozen_contents(L, 1);
  if (!lua_isnil(L, -1)) return orch_lapi_error(L, "rawset: the table is read-only");
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 1;
}

/* rawget(t, k), reading a read-only table's contents. */
static int l_rawget(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  if (!push_frozen_contents(L, 1)) {
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/* __index of the `orch` that products see: the real one without its C halves and host
   internals (orch._db, orch._json, orch._host, orch._client, ...). Upvalue 1: orch. */
static int product_orch_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING && lua_tostring(L, 2)[0] == '_')
    return orch_lapi_error(L, "orch.%s is not available to product scripts", lua_tostring(L, 2));
  lua_pushvalue(L, 2);
  lua_gettable(L, lua_upvalueindex(1));
  return 1;
}

/* next over the real orch, skipping the names products don't get. Upvalue 1: orch. */
static int product_orch_next(lua_State *L) {
  lua_settop(L, 2);
  if (!push_frozen_contents(L, lua_upvalueindex(1))) {
    lua_pop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
  }
  lua_replace(L, 1);
  while (lua_next(L, 1)) {
    if (!(lua_type(L, -2) == LUA_TSTRING && lua_tostring(L, -2)[0] == '_')) return 2;
    lua_pop(L, 1);
  }
  return 0;
}

static int product_orch_pairs(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* [-0, +1] The read-only `orch` of product scripts; the real one at api. */
static void push_product_orch(lua_State *L, int api) {
  lua_newtable(L);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, api);
  lua_pushcclosure(L, product_orch_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "orch");
  lua_pushcclosure(L, frozen_newindex, 1);
  lua_setfield(L, -2, "__newindex");
  lua_pushvalue(L, api);
  lua_pushcclosure(L, product_orch_next, 1);
  lua_pushcclosure(L, product_orch_pairs, 1);
  lua_setfield(L, -2, "__pairs");
  lua_pushliteral(L, "read-only");
  lua_setfield(L, -2, "__metatable");
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
  push_env(L, s->is_product);
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

/* load(chunk [, chunkname [, mode [, env]]]) for text chunks only; without env the chunk
   gets a new environment of the caller's kind (upvalue 1: true for products). */
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
    push_env(L, lua_toboolean(L, lua_upvalueindex(1)));
  lua_setupvalue(L, -2, 1);
  return 1;
}

/* print(...) goes to the host log, with the caller's position. */
static int l_print(lua_State *L) {
  orch_lapi_push_line(L, '\t');
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
  /* The standard libraries are shared by every script and the host's own Lua code:
     read-only, so that no script can change another's string.upper. */
  static const char *const libs[] = {"string", "table", "math", "utf8", "coroutine"};
  for (int i = 0; i < 5; i++) {
    freeze(L, os_full - 5 + i, libs[i]);
    lua_pushvalue(L, os_full - 5 + i);
    lua_setfield(L, base, libs[i]);
  }
  /* ("x"):upper() finds the string library through the string metatable: protect it too. */
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushliteral(L, "read-only");
  lua_setfield(L, -2, "__metatable");
  push_frozen_contents(L, os_full - 5); /* methods straight from the contents: one lookup */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 2);

  lua_newtable(L); /* restricted os */
  for (const char *const *f = os_allowed; *f; f++) {
    lua_getfield(L, os_full, *f);
    lua_setfield(L, -2, *f);
  }
  freeze(L, -1, "os");
  push_frozen_contents(L, -1); /* names os doesn't have raise instead of reading nil */
  lua_newtable(L);
  lua_pushcfunction(L, os_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
  lua_setfield(L, base, "os");

  lua_getfield(L, real_g, "setmetatable");
  lua_pushcclosure(L, l_setmetatable, 1);
  lua_setfield(L, base, "setmetatable");
  lua_getfield(L, real_g, "xpcall");
  lua_pushcclosure(L, l_xpcall, 1);
  lua_setfield(L, base, "xpcall");
  lua_pushcfunction(L, l_rawset);
  lua_setfield(L, base, "rawset");
  lua_pushcfunction(L, l_rawget);
  lua_setfield(L, base, "rawget");
  lua_pushcfunction(L, l_print);
  lua_setfield(L, base, "print");
  lua_pushcfunction(L, l_require);
  lua_setfield(L, base, "require");
  lua_pushvalue(L, api);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &api_key);

  /* Product scripts get a copy of the base with their own `orch` view and load(). */
  lua_newtable(L);
  int pbase = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, base)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, pbase);
  }
  push_product_orch(L, api);
  lua_setfield(L, pbase, "orch");
  lua_pushboolean(L, 1);
  lua_pushcclosure(L, l_load, 1);
  lua_setfield(L, pbase, "load");
  lua_pushvalue(L, api);
  lua_setfield(L, base, "orch");
  lua_pushboolean(L, 0);
  lua_pushcclosure(L, l_load, 1);
  lua_setfield(L, base, "load");

  /* The environment metatables (protected: getmetatable(_ENV) gives a string). */
  static const void *const kinds[2] = {&env_mt_key, &penv_mt_key};
  for (int product = 0; product < 2; product++) {
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, product ? pbase : base);
    lua_pushcclosure(L, env_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, kinds[product]);
  }

  /* Module cache, with the C modules scripts may require (read-only: orch.json uses them). */
  lua_newtable(L);
  luaopen_cjson(L);
  freeze(L, -1, "cjson");
  lua_setfield(L, -2, "cjson");
  luaopen_cjson_safe(L);
  freeze(L, -1, "cjson.safe");
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

/* Tables under orch that the core changes after loading (counters) stay writable. */
static const char *const seal_skip[] = {"orch.db.stats", NULL};

/* [-0, +0, e] Make the table at idx and the tables below it read-only, down to depth
   levels. A metatable (a key that starts with "__") keeps its fields but gets no new
   ones (no __index or __gc added later); it is not descended into. */
static void freeze_tree(lua_State *L, int idx, const char *name, int depth) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) return;
  for (const char *const *k = seal_skip; *k; k++)
    if (!strcmp(*k, name)) return;
  if (lua_getmetatable(L, idx)) { /* frozen already, or an object with a class */
    lua_pop(L, 1);
    return;
  }
  int is_metatable = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING && !strncmp(lua_tostring(L, -1), "__", 2)) is_metatable = 1;
  }
  if (is_metatable) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, name);
    lua_pushcclosure(L, frozen_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, idx);
    lua_rawsetp(L, -2, &frozen_key); /* its contents are its own fields */
    lua_setmetatable(L, idx);
    return;
  }
  if (depth > 0) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      if (lua_type(L, -1) == LUA_TTABLE && lua_type(L, -2) == LUA_TSTRING) {
        lua_pushfstring(L, "%s.%s", name, lua_tostring(L, -2));
        freeze_tree(L, -2, lua_tostring(L, -1), depth - 1);
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  }
  freeze(L, idx, name);
}

void orch_sandbox_seal(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &api_key);
  freeze_tree(L, -1, "orch", 8);
  lua_pop(L, 1);
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
