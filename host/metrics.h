/*
 * metrics.h - the host's own counters and histograms for GET /api/metrics, in
 * the Prometheus text exposition format (version 0.0.4). Every hook is a few
 * atomic adds or one short mutex hold: cheap enough for every request and
 * every step. The database-derived gauges (processes by status, queue depth,
 * schedule runs) are added by the Lua handler (lua/orch/api/metrics.lua).
 *
 * Labelled series are kept per family up to ORCH_METRICS_MAX_SERIES label
 * sets; later label sets are counted under the value "_other".
 */
#pragma once

#include "orch.h"

#include "buf.h"

#define ORCH_METRICS_MAX_SERIES 256

/* A finished HTTP request: the route action ("processes.read"; "none" when no route matched),
   the response status and the time from the first byte to the response being complete. */
void orch_metrics_http(const char *action, int status, double seconds);
/* A recorded step outcome of `workflow`: status is orch_step_status_name() ("success",
   "failed", "waiting" = will be retried, ...); seconds from the step's start to its commit. */
void orch_metrics_step(const char *workflow, const char *status, double seconds);
/* The time between a step's commit and the next step of the same process starting under the
   same lease. */
void orch_metrics_handoff(double seconds);
/* Claims: n processes claimed, of which taken_over had a lease of another owner that ran out. */
void orch_metrics_claims(int n, int taken_over);
/* A reload: ok = published, 0 = refused. */
void orch_metrics_reload(int ok);
/* A Lua call stopped by its time or memory budget. */
void orch_metrics_budget_kill(void);
/* Bytes allocated by Lua states changed by delta (summed over all states). */
void orch_metrics_lua_memory(long long delta);
/* A database statement that failed (soft = connection loss, serialization; or hard). */
void orch_metrics_db_error(int soft);
/* The number of WebSocket clients connected now. */
void orch_metrics_ws_clients(int n);

/* The exposition text of every family (malloc'd). generation is the scripts generation in use. */
char *orch_metrics_render(long generation);

/* For the unit test: forget every series and value. */
void orch_metrics_reset(void);

/* Append `value` escaped as a label value (\\, \" and \n). */
void orch_metrics_escape_label(orch_buf *b, const char *value);
