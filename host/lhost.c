/*
 * lhost.c - Lua states: creation under pcall, the counting allocator, the single
 * call wrapper (traceback handler, budget from lapi.c), the HTTP handler bridge,
 * JSON invoke and the step bridge.
 */
#include "orch.h"

#include "lapi.h"
#include "guard.h"
#include "lhost.h"
#include "log.h"
#include "lsandbox.h"
#include "metrics.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

struct orch_lua {
  orch_lapi_state api; /* first: lua_getextraspace points here (lapi.h) */
  lua_State *L;
  int outstanding;          /* step results whose opaque still references this state */
  orch_gen *gen;            /* reference held for the state's lifetime */
  orch_route_table *routes; /* built from orch.api.routes when the state is built (one reference) */
  size_t mem_reported;      /* api.mem_used as last added to the metrics */
};

/* ---- memory cap ----
 * Crossing the limit flags the state and the next hook raises a normal error
 * (with file and line); a hard stop at limit + 1/8 returns NULL (LUA_ERRMEM)
 * for allocations that run ahead of the hook. */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  orch_lapi_state *lh = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    lh->mem_used -= old;
    return NULL;
  }
  if (lh->mem_limit && nsize > old) {
    size_t next = lh->mem_used - old + nsize;
    if (next > lh->mem_limit) {
      lh->mem_over = 1;
      if (next > lh->mem_limit + lh->mem_limit / 8) return NULL;
    }
  }
  void *p = realloc(ptr, nsize);
  if (!p) return NULL;
  lh->mem_used = lh->mem_used - old + nsize;
  return p;
}

/* ---- message handler: structured error {message, file, line, traceback} ---- */

/* [-0, +1, m] t[k] without metamethods: error objects may come from scripts, and reading
   them must not run script code (the hook is off by then, or it is the hook's own error). */
static int rawfield(lua_State *L, int idx, const char *k) {
  idx = lua_absindex(L, idx);
  lua_pushstring(L, k);
  return lua_rawget(L, idx);
}

static int msgh(lua_State *L) {
  if (lua_type(L, 1) == LUA_TTABLE) {
    /* An HTTP problem or a domain error (orch.errors) raised on purpose: no traceback. */
    if (rawfield(L, 1, "__problem") != LUA_TNIL || rawfield(L, 1, "__error") == LUA_TSTRING) {
      lua_settop(L, 1);
      return 1;
    }
    lua_pop(L, 2);
  }
  const char *msg = luaL_tolstring(L, 1, NULL); /* 1 err, 2 msg */
  lua_createtable(L, 0, 4);                     /* 3 result */
  lua_pushvalue(L, 2);
  lua_setfield(L, 3, "message");
  luaL_traceback(L, L, NULL, 1);
  lua_setfield(L, 3, "traceback");
  /* The innermost Lua frame, for errors whose message carries no position. */
  lua_Debug ar;
  for (int level = 0; lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && ar.source[0] == '@') {
      lua_pushstring(L, ar.source + 1);
      lua_setfield(L, 3, "file");
      lua_pushinteger(L, ar.currentline);
      lua_setfield(L, 3, "line");
      break;
    }
  }
  ORCH_UNUSED(msg);
  return 1;
}

/* Split "file:line: message" into its parts; returns 1 if it matched. */
static int split_position(const char *msg, orch_error *err) {
  const char *colon = msg;
  while ((colon = strchr(colon, ':'))) {
    const char *p = colon + 1;
    int line = 0, digits = 0;
    while (*p >= '0' && *p <= '9')
      line = line * 10 + (*p++ - '0'), digits++;
    if (digits && p[0] == ':' && p[1] == ' ' && colon > msg) {
      err->file = orch_strndup(msg, (size_t)(colon - msg));
      err->line = line;
      err->message = orch_strdup(p + 2);
      return 1;
    }
    colon++;
  }
  return 0;
}

typedef struct take_args {
  orch_lua *lh;
  int status;
  const char *context_file;
  orch_error *err;
} take_args;

