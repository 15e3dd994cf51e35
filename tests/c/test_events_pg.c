/*
 * test_events_pg.c - the event bus against the ctest fixture's PostgreSQL
 * (ORCH_TEST_PG_STATE): one NOTIFY per batching window, the 8000-byte payload
 * limit, other hosts' batches delivered and the host's own ones skipped.
 * Each test runs in a forked child.
 */
#include "orch.h"

#include "buf.h"
#include "db.h"
#include "events.h"
#include "test.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

static char *pg_uri(void) {
  const char *state = getenv("ORCH_TEST_PG_STATE");
  if (!state) FAIL("ORCH_TEST_PG_STATE is not set (run through ctest)");
  char *text = NULL;
  size_t len = 0;
  orch_error err = ORCH_ERROR_INIT;
  if (orch_read_file(state, &text, &len, &err) != ORCH_OK) FAIL("no test cluster: %s", err.message);
  while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
    text[--len] = '\0';
  char *uri = orch_sprintf("postgresql://postgres@/postgres?host=%s", text);
  free(text);
  return uri;
}

/* ---- what the local sink received ---- */

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

static int sink_count(void) {
  pthread_mutex_lock(&got_mu);
  int n = got_n;
  pthread_mutex_unlock(&got_mu);
  return n;
}

static void sink_reset(void) {
  pthread_mutex_lock(&got_mu);
  orch_buf_reset(&got);
  got_n = 0;
  pthread_mutex_unlock(&got_mu);
}

static void wait_sink(int n) {
  for (int i = 0; i < 300 && sink_count() < n; i++)
    usleep(10000);
}

/* ---- a second connection that LISTENs like another host ---- */

typedef struct listener {
  orch_db *db;
  char *payloads[64];
  int n;
} listener;

static void listen_on(listener *l, const char *uri) {
  l->db = orch_db_new(uri);
  orch_error err = ORCH_ERROR_INIT;
  if (orch_db_exec(l->db, "LISTEN " ORCH_EVENTS_CHANNEL, 0, NULL, NULL, &err) < 0)
    FAIL("LISTEN: %s", err.message);
}

/* Collect the notifications that arrive within ms milliseconds. */
static void listen_for(listener *l, int ms) {
  long long end = orch_now_ns() + ms * 1000000LL;
  PGconn *c = orch_db_conn(l->db);
  while (orch_now_ns() < end) {
    PQconsumeInput(c);
    PGnotify *n;
    while ((n = PQnotifies(c)) != NULL) {
      if (l->n < 64) l->payloads[l->n++] = orch_strdup(n->extra);
      PQfreemem(n);
    }
    usleep(5000);
  }
}

static void listener_free(listener *l) {
  for (int i = 0; i < l->n; i++)
    free(l->payloads[i]);
  orch_db_free(l->db);
}

static void notify(orch_db *db, const char *payload) {
  const char *params[] = {payload};
  orch_error err = ORCH_ERROR_INIT;
  if (orch_db_exec(db, "SELECT pg_notify('" ORCH_EVENTS_CHANNEL "', $1)", 1, params, NULL, &err) <
      0)
    FAIL("NOTIFY: %s", err.message);
}

