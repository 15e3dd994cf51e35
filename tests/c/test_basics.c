/* test_basics.c - buf, error shape, route matching and configuration. */
#include "orch.h"

#include "buf.h"
#include "config.h"
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

TEST(routes_match_params_and_slash) {
  const orch_route *r = NULL;
  orch_route_param p[ORCH_ROUTE_MAX_PARAMS];
  size_t n = 99;
  char allow[128];
  ASSERT_EQ(orch_route_match("GET", "/api/health/", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_FOUND);
  ASSERT_STR_EQ(r->handler, "health.get");
  ASSERT_EQ(n, 0);
  ASSERT_EQ(orch_route_match("GET", "/api/health", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_FOUND);
  ASSERT_EQ(orch_route_match("PUT", "/api/settings/status/", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_FOUND);
  ASSERT_STR_EQ(r->action, "settings.write");
  ASSERT_EQ(orch_route_match("GET", "/", &r, p, &n, allow, sizeof allow), ORCH_ROUTE_FOUND);
}

TEST(routes_method_not_allowed) {
  const orch_route *r = NULL;
  orch_route_param p[ORCH_ROUTE_MAX_PARAMS];
  size_t n = 0;
  char allow[128];
  ASSERT_EQ(orch_route_match("DELETE", "/api/settings/status", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_NO_METHOD);
  ASSERT_CONTAINS(allow, "GET");
  ASSERT_CONTAINS(allow, "PUT");
  ASSERT_CONTAINS(allow, "OPTIONS");
}

TEST(routes_not_found) {
  const orch_route *r = NULL;
  orch_route_param p[ORCH_ROUTE_MAX_PARAMS];
  size_t n = 0;
  char allow[128];
  ASSERT_EQ(orch_route_match("GET", "/api/healthz", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_NO_PATH);
  ASSERT_EQ(orch_route_match("GET", "/api/health/x", &r, p, &n, allow, sizeof allow),
            ORCH_ROUTE_NO_PATH);
  ASSERT_EQ(orch_route_match("GET", "", &r, p, &n, allow, sizeof allow), ORCH_ROUTE_NO_PATH);
  /* Every route in the table names a handler and an action. */
  size_t count = 0;
  const orch_route *all = orch_routes(&count);
  ASSERT(count > 0);
  for (size_t i = 0; i < count; i++)
    ASSERT(all[i].handler && all[i].action && all[i].method);
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
