/* test_basics.c - buf, error shape, route matching and configuration. */
#include "orch.h"

#include "buf.h"
#include "config.h"
#include "log.h"
#include "routes.h"
#include "test.h"

#include <stdlib.h>

TEST(buf_append_and_take) {
  orch_buf b = ORCH_BUF_INIT;
  for (int i = 0; i < 1000; i++)
    orch_buf_printf(&b, "%d,", i);
  ASSERT(b.len > 3000);
  ASSERT(!strncmp(b.data, "0,1,2,", 6));
  size_t len = 0;
  char *s = orch_buf_take(&b, &len);
  ASSERT_EQ(len, strlen(s));
  ASSERT(b.data == NULL);
  free(s);
  orch_buf_free(&b);
  s = orch_buf_take(&b, &len);
  ASSERT_STR_EQ(s, "");
  free(s);
}

TEST(buf_json_string_escapes) {
  orch_buf b = ORCH_BUF_INIT;
  const char in[] = "a\"b\\c\n\x01/";
  orch_buf_json_string(&b, in, sizeof in - 1);
  ASSERT_STR_EQ(b.data, "\"a\\\"b\\\\c\\n\\u0001/\"");
  orch_buf_free(&b);
}

TEST(error_format_and_prefix) {
  orch_error e = ORCH_ERROR_INIT;
  orch_error_set(&e, ORCH_ELUA, "bad %s", "thing");
  e.file = orch_strdup("products/x.lua");
  e.line = 7;
  orch_error_prefix(&e, "loading");
  char *s = orch_error_format(&e);
  ASSERT_STR_EQ(s, "products/x.lua:7: loading: bad thing");
  free(s);
  orch_error_clear(&e);
  ASSERT(e.message == NULL && e.file == NULL && e.code == 0);
  orch_error_set(NULL, ORCH_EINVAL, "ignored"); /* NULL err is a no-op */
}

/* A table like the one lua/orch/api/routes.lua declares (lhost.c builds it from Lua). */
static orch_route_table *sample_routes(void) {
  orch_route_table *t = orch_route_table_new();
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_route_table_add(t, "GET", "/", "root.read", "misc.root", NULL, 0, &err));
  ASSERT_OK(
      orch_route_table_add(t, "GET", "/api/health", "health.read", "health.get", NULL, 0, &err));
  ASSERT_OK(orch_route_table_add(t, "GET", "/api/settings/status", "settings.read",
                                 "settings.get_status", NULL, 0, &err));
  ASSERT_OK(orch_route_table_add(t, "PUT", "/api/settings/status", "settings.write",
                                 "settings.put_status", NULL, ORCH_ROUTE_JSON_BODY, &err));
  ASSERT_OK(orch_route_table_add(t, "GET", "/api/processes/status-counts", "processes.read",
                                 "processes.status_counts", NULL, 0, &err));
  ASSERT_OK(orch_route_table_add(t, "GET", "/api/processes/{process_id}", "processes.read",
                                 "processes.get", NULL, 0, &err));
  ASSERT_OK(
      orch_route_table_add(t, "GET", "/api/ws/events", "events.read", NULL, "websocket", 0, &err));
  return t;
}

