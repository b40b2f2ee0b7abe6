/*
 * The results of db.h: snapshots (a run's logits of a split at an epoch, one
 * BLOB, written in one transaction with the epoch's metrics row), the metrics
 * rows, the class count the snapshots share, and decompose's tables
 * (sample_stats rows in batches, decompositions, correlations). Statements and
 * helpers as in db.c (db_int.h).
 */
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "db_int.h"

static const char *const stmt_sql[N_STMT] = {
	[S_RUN_EXISTS] = "SELECT 1 FROM runs WHERE id = ?1",
	[S_METRICS_PUT] = "INSERT OR REPLACE INTO metrics(run_id, epoch, lr, train_loss, train_acc, "
			  "test_acc, wsl_weight, filtered, seconds) "
			  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[S_SNAPSHOT_PUT] = "INSERT OR REPLACE INTO snapshots(run_id, epoch, split, n, k, logits) "
			   "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	/* the BLOB is read by sqlite3_blob_read, straight into the caller's array */
	/* a BLOB is read by sqlite3_blob_read, straight into the caller's array;
	 * another value (text a user's SQL made, X'..' || ...) as its bytes */
	[S_LOGITS_GET] = "SELECT n, k, typeof(logits) = 'blob', length(logits), rowid, "
			 "CASE WHEN typeof(logits) = 'blob' THEN NULL ELSE logits END "
			 "FROM snapshots WHERE run_id = ?1 AND epoch = ?2 AND split = ?3",
	[S_SNAPSHOT_K] = "SELECT k, typeof(k) FROM snapshots WHERE run_id = ?1 AND epoch = ?2 "
			 "AND split = ?3",
	[S_EPOCHS] = "SELECT epoch FROM snapshots WHERE run_id = ?1 AND split = ?2 ORDER BY epoch",
	[S_METRICS_GET] = "SELECT epoch, lr, train_loss, train_acc, test_acc, wsl_weight, filtered, "
			  "seconds FROM metrics WHERE run_id = ?1 ORDER BY epoch",
	[S_METRICS_ACC] = "SELECT test_acc, quote(test_acc) FROM metrics WHERE run_id = ?1 AND "
			  "epoch = ?2",
	[S_STATS_CLEAR] = "DELETE FROM sample_stats WHERE temperature = ?1 AND epoch = ?2 AND split = ?3",
	[S_DECOMP_CLEAR] = "DELETE FROM decompositions WHERE temperature = ?1 AND epoch = ?2 "
			   "AND split = ?3",
	[S_DECOMP_PUT] = "INSERT OR REPLACE INTO decompositions(temperature, epoch, split, criterion, "
			 "n_samples, seeds, max_identity_error, created_at) "
			 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
	[S_CORR_PUT] = "INSERT OR REPLACE INTO correlations(split, epoch, method, criterion, n_points, "
		       "pearson_r, pearson_p, spearman_rho, spearman_p, r_ci_low, r_ci_high, n_boot, "
		       "created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
		       "strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
};

/* Rows per INSERT of bv_db_stats_put. One statement per row spent most of its
 * time reopening the table's cursor and seeking from the root; 256 rows per
 * statement wrote 300,000 rows in half the time (docs/benchmarks.md, issue 4). */
enum { STATS_BATCH = 256, STATS_SHARED = 4, STATS_PER_ROW = 12 };

_Static_assert(sizeof(float) == 4, "logits BLOBs are float32");

/* The cached statement `id` of this file's stmt_sql, ready to bind. */
static int stmt(bv_db *db, enum stmt_id id, sqlite3_stmt **out)
{
	return db_stmt(db, id, stmt_sql[id], out);
}

/* ---- snapshots and metrics ---------------------------------------------- */

