/*
 * guard.h - what the HTTP server checks before a request reaches a handler,
 * apart from tokens (auth.h): the origin allow-list (CORS and WebSocket
 * upgrades), the media type of JSON bodies, and masking secrets in log lines.
 * Pure functions of their arguments and the configuration; no MHD here.
 */
#pragma once

#include "orch.h"

#include "config.h"

#include <stddef.h>

/*
 * The value for Access-Control-Allow-Origin, or NULL when origin is not allowed.
 * Allowed: the same origin as `host` (the Host header), ORCH_UI_ORIGIN and the
 * ORCH_CORS_ORIGINS list; "*" in that list allows any origin (answered "*").
 * origin NULL (not a browser's cross-origin request) gives NULL.
 */
const char *orch_guard_origin(const orch_config *cfg, const char *origin, const char *host);

/* 1 if content_type is JSON (application/json or application/<x>+json, with parameters). */
int orch_guard_is_json(const char *content_type);

/*
 * A copy of a request path safe for logs: the token segment of
 * /callback/{token} and the values of token/access_token query arguments are
 * replaced by "***". Malloc'd.
 */
char *orch_guard_mask_url(const char *url);
