/* events.c - batched, deduplicated invalidation events, fanned out over NOTIFY (see events.h). */
#include "orch.h"

#include "buf.h"
#include "db.h"
#include "events.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { T_PROCESSES, T_STATUS_COUNTS, T_SUBSCRIPTIONS, T_ENGINE, T_COUNT };
static const char *const type_names[T_COUNT] = {"processes", "processStatusCounts", "subscriptions",
                                                "engineStatus"};
static const int type_has_ids[T_COUNT] = {1, 0, 1, 0};

typedef char uuid_text[37];

/* What one window collected. */
typedef struct batch {
  int any;
  int list[T_COUNT]; /* id LIST (for the id-less types: the event itself) */
  int all[T_COUNT];  /* no id: every entry of the type */
  uuid_text *ids[T_COUNT];
  size_t nids[T_COUNT];
  uuid_text *ended; /* processes whose subscriptions to invalidate */
  size_t nended;
  int ended_overflow;
} batch;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* guards the fields below */
static int running, stopping;
static batch pending;
static pthread_t thread;
static int wake_pipe[2] = {-1, -1};
static char *db_uri;
static char host_id[17];

static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static orch_events_sink_fn sink_fn;
static void *sink_arg;

/* ---- validation ---- */

static int type_index(const char *type) {
  for (int t = 0; type && t < T_COUNT; t++)
    if (!strcmp(type, type_names[t])) return t;
  return -1;
}

int orch_events_valid(const char *type, const char *id) {
  int t = type_index(type);
  if (t < 0) return 0;
  if (!id) return 1;
  return type_has_ids[t] && (!strcmp(id, "LIST") || orch_uuid_valid(id, strlen(id)));
}

/* ---- collecting ---- */

static int add_id(uuid_text **ids, size_t *n, const char *id) {
  for (size_t i = 0; i < *n; i++)
    if (!strcasecmp((*ids)[i], id)) return 1;
  if (*n >= ORCH_EVENTS_MAX_IDS) return 0;
  if (!*ids) *ids = orch_xcalloc(ORCH_EVENTS_MAX_IDS, sizeof **ids);
  memcpy((*ids)[(*n)++], id, 37);
  return 1;
}

/* Add one event (valid) to b. */
static void batch_add(batch *b, int t, const char *id) {
  b->any = 1;
  if (!type_has_ids[t] || (id && !strcmp(id, "LIST")))
    b->list[t] = 1;
  else if (!id || !add_id(&b->ids[t], &b->nids[t], id))
    b->all[t] = 1;
}

static void batch_free(batch *b) {
  for (int t = 0; t < T_COUNT; t++)
    free(b->ids[t]);
  free(b->ended);
  memset(b, 0, sizeof *b);
}

/* Called with mu held: the first event of a window wakes the thread. */
static void wake_locked(int was_empty) {
  if (!was_empty) return;
  char c = 1;
  ssize_t w = write(wake_pipe[1], &c, 1);
  ORCH_UNUSED(w); /* a full pipe wakes the thread as well */
}

int orch_events_emit(const char *type, const char *id) {
  if (!orch_events_valid(type, id)) return ORCH_EINVAL;
  pthread_mutex_lock(&mu);
  if (running && !stopping) {
    int was_empty = !pending.any;
    batch_add(&pending, type_index(type), id);
    wake_locked(was_empty);
  }
  pthread_mutex_unlock(&mu);
  return ORCH_OK;
}

void orch_events_process_changed(const char *pid, int terminal) {
  if (!pid || !orch_uuid_valid(pid, strlen(pid))) return;
  pthread_mutex_lock(&mu);
  if (running && !stopping) {
    int was_empty = !pending.any;
    batch_add(&pending, T_PROCESSES, "LIST");
    batch_add(&pending, T_PROCESSES, pid);
    batch_add(&pending, T_STATUS_COUNTS, NULL);
    if (terminal && !add_id(&pending.ended, &pending.nended, pid)) pending.ended_overflow = 1;
    wake_locked(was_empty);
  }
  pthread_mutex_unlock(&mu);
}

void orch_events_set_sink(orch_events_sink_fn fn, void *arg) {
  pthread_mutex_lock(&sink_mu);
  sink_fn = fn;
  sink_arg = arg;
  pthread_mutex_unlock(&sink_mu);
}

/* ---- delivering ---- */

static void deliver(int t, const char *id) {
  orch_buf b = ORCH_BUF_INIT;
  orch_buf_printf(&b, "{\"name\":\"invalidateCache\",\"value\":{\"type\":\"%s\"", type_names[t]);
  if (id) orch_buf_printf(&b, ",\"id\":\"%s\"", id);
  orch_buf_puts(&b, "}}");
  pthread_mutex_lock(&sink_mu);
  if (sink_fn) sink_fn(sink_arg, b.data, b.len);
  pthread_mutex_unlock(&sink_mu);
  orch_buf_free(&b);
}

