/*
 * The dynamics table of db.h (schema 4): each student run's per-sample
 * training dynamics over its recorded epochs of a split, written by bvtool
 * dynamics (analysis/dynamics.c computes them). A run's rows are replaced
 * whole, in one transaction, so a reader sees a run's old rows or its new
 * ones, never a mix. The statements are prepared per call: a call writes a
 * whole run, so preparing is nothing beside its rows.
 */
#include <stdlib.h>
#include <string.h>

#include "db_int.h"

int bv_db_dynamics_put(bv_db *db, int64_t run_id, const char *split, const bv_dyn_row *rows,
		       int n)
{
	sqlite3_stmt *del = NULL, *ins = NULL;
	int rc, own;
	if ((rc = db_tx_open(db, &own)) != 0)
		return rc;
	if (sqlite3_prepare_v2(db->h, "DELETE FROM dynamics WHERE run_id = ?1 AND split = ?2", -1,
			       &del, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->h,
			       "INSERT INTO dynamics(run_id, split, sample_idx, first_learned, "
			       "forgetting, correctness, confidence, variability, n_epochs) "
			       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			       -1, &ins, NULL) != SQLITE_OK) {
		rc = db_err(db);
		goto done;
	}
	if ((rc = bind_failed(db, sqlite3_bind_int64(del, 1, run_id) |
					  sqlite3_bind_text(del, 2, split, -1, SQLITE_STATIC))) != 0 ||
	    (rc = run(db, del)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(ins, 1, run_id) |
					  sqlite3_bind_text(ins, 2, split, -1, SQLITE_STATIC))) != 0)
		goto done;
	for (int i = 0; i < n; i++) {
		const bv_dyn_row *r = &rows[i];
		if ((rc = bind_failed(db, sqlite3_bind_int(ins, 3, r->sample_idx) |
						  (r->first_learned < 0
							   ? sqlite3_bind_null(ins, 4)
							   : sqlite3_bind_int(ins, 4, r->first_learned)) |
						  sqlite3_bind_int(ins, 5, r->forgetting) |
						  sqlite3_bind_double(ins, 6, r->correctness) |
						  sqlite3_bind_double(ins, 7, r->confidence) |
						  sqlite3_bind_double(ins, 8, r->variability) |
						  sqlite3_bind_int(ins, 9, r->n_epochs))) != 0 ||
		    (rc = run(db, ins)) != 0)
			goto done;
		sqlite3_reset(ins);
	}
done:
	sqlite3_finalize(del);
	sqlite3_finalize(ins);
	return db_tx_close(db, own, rc);
}

int bv_db_dynamics_prune(bv_db *db, const char *split, const int64_t *run_ids, int n,
			 int *out_runs)
{
	sqlite3_stmt *list = NULL, *del = NULL;
	int64_t *stale = NULL;
	int rc, own, n_stale = 0, cap = 0;
	if (out_runs)
		*out_runs = 0;
	if ((rc = db_tx_open(db, &own)) != 0)
		return rc;
	if (sqlite3_prepare_v2(db->h, "SELECT DISTINCT run_id FROM dynamics WHERE split = ?1", -1,
			       &list, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->h, "DELETE FROM dynamics WHERE run_id = ?1 AND split = ?2", -1,
			       &del, NULL) != SQLITE_OK) {
		rc = db_err(db);
		goto done;
	}
	if ((rc = bind_failed(db, sqlite3_bind_text(list, 1, split, -1, SQLITE_STATIC))) != 0)
		goto done;
	/* the ids first, the deletes after: no delete under an open cursor of the same table */
	while ((rc = step(db, list)) == 1) {
		const int64_t id = sqlite3_column_int64(list, 0);
		int keep = 0;
		for (int i = 0; i < n && !keep; i++)
			keep = run_ids[i] == id;
		if (keep)
			continue;
		if ((rc = db_grow((void **)&stale, &cap, n_stale, sizeof *stale)) != 0)
			goto done;
		stale[n_stale++] = id;
	}
	if (rc < 0)
		goto done;
	sqlite3_reset(list);
	for (int i = 0; i < n_stale; i++) {
		if ((rc = bind_failed(db, sqlite3_bind_int64(del, 1, stale[i]) |
						  sqlite3_bind_text(del, 2, split, -1, SQLITE_STATIC))) !=
			    0 ||
		    (rc = run(db, del)) != 0)
			goto done;
		sqlite3_reset(del);
	}
	rc = 0;
	if (out_runs)
		*out_runs = n_stale;
done:
	sqlite3_finalize(list);
	sqlite3_finalize(del);
	free(stale);
	return db_tx_close(db, own, rc);
}

int bv_db_check_dynamics(bv_db *db)
{
	sqlite3_stmt *st = NULL;
	int rc;
	/* typeof, not arithmetic: text where a number belongs would average as 0 */
	if (sqlite3_prepare_v2(
		    db->h,
		    "SELECT run_id, quote(split), quote(sample_idx), CASE\n"
		    "  WHEN typeof(sample_idx) != 'integer' THEN 'sample_idx'\n"
		    "  WHEN typeof(first_learned) NOT IN ('integer', 'null') THEN 'first_learned'\n"
		    "  WHEN typeof(forgetting) != 'integer' OR forgetting < 0 THEN 'forgetting'\n"
		    "  WHEN typeof(n_epochs) != 'integer' OR n_epochs < 1 THEN 'n_epochs'\n"
		    "  WHEN typeof(correctness) NOT IN ('integer', 'real') THEN 'correctness'\n"
		    "  WHEN typeof(confidence) NOT IN ('integer', 'real') THEN 'confidence'\n"
		    "  WHEN typeof(variability) NOT IN ('integer', 'real') THEN 'variability'\n"
		    "  END AS bad\n"
		    "FROM dynamics WHERE bad IS NOT NULL LIMIT 1",
		    -1, &st, NULL) != SQLITE_OK)
		return db_err(db);
	rc = step(db, st);
	if (rc == 1) {
		char split[72], idx[72];
		bv_db_safe_text(split, sizeof split, sqlite3_column_text(st, 1));
		bv_db_safe_text(idx, sizeof idx, sqlite3_column_text(st, 2));
		rc = bv_error_set(BV_EFORMAT,
				  "'%s': the dynamics row of run %lld, split %s, sample %s has a bad "
				  "%s (the database is damaged)",
				  db->path, (long long)sqlite3_column_int64(st, 0), split, idx,
				  (const char *)sqlite3_column_text(st, 3));
	}
	sqlite3_finalize(st);
	return rc < 0 ? rc : 0;
}
