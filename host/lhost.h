/*
 * lhost.h - the Lua bridge: the only module (with lsandbox.c and lapi*.c)
 * that sees a lua_State.
 *
 * An orch_lua is one sandboxed Lua state built from one generation (gen.h):
 * the core ruleset of lua/ and every product script, loaded inside protected
 * calls. It belongs to one thread at a time. Every call into Lua goes through
 * one wrapper that installs a traceback message handler, a time budget (a
 * count hook that pcall inside the script cannot swallow) and relies on the
 * state's memory cap (a counting allocator); failures come back as orch_error
 * with message, file, line and traceback.
 */
#pragma once

#include "orch.h"

#include "buf.h"
#include "config.h"
#include "db.h"
#include "engine.h"
#include "gen.h"
#include "http.h"

typedef struct orch_lua orch_lua;

typedef struct orch_lua_limits {
  size_t memory;   /* bytes per state; 0 = unlimited */
  long timeout_ms; /* per call into Lua; 0 = unlimited */
} orch_lua_limits;

/*
 * What orch._host asks of the host beyond the state itself. The reload module installs
 * them once at setup (before any state is built), so that the Lua API calls no module
 * above it; until then orch._host.reload fails, status is {} and config is NULL.
 */
typedef struct orch_lua_host_services {
  int (*reload)(char **report);       /* reload now (trigger "api"), report JSON (malloc'd) */
  long (*reload_wait_ms)(void);       /* 0 when an API reload may start now (slot taken) */
  char *(*status_json)(void);         /* the current generation and last error (malloc'd) */
  const orch_config *(*config)(void); /* the configuration (borrowed) */
} orch_lua_host_services;

/* Install the services (borrowed: static storage; lapi_host.c). */
void orch_lua_install_host_services(const orch_lua_host_services *services);

/*
 * Build a state from generation g (a reference is taken): sandbox, orch API,
 * core ruleset, then every product script in path order. Errors of single
 * files are appended to `errors` and loading goes on, so that `check` can
 * report them all; the call fails (and *out is NULL) if anything failed.
 */
int orch_lua_new(orch_lua **out, orch_gen *g, const orch_lua_limits *lim,
                 orch_errlist *errors) ORCH_MUSTCHECK;
void orch_lua_free(orch_lua *lh); /* NULL is a no-op */

/*
 * The route table declared by the state's scripts (lua/orch/api/routes.lua),
 * read when the state was built. Borrowed: take a reference
 * (orch_route_table_ref) to keep it beyond the state.
 */
orch_route_table *orch_lua_routes(const orch_lua *lh);

/* Number of the generation the state was built from. */
long orch_lua_generation(const orch_lua *lh);
/* Bytes currently allocated by the state. */
size_t orch_lua_memory(const orch_lua *lh);

/* The database connection orch.db uses (borrowed; NULL = no database). */
void orch_lua_set_db(orch_lua *lh, orch_db *db);

/*
 * Call require(module)[func](arg) where arg is decoded from arg_json (NULL =
 * nil) and the result is encoded with orch.json into *result_json (malloc'd;
 * pass NULL to drop it). Errors come back as err with file, line and
 * traceback. Used for the host's calls into the core ruleset.
 */
int orch_lua_invoke(orch_lua *lh, const char *module, const char *func, const char *arg_json,
                    char **result_json, orch_error *err) ORCH_MUSTCHECK;

/*
 * For the rest of the Lua bridge (step_runner.c): one protected call of body(L) under the
 * state's budget in call context `phase` (lapi.h's ORCH_CTX_*), with ud as a light userdata
 * argument; body leaves nres results on the stack (on failure nothing, err filled).
 */
typedef struct lua_State lua_State;
int orch_lua_call(orch_lua *lh, unsigned phase, int (*body)(lua_State *L), void *ud, int nres,
                  orch_error *err) ORCH_MUSTCHECK;
lua_State *orch_lua_state(orch_lua *lh);
const orch_gen *orch_lua_gen(const orch_lua *lh);
/* Count results that still reference the state (+1 when kept, -1 when released): while any
   is outstanding the state is "busy" and must not be replaced (orch_lua_busy). */
void orch_lua_hold(orch_lua *lh, int delta);
int orch_lua_busy(const orch_lua *lh);

/*
 * Run the route's Lua handler for a request and fill resp. Lua errors become
 * a 500 problem detail (logged with the traceback); problem errors raised by
 * handlers become their own status.
 */
void orch_lua_handle(orch_lua *lh, const orch_http_request *req, orch_http_response *resp);
