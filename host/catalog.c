/* catalog.c - run lua/orch/model/catalog.lua from the command line and at serve start-up. */
#include "orch.h"

#include "buf.h"
#include "catalog.h"
#include "lhost.h"
#include "log.h"
#include "threadctx.h"

#include <stdlib.h>
#include <string.h>

int orch_catalog_run(const char *mode, int allow_destructive, FILE *out, int *refused,
                     orch_error *err) {
  *refused = 0;
  orch_threadctx *tc = orch_threadctx_get();
  orch_lua *lh = orch_threadctx_lua(tc, err);
  if (!lh) return err->code ? err->code : ORCH_ELUA;
  orch_error_clear(err);
  char *arg = orch_sprintf("{\"mode\":\"%s\",\"allow_destructive\":%s}", mode,
                           allow_destructive ? "true" : "false");
  char *result = NULL;
  int rc = orch_lua_invoke(lh, "orch.model.catalog", "cli", arg, &result, err);
  free(arg);
  if (rc != ORCH_OK) return rc;
  /* The report is "<status>\n<text>": status 0 = done, 1 = refused. */
  char *text = orch_json_unquote(result);
  free(result);
  if (!text || (text[0] != '0' && text[0] != '1') || text[1] != '\n') {
    free(text);
    orch_error_set(err, ORCH_ELUA, "orch.model.catalog.cli returned an unexpected report");
    return ORCH_ELUA;
  }
  if (out) fputs(text + 2, out);
  if (text[0] == '1') {
    *refused = 1;
    orch_error_set(err, ORCH_EINVAL, "the catalogue changes were refused");
    rc = ORCH_EINVAL;
  }
  free(text);
  return rc;
}

int orch_catalog_command(const orch_config *cfg, const char *sub, int allow_destructive) {
  if (!sub || (strcmp(sub, "plan") && strcmp(sub, "apply"))) {
    fprintf(stderr, "usage: orchestrator catalog plan|apply [--allow-destructive] [flags]\n");
    return 2;
  }
  int begin = orch_threadctx_begin_command(cfg);
  if (begin != 0) return begin;
  orch_error err = ORCH_ERROR_INIT;
  int refused = 0;
  int rc = orch_catalog_run(sub, allow_destructive, stdout, &refused, &err);
  if (rc != ORCH_OK && !refused) {
    char *msg = orch_error_format(&err);
    fprintf(stderr, "orchestrator: catalog %s failed: %s\n", sub, msg);
    if (rc == ORCH_ELUA && !err.file)
      fprintf(stderr, "(run `orchestrator check` for script errors)\n");
    free(msg);
  }
  orch_error_clear(&err);
  orch_threadctx_end_command();
  return rc == ORCH_OK ? 0 : 1;
}

int orch_catalog_serve_sync(const orch_config *cfg) {
  const char *mode = cfg->catalog_sync ? cfg->catalog_sync : "apply";
  if (!strcmp(mode, "off")) {
    LOG_INFO("catalog", "catalogue sync at start-up is off (ORCH_CATALOG_SYNC=off)");
    return ORCH_OK;
  }
  if (strcmp(mode, "apply")) {
    LOG_ERROR("catalog", "ORCH_CATALOG_SYNC must be apply or off, not '%s'; no sync", mode);
    return ORCH_OK;
  }
  char *report = NULL;
  size_t report_len = 0;
  FILE *mem = open_memstream(&report, &report_len);
  orch_error err = ORCH_ERROR_INIT;
  int refused = 0;
  int rc = orch_catalog_run("sync", 0, mem, &refused, &err);
  if (mem) fclose(mem);
  if (rc != ORCH_OK && !refused) {
    char *msg = orch_error_format(&err);
    LOG_ERROR("catalog", "catalogue sync failed: %s", msg);
    free(msg);
  }
  if (report) {
    /* One log line per report line. */
    char *save = NULL;
    for (char *line = strtok_r(report, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      if (refused)
        LOG_ERROR("catalog", "%s", line);
      else
        LOG_INFO("catalog", "%s", line);
    }
  }
  orch_error_clear(&err);
  free(report);
  return refused ? ORCH_EINVAL : ORCH_OK;
}
