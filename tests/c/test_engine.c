/*
 * test_engine.c - the step engine and scheduler against a real PostgreSQL:
 * the ctest fixture's cluster (ORCH_TEST_PG_STATE names its socket folder),
 * one new database per test with the migrations applied. Each test runs in a
 * forked child. Steps come from the C fake runner (fake_runner.h).
 */
#include "orch.h"

#include "config.h"
#include "db.h"
#include "engine.h"
#include "fake_runner.h"
#include "migrate.h"
#include "sched.h"
#include "test.h"
#include "threadctx.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- database helpers ---- */

static char *pg_dir(void) {
  const char *state = getenv("ORCH_TEST_PG_STATE");
  if (!state) FAIL("ORCH_TEST_PG_STATE is not set (run through ctest)");
  char *text = NULL;
  size_t len = 0;
  orch_error err = ORCH_ERROR_INIT;
  if (orch_read_file(state, &text, &len, &err) != ORCH_OK) FAIL("no test cluster: %s", err.message);
  while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
    text[--len] = '\0';
  return text;
}

/* Run SQL that must succeed; returns the first value of the first row (malloc'd) or NULL. */
static char *sql1(orch_db *db, const char *sql, int n, const char *const *params) {
  orch_error err = ORCH_ERROR_INIT;
  PGresult *res = NULL;
  if (orch_db_exec(db, sql, n, params, &res, &err) < 0) FAIL("%s: %s", sql, err.message);
  char *v = NULL;
  if (res && PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
    v = orch_strdup(PQgetvalue(res, 0, 0));
  PQclear(res);
  return v;
}

static long sql_long(orch_db *db, const char *sql) {
  char *v = sql1(db, sql, 0, NULL);
  long n = v ? atol(v) : -1;
  free(v);
  return n;
}

#define ASSERT_SQL_EQ(db, sql, expected)                                                           \
  do {                                                                                             \
    char *v_ = sql1((db), (sql), 0, NULL);                                                         \
    if (!v_ || strcmp(v_, (expected)))                                                             \
      FAIL("%s: got \"%s\", want \"%s\"", (sql), v_ ? v_ : "(null)", (expected));                  \
    free(v_);                                                                                      \
  } while (0)

/* A new database with the migrations applied and one workflow; returns its URI (malloc'd). */
static char *new_database(void) {
  static int counter;
  char *dir = pg_dir();
  char *admin_uri = orch_sprintf("postgresql://postgres@/postgres?host=%s", dir);
  char name[64];
  snprintf(name, sizeof name, "engine_%ld_%ld_%d", (long)getpid(), (long)time(NULL) % 100000,
           ++counter);
  orch_db *admin = orch_db_new(admin_uri);
  char *create = orch_sprintf("CREATE DATABASE %s", name);
  free(sql1(admin, create, 0, NULL));
  free(create);
  orch_db_free(admin);
  free(admin_uri);
  char *uri = orch_sprintf("postgresql://postgres@/%s?host=%s", name, dir);
  free(dir);
  orch_db *db = orch_db_new(uri);
  orch_error err = ORCH_ERROR_INIT;
  if (orch_migrate_upgrade(db, ORCH_TEST_SOURCE_DIR "/migrations", NULL, &err) != ORCH_OK)
    FAIL("migrations: %s", err.message);
  free(sql1(db,
            "INSERT INTO workflows (name, target, description) VALUES ('fake', 'CREATE', 'test')",
            0, NULL));
  orch_db_free(db);
  return uri;
}

/* Queue `n` new processes that follow `plan`. */
static void add_processes(orch_db *db, int n, const char *plan) {
  char count[16];
  snprintf(count, sizeof count, "%d", n);
  const char *params[] = {count, fake_plan_state(plan)};
  free(sql1(db,
            "WITH p AS (INSERT INTO processes (workflow_id, last_status, created_by)"
            "  SELECT workflow_id, 'running', 'tester' FROM workflows, generate_series(1, $1::int)"
            "  WHERE name = 'fake' RETURNING pid)"
            " INSERT INTO orch_work_queue (pid, state) SELECT pid, $2::jsonb FROM p",
            2, params));
}

/* Claim, run and commit with one engine until nothing is claimable. */
static void drain(const orch_engine_params *p, orch_db *db, int capacity) {
  orch_batch *b = orch_batch_new(capacity);
  orch_error err = ORCH_ERROR_INIT;
  for (int round = 0; round < 1000; round++) {
    if (orch_batch_count(b) == 0 && orch_engine_claim(p, db, b, &err) <= 0) break;
    orch_engine_run(p, b);
    if (orch_engine_commit(p, db, b, 1, NULL, &err) != ORCH_OK) FAIL("commit: %s", err.message);
  }
  orch_batch_free(b);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Wait until `sql` returns "0" (or fail after `seconds`). */
static void wait_zero(orch_db *db, const char *sql, int seconds) {
  long long until = orch_now_ns() + (long long)seconds * 1000000000LL;
  while (orch_now_ns() < until) {
    if (sql_long(db, sql) == 0) return;
    sleep_ms(20);
  }
  FAIL("still not 0 after %d s: %s (%ld)", seconds, sql, sql_long(db, sql));
}

static const char *no_duplicates_sql =
    "SELECT count(*) FROM (SELECT pid, name FROM process_steps WHERE status = 'success'"
    " GROUP BY pid, name HAVING count(*) > 1) d";

/* ---- tests ---- */

TEST(engine_runs_processes_to_completion) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 3, "SSSSC");
  fake_runner f;
  fake_runner_init(&f, 0);
  orch_engine_params p = {&f.vt, "host-a", 10, 0, 0};
  drain(&p, db, 2); /* a batch smaller than the work: claims top up during commits */
  ASSERT_EQ(f.runs, 15);
  ASSERT_EQ(f.committed, 15);
  ASSERT_EQ(f.discarded, 0);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_work_queue", "0");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM processes WHERE last_status = 'completed'", "3");
  ASSERT_SQL_EQ(db, "SELECT string_agg(DISTINCT last_step, ',') FROM processes", "Step 4 C");
  ASSERT_SQL_EQ(db,
                "SELECT string_agg(status || ':' || name, ',' ORDER BY completed_at) FROM"
                " process_steps WHERE pid = (SELECT min(pid::text)::uuid FROM processes)",
                "success:Step 0 S,success:Step 1 S,success:Step 2 S,success:Step 3 S,"
                "complete:Step 4 C");
  /* The state of each step reached the next one, and each row records the state after it. */
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps WHERE (state->>'i')::int = 5", "3");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps WHERE created_by = 'tester'", "15");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps WHERE started_at > completed_at", "0");
  ASSERT_SQL_EQ(db, no_duplicates_sql, "0");
  fake_runner_free(&f);
  orch_db_free(db);
  free(uri);
}

