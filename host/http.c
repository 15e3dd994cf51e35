/* http.c - libmicrohttpd daemon: body limits, CORS, routing, problem details, access log. */
#include "orch.h"

#include "buf.h"
#include "auth.h"
#include "events.h"
#include "guard.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "ws.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

typedef struct req_state req_state;

/* One open connection, for the header deadline (MHD_OPTION_NOTIFY_CONNECTION). */
typedef struct conn_entry {
  int fd;
  int phase;          /* CONN_HEADERS, CONN_REQUEST (being served) or CONN_EXEMPT */
  long long since_ns; /* when it began to wait for the request it has not sent yet */
  struct conn_entry *prev, *next;
} conn_entry;

enum { CONN_HEADERS, CONN_REQUEST, CONN_EXEMPT };

struct orch_http {
  struct MHD_Daemon *daemon;
  const orch_config *cfg;
  orch_http_routes_fn routes;
  orch_http_dispatch_fn dispatch;
  orch_http_health_fn health;
  void *arg;
  int port;
  orch_ws_server *ws; /* the upgraded sockets of /api/ws/events */
  /* The Lua lanes: libmicrohttpd's threads (cfg->http_io_threads) only read and write
     connections and answer health; every other request is routed and served by one of
     cfg->http_threads lane threads while its connection is suspended. The response is built
     there and queued by the connection's own thread once it is resumed. */
  pthread_mutex_t lane_mu;
  pthread_cond_t lane_cv;
  pthread_t *lanes;
  int nlanes;
  int stopping;
  req_state *job_head, *job_tail; /* requests waiting for a lane, oldest first */
  /* The header deadline: libmicrohttpd 0.9.75 only has an idle timeout, which a client that
     trickles a header byte now and then never meets. The reaper thread shuts down (it does not
     close: the socket stays libmicrohttpd's) every connection whose next request has not been
     read completely within cfg->http_timeout_s; libmicrohttpd then closes it. */
  pthread_mutex_t conn_mu;
  conn_entry *conns;
  pthread_t reaper;
  int reaper_started;
  int reaper_stop; /* under conn_mu */
  pthread_cond_t reaper_cv;
};

/* Per-connection request state, created on the first callback, freed on completion. */
struct req_state {
  orch_buf body;
  int too_large;
  int refuse_close; /* an ambiguous framing (smuggling): answered 400 and closed */
  int status;       /* for the access log */
  size_t sent;
  long long started_ns;
  char request_id[17];
  char action[64]; /* the matched route's action, for the metrics ("" = none) */
  char *method;    /* owned copies for the access log */
  char *url;
  /* Served on a lane: */
  struct MHD_Connection *conn;
  const char *req_url, *req_method; /* libmicrohttpd's, valid for the request */
  req_state *next;                  /* in the lane queue */
  int on_lane;                      /* responses are kept in `pending`, not queued */
  int served;                       /* the lane is done; `pending` is the answer (NULL: close) */
  struct MHD_Response *pending;
  unsigned pending_status;
};

void orch_kvlist_add(orch_kvlist *l, const char *key, const char *value) {
  if (l->n == l->cap)
    l->items = orch_xrealloc(l->items, (l->cap = l->cap ? l->cap * 2 : 16) * sizeof *l->items);
  l->items[l->n].key = orch_strdup(key);
  l->items[l->n].value = orch_strdup(value ? value : "");
  l->n++;
}

const char *orch_kvlist_get(const orch_kvlist *l, const char *key) {
  for (size_t i = 0; i < l->n; i++)
    if (!strcasecmp(l->items[i].key, key)) return l->items[i].value;
  return NULL;
}

void orch_kvlist_free(orch_kvlist *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->items[i].key);
    free(l->items[i].value);
  }
  free(l->items);
  *l = (orch_kvlist){0};
}

const char *orch_http_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Entity";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 510: return "Not Extended";
  default: return "Error";
  }
}

void orch_http_problem(orch_http_response *resp, int status, const char *detail) {
  orch_buf b = ORCH_BUF_INIT;
  const char *title = orch_http_reason(status);
  orch_buf_puts(&b, "{\"detail\":");
  orch_buf_json_string(&b, detail, strlen(detail));
  orch_buf_printf(&b, ",\"status\":%d,\"title\":", status);
  orch_buf_json_string(&b, title, strlen(title));
  orch_buf_puts(&b, "}");
  free(resp->body);
  free(resp->content_type);
  resp->content_type = NULL;
  resp->status = status;
  resp->body = orch_buf_take(&b, &resp->body_len);
}

void orch_http_response_clear(orch_http_response *resp) {
  free(resp->body);
  free(resp->content_type);
  orch_kvlist_free(&resp->headers);
  *resp = (orch_http_response){0};
}

/* ---- CORS (guard.h) ---- */

static const char *request_origin(const orch_http *h, struct MHD_Connection *conn) {
  const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
  const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
  return orch_guard_origin(h->cfg, origin, host);
}

