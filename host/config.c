/* config.c - defaults, environment variables and flags, in that order. */
#include "orch.h"

#include "config.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

enum kind { K_STR, K_INT, K_SIZE, K_LONG, K_LEVEL, K_MB, K_BOOL, K_LOGFMT };

/* One row per setting: the table is the documentation of the names and the one place of
   the defaults (the folders' defaults depend on the current directory: default_dir). */
struct setting {
  const char *env;
  const char *flag;
  enum kind kind;
  size_t offset;
  const char *dflt; /* the value before the environment and the flags; NULL: none */
  const char *help;
};

#define OFF(f) offsetof(orch_config, f)
static const struct setting settings[] = {
    {"DATABASE_URI", "--database", K_STR, OFF(database_uri), NULL, "PostgreSQL URI or conninfo"},
    {"ORCH_HTTP_HOST", "--host", K_STR, OFF(http_host), "127.0.0.1", "address to listen on"},
    {"ORCH_HTTP_PORT", "--port", K_INT, OFF(http_port), "8080", "port to listen on (0 = any)"},
    {"ORCH_HTTP_THREADS", "--http-threads", K_INT, OFF(http_threads), "2",
     "HTTP requests served in Lua at once"},
    {"ORCH_HTTP_IO_THREADS", "--http-io-threads", K_INT, OFF(http_io_threads), "2",
     "libmicrohttpd threads: connections, and health without Lua"},
    {"ORCH_MAX_BODY_BYTES", "--max-body", K_SIZE, OFF(max_body), "1048576", "request body limit"},
    {"ORCH_CORS_ORIGINS", "--cors-origins", K_STR, OFF(cors_origins), "",
     "other allowed origins, comma separated (none: same origin only)"},
    {"ORCH_UI_ORIGIN", "--ui-origin", K_STR, OFF(ui_origin), "", "the UI's origin (allowed)"},
    {"ORCH_HTTP_TIMEOUT_S", "--http-timeout-s", K_INT, OFF(http_timeout_s), "30",
     "idle limit of an HTTP connection, deadline of request headers and of a body"},
    {"ORCH_HTTP_MAX_CONNECTIONS", "--http-max-connections", K_INT, OFF(http_max_connections), "512",
     "open HTTP connections, WebSockets included"},
    {"ORCH_HTTP_MAX_PER_IP", "--http-max-per-ip", K_INT, OFF(http_max_per_ip), "128",
     "open HTTP connections per client address (0 = no limit)"},
    {"ORCH_HTTP_POOL_BYTES", "--http-pool-bytes", K_SIZE, OFF(http_pool_bytes), "131072",
     "memory per HTTP connection for the request line and headers"},
    {"ORCH_HTTP_MAX_QUERY_PARAMS", "--http-max-query-params", K_INT, OFF(http_max_query_params),
     "128", "query parameters per request (more: 431)"},
    {"ORCH_WS_MAX_CONNECTIONS", "--ws-max-connections", K_INT, OFF(ws_max_connections), "128",
     "open WebSockets of /api/ws/events (more: 503)"},
    {"ORCH_RELOAD_MIN_INTERVAL_MS", "--reload-min-interval-ms", K_LONG, OFF(reload_min_interval_ms),
     "1000", "least time between two reloads through the API (0 = none)"},
    {"ORCH_PRODUCTS_DIR", "--products", K_STR, OFF(products_dir), NULL,
     "product scripts (products/)"},
    {"ORCH_LUA_DIR", "--lua-dir", K_STR, OFF(lua_dir), NULL, "core Lua ruleset (lua/)"},
    {"ORCH_MIGRATIONS_DIR", "--migrations", K_STR, OFF(migrations_dir), NULL, "SQL migrations"},
    {"ORCH_LOG_LEVEL", "--log-level", K_LEVEL, OFF(log_level), "info", "debug|info|warning|error"},
    {"ORCH_LOG_FORMAT", "--log-format", K_LOGFMT, OFF(log_json), "text",
     "text|json (json = one JSON object per line)"},
    {"ORCH_CATALOG_SYNC", "--catalog-sync", K_STR, OFF(catalog_sync), "apply",
     "apply|off: add catalogue changes at serve start"},
    {"ORCH_LUA_MEMORY_MB", "--lua-memory-mb", K_MB, OFF(lua_memory), "256",
     "memory cap per Lua state"},
    {"ORCH_LUA_TIMEOUT_MS", "--lua-timeout-ms", K_LONG, OFF(lua_timeout_ms), "10000",
     "time budget per call into Lua"},
    {"ORCH_WORKERS", "--workers", K_INT, OFF(workers), "2", "step worker threads (0 = none)"},
    {"ORCH_WATCH", "--watch", K_INT, OFF(watch), "0", "1 = reload when a script changes"},
    {"ORCH_LEASE_SECONDS", "--lease-seconds", K_INT, OFF(lease_seconds), "10",
     "lease of a process held by a worker"},
    {"ORCH_WORKER_BATCH", "--worker-batch", K_INT, OFF(worker_batch), "16",
     "processes one worker holds and commits together"},
    {"ORCH_STEP_TIMEOUT_S", "--step-timeout-s", K_INT, OFF(step_timeout_s), "300",
     "wall-clock limit of one step; then it fails (0 = none)"},
    {"ORCH_MAX_STATE_BYTES", "--max-state-bytes", K_SIZE, OFF(max_state_bytes), "16777216",
     "largest state a step may write (0 = no limit)"},
    {"ORCH_CLIENT_MAX_TIMEOUT_MS", "--client-max-timeout-ms", K_LONG, OFF(client_max_timeout_ms),
     "60000", "cap on the timeout of an outbound call"},
    {"ORCH_SHUTDOWN_TIMEOUT_S", "--shutdown-timeout-s", K_INT, OFF(shutdown_timeout_s), "20",
     "SIGTERM/SIGINT: exit after this at the latest"},
    {"ORCH_DB_SUPERUSER", "--db-superuser", K_STR, OFF(db_superuser), "warn",
     "warn|refuse: serve/worker connected as a database superuser"},
    {"ORCH_SCHEDULER", "--scheduler", K_INT, OFF(scheduler), "1",
     "1 = this host fires due schedules; docs/schedules.md"},
    {"ORCH_SCHEDULE_TICK_MS", "--schedule-tick-ms", K_INT, OFF(schedule_tick_ms), "1000",
     "how often the host looks for due schedules"},
    {"ORCH_SCHEDULE_DEFAULTS", "--schedule-defaults", K_INT, OFF(schedule_defaults), "1",
     "1 = create core's default schedules for tasks that have none"},
    {"ORCH_SCHEDULE_MISFIRE_GRACE_S", "--schedule-misfire-grace", K_INT,
     OFF(schedule_misfire_grace), "60", "seconds late a run may still start"},
    {"OAUTH2_ACTIVE", "--oauth2-active", K_BOOL, OFF(oauth2_active), "false",
     "true = every API route needs a bearer token"},
    {"OIDC_CONF_URL", "--oidc-conf-url", K_STR, OFF(oidc_conf_url), NULL,
     "URL of the provider's openid-configuration"},
    {"OAUTH2_RESOURCE_SERVER_ID", "--resource-server-id", K_STR, OFF(resource_server_id), NULL,
     "expected token audience (and introspection client id)"},
    {"OAUTH2_RESOURCE_SERVER_SECRET", "--resource-server-secret", K_STR,
     OFF(resource_server_secret), NULL, "introspection client secret (opaque tokens)"},
    {"ORCH_JWT_LEEWAY", "--jwt-leeway", K_INT, OFF(jwt_leeway), "30", "seconds of clock skew"},
    {"ORCH_JWKS_REFETCH_SECONDS", "--jwks-refetch-seconds", K_INT, OFF(jwks_refetch), "10",
     "least seconds between two JWKS fetches for unknown key ids"},
    {"ORCH_AUTH_WRITE_GROUP", "--auth-write-group", K_STR, OFF(auth_write_group), NULL,
     "group that writes when there is no policy.lua"},
    {"ORCH_INSECURE_PUBLIC", "--insecure-public", K_BOOL, OFF(insecure_public), "false",
     "allow a non-loopback address with auth off"},
};

