/*
 * auth.h - bearer tokens (docs/security.md). With OAUTH2_ACTIVE=true every
 * route but the public ones needs `Authorization: Bearer <token>`:
 *
 *  - JWTs are verified here, with cjose (Debian's libcjose): the provider's
 *    discovery document (OIDC_CONF_URL) names the issuer and the JWKS, both
 *    fetched with libcurl and kept; a token whose `kid` is unknown makes one
 *    refetch of the JWKS, at most every ORCH_JWKS_REFETCH_SECONDS seconds
 *    (key rotation). RS256/384/512, PS256/384/512, ES256/384/512 only: `none`
 *    and HMAC algorithms are refused whatever the key (no HS256-with-the-
 *    public-key confusion), symmetric JWKs are never loaded. `exp` is required,
 *    `exp`/`nbf` get ORCH_JWT_LEEWAY seconds, `iss` must be the issuer, `aud`
 *    must hold OAUTH2_RESOURCE_SERVER_ID when that is set.
 *  - Opaque tokens (not three dot-separated parts) go to the provider's
 *    introspection endpoint with OAUTH2_RESOURCE_SERVER_ID/_SECRET, when both
 *    and the endpoint are known.
 *
 * A verified token is cached (by its SHA-256) until it expires, so a request
 * with a known token costs one hash and a table look-up.
 *
 * The user handed on is JSON: {"sub","name","email","groups":[...],"claims":{...}}
 * (name: `name` or `preferred_username`; groups: the `groups` claim and
 * Keycloak's `realm_access.roles`).
 */
#pragma once

#include "orch.h"

#include "config.h"

/* Read the settings; with auth on, fetch discovery and keys (a failure is logged and
   retried on the next request). cfg must outlive the module. */
int orch_auth_setup(const orch_config *cfg, orch_error *err) ORCH_MUSTCHECK;
void orch_auth_shutdown(void);
/* 1 when OAUTH2_ACTIVE is on. */
int orch_auth_active(void);
/* 1 for the actions anyone may call: health, translations and the OpenAPI document. */
int orch_auth_public_action(const char *action);
/* The token of an "Authorization: Bearer <t>" value, or NULL. */
const char *orch_auth_bearer(const char *authorization);
/*
 * Verify a token: ORCH_OK with *user_json (malloc'd), or an error whose message
 * says why (for the log and the 401's detail; it never contains the token).
 */
int orch_auth_verify(const char *token, char **user_json, orch_error *err) ORCH_MUSTCHECK;
