/* test_guard.c - origins, JSON media types, log masking (guard.h); auth settings (config.h). */
#include "test.h"

#include "auth.h"
#include "config.h"
#include "guard.h"
#include "orch.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

TEST(guard_origins) {
  orch_config cfg = {.cors_origins = "http://a.example, http://b.example/",
                     .ui_origin = "http://ui.example:3000"};
  ASSERT_STR_EQ(orch_guard_origin(&cfg, "http://a.example", "h:1"), "http://a.example");
  ASSERT_STR_EQ(orch_guard_origin(&cfg, "http://b.example", "h:1"), "http://b.example");
  ASSERT_STR_EQ(orch_guard_origin(&cfg, "http://ui.example:3000", "h:1"), "http://ui.example:3000");
  ASSERT_STR_EQ(orch_guard_origin(&cfg, "http://h:1", "h:1"), "http://h:1"); /* same origin */
  ASSERT_STR_EQ(orch_guard_origin(&cfg, "https://h:1", "h:1"), "https://h:1");
  ASSERT(!orch_guard_origin(&cfg, "http://evil.example", "h:1"));
  ASSERT(!orch_guard_origin(&cfg, "http://a.example.evil", "h:1"));
  ASSERT(!orch_guard_origin(&cfg, "http://h:2", "h:1"));
  ASSERT(!orch_guard_origin(&cfg, "null", "h:1"));
  ASSERT(!orch_guard_origin(&cfg, NULL, "h:1"));
  orch_config none = {.cors_origins = "", .ui_origin = ""};
  ASSERT(!orch_guard_origin(&none, "http://a.example", "h:1"));
  orch_config any = {.cors_origins = "*"};
  ASSERT_STR_EQ(orch_guard_origin(&any, "http://x", "h:1"), "*");
}

TEST(guard_json_media_types) {
  ASSERT(orch_guard_is_json("application/json"));
  ASSERT(orch_guard_is_json("Application/JSON; charset=utf-8"));
  ASSERT(orch_guard_is_json("application/merge-patch+json"));
  ASSERT(!orch_guard_is_json("text/plain"));
  ASSERT(!orch_guard_is_json("application/x-www-form-urlencoded"));
  ASSERT(!orch_guard_is_json("multipart/form-data; boundary=x"));
  ASSERT(!orch_guard_is_json("application/jsonx"));
  ASSERT(!orch_guard_is_json("+json"));
  ASSERT(!orch_guard_is_json(NULL));
}

TEST(guard_masks_tokens) {
  struct {
    const char *in, *out;
  } cases[] = {
      {"/api/processes/p1/callback/abcdef", "/api/processes/p1/callback/***"},
      {"/api/processes/p1/callback/abcdef/progress", "/api/processes/p1/callback/***/progress"},
      {"/api/processes/p1/callback/a", "/api/processes/p1/callback/***"},
      {"/api/ws/events?token=eyJ.x.y&x=1", "/api/ws/events?token=***&x=1"},
      {"/p?a=1&access_token=zz", "/p?a=1&access_token=***"},
      {"/api/processes", "/api/processes"},
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN(cases); i++) {
    char *m = orch_guard_mask_url(cases[i].in);
    ASSERT_STR_EQ(m, cases[i].out);
    free(m);
  }
}

TEST(auth_settings_and_files) {
  char path[] = "/tmp/orch_secret_XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, "s3cret\n", 7), 7);
  close(fd);
  setenv("OAUTH2_RESOURCE_SERVER_SECRET_FILE", path, 1);
  setenv("OAUTH2_ACTIVE", "TRUE", 1);
  orch_config cfg;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_config_init(&cfg, &err));
  ASSERT_STR_EQ(cfg.resource_server_secret, "s3cret");
  ASSERT_EQ(cfg.oauth2_active, 1);
  ASSERT_EQ(cfg.insecure_public, 0);
  char *argv[] = {"orchestrator", "--insecure-public", "--oauth2-active=false", "serve", NULL};
  int i = 1;
  ASSERT_OK(orch_config_parse_flags(&cfg, 4, argv, &i, &err));
  ASSERT_EQ(i, 3);
  ASSERT_EQ(cfg.insecure_public, 1);
  ASSERT_EQ(cfg.oauth2_active, 0);
  orch_config_free(&cfg);
  setenv("OAUTH2_ACTIVE", "maybe", 1);
  ASSERT(orch_config_init(&cfg, &err) != ORCH_OK);
  orch_error_clear(&err);
  orch_config_free(&cfg);
  unsetenv("OAUTH2_ACTIVE");
  unsetenv("OAUTH2_RESOURCE_SERVER_SECRET_FILE");
  unlink(path);
  ASSERT_STR_EQ(orch_auth_bearer("Bearer abc"), "abc");
  ASSERT_STR_EQ(orch_auth_bearer("bearer  abc"), "abc");
  ASSERT(!orch_auth_bearer("Basic abc"));
  ASSERT(!orch_auth_bearer("Bearer "));
  ASSERT(!orch_auth_bearer(NULL));
  ASSERT(orch_auth_public_action("health.read") && orch_auth_public_action("translations.read"));
  ASSERT(!orch_auth_public_action("processes.read"));
}