static int put_snapshot(bv_db *db, int64_t run_id, int epoch, const char *split,
			const float *logits, int n, int k)
{
	sqlite3_stmt *st = NULL;
	const sqlite3_uint64 bytes = (sqlite3_uint64)n * (sqlite3_uint64)k * 4;
	int rc;
	if (n < 0 || bytes > INT_MAX)
		return bv_error_set(BV_EINVAL, "bad %s snapshot size %d x %d", split, n, k);
	if ((rc = stmt(db, S_SNAPSHOT_PUT, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id) | sqlite3_bind_int(st, 2, epoch) |
					  sqlite3_bind_text(st, 3, split, -1, SQLITE_STATIC) |
					  sqlite3_bind_int(st, 4, n) | sqlite3_bind_int(st, 5, k) |
					  (bytes ? sqlite3_bind_blob64(st, 6, logits, bytes,
								       SQLITE_STATIC)
						 : sqlite3_bind_zeroblob(st, 6, 0)))) == 0)
		rc = run(db, st);
	unstmt(st);
	return rc;
}

int bv_db_snapshot_put(bv_db *db, int64_t run_id, const bv_db_metrics *m,
		       const float *test_logits, int n_test, const float *train_logits,
		       int n_train, int k)
{
	sqlite3_stmt *st = NULL;
	int rc, own;
	if (!m)
		return bv_error_set(BV_EINVAL, "no metrics for the snapshot of run %lld",
				    (long long)run_id);
	if ((test_logits || train_logits) && k <= 0)
		return bv_error_set(BV_EINVAL, "bad class count %d for a snapshot", k);
	if ((rc = db_tx_open(db, &own)) != 0)
		return rc;
	/* an explicit check: metrics has no foreign key, and the message is clearer */
	if ((rc = stmt(db, S_RUN_EXISTS, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id))) != 0 ||
	    (rc = step(db, st)) < 0)
		goto done;
	if (rc == 0) {
		rc = db_no_run(db, run_id);
		goto done;
	}
	unstmt(st);
	if ((rc = stmt(db, S_METRICS_PUT, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id) |
					  sqlite3_bind_int(st, 2, m->epoch) | bind_real(st, 3, m->lr) |
					  bind_real(st, 4, m->train_loss) |
					  bind_real(st, 5, m->train_acc) |
					  bind_real(st, 6, m->test_acc) |
					  bind_real(st, 7, m->wsl_weight) |
					  bind_real(st, 8, m->filtered) |
					  bind_real(st, 9, m->seconds))) != 0 ||
	    (rc = run(db, st)) != 0)
		goto done;
	if (test_logits &&
	    (rc = put_snapshot(db, run_id, m->epoch, "test", test_logits, n_test, k)) != 0)
		goto done;
	if (train_logits)
		rc = put_snapshot(db, run_id, m->epoch, "train", train_logits, n_train, k);
done:
	unstmt(st);
	return db_tx_close(db, own, rc);
}

int bv_db_logits_get(bv_db *db, int64_t run_id, int epoch, const char *split, float *out,
		     int n, int k)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_LOGITS_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id) | sqlite3_bind_int(st, 2, epoch) |
					  sqlite3_bind_text(st, 3, split, -1, SQLITE_STATIC))) != 0 ||
	    (rc = step(db, st)) < 0)
		goto done;
	if (rc == 0) {
		rc = bv_error_set(BV_ESTATE, "database '%s' has no %s snapshot of run %lld at epoch %d",
				  db->path, split, (long long)run_id, epoch);
		goto done;
	}
	const int sn = sqlite3_column_int(st, 0), sk = sqlite3_column_int(st, 1);
	const int is_blob = sqlite3_column_int(st, 2);
	const sqlite3_int64 rowid = sqlite3_column_int64(st, 4);
	const void *other = is_blob ? NULL : sqlite3_column_blob(st, 5);
	const sqlite3_int64 bytes = is_blob ? sqlite3_column_int64(st, 3) : sqlite3_column_bytes(st, 5);
	const sqlite3_int64 want = (sqlite3_int64)n * (sqlite3_int64)k * 4;
	if (sn != n || sk != k || bytes != want) {
		rc = bv_error_set(BV_EFORMAT,
				  "database '%s': the %s snapshot of run %lld at epoch %d holds "
				  "%d x %d logits in %lld bytes, expected %d x %d",
				  db->path, split, (long long)run_id, epoch, sn, sk, (long long)bytes, n,
				  k);
		goto done;
	}
	rc = 0;
	/* little-endian float32 on a little-endian host: the bytes are the array.
	 * One copy, from the file's pages into out, where sqlite3_column_blob
	 * would assemble the overflow pages into a buffer of its own first. */
	if (other) {
		memcpy(out, other, (size_t)bytes);
	} else if (bytes > 0 && bytes <= INT_MAX) {
		sqlite3_blob *b = NULL;
		if (sqlite3_blob_open(db->h, "main", "snapshots", "logits", rowid, 0, &b) != SQLITE_OK ||
		    sqlite3_blob_read(b, out, (int)bytes, 0) != SQLITE_OK)
			rc = db_err(db);
		sqlite3_blob_close(b);
	} else if (bytes > 0) {
		rc = bv_error_set(BV_EFORMAT, "database '%s': the %s snapshot of run %lld at epoch %d "
					      "has %lld bytes, more than SQLite reads at once",
				  db->path, split, (long long)run_id, epoch, (long long)bytes);
	}
