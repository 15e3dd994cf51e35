/*
 * client.h - HTTP calls from workflow steps to configured services (libcurl).
 *
 * Scripts never name a host: they name a service, and its base URL and token
 * come from the environment of the host process:
 *   ORCH_SERVICE_<NAME>_URL          base URL, e.g. http://netbox:8000 (required)
 *   ORCH_SERVICE_<NAME>_TOKEN        sent as "Authorization: <scheme> <token>" (optional)
 *   ORCH_SERVICE_<NAME>_AUTH_SCHEME  the scheme word (default "Token", NetBox's)
 * The URL of a call is the base URL followed by a path that must start with
 * "/" and may not contain "..", "#", "\", "@" before the query, spaces or
 * control characters; redirects are not followed. That is the SSRF guard: a
 * script reaches configured services only.
 *
 * Limits (environment): ORCH_CLIENT_TIMEOUT_MS (default 10000) when a call
 * gives none, ORCH_CLIENT_MAX_RESPONSE_BYTES (default 8 MiB). Whatever a call
 * asks for, its timeout is capped at orch_client_set_max_timeout_ms (the
 * setting ORCH_CLIENT_MAX_TIMEOUT_MS, default 60000) and at what is left of
 * the calling thread's step deadline (orch_client_set_deadline).
 *
 * Thread safety: orch_client_global_init() once in main before any thread
 * starts; each call uses its own easy handle.
 */
#pragma once

#include "orch.h"

#include "buf.h"

/* What went wrong in a call (the Lua side shows it as a word). */
typedef enum orch_client_fail {
  ORCH_CLIENT_OK = 0,
  ORCH_CLIENT_CONFIG,    /* service not configured */
  ORCH_CLIENT_INVALID,   /* bad method, path or header */
  ORCH_CLIENT_DNS,       /* host name did not resolve */
  ORCH_CLIENT_CONNECT,   /* connection refused or unreachable */
  ORCH_CLIENT_TIMEOUT,   /* the call took longer than its timeout */
  ORCH_CLIENT_TOO_LARGE, /* the response exceeded the size cap */
  ORCH_CLIENT_IO,        /* any other transfer error */
} orch_client_fail;

const char *orch_client_fail_name(orch_client_fail f);

typedef struct orch_client_request {
  const char *service;        /* [a-z0-9_]+ */
  const char *method;         /* GET POST PUT PATCH DELETE HEAD OPTIONS */
  const char *path;           /* "/api/...", query string included */
  const char *const *headers; /* "Name: value" lines (borrowed) */
  size_t nheaders;
  const char *body; /* NULL = no body */
  size_t body_len;
  long timeout_ms; /* 0 = the configured default */
} orch_client_request;

typedef struct orch_client_response {
  long status;
  orch_buf headers; /* header lines of the final response, "name: value\n" each, names lowercase */
  orch_buf body;
  char *url; /* the URL called (without credentials); owned */
} orch_client_response;

#define ORCH_CLIENT_RESPONSE_INIT                                                                  \
  { 0, ORCH_BUF_INIT, ORCH_BUF_INIT, NULL }

int orch_client_global_init(orch_error *err) ORCH_MUSTCHECK;
void orch_client_global_cleanup(void);

/*
 * Perform one call. On transport failure returns the failure kind and fills
 * err; any HTTP status (also 4xx/5xx) is ORCH_CLIENT_OK with resp filled.
 * resp must be freed with orch_client_response_free in every case.
 */
orch_client_fail orch_client_perform(const orch_client_request *req, orch_client_response *resp,
                                     orch_error *err);
void orch_client_response_free(orch_client_response *resp);

/* Cap on every call's timeout (ms; 0 = none). Call before threads start. */
void orch_client_set_max_timeout_ms(long ms);
/* The calling thread's step deadline (orch_now_ns() clock; 0 = none): calls made by this thread
 * time out by then at the latest, and fail at once when it has passed. */
void orch_client_set_deadline(long long deadline_ns);

/* The configured base URL of a service without trailing "/" (malloc'd), or NULL. */
char *orch_client_base_url(const char *service);

/*
 * Where external systems reach this orchestrator (for callback URLs):
 * ORCH_PUBLIC_URL, else the address the HTTP server listens on (set by serve
 * with orch_client_set_self_url). malloc'd, or NULL when neither is known.
 */
char *orch_client_public_url(void);
void orch_client_set_self_url(const char *listen_host, int port);
