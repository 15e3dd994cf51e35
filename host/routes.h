/*
 * routes.h - the route table: method + path pattern -> Lua handler, with the
 * name of the action each route performs (the hook for authorization, which
 * can then guard every route in one place).
 *
 * The table is data of the Lua scripts (lua/orch/api/routes.lua collects the
 * `routes` lists declared next to the handlers): lhost.c builds one table per
 * Lua state, i.e. per generation, so a reload can add a route without a
 * rebuild. A table is immutable once built and reference counted, so a
 * request keeps the table it was matched against even if its thread moves to
 * a newer generation meanwhile.
 */
#pragma once

#include "orch.h"

enum orch_route_flags {
  ORCH_ROUTE_JSON_BODY = 1, /* the body must be JSON: malformed -> 400 before the handler */
};

typedef struct orch_route {
  char *method;  /* "GET", "POST", ... (owned, like every string here) */
  char *pattern; /* "/api/products/{product_id}"; no trailing slash */
  char *action;  /* "products.read": what authorization checks */
  char *handler; /* Lua handler "<module>.<function>" under lua/orch/api/; NULL for host routes */
  char *host;    /* name of the C handler ("websocket") for routes the host answers; else NULL */
  int flags;     /* enum orch_route_flags */
} orch_route;

typedef struct orch_route_table orch_route_table;

typedef struct orch_route_param {
  const char *name; /* points into the pattern; name_len bytes */
  size_t name_len;
  const char *value; /* points into the path; value_len bytes */
  size_t value_len;
} orch_route_param;

#define ORCH_ROUTE_MAX_PARAMS 4

/* An empty table with refcount 1. */
orch_route_table *orch_route_table_new(void);
/*
 * Append a route (strings are copied; handler xor host). Checks the shape
 * (known method, pattern of "/" segments and {name} parameters, at most
 * ORCH_ROUTE_MAX_PARAMS); ORCH_EINVAL with a message otherwise.
 */
int orch_route_table_add(orch_route_table *t, const char *method, const char *pattern,
                         const char *action, const char *handler, const char *host, int flags,
                         orch_error *err) ORCH_MUSTCHECK;
orch_route_table *orch_route_table_ref(orch_route_table *t);
void orch_route_table_unref(orch_route_table *t); /* NULL is a no-op */
/* The routes in match order. */
const orch_route *orch_route_table_list(const orch_route_table *t, size_t *count);

enum orch_route_match { ORCH_ROUTE_FOUND, ORCH_ROUTE_NO_PATH, ORCH_ROUTE_NO_METHOD };

/*
 * Match method + path against the Lua routes of t (a trailing slash is
 * ignored, as FastAPI does; host routes are answered before matching and are
 * skipped). The first match wins. FOUND: *route and params are set.
 * NO_METHOD: the path exists for other methods, listed in `allow` (comma
 * separated, OPTIONS included).
 */
int orch_route_match(const orch_route_table *t, const char *method, const char *path,
                     const orch_route **route, orch_route_param params[ORCH_ROUTE_MAX_PARAMS],
                     size_t *nparams, char *allow, size_t allow_size);
