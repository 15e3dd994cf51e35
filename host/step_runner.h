/*
 * step_runner.h - the engine's runner (engine.h) backed by the workflows in
 * Lua: each call runs on the calling worker thread's own Lua state and
 * database connection (threadctx.h).
 */
#pragma once

#include "orch.h"

#include "engine.h"
#include "lhost.h"

/* The runner vtable (static; ud unused). */
const orch_step_runner *orch_step_runner_lua(void);

/*
 * The Lua half, on a given state (tests call it directly). run:
 * require("orch.runner").run(job) with no transaction open; fills res (strings
 * malloc'd, state as JSON) and keeps the Lua result for persist in res->opaque.
 * persist: runner.persist(result) inside the engine's transaction. done:
 * releases res->opaque (always called once per run that returned ORCH_OK).
 * While results are outstanding the state is busy (orch_lua_busy).
 */
int orch_lua_run_step(orch_lua *lh, const orch_step_job *job, orch_step_result *res,
                      orch_error *err) ORCH_MUSTCHECK;
int orch_lua_persist_step(orch_step_result *res, orch_error *err) ORCH_MUSTCHECK;
void orch_lua_step_done(orch_step_result *res);
