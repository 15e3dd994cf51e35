/*
 * config.h - typed configuration, read once at start-up from environment
 * variables and then from command-line flags (flags win). Immutable afterwards;
 * threads may read it without locking.
 */
#pragma once

#include "orch.h"

#include <stddef.h>

typedef struct orch_config {
  char *database_uri;       /* DATABASE_URI / --database; libpq URI or conninfo; NULL if unset */
  char *http_host;          /* ORCH_HTTP_HOST / --host (127.0.0.1) */
  int http_port;            /* ORCH_HTTP_PORT / --port (8080; 0 = any free port) */
  int http_threads;         /* ORCH_HTTP_THREADS / --http-threads (2): Lua lanes of HTTP */
  int http_io_threads;      /* ORCH_HTTP_IO_THREADS (2): libmicrohttpd threads */
  size_t max_body;          /* ORCH_MAX_BODY_BYTES / --max-body (1 MiB) */
  char *cors_origins;       /* ORCH_CORS_ORIGINS / --cors-origins (comma list; "" = same origin) */
  char *ui_origin;          /* ORCH_UI_ORIGIN / --ui-origin: the UI's origin, also allowed */
  char *products_dir;       /* ORCH_PRODUCTS_DIR / --products (products/) */
  char *lua_dir;            /* ORCH_LUA_DIR / --lua-dir (lua/) */
  char *migrations_dir;     /* ORCH_MIGRATIONS_DIR / --migrations (migrations/) */
  char *catalog_sync;       /* ORCH_CATALOG_SYNC / --catalog-sync (apply|off) at serve start */
  int log_level;            /* ORCH_LOG_LEVEL / --log-level (info) */
  int log_json;             /* ORCH_LOG_FORMAT / --log-format: 1 = json, 0 = text (text) */
  size_t lua_memory;        /* ORCH_LUA_MEMORY_MB / --lua-memory-mb (256 MiB) per Lua state */
  long lua_timeout_ms;      /* ORCH_LUA_TIMEOUT_MS / --lua-timeout-ms (10000) per call into Lua */
  int workers;              /* ORCH_WORKERS / --workers (2) step worker threads; 0 = none */
  int http_timeout_s;       /* ORCH_HTTP_TIMEOUT_S (30): idle limit and request body deadline */
  int http_max_connections; /* ORCH_HTTP_MAX_CONNECTIONS (512): open connections in all */
  int http_max_per_ip;      /* ORCH_HTTP_MAX_PER_IP (128; 0 = none): open connections per address */
  size_t http_pool_bytes; /* ORCH_HTTP_POOL_BYTES (128 KiB): per-connection request line+headers */
  int http_max_query_params;   /* ORCH_HTTP_MAX_QUERY_PARAMS (128): more is a 431 */
  int ws_max_connections;      /* ORCH_WS_MAX_CONNECTIONS (128): more WebSockets is a 503 */
  long reload_min_interval_ms; /* ORCH_RELOAD_MIN_INTERVAL_MS (1000): API reload rate limit */
  int watch;          /* ORCH_WATCH / --watch (0): 1 = reload when a script changes (development) */
  int lease_seconds;  /* ORCH_LEASE_SECONDS / --lease-seconds (10) process lease time */
  int worker_batch;   /* ORCH_WORKER_BATCH / --worker-batch (16) processes one worker holds */
  int step_timeout_s; /* ORCH_STEP_TIMEOUT_S / --step-timeout-s (300) wall-clock limit per step;
                         0 = none */
  size_t max_state_bytes;     /* ORCH_MAX_STATE_BYTES / --max-state-bytes (16 MiB) per step state */
  long client_max_timeout_ms; /* ORCH_CLIENT_MAX_TIMEOUT_MS / --client-max-timeout-ms (60000)
                                 cap on any outbound call's timeout */
  int shutdown_timeout_s;     /* ORCH_SHUTDOWN_TIMEOUT_S / --shutdown-timeout-s (20) SIGTERM to
                                 exit at the latest */
  char *db_superuser;         /* ORCH_DB_SUPERUSER / --db-superuser (warn|refuse): serve/worker as a
                                superuser (or a member of pg_*_server_*) of the database */
  int scheduler;              /* ORCH_SCHEDULER / --scheduler (1): this host fires due schedules */
  int schedule_tick_ms;       /* ORCH_SCHEDULE_TICK_MS / --schedule-tick-ms (1000) */
  int schedule_defaults; /* ORCH_SCHEDULE_DEFAULTS / --schedule-defaults (1): core's defaults */
  int schedule_misfire_grace; /* ORCH_SCHEDULE_MISFIRE_GRACE_S (60): late runs still start */
  /* authentication (docs/security.md); string settings may come from NAME_FILE */
  int oauth2_active;            /* OAUTH2_ACTIVE / --oauth2-active (false) */
  char *oidc_conf_url;          /* OIDC_CONF_URL: the provider's openid-configuration */
  char *resource_server_id;     /* OAUTH2_RESOURCE_SERVER_ID: the expected audience */
  char *resource_server_secret; /* OAUTH2_RESOURCE_SERVER_SECRET: introspection client secret */
  int jwt_leeway;               /* ORCH_JWT_LEEWAY / --jwt-leeway (30) seconds for exp/nbf */
  int jwks_refetch;             /* ORCH_JWKS_REFETCH_SECONDS (10): least time between fetches */
  char *auth_write_group;       /* ORCH_AUTH_WRITE_GROUP: who writes without a policy.lua */
  int insecure_public;          /* ORCH_INSECURE_PUBLIC / --insecure-public: no auth off loopback */
} orch_config;

/* Fill defaults, then the environment. */
int orch_config_init(orch_config *cfg, orch_error *err) ORCH_MUSTCHECK;
/*
 * Apply flags from argv[*i] on; stops at the first non-flag argument and
 * leaves *i there. Unknown flags are an error.
 */
int orch_config_parse_flags(orch_config *cfg, int argc, char **argv, int *i,
                            orch_error *err) ORCH_MUSTCHECK;
void orch_config_free(orch_config *cfg);
/* Usage text for the flags (static string). */
const char *orch_config_flags_help(void);
