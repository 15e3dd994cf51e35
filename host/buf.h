/*
 * buf.h - growable byte buffer used to build response bodies and SQL.
 * A buf owns its memory; orch_buf_free() releases it and is safe on a zeroed buf.
 * The contents are always NUL-terminated.
 */
#pragma once

#include "orch.h"

#include <stddef.h>

typedef struct orch_buf {
  char *data; /* owned; NULL until the first append */
  size_t len;
  size_t cap;
} orch_buf;

#define ORCH_BUF_INIT                                                                              \
  { NULL, 0, 0 }

void orch_buf_append(orch_buf *b, const void *data, size_t len);
void orch_buf_puts(orch_buf *b, const char *s);
void orch_buf_printf(orch_buf *b, const char *fmt, ...) ORCH_PRINTF(2, 3);
/* Append `s` as a JSON string literal, quotes included. */
void orch_buf_json_string(orch_buf *b, const char *s, size_t len);
/* Append the C string s as a JSON string literal, or null when s is NULL. */
void orch_buf_json_cstr(orch_buf *b, const char *s);
/*
 * Decode a JSON string literal ("...") into a malloc'd C string; NULL if the text is
 * not one. \u escapes of the BMP only (the host's own reports are ASCII or UTF-8
 * passed through unescaped by the encoder).
 */
char *orch_json_unquote(const char *s);
/* Give the data to the caller (who frees it) and reset the buf. Never NULL. */
char *orch_buf_take(orch_buf *b, size_t *len);
void orch_buf_reset(orch_buf *b);
void orch_buf_free(orch_buf *b);

/* A list of errors (one per failing file when loading). */
typedef struct orch_errlist {
  orch_error *items;
  size_t n, cap;
} orch_errlist;

void orch_errlist_add(orch_errlist *l, orch_error *e); /* takes over e's strings */
void orch_errlist_free(orch_errlist *l);