/* Protected: 1 take_args, 2 the error object. */
static int take_error_protected(lua_State *L) {
  const take_args *a = lua_touserdata(L, 1);
  orch_error *err = a->err;
  if (a->status == LUA_ERRMEM) {
    err->code = ORCH_ELIMIT;
    err->message =
        orch_sprintf("memory limit exceeded (%d MiB)", (int)(a->lh->api.mem_limit >> 20));
  } else if (lua_type(L, 2) == LUA_TTABLE) {
    const char *msg = rawfield(L, 2, "message") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!msg || !split_position(msg, err)) {
      err->message = orch_strdup(msg ? msg : "error object is not a string");
      if (rawfield(L, 2, "file") == LUA_TSTRING) err->file = orch_strdup(lua_tostring(L, -1));
      if (rawfield(L, 2, "line") == LUA_TNUMBER) err->line = (int)lua_tointeger(L, -1);
    }
    if (rawfield(L, 2, "traceback") == LUA_TSTRING)
      err->traceback = orch_strdup(lua_tostring(L, -1));
  } else {
    const char *msg =
        lua_type(L, 2) == LUA_TSTRING || lua_type(L, 2) == LUA_TNUMBER ? lua_tostring(L, 2) : NULL;
    if (!msg || !split_position(msg, err)) err->message = orch_strdup(msg ? msg : "unknown error");
  }
  return 0;
}

/* [-1, +0] Turn the error object on top of the stack into err (in protected mode: API calls
   outside it would reach the panic function on a memory error). */
static void take_error(orch_lua *lh, int status, const char *context_file, orch_error *err) {
  lua_State *L = lh->L;
  orch_error_clear(err);
  take_args a = {lh, status, context_file, err};
  lua_pushcfunction(L, take_error_protected);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, &a);
  lua_insert(L, -2);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    if (!err->message) err->message = orch_strdup("the error object could not be read");
  }
  err->code = lh->api.kill_reason || status == LUA_ERRMEM ? ORCH_ELIMIT : ORCH_ELUA;
  if (!err->file && context_file) err->file = orch_strdup(context_file);
}

/*
 * The one way into Lua: function and nargs arguments on the stack. On success
 * the results are left on the stack; on failure nothing is, err is filled and
 * the error object is left for the caller only if keep_error is set.
 */
static int lcall(orch_lua *lh, int nargs, int nres, const char *context_file, int keep_error,
                 orch_error *err) {
  lua_State *L = lh->L;
  int base = lua_gettop(L) - nargs; /* the function's index */
  lua_pushcfunction(L, msgh);
  lua_insert(L, base);
  orch_lapi_state *api = &lh->api;
  orch_lapi_budget_begin(api);
  int status = lua_pcall(L, nargs, nres, base);
  orch_lapi_budget_end(api);
  int rc = ORCH_OK;
  if (status == LUA_OK && api->kill_reason) {
    /* The budget ran out inside a coroutine whose error the script caught and then
       finished before the hook fired again: the call still failed. (Described in C:
       the Lua API is not used outside protected mode.) */
    lua_settop(L, base);
    orch_error_clear(err);
    err->code = rc = ORCH_ELIMIT;
    if (api->mem_over)
      err->message = orch_sprintf("%s (%d MiB)", api->kill_reason, (int)(api->mem_limit >> 20));
    else
      err->message = orch_sprintf("%s (%d ms)", api->kill_reason, (int)api->timeout_ms);
    if (context_file) err->file = orch_strdup(context_file);
  } else if (status != LUA_OK) {
    if (keep_error) {
      lua_pushvalue(L, -1);
      lua_insert(L, base); /* keep a copy under the handler */
    }
    take_error(lh, status, context_file, err);
    rc = err->code;
  }
  lua_remove(L, base + (keep_error && status != LUA_OK ? 1 : 0)); /* the message handler */
  if (api->mem_over) {
    lua_gc(L, LUA_GCCOLLECT);
    if (api->mem_used < api->mem_limit) api->mem_over = 0;
  }
  api->kill_reason = NULL;
  api->deadline_ns = 0;
  if (rc == ORCH_ELIMIT) orch_metrics_budget_kill();
  orch_metrics_lua_memory((long long)api->mem_used - (long long)lh->mem_reported);
  lh->mem_reported = api->mem_used;
  return rc;
}

/* ---- building a state ---- */

/* Every API call is meant to run in protected mode; reaching this is a host bug. Say what
   happened and abort (returning would let Lua abort without a word). */
static int panic(lua_State *L) {
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)";
  LOG_ERROR("lua", "unprotected error in a call to the Lua API: %s", msg);
  abort();
}

/* orch.traceback([msg [, level]]) -> msg followed by the Lua call stack (for xpcall handlers;
   scripts have no debug library). */
static int l_traceback(lua_State *L) {
  const char *msg = luaL_optstring(L, 1, NULL);
  int level = (int)luaL_optinteger(L, 2, 1);
  luaL_traceback(L, L, msg, level);
  return 1;
}

