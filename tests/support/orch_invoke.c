/*
 * orch_invoke - a test and benchmark driver: build one Lua state from lua/ and
 * a products folder (as the host does), give it a database connection, call
 * require(module)[func](arg) through orch_lua_invoke and print the JSON result.
 *
 *   orch_invoke [host flags: --database --lua-dir --products ...] module func [json]
 *
 * Exit status 0 with the result on stdout, 1 with "file:line: message" on stderr.
 */
#include "orch.h"

#include "config.h"
#include "db.h"
#include "gen.h"
#include "lhost.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  orch_config cfg;
  orch_error err = ORCH_ERROR_INIT;
  int i = 1, rc = 1;
  if (orch_config_init(&cfg, &err) != ORCH_OK ||
      orch_config_parse_flags(&cfg, argc, argv, &i, &err) != ORCH_OK) {
    fprintf(stderr, "orch_invoke: %s\n", err.message);
    orch_error_clear(&err);
    orch_config_free(&cfg);
    return 2;
  }
  if (argc - i < 2 || argc - i > 3) {
    fprintf(stderr, "usage: orch_invoke [flags] module func [json]\n");
    orch_config_free(&cfg);
    return 2;
  }
  orch_gen *g = NULL;
  orch_lua *lh = NULL;
  orch_db *db = NULL;
  orch_errlist errors = {0};
  if (orch_gen_load(&g, cfg.lua_dir, cfg.products_dir, &err) != ORCH_OK) goto fail;
  orch_lua_limits lim = {cfg.lua_memory, 0}; /* no time budget: benchmarks run long */
  if (orch_lua_new(&lh, g, &lim, &errors) != ORCH_OK) {
    for (size_t k = 0; k < errors.n; k++) {
      char *msg = orch_error_format(&errors.items[k]);
      fprintf(stderr, "%s\n", msg);
      free(msg);
    }
    goto done;
  }
  if (cfg.database_uri) {
    db = orch_db_new(cfg.database_uri);
    orch_lua_set_db(lh, db);
  }
  char *result = NULL;
  if (orch_lua_invoke(lh, argv[i], argv[i + 1], argc - i == 3 ? argv[i + 2] : NULL, &result,
                      &err) != ORCH_OK)
    goto fail;
  printf("%s\n", result);
  free(result);
  rc = 0;
  goto done;
fail : {
  char *msg = orch_error_format(&err);
  fprintf(stderr, "%s\n", msg);
  free(msg);
}
done:
  orch_error_clear(&err);
  orch_errlist_free(&errors);
  orch_lua_free(lh);
  orch_db_free(db);
  orch_gen_unref(g);
  orch_config_free(&cfg);
  return rc;
}