/* Run one plan on its own and return the process id (malloc'd). */
static char *run_plan(orch_db *db, const orch_engine_params *p, const char *plan) {
  add_processes(db, 1, plan);
  char *pid = sql1(db,
                   "SELECT pid::text FROM processes ORDER BY started_at DESC, last_modified_at"
                   " DESC LIMIT 1",
                   0, NULL);
  free(sql1(db, "UPDATE orch_work_queue SET run_at = run_at + interval '1 hour'", 0, NULL));
  const char *params[] = {pid};
  free(sql1(db, "UPDATE orch_work_queue SET run_at = now() - interval '1 second' WHERE pid = $1", 1,
            params));
  drain(p, db, 4);
  free(sql1(db, "UPDATE orch_work_queue SET run_at = run_at - interval '1 hour' WHERE pid <> $1", 1,
            params));
  return pid;
}

static void check_process(orch_db *db, const char *pid, const char *expected) {
  const char *params[] = {pid};
  char *got = sql1(db,
                   "SELECT last_status || '|' || last_step || '|' || assignee || '|' ||"
                   " coalesce(failed_reason, '-') || '|' || coalesce(traceback, '-') || '|' ||"
                   " (SELECT count(*) FROM orch_work_queue q WHERE q.pid = p.pid) || '|' ||"
                   " (SELECT string_agg(status, ',' ORDER BY completed_at) FROM process_steps s"
                   "  WHERE s.pid = p.pid) FROM processes p WHERE pid = $1",
                   1, params);
  if (!got || strcmp(got, expected)) FAIL("process %s: got %s, want %s", pid, got, expected);
  free(got);
}

TEST(engine_maps_every_step_result) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  fake_runner f;
  fake_runner_init(&f, 1);
  orch_engine_params p = {&f.vt, "host-a", 10, 0, 0};
  char *pid;
  /* status | last step | assignee | failed_reason | traceback | queue rows | step statuses */
  pid = run_plan(db, &p, "KC");
  check_process(db, pid, "completed|Step 1 C|SYSTEM|-|-|0|skipped,complete");
  free(pid);
  pid = run_plan(db, &p, "SU");
  check_process(db, pid, "suspended|Step 1 U|NOC|-|-|0|success,suspend");
  free(pid);
  pid = run_plan(db, &p, "SA");
  check_process(db, pid, "awaiting_callback|Step 1 A|SYSTEM|-|-|0|success,awaiting_callback");
  free(pid);
  pid = run_plan(db, &p, "SX");
  check_process(db, pid, "aborted|Step 1 X|SYSTEM|-|-|0|success,abort");
  free(pid);
  pid = run_plan(db, &p, "SF");
  check_process(db, pid, "failed|Step 1 F|SYSTEM|boom|traceback of the boom|0|success,failed");
  const char *params[] = {pid};
  char *err_state = sql1(db,
                         "SELECT state->>'class' FROM process_steps WHERE pid = $1 AND"
                         " status = 'failed'",
                         1, params);
  ASSERT_STR_EQ(err_state, "ValueError");
  free(err_state);
  free(pid);
  /* Waiting: the same step again later, the old state kept, the error in the log and the row. */
  pid = run_plan(db, &p, "WC");
  check_process(db, pid, "waiting|Step 0 W|SYSTEM|try later|traceback of the wait|1|waiting");
  const char *wparams[] = {pid};
  char *queued =
      sql1(db,
           "SELECT step_index || '|' || attempts || '|' || (state->>'i') || '|' ||"
           " (lease_token IS NULL)::int || '|' || (run_at > now() + interval '0.5 s')::int"
           " FROM orch_work_queue WHERE pid = $1",
           1, wparams);
  ASSERT_STR_EQ(queued, "0|1|0|1|1");
  free(queued);
  free(pid);
  /* continue_now = 0: recorded, then back in the queue for any worker. */
  add_processes(db, 1, "QC");
  orch_batch *b = orch_batch_new(1);
  orch_error err = ORCH_ERROR_INIT;
  free(sql1(db,
            "UPDATE orch_work_queue SET run_at = now() + interval '1 hour' WHERE"
            " state->>'plan' <> 'QC'",
            0, NULL));
  ASSERT_EQ(orch_engine_claim(&p, db, b, &err), 1);
  orch_engine_run(&p, b);
  ASSERT_OK(orch_engine_commit(&p, db, b, 0, NULL, &err));
  ASSERT_EQ(orch_batch_count(b), 0);
  ASSERT_SQL_EQ(
      db,
      "SELECT step_index || '|' || (lease_owner IS NULL)::int || '|' || p.last_status FROM"
      " orch_work_queue q JOIN processes p USING (pid) WHERE state->>'plan' = 'QC'",
      "1|1|running");
  orch_batch_free(b);
  /* persist() failing fails only its own step, and its writes are rolled back. */
  add_processes(db, 1, "PC");
  add_processes(db, 1, "SC");
  free(sql1(db,
            "UPDATE orch_work_queue SET run_at = now() + interval '1 hour' WHERE"
            " state->>'plan' NOT IN ('PC', 'SC')",
            0, NULL));
  b = orch_batch_new(4);
  ASSERT_EQ(orch_engine_claim(&p, db, b, &err), 2);
  orch_engine_run(&p, b);
  orch_engine_stats st;
  ASSERT_OK(orch_engine_commit(&p, db, b, 0, &st, &err));
  ASSERT_EQ(st.committed, 2);
  orch_batch_free(b);
  ASSERT_SQL_EQ(db,
                "SELECT p.last_status || '|' || coalesce(p.note, '-') || '|' || p.failed_reason"
                " FROM processes p JOIN process_steps s USING (pid) WHERE s.name = 'Step 0 P'",
                "failed|-|saving the changes of step 'Step 0 P' failed: the subscription could "
                "not be saved");
  ASSERT_SQL_EQ(db,
                "SELECT p.last_status || '|' || p.note FROM processes p JOIN process_steps s"
                " USING (pid) WHERE s.name = 'Step 0 S' AND p.pid IN"
                " (SELECT pid FROM orch_work_queue WHERE state->>'plan' = 'SC')",
                "running|persisted");
  fake_runner_free(&f);
  orch_db_free(db);
  free(uri);
}

