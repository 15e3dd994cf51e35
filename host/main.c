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
#include "client.h"
#include "reload.h"
#include "sched.h"
#include "schedule.h"
#include "step_runner.h"
#include "threadctx.h"
#include "watch.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: orchestrator <command> [flags]\n"
          "\n"
          "commands:\n"
          "  serve          run the HTTP API and the step workers (--workers 0: API only)\n"
          "  worker         run the step workers only (no HTTP)\n"
          "  db upgrade     apply pending SQL migrations (and those in the products folder's\n"
          "                 migrations/)\n"
          "  db status      list migrations and whether they are applied\n"
          "  catalog plan   show how the catalogue differs from the product definitions\n"
          "  catalog apply  apply it in one transaction (--allow-destructive: may lose data)\n"
          "  check          load lua/ and the products folder; report every error as file:line\n"
          "  schedule list  the schedules: id, name, source, next run, trigger\n"
          "  schedule run ID            start a schedule's workflow now\n"
          "  schedule load-defaults     core's default schedules [--recreate]\n"
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

/* Print the strings of a JSON array of strings (what orch.check.warnings returns), one a line. */
static void print_json_strings(const char *json, FILE *out) {
  for (const char *p = json; *p; p++) {
    if (*p != '"') continue;
    for (p++; *p && *p != '"'; p++) {
      if (*p != '\\') {
        fputc(*p, out);
        continue;
      }
      p++;
      if (!*p) break;
      switch (*p) {
      case 'n': fputc('\n', out); break;
      case 't': fputc('\t', out); break;
      case 'u': {
        unsigned v = 0;
        int k = 0;
        for (; k < 4 && p[1]; k++, p++) {
          char c = p[1];
          v = v * 16 + (unsigned)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
        }
        fputc(v < 0x80 ? (int)v : '?', out);
        break;
      }
      default: fputc(*p, out);
      }
    }
    fputc('\n', out);
    if (!*p) break;
  }
}

/* `check`: print the definitions' warnings (repeated step names...) on stderr. */
static void report_warnings(orch_lua *lh) {
  char *json = NULL;
  orch_error err = ORCH_ERROR_INIT;
  if (orch_lua_invoke(lh, "orch.check", "warnings", NULL, &json, &err) == ORCH_OK && json)
    print_json_strings(json, stderr);
  orch_error_clear(&err);
  free(json);
}

/* Load the scripts into a new generation and prove that a state builds from it
   (with warn set: print the definitions' warnings, as `check` does). */
static int load_generation(const orch_config *cfg, orch_gen **out, orch_errlist *errors, int warn) {
  orch_error err = ORCH_ERROR_INIT;
  orch_gen *g = NULL;
  if (orch_gen_load(&g, cfg->lua_dir, cfg->products_dir, &err) != ORCH_OK) {
    orch_errlist_add(errors, &err);
    return ORCH_EIO;
  }
  orch_lua_limits lim = {cfg->lua_memory, cfg->lua_timeout_ms};
  orch_lua *lh = NULL;
  int rc = orch_lua_new(&lh, g, &lim, errors);
  if (rc == ORCH_OK && warn) report_warnings(lh);
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
  int rc = load_generation(cfg, &g, &errors, 1);
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
  /* The products folder may ship migrations of its own (its tables). */
  char *product_migrations = orch_sprintf("%s/migrations", cfg->products_dir);
  if (!strcmp(sub, "upgrade"))
    rc = orch_migrate_upgrade_all(db, cfg->migrations_dir, product_migrations, stdout, &err);
  else
    rc = orch_migrate_status_all(db, cfg->migrations_dir, product_migrations, stdout, &pending,
                                 &err);
  free(product_migrations);
  orch_db_free(db);
  if (rc != ORCH_OK) {
    fprintf(stderr, "orchestrator: %s\n", err.message);
    orch_error_clear(&err);
    return 1;
  }
  return 0;
}

/* The route table of this thread's Lua state (declared by lua/orch/api/; rebuilt per generation).
 */
