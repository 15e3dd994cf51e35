/* auth.c - bearer tokens: OIDC discovery, JWKS, local JWT verification, introspection,
 * and the cache of verified tokens (auth.h). */
#include "orch.h"

#include "auth.h"
#include "buf.h"
#include "log.h"

#include <cjose/cjose.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct key {
  cjose_jwk_t *jwk;
  char *kid; /* owned; NULL when the JWK has none */
  char *alg; /* owned; the JWK's "alg" (tokens must use it), NULL when it has none */
  cjose_jwk_kty_t kty;
} key;

#define CACHE_SLOTS 1024

typedef struct cached {
  char hash[65];   /* SHA-256 of the token; "" = empty slot */
  char *user_json; /* owned */
  time_t exp;
} cached;

static struct {
  const orch_config *cfg;
  int active;
  pthread_rwlock_t keys_lock; /* keys, nkeys */
  key *keys;
  size_t nkeys;
  pthread_mutex_t fetch_lock; /* one fetch at a time; last_fetch */
  pthread_mutex_t meta_lock;  /* issuer, jwks_uri, introspection (held briefly) */
  char *issuer, *jwks_uri, *introspection;
  time_t last_fetch;
  pthread_mutex_t cache_lock;
  cached cache[CACHE_SLOTS];
} A = {.keys_lock = PTHREAD_RWLOCK_INITIALIZER,
       .fetch_lock = PTHREAD_MUTEX_INITIALIZER,
       .meta_lock = PTHREAD_MUTEX_INITIALIZER,
       .cache_lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- fetching ---- */

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
  orch_buf *b = arg;
  if (b->len + size * n > 4u << 20) return 0; /* 4 MiB is no JWKS */
  orch_buf_append(b, data, size * n);
  return size * n;
}

/* GET (post_form NULL) or POST a form; the body parsed as JSON, or NULL with err set. */
static json_t *fetch_json(const char *url, const char *post_form, const char *user,
                          const char *password, orch_error *err) {
  CURL *h = curl_easy_init();
  if (!h) {
    orch_error_set(err, ORCH_EIO, "libcurl could not create a handle");
    return NULL;
  }
  orch_buf b = ORCH_BUF_INIT;
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  if (post_form) curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_form);
  if (user) {
    curl_easy_setopt(h, CURLOPT_USERNAME, user);
    curl_easy_setopt(h, CURLOPT_PASSWORD, password ? password : "");
  }
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  json_t *j = NULL;
  if (rc != CURLE_OK) {
    orch_error_set(err, ORCH_EIO, "%s: %s", url, curl_easy_strerror(rc));
  } else if (status != 200) {
    orch_error_set(err, ORCH_EIO, "%s: HTTP %ld", url, status);
  } else {
    json_error_t jerr;
    j = json_loadb(b.data ? b.data : "", b.len, 0, &jerr);
    if (!j) orch_error_set(err, ORCH_EIO, "%s: not JSON (%s)", url, jerr.text);
  }
  orch_buf_free(&b);
  return j;
}

static char *json_strdup(json_t *obj, const char *name) {
  const char *s = json_string_value(json_object_get(obj, name));
  return s ? orch_strdup(s) : NULL;
}

static void free_keys(key *keys, size_t n) {
  for (size_t i = 0; i < n; i++) {
    cjose_jwk_release(keys[i].jwk);
    free(keys[i].kid);
    free(keys[i].alg);
  }
  free(keys);
}

