/*
 * log.h - leveled logging to stderr, one line per call, safe from any thread.
 * Line format: "2026-11-27T12:00:00.123Z LEVEL module: message".
 */
#pragma once

#include "orch.h"

enum orch_log_level { ORCH_LOG_DEBUG = 0, ORCH_LOG_INFO, ORCH_LOG_WARN, ORCH_LOG_ERROR };

/* Set the minimum level printed (default info). */
void orch_log_set_level(int level);
int orch_log_get_level(void);
/* Parse "debug", "info", "warning"/"warn", "error" (case-insensitive); -1 if unknown. */
int orch_log_parse_level(const char *name);

void orch_log(int level, const char *module, const char *fmt, ...) ORCH_PRINTF(3, 4);
void orch_logv(int level, const char *module, const char *fmt, va_list ap);

#define LOG_DEBUG(mod, ...) orch_log(ORCH_LOG_DEBUG, mod, __VA_ARGS__)
#define LOG_INFO(mod, ...)  orch_log(ORCH_LOG_INFO, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...)  orch_log(ORCH_LOG_WARN, mod, __VA_ARGS__)
#define LOG_ERROR(mod, ...) orch_log(ORCH_LOG_ERROR, mod, __VA_ARGS__)
