/*
 * lapi_client.c - orch._client: outbound HTTP calls from steps to the
 * services configured in the environment (client.h does the transfer).
 * The Lua half, lua/orch/client.lua, builds query strings, encodes and
 * decodes JSON bodies and turns failures into step errors; scripts use it as
 * orch.client. Not available while scripts are being loaded.
 */
#include "orch.h"

#include "lapi.h"
#include "client.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS  64
#define RESPONSE_BOX "orch.client.response"

/* The response lives in a box with __gc: a Lua error while pushing it can't leak it. */
static int response_box_gc(lua_State *L) {
  orch_client_response *resp = luaL_checkudata(L, 1, RESPONSE_BOX);
  orch_client_response_free(resp);
  return 0;
}

/* Not at load time (no side effects), and not while a step's result is persisted: that
   runs inside the engine's fenced transaction, which must not wait on the network. */
static void check_context(lua_State *L) {
  orch_lapi_check_context(L, ORCH_CTX_REQUEST | ORCH_CTX_STEP | ORCH_CTX_HOST, "orch.client");
}

/* [-0, +1] The response's header lines as a table keyed by lowercase name
   (repeated headers joined with ", "). */
static void push_headers(lua_State *L, const orch_buf *b) {
  lua_newtable(L);
  const char *p = b->data ? b->data : "", *end = p + b->len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) nl = end;
    const char *colon = memchr(p, ':', (size_t)(nl - p));
    if (colon) {
      lua_pushlstring(L, p, (size_t)(colon - p));
      lua_pushvalue(L, -1);
      if (lua_rawget(L, -3) == LUA_TSTRING) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, colon + 1, (size_t)(nl - colon - 1));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, colon + 1, (size_t)(nl - colon - 1));
      }
      lua_rawset(L, -3);
    }
    p = nl + 1;
  }
}

/*
 * orch._client.perform(service, method, path, headers, body, timeout_ms)
 *   -> status, headers, body, url | nil, message, kind, url
 * headers: array of "Name: value" strings or nil; body: string or nil;
 * timeout_ms: integer or nil (the configured default). kind is one of
 * config invalid dns connect timeout too_large io.
 */
static int l_perform(lua_State *L) {
  check_context(L);
  orch_client_request req = {0};
  req.service = luaL_checkstring(L, 1);
  req.method = luaL_checkstring(L, 2);
  req.path = luaL_checkstring(L, 3);
  const char *headers[MAX_HEADERS];
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 4);
    luaL_argcheck(L, n <= MAX_HEADERS, 4, "too many headers");
    for (lua_Integer i = 1; i <= n; i++) {
      /* Only real strings: lua_tostring would convert a number into a new string
         that nothing anchors once popped (the table still holds the number). */
      luaL_argcheck(L, lua_rawgeti(L, 4, i) == LUA_TSTRING, 4, "headers must be strings");
      headers[i - 1] = lua_tostring(L, -1);
      lua_pop(L, 1); /* the string stays alive in the table, anchored by argument 4 */
    }
    req.headers = headers;
    req.nheaders = (size_t)n;
  }
  if (!lua_isnoneornil(L, 5)) req.body = luaL_checklstring(L, 5, &req.body_len);
  req.timeout_ms = (long)luaL_optinteger(L, 6, 0);
  luaL_argcheck(L, req.timeout_ms >= 0, 6, "timeout must not be negative");

  orch_client_response *box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = (orch_client_response)ORCH_CLIENT_RESPONSE_INIT;
  luaL_setmetatable(L, RESPONSE_BOX);
  orch_error err = ORCH_ERROR_INIT;
  long long started = orch_now_ns();
  orch_client_fail f = orch_client_perform(&req, box, &err);
  /* Waiting on the network is not script time: give it back to the call's budget. */
  orch_lapi_budget_extend(L, orch_now_ns() - started);
  if (f != ORCH_CLIENT_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err.message ? err.message : "request failed");
    orch_error_clear(&err);
    lua_pushstring(L, orch_client_fail_name(f));
  } else {
    lua_pushinteger(L, box->status);
    push_headers(L, &box->headers);
    lua_pushlstring(L, box->body.data ? box->body.data : "", box->body.len);
  }
  if (box->url)
    lua_pushstring(L, box->url);
  else
    lua_pushnil(L);
  orch_client_response_free(box);
  return 4;
}

/* [-0, +1] Push a malloc'd URL (or nil for NULL) and free it. */
static int push_url(lua_State *L, char *url) {
  if (url)
    lua_pushstring(L, url);
  else
    lua_pushnil(L);
  free(url);
  return 1;
}

/* orch._client.base_url(service) -> the configured base URL or nil (never the token). */
static int l_base_url(lua_State *L) {
  return push_url(L, orch_client_base_url(luaL_checkstring(L, 1)));
}

/* orch._client.public_url() -> where external systems reach this host, or nil. */
static int l_public_url(lua_State *L) {
  return push_url(L, orch_client_public_url());
}

static int raise_here(lua_State *L) {
  return orch_lapi_error(L, "%s", "");
}

/* orch._client.where() -> "file:line: " of the innermost product script frame. */
static int l_where(lua_State *L) {
  lua_pushcfunction(L, raise_here);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK && lua_type(L, -1) == LUA_TSTRING) return 1;
  lua_pop(L, 1);
  lua_pushliteral(L, "");
  return 1;
}

static const luaL_Reg http_client_funcs[] = {
    {"perform", l_perform},
    {"base_url", l_base_url},
    {"public_url", l_public_url},
    {"where", l_where},
    {NULL, NULL},
};

void orch_lapi_client_inject(lua_State *L) {
  if (luaL_newmetatable(L, RESPONSE_BOX)) {
    lua_pushcfunction(L, response_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, http_client_funcs);
  lua_setfield(L, -2, "_client");
}