static void add_cors_headers(const orch_http *h, struct MHD_Connection *conn,
                             struct MHD_Response *r) {
  const char *allow = request_origin(h, conn);
  if (!allow) return;
  MHD_add_response_header(r, "Access-Control-Allow-Origin", allow);
  if (strcmp(allow, "*")) {
    MHD_add_response_header(r, "Vary", "Origin");
    MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
  }
  MHD_add_response_header(r, "Access-Control-Expose-Headers", "Content-Range, ETag");
}

/* 1 when a browser on a foreign origin sends a request that may change state. */
static int foreign_write(const orch_http *h, struct MHD_Connection *conn, const char *method) {
  if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) return 0;
  return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin") && !request_origin(h, conn);
}

/* ---- sending ---- */

/* Queue r (taking it over), or on a lane keep it for the connection's thread. */
static enum MHD_Result queue_response(struct MHD_Connection *conn, req_state *rs, unsigned status,
                                      struct MHD_Response *r) {
  if (rs->on_lane) {
    if (rs->pending) MHD_destroy_response(rs->pending);
    rs->pending = r;
    rs->pending_status = status;
    return MHD_YES;
  }
  enum MHD_Result ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result send_response(orch_http *h, struct MHD_Connection *conn, req_state *rs,
                                     orch_http_response *resp) {
  size_t len = resp->body ? resp->body_len : 0;
  char *body = resp->body;
  resp->body = NULL;
  if (resp->status == 204 || resp->status == 304) {
    free(body);
    body = NULL;
    len = 0;
  }
  struct MHD_Response *r = MHD_create_response_from_buffer(
      len, body ? body : (void *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  if (len || resp->content_type)
    MHD_add_response_header(r, "Content-Type",
                            resp->content_type ? resp->content_type : "application/json");
  for (size_t i = 0; i < resp->headers.n; i++)
    MHD_add_response_header(r, resp->headers.items[i].key, resp->headers.items[i].value);
  MHD_add_response_header(r, "X-Request-Id", rs->request_id);
  if (rs->refuse_close) MHD_add_response_header(r, "Connection", "close");
  add_cors_headers(h, conn, r);
  rs->status = resp->status;
  rs->sent = len;
  return queue_response(conn, rs, (unsigned)resp->status, r);
}

/* A problem detail with one extra header (NULL: none). */
static enum MHD_Result send_problem_with(orch_http *h, struct MHD_Connection *conn, req_state *rs,
                                         int status, const char *detail, const char *header,
                                         const char *value) {
  orch_http_response resp = {0};
  orch_http_problem(&resp, status, detail);
  if (header) orch_kvlist_add(&resp.headers, header, value);
  enum MHD_Result ret = send_response(h, conn, rs, &resp);
  orch_http_response_clear(&resp);
  return ret;
}

static enum MHD_Result send_problem(orch_http *h, struct MHD_Connection *conn, req_state *rs,
                                    int status, const char *detail) {
  return send_problem_with(h, conn, rs, status, detail, NULL, NULL);
}

/* Answer a CORS preflight (OPTIONS with Access-Control-Request-Method). */
static enum MHD_Result preflight(orch_http *h, struct MHD_Connection *conn, req_state *rs) {
  if (!request_origin(h, conn)) return send_problem(h, conn, rs, 400, "Disallowed CORS origin");
  orch_http_response resp = {.status = 200};
  resp.body = orch_strdup("OK");
  resp.body_len = 2;
  resp.content_type = orch_strdup("text/plain; charset=utf-8");
  orch_kvlist_add(&resp.headers, "Access-Control-Allow-Methods",
                  "GET, POST, PUT, PATCH, DELETE, OPTIONS");
  orch_kvlist_add(&resp.headers, "Access-Control-Allow-Headers",
                  "content-type, authorization, if-none-match, idempotency-key");
  orch_kvlist_add(&resp.headers, "Access-Control-Max-Age", "600");
  enum MHD_Result ret = send_response(h, conn, rs, &resp);
  orch_http_response_clear(&resp);
  return ret;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
  ORCH_UNUSED(kind);
  char *lower = orch_strdup(key);
  for (char *p = lower; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  orch_kvlist_add(cls, lower, value);
  free(lower);
  return MHD_YES;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
  ORCH_UNUSED(kind);
  orch_kvlist_add(cls, key, value);
  return MHD_YES;
}

/* ---- authentication (auth.h): the one hook of the request pipeline ---- */

/*
 * ORCH_OK when the request may go on: auth off, a public action, or a token
 * that verifies (then *user_json is the user, malloc'd). The token is the bearer
 * of the Authorization header, else `token` (the WebSocket's subprotocol or query).
 */
static int authenticate(struct MHD_Connection *conn, const char *action, const char *token,
                        char **user_json) {
  *user_json = NULL;
  if (!orch_auth_active() || orch_auth_public_action(action)) return ORCH_OK;
  const char *bearer =
      orch_auth_bearer(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
  if (!bearer) bearer = token;
  if (!bearer) return ORCH_EINVAL;
  orch_error err = ORCH_ERROR_INIT;
  int rc = orch_auth_verify(bearer, user_json, &err);
  if (rc != ORCH_OK) LOG_INFO("auth", "token refused: %s", err.message);
  orch_error_clear(&err);
  return rc;
}

static enum MHD_Result send_unauthorized(orch_http *h, struct MHD_Connection *conn, req_state *rs) {
  return send_problem_with(h, conn, rs, 401, "Not authenticated", "WWW-Authenticate", "Bearer");
}

/* ---- request hygiene: what bad input is refused before routing (docs/input-limits.md) ----
 * libmicrohttpd hands the host decoded strings; these checks keep what it cannot express
 * (an embedded NUL, invalid UTF-8, ambiguous framing) from reaching Lua or the database. */

/* Percent-decoding in place for the path and query (MHD_OPTION_UNESCAPE_CALLBACK). A %00
   becomes the overlong pair C0 80, which is not UTF-8, so that the UTF-8 check below refuses
   it instead of the C string ending early ("/api/health%00/x" would route as /api/health). */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s) {
  ORCH_UNUSED(cls);
  ORCH_UNUSED(conn);
  char *out = s;
  for (const char *in = s; *in;) {
    if (in[0] == '%' && isxdigit((unsigned char)in[1]) && isxdigit((unsigned char)in[2])) {
      char hex[3] = {in[1], in[2], 0};
      unsigned char c = (unsigned char)strtoul(hex, NULL, 16);
      if (c) {
        *out++ = (char)c;
      } else {
        *out++ = (char)0xC0;
        *out++ = (char)0x80;
      }
      in += 3;
    } else {
      *out++ = *in++;
    }
  }
  *out = '\0';
  return (size_t)(out - s);
}

typedef struct arg_check {
  size_t n;
  int bad;
} arg_check;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
  ORCH_UNUSED(kind);
  arg_check *c = cls;
  c->n++;
  if (!orch_ws_utf8_valid((const unsigned char *)key, strlen(key)) ||
      (value && !orch_ws_utf8_valid((const unsigned char *)value, strlen(value))))
    c->bad = 1;
  return MHD_YES;
}

static enum MHD_Result count_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
  ORCH_UNUSED(kind);
  ORCH_UNUSED(value);
  if (!strcasecmp(key, "Content-Length")) ++*(int *)cls;
  return MHD_YES;
}

/* A request whose body length is ambiguous (Content-Length with Transfer-Encoding, or two
   Content-Length headers): a proxy in front may frame it differently (request smuggling). */
static const char *ambiguous_framing(struct MHD_Connection *conn) {
  int lengths = 0;
  MHD_get_connection_values(conn, MHD_HEADER_KIND, count_value, &lengths);
  if (lengths > 1) return "Bad Request: more than one Content-Length header";
  if (lengths && MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding"))
    return "Bad Request: Content-Length together with Transfer-Encoding";
  return NULL;
}

/* Path, query and body checks; 0 to go on, else the status with *detail set. */
static int request_hygiene(const orch_http *h, struct MHD_Connection *conn, const char *url,
                           const req_state *rs, const char **detail) {
  if (!orch_ws_utf8_valid((const unsigned char *)url, strlen(url))) {
    *detail = "Bad Request: the path is not valid UTF-8 or contains a NUL (%00)";
    return 400;
  }
  arg_check ac = {0};
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, check_arg, &ac);
  if (h->cfg->http_max_query_params > 0 && ac.n > (size_t)h->cfg->http_max_query_params) {
    *detail = "Request Header Fields Too Large: too many query parameters "
              "(ORCH_HTTP_MAX_QUERY_PARAMS)";
    return 431;
  }
  if (ac.bad) {
    *detail = "Bad Request: a query parameter is not valid UTF-8 or contains a NUL (%00)";
    return 400;
  }
  if (rs->body.len && !orch_ws_utf8_valid((const unsigned char *)rs->body.data, rs->body.len)) {
    *detail = "Bad Request: the request body is not valid UTF-8";
    return 400;
  }
  if (rs->body.len && memchr(rs->body.data, '\0', rs->body.len)) {
    *detail = "Bad Request: the request body contains a NUL byte";
    return 400;
  }
  return 0;
}

/* ---- WebSocket: the UI's invalidation stream (ws.h, events.h) ---- */

#define WS_EVENTS_PATH "/api/ws/events"

static void ws_release(void *handle) {
  MHD_upgrade_action(handle, MHD_UPGRADE_ACTION_CLOSE);
}

static void ws_upgraded(void *cls, struct MHD_Connection *conn, void *req_cls, const char *extra_in,
                        size_t extra_in_size, MHD_socket sock,
                        struct MHD_UpgradeResponseHandle *urh) {
  ORCH_UNUSED(conn);
  ORCH_UNUSED(req_cls);
  orch_http *h = cls;
  orch_ws_adopt(h->ws, sock, extra_in, extra_in_size, urh);
}

/* After the handshake of a refused client: close 1008 (policy violation), as core does. */
static void ws_refused(void *cls, struct MHD_Connection *conn, void *req_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh) {
  ORCH_UNUSED(cls);
  ORCH_UNUSED(conn);
  ORCH_UNUSED(req_cls);
  ORCH_UNUSED(extra_in);
  ORCH_UNUSED(extra_in_size);
  orch_buf frame = ORCH_BUF_INIT;
  const char payload[] = "\x03\xf0Not authorized"; /* 1008 = 0x03f0 */
  orch_ws_encode_frame(&frame, ORCH_WS_OP_CLOSE, payload, sizeof payload - 1);
  ssize_t n = send(sock, frame.data, frame.len, MSG_NOSIGNAL);
  ORCH_UNUSED(n);
  orch_buf_free(&frame);
  MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* The token the UI offers after "base64.bearer.token" in Sec-WebSocket-Protocol (malloc'd). */
static char *ws_protocol_token(const char *proto) {
  const char *p = proto ? strstr(proto, "base64.bearer.token") : NULL;
  if (!p || !(p = strchr(p, ','))) return NULL;
  p++;
  while (*p == ' ')
    p++;
  size_t n = strcspn(p, ", ");
  return n ? orch_strndup(p, n) : NULL;
}

/*
 * The table's row of the WebSocket route (declared with host = "websocket"), or NULL.
 * Its action is what the token check and the policy see for the upgrade.
 */
static const orch_route *ws_row(const orch_route_table *table) {
  size_t n = 0;
  const orch_route *r = table ? orch_route_table_list(table, &n) : NULL;
  for (size_t i = 0; i < n; i++)
    if (r[i].host && !strcmp(r[i].host, "websocket") && !strcmp(r[i].method, "GET") &&
        !strcmp(r[i].pattern, WS_EVENTS_PATH))
      return &r[i];
  return NULL;
}

/* Authenticated and allowed by the policy (a dispatch of the row's action to ws.authorize). */
static int ws_allowed(orch_http *h, struct MHD_Connection *conn, req_state *rs, const char *proto,
                      const orch_route *row) {
  char *token = ws_protocol_token(proto);
  const char *query = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
  char *user_json = NULL;
  int ok = authenticate(conn, row->action, token ? token : query, &user_json) == ORCH_OK;
  free(token);
  if (ok) {
    orch_route route = *row;
    route.handler = "ws.authorize"; /* lua/orch/api/ws.lua: 204 lets the upgrade through */
    route.host = NULL;
    orch_http_request req = {
        .method = "GET", .path = WS_EVENTS_PATH, .route = &route, .user_json = user_json};
    memcpy(req.request_id, rs->request_id, sizeof req.request_id);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, &req.headers);
    orch_http_response resp = {0};
    h->dispatch(&req, &resp, h->arg);
    ok = resp.status >= 200 && resp.status < 300;
    orch_http_response_clear(&resp);
    orch_kvlist_free(&req.headers);
  }
  free(user_json);
  return ok;
}

static void ws_sink(void *arg, const char *text, size_t len) {
  orch_ws_broadcast(arg, text, len);
}

/* 1 if the comma-separated header value lists token (case-insensitive). */
static int has_token(const char *value, const char *token) {
  size_t tlen = strlen(token);
  for (const char *p = value; p && *p;) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    const char *end = p;
    while (*end && *end != ',')
      end++;
    const char *t = end;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
      t--;
    if ((size_t)(t - p) == tlen && !strncasecmp(p, token, tlen)) return 1;
    p = end;
  }
  return 0;
}

/* RFC 6455 handshake; the socket then belongs to the WebSocket thread. */
static enum MHD_Result websocket_upgrade(orch_http *h, struct MHD_Connection *conn,
                                         const char *method, req_state *rs, const orch_route *row) {
  orch_http_response resp = {0};
  const char *upgrade = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade");
  const char *connection = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection");
  const char *version = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
  const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
  const char *proto = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Protocol");
  char accept[29];
  if (strcmp(method, "GET")) {
    orch_http_problem(&resp, 405, "Method Not Allowed");
    orch_kvlist_add(&resp.headers, "Allow", "GET");
  } else if (!upgrade || !has_token(upgrade, "websocket") || !connection ||
             !has_token(connection, "upgrade")) {
    orch_http_problem(&resp, 400, "Expected a WebSocket upgrade request");
  } else if (!version || strcmp(version, "13")) {
    orch_http_problem(&resp, 426, "Unsupported WebSocket version (13 is supported)");
    orch_kvlist_add(&resp.headers, "Sec-WebSocket-Version", "13");
  } else if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin") &&
             !request_origin(h, conn)) {
    orch_http_problem(&resp, 403, "WebSocket origin not allowed");
  } else if (orch_ws_accept_key(key, accept) != ORCH_OK) {
    orch_http_problem(&resp, 400, "Invalid Sec-WebSocket-Key");
  } else if (h->cfg->ws_max_connections > 0 && orch_ws_count(h->ws) >= h->cfg->ws_max_connections) {
    orch_http_problem(&resp, 503, "Too many WebSocket connections (ORCH_WS_MAX_CONNECTIONS)");
    orch_kvlist_add(&resp.headers, "Retry-After", "30");
  } else {
    int allowed = ws_allowed(h, conn, rs, proto, row);
    struct MHD_Response *r = MHD_create_response_for_upgrade(allowed ? ws_upgraded : ws_refused, h);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Upgrade", "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
    /* The UI offers its token as a second subprotocol; core answers with the scheme. */
    if (proto && has_token(proto, "base64.bearer.token"))
      MHD_add_response_header(r, "Sec-WebSocket-Protocol", "base64.bearer.token");
    MHD_add_response_header(r, "X-Request-Id", rs->request_id);
    rs->status = 101;
    snprintf(rs->action, sizeof rs->action, "events.read");
    return queue_response(conn, rs, MHD_HTTP_SWITCHING_PROTOCOLS, r);
  }
  enum MHD_Result ret = send_response(h, conn, rs, &resp);
  orch_http_response_clear(&resp);
  return ret;
}

int orch_http_host_route_known(const char *host, const char *method, const char *pattern) {
  return host && method && pattern && !strcmp(host, "websocket") && !strcmp(method, "GET") &&
         !strcmp(pattern, WS_EVENTS_PATH);
}

static enum MHD_Result route_and_dispatch(orch_http *h, struct MHD_Connection *conn,
                                          const char *url, const char *method, req_state *rs,
                                          const orch_route_table *table);

static enum MHD_Result handle(orch_http *h, struct MHD_Connection *conn, const char *url,
                              const char *method, req_state *rs) {
  if (!strcmp(method, "OPTIONS") &&
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Method"))
    return preflight(h, conn, rs);
  const char *detail = NULL;
  int bad = request_hygiene(h, conn, url, rs, &detail);
  if (bad) return send_problem(h, conn, rs, bad, detail);
  /* HEAD is answered as GET; libmicrohttpd sends the headers without the body. */
  if (!strcmp(method, "HEAD")) method = "GET";
  orch_route_table *table = h->routes(h->arg);
  if (!table)
    return send_problem(h, conn, rs, 500, "Internal Server Error: the scripts could not be loaded");
  /* The host's own routes (declared in the table with `host`, answered here). */
  const orch_route *ws = NULL;
  enum MHD_Result ret;
  if ((!strcmp(url, WS_EVENTS_PATH) || !strcmp(url, WS_EVENTS_PATH "/")) && (ws = ws_row(table)))
    ret = websocket_upgrade(h, conn, method, rs, ws);
  else
    ret = route_and_dispatch(h, conn, url, method, rs, table);
  orch_route_table_unref(table);
  return ret;
}

static enum MHD_Result route_and_dispatch(orch_http *h, struct MHD_Connection *conn,
                                          const char *url, const char *method, req_state *rs,
                                          const orch_route_table *table) {
  const orch_route *route = NULL;
  orch_route_param params[ORCH_ROUTE_MAX_PARAMS];
  size_t nparams = 0;
  char allow[256];
  int m = orch_route_match(table, method, url, &route, params, &nparams, allow, sizeof allow);
  if (m == ORCH_ROUTE_NO_PATH) return send_problem(h, conn, rs, 404, "Not Found");
  if (m == ORCH_ROUTE_NO_METHOD) {
    return send_problem_with(h, conn, rs, 405, "Method Not Allowed", "Allow", allow);
  }

  if (foreign_write(h, conn, method)) return send_problem(h, conn, rs, 403, "Origin not allowed");
  if ((route->flags & ORCH_ROUTE_JSON_BODY) && rs->body.len &&
      !orch_guard_is_json(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type")))
    return send_problem(h, conn, rs, 415, "The request body must be application/json");

  char *user_json = NULL;
  if (authenticate(conn, route->action, NULL, &user_json) != ORCH_OK)
    return send_unauthorized(h, conn, rs);

  orch_http_request req = {.method = method, .path = url, .route = route, .user_json = user_json};
  snprintf(rs->action, sizeof rs->action, "%s", route->action ? route->action : "");
  memcpy(req.request_id, rs->request_id, sizeof req.request_id);
  for (size_t i = 0; i < nparams; i++) {
    char *k = orch_strndup(params[i].name, params[i].name_len);
    char *v = orch_strndup(params[i].value, params[i].value_len);
    orch_kvlist_add(&req.params, k, v);
    free(k);
    free(v);
  }
  MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, &req.headers);
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &req.query);
  if (rs->body.len) {
    req.body = rs->body.data;
    req.body_len = rs->body.len;
  }
  orch_http_response resp = {0};
  h->dispatch(&req, &resp, h->arg);
  if (resp.status < 100 || resp.status > 599)
    orch_http_problem(&resp, 500, "Internal Server Error: handler set no status");
  enum MHD_Result ret = send_response(h, conn, rs, &resp);
  orch_http_response_clear(&resp);
  orch_kvlist_free(&req.params);
  orch_kvlist_free(&req.headers);
  orch_kvlist_free(&req.query);
  free(user_json);
  return ret;
}

/* ---- the header deadline ---- */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  orch_http *h = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    conn_entry *e = orch_xcalloc(1, sizeof *e);
    e->fd = ci ? ci->connect_fd : -1;
    e->phase = e->fd >= 0 ? CONN_HEADERS : CONN_EXEMPT;
    e->since_ns = orch_now_ns();
    pthread_mutex_lock(&h->conn_mu);
    e->next = h->conns;
    if (h->conns) h->conns->prev = e;
    h->conns = e;
    pthread_mutex_unlock(&h->conn_mu);
    *socket_context = e;
  } else if (*socket_context) {
    /* Called before libmicrohttpd closes the socket: under conn_mu the reaper cannot shut
       down a descriptor that is being reused. */
    conn_entry *e = *socket_context;
    pthread_mutex_lock(&h->conn_mu);
    if (e->prev)
      e->prev->next = e->next;
    else
      h->conns = e->next;
    if (e->next) e->next->prev = e->prev;
    pthread_mutex_unlock(&h->conn_mu);
    free(e);
    *socket_context = NULL;
  }
}