static int set_value(orch_config *cfg, const struct setting *s, const char *value,
                     const char *source, orch_error *err) {
  char *base = (char *)cfg + s->offset;
  char *end = NULL;
  errno = 0;
  switch (s->kind) {
  case K_STR: {
    char **dst = (char **)base;
    free(*dst);
    *dst = orch_strdup(value);
    return ORCH_OK;
  }
  case K_BOOL: {
    if (!strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes"))
      *(int *)base = 1;
    else if (!strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "no"))
      *(int *)base = 0;
    else
      break;
    return ORCH_OK;
  }
  case K_LEVEL: {
    int lvl = orch_log_parse_level(value);
    if (lvl < 0) break;
    *(int *)base = lvl;
    return ORCH_OK;
  }
  case K_LOGFMT: {
    int json = orch_log_parse_format(value);
    if (json < 0) break;
    *(int *)base = json;
    return ORCH_OK;
  }
  case K_INT: {
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < 0 || v > 65535) break;
    *(int *)base = (int)v;
    return ORCH_OK;
  }
  case K_LONG: {
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < 0) break;
    *(long *)base = v;
    return ORCH_OK;
  }
  case K_SIZE:
  case K_MB: {
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-') break;
    *(size_t *)base = (size_t)(s->kind == K_MB ? v * 1024 * 1024 : v);
    return ORCH_OK;
  }
  }
  orch_error_set(err, ORCH_ECONFIG, "invalid value '%s' for %s", value, source);
  return ORCH_ECONFIG;
}

