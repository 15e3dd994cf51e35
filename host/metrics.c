/*
 * metrics.c - counters, gauges and histograms of the host in the Prometheus
 * text format (see metrics.h). Unlabelled values are atomics; a labelled
 * family is a small array of series under the family's mutex (held for a
 * lookup and a few adds).
 */
#include "metrics.h"

#include "buf.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BUCKETS 16

typedef struct series {
  char *labels; /* rendered label pairs, a="x",b="y" (owned) */
  uint64_t count;
  double sum;
  uint64_t buckets[MAX_BUCKETS]; /* per bucket (not cumulative) */
} series;

typedef struct family {
  const char *name, *help, *type; /* type: "counter" or "histogram" */
  const double *bounds;           /* histogram upper bounds, ascending */
  int nb;
  pthread_mutex_t mu;
  series *s;
  int n, cap;
} family;

static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const double handoff_bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                        0.005,   0.01,   0.025,   0.05,   0.1,   1};
#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* A family's constant part; the mutex and the series start empty. */
#define COUNTER(name, help)                                                                        \
  { name, help, "counter", NULL, 0, PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0 }
#define HISTOGRAM(name, help, bounds)                                                              \
  { name, help, "histogram", bounds, NB(bounds), PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0 }

static family http_requests =
    COUNTER("orch_http_requests_total", "HTTP requests answered, by route action and status");
static family http_latency =
    HISTOGRAM("orch_http_request_duration_seconds",
              "Time from the request's arrival to its response, by route action", latency_bounds);
static family steps = COUNTER("orch_steps_total",
                              "Step outcomes recorded by this host's workers, by workflow and step "
                              "status (waiting = to be retried)");
static family step_duration =
    HISTOGRAM("orch_step_duration_seconds",
              "Time from a step's start to the commit of its outcome, by workflow", latency_bounds);
static family handoff = HISTOGRAM("orch_step_handoff_seconds",
                                  "Time from a step's commit to the next step of the process "
                                  "starting under the same lease",
                                  handoff_bounds);
static family reloads =
    COUNTER("orch_reloads_total", "Reloads of the scripts, by result (ok = published, refused)");
static family db_errors =
    COUNTER("orch_db_errors_total", "Failed database statements (soft: connection lost, "
                                    "serialization failure or deadlock; hard: any other)");

static family *const families[] = {&http_requests, &http_latency, &steps,    &step_duration,
                                   &handoff,       &reloads,      &db_errors};

static atomic_ullong claims, taken_over, budget_kills;
static atomic_llong lua_memory;
static atomic_int ws_clients;

void orch_metrics_escape_label(orch_buf *b, const char *value) {
  for (const char *p = value ? value : ""; *p; p++) {
    if (*p == '\\')
      orch_buf_puts(b, "\\\\");
    else if (*p == '"')
      orch_buf_puts(b, "\\\"");
    else if (*p == '\n')
      orch_buf_puts(b, "\\n");
    else
      orch_buf_append(b, p, 1);
  }
}

/* The series of `labels` in f (created if new); f->mu held. */
static series *lookup(family *f, const char *labels) {
  for (int i = 0; i < f->n; i++)
    if (!strcmp(f->s[i].labels, labels)) return &f->s[i];
  if (f->n == ORCH_METRICS_MAX_SERIES) {
    /* Too many label sets: the last series collects the rest. */
    return &f->s[f->n - 1];
  }
  if (f->n == f->cap)
    f->s = orch_xrealloc(f->s, (size_t)(f->cap = f->cap ? f->cap * 2 : 16) * sizeof *f->s);
  series *s = &f->s[f->n++];
  memset(s, 0, sizeof *s);
  s->labels = orch_strdup(f->n == ORCH_METRICS_MAX_SERIES ? "overflow=\"_other\"" : labels);
  return s;
}

static void observe(family *f, const char *labels, double v) {
  if (!(v >= 0)) v = 0; /* NaN or negative (a clock step): count it as 0 */
  pthread_mutex_lock(&f->mu);
  series *s = lookup(f, labels);
  s->count++;
  s->sum += v;
  if (f->nb) {
    int i = 0;
    while (i < f->nb && v > f->bounds[i])
      i++;
    if (i < f->nb) s->buckets[i]++;
  }
  pthread_mutex_unlock(&f->mu);
}

/* Render name="value",... of up to two label pairs into b (reset first). */
static void labels2(orch_buf *b, const char *k1, const char *v1, const char *k2, const char *v2) {
  orch_buf_reset(b);
  orch_buf_printf(b, "%s=\"", k1);
  orch_metrics_escape_label(b, v1);
  orch_buf_puts(b, "\"");
  if (k2) {
    orch_buf_printf(b, ",%s=\"", k2);
    orch_metrics_escape_label(b, v2);
    orch_buf_puts(b, "\"");
  }
}

void orch_metrics_http(const char *action, int status, double seconds) {
  orch_buf b = ORCH_BUF_INIT;
  char st[16];
  snprintf(st, sizeof st, "%d", status);
  labels2(&b, "action", action ? action : "none", "status", st);
  observe(&http_requests, b.data, 0);
  labels2(&b, "action", action ? action : "none", NULL, NULL);
  observe(&http_latency, b.data, seconds);
  orch_buf_free(&b);
}