/* on_run hook: another host takes the lease (or it runs out) while the step runs. */
static void lose_lease(fake_runner *f, const orch_step_job *job) {
  orch_db *other = f->arg;
  char plan[8] = {0};
  const char *p = strstr(job->state, "\"plan\": \"");
  if (p) memcpy(plan, p + 9, 2);
  const char *params[] = {job->pid};
  if (!strcmp(plan, "TC"))
    free(sql1(other,
              "UPDATE orch_work_queue SET lease_owner = 'thief', lease_token = gen_random_uuid()"
              " WHERE pid = $1",
              1, params));
  else if (!strcmp(plan, "EC"))
    free(sql1(other,
              "UPDATE orch_work_queue SET lease_expires = now() - interval '1 second'"
              " WHERE pid = $1",
              1, params));
}

TEST(engine_fencing_discards_a_lost_lease) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri), *other = orch_db_new(uri);
  add_processes(db, 1, "TC"); /* stolen by another owner */
  add_processes(db, 1, "EC"); /* lease expired */
  add_processes(db, 1, "SC"); /* untouched */
  fake_runner f;
  fake_runner_init(&f, 1);
  f.on_run = lose_lease;
  f.arg = other;
  orch_engine_params p = {&f.vt, "host-a", 10, 0, 0};
  orch_batch *b = orch_batch_new(8);
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_EQ(orch_engine_claim(&p, db, b, &err), 3);
  orch_engine_run(&p, b);
  orch_engine_stats st;
  ASSERT_OK(orch_engine_commit(&p, db, b, 0, &st, &err));
  ASSERT_EQ(st.lost, 2);
  ASSERT_EQ(st.committed, 1);
  ASSERT_EQ(f.discarded, 2);
  ASSERT_EQ(f.persisted, 1); /* persist() never ran for the lost ones */
  ASSERT_EQ(orch_batch_count(b), 1);
  /* Nothing of the lost steps reached the database. */
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps", "1");
  ASSERT_SQL_EQ(db, "SELECT string_agg(DISTINCT s.name, ',') FROM process_steps s", "Step 0 S");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM processes WHERE note IS NOT NULL", "1");
  ASSERT_SQL_EQ(db,
                "SELECT count(*) FROM orch_work_queue WHERE step_index = 0 AND"
                " state->>'plan' IN ('TC', 'EC')",
                "2");
  ASSERT_SQL_EQ(db, "SELECT lease_owner FROM orch_work_queue WHERE state->>'plan' = 'TC'", "thief");
  orch_batch_free(b);
  fake_runner_free(&f);
  orch_db_free(other);
  orch_db_free(db);
  free(uri);
}

static void config_for(orch_config *cfg, const char *uri, int workers, int lease, int batch) {
  orch_error err = ORCH_ERROR_INIT;
  if (orch_config_init(cfg, &err) != ORCH_OK) FAIL("config: %s", err.message);
  free(cfg->database_uri);
  cfg->database_uri = orch_strdup(uri);
  cfg->workers = workers;
  cfg->lease_seconds = lease;
  cfg->worker_batch = batch;
}

TEST(sched_two_hosts_never_run_a_step_twice) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 60, "SSSSSSSSSC");
  orch_config cfg;
  config_for(&cfg, uri, 2, 10, 4);
  orch_threadctx_setup(&cfg);
  fake_runner f;
  fake_runner_init(&f, 1);
  orch_sched *a = NULL, *b = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_sched_start(&a, &cfg, &f.vt, orch_threadctx_thread_db, &err));
  ASSERT_OK(orch_sched_start(&b, &cfg, &f.vt, orch_threadctx_thread_db, &err));
  wait_zero(db, "SELECT count(*) FROM orch_work_queue", 60);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_hosts WHERE workers = 2", "2");
  orch_sched_stop(a);
  orch_sched_stop(b);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_hosts", "0");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM processes WHERE last_status = 'completed'", "60");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps", "600");
  ASSERT_SQL_EQ(db, no_duplicates_sql, "0");
  ASSERT_EQ(f.runs, 600);
  ASSERT_EQ(f.committed, 600);
  ASSERT_EQ(f.discarded, 0);
  orch_threadctx_shutdown();
  fake_runner_free(&f);
  orch_config_free(&cfg);
  orch_db_free(db);
  free(uri);
}

TEST(sched_takes_over_the_leases_of_a_dead_host) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 5, "SSSC");
  fake_runner f;
  fake_runner_init(&f, 0);
  /* A host claims everything and dies before committing anything. */
  orch_engine_params dead = {&f.vt, "dead-host", 2, 0, 0};
  orch_batch *held = orch_batch_new(8);
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_EQ(orch_engine_claim(&dead, db, held, &err), 5);
  orch_engine_run(&dead, held); /* it even ran the first step */
  orch_batch_free(held);
  long long t0 = orch_now_ns();
  orch_config cfg;
  config_for(&cfg, uri, 2, 2, 4);
  orch_threadctx_setup(&cfg);
  orch_sched *s = NULL;
  ASSERT_OK(orch_sched_start(&s, &cfg, &f.vt, orch_threadctx_thread_db, &err));
  wait_zero(db, "SELECT count(*) FROM processes WHERE last_status <> 'completed'", 15);
  double took = (double)(orch_now_ns() - t0) / 1e9;
  orch_sched_stop(s);
  if (took < 1.0 || took > 4.0) FAIL("take-over after %.2f s (lease 2 s)", took);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps", "20");
  ASSERT_SQL_EQ(db, no_duplicates_sql, "0");
  ASSERT_EQ(f.runs, 25); /* the dead host's first steps ran again: at least once */
  orch_threadctx_shutdown();
  fake_runner_free(&f);
  orch_config_free(&cfg);
  orch_db_free(db);
  free(uri);
}

static void slow_step(fake_runner *f, const orch_step_job *job) {
  ORCH_UNUSED(f);
  ORCH_UNUSED(job);
  sleep_ms(2);
}

