/* test_lua.c - generations and the sandboxed Lua bridge, with real scripts on disk. */
#include "orch.h"

#include "gen.h"
#include "lhost.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* A products folder in a fresh temporary directory; the real lua/ as the core. */
static char products[256];

static void make_products(void) {
  snprintf(products, sizeof products, "/tmp/orch-ctest-XXXXXX");
  ASSERT(mkdtemp(products) != NULL);
}

static void write_product(const char *name, const char *source) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", products, name);
  FILE *f = fopen(path, "w");
  ASSERT(f != NULL);
  fputs(source, f);
  fclose(f);
}

static void remove_products(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", products);
  ASSERT_EQ(system(cmd), 0);
}

/* Build a state from lua/ + the products folder; returns the error count. */
static size_t build(orch_errlist *errors, long timeout_ms, size_t memory) {
  orch_gen *g = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_gen_load(&g, ORCH_TEST_SOURCE_DIR "/lua", products, &err));
  orch_lua_limits lim = {memory, timeout_ms};
  orch_lua *lh = NULL;
  int rc = orch_lua_new(&lh, g, &lim, errors);
  ASSERT((rc == ORCH_OK) == (errors->n == 0));
  ASSERT((lh != NULL) == (rc == ORCH_OK));
  orch_lua_free(lh);
  orch_gen_unref(g);
  return errors->n;
}

static void expect_ok(const char *source) {
  make_products();
  write_product("t.lua", source);
  orch_errlist errors = {0};
  if (build(&errors, 10000, 64u << 20)) {
    char *msg = orch_error_format(&errors.items[0]);
    FAIL("unexpected error: %s", msg);
  }
  orch_errlist_free(&errors);
  remove_products();
}

static char *expect_error(const char *source, long timeout_ms, size_t memory, orch_error *first) {
  make_products();
  write_product("t.lua", source);
  orch_errlist errors = {0};
  ASSERT_EQ(build(&errors, timeout_ms, memory), 1);
  char *msg = orch_error_format(&errors.items[0]);
  if (first) {
    *first = errors.items[0];
    errors.items[0] = (orch_error)ORCH_ERROR_INIT;
  }
  orch_errlist_free(&errors);
  remove_products();
  return msg;
}

TEST(gen_loads_modules_and_hashes) {
  make_products();
  char sub[300];
  snprintf(sub, sizeof sub, "%s/net", products);
  ASSERT_OK(mkdir(sub, 0755));
  write_product("net/init.lua", "return 1\n");
  write_product("net/port.lua", "return 2\n");
  write_product("net/port_spec.lua", "error('specs are not loaded')\n");
  orch_gen *g = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_gen_load(&g, ORCH_TEST_SOURCE_DIR "/lua", products, &err));
  const orch_script *s = orch_gen_find_module(g, "net.port");
  ASSERT(s != NULL);
  ASSERT(s->is_product);
  ASSERT_EQ(strlen(s->sha256), 64);
  ASSERT(orch_gen_find_module(g, "net") != NULL);
  ASSERT(orch_gen_find_module(g, "net.port_spec") == NULL);
  ASSERT(orch_gen_find_module(g, "orch.json") != NULL);
  ASSERT(!orch_gen_find_module(g, "orch.json")->is_product);
  orch_gen_unref(g);
  remove_products();
}

TEST(gen_publish_and_refcount) {
  make_products();
  orch_gen *a = NULL, *b = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_gen_load(&a, ORCH_TEST_SOURCE_DIR "/lua", products, &err));
  ASSERT_OK(orch_gen_load(&b, ORCH_TEST_SOURCE_DIR "/lua", products, &err));
  ASSERT_EQ(a->number, 0); /* numbered when published: a refused reload uses up no number */
  orch_gen *refused = NULL;
  ASSERT_OK(orch_gen_load(&refused, ORCH_TEST_SOURCE_DIR "/lua", products, &err));
  orch_gen_unref(refused);
  orch_gen_publish(a);
  orch_gen *cur = orch_gen_current();
  ASSERT(cur == a);
  orch_gen_publish(b); /* a stays alive through `cur` */
  ASSERT_EQ(b->number, a->number + 1);
  ASSERT_EQ(orch_gen_current_number(), b->number);
  ASSERT(cur->count > 0);
  orch_gen_unref(cur);
  orch_gen_unref(a);
  orch_gen_unref(b);
  orch_gen_shutdown();
  ASSERT_EQ(orch_gen_current_number(), 0);
  remove_products();
}