TEST(routes_match_params_and_slash) {
  orch_route_table *t = sample_routes();
  const orch_route *r = NULL;
  orch_route_param p[ORCH_ROUTE_MAX_PARAMS];
  size_t n = 99;
  char allow[128];
  ASSERT_EQ(orch_route_match(t, "GET", "/api/health/", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_FOUND);
  ASSERT_STR_EQ(r->handler, "health.get");
  ASSERT_EQ(n, 0);
  ASSERT_EQ(orch_route_match(t, "GET", "/api/health", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_FOUND);
  ASSERT_EQ(orch_route_match(t, "PUT", "/api/settings/status/", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_FOUND);
  ASSERT_STR_EQ(r->action, "settings.write");
  ASSERT_EQ(r->flags, ORCH_ROUTE_JSON_BODY);
  ASSERT_EQ(orch_route_match(t, "GET", "/", &r, p, &n, allow, sizeof allow), ORCH_ROUTE_FOUND);
  /* The first match wins: a literal segment declared before a {param} one. */
  ASSERT_EQ(
      orch_route_match(t, "GET", "/api/processes/status-counts", &r, p, &n, allow, sizeof allow),
      ORCH_ROUTE_FOUND);
  ASSERT_STR_EQ(r->handler, "processes.status_counts");
  ASSERT_EQ(orch_route_match(t, "GET", "/api/processes/abc", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_FOUND);
  ASSERT_EQ(n, 1);
  ASSERT(p[0].name_len == 10 && !strncmp(p[0].name, "process_id", 10));
  ASSERT(p[0].value_len == 3 && !strncmp(p[0].value, "abc", 3));
  orch_route_table_unref(t);
}

TEST(routes_method_not_allowed) {
  orch_route_table *t = sample_routes();
  const orch_route *r = NULL;
  orch_route_param p[ORCH_ROUTE_MAX_PARAMS];
  size_t n = 0;
  char allow[128];
  ASSERT_EQ(orch_route_match(t, "DELETE", "/api/settings/status", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_NO_METHOD);
  ASSERT_STR_EQ(allow, "GET, PUT, OPTIONS");
  orch_route_table_unref(t);
}

TEST(routes_not_found) {
  orch_route_table *t = sample_routes();
  const orch_route *r = NULL;
  orch_route_param p[ORCH_ROUTE_MAX_PARAMS];
  size_t n = 0;
  char allow[128];
  ASSERT_EQ(orch_route_match(t, "GET", "/api/healthz", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_NO_PATH);
  ASSERT_EQ(orch_route_match(t, "GET", "/api/health/x", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_NO_PATH);
  ASSERT_EQ(orch_route_match(t, "GET", "", &r, p, &n, allow, sizeof allow), ORCH_ROUTE_NO_PATH);
  /* Host routes are answered before matching (http.c), never matched. */
  ASSERT_EQ(orch_route_match(t, "GET", "/api/ws/events", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_NO_PATH);
  size_t count = 0;
  const orch_route *all = orch_route_table_list(t, &count);
  ASSERT_EQ(count, 7);
  ASSERT(all[6].host && !all[6].handler);
  orch_route_table_unref(t);
}

TEST(routes_refuse_malformed_declarations) {
  orch_route_table *t = orch_route_table_new();
  orch_error err = ORCH_ERROR_INIT;
  static const char *const bad[][4] = {
      {"FETCH", "/api/x", "x.read", "m.f"},   {"GET", "api/x", "x.read", "m.f"},
      {"GET", "/api/x/", "x.read", "m.f"},    {"GET", "/api/{x", "x.read", "m.f"},
      {"GET", "/api/x}", "x.read", "m.f"},    {"GET", "/api/a{x}", "x.read", "m.f"},
      {"GET", "/api/{x}b", "x.read", "m.f"},  {"GET", "/api/{}", "x.read", "m.f"},
      {"GET", "/api/{a-b}", "x.read", "m.f"}, {"GET", "/api/x", "", "m.f"},
      {"GET", "/api/x", "x.read", NULL},      {"GET", "/{a}/{b}/{c}/{d}/{e}", "x.read", "m.f"},
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN(bad); i++) {
    ASSERT_EQ(orch_route_table_add(t, bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL, 0, &err),
              ORCH_EINVAL);
    ASSERT(err.message != NULL);
    orch_error_clear(&err);
  }
  ASSERT_EQ(orch_route_table_add(t, "GET", "/x", "x.read", "m.f", "websocket", 0, &err),
            ORCH_EINVAL);
  orch_error_clear(&err);
  size_t count = 99;
  orch_route_table_list(t, &count);
  ASSERT_EQ(count, 0);
  orch_route_table_unref(t);
}

TEST(config_env_then_flags) {
  setenv("ORCH_HTTP_PORT", "9001", 1);
  setenv("DATABASE_URI", "postgresql://env", 1);
  setenv("ORCH_LOG_LEVEL", "debug", 1);
  orch_config cfg;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_config_init(&cfg, &err));
  ASSERT_EQ(cfg.http_port, 9001);
  ASSERT_STR_EQ(cfg.database_uri, "postgresql://env");
  ASSERT_STR_EQ(cfg.http_host, "127.0.0.1");
  char *argv[] = {"orchestrator", "--port", "9002", "--database=postgresql://flag", "serve", NULL};
  int i = 1;
  ASSERT_OK(orch_config_parse_flags(&cfg, 5, argv, &i, &err));
  ASSERT_EQ(i, 4);
  ASSERT_EQ(cfg.http_port, 9002);
  ASSERT_STR_EQ(cfg.database_uri, "postgresql://flag");
  orch_config_free(&cfg);
}

/* The defaults live in the settings table only (config.c): each as it was before it moved. */
TEST(config_defaults) {
  const char *names[] = {"ORCH_HTTP_HOST", "ORCH_HTTP_PORT",     "ORCH_LOG_LEVEL",
                         "ORCH_WORKERS",   "ORCH_LUA_MEMORY_MB", "ORCH_CATALOG_SYNC",
                         "OAUTH2_ACTIVE"};
  for (size_t i = 0; i < ORCH_ARRAY_LEN(names); i++)
    unsetenv(names[i]);
  orch_config cfg;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_config_init(&cfg, &err));
  ASSERT_STR_EQ(cfg.http_host, "127.0.0.1");
  ASSERT_EQ(cfg.http_port, 8080);
  ASSERT_EQ(cfg.http_threads, 2);
  ASSERT_EQ(cfg.http_io_threads, 2);
  ASSERT_EQ(cfg.max_body, 1024 * 1024);
  ASSERT_STR_EQ(cfg.cors_origins, "");
  ASSERT_STR_EQ(cfg.ui_origin, "");
  ASSERT_EQ(cfg.http_timeout_s, 30);
  ASSERT_EQ(cfg.http_max_connections, 512);
  ASSERT_EQ(cfg.http_max_per_ip, 128);
  ASSERT_EQ(cfg.http_pool_bytes, 128 * 1024);
  ASSERT_EQ(cfg.http_max_query_params, 128);
  ASSERT_EQ(cfg.ws_max_connections, 128);
  ASSERT_EQ(cfg.reload_min_interval_ms, 1000);
  ASSERT_STR_EQ(cfg.catalog_sync, "apply");
  ASSERT_EQ(cfg.log_level, ORCH_LOG_INFO);
  ASSERT_EQ(cfg.log_json, 0);
  ASSERT_EQ(cfg.lua_memory, 256u * 1024 * 1024);
  ASSERT_EQ(cfg.lua_timeout_ms, 10000);
  ASSERT_EQ(cfg.workers, 2);
  ASSERT_EQ(cfg.watch, 0);
  ASSERT_EQ(cfg.lease_seconds, 10);
  ASSERT_EQ(cfg.worker_batch, 16);
  ASSERT_EQ(cfg.step_timeout_s, 300);
  ASSERT_EQ(cfg.max_state_bytes, 16u * 1024 * 1024);
  ASSERT_EQ(cfg.client_max_timeout_ms, 60000);
  ASSERT_EQ(cfg.shutdown_timeout_s, 20);
  ASSERT_STR_EQ(cfg.db_superuser, "warn");
  ASSERT_EQ(cfg.scheduler, 1);
  ASSERT_EQ(cfg.schedule_tick_ms, 1000);
  ASSERT_EQ(cfg.schedule_defaults, 1);
  ASSERT_EQ(cfg.schedule_misfire_grace, 60);
  ASSERT_EQ(cfg.oauth2_active, 0);
  ASSERT_EQ(cfg.jwt_leeway, 30);
  ASSERT_EQ(cfg.jwks_refetch, 10);
  ASSERT_EQ(cfg.insecure_public, 0);
  ASSERT(cfg.lua_dir && cfg.products_dir && cfg.migrations_dir);
  ASSERT_CONTAINS(orch_config_flags_help(), "--port");
  ASSERT_CONTAINS(orch_config_flags_help(), "port to listen on (0 = any); default 8080");
  orch_config_free(&cfg);
}

TEST(config_rejects_bad_values) {
  unsetenv("ORCH_HTTP_PORT");
  orch_config cfg;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_config_init(&cfg, &err));
  char *argv[] = {"orchestrator", "--port", "http", NULL};
  int i = 1;
  ASSERT_EQ(orch_config_parse_flags(&cfg, 3, argv, &i, &err), ORCH_ECONFIG);
  ASSERT_CONTAINS(err.message, "--port");
  orch_error_clear(&err);
  char *argv2[] = {"orchestrator", "--log-level", "loud", NULL};
  i = 1;
  ASSERT_EQ(orch_config_parse_flags(&cfg, 3, argv2, &i, &err), ORCH_ECONFIG);
  orch_error_clear(&err);
  char *argv3[] = {"orchestrator", "--host", NULL};
  i = 1;
  ASSERT_EQ(orch_config_parse_flags(&cfg, 2, argv3, &i, &err), ORCH_ECONFIG);
  ASSERT_CONTAINS(err.message, "needs a value");
  orch_error_clear(&err);
  orch_config_free(&cfg);
}