static void conn_phase(orch_http *h, struct MHD_Connection *conn, int phase) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  conn_entry *e = ci ? ci->socket_context : NULL;
  if (!e) return;
  pthread_mutex_lock(&h->conn_mu);
  if (e->phase != CONN_EXEMPT) {
    e->phase = phase;
    e->since_ns = orch_now_ns();
  }
  pthread_mutex_unlock(&h->conn_mu);
}

static void *reaper_main(void *arg) {
  orch_http *h = arg;
  long long limit_ns = h->cfg->http_timeout_s * 1000000000LL;
  pthread_mutex_lock(&h->conn_mu);
  while (!h->reaper_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 250 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&h->reaper_cv, &h->conn_mu, &ts);
    if (h->reaper_stop) break;
    long long now = orch_now_ns();
    for (conn_entry *e = h->conns; e; e = e->next)
      if (e->phase == CONN_HEADERS && now - e->since_ns > limit_ns) {
        shutdown(e->fd, SHUT_RDWR);
        e->phase = CONN_EXEMPT; /* once */
        LOG_WARN("http", "request not received within %d s: connection closed",
                 h->cfg->http_timeout_s);
      }
  }
  pthread_mutex_unlock(&h->conn_mu);
  return NULL;
}

/* ---- Lua lanes and the health lane ---- */

