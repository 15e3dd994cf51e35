/*
 * step_runner.h - the engine's runner (engine.h) backed by the workflows in
 * Lua: each call runs on the calling worker thread's own Lua state and
 * database connection (threadctx.h). No Lua here; lhost does the Lua part.
 */
#pragma once

#include "orch.h"

#include "engine.h"

/* The runner vtable (static; ud unused). */
const orch_step_runner *orch_step_runner_lua(void);
