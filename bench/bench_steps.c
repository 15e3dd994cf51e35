/*
 * bench_steps.c - step throughput and hand-off latency of the engine
 * (host/engine.c, host/sched.c) on one host, driven by bench/steps.
 *
 * The runner is the C no-op runner of the tests (tests/c/fake_runner.c), not
 * the Lua runner: this measures the engine and PostgreSQL, not step code.
 *
 * Phase 1 (throughput): `--processes` 10-step processes are kept in flight
 * (a feeder starts a new one, as the API would, whenever one completes) for
 * `--seconds`; prints steps/s and the hand-off latency under load.
 * Phase 2 (idle hand-off): one process at a time; prints the hand-off
 * latency (step commit -> next step start) of an otherwise idle system.
 */
#include "orch.h"

#include "config.h"
#include "db.h"
#include "fake_runner.h"
#include "migrate.h"
#include "sched.h"
#include "threadctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *plan = "SSSSSSSSSC"; /* 10 steps: 9 no-op successes and Done */

static void die(const char *what, const orch_error *err) {
  fprintf(stderr, "bench_steps: %s: %s\n", what, err && err->message ? err->message : "failed");
  exit(1);
}

static void exec_or_die(orch_db *db, const char *sql, int n, const char *const *params) {
  orch_error err = ORCH_ERROR_INIT;
  if (orch_db_exec(db, sql, n, params, NULL, &err) < 0) die(sql, &err);
}

/* Start `n` processes the way the API does: one transaction, then a wake-up. */
static void start_processes(orch_db *db, int n) {
  char count[16];
  snprintf(count, sizeof count, "%d", n);
  const char *params[] = {count, fake_plan_state(plan)};
  exec_or_die(db,
              "WITH p AS (INSERT INTO processes (workflow_id, last_status, created_by)"
              "  SELECT workflow_id, 'running', 'bench' FROM workflows, generate_series(1, $1::int)"
              "  WHERE name = 'bench' RETURNING pid)"
              " INSERT INTO orch_work_queue (pid, state) SELECT pid, $2::jsonb FROM p",
              2, params);
  orch_error err = ORCH_ERROR_INIT;
  if (orch_sched_notify(db, &err) != ORCH_OK) die("notify", &err);
}

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

static double percentile_us(long long *v, long n, double p) {
  if (n <= 0) return 0;
  long i = (long)(p * (double)(n - 1));
  return (double)v[i] / 1000.0;
}

/* Keep `inflight` processes running until `until_ns`; returns processes started. */
static long feed(orch_db *db, fake_runner *f, int inflight, long long until_ns) {
  long started = inflight;
  start_processes(db, inflight);
  while (orch_now_ns() < until_ns) {
    pthread_mutex_lock(&f->mu);
    while (started - f->completed >= inflight && orch_now_ns() < until_ns) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 20 * 1000000L;
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&f->completed_cv, &f->mu, &ts);
    }
    int more = (int)(inflight - (started - f->completed));
    pthread_mutex_unlock(&f->mu);
    if (more > 0 && orch_now_ns() < until_ns) {
      start_processes(db, more);
      started += more;
    }
  }
  return started;
}

