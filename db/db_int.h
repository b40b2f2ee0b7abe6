/*
 * db's private seam between opening a connection (open.c: checking the file,
 * creating or migrating its schema, closing) and the reads and writes on it
 * (db.c: statements, transactions, configuration, runs; samples.c: samples
 * and in-bag counts; results.c: snapshots, metrics and decompose's tables):
 * the connection itself and the helpers they share. Not installed, not
 * included outside db/.
 */
#ifndef BV_DB_INT_H
#define BV_DB_INT_H

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>

#include "db.h"

/* The statements prepared once per connection (db_stmt), each file's SQL in
 * its own stmt_sql table; bv_db_close finalizes them. */
enum stmt_id {
	S_CONFIG_GET,
	S_CONFIG_SET,
	S_RUN_FIND,
	S_RUN_INSERT,
	S_RUN_GET,
	S_RUNS_LIST,
	S_RUN_EXISTS,
	S_RUNS_ANALYSABLE,
	S_METRICS_ACC,
	S_RUN_STATUS,
	S_RUN_FINISH,
	S_RESET_SNAPSHOTS,
	S_RESET_METRICS,
	S_RESET_DYNAMICS,
	S_RESET_RUN,
	S_RUN_DELETE,
	S_SAMPLES_COUNT,
	S_SAMPLES_GET,
	S_SAMPLES_INSERT,
	S_INBAG_DELETE,
	S_INBAG_INSERT,
	S_INBAG_GET,
	S_METRICS_PUT,
	S_SNAPSHOT_PUT,
	S_LOGITS_GET,
	S_SNAPSHOT_K,
	S_EPOCHS,
	S_METRICS_GET,
	S_STATS_CLEAR,
	S_DECOMP_CLEAR,
	S_DECOMP_PUT,
	S_CORR_PUT,
	N_STMT
};

struct bv_db {
	sqlite3 *h;
	char *path;
	sqlite3_stmt *stmt[N_STMT]; /* prepared on first use */
	sqlite3_stmt *stats_batch;  /* STATS_BATCH sample_stats rows, prepared on first use */
};

/* SQLite's last error on the connection as a bvtool error naming its file
 * (BV_EFORMAT for a damaged file, BV_ENOMEM, else BV_EDB). Returns the code. */
int db_err(bv_db *db);

/* Close the transaction of one call (own: its own BEGIN IMMEDIATE, else a
 * savepoint inside the caller's): commit when rc is 0, else undo it and return
 * rc. Returns 0 or the error. */
int db_tx_close(bv_db *db, int own, int rc);

/* Open the transaction of one call: BEGIN IMMEDIATE when none is open (*own =
 * 1), else a savepoint inside the caller's transaction. */
int db_tx_open(bv_db *db, int *own);

/* Run SQL that returns no rows. */
int db_exec(bv_db *db, const char *sql);

/* The cached statement `id` (prepared from sql on first use), ready to bind. */
int db_stmt(bv_db *db, enum stmt_id id, const char *sql, sqlite3_stmt **out);

/* Grow *p (of *cap elements of `size` bytes) to hold at least n + 1. */
int db_grow(void **p, int *cap, int n, size_t size);

/* BV_EINVAL "database 'x' has no run 7". */
int db_no_run(bv_db *db, int64_t id);

/* The small helpers every db file uses, inline (static: each file's own). */

/* Done with a cached statement: release its read lock and its bound pointers. */
static inline void unstmt(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

/* 1 for a row, 0 when done, BV_EDB with the message on an error. */
static inline int step(bv_db *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_err(db);
}

/* Step a statement that returns no rows. */
static inline int run(bv_db *db, sqlite3_stmt *st)
{
	int rc = step(db, st);
	return rc > 0 ? 0 : rc;
}

/* A real, NAN as NULL. */
static inline int bind_real(sqlite3_stmt *st, int i, double v)
{
	return isnan(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}

/* A name of names.c as a bound text (static: the table outlives the statement). */
static inline int bind_name(sqlite3_stmt *st, int i, const char *name)
{
	return sqlite3_bind_text(st, i, name, -1, SQLITE_STATIC);
}

/* 0, or the connection's error when a bind (or the OR of several) failed. */
static inline int bind_failed(bv_db *db, int rc)
{
	return rc == SQLITE_OK ? 0 : db_err(db);
}

/* A real column, NULL as NAN. */
static inline double column_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* A text column into out ("" for NULL), cut to size. */
static inline void column_text(char *out, size_t size, sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(out, size, "%s", t ? (const char *)t : "");
}

#endif
