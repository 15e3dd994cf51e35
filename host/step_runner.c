/*
 * step_runner.c - the engine's runner vtable over the worker thread's Lua state: the step
 * bridge (orch.runner.run / persist, results kept in the registry until done) and the vtable.
 */
#include "orch.h"

#include "lapi.h"
#include "lhost.h"
#include "log.h"
#include "lsandbox.h"
#include "client.h"
#include "step_runner.h"
#include "threadctx.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

/* res->opaque of a step run by Lua: the state and a registry reference to the result table. */
typedef struct step_box {
  orch_lua *lh;
  int ref;
} step_box;

static char *dup_field(lua_State *L, int t, const char *name) {
  char *s = NULL;
  if (lua_getfield(L, t, name) == LUA_TSTRING) s = orch_strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  return s;
}

static const struct {
  const char *name;
  orch_step_status status;
} step_statuses[] = {
    {"success", ORCH_STEP_SUCCESS},
    {"skipped", ORCH_STEP_SKIPPED},
    {"suspend", ORCH_STEP_SUSPEND},
    {"waiting", ORCH_STEP_WAITING},
    {"awaiting_callback", ORCH_STEP_AWAITING_CALLBACK},
    {"abort", ORCH_STEP_ABORT},
    {"failed", ORCH_STEP_FAILED},
    {"complete", ORCH_STEP_COMPLETE},
};

typedef struct run_args {
  const orch_step_job *job;
  orch_step_result *res;
} run_args;

/* [-0, +1] Protected: run the step and translate the result table into res; leaves a
   registry reference to the result table (kept for persist). */
static int run_step_protected(lua_State *L) {
  const run_args *a = lua_touserdata(L, 1);
  const orch_step_job *job = a->job;
  orch_step_result *res = a->res;
  orch_sandbox_require(L, "orch.json");
  int json = lua_gettop(L);
  orch_sandbox_require(L, "orch.runner");
  lua_getfield(L, -1, "run");
  lua_createtable(L, 0, 8); /* job */
  lua_pushstring(L, job->pid);
  lua_setfield(L, -2, "process_id");
  lua_pushstring(L, job->workflow);
  lua_setfield(L, -2, "workflow_name");
  lua_pushinteger(L, job->step_index + 1); /* Lua lists count from 1 */
  lua_setfield(L, -2, "step_index");
  lua_pushinteger(L, job->attempt);
  lua_setfield(L, -2, "attempt");
  lua_pushinteger(L, job->generation);
  lua_setfield(L, -2, "generation");
  if (job->created_by) {
    lua_pushstring(L, job->created_by);
    lua_setfield(L, -2, "created_by");
  }
  lua_getfield(L, json, "decode");
  lua_pushstring(L, job->state ? job->state : "{}");
  lua_call(L, 1, 1);
  lua_setfield(L, -2, "state");
  lua_call(L, 1, 1); /* result */
  int r = lua_gettop(L);
  luaL_checktype(L, r, LUA_TTABLE);
  const char *status = (lua_getfield(L, r, "status"), lua_tostring(L, -1));
  int found = 0;
  for (size_t i = 0; status && i < ORCH_ARRAY_LEN(step_statuses); i++)
    if (!strcmp(status, step_statuses[i].name)) {
      res->status = step_statuses[i].status;
      found = 1;
    }
  if (!found)
    return luaL_error(L, "runner returned an unknown step status '%s'", status ? status : "nil");
  lua_pop(L, 1);
  res->step_name = dup_field(L, r, "step_name");
  res->failed_reason = dup_field(L, r, "failed_reason");
  res->traceback = dup_field(L, r, "traceback");
  res->assignee = dup_field(L, r, "assignee");
  res->process_status = dup_field(L, r, "process_status");
  lua_getfield(L, r, "next_index");
  res->next_step_index = (int)luaL_optinteger(L, -1, job->step_index + 1) - 1;
  lua_getfield(L, r, "continue");
  res->continue_now = lua_toboolean(L, -1);
  lua_getfield(L, r, "replace_last");
  res->replace_last = lua_toboolean(L, -1);
  lua_getfield(L, r, "retry_after");
  res->retry_delay_s = (double)luaL_optnumber(L, -1, 0);
  lua_pop(L, 4);
  /* state and log_state as JSON; most steps log the state itself: encode it once. */
  lua_getfield(L, r, "state");
  lua_getfield(L, r, "log_state");
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  static const char *const encoded[] = {"state", "log_state"};
  for (int i = 0; i < 2; i++) {
    if (i == 1 && same) {
      res->log_state = res->state ? orch_strdup(res->state) : NULL;
      break;
    }
    lua_getfield(L, json, "encode");
    if (lua_getfield(L, r, encoded[i]) == LUA_TNIL) {
      lua_pop(L, 2);
      continue;
    }
    lua_call(L, 1, 1);
    char *text = orch_strdup(lua_tostring(L, -1));
    if (i == 0)
      res->state = text;
    else
      res->log_state = text;
    lua_pop(L, 1);
  }
  /* The result table is kept for persist only when the step left effects to apply there. */
  int effects = lua_getfield(L, r, "effects") == LUA_TTABLE && lua_rawlen(L, -1) > 0;
  lua_pop(L, 1);
  if (!effects) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, r);
  lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
  return 1;
}

