/*
 * fuzz_check - the product loader (`orchestrator check`) on product scripts generated
 * from the fuzz input by a grammar of the DSL (docs/products.md, docs/workflows.md,
 * docs/forms.md): model.block, model.product_type, the workflow kinds with their
 * steps and forms, forms.context, orch.customers.provide, with names drawn from small
 * pools (so definitions refer to each other, collide and miss) and values of every
 * Lua type in every slot.
 *
 * Each input builds a fresh state from lua/ and a products folder holding only the
 * generated script, as `check` does, then asks for the warnings. A definition may fail
 * to load (that is what check is for), but the report must be an error of the script:
 * a Lua runtime error raised inside lua/orch ("attempt to index a nil value" in
 * orch/model/...) means the loader trusted a value it should have checked, which
 * `check` reports as a crash of the core rather than the author's mistake.
 * ORCH_FUZZ_SHOW=1 prints each generated script and its errors.
 */
#include "orch.h"

#include "buf.h"
#include "gen.h"
#include "lhost.h"
#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char *lua_dir, *products_dir, *script_path;

static void remove_products_dir(void) {
  unlink(script_path);
  rmdir(products_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *src = getenv("ORCH_SOURCE_DIR");
  if (!src) src = ORCH_FUZZ_SOURCE_DIR;
  orch_log_set_level(getenv("ORCH_FUZZ_LOG") ? ORCH_LOG_DEBUG : ORCH_LOG_ERROR + 1);
  lua_dir = orch_sprintf("%s/lua", src);
  char tmpl[] = "/tmp/orch-fuzz-check-XXXXXX";
  if (!mkdtemp(tmpl)) abort();
  products_dir = orch_strdup(tmpl);
  script_path = orch_sprintf("%s/fuzz.lua", products_dir);
  atexit(remove_products_dir);
  return 0;
}

/* ---- the generator: every choice takes one byte of the input (0 once it is used up) ---- */

typedef struct gen_in {
  const uint8_t *p, *end;
  orch_buf out;
  int budget; /* nodes left: bounds the script whatever the input */
} gen_in;

static unsigned pick(gen_in *g, unsigned n) {
  if (g->p >= g->end) return 0;
  return *g->p++ % n;
}

static void put(gen_in *g, const char *s) {
  orch_buf_puts(&g->out, s);
}

static const char *const names[] = {"A", "B", "Node", "Port", "x", "", "1bad", "a b"};
static const char *const fields[] = {"f",     "g",     "node_name", "subscription_id",
                                     "owner", "ports", "name",      "status"};
static const char *const products[] = {"p1", "p2", "node Cisco", ""};
static const char *const workflows[] = {"create_x", "modify_x", "terminate_x", "task_x", ""};
static const char *const strings[] = {"\"\"",       "\"s\"",       "\"provisioning\"",
                                      "\"active\"", "\"initial\"", "\"10.0.0.0/24\"",
                                      "\"0-4095\"", "\"\\0\"",     "(\"x\"):rep(300)"};

static void name_of(gen_in *g, const char *const *pool, size_t n) {
  orch_buf_printf(&g->out, "\"%s\"", pool[pick(g, (unsigned)n)]);
}

static void value(gen_in *g, int depth);
static void step(gen_in *g, int depth);

static void table_of_values(gen_in *g, int depth) {
  put(g, "{");
  unsigned n = pick(g, 4);
  for (unsigned i = 0; i < n; i++) {
    if (pick(g, 2)) { /* [key] = value */
      put(g, "[");
      name_of(g, fields, ORCH_ARRAY_LEN(fields));
      put(g, "] = ");
    }
    value(g, depth + 1);
    put(g, ", ");
  }
  put(g, "}");
}

static void value(gen_in *g, int depth) {
  if (--g->budget < 0 || depth > 4) {
    put(g, "nil");
    return;
  }
  switch (pick(g, 12)) {
  case 0: put(g, "nil"); break;
  case 1: put(g, strings[pick(g, ORCH_ARRAY_LEN(strings))]); break;
  case 2: put(g, pick(g, 2) ? "true" : "false"); break;
  case 3: {
    static const char *const nums[] = {
        "0", "1", "-1", "2", "3.5", "1e308", "(0/0)", "math.huge", "math.maxinteger"};
    put(g, nums[pick(g, ORCH_ARRAY_LEN(nums))]);
    break;
  }
  case 4: table_of_values(g, depth); break;
  case 5:
    put(g, "function(...) return ");
    value(g, depth + 1);
    put(g, " end");
    break;
  case 6: name_of(g, names, ORCH_ARRAY_LEN(names)); break;
  case 7: name_of(g, products, ORCH_ARRAY_LEN(products)); break;
  case 8: put(g, "orch.json.null"); break;
  case 9:
    put(g, "{ ");
    name_of(g, fields, ORCH_ARRAY_LEN(fields));
    put(g, ", ");
    value(g, depth + 1);
    put(g, " }");
    break;
  case 10: step(g, depth + 1); break;
  default: put(g, "setmetatable({}, { __index = function() error(\"boom\") end })"); break;
  }
}

static void field_type(gen_in *g, int depth) {
  switch (pick(g, 9)) {
  case 0: {
    static const char *const t[] = {"\"string\"",      "\"integer\"",     "\"boolean\"",
                                    "\"uuid\"",        "\"ipv4_prefix\"", "\"ipv6_address\"",
                                    "\"vlan_ranges\"", "\"nosuch\""};
    put(g, t[pick(g, ORCH_ARRAY_LEN(t))]);
    break;
  }
  case 1:
    put(g, "model.owned(");
    name_of(g, names, ORCH_ARRAY_LEN(names));
    put(g, ")");
    break;
  case 2:
    put(g, "model.optional(");
    field_type(g, depth + 1);
    put(g, ")");
    break;
  case 3:
    put(g, "model.list(");
    name_of(g, names, ORCH_ARRAY_LEN(names));
    put(g, ", { min = ");
    value(g, depth + 1);
    put(g, ", max = ");
    value(g, depth + 1);
    put(g, " })");
    break;
  case 4:
    put(g, "model.ref(");
    name_of(g, names, ORCH_ARRAY_LEN(names));
    put(g, ")");
    break;
  case 5:
    put(g, "model.enum(");
    value(g, depth + 1);
    put(g, ")");
    break;
  default: value(g, depth + 1);
  }
}

static void field_list(gen_in *g, int depth) {
  put(g, "{ ");
  unsigned n = pick(g, 4);
  for (unsigned i = 0; i < n && g->budget > 0; i++) {
    if (pick(g, 8) == 0) {
      value(g, depth + 1);
    } else {
      put(g, "{ ");
      name_of(g, fields, ORCH_ARRAY_LEN(fields));
      put(g, ", ");
      field_type(g, depth + 1);
      if (pick(g, 2)) {
        put(g, ", required_from = ");
        value(g, depth + 1);
      }
      put(g, " }");
    }
    put(g, ", ");
  }
  put(g, "}");
}

static void form(gen_in *g, int depth) {
  if (pick(g, 4) == 0) {
    value(g, depth + 1);
    return;
  }
  static const char *const kinds[] = {"string",  "integer",      "boolean", "uuid",
                                      "choice",  "multi_choice", "list",    "subscription",
                                      "product", "read_only",    "label",   "number"};
  put(g, "function(state, ctx) return F.page({ title = ");
  value(g, depth + 1);
  put(g, ", has_next = ");
  value(g, depth + 1);
  unsigned n = pick(g, 4);
  for (unsigned i = 0; i < n && g->budget > 0; i++) {
    orch_buf_printf(&g->out, ", F.%s({ ", kinds[pick(g, ORCH_ARRAY_LEN(kinds))]);
    name_of(g, fields, ORCH_ARRAY_LEN(fields));
    put(g, ", title = ");
    value(g, depth + 1);
    put(g, ", options = ");
    value(g, depth + 1);
    put(g, ", default = ");
    value(g, depth + 1);
    put(g, " })");
  }
  put(g, " }) end");
}

static void step(gen_in *g, int depth) {
  if (--g->budget < 0 || depth > 5) {
    put(g, "kinds.store_process_subscription");
    return;
  }
  switch (pick(g, 10)) {
  case 0:
  case 1:
    put(g, "wf.step(");
    value(g, depth + 1);
    put(g, ", function(state) return ");
    value(g, depth + 1);
    put(g, " end)");
    break;
  case 2:
    put(g, "wf.retrystep(");
    value(g, depth + 1);
    put(g, ", ");
    value(g, depth + 1);
    put(g, ")");
    break;
  case 3:
    put(g, "wf.inputstep(");
    value(g, depth + 1);
    put(g, ", { form = ");
    form(g, depth + 1);
    put(g, " })");
    break;
  case 4:
    put(g, "wf.callback_step({ name = ");
    value(g, depth + 1);
    put(g, ", action = ");
    step(g, depth + 1);
    put(g, ", validate = ");
    step(g, depth + 1);
    put(g, ", timeout = ");
    value(g, depth + 1);
    put(g, ", result_key = ");
    value(g, depth + 1);
    put(g, " })");
    break;
  case 5:
    put(g, "wf.step_group(");
    value(g, depth + 1);
    put(g, ", { ");
    step(g, depth + 1);
    put(g, ", ");
    step(g, depth + 1);
    put(g, " })");
    break;
  case 6:
    put(g, "wf.conditional(function(state) return ");
    value(g, depth + 1);
    put(g, " end)(");
    step(g, depth + 1);
    put(g, ")");
    break;
  case 7: {
    static const char *const std[] = {"kinds.store_process_subscription", "kinds.unsync",
                                      "kinds.resync", "kinds.refresh_subscription_search_index"};
    put(g, std[pick(g, ORCH_ARRAY_LEN(std))]);
    break;
  }
  case 8:
    put(g, "kinds.set_status(");
    value(g, depth + 1);
    put(g, ")");
    break;
  default: value(g, depth + 1);
  }
}

static void statement(gen_in *g) {
  switch (pick(g, 7)) {
  case 0:
    put(g, "model.block({ name = ");
    name_of(g, names, ORCH_ARRAY_LEN(names));
    put(g, ", description = ");
    value(g, 1);
    put(g, ", fields = ");
    field_list(g, 1);
    put(g, " })\n");
    break;
  case 1:
    put(g, "model.product_type({ name = ");
    name_of(g, names, ORCH_ARRAY_LEN(names));
    put(g, ", fields = ");
    field_list(g, 1);
    put(g, ", description = ");
    if (pick(g, 2))
      put(g, "function(sub) return tostring(sub.subscription_id) end");
    else
      value(g, 1);
    put(g, ", products = { ");
    for (unsigned i = 0, n = pick(g, 3); i < n; i++) {
      put(g, "{ name = ");
      name_of(g, products, ORCH_ARRAY_LEN(products));
      put(g, ", description = ");
      value(g, 2);
      put(g, ", tag = ");
      value(g, 2);
      put(g, " }, ");
    }
    put(g, "} })\n");
    break;
  case 2:
  case 3: {
    static const char *const kinds[] = {"create_workflow",    "modify_workflow",
                                        "terminate_workflow", "validate_workflow",
                                        "reconcile_workflow", "task"};
    orch_buf_printf(&g->out, "kinds.%s({ name = ", kinds[pick(g, ORCH_ARRAY_LEN(kinds))]);
    name_of(g, workflows, ORCH_ARRAY_LEN(workflows));
    put(g, ", description = ");
    value(g, 1);
    put(g, ", products = { ");
    for (unsigned i = 0, n = pick(g, 3); i < n; i++) {
      name_of(g, products, ORCH_ARRAY_LEN(products));
      put(g, ", ");
    }
    put(g, "}, form = ");
    form(g, 1);
    put(g, ", steps = { ");
    for (unsigned i = 0, n = pick(g, 5); i < n && g->budget > 0; i++) {
      step(g, 1);
      put(g, ", ");
    }
    put(g, "} })\n");
    break;
  }
  case 4:
    put(g, "F.context({ [");
    name_of(g, fields, ORCH_ARRAY_LEN(fields));
    put(g, "] = ");
    value(g, 1);
    put(g, " })\n");
    break;
  case 5:
    put(g, "orch.customers.provide(");
    value(g, 1);
    put(g, ")\n");
    break;
  default:
    put(g, "local _ = ");
    step(g, 1);
    put(g, "\n");
  }
}

static char *generate(const uint8_t *data, size_t size) {
  gen_in g = {data, data + size, ORCH_BUF_INIT, 200};
  put(&g, "local model, wf, kinds, F = orch.model, orch.workflow, orch.workflows, orch.forms\n");
  for (int i = 0; i < 12 && g.p < g.end && g.budget > 0; i++)
    statement(&g);
  return g.out.data ? g.out.data : orch_strdup("");
}

/* A runtime error raised inside lua/orch (not by the script, not on purpose). */
static int core_crash(const char *message) {
  static const char *const runtime[] = {"attempt to ", "bad argument", "stack overflow",
                                        "table index is", "C stack overflow"};
  const char *at = message ? strstr(message, "orch/") : NULL;
  if (!at || !strstr(at, ".lua:")) return 0;
  for (size_t i = 0; i < ORCH_ARRAY_LEN(runtime); i++)
    if (strstr(message, runtime[i])) return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *script = generate(data, size);
  FILE *f = fopen(script_path, "w");
  if (!f) abort();
  fputs(script, f);
  fclose(f);
  int show = getenv("ORCH_FUZZ_SHOW") != NULL;
  if (show) fprintf(stderr, "---- script\n%s", script);
  orch_gen *g = NULL;
  orch_lua *lh = NULL;
  orch_error err = ORCH_ERROR_INIT;
  orch_errlist errors = {0};
  if (orch_gen_load(&g, lua_dir, products_dir, &err) != ORCH_OK) {
    fprintf(stderr, "fuzz_check: %s\n", err.message);
    abort();
  }
  orch_lua_limits lim = {256u << 20, 5000};
  int bad = 0;
  if (orch_lua_new(&lh, g, &lim, &errors) != ORCH_OK) {
    for (size_t k = 0; k < errors.n; k++) {
      char *msg = orch_error_format(&errors.items[k]);
      if (show) fprintf(stderr, "error: %s\n", msg);
      if (core_crash(msg) || core_crash(errors.items[k].traceback)) {
        fprintf(stderr, "fuzz_check: the loader crashed on a definition:\n%s\n%s\n%s\n", script,
                msg, errors.items[k].traceback ? errors.items[k].traceback : "");
        bad = 1;
      }
      free(msg);
    }
  } else {
    char *json = NULL;
    if (orch_lua_invoke(lh, "orch.check", "warnings", NULL, &json, &err) != ORCH_OK) {
      char *msg = orch_error_format(&err);
      fprintf(stderr, "fuzz_check: check.warnings failed:\n%s\n%s\n", script, msg);
      free(msg);
      bad = 1;
    } else if (show) {
      fprintf(stderr, "warnings: %s\n", json);
    }
    free(json);
  }
  if (bad) abort();
  orch_error_clear(&err);
  orch_errlist_free(&errors);
  orch_lua_free(lh);
  orch_gen_unref(g);
  free(script);
  return 0;
}
