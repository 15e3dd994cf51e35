/* migrate.c - apply migrations/NNNN_*.sql in order, once, under an advisory lock. */
#include "orch.h"

#include "log.h"
#include "migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

/* "orchmigr" as a 64-bit advisory lock key; any constant that nothing else uses. */
#define MIGRATE_LOCK_KEY "7813867250811234930"

typedef struct migration {
  int version;
  char *name; /* file name, owned */
} migration;

static int cmp_migration(const void *a, const void *b) {
  const migration *x = a, *y = b;
  return x->version - y->version;
}

static void free_list(migration *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(list[i].name);
  free(list);
}

/* The sorted list of NNNN_*.sql files; duplicate numbers are an error. */
static int list_migrations(const char *dir, migration **out, size_t *count, orch_error *err) {
  DIR *d = opendir(dir);
  if (!d) {
    orch_error_set(err, ORCH_EIO, "cannot open migrations folder '%s'", dir);
    return ORCH_EIO;
  }
  migration *list = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *nm = e->d_name;
    size_t len = strlen(nm);
    if (len < 9 || strcmp(nm + len - 4, ".sql")) continue;
    if (!isdigit((unsigned char)nm[0]) || !isdigit((unsigned char)nm[1]) ||
        !isdigit((unsigned char)nm[2]) || !isdigit((unsigned char)nm[3]) || nm[4] != '_')
      continue;
    if (n == cap) list = orch_xrealloc(list, (cap = cap ? cap * 2 : 16) * sizeof *list);
    list[n].version = atoi(nm);
    list[n].name = orch_strdup(nm);
    n++;
  }
  closedir(d);
  qsort(list, n, sizeof *list, cmp_migration);
  for (size_t i = 1; i < n; i++)
    if (list[i].version == list[i - 1].version) {
      orch_error_set(err, ORCH_ECONFIG, "two migrations numbered %04d: %s and %s", list[i].version,
                     list[i - 1].name, list[i].name);
      free_list(list, n);
      return ORCH_ECONFIG;
    }
  *out = list;
  *count = n;
  return ORCH_OK;
}

static const char *create_table_sql = "CREATE TABLE IF NOT EXISTS orch_schema_migrations ("
                                      " version integer PRIMARY KEY,"
                                      " name text NOT NULL,"
                                      " checksum text NOT NULL,"
                                      " applied_at timestamptz NOT NULL DEFAULT now())";
/* The products folder's own migrations (products/migrations/), numbered on their own. */
static const char *create_product_table_sql = "CREATE TABLE IF NOT EXISTS orch_product_migrations ("
                                              " version integer PRIMARY KEY,"
                                              " name text NOT NULL,"
                                              " checksum text NOT NULL,"
                                              " applied_at timestamptz NOT NULL DEFAULT now())";

/* One folder of migrations and the table that records them. */
typedef struct source {
  const char *dir;
  const char *table;  /* orch_schema_migrations or orch_product_migrations */
  const char *prefix; /* shown before file names ("" or "products/") */
} source;

static int exec_ok(orch_db *db, const char *sql, orch_error *err) {
  return orch_db_exec(db, sql, 0, NULL, NULL, err) < 0 ? ORCH_EDB : ORCH_OK;
}

static int apply_one(orch_db *db, const source *src, const migration *m, FILE *out,
                     orch_error *err) {
  char *path = orch_sprintf("%s/%s", src->dir, m->name);
  char *insert =
      orch_sprintf("INSERT INTO %s(version, name, checksum) VALUES ($1::int, $2, $3)", src->table);
  char *sql = NULL;
  size_t len = 0;
  int rc = orch_read_file(path, &sql, &len, err);
  if (rc != ORCH_OK) goto cleanup;
  char hex[65], version[16];
  orch_sha256_hex(sql, len, hex);
  snprintf(version, sizeof version, "%d", m->version);
  const char *params[] = {version, m->name, hex};
  rc = ORCH_EDB;
  if (exec_ok(db, "BEGIN", err) != ORCH_OK) goto cleanup;
  if (orch_db_exec_script(db, sql, err) < 0) {
    orch_error_prefix(err, "migration %s failed", m->name);
    goto rollback;
  }
  if (orch_db_exec(db, insert, 3, params, NULL, err) < 0) goto rollback;
  if (exec_ok(db, "COMMIT", err) != ORCH_OK) goto cleanup;
  if (out) fprintf(out, "applied %s%s\n", src->prefix, m->name);
  if (!out) LOG_INFO("migrate", "applied %s%s", src->prefix, m->name);
  rc = ORCH_OK;
  goto cleanup;
rollback:
  orch_db_exec(db, "ROLLBACK", 0, NULL, NULL, NULL);
cleanup:
  free(sql);
  free(path);
  free(insert);
  return rc;
}

/*
 * A product migration that once shipped as a core migration of the same file name
 * (0010_example_products.sql) and was applied as one: record it as applied instead
 * of running it again. 1 = adopted, 0 = not a former core migration, <0 = error.
 */
static int adopt_former_core(orch_db *db, const migration *m, FILE *out, orch_error *err) {
  char version[16];
  snprintf(version, sizeof version, "%d", m->version);
  const char *params[] = {version, m->name};
  PGresult *res = NULL;
  if (orch_db_exec(db,
                   "INSERT INTO orch_product_migrations(version, name, checksum, applied_at)"
                   " SELECT $1::int, c.name, c.checksum, c.applied_at FROM orch_schema_migrations c"
                   " WHERE c.name = $2 RETURNING 1",
                   2, params, &res, err) < 0)
    return -1;
  int adopted = PQntuples(res) > 0;
  PQclear(res);
  if (adopted && out)
    fprintf(out, "recorded products/%s (applied earlier as a core migration)\n", m->name);
  if (adopted && !out)
    LOG_INFO("migrate", "recorded products/%s (applied earlier as a core migration)", m->name);
  return adopted;
}

