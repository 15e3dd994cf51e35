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
/* Print every migration with "applied <time>" or "pending"; *pending gets the count. */
int orch_migrate_status(orch_db *db, const char *dir, FILE *out, int *pending,
                        orch_error *err) ORCH_MUSTCHECK;
