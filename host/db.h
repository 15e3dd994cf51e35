/*
 * db.h - one PostgreSQL connection (libpq) with reconnect, and the status enum
 * every database call returns.
 *
 * An orch_db belongs to exactly one thread at a time. It connects lazily and
 * reconnects on the next call after the server went away, so a database
 * restart never needs a host restart.
 */
#pragma once

#include "orch.h"

#include <libpq-fe.h>

typedef struct orch_db orch_db;

/* Outcome of a statement (GNUnet's DB status idea). */
typedef enum orch_dbstatus {
  ORCH_DB_HARD_ERROR = -2, /* the statement failed; retrying won't help */
  ORCH_DB_SOFT_ERROR = -1, /* serialization failure, deadlock or lost connection: retry */
  ORCH_DB_NO_RESULTS = 0,  /* success, no rows */
  ORCH_DB_ONE_RESULT = 1,  /* success, one row */
  ORCH_DB_MANY_RESULTS = 2 /* success, more than one row */
} orch_dbstatus;

/*
 * Session time limit applied to every connection opened afterwards: a
 * transaction left idle longer than this (e.g. by a host stopped with SIGSTOP
 * in the middle of a commit) is ended by the server, which frees its row locks
 * so that other hosts can take the work over. 0 = no limit. Call before
 * threads start.
 */
void orch_db_set_idle_transaction_timeout_ms(int ms);

/* Copy the URI (a libpq URI or conninfo; "postgresql+psycopg://" is accepted too). */
orch_db *orch_db_new(const char *uri);
void orch_db_free(orch_db *db); /* NULL is a no-op */

/* Connect if not connected (or the connection broke). */
int orch_db_ensure(orch_db *db, orch_error *err) ORCH_MUSTCHECK;
/* The libpq connection, valid until the next orch_db_* call; NULL if not connected. */
PGconn *orch_db_conn(orch_db *db);

/*
 * Run one statement with text parameters (NULL entries are SQL NULL).
 * On success *res (if res is not NULL) receives the result, which the caller
 * must PQclear; on failure *res is NULL and err describes the error.
 */
orch_dbstatus orch_db_exec(orch_db *db, const char *sql, int nparams, const char *const *params,
                           PGresult **res, orch_error *err);
/* Run a script of several statements without parameters (no result kept). */
orch_dbstatus orch_db_exec_script(orch_db *db, const char *sql, orch_error *err);

/* Map a finished PGresult to a status; fills err on failure. Does not clear res. */
orch_dbstatus orch_db_status_of(orch_db *db, PGresult *res, orch_error *err);

/* SQLSTATE of the last failed statement on this connection ("" if none). */
const char *orch_db_last_sqlstate(orch_db *db);

/*
 * Whether the last statement failed because the server is not there: no connection could be
 * made, the connection broke, or a SQLSTATE of class 08 or 57P01-57P03. The HTTP layer answers
 * such failures with 503 and Retry-After instead of 500. NULL: 0.
 */
int orch_db_unavailable(const orch_db *db);