/* A default folder: "./<name>" when it exists, else the compiled-in data dir. */
static char *default_dir(const char *name) {
  struct stat st;
  if (stat(name, &st) == 0 && S_ISDIR(st.st_mode)) return orch_strdup(name);
  return orch_sprintf("%s/%s", ORCH_DATA_DIR, name);
}

/* NAME_FILE: the value is the content of that file (secrets), trailing newlines dropped. */
static int read_file_setting(orch_config *cfg, const struct setting *s, orch_error *err) {
  char name[96];
  snprintf(name, sizeof name, "%s_FILE", s->env);
  const char *path = getenv(name);
  if (!path || !*path) return ORCH_OK;
  char *text = NULL;
  size_t len = 0;
  if (orch_read_file(path, &text, &len, err) != ORCH_OK) {
    orch_error_prefix(err, "%s", name);
    return ORCH_ECONFIG;
  }
  while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
    text[--len] = '\0';
  int rc = set_value(cfg, s, text, name, err);
  free(text);
  return rc;
}

int orch_config_init(orch_config *cfg, orch_error *err) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < ORCH_ARRAY_LEN(settings); i++)
    if (settings[i].dflt &&
        set_value(cfg, &settings[i], settings[i].dflt, "the default", err) != ORCH_OK)
      return ORCH_ECONFIG; /* a wrong row of the table: c_unit tests the defaults */
  cfg->products_dir = default_dir("products");
  cfg->lua_dir = default_dir("lua");
  cfg->migrations_dir = default_dir("migrations");
  for (size_t i = 0; i < ORCH_ARRAY_LEN(settings); i++) {
    const char *v = getenv(settings[i].env);
    if (v && *v && set_value(cfg, &settings[i], v, settings[i].env, err) != ORCH_OK)
      return ORCH_ECONFIG;
    if (settings[i].kind == K_STR && read_file_setting(cfg, &settings[i], err) != ORCH_OK)
      return ORCH_ECONFIG;
  }
  return ORCH_OK;
}

int orch_config_parse_flags(orch_config *cfg, int argc, char **argv, int *i, orch_error *err) {
  while (*i < argc && strncmp(argv[*i], "--", 2) == 0) {
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    const struct setting *s = NULL;
    for (size_t k = 0; k < ORCH_ARRAY_LEN(settings); k++)
      if (strlen(settings[k].flag) == name_len && !strncmp(settings[k].flag, arg, name_len))
        s = &settings[k];
    if (!s) return ORCH_OK; /* not ours: the subcommand may know it */
    const char *value = eq ? eq + 1 : NULL;
    if (!value && s->kind == K_BOOL) value = "true"; /* a bare switch */
    if (!value) {
      if (*i + 1 >= argc) {
        orch_error_set(err, ORCH_ECONFIG, "flag %s needs a value", s->flag);
        return ORCH_ECONFIG;
      }
      value = argv[++*i];
    }
    if (set_value(cfg, s, value, s->flag, err) != ORCH_OK) return ORCH_ECONFIG;
    ++*i;
  }
  return ORCH_OK;
}

void orch_config_free(orch_config *cfg) {
  if (!cfg) return;
  for (size_t i = 0; i < ORCH_ARRAY_LEN(settings); i++)
    if (settings[i].kind == K_STR) {
      char **p = (char **)((char *)cfg + settings[i].offset);
      free(*p);
      *p = NULL;
    }
}

const char *orch_config_flags_help(void) {
  static char text[8192];
  if (!text[0]) {
    size_t used = 0;
    for (size_t i = 0; i < ORCH_ARRAY_LEN(settings) && used < sizeof text; i++) {
      const char *d = settings[i].dflt;
      int n = snprintf(text + used, sizeof text - used, "  %-24s %-26s %s%s%s\n", settings[i].flag,
                       settings[i].env, settings[i].help, d && *d ? "; default " : "",
                       d && *d ? d : "");
      if (n > 0) used += (size_t)n;
    }
  }
  return text;
}
