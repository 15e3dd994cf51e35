/* test_client.c - the outbound client (host/client.c) against local listeners: only
   configured services are reached, redirects are not followed, response size and time are
   capped (docs/client.md, docs/input-limits.md). */
#include "test.h"

#include "client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum mode { M_OK, M_REDIRECT, M_BIG, M_DRIP, M_HEADERS };

typedef struct listener {
  int fd;
  int port;
  enum mode mode;
  char location[128]; /* M_REDIRECT */
  atomic_int hits;
  pthread_t thread;
} listener;

static void read_request(int c) {
  char buf[4096];
  size_t have = 0;
  while (have < sizeof buf - 1) {
    ssize_t n = recv(c, buf + have, sizeof buf - 1 - have, 0);
    if (n <= 0) return;
    have += (size_t)n;
    buf[have] = '\0';
    if (strstr(buf, "\r\n\r\n")) return;
  }
}

static int send_all(int c, const char *s, size_t n) {
  while (n) {
    ssize_t k = send(c, s, n, MSG_NOSIGNAL);
    if (k <= 0) return -1;
    s += k;
    n -= (size_t)k;
  }
  return 0;
}

static void serve(listener *l, int c) {
  char head[512];
  read_request(c);
  switch (l->mode) {
  case M_OK: {
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
    send_all(c, r, strlen(r));
    break;
  }
  case M_REDIRECT:
    snprintf(head, sizeof head,
             "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
             l->location);
    send_all(c, head, strlen(head));
    break;
  case M_BIG: { /* 4 MB without a Content-Length, until the client gives up */
    const char *h = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    if (send_all(c, h, strlen(h))) break;
    static char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 64; i++)
      if (send_all(c, chunk, sizeof chunk)) break;
    break;
  }
  case M_DRIP: { /* one byte every 50 ms of a body that never ends */
    const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
    if (send_all(c, h, strlen(h))) break;
    for (int i = 0; i < 200; i++) {
      if (send_all(c, "x", 1)) break;
      usleep(50000);
    }
    break;
  }
  case M_HEADERS: { /* header lines without end */
    const char *h = "HTTP/1.1 200 OK\r\n";
    if (send_all(c, h, strlen(h))) break;
    char line[1024];
    memset(line, 'a', sizeof line);
    memcpy(line, "X-Pad: ", 7);
    line[sizeof line - 2] = '\r';
    line[sizeof line - 1] = '\n';
    for (int i = 0; i < 100000; i++)
      if (send_all(c, line, sizeof line)) break;
    break;
  }
  }
  close(c);
}

static void *listener_main(void *arg) {
  listener *l = arg;
  for (;;) {
    int c = accept(l->fd, NULL, NULL);
    if (c < 0) break;
    atomic_fetch_add(&l->hits, 1);
    serve(l, c);
  }
  return NULL;
}

static void listener_start(listener *l, enum mode mode) {
  memset(l, 0, sizeof *l);
  l->mode = mode;
  l->fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT(l->fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ASSERT(bind(l->fd, (struct sockaddr *)&a, sizeof a) == 0);
  ASSERT(listen(l->fd, 8) == 0);
  socklen_t len = sizeof a;
  ASSERT(getsockname(l->fd, (struct sockaddr *)&a, &len) == 0);
  l->port = ntohs(a.sin_port);
  ASSERT(pthread_create(&l->thread, NULL, listener_main, l) == 0);
}

static void listener_stop(listener *l) {
  shutdown(l->fd, SHUT_RDWR);
  close(l->fd);
  pthread_join(l->thread, NULL);
}

static void set_service(const char *name, const listener *l) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", l->port);
  setenv(name, url, 1);
}

static orch_client_fail call(const char *service, const char *path, long timeout_ms,
                             orch_client_response *resp, orch_error *err) {
  orch_client_request req = {
      .service = service, .method = "GET", .path = path, .timeout_ms = timeout_ms};
  return orch_client_perform(&req, resp, err);
}

TEST(client_redirects_are_not_followed) {
  ASSERT(orch_client_global_init(NULL) == ORCH_OK);
  listener target, svc;
  listener_start(&target, M_OK);
  listener_start(&svc, M_REDIRECT);
  /* To another host (by name), and to the same host's other port. */
  const char *where[] = {"http://localhost:%d/secret", "http://127.0.0.1:%d/secret"};
  set_service("ORCH_SERVICE_SVC_URL", &svc);
  for (size_t i = 0; i < 2; i++) {
    snprintf(svc.location, sizeof svc.location, where[i], target.port);
    orch_client_response resp = ORCH_CLIENT_RESPONSE_INIT;
    orch_error err = ORCH_ERROR_INIT;
    ASSERT_EQ(call("svc", "/start", 2000, &resp, &err), ORCH_CLIENT_OK);
    ASSERT_EQ(resp.status, 302);           /* the script sees the redirect; nothing follows it */
    orch_buf_append(&resp.headers, "", 1); /* a C string */
    ASSERT(strstr(resp.headers.data, "location:") != NULL);
    orch_client_response_free(&resp);
    orch_error_clear(&err);
  }
  ASSERT_EQ(atomic_load(&svc.hits), 2);
  ASSERT_EQ(atomic_load(&target.hits), 0);
  listener_stop(&svc);
  listener_stop(&target);
  orch_client_global_cleanup();
}