TEST(lua_sandbox_allows_the_basics) {
  expect_ok("local t = {3, 1, 2}\n"
            "table.sort(t)\n"
            "assert(t[1] == 1 and string.format('%d', 5) == '5' and math.max(1, 2) == 2)\n"
            "assert(type(os.time()) == 'number' and type(os.clock()) == 'number')\n"
            "assert(utf8.char(72) == 'H')\n"
            "local co = coroutine.wrap(function() coroutine.yield(1) end)\n"
            "assert(co() == 1)\n"
            "local f = assert(load('return 40 + 2'))\n"
            "assert(f() == 42)\n"
            "my_global = 1\n"
            "assert(my_global == 1)\n"
            "assert(orch.uuid.valid(orch.uuid.v4()))\n"
            "assert(#orch.uuid.token() == 43)\n"
            "assert(orch.time.iso(0) == '1970-01-01T00:00:00+00:00')\n"
            "assert(orch.time.iso(1.5) == '1970-01-01T00:00:01.500000+00:00')\n"
            "orch.log.info('sandbox test', 1, true)\n");
}

TEST(lua_sandbox_hides_dangerous_globals) {
  static const char *forbidden[] = {
      "io", "debug", "package", "dofile", "loadfile", "collectgarbage", "_G", "require_c", NULL};
  for (const char **f = forbidden; *f; f++) {
    char src[200];
    snprintf(src, sizeof src, "local x = %s\n", *f);
    char *msg = expect_error(src, 10000, 64u << 20, NULL);
    ASSERT_CONTAINS(msg, "undefined global");
    ASSERT_CONTAINS(msg, "t.lua:1:");
    free(msg);
  }
  static const char *os_calls[] = {"os.execute('true')", "os.exit(1)", "os.getenv('HOME')",
                                   "os.remove('/tmp/x')", NULL};
  for (const char **f = os_calls; *f; f++) {
    char src[200];
    snprintf(src, sizeof src, "\n%s\n", *f);
    char *msg = expect_error(src, 10000, 64u << 20, NULL);
    ASSERT_CONTAINS(msg, "t.lua:2:");
    ASSERT_CONTAINS(msg, "is not available in the sandbox");
    free(msg);
  }
  char *msg =
      expect_error("local f = load(string.dump or '\\27Lua')\nassert(f)\n", 10000, 64u << 20, NULL);
  ASSERT_CONTAINS(msg, "t.lua:2:");
  free(msg);
  msg = expect_error("local f, e = load('x', 'n', 'b')\n", 10000, 64u << 20, NULL);
  ASSERT_CONTAINS(msg, "only text chunks");
  free(msg);
}

TEST(lua_error_has_file_line_traceback) {
  orch_error e = ORCH_ERROR_INIT;
  char *msg =
      expect_error("local function inner()\n  error('deep')\nend\ninner()\n", 10000, 64u << 20, &e);
  ASSERT_CONTAINS(msg, "t.lua:2: deep");
  ASSERT_EQ(e.line, 2);
  ASSERT_CONTAINS(e.file, "t.lua");
  ASSERT(e.traceback != NULL);
  ASSERT_CONTAINS(e.traceback, "inner");
  orch_error_clear(&e);
  free(msg);
  /* An error without position still gets one from the innermost frame. */
  msg = expect_error("\n\nerror({code = 1})\n", 10000, 64u << 20, &e);
  ASSERT_EQ(e.line, 3);
  orch_error_clear(&e);
  free(msg);
}

