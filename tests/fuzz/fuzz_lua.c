/*
 * fuzz_lua - libFuzzer harnesses that call into a Lua state built as the host builds
 * one (lua/ + the example products, sandbox, memory cap and time budget), without a
 * database. One source, one binary per FUZZ_ENTRY:
 *
 *   search, graphql, forms, json  fuzz_entry.<entry>(input) in tests/fuzz/fuzz_entry.lua,
 *                                 which raises only when the code under test misbehaved
 *   http                          the request path after libmicrohttpd: the input is split
 *                                 into method, path, query, headers and body, matched
 *                                 against the state's route table (routes.c) and handled
 *                                 by orch_lua_handle (query/header parsing, body limits,
 *                                 JSON decode, the handler up to its first database call)
 *
 * The input reaches Lua as a JSON string; NUL bytes are dropped (orch.json refuses
 * \u0000 on purpose), every other byte, invalid UTF-8 included, arrives as it is.
 */
#include "orch.h"

#include "buf.h"
#include "gen.h"
#include "http.h"
#include "lhost.h"
#include "log.h"
#include "routes.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FUZZ_ENTRY
#error "FUZZ_ENTRY names the entry (search, graphql, forms, json, http)"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static orch_lua *lh;
static orch_gen *gen;

/* A lua folder for the state: lua/orch of the source tree plus fuzz_entry.lua (symlinks). */
static char *make_lua_dir(const char *src) {
  char tmpl[] = "/tmp/orch-fuzz-XXXXXX";
  if (!mkdtemp(tmpl)) abort();
  char *orch_link = orch_sprintf("%s/orch", tmpl);
  char *orch_target = orch_sprintf("%s/lua/orch", src);
  char *entry_link = orch_sprintf("%s/fuzz_entry.lua", tmpl);
  char *entry_target = orch_sprintf("%s/tests/fuzz/fuzz_entry.lua", src);
  if (symlink(orch_target, orch_link) || symlink(entry_target, entry_link)) abort();
  free(orch_link);
  free(orch_target);
  free(entry_link);
  free(entry_target);
  return orch_strdup(tmpl);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *src = getenv("ORCH_SOURCE_DIR");
  if (!src) src = ORCH_FUZZ_SOURCE_DIR;
  /* Quiet, except the errors fuzz_http reads (it catches them per request). */
  orch_log_set_level(getenv("ORCH_FUZZ_LOG")       ? ORCH_LOG_DEBUG
                     : !strcmp(FUZZ_ENTRY, "http") ? ORCH_LOG_ERROR
                                                   : ORCH_LOG_ERROR + 1);
  char *lua_dir = make_lua_dir(src);
  char *products = orch_sprintf("%s/products", src);
  orch_error err = ORCH_ERROR_INIT;
  orch_errlist errors = {0};
  if (orch_gen_load(&gen, lua_dir, products, &err) != ORCH_OK) {
    fprintf(stderr, "fuzz: %s\n", err.message);
    abort();
  }
  /* The host's defaults: a memory cap and a time budget per call (a hang is a finding). */
  orch_lua_limits lim = {256u << 20, 5000};
  if (orch_lua_new(&lh, gen, &lim, &errors) != ORCH_OK) {
    for (size_t k = 0; k < errors.n; k++)
      fprintf(stderr, "fuzz: %s\n", errors.items[k].message);
    abort();
  }
  /* The symlinks are read: the folder can go. */
  char *p = orch_sprintf("%s/orch", lua_dir);
  unlink(p);
  free(p);
  p = orch_sprintf("%s/fuzz_entry.lua", lua_dir);
  unlink(p);
  free(p);
  rmdir(lua_dir);
  free(lua_dir);
  free(products);
  return 0;
}