static orch_route_table *serve_routes(void *arg) {
  ORCH_UNUSED(arg);
  orch_error err = ORCH_ERROR_INIT;
  orch_lua *lh = orch_threadctx_lua(orch_threadctx_get(), &err);
  if (!lh) LOG_ERROR("http", "no route table: %s", err.message ? err.message : "no Lua state");
  orch_error_clear(&err);
  return lh ? orch_route_table_ref(orch_lua_routes(lh)) : NULL;
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

/* GET /api/health on any HTTP thread, without Lua: "OK" when the database answers. */
static void serve_health(orch_http_response *resp, void *arg) {
  ORCH_UNUSED(arg);
  orch_db *db = orch_threadctx_db(orch_threadctx_get());
  orch_error err = ORCH_ERROR_INIT;
  PGresult *res = NULL;
  if (orch_db_exec(db, "SELECT 1 AS ok", 0, NULL, &res, &err) == ORCH_DB_ONE_RESULT) {
    resp->status = 200;
    resp->body = orch_strdup("\"OK\"");
    resp->body_len = strlen(resp->body);
  } else {
    char *detail =
        orch_sprintf("Database unavailable: %s", err.message ? err.message : "no answer");
    orch_http_problem(resp, 503, detail);
    free(detail);
  }
  PQclear(res);
  orch_error_clear(&err);
}

static void warn_about_database(const orch_config *cfg) {
  orch_db *db = orch_db_new(cfg->database_uri);
  orch_error err = ORCH_ERROR_INIT;
  int pending = 0;
  char *product_migrations = orch_sprintf("%s/migrations", cfg->products_dir);
  int st =
      orch_migrate_status_all(db, cfg->migrations_dir, product_migrations, NULL, &pending, &err);
  free(product_migrations);
  if (st != ORCH_OK)
    LOG_WARN("serve", "database not usable yet: %s", err.message);
  else if (pending)
    LOG_WARN("serve", "%d migration%s pending: run `orchestrator db upgrade`", pending,
             pending == 1 ? "" : "s");
  orch_error_clear(&err);
  orch_db_free(db);
}

/*
 * Product scripts run their SQL (orch.db) with the rights of the host's database role: a
 * superuser, or a member of the roles that read and write server files and run server
 * programs, hands them the database server. Says so loudly at start; with
 * ORCH_DB_SUPERUSER=refuse (or when the role cannot be checked then) the host does not start.
 * Returns 0 to go on.
 */
static int check_database_role(const orch_config *cfg, const char *who) {
  int refuse = !strcmp(cfg->db_superuser, "refuse");
  if (!refuse && strcmp(cfg->db_superuser, "warn")) {
    fprintf(stderr, "orchestrator: invalid value '%s' for ORCH_DB_SUPERUSER (warn|refuse)\n",
            cfg->db_superuser);
    return 2;
  }
  static const char sql[] = "SELECT current_user, r.rolsuper,"
                            " pg_has_role(current_user, 'pg_execute_server_program', 'USAGE')"
                            " OR pg_has_role(current_user, 'pg_read_server_files', 'USAGE')"
                            " OR pg_has_role(current_user, 'pg_write_server_files', 'USAGE')"
                            " FROM pg_roles r WHERE r.rolname = current_user";
  orch_db *db = orch_db_new(cfg->database_uri);
  orch_error err = ORCH_ERROR_INIT;
  PGresult *res = NULL;
  int rc = 0;
  if (orch_db_exec(db, sql, 0, NULL, &res, &err) != ORCH_DB_ONE_RESULT) {
    if (refuse) {
      fprintf(stderr,
              "orchestrator: cannot check the database role (ORCH_DB_SUPERUSER=refuse): %s\n",
              err.message ? err.message : "no answer");
      rc = 1;
    } else {
      LOG_WARN(who, "cannot check the database role: %s", err.message ? err.message : "no answer");
    }
  } else {
    const char *role = PQgetvalue(res, 0, 0);
    int super = !strcmp(PQgetvalue(res, 0, 1), "t");
    int server = !strcmp(PQgetvalue(res, 0, 2), "t");
    if (super || server) {
      const char *what = super ? "a superuser"
                               : "a member of pg_execute_server_program/pg_read_server_files/"
                                 "pg_write_server_files";
      if (refuse) {
        fprintf(stderr,
                "orchestrator: connected to the database as '%s', %s: not starting "
                "(ORCH_DB_SUPERUSER=refuse); connect as an ordinary role that owns the "
                "database (docs/deployment.md)\n",
                role, what);
        rc = 1;
      } else {
        LOG_WARN(who,
                 "SECURITY: connected to the database as '%s', %s: product scripts run their SQL "
                 "with these rights (server files and programs). Connect as an ordinary role that "
                 "owns the database (docs/deployment.md); ORCH_DB_SUPERUSER=refuse makes this an "
                 "error",
                 role, what);
      }
    } else {
      LOG_INFO(who, "database role '%s' (not a superuser)", role);
    }
  }
  PQclear(res);
  orch_error_clear(&err);
  orch_db_free(db);
  return rc;
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
  int rc = check_database_role(cfg, who);
  if (rc != 0) return rc;
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, set, NULL);
  signal(SIGPIPE, SIG_IGN);
  orch_errlist errors = {0};
  orch_gen *g = NULL;
  if (load_generation(cfg, &g, &errors, 0) != ORCH_OK) {
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

/*
 * The shutdown deadline (ORCH_SHUTDOWN_TIMEOUT_S): from SIGTERM/SIGINT on, the
 * orderly stop (steps commit, leases go back, threads join) has this long. If
 * it is not over by then (a worker stuck in a step), the leases of this host
 * are given back on a new connection and the process exits with status 1; a
 * commit that was under way is rolled back by the server when the connection
 * goes (nothing half-written).
 */
typedef struct shutdown_guard {
  pthread_t thread;
  int started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;      /* guarded by mu */
  int seconds;   /* the deadline */
  char *uri;     /* owned */
  char *host_id; /* owned; NULL = no workers */
} shutdown_guard;

static void *guard_main(void *arg) {
  shutdown_guard *g = arg;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += g->seconds;
  pthread_mutex_lock(&g->mu);
  while (!g->done)
    if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT) break;
  int done = g->done;
  pthread_mutex_unlock(&g->mu);
  if (done) return NULL;
  LOG_WARN("shutdown",
           "not finished after %d s (a step is stuck): giving the leases back and "
           "exiting",
           g->seconds);
  if (g->host_id) {
    orch_error err = ORCH_ERROR_INIT;
    int n = orch_sched_abandon(g->uri, g->host_id, 2000, &err);
    if (n < 0)
      LOG_WARN("shutdown", "leases not given back (they run out by themselves): %s", err.message);
    else
      LOG_INFO("shutdown", "%d lease%s given back", n, n == 1 ? "" : "s");
    orch_error_clear(&err);
  }
  fflush(NULL);
  _exit(1); /* the stuck thread cannot be joined; no exit handlers run on its state */
}

static void guard_start(shutdown_guard *g, const orch_config *cfg, const orch_sched *sched) {
  memset(g, 0, sizeof *g);
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  if (cfg->shutdown_timeout_s <= 0) return;
  g->seconds = cfg->shutdown_timeout_s;
  g->uri = orch_strdup(cfg->database_uri);
  g->host_id = sched ? orch_strdup(orch_sched_host_id(sched)) : NULL;
  g->started = pthread_create(&g->thread, NULL, guard_main, g) == 0;
}

static void guard_end(shutdown_guard *g) {
  pthread_mutex_lock(&g->mu);
  g->done = 1;
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
  if (g->started) pthread_join(g->thread, NULL);
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
  free(g->uri);
  free(g->host_id);
}

/* Until SIGINT or SIGTERM; SIGHUP reloads the scripts (reload.c). */
static void wait_for_stop(sigset_t *set, const char *who) {
  for (;;) {
    int sig = 0;
    if (sigwait(set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      orch_reload_from("SIGHUP", NULL);
      continue;
    }
    LOG_INFO(who, "%s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return;
  }
}

/* Every host fires due schedules (schedule.h); a failure to start only costs the schedules. */
static orch_ticker *start_ticker(const orch_config *cfg) {
  char host[128] = "host";
  gethostname(host, sizeof host - 1);
  char *owner = orch_sprintf("%s/%ld", host, (long)getpid());
  orch_ticker *t = NULL;
  orch_error err = ORCH_ERROR_INIT;
  if (orch_ticker_start(&t, cfg, owner, &err) != ORCH_OK) {
    LOG_ERROR("schedule", "%s", err.message);
    orch_error_clear(&err);
  }
  free(owner);
  return t;
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
    LOG_INFO("serve", "authentication off: %s is a loopback address (no other is allowed)",
             cfg->http_host);
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
  /* Additive catalogue changes before the first request; a field type that stored values do not
     convert to refuses the start (catalog apply --allow-destructive first). */
  if (orch_catalog_serve_sync(cfg) != ORCH_OK) {
    fprintf(stderr,
            "orchestrator: the catalogue needs `orchestrator catalog apply --allow-destructive` "
            "first (see `orchestrator catalog plan`); not starting\n");
    orch_events_stop();
    orch_gen_shutdown();
    orch_auth_shutdown();
    return 1;
  }
  sync_workflows(); /* then the workflows table and the product links */
  orch_http *http = NULL;
  orch_error err = ORCH_ERROR_INIT;
  if (orch_http_start(&http, cfg, serve_routes, serve_dispatch, serve_health, NULL, &err) !=
      ORCH_OK) {
    fprintf(stderr, "orchestrator: %s\n", err.message);
    orch_error_clear(&err);
    orch_events_stop();
    orch_gen_shutdown();
    orch_auth_shutdown();
    return 1;
  }
  LOG_INFO("serve", "listening on http://%s:%d", cfg->http_host, orch_http_port(http));
  orch_client_set_self_url(cfg->http_host, orch_http_port(http)); /* callback URLs of steps */
  orch_sched *sched = NULL; /* the step workers start after HTTP and stop before it */
  if (orch_sched_start(&sched, cfg, orch_step_runner_lua(), orch_threadctx_thread_db, &err) !=
      ORCH_OK) {
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
  orch_ticker *ticker = sched ? start_ticker(cfg) : NULL;
  if (sched) wait_for_stop(&set, "serve");
  shutdown_guard guard;
  guard_start(&guard, cfg, sched);
  orch_ticker_stop(ticker); /* no new process starts from here on */
  orch_watch_stop(watch);
  orch_sched_stop(sched); /* the current steps commit and the leases go back first */
  orch_http_stop(http);
  orch_events_stop(); /* after the last emitter */
  orch_threadctx_shutdown();
  orch_gen_shutdown();
  guard_end(&guard);
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
  } else if (orch_sched_start(&sched, cfg, orch_step_runner_lua(), orch_threadctx_thread_db,
                              &err) != ORCH_OK) {
    fprintf(stderr, "orchestrator: %s\n", err.message);
    orch_error_clear(&err);
    rc = 1;
  }
  orch_ticker *ticker = sched ? start_ticker(cfg) : NULL;
  if (sched) wait_for_stop(&set, "worker");
  shutdown_guard guard;
  guard_start(&guard, cfg, sched);
  orch_ticker_stop(ticker);
  orch_sched_stop(sched);
  orch_events_stop();
  orch_threadctx_shutdown();
  orch_gen_shutdown();
  guard_end(&guard);
  return rc;
}

int main(int argc, char **argv) {
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
  if ((!strcmp(cmd, "db") || !strcmp(cmd, "catalog") || !strcmp(cmd, "schedule")) && i < argc &&
      argv[i][0] != '-')
    sub = argv[i++];
  const char *sub_arg = NULL; /* schedule run ID, schedule load-defaults --recreate */
  if (!strcmp(cmd, "schedule") && sub && i < argc &&
      ((!strcmp(sub, "run") && argv[i][0] != '-') ||
       (!strcmp(sub, "load-defaults") && !strcmp(argv[i], "--recreate"))))
    sub_arg = argv[i++];
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
  orch_log_set_json(cfg.log_json);
  /* A transaction idle longer than a lease belongs to a host that stopped mid-commit:
     let the server end it so its row locks do not block the take-over. */
  orch_db_set_idle_transaction_timeout_ms(cfg.lease_seconds > 0 ? cfg.lease_seconds * 1000 : 0);
  /* libcurl's global state (orch.client in steps) before any thread starts. */
  if (orch_client_global_init(&err) != ORCH_OK) goto bad_flags;
  orch_client_set_max_timeout_ms(cfg.client_max_timeout_ms);

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
  } else if (!strcmp(cmd, "schedule")) {
    rc = orch_schedule_command(&cfg, sub, sub_arg);
  } else {
    fprintf(stderr, "orchestrator: unknown command '%s'\n\n", cmd);
    usage(stderr);
  }
  goto done;
bad_flags:
  fprintf(stderr, "orchestrator: %s\n", err.message);
  orch_error_clear(&err);
done:
  orch_client_global_cleanup();
  orch_config_free(&cfg);
  return rc;
}
