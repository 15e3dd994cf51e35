/* engine.c - claim, run and fenced commit of process steps (see engine.h, docs/engine.md). */
#include "orch.h"

#include "buf.h"
#include "engine.h"
#include "events.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * A process gives its lease back after this many steps in a row, so that long
 * workflows cannot keep newer processes waiting for a slot: it goes to the
 * back of the queue (run_at = now) and costs one claim per this many steps.
 */
#define ORCH_ENGINE_MAX_STREAK 64

/* What a held process needs between claim and commit. */
typedef struct held {
  char pid[37];
  char token[37];
  char *workflow;   /* owned */
  char *state;      /* owned: JSON text of the state before the next step */
  char *created_by; /* owned; may be NULL */
  int step_index;
  int attempt;
  long generation;
  long long handoff_ns;
  int streak; /* steps run in a row under this lease */
  /* Filled by orch_engine_run, consumed by orch_engine_commit. */
  int ran;        /* 0 nothing to commit, 1 result, -1 runner could not start the step */
  double started; /* wall clock (epoch seconds) when the step started */
  int fenced;     /* the fence returned this pid: the lease is still ours */
  int recorded;   /* the step's outcome is written in the open transaction */
  int keep;       /* stays in the batch after the commit */
  /* Shared with orch_engine_watch (another thread), under the batch's mutex. */
  int begun;          /* its step started in the current run */
  int handed_back;    /* its lease was given back before its step started: drop it */
  int timed_out;      /* its step ran past the step time limit: the result is thrown away */
  long long start_ns; /* orch_now_ns() when its step started */
  int engine_failed;  /* the engine turned the result into a failure: no persist() */
  int gone;           /* orch_engine_watch recorded its failure: drop it */
  orch_step_result res;
} held;

struct orch_batch {
  held *items;
  int n, cap;
  int unconfirmed;    /* the last commit failed: confirm the leases before running again */
  pthread_mutex_t mu; /* guards running, current and the shared fields of the items */
  int running;        /* inside orch_engine_run */
  int current;        /* the item whose step runs now, or -1 */
};

static const char *const status_names[] = {"success",           "skipped", "suspend", "waiting",
                                           "awaiting_callback", "abort",   "failed",  "complete"};
static const char *const process_statuses[] = {"running", "running",           "suspended",
                                               "waiting", "awaiting_callback", "aborted",
                                               "failed",  "completed"};

const char *orch_step_status_name(orch_step_status s) {
  return (unsigned)s < ORCH_ARRAY_LEN(status_names) ? status_names[s] : NULL;
}

const char *orch_step_process_status(orch_step_status s) {
  return (unsigned)s < ORCH_ARRAY_LEN(process_statuses) ? process_statuses[s] : NULL;
}

void orch_step_result_clear(orch_step_result *res) {
  free(res->step_name);
  free(res->state);
  free(res->log_state);
  free(res->failed_reason);
  free(res->traceback);
  free(res->assignee);
  free(res->process_status);
  free(res->code_hash);
  memset(res, 0, sizeof *res);
}

orch_batch *orch_batch_new(int capacity) {
  orch_batch *b = orch_xcalloc(1, sizeof *b);
  b->cap = capacity > 0 ? capacity : 1;
  b->items = orch_xcalloc((size_t)b->cap, sizeof *b->items);
  b->current = -1;
  pthread_mutex_init(&b->mu, NULL);
  return b;
}

static void held_clear(held *h) {
  free(h->workflow);
  free(h->state);
  free(h->created_by);
  orch_step_result_clear(&h->res);
  memset(h, 0, sizeof *h);
}

/* Tell the runner how a result ended, then free it. */
static void settle(const orch_engine_params *p, held *h, int committed) {
  if (h->ran == 1 && p->runner->done) p->runner->done(p->runner->ud, &h->res, committed);
  orch_step_result_clear(&h->res);
  h->ran = h->fenced = h->recorded = 0;
}