/* Discovery (when not known yet) and the JWKS; the caller holds fetch_lock. */
static int refresh_locked(orch_error *err) {
  A.last_fetch = time(NULL);
  if (!A.jwks_uri) {
    if (!A.cfg->oidc_conf_url || !*A.cfg->oidc_conf_url) {
      orch_error_set(err, ORCH_ECONFIG, "OIDC_CONF_URL is not set");
      return ORCH_ECONFIG;
    }
    json_t *d = fetch_json(A.cfg->oidc_conf_url, NULL, NULL, NULL, err);
    if (!d) return ORCH_EIO;
    char *issuer = json_strdup(d, "issuer"), *jwks = json_strdup(d, "jwks_uri");
    char *intro = json_strdup(d, "introspection_endpoint");
    json_decref(d);
    if (!issuer || !jwks) {
      orch_error_set(err, ORCH_EIO, "%s has no issuer or jwks_uri", A.cfg->oidc_conf_url);
      free(issuer);
      free(jwks);
      free(intro);
      return ORCH_EIO;
    }
    pthread_mutex_lock(&A.meta_lock);
    free(A.issuer);
    free(A.introspection);
    A.issuer = issuer;
    A.jwks_uri = jwks;
    A.introspection = intro;
    pthread_mutex_unlock(&A.meta_lock);
  }
  json_t *set = fetch_json(A.jwks_uri, NULL, NULL, NULL, err);
  if (!set) return ORCH_EIO;
  json_t *arr = json_object_get(set, "keys");
  size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
  key *keys = orch_xcalloc(n ? n : 1, sizeof *keys);
  size_t used = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *k = json_array_get(arr, i);
    const char *use = json_string_value(json_object_get(k, "use"));
    const char *kty = json_string_value(json_object_get(k, "kty"));
    if ((use && strcmp(use, "sig")) || !kty || (strcmp(kty, "RSA") && strcmp(kty, "EC")))
      continue; /* encryption keys, symmetric keys and what cjose does not know (OKP) */
    char *text = json_dumps(k, JSON_COMPACT);
    cjose_err cerr;
    cjose_jwk_t *jwk = text ? cjose_jwk_import(text, strlen(text), &cerr) : NULL;
    free(text);
    if (!jwk) continue;
    keys[used].jwk = jwk;
    keys[used].kid = json_strdup(k, "kid");
    keys[used].alg = json_strdup(k, "alg");
    keys[used].kty = cjose_jwk_get_kty(jwk, &cerr);
    used++;
  }
  json_decref(set);
  pthread_rwlock_wrlock(&A.keys_lock);
  key *old = A.keys;
  size_t nold = A.nkeys;
  A.keys = keys;
  A.nkeys = used;
  pthread_rwlock_unlock(&A.keys_lock);
  free_keys(old, nold);
  LOG_INFO("auth", "%zu signing key%s from %s", used, used == 1 ? "" : "s", A.jwks_uri);
  return ORCH_OK;
}

/* Refetch unless the last fetch was less than ORCH_JWKS_REFETCH_SECONDS ago. */
static void maybe_refresh(void) {
  pthread_mutex_lock(&A.fetch_lock);
  if (time(NULL) - A.last_fetch >= A.cfg->jwks_refetch) {
    orch_error err = ORCH_ERROR_INIT;
    if (refresh_locked(&err) != ORCH_OK) LOG_WARN("auth", "cannot load the keys: %s", err.message);
    orch_error_clear(&err);
  }
  pthread_mutex_unlock(&A.fetch_lock);
}

/* ---- setup ---- */

int orch_auth_setup(const orch_config *cfg, orch_error *err) {
  A.cfg = cfg;
  A.active = cfg->oauth2_active;
  if (!A.active) return ORCH_OK;
  if (!cfg->oidc_conf_url || !*cfg->oidc_conf_url) {
    orch_error_set(err, ORCH_ECONFIG, "OAUTH2_ACTIVE=true needs OIDC_CONF_URL");
    return ORCH_ECONFIG;
  }
  pthread_mutex_lock(&A.fetch_lock);
  orch_error ferr = ORCH_ERROR_INIT;
  if (refresh_locked(&ferr) != ORCH_OK) {
    LOG_WARN("auth", "cannot load the provider's keys yet (retried on demand): %s", ferr.message);
    A.last_fetch = 0;
  }
  orch_error_clear(&ferr);
  pthread_mutex_unlock(&A.fetch_lock);
  return ORCH_OK;
}

