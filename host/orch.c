/* orch.c - error shape and small allocation helpers shared by all modules. */
#include "orch.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *orch_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fputs("orchestrator: out of memory\n", stderr);
    abort();
  }
  return p;
}

void *orch_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) {
    fputs("orchestrator: out of memory\n", stderr);
    abort();
  }
  return p;
}

void *orch_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fputs("orchestrator: out of memory\n", stderr);
    abort();
  }
  return q;
}

char *orch_strndup(const char *s, size_t n) {
  char *d = orch_xmalloc(n + 1);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *orch_strdup(const char *s) {
  return s ? orch_strndup(s, strlen(s)) : NULL;
}

static char *vformat(const char *fmt, va_list ap) {
  va_list cp;
  va_copy(cp, ap);
  int n = vsnprintf(NULL, 0, fmt, cp);
  va_end(cp);
  if (n < 0) return orch_strdup("(format error)");
  char *s = orch_xmalloc((size_t)n + 1);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

char *orch_sprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vformat(fmt, ap);
  va_end(ap);
  return s;
}

void orch_error_setv(orch_error *err, int code, const char *fmt, va_list ap) {
  if (!err) return;
  char *msg = vformat(fmt, ap);
  orch_error_clear(err);
  err->code = code;
  err->message = msg;
}

void orch_error_set(orch_error *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  orch_error_setv(err, code, fmt, ap);
  va_end(ap);
}

void orch_error_prefix(orch_error *err, const char *fmt, ...) {
  if (!err) return;
  va_list ap;
  va_start(ap, fmt);
  char *prefix = vformat(fmt, ap);
  va_end(ap);
  char *msg = orch_sprintf("%s: %s", prefix, err->message ? err->message : "error");
  free(prefix);
  free(err->message);
  err->message = msg;
}

void orch_error_clear(orch_error *err) {
  if (!err) return;
  free(err->message);
  free(err->file);
  free(err->traceback);
  *err = (orch_error)ORCH_ERROR_INIT;
}

char *orch_error_format(const orch_error *err) {
  const char *msg = err->message ? err->message : "unknown error";
  if (err->file && err->line > 0) return orch_sprintf("%s:%d: %s", err->file, err->line, msg);
  if (err->file) return orch_sprintf("%s: %s", err->file, msg);
  return orch_strdup(msg);
}

int orch_read_file(const char *path, char **out, size_t *len, orch_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    orch_error_set(err, ORCH_EIO, "%s: %s", path, strerror(errno));
    return ORCH_EIO;
  }
  size_t cap = 4096, n = 0;
  char *data = orch_xmalloc(cap);
  for (;;) {
    if (n + 1 >= cap) data = orch_xrealloc(data, cap *= 2);
    size_t got = fread(data + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  int failed = ferror(f);
  fclose(f);
  if (failed) {
    free(data);
    orch_error_set(err, ORCH_EIO, "%s: read error", path);
    return ORCH_EIO;
  }
  data[n] = '\0';
  *out = data;
  if (len) *len = n;
  return ORCH_OK;
}

long long orch_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct timespec orch_deadline_ms(clockid_t clock, int ms) {
  struct timespec until;
  clock_gettime(clock, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  return until;
}

static const char hex_digits[] = "0123456789abcdef";

void orch_uuid_v4(char out[37]) {
  unsigned char r[16];
  orch_random_bytes(r, sizeof r);
  r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
  r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* variant 1 */
  int o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex_digits[r[i] >> 4];
    out[o++] = hex_digits[r[i] & 15];
  }
  out[o] = '\0';
}

int orch_uuid_valid(const char *s, size_t len) {
  if (!s || len != 36) return 0;
  for (size_t i = 0; i < 36; i++) {
    int dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i])) return 0;
  }
  return 1;
}

void orch_random_hex(char *out, size_t nbytes) {
  unsigned char r[64];
  if (nbytes > sizeof r) nbytes = sizeof r;
  orch_random_bytes(r, nbytes);
  for (size_t i = 0; i < nbytes; i++) {
    out[2 * i] = hex_digits[r[i] >> 4];
    out[2 * i + 1] = hex_digits[r[i] & 15];
  }
  out[2 * nbytes] = '\0';
}

void orch_sha256_hex(const void *data, size_t len, char hex[65]) {
  static const char digits[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
  for (unsigned i = 0; i < 32; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[64] = '\0';
}

void orch_random_bytes(void *buf, size_t len) {
  if (RAND_bytes(buf, (int)len) != 1) {
    fputs("orchestrator: random number generator failed\n", stderr);
    abort();
  }
}
