/*
 * db's private seam between opening a connection (open.c: checking the file,
 * creating or migrating its schema, closing) and the reads and writes on it
 * (db.c): the connection itself and the helpers both use. Not installed, not
 * included outside db/.
 */
#ifndef BV_DB_INT_H
#define BV_DB_INT_H

#include <sqlite3.h>

#include "db.h"

/* The statements db.c prepares once per connection (their SQL is db.c's
 * stmt_sql); bv_db_close finalizes them. */
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
	S_RESET_RUN,
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

#endif