/* Every message of a batch, in a fixed order (lists before details). */
static void deliver_batch(const batch *b) {
  for (int t = 0; t < T_COUNT; t++) {
    if (b->list[t]) deliver(t, type_has_ids[t] ? "LIST" : NULL);
    if (b->all[t]) {
      deliver(t, NULL);
      continue; /* the id-less message covers every id */
    }
    for (size_t i = 0; i < b->nids[t]; i++)
      deliver(t, b->ids[t][i]);
  }
}

/*
 * The NOTIFY payload: the host id on the first line, then one event per line
 * ("type", "type LIST", "type <uuid>", or "type *" for every entry).
 */
static void encode_payload(const batch *b, int collapse, orch_buf *out) {
  orch_buf_reset(out);
  orch_buf_printf(out, "%s\n", host_id);
  for (int t = 0; t < T_COUNT; t++) {
    if (b->list[t]) orch_buf_printf(out, "%s%s\n", type_names[t], type_has_ids[t] ? " LIST" : "");
    if (b->all[t] || (collapse && b->nids[t])) {
      orch_buf_printf(out, "%s *\n", type_names[t]);
      continue;
    }
    for (size_t i = 0; i < b->nids[t]; i++)
      orch_buf_printf(out, "%s %s\n", type_names[t], b->ids[t][i]);
  }
}

/* A batch of another host: parse it (skipping our own and anything malformed). */
static int decode_payload(const char *payload, batch *b) {
  const char *nl = strchr(payload, '\n');
  if (!nl || (size_t)(nl - payload) != strlen(host_id) ||
      !strncmp(payload, host_id, strlen(host_id)))
    return 0;
  for (const char *line = nl + 1; *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char text[96];
    if (len && len < sizeof text) {
      memcpy(text, line, len);
      text[len] = '\0';
      char *sp = strchr(text, ' ');
      const char *id = NULL;
      if (sp) {
        *sp = '\0';
        id = sp + 1;
      }
      int t = type_index(text);
      if (t >= 0 && id && !strcmp(id, "*"))
        batch_add(b, t, NULL);
      else if (t >= 0 && orch_events_valid(text, id))
        batch_add(b, t, id);
    }
    if (!end) break;
    line = end + 1;
  }
  return b->any;
}

/* The subscriptions of the processes that ended in this batch (one query). */
static void add_ended_subscriptions(orch_db *db, batch *b, long long *last_complaint) {
  if (b->ended_overflow) {
    batch_add(b, T_SUBSCRIPTIONS, "LIST");
    batch_add(b, T_SUBSCRIPTIONS, NULL);
  }
  if (!b->nended || !db) return;
  orch_buf arr = ORCH_BUF_INIT;
  orch_buf_puts(&arr, "{");
  for (size_t i = 0; i < b->nended; i++)
    orch_buf_printf(&arr, "%s%s", i ? "," : "", b->ended[i]);
  orch_buf_puts(&arr, "}");
  const char *params[] = {arr.data};
  PGresult *res = NULL;
  orch_error err = ORCH_ERROR_INIT;
  if (orch_db_exec(db,
                   "SELECT DISTINCT subscription_id::text FROM processes_subscriptions"
                   " WHERE pid = ANY($1::uuid[])",
                   1, params, &res, &err) < 0) {
    long long now = orch_now_ns();
    if (now - *last_complaint > 10 * 1000000000LL) {
      LOG_WARN("events", "looking up the subscriptions of ended processes: %s", err.message);
      *last_complaint = now;
    }
    batch_add(b, T_SUBSCRIPTIONS, NULL); /* cannot tell which: all of them */
  } else {
    if (PQntuples(res)) batch_add(b, T_SUBSCRIPTIONS, "LIST");
    for (int i = 0; i < PQntuples(res); i++)
      batch_add(b, T_SUBSCRIPTIONS, PQgetvalue(res, i, 0));
  }
  if (res) PQclear(res);
  orch_error_clear(&err);
  orch_buf_free(&arr);
}

static void publish(orch_db *db, const batch *b, long long *last_complaint) {
  orch_buf payload = ORCH_BUF_INIT;
  encode_payload(b, 0, &payload);
  if (payload.len > ORCH_EVENTS_MAX_PAYLOAD) encode_payload(b, 1, &payload);
  const char *params[] = {payload.data};
  orch_error err = ORCH_ERROR_INIT;
  if (orch_db_exec(db, "SELECT pg_notify('" ORCH_EVENTS_CHANNEL "', $1)", 1, params, NULL, &err) <
      0) {
    long long now = orch_now_ns();
    if (now - *last_complaint > 10 * 1000000000LL) {
      LOG_WARN("events", "cannot pass events to the other hosts: %s", err.message);
      *last_complaint = now;
    }
  }
  orch_error_clear(&err);
  orch_buf_free(&payload);
}

static void flush(orch_db *db, long long *last_complaint) {
  pthread_mutex_lock(&mu);
  batch b = pending;
  memset(&pending, 0, sizeof pending);
  pthread_mutex_unlock(&mu);
  if (!b.any) return;
  add_ended_subscriptions(db, &b, last_complaint);
  deliver_batch(&b);
  if (db) publish(db, &b, last_complaint);
  batch_free(&b);
}

