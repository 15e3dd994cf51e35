/* client.c - HTTP calls to configured services with libcurl (see client.h). */
#include "orch.h"

#include "client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_TIMEOUT_MS  10000L
#define DEFAULT_MAX_BYTES   (8L * 1024 * 1024)
#define MAX_SERVICE_NAME    48
#define CONNECT_TIMEOUT_CAP 5000L

static pthread_mutex_t self_lock = PTHREAD_MUTEX_INITIALIZER;
static char *self_url; /* guarded by self_lock */

static long max_timeout_ms = 60000;              /* set before threads start */
static _Thread_local long long step_deadline_ns; /* orch_now_ns(); 0 = none */

void orch_client_set_max_timeout_ms(long ms) {
  max_timeout_ms = ms;
}

void orch_client_set_deadline(long long deadline_ns) {
  step_deadline_ns = deadline_ns;
}

const char *orch_client_fail_name(orch_client_fail f) {
  switch (f) {
  case ORCH_CLIENT_OK: return "ok";
  case ORCH_CLIENT_CONFIG: return "config";
  case ORCH_CLIENT_INVALID: return "invalid";
  case ORCH_CLIENT_DNS: return "dns";
  case ORCH_CLIENT_CONNECT: return "connect";
  case ORCH_CLIENT_TIMEOUT: return "timeout";
  case ORCH_CLIENT_TOO_LARGE: return "too_large";
  case ORCH_CLIENT_IO: return "io";
  }
  return "io";
}

int orch_client_global_init(orch_error *err) {
  CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    orch_error_set(err, ORCH_EIO, "libcurl initialisation failed: %s", curl_easy_strerror(rc));
    return ORCH_EIO;
  }
  return ORCH_OK;
}

void orch_client_global_cleanup(void) {
  curl_global_cleanup();
  pthread_mutex_lock(&self_lock);
  free(self_url);
  self_url = NULL;
  pthread_mutex_unlock(&self_lock);
}

static long env_long(const char *name, long fallback) {
  const char *v = getenv(name);
  if (!v || !*v) return fallback;
  char *end;
  long n = strtol(v, &end, 10);
  return (*end || n <= 0) ? fallback : n;
}

/* The environment value ORCH_SERVICE_<NAME>_<what> of a valid service name, or NULL. */
static const char *service_env(const char *service, const char *what) {
  size_t n = strlen(service);
  if (n == 0 || n > MAX_SERVICE_NAME) return NULL;
  char name[MAX_SERVICE_NAME + 64];
  size_t at = (size_t)snprintf(name, sizeof name, "ORCH_SERVICE_");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)service[i];
    if (!(islower(c) || isdigit(c) || c == '_')) return NULL;
    name[at++] = (char)toupper(c);
  }
  snprintf(name + at, sizeof name - at, "_%s", what);
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

char *orch_client_base_url(const char *service) {
  const char *url = service_env(service, "URL");
  if (!url) return NULL;
  size_t n = strlen(url);
  while (n > 0 && url[n - 1] == '/')
    n--;
  return orch_strndup(url, n);
}

void orch_client_set_self_url(const char *listen_host, int port) {
  const char *host = listen_host && *listen_host ? listen_host : "127.0.0.1";
  /* A wildcard address is not something a caller can reach: use the loopback. */
  if (!strcmp(host, "0.0.0.0")) host = "127.0.0.1";
  if (!strcmp(host, "::")) host = "::1";
  char *url = strchr(host, ':') ? orch_sprintf("http://[%s]:%d", host, port)
                                : orch_sprintf("http://%s:%d", host, port);
  pthread_mutex_lock(&self_lock);
  free(self_url);
  self_url = url;
  pthread_mutex_unlock(&self_lock);
}

char *orch_client_public_url(void) {
  const char *v = getenv("ORCH_PUBLIC_URL");
  if (v && *v) {
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == '/')
      n--;
    return orch_strndup(v, n);
  }
  pthread_mutex_lock(&self_lock);
  char *url = self_url ? orch_strdup(self_url) : NULL;
  pthread_mutex_unlock(&self_lock);
  return url;
}

/* The path rule of client.h: stays below the service's base URL. */
static int path_ok(const char *path) {
  if (path[0] != '/') return 0;
  size_t plen = strcspn(path, "?");
  for (size_t i = 0; i + 1 < plen; i++)
    if ((path[i] == '.' && path[i + 1] == '.') || (path[i] == '/' && path[i + 1] == '/') ||
        (path[i] == '%' && i + 2 < plen && path[i + 1] == '2' && strchr("eEfF", path[i + 2])))
      return 0; /* "..", "//" and their encoded forms could step outside the base path */
  int in_query = 0;
  for (const char *p = path; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c <= 0x20 || c >= 0x7f || c == '#' || c == '\\') return 0;
    if (c == '?') in_query = 1;
    if (c == '@' && !in_query) return 0;
  }
  return 1;
}

static int method_ok(const char *m) {
  static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
  for (size_t i = 0; i < ORCH_ARRAY_LEN(methods); i++)
    if (!strcmp(m, methods[i])) return 1;
  return 0;
}

/* "Name: value" with a token name and a value without CR/LF. */
static int header_ok(const char *h) {
  const char *colon = strchr(h, ':');
  if (!colon || colon == h) return 0;
  for (const char *p = h; p < colon; p++)
    if (!(isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p))) return 0;
  for (const char *p = colon; *p; p++)
    if (*p == '\r' || *p == '\n') return 0;
  return 1;
}

