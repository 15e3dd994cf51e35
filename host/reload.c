/* reload.c - build, validate, sync and publish generations of scripts; one at a time. */
#include "orch.h"

#include "buf.h"
#include "db.h"
#include "gen.h"
#include "lhost.h"
#include "log.h"
#include "metrics.h"
#include "reload.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <time.h>

static const orch_config *config;
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static char
    *last_error; /* JSON array of the last failed reload's errors, or NULL; under the lock */
static char
    *last_error_info; /* JSON object {trigger, at, message, errors}, or NULL; under the lock */

const orch_config *orch_reload_config(void) {
  return config;
}

void orch_reload_setup(const orch_config *cfg) {
  /* orch._host reaches reload and status through this table, not by calling up. */
  static const orch_lua_host_services services = {
      .reload = orch_reload,
      .reload_wait_ms = orch_reload_api_wait_ms,
      .status_json = orch_reload_status_json,
      .config = orch_reload_config,
  };
  config = cfg;
  orch_lua_install_host_services(&services);
}

static _Atomic long long last_api_reload_ns; /* when the last API reload started */

long orch_reload_api_wait_ms(void) {
  long min_ms = config ? config->reload_min_interval_ms : 0;
  long long now = orch_now_ns();
  long long last = atomic_load(&last_api_reload_ns);
  for (;;) {
    long long wait_ns = last && min_ms > 0 ? last + min_ms * 1000000LL - now : 0;
    if (wait_ns > 0) return (long)(wait_ns / 1000000LL) + 1;
    if (atomic_compare_exchange_weak(&last_api_reload_ns, &last, now)) return 0;
  }
}

static void errors_json(orch_buf *b, const orch_errlist *errors) {
  orch_buf_puts(b, "[");
  for (size_t i = 0; i < errors->n; i++) {
    const orch_error *e = &errors->items[i];
    orch_buf_puts(b, i ? ",{\"file\":" : "{\"file\":");
    orch_buf_json_cstr(b, e->file);
    orch_buf_printf(b, ",\"line\":%d,\"message\":", e->line);
    orch_buf_json_cstr(b, e->message);
    orch_buf_puts(b, "}");
  }
  orch_buf_puts(b, "]");
}

/* Paths of `now` that are new or changed compared with `before`, and those of `before` now gone. */
static void diff_json(orch_buf *b, const orch_gen *before, const orch_gen *now) {
  const char *names[] = {"added", "changed", "removed"};
  for (int kind = 0; kind < 3; kind++) {
    orch_buf_printf(b, ",\"%s\":[", names[kind]);
    int first = 1;
    const orch_gen *a = kind == 2 ? before : now, *other = kind == 2 ? now : before;
    for (size_t i = 0; a && i < a->count; i++) {
      const orch_script *s = &a->scripts[i], *o = NULL;
      for (size_t j = 0; other && j < other->count; j++)
        if (!strcmp(other->scripts[j].path, s->path)) o = &other->scripts[j];
      int listed = kind == 0 ? o == NULL : kind == 1 ? (o && strcmp(o->sha256, s->sha256)) : !o;
      if (!listed) continue;
      if (!first) orch_buf_puts(b, ",");
      orch_buf_json_cstr(b, s->path);
      first = 0;
    }
    orch_buf_puts(b, "]");
  }
}

/* Let the catalogue and the workflow registry follow the new definitions. */
static int sync_database(orch_lua *lh, orch_buf *report, orch_errlist *errors) {
  orch_error err = ORCH_ERROR_INIT;
  char *catalog = NULL, *workflows = NULL;
  /* {"ok", "text", "message"}: ok false = the definitions need `catalog apply --allow-destructive`
     first (a field type that stored values do not convert to); nothing was applied then. */
  int rc = orch_lua_invoke(lh, "orch.model.catalog", "reload",
                           "{\"mode\":\"sync\",\"allow_destructive\":false}", &catalog, &err);
  int refused = rc == ORCH_OK && catalog && strstr(catalog, "\"ok\":false");
  if (rc == ORCH_OK && !refused)
    rc = orch_lua_invoke(lh, "orch.workflow_sync", "apply", NULL, &workflows, &err);
  if (rc != ORCH_OK) {
    orch_error_prefix(&err, "database sync");
    orch_errlist_add(errors, &err);
  } else {
    orch_buf_printf(report, ",\"catalog\":%s,\"workflows\":%s", catalog ? catalog : "null",
                    workflows ? workflows : "null");
    if (refused) {
      orch_error e = ORCH_ERROR_INIT;
      orch_error_set(&e, ORCH_ELUA,
                     "the catalogue has destructive changes that a reload does not make "
                     "(run `orchestrator catalog plan`, then `catalog apply --allow-destructive`)");
      orch_errlist_add(errors, &e);
      rc = ORCH_ELUA;
    }
  }
  free(catalog);
  free(workflows);
  return rc;
}

int orch_reload(char **report) {
  return orch_reload_from("api", report);
}

