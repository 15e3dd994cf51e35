/*
 * outbound.h - HTTP calls from workflow steps to configured services (libcurl).
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
 * asks for, its timeout is capped at orch_outbound_set_max_timeout_ms (the
 * setting ORCH_CLIENT_MAX_TIMEOUT_MS, default 60000) and at what is left of
 * the calling thread's step deadline (orch_outbound_set_deadline).
 *
 * Thread safety: orch_outbound_global_init() once in main before any thread
 * starts; each call uses its own easy handle.
 */
#pragma once

#include "orch.h"

#include "buf.h"

/* What went wrong in a call (the Lua side shows it as a word). */
typedef enum orch_outbound_fail {
  ORCH_OUTBOUND_OK = 0,
  ORCH_OUTBOUND_CONFIG,    /* service not configured */
  ORCH_OUTBOUND_INVALID,   /* bad method, path or header */
  ORCH_OUTBOUND_DNS,       /* host name did not resolve */
  ORCH_OUTBOUND_CONNECT,   /* connection refused or unreachable */
  ORCH_OUTBOUND_TIMEOUT,   /* the call took longer than its timeout */
  ORCH_OUTBOUND_TOO_LARGE, /* the response exceeded the size cap */
  ORCH_OUTBOUND_IO,        /* any other transfer error */
} orch_outbound_fail;

const char *orch_outbound_fail_name(orch_outbound_fail f);

typedef struct orch_outbound_request {
  const char *service;        /* [a-z0-9_]+ */
  const char *method;         /* GET POST PUT PATCH DELETE HEAD OPTIONS */
  const char *path;           /* "/api/...", query string included */
  const char *const *headers; /* "Name: value" lines (borrowed) */
  size_t nheaders;
  const char *body; /* NULL = no body */
  size_t body_len;
  long timeout_ms; /* 0 = the configured default */
} orch_outbound_request;

typedef struct orch_outbound_response {
  long status;
  orch_buf headers; /* header lines of the final response, "name: value\n" each, names lowercase */
  orch_buf body;
  char *url; /* the URL called (without credentials); owned */
} orch_outbound_response;

#define ORCH_OUTBOUND_RESPONSE_INIT                                                                \
  { 0, ORCH_BUF_INIT, ORCH_BUF_INIT, NULL }

int orch_outbound_global_init(orch_error *err) ORCH_MUSTCHECK;
void orch_outbound_global_cleanup(void);

/*
 * Perform one call. On transport failure returns the failure kind and fills
 * err; any HTTP status (also 4xx/5xx) is ORCH_OUTBOUND_OK with resp filled.
 * resp must be freed with orch_outbound_response_free in every case.
 */
orch_outbound_fail orch_outbound_perform(const orch_outbound_request *req,
                                         orch_outbound_response *resp, orch_error *err);
void orch_outbound_response_free(orch_outbound_response *resp);

/* Cap on every call's timeout (ms; 0 = none). Call before threads start. */
void orch_outbound_set_max_timeout_ms(long ms);
/* The calling thread's step deadline (orch_now_ns() clock; 0 = none): calls made by this thread
 * time out by then at the latest, and fail at once when it has passed. */
void orch_outbound_set_deadline(long long deadline_ns);

/* The configured base URL of a service without trailing "/" (malloc'd), or NULL. */
char *orch_outbound_base_url(const char *service);

/*
 * Where external systems reach this orchestrator (for callback URLs):
 * ORCH_PUBLIC_URL, else the address the HTTP server listens on (set by serve
 * with orch_outbound_set_self_url). malloc'd, or NULL when neither is known.
 */
char *orch_outbound_public_url(void);
void orch_outbound_set_self_url(const char *listen_host, int port);
