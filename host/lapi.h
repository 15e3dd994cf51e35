/*
 * lapi.h - the `orch` module table exposed to Lua, built from one file per API
 * area (lapi_<area>.c), each with a luaL_Reg list and an inject function that
 * adds its functions to the table on top of the stack; and what the areas share
 * (lapi.c): the per-state context and budget, reached through lua_getextraspace.
 * Private to the Lua bridge.
 */
#pragma once

#include "orch.h"

#include "db.h"
#include "gen.h"

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

/*
 * What the API knows of a state: its context, its generation and its budget. The owner
 * (lhost.c's orch_lua) embeds it and attaches it to the state; lua_getextraspace points
 * at it. Fields are the owner's to set between calls, the budget's during one.
 */
typedef struct orch_lapi_state {
  lua_State *L;
  orch_lua_ctx ctx;
  const orch_gen *gen; /* borrowed: the owner holds a reference for the state's lifetime */
  /* memory accounting (the owner's allocator keeps mem_used; crossing mem_limit sets mem_over) */
  size_t mem_used, mem_limit;
  int mem_over;
  /* time budget of the running call */
  long timeout_ms;
  long long deadline_ns;
  const char *kill_reason; /* set once the budget is gone; sticky until the call ends */
  /* the watchdog's view (under its mutex): the running call's deadline and statement */
  long long watch_deadline_ns;
  PGcancel *cancel; /* the database statement in progress, if any (owned) */
  int watch_fired;
  struct orch_lapi_state *watch_next;
} orch_lapi_state;

/* Point L's extra space at s and put s under the watchdog (s->L = L, s->gen = g). */
void orch_lapi_attach(orch_lapi_state *s, lua_State *L, const orch_gen *g);
/* Take s off the watchdog's list (before lua_close). */
void orch_lapi_detach(orch_lapi_state *s);
orch_lapi_state *orch_lapi_state_of(lua_State *L);
/* Start the budget of one call (timeout_ms from now; the count hook and the watchdog armed)
   and end it (both disarmed; kill_reason is left for the caller to read and reset). */
void orch_lapi_budget_begin(orch_lapi_state *s);
void orch_lapi_budget_end(orch_lapi_state *s);

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

/* [-0, +1, m] The calling function's arguments as print shows them, separated by sep and
   prefixed with the caller's "file:line: " (print and orch.log). */
void orch_lapi_push_line(lua_State *L, char sep);

/* [-0, +0, e] Each adds its sub-table or functions to the table on top of the stack. */
void orch_lapi_log_inject(lua_State *L);
void orch_lapi_json_inject(lua_State *L);
void orch_lapi_time_inject(lua_State *L);
void orch_lapi_uuid_inject(lua_State *L);
void orch_lapi_db_inject(lua_State *L);
void orch_lapi_host_inject(lua_State *L);
void orch_lapi_client_inject(lua_State *L);

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
