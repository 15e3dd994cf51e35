/*
 * catalog.h - the catalogue follows the Lua definitions: `orchestrator catalog
 * plan|apply` and the additive sync `serve` runs at start-up. The work is done
 * by lua/orch/model/catalog.lua; this module gets a state with a database
 * connection on the calling thread and prints what it reports.
 */
#pragma once

#include "orch.h"

#include "config.h"

#include <stdio.h>

/*
 * Run the catalogue in `mode` ("plan", "apply" or "sync") on the current
 * generation (published) with the calling thread's context (threadctx must be
 * set up). The report goes to `out` (one line per change and a summary).
 * Returns ORCH_OK, or an error (err filled) when the plan could not be
 * computed or applying it was refused (*refused = 1 then).
 */
int orch_catalog_run(const char *mode, int allow_destructive, FILE *out, int *refused,
                     orch_error *err) ORCH_MUSTCHECK;

/* `orchestrator catalog plan|apply [--allow-destructive]`; returns the exit status. */
int orch_catalog_command(const orch_config *cfg, const char *sub, int allow_destructive);

/* The start-up sync of `serve` (ORCH_CATALOG_SYNC=apply|off); failures are logged, not fatal,
   except a refusal (a field type stored values do not convert to): then not ORCH_OK and serve
   stops. */
int orch_catalog_serve_sync(const orch_config *cfg);
