/* fake_runner.c - the C runner of the engine tests and the step benchmark (see fake_runner.h). */
#include "orch.h"

#include "fake_runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *fake_plan_state(const char *plan) {
  static _Thread_local char buf[512];
  snprintf(buf, sizeof buf, "{\"plan\": \"%s\", \"i\": 0}", plan);
  return buf;
}

/* The plan string inside the state (the state is ours: no escapes in it). */
static int plan_of(const char *state, char *out, size_t size, int *i) {
  const char *p = strstr(state, "\"plan\": \"");
  const char *q = strstr(state, "\"i\": ");
  if (!p || !q) return -1;
  p += 9;
  const char *e = strchr(p, '"');
  if (!e || (size_t)(e - p) >= size) return -1;
  memcpy(out, p, (size_t)(e - p));
  out[e - p] = '\0';
  *i = atoi(q + 5);
  return 0;
}

static int fake_run(void *ud, const orch_step_job *job, orch_step_result *res) {
  fake_runner *f = ud;
  if (f->on_run) f->on_run(f, job);
  char plan[256];
  int i = -1;
  pthread_mutex_lock(&f->mu);
  f->runs++;
  if (f->handoffs && job->handoff_ns && f->nhandoffs < f->cap_handoffs)
    f->handoffs[f->nhandoffs++] = orch_now_ns() - job->handoff_ns;
  pthread_mutex_unlock(&f->mu);
  if (plan_of(job->state, plan, sizeof plan, &i) != 0 || i != job->step_index) {
    res->status = ORCH_STEP_FAILED;
    res->step_name = orch_strdup("Check state");
    res->failed_reason =
        orch_sprintf("state does not match step %d: %s", job->step_index, job->state);
    return ORCH_OK;
  }
  char c = job->step_index < (int)strlen(plan) ? plan[job->step_index] : 'C';
  if (c == 'D') return ORCH_EIO; /* the runner cannot start the step (no Lua state, say) */
  res->step_name = orch_sprintf("Step %d %c", job->step_index, c);
  res->state = orch_sprintf("{\"plan\": \"%s\", \"i\": %d}", plan, job->step_index + 1);
  res->next_step_index = job->step_index + 1;
  res->continue_now = 1;
  res->generation = 7;
  switch (c) {
  case 'S': res->status = ORCH_STEP_SUCCESS; break;
  case 'G':
    res->status = ORCH_STEP_SUCCESS;
    res->replace_last = 1;
    break;
  case 'P':
    res->status = ORCH_STEP_SUCCESS;
    res->opaque = f; /* persist() fails this one */
    break;
  case 'Q':
    res->status = ORCH_STEP_SUCCESS;
    res->continue_now = 0;
    break;
  case 'K': res->status = ORCH_STEP_SKIPPED; break;
  case 'L': {
    pthread_mutex_lock(&f->mu);
    f->slow_runs++;
    pthread_mutex_unlock(&f->mu);
    struct timespec ts = {f->slow_ms / 1000, (long)(f->slow_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    res->status = ORCH_STEP_SUCCESS;
    break;
  }
  case 'B': {
    char pad[1101];
    memset(pad, 'x', 1100);
    pad[1100] = '\0';
    free(res->state);
    res->state = orch_sprintf("{\"plan\": \"%s\", \"i\": %d, \"pad\": \"%s\"}", plan,
                              job->step_index + 1, pad);
    res->status = ORCH_STEP_SUCCESS;
    break;
  }
  case 'J': /* a runner bug: the new state is not JSON */
    res->status = ORCH_STEP_SUCCESS;
    free(res->state);
    res->state = orch_strdup("{not json");
    break;
  case 'U':
    res->status = ORCH_STEP_SUSPEND;
    res->assignee = orch_strdup("NOC");
    break;
  case 'W':
    if (job->attempt == 0) {
      res->status = ORCH_STEP_WAITING;
      res->retry_delay_s = f->retry_delay_s;
      res->log_state = orch_strdup("{\"class\": \"TimeoutError\", \"error\": \"try later\"}");
      res->failed_reason = orch_strdup("try later");
      res->traceback = orch_strdup("traceback of the wait");
    } else {
      res->status = ORCH_STEP_SUCCESS;
    }
    break;
  case 'A': res->status = ORCH_STEP_AWAITING_CALLBACK; break;
  case 'X': res->status = ORCH_STEP_ABORT; break;
  case 'F':
    res->status = ORCH_STEP_FAILED;
    res->log_state = orch_strdup("{\"class\": \"ValueError\", \"error\": \"boom\"}");
    res->failed_reason = orch_strdup("boom");
    res->traceback = orch_strdup("traceback of the boom");
    break;
  default: res->status = ORCH_STEP_COMPLETE; break;
  }
  if (f->latencies && !res->opaque) {
    long long *start = orch_xmalloc(sizeof *start);
    *start = orch_now_ns();
    res->opaque = start;
  }
  return ORCH_OK;
}

static int fake_persist(void *ud, orch_db *db, const orch_step_job *job, orch_step_result *res,
                        orch_error *err) {
  fake_runner *f = ud;
  ORCH_UNUSED(job);
  /* A real write, so that the savepoint has something to roll back. */
  const char *params[] = {job->pid};
  if (orch_db_exec(db, "UPDATE processes SET note = 'persisted' WHERE pid = $1", 1, params, NULL,
                   err) < 0)
    return ORCH_EDB;
  pthread_mutex_lock(&f->mu);
  f->persisted++;
  pthread_mutex_unlock(&f->mu);
  if (res->opaque == f) {
    orch_error_set(err, ORCH_EDB, "the subscription could not be saved");
    return ORCH_EDB;
  }
  return ORCH_OK;
}

static void fake_done(void *ud, orch_step_result *res, int committed) {
  fake_runner *f = ud;
  long long *start = f->latencies && res->opaque != f ? res->opaque : NULL;
  long long took = start ? orch_now_ns() - *start : 0;
  free(start);
  res->opaque = NULL;
  pthread_mutex_lock(&f->mu);
  if (start && committed && f->nlatencies < f->cap_latencies) f->latencies[f->nlatencies++] = took;
  if (committed && res->status == ORCH_STEP_COMPLETE) {
    f->completed++;
    pthread_cond_broadcast(&f->completed_cv);
  }
  if (committed)
    f->committed++;
  else
    f->discarded++;
  pthread_mutex_unlock(&f->mu);
}

void fake_runner_init(fake_runner *f, int with_persist) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->completed_cv, NULL);
  f->retry_delay_s = 1;
  f->slow_ms = 3000;
  f->vt.run = fake_run;
  f->vt.persist = with_persist ? fake_persist : NULL;
  f->vt.done = fake_done;
  f->vt.ud = f;
}

void fake_runner_free(fake_runner *f) {
  pthread_cond_destroy(&f->completed_cv);
  pthread_mutex_destroy(&f->mu);
  free(f->handoffs);
  free(f->latencies);
}
