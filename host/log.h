/*
 * log.h - leveled logging to stderr, one line per call, safe from any thread.
 * Line format: "2026-11-27T12:00:00.123Z LEVEL module: message", or one JSON object per line
 * (ORCH_LOG_FORMAT=json) with the request and process id of the thread's context.
 */
#pragma once

#include "orch.h"

enum orch_log_level { ORCH_LOG_DEBUG = 0, ORCH_LOG_INFO, ORCH_LOG_WARN, ORCH_LOG_ERROR };

/* Set the minimum level printed (default info). */
void orch_log_set_level(int level);
int orch_log_get_level(void);
/* Parse "debug", "info", "warning"/"warn", "error" (case-insensitive); -1 if unknown. */
int orch_log_parse_level(const char *name);
/* Lines as JSON objects (1) or text (0, the default). JSON line:
   {"time":"...","level":"INFO","module":"access","message":"...","request_id":"...",
    "process_id":"..."}; the two ids only when the thread's context has them. */
void orch_log_set_json(int json);
/* "text" -> 0, "json" -> 1 (case-insensitive); -1 if unknown. */
int orch_log_parse_format(const char *name);
/* The calling thread's context, added to its JSON lines until changed: the HTTP request being
   answered and the process whose step runs (NULL = none). The strings are copied. */
void orch_log_context(const char *request_id, const char *process_id);

void orch_log(int level, const char *module, const char *fmt, ...) ORCH_PRINTF(3, 4);
void orch_logv(int level, const char *module, const char *fmt, va_list ap);

#define LOG_DEBUG(mod, ...) orch_log(ORCH_LOG_DEBUG, mod, __VA_ARGS__)
#define LOG_INFO(mod, ...)  orch_log(ORCH_LOG_INFO, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...)  orch_log(ORCH_LOG_WARN, mod, __VA_ARGS__)
#define LOG_ERROR(mod, ...) orch_log(ORCH_LOG_ERROR, mod, __VA_ARGS__)
