/*
 * lapi_db.c - orch._db: statements on the calling thread's database
 * connection. The Lua half (lua/orch/db.lua) adds transactions and JSON
 * columns. Only available where the host gave the state a connection, and
 * never while scripts are being loaded.
 */
#include "orch.h"

#include "lapi.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL type OIDs we convert (from pg_type.dat; stable across versions). */
enum {
  OID_BOOL = 16,
  OID_INT8 = 20,
  OID_INT2 = 21,
  OID_INT4 = 23,
  OID_JSON = 114,
  OID_FLOAT4 = 700,
  OID_FLOAT8 = 701,
  OID_NUMERIC = 1700,
  OID_JSONB = 3802
};

#define RESULT_BOX "orch.db.result"

static int result_box_gc(lua_State *L) {
  PGresult **box = luaL_checkudata(L, 1, RESULT_BOX);
  PQclear(*box);
  *box = NULL;
  return 0;
}

static orch_db *checked_db(lua_State *L) {
  orch_lua_ctx *ctx = orch_lapi_ctx(L);
  orch_lapi_check_context(L, ORCH_CTX_REQUEST | ORCH_CTX_STEP | ORCH_CTX_PERSIST | ORCH_CTX_HOST,
                          "orch.db");
  if (!ctx->db) orch_lapi_error(L, "orch.db is not available here (no database connection)");
  return ctx->db;
}

/* [-0, +1] One value of the result, typed by its column's OID. */
static void push_value(lua_State *L, PGresult *res, int row, int col) {
  if (PQgetisnull(res, row, col)) {
    lua_pushnil(L);
    return;
  }
  const char *v = PQgetvalue(res, row, col);
  switch (PQftype(res, col)) {
  case OID_BOOL: lua_pushboolean(L, v[0] == 't'); break;
  case OID_INT2:
  case OID_INT4:
  case OID_INT8: lua_pushinteger(L, strtoll(v, NULL, 10)); break;
  case OID_FLOAT4:
  case OID_FLOAT8:
  case OID_NUMERIC: lua_pushnumber(L, strtod(v, NULL)); break;
  default: lua_pushlstring(L, v, (size_t)PQgetlength(res, row, col));
  }
}

/* [-0, +2] nil and an error table {message, sqlstate, retryable}. */
static int push_error(lua_State *L, orch_db *db, orch_dbstatus st, const orch_error *err) {
  lua_pushnil(L);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, err->message ? err->message : "database error");
  lua_setfield(L, -2, "message");
  lua_pushstring(L, orch_db_last_sqlstate(db));
  lua_setfield(L, -2, "sqlstate");
  lua_pushboolean(L, st == ORCH_DB_SOFT_ERROR);
  lua_setfield(L, -2, "retryable");
  return 2;
}

/*
 * orch._db.query(sql, ...) -> rows, affected, json_columns | nil, err
 * Parameters: nil -> NULL, booleans -> true/false, numbers and strings as text.
 * Rows are tables keyed by column name; NULL is nil. json_columns lists the
 * json/jsonb columns (returned as text) or is nil.
 */
static int l_db_query(lua_State *L) {
  orch_db *db = checked_db(L);
  const char *sql = luaL_checkstring(L, 1);
  int n = lua_gettop(L) - 1;
  luaL_argcheck(L, n <= 64, 66, "too many parameters (at most 64)");
  const char *params[64];
  for (int i = 0; i < n; i++) {
    int idx = i + 2;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: params[i] = NULL; break;
    case LUA_TBOOLEAN: params[i] = lua_toboolean(L, idx) ? "true" : "false"; break;
    case LUA_TNUMBER:
    case LUA_TSTRING: {
      size_t len;
      params[i] = lua_tolstring(L, idx, &len); /* converts numbers in place */
      /* libpq takes text parameters as C strings: a NUL would silently cut the value. */
      if (memchr(params[i], '\0', len))
        return orch_lapi_error(L, "orch.db: parameter $%d contains a NUL character", i + 1);
      break;
    }
    default:
      return luaL_argerror(L, idx,
                           "expected nil, boolean, number or string (encode tables as JSON)");
    }
  }
  /* The result lives in a box with __gc: a Lua error while converting can't leak it. */
  PGresult **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, RESULT_BOX);
  orch_error err = ORCH_ERROR_INIT;
  orch_dbstatus st = orch_db_exec(db, sql, n, params, box, &err);
  PGresult *res = *box;
  if (st < 0) {
    int r = push_error(L, db, st, &err);
    orch_error_clear(&err);
    return r;
  }
  int rows = PQntuples(res), cols = PQnfields(res);
  lua_createtable(L, rows, 0);
  for (int r = 0; r < rows; r++) {
    lua_createtable(L, 0, cols);
    for (int c = 0; c < cols; c++) {
      push_value(L, res, r, c);
      lua_setfield(L, -2, PQfname(res, c));
    }
    lua_rawseti(L, -2, r + 1);
  }
  const char *affected = PQcmdTuples(res);
  lua_pushinteger(L, affected && *affected ? strtoll(affected, NULL, 10) : rows);
  int json_cols = 0;
  for (int c = 0; c < cols; c++) {
    Oid t = PQftype(res, c);
    if (t != OID_JSON && t != OID_JSONB) continue;
    if (!json_cols) lua_newtable(L);
    lua_pushstring(L, PQfname(res, c));
    lua_rawseti(L, -2, ++json_cols);
  }
  if (!json_cols) lua_pushnil(L);
  PQclear(res);
  *box = NULL;
  return 3;
}

static const luaL_Reg db_funcs[] = {
    {"query", l_db_query},
    {NULL, NULL},
};

void orch_lapi_db_inject(lua_State *L) {
  if (luaL_newmetatable(L, RESULT_BOX)) {
    lua_pushcfunction(L, result_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, db_funcs);
  lua_setfield(L, -2, "_db");
}