void orch_auth_shutdown(void) {
  pthread_rwlock_wrlock(&A.keys_lock);
  free_keys(A.keys, A.nkeys);
  A.keys = NULL;
  A.nkeys = 0;
  pthread_rwlock_unlock(&A.keys_lock);
  pthread_mutex_lock(&A.meta_lock);
  free(A.issuer);
  free(A.jwks_uri);
  free(A.introspection);
  A.issuer = A.jwks_uri = A.introspection = NULL;
  pthread_mutex_unlock(&A.meta_lock);
  pthread_mutex_lock(&A.cache_lock);
  for (size_t i = 0; i < CACHE_SLOTS; i++) {
    free(A.cache[i].user_json);
    A.cache[i] = (cached){0};
  }
  pthread_mutex_unlock(&A.cache_lock);
  A.active = 0;
}

int orch_auth_active(void) {
  return A.active;
}

int orch_auth_public_action(const char *action) {
  return action && (!strcmp(action, "health.read") || !strcmp(action, "translations.read") ||
                    !strcmp(action, "openapi.read"));
}

const char *orch_auth_bearer(const char *authorization) {
  if (!authorization || strncasecmp(authorization, "Bearer ", 7)) return NULL;
  const char *t = authorization + 7;
  while (*t == ' ')
    t++;
  return *t ? t : NULL;
}

/* ---- the cache ---- */

static size_t slot_of(const char hash[65]) {
  return (size_t)strtoul(
             (char[9]){hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7], 0},
             NULL, 16) %
         CACHE_SLOTS;
}

static char *cache_get(const char hash[65]) {
  char *out = NULL;
  cached *c = &A.cache[slot_of(hash)];
  pthread_mutex_lock(&A.cache_lock);
  if (!strcmp(c->hash, hash) && c->exp > time(NULL)) out = orch_strdup(c->user_json);
  pthread_mutex_unlock(&A.cache_lock);
  return out;
}

static void cache_put(const char hash[65], const char *user_json, time_t exp) {
  cached *c = &A.cache[slot_of(hash)];
  pthread_mutex_lock(&A.cache_lock);
  free(c->user_json);
  memcpy(c->hash, hash, 65);
  c->user_json = orch_strdup(user_json);
  c->exp = exp;
  pthread_mutex_unlock(&A.cache_lock);
}

/* ---- claims ---- */

static void add_groups(json_t *groups, json_t *list) {
  size_t i;
  json_t *g;
  json_array_foreach(list, i, g) {
    if (json_is_string(g)) json_array_append(groups, g);
  }
}

/* {"sub","name","email","groups","claims"} of a claims object (not consumed). */
static char *user_from_claims(json_t *claims) {
  json_t *u = json_object();
  const char *sub = json_string_value(json_object_get(claims, "sub"));
  const char *name = json_string_value(json_object_get(claims, "name"));
  if (!name) name = json_string_value(json_object_get(claims, "preferred_username"));
  const char *email = json_string_value(json_object_get(claims, "email"));
  json_object_set_new(u, "sub", sub ? json_string(sub) : json_null());
  json_object_set_new(u, "name", name ? json_string(name) : sub ? json_string(sub) : json_null());
  json_object_set_new(u, "email", email ? json_string(email) : json_null());
  json_t *groups = json_array();
  add_groups(groups, json_object_get(claims, "groups"));
  add_groups(groups, json_object_get(json_object_get(claims, "realm_access"), "roles"));
  json_object_set_new(u, "groups", groups);
  json_object_set(u, "claims", claims);
  char *text = json_dumps(u, JSON_COMPACT);
  json_decref(u);
  return text;
}

static int has_audience(json_t *aud, const char *want) {
  if (json_is_string(aud)) return !strcmp(json_string_value(aud), want);
  size_t i;
  json_t *a;
  json_array_foreach(aud, i, a) {
    if (json_is_string(a) && !strcmp(json_string_value(a), want)) return 1;
  }
  return 0;
}