TEST(sched_pause_stops_before_the_next_step_and_resume_continues) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  char plan[64];
  memset(plan, 'S', 49);
  plan[49] = 'C';
  plan[50] = '\0';
  add_processes(db, 8, plan);
  orch_config cfg;
  config_for(&cfg, uri, 2, 10, 4);
  orch_threadctx_setup(&cfg);
  orch_sched_poll_ms = 5000; /* pause and resume must arrive by notification */
  fake_runner f;
  fake_runner_init(&f, 0);
  f.on_run = slow_step;
  orch_sched *s = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_sched_start(&s, &cfg, &f.vt, orch_threadctx_thread_db, &err));
  while (sql_long(db, "SELECT count(*) FROM process_steps") < 40)
    sleep_ms(5);
  free(sql1(db, "UPDATE engine_settings SET global_lock = true", 0, NULL));
  /* PAUSING -> PAUSED: the leases are given back quickly. */
  wait_zero(db, "SELECT count(*) FROM orch_work_queue WHERE lease_expires > now()", 3);
  long steps = sql_long(db, "SELECT count(*) FROM process_steps");
  sleep_ms(600);
  ASSERT_EQ(sql_long(db, "SELECT count(*) FROM process_steps"), steps);
  ASSERT(steps < 400);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM processes WHERE last_status = 'running'", "8");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_work_queue", "8");
  free(sql1(db, "UPDATE engine_settings SET global_lock = false", 0, NULL));
  wait_zero(db, "SELECT count(*) FROM processes WHERE last_status <> 'completed'", 20);
  orch_sched_stop(s);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps", "400");
  ASSERT_SQL_EQ(db, no_duplicates_sql, "0");
  orch_threadctx_shutdown();
  fake_runner_free(&f);
  orch_config_free(&cfg);
  orch_db_free(db);
  free(uri);
}

TEST(sched_waiting_step_runs_again_after_its_backoff) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 2, "SWC");
  orch_config cfg;
  config_for(&cfg, uri, 1, 10, 4);
  orch_threadctx_setup(&cfg);
  orch_sched_poll_ms = 100;
  fake_runner f;
  fake_runner_init(&f, 0);
  f.retry_delay_s = 1.0;
  orch_sched *s = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_sched_start(&s, &cfg, &f.vt, orch_threadctx_thread_db, &err));
  wait_zero(db, "SELECT count(*) FROM processes WHERE last_status <> 'completed'", 10);
  orch_sched_stop(s);
  ASSERT_SQL_EQ(db,
                "SELECT string_agg(status, ',' ORDER BY completed_at) FROM process_steps WHERE"
                " pid = (SELECT min(pid::text)::uuid FROM processes)",
                "success,waiting,success,complete");
  /* The retry came no earlier than the backoff. */
  ASSERT_SQL_EQ(db,
                "SELECT count(*) FROM process_steps w JOIN process_steps r USING (pid)"
                " WHERE w.status = 'waiting' AND r.name = w.name AND r.status = 'success'"
                " AND r.started_at >= w.completed_at + interval '0.95 seconds'",
                "2");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM processes WHERE failed_reason IS NOT NULL", "0");
  orch_threadctx_shutdown();
  fake_runner_free(&f);
  orch_config_free(&cfg);
  orch_db_free(db);
  free(uri);
}

TEST(sched_wakes_idle_workers_and_stops_gracefully) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri), *api = orch_db_new(uri);
  orch_config cfg;
  config_for(&cfg, uri, 2, 10, 4);
  orch_threadctx_setup(&cfg);
  orch_sched_poll_ms = 5000; /* without a wake-up, nothing would happen for 5 s */
  fake_runner f;
  fake_runner_init(&f, 0);
  orch_sched *s = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_sched_start(&s, &cfg, &f.vt, orch_threadctx_thread_db, &err));
  sleep_ms(300); /* the workers are idle now */
  /* Another host's API: a NOTIFY reaches the listener. */
  long long t0 = orch_now_ns();
  add_processes(api, 1, "SC");
  free(sql1(api, "SELECT pg_notify('" ORCH_SCHED_CHANNEL "', 'work')", 0, NULL));
  wait_zero(db, "SELECT count(*) FROM processes WHERE last_status <> 'completed'", 3);
  double took = (double)(orch_now_ns() - t0) / 1e9;
  if (took > 1.0) FAIL("NOTIFY wake-up took %.2f s", took);
  /* This host's API: orch_sched_notify wakes the local workers directly. */
  sleep_ms(100);
  t0 = orch_now_ns();
  add_processes(api, 1, "SC");
  ASSERT_OK(orch_sched_notify(api, &err));
  wait_zero(db, "SELECT count(*) FROM processes WHERE last_status <> 'completed'", 3);
  took = (double)(orch_now_ns() - t0) / 1e9;
  if (took > 1.0) FAIL("local wake-up took %.2f s", took);
  /* Stop while work is in flight: the current steps commit and every lease is given back. */
  char plan[201];
  memset(plan, 'S', 200);
  plan[200] = '\0';
  add_processes(api, 6, plan);
  ASSERT_OK(orch_sched_notify(api, &err));
  while (sql_long(db, "SELECT count(*) FROM process_steps") < 30)
    sleep_ms(2);
  orch_sched_stop(s);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_work_queue WHERE lease_owner IS NOT NULL", "0");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_work_queue", "6");
  ASSERT_EQ(f.discarded, 0);
  ASSERT_EQ(sql_long(db, "SELECT count(*) FROM process_steps"), f.committed);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_hosts", "0");
  orch_threadctx_shutdown();
  fake_runner_free(&f);
  orch_config_free(&cfg);
  orch_db_free(api);
  orch_db_free(db);
  free(uri);
}

static void hang(fake_runner *f, const orch_step_job *job) {
  ORCH_UNUSED(f);
  ORCH_UNUSED(job);
  sleep_ms(4000);
}

