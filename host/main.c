/*
 * main.c - the `orchestrator` command: parse the subcommand and flags, bring
 * the modules up in order, run, and take them down in reverse order.
 */
#include "orch.h"

#include "auth.h"
#include "catalog.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "gen.h"
#include "http.h"
#include "lhost.h"
#include "log.h"
#include "migrate.h"
#include "outbound.h"
#include "reload.h"
#include "sched.h"
#include "step_runner.h"
#include "threadctx.h"
#include "watch.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: orchestrator <command> [flags]\n"
          "\n"
          "commands:\n"
          "  serve          run the HTTP API and the step workers (--workers 0: API only)\n"
          "  worker         run the step workers only (no HTTP)\n"
          "  db upgrade     apply pending SQL migrations\n"
          "  db status      list migrations and whether they are applied\n"
          "  catalog plan   show how the catalogue differs from the product definitions\n"
          "  catalog apply  apply it in one transaction (--allow-destructive: may lose data)\n"
          "  check          load lua/ and the products folder; report every error as file:line\n"
          "  version        print the version\n"
          "  help           this text\n"
          "\n"
          "flags (each overrides the environment variable next to it):\n%s",
          orch_config_flags_help());
}

/* Print every error as "file:line: message" on stderr. */
static void report_errors(const orch_errlist *errors) {
  for (size_t i = 0; i < errors->n; i++) {
    char *msg = orch_error_format(&errors->items[i]);
    fprintf(stderr, "%s\n", msg);
    if (errors->items[i].traceback && orch_log_get_level() <= ORCH_LOG_DEBUG)
      fprintf(stderr, "%s\n", errors->items[i].traceback);
    free(msg);
  }
}

/* Load the scripts into a new generation and prove that a state builds from it. */
static int load_generation(const orch_config *cfg, orch_gen **out, orch_errlist *errors) {
  orch_error err = ORCH_ERROR_INIT;
  orch_gen *g = NULL;
  if (orch_gen_load(&g, cfg->lua_dir, cfg->products_dir, &err) != ORCH_OK) {
    orch_errlist_add(errors, &err);
    return ORCH_EIO;
  }
  orch_lua_limits lim = {cfg->lua_memory, cfg->lua_timeout_ms};
  orch_lua *lh = NULL;
  int rc = orch_lua_new(&lh, g, &lim, errors);
  orch_lua_free(lh);
  if (rc != ORCH_OK) {
    orch_gen_unref(g);
    return rc;
  }
  *out = g;
  return ORCH_OK;
}

static int cmd_check(const orch_config *cfg) {
  orch_errlist errors = {0};
  orch_gen *g = NULL;
  int rc = load_generation(cfg, &g, &errors);
  if (rc != ORCH_OK) {
    report_errors(&errors);
    fprintf(stderr, "check failed: %zu error%s\n", errors.n, errors.n == 1 ? "" : "s");
    orch_errlist_free(&errors);
    return 1;
  }
  size_t products = 0;
  for (size_t i = 0; i < g->count; i++)
    products += (size_t)g->scripts[i].is_product;
  printf("ok: %zu core scripts, %zu product scripts\n", g->count - products, products);
  orch_gen_unref(g);
  return 0;
}

static int need_database(const orch_config *cfg) {
  if (cfg->database_uri && *cfg->database_uri) return 1;
  fprintf(stderr, "orchestrator: DATABASE_URI is not set (or pass --database URI)\n");
  return 0;
}

static int cmd_db(const orch_config *cfg, const char *sub) {
  if (!sub || (strcmp(sub, "upgrade") && strcmp(sub, "status"))) {
    fprintf(stderr, "usage: orchestrator db upgrade|status [flags]\n");
    return 2;
  }
  if (!need_database(cfg)) return 2;
  orch_db *db = orch_db_new(cfg->database_uri);
  orch_error err = ORCH_ERROR_INIT;
  int rc, pending = 0;
  if (!strcmp(sub, "upgrade"))
    rc = orch_migrate_upgrade(db, cfg->migrations_dir, stdout, &err);
  else
    rc = orch_migrate_status(db, cfg->migrations_dir, stdout, &pending, &err);
  orch_db_free(db);
  if (rc != ORCH_OK) {
    fprintf(stderr, "orchestrator: %s\n", err.message);
    orch_error_clear(&err);
    return 1;
  }
  return 0;
}

