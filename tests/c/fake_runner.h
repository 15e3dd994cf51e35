/*
 * fake_runner.h - a workflow runner written in C for the engine tests and the
 * step benchmark. The process state carries the plan: {"plan":"SSWC","i":0}
 * runs one step per letter, and "i" must equal the step index (so the tests
 * see that the state of one step reaches the next).
 *
 * Letters: S success, Q success but back to the queue (continue_now = 0),
 * K skipped, U suspend, W waiting on the first try then success,
 * A awaiting_callback, X abort, F failed, P success whose persist() fails,
 * G success that overwrites the newest logged row (a step group), D the runner
 * cannot start the step (run() fails), J success with a state that is not
 * JSON (a runner bug), L success after sleeping slow_ms (a slow step), B success
 * with a state padded to more than 1000 bytes, C complete. A step past the end
 * of the plan completes.
 */
#pragma once

#include "engine.h"

#include <pthread.h>

typedef struct fake_runner {
  orch_step_runner vt; /* points back at this struct through vt.ud */
  pthread_mutex_t mu;
  pthread_cond_t completed_cv; /* signalled when a `complete` step was committed */
  long runs, persisted, committed, discarded, completed;
  double retry_delay_s; /* delay a W step asks for (default 1) */
  int slow_ms;          /* how long an L step sleeps (default 3000) */
  long slow_runs;       /* L steps started (the side effects of a slow step) */
  /* Called at the start of run() (e.g. to steal the lease); may be NULL. */
  void (*on_run)(struct fake_runner *f, const orch_step_job *job);
  void *arg; /* for on_run */
  /* Hand-off samples (ns), collected when `handoffs` is set. */
  long long *handoffs;
  long nhandoffs, cap_handoffs;
  /* Step start -> outcome committed (ns), collected when `latencies` is set (uses opaque). */
  long long *latencies;
  long nlatencies, cap_latencies;
} fake_runner;

void fake_runner_init(fake_runner *f, int with_persist);
void fake_runner_free(fake_runner *f);
/* The initial state for a plan (static buffer per thread). */
const char *fake_plan_state(const char *plan);