TEST(sched_hung_worker_loses_its_processes) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 1, "SSC");
  orch_config cfg;
  config_for(&cfg, uri, 1, 2, 4);
  orch_threadctx_setup(&cfg);
  orch_sched_max_step_seconds = 1; /* the heartbeat gives up on a step after 1 s */
  fake_runner stuck, healthy;
  fake_runner_init(&stuck, 0);
  fake_runner_init(&healthy, 0);
  stuck.on_run = hang;
  orch_sched *a = NULL, *b = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_sched_start(&a, &cfg, &stuck.vt, orch_threadctx_thread_db, &err));
  while (sql_long(db, "SELECT count(*) FROM orch_work_queue WHERE lease_owner IS NOT NULL") == 0)
    sleep_ms(10);
  ASSERT_OK(orch_sched_start(&b, &cfg, &healthy.vt, orch_threadctx_thread_db, &err));
  /* Without the limit, a's heartbeat would keep its lease alive for as long as it hangs. */
  wait_zero(db, "SELECT count(*) FROM processes WHERE last_status <> 'completed'", 10);
  for (int i = 0; i < 400; i++) {
    pthread_mutex_lock(&stuck.mu);
    long discarded = stuck.discarded;
    pthread_mutex_unlock(&stuck.mu);
    if (discarded) break;
    sleep_ms(20);
  }
  orch_sched_stop(a);
  orch_sched_stop(b);
  ASSERT_EQ(stuck.discarded, 1); /* it woke up and could not commit */
  ASSERT_EQ(stuck.committed, 0);
  ASSERT_EQ(healthy.committed, 3);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps", "3");
  ASSERT_SQL_EQ(db, no_duplicates_sql, "0");
  orch_threadctx_shutdown();
  fake_runner_free(&stuck);
  fake_runner_free(&healthy);
  orch_config_free(&cfg);
  orch_db_free(db);
  free(uri);
}

/* A host in a child process: runs a scheduler until the queue is empty, then exits. */
static pid_t spawn_host(const char *uri) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid != 0) return pid;
  orch_config cfg;
  config_for(&cfg, uri, 2, 2, 4);
  orch_threadctx_setup(&cfg);
  fake_runner f;
  fake_runner_init(&f, 0);
  f.on_run = slow_step;
  orch_sched *s = NULL;
  orch_error err = ORCH_ERROR_INIT;
  if (orch_sched_start(&s, &cfg, &f.vt, orch_threadctx_thread_db, &err) != ORCH_OK) _exit(3);
  orch_db *db = orch_db_new(uri);
  long long until = orch_now_ns() + 60 * 1000000000LL;
  while (orch_now_ns() < until && sql_long(db, "SELECT count(*) FROM orch_work_queue") > 0)
    sleep_ms(100);
  orch_sched_stop(s);
  _exit(0); /* a host process; no leak report from the copy of the parent's heap */
}

TEST(sched_survives_sigkill_and_sigstop_of_other_hosts) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 100, "SSSSSSSSSC");
  pid_t killed = spawn_host(uri), stopped = spawn_host(uri);
  while (sql_long(db, "SELECT count(*) FROM process_steps") < 100)
    sleep_ms(5);
  kill(killed, SIGKILL);  /* mid-run: its leases must be taken over */
  kill(stopped, SIGSTOP); /* frozen past its lease: it must not commit what it ran */
  orch_config cfg;
  config_for(&cfg, uri, 2, 2, 4);
  orch_threadctx_setup(&cfg);
  fake_runner f;
  fake_runner_init(&f, 0);
  f.on_run = slow_step;
  orch_sched *s = NULL;
  orch_error err = ORCH_ERROR_INIT;
  long long t0 = orch_now_ns();
  ASSERT_OK(orch_sched_start(&s, &cfg, &f.vt, orch_threadctx_thread_db, &err));
  sleep_ms(3000);
  kill(stopped, SIGCONT);
  wait_zero(db, "SELECT count(*) FROM processes WHERE last_status <> 'completed'", 60);
  double took = (double)(orch_now_ns() - t0) / 1e9;
  orch_sched_stop(s);
  int status = 0;
  waitpid(killed, &status, 0);
  ASSERT(WIFSIGNALED(status));
  waitpid(stopped, &status, 0);
  ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps", "1000");
  ASSERT_SQL_EQ(db, no_duplicates_sql, "0");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_work_queue", "0");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_hosts WHERE heartbeat_at > now() - interval '2 s'",
                "0");
  if (took > 20) FAIL("recovery took %.1f s", took);
  orch_threadctx_shutdown();
  fake_runner_free(&f);
  orch_config_free(&cfg);
  orch_db_free(db);
  free(uri);
}

TEST(sched_unconfigured_runner_fails_steps_clearly) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 1, "SC");
  orch_engine_params p = {orch_sched_unconfigured_runner(), "host-a", 10, 0, 0};
  drain(&p, db, 2);
  ASSERT_SQL_EQ(db, "SELECT last_status || '|' || failed_reason FROM processes",
                "failed|no workflow runner is configured");
  orch_db_free(db);
  free(uri);
}

TEST(engine_step_group_overwrites_the_newest_row) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 1, "SGGC");
  fake_runner f;
  fake_runner_init(&f, 0);
  orch_engine_params p = {&f.vt, "host-a", 10, 0, 0};
  drain(&p, db, 2);
  ASSERT_SQL_EQ(db,
                "SELECT string_agg(status || ':' || name, ',' ORDER BY completed_at) FROM"
                " process_steps",
                "success:Step 2 G,complete:Step 3 C");
  ASSERT_SQL_EQ(db, "SELECT state->>'i' FROM process_steps WHERE name = 'Step 2 G'", "3");
  fake_runner_free(&f);
  orch_db_free(db);
  free(uri);
}

TEST(engine_long_process_gives_its_slot_back) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  char plan[80];
  memset(plan, 'S', 70);
  plan[70] = 'C';
  plan[71] = '\0';
  add_processes(db, 1, plan);
  fake_runner f;
  fake_runner_init(&f, 0);
  orch_engine_params p = {&f.vt, "host-a", 10, 0, 0};
  orch_batch *b = orch_batch_new(1);
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_EQ(orch_engine_claim(&p, db, b, &err), 1);
  int steps = 0;
  while (orch_batch_count(b)) {
    orch_engine_run(&p, b);
    ASSERT_OK(orch_engine_commit(&p, db, b, 0, NULL, &err));
    steps++;
  }
  ASSERT_EQ(steps, 64); /* then back to the queue, free for anyone */
  ASSERT_SQL_EQ(db, "SELECT step_index || '|' || (lease_owner IS NULL)::int FROM orch_work_queue",
                "64|1");
  drain(&p, db, 1);
  ASSERT_SQL_EQ(db, "SELECT last_status FROM processes", "completed");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps", "71");
  orch_batch_free(b);
  fake_runner_free(&f);
  orch_db_free(db);
  free(uri);
}

