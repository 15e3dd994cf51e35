/* log.c - leveled logging; one fputs per line so threads never interleave. */
#include "orch.h"

#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

static atomic_int min_level = ORCH_LOG_INFO;

void orch_log_set_level(int level) {
  atomic_store(&min_level, level);
}
int orch_log_get_level(void) {
  return atomic_load(&min_level);
}

int orch_log_parse_level(const char *name) {
  if (!name) return -1;
  if (!strcasecmp(name, "debug")) return ORCH_LOG_DEBUG;
  if (!strcasecmp(name, "info")) return ORCH_LOG_INFO;
  if (!strcasecmp(name, "warn") || !strcasecmp(name, "warning")) return ORCH_LOG_WARN;
  if (!strcasecmp(name, "error")) return ORCH_LOG_ERROR;
  return -1;
}

static const char *level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void orch_logv(int level, const char *module, const char *fmt, va_list ap) {
  if (level < atomic_load(&min_level)) return;
  if (level < ORCH_LOG_DEBUG || level > ORCH_LOG_ERROR) level = ORCH_LOG_ERROR;
  char line[4096];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n =
      snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
               level_names[level], module ? module : "-");
  if (n < 0) return;
  size_t used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
  if (m > 0) used += (size_t)m < sizeof line - used ? (size_t)m : sizeof line - used - 1;
  if (used >= sizeof line - 1) used = sizeof line - 2;
  line[used++] = '\n';
  line[used] = '\0';
  fputs(line, stderr);
}

void orch_log(int level, const char *module, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  orch_logv(level, module, fmt, ap);
  va_end(ap);
}