done:
	unstmt(st);
	return rc;
}

int bv_db_snapshots_k(bv_db *db, int *out_k, const char *split, const bv_db_snapshot_ref *refs,
		      int n, const char *what)
{
	sqlite3_stmt *st = NULL;
	int *k = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1)); /* each ref's k, 0 if none */
	int rc = 0, best = 0, n_best = 0;
	*out_k = 0;
	if (!k)
		return bv_error_set(BV_ENOMEM, "out of memory");
	if ((rc = stmt(db, S_SNAPSHOT_K, &st)) != 0)
		goto done;
	for (int i = 0; i < n; i++) {
		k[i] = 0;
		if ((rc = bind_failed(db, sqlite3_bind_int64(st, 1, refs[i].run_id) |
						  sqlite3_bind_int(st, 2, refs[i].epoch) |
						  bind_name(st, 3, split))) != 0 ||
		    (rc = step(db, st)) < 0)
			goto done;
		if (rc == 1) {
			const sqlite3_int64 v = sqlite3_column_int64(st, 0);
			if (sqlite3_column_type(st, 0) != SQLITE_INTEGER || v < 1 || v > INT_MAX) {
				char text[72];
				const unsigned char *t = sqlite3_column_text(st, 0);
				size_t len = 0;
				for (; t && *t && len < 40; t++)
					text[len++] = *t >= 0x20 && *t < 0x7f ? (char)*t : '?';
				text[len] = '\0';
				rc = bv_error_set(BV_EFORMAT,
						  "'%s': run %lld epoch %d has k = %s, expected a "
						  "whole number > 0 (the database is damaged)",
						  db->path, (long long)refs[i].run_id,
						  refs[i].epoch, t ? text : "NULL");
				goto done;
			}
			k[i] = (int)v;
		}
		sqlite3_reset(st);
	}
	/* the group's k is the one most snapshots have (the first of a tie) */
	for (int i = 0; i < n; i++) {
		int count = 0;
		for (int j = 0; j < n && k[i]; j++)
			count += k[j] == k[i];
		if (count > n_best) {
			best = k[i];
			n_best = count;
		}
	}
	for (int i = 0; i < n; i++)
		if (k[i] && k[i] != best) {
			rc = bv_error_set(BV_EFORMAT,
					  "'%s': run %lld epoch %d has k = %d, the other snapshots of %s "
					  "have %d (the database is damaged)",
					  db->path, (long long)refs[i].run_id, refs[i].epoch, k[i],
					  what, best);
			goto done;
		}
	*out_k = best;
	rc = 0;
done:
	unstmt(st);
	free(k);
	return rc;
}

int bv_db_run_test_acc(bv_db *db, int64_t run_id, int epoch, double *out)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_METRICS_ACC, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id) |
					  sqlite3_bind_int(st, 2, epoch))) != 0 ||
	    (rc = step(db, st)) < 0)
		goto done;
	if (rc == 0) {
		rc = bv_error_set(BV_ESTATE, "run %lld has no metrics for epoch %d",
				  (long long)run_id, epoch);
		goto done;
	}
	const int t = sqlite3_column_type(st, 0);
	const double v = sqlite3_column_double(st, 0);
	if ((t == SQLITE_INTEGER || t == SQLITE_FLOAT) && v >= 0 && v <= 1) {
		*out = v;
		rc = 0;
	} else {
		char q[80];
		bv_db_safe_text(q, sizeof q, sqlite3_column_text(st, 1));
		rc = bv_error_set(BV_EFORMAT,
				  "'%s': run %lld epoch %d has test_acc %s in metrics, expected a "
				  "number 0..1 (the database is damaged)",
				  db->path, (long long)run_id, epoch, q);
	}