TEST(engine_bad_result_fails_only_its_own_process) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 1, "JC");
  add_processes(db, 2, "SC");
  fake_runner f;
  fake_runner_init(&f, 1);
  orch_engine_params p = {&f.vt, "host-a", 10, 0, 0};
  drain(&p, db, 4);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM processes WHERE last_status = 'completed'", "2");
  ASSERT_SQL_EQ(db,
                "SELECT last_status || '|' || (failed_reason LIKE 'recording the step failed: %"
                "json%')::int FROM processes WHERE last_status <> 'completed'",
                "failed|1");
  ASSERT_SQL_EQ(db,
                "SELECT count(*) FROM process_steps WHERE status = 'failed' AND"
                " state->>'class' = 'EngineError'",
                "1");
  /* The failed one's persist() was rolled back with it; the others' stayed. */
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM processes WHERE note = 'persisted'", "2");
  fake_runner_free(&f);
  orch_db_free(db);
  free(uri);
}

TEST(engine_defers_a_step_the_runner_cannot_start) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 1, "SDC");
  fake_runner f;
  fake_runner_init(&f, 0);
  orch_engine_params p = {&f.vt, "host-a", 10, 0, 0};
  drain(&p, db, 2);
  ASSERT_EQ(f.committed, 1);
  ASSERT_SQL_EQ(db, "SELECT string_agg(status, ',') FROM process_steps", "success");
  ASSERT_SQL_EQ(db,
                "SELECT p.last_status || '|' || q.step_index || '|' || q.attempts || '|' ||"
                " (q.lease_owner IS NULL)::int || '|' || (q.run_at > now() + interval '4 s')::int"
                " FROM orch_work_queue q JOIN processes p USING (pid)",
                "running|1|0|1|1");
  fake_runner_free(&f);
  orch_db_free(db);
  free(uri);
}

/* persist() that kills its own connection in the middle of the commit transaction (twice). */
static int persist_and_die(void *ud, orch_db *db, const orch_step_job *job, orch_step_result *res,
                           orch_error *err) {
  static int killed;
  ORCH_UNUSED(ud);
  ORCH_UNUSED(job);
  ORCH_UNUSED(res);
  if (killed++ >= 2) return ORCH_OK; /* the fast path, then the item-by-item path */
  orch_db_exec(db, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, NULL, err);
  orch_error_set(err, ORCH_EDB, "connection lost");
  return ORCH_EDB;
}

TEST(engine_failed_commit_runs_the_steps_again) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 2, "SSC");
  fake_runner f;
  fake_runner_init(&f, 0);
  orch_engine_params p = {&f.vt, "host-a", 10, 0, 0};
  orch_batch *b = orch_batch_new(4);
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_EQ(orch_engine_claim(&p, db, b, &err), 2);
  f.vt.persist = persist_and_die;
  orch_engine_run(&p, b);
  ASSERT(orch_engine_commit(&p, db, b, 1, NULL, &err) != ORCH_OK);
  orch_error_clear(&err);
  ASSERT_EQ(f.discarded, 2);
  ASSERT_EQ(orch_batch_count(b), 2); /* still ours: run again without claiming */
  /* ... but not before the leases are confirmed: nothing runs while the database is away. */
  ASSERT(orch_batch_unconfirmed(b));
  long runs = f.runs;
  orch_engine_run(&p, b);
  ASSERT_EQ(f.runs, runs);
  /* As if the lost commit of the first process had gone through after all. */
  const char *first[] = {orch_batch_pid(b, 0)};
  free(sql1(db,
            "UPDATE orch_work_queue SET step_index = 1, state = '{\"plan\": \"SSC\", \"i\": 1}'"
            " WHERE pid = $1",
            1, first));
  ASSERT_EQ(orch_engine_confirm(&p, db, b, &err), 2);
  ASSERT(!orch_batch_unconfirmed(b));
  for (int round = 0; round < 10 && orch_batch_count(b); round++) {
    orch_engine_run(&p, b);
    ASSERT_OK(orch_engine_commit(&p, db, b, 0, NULL, &err));
  }
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM processes WHERE last_status = 'completed'", "2");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps", "5"); /* step 0 of one was "lost" */
  ASSERT_SQL_EQ(db, no_duplicates_sql, "0");
  orch_batch_free(b);
  fake_runner_free(&f);
  orch_db_free(db);
  free(uri);
}

/* More than FD_SETSIZE descriptors open before the scheduler connects: the keeper's database
 * socket gets a number above 1023, which an fd_set cannot hold (issue 14 item 11). */
TEST(sched_keeper_works_with_more_than_1024_descriptors) {
  struct rlimit rl;
  ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
  if (rl.rlim_cur < 1400) {
    rl.rlim_cur = rl.rlim_max < 1400 ? rl.rlim_max : 1400;
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl));
  }
  if (rl.rlim_cur < 1200)
    FAIL("cannot raise RLIMIT_NOFILE above 1200 (hard limit %ld)", (long)rl.rlim_max);
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  int fd;
  do {
    fd = open("/dev/null", O_RDONLY);
    ASSERT(fd >= 0);
  } while (fd < 1100);
  orch_config cfg;
  config_for(&cfg, uri, 1, 10, 4);
  orch_threadctx_setup(&cfg);
  orch_sched_poll_ms = 5000; /* only the NOTIFY on the keeper's socket wakes the worker */
  fake_runner f;
  fake_runner_init(&f, 0);
  orch_sched *s = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_sched_start(&s, &cfg, &f.vt, orch_threadctx_thread_db, &err));
  sleep_ms(300);
  orch_db *api = orch_db_new(uri);
  add_processes(api, 1, "SC");
  free(sql1(api, "SELECT pg_notify('" ORCH_SCHED_CHANNEL "', 'work')", 0, NULL));
  wait_zero(db, "SELECT count(*) FROM processes WHERE last_status <> 'completed'", 3);
  orch_sched_stop(s);
  ASSERT_EQ(f.committed, 2);
  orch_threadctx_shutdown();
  fake_runner_free(&f);
  orch_config_free(&cfg);
  orch_db_free(api);
  orch_db_free(db);
  free(uri);
}

/* The database name in a test URI (malloc'd). */
static char *db_name_of(const char *uri) {
  const char *at = strchr(uri, '@');
  const char *slash = at ? strchr(at, '/') : NULL;
  if (!slash) FAIL("no database name in %s", uri);
  return orch_strndup(slash + 1, strcspn(slash + 1, "?"));
}

