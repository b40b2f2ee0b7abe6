/*
 * The samples and in-bag counts of db.h: the labels of each split, stored
 * once and afterwards only verified against the data (a collection is of one
 * data set), and the bootstrap in-bag counts of every training sample per
 * seed. Statements and helpers as in db.c (db_int.h).
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "db_int.h"

static const char *const stmt_sql[N_STMT] = {
	[S_SAMPLES_COUNT] = "SELECT count(*) FROM samples WHERE split = ?1",
	[S_SAMPLES_GET] = "SELECT sample_idx, label FROM samples WHERE split = ?1 ORDER BY sample_idx",
	[S_SAMPLES_INSERT] = "INSERT INTO samples(split, sample_idx, label) VALUES(?1, ?2, ?3)",
	[S_INBAG_DELETE] = "DELETE FROM inbag WHERE seed = ?1",
	[S_INBAG_INSERT] = "INSERT INTO inbag(seed, sample_idx, count) VALUES(?1, ?2, ?3)",
	[S_INBAG_GET] = "SELECT sample_idx, count FROM inbag WHERE seed = ?1 ORDER BY sample_idx",
};

/* The cached statement `id` of this file's stmt_sql, ready to bind. */
static int stmt(bv_db *db, enum stmt_id id, sqlite3_stmt **out)
{
	return db_stmt(db, id, stmt_sql[id], out);
}

/* test or train */
static int valid_split(const char *split)
{
	return split && (strcmp(split, "test") == 0 || strcmp(split, "train") == 0);
}

/* ---- samples and bootstrap ---------------------------------------------- */

static int count_samples(bv_db *db, const char *split, int *out_n)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_SAMPLES_COUNT, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, split, -1, SQLITE_STATIC))) == 0 &&
	    (rc = step(db, st)) == 1) {
		*out_n = sqlite3_column_int(st, 0);
		rc = 0;
	}
	unstmt(st);
	return rc;
}

/* The stored labels must be exactly `labels`: same count, same values. */
static int verify_samples(bv_db *db, const char *split, const int *labels, int n, int stored)
{
	sqlite3_stmt *st = NULL;
	int rc, i = 0;
	if (stored != n)
		return bv_error_set(BV_EMISMATCH, "database '%s' holds %d %s samples, the data has %d",
				    db->path, stored, split, n);
	if ((rc = stmt(db, S_SAMPLES_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, split, -1, SQLITE_STATIC))) != 0)
		goto done;
	for (; (rc = step(db, st)) == 1; i++) {
		int idx = sqlite3_column_int(st, 0), label = sqlite3_column_int(st, 1);
		if (idx != i || i >= n) {
			rc = bv_error_set(BV_EFORMAT, "database '%s': the %s samples are not numbered 0..%d",
					  db->path, split, n - 1);
			goto done;
		}
		if (label != labels[i]) {
			rc = bv_error_set(BV_EMISMATCH,
					  "database '%s': %s sample %d has label %d in the database, "
					  "%d in the data",
					  db->path, split, i, label, labels[i]);
			goto done;
		}
	}
done:
	unstmt(st);
	return rc;
}

int bv_db_samples_put(bv_db *db, const char *split, const int *labels, int n)
{
	sqlite3_stmt *st = NULL;
	int rc, own, stored = 0;
	if (!valid_split(split))
		return bv_error_set(BV_EINVAL, "bad split '%s' (test or train)", split ? split : "");
	if (n < 0 || (n > 0 && !labels))
		return bv_error_set(BV_EINVAL, "bad sample count %d", n);
	if ((rc = db_tx_open(db, &own)) != 0)
		return rc;
	if ((rc = count_samples(db, split, &stored)) != 0)
		goto done;
	if (stored > 0) {
		rc = verify_samples(db, split, labels, n, stored);
		goto done;
	}
	if ((rc = stmt(db, S_SAMPLES_INSERT, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, split, -1, SQLITE_STATIC))) != 0)
		goto done;
	for (int i = 0; i < n && rc == 0; i++) {
		if ((rc = bind_failed(db, sqlite3_bind_int(st, 2, i) |
						  sqlite3_bind_int(st, 3, labels[i]))) == 0)
			rc = run(db, st);
		sqlite3_reset(st); /* keeps the bindings: the split stays bound */
	}
done:
	unstmt(st);
	return db_tx_close(db, own, rc);
}

int bv_db_samples_get(bv_db *db, const char *split, int *labels, int cap, int *out_n)
{
	sqlite3_stmt *st = NULL;
	int rc, i = 0;
	*out_n = 0;
	if (!valid_split(split))
		return bv_error_set(BV_EINVAL, "bad split '%s' (test or train)", split ? split : "");
	if (!labels)
		return count_samples(db, split, out_n);
	if ((rc = stmt(db, S_SAMPLES_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, split, -1, SQLITE_STATIC))) != 0)
		goto done;
	for (; (rc = step(db, st)) == 1; i++) {
		if (sqlite3_column_int(st, 0) != i) {
			rc = bv_error_set(BV_EFORMAT, "database '%s': the %s samples are not numbered from 0",
					  db->path, split);
			goto done;
		}
		if (i < cap)
			labels[i] = sqlite3_column_int(st, 1);
	}
	if (rc == 0 && i > cap)
		rc = bv_error_set(BV_EINVAL, "database '%s' holds %d %s samples, more than the %d expected",
				  db->path, i, split, cap);
	if (rc == 0)
		*out_n = i;
done:
	unstmt(st);
	return rc;
}

int bv_db_inbag_put(bv_db *db, int seed, const int *counts, int n)
{
	sqlite3_stmt *st = NULL;
	int rc, own;
	if (n < 0 || (n > 0 && !counts))
		return bv_error_set(BV_EINVAL, "bad in-bag count %d", n);
	if ((rc = db_tx_open(db, &own)) != 0)
		return rc;
	if ((rc = stmt(db, S_INBAG_DELETE, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int(st, 1, seed))) != 0 || (rc = run(db, st)) != 0)
		goto done;
	unstmt(st);
	if ((rc = stmt(db, S_INBAG_INSERT, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int(st, 1, seed))) != 0)
		goto done;
	for (int i = 0; i < n && rc == 0; i++) {
		if ((rc = bind_failed(db, sqlite3_bind_int(st, 2, i) |
						  sqlite3_bind_int(st, 3, counts[i]))) == 0)
			rc = run(db, st);
		sqlite3_reset(st);
	}
done:
	unstmt(st);
	return db_tx_close(db, own, rc);
}

int bv_db_inbag_get(bv_db *db, int seed, int *counts, int n)
{
	sqlite3_stmt *st = NULL;
	int rc, i = 0;
	if ((rc = stmt(db, S_INBAG_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int(st, 1, seed))) != 0)
		goto done;
	for (; (rc = step(db, st)) == 1; i++) {
		if (sqlite3_column_int(st, 0) != i) {
			rc = bv_error_set(BV_EFORMAT,
					  "database '%s': the in-bag counts of seed %d are not numbered from 0",
					  db->path, seed);
			goto done;
		}
		if (i < n)
			counts[i] = sqlite3_column_int(st, 1);
	}
	if (rc == 0 && i == 0)
		rc = bv_error_set(BV_ESTATE, "database '%s' has no in-bag counts for seed %d", db->path,
				  seed);
	else if (rc == 0 && i != n)
		rc = bv_error_set(BV_EMISMATCH,
				  "database '%s' holds %d in-bag counts for seed %d, the data has %d",
				  db->path, i, seed, n);
done:
	unstmt(st);
	return rc;
}