TEST(lua_time_budget_cannot_be_swallowed) {
  long long t0 = orch_now_ns();
  char *msg = expect_error("for i = 1, 3 do\n  pcall(function() while true do end end)\nend\n"
                           "while true do end\n",
                           1000, 64u << 20, NULL);
  ASSERT_CONTAINS(msg, "time limit exceeded (1000 ms)");
  ASSERT_CONTAINS(msg, "t.lua:");
  ASSERT((orch_now_ns() - t0) < 5000000000LL);
  free(msg);
}

TEST(lua_memory_cap) {
  char *msg = expect_error("local t = {}\nfor i = 1, 1e9 do t[i] = ('x'):rep(100) .. i end\n", 5000,
                           16u << 20, NULL);
  ASSERT_CONTAINS(msg, "memory limit exceeded (16 MiB)");
  free(msg);
  msg = expect_error("local s = string.rep('x', 1 << 30)\n", 5000, 16u << 20, NULL);
  ASSERT_CONTAINS(msg, "memory limit exceeded");
  ASSERT_CONTAINS(msg, "t.lua");
  free(msg);
}

TEST(lua_json_round_trip_in_host) {
  expect_ok("local j = orch.json\n"
            "assert(j.encode(j.decode('[]')) == '[]')\n"
            "assert(j.encode(j.decode('{\"a\":[[]]}')) == '{\"a\":[[]]}')\n"
            "assert(j.decode('{\"x\":null}').x == j.null)\n"
            "assert(math.type(j.decode('[3]')[1]) == 'integer')\n"
            "assert(j.encode({n = 12345678901234567}) == '{\"n\":12345678901234567}')\n"
            /* the decode walk (host/lapi_json.c): whole floats, 2^53, empty arrays, Inf */
            "assert(math.type(j.decode('{\"a\":{\"b\":[1.0, 2.5]}}').a.b[1]) == 'integer')\n"
            "assert(math.type(j.decode('{\"a\":{\"b\":[1.0, 2.5]}}').a.b[2]) == 'float')\n"
            "assert(math.type(j.decode('[9007199254740993]')[1]) == 'float')\n"
            "assert(getmetatable(j.decode('{\"a\":[]}').a) == j.array_mt)\n"
            "assert(getmetatable(j.decode('{\"a\":[{\"b\":2}]}').a) == j.array_mt)\n"
            "assert(j.encode(j.decode('{\"a\":{\"b\":[]}}')) == '{\"a\":{\"b\":[]}}')\n"
            "local inf, why = j.try_decode('{\"x\":[1e999]}')\n"
            "assert(inf == nil and why:find('out of range'), tostring(why))\n"
            "local v, err = j.try_decode('{')\n"
            "assert(v == nil and type(err) == 'string')\n");
}

TEST(lua_require_stays_inside_generation) {
  make_products();
  write_product("helper.lua", "return {value = 41}\n");
  write_product("user.lua", "local h = require('helper')\nassert(h.value + 1 == 42)\n"
                            "assert(require('helper') == h)\n");
  orch_errlist errors = {0};
  ASSERT_EQ(build(&errors, 10000, 64u << 20), 0);
  orch_errlist_free(&errors);
  remove_products();
  char *msg = expect_error("require('os')\n", 10000, 64u << 20, NULL);
  ASSERT_CONTAINS(msg, "module 'os' not found");
  free(msg);
  msg = expect_error("require('../../etc/passwd')\n", 10000, 64u << 20, NULL);
  ASSERT_CONTAINS(msg, "not found");
  free(msg);
}

TEST(lua_db_unavailable_while_loading) {
  char *msg = expect_error("orch.db.query('SELECT 1')\n", 10000, 64u << 20, NULL);
  ASSERT_CONTAINS(msg, "not available while scripts are being loaded");
  ASSERT_CONTAINS(msg, "t.lua:1");
  free(msg);
}