void orch_metrics_step(const char *workflow, const char *status, double seconds) {
  orch_buf b = ORCH_BUF_INIT;
  labels2(&b, "workflow", workflow, "status", status);
  observe(&steps, b.data, 0);
  labels2(&b, "workflow", workflow, NULL, NULL);
  observe(&step_duration, b.data, seconds);
  orch_buf_free(&b);
}

void orch_metrics_handoff(double seconds) {
  observe(&handoff, "", seconds);
}

void orch_metrics_claims(int n, int took) {
  if (n > 0) atomic_fetch_add(&claims, (unsigned long long)n);
  if (took > 0) atomic_fetch_add(&taken_over, (unsigned long long)took);
}

void orch_metrics_reload(int ok) {
  observe(&reloads, ok ? "result=\"ok\"" : "result=\"refused\"", 0);
}

void orch_metrics_budget_kill(void) {
  atomic_fetch_add(&budget_kills, 1);
}

void orch_metrics_lua_memory(long long delta) {
  if (delta) atomic_fetch_add(&lua_memory, delta);
}

void orch_metrics_db_error(int soft) {
  observe(&db_errors, soft ? "kind=\"soft\"" : "kind=\"hard\"", 0);
}

void orch_metrics_ws_clients(int n) {
  atomic_store(&ws_clients, n);
}

/* A number as Prometheus reads it (%.17g keeps a double exact; integers print as such). */
static void put_number(orch_buf *b, double v) {
  if (isinf(v))
    orch_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
  else if (isnan(v))
    orch_buf_puts(b, "NaN");
  else if (v == floor(v) && fabs(v) < 1e15)
    orch_buf_printf(b, "%.0f", v);
  else
    orch_buf_printf(b, "%.9g", v);
}

static void header(orch_buf *b, const char *name, const char *help, const char *type) {
  orch_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void simple(orch_buf *b, const char *name, const char *help, const char *type, double v) {
  header(b, name, help, type);
  orch_buf_printf(b, "%s ", name);
  put_number(b, v);
  orch_buf_puts(b, "\n");
}

static void render_family(orch_buf *b, family *f) {
  header(b, f->name, f->help, f->type);
  pthread_mutex_lock(&f->mu);
  int hist = !strcmp(f->type, "histogram");
  size_t nl = strlen(f->name);
  /* A counter's name keeps its _total; a histogram's series add _bucket, _sum, _count. */
  for (int i = 0; i < f->n; i++) {
    const series *s = &f->s[i];
    const char *sep = *s->labels ? "," : "";
    if (!hist) {
      orch_buf_printf(b, "%.*s%s%s%s %llu\n", (int)nl, f->name, *s->labels ? "{" : "", s->labels,
                      *s->labels ? "}" : "", (unsigned long long)s->count);
      continue;
    }
    uint64_t cum = 0;
    for (int k = 0; k < f->nb; k++) {
      cum += s->buckets[k];
      orch_buf_printf(b, "%s_bucket{%s%sle=\"", f->name, s->labels, sep);
      put_number(b, f->bounds[k]);
      orch_buf_printf(b, "\"} %llu\n", (unsigned long long)cum);
    }
    orch_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep,
                    (unsigned long long)s->count);
    orch_buf_printf(b, "%s_sum%s%s%s ", f->name, *s->labels ? "{" : "", s->labels,
                    *s->labels ? "}" : "");
    put_number(b, s->sum);
    orch_buf_printf(b, "\n%s_count%s%s%s %llu\n", f->name, *s->labels ? "{" : "", s->labels,
                    *s->labels ? "}" : "", (unsigned long long)s->count);
  }
  pthread_mutex_unlock(&f->mu);
}

/* Resident set size of this process in bytes (0 if /proc is not there). */
static double rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = fscanf(f, "%lu %lu", &size, &resident);
  fclose(f);
  return n == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : 0;
}

char *orch_metrics_render(long generation) {
  orch_buf b = ORCH_BUF_INIT;
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
    render_family(&b, families[i]);
  simple(&b, "orch_claims_total", "Processes claimed into a lease by this host's workers",
         "counter", (double)atomic_load(&claims));
  simple(&b, "orch_leases_taken_over_total",
         "Claims of processes whose lease (of another worker or host) had run out", "counter",
         (double)atomic_load(&taken_over));
  simple(&b, "orch_lua_budget_kills_total", "Lua calls stopped by their time or memory budget",
         "counter", (double)atomic_load(&budget_kills));
  simple(&b, "orch_lua_memory_bytes", "Memory held by this host's Lua states", "gauge",
         (double)atomic_load(&lua_memory));
  simple(&b, "orch_websocket_clients", "WebSocket clients of /api/ws/events connected now", "gauge",
         (double)atomic_load(&ws_clients));
  simple(&b, "orch_scripts_generation", "The scripts generation this host serves", "gauge",
         (double)generation);
  simple(&b, "orch_resident_memory_bytes", "Resident memory of this host process", "gauge",
         rss_bytes());
  return orch_buf_take(&b, NULL);
}

void orch_metrics_reset(void) {
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
    family *f = families[i];
    pthread_mutex_lock(&f->mu);
    for (int k = 0; k < f->n; k++)
      free(f->s[k].labels);
    free(f->s);
    f->s = NULL;
    f->n = f->cap = 0;
    pthread_mutex_unlock(&f->mu);
  }
  atomic_store(&claims, 0);
  atomic_store(&taken_over, 0);
  atomic_store(&budget_kills, 0);
  atomic_store(&lua_memory, 0);
  atomic_store(&ws_clients, 0);
}