/* exp, nbf, iss, aud. */
static int check_claims(json_t *claims, time_t *exp_out, orch_error *err) {
  time_t now = time(NULL);
  long leeway = A.cfg->jwt_leeway;
  json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
  if (!json_is_number(exp)) {
    orch_error_set(err, ORCH_EINVAL, "token has no exp");
    return ORCH_EINVAL;
  }
  if ((double)now > json_number_value(exp) + (double)leeway) {
    orch_error_set(err, ORCH_EINVAL, "token expired");
    return ORCH_EINVAL;
  }
  if (nbf && (!json_is_number(nbf) || json_number_value(nbf) > (double)(now + leeway))) {
    orch_error_set(err, ORCH_EINVAL, "token not valid yet");
    return ORCH_EINVAL;
  }
  pthread_mutex_lock(&A.meta_lock);
  const char *iss = json_string_value(json_object_get(claims, "iss"));
  int iss_ok = A.issuer && iss && !strcmp(iss, A.issuer);
  pthread_mutex_unlock(&A.meta_lock);
  if (!iss_ok) {
    orch_error_set(err, ORCH_EINVAL, "token from another issuer");
    return ORCH_EINVAL;
  }
  const char *aud = A.cfg->resource_server_id;
  if (aud && *aud && !has_audience(json_object_get(claims, "aud"), aud)) {
    orch_error_set(err, ORCH_EINVAL, "token for another audience");
    return ORCH_EINVAL;
  }
  *exp_out = (time_t)json_number_value(exp) + leeway;
  return ORCH_OK;
}

/* ---- JWT ---- */

static const struct {
  const char *alg;
  cjose_jwk_kty_t kty;
} algs[] = {
    {"RS256", CJOSE_JWK_KTY_RSA}, {"RS384", CJOSE_JWK_KTY_RSA}, {"RS512", CJOSE_JWK_KTY_RSA},
    {"PS256", CJOSE_JWK_KTY_RSA}, {"PS384", CJOSE_JWK_KTY_RSA}, {"PS512", CJOSE_JWK_KTY_RSA},
    {"ES256", CJOSE_JWK_KTY_EC},  {"ES384", CJOSE_JWK_KTY_EC},  {"ES512", CJOSE_JWK_KTY_EC},
};

/* 1 verified, 0 no key verifies it, -1 no key with that kid (and type and alg). */
static int verify_with_keys(cjose_jws_t *jws, const char *kid, const char *alg,
                            cjose_jwk_kty_t kty) {
  int found = 0, ok = 0;
  pthread_rwlock_rdlock(&A.keys_lock);
  for (size_t i = 0; i < A.nkeys && !ok; i++) {
    if (A.keys[i].kty != kty) continue;
    if (kid && (!A.keys[i].kid || strcmp(kid, A.keys[i].kid))) continue;
    if (A.keys[i].alg && strcmp(alg, A.keys[i].alg)) continue; /* the key says how it signs */
    found = 1;
    cjose_err cerr;
    ok = cjose_jws_verify(jws, A.keys[i].jwk, &cerr);
  }
  pthread_rwlock_unlock(&A.keys_lock);
  return ok ? 1 : found ? 0 : -1;
}

