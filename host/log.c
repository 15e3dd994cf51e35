/* log.c - leveled logging; one fputs per line so threads never interleave. */
#include "orch.h"

#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static atomic_int min_level = ORCH_LOG_INFO;
static atomic_int json_lines = 0;
static _Thread_local char ctx_request[40], ctx_process[40];

void orch_log_set_json(int json) {
  atomic_store(&json_lines, json);
}

int orch_log_parse_format(const char *name) {
  if (!name) return -1;
  if (!strcasecmp(name, "text")) return 0;
  if (!strcasecmp(name, "json")) return 1;
  return -1;
}

void orch_log_context(const char *request_id, const char *process_id) {
  snprintf(ctx_request, sizeof ctx_request, "%s", request_id ? request_id : "");
  snprintf(ctx_process, sizeof ctx_process, "%s", process_id ? process_id : "");
}

/* Append s to line[*used] as a JSON string body (no quotes), leaving room for the tail. */
static void put_json(char *line, size_t cap, size_t *used, const char *s) {
  static const char hex[] = "0123456789abcdef";
  for (; *s && *used + 8 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      line[(*used)++] = '\\';
      line[(*used)++] = (char)c;
    } else if (c == '\n') {
      line[(*used)++] = '\\';
      line[(*used)++] = 'n';
    } else if (c < 0x20) {
      memcpy(line + *used, "\\u00", 4);
      *used += 4;
      line[(*used)++] = hex[c >> 4];
      line[(*used)++] = hex[c & 15];
    } else {
      line[(*used)++] = (char)c;
    }
  }
}

static void log_json(int level, const char *module, const struct timespec *ts, const struct tm *tm,
                     const char *msg) {
  char line[8192];
  size_t used =
      (size_t)snprintf(line, sizeof line,
                       "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                       "\"module\":\"",
                       tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min,
                       tm->tm_sec, ts->tv_nsec / 1000000, level_names[level]);
  put_json(line, sizeof line - 200, &used, module ? module : "-");
  used += (size_t)snprintf(line + used, sizeof line - used, "\",\"message\":\"");
  put_json(line, sizeof line - 200, &used, msg);
  line[used++] = '"';
  if (ctx_request[0])
    used +=
        (size_t)snprintf(line + used, sizeof line - used, ",\"request_id\":\"%s\"", ctx_request);
  if (ctx_process[0])
    used +=
        (size_t)snprintf(line + used, sizeof line - used, ",\"process_id\":\"%s\"", ctx_process);
  snprintf(line + used, sizeof line - used, "}\n");
  fputs(line, stderr);
}

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

/* Copy the message into out, escaped: control characters and bytes that are not UTF-8
   become \n, \r, \t or \xNN, so that a line of the log is always one line of text and
   text a client sent can neither forge lines nor smuggle raw bytes (log injection). */
static size_t escape_into(char *out, size_t cap, const unsigned char *s, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 4 < cap;) {
    unsigned c = s[i];
    size_t n = 0; /* continuation bytes of a valid UTF-8 sequence */
    if (c >= 0x80) {
      unsigned cp = 0, min = 0;
      if ((c & 0xE0) == 0xC0)
        n = 1, cp = c & 0x1F, min = 0x80;
      else if ((c & 0xF0) == 0xE0)
        n = 2, cp = c & 0x0F, min = 0x800;
      else if ((c & 0xF8) == 0xF0)
        n = 3, cp = c & 0x07, min = 0x10000;
      int ok = n && i + n < len;
      for (size_t k = 1; ok && k <= n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) ok = 0;
        cp = cp << 6 | (s[i + k] & 0x3F);
      }
      if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = 0;
      if (!ok)
        n = 0;
      else {
        if (o + n + 1 >= cap) break;
        memcpy(out + o, s + i, n + 1);
        o += n + 1;
        i += n + 1;
        continue;
      }
    }
    if (c >= 0x20 && c < 0x7F) {
      out[o++] = (char)c;
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out[o++] = '\\';
      out[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
    } else {
      o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    i++;
  }
  return o;
}

void orch_logv(int level, const char *module, const char *fmt, va_list ap) {
  if (level < atomic_load(&min_level)) return;
  if (level < ORCH_LOG_DEBUG || level > ORCH_LOG_ERROR) level = ORCH_LOG_ERROR;
  char msg[4096];
  char line[4096 * 4 + 128];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  if (atomic_load(&json_lines)) {
    /* Escaped first, so that bytes a client sent stay readable and the line valid JSON. */
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    while (mlen && msg[mlen - 1] == '\n')
      mlen--;
    line[escape_into(line, sizeof line - 1, (const unsigned char *)msg, mlen)] = '\0';
    log_json(level, module, &ts, &tm, line);
    return;
  }
  int n =
      snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
               level_names[level], module ? module : "-");
  if (n < 0) return;
  size_t used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  int m = vsnprintf(msg, sizeof msg, fmt, ap);
  if (m > 0) {
    size_t mlen = (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    /* Trailing newlines of a message are the caller's line ends, not content. */
    while (mlen && msg[mlen - 1] == '\n')
      mlen--;
    used += escape_into(line + used, sizeof line - used - 2, (const unsigned char *)msg, mlen);
  }
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