/* The input as a JSON string literal (NULs dropped, other bytes kept as they are). */
static char *json_string(const uint8_t *data, size_t size) {
  orch_buf b = ORCH_BUF_INIT;
  orch_buf_puts(&b, "\"");
  for (size_t i = 0; i < size; i++) {
    unsigned char c = data[i];
    if (c == 0) continue;
    if (c == '"' || c == '\\')
      orch_buf_printf(&b, "\\%c", c);
    else if (c < 0x20 || c == 0x7F)
      orch_buf_printf(&b, "\\u%04x", c);
    else
      orch_buf_append(&b, &c, 1);
  }
  orch_buf_puts(&b, "\"");
  return b.data;
}

static void run_entry(const uint8_t *data, size_t size) {
  char *arg = json_string(data, size);
  char *result = NULL;
  orch_error err = ORCH_ERROR_INIT;
  if (orch_lua_invoke(lh, "fuzz_entry", FUZZ_ENTRY, arg, &result, &err) != ORCH_OK) {
    char *msg = orch_error_format(&err);
    fprintf(stderr, "fuzz_%s: %s\n%s\n", FUZZ_ENTRY, msg, err.traceback ? err.traceback : "");
    abort();
  }
  if (getenv("ORCH_FUZZ_SHOW")) fprintf(stderr, "%s -> %s\n", arg, result);
  free(result);
  free(arg);
}

/* ---- http: one request from the bytes ---- */

/* The next line of [*p, end) (without its newline), NUL bytes dropped; NULL at the end. */
static char *next_line(const uint8_t **p, const uint8_t *end) {
  if (*p >= end) return NULL;
  const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
  const uint8_t *stop = nl ? nl : end;
  orch_buf b = ORCH_BUF_INIT;
  for (const uint8_t *q = *p; q < stop; q++)
    if (*q) orch_buf_append(&b, q, 1);
  *p = nl ? nl + 1 : end;
  if (!b.data) return orch_strdup("");
  return b.data;
}