done:
	unstmt(st);
	return rc;
}

int bv_db_epochs(bv_db *db, int64_t run_id, const char *split, int **out, int *n)
{
	sqlite3_stmt *st = NULL;
	int *epochs = NULL, rc, count = 0, cap = 0;
	*out = NULL;
	*n = 0;
	if ((rc = stmt(db, S_EPOCHS, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id) |
					  sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC))) != 0)
		goto done;
	while ((rc = step(db, st)) == 1) {
		if ((rc = db_grow((void **)&epochs, &cap, count, sizeof *epochs)) != 0)
			break;
		epochs[count++] = sqlite3_column_int(st, 0);
	}
done:
	unstmt(st);
	if (rc) {
		free(epochs);
		return rc;
	}
	*out = epochs;
	*n = count;
	return 0;
}

int bv_db_metrics_get(bv_db *db, int64_t run_id, bv_db_metrics **out, int *n)
{
	sqlite3_stmt *st = NULL;
	bv_db_metrics *rows = NULL;
	int rc, count = 0, cap = 0;
	*out = NULL;
	*n = 0;
	if ((rc = stmt(db, S_METRICS_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id))) != 0)
		goto done;
	while ((rc = step(db, st)) == 1) {
		if ((rc = db_grow((void **)&rows, &cap, count, sizeof *rows)) != 0)
			break;
		bv_db_metrics *m = &rows[count++];
		m->epoch = sqlite3_column_int(st, 0);
		m->lr = column_real(st, 1);
		m->train_loss = column_real(st, 2);
		m->train_acc = column_real(st, 3);
		m->test_acc = column_real(st, 4);
		m->wsl_weight = column_real(st, 5);
		m->filtered = column_real(st, 6);
		m->seconds = column_real(st, 7);
	}
done:
	unstmt(st);
	if (rc) {
		free(rows);
		return rc;
	}
	*out = rows;
	*n = count;
	return 0;
}

/* ---- decompositions ------------------------------------------------------ */

int bv_db_stats_clear(bv_db *db, double temperature, int epoch, const char *split)
{
	const enum stmt_id ids[] = {S_STATS_CLEAR, S_DECOMP_CLEAR};
	sqlite3_stmt *st = NULL;
	int rc = 0;
	for (unsigned i = 0; i < BV_ARRAY_LEN(ids) && rc == 0; i++) {
		if ((rc = stmt(db, ids[i], &st)) == 0 &&
		    (rc = bind_failed(db, sqlite3_bind_double(st, 1, temperature))) == 0 &&
		    (rc = bind_failed(db, sqlite3_bind_int(st, 2, epoch))) == 0 &&
		    (rc = bind_failed(db, sqlite3_bind_text(st, 3, split, -1, SQLITE_STATIC))) == 0)
			rc = run(db, st);
		unstmt(st);
	}
	return rc;
}

/* The INSERT of n_rows sample_stats rows: ?1-?4 are temperature, epoch, split
 * and method, shared; row j's twelve values are ?(5 + 12 j) to ?(16 + 12 j). */
