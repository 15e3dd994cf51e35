/* routes.c - the route table (data only) and the path matcher. */
#include "orch.h"

#include "routes.h"

#include <stdio.h>
#include <string.h>

/* clang-format off */
static const orch_route routes[] = {
  /* method  pattern                    action             Lua handler (lua/orch/api/)  flags */
  {"GET",  "/",                         "root.read",       "misc.root",                0},
  {"GET",  "/api/health",               "health.read",     "health.get",               0},
  {"GET",  "/api/settings/status",      "settings.read",   "settings.get_status",      0},
  {"PUT",  "/api/settings/status",      "settings.write",  "settings.put_status",      ORCH_ROUTE_JSON_BODY},
};
/* clang-format on */

const orch_route *orch_routes(size_t *count) {
  *count = ORCH_ARRAY_LEN(routes);
  return routes;
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

int orch_route_match(const char *method, const char *path, const orch_route **route,
                     orch_route_param params[ORCH_ROUTE_MAX_PARAMS], size_t *nparams, char *allow,
                     size_t allow_size) {
  size_t len = strlen(path);
  if (len > 1 && path[len - 1] == '/') len--; /* "/api/health/" == "/api/health" */
  size_t used = 0;
  int path_found = 0;
  if (allow_size) allow[0] = '\0';
  for (size_t i = 0; i < ORCH_ARRAY_LEN(routes); i++) {
    orch_route_param tmp[ORCH_ROUTE_MAX_PARAMS];
    size_t ntmp = 0;
    if (!match_pattern(routes[i].pattern, path, len, tmp, &ntmp)) continue;
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