/* Refuse (or allow again) every connection to a test database, ending the open ones. */
static void block_database(const char *uri, int blocked) {
  char *dir = pg_dir(), *name = db_name_of(uri);
  char *admin_uri = orch_sprintf("postgresql://postgres@/postgres?host=%s", dir);
  orch_db *admin = orch_db_new(admin_uri);
  char *alter =
      orch_sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %s", name, blocked ? "false" : "true");
  free(sql1(admin, alter, 0, NULL));
  if (blocked) {
    const char *params[] = {name};
    free(sql1(admin,
              "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1", 1,
              params));
  }
  free(alter);
  orch_db_free(admin);
  free(admin_uri);
  free(name);
  free(dir);
}

static long slow_runs(fake_runner *f) {
  pthread_mutex_lock(&f->mu);
  long n = f->slow_runs;
  pthread_mutex_unlock(&f->mu);
  return n;
}

/* Issue 14 item 8: a step whose commit failed because the database went away does not run again
 * and again during the outage; it runs once more at most, after the database is back. */
TEST(sched_database_outage_does_not_repeat_steps) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 1, "LSC");
  orch_config cfg;
  config_for(&cfg, uri, 1, 10, 4);
  orch_threadctx_setup(&cfg);
  fake_runner f;
  fake_runner_init(&f, 0);
  f.slow_ms = 1500;
  orch_sched *s = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_sched_start(&s, &cfg, &f.vt, orch_threadctx_thread_db, &err));
  while (slow_runs(&f) == 0)
    sleep_ms(10);
  block_database(uri, 1); /* the step is running: its commit will fail */
  sleep_ms(11000);        /* longer than the lease */
  long during = slow_runs(&f);
  block_database(uri, 0);
  wait_zero(db, "SELECT count(*) FROM processes WHERE last_status <> 'completed'", 30);
  orch_sched_stop(s);
  if (during > 1) FAIL("the slow step ran %ld times during an 11 s outage", during);
  if (slow_runs(&f) > 2) FAIL("the slow step ran %ld times in all", slow_runs(&f));
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps", "3");
  ASSERT_SQL_EQ(db, no_duplicates_sql, "0");
  orch_threadctx_shutdown();
  fake_runner_free(&f);
  orch_config_free(&cfg);
  orch_db_free(db);
  free(uri);
}

typedef struct run_arg {
  const orch_engine_params *p;
  orch_batch *b;
} run_arg;

static void *run_thread(void *arg) {
  run_arg *a = arg;
  orch_engine_run(a->p, a->b);
  return NULL;
}

/* Issue 14 item 9: a slow step hands back the processes behind it in its batch, and at the step
 * time limit it is recorded as failed (api_unavailable for a task) and its lease is gone. */
TEST(engine_slow_step_hands_back_its_batch_and_fails_at_the_time_limit) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri), *keeper = orch_db_new(uri);
  add_processes(db, 1, "LC");
  free(sql1(db, "UPDATE orch_work_queue SET run_at = now() - interval '1 minute'", 0, NULL));
  free(sql1(db, "UPDATE processes SET is_task = true", 0, NULL));
  char *slow = sql1(db, "SELECT pid::text FROM processes", 0, NULL);
  add_processes(db, 2, "SC");
  fake_runner f;
  fake_runner_init(&f, 1);
  f.slow_ms = 3000;
  orch_engine_params p = {&f.vt, "host-a", 10, 1800, 0};
  orch_batch *b = orch_batch_new(4);
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_EQ(orch_engine_claim(&p, db, b, &err), 3);
  ASSERT_STR_EQ(orch_batch_pid(b, 0), slow);
  run_arg a = {&p, b};
  pthread_t t;
  long long t0 = orch_now_ns();
  ASSERT_OK(pthread_create(&t, NULL, run_thread, &a));
  sleep_ms(500);
  ASSERT_EQ(orch_engine_watch(&p, keeper, b, 1000, &err), 0); /* not slow yet */
  sleep_ms(800);
  ASSERT_EQ(orch_engine_watch(&p, keeper, b, 1000, &err), 2);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_work_queue WHERE lease_owner IS NULL", "2");
  sleep_ms(700);
  int failed = orch_engine_watch(&p, keeper, b, 1000, &err);
  if (failed != 1) FAIL("watch: %d %s", failed, err.message ? err.message : "");
  ASSERT_EQ(orch_engine_watch(&p, keeper, b, 1000, &err), 0); /* once */
  const char *params[] = {slow};
  char *row =
      sql1(db,
           "SELECT last_status || '|' || (failed_reason LIKE '%step time limit of 1800 ms%')"
           "::int || '|' || (SELECT string_agg(status || ':' || (state->>'class'), ',')"
           " FROM process_steps s WHERE s.pid = p.pid) || '|' ||"
           " (SELECT count(*) FROM orch_work_queue q WHERE q.pid = p.pid)"
           " FROM processes p WHERE pid = $1",
           1, params);
  ASSERT_STR_EQ(row, "api_unavailable|1|failed:StepTimeout|0");
  free(row);
  pthread_join(t, NULL);
  double took = (double)(orch_now_ns() - t0) / 1e9;
  if (took > 4.0) FAIL("the run took %.1f s", took);
  ASSERT_EQ(f.runs, 1); /* the two handed back were not run here */
  ASSERT_OK(orch_engine_commit(&p, db, b, 0, NULL, &err));
  ASSERT_EQ(f.discarded, 1); /* the late result: its failure is recorded already */
  ASSERT_EQ(f.persisted, 0);
  ASSERT_EQ(orch_batch_count(b), 0);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM process_steps", "1");
  drain(&p, db, 4);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM processes WHERE last_status = 'completed'", "2");
  orch_batch_free(b);
  fake_runner_free(&f);
  free(slow);
  orch_db_free(keeper);
  orch_db_free(db);
  free(uri);
}