int main(int argc, char **argv) {
  const char *uri = NULL, *migrations = "migrations";
  int processes = 32, seconds = 15, workers = 2, batch = 16, idle_processes = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--database"))
      uri = argv[i + 1];
    else if (!strcmp(argv[i], "--migrations"))
      migrations = argv[i + 1];
    else if (!strcmp(argv[i], "--processes"))
      processes = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds"))
      seconds = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--workers"))
      workers = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch"))
      batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--idle-processes"))
      idle_processes = atoi(argv[i + 1]);
  }
  if (!uri) {
    fprintf(stderr, "usage: bench_steps --database URI [--migrations DIR] [--processes 32]"
                    " [--seconds 15] [--workers 2] [--batch 16] [--idle-processes 200]\n");
    return 2;
  }
  orch_error err = ORCH_ERROR_INIT;
  orch_db *db = orch_db_new(uri);
  if (orch_migrate_upgrade(db, migrations, NULL, &err) != ORCH_OK) die("migrations", &err);
  exec_or_die(db,
              "INSERT INTO workflows (name, target, description) VALUES"
              " ('bench', 'SYSTEM', 'no-op steps') ON CONFLICT (name) DO NOTHING",
              0, NULL);

  orch_config cfg;
  if (orch_config_init(&cfg, &err) != ORCH_OK) die("config", &err);
  free(cfg.database_uri);
  cfg.database_uri = orch_strdup(uri);
  cfg.workers = workers;
  cfg.worker_batch = batch;
  orch_threadctx_setup(&cfg);

  fake_runner f;
  fake_runner_init(&f, 0);
  f.cap_handoffs = 4000000;
  f.handoffs = orch_xcalloc((size_t)f.cap_handoffs, sizeof *f.handoffs);
  f.cap_latencies = 4000000;
  f.latencies = orch_xcalloc((size_t)f.cap_latencies, sizeof *f.latencies);
  orch_sched *s = NULL;
  if (orch_sched_start(&s, &cfg, &f.vt, orch_threadctx_thread_db, &err) != ORCH_OK)
    die("scheduler", &err);

  /* Phase 1: warm up for a second, then measure. */
  feed(db, &f, processes, orch_now_ns() + 1000000000LL);
  pthread_mutex_lock(&f.mu);
  long c0 = f.committed;
  f.nhandoffs = f.nlatencies = 0;
  pthread_mutex_unlock(&f.mu);
  long long t0 = orch_now_ns();
  feed(db, &f, processes, t0 + (long long)seconds * 1000000000LL);
  pthread_mutex_lock(&f.mu);
  long steps = f.committed - c0;
  long nh = f.nhandoffs, nl = f.nlatencies;
  pthread_mutex_unlock(&f.mu);
  double elapsed = (double)(orch_now_ns() - t0) / 1e9;
  qsort(f.handoffs, (size_t)nh, sizeof *f.handoffs, cmp_ll);
  qsort(f.latencies, (size_t)nl, sizeof *f.latencies, cmp_ll);
  printf("runner=C no-op (tests/c/fake_runner.c), not Lua\n");
  printf("workers=%d batch=%d concurrent_processes=%d steps_per_process=10 seconds=%.1f\n", workers,
         batch, processes, elapsed);
  printf("steps=%ld steps_per_s=%.0f\n", steps, (double)steps / elapsed);
  printf("handoff_under_load_us p50=%.0f p99=%.0f (n=%ld)\n", percentile_us(f.handoffs, nh, 0.50),
         percentile_us(f.handoffs, nh, 0.99), nh);
  printf("step_start_to_commit_under_load_us p50=%.0f p99=%.0f\n",
         percentile_us(f.latencies, nl, 0.50), percentile_us(f.latencies, nl, 0.99));

  /* Let phase 1 drain, then phase 2: one process at a time. */
  long long drain_until = orch_now_ns() + 30000000000LL;
  while (orch_now_ns() < drain_until) {
    PGresult *res = NULL;
    if (orch_db_exec(db, "SELECT count(*) FROM orch_work_queue", 0, NULL, &res, &err) < 0)
      die("drain", &err);
    int left = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!left) break;
    struct timespec ts = {0, 10000000L};
    nanosleep(&ts, NULL);
  }
  pthread_mutex_lock(&f.mu);
  f.nhandoffs = f.nlatencies = 0;
  long done0 = f.completed;
  pthread_mutex_unlock(&f.mu);
  for (int i = 0; i < idle_processes; i++) {
    start_processes(db, 1);
    pthread_mutex_lock(&f.mu);
    while (f.completed - done0 <= i)
      pthread_cond_wait(&f.completed_cv, &f.mu);
    pthread_mutex_unlock(&f.mu);
  }
  pthread_mutex_lock(&f.mu);
  nh = f.nhandoffs;
  nl = f.nlatencies;
  pthread_mutex_unlock(&f.mu);
  qsort(f.handoffs, (size_t)nh, sizeof *f.handoffs, cmp_ll);
  qsort(f.latencies, (size_t)nl, sizeof *f.latencies, cmp_ll);
  printf("handoff_idle_us p50=%.0f p99=%.0f (n=%ld, one process at a time)\n",
         percentile_us(f.handoffs, nh, 0.50), percentile_us(f.handoffs, nh, 0.99), nh);
  printf("step_start_to_commit_idle_us p50=%.0f p99=%.0f\n", percentile_us(f.latencies, nl, 0.50),
         percentile_us(f.latencies, nl, 0.99));

  orch_sched_stop(s);
  orch_threadctx_shutdown();
  fake_runner_free(&f);
  orch_config_free(&cfg);
  orch_db_free(db);
  return 0;
}