/* [-0, +1, e] A new `orch` table with every API area injected. */
static void push_orch_table(lua_State *L) {
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
  orch_lapi_client_inject(L);
}

static int build_base(lua_State *L) {
  const orch_gen *g = lua_touserdata(L, 1);
  push_orch_table(L);
  orch_sandbox_open(L, g);
  lua_pop(L, 1);
  return 0;
}

/* [-1, +1] Protected body of a product load: require(module). */
static int require_protected(lua_State *L) {
  orch_sandbox_require(L, lua_tostring(L, 1));
  return 1;
}

static int seal_protected(lua_State *L) {
  orch_sandbox_seal(L);
  return 0;
}

static int forget_failed_protected(lua_State *L) {
  orch_sandbox_forget_failed(L);
  return 0;
}

/* Load one module under the budget; on failure record the error. */
static int load_module(orch_lua *lh, const char *module, const char *path, orch_errlist *errors) {
  orch_error err = ORCH_ERROR_INIT;
  lua_pushcfunction(lh->L, require_protected);
  lua_pushstring(lh->L, module);
  if (lcall(lh, 1, 0, path, 0, &err) == ORCH_OK) return ORCH_OK;
  int rc = err.code;
  orch_errlist_add(errors, &err);
  lua_pushcfunction(lh->L, forget_failed_protected);
  if (lcall(lh, 0, 0, NULL, 0, &err) != ORCH_OK) orch_errlist_add(errors, &err);
  return rc;
}

/* [-0, +1] orch._finalize(): whole-registry checks once every script is loaded. */
static int finalize_protected(lua_State *L) {
  orch_sandbox_require(L, "orch");
  if (lua_getfield(L, -1, "_finalize") != LUA_TFUNCTION) {
    lua_pushnil(L);
    return 1;
  }
  lua_call(L, 0, 1);
  return 1;
}

/*
 * Cross-file checks (a block used but never defined...) can only run after
 * every script is loaded. orch._finalize returns nil or a list of messages
 * ("file:line: message"), each of which becomes one error.
 */
static void finalize(orch_lua *lh, orch_errlist *errors) {
  lua_State *L = lh->L;
  orch_error err = ORCH_ERROR_INIT;
  lua_pushcfunction(L, finalize_protected);
  if (lcall(lh, 0, 1, NULL, 0, &err) != ORCH_OK) {
    orch_errlist_add(errors, &err);
    return;
  }
  if (lua_istable(L, -1)) {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, -1, i);
      const char *msg = lua_tostring(L, -1);
      orch_error e = ORCH_ERROR_INIT;
      e.code = ORCH_ELUA;
      if (!msg || !split_position(msg, &e))
        e.message = orch_strdup(msg ? msg : "invalid definition");
      orch_errlist_add(errors, &e);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* The string field `key` of the table at -1, or NULL. */
static const char *route_field(lua_State *L, const char *key) {
  lua_getfield(L, -1, key);
  const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1); /* the string stays reachable from the route table */
  return v;
}

/* [-0, +0] Fill the table (light userdata 1) from orch.api.routes.all(). */
static int routes_protected(lua_State *L) {
  orch_route_table *t = lua_touserdata(L, 1);
  orch_sandbox_require(L, "orch.api.routes");
  lua_getfield(L, -1, "all");
  lua_call(L, 0, 1);
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, -1, i);
    lua_getfield(L, -1, "json_body");
    int flags = lua_toboolean(L, -1) ? ORCH_ROUTE_JSON_BODY : 0;
    lua_pop(L, 1);
    const char *method = route_field(L, "method"), *path = route_field(L, "path");
    const char *host = route_field(L, "host");
    orch_error err = ORCH_ERROR_INIT;
    if (host && !orch_http_host_route_known(host, method, path)) {
      orch_error_set(&err, ORCH_EINVAL, "route %s %s: the host has no handler '%s' for it",
                     method ? method : "?", path ? path : "?", host);
    } else if (orch_route_table_add(t, method, path, route_field(L, "action"),
                                    route_field(L, "handler"), host, flags, &err) == ORCH_OK) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushfstring(L, "orch.api.routes: %s", err.message);
    orch_error_clear(&err);
    return lua_error(L);
  }
  return 0;
}

