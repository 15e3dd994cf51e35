/* sched.c - worker threads, wake-ups, engine pause and heartbeat (see sched.h, docs/engine.md). */
#include "orch.h"

#include "log.h"
#include "sched.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_WINDOW_NS (5 * 1000000LL)     /* at most one NOTIFY per window per process */
#define ERROR_LOG_NS     (30 * 1000000000LL) /* repeat the same database complaint this rarely */

#define BACKOFF_FIRST_MS 250  /* database away: first wait, doubled per failure ... */
#define BACKOFF_MAX_MS   5000 /* ... up to this */

int orch_sched_poll_ms = 250;
int orch_sched_max_step_seconds = 600;
int orch_sched_hand_back_ms = 1000;

typedef struct worker {
  orch_sched *s;
  pthread_t thread;
  int index;
  int started;
  char owner[160];           /* lease owner: "<host id>/<index>" */
  orch_engine_params params; /* the scheduler's, with this worker's owner */
  _Atomic long long step_ns; /* orch_now_ns() when the current run began; 0 between runs */
  orch_batch *batch;         /* owned; the worker's, watched by the keeper (orch_engine_watch) */
} worker;

struct orch_sched {
  const orch_config *cfg;
  orch_sched_db_provider thread_db; /* each worker's connection */
  orch_engine_params params;
  char host_id[128];
  int nworkers;
  worker *workers;
  pthread_t keeper;
  int keeper_started;
  orch_db *keeper_db; /* owned; the LISTEN connection, used by the keeper thread only */
  int wake_pipe[2];   /* stop wakes the keeper out of poll() */
  pthread_mutex_t mu; /* guards wake_seq, back_seq and the condition */
  pthread_cond_t cv;
  unsigned long wake_seq;
  unsigned long back_seq; /* bumped when the keeper (re)connects: the database answers again */
  atomic_int stopping;
  atomic_int paused; /* engine_settings.global_lock, as last read */
  orch_sched *next;  /* registry of running schedulers, for orch_sched_notify */
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static orch_sched *registry;
static _Atomic long long last_notify_ns;

/* ---- the runner used when none is given ---- */

static int unconfigured_run(void *ud, const orch_step_job *job, orch_step_result *res) {
  ORCH_UNUSED(ud);
  ORCH_UNUSED(job);
  res->status = ORCH_STEP_FAILED;
  res->step_name = orch_strdup("Unknown");
  res->failed_reason = orch_strdup("no workflow runner is configured");
  res->log_state = orch_strdup("{\"class\":\"EngineError\",\"error\":\"no workflow runner is "
                               "configured\"}");
  return ORCH_OK;
}

static const orch_step_runner unconfigured_runner = {unconfigured_run, NULL, NULL, NULL};

const orch_step_runner *orch_sched_unconfigured_runner(void) {
  return &unconfigured_runner;
}

/* ---- wake-ups ---- */

static void wake_workers(orch_sched *s) {
  pthread_mutex_lock(&s->mu);
  s->wake_seq++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static unsigned long wake_seq(orch_sched *s) {
  pthread_mutex_lock(&s->mu);
  unsigned long seq = s->wake_seq;
  pthread_mutex_unlock(&s->mu);
  return seq;
}

/* Sleep until a wake-up newer than `seen`, a stop, or `ms` milliseconds. */
static void wait_for_wake(orch_sched *s, unsigned long seen, int ms) {
  struct timespec until = orch_deadline_ms(CLOCK_MONOTONIC, ms);
  pthread_mutex_lock(&s->mu);
  while (s->wake_seq == seen && !atomic_load(&s->stopping))
    if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT) break;
  pthread_mutex_unlock(&s->mu);
}

static unsigned long back_seq(orch_sched *s) {
  pthread_mutex_lock(&s->mu);
  unsigned long seq = s->back_seq;
  pthread_mutex_unlock(&s->mu);
  return seq;
}

/* The keeper reached the database again: end the workers' back-offs. */
static void database_back(orch_sched *s) {
  pthread_mutex_lock(&s->mu);
  s->back_seq++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* A back-off: sleep `ms` milliseconds, until a stop, or until the keeper reconnected after `seen`
 * (the database is back: sleeping out a back-off of seconds would leave it idle). Ordinary
 * wake-ups do not end it, so a worker whose commits keep failing does not retry at their rate.
 * Returns 1 when the keeper's reconnect ended it. */
static int wait_for_backoff(orch_sched *s, unsigned long seen, int ms) {
  struct timespec until = orch_deadline_ms(CLOCK_MONOTONIC, ms);
  pthread_mutex_lock(&s->mu);
  while (s->back_seq == seen && !atomic_load(&s->stopping))
    if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT) break;
  int back = s->back_seq != seen;
  pthread_mutex_unlock(&s->mu);
  return back;
}

/* The next back-off after a database failure: doubled, capped. */
static int next_backoff(int ms) {
  return ms <= 0 ? BACKOFF_FIRST_MS : ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
}

/* A worker's back-off after a failure: doubled, capped; from the start again once the keeper
 * reached the database (a first try that still fails then waits 250 ms, not the longest wait). */
static void back_off(orch_sched *s, unsigned long seen, int *backoff) {
  *backoff = next_backoff(*backoff);
  if (wait_for_backoff(s, seen, *backoff))
    *backoff = -1; /* still failing; the next wait is the first */
}

int orch_sched_notify(orch_db *db, orch_error *err) {
  pthread_mutex_lock(&registry_mu);
  for (orch_sched *s = registry; s; s = s->next)
    wake_workers(s);
  pthread_mutex_unlock(&registry_mu);
  long long now = orch_now_ns(), last = atomic_load(&last_notify_ns);
  if (last && now - last < NOTIFY_WINDOW_NS) return ORCH_OK;
  if (!atomic_compare_exchange_strong(&last_notify_ns, &last, now)) return ORCH_OK;
  if (orch_db_exec(db, "SELECT pg_notify('" ORCH_SCHED_CHANNEL "', 'work')", 0, NULL, NULL, err) <
      0)
    return ORCH_EDB;
  return ORCH_OK;
}

/* Log a database problem, but the same one at most every ERROR_LOG_NS per thread. */
static void complain(const char *what, const orch_error *err, long long *last) {
  long long now = orch_now_ns();
  if (*last && now - *last < ERROR_LOG_NS) return;
  *last = now;
  LOG_WARN("sched", "%s: %s", what, err->message ? err->message : "unknown error");
}

/* ---- workers ---- */

static void *worker_main(void *arg) {
  worker *w = arg;
  orch_sched *s = w->s;
  orch_db *db = s->thread_db();
  orch_batch *b = w->batch;
  long long last_complaint = 0;
  int backoff = 0; /* ms; nonzero while the database is failing (-1: start the back-off again) */
  orch_error err = ORCH_ERROR_INIT;
  while (!atomic_load(&s->stopping)) {
    unsigned long back = back_seq(s); /* before this round's attempts: a return during one counts */
    if (atomic_load(&s->paused)) {
      /* Stop before the next step; the processes stay `running` and queued. */
      if (orch_batch_count(b) && orch_engine_release(&w->params, db, b, &err) != ORCH_OK)
        complain("giving back leases", &err, &last_complaint);
      orch_error_clear(&err);
      wait_for_wake(s, wake_seq(s), orch_sched_poll_ms);
      continue;
    }
    if (orch_batch_unconfirmed(b)) {
      /* The last commit failed: no step runs until the database answers and says which leases
       * are still ours. Running them now would repeat their side effects for nothing. */
      if (orch_engine_confirm(&w->params, db, b, &err) < 0) {
        complain("confirming leases after a failed commit", &err, &last_complaint);
        orch_error_clear(&err);
        back_off(s, back, &backoff);
        continue;
      }
      if (backoff) LOG_INFO("sched", "worker %s: the database is back", w->owner);
      backoff = 0;
    }
    if (orch_batch_count(b) == 0) {
      unsigned long seen = wake_seq(s);
      int n = orch_engine_claim(&w->params, db, b, &err);
      if (n < 0) {
        complain("claiming work", &err, &last_complaint);
        orch_error_clear(&err);
        back_off(s, back, &backoff);
        continue;
      }
      backoff = 0;
      if (n == 0) {
        wait_for_wake(s, seen, orch_sched_poll_ms);
        continue;
      }
    }
    atomic_store(&w->step_ns, orch_now_ns());
    orch_engine_run(&w->params, b);
    atomic_store(&w->step_ns, 0);
    int more = !atomic_load(&s->stopping) && !atomic_load(&s->paused);
    if (orch_engine_commit(&w->params, db, b, more, NULL, &err) != ORCH_OK) {
      complain("committing steps", &err, &last_complaint);
      orch_error_clear(&err);
      back_off(s, back, &backoff);
    }
  }
  if (orch_batch_count(b) && orch_engine_release(&w->params, db, b, &err) != ORCH_OK)
    complain("giving back leases", &err, &last_complaint);
  orch_error_clear(&err);
  return NULL;
}

/* ---- housekeeping: LISTEN, pause flag, heartbeat ---- */

static void refresh_pause(orch_sched *s, long long *last_complaint) {
  orch_error err = ORCH_ERROR_INIT;
  PGresult *res = NULL;
  if (orch_db_exec(s->keeper_db, "SELECT global_lock FROM engine_settings LIMIT 1", 0, NULL, &res,
                   &err) < 0) {
    complain("reading the engine lock", &err, last_complaint);
    orch_error_clear(&err);
    return;
  }
  int locked = PQntuples(res) > 0 && PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  if (atomic_exchange(&s->paused, locked) != locked) {
    LOG_INFO("sched", "engine %s",
             locked ? "paused: workers stop before their next step" : "unpaused: workers continue");
    wake_workers(s);
  }
}

static void heartbeat(orch_sched *s, long long *last_complaint) {
  static const char *sql =
      "INSERT INTO orch_hosts (host_id, workers, lease_seconds) VALUES ($1, $2::int, $3::int)"
      " ON CONFLICT (host_id) DO UPDATE SET heartbeat_at = now(), workers = excluded.workers,"
      "   lease_seconds = excluded.lease_seconds";
  char workers[16], ttl[16];
  snprintf(workers, sizeof workers, "%d", s->nworkers);
  snprintf(ttl, sizeof ttl, "%d", s->params.lease_seconds);
  const char *params[] = {s->host_id, workers, ttl};
  orch_error err = ORCH_ERROR_INIT;
  if (orch_db_exec(s->keeper_db, sql, 3, params, NULL, &err) < 0) {
    complain("heartbeat", &err, last_complaint);
    orch_error_clear(&err);
    return;
  }
  /* A worker stuck in one step longer than orch_sched_max_step_seconds keeps no lease alive:
   * its processes are taken over when their leases run out, and its commit is fenced. */
  long long now = orch_now_ns(), max_ns = (long long)orch_sched_max_step_seconds * 1000000000LL;
  for (int i = 0; i < s->nworkers; i++) {
    long long started = atomic_load(&s->workers[i].step_ns);
    if (started && now - started > max_ns) {
      LOG_WARN("sched", "worker %s has been in one step for %lld s: its leases are not extended",
               s->workers[i].owner, (now - started) / 1000000000LL);
      continue;
    }
    if (orch_engine_extend_leases(&s->workers[i].params, s->keeper_db, &err) < 0) {
      complain("heartbeat", &err, last_complaint);
      orch_error_clear(&err);
      return;
    }
  }
}

/* Slow steps: hand back what waits behind them; fail those past the step time limit. */
static void watch_workers(orch_sched *s, long long *last_complaint) {
  for (int i = 0; i < s->nworkers; i++) {
    orch_error err = ORCH_ERROR_INIT;
    if (orch_engine_watch(&s->workers[i].params, s->keeper_db, s->workers[i].batch,
                          orch_sched_hand_back_ms, &err) < 0)
      complain("watching a slow step", &err, last_complaint);
    orch_error_clear(&err);
  }
}

static void *keeper_main(void *arg) {
  orch_sched *s = arg;
  long long last_complaint = 0, next_beat = 0;
  long long beat_ns = (long long)s->params.lease_seconds * 1000000000LL / 3;
  PGconn *listening = NULL; /* the connection LISTEN was issued on */
  while (!atomic_load(&s->stopping)) {
    orch_error err = ORCH_ERROR_INIT;
    if (!listening || orch_db_conn(s->keeper_db) != listening) {
      if (orch_db_exec(s->keeper_db, "LISTEN " ORCH_SCHED_CHANNEL, 0, NULL, NULL, &err) < 0) {
        complain("listening for wake-ups", &err, &last_complaint);
        listening = NULL;
      } else {
        listening = orch_db_conn(s->keeper_db);
        database_back(s); /* a new connection: workers backing off from an outage try again now */
      }
      orch_error_clear(&err);
    }
    long long now = orch_now_ns();
    if (now >= next_beat) {
      heartbeat(s, &last_complaint);
      next_beat = now + beat_ns;
    }
    refresh_pause(s, &last_complaint);
    watch_workers(s, &last_complaint);

    long long wait_ns = next_beat - orch_now_ns();
    if (wait_ns > orch_sched_poll_ms * 1000000LL) wait_ns = orch_sched_poll_ms * 1000000LL;
    if (wait_ns < 0) wait_ns = 0;
    /* poll(), not select(): descriptor numbers above FD_SETSIZE are normal on a busy host. */
    PGconn *c = orch_db_conn(s->keeper_db);
    int sock = listening && c == listening ? PQsocket(c) : -1;
    struct pollfd pfd[2] = {{.fd = s->wake_pipe[0], .events = POLLIN},
                            {.fd = sock, .events = POLLIN}}; /* fd -1 is ignored */
    if (poll(pfd, 2, (int)(wait_ns / 1000000LL)) <= 0) continue;
    if (pfd[0].revents) {
      char drain[16];
      while (read(s->wake_pipe[0], drain, sizeof drain) > 0) {
      }
    }
    if (sock >= 0 && pfd[1].revents) {
      int notified = 0;
      if (!PQconsumeInput(c)) {
        listening = NULL; /* broken: the next statement reconnects, then LISTEN again */
        continue;
      }
      PGnotify *n;
      while ((n = PQnotifies(c)) != NULL) {
        notified = 1;
        PQfreemem(n);
      }
      if (notified) {
        wake_workers(s);
        refresh_pause(s, &last_complaint);
      }
    }
  }
  orch_error err = ORCH_ERROR_INIT;
  const char *params[] = {s->host_id};
  orch_db_exec(s->keeper_db, "DELETE FROM orch_hosts WHERE host_id = $1", 1, params, NULL, &err);
  orch_error_clear(&err);
  return NULL;
}

/* ---- start and stop ---- */

int orch_sched_start(orch_sched **out, const orch_config *cfg, const orch_step_runner *runner,
                     orch_sched_db_provider thread_db, orch_error *err) {
  *out = NULL;
  if (cfg->workers > 0 && !thread_db) {
    orch_error_set(err, ORCH_EINVAL, "the scheduler needs a connection provider for its workers");
    return ORCH_EINVAL;
  }
  orch_sched *s = orch_xcalloc(1, sizeof *s);
  s->cfg = cfg;
  s->thread_db = thread_db;
  s->nworkers = cfg->workers;
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  unsigned char r[3];
  orch_random_bytes(r, sizeof r);
  snprintf(s->host_id, sizeof s->host_id, "%s/%ld/%02x%02x%02x", host, (long)getpid(), r[0], r[1],
           r[2]);
  s->params.runner = runner ? runner : &unconfigured_runner;
  s->params.owner = s->host_id;
  s->params.lease_seconds = cfg->lease_seconds > 0 ? cfg->lease_seconds : 1;
  s->params.step_timeout_ms = cfg->step_timeout_s > 0 ? cfg->step_timeout_s * 1000L : 0;
  s->params.max_state_bytes = cfg->max_state_bytes;
  s->wake_pipe[0] = s->wake_pipe[1] = -1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  *out = s;
  if (s->nworkers <= 0) return ORCH_OK;

  if (pipe(s->wake_pipe) != 0) {
    orch_error_set(err, ORCH_EIO, "cannot create the scheduler's wake-up pipe");
    goto fail;
  }
  fcntl(s->wake_pipe[0], F_SETFL, O_NONBLOCK);
  fcntl(s->wake_pipe[1], F_SETFL, O_NONBLOCK);
  s->keeper_db = orch_db_new(cfg->database_uri);
  /* The workers' descriptions exist before any thread reads them. */
  s->workers = orch_xcalloc((size_t)s->nworkers, sizeof *s->workers);
  for (int i = 0; i < s->nworkers; i++) {
    s->workers[i].s = s;
    s->workers[i].index = i;
    snprintf(s->workers[i].owner, sizeof s->workers[i].owner, "%s/%d", s->host_id, i);
    s->workers[i].params = s->params;
    s->workers[i].params.owner = s->workers[i].owner;
    s->workers[i].batch = orch_batch_new(cfg->worker_batch > 0 ? cfg->worker_batch : 1);
  }
  if (pthread_create(&s->keeper, NULL, keeper_main, s) != 0) {
    orch_error_set(err, ORCH_EIO, "cannot start the scheduler's housekeeping thread");
    goto fail;
  }
  s->keeper_started = 1;
  for (int i = 0; i < s->nworkers; i++) {
    if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
      orch_error_set(err, ORCH_EIO, "cannot start worker thread %d", i);
      goto fail;
    }
    s->workers[i].started = 1;
  }
  pthread_mutex_lock(&registry_mu);
  s->next = registry;
  registry = s;
  pthread_mutex_unlock(&registry_mu);
  LOG_INFO("sched", "%d worker%s started as %s (lease %d s, batch %d)", s->nworkers,
           s->nworkers == 1 ? "" : "s", s->host_id, s->params.lease_seconds, cfg->worker_batch);
  return ORCH_OK;
fail:
  orch_sched_stop(s);
  *out = NULL;
  return ORCH_EIO;
}

