/*
 * sched.h - the step scheduler: worker threads that claim processes into
 * leases and run their steps through the engine (engine.h), plus one
 * housekeeping thread per scheduler that LISTENs for wake-ups, polls the
 * engine pause flag and heartbeats (host row, lease extension).
 *
 * The scheduler knows no Lua: the caller passes the step runner and, for the
 * workers, a provider of each thread's own database connection (the serve and
 * worker commands pass threadctx.h's, whose thread context also holds the
 * thread's Lua state for the runner).
 */
#pragma once

#include "orch.h"

#include "config.h"
#include "db.h"
#include "engine.h"

typedef struct orch_sched orch_sched;

/* A runner that fails every step with "no workflow runner is configured" (what
   orch_sched_start uses when given none). */
const orch_step_runner *orch_sched_unconfigured_runner(void);

/* The calling thread's own database connection (borrowed; lives as long as the thread). */
typedef orch_db *(*orch_sched_db_provider)(void);

/*
 * Start cfg->workers worker threads (0 = none; the scheduler then does
 * nothing) with cfg->lease_seconds and cfg->worker_batch; each worker asks
 * thread_db for its connection. `cfg` and `runner` are borrowed and must
 * outlive the scheduler. Registers this host in orch_hosts. On failure nothing
 * is left running.
 */
int orch_sched_start(orch_sched **out, const orch_config *cfg, const orch_step_runner *runner,
                     orch_sched_db_provider thread_db, orch_error *err) ORCH_MUSTCHECK;
/*
 * Graceful stop: stop claiming, let every worker finish and commit its current
 * step, give the leases back, join the threads, remove the host row, free.
 * NULL is a no-op.
 */
void orch_sched_stop(orch_sched *s);
/*
 * For a shutdown that ran out of time (a worker is stuck in a step): on a new
 * connection, give back every lease the workers of host `host_id` hold (the
 * processes stay queued, run_at = now: another host takes them at once) and
 * remove its orch_hosts row. Waits at most `timeout_ms` for row locks; what it
 * cannot release runs out with its lease. Returns the number released or a
 * negative ORCH_E*. Needs nothing of the scheduler object (it may be in use).
 */
int orch_sched_abandon(const char *database_uri, const char *host_id, int timeout_ms,
                       orch_error *err);
/* This host's id (lease owner), valid until orch_sched_stop. */
const char *orch_sched_host_id(const orch_sched *s);

/*
 * For the API side, after the transaction that queued work committed: wake
 * the idle workers of this process at once, and the other hosts through a
 * NOTIFY on db - at most one NOTIFY per short window per process (a NOTIFY
 * makes its commit take a global lock). Step commits never call this.
 */
int orch_sched_notify(orch_db *db, orch_error *err);

/* Idle workers look for work this often without a wake-up (ms, default 250). Tests lengthen it
 * to prove that wake-ups work; set it before orch_sched_start. */
extern int orch_sched_poll_ms;

/* The heartbeat stops extending the leases of a worker that has been in one step longer than
 * this (default 600 s), so that a hung worker cannot hold its processes forever. */
extern int orch_sched_max_step_seconds;

/* When a worker's current step has run this long (ms, default 1000), the processes of its batch
 * whose step has not started yet are handed back to the queue for the other workers. */
extern int orch_sched_hand_back_ms;

/* The channel workers LISTEN on. */
#define ORCH_SCHED_CHANNEL "orch_work"