/* "k=v&k2=v2" into l (already percent-decoded, as libmicrohttpd hands them over). */
static void split_pairs(orch_kvlist *l, const char *s, char sep, char eq, int lower) {
  const char *p = s;
  while (*p) {
    const char *e = strchr(p, sep);
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char *pair = orch_strndup(p, n);
    char *v = strchr(pair, eq);
    if (v) *v++ = '\0';
    while (v && *v == ' ')
      v++;
    if (lower)
      for (char *c = pair; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    if (*pair) orch_kvlist_add(l, pair, v ? v : "");
    free(pair);
    p += n;
    if (*p) p++;
  }
}

/*
 * Input lines: method, path, query ("k=v&..."), headers ("name: value|name: value"),
 * then the body (the rest, bytes as they are). The body is cut at the host's
 * default limit like http.c does (a larger one is a 413 there).
 */
static void run_http(const uint8_t *data, size_t size) {
  static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
  const uint8_t *p = data, *end = data + size;
  char *m = next_line(&p, end);
  char *path = next_line(&p, end);
  char *query = next_line(&p, end);
  char *headers = next_line(&p, end);
  if (!m || !path) goto out;
  /* A method named in full is used as it is; otherwise its first byte picks one. */
  const char *method = methods[(unsigned char)m[0] % ORCH_ARRAY_LEN(methods)];
  for (size_t i = 0; i < ORCH_ARRAY_LEN(methods); i++)
    if (!strcmp(m, methods[i])) method = methods[i];
  orch_route_table *table = orch_lua_routes(lh);
  const orch_route *route = NULL;
  orch_route_param params[ORCH_ROUTE_MAX_PARAMS];
  size_t nparams = 0;
  char allow[256];
  int r = orch_route_match(table, method, path, &route, params, &nparams, allow, sizeof allow);
  if (r == ORCH_ROUTE_NO_METHOD && (!allow[0] || strlen(allow) >= sizeof allow)) abort();
  if (r != ORCH_ROUTE_FOUND) goto out;
  if (!route || !route->handler || nparams > ORCH_ROUTE_MAX_PARAMS) abort();
  /* A parameter is one whole, non-empty segment; a trailing slash matches the same route. */
  for (size_t i = 0; i < nparams; i++)
    if (!params[i].value_len || memchr(params[i].value, '/', params[i].value_len)) abort();
  if (path[0] && path[strlen(path) - 1] != '/') {
    char *slashed = orch_sprintf("%s/", path);
    const orch_route *again = NULL;
    orch_route_param p2[ORCH_ROUTE_MAX_PARAMS];
    size_t n2 = 0;
    if (orch_route_match(table, method, slashed, &again, p2, &n2, allow, sizeof allow) !=
            ORCH_ROUTE_FOUND ||
        again != route || n2 != nparams)
      abort();
    free(slashed);
  }
  orch_http_request req = {.method = method, .path = path, .route = route};
  memcpy(req.request_id, "00000000fuzz0000", 17);
  for (size_t i = 0; i < nparams; i++) {
    if (params[i].value < path || params[i].value + params[i].value_len > path + strlen(path))
      abort();
    char *k = orch_strndup(params[i].name, params[i].name_len);
    char *v = orch_strndup(params[i].value, params[i].value_len);
    orch_kvlist_add(&req.params, k, v);
    free(k);
    free(v);
  }
  if (query) split_pairs(&req.query, query, '&', '=', 0);
  if (headers) split_pairs(&req.headers, headers, '|', ':', 1);
  size_t body_len = (size_t)(end - p);
  char *body = NULL;
  if (body_len) {
    if (body_len > 1024 * 1024) body_len = 1024 * 1024; /* ORCH_MAX_BODY_BYTES default */
    body = malloc(body_len + 1);
    memcpy(body, p, body_len);
    body[body_len] = '\0';
    req.body = body;
    req.body_len = body_len;
  }
  orch_http_response resp = {0};
  /* The host logs why it answered 500: catch that log (stderr) to tell a missing database
     (expected here) from a bug. */
  fflush(stderr);
  int saved = dup(2);
  FILE *log = tmpfile();
  if (saved < 0 || !log) abort();
  dup2(fileno(log), 2);
  orch_lua_handle(lh, &req, &resp);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char why[4096] = "";
  rewind(log);
  size_t got = fread(why, 1, sizeof why - 1, log);
  why[got] = '\0';
  fclose(log);
  if (resp.status < 100 || resp.status > 599) {
    fprintf(stderr, "fuzz_http: status %d\n", resp.status);
    abort();
  }
  if (resp.status >= 500 && !strstr(why, "orch.db is not available")) {
    fprintf(stderr, "fuzz_http: %s %s -> %d %.*s\n%s\n", method, path, resp.status,
            (int)resp.body_len, resp.body ? resp.body : "", why);
    abort();
  }
  if (getenv("ORCH_FUZZ_SHOW"))
    fprintf(stderr, "%s %s -> %d %.*s\n", method, path, resp.status, (int)resp.body_len,
            resp.body ? resp.body : "");
  orch_http_response_clear(&resp);
  orch_kvlist_free(&req.params);
  orch_kvlist_free(&req.query);
  orch_kvlist_free(&req.headers);
  free(body);
out:
  free(m);
  free(path);
  free(query);
  free(headers);
}

/* The C half of the host's own JSON strings (buf.c): quote, then unquote gives the text back. */
static void run_c_json(const uint8_t *data, size_t size) {
  char *text = orch_strndup((const char *)data, size);
  size_t len = strlen(text); /* up to the first NUL: C strings */
  orch_buf b = ORCH_BUF_INIT;
  orch_buf_json_string(&b, text, len);
  char *back = orch_json_unquote(b.data);
  if (!back || strcmp(back, text)) {
    fprintf(stderr, "fuzz_json: quote/unquote changed the text: %s\n", b.data);
    abort();
  }
  free(back);
  orch_buf_free(&b);
  /* Unquoting arbitrary text either fails or gives a string. */
  char *any = orch_json_unquote(text);
  free(any);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!strcmp(FUZZ_ENTRY, "json")) run_c_json(data, size);
  if (!strcmp(FUZZ_ENTRY, "http"))
    run_http(data, size);
  else
    run_entry(data, size);
  return 0;
}
