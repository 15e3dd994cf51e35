/*
 * lapi_db.c - orch._db: statements on the calling thread's database
 * connection. The Lua half (lua/orch/db.lua) adds transactions and JSON
 * columns. Only available where the host gave the state a connection, and
 * never while scripts are being loaded.
 */
#include "orch.h"

#include "lapi.h"

#include <ctype.h>
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

/* ---- what product SQL may do ----
 * Product scripts read through orch.db; everything they write goes through the core's
 * APIs (orch.model saves, step state). So a statement whose caller is a product script
 * must be one read query: it starts with SELECT, WITH, VALUES or TABLE (or is BEGIN,
 * COMMIT or ROLLBACK, which orch.db.transaction sends), and none of its words outside
 * string literals writes (INSERT, UPDATE, DELETE, MERGE, INTO) or is one of the functions
 * that reach the server's files, programs, large objects, other databases or settings.
 * (One statement only: the extended protocol refuses several.)
 * Dollar quoting and U& identifiers, which could hide words, are refused. This is a
 * guard in depth; the boundary is the database role the host connects as (README). */

static const char *const product_sql_first[] = {"select", "with", "values", "table", NULL};
static const char *const product_sql_alone[] = {"begin", "commit", "rollback", NULL};
/* writes inside a read-shaped statement: WITH x AS (INSERT ...), SELECT ... INTO */
static const char *const product_sql_denied_keywords[] = {"insert", "update", "delete",
                                                          "merge",  "into",   NULL};
static const char *const product_sql_denied[] = {
    /* functions that reach files, programs, large objects, other servers or settings, or
       run SQL given as text */
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_stat_file",
    "lo_import",
    "lo_export",
    "lo_get",
    "lo_put",
    "lo_from_bytea",
    "lo_create",
    "lo_creat",
    "lo_open",
    "lo_unlink",
    "lo_truncate",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "set_config",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_file_write",
    "pg_switch_wal",
    "nextval",
    "setval",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "txid_current",
    "pg_current_xact_id",
    NULL};

static int in_list(const char *const *list, const char *word) {
  for (; *list; list++)
    if (!strcmp(*list, word)) return 1;
  return 0;
}

/* NULL if a product script may run sql, else why not (a static message; word receives the
   offending word, if any). */
static const char *product_sql_refusal(const char *sql, char *word, size_t wsize) {
  const char *p = sql;
  int words = 0, first_ok = 0;
  word[0] = '\0';
  while (*p) {
    unsigned char c = (unsigned char)*p;
    if (c == '-' && p[1] == '-') {
      while (*p && *p != '\n')
        p++;
    } else if (c == '/' && p[1] == '*') {
      const char *end = strstr(p + 2, "*/");
      if (!end) return "an unterminated comment";
      p = end + 2;
    } else if (c == '\'') {
      int backslashes = p > sql && (p[-1] == 'e' || p[-1] == 'E');
      for (p++; *p; p++) {
        if (backslashes && *p == '\\' && p[1]) {
          p++;
        } else if (*p == '\'') {
          if (p[1] != '\'') break;
          p++;
        }
      }
      if (!*p) return "an unterminated string literal";
      p++;
    } else if (c == '$' && !(p[1] >= '0' && p[1] <= '9')) {
      return "dollar quoting";
    } else if (c == '"' || c == '_' || isalpha(c)) {
      size_t n = 0;
      int quoted = c == '"';
      if ((c == 'u' || c == 'U') && p[1] == '&') return "U& escapes";
      if (c == '"') {
        for (p++; *p && !(*p == '"' && p[1] != '"'); p++) {
          if (*p == '"') p++;
          if (n + 1 < wsize) word[n++] = (char)tolower((unsigned char)*p);
        }
        if (!*p) return "an unterminated quoted identifier";
        p++;
      } else {
        for (; *p && (*p == '_' || *p == '$' || isalnum((unsigned char)*p)); p++)
          if (n + 1 < wsize) word[n++] = (char)tolower((unsigned char)*p);
      }
      word[n] = '\0';
      if (words++ == 0) {
        if (in_list(product_sql_alone, word)) {
          first_ok = 2;
          continue;
        }
        if (!in_list(product_sql_first, word)) return "a statement that is not a read query";
        first_ok = 1;
      } else if (first_ok == 2) {
        return "a statement that is not a read query";
      }
      if (in_list(product_sql_denied, word) ||
          (!quoted && in_list(product_sql_denied_keywords, word)))
        return "a word that is not allowed";
      continue;
    } else {
      p++;
    }
  }
  word[0] = '\0';
  return first_ok ? NULL : "a statement that is not a read query";
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
  orch_lapi_check_context(L, ORCH_CTX_REQUEST | ORCH_CTX_STEP | ORCH_CTX_PERSIST | ORCH_CTX_HOST,
                          "orch.db");
  const char *sql = luaL_checkstring(L, 1);
  if (orch_lapi_caller_is_product(L, "orch.db")) {
    char word[64];
    const char *why = product_sql_refusal(sql, word, sizeof word);
    if (why)
      return orch_lapi_error(L,
                             "orch.db: product scripts may only run read queries (SELECT, WITH, "
                             "VALUES, TABLE); this one has %s%s%s%s",
                             why, word[0] ? " ('" : "", word, word[0] ? "')" : "");
  }
  orch_db *db = checked_db(L);
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
  /* A statement may run longer than the call's budget (pg_sleep, a slow plan): past the
     deadline the watchdog cancels it. */
  PGconn *conn = orch_db_ensure(db, &err) == ORCH_OK ? orch_db_conn(db) : NULL;
  orch_error_clear(&err);
  orch_lapi_watch_statement(L, conn);
  orch_dbstatus st = orch_db_exec(db, sql, n, params, box, &err);
  orch_lapi_watch_statement(L, NULL);
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
