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
  {"GET",  "/api/settings/worker-status", "settings.read", "settings.get_worker_status", 0},
  {"GET",    "/api/settings/cache-names",                          "settings.read",      "settings.cache_names",        0},
  {"DELETE", "/api/settings/cache/{name}",                          "settings.write",     "settings.clear_cache",        0},
  {"POST",   "/api/settings/search-index/reset",                    "settings.write",     "settings.reset_search_index", 0},
  {"GET",    "/api/settings/overview",                              "settings.read",      "settings.overview",           0},
  {"POST",   "/api/settings/reload",                                "settings.reload",    "settings.reload",             0},
  {"GET",    "/api/settings/generation",                            "settings.read",      "settings.generation",         0},
  {"GET",    "/api/translations/{language}",                        "translations.read",  "misc.translations",           0},
  {"POST",   "/api/user/error",                                     "user.log",           "misc.user_error",             0},
  {"POST",   "/api/user/log/{user_name}",                           "user.log",           "misc.user_log",               0},
  {"GET",    "/api/workflows/{workflow_id}",                        "workflows.read",     "workflows.get",               0},
  {"PATCH",  "/api/workflows/{workflow_id}",                        "workflows.write",    "workflows.patch",             ORCH_ROUTE_JSON_BODY},
  {"GET",    "/api/subscriptions/workflows/{subscription_id}",      "subscriptions.read", "subscription_actions.workflows", 0},
  {"PUT",    "/api/subscriptions/{subscription_id}/set_in_sync",    "subscriptions.write", "subscription_actions.set_in_sync", 0},
  /* processes: literal paths before {param} paths (the first match wins) */
  {"GET",    "/api/processes",                                      "processes.read",     "processes.list",              0},
  {"GET",    "/api/processes/status-counts",                        "processes.read",     "processes.status_counts",     0},
  {"PUT",    "/api/processes/resume-all",                           "processes.resume",   "processes.resume_all",        0},
  {"GET",    "/api/processes/{process_id}",                         "processes.read",     "processes.get",               0},
  {"POST",   "/api/processes/{workflow_key}",                       "processes.start",    "processes.start",             ORCH_ROUTE_JSON_BODY},
  {"PUT",    "/api/processes/{process_id}/resume",                  "processes.resume",   "processes.resume",            ORCH_ROUTE_JSON_BODY},
  {"PUT",    "/api/processes/{process_id}/abort",                   "processes.abort",    "processes.abort",             0},
  {"DELETE", "/api/processes/{process_id}",                         "processes.delete",   "processes.delete",            0},
  {"PATCH",  "/api/processes/{process_id}",                         "processes.write",    "processes.patch",             ORCH_ROUTE_JSON_BODY},
  {"POST",   "/api/processes/{process_id}/callback/{token}",        "processes.callback", "processes.callback",          ORCH_ROUTE_JSON_BODY},
  {"POST",   "/api/processes/{process_id}/callback/{token}/progress", "processes.callback", "processes.callback_progress", ORCH_ROUTE_JSON_BODY},
  {"POST",   "/api/graphql",                                        "graphql.read",       "graphql.post",                ORCH_ROUTE_JSON_BODY},
  /* catalogue, domain models and customer descriptions (lua/orch/api/products.lua and friends) */
  {"GET",    "/api/products",                                       "products.read",      "products.list",               0},
  {"GET",    "/api/products/{product_id}",                          "products.read",      "products.get",                0},
  {"PATCH",  "/api/products/{product_id}",                          "products.write",     "products.patch",              ORCH_ROUTE_JSON_BODY},
  {"GET",    "/api/product_blocks/{product_block_id}",              "products.read",      "products.get_block",          0},
  {"PATCH",  "/api/product_blocks/{product_block_id}",              "products.write",     "products.patch_block",        ORCH_ROUTE_JSON_BODY},
  {"GET",    "/api/resource_types/{resource_type_id}",              "products.read",      "products.get_resource_type",  0},
  {"PATCH",  "/api/resource_types/{resource_type_id}",              "products.write",     "products.patch_resource_type", ORCH_ROUTE_JSON_BODY},
  {"GET",    "/api/subscriptions/domain-model/{subscription_id}",   "subscriptions.read", "domain_model.get",            0},
  {"POST",   "/api/subscription_customer_descriptions",             "subscriptions.write", "customer_descriptions.create", ORCH_ROUTE_JSON_BODY},
  {"PUT",    "/api/subscription_customer_descriptions",             "subscriptions.write", "customer_descriptions.update", ORCH_ROUTE_JSON_BODY},
  {"GET",    "/api/subscription_customer_descriptions/customer/{customer_id}/subscription/{subscription_id}", "subscriptions.read", "customer_descriptions.get_by_customer", 0},
  {"GET",    "/api/subscription_customer_descriptions/{id}",        "subscriptions.read", "customer_descriptions.get",   0},
  {"DELETE", "/api/subscription_customer_descriptions/{id}",        "subscriptions.write", "customer_descriptions.delete", 0},
  /* schedules (lua/orch/api/schedules.lua; core's bodies, docs/schedules.md) */
  {"GET",    "/api/schedules",                                      "schedules.read",     "schedules.list",              0},
  {"POST",   "/api/schedules",                                      "schedules.write",    "schedules.create",            ORCH_ROUTE_JSON_BODY},
  {"PUT",    "/api/schedules",                                      "schedules.write",    "schedules.update",            ORCH_ROUTE_JSON_BODY},
  {"DELETE", "/api/schedules",                                      "schedules.write",    "schedules.delete",            ORCH_ROUTE_JSON_BODY},
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
