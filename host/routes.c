/* routes.c - route tables (built from the Lua declarations by lhost.c) and the path matcher. */
#include "orch.h"

#include "routes.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct orch_route_table {
  atomic_int refs;
  orch_route *routes;
  size_t n, cap;
};

orch_route_table *orch_route_table_new(void) {
  orch_route_table *t = orch_xcalloc(1, sizeof *t);
  atomic_init(&t->refs, 1);
  return t;
}

orch_route_table *orch_route_table_ref(orch_route_table *t) {
  atomic_fetch_add(&t->refs, 1);
  return t;
}

void orch_route_table_unref(orch_route_table *t) {
  if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
  for (size_t i = 0; i < t->n; i++) {
    orch_route *r = &t->routes[i];
    free(r->method);
    free(r->pattern);
    free(r->action);
    free(r->handler);
    free(r->host);
  }
  free(t->routes);
  free(t);
}

const orch_route *orch_route_table_list(const orch_route_table *t, size_t *count) {
  *count = t->n;
  return t->routes;
}

/* NULL if the pattern is well formed, else what is wrong with it. */
static const char *pattern_problem(const char *p) {
  if (p[0] != '/') return "must start with /";
  size_t len = strlen(p);
  if (len > 1 && p[len - 1] == '/') return "must not end with /";
  int params = 0;
  for (const char *s = p; *s; s++) {
    if (*s == '}') return "has a } without {";
    if (*s != '{') continue;
    if (s[-1] != '/') return "has a parameter that is not a whole segment";
    const char *close = strchr(s, '}');
    if (!close || close == s + 1) return "has an unterminated or empty {parameter}";
    for (const char *c = s + 1; c < close; c++)
      if (!isalnum((unsigned char)*c) && *c != '_')
        return "has a parameter name that is not a word";
    if (close[1] && close[1] != '/') return "has a parameter that is not a whole segment";
    if (++params > ORCH_ROUTE_MAX_PARAMS) return "has too many parameters";
    s = close;
  }
  return NULL;
}

int orch_route_table_add(orch_route_table *t, const char *method, const char *pattern,
                         const char *action, const char *handler, const char *host, int flags,
                         orch_error *err) {
  static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
  int known = 0;
  for (size_t i = 0; method && i < ORCH_ARRAY_LEN(methods); i++)
    known |= !strcmp(method, methods[i]);
  const char *problem = NULL;
  if (!known)
    problem = "unknown method";
  else if (!pattern || !action || !*action)
    problem = "a route needs a path and an action";
  else if (!handler == !host)
    problem = "a route has either a Lua handler or a host handler";
  else
    problem = pattern_problem(pattern);
  if (problem) {
    orch_error_set(err, ORCH_EINVAL, "route %s %s: %s", method ? method : "?",
                   pattern ? pattern : "?", problem);
    return ORCH_EINVAL;
  }
  if (t->n == t->cap)
    t->routes = orch_xrealloc(t->routes, (t->cap = t->cap ? t->cap * 2 : 64) * sizeof *t->routes);
  t->routes[t->n++] = (orch_route){orch_strdup(method),
                                   orch_strdup(pattern),
                                   orch_strdup(action),
                                   handler ? orch_strdup(handler) : NULL,
                                   host ? orch_strdup(host) : NULL,
                                   flags};
  return ORCH_OK;
}

/* Compare one pattern against a path, collecting {name} segments. */
static int match_pattern(const char *pattern, const char *path, size_t path_len,
                         orch_route_param *params, size_t *nparams) {
  const char *p = pattern, *s = path, *end = path + path_len;
  size_t n = 0;
  while (*p && s < end) {
    if (*p == '{') {
      const char *close = strchr(p, '}');
      const char *seg_end = memchr(s, '/', (size_t)(end - s));
      if (!seg_end) seg_end = end;
      if (!close || seg_end == s || n >= ORCH_ROUTE_MAX_PARAMS) return 0;
      params[n++] = (orch_route_param){p + 1, (size_t)(close - p - 1), s, (size_t)(seg_end - s)};
      p = close + 1;
      s = seg_end;
    } else if (*p == *s) {
      p++;
      s++;
    } else {
      return 0;
    }
  }
  if (*p || s != end) return 0;
  *nparams = n;
  return 1;
}

int orch_route_match(const orch_route_table *t, const char *method, const char *path,
                     const orch_route **route, orch_route_param params[ORCH_ROUTE_MAX_PARAMS],
                     size_t *nparams, char *allow, size_t allow_size) {
  size_t len = strlen(path);
  if (len > 1 && path[len - 1] == '/') len--; /* "/api/health/" == "/api/health" */
  size_t used = 0;
  int path_found = 0;
  if (allow_size) allow[0] = '\0';
  const orch_route *routes = t->routes;
  for (size_t i = 0; i < t->n; i++) {
    orch_route_param tmp[ORCH_ROUTE_MAX_PARAMS];
    size_t ntmp = 0;
    if (routes[i].host || !match_pattern(routes[i].pattern, path, len, tmp, &ntmp)) continue;
    if (!strcmp(routes[i].method, method)) {
      *route = &routes[i];
      memcpy(params, tmp, ntmp * sizeof *tmp);
      *nparams = ntmp;
      return ORCH_ROUTE_FOUND;
    }
    path_found = 1;
    if (used < allow_size) {
      int n = snprintf(allow + used, allow_size - used, "%s, ", routes[i].method);
      if (n > 0) used += (size_t)n;
    }
  }
  if (!path_found) return ORCH_ROUTE_NO_PATH;
  if (used < allow_size) snprintf(allow + used, allow_size - used, "OPTIONS");
  return ORCH_ROUTE_NO_METHOD;
}
