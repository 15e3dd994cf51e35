/* test_ws.c - the WebSocket handshake key, frame codec, socket thread and the event bus. */
#include "test.h"

#include "buf.h"
#include "events.h"
#include "orch.h"
#include "ws.h"

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

TEST(ws_accept_key) {
  char out[29];
  /* The example of RFC 6455 section 1.3. */
  ASSERT_OK(orch_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out));
  ASSERT_STR_EQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  ASSERT_EQ(orch_ws_accept_key(NULL, out), ORCH_EINVAL);
  ASSERT_EQ(orch_ws_accept_key("", out), ORCH_EINVAL);
  ASSERT_EQ(orch_ws_accept_key("c2hvcnQ=", out), ORCH_EINVAL);                  /* 5 bytes */
  ASSERT_EQ(orch_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==x", out), ORCH_EINVAL); /* too long */
  ASSERT_EQ(orch_ws_accept_key("dGhlIHNhbXBsZSBub2!jZQ==", out), ORCH_EINVAL);  /* not base64 */
  ASSERT_EQ(orch_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=A", out), ORCH_EINVAL);
}

TEST(ws_parse_masked_frame) {
  /* RFC 6455 section 5.7: a masked "Hello". */
  const unsigned char hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  unsigned char buf[sizeof hello];
  orch_ws_frame f;
  int code = 0;
  for (size_t n = 0; n < sizeof hello; n++) {
    memcpy(buf, hello, sizeof hello);
    ASSERT_EQ(orch_ws_parse_frame(buf, n, 1024, &f, &code), 0); /* every prefix: need more */
  }
  memcpy(buf, hello, sizeof hello);
  ASSERT_EQ(orch_ws_parse_frame(buf, sizeof hello, 1024, &f, &code), 1);
  ASSERT_EQ(f.fin, 1);
  ASSERT_EQ(f.opcode, ORCH_WS_OP_TEXT);
  ASSERT_EQ(f.payload_len, 5);
  ASSERT_EQ(f.frame_len, sizeof hello);
  ASSERT(!memcmp(f.payload, "Hello", 5));
}

/* A masked client frame with a 16- or 64-bit length. */
static size_t client_frame(unsigned char *out, int first, size_t len, int wide) {
  size_t n = 0;
  out[n++] = (unsigned char)first;
  if (wide) {
    out[n++] = 0x80 | 127;
    for (int i = 0; i < 8; i++)
      out[n++] = (unsigned char)((unsigned long long)len >> (56 - 8 * i));
  } else {
    out[n++] = 0x80 | 126;
    out[n++] = (unsigned char)(len >> 8);
    out[n++] = (unsigned char)len;
  }
  memset(out + n, 0, 4); /* a zero mask keeps the payload as it is */
  n += 4;
  memset(out + n, 'x', len);
  return n + len;
}

TEST(ws_parse_extended_lengths) {
  static unsigned char buf[70000 + 14];
  orch_ws_frame f;
  int code = 0;
  size_t n = client_frame(buf, 0x81, 300, 0);
  ASSERT_EQ(orch_ws_parse_frame(buf, n, 1024, &f, &code), 1);
  ASSERT_EQ(f.payload_len, 300);
  ASSERT_EQ(f.frame_len, n);
  n = client_frame(buf, 0x81, 70000, 1);
  ASSERT_EQ(orch_ws_parse_frame(buf, n - 1, 100000, &f, &code), 0);
  ASSERT_EQ(orch_ws_parse_frame(buf, n, 100000, &f, &code), 1);
  ASSERT_EQ(f.payload_len, 70000);
  /* Over the limit: refused from the header alone, before the payload arrives. */
  ASSERT_EQ(orch_ws_parse_frame(buf, 14, 65536, &f, &code), -1);
  ASSERT_EQ(code, ORCH_WS_CLOSE_TOO_BIG);
}

TEST(ws_parse_rejects_violations) {
  struct {
    unsigned char bytes[14];
    size_t len;
    int code;
  } cases[] = {
      {{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}, 7, ORCH_WS_CLOSE_PROTOCOL},    /* unmasked */
      {{0xC1, 0x80, 0, 0, 0, 0}, 6, ORCH_WS_CLOSE_PROTOCOL},                 /* RSV1 */
      {{0x83, 0x80, 0, 0, 0, 0}, 6, ORCH_WS_CLOSE_PROTOCOL},                 /* opcode 3 */
      {{0x09, 0x80, 0, 0, 0, 0}, 6, ORCH_WS_CLOSE_PROTOCOL},                 /* fragmented ping */
      {{0x89, 0xFE, 0x00, 0x7E, 0, 0, 0, 0}, 8, ORCH_WS_CLOSE_PROTOCOL},     /* ping over 125 */
      {{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, ORCH_WS_CLOSE_PROTOCOL}, /* 64-bit MSB */
      {{0x81, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0}, 10, ORCH_WS_CLOSE_TOO_BIG},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    orch_ws_frame f;
    int code = 0;
    if (orch_ws_parse_frame(cases[i].bytes, cases[i].len, 65536, &f, &code) != -1)
      FAIL("case %zu was accepted", i);
    ASSERT_EQ(code, cases[i].code);
  }
}

TEST(ws_encode_frames) {
  orch_buf b = ORCH_BUF_INIT;
  orch_ws_encode_frame(&b, ORCH_WS_OP_TEXT, "Hello", 5);
  ASSERT_EQ(b.len, 7);
  ASSERT(!memcmp(b.data, "\x81\x05Hello", 7));
  orch_buf_reset(&b);
  static char big[70000];
  orch_ws_encode_frame(&b, ORCH_WS_OP_BINARY, big, 256); /* RFC 5.7: 256 bytes binary */
  ASSERT_EQ(b.len, 4 + 256);
  ASSERT(!memcmp(b.data, "\x82\x7E\x01\x00", 4));
  orch_buf_reset(&b);
  orch_ws_encode_frame(&b, ORCH_WS_OP_TEXT, big, 65536);
  ASSERT_EQ(b.len, 10 + 65536);
  ASSERT(!memcmp(b.data, "\x81\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  orch_buf_reset(&b);
  orch_ws_encode_frame(&b, ORCH_WS_OP_CLOSE, NULL, 0);
  ASSERT_EQ(b.len, 2);
  ASSERT(!memcmp(b.data, "\x88\x00", 2));
  orch_buf_free(&b);
}

TEST(ws_utf8_validation) {
  const char *good[] = {"", "__ping__", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
  const char *bad[] = {"\xff", "\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80",
                       "\x80", "a\xc3"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    ASSERT(orch_ws_utf8_valid((const unsigned char *)good[i], strlen(good[i])));
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (orch_ws_utf8_valid((const unsigned char *)bad[i], strlen(bad[i])))
      FAIL("bad case %zu accepted", i);
}

/* ---- the socket thread over a socketpair ---- */

static void close_fd(void *handle) {
  close((int)(long)handle);
}

/* Read one server frame from fd within two seconds; returns the opcode or -1. */
static int read_frame(int fd, char *payload, size_t cap, size_t *len) {
  unsigned char head[2];
  size_t got = 0;
  while (got < 2) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 2000) <= 0) return -1;
    ssize_t r = read(fd, head + got, 2 - got);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  size_t n = head[1] & 0x7F;
  if (n > 125 || n > cap) return -1;
  got = 0;
  while (got < n) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 2000) <= 0) return -1;
    ssize_t r = read(fd, payload + got, n - got);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  *len = n;
  return head[0] & 0x0F;
}

TEST(ws_server_pong_broadcast_close) {
  orch_ws_server *s = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_ws_server_start(&s, close_fd, &err));
  int sv[2];
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  /* The first frame arrives as "extra" bytes read by the HTTP server. */
  const unsigned char ping[] = {0x81, 0x88, 0, 0, 0, 0, '_', '_', 'p', 'i', 'n', 'g', '_', '_'};
  orch_ws_adopt(s, sv[0], (const char *)ping, sizeof ping, (void *)(long)sv[0]);
  char payload[128];
  size_t len = 0;
  ASSERT_EQ(read_frame(sv[1], payload, sizeof payload, &len), ORCH_WS_OP_TEXT);
  ASSERT_EQ(len, 8);
  ASSERT(!memcmp(payload, "__pong__", 8));
  orch_ws_broadcast(s, "{\"x\":1}", 7);
  ASSERT_EQ(read_frame(sv[1], payload, sizeof payload, &len), ORCH_WS_OP_TEXT);
  ASSERT(len == 7 && !memcmp(payload, "{\"x\":1}", 7));
  ASSERT_EQ(orch_ws_count(s), 1);
  /* An unmasked frame: close 1002, then the socket is released. */
  const unsigned char bad[] = {0x81, 0x01, 'x'};
  ASSERT_EQ(write(sv[1], bad, sizeof bad), (ssize_t)sizeof bad);
  ASSERT_EQ(read_frame(sv[1], payload, sizeof payload, &len), ORCH_WS_OP_CLOSE);
  ASSERT(len == 2 && (unsigned char)payload[0] == 0x03 && (unsigned char)payload[1] == 0xEA);
  for (int i = 0; i < 200 && orch_ws_count(s); i++)
    usleep(10000);
  ASSERT_EQ(orch_ws_count(s), 0);
  close(sv[1]);
  /* Stop with one open socket: it gets 1001 and is released. */
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  orch_ws_adopt(s, sv[0], NULL, 0, (void *)(long)sv[0]);
  orch_ws_server_stop(s);
  ASSERT_EQ(read_frame(sv[1], payload, sizeof payload, &len), ORCH_WS_OP_CLOSE);
  ASSERT((unsigned char)payload[0] == 0x03 && (unsigned char)payload[1] == 0xE9);
  close(sv[1]);
  orch_ws_server_free(s);
}

/* Found by fuzz_ws: a connection whose close frame had left before poll() waited out the
   thread's 1 s poll timeout before it was released. */
static pthread_mutex_t rel_mu = PTHREAD_MUTEX_INITIALIZER;
static long long released_at;

static void close_fd_timed(void *handle) {
  close((int)(long)handle);
  pthread_mutex_lock(&rel_mu);
  released_at = orch_now_ns();
  pthread_mutex_unlock(&rel_mu);
}

TEST(ws_server_releases_closed_socket_at_once) {
  orch_ws_server *s = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_ws_server_start(&s, close_fd_timed, &err));
  int sv[2];
  ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  const unsigned char close_frame[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8};
  long long start = orch_now_ns();
  orch_ws_adopt(s, sv[0], (const char *)close_frame, sizeof close_frame, (void *)(long)sv[0]);
  for (int i = 0; i < 300 && orch_ws_count(s); i++)
    usleep(1000);
  ASSERT_EQ(orch_ws_count(s), 0);
  pthread_mutex_lock(&rel_mu);
  long long took = released_at - start;
  pthread_mutex_unlock(&rel_mu);
  ASSERT(released_at > 0 && took < 300 * 1000000LL);
  close(sv[1]);
  orch_ws_server_stop(s);
  orch_ws_server_free(s);
}