/* A lane thread: serve queued requests one after the other; the connection is resumed with the
   answer in rs->pending. When the server stops, what is still queued is answered 503. */
static void *lane_main(void *arg) {
  orch_http *h = arg;
  for (;;) {
    pthread_mutex_lock(&h->lane_mu);
    while (!h->job_head && !h->stopping)
      pthread_cond_wait(&h->lane_cv, &h->lane_mu);
    req_state *rs = h->job_head;
    if (rs) {
      h->job_head = rs->next;
      if (!h->job_head) h->job_tail = NULL;
      rs->next = NULL;
    }
    int stopping = h->stopping;
    pthread_mutex_unlock(&h->lane_mu);
    if (!rs) break;
    rs->on_lane = 1;
    if (stopping) {
      send_problem_with(h, rs->conn, rs, 503, "Service Unavailable: the server is stopping",
                        "Retry-After", "5");
    } else {
      orch_log_context(rs->request_id, NULL); /* JSON log lines of this request carry its id */
      handle(h, rs->conn, rs->req_url, rs->req_method, rs);
      orch_log_context(NULL, NULL);
    }
    rs->on_lane = 0;
    rs->served = 1;
    MHD_resume_connection(rs->conn);
  }
  return NULL;
}

/* Hand the request to the lanes: 1 if queued (the connection is suspended), 0 if stopping. */
static int lane_enqueue(orch_http *h, struct MHD_Connection *conn, req_state *rs, const char *url,
                        const char *method) {
  pthread_mutex_lock(&h->lane_mu);
  int ok = !h->stopping;
  if (ok) {
    rs->conn = conn;
    rs->req_url = url;
    rs->req_method = method;
    rs->next = NULL;
    if (h->job_tail)
      h->job_tail->next = rs;
    else
      h->job_head = rs;
    h->job_tail = rs;
    /* Under the lock: no lane can resume it before it is suspended. */
    MHD_suspend_connection(conn);
    pthread_cond_signal(&h->lane_cv);
  }
  pthread_mutex_unlock(&h->lane_mu);
  return ok;
}

