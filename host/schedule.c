/* schedule.c - the schedule ticker thread and the `schedule` command (see schedule.h). */
#include "orch.h"

#include "buf.h"
#include "lhost.h"
#include "log.h"
#include "schedule.h"
#include "threadctx.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMPLAIN_NS (30 * 1000000000LL) /* repeat the same complaint this rarely */

struct orch_ticker {
  const orch_config *cfg;
  char *args; /* the JSON argument of every tick */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stopping; /* guarded by mu */
};

/* Call orch.schedules.<func>(arg) on this thread's state; result JSON (malloc'd) or NULL. */
static int invoke(const char *func, const char *arg, char **result, orch_error *err) {
  orch_lua *lh = orch_threadctx_lua(orch_threadctx_get(), err);
  if (!lh) return err->code ? err->code : ORCH_ELUA;
  orch_error_clear(err);
  return orch_lua_invoke(lh, "orch.schedules", func, arg, result, err);
}

static void complain(const char *what, orch_error *err, long long *last) {
  long long now = orch_now_ns();
  if (!*last || now - *last >= COMPLAIN_NS) {
    char *msg = orch_error_format(err);
    LOG_WARN("schedule", "%s: %s", what, msg);
    free(msg);
    *last = now;
  }
  orch_error_clear(err);
}

/* Sleep ms milliseconds or until stopped; returns 1 when stopping. */
static int sleep_or_stop(orch_ticker *t, int ms) {
  struct timespec until = orch_deadline_ms(CLOCK_REALTIME, ms);
  pthread_mutex_lock(&t->mu);
  while (!t->stopping)
    if (pthread_cond_timedwait(&t->cv, &t->mu, &until) == ETIMEDOUT) break;
  int stopping = t->stopping;
  pthread_mutex_unlock(&t->mu);
  return stopping;
}

static void *ticker_main(void *arg) {
  orch_ticker *t = arg;
  const orch_config *cfg = t->cfg;
  int defaults_pending = cfg->schedule_defaults != 0;
  long long last_complaint = 0;
  int tick_ms = cfg->schedule_tick_ms > 0 ? cfg->schedule_tick_ms : 1000;
  do {
    orch_error err = ORCH_ERROR_INIT;
    char *result = NULL;
    if (defaults_pending) {
      /* Core's default schedules, for the tasks that have none yet (idempotent across hosts). */
      if (invoke("load_defaults", NULL, &result, &err) == ORCH_OK) {
        LOG_INFO("schedule", "default schedules: %s", result);
        defaults_pending = 0;
      } else {
        complain("loading the default schedules failed", &err, &last_complaint);
      }
      free(result);
      result = NULL;
    }
    if (invoke("tick", t->args, &result, &err) != ORCH_OK)
      complain("tick failed", &err, &last_complaint);
    else if (result && !strstr(result, "\"fired\":0,") && strstr(result, "\"fired\""))
      LOG_DEBUG("schedule", "tick: %s", result);
    free(result);
  } while (!sleep_or_stop(t, tick_ms));
  return NULL;
}

int orch_ticker_start(orch_ticker **out, const orch_config *cfg, const char *owner,
                      orch_error *err) {
  *out = NULL;
  if (!cfg->scheduler) {
    LOG_INFO("schedule", "this host does not fire schedules (ORCH_SCHEDULER=0)");
    return ORCH_OK;
  }
  orch_ticker *t = orch_xcalloc(1, sizeof *t);
  t->cfg = cfg;
  orch_buf args = ORCH_BUF_INIT;
  orch_buf_puts(&args, "{\"owner\":");
  orch_buf_json_string(&args, owner, strlen(owner));
  orch_buf_printf(&args, ",\"grace_seconds\":%d,\"limit\":100,\"claim_seconds\":60}",
                  cfg->schedule_misfire_grace);
  t->args = orch_buf_take(&args, NULL);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  int rc = pthread_create(&t->thread, NULL, ticker_main, t);
  if (rc != 0) {
    orch_error_set(err, ORCH_EIO, "cannot start the schedule ticker: %s", strerror(rc));
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->args);
    free(t);
    return ORCH_EIO;
  }
  LOG_INFO("schedule", "firing due schedules every %d ms", cfg->schedule_tick_ms);
  *out = t;
  return ORCH_OK;
}

void orch_ticker_stop(orch_ticker *t) {
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  t->stopping = 1;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t->args);
  free(t);
}

/* ---- orchestrator schedule ... ---- */

int orch_schedule_command(const orch_config *cfg, const char *sub, const char *arg) {
  int known = sub && (!strcmp(sub, "list") || !strcmp(sub, "load-defaults") ||
                      (!strcmp(sub, "run") && arg));
  if (!known) {
    fprintf(stderr, "usage: orchestrator schedule list | run SCHEDULE_ID | load-defaults "
                    "[--recreate] [flags]\n");
    return 2;
  }
  int begin = orch_threadctx_begin_command(cfg);
  if (begin != 0) return begin;
  orch_error err = ORCH_ERROR_INIT;
  orch_buf a = ORCH_BUF_INIT;
  orch_buf_puts(&a, "{\"command\":");
  orch_buf_json_string(&a, sub, strlen(sub));
  if (arg) {
    orch_buf_puts(&a, ",\"argument\":");
    orch_buf_json_string(&a, arg, strlen(arg));
  }
  orch_buf_puts(&a, "}");
  char *json = orch_buf_take(&a, NULL);
  char *result = NULL;
  int rc = invoke("cli", json, &result, &err);
  free(json);
  /* The report is "<status>\n<text>": status 0 = done, 1 = failed. */
  char *text = rc == ORCH_OK ? orch_json_unquote(result) : NULL;
  int status = 1;
  if (rc != ORCH_OK) {
    char *msg = orch_error_format(&err);
    fprintf(stderr, "orchestrator: schedule %s failed: %s\n", sub, msg);
    free(msg);
  } else if (!text || (text[0] != '0' && text[0] != '1') || text[1] != '\n') {
    fprintf(stderr, "orchestrator: orch.schedules.cli returned an unexpected report\n");
  } else {
    fputs(text + 2, text[0] == '0' ? stdout : stderr);
    status = text[0] == '0' ? 0 : 1;
  }
  free(text);
  free(result);
  orch_error_clear(&err);
  orch_threadctx_end_command();
  return status;
}