/* ---- the event bus without a database (local delivery only) ---- */

static pthread_mutex_t got_mu = PTHREAD_MUTEX_INITIALIZER;
static orch_buf got = ORCH_BUF_INIT;
static int got_n;

static void collect(void *arg, const char *text, size_t len) {
  ORCH_UNUSED(arg);
  pthread_mutex_lock(&got_mu);
  orch_buf_append(&got, text, len);
  orch_buf_puts(&got, "\n");
  got_n++;
  pthread_mutex_unlock(&got_mu);
}

static int wait_count(int n) {
  for (int i = 0; i < 300; i++) {
    pthread_mutex_lock(&got_mu);
    int have = got_n;
    pthread_mutex_unlock(&got_mu);
    if (have >= n) return have;
    usleep(10000);
  }
  return got_n;
}

TEST(events_validate) {
  ASSERT(orch_events_valid("processes", "LIST"));
  ASSERT(orch_events_valid("processes", NULL));
  ASSERT(orch_events_valid("subscriptions", "9b2b5d3c-0f7e-4c1a-8a55-2b8d7d6c1e00"));
  ASSERT(orch_events_valid("processStatusCounts", NULL));
  ASSERT(orch_events_valid("engineStatus", NULL));
  ASSERT(!orch_events_valid("engineStatus", "LIST"));
  ASSERT(!orch_events_valid("processes", "not-a-uuid"));
  ASSERT(!orch_events_valid("processes", "9b2b5d3c-0f7e-4c1a-8a55-2b8d7d6c1e0"));
  ASSERT(!orch_events_valid("workers", NULL));
  ASSERT(!orch_events_valid(NULL, NULL));
  /* Not running: accepted and dropped; invalid: refused. */
  ASSERT_OK(orch_events_emit("engineStatus", NULL));
  ASSERT_EQ(orch_events_emit("nope", NULL), ORCH_EINVAL);
}

