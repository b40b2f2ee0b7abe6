/*
 * Database helpers the C tests share: remove a database with its -wal and
 * -shm, read one integer from a query, run SQL on a file behind bvtool's back.
 */
#ifndef BV_CHECK_DB_H
#define BV_CHECK_DB_H

#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

#include "check.h"

static inline void remove_db(const char *path)
{
	char p[4200];
	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

/* One integer from a query (-999 on any error, said on stderr). */
static inline long long q_int(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -999;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		fprintf(stderr, "query '%s': %s\n", sql, sqlite3_errmsg(h));
	sqlite3_finalize(st);
	return v;
}

/* SQL on the file through a plain connection (a test's edit), checked. */
static inline void raw_sqlite(const char *path, const char *sql)
{
	sqlite3 *h = NULL;
	CHECK(sqlite3_open(path, &h) == SQLITE_OK &&
		      sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK,
	      "%s: %s", sql, sqlite3_errmsg(h));
	sqlite3_close(h);
}

/* A current file taken back to schema 4 (before --inits): migration 4 -> 5
 * undone, for the tests that craft an older file from a new one. */
#define UNDO_5_RUNS                                                                         \
	"DROP INDEX runs_cell; ALTER TABLE runs DROP COLUMN init;"                              \
	"CREATE UNIQUE INDEX runs_cell ON runs(method, IFNULL(temperature, -1), seed);"
#define UNDO_5                                                                              \
	"DROP VIEW run_accuracy;" UNDO_5_RUNS                                                   \
	"ALTER TABLE sample_stats DROP COLUMN var_init;"                                        \
	"ALTER TABLE sample_stats DROP COLUMN var_data;"                                        \
	"CREATE VIEW run_accuracy AS SELECT r.id AS run_id, r.method, r.temperature, r.seed,"   \
	" r.status, r.test_acc AS final_acc,"                                                   \
	" (SELECT max(m.test_acc) FROM metrics m WHERE m.run_id = r.id) AS best_acc,"           \
	" (SELECT m.epoch FROM metrics m WHERE m.run_id = r.id"                                 \
	" ORDER BY m.test_acc DESC, m.epoch LIMIT 1) AS best_epoch FROM runs r;"

#endif
