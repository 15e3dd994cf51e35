/*
 * engine.h - the durable step engine: claim processes into a lease, run one
 * step of each through a runner vtable, and record the outcomes in one fenced
 * transaction. Knows nothing about Lua (the runner does); see docs/engine.md.
 *
 * Tables: orch_work_queue (one row per process with work to do) next to
 * core's processes and process_steps (migrations/0002_engine.sql).
 *
 * Promises: a step runs at least once; its outcome is recorded exactly once
 * (the commit is fenced by the lease token: a worker that lost its lease
 * commits nothing); no transaction is open while a step runs.
 *
 * An orch_batch is the set of processes one worker holds. It belongs to one
 * thread; all calls on it come from that thread.
 */
#pragma once

#include "orch.h"

#include "db.h"

/* Step outcomes, with core's StepStatus names (orch_step_status_name). */
typedef enum orch_step_status {
  ORCH_STEP_SUCCESS = 0,       /* -> running; next step */
  ORCH_STEP_SKIPPED,           /* -> running; next step, state unchanged */
  ORCH_STEP_SUSPEND,           /* -> suspended; waits for user input (queue row removed) */
  ORCH_STEP_WAITING,           /* -> waiting; same step again after retry_delay_s */
  ORCH_STEP_AWAITING_CALLBACK, /* -> awaiting_callback (queue row removed) */
  ORCH_STEP_ABORT,             /* -> aborted (queue row removed) */
  ORCH_STEP_FAILED,            /* -> failed (queue row removed) */
  ORCH_STEP_COMPLETE,          /* -> completed (queue row removed) */
} orch_step_status;

/* "success", "skipped", ... (static); NULL for an unknown value. */
const char *orch_step_status_name(orch_step_status s);
/* core's processes.last_status for a step outcome: "running", "suspended", ... (static). */
const char *orch_step_process_status(orch_step_status s);

/*
 * What the runner gets for one step. Every pointer is borrowed and valid only
 * during the run() call.
 */
typedef struct orch_step_job {
  const char *pid;        /* process id (uuid text) */
  const char *workflow;   /* workflows.name of the process */
  const char *state;      /* JSON object text: the state before this step */
  const char *created_by; /* processes.created_by (user who started it); may be NULL */
  int step_index;         /* the step to run (0 = first) */
  int attempt;            /* earlier tries of this step that came back waiting (0 = first) */
  long generation;        /* scripts generation that ran the previous step (0 = none) */
  long long handoff_ns;   /* orch_now_ns() when the previous step of this process was committed
                             under the same lease; 0 after a claim */
  long long deadline_ns;  /* orch_now_ns() by which the step must be over (the step time limit);
                             0 = none. The runner caps what it waits for (outbound calls) by it. */
} orch_step_job;

/*
 * What the runner returns. The runner allocates every string with malloc()
 * (or leaves it NULL); the engine owns them from then on and frees them
 * after done() returned. `opaque` stays the runner's: it is handed back to
 * persist() and done() and must be released by done().
 */
typedef struct orch_step_result {
  orch_step_status status;
  char *step_name;      /* name logged in process_steps (required) */
  char *state;          /* JSON object text: state after the step, seen by the next step;
                           NULL = unchanged (waiting keeps the old state whatever it says) */
  char *log_state;      /* JSON text for process_steps.state (the error dict of a failed or
                           waiting step); NULL = `state` (or the old state if that is NULL) */
  int next_step_index;  /* success/skipped: the step to run next */
  int continue_now;     /* success/skipped: 1 = run the next step at once under this lease;
                           0 = put the process back in the queue for any worker */
  int replace_last;     /* 1 = overwrite the newest process_steps row (step groups) */
  double retry_delay_s; /* waiting: seconds before the step runs again */
  char *failed_reason;  /* failed/waiting: processes.failed_reason (truncated to 10000) */
  char *traceback;      /* failed/waiting: processes.traceback (truncated to 50000) */
  char *assignee;       /* processes.assignee after the step; NULL = unchanged */
  char *process_status; /* processes.last_status when the runner decides it (a failed task's
                           kind: inconsistent_data, api_unavailable); NULL = the status's own */
  long generation;      /* scripts generation that ran the step (0 = unknown) */
  char *code_hash;      /* up to 40 hex digits naming the scripts that ran the step, logged as
                           process_steps.commit_hash; NULL = none */
  void *opaque;         /* runner data for persist()/done(), e.g. deferred subscription saves */
} orch_step_result;

/*
 * The runner vtable (implemented by the Lua bridge; tests use a C fake).
 * The engine calls, per step: run() once, then persist() (normally once; a
 * second time if the batch had to be recorded item by item, after the first
 * call's writes were rolled back), then done() exactly once. All run on the
 * worker's thread.
 */