/* GET or HEAD of /api/health(/): answered by the host on any HTTP thread, without a lane. */
static int is_health(const char *method, const char *url) {
  return (!strcmp(method, "GET") || !strcmp(method, "HEAD")) &&
         (!strcmp(url, "/api/health") || !strcmp(url, "/api/health/"));
}

static enum MHD_Result answer_health(orch_http *h, struct MHD_Connection *conn, req_state *rs) {
  orch_http_response resp = {0};
  snprintf(rs->action, sizeof rs->action, "health.read");
  h->health(&resp, h->arg);
  if (resp.status == 503 && !orch_kvlist_get(&resp.headers, "Retry-After"))
    orch_kvlist_add(&resp.headers, "Retry-After", "5");
  enum MHD_Result ret = send_response(h, conn, rs, &resp);
  orch_http_response_clear(&resp);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
  orch_http *h = cls;
  req_state *rs = *req_cls;
  if (!rs) {
    rs = orch_xcalloc(1, sizeof *rs);
    rs->started_ns = orch_now_ns();
    rs->method = orch_strdup(method);
    rs->url = orch_guard_mask_url(url); /* for the access log: no callback tokens */
    orch_random_hex(rs->request_id, 8);
    *req_cls = rs;
    conn_phase(h, conn, CONN_REQUEST); /* the request line and headers are in */
    const char *framing = ambiguous_framing(conn);
    if (framing) {
      rs->refuse_close = 1;
      return send_problem(h, conn, rs, 400, framing);
    }
    /* A transfer coding other than chunked: libmicrohttpd would wait for a body it cannot
       frame until the idle timeout. RFC 9112 6.1 suggests 501; bad input is a 4xx here. */
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    if (te && strcasecmp(te, "chunked")) {
      rs->refuse_close = 1;
      return send_problem(h, conn, rs, 400,
                          "Bad Request: only the chunked Transfer-Encoding is supported");
    }
    /* RFC 9112 3.2: an HTTP/1.1 request without Host is a 400. */
    if (version && !strcmp(version, "HTTP/1.1") &&
        !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host"))
      return send_problem(h, conn, rs, 400, "Bad Request: an HTTP/1.1 request needs a Host header");
    /* A modestly oversized body is read and dropped so that the client sees
       the 413 (clients that send the body at once otherwise get a reset);
       an absurd declared size is refused before reading any of it. */
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    unsigned long long limit = h->cfg->max_body * 16ULL;
    if (limit < 16ULL << 20) limit = 16ULL << 20;
    if (cl && strtoull(cl, NULL, 10) > limit) {
      rs->too_large = 1;
      return send_problem(h, conn, rs, 413, "Request body too large");
    }
    return MHD_YES;
  }
  if (*upload_data_size) {
    /* The body deadline: a trickled upload is cut off (the idle timeout alone would let one
       byte every few seconds hold the connection forever). */
    if (h->cfg->http_timeout_s > 0 &&
        orch_now_ns() - rs->started_ns > h->cfg->http_timeout_s * 1000000000LL) {
      LOG_WARN("http", "request body not complete after %d s: connection closed",
               h->cfg->http_timeout_s);
      return MHD_NO;
    }
    if (!rs->too_large && rs->body.len + *upload_data_size > h->cfg->max_body) {
      rs->too_large = 1;
      orch_buf_free(&rs->body);
    }
    if (!rs->too_large) orch_buf_append(&rs->body, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (rs->served) {
    /* Back from a lane: queue its answer on this, the connection's own, thread. */
    struct MHD_Response *r = rs->pending;
    rs->pending = NULL;
    if (!r) return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, rs->pending_status, r);
    MHD_destroy_response(r);
    return ret;
  }
  if (rs->too_large) return send_problem(h, conn, rs, 413, "Request body too large");
  if (h->health && is_health(method, url) &&
      !MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, NULL, NULL))
    return answer_health(h, conn, rs);
  if (lane_enqueue(h, conn, rs, url, method)) return MHD_YES; /* resumed when served */
  return send_problem_with(h, conn, rs, 503, "Service Unavailable: the server is stopping",
                           "Retry-After", "5");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
  orch_http *h = cls;
  req_state *rs = *req_cls;
  if (!rs) return;
  if (rs->pending) MHD_destroy_response(rs->pending);
  /* The next request on this connection gets the full time; an upgraded socket none. */
  conn_phase(h, conn, rs->status == 101 ? CONN_EXEMPT : CONN_HEADERS);
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  char addr[INET6_ADDRSTRLEN] = "-";
  if (ci && ci->client_addr) {
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
      inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
    else if (sa->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
  }
  double ms = (double)(orch_now_ns() - rs->started_ns) / 1e6;
  orch_metrics_http(rs->action[0] ? rs->action : "none", rs->status, ms / 1e3);
  orch_log_context(rs->request_id, NULL);
  LOG_INFO("access", "%s \"%s %s\" %d %zuB %.2fms id=%s%s", addr, rs->method, rs->url, rs->status,
           rs->sent, ms, rs->request_id,
           toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
  orch_log_context(NULL, NULL);
  orch_buf_free(&rs->body);
  free(rs->method);
  free(rs->url);
  free(rs);
  *req_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  ORCH_UNUSED(cls);
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && msg[n - 1] == '\n')
    msg[--n] = '\0';
  LOG_WARN("http", "%s", msg);
}

int orch_http_start(orch_http **out, const orch_config *cfg, orch_http_routes_fn routes,
                    orch_http_dispatch_fn dispatch, orch_http_health_fn health, void *arg,
                    orch_error *err) {
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *ai = NULL;
  char port[16];
  snprintf(port, sizeof port, "%d", cfg->http_port);
  int gai = getaddrinfo(cfg->http_host, port, &hints, &ai);
  if (gai != 0) {
    orch_error_set(err, ORCH_ECONFIG, "cannot resolve listen address '%s': %s", cfg->http_host,
                   gai_strerror(gai));
    return ORCH_ECONFIG;
  }
  orch_http *h = orch_xcalloc(1, sizeof *h);
  h->cfg = cfg;
  h->routes = routes;
  h->dispatch = dispatch;
  h->health = health;
  h->arg = arg;
  pthread_mutex_init(&h->lane_mu, NULL);
  pthread_cond_init(&h->lane_cv, NULL);
  pthread_mutex_init(&h->conn_mu, NULL);
  pthread_cond_init(&h->reaper_cv, NULL);
  unsigned io_threads = (unsigned)(cfg->http_io_threads > 0 ? cfg->http_io_threads : 1);
  if (orch_ws_server_start(&h->ws, ws_release, err) != ORCH_OK) {
    freeaddrinfo(ai);
    pthread_cond_destroy(&h->lane_cv);
    pthread_mutex_destroy(&h->lane_mu);
    pthread_cond_destroy(&h->reaper_cv);
    pthread_mutex_destroy(&h->conn_mu);
    free(h);
    return ORCH_EIO;
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
                   MHD_ALLOW_UPGRADE | MHD_ALLOW_SUSPEND_RESUME;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  h->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
      MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, io_threads,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)(cfg->http_max_connections > 0 ? cfg->http_max_connections : 512),
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_max_per_ip,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)(cfg->http_pool_bytes >= 16384 ? cfg->http_pool_bytes : 16384),
      MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!h->daemon) {
    orch_error_set(err, ORCH_EIO, "cannot listen on %s:%d (address in use?)", cfg->http_host,
                   cfg->http_port);
    orch_ws_server_stop(h->ws);
    orch_ws_server_free(h->ws);
    pthread_cond_destroy(&h->lane_cv);
    pthread_mutex_destroy(&h->lane_mu);
    pthread_cond_destroy(&h->reaper_cv);
    pthread_mutex_destroy(&h->conn_mu);
    free(h);
    return ORCH_EIO;
  }
  int want = cfg->http_threads > 0 ? cfg->http_threads : 1;
  h->lanes = orch_xcalloc((size_t)want, sizeof *h->lanes);
  while (h->nlanes < want && pthread_create(&h->lanes[h->nlanes], NULL, lane_main, h) == 0)
    h->nlanes++;
  if (h->nlanes < want) {
    orch_error_set(err, ORCH_EIO, "cannot start the HTTP lane threads");
    orch_http_stop(h);
    return ORCH_EIO;
  }
  if (cfg->http_timeout_s > 0)
    h->reaper_started = !pthread_create(&h->reaper, NULL, reaper_main, h);
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
  h->port = di ? di->port : cfg->http_port;
  orch_events_set_sink(ws_sink, h->ws);
  *out = h;
  return ORCH_OK;
}