static void serve_dispatch(const orch_http_request *req, orch_http_response *resp, void *arg) {
  ORCH_UNUSED(arg);
  orch_threadctx *tc = orch_threadctx_get();
  orch_error err = ORCH_ERROR_INIT;
  orch_lua *lh = orch_threadctx_lua(tc, &err);
  if (!lh) {
    orch_http_problem(resp, 500, err.message ? err.message : "no Lua state");
    orch_error_clear(&err);
    return;
  }
  orch_error_clear(&err);
  orch_lua_handle(lh, req, resp);
}

static void warn_about_database(const orch_config *cfg) {
  orch_db *db = orch_db_new(cfg->database_uri);
  orch_error err = ORCH_ERROR_INIT;
  int pending = 0;
  if (orch_migrate_status(db, cfg->migrations_dir, NULL, &pending, &err) != ORCH_OK)
    LOG_WARN("serve", "database not usable yet: %s", err.message);
  else if (pending)
    LOG_WARN("serve", "%d migration%s pending: run `orchestrator db upgrade`", pending,
             pending == 1 ? "" : "s");
  orch_error_clear(&err);
  orch_db_free(db);
}

/* The workflows and products_workflows tables follow the Lua definitions
 * (lua/orch/workflow_sync.lua). */
static void sync_workflows(void) {
  orch_error err = ORCH_ERROR_INIT;
  orch_lua *lh = orch_threadctx_lua(orch_threadctx_get(), &err);
  char *changes = NULL;
  if (!lh || orch_lua_invoke(lh, "orch.workflow_sync", "apply", NULL, &changes, &err) != ORCH_OK) {
    char *msg = orch_error_format(&err);
    LOG_ERROR("workflows", "workflow registration failed: %s", msg);
    free(msg);
  } else {
    LOG_INFO("workflows", "registered: %s", changes);
  }
  free(changes);
  orch_error_clear(&err);
}

/* The UI's cache-invalidation events, shared with the other hosts (events.h). */
static void start_events(const orch_config *cfg) {
  orch_error err = ORCH_ERROR_INIT;
  if (orch_events_start(cfg->database_uri, &err) != ORCH_OK)
    LOG_WARN("events", "no live updates for the UI: %s", err.message);
  orch_error_clear(&err);
}

/*
 * What serve and worker share at start: signals taken synchronously by this
 * thread only (threads started later inherit the mask), the scripts loaded and
 * published, per-thread contexts, reloads and the events bus. Returns 0, or the
 * exit status to end with.
 */
static int start_host(const orch_config *cfg, sigset_t *set, const char *who) {
  if (!need_database(cfg)) return 2;
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, set, NULL);
  signal(SIGPIPE, SIG_IGN);
  orch_errlist errors = {0};
  orch_gen *g = NULL;
  if (load_generation(cfg, &g, &errors) != ORCH_OK) {
    report_errors(&errors);
    fprintf(stderr, "orchestrator: the scripts do not load; not starting\n");
    orch_errlist_free(&errors);
    return 1;
  }
  orch_gen_publish(g);
  LOG_INFO(who, "loaded generation %ld (%zu scripts)", g->number, g->count);
  orch_gen_unref(g);
  warn_about_database(cfg);
  orch_threadctx_setup(cfg);
  orch_reload_setup(cfg);
  start_events(cfg); /* the UI hears of this host's steps, on every host */
  return 0;
}

