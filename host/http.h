/*
 * http.h - the HTTP server (libmicrohttpd with a thread pool) and the request /
 * response shapes handed to route handlers. No Lua here: http.c asks the
 * caller for the route table (routes.h; the Lua scripts declare it), matches
 * the request against it and calls the dispatch function the caller installed.
 *
 * Every error the server produces itself is a problem detail
 * {"detail", "status", "title"}: 404 unknown route, 405 wrong method (with
 * Allow), 413 body too large, 400 disallowed CORS preflight, 403 a write from
 * a foreign Origin, 415 a non-JSON body on a JSON route (guard.h), 401 no or a
 * bad bearer token when authentication is on (auth.h; docs/security.md). The
 * authenticated user is handed on as req.user_json; authorization is Lua's
 * (lua/orch/policy.lua), for the route's action.
 *
 * GET /api/ws/events is answered before the route table (the table declares
 * it with host = "websocket", for the OpenAPI document and authorization):
 * the WebSocket handshake (Origin checked, token and policy as the row's
 * action "events.read"; a refused client is closed with 1008), after which the
 * socket belongs to the thread of ws.h, which carries the events of events.h
 * (docs/events.md).
 */
#pragma once

#include "orch.h"

#include "config.h"
#include "routes.h"

typedef struct orch_kv {
  char *key;   /* owned */
  char *value; /* owned */
} orch_kv;

typedef struct orch_kvlist {
  orch_kv *items;
  size_t n, cap;
} orch_kvlist;

void orch_kvlist_add(orch_kvlist *l, const char *key, const char *value);
const char *orch_kvlist_get(const orch_kvlist *l, const char *key); /* case-insensitive */
void orch_kvlist_free(orch_kvlist *l);

typedef struct orch_http_request {
  const char *method;      /* borrowed from MHD */
  const char *path;        /* borrowed from MHD, without the query string */
  const orch_route *route; /* the matched route: route->action is what the request does
                              ("products.read"), for authorization; Lua sees it as req.action */
  orch_kvlist params;      /* path parameters, e.g. {id} */
  orch_kvlist query;       /* query string arguments */
  orch_kvlist headers;     /* request headers, names lowercased */
  const char *body;        /* request body (NUL-terminated) or NULL */
  size_t body_len;
  char request_id[17];   /* random hex id, also in the access log */
  const char *user_json; /* the authenticated user (auth.h), or NULL (auth off) */
} orch_http_request;

typedef struct orch_http_response {
  int status;
  char *body; /* owned, may be NULL for no body */
  size_t body_len;
  char *content_type;  /* owned; NULL means application/json */
  orch_kvlist headers; /* extra response headers */
} orch_http_response;

/* Set a problem-detail body {"detail","status","title"} (replaces any body). */
void orch_http_problem(orch_http_response *resp, int status, const char *detail);
/* The reason phrase for a status ("Not Found"). */
const char *orch_http_reason(int status);
void orch_http_response_clear(orch_http_response *resp);

/*
 * Called on an HTTP thread for every matched route. It must set resp->status
 * (and usually a body); it owns nothing of req.
 */
typedef void (*orch_http_dispatch_fn)(const orch_http_request *req, orch_http_response *resp,
                                      void *arg);

/*
 * Called on an HTTP thread for every request that is not a host route: a new
 * reference to the route table to match against (released by the server when
 * the request is answered), or NULL if there is none (the request gets 500).
 */
typedef orch_route_table *(*orch_http_routes_fn)(void *arg);

/*
 * Called on an HTTP thread, without a Lua lane, for `GET /api/health`: set resp to 200 "OK"
 * when the database answers, else a problem detail (503). It must not enter Lua.
 */
typedef void (*orch_http_health_fn)(orch_http_response *resp, void *arg);

/* 1 if the host itself answers `host` routes of this method and pattern ("websocket"). */
int orch_http_host_route_known(const char *host, const char *method, const char *pattern);

typedef struct orch_http orch_http;

/* Start listening (cfg is borrowed and must outlive the server). */
int orch_http_start(orch_http **out, const orch_config *cfg, orch_http_routes_fn routes,
                    orch_http_dispatch_fn dispatch, orch_http_health_fn health, void *arg,
                    orch_error *err) ORCH_MUSTCHECK;
/* The port actually bound (useful with port 0). */
int orch_http_port(const orch_http *h);
/* Stop accepting, finish in-flight requests, free. NULL is a no-op. */
void orch_http_stop(orch_http *h);