typedef struct sink {
  orch_client_response *resp;
  size_t max;
  int too_large;
} sink;

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  sink *s = ud;
  size_t len = size * n;
  if (s->resp->body.len + len > s->max) {
    s->too_large = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  orch_buf_append(&s->resp->body, data, len);
  return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud) {
  sink *s = ud;
  size_t len = size * n;
  if (len >= 5 && !memcmp(data, "HTTP/", 5)) {
    orch_buf_reset(&s->resp->headers); /* a new response (after 100 Continue): start over */
    return len;
  }
  const char *colon = memchr(data, ':', len);
  if (!colon) return len;
  if (s->resp->headers.len + len > s->max) {
    s->too_large = 1;
    return 0;
  }
  for (const char *p = data; p < colon; p++) {
    char c = (char)tolower((unsigned char)*p);
    orch_buf_append(&s->resp->headers, &c, 1);
  }
  orch_buf_puts(&s->resp->headers, ":");
  const char *v = colon + 1, *end = data + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  orch_buf_append(&s->resp->headers, v, (size_t)(end - v));
  orch_buf_puts(&s->resp->headers, "\n");
  return len;
}

static orch_client_fail fail(orch_error *err, orch_client_fail kind, const char *fmt, ...)
    ORCH_PRINTF(3, 4);
static orch_client_fail fail(orch_error *err, orch_client_fail kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  orch_error_setv(err, kind == ORCH_CLIENT_CONFIG ? ORCH_ECONFIG : ORCH_EIO, fmt, ap);
  va_end(ap);
  return kind;
}

static orch_client_fail classify(CURLcode rc) {
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return ORCH_CLIENT_DNS;
  case CURLE_COULDNT_CONNECT: return ORCH_CLIENT_CONNECT;
  case CURLE_OPERATION_TIMEDOUT: return ORCH_CLIENT_TIMEOUT;
  default: return ORCH_CLIENT_IO;
  }
}

orch_client_fail orch_client_perform(const orch_client_request *req, orch_client_response *resp,
                                     orch_error *err) {
  if (!req->method || !method_ok(req->method))
    return fail(err, ORCH_CLIENT_INVALID, "unsupported method '%s'",
                req->method ? req->method : "");
  if (!req->path || !path_ok(req->path))
    return fail(err, ORCH_CLIENT_INVALID,
                "path must start with '/' and stay below the service's URL (got '%s')",
                req->path ? req->path : "");
  char *base = orch_client_base_url(req->service);
  if (!base)
    return fail(err, ORCH_CLIENT_CONFIG,
                "service '%s' is not configured (set ORCH_SERVICE_<NAME>_URL)", req->service);
  resp->url = orch_sprintf("%s%s", base, req->path);
  free(base);

  struct curl_slist *headers = NULL;
  orch_client_fail result = ORCH_CLIENT_OK;
  CURL *h = curl_easy_init();
  if (!h) return fail(err, ORCH_CLIENT_IO, "libcurl could not create a handle");
  for (size_t i = 0; i < req->nheaders; i++) {
    if (!header_ok(req->headers[i])) {
      result = fail(err, ORCH_CLIENT_INVALID, "bad header '%s'", req->headers[i]);
      goto out;
    }
    headers = curl_slist_append(headers, req->headers[i]);
  }
  const char *token = service_env(req->service, "TOKEN");
  for (size_t i = 0; token && i < req->nheaders; i++)
    if (!strncasecmp(req->headers[i], "Authorization:", 14)) token = NULL; /* the call's own */
  if (token) {
    const char *scheme = service_env(req->service, "AUTH_SCHEME");
    char *auth = orch_sprintf("Authorization: %s %s", scheme ? scheme : "Token", token);
    headers = curl_slist_append(headers, auth);
    free(auth);
  }
  headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */

  long timeout = req->timeout_ms > 0 ? req->timeout_ms
                                     : env_long("ORCH_CLIENT_TIMEOUT_MS", DEFAULT_TIMEOUT_MS);
  if (max_timeout_ms > 0 && timeout > max_timeout_ms) timeout = max_timeout_ms;
  if (step_deadline_ns) { /* never past the step's time limit */
    long long left_ms = (step_deadline_ns - orch_now_ns()) / 1000000LL;
    if (left_ms <= 0) {
      result = fail(err, ORCH_CLIENT_TIMEOUT, "the step's time limit is used up");
      goto out;
    }
    if (timeout > left_ms) timeout = (long)left_ms;
  }
  sink s = {resp, (size_t)env_long("ORCH_CLIENT_MAX_RESPONSE_BYTES", DEFAULT_MAX_BYTES), 0};
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(h, CURLOPT_URL, resp->url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   timeout < CONNECT_TIMEOUT_CAP ? timeout : CONNECT_TIMEOUT_CAP);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &s);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "orchestrator/" ORCH_VERSION);
  if (!strcmp(req->method, "HEAD"))
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  else if (strcmp(req->method, "GET") != 0 || req->body) /* a body alone would make it a POST */
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
  if (req->body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
  }

  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    if (s.too_large)
      result = fail(err, ORCH_CLIENT_TOO_LARGE, "response larger than %zu bytes", s.max);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
      result = fail(err, ORCH_CLIENT_TIMEOUT, "timed out after %ld ms", timeout);
    else
      result = fail(err, classify(rc), "%s", *errbuf ? errbuf : curl_easy_strerror(rc));
    goto out;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
out:
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  return result;
}

void orch_client_response_free(orch_client_response *resp) {
  orch_buf_free(&resp->headers);
  orch_buf_free(&resp->body);
  free(resp->url);
  *resp = (orch_client_response)ORCH_CLIENT_RESPONSE_INIT;
}