TEST(client_reaches_only_configured_services) {
  ASSERT(orch_client_global_init(NULL) == ORCH_OK);
  listener other, svc;
  listener_start(&other, M_OK);
  listener_start(&svc, M_OK);
  set_service("ORCH_SERVICE_SVC_URL", &svc);
  char p[128];
  struct {
    const char *service;
    const char *path;
    orch_client_fail want;
  } cases[] = {
      {"unknown", "/x", ORCH_CLIENT_CONFIG},
      {"SVC", "/x", ORCH_CLIENT_CONFIG},     /* names are lower case: no other variables */
      {"svc_url", "/x", ORCH_CLIENT_CONFIG}, /* ORCH_SERVICE_SVC_URL_URL */
      {"../svc", "/x", ORCH_CLIENT_CONFIG},
      {"svc", p, ORCH_CLIENT_INVALID}, /* "@127.0.0.1:<other>/": the base as user info */
      {"svc", "//127.0.0.1/x", ORCH_CLIENT_INVALID},
      {"svc", "/../x", ORCH_CLIENT_INVALID},
      {"svc", "/%2e%2e/x", ORCH_CLIENT_INVALID},
      {"svc", "/a%2F..%2Fb", ORCH_CLIENT_INVALID},
      {"svc", "/x@127.0.0.1/", ORCH_CLIENT_INVALID},
      {"svc", "/x\\y", ORCH_CLIENT_INVALID},
      {"svc", "/x#frag", ORCH_CLIENT_INVALID},
      {"svc", "/x y", ORCH_CLIENT_INVALID},
      {"svc", "/x\r\nHost: evil", ORCH_CLIENT_INVALID},
  };
  snprintf(p, sizeof p, "@127.0.0.1:%d/", other.port);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    orch_client_response resp = ORCH_CLIENT_RESPONSE_INIT;
    orch_error err = ORCH_ERROR_INIT;
    orch_client_fail got = call(cases[i].service, cases[i].path, 2000, &resp, &err);
    if (got != cases[i].want)
      FAIL("%s %s: %s, want %s", cases[i].service, cases[i].path, orch_client_fail_name(got),
           orch_client_fail_name(cases[i].want));
    orch_client_response_free(&resp);
    orch_error_clear(&err);
  }
  ASSERT_EQ(atomic_load(&svc.hits), 0);
  /* The configured one answers, and a query string may hold what a path may not. */
  orch_client_response resp = ORCH_CLIENT_RESPONSE_INIT;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_EQ(call("svc", "/ok?next=http://a@b/../c", 2000, &resp, &err), ORCH_CLIENT_OK);
  ASSERT_EQ(resp.status, 200);
  orch_client_response_free(&resp);
  ASSERT_EQ(atomic_load(&svc.hits), 1);
  ASSERT_EQ(atomic_load(&other.hits), 0);
  /* A service URL of another scheme is not fetched (http and https only). */
  setenv("ORCH_SERVICE_FILES_URL", "file:///etc", 1);
  resp = (orch_client_response)ORCH_CLIENT_RESPONSE_INIT;
  ASSERT(call("files", "/passwd", 2000, &resp, &err) != ORCH_CLIENT_OK);
  ASSERT_EQ(resp.body.len, 0);
  orch_client_response_free(&resp);
  orch_error_clear(&err);
  listener_stop(&svc);
  listener_stop(&other);
  orch_client_global_cleanup();
}

TEST(client_caps_response_size) {
  ASSERT(orch_client_global_init(NULL) == ORCH_OK);
  setenv("ORCH_CLIENT_MAX_RESPONSE_BYTES", "100000", 1);
  listener big, heads;
  listener_start(&big, M_BIG);
  listener_start(&heads, M_HEADERS);
  set_service("ORCH_SERVICE_BIG_URL", &big);
  set_service("ORCH_SERVICE_HEADS_URL", &heads);
  const char *services[] = {"big", "heads"};
  for (size_t i = 0; i < 2; i++) {
    orch_client_response resp = ORCH_CLIENT_RESPONSE_INIT;
    orch_error err = ORCH_ERROR_INIT;
    ASSERT_EQ(call(services[i], "/", 5000, &resp, &err), ORCH_CLIENT_TOO_LARGE);
    ASSERT(resp.body.len <= 100000);
    ASSERT(resp.headers.len <= 100000);
    ASSERT(strstr(err.message, "larger than 100000 bytes") != NULL);
    orch_client_response_free(&resp);
    orch_error_clear(&err);
  }
  listener_stop(&big);
  listener_stop(&heads);
  orch_client_global_cleanup();
}

TEST(client_caps_time_of_a_trickling_answer) {
  ASSERT(orch_client_global_init(NULL) == ORCH_OK);
  listener drip;
  listener_start(&drip, M_DRIP);
  set_service("ORCH_SERVICE_DRIP_URL", &drip);
  /* The call's own timeout, then the host's cap over a longer one a script asks for. */
  long asked[] = {400, 60000};
  orch_client_set_max_timeout_ms(600);
  for (size_t i = 0; i < 2; i++) {
    orch_client_response resp = ORCH_CLIENT_RESPONSE_INIT;
    orch_error err = ORCH_ERROR_INIT;
    long long t0 = orch_now_ns();
    ASSERT_EQ(call("drip", "/", asked[i], &resp, &err), ORCH_CLIENT_TIMEOUT);
    long long ms = (orch_now_ns() - t0) / 1000000;
    long want = i == 0 ? 400 : 600;
    if (ms < want - 50 || ms > want + 1500) FAIL("took %lld ms, want about %ld", ms, want);
    orch_client_response_free(&resp);
    orch_error_clear(&err);
  }
  listener_stop(&drip);
  orch_client_global_cleanup();
}
