/* buf.c - growable byte buffer, a JSON string escaper and error lists. */
#include "orch.h"

#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reserve(orch_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  b->data = orch_xrealloc(b->data, cap);
  b->cap = cap;
}

void orch_buf_append(orch_buf *b, const void *data, size_t len) {
  reserve(b, len);
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void orch_buf_puts(orch_buf *b, const char *s) {
  orch_buf_append(b, s, strlen(s));
}

void orch_buf_printf(orch_buf *b, const char *fmt, ...) {
  va_list ap, cp;
  va_start(ap, fmt);
  va_copy(cp, ap);
  int n = vsnprintf(NULL, 0, fmt, cp);
  va_end(cp);
  if (n > 0) {
    reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
  }
  va_end(ap);
}

void orch_buf_json_string(orch_buf *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  reserve(b, len + 2);
  orch_buf_append(b, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': orch_buf_append(b, "\\\"", 2); break;
    case '\\': orch_buf_append(b, "\\\\", 2); break;
    case '\n': orch_buf_append(b, "\\n", 2); break;
    case '\r': orch_buf_append(b, "\\r", 2); break;
    case '\t': orch_buf_append(b, "\\t", 2); break;
    default:
      if (c < 0x20) {
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        orch_buf_append(b, esc, 6);
      } else {
        orch_buf_append(b, &s[i], 1);
      }
    }
  }
  orch_buf_append(b, "\"", 1);
}

void orch_buf_json_cstr(orch_buf *b, const char *s) {
  if (s)
    orch_buf_json_string(b, s, strlen(s));
  else
    orch_buf_puts(b, "null");
}

char *orch_buf_take(orch_buf *b, size_t *len) {
  if (!b->data) orch_buf_append(b, "", 0);
  char *d = b->data;
  if (len) *len = b->len;
  *b = (orch_buf)ORCH_BUF_INIT;
  return d;
}

void orch_buf_reset(orch_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void orch_buf_free(orch_buf *b) {
  if (!b) return;
  free(b->data);
  *b = (orch_buf)ORCH_BUF_INIT;
}

/* Append the UTF-8 form of code point cp to out (at most 3 bytes: \u escapes are BMP). */
static size_t put_utf8(char *out, unsigned cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  out[0] = (char)(0xe0 | (cp >> 12));
  out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
  out[2] = (char)(0x80 | (cp & 0x3f));
  return 3;
}

char *orch_json_unquote(const char *s) {
  if (!s || *s != '"') return NULL;
  size_t len = strlen(s);
  char *out = orch_xcalloc(1, len + 1), *o = out;
  for (const char *p = s + 1; *p; p++) {
    if (*p == '"') {
      *o = '\0';
      return out;
    }
    if (*p != '\\') {
      *o++ = *p;
      continue;
    }
    p++;
    switch (*p) {
    case 'n': *o++ = '\n'; break;
    case 't': *o++ = '\t'; break;
    case 'r': *o++ = '\r'; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'u': {
      unsigned cp = 0;
      for (int i = 1; i <= 4; i++) {
        char c = p[i];
        if (!c) goto bad;
        cp = cp * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
      }
      p += 4;
      o += put_utf8(o, cp);
      break;
    }
    case '\0': goto bad;
    default: *o++ = *p; /* \" \\ \/ */
    }
  }
bad:
  free(out);
  return NULL;
}

/* ---- error lists ---- */

void orch_errlist_add(orch_errlist *l, orch_error *e) {
  if (l->n == l->cap)
    l->items = orch_xrealloc(l->items, (l->cap = l->cap ? l->cap * 2 : 8) * sizeof *e);
  l->items[l->n++] = *e;
  *e = (orch_error)ORCH_ERROR_INIT;
}

void orch_errlist_free(orch_errlist *l) {
  for (size_t i = 0; i < l->n; i++)
    orch_error_clear(&l->items[i]);
  free(l->items);
  *l = (orch_errlist){0};
}
