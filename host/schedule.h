/*
 * schedule.h - the host's half of scheduled tasks (docs/schedules.md): the ticker,
 * one thread per serve/worker process that calls orch.schedules.tick about once a
 * tick interval, and the `orchestrator schedule` command. What is due, how it
 * runs once and what a run starts is the core ruleset's (lua/orch/schedules).
 */
#pragma once

#include "orch.h"

#include "config.h"

typedef struct orch_ticker orch_ticker;

/*
 * Start the ticker (after the scripts are published and the workflows synced).
 * owner names this host in the runs it claims. With cfg->scheduler == 0 it
 * starts nothing and *out is NULL.
 */
int orch_ticker_start(orch_ticker **out, const orch_config *cfg, const char *owner,
                      orch_error *err) ORCH_MUSTCHECK;
/* Stop and join (a tick under way finishes first). NULL is a no-op. */
void orch_ticker_stop(orch_ticker *t);

/* `orchestrator schedule list|run ID|load-defaults [--recreate]`; returns the exit status. */
int orch_schedule_command(const orch_config *cfg, const char *sub, const char *arg);