/* Deliver the other hosts' batches libpq has already read. */
static void drain_notifications(PGconn *c) {
  PGnotify *n;
  while ((n = PQnotifies(c)) != NULL) {
    batch b = {0};
    if (!strcmp(n->relname, ORCH_EVENTS_CHANNEL) && decode_payload(n->extra, &b)) deliver_batch(&b);
    batch_free(&b);
    PQfreemem(n);
  }
}

/* Read what arrived on the LISTEN connection; -1 if it broke. */
static int take_notifications(PGconn *c) {
  if (!PQconsumeInput(c)) return -1;
  drain_notifications(c);
  return 0;
}

static void *events_main(void *arg) {
  ORCH_UNUSED(arg);
  orch_db *db = db_uri ? orch_db_new(db_uri) : NULL;
  PGconn *listening = NULL;
  long long last_flush = 0, last_complaint = 0, next_listen = 0;
  const long long window = ORCH_EVENTS_WINDOW_MS * 1000000LL;
  for (;;) {
    long long now = orch_now_ns();
    if (db && (!listening || orch_db_conn(db) != listening) && now >= next_listen) {
      orch_error err = ORCH_ERROR_INIT;
      if (orch_db_exec(db, "LISTEN " ORCH_EVENTS_CHANNEL, 0, NULL, NULL, &err) < 0) {
        if (now - last_complaint > 10 * 1000000000LL) {
          LOG_WARN("events", "cannot listen for other hosts' events: %s", err.message);
          last_complaint = now;
        }
        listening = NULL;
        next_listen = now + 1000000000LL; /* try again in a second */
      } else {
        listening = orch_db_conn(db);
      }
      orch_error_clear(&err);
    }
    pthread_mutex_lock(&mu);
    int has = pending.any, stop = stopping;
    pthread_mutex_unlock(&mu);
    if (stop) break;
    if (has && now - last_flush >= window) {
      flush(db, &last_complaint);
      last_flush = now;
      /* Our own statements may have read notifications off the socket meanwhile. */
      if (listening && orch_db_conn(db) == listening) drain_notifications(listening);
      continue;
    }
    int timeout = has ? (int)((last_flush + window - now) / 1000000LL) + 1 : 1000;
    struct pollfd pfd[2] = {{.fd = wake_pipe[0], .events = POLLIN}, {.fd = -1}};
    PGconn *c = db ? orch_db_conn(db) : NULL;
    if (listening && c == listening && PQsocket(c) >= 0)
      pfd[1] = (struct pollfd){.fd = PQsocket(c), .events = POLLIN};
    int ready = poll(pfd, 2, timeout);
    if (ready <= 0) continue;
    if (pfd[0].revents & POLLIN) {
      char drain[64];
      while (read(wake_pipe[0], drain, sizeof drain) > 0) {
      }
    }
    if (pfd[1].fd >= 0 && (pfd[1].revents & (POLLIN | POLLERR | POLLHUP)) &&
        take_notifications(c) < 0)
      listening = NULL; /* broken: the next statement reconnects, then LISTEN again */
  }
  flush(db, &last_complaint); /* what was emitted before the stop still goes out */
  orch_db_free(db);
  return NULL;
}

int orch_events_start(const char *database_uri, orch_error *err) {
  pthread_mutex_lock(&mu);
  if (running) {
    pthread_mutex_unlock(&mu);
    orch_error_set(err, ORCH_EINVAL, "the event bus is already running");
    return ORCH_EINVAL;
  }
  if (pipe(wake_pipe) != 0) {
    pthread_mutex_unlock(&mu);
    orch_error_set(err, ORCH_EIO, "cannot create the events wake pipe: %s", strerror(errno));
    return ORCH_EIO;
  }
  for (int i = 0; i < 2; i++)
    fcntl(wake_pipe[i], F_SETFL, fcntl(wake_pipe[i], F_GETFL, 0) | O_NONBLOCK);
  orch_random_hex(host_id, 8);
  db_uri = database_uri && *database_uri ? orch_strdup(database_uri) : NULL;
  stopping = 0;
  if (pthread_create(&thread, NULL, events_main, NULL) != 0) {
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    free(db_uri);
    db_uri = NULL;
    pthread_mutex_unlock(&mu);
    orch_error_set(err, ORCH_EIO, "cannot start the events thread");
    return ORCH_EIO;
  }
  running = 1;
  pthread_mutex_unlock(&mu);
  return ORCH_OK;
}

void orch_events_stop(void) {
  pthread_mutex_lock(&mu);
  if (!running || stopping) {
    pthread_mutex_unlock(&mu);
    return;
  }
  stopping = 1;
  wake_locked(1);
  pthread_mutex_unlock(&mu);
  pthread_join(thread, NULL);
  pthread_mutex_lock(&mu);
  batch_free(&pending);
  close(wake_pipe[0]);
  close(wake_pipe[1]);
  wake_pipe[0] = wake_pipe[1] = -1;
  free(db_uri);
  db_uri = NULL;
  running = stopping = 0;
  pthread_mutex_unlock(&mu);
}
