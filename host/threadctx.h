/*
 * threadctx.h - what each worker or HTTP thread owns: one database connection
 * and one Lua state of the current generation. Nothing else is shared between
 * threads but immutable configuration, the generation pointer and atomics.
 *
 * Contexts are created on a thread's first use and all freed together by
 * orch_threadctx_shutdown() after the threads have stopped (HTTP threads are
 * owned by libmicrohttpd, so they cannot free their own).
 */
#pragma once

#include "orch.h"

#include "config.h"
#include "db.h"
#include "lhost.h"

typedef struct orch_threadctx orch_threadctx;

/* Remember the configuration (borrowed; must outlive every context). */
void orch_threadctx_setup(const orch_config *cfg);
/* The calling thread's context, created on first use. */
orch_threadctx *orch_threadctx_get(void);
orch_db *orch_threadctx_db(orch_threadctx *tc);
/* The calling thread's connection (what the scheduler's workers are given: sched.h). */
orch_db *orch_threadctx_thread_db(void);
/*
 * The thread's Lua state, rebuilt first if a newer generation was published.
 * NULL (with err) if no generation is published or the build failed.
 */
orch_lua *orch_threadctx_lua(orch_threadctx *tc, orch_error *err);
/* Free every context (call after all threads that used one have stopped). */
void orch_threadctx_shutdown(void);

/*
 * For one-shot commands (catalog, schedule): check DATABASE_URI, load and publish a
 * generation of the scripts and set up the calling thread's context. Returns 0, or the exit
 * status to end with (the reason printed on stderr). End with orch_threadctx_end_command().
 */
int orch_threadctx_begin_command(const orch_config *cfg);
void orch_threadctx_end_command(void);
