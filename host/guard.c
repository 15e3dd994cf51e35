/* guard.c - origin allow-list, JSON media type, log masking (guard.h). */
#include "orch.h"

#include "guard.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* 1 if the comma-separated list holds origin (exact match, spaces trimmed). */
static int list_has(const char *list, const char *origin, size_t olen) {
  for (const char *p = list ? list : ""; *p;) {
    while (*p == ' ' || *p == ',')
      p++;
    const char *end = p;
    while (*end && *end != ',')
      end++;
    const char *t = end;
    while (t > p && (t[-1] == ' ' || t[-1] == '/'))
      t--;
    if ((size_t)(t - p) == olen && !strncmp(p, origin, olen)) return 1;
    p = end;
  }
  return 0;
}

static int same_origin(const char *origin, const char *host) {
  if (!host || !*host) return 0;
  const char *rest = NULL;
  if (!strncmp(origin, "http://", 7))
    rest = origin + 7;
  else if (!strncmp(origin, "https://", 8))
    rest = origin + 8;
  return rest && !strcasecmp(rest, host);
}

const char *orch_guard_origin(const orch_config *cfg, const char *origin, const char *host) {
  if (cfg->cors_origins && !strcmp(cfg->cors_origins, "*")) return "*";
  if (!origin || !*origin) return NULL;
  size_t olen = strlen(origin);
  if (same_origin(origin, host) || list_has(cfg->ui_origin, origin, olen) ||
      list_has(cfg->cors_origins, origin, olen))
    return origin;
  return NULL;
}

int orch_guard_is_json(const char *ct) {
  if (!ct) return 0;
  while (*ct == ' ')
    ct++;
  size_t n = strcspn(ct, "; ");
  if (n == 16 && !strncasecmp(ct, "application/json", 16)) return 1;
  /* application/problem+json, application/merge-patch+json, ... */
  return n > 17 && !strncasecmp(ct, "application/", 12) && !strncasecmp(ct + n - 5, "+json", 5);
}

char *orch_guard_mask_url(const char *url) {
  /* each mask grows the text by at most 2 bytes per masked byte: room for all */
  size_t len = strlen(url);
  char *out = orch_xmalloc(3 * len + 1);
  memcpy(out, url, len + 1);
  /* /callback/<token>[/...] */
  for (char *p = strstr(out, "/callback/"); p; p = strstr(p + 1, "/callback/")) {
    char *tok = p + 10;
    size_t n = strcspn(tok, "/?");
    if (n) {
      memmove(tok + 3, tok + n, strlen(tok + n) + 1);
      memcpy(tok, "***", 3);
    }
  }
  /* ?token=...&access_token=... */
  char *q = strchr(out, '?');
  while (q) {
    char *key = q + 1;
    char *eq = strchr(key, '=');
    char *amp = strchr(key, '&');
    if (eq && (!amp || eq < amp)) {
      size_t klen = (size_t)(eq - key);
      if ((klen == 5 && !strncasecmp(key, "token", 5)) ||
          (klen == 12 && !strncasecmp(key, "access_token", 12))) {
        char *val = eq + 1;
        size_t n = strcspn(val, "&");
        memmove(val + 3, val + n, strlen(val + n) + 1);
        memcpy(val, "***", 3);
        amp = strchr(val, '&');
      }
    }
    q = amp;
  }
  return out;
}
