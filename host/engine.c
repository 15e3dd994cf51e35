/* engine.c - claim, run and fenced commit of process steps (see engine.h, docs/engine.md). */
#include "orch.h"

#include "buf.h"
#include "engine.h"
#include "events.h"
#include "log.h"

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
  orch_step_result res;
} held;

struct orch_batch {
  held *items;
  int n, cap;
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
  free(res->code_hash);
  memset(res, 0, sizeof *res);
}

orch_batch *orch_batch_new(int capacity) {
  orch_batch *b = orch_xcalloc(1, sizeof *b);
  b->cap = capacity > 0 ? capacity : 1;
  b->items = orch_xcalloc((size_t)b->cap, sizeof *b->items);
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
  free(b);
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

static void new_token(char out[37]) {
  unsigned char r[16];
  orch_random_bytes(r, sizeof r);
  r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* a version-4 uuid */
  r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
  static const char hex[] = "0123456789abcdef";
  int o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex[r[i] >> 4];
    out[o++] = hex[r[i] & 15];
  }
  out[o] = '\0';
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
    "WITH c AS (SELECT pid FROM orch_work_queue"
    "  WHERE run_at <= now() AND NOT EXISTS (SELECT 1 FROM engine_settings WHERE global_lock)"
    "  ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " UPDATE orch_work_queue q SET lease_owner = $1, lease_token = $2,"
    "   lease_expires = now() + make_interval(secs => $3::int),"
    "   run_at = now() + make_interval(secs => $3::int)"
    " FROM c, processes p, workflows w"
    " WHERE q.pid = c.pid AND p.pid = q.pid AND w.workflow_id = p.workflow_id"
    " RETURNING q.pid, w.name, q.state::text, p.created_by, q.step_index, q.attempts,"
    "   coalesce(q.generation, 0)";

static int claim_into(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err) {
  int room = b->cap - b->n;
  if (room <= 0) return 0;
  char token[37], ttl[16], limit[16];
  new_token(token);
  snprintf(ttl, sizeof ttl, "%d", p->lease_seconds);
  snprintf(limit, sizeof limit, "%d", room);
  const char *params[] = {p->owner, token, ttl, limit};
  PGresult *res = NULL;
  if (orch_db_exec(db, claim_sql, 4, params, &res, err) < 0) {
    orch_error_prefix(err, "claiming work");
    return ORCH_EDB;
  }
  int n = PQntuples(res);
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

void orch_engine_run(const orch_engine_params *p, orch_batch *b) {
  for (int i = 0; i < b->n; i++) {
    held *h = &b->items[i];
    orch_step_job job = {h->pid,        h->workflow, h->state,      h->created_by,
                         h->step_index, h->attempt,  h->generation, h->handoff_ns};
    memset(&h->res, 0, sizeof h->res);
    h->started = wall_now();
    int rc = p->runner->run(p->runner->ud, &job, &h->res);
    if (rc != ORCH_OK) {
      orch_step_result_clear(&h->res);
      h->ran = -1;
      continue;
    }
    h->ran = 1;
    if (!orch_step_status_name(h->res.status)) {
      LOG_ERROR("engine", "runner returned unknown step status %d for process %s",
                (int)h->res.status, h->pid);
      h->res.status = ORCH_STEP_FAILED;
      free(h->res.failed_reason);
      h->res.failed_reason = orch_strdup("the workflow runner returned an unknown step status");
    }
    if (!h->res.step_name) h->res.step_name = orch_strdup("Unknown");
  }
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

/* Fence: extend the leases that are still ours; mark those items fenced. */
static int fence(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err) {
  static const char *sql =
      "UPDATE orch_work_queue q SET lease_expires = now() + make_interval(secs => $3::int),"
      "   run_at = now() + make_interval(secs => $3::int)"
      " FROM unnest($1::uuid[], $2::uuid[]) AS f(pid, token)"
      " WHERE q.pid = ANY($1::uuid[]) AND q.pid = f.pid AND q.lease_token = f.token"
      "   AND q.lease_owner = $4 AND q.lease_expires > now()"
      " RETURNING q.pid";
  char *pids = uuid_array(b, 0, 1), *tokens = uuid_array(b, 1, 1), ttl[16];
  snprintf(ttl, sizeof ttl, "%d", p->lease_seconds);
  const char *params[] = {pids, tokens, ttl, p->owner};
  PGresult *res = NULL;
  orch_dbstatus st = orch_db_exec(db, sql, 4, params, &res, err);
  free(pids);
  free(tokens);
  if (st < 0) return ORCH_EDB;
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

static void json_str_or_null(orch_buf *j, const char *s) {
  if (s)
    orch_buf_json_string(j, s, strlen(s));
  else
    orch_buf_puts(j, "null");
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
  json_str_or_null(j, r->step_name);
  orch_buf_printf(j, ",\"status\":\"%s\",\"pstatus\":\"%s\"", orch_step_status_name(r->status),
                  orch_step_process_status(r->status));
  orch_buf_puts(j, ",\"log_state\":");
  orch_buf_puts(j, log_state && *log_state ? log_state : "{}");
  orch_buf_puts(j, ",\"state\":");
  orch_buf_puts(j, state && *state ? state : "null");
  orch_buf_printf(j, ",\"next\":%d,\"delay\":%.3f,\"started\":%.6f,\"replace\":%s,\"gen\":%ld",
                  r->next_step_index, r->retry_delay_s > 0 ? r->retry_delay_s : 0.0, h->started,
                  r->replace_last ? "true" : "false",
                  r->generation ? r->generation : h->generation);
  orch_buf_puts(j, ",\"reason\":");
  json_str_or_null(j, r->failed_reason);
  orch_buf_puts(j, ",\"tb\":");
  json_str_or_null(j, r->traceback);
  orch_buf_puts(j, ",\"assignee\":");
  json_str_or_null(j, r->assignee);
  orch_buf_puts(j, ",\"by\":");
  json_str_or_null(j, h->created_by);
  orch_buf_puts(j, ",\"hash\":");
  json_str_or_null(j, r->code_hash);
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
    /* Failed tasks are sub-classified as core does: inconsistent data (assignee NOC) or
       an unavailable API (connection errors and 502/503/504 answers). */
    " procs AS (UPDATE processes p SET last_step = x.name,"
    "     last_status = CASE WHEN x.status <> 'failed' OR NOT p.is_task THEN x.pstatus"
    "       WHEN x.log_state->>'class' IN ('AssertionError', 'InconsistentData')"
    "         THEN 'inconsistent_data'"
    "       WHEN x.log_state->>'class' IN ('MaxRetryError', 'HTTPConnectionError')"
    "         OR (x.log_state->>'class' IN ('ApiException', 'HTTPError')"
    "             AND x.log_state->'details'->>'status' IN ('502', '503', '504'))"
    "         THEN 'api_unavailable' ELSE x.pstatus END,"
    "     assignee = CASE WHEN x.status = 'failed' AND p.is_task"
    "         AND x.log_state->>'class' IN ('AssertionError', 'InconsistentData') THEN 'NOC'"
    "       ELSE coalesce(x.assignee, p.assignee) END,"
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

/* Turn a result into a failed step with `reason` (state before the step kept). */
static void make_failed(held *h, const char *reason) {
  orch_step_result *r = &h->res;
  r->status = ORCH_STEP_FAILED;
  free(r->state);
  r->state = NULL;
  free(r->log_state);
  orch_buf e = ORCH_BUF_INIT;
  orch_buf_puts(&e, "{\"class\":\"EngineError\",\"error\":");
  orch_buf_json_string(&e, reason, strlen(reason));
  orch_buf_puts(&e, "}");
  r->log_state = orch_buf_take(&e, NULL);
  free(r->failed_reason);
  r->failed_reason = orch_strdup(reason);
  free(r->traceback);
  r->traceback = NULL;
  r->replace_last = 0;
}

/* persist() of one fenced result under a savepoint; a failure turns the result into a failed step.
 */
static int persist_one(const orch_engine_params *p, orch_db *db, held *h, orch_error *err) {
  if (!p->runner->persist || h->ran != 1) return ORCH_OK;
  if (exec_simple(db, "SAVEPOINT orch_persist", err) != ORCH_OK) return ORCH_EDB;
  orch_step_job job = {h->pid,        h->workflow, h->state,      h->created_by,
                       h->step_index, h->attempt,  h->generation, h->handoff_ns};
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
    if (!h->fenced || h->ran != 1 || !p->runner->persist) continue;
    orch_step_job job = {h->pid,        h->workflow, h->state,      h->created_by,
                         h->step_index, h->attempt,  h->generation, h->handoff_ns};
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

int orch_engine_commit(const orch_engine_params *p, orch_db *db, orch_batch *b, int claim_more,
                       orch_engine_stats *stats, orch_error *err) {
  orch_engine_stats st = {0, 0, 0};
  orch_batch *fresh = NULL;
  int any = 0, leaving = 0, rc = ORCH_EDB;
  for (int i = 0; i < b->n; i++)
    any |= b->items[i].ran != 0;
  if (!any && !claim_more) goto out;
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
  /* Nothing was recorded: discard every result. The leases are still ours (or the next fence
   * says they are not), so the batch keeps its processes and runs their steps again. */
  for (int i = 0; i < b->n; i++)
    if (b->items[i].ran) settle(p, &b->items[i], 0);
out:
  orch_batch_free(fresh);
  if (stats) *stats = st;
  return rc;
}

int orch_engine_release(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err) {
  static const char *sql =
      "UPDATE orch_work_queue q SET lease_owner = NULL, lease_token = NULL,"
      "   lease_expires = NULL, run_at = now()"
      " FROM unnest($1::uuid[], $2::uuid[]) AS f(pid, token)"
      " WHERE q.pid = ANY($1::uuid[]) AND q.pid = f.pid AND q.lease_token = f.token"
      "   AND q.lease_owner = $3";
  int rc = ORCH_OK;
  for (int i = 0; i < b->n; i++)
    if (b->items[i].ran) settle(p, &b->items[i], 0);
  if (b->n) {
    char *pids = uuid_array(b, 0, 0), *tokens = uuid_array(b, 1, 0);
    const char *params[] = {pids, tokens, p->owner};
    if (orch_db_exec(db, sql, 3, params, NULL, err) < 0) rc = ORCH_EDB;
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
