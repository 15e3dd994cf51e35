/* step_runner.c - engine runner vtable over the worker thread's Lua state. */
#include "orch.h"

#include "lhost.h"
#include "log.h"
#include "outbound.h"
#include "step_runner.h"
#include "threadctx.h"

#include <stdlib.h>

static int run(void *ud, const orch_step_job *job, orch_step_result *res) {
  ORCH_UNUSED(ud);
  orch_threadctx *tc = orch_threadctx_get();
  orch_error err = ORCH_ERROR_INIT;
  orch_lua *lh = orch_threadctx_lua(tc, &err);
  orch_error_clear(&err);
  if (!lh) return ORCH_ELUA;
  orch_outbound_set_deadline(job->deadline_ns); /* outbound calls end by the step's limit */
  int rc = orch_lua_run_step(lh, job, res, &err);
  orch_outbound_set_deadline(0);
  if (rc != ORCH_OK) {
    /* The runner itself broke (not the step): record the step as failed with the reason. */
    char *where = orch_error_format(&err);
    LOG_ERROR("runner", "process %s step %d: %s", job->pid, job->step_index, where);
    res->status = ORCH_STEP_FAILED;
    res->step_name = orch_strdup("Unknown");
    res->failed_reason = where;
    res->traceback = err.traceback ? orch_strdup(err.traceback) : NULL;
    res->next_step_index = job->step_index;
    orch_error_clear(&err);
  }
  return ORCH_OK;
}

static int persist(void *ud, orch_db *db, const orch_step_job *job, orch_step_result *res,
                   orch_error *err) {
  ORCH_UNUSED(ud);
  ORCH_UNUSED(db); /* the same connection the thread's Lua state uses for orch.db */
  ORCH_UNUSED(job);
  return orch_lua_persist_step(res, err);
}

static void done(void *ud, orch_step_result *res, int committed) {
  ORCH_UNUSED(ud);
  ORCH_UNUSED(committed);
  orch_lua_step_done(res);
}

static const orch_step_runner lua_runner = {run, persist, done, NULL};

const orch_step_runner *orch_step_runner_lua(void) {
  return &lua_runner;
}