int orch_reload_from(const char *trigger, char **report) {
  if (report) *report = NULL;
  if (!config) {
    if (report)
      *report = orch_strdup("{\"ok\":false,\"errors\":[{\"file\":null,\"line\":0,"
                            "\"message\":\"reloading is not available in this command\"}]}");
    return ORCH_ECONFIG;
  }
  pthread_mutex_lock(&reload_lock);
  long long started = orch_now_ns();
  orch_errlist errors = {0};
  orch_error err = ORCH_ERROR_INIT;
  orch_buf b = ORCH_BUF_INIT;
  orch_gen *g = NULL, *before = orch_gen_current();
  orch_lua *lh = NULL;
  orch_db *db = NULL;
  orch_buf_puts(&b, "{");
  if (orch_gen_load(&g, config->lua_dir, config->products_dir, &err) != ORCH_OK) {
    orch_errlist_add(&errors, &err);
  } else {
    orch_lua_limits lim = {config->lua_memory, config->lua_timeout_ms};
    if (orch_lua_new(&lh, g, &lim, &errors) == ORCH_OK && config->database_uri &&
        *config->database_uri) {
      db = orch_db_new(config->database_uri);
      orch_lua_set_db(lh, db);
      orch_buf_puts(&b, "\"synced\":true");
      sync_database(lh, &b, &errors);
    } else {
      orch_buf_puts(&b, "\"synced\":false");
    }
  }
  int ok = errors.n == 0;
  orch_metrics_reload(ok);
  if (ok) orch_gen_publish(g); /* numbers the generation: a refused one uses up no number */
  orch_buf_printf(&b, ",\"ok\":%s,\"generation\":%ld", ok ? "true" : "false",
                  ok ? g->number : (before ? before->number : 0));
  if (g) diff_json(&b, before, g);
  orch_buf_puts(&b, ",\"errors\":");
  orch_buf e = ORCH_BUF_INIT;
  errors_json(&e, &errors);
  orch_buf_puts(&b, e.data);
  orch_buf_printf(&b, ",\"milliseconds\":%.1f}", (double)(orch_now_ns() - started) / 1e6);
  for (size_t i = 0; i < errors.n; i++) {
    char *msg = orch_error_format(&errors.items[i]);
    LOG_ERROR("reload", "%s", msg);
    free(msg);
  }
  if (ok) {
    LOG_INFO("reload", "generation %ld published (%zu scripts)", g->number, g->count);
    free(last_error);
    last_error = NULL;
    free(last_error_info);
    last_error_info = NULL;
    orch_buf_free(&e);
  } else {
    LOG_ERROR("reload", "reload refused (%s); generation %ld keeps serving", trigger,
              before ? before->number : 0);
    char when[40];
    struct tm tm;
    time_t now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    orch_buf info = ORCH_BUF_INIT;
    orch_buf_puts(&info, "{\"trigger\":");
    orch_buf_json_cstr(&info, trigger);
    orch_buf_printf(&info, ",\"at\":\"%s\",\"message\":", when);
    char *first = errors.n ? orch_error_format(&errors.items[0]) : NULL;
    orch_buf_json_cstr(&info, first);
    free(first);
    orch_buf_printf(&info, ",\"errors\":%s}", e.data ? e.data : "[]");
    free(last_error_info);
    last_error_info = orch_buf_take(&info, NULL);
    free(last_error);
    last_error = orch_buf_take(&e, NULL);
  }
  orch_lua_free(lh);
  orch_db_free(db);
  orch_gen_unref(g);
  orch_gen_unref(before);
  orch_errlist_free(&errors);
  pthread_mutex_unlock(&reload_lock);
  char *text = orch_buf_take(&b, NULL);
  if (report)
    *report = text;
  else
    free(text);
  return ok ? ORCH_OK : ORCH_ELUA;
}

char *orch_reload_status_json(void) {
  orch_buf b = ORCH_BUF_INIT;
  orch_gen *g = orch_gen_current();
  pthread_mutex_lock(&reload_lock);
  if (!g) {
    orch_buf_puts(&b, "{\"generation\":null");
  } else {
    /* loaded_at in epoch seconds, as every timestamp of the REST API (docs/rest.md) */
    orch_buf_printf(&b, "{\"generation\":%ld,\"code_hash\":\"%s\",\"loaded_at\":%lld,\"files\":[",
                    g->number, g->code_hash, (long long)g->loaded_at);
    for (size_t i = 0; i < g->count; i++) {
      /* no server paths: the file inside its folder (products or lua) */
      orch_buf_puts(&b, i ? ",{\"path\":" : "{\"path\":");
      orch_buf_json_cstr(&b, g->scripts[i].path + g->scripts[i].rel_off);
      orch_buf_printf(&b, ",\"folder\":\"%s\",\"sha256\":\"%s\"}",
                      g->scripts[i].is_product ? "products" : "lua", g->scripts[i].sha256);
    }
    orch_buf_puts(&b, "]");
  }
  orch_buf_printf(&b, ",\"last_reload_errors\":%s,\"last_error\":%s}",
                  last_error ? last_error : "null", last_error_info ? last_error_info : "null");
  pthread_mutex_unlock(&reload_lock);
  orch_gen_unref(g);
  return orch_buf_take(&b, NULL);
}
