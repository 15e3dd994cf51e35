/*
 * lapi.h - the `orch` module table exposed to Lua, built from one file per API
 * area (lapi_<area>.c), each with a luaL_Reg list and an inject function that
 * adds its functions to the table on top of the stack.
 * Private to the Lua bridge.
 */
#pragma once

#include "orch.h"

#include "db.h"

#include <lua.h>

/* What a call into Lua is doing: each API function names the contexts it may run in. */
enum {
  ORCH_CTX_LOAD = 1u << 0,    /* scripts being loaded (and the cross-file checks) */
  ORCH_CTX_REQUEST = 1u << 1, /* an HTTP request handler */
  ORCH_CTX_STEP = 1u << 2,    /* a workflow step */
  ORCH_CTX_PERSIST = 1u << 3, /* a step's result written inside the engine's transaction */
  ORCH_CTX_HOST = 1u << 4,    /* a call the host makes itself (orch_lua_invoke: sync, catalog) */
};

/* What C functions of the API reach through lua_getextraspace(L). */
typedef struct orch_lua_ctx {
  orch_db *db;       /* borrowed; NULL when no database is available (e.g. `check`) */
  unsigned phase;    /* one ORCH_CTX_* while a call runs, 0 between calls */
  const char *route; /* ORCH_CTX_REQUEST: the route's handler name (borrowed) */
} orch_lua_ctx;

orch_lua_ctx *orch_lapi_ctx(lua_State *L);

/*
 * [-0, +0, v] Raise "<what> is not available <where>" at the script's line unless the
 * running call's context is one of allowed (a mask of ORCH_CTX_*).
 */
void orch_lapi_check_context(lua_State *L, unsigned allowed, const char *what);

/*
 * [-0, +0, v] Raise an error positioned at the innermost *product* script
 * frame (falling back to the innermost Lua frame), so that misuse of the API
 * points at the author's line, not at the core ruleset's wrapper.
 */
int orch_lapi_error(lua_State *L, const char *fmt, ...) ORCH_PRINTF(2, 3);

/* Whether the innermost script frame outside `module` (e.g. "orch.db", whose own frames are
   skipped) is a product script: who is really calling. */
int orch_lapi_caller_is_product(lua_State *L, const char *module);

/* [-0, +1] Like luaL_where, but with the whole file path (luaL_where cuts it at 60 bytes). */
void orch_lapi_where(lua_State *L, int level);

/* [-0, +1, e] Push a new `orch` table with every API area injected. */
void orch_lapi_push(lua_State *L);

/* [-0, +0, e] Each adds its sub-table or functions to the table on top of the stack. */
void orch_lapi_log_inject(lua_State *L);
void orch_lapi_json_inject(lua_State *L);
void orch_lapi_time_inject(lua_State *L);
void orch_lapi_uuid_inject(lua_State *L);
void orch_lapi_db_inject(lua_State *L);
void orch_lapi_host_inject(lua_State *L);
void orch_lapi_http_client_inject(lua_State *L);

/* Move the running call's time budget deadline by ns (time spent waiting on
   the network is not script time). No-op when the call has no budget. */
void orch_lapi_budget_extend(lua_State *L, long long ns);

/*
 * [-0, +0, v] Raise the budget error ("time limit exceeded (N ms)" at the calling script
 * line) if the running call's budget is gone. For C code that runs long without returning
 * to the VM (the pattern matcher); the count hook covers everything else.
 */
void orch_lapi_budget_check(lua_State *L);

/* Tell the watchdog which statement the running call waits on (conn, borrowed; NULL when
   it finished): past the call's deadline the watchdog cancels it. */
void orch_lapi_watch_statement(lua_State *L, PGconn *conn);

/* Whether the running call's budget is gone (its error is being raised and re-raised). */
int orch_lapi_budget_killed(lua_State *L);

/* [-0, +0] Replace find/match/gmatch/gsub of the string table on top of the stack by
   versions whose matcher checks the budget (lpattern.c). */
void orch_lapi_pattern_inject(lua_State *L);

/* Number of the generation the calling state was built from. */
long orch_lapi_generation(lua_State *L);
/* Code hash (40 hex digits) of the generation the calling state was built from. */
const char *orch_lapi_code_hash(lua_State *L);
/* [-0, +1] "file:line: " of the innermost product-script frame on the stack
   (else the innermost Lua frame, else ""). */
void orch_lapi_author_where(lua_State *L);