void orch_batch_free(orch_batch *b) {
  if (!b) return;
  for (int i = 0; i < b->n; i++)
    held_clear(&b->items[i]);
  free(b->items);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

int orch_batch_unconfirmed(const orch_batch *b) {
  return b->unconfirmed;
}

int orch_batch_count(const orch_batch *b) {
  return b->n;
}

int orch_batch_capacity(const orch_batch *b) {
  return b->cap;
}

const char *orch_batch_pid(const orch_batch *b, int i) {
  return i >= 0 && i < b->n ? b->items[i].pid : NULL;
}

/* Remove the items whose keep flag is 0, preserving order. */
static void compact(orch_batch *b) {
  int w = 0;
  for (int i = 0; i < b->n; i++) {
    if (b->items[i].keep) {
      if (w != i) b->items[w] = b->items[i];
      w++;
    } else {
      held_clear(&b->items[i]);
    }
  }
  for (int i = w; i < b->n; i++)
    memset(&b->items[i], 0, sizeof b->items[i]);
  b->n = w;
}

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * One statement claims the oldest claimable rows. A lease moves run_at to the
 * lease expiry, so a held row is not claimable until its lease runs out.
 * Nothing is claimed while the engine is paused.
 */
static const char *claim_sql =
    "WITH c AS (SELECT pid, lease_token IS NOT NULL AS took FROM orch_work_queue"
    "  WHERE run_at <= now() AND NOT EXISTS (SELECT 1 FROM engine_settings WHERE global_lock)"
    "  ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " UPDATE orch_work_queue q SET lease_owner = $1, lease_token = $2,"
    "   lease_expires = now() + make_interval(secs => $3::int),"
    "   run_at = now() + make_interval(secs => $3::int)"
    " FROM c, processes p, workflows w"
    " WHERE q.pid = c.pid AND p.pid = q.pid AND w.workflow_id = p.workflow_id"
    " RETURNING q.pid, w.name, q.state::text, p.created_by, q.step_index, q.attempts,"
    "   coalesce(q.generation, 0), c.took";

static int claim_into(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err) {
  int room = b->cap - b->n;
  if (room <= 0) return 0;
  char token[37], ttl[16], limit[16];
  orch_uuid_v4(token);
  snprintf(ttl, sizeof ttl, "%d", p->lease_seconds);
  snprintf(limit, sizeof limit, "%d", room);
  const char *params[] = {p->owner, token, ttl, limit};
  PGresult *res = NULL;
  if (orch_db_exec(db, claim_sql, 4, params, &res, err) < 0) {
    orch_error_prefix(err, "claiming work");
    return ORCH_EDB;
  }
  int n = PQntuples(res), took = 0;
  for (int i = 0; i < n; i++)
    took += PQgetvalue(res, i, 7)[0] == 't';
  orch_metrics_claims(n, took);
  for (int i = 0; i < n && b->n < b->cap; i++) {
    held *h = &b->items[b->n++];
    memset(h, 0, sizeof *h);
    snprintf(h->pid, sizeof h->pid, "%s", PQgetvalue(res, i, 0));
    memcpy(h->token, token, sizeof h->token);
    h->workflow = orch_strdup(PQgetvalue(res, i, 1));
    h->state = orch_strdup(PQgetvalue(res, i, 2));
    h->created_by = PQgetisnull(res, i, 3) ? NULL : orch_strdup(PQgetvalue(res, i, 3));
    h->step_index = atoi(PQgetvalue(res, i, 4));
    h->attempt = atoi(PQgetvalue(res, i, 5));
    h->generation = atol(PQgetvalue(res, i, 6));
  }
  PQclear(res);
  return n;
}

int orch_engine_claim(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err) {
  return claim_into(p, db, b, err);
}

/* Turn a result into a failed step with an error dict of `cls` (state before the step kept). */
static void make_failed_as(held *h, const char *cls, const char *reason);

/* The step limits of orch_engine_params, checked when a step returned. */
static void check_limits(const orch_engine_params *p, held *h, int timed_out) {
  orch_step_result *r = &h->res;
  char *reason = NULL;
  const char *cls = NULL;
  if (timed_out) {
    cls = "StepTimeout";
    reason = orch_sprintf("step '%s' ran longer than the step time limit of %ld ms"
                          " (ORCH_STEP_TIMEOUT_S); its result was discarded",
                          r->step_name, p->step_timeout_ms);
  } else if (p->max_state_bytes) {
    size_t state = r->state ? strlen(r->state) : 0,
           logged = r->log_state ? strlen(r->log_state) : 0;
    size_t big = state > logged ? state : logged;
    if (big > p->max_state_bytes) {
      cls = "StateTooLarge";
      reason = orch_sprintf("step '%s' returned a state of %zu bytes, more than the limit of %zu"
                            " bytes (ORCH_MAX_STATE_BYTES); nothing of it was saved",
                            r->step_name, big, p->max_state_bytes);
    }
  }
  if (!reason) return;
  LOG_WARN("engine", "process %s: %s", h->pid, reason);
  make_failed_as(h, cls, reason);
  h->engine_failed = 1;
  free(reason);
}

void orch_engine_run(const orch_engine_params *p, orch_batch *b) {
  if (b->unconfirmed) return;
  pthread_mutex_lock(&b->mu);
  b->running = 1;
  for (int i = 0; i < b->n; i++)
    b->items[i].begun = 0;
  pthread_mutex_unlock(&b->mu);
  for (int i = 0; i < b->n; i++) {
    held *h = &b->items[i];
    pthread_mutex_lock(&b->mu);
    if (h->handed_back) {
      pthread_mutex_unlock(&b->mu);
      continue;
    }
    h->begun = 1;
    h->timed_out = 0;
    h->start_ns = orch_now_ns();
    h->started = wall_now();
    b->current = i;
    if (h->handoff_ns) orch_metrics_handoff((double)(h->start_ns - h->handoff_ns) / 1e9);
    pthread_mutex_unlock(&b->mu);
    long long deadline =
        p->step_timeout_ms > 0 ? h->start_ns + (long long)p->step_timeout_ms * 1000000LL : 0;
    orch_step_job job = {h->pid,     h->workflow,   h->state,      h->created_by, h->step_index,
                         h->attempt, h->generation, h->handoff_ns, deadline};
    memset(&h->res, 0, sizeof h->res);
    h->engine_failed = 0;
    orch_log_context(NULL, h->pid); /* JSON log lines of the step carry the process id */
    int rc = p->runner->run(p->runner->ud, &job, &h->res);
    orch_log_context(NULL, NULL);
    pthread_mutex_lock(&b->mu);
    b->current = -1;
    int recorded_elsewhere = h->timed_out; /* orch_engine_watch failed the step meanwhile */
    int late = deadline && orch_now_ns() > deadline;
    if (late) h->timed_out = 1;
    pthread_mutex_unlock(&b->mu);
    if (rc != ORCH_OK) {
      orch_step_result_clear(&h->res);
      h->ran = recorded_elsewhere ? 0 : -1;
      h->gone = recorded_elsewhere;
      continue;
    }
    h->ran = 1;
    if (recorded_elsewhere) {
      settle(p, h, 0); /* its failure is in the database already and its queue row is gone */
      h->gone = 1;
      continue;
    }
    if (!orch_step_status_name(h->res.status)) {
      LOG_ERROR("engine", "runner returned unknown step status %d for process %s",
                (int)h->res.status, h->pid);
      h->res.status = ORCH_STEP_FAILED;
      free(h->res.failed_reason);
      h->res.failed_reason = orch_strdup("the workflow runner returned an unknown step status");
    }
    if (!h->res.step_name) h->res.step_name = orch_strdup("Unknown");
    check_limits(p, h, late);
  }
  pthread_mutex_lock(&b->mu);
  b->running = 0;
  pthread_mutex_unlock(&b->mu);
}

/* "{a,b,c}" of the pids (or tokens) of the items with ran != 0. */
static char *uuid_array(const orch_batch *b, int tokens, int only_ran) {
  orch_buf s = ORCH_BUF_INIT;
  orch_buf_puts(&s, "{");
  int first = 1;
  for (int i = 0; i < b->n; i++) {
    if (only_ran && !b->items[i].ran) continue;
    if (!first) orch_buf_puts(&s, ",");
    orch_buf_puts(&s, tokens ? b->items[i].token : b->items[i].pid);
    first = 0;
  }
  orch_buf_puts(&s, "}");
  return orch_buf_take(&s, NULL);
}

static int exec_simple(orch_db *db, const char *sql, orch_error *err) {
  return orch_db_exec(db, sql, 0, NULL, NULL, err) < 0 ? ORCH_EDB : ORCH_OK;
}

/* Extend the leases of the batch's items (those that ran, with only_ran) that are still
   ours: the rows of the ones extended come back in *res, pid first, then `returning`. */
#define EXTEND_LEASES(returning)                                                                   \
  "UPDATE orch_work_queue q SET lease_expires = now() + make_interval(secs => $3::int),"           \
  "   run_at = now() + make_interval(secs => $3::int)"                                             \
  " FROM unnest($1::uuid[], $2::uuid[]) AS f(pid, token)"                                          \
  " WHERE q.pid = ANY($1::uuid[]) AND q.pid = f.pid AND q.lease_token = f.token"                   \
  "   AND q.lease_owner = $4 AND q.lease_expires > now()"                                          \
  " RETURNING q.pid" returning

static int extend_leases(const orch_engine_params *p, orch_db *db, orch_batch *b, int only_ran,
                         const char *sql, PGresult **res, orch_error *err) {
  char *pids = uuid_array(b, 0, only_ran), *tokens = uuid_array(b, 1, only_ran), ttl[16];
  snprintf(ttl, sizeof ttl, "%d", p->lease_seconds);
  const char *params[] = {pids, tokens, ttl, p->owner};
  orch_dbstatus st = orch_db_exec(db, sql, 4, params, res, err);
  free(pids);
  free(tokens);
  return st < 0 ? ORCH_EDB : ORCH_OK;
}

/* Fence: extend the leases that are still ours; mark those items fenced. */
static int fence(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err) {
  PGresult *res = NULL;
  if (extend_leases(p, db, b, 1, EXTEND_LEASES(""), &res, err) != ORCH_OK) return ORCH_EDB;
  for (int r = 0; r < PQntuples(res); r++) {
    const char *pid = PQgetvalue(res, r, 0);
    for (int i = 0; i < b->n; i++)
      if (b->items[i].ran && !strcmp(b->items[i].pid, pid)) b->items[i].fenced = 1;
  }
  PQclear(res);
  return ORCH_OK;
}

/* The queue action for a result. */
static const char *action_of(const held *h) {
  if (h->ran < 0) return "defer";
  switch (h->res.status) {
  case ORCH_STEP_SUCCESS:
  case ORCH_STEP_SKIPPED:
    return h->res.continue_now && h->streak + 1 < ORCH_ENGINE_MAX_STREAK ? "keep" : "requeue";
  case ORCH_STEP_WAITING: return "retry";
  default: return "delete";
  }
}

/* The process status a result leaves: the runner's word for a failed step (which kind of
   failure it is, policy in Lua) when it is one of the failure statuses, else the step's. */
static const char *process_status_of(const orch_step_result *r) {
  static const char *const failure_kinds[] = {"failed", "inconsistent_data", "api_unavailable"};
  if (r->status == ORCH_STEP_FAILED && r->process_status)
    for (size_t i = 0; i < ORCH_ARRAY_LEN(failure_kinds); i++)
      if (!strcmp(r->process_status, failure_kinds[i])) return failure_kinds[i];
  return orch_step_process_status(r->status);
}

/* The row of one item in the write statement's JSON array. */
static void write_row(orch_buf *j, const held *h) {
  const orch_step_result *r = &h->res;
  const char *state = r->state && r->status != ORCH_STEP_WAITING ? r->state : NULL;
  const char *log_state = r->log_state ? r->log_state : r->state ? r->state : h->state;
  orch_buf_puts(j, "{\"pid\":\"");
  orch_buf_puts(j, h->pid);
  orch_buf_puts(j, "\",\"action\":\"");
  orch_buf_puts(j, action_of(h));
  orch_buf_puts(j, "\"");
  if (h->ran < 0) {
    orch_buf_puts(j, "}");
    return;
  }
  orch_buf_puts(j, ",\"name\":");
  orch_buf_json_cstr(j, r->step_name);
  orch_buf_printf(j, ",\"status\":\"%s\",\"pstatus\":\"%s\"", orch_step_status_name(r->status),
                  process_status_of(r));
  orch_buf_puts(j, ",\"log_state\":");
  orch_buf_puts(j, log_state && *log_state ? log_state : "{}");
  orch_buf_puts(j, ",\"state\":");
  orch_buf_puts(j, state && *state ? state : "null");
  orch_buf_printf(j, ",\"next\":%d,\"delay\":%.3f,\"started\":%.6f,\"replace\":%s,\"gen\":%ld",
                  r->next_step_index, r->retry_delay_s > 0 ? r->retry_delay_s : 0.0, h->started,
                  r->replace_last ? "true" : "false",
                  r->generation ? r->generation : h->generation);
  orch_buf_puts(j, ",\"reason\":");
  orch_buf_json_cstr(j, r->failed_reason);
  orch_buf_puts(j, ",\"tb\":");
  orch_buf_json_cstr(j, r->traceback);
  orch_buf_puts(j, ",\"assignee\":");
  orch_buf_json_cstr(j, r->assignee);
  orch_buf_puts(j, ",\"by\":");
  orch_buf_json_cstr(j, h->created_by);
  orch_buf_puts(j, ",\"hash\":");
  orch_buf_json_cstr(j, r->code_hash);
  orch_buf_puts(j, "}");
}

/*
 * All writes of the recorded steps in one statement: queue rows kept,
 * retried, requeued, deferred or deleted; process_steps inserted (or the
 * newest row replaced); processes updated with core's status mapping.
 */
static const char *write_sql =
    "WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(pid uuid, action text,"
    "   name text, status text, pstatus text, log_state jsonb, state jsonb, next int,"
    "   delay float8, started float8, replace bool, gen bigint, reason text, tb text,"
    "   assignee text, by text, hash text)),"
    /* The row a step group overwrites (looked up only for those). */
    " xs AS (SELECT x.*, CASE WHEN x.replace AND x.action <> 'defer' THEN"
    "   (SELECT l.stepid FROM process_steps l WHERE l.pid = x.pid"
    "    ORDER BY l.completed_at DESC LIMIT 1) END AS replace_id FROM x),"
    " kept AS (UPDATE orch_work_queue q SET"
    "   step_index = CASE WHEN x.action IN ('retry', 'defer') THEN q.step_index ELSE x.next END,"
    "   state = CASE WHEN x.action IN ('retry', 'defer') OR x.state IS NULL THEN q.state"
    "     ELSE x.state END,"
    "   attempts = CASE x.action WHEN 'retry' THEN q.attempts + 1 WHEN 'defer' THEN q.attempts"
    "     ELSE 0 END,"
    "   generation = coalesce(nullif(x.gen, 0), q.generation),"
    "   run_at = CASE x.action WHEN 'keep' THEN q.run_at"
    "     WHEN 'retry' THEN now() + make_interval(secs => x.delay)"
    "     WHEN 'defer' THEN now() + interval '5 seconds' ELSE now() END,"
    "   lease_owner = CASE WHEN x.action = 'keep' THEN q.lease_owner END,"
    "   lease_token = CASE WHEN x.action = 'keep' THEN q.lease_token END,"
    "   lease_expires = CASE WHEN x.action = 'keep' THEN q.lease_expires END"
    "   FROM x WHERE q.pid = ANY($2::uuid[]) AND q.pid = x.pid AND x.action <> 'delete'"
    "   RETURNING q.pid),"
    " gone AS (DELETE FROM orch_work_queue q USING x"
    "   WHERE q.pid = ANY($2::uuid[]) AND q.pid = x.pid AND x.action = 'delete' RETURNING q.pid),"
    " logged AS (INSERT INTO process_steps (pid, name, status, state, created_by, started_at,"
    "     completed_at, commit_hash)"
    "   SELECT xs.pid, xs.name, xs.status, xs.log_state, xs.by, to_timestamp(xs.started), now(),"
    "     left(xs.hash, 40)"
    "   FROM xs WHERE xs.action <> 'defer' AND xs.replace_id IS NULL RETURNING pid),"
    " replaced AS (UPDATE process_steps s SET name = xs.name, status = xs.status,"
    "     state = xs.log_state, completed_at = now(), commit_hash = left(xs.hash, 40)"
    "   FROM xs WHERE s.stepid = xs.replace_id RETURNING s.pid),"
    /* = ANY keeps the planner on the primary key whatever it guesses about x. */
    /* The runner says which kind of failure a failed task is (pstatus) and who it is
       assigned to (core: inconsistent data goes to the NOC): policy in Lua. */
    " procs AS (UPDATE processes p SET last_step = x.name, last_status = x.pstatus,"
    "     assignee = coalesce(x.assignee, p.assignee),"
    "     failed_reason = CASE WHEN x.status IN ('failed', 'waiting') THEN left(x.reason, 10000)"
    "       END,"
    "     traceback = CASE WHEN x.status IN ('failed', 'waiting') THEN left(x.tb, 50000) END,"
    "     last_modified_at = now()"
    "   FROM x WHERE p.pid = ANY($2::uuid[]) AND p.pid = x.pid AND x.action <> 'defer'"
    "   RETURNING p.pid)"
    " SELECT (SELECT count(*) FROM kept) + (SELECT count(*) FROM gone),"
    "   (SELECT count(*) FROM logged) + (SELECT count(*) FROM replaced),"
    "   (SELECT count(*) FROM procs)";

/* Write the given items (flag set in `which`) with one statement. */
static int write_items(orch_db *db, orch_batch *b, const int *which, orch_error *err) {
  orch_buf j = ORCH_BUF_INIT;
  orch_buf pids = ORCH_BUF_INIT;
  orch_buf_puts(&j, "[");
  orch_buf_puts(&pids, "{");
  int n = 0;
  for (int i = 0; i < b->n; i++) {
    if (!which[i]) continue;
    if (n++) {
      orch_buf_puts(&j, ",");
      orch_buf_puts(&pids, ",");
    }
    write_row(&j, &b->items[i]);
    orch_buf_puts(&pids, b->items[i].pid);
  }
  orch_buf_puts(&j, "]");
  orch_buf_puts(&pids, "}");
  if (!n) {
    orch_buf_free(&j);
    orch_buf_free(&pids);
    return ORCH_OK;
  }
  const char *params[] = {j.data, pids.data};
  orch_dbstatus st = orch_db_exec(db, write_sql, 2, params, NULL, err);
  orch_buf_free(&j);
  orch_buf_free(&pids);
  return st < 0 ? ORCH_EDB : ORCH_OK;
}

static void make_failed_as(held *h, const char *cls, const char *reason) {
  orch_step_result *r = &h->res;
  r->status = ORCH_STEP_FAILED;
  free(r->state);
  r->state = NULL;
  free(r->log_state);
  orch_buf e = ORCH_BUF_INIT;
  orch_buf_puts(&e, "{\"class\":");
  orch_buf_json_string(&e, cls, strlen(cls));
  orch_buf_puts(&e, ",\"error\":");
  orch_buf_json_string(&e, reason, strlen(reason));
  orch_buf_puts(&e, "}");
  r->log_state = orch_buf_take(&e, NULL);
  free(r->failed_reason);
  r->failed_reason = orch_strdup(reason);
  free(r->traceback);
  r->traceback = NULL;
  r->replace_last = 0;
}

/* Turn a result into a failed step with `reason` (state before the step kept). */
static void make_failed(held *h, const char *reason) {
  make_failed_as(h, "EngineError", reason);
}

/* persist() of one fenced result under a savepoint; a failure turns the result into a failed step.
 */
static int persist_one(const orch_engine_params *p, orch_db *db, held *h, orch_error *err) {
  if (!p->runner->persist || h->ran != 1 || h->engine_failed) return ORCH_OK;
  if (exec_simple(db, "SAVEPOINT orch_persist", err) != ORCH_OK) return ORCH_EDB;
  orch_step_job job = {h->pid,        h->workflow,   h->state,
                       h->created_by, h->step_index, h->attempt,
                       h->generation, h->handoff_ns, 0};
  orch_error perr = ORCH_ERROR_INIT;
  if (p->runner->persist(p->runner->ud, db, &job, &h->res, &perr) == ORCH_OK) {
    orch_error_clear(&perr);
    return exec_simple(db, "RELEASE SAVEPOINT orch_persist", err);
  }
  if (exec_simple(db, "ROLLBACK TO SAVEPOINT orch_persist", err) != ORCH_OK) {
    orch_error_clear(&perr);
    return ORCH_EDB;
  }
  char *reason = orch_sprintf("saving the changes of step '%s' failed: %s", h->res.step_name,
                              perr.message ? perr.message : "unknown error");
  LOG_WARN("engine", "process %s: %s", h->pid, reason);
  make_failed(h, reason);
  free(reason);
  orch_error_clear(&perr);
  return ORCH_OK;
}

/*
 * Record one fenced item on its own (the slow path): persist and write under
 * a savepoint; if that fails, record the failure instead (its JSON is ours);
 * if even that fails, leave the process alone: its lease runs out and the
 * step runs again.
 */
static int record_one(const orch_engine_params *p, orch_db *db, orch_batch *b, int i, int *which,
                      orch_error *err) {
  held *h = &b->items[i];
  memset(which, 0, (size_t)b->n * sizeof *which);
  which[i] = 1;
  for (int attempt = 0; attempt < 2; attempt++) {
    if (exec_simple(db, "SAVEPOINT orch_one", err) != ORCH_OK) return ORCH_EDB;
    orch_error oerr = ORCH_ERROR_INIT;
    int ok = (attempt > 0 || persist_one(p, db, h, &oerr) == ORCH_OK) &&
             write_items(db, b, which, &oerr) == ORCH_OK;
    if (ok) {
      orch_error_clear(&oerr);
      h->recorded = 1;
      return exec_simple(db, "RELEASE SAVEPOINT orch_one", err);
    }
    if (exec_simple(db, "ROLLBACK TO SAVEPOINT orch_one", err) != ORCH_OK) {
      orch_error_clear(&oerr);
      return ORCH_EDB;
    }
    char *reason = orch_sprintf("recording the step failed: %s", oerr.message);
    LOG_ERROR("engine", "process %s: %s", h->pid, reason);
    orch_error_clear(&oerr);
    if (h->ran != 1) {
      free(reason);
      return ORCH_OK;
    }
    make_failed(h, reason);
    free(reason);
  }
  return ORCH_OK;
}

/*
 * Fast path: persist every fenced result, then one statement writes them all;
 * no savepoints (each costs two round trips). Returns ORCH_OK, or 1 when
 * something failed: the caller rolls the transaction back and records item
 * by item (record_slow). persist() may then run a second time; the writes of
 * its first run were rolled back.
 */
static int record_fast(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err) {
  int *which = orch_xcalloc((size_t)b->n + 1, sizeof *which);
  int rc = ORCH_OK;
  for (int i = 0; i < b->n && rc == ORCH_OK; i++) {
    held *h = &b->items[i];
    which[i] = h->fenced;
    if (!h->fenced || h->ran != 1 || !p->runner->persist || h->engine_failed) continue;
    orch_step_job job = {h->pid,        h->workflow,   h->state,
                         h->created_by, h->step_index, h->attempt,
                         h->generation, h->handoff_ns, 0};
    if (p->runner->persist(p->runner->ud, db, &job, &h->res, err) != ORCH_OK) rc = 1;
  }
  if (rc == ORCH_OK && write_items(db, b, which, err) != ORCH_OK) rc = 1;
  for (int i = 0; i < b->n && rc == ORCH_OK; i++)
    b->items[i].recorded = which[i];
  free(which);
  return rc;
}

/* Slow path: each fenced item on its own, so that one bad result fails only its own process. */
static int record_slow(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err) {
  int *which = orch_xcalloc((size_t)b->n + 1, sizeof *which);
  int rc = ORCH_OK;
  for (int i = 0; i < b->n && rc == ORCH_OK; i++)
    if (b->items[i].fenced) rc = record_one(p, db, b, i, which, err);
  free(which);
  return rc;
}

/* Drop the items whose lease orch_engine_watch gave back or whose failure it recorded. */
static void drop_released(orch_batch *b) {
  for (int i = 0; i < b->n; i++)
    b->items[i].keep = !b->items[i].handed_back && !b->items[i].gone;
  compact(b);
}

int orch_engine_confirm(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err) {
  drop_released(b);
  if (!b->unconfirmed) return b->n;
  if (b->n == 0) {
    b->unconfirmed = 0;
    return 0;
  }
  PGresult *res = NULL;
  if (extend_leases(p, db, b, 0,
                    EXTEND_LEASES(", q.step_index, q.attempts, q.state::text,"
                                  " coalesce(q.generation, 0)"),
                    &res, err) != ORCH_OK)
    return ORCH_EDB;
  for (int i = 0; i < b->n; i++)
    b->items[i].keep = 0;
  for (int r = 0; r < PQntuples(res); r++) {
    for (int i = 0; i < b->n; i++) {
      held *h = &b->items[i];
      if (strcmp(h->pid, PQgetvalue(res, r, 0)) != 0) continue;
      h->keep = 1;
      int index = atoi(PQgetvalue(res, r, 1));
      if (index != h->step_index) {
        /* The lost commit went through after all: go on from what it recorded. */
        LOG_INFO("engine", "process %s: the unconfirmed commit was recorded (step %d -> %d)",
                 h->pid, h->step_index, index);
        h->step_index = index;
        h->attempt = atoi(PQgetvalue(res, r, 2));
        free(h->state);
        h->state = orch_strdup(PQgetvalue(res, r, 3));
        h->generation = atol(PQgetvalue(res, r, 4));
      }
      h->handoff_ns = 0;
    }
  }
  PQclear(res);
  int lost = 0;
  for (int i = 0; i < b->n; i++)
    lost += !b->items[i].keep;
  if (lost)
    LOG_INFO("engine", "%d lease%s ran out while the database was away: left for any worker", lost,
             lost == 1 ? "" : "s");
  compact(b);
  b->unconfirmed = 0;
  return b->n;
}

/* Release the leases of the given (pid, token) lists. */
static int release_leases(const orch_engine_params *p, orch_db *db, const char *pids,
                          const char *tokens, orch_error *err) {
  static const char *sql =
      "UPDATE orch_work_queue q SET lease_owner = NULL, lease_token = NULL,"
      "   lease_expires = NULL, run_at = now()"
      " FROM unnest($1::uuid[], $2::uuid[]) AS f(pid, token)"
      " WHERE q.pid = ANY($1::uuid[]) AND q.pid = f.pid AND q.lease_token = f.token"
      "   AND q.lease_owner = $3";
  const char *params[] = {pids, tokens, p->owner};
  return orch_db_exec(db, sql, 3, params, NULL, err) < 0 ? ORCH_EDB : ORCH_OK;
}

/* Record a step that ran past the time limit as failed and remove its queue row (fenced). */
static const char *timeout_sql =
    "WITH q AS (DELETE FROM orch_work_queue WHERE pid = $1::uuid AND lease_token = $2::uuid"
    "   AND lease_owner = $3 AND lease_expires > now() RETURNING pid),"
    " s AS (INSERT INTO process_steps (pid, name, status, state, created_by, started_at,"
    "     completed_at)"
    "   SELECT q.pid, 'Unknown', 'failed', jsonb_build_object('class', 'StepTimeout', 'error', "
    "$4::text),"
    "     $5::text, to_timestamp($6::float8), now() FROM q RETURNING pid)"
    " UPDATE processes p SET last_step = 'Unknown',"
    "   last_status = CASE WHEN p.is_task THEN 'api_unavailable' ELSE 'failed' END,"
    "   failed_reason = $4::text, traceback = NULL, last_modified_at = now()"
    " FROM s WHERE p.pid = s.pid RETURNING p.pid";

int orch_engine_watch(const orch_engine_params *p, orch_db *db, orch_batch *b, long hand_back_ms,
                      orch_error *err) {
  orch_buf pids = ORCH_BUF_INIT, tokens = ORCH_BUF_INIT;
  char tpid[37] = "", ttoken[37] = "", *tby = NULL;
  double tstarted = 0;
  long elapsed_ms = 0;
  int handed = 0;
  pthread_mutex_lock(&b->mu);
  if (b->running && b->current >= 0) {
    held *cur = &b->items[b->current];
    elapsed_ms = (long)((orch_now_ns() - cur->start_ns) / 1000000LL);
    if (hand_back_ms >= 0 && elapsed_ms > hand_back_ms) {
      for (int i = 0; i < b->n; i++) {
        held *h = &b->items[i];
        if (h->begun || h->handed_back) continue;
        h->handed_back = 1;
        orch_buf_puts(&pids, handed ? "," : "{");
        orch_buf_puts(&tokens, handed ? "," : "{");
        orch_buf_puts(&pids, h->pid);
        orch_buf_puts(&tokens, h->token);
        handed++;
      }
    }
    if (p->step_timeout_ms > 0 && elapsed_ms > p->step_timeout_ms && !cur->timed_out) {
      cur->timed_out = 1;
      memcpy(tpid, cur->pid, sizeof tpid);
      memcpy(ttoken, cur->token, sizeof ttoken);
      tby = cur->created_by ? orch_strdup(cur->created_by) : NULL;
      tstarted = cur->started;
    }
  }
  pthread_mutex_unlock(&b->mu);
  int rc = 0;
  if (handed) {
    orch_buf_puts(&pids, "}");
    orch_buf_puts(&tokens, "}");
    if (release_leases(p, db, pids.data, tokens.data, err) != ORCH_OK)
      rc = ORCH_EDB;
    else {
      LOG_INFO("engine", "%s: a step has run for %ld ms: %d process%s handed back to the queue",
               p->owner, elapsed_ms, handed, handed == 1 ? "" : "es");
      rc = handed;
    }
  }
  orch_buf_free(&pids);
  orch_buf_free(&tokens);
  if (tpid[0]) {
    char *reason = orch_sprintf("the step ran longer than the step time limit of %ld ms"
                                " (ORCH_STEP_TIMEOUT_S) and was failed; its lease was released",
                                p->step_timeout_ms);
    char started[32];
    snprintf(started, sizeof started, "%.6f", tstarted);
    const char *params[] = {tpid, ttoken, p->owner, reason, tby, started};
    PGresult *res = NULL;
    orch_error terr = ORCH_ERROR_INIT;
    if (orch_db_exec(db, timeout_sql, 6, params, &res, &terr) < 0) {
      /* Not recorded: the step stays the worker's, which fails it itself when it returns (it is
       * late). If it returned just now and took our flag for a record, the process is dropped
       * from its batch and runs again once its lease has run out. */
      pthread_mutex_lock(&b->mu);
      if (b->running && b->current >= 0 && !strcmp(b->items[b->current].pid, tpid))
        b->items[b->current].timed_out = 0;
      pthread_mutex_unlock(&b->mu);
      if (rc >= 0) orch_error_set(err, ORCH_EDB, "%s", terr.message ? terr.message : "");
      orch_error_clear(&terr);
      rc = ORCH_EDB;
    } else {
      LOG_WARN("engine", "process %s: %s", tpid, reason);
      if (rc >= 0) rc += PQntuples(res);
    }
    PQclear(res);
    free(reason);
  }
  free(tby);
  return rc;
}

int orch_engine_commit(const orch_engine_params *p, orch_db *db, orch_batch *b, int claim_more,
                       orch_engine_stats *stats, orch_error *err) {
  orch_engine_stats st = {0, 0, 0};
  orch_batch *fresh = NULL;
  int any = 0, leaving = 0, rc = ORCH_EDB;
  drop_released(b);
  for (int i = 0; i < b->n; i++)
    any |= b->items[i].ran != 0;
  if (b->unconfirmed || (!any && !claim_more)) { /* nothing to record (or not before confirm) */
    rc = ORCH_OK;
    goto out;
  }
  for (int slow = 0;; slow = 1) {
    for (int i = 0; i < b->n; i++)
      b->items[i].fenced = b->items[i].recorded = 0;
    if (exec_simple(db, "BEGIN", err) != ORCH_OK) goto discard;
    if (!any) break;
    if (fence(p, db, b, err) != ORCH_OK) goto rollback;
    int r = slow ? record_slow(p, db, b, err) : record_fast(p, db, b, err);
    if (r == ORCH_OK) break;
    if (r < 0) goto rollback;
    LOG_WARN("engine", "recording a batch failed, recording one by one: %s",
             err && err->message ? err->message : "unknown error");
    orch_error_clear(err);
    orch_db_exec(db, "ROLLBACK", 0, NULL, NULL, NULL);
  }
  /* Which items go on under their lease; the others make room for new claims. */
  for (int i = 0; i < b->n; i++) {
    held *h = &b->items[i];
    h->keep = !h->ran || (h->recorded && h->ran == 1 && !strcmp(action_of(h), "keep"));
    leaving += !h->keep;
  }
  if (claim_more && b->cap - b->n + leaving > 0) {
    fresh = orch_batch_new(b->cap - b->n + leaving);
    if (claim_into(p, db, fresh, err) < 0) goto rollback;
  }
  if (exec_simple(db, "COMMIT", err) != ORCH_OK) goto discard;
  long long now = orch_now_ns();
  for (int i = 0; i < b->n; i++) {
    held *h = &b->items[i];
    if (!h->ran) continue;
    st.committed += h->recorded && h->ran == 1;
    st.lost += !h->fenced;
    if (h->keep) {
      if (h->res.state) {
        free(h->state);
        h->state = orch_strdup(h->res.state);
      }
      h->step_index = h->res.next_step_index;
      h->attempt = 0;
      if (h->res.generation) h->generation = h->res.generation;
      h->handoff_ns = now;
      h->streak++;
    }
    if (h->recorded && h->ran == 1)
      orch_metrics_step(h->workflow, orch_step_status_name(h->res.status),
                        (double)(now - h->start_ns) / 1e9);
    if (h->recorded && h->ran == 1) /* the UI's live updates, batched (events.h) */
      orch_events_process_changed(h->pid, h->res.status == ORCH_STEP_COMPLETE ||
                                              h->res.status == ORCH_STEP_FAILED ||
                                              h->res.status == ORCH_STEP_ABORT);
    settle(p, h, h->recorded);
  }
  compact(b);
  if (fresh) {
    st.claimed = fresh->n;
    for (int i = 0; i < fresh->n && b->n < b->cap; i++) {
      b->items[b->n++] = fresh->items[i];
      memset(&fresh->items[i], 0, sizeof fresh->items[i]);
    }
  }
  rc = ORCH_OK;
  goto out;
rollback:
  orch_db_exec(db, "ROLLBACK", 0, NULL, NULL, NULL);
discard:
  /* Nothing was recorded: discard every result. The batch keeps its processes, but runs no step
   * until orch_engine_confirm found their leases still ours (the database may be away: then
   * every step run now would be thrown away again, and its side effects repeated). */
  for (int i = 0; i < b->n; i++)
    if (b->items[i].ran) settle(p, &b->items[i], 0);
  b->unconfirmed = 1;
out:
  orch_batch_free(fresh);
  if (stats) *stats = st;
  return rc;
}

int orch_engine_release(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err) {
  int rc = ORCH_OK;
  for (int i = 0; i < b->n; i++)
    if (b->items[i].ran) settle(p, &b->items[i], 0);
  if (b->n) {
    char *pids = uuid_array(b, 0, 0), *tokens = uuid_array(b, 1, 0);
    rc = release_leases(p, db, pids, tokens, err);
    free(pids);
    free(tokens);
  }
  for (int i = 0; i < b->n; i++)
    held_clear(&b->items[i]);
  b->n = 0;
  return rc;
}

int orch_engine_extend_leases(const orch_engine_params *p, orch_db *db, orch_error *err) {
  static const char *sql =
      "UPDATE orch_work_queue SET lease_expires = now() + make_interval(secs => $2::int),"
      "   run_at = now() + make_interval(secs => $2::int)"
      " WHERE pid IN (SELECT pid FROM orch_work_queue WHERE lease_owner = $1"
      "   AND lease_expires > now() FOR UPDATE SKIP LOCKED)";
  char ttl[16];
  snprintf(ttl, sizeof ttl, "%d", p->lease_seconds);
  const char *params[] = {p->owner, ttl};
  PGresult *res = NULL;
  if (orch_db_exec(db, sql, 2, params, &res, err) < 0) return ORCH_EDB;
  int n = atoi(PQcmdTuples(res));
  PQclear(res);
  return n;
}
