/*
 * lsandbox.h - the sandbox of the Lua bridge (private to lhost.c).
 *
 * Product code sees an allow-listed environment: no io, no debug, no package,
 * an os with only clock/date/time/difftime, load() for text chunks only, a
 * require() that resolves modules only inside the generation's scripts (lua/
 * and the products folder), and per-chunk environments whose reads of
 * undefined globals raise. Shared tables are read-only, products' `orch` has
 * no C halves, scripts cannot set __gc metamethods (docs/lua.md).
 */
#pragma once

#include "orch.h"

#include "gen.h"

#include <lua.h>

/*
 * [-0, +0, e] Open the allowed libraries and build the sandbox base table in
 * the registry. The `orch` API table must be on top of the stack; it becomes
 * the global `orch` of every chunk. Scripts are looked up in g (borrowed; must
 * outlive the state).
 */
void orch_sandbox_open(lua_State *L, const orch_gen *g);

/*
 * [-0, +0, e] Make `orch` and the tables below it (orch.uuid, orch.json, the standard
 * steps, constants...) read-only. Call once the core ruleset has built them, before
 * product scripts load.
 */
void orch_sandbox_seal(lua_State *L);

/* [-0, +1, e] require(module) from C: the module's value. */
void orch_sandbox_require(lua_State *L, const char *module);

/* [-0, +0] Drop the "being loaded" marks left by modules whose loading failed. */
void orch_sandbox_forget_failed(lua_State *L);