/* A step that comes back after the time limit (nobody watched) fails all the same. */
TEST(engine_late_step_fails_when_it_returns) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 1, "SLC");
  fake_runner f;
  fake_runner_init(&f, 1);
  f.slow_ms = 700;
  orch_engine_params p = {&f.vt, "host-a", 10, 300, 0};
  drain(&p, db, 2);
  ASSERT_SQL_EQ(db,
                "SELECT last_status || '|' || (failed_reason LIKE 'step ''Step 1 L'' ran longer"
                " than the step time limit of 300 ms%')::int FROM processes",
                "failed|1");
  ASSERT_SQL_EQ(db,
                "SELECT string_agg(status || ':' || coalesce(state->>'class', '-'), ','"
                " ORDER BY completed_at) FROM process_steps",
                "success:-,failed:StepTimeout");
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_work_queue", "0");
  ASSERT_EQ(f.persisted, 1); /* the late step's persist() did not run */
  fake_runner_free(&f);
  orch_db_free(db);
  free(uri);
}

/* Issue 14 item 12: a state larger than the limit fails the step and is not written. */
TEST(engine_state_over_the_limit_fails_the_step) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 1, "SBC");
  fake_runner f;
  fake_runner_init(&f, 1);
  orch_engine_params p = {&f.vt, "host-a", 10, 0, 1000};
  drain(&p, db, 2);
  ASSERT_SQL_EQ(db,
                "SELECT last_status || '|' || (failed_reason LIKE 'step ''Step 1 B'' returned a"
                " state of 11__ bytes, more than the limit of 1000 bytes%')::int FROM processes",
                "failed|1");
  ASSERT_SQL_EQ(db,
                "SELECT string_agg(status || ':' || coalesce(state->>'class', '-'), ','"
                " ORDER BY completed_at) FROM process_steps",
                "success:-,failed:StateTooLarge");
  ASSERT_SQL_EQ(db, "SELECT max(length(state::text)) < 400 FROM process_steps", "t");
  ASSERT_EQ(f.persisted, 1); /* not for the failed one */
  fake_runner_free(&f);
  orch_db_free(db);
  free(uri);
}

/* Issue 14 item 9 through the scheduler: another host runs what waits behind a slow step, and the
 * keeper fails the slow step at the time limit while it still runs. */
TEST(sched_slow_step_does_not_hold_its_batch) {
  char *uri = new_database();
  orch_db *db = orch_db_new(uri);
  add_processes(db, 1, "LC");
  free(sql1(db, "UPDATE orch_work_queue SET run_at = now() - interval '1 minute'", 0, NULL));
  char *pid = sql1(db, "SELECT pid::text FROM processes", 0, NULL);
  add_processes(db, 3, "SC");
  char *others_sql = orch_sprintf(
      "SELECT count(*) FROM processes WHERE pid <> '%s' AND last_status <> 'completed'", pid);
  char *slow_sql = orch_sprintf(
      "SELECT count(*) FROM processes WHERE pid = '%s' AND last_status <> 'failed'", pid);
  orch_config cfg;
  config_for(&cfg, uri, 1, 10, 4);
  cfg.step_timeout_s = 3;
  orch_threadctx_setup(&cfg);
  fake_runner slow, other;
  fake_runner_init(&slow, 0);
  fake_runner_init(&other, 0);
  slow.slow_ms = 6000;
  orch_sched *a = NULL, *b = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_sched_start(&a, &cfg, &slow.vt, orch_threadctx_thread_db, &err));
  while (slow_runs(&slow) == 0)
    sleep_ms(5);
  long long t0 = orch_now_ns();
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_work_queue WHERE lease_owner IS NOT NULL", "4");
  ASSERT_OK(orch_sched_start(&b, &cfg, &other.vt, orch_threadctx_thread_db,
                             &err)); /* idle, next to the busy host */
  wait_zero(db, others_sql, 3);
  double took = (double)(orch_now_ns() - t0) / 1e9;
  if (took > 2.5) FAIL("the processes behind the slow step waited %.1f s", took);
  ASSERT_EQ(other.committed, 6);
  /* The slow step is failed at 3 s, while it still runs (it sleeps 6 s). */
  wait_zero(db, slow_sql, 5);
  took = (double)(orch_now_ns() - t0) / 1e9;
  if (took > 4.5) FAIL("the slow step was failed after %.1f s", took);
  ASSERT_SQL_EQ(db, "SELECT count(*) FROM orch_work_queue", "0");
  orch_sched_stop(a);
  orch_sched_stop(b);
  ASSERT_EQ(slow.runs, 1);
  ASSERT_EQ(slow.discarded, 1);
  ASSERT_SQL_EQ(db, no_duplicates_sql, "0");
  orch_threadctx_shutdown();
  fake_runner_free(&slow);
  fake_runner_free(&other);
  free(pid);
  free(others_sql);
  free(slow_sql);
  orch_config_free(&cfg);
  orch_db_free(db);
  free(uri);
}

/* ---- runner ---- */

#define TESTS(X)                                                                                   \
  X(engine_runs_processes_to_completion)                                                           \
  X(engine_maps_every_step_result)                                                                 \
  X(engine_fencing_discards_a_lost_lease)                                                          \
  X(engine_step_group_overwrites_the_newest_row)                                                   \
  X(engine_failed_commit_runs_the_steps_again)                                                     \
  X(engine_bad_result_fails_only_its_own_process)                                                  \
  X(engine_defers_a_step_the_runner_cannot_start)                                                  \
  X(engine_long_process_gives_its_slot_back)                                                       \
  X(sched_two_hosts_never_run_a_step_twice)                                                        \
  X(sched_takes_over_the_leases_of_a_dead_host)                                                    \
  X(sched_pause_stops_before_the_next_step_and_resume_continues)                                   \
  X(sched_waiting_step_runs_again_after_its_backoff)                                               \
  X(sched_wakes_idle_workers_and_stops_gracefully)                                                 \
  X(sched_hung_worker_loses_its_processes)                                                         \
  X(sched_survives_sigkill_and_sigstop_of_other_hosts)                                             \
  X(sched_unconfigured_runner_fails_steps_clearly)                                                 \
  X(sched_keeper_works_with_more_than_1024_descriptors)                                            \
  X(sched_database_outage_does_not_repeat_steps)                                                   \
  X(engine_slow_step_hands_back_its_batch_and_fails_at_the_time_limit)                             \
  X(engine_late_step_fails_when_it_returns)                                                        \
  X(engine_state_over_the_limit_fails_the_step)                                                    \
  X(sched_slow_step_does_not_hold_its_batch)

static const orch_test tests[] = {TESTS(ORCH_TEST_ENTRY)};

int main(int argc, char **argv) {
  return orch_test_main(tests, ORCH_ARRAY_LEN(tests), argc, argv);
}