/* The route table of the state's scripts (the routes declared in lua/orch/api/). */
static void load_routes(orch_lua *lh, orch_errlist *errors) {
  orch_error err = ORCH_ERROR_INIT;
  lh->routes = orch_route_table_new();
  lua_pushcfunction(lh->L, routes_protected);
  lua_pushlightuserdata(lh->L, lh->routes);
  if (lcall(lh, 1, 0, NULL, 0, &err) != ORCH_OK) orch_errlist_add(errors, &err);
}

orch_route_table *orch_lua_routes(const orch_lua *lh) {
  return lh->routes;
}

int orch_lua_new(orch_lua **out, orch_gen *g, const orch_lua_limits *lim, orch_errlist *errors) {
  *out = NULL;
  orch_lua *lh = orch_xcalloc(1, sizeof *lh);
  lh->api.mem_limit = lim ? lim->memory : 0;
  lh->api.timeout_ms = lim ? lim->timeout_ms : 0;
  orch_error err = ORCH_ERROR_INIT;
  lh->L = lua_newstate(l_alloc, &lh->api);
  if (!lh->L) {
    orch_error_set(&err, ORCH_ENOMEM, "cannot create a Lua state");
    orch_errlist_add(errors, &err);
    free(lh);
    return ORCH_ENOMEM;
  }
  lh->gen = orch_gen_ref(g);
  orch_lapi_attach(&lh->api, lh->L, lh->gen);
  lua_atpanic(lh->L, panic);
  lua_State *L = lh->L;

  /* Libraries, sandbox and API are built inside one protected call (as lua.c does). */
  lua_pushcfunction(L, build_base);
  lua_pushlightuserdata(L, g);
  if (lcall(lh, 1, 0, NULL, 0, &err) != ORCH_OK) {
    orch_error_prefix(&err, "cannot build the Lua sandbox");
    orch_errlist_add(errors, &err);
    orch_lua_free(lh);
    return ORCH_ELUA;
  }

  /* The core ruleset first: product scripts build on it. */
  lh->api.ctx.phase = ORCH_CTX_LOAD;
  size_t before = errors->n;
  const orch_script *core = orch_gen_find_module(g, "orch");
  if (!core) {
    orch_error_set(&err, ORCH_ECONFIG,
                   "the core ruleset is missing: no module 'orch' (lua/orch/init.lua)");
    orch_errlist_add(errors, &err);
  } else if (load_module(lh, "orch", core->path, errors) == ORCH_OK) {
    lua_pushcfunction(L, seal_protected);
    if (lcall(lh, 0, 0, NULL, 0, &err) != ORCH_OK) orch_errlist_add(errors, &err);
    for (size_t i = 0; i < g->count; i++)
      if (g->scripts[i].is_product)
        load_module(lh, g->scripts[i].module, g->scripts[i].path, errors);
    if (errors->n == before) finalize(lh, errors);
    if (errors->n == before) load_routes(lh, errors);
  }
  lh->api.ctx.phase = 0;
  if (errors->n != before) {
    orch_lua_free(lh);
    return ORCH_ELUA;
  }
  *out = lh;
  return ORCH_OK;
}

void orch_lua_free(orch_lua *lh) {
  if (!lh) return;
  orch_lapi_detach(&lh->api);
  if (lh->L) lua_close(lh->L);
  orch_metrics_lua_memory(-(long long)lh->mem_reported);
  orch_route_table_unref(lh->routes);
  orch_gen_unref(lh->gen);
  free(lh);
}

long orch_lua_generation(const orch_lua *lh) {
  return lh->gen->number;
}
size_t orch_lua_memory(const orch_lua *lh) {
  return lh->api.mem_used;
}
void orch_lua_set_db(orch_lua *lh, orch_db *db) {
  lh->api.ctx.db = db;
}

/* ---- HTTP handlers ---- */

static void push_kvlist(lua_State *L, const orch_kvlist *l) {
  lua_createtable(L, 0, (int)l->n);
  for (size_t i = 0; i < l->n; i++) {
    lua_pushstring(L, l->items[i].value);
    lua_setfield(L, -2, l->items[i].key);
  }
}