TEST(events_one_notify_per_window_within_the_payload_limit) {
  char *uri = pg_uri();
  listener l = {0};
  listen_on(&l, uri);
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_events_start(uri, &err));
  orch_events_set_sink(collect, NULL);
  usleep(200000); /* the bus's LISTEN is in place */

  /* One event: delivered locally and in one NOTIFY with the host id first. */
  ASSERT_OK(orch_events_emit("engineStatus", NULL));
  wait_sink(1);
  listen_for(&l, 300);
  ASSERT_EQ(l.n, 1);
  const char *nl = strchr(l.payloads[0], '\n');
  ASSERT(nl && nl - l.payloads[0] == 16);
  ASSERT_STR_EQ(nl + 1, "engineStatus\n");

  /* 180 process ids in one window: every one reaches the local sink, but the NOTIFY
   * would exceed 8000 bytes, so it carries "every process" instead. */
  sink_reset();
  ASSERT_OK(orch_events_emit("engineStatus", NULL)); /* opens a window */
  wait_sink(1);
  for (int i = 0; i < 180; i++) {
    char id[37];
    snprintf(id, sizeof id, "%08x-0000-4000-8000-00000000abcd", i);
    ASSERT_OK(orch_events_emit("processes", id));
  }
  ASSERT_OK(orch_events_emit("processes", "LIST"));
  wait_sink(182);
  listen_for(&l, 400);
  ASSERT_EQ(sink_count(), 182);
  ASSERT_EQ(l.n, 3);
  ASSERT(strlen(l.payloads[2]) < 8000);
  ASSERT_CONTAINS(l.payloads[2], "\nprocesses LIST\nprocesses *\n");
  ASSERT(!strstr(l.payloads[2], "-00000000abcd"));

  /* A steady stream of step commits for one second: at most one NOTIFY per 100 ms. */
  int before = l.n;
  long long end = orch_now_ns() + 1000000000LL;
  for (int i = 0; orch_now_ns() < end; i++) {
    char id[37];
    snprintf(id, sizeof id, "%08x-0000-4000-8000-000000000001", i % 16);
    orch_events_process_changed(id, 0);
    usleep(1000);
  }
  listen_for(&l, 300);
  int notifies = l.n - before;
  printf("  %d NOTIFYs for one second of step commits\n", notifies);
  ASSERT(notifies >= 5 && notifies <= 12);

  orch_events_set_sink(NULL, NULL);
  orch_events_stop();
  listener_free(&l);
  orch_buf_free(&got);
  free(uri);
}

TEST(events_other_hosts_batches_are_delivered_own_are_skipped) {
  char *uri = pg_uri();
  listener l = {0};
  listen_on(&l, uri);
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_events_start(uri, &err));
  orch_events_set_sink(collect, NULL);
  usleep(200000);
  /* Learn the bus's host id from its own NOTIFY. */
  ASSERT_OK(orch_events_emit("engineStatus", NULL));
  listen_for(&l, 300);
  ASSERT_EQ(l.n, 1);
  char own[17];
  memcpy(own, l.payloads[0], 16);
  own[16] = '\0';
  wait_sink(1);
  sink_reset();

  /* Another host's batch, with lines to skip (unknown type, bad id, no id). */
  notify(l.db, "0123456789abcdef\nprocesses LIST\n"
               "subscriptions 9b2b5d3c-0f7e-4c1a-8a55-2b8d7d6c1e00\nworkers\n"
               "engineStatus LIST\nprocesses not-a-uuid\nprocesses *\nprocessStatusCounts");
  wait_sink(4);
  usleep(200000);
  ASSERT_EQ(sink_count(), 4);
  ASSERT_CONTAINS(got.data, "{\"type\":\"processes\",\"id\":\"LIST\"}");
  ASSERT_CONTAINS(got.data, "{\"type\":\"processes\"}}");
  ASSERT_CONTAINS(got.data, "\"id\":\"9b2b5d3c-0f7e-4c1a-8a55-2b8d7d6c1e00\"");
  ASSERT_CONTAINS(got.data, "{\"type\":\"processStatusCounts\"}");

  /* Its own batch (and garbage) is not delivered again. */
  sink_reset();
  char *mine = orch_sprintf("%s\nprocesses LIST\n", own);
  notify(l.db, mine);
  notify(l.db, "no host line");
  notify(l.db, "");
  free(mine);
  usleep(400000);
  ASSERT_EQ(sink_count(), 0);

  orch_events_set_sink(NULL, NULL);
  orch_events_stop();
  listener_free(&l);
  orch_buf_free(&got);
  free(uri);
}

#define TESTS(X)                                                                                   \
  X(events_one_notify_per_window_within_the_payload_limit)                                         \
  X(events_other_hosts_batches_are_delivered_own_are_skipped)

static const orch_test tests[] = {TESTS(ORCH_TEST_ENTRY)};

int main(int argc, char **argv) {
  return orch_test_main(tests, ORCH_ARRAY_LEN(tests), argc, argv);
}