static int is_applied(PGresult *res, int version) {
  for (int r = 0; r < PQntuples(res); r++)
    if (atoi(PQgetvalue(res, r, 0)) == version) return r;
  return -1;
}

/* Apply the pending migrations of one source (under the caller's lock); *applied counts them. */
static int upgrade_source(orch_db *db, const source *src, FILE *out, int *applied,
                          orch_error *err) {
  migration *list = NULL;
  size_t n = 0;
  PGresult *res = NULL;
  int rc = list_migrations(src->dir, &list, &n, err);
  if (rc != ORCH_OK) return rc;
  int products = !strcmp(src->table, "orch_product_migrations");
  char *select = orch_sprintf("SELECT version FROM %s", src->table);
  rc = ORCH_EDB;
  if (exec_ok(db, products ? create_product_table_sql : create_table_sql, err) != ORCH_OK)
    goto cleanup;
  if (orch_db_exec(db, select, 0, NULL, &res, err) < 0) goto cleanup;
  for (size_t i = 0; i < n; i++) {
    if (is_applied(res, list[i].version) >= 0) continue;
    if (products) {
      int adopted = adopt_former_core(db, &list[i], out, err);
      if (adopted < 0) goto cleanup;
      if (adopted) continue;
    }
    if (apply_one(db, src, &list[i], out, err) != ORCH_OK) goto cleanup;
    ++*applied;
  }
  rc = ORCH_OK;
cleanup:
  free(select);
  PQclear(res);
  free_list(list, n);
  return rc;
}

static int is_dir(const char *path) {
  DIR *d = path ? opendir(path) : NULL;
  if (d) closedir(d);
  return d != NULL;
}

int orch_migrate_upgrade(orch_db *db, const char *dir, FILE *out, orch_error *err) {
  return orch_migrate_upgrade_all(db, dir, NULL, out, err);
}

int orch_migrate_upgrade_all(orch_db *db, const char *dir, const char *product_dir, FILE *out,
                             orch_error *err) {
  /* Check the folders before taking the lock: a broken folder changes nothing. */
  migration *list = NULL;
  size_t n = 0;
  int rc = list_migrations(dir, &list, &n, err);
  if (rc != ORCH_OK) return rc;
  free_list(list, n);
  int with_products = is_dir(product_dir);
  if (with_products) {
    rc = list_migrations(product_dir, &list, &n, err);
    if (rc != ORCH_OK) return rc;
    free_list(list, n);
  }
  if (orch_db_exec(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL, err) < 0)
    return ORCH_EDB;
  int applied = 0;
  source core = {dir, "orch_schema_migrations", ""};
  source products = {product_dir, "orch_product_migrations", "products/"};
  rc = upgrade_source(db, &core, out, &applied, err);
  if (rc == ORCH_OK && with_products) rc = upgrade_source(db, &products, out, &applied, err);
  if (rc == ORCH_OK && out && applied == 0) fprintf(out, "database is up to date\n");
  orch_db_exec(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL, NULL);
  return rc;
}

static int status_source(orch_db *db, const source *src, FILE *out, int *pending, orch_error *err) {
  migration *list = NULL;
  size_t n = 0;
  PGresult *res = NULL;
  int rc = list_migrations(src->dir, &list, &n, err);
  if (rc != ORCH_OK) return rc;
  char *sql = orch_sprintf(
      "SELECT version, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
      "name FROM %s",
      src->table);
  orch_dbstatus st = orch_db_exec(db, sql, 0, NULL, &res, err);
  free(sql);
  if (st < 0) {
    /* No table yet means nothing is applied. */
    if (strcmp(orch_db_last_sqlstate(db), "42P01") != 0) {
      rc = ORCH_EDB;
      goto cleanup;
    }
    orch_error_clear(err);
  }
  for (size_t i = 0; i < n; i++) {
    int row = res ? is_applied(res, list[i].version) : -1;
    char *shown = orch_sprintf("%s%s", src->prefix, list[i].name);
    if (row >= 0) {
      if (out) fprintf(out, "%-40s applied %s\n", shown, PQgetvalue(res, row, 1));
    } else {
      if (out) fprintf(out, "%-40s pending\n", shown);
      ++*pending;
    }
    free(shown);
  }
  rc = ORCH_OK;
cleanup:
  PQclear(res);
  free_list(list, n);
  return rc;
}

int orch_migrate_status(orch_db *db, const char *dir, FILE *out, int *pending, orch_error *err) {
  return orch_migrate_status_all(db, dir, NULL, out, pending, err);
}

int orch_migrate_status_all(orch_db *db, const char *dir, const char *product_dir, FILE *out,
                            int *pending, orch_error *err) {
  *pending = 0;
  source core = {dir, "orch_schema_migrations", ""};
  int rc = status_source(db, &core, out, pending, err);
  if (rc == ORCH_OK && is_dir(product_dir)) {
    source products = {product_dir, "orch_product_migrations", "products/"};
    rc = status_source(db, &products, out, pending, err);
  }
  return rc;
}
