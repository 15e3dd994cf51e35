/* db.c - a libpq connection with lazy connect, reconnect and status mapping. */
#include "orch.h"

#include "db.h"
#include "log.h"
#include "metrics.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct orch_db {
  char *uri;    /* owned */
  PGconn *conn; /* owned; NULL until connected */
  char sqlstate[6];
  int unavailable; /* the last statement failed for want of a server (see orch_db_unavailable) */
};

/* libpq does not know SQLAlchemy's driver suffixes; orchestrator-core users have them. */
static char *normalise_uri(const char *uri) {
  static const char *prefixes[] = {"postgresql+psycopg2://", "postgresql+psycopg://",
                                   "postgres+psycopg://"};
  for (size_t i = 0; i < ORCH_ARRAY_LEN(prefixes); i++) {
    size_t n = strlen(prefixes[i]);
    if (!strncmp(uri, prefixes[i], n)) return orch_sprintf("postgresql://%s", uri + n);
  }
  return orch_strdup(uri);
}

static int idle_tx_timeout_ms;

void orch_db_set_idle_transaction_timeout_ms(int ms) {
  idle_tx_timeout_ms = ms;
}

orch_db *orch_db_new(const char *uri) {
  orch_db *db = orch_xcalloc(1, sizeof *db);
  db->uri = normalise_uri(uri ? uri : "");
  return db;
}

void orch_db_free(orch_db *db) {
  if (!db) return;
  if (db->conn) PQfinish(db->conn);
  free(db->uri);
  free(db);
}

static void notice_quiet(void *arg, const char *message) {
  ORCH_UNUSED(arg);
  LOG_DEBUG("db", "notice: %s", message);
}

/* An idle connection whose server went away (a restart) has unread input: its FATAL message or
   the end of the stream. Reading it now marks the connection bad, so that it is replaced before
   a statement is sent on it rather than failing that statement. */
static void notice_closed_while_idle(orch_db *db) {
  if (!db->conn || PQstatus(db->conn) != CONNECTION_OK ||
      PQtransactionStatus(db->conn) != PQTRANS_IDLE)
    return;
  struct pollfd p = {.fd = PQsocket(db->conn), .events = POLLIN};
  if (p.fd >= 0 && poll(&p, 1, 0) > 0) PQconsumeInput(db->conn); /* notifications stay queued */
}

int orch_db_ensure(orch_db *db, orch_error *err) {
  notice_closed_while_idle(db);
  if (db->conn && PQstatus(db->conn) == CONNECTION_OK) return ORCH_OK;
  if (db->conn) {
    PQfinish(db->conn);
    db->conn = NULL;
  }
  /* Later keywords override what the URI sets: UTC like orchestrator-core. */
  char options[128];
  snprintf(options, sizeof options, "-c timezone=UTC -c idle_in_transaction_session_timeout=%d",
           idle_tx_timeout_ms);
  const char *keys[] = {"dbname", "options", "application_name", "connect_timeout", NULL};
  const char *vals[] = {db->uri, options, "orchestrator", "10", NULL};
  PGconn *conn = PQconnectdbParams(keys, vals, 1);
  if (!conn || PQstatus(conn) != CONNECTION_OK) {
    const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
      n--;
    orch_error_set(err, ORCH_EDB, "cannot connect to the database: %.*s", (int)n, msg);
    if (conn) PQfinish(conn);
    db->unavailable = 1;
    return ORCH_EDB;
  }
  PQsetNoticeProcessor(conn, notice_quiet, NULL);
  db->conn = conn;
  return ORCH_OK;
}

PGconn *orch_db_conn(orch_db *db) {
  return db->conn;
}

const char *orch_db_last_sqlstate(orch_db *db) {
  return db->sqlstate;
}

int orch_db_unavailable(const orch_db *db) {
  return db && db->unavailable;
}

/* SQLSTATEs of a server that is going away or not there yet: connection exceptions (class 08),
 * admin/crash shutdown, cannot connect now (57P01-57P03). */
static int state_unavailable(const char *state) {
  return state && (!strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57P02") ||
                   !strcmp(state, "57P03"));
}

orch_dbstatus orch_db_status_of(orch_db *db, PGresult *res, orch_error *err) {
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  db->sqlstate[0] = '\0';
  db->unavailable = 0;
  if (st == PGRES_COMMAND_OK) return ORCH_DB_NO_RESULTS;
  if (st == PGRES_TUPLES_OK) {
    int n = PQntuples(res);
    return n == 0 ? ORCH_DB_NO_RESULTS : n == 1 ? ORCH_DB_ONE_RESULT : ORCH_DB_MANY_RESULTS;
  }
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *msg = res ? PQresultErrorMessage(res) : NULL;
  if (!msg || !*msg) msg = db->conn ? PQerrorMessage(db->conn) : "no connection";
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
    n--;
  if (state) snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state);
  int lost = !db->conn || PQstatus(db->conn) != CONNECTION_OK;
  /* An error without a SQLSTATE comes from libpq itself, not from the server: in practice the
   * connection broke ("server closed the connection unexpectedly" can leave PQstatus OK). */
  db->unavailable = lost || !state || state_unavailable(state);
  int soft = db->unavailable || (state && (!strcmp(state, "40001") || !strcmp(state, "40P01")));
  orch_error_set(err, ORCH_EDB, "%.*s", (int)n, msg);
  orch_metrics_db_error(soft);
  return soft ? ORCH_DB_SOFT_ERROR : ORCH_DB_HARD_ERROR;
}

/*
 * A connection that sat idle while the server restarted looks fine until it is
 * used. When a statement outside any transaction fails because the connection
 * is gone, reconnect and send it once more: the server never saw it (or
 * terminated the session before running it).
 */
static int lost_while_idle(orch_db *db, PGTransactionStatusType before) {
  return before == PQTRANS_IDLE && PQstatus(db->conn) == CONNECTION_BAD;
}

orch_dbstatus orch_db_exec(orch_db *db, const char *sql, int nparams, const char *const *params,
                           PGresult **res, orch_error *err) {
  if (res) *res = NULL;
  if (orch_db_ensure(db, err) != ORCH_OK) return ORCH_DB_SOFT_ERROR;
  PGTransactionStatusType before = PQtransactionStatus(db->conn);
  PGresult *r = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
  if (!r || PQresultStatus(r) == PGRES_FATAL_ERROR) {
    if (lost_while_idle(db, before)) {
      PQclear(r);
      r = NULL;
      if (orch_db_ensure(db, err) != ORCH_OK) return ORCH_DB_SOFT_ERROR;
      LOG_INFO("db", "reconnected to the database");
      r = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    }
  }
  orch_dbstatus st = orch_db_status_of(db, r, err);
  if (st < 0 || !res) {
    PQclear(r);
    return st;
  }
  *res = r;
  return st;
}

orch_dbstatus orch_db_exec_script(orch_db *db, const char *sql, orch_error *err) {
  if (orch_db_ensure(db, err) != ORCH_OK) return ORCH_DB_SOFT_ERROR;
  PGresult *r = PQexec(db->conn, sql);
  orch_dbstatus st = orch_db_status_of(db, r, err);
  PQclear(r);
  return st;
}