static int stats_prepare(bv_db *db, sqlite3_stmt **out, int n_rows)
{
	bv_buf sql;
	bv_buf_init(&sql);
	static const char head[] = "INSERT OR REPLACE INTO sample_stats(temperature, epoch, split, "
				   "method, sample_idx, bias, variance, loss, regularization, n_seeds, "
				   "p_true, acc, wsl_weight, teacher_p_true, var_init, var_data) VALUES";
	bv_buf_append(&sql, head, sizeof head - 1);
	/* row j's anonymous ?s take the next numbers, 5 + 12 j to 16 + 12 j;
	 * numbered ones would make SQLite's parser scan its list of parameter
	 * names for each (quadratic in the rows) */
	static const char row[] = ",(?1,?2,?3,?4,?,?,?,?,?,?,?,?,?,?,?,?)";
	for (int j = 0; j < n_rows; j++)
		bv_buf_append(&sql, row + (j == 0), sizeof row - 1 - (j == 0));
	int rc = 0;
	if (sql.failed)
		rc = bv_error_set(BV_ENOMEM, "out of memory");
	else if (sqlite3_prepare_v3(db->h, (const char *)sql.data, (int)sql.len,
				    SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK)
		rc = db_err(db);
	bv_buf_release(&sql);
	return rc;
}

/* Bind row j's twelve values of a stats_prepare statement. */
static int stats_bind(bv_db *db, sqlite3_stmt *st, int j, const bv_stat_row *r)
{
	const int p = STATS_SHARED + 1 + STATS_PER_ROW * j;
	return bind_failed(db, sqlite3_bind_int(st, p, r->sample_idx) |
				       sqlite3_bind_double(st, p + 1, r->bias) |
				       sqlite3_bind_double(st, p + 2, r->variance) |
				       sqlite3_bind_double(st, p + 3, r->loss) |
				       (r->regularization < 0 ? sqlite3_bind_null(st, p + 4)
							      : sqlite3_bind_int(st, p + 4, r->regularization)) |
				       sqlite3_bind_int(st, p + 5, r->n_seeds) |
				       bind_real(st, p + 6, r->p_true) | bind_real(st, p + 7, r->acc) |
				       bind_real(st, p + 8, r->wsl_weight) |
				       bind_real(st, p + 9, r->teacher_p_true) |
				       bind_real(st, p + 10, r->has_split ? r->var_init : NAN) |
				       bind_real(st, p + 11, r->has_split ? r->var_data : NAN));
}

int bv_db_stats_put(bv_db *db, double temperature, int epoch, const char *split,
		    bv_run_method method, const bv_stat_row *rows, int n)
{
	sqlite3_stmt *tail = NULL;
	int rc = 0;
	if (n >= STATS_BATCH && !db->stats_batch &&
	    (rc = stats_prepare(db, &db->stats_batch, STATS_BATCH)) != 0)
		return rc;
	for (int i = 0; i < n && rc == 0;) {
		const int m = n - i < STATS_BATCH ? n - i : STATS_BATCH;
		sqlite3_stmt *st = db->stats_batch;
		if (m < STATS_BATCH) /* the last, shorter statement: prepared for this call only */
			if ((rc = stats_prepare(db, &tail, m)) != 0)
				break;
		st = m < STATS_BATCH ? tail : st;
		if ((rc = bind_failed(db, sqlite3_bind_double(st, 1, temperature) |
						  sqlite3_bind_int(st, 2, epoch) |
						  sqlite3_bind_text(st, 3, split, -1, SQLITE_STATIC) |
						  bind_name(st, 4,
							    bv_db_method_name(method)))) != 0)
			break;
		for (int j = 0; j < m && rc == 0; j++)
			rc = stats_bind(db, st, j, &rows[i + j]);
		if (rc == 0)
			rc = run(db, st);
		sqlite3_reset(st);
		i += m;
	}
	if (db->stats_batch)
		sqlite3_clear_bindings(db->stats_batch); /* no pointer to split and method kept */
	sqlite3_finalize(tail);
	return rc;
}

int bv_db_decomposition_put(bv_db *db, const bv_db_decomposition *d)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_DECOMP_PUT, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_double(st, 1, d->temperature))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int(st, 2, d->epoch))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 3, d->split, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 4, d->criterion, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int(st, 5, d->n_samples))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 6, d->seeds, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_double(st, 7, d->max_identity_error))) == 0)
		rc = run(db, st);
	unstmt(st);
	return rc;
}

int bv_db_correlation_put(bv_db *db, const bv_db_correlation *c)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_CORR_PUT, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, c->split, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int(st, 2, c->epoch))) == 0 &&
	    (rc = bind_failed(db, bind_name(st, 3, bv_db_method_name(c->method)))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 4, c->criterion, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int(st, 5, c->n_points))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 6, c->r))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 7, c->r_p))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 8, c->rho))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 9, c->rho_p))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 10, c->r_lo))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 11, c->r_hi))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int(st, 12, c->n_boot))) == 0)
		rc = run(db, st);
	unstmt(st);
	return rc;
}