typedef struct orch_step_runner {
  /* Run the step at job->step_index, with no transaction open. Fill *res
   * (it arrives zeroed). Return ORCH_OK; a step's own failure is a result with
   * status FAILED, not an error. Return a negative ORCH_E* only when the step
   * could not be started at all (e.g. no Lua state): nothing is recorded and
   * the process goes back to the queue, to be tried again a few seconds later. */
  int (*run)(void *ud, const orch_step_job *job, orch_step_result *res);
  /* Optional (NULL = nothing to save). Inside the fenced transaction on `db`
   * (the worker's own connection): write what the step changed
   * (subscriptions). On failure return a negative ORCH_E* and fill err: the
   * batch is rolled back and recorded item by item (this persist runs again,
   * under a savepoint); if it fails again its writes are rolled back and the
   * step is recorded as failed instead. */
  int (*persist)(void *ud, orch_db *db, const orch_step_job *job, orch_step_result *res,
                 orch_error *err);
  /* Optional. The outcome is settled: committed = 1 when the result is in the
   * database, 0 when it was thrown away (lease lost, persist failed, commit
   * failed). Release res->opaque here. */
  void (*done)(void *ud, orch_step_result *res, int committed);
  void *ud; /* passed to every call; owned by whoever built the runner */
} orch_step_runner;

/* Free the strings of a result and zero it (opaque is not touched). */
void orch_step_result_clear(orch_step_result *res);

/* How the engine runs; borrowed by every call, must outlive them. */
typedef struct orch_engine_params {
  const orch_step_runner *runner;
  const char *owner; /* lease owner: this host's id */
  int lease_seconds; /* lease time; the fence and the heartbeat extend it */
  /* Limits (0 = none). A step that runs longer than step_timeout_ms fails (class StepTimeout:
   * api_unavailable for a task) and its lease is gone; a step whose new state or logged state
   * is longer than max_state_bytes fails (class StateTooLarge) and nothing of it is written. */
  long step_timeout_ms;
  size_t max_state_bytes;
} orch_engine_params;

typedef struct orch_batch orch_batch;

/* Counters of one commit, for metrics and the benchmark. */
typedef struct orch_engine_stats {
  int committed; /* steps recorded */
  int lost;      /* results discarded: the lease was gone */
  int claimed;   /* processes claimed in the same transaction */
} orch_engine_stats;

orch_batch *orch_batch_new(int capacity);
void orch_batch_free(orch_batch *b); /* NULL is a no-op; does not touch the database */
int orch_batch_count(const orch_batch *b);
int orch_batch_capacity(const orch_batch *b);
/* The pid of the i-th held process (borrowed, valid until the batch changes). */
const char *orch_batch_pid(const orch_batch *b, int i);

/*
 * Claim up to (capacity - count) claimable processes into leases of this
 * owner (one statement, its own transaction). Returns the number claimed or
 * a negative ORCH_E*. Nothing is claimed while the engine is paused.
 */
int orch_engine_claim(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err);

/*
 * Run one step of every held process through the runner; no database access.
 * Does nothing while the batch is unconfirmed (after a failed commit, until
 * orch_engine_confirm succeeded). Processes handed back by
 * orch_engine_watch meanwhile are not run.
 */
void orch_engine_run(const orch_engine_params *p, orch_batch *b);

/* 1 when the last commit failed and the leases must be confirmed before any step runs again. */
int orch_batch_unconfirmed(const orch_batch *b);

/*
 * After a failed commit (the database went away): check which held leases are
 * still ours and extend them, re-reading each process's step and state from
 * its queue row (the lost commit may have gone through after all); drop the
 * rest (their lease ran out: any worker claims them again). Returns how many
 * processes the batch holds afterwards, or a negative ORCH_E* (the database is
 * still away: the batch stays unconfirmed and runs nothing).
 */
int orch_engine_confirm(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err);

/*
 * From another thread (the scheduler's keeper) while a worker runs the batch:
 * - when the current step has run longer than hand_back_ms, the processes of
 *   the batch whose step has not started yet are handed back (their leases
 *   released, run_at = now), so that other workers take them at once;
 * - when it has run longer than p->step_timeout_ms, the step is recorded as
 *   failed (StepTimeout) and its queue row removed, under the lease (fenced);
 *   the worker throws its result away when the step returns.
 * Returns the number of processes handed back or failed, or a negative ORCH_E*.
 */
int orch_engine_watch(const orch_engine_params *p, orch_db *db, orch_batch *b, long hand_back_ms,
                      orch_error *err);

/*
 * Record the results of the last run in one transaction on db:
 * fence (extend the leases still ours; results of the others are discarded),
 * persist each result, write process_steps, processes and
 * the queue, and - when claim_more is set - top the batch up with new claims
 * in the same transaction. Afterwards the batch holds the processes that go
 * on under their lease (plus the new claims). On a database error (deadlock,
 * lost connection) nothing is recorded, every result is discarded (done()
 * with committed = 0), the batch keeps its processes so that their steps run
 * again (at-least-once; a lease lost meanwhile is caught by the next fence),
 * and a negative ORCH_E* is returned.
 */
int orch_engine_commit(const orch_engine_params *p, orch_db *db, orch_batch *b, int claim_more,
                       orch_engine_stats *stats, orch_error *err);

/* Give back every held lease (the processes stay queued, run_at = now) and empty the batch.
 * On a database error the batch is emptied all the same (the leases run out). */
int orch_engine_release(const orch_engine_params *p, orch_db *db, orch_batch *b, orch_error *err);

/*
 * Extend every live lease of this owner (the heartbeat); returns how many, or
 * a negative ORCH_E*. Rows a worker is committing right now are skipped (its
 * fence extends them), so the heartbeat never deadlocks with the workers.
 */
int orch_engine_extend_leases(const orch_engine_params *p, orch_db *db, orch_error *err);
