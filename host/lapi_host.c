/*
 * lapi_host.c - orch._host: what the core ruleset asks of the host itself:
 * reload the scripts, describe the current generation, and which generation
 * this state runs. Not for product scripts (the leading underscore).
 */
#include "orch.h"

#include "events.h"
#include "gen.h"
#include "lapi.h"
#include "lhost.h"
#include "log.h"
#include "metrics.h"
#include "sched.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

static const orch_lua_host_services *services;

void orch_lua_install_host_services(const orch_lua_host_services *s) {
  services = s;
}

static const orch_config *host_config(void) {
  return services ? services->config() : NULL;
}

/* [-0, +1] Push a malloc'd text and free it. */
static void push_owned(lua_State *L, char *text) {
  lua_pushstring(L, text ? text : "{}");
  free(text);
}

/* The route whose handler may reload (POST /api/settings/reload). */
#define RELOAD_ROUTE "settings.reload"

/* orch._host.reload() -> report JSON text (see reload.h), or nil and the milliseconds to
   wait when the previous API reload started less than ORCH_RELOAD_MIN_INTERVAL_MS ago.
   Only in a request of the admin reload route: never from a step, a load, or another
   handler. */
static int l_host_reload(lua_State *L) {
  orch_lapi_check_context(L, ORCH_CTX_REQUEST, "orch._host.reload");
  const char *route = orch_lapi_ctx(L)->route;
  if (!route || strcmp(route, RELOAD_ROUTE) != 0)
    return orch_lapi_error(L, "orch._host.reload is only available to the %s route", RELOAD_ROUTE);
  if (!services) return orch_lapi_error(L, "orch._host.reload: this host cannot reload");
  long wait_ms = services->reload_wait_ms();
  if (wait_ms > 0) {
    lua_pushnil(L);
    lua_pushinteger(L, wait_ms);
    return 2;
  }
  char *report = NULL;
  services->reload(&report);
  push_owned(L, report);
  return 1;
}

/* orch._host.status() -> JSON text of the current generation and the last reload error. */
static int l_host_status(lua_State *L) {
  push_owned(L, services ? services->status_json() : NULL);
  return 1;
}

/* orch._host.generation() -> the number of the generation this state was built from. */
static int l_host_generation(lua_State *L) {
  lua_pushinteger(L, orch_lapi_generation(L));
  return 1;
}

/* orch._host.code_hash() -> the code hash of that generation (process_steps.commit_hash). */
static int l_host_code_hash(lua_State *L) {
  lua_pushstring(L, orch_lapi_code_hash(L));
  return 1;
}

/* orch._host.author_where() -> "file:line: " of the product script line that called into the
   core ruleset (the innermost product-script frame), for definition and API-misuse errors. */
static int l_host_author_where(lua_State *L) {
  orch_lapi_author_where(L);
  return 1;
}

/*
 * orch._host.emit(type [, id]): queue a cache invalidation for the UI's
 * WebSocket (events.h; batched, so call it after the change committed).
 */
static int l_host_emit(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  const char *id = luaL_optstring(L, 2, NULL);
  if (orch_events_emit(type, id) != ORCH_OK)
    return orch_lapi_error(L, "orch._host.emit: unknown event %s %s", type, id ? id : "");
  return 0;
}

/* orch._host.folders() -> lua_dir, products_dir as script paths (chunk names) show them. */
static int l_host_folders(lua_State *L) {
  const orch_config *cfg = host_config();
  const char *dirs[2] = {cfg ? cfg->lua_dir : NULL, cfg ? cfg->products_dir : NULL};
  for (int i = 0; i < 2; i++) {
    char cwd[4096];
    if (dirs[i])
      lua_pushstring(L, orch_gen_display_dir(dirs[i], cwd, sizeof cwd));
    else
      lua_pushnil(L);
  }
  return 2;
}

/* orch._host.auth() -> {active = bool, write_group = string|nil} (docs/security.md). */
static int l_host_auth(lua_State *L) {
  const orch_config *cfg = host_config();
  lua_createtable(L, 0, 2);
  lua_pushboolean(L, cfg && cfg->oauth2_active);
  lua_setfield(L, -2, "active");
  if (cfg && cfg->auth_write_group && *cfg->auth_write_group) {
    lua_pushstring(L, cfg->auth_write_group);
    lua_setfield(L, -2, "write_group");
  }
  return 1;
}

/* orch._host.metrics() -> the host's counters and histograms as Prometheus text (metrics.h). */
static int l_host_metrics(lua_State *L) {
  push_owned(L, orch_metrics_render(orch_gen_current_number()));
  return 1;
}

/* orch._host.wake_workers(): work was queued and committed; wake the workers now (this host's
   at once, the other hosts' by a rate-limited NOTIFY: sched.h). Best effort: a failure is
   logged, and the workers find the work at their next poll anyway. */
static int l_host_wake_workers(lua_State *L) {
  orch_db *db = orch_lapi_ctx(L)->db;
  orch_error err = ORCH_ERROR_INIT;
  if (db && orch_sched_notify(db, &err) != ORCH_OK)
    LOG_WARN("sched", "cannot notify the other hosts of new work: %s",
             err.message ? err.message : "unknown error");
  orch_error_clear(&err);
  return 0;
}

static const luaL_Reg host_funcs[] = {
    {"auth", l_host_auth},
    {"folders", l_host_folders},
    {"metrics", l_host_metrics},
    {"emit", l_host_emit},
    {"reload", l_host_reload},
    {"wake_workers", l_host_wake_workers},
    {"status", l_host_status},
    {"generation", l_host_generation},
    {"code_hash", l_host_code_hash},
    {"author_where", l_host_author_where},
    {NULL, NULL},
};

void orch_lapi_host_inject(lua_State *L) {
  luaL_newlib(L, host_funcs);
  lua_setfield(L, -2, "_host");
}