int orch_http_port(const orch_http *h) {
  return h->port;
}

void orch_http_stop(orch_http *h) {
  if (!h) return;
  /* Upgraded sockets go back to MHD before it stops; late upgrades are released at once. */
  orch_events_set_sink(NULL, NULL);
  orch_ws_server_stop(h->ws);
  /* The lanes finish the requests they serve and answer the queued ones 503, so that no
     connection is left suspended (libmicrohttpd must not stop with one). */
  pthread_mutex_lock(&h->lane_mu);
  h->stopping = 1;
  pthread_cond_broadcast(&h->lane_cv);
  pthread_mutex_unlock(&h->lane_mu);
  for (int i = 0; i < h->nlanes; i++)
    pthread_join(h->lanes[i], NULL);
  if (h->reaper_started) {
    pthread_mutex_lock(&h->conn_mu);
    h->reaper_stop = 1;
    pthread_cond_signal(&h->reaper_cv);
    pthread_mutex_unlock(&h->conn_mu);
    pthread_join(h->reaper, NULL);
  }
  MHD_stop_daemon(h->daemon);
  orch_ws_server_free(h->ws);
  pthread_cond_destroy(&h->lane_cv);
  pthread_mutex_destroy(&h->lane_mu);
  pthread_cond_destroy(&h->reaper_cv);
  pthread_mutex_destroy(&h->conn_mu);
  free(h->lanes);
  free(h);
}