void orch_sched_stop(orch_sched *s) {
  if (!s) return;
  pthread_mutex_lock(&registry_mu);
  for (orch_sched **pp = &registry; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  pthread_mutex_unlock(&registry_mu);
  atomic_store(&s->stopping, 1);
  wake_workers(s);
  for (int i = 0; i < s->nworkers && s->workers; i++)
    if (s->workers[i].started) pthread_join(s->workers[i].thread, NULL);
  if (s->wake_pipe[1] >= 0 && write(s->wake_pipe[1], "x", 1) < 0) {
    /* the keeper wakes at its next poll anyway */
  }
  if (s->keeper_started) pthread_join(s->keeper, NULL);
  if (s->nworkers > 0) LOG_INFO("sched", "workers of %s stopped", s->host_id);
  orch_db_free(s->keeper_db);
  for (int i = 0; i < s->nworkers && s->workers; i++)
    orch_batch_free(s->workers[i].batch);
  for (int i = 0; i < 2; i++)
    if (s->wake_pipe[i] >= 0) close(s->wake_pipe[i]);
  free(s->workers);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

int orch_sched_abandon(const char *database_uri, const char *host_id, int timeout_ms,
                       orch_error *err) {
  orch_db *db = orch_db_new(database_uri);
  char ms[16];
  snprintf(ms, sizeof ms, "%d", timeout_ms > 0 ? timeout_ms : 1);
  const char *tparams[] = {ms};
  const char *params[] = {host_id};
  PGresult *res = NULL;
  int rc = ORCH_EDB;
  if (orch_db_exec(db, "SELECT set_config('statement_timeout', $1, false)", 1, tparams, NULL,
                   err) >= 0 &&
      orch_db_exec(db,
                   "UPDATE orch_work_queue SET lease_owner = NULL, lease_token = NULL,"
                   "   lease_expires = NULL, run_at = now()"
                   " WHERE left(lease_owner, length($1) + 1) = $1 || '/'",
                   1, params, &res, err) >= 0) {
    rc = atoi(PQcmdTuples(res));
    PQclear(res);
    orch_error e2 = ORCH_ERROR_INIT;
    orch_db_exec(db, "DELETE FROM orch_hosts WHERE host_id = $1", 1, params, NULL, &e2);
    orch_error_clear(&e2);
  }
  orch_db_free(db);
  return rc;
}

const char *orch_sched_host_id(const orch_sched *s) {
  return s->host_id;
}