int orch_lua_run_step(orch_lua *lh, const orch_step_job *job, orch_step_result *res,
                      orch_error *err) {
  lua_State *L = orch_lua_state(lh);
  int top = lua_gettop(L);
  run_args a = {job, res};
  int rc = orch_lua_call(lh, ORCH_CTX_STEP, run_step_protected, &a, 1, err);
  if (rc != ORCH_OK) {
    orch_step_result_clear(res);
    lua_settop(L, top);
    return rc;
  }
  res->generation = orch_lua_gen(lh)->number;
  res->code_hash = orch_strdup(orch_lua_gen(lh)->code_hash);
  if (!lua_isnil(L, -1)) { /* effects to apply in persist: keep the result (and the state) */
    step_box *box = orch_xcalloc(1, sizeof *box);
    box->lh = lh;
    box->ref = (int)lua_tointeger(L, -1); /* referenced inside the protected call */
    res->opaque = box;
    orch_lua_hold(lh, +1);
  }
  lua_settop(L, top);
  return ORCH_OK;
}

static int persist_protected(lua_State *L) {
  int ref = *(const int *)lua_touserdata(L, 1);
  orch_sandbox_require(L, "orch.runner");
  lua_getfield(L, -1, "persist");
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_call(L, 1, 0);
  return 0;
}

int orch_lua_persist_step(orch_step_result *res, orch_error *err) {
  step_box *box = res->opaque;
  if (!box) return ORCH_OK;
  lua_State *L = orch_lua_state(box->lh);
  int top = lua_gettop(L);
  int rc = orch_lua_call(box->lh, ORCH_CTX_PERSIST, persist_protected, &box->ref, 0, err);
  lua_settop(L, top);
  return rc;
}

static int unref_protected(lua_State *L) {
  luaL_unref(L, LUA_REGISTRYINDEX, (int)lua_tointeger(L, 1));
  return 0;
}

void orch_lua_step_done(orch_step_result *res) {
  step_box *box = res->opaque;
  if (!box) return;
  lua_State *L = orch_lua_state(box->lh);
  lua_pushcfunction(L, unref_protected);
  lua_pushinteger(L, box->ref);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
  orch_lua_hold(box->lh, -1);
  free(box);
  res->opaque = NULL;
}

static int run(void *ud, const orch_step_job *job, orch_step_result *res) {
  ORCH_UNUSED(ud);
  orch_threadctx *tc = orch_threadctx_get();
  orch_error err = ORCH_ERROR_INIT;
  orch_lua *lh = orch_threadctx_lua(tc, &err);
  orch_error_clear(&err);
  if (!lh) return ORCH_ELUA;
  orch_client_set_deadline(job->deadline_ns); /* outbound calls end by the step's limit */
  int rc = orch_lua_run_step(lh, job, res, &err);
  orch_client_set_deadline(0);
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
