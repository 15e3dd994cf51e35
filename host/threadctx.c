/* threadctx.c - per-thread database connection and Lua state, freed together at shutdown. */
#include "orch.h"

#include "gen.h"
#include "log.h"
#include "threadctx.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct orch_threadctx {
  orch_db *db;
  orch_lua *lua;
  orch_threadctx *next; /* all contexts, for shutdown */
};

static const orch_config *config;
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static orch_threadctx *all;
static _Thread_local orch_threadctx *mine;

void orch_threadctx_setup(const orch_config *cfg) {
  config = cfg;
}

orch_threadctx *orch_threadctx_get(void) {
  if (mine) return mine;
  orch_threadctx *tc = orch_xcalloc(1, sizeof *tc);
  tc->db = orch_db_new(config ? config->database_uri : NULL);
  pthread_mutex_lock(&all_lock);
  tc->next = all;
  all = tc;
  pthread_mutex_unlock(&all_lock);
  mine = tc;
  return tc;
}

orch_db *orch_threadctx_db(orch_threadctx *tc) {
  return tc->db;
}

orch_db *orch_threadctx_thread_db(void) {
  return orch_threadctx_get()->db;
}

orch_lua *orch_threadctx_lua(orch_threadctx *tc, orch_error *err) {
  long current = orch_gen_current_number();
  if (tc->lua && orch_lua_generation(tc->lua) == current) return tc->lua;
  /* Step results of this state are still waiting for their commit: swap later. */
  if (orch_lua_busy(tc->lua)) return tc->lua;
  orch_gen *g = orch_gen_current();
  if (!g) {
    orch_error_set(err, ORCH_ECONFIG, "no scripts loaded");
    return tc->lua;
  }
  orch_lua_limits lim = {config ? config->lua_memory : 0, config ? config->lua_timeout_ms : 0};
  orch_errlist errors = {0};
  orch_lua *fresh = NULL;
  int rc = orch_lua_new(&fresh, g, &lim, &errors);
  orch_gen_unref(g);
  if (rc != ORCH_OK) {
    /* The generation was validated before it was published; keep serving the old state. */
    for (size_t i = 0; i < errors.n; i++) {
      char *msg = orch_error_format(&errors.items[i]);
      LOG_ERROR("lua", "rebuilding a thread's Lua state failed: %s", msg);
      free(msg);
    }
    orch_error_set(err, ORCH_ELUA, "cannot build a Lua state for the current scripts");
    orch_errlist_free(&errors);
    return tc->lua;
  }
  orch_lua_free(tc->lua);
  orch_lua_set_db(fresh, tc->db);
  tc->lua = fresh;
  return fresh;
}

void orch_threadctx_shutdown(void) {
  pthread_mutex_lock(&all_lock);
  orch_threadctx *tc = all;
  all = NULL;
  pthread_mutex_unlock(&all_lock);
  while (tc) {
    orch_threadctx *next = tc->next;
    orch_lua_free(tc->lua);
    orch_db_free(tc->db);
    free(tc);
    tc = next;
  }
  mine = NULL;
}

int orch_threadctx_begin_command(const orch_config *cfg) {
  if (!cfg->database_uri || !*cfg->database_uri) {
    fprintf(stderr, "orchestrator: DATABASE_URI is not set (or pass --database URI)\n");
    return 2;
  }
  orch_error err = ORCH_ERROR_INIT;
  orch_gen *g = NULL;
  if (orch_gen_load(&g, cfg->lua_dir, cfg->products_dir, &err) != ORCH_OK) {
    fprintf(stderr, "orchestrator: %s\n", err.message);
    orch_error_clear(&err);
    return 1;
  }
  orch_gen_publish(g);
  orch_gen_unref(g);
  orch_threadctx_setup(cfg);
  return 0;
}

void orch_threadctx_end_command(void) {
  orch_threadctx_shutdown();
  orch_gen_shutdown();
}
