/*
 * events.h - the cache-invalidation event bus behind /api/ws/events (see
 * docs/events.md).
 *
 * Anyone (HTTP threads, Lua handlers through orch._host.emit, the step
 * engine after a commit) calls orch_events_emit(type, id). The bus collects
 * the events of a short window (ORCH_EVENTS_WINDOW_MS), drops duplicates and
 * then, on a thread of its own:
 *   - hands every event as the UI's message
 *     {"name":"invalidateCache","value":{"type":...,"id":...}} to the local
 *     sink (the WebSocket server);
 *   - sends the whole batch in ONE NOTIFY on channel ORCH_EVENTS_CHANNEL from
 *     its own connection (never inside anyone's transaction), so that the
 *     other hosts on the database hand it to their sockets too. Each host
 *     LISTENs on that channel and skips its own batches (host id in the
 *     payload).
 * One bus per process; everything is a no-op until orch_events_start.
 */
#pragma once

#include "orch.h"

#include <stddef.h>

#define ORCH_EVENTS_CHANNEL   "orch_events"
#define ORCH_EVENTS_WINDOW_MS 100
/* Ids of one type kept per window; beyond that the whole type is invalidated. */
#define ORCH_EVENTS_MAX_IDS 200
/* NOTIFY payloads must stay under PostgreSQL's 8000 bytes. */
#define ORCH_EVENTS_MAX_PAYLOAD 7900

/* Receives each message text (borrowed for the call) on the events thread. */
typedef void (*orch_events_sink_fn)(void *arg, const char *text, size_t len);

/*
 * Start the events thread; database_uri (copied) is where the batches of all
 * hosts meet (NULL or "" = local delivery only).
 */
int orch_events_start(const char *database_uri, orch_error *err) ORCH_MUSTCHECK;
/* Deliver what is pending, stop the thread, free everything. Safe if not started. */
void orch_events_stop(void);
/* Where messages go on this host (NULL = nowhere). Waits for a delivery in progress. */
void orch_events_set_sink(orch_events_sink_fn fn, void *arg);

/*
 * Queue an invalidation (any thread, cheap, never blocks on I/O). type is
 * "processes" or "subscriptions" (id: "LIST", a uuid, or NULL for every entry
 * of the type), "processStatusCounts" or "engineStatus" (id must be NULL).
 * ORCH_EINVAL for anything else; ORCH_OK (and nothing happens) when the bus
 * is not running.
 */
int orch_events_emit(const char *type, const char *id);
/*
 * A process's status changed (the engine, after its commit): processes LIST,
 * processes/<pid>, processStatusCounts and, when the process ended
 * (terminal), its subscriptions - looked up by the events thread, once per
 * batch.
 */
void orch_events_process_changed(const char *pid, int terminal);

/* 1 if type/id is an event orch_events_emit accepts. */
int orch_events_valid(const char *type, const char *id);