/* Until SIGINT or SIGTERM; SIGHUP reloads the scripts (reload.c). */
static void wait_for_stop(sigset_t *set, const char *who) {
  for (;;) {
    int sig = 0;
    if (sigwait(set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      orch_reload(NULL);
      continue;
    }
    LOG_INFO(who, "%s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return;
  }
}

/* 1 for an address only this machine reaches. */
static int is_loopback(const char *host) {
  return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
         !strcmp(host, "[::1]");
}

/*
 * Secure by default (docs/security.md): tokens checked when OAUTH2_ACTIVE is on;
 * with auth off, only a loopback address unless --insecure-public says otherwise.
 */
static int setup_auth(const orch_config *cfg) {
  orch_error err = ORCH_ERROR_INIT;
  if (orch_auth_setup(cfg, &err) != ORCH_OK) {
    fprintf(stderr, "orchestrator: %s\n", err.message);
    orch_error_clear(&err);
    return 2;
  }
  if (cfg->oauth2_active) {
    LOG_INFO("serve", "authentication on: bearer tokens from %s", cfg->oidc_conf_url);
  } else if (!is_loopback(cfg->http_host) && !cfg->insecure_public) {
    fprintf(
        stderr,
        "orchestrator: refusing to listen on %s with authentication off: set OAUTH2_ACTIVE=true "
        "(docs/security.md), or --insecure-public to accept anyone who reaches the port\n",
        cfg->http_host);
    return 2;
  } else if (!is_loopback(cfg->http_host)) {
    LOG_WARN("serve",
             "authentication OFF on %s (--insecure-public): anyone who reaches the port "
             "controls the orchestrator",
             cfg->http_host);
  } else {
    LOG_INFO("serve", "authentication off: listening on loopback only");
  }
  return 0;
}

static int cmd_serve(const orch_config *cfg) {
  sigset_t set;
  int rc = setup_auth(cfg);
  if (rc != 0) return rc;
  rc = start_host(cfg, &set, "serve");
  if (rc != 0) {
    orch_auth_shutdown();
    return rc;
  }
  orch_catalog_serve_sync(cfg); /* additive catalogue changes before the first request */
  sync_workflows();             /* then the workflows table and the product links */
  orch_http *http = NULL;
  orch_error err = ORCH_ERROR_INIT;
  if (orch_http_start(&http, cfg, serve_dispatch, NULL, &err) != ORCH_OK) {
    fprintf(stderr, "orchestrator: %s\n", err.message);
    orch_error_clear(&err);
    orch_events_stop();
    orch_gen_shutdown();
    orch_auth_shutdown();
    return 1;
  }
  LOG_INFO("serve", "listening on http://%s:%d", cfg->http_host, orch_http_port(http));
  orch_outbound_set_self_url(cfg->http_host, orch_http_port(http)); /* callback URLs of steps */
  orch_sched *sched = NULL; /* the step workers start after HTTP and stop before it */
  if (orch_sched_start(&sched, cfg, orch_sched_default_runner(), &err) != ORCH_OK) {
    fprintf(stderr, "orchestrator: %s\n", err.message);
    orch_error_clear(&err);
    rc = 1;
  }
  orch_watch *watch = NULL; /* development mode: reload on save */
  if (sched && cfg->watch) {
    const char *dirs[] = {cfg->lua_dir, cfg->products_dir};
    if (orch_watch_start(&watch, dirs, 2, &err) != ORCH_OK) {
      LOG_WARN("serve", "%s", err.message);
      orch_error_clear(&err);
    } else {
      LOG_INFO("serve", "watching %s and %s for changes", cfg->lua_dir, cfg->products_dir);
    }
  }
  if (sched) wait_for_stop(&set, "serve");
  orch_watch_stop(watch);
  orch_sched_stop(sched); /* the current steps commit and the leases go back first */
  orch_http_stop(http);
  orch_events_stop(); /* after the last emitter */
  orch_threadctx_shutdown();
  orch_gen_shutdown();
  orch_auth_shutdown();
  LOG_INFO("serve", "stopped");
  return rc;
}

/* `orchestrator worker`: the step workers without HTTP, until SIGTERM/SIGINT. */
static int cmd_worker(const orch_config *cfg) {
  sigset_t set;
  int rc = start_host(cfg, &set, "worker");
  if (rc != 0) return rc;
  orch_sched *sched = NULL;
  orch_error err = ORCH_ERROR_INIT;
  if (cfg->workers <= 0) {
    fprintf(stderr, "orchestrator: worker needs --workers 1 or more\n");
    rc = 2;
  } else if (orch_sched_start(&sched, cfg, orch_sched_default_runner(), &err) != ORCH_OK) {
    fprintf(stderr, "orchestrator: %s\n", err.message);
    orch_error_clear(&err);
    rc = 1;
  }
  if (sched) wait_for_stop(&set, "worker");
  orch_sched_stop(sched);
  orch_events_stop();
  orch_threadctx_shutdown();
  orch_gen_shutdown();
  return rc;
}

int main(int argc, char **argv) {
  /* Steps are Lua workflows (lua/orch/runner.lua) on each worker's own Lua state. */
  orch_workflow_runner = orch_step_runner_lua();
  orch_config cfg;
  orch_error err = ORCH_ERROR_INIT;
  int rc = 2;
  if (orch_config_init(&cfg, &err) != ORCH_OK) {
    fprintf(stderr, "orchestrator: %s\n", err.message);
    orch_error_clear(&err);
    orch_config_free(&cfg);
    return 2;
  }
  int i = 1;
  if (orch_config_parse_flags(&cfg, argc, argv, &i, &err) != ORCH_OK) goto bad_flags;
  const char *cmd = i < argc ? argv[i++] : "help";
  const char *sub = NULL;
  if ((!strcmp(cmd, "db") || !strcmp(cmd, "catalog")) && i < argc && argv[i][0] != '-')
    sub = argv[i++];
  int allow_destructive = 0; /* catalog apply --allow-destructive */
  for (;;) {
    if (orch_config_parse_flags(&cfg, argc, argv, &i, &err) != ORCH_OK) goto bad_flags;
    if (i >= argc || strcmp(argv[i], "--allow-destructive") || strcmp(cmd, "catalog")) break;
    allow_destructive = 1;
    i++;
  }
  if (i < argc) {
    fprintf(stderr, "orchestrator: unknown argument '%s'\n\n", argv[i]);
    usage(stderr);
    goto done;
  }
  orch_log_set_level(cfg.log_level);
  /* A transaction idle longer than a lease belongs to a host that stopped mid-commit:
     let the server end it so its row locks do not block the take-over. */
  orch_db_set_idle_transaction_timeout_ms(cfg.lease_seconds > 0 ? cfg.lease_seconds * 1000 : 0);
  /* libcurl's global state (orch.client in steps) before any thread starts. */
  if (orch_outbound_global_init(&err) != ORCH_OK) goto bad_flags;

  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    usage(stdout);
    rc = 0;
  } else if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
    printf("orchestrator %s\n", ORCH_VERSION);
    rc = 0;
  } else if (!strcmp(cmd, "serve")) {
    rc = cmd_serve(&cfg);
  } else if (!strcmp(cmd, "db")) {
    rc = cmd_db(&cfg, sub);
  } else if (!strcmp(cmd, "check")) {
    rc = cmd_check(&cfg);
  } else if (!strcmp(cmd, "worker")) {
    rc = cmd_worker(&cfg);
  } else if (!strcmp(cmd, "catalog")) {
    rc = orch_catalog_command(&cfg, sub, allow_destructive);
  } else {
    fprintf(stderr, "orchestrator: unknown command '%s'\n\n", cmd);
    usage(stderr);
  }
  goto done;
bad_flags:
  fprintf(stderr, "orchestrator: %s\n", err.message);
  orch_error_clear(&err);
done:
  orch_outbound_global_cleanup();
  orch_config_free(&cfg);
  return rc;
}