static int verify_jwt(const char *token, char **user_json, time_t *exp, orch_error *err) {
  cjose_err cerr;
  cjose_jws_t *jws = cjose_jws_import(token, strlen(token), &cerr);
  if (!jws) {
    orch_error_set(err, ORCH_EINVAL, "malformed token");
    return ORCH_EINVAL;
  }
  int rc = ORCH_EINVAL;
  cjose_header_t *hdr = cjose_jws_get_protected(jws);
  const char *alg = hdr ? cjose_header_get(hdr, "alg", &cerr) : NULL;
  const char *kid = hdr ? cjose_header_get(hdr, "kid", &cerr) : NULL;
  size_t a = 0;
  while (a < ORCH_ARRAY_LEN(algs) && (!alg || strcmp(alg, algs[a].alg)))
    a++;
  if (a == ORCH_ARRAY_LEN(algs)) {
    orch_error_set(err, ORCH_EINVAL, "token algorithm %s is not accepted", alg ? alg : "(none)");
    goto done;
  }
  int v = verify_with_keys(jws, kid, alg, algs[a].kty);
  if (v < 0 || (v == 0 && !kid)) { /* an unknown key: the provider may have rotated its keys */
    maybe_refresh();
    v = verify_with_keys(jws, kid, alg, algs[a].kty);
  }
  if (v != 1) {
    orch_error_set(err, ORCH_EINVAL, v < 0 ? "token signed by an unknown key" : "bad signature");
    goto done;
  }
  uint8_t *payload = NULL;
  size_t len = 0;
  json_t *claims = NULL;
  if (cjose_jws_get_plaintext(jws, &payload, &len, &cerr))
    claims = json_loadb((const char *)payload, len, 0, NULL);
  if (!json_is_object(claims)) {
    orch_error_set(err, ORCH_EINVAL, "token claims are not a JSON object");
  } else if (check_claims(claims, exp, err) == ORCH_OK) {
    *user_json = user_from_claims(claims);
    rc = ORCH_OK;
  }
  json_decref(claims);
done:
  cjose_jws_release(jws);
  return rc;
}

/* ---- opaque tokens ---- */

static int introspect(const char *token, char **user_json, time_t *exp, orch_error *err) {
  pthread_mutex_lock(&A.meta_lock);
  char *url = A.introspection ? orch_strdup(A.introspection) : NULL;
  pthread_mutex_unlock(&A.meta_lock);
  const char *id = A.cfg->resource_server_id, *secret = A.cfg->resource_server_secret;
  if (!url || !id || !*id || !secret || !*secret) {
    free(url);
    orch_error_set(err, ORCH_EINVAL, "malformed token");
    return ORCH_EINVAL;
  }
  CURL *h = curl_easy_init();
  char *esc = h ? curl_easy_escape(h, token, 0) : NULL;
  char *form = orch_sprintf("token=%s&token_type_hint=access_token", esc ? esc : "");
  curl_free(esc);
  if (h) curl_easy_cleanup(h);
  orch_error ferr = ORCH_ERROR_INIT;
  json_t *r = fetch_json(url, form, id, secret, &ferr);
  free(form);
  free(url);
  int rc = ORCH_EINVAL;
  if (!r) {
    LOG_WARN("auth", "introspection failed: %s", ferr.message);
    orch_error_set(err, ORCH_EINVAL, "token could not be checked");
  } else if (!json_is_true(json_object_get(r, "active"))) {
    orch_error_set(err, ORCH_EINVAL, "token is not active");
  } else {
    json_t *e = json_object_get(r, "exp");
    *exp = json_is_number(e) ? (time_t)json_number_value(e) : time(NULL) + 60;
    *user_json = user_from_claims(r);
    rc = ORCH_OK;
  }
  orch_error_clear(&ferr);
  json_decref(r);
  return rc;
}

int orch_auth_verify(const char *token, char **user_json, orch_error *err) {
  *user_json = NULL;
  size_t len = token ? strlen(token) : 0;
  if (!len || len > 16384) {
    orch_error_set(err, ORCH_EINVAL, "malformed token");
    return ORCH_EINVAL;
  }
  char hash[65];
  orch_sha256_hex(token, len, hash);
  if ((*user_json = cache_get(hash))) return ORCH_OK;
  pthread_rwlock_rdlock(&A.keys_lock);
  int have_keys = A.nkeys > 0;
  pthread_rwlock_unlock(&A.keys_lock);
  if (!have_keys) maybe_refresh(); /* the provider was down at start */
  int dots = 0;
  for (const char *p = token; *p; p++)
    dots += *p == '.';
  time_t exp = 0;
  int rc =
      dots == 2 ? verify_jwt(token, user_json, &exp, err) : introspect(token, user_json, &exp, err);
  if (rc == ORCH_OK) cache_put(hash, *user_json, exp);
  return rc;
}