TEST(lua_finalize_reports_each_message) {
  /* Two blocks that use blocks nobody defines: orch._finalize reports one error each. */
  make_products();
  write_product("defs.lua", "local model = orch.model\n"
                            "model.block({ name = \"A\", fields = { { \"x\", \"NoSuchX\" } } })\n"
                            "model.block({ name = \"B\", fields = { { \"y\", \"NoSuchY\" } } })\n");
  orch_errlist errors = {0};
  ASSERT_EQ(build(&errors, 10000, 64u << 20), 2);
  ASSERT_CONTAINS(errors.items[0].file, "defs.lua");
  ASSERT_EQ(errors.items[0].line, 2);
  ASSERT_CONTAINS(errors.items[0].message, "NoSuchX");
  ASSERT_EQ(errors.items[1].line, 3);
  ASSERT_CONTAINS(errors.items[1].message, "NoSuchY");
  orch_errlist_free(&errors);
  remove_products();
}

TEST(lua_invoke_json_in_and_out) {
  make_products();
  write_product(
      "calc.lua",
      "return { double = function(t) return { n = t.n * 2, list = orch.json.array() } end,\n"
      "         fail = function() error('nope') end }\n");
  orch_gen *g = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_gen_load(&g, ORCH_TEST_SOURCE_DIR "/lua", products, &err));
  orch_lua_limits lim = {64u << 20, 10000};
  orch_errlist errors = {0};
  orch_lua *lh = NULL;
  ASSERT_OK(orch_lua_new(&lh, g, &lim, &errors));
  char *out = NULL;
  ASSERT_OK(orch_lua_invoke(lh, "calc", "double", "{\"n\": 21}", &out, &err));
  ASSERT(!strcmp(out, "{\"n\":42,\"list\":[]}") || !strcmp(out, "{\"list\":[],\"n\":42}"));
  free(out);
  ASSERT_EQ(orch_lua_invoke(lh, "calc", "fail", NULL, NULL, &err), ORCH_ELUA);
  ASSERT_CONTAINS(err.file, "calc.lua");
  ASSERT_EQ(err.line, 2);
  orch_error_clear(&err);
  ASSERT_EQ(orch_lua_invoke(lh, "calc", "missing", NULL, NULL, &err), ORCH_ELUA);
  ASSERT_CONTAINS(err.message, "calc.missing is not a function");
  orch_error_clear(&err);
  orch_lua_free(lh);
  orch_gen_unref(g);
  remove_products();
}

/* The router's table is what lua/orch/api/ declares, and the OpenAPI document lists every route of
 * it. */
TEST(lua_routes_table_is_the_documented_one) {
  make_products();
  orch_gen *g = NULL;
  orch_error err = ORCH_ERROR_INIT;
  ASSERT_OK(orch_gen_load(&g, ORCH_TEST_SOURCE_DIR "/lua", products, &err));
  orch_lua_limits lim = {64u << 20, 10000};
  orch_errlist errors = {0};
  orch_lua *lh = NULL;
  ASSERT_OK(orch_lua_new(&lh, g, &lim, &errors));
  size_t count = 0;
  const orch_route *routes = orch_route_table_list(orch_lua_routes(lh), &count);
  ASSERT(count >= 40);
  char *doc = NULL;
  ASSERT_OK(orch_lua_invoke(lh, "orch.api.openapi", "document", NULL, &doc, &err));
  int json_body = 0, host = 0;
  for (size_t i = 0; i < count; i++) {
    const orch_route *r = &routes[i];
    char needle[512];
    snprintf(needle, sizeof needle, "\"%s\":{", r->pattern);
    ASSERT_CONTAINS(doc, needle);
    if (r->handler)
      snprintf(needle, sizeof needle, "\"x-handler\":\"%s\"", r->handler);
    else
      snprintf(needle, sizeof needle, "\"x-handler\":\"host:%s\"", r->host);
    ASSERT_CONTAINS(doc, needle);
    snprintf(needle, sizeof needle, "\"x-action\":\"%s\"", r->action);
    ASSERT_CONTAINS(doc, needle);
    if (!strcmp(r->method, "PUT") && !strcmp(r->pattern, "/api/settings/status"))
      json_body = r->flags == ORCH_ROUTE_JSON_BODY;
    if (r->host) host = !strcmp(r->host, "websocket") && !strcmp(r->pattern, "/api/ws/events");
  }
  ASSERT(json_body);
  ASSERT(host);
  free(doc);
  orch_lua_free(lh);
  orch_gen_unref(g);
  remove_products();
}