TEST(events_batch_dedup_and_overflow) {
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_events_start(NULL, &err));
  orch_events_set_sink(collect, NULL);
  /* The first event of a quiet period leaves at once ... */
  ASSERT_OK(orch_events_emit("engineStatus", NULL));
  ASSERT_EQ(wait_count(1), 1);
  ASSERT_STR_EQ(got.data, "{\"name\":\"invalidateCache\",\"value\":{\"type\":\"engineStatus\"}}\n");
  /* ... the next ones wait for the window and are deduplicated. */
  const char *a = "9b2b5d3c-0f7e-4c1a-8a55-2b8d7d6c1e00",
             *b = "0a2b5d3c-0f7e-4c1a-8a55-2b8d7d6c1e01";
  for (int i = 0; i < 3; i++) {
    orch_events_process_changed(a, 0);
    ASSERT_OK(orch_events_emit("processes", b));
  }
  ASSERT_EQ(wait_count(5), 5);
  usleep(300000); /* nothing else follows */
  ASSERT_EQ(wait_count(6), 5);
  ASSERT_CONTAINS(got.data, "\"type\":\"processes\",\"id\":\"LIST\"");
  ASSERT_CONTAINS(got.data, a);
  ASSERT_CONTAINS(got.data, b);
  ASSERT_CONTAINS(got.data, "{\"type\":\"processStatusCounts\"}");
  /* Too many ids in one window: one message for every entry of the type. */
  pthread_mutex_lock(&got_mu);
  orch_buf_reset(&got);
  got_n = 0;
  pthread_mutex_unlock(&got_mu);
  ASSERT_OK(orch_events_emit("engineStatus", NULL)); /* opens a window */
  ASSERT_EQ(wait_count(1), 1);
  for (int i = 0; i < ORCH_EVENTS_MAX_IDS + 50; i++) {
    char id[37];
    snprintf(id, sizeof id, "%08x-0000-4000-8000-000000000000", i);
    ASSERT_OK(orch_events_emit("subscriptions", id));
  }
  usleep(400000);
  pthread_mutex_lock(&got_mu);
  ASSERT_EQ(got_n, 2);
  ASSERT_STR_EQ(got.data,
                "{\"name\":\"invalidateCache\",\"value\":{\"type\":\"engineStatus\"}}\n"
                "{\"name\":\"invalidateCache\",\"value\":{\"type\":\"subscriptions\"}}\n");
  pthread_mutex_unlock(&got_mu);
  orch_events_set_sink(NULL, NULL);
  orch_events_stop();
  orch_events_stop(); /* twice is fine */
  orch_buf_free(&got);
}