/* [-0, +2, e] orch.http.dispatch and the request table handed to it. */
static void push_dispatch(lua_State *L, const orch_http_request *req) {
  orch_sandbox_require(L, "orch.http");
  lua_getfield(L, -1, "dispatch");
  lua_remove(L, -2);
  lua_createtable(L, 0, 11);
  lua_pushstring(L, req->method);
  lua_setfield(L, -2, "method");
  lua_pushstring(L, req->path);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, req->route->handler);
  lua_setfield(L, -2, "handler");
  lua_pushstring(L, req->route->action);
  lua_setfield(L, -2, "action");
  lua_pushstring(L, req->route->pattern);
  lua_setfield(L, -2, "route");
  lua_pushboolean(L, (req->route->flags & ORCH_ROUTE_JSON_BODY) != 0);
  lua_setfield(L, -2, "json_body");
  lua_pushstring(L, req->request_id);
  lua_setfield(L, -2, "request_id");
  if (req->user_json) {
    lua_pushstring(L, req->user_json);
    lua_setfield(L, -2, "user_json");
  }
  push_kvlist(L, &req->params);
  lua_setfield(L, -2, "params");
  push_kvlist(L, &req->query);
  lua_setfield(L, -2, "query");
  push_kvlist(L, &req->headers);
  lua_setfield(L, -2, "headers");
  if (req->body) {
    lua_pushlstring(L, req->body, req->body_len);
    lua_setfield(L, -2, "body");
  }
}

/* [-0, +0, e] Read dispatch's results (status, body, headers, content_type from index r on)
   into resp. */
static void read_response(lua_State *L, int r, orch_http_response *resp) {
  resp->status = (int)luaL_checkinteger(L, r);
  if (lua_type(L, r + 1) == LUA_TSTRING) {
    size_t len;
    const char *body = lua_tolstring(L, r + 1, &len);
    resp->body = orch_strndup(body, len);
    resp->body_len = len;
  }
  if (lua_type(L, r + 2) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, r + 2)) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING)
        orch_kvlist_add(&resp->headers, lua_tostring(L, -2), lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  if (lua_type(L, r + 3) == LUA_TSTRING) resp->content_type = orch_strdup(lua_tostring(L, r + 3));
}

typedef struct handle_args {
  const orch_http_request *req;
  orch_http_response *resp;
} handle_args;

/* [-0, +0] Protected: the whole request in one call into Lua (one budget, one handler):
   build the request table, dispatch, read the answer. */
static int handle_protected(lua_State *L) {
  const handle_args *a = lua_touserdata(L, 1);
  push_dispatch(L, a->req);
  lua_call(L, 1, 4);
  read_response(L, lua_gettop(L) - 3, a->resp);
  return 0;
}

