/*
 * orch.h - basics shared by every module of the host: version, error codes,
 * the one error shape (orch_error) and small attribute macros.
 * Include it first in every .c file.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#define ORCH_VERSION ORCH_VERSION_STRING

#define ORCH_UNUSED(x)    ((void)(x))
#define ORCH_MUSTCHECK    __attribute__((warn_unused_result))
#define ORCH_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define ORCH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Error codes: 0 is success, failures are negative (libuv style). */
enum orch_err {
  ORCH_OK = 0,
  ORCH_EINVAL = -1, /* bad argument or bad input */
  ORCH_ENOMEM = -2, /* allocation failed */
  ORCH_EIO = -3,    /* file or socket I/O */
  ORCH_EDB = -4,    /* database error */
  ORCH_ELUA = -5,   /* error raised by Lua code */
  ORCH_ENOTFOUND = -6,
  ORCH_ELIMIT = -7,  /* a time or memory budget was exhausted */
  ORCH_ECONFIG = -8, /* configuration error */
};

/*
 * The one error shape. Functions that can fail take an optional
 * `orch_error *err` out-parameter and fill it only on failure. All strings
 * are owned by the error and released by orch_error_clear().
 */
typedef struct orch_error {
  int code;        /* ORCH_E* */
  char *message;   /* human readable, never NULL once set */
  char *file;      /* source file the error points at, or NULL */
  int line;        /* line in `file`, 0 when unknown */
  char *traceback; /* Lua traceback, or NULL */
} orch_error;

#define ORCH_ERROR_INIT                                                                            \
  { 0, NULL, NULL, 0, NULL }

/* Set code and formatted message (replacing what was there). NULL err is a no-op. */
void orch_error_set(orch_error *err, int code, const char *fmt, ...) ORCH_PRINTF(3, 4);
void orch_error_setv(orch_error *err, int code, const char *fmt, va_list ap);
/* Prefix the message: "<prefix>: <old message>". */
void orch_error_prefix(orch_error *err, const char *fmt, ...) ORCH_PRINTF(2, 3);
/* Free the strings and reset to ORCH_ERROR_INIT. */
void orch_error_clear(orch_error *err);
/* Format as "file:line: message" (or "message") into a new malloc'd string. */
char *orch_error_format(const orch_error *err);

/* strdup that aborts on out-of-memory: small host strings only. */
char *orch_strdup(const char *s);
char *orch_strndup(const char *s, size_t n);
char *orch_sprintf(const char *fmt, ...) ORCH_PRINTF(1, 2);
void *orch_xmalloc(size_t n);
void *orch_xcalloc(size_t n, size_t size);
void *orch_xrealloc(void *p, size_t n);

/* Read a whole file; *out is malloc'd and NUL-terminated. */
int orch_read_file(const char *path, char **out, size_t *len, orch_error *err) ORCH_MUSTCHECK;

/* Monotonic clock in nanoseconds. */
long long orch_now_ns(void);

/* The time `ms` milliseconds from now on `clock` (a pthread_cond_timedwait deadline). */
struct timespec orch_deadline_ms(clockid_t clock, int ms);

/* A random (version 4) UUID in canonical lowercase form, plus NUL. */
void orch_uuid_v4(char out[37]);
/* Whether s (len bytes) is a UUID in canonical 8-4-4-4-12 form, any case. */
int orch_uuid_valid(const char *s, size_t len);
/* 2 * nbytes random lowercase hex digits plus NUL into out (ids of hosts and requests). */
void orch_random_hex(char *out, size_t nbytes);

/* SHA-256 of data as 64 lowercase hex digits plus NUL. */
void orch_sha256_hex(const void *data, size_t len, char hex[65]);
/* Fill buf with cryptographically random bytes (OpenSSL); aborts if the RNG fails. */
void orch_random_bytes(void *buf, size_t len);
