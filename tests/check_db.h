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

#endif