/* Protected: 1 the response, 2 the error object. Returns whether it was a problem. */
static int problem_protected(lua_State *L) {
  orch_http_response *resp = lua_touserdata(L, 1);
  if (lua_type(L, 2) == LUA_TTABLE && rawfield(L, 2, "__error") == LUA_TSTRING) {
    /* A domain error: the API's table says which problem it is (policy in Lua). */
    orch_sandbox_require(L, "orch.api.errors");
    lua_getfield(L, -1, "to_problem");
    lua_pushvalue(L, 2);
    lua_call(L, 1, 1);
    lua_replace(L, 2);
    lua_settop(L, 2);
  }
  if (lua_type(L, 2) != LUA_TTABLE || rawfield(L, 2, "__problem") == LUA_TNIL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  int status = rawfield(L, 2, "status") == LUA_TNUMBER && lua_isinteger(L, -1)
                   ? (int)lua_tointeger(L, -1)
                   : 500;
  const char *detail = rawfield(L, 2, "detail") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  orch_http_problem(resp, status, detail ? detail : orch_http_reason(status));
  /* A problem may carry its whole JSON body (the forms protocol's 510 and 400). */
  if (rawfield(L, 2, "body_json") == LUA_TSTRING) {
    size_t len;
    const char *body = lua_tolstring(L, -1, &len);
    free(resp->body);
    resp->body = orch_strndup(body, len);
    resp->body_len = len;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* A problem raised on purpose: {__problem=true, status=, detail=} or a domain error
   {__error=kind, ...} (orch.errors) mapped by orch.api.errors (on top; kept). */
static int problem_from_error(lua_State *L, orch_http_response *resp) {
  lua_pushcfunction(L, problem_protected);
  lua_pushlightuserdata(L, resp);
  lua_pushvalue(L, -3);
  int is = lua_pcall(L, 2, 1, 0) == LUA_OK && lua_toboolean(L, -1);
  lua_pop(L, 1);
  return is;
}

void orch_lua_handle(orch_lua *lh, const orch_http_request *req, orch_http_response *resp) {
  lua_State *L = lh->L;
  int top = lua_gettop(L);
  orch_error err = ORCH_ERROR_INIT;
  lh->api.ctx.phase = ORCH_CTX_REQUEST;
  lh->api.ctx.route = req->route->handler;
  handle_args args = {req, resp};
  lua_pushcfunction(L, handle_protected);
  lua_pushlightuserdata(L, &args);
  if (lcall(lh, 1, 0, NULL, 1, &err) == ORCH_OK) goto done;
  /* A failed call may have read part of an answer: start the error answer afresh. */
  orch_http_response_clear(resp);
  if (lua_gettop(L) > top && problem_from_error(L, resp)) goto done;
  if (orch_db_unavailable(lh->api.ctx.db)) {
    /* The database is away (restart, lost connection): a temporary condition, not a bug. */
    char *why = orch_error_format(&err);
    LOG_WARN("lua", "request %s %s (id %s): the database is unavailable: %s", req->method,
             req->path, req->request_id, why);
    free(why);
    orch_http_response_clear(resp);
    orch_http_problem(resp, 503, "The database is unavailable; try again later");
    goto done;
  }
  char *where = orch_error_format(&err);
  char *path = orch_guard_mask_url(req->path); /* no callback tokens in the log */
  LOG_ERROR("lua", "request %s %s (id %s) failed: %s%s%s", req->method, path, req->request_id,
            where, err.traceback ? "\n" : "", err.traceback ? err.traceback : "");
  free(path);
  free(where);
  orch_http_response_clear(resp);
  char *detail = orch_sprintf("Internal server error (request id %s)", req->request_id);
  orch_http_problem(resp, 500, detail);
  free(detail);
done:
  /* Every 503 tells the client when to come back. */
  if (resp->status == 503 && !orch_kvlist_get(&resp->headers, "Retry-After"))
    orch_kvlist_add(&resp->headers, "Retry-After", "5");
  orch_error_clear(&err);
  lua_settop(L, top);
  lh->api.ctx.phase = 0;
  lh->api.ctx.route = NULL;
}

/* ---- calls with JSON in and out ---- */

typedef struct invoke_args {
  const char *module;
  const char *func;
  const char *arg_json;
} invoke_args;

/* [-0, +1] require(module)[func](orch.json.decode(arg)) encoded with orch.json. */
static int invoke_protected(lua_State *L) {
  const invoke_args *a = lua_touserdata(L, 1);
  orch_sandbox_require(L, "orch.json");
  int json = lua_gettop(L);
  orch_sandbox_require(L, a->module);
  if (lua_getfield(L, -1, a->func) != LUA_TFUNCTION)
    return luaL_error(L, "%s.%s is not a function", a->module, a->func);
  if (a->arg_json) {
    lua_getfield(L, json, "decode");
    lua_pushstring(L, a->arg_json);
    lua_call(L, 1, 1);
  } else {
    lua_pushnil(L);
  }
  lua_call(L, 1, 1);
  lua_getfield(L, json, "encode");
  lua_insert(L, -2);
  lua_call(L, 1, 1);
  return 1;
}

int orch_lua_invoke(orch_lua *lh, const char *module, const char *func, const char *arg_json,
                    char **result_json, orch_error *err) {
  lua_State *L = lh->L;
  int top = lua_gettop(L);
  invoke_args a = {module, func, arg_json};
  lua_pushcfunction(L, invoke_protected);
  lua_pushlightuserdata(L, &a);
  lh->api.ctx.phase = ORCH_CTX_HOST;
  int rc = lcall(lh, 1, 1, NULL, 0, err);
  lh->api.ctx.phase = 0;
  if (rc == ORCH_OK && result_json) *result_json = orch_strdup(lua_tostring(L, -1));
  lua_settop(L, top);
  return rc;
}

/* ---- calls for the other parts of the bridge (step_runner.c) ---- */

int orch_lua_call(orch_lua *lh, unsigned phase, int (*body)(lua_State *L), void *ud, int nres,
                  orch_error *err) {
  lua_pushcfunction(lh->L, body);
  lua_pushlightuserdata(lh->L, ud);
  unsigned outer = lh->api.ctx.phase;
  lh->api.ctx.phase = phase;
  int rc = lcall(lh, 1, nres, NULL, 0, err);
  lh->api.ctx.phase = outer;
  return rc;
}

lua_State *orch_lua_state(orch_lua *lh) {
  return lh->L;
}

const orch_gen *orch_lua_gen(const orch_lua *lh) {
  return lh->gen;
}

void orch_lua_hold(orch_lua *lh, int delta) {
  lh->outstanding += delta;
}

int orch_lua_busy(const orch_lua *lh) {
  return lh && lh->outstanding > 0;
}
