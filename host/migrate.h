/*
 * migrate.h - forward-only SQL migrations from a folder of NNNN_name.sql files.
 *
 * Each file runs in its own transaction and is recorded in the table
 * orch_schema_migrations. The whole upgrade holds a PostgreSQL advisory lock,
 * so two hosts upgrading at once apply every file exactly once.
 */
#pragma once

#include "orch.h"

#include "db.h"

#include <stdio.h>

/* Apply pending migrations; reports each applied file on `out` (may be NULL). */
int orch_migrate_upgrade(orch_db *db, const char *dir, FILE *out, orch_error *err) ORCH_MUSTCHECK;
/*
 * The same, then the products folder's own migrations (product_dir, e.g.
 * products/migrations; skipped when NULL or missing) under the same lock,
 * recorded in orch_product_migrations. A product migration whose file name
 * was applied earlier as a core migration (0010_example_products.sql before it
 * moved to products/migrations) is recorded as applied, not run again.
 */
int orch_migrate_upgrade_all(orch_db *db, const char *dir, const char *product_dir, FILE *out,
                             orch_error *err) ORCH_MUSTCHECK;
/* Print every migration with "applied <time>" or "pending"; *pending gets the count. */
int orch_migrate_status(orch_db *db, const char *dir, FILE *out, int *pending,
                        orch_error *err) ORCH_MUSTCHECK;
/* The same for both folders (product migrations shown as products/NNNN_name.sql). */
int orch_migrate_status_all(orch_db *db, const char *dir, const char *product_dir, FILE *out,
                            int *pending, orch_error *err) ORCH_MUSTCHECK;
