/*
 * routes.h - the route table: method + path pattern -> Lua handler, with the
 * name of the action each route performs (the hook for authorization, which
 * can then guard every route in one place). The table itself is in routes.c.
 */
#pragma once

#include "orch.h"

enum orch_route_flags {
  ORCH_ROUTE_JSON_BODY = 1, /* the body must be JSON: malformed -> 400 before the handler */
};

typedef struct orch_route {
  const char *method;  /* "GET", "POST", ... */
  const char *pattern; /* "/api/products/{product_id}"; no trailing slash */
  const char *action;  /* "products.read": what authorization will check */
  const char *handler; /* Lua handler "<module>.<function>" under lua/orch/api/ */
  int flags;           /* enum orch_route_flags */
} orch_route;

typedef struct orch_route_param {
  const char *name; /* points into the pattern; name_len bytes */
  size_t name_len;
  const char *value; /* points into the path; value_len bytes */
  size_t value_len;
} orch_route_param;

#define ORCH_ROUTE_MAX_PARAMS 4

enum orch_route_match { ORCH_ROUTE_FOUND, ORCH_ROUTE_NO_PATH, ORCH_ROUTE_NO_METHOD };

/*
 * Match method + path (a trailing slash is ignored, as FastAPI does).
 * FOUND: *route and params are set. NO_METHOD: the path exists for other
 * methods, listed in `allow` (comma separated, OPTIONS included).
 */
int orch_route_match(const char *method, const char *path, const orch_route **route,
                     orch_route_param params[ORCH_ROUTE_MAX_PARAMS], size_t *nparams, char *allow,
                     size_t allow_size);

/* The table, for listing and tests. */
const orch_route *orch_routes(size_t *count);
