/*
 * The rows of a merge (bvtool merge, train/merge.c): a shard database attached
 * to the target's connection as the schema "shard", and its plan and runs
 * copied into "main" by INSERT ... SELECT, so that a snapshot's bytes go from
 * one file to the other inside SQLite, never through bvtool's memory. Every
 * function here runs inside the caller's transaction (one per shard), except
 * attach and detach, which SQLite allows only outside one.
 */
#include "db_int.h"

#include <stdlib.h>
#include <string.h>

int bv_db_config_all(bv_db *db, bv_db_setting **out, int *n)
{
	sqlite3_stmt *st = NULL;
	bv_db_setting *kv = NULL;
	int rc, count = 0, cap = 0;
	*out = NULL;
	*n = 0;
	if ((rc = bv_db_prepare(db, &st, "SELECT key, value FROM config ORDER BY key")) != 0)
		return rc;
	while ((rc = step(db, st)) == 1) {
		if ((rc = db_grow((void **)&kv, &cap, count, sizeof *kv)) != 0)
			break;
		bv_db_safe_text(kv[count].key, sizeof kv[count].key, sqlite3_column_text(st, 0));
		bv_db_safe_text(kv[count].value, sizeof kv[count].value, sqlite3_column_text(st, 1));
		count++;
	}
	sqlite3_finalize(st);
	if (rc) {
		free(kv);
		return rc;
	}
	*out = kv;
	*n = count;
	return 0;
}

int bv_db_attach(bv_db *db, const char *path)
{
	sqlite3_stmt *st = NULL;
	int rc = bv_db_prepare(db, &st, "ATTACH DATABASE ?1 AS shard");
	if (rc == 0 && (rc = bind_failed(db, sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC))) == 0)
		rc = run(db, st);
	sqlite3_finalize(st);
	return rc;
}

int bv_db_detach(bv_db *db)
{
	return db_exec(db, "DETACH DATABASE shard");
}

/* ?1 = a and ?2 = b, as many of them as the statement has. */
static int bind2(bv_db *db, sqlite3_stmt *st, int64_t a, int64_t b)
{
	const int n = sqlite3_bind_parameter_count(st);
	int rc = SQLITE_OK;
	if (n >= 1)
		rc |= sqlite3_bind_int64(st, 1, a);
	if (n >= 2)
		rc |= sqlite3_bind_int64(st, 2, b);
	return bind_failed(db, rc);
}

/* One row of integers of sql (?1 = a, ?2 = b); zeros when it has none. */
static int ints(bv_db *db, const char *sql, int64_t a, int64_t b, int64_t *v, int n)
{
	sqlite3_stmt *st = NULL;
	int rc = bv_db_prepare(db, &st, sql);
	if (rc == 0)
		rc = bind2(db, st, a, b);
	if (rc == 0 && (rc = step(db, st)) == 1) {
		for (int i = 0; i < n; i++)
			v[i] = sqlite3_column_int64(st, i);
		rc = 0;
	} else if (rc == 0) {
		for (int i = 0; i < n; i++)
			v[i] = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int bv_db_merge_same(bv_db *db, int64_t main_id, int64_t shard_id, int *out_same)
{
	int64_t c[3];
	int rc = ints(db,
		      "SELECT (SELECT count(*) FROM main.snapshots WHERE run_id = ?1),"
		      " (SELECT count(*) FROM shard.snapshots WHERE run_id = ?2),"
		      " (SELECT count(*) FROM main.snapshots a JOIN shard.snapshots b"
		      "   ON b.run_id = ?2 AND b.epoch = a.epoch AND b.split = a.split"
		      "  WHERE a.run_id = ?1 AND a.n = b.n AND a.k = b.k AND a.logits = b.logits)",
		      main_id, shard_id, c, 3);
	*out_same = rc == 0 && c[0] == c[1] && c[1] == c[2];
	return rc;
}

int bv_db_merge_plan(bv_db *db)
{
	/* the caller has compared what both hold (train/merge.c); main takes the rest */
	int rc = db_exec(db, "INSERT INTO main.samples(split, sample_idx, label)"
			     " SELECT split, sample_idx, label FROM shard.samples b"
			     " WHERE b.split NOT IN (SELECT DISTINCT split FROM main.samples)"
			     " ORDER BY split, sample_idx");
	return rc ? rc
		  : db_exec(db, "INSERT INTO main.inbag(seed, sample_idx, count)"
				" SELECT seed, sample_idx, count FROM shard.inbag b"
				" WHERE b.seed NOT IN (SELECT DISTINCT seed FROM main.inbag)"
				" ORDER BY seed, sample_idx");
}

int bv_db_inbag_seeds(bv_db *db, int **out, int *n)
{
	sqlite3_stmt *st = NULL;
	int *seeds = NULL, rc, count = 0, cap = 0;
	*out = NULL;
	*n = 0;
	if ((rc = bv_db_prepare(db, &st, "SELECT DISTINCT seed FROM inbag ORDER BY seed")) != 0)
		return rc;
	while ((rc = step(db, st)) == 1) {
		if ((rc = db_grow((void **)&seeds, &cap, count, sizeof *seeds)) != 0)
			break;
		seeds[count++] = sqlite3_column_int(st, 0);
	}
	sqlite3_finalize(st);
	if (rc) {
		free(seeds);
		return rc;
	}
	*out = seeds;
	*n = count;
	return 0;
}

/* Run sql with ?1 = a, ?2 = b; no rows. */
static int exec2(bv_db *db, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st = NULL;
	int rc = bv_db_prepare(db, &st, sql);
	if (rc == 0)
		rc = bind2(db, st, a, b);
	if (rc == 0)
		rc = run(db, st);
	sqlite3_finalize(st);
	return rc;
}

#define RUN_FIELDS                                                                       \
	"alpha, gamma, status, test_acc, epochs, model, seconds, started_at, finished_at"

int bv_db_merge_run(bv_db *db, int64_t shard_id, int64_t main_id, int64_t *out_id,
		    long long *bytes)
{
	int64_t v[1];
	int rc;
	if (main_id > 0) {
		/* a cell the target has but not done: its rows give way to the shard's */
		if ((rc = exec2(db, "DELETE FROM main.snapshots WHERE run_id = ?1", main_id, 0)) != 0 ||
		    (rc = exec2(db, "DELETE FROM main.metrics WHERE run_id = ?1", main_id, 0)) != 0 ||
		    (rc = exec2(db,
				"UPDATE main.runs SET (" RUN_FIELDS ", checkpoint) = (SELECT " RUN_FIELDS
				", NULL FROM shard.runs WHERE id = ?2) WHERE id = ?1",
				main_id, shard_id)) != 0)
			return rc;
	} else {
		if ((rc = exec2(db,
				"INSERT INTO main.runs(method, temperature, seed, init, " RUN_FIELDS ")"
				" SELECT method, temperature, seed, init, " RUN_FIELDS
				" FROM shard.runs WHERE id = ?1",
				shard_id, 0)) != 0)
			return rc;
		main_id = sqlite3_last_insert_rowid(db->h);
	}
	if ((rc = exec2(db,
			"INSERT INTO main.snapshots(run_id, epoch, split, n, k, logits)"
			" SELECT ?1, epoch, split, n, k, logits FROM shard.snapshots"
			" WHERE run_id = ?2 ORDER BY epoch, split",
			main_id, shard_id)) != 0 ||
	    (rc = exec2(db,
			"INSERT INTO main.metrics(run_id, epoch, lr, train_loss, train_acc, test_acc,"
			" wsl_weight, filtered, seconds)"
			" SELECT ?1, epoch, lr, train_loss, train_acc, test_acc, wsl_weight, filtered,"
			" seconds FROM shard.metrics WHERE run_id = ?2 ORDER BY epoch",
			main_id, shard_id)) != 0 ||
	    /* length() of a BLOB reads its size, not its overflow pages */
	    (rc = ints(db, "SELECT IFNULL(sum(length(logits)), 0) FROM shard.snapshots "
			   "WHERE run_id = ?1",
		       shard_id, 0, v, 1)) != 0)
		return rc;
	*bytes += v[0];
	*out_id = main_id;
	return 0;
}

int bv_db_run_set_checkpoint(bv_db *db, int64_t id, const char *checkpoint)
{
	sqlite3_stmt *st = NULL;
	int rc = bv_db_prepare(db, &st, "UPDATE runs SET checkpoint = ?2 WHERE id = ?1");
	if (rc == 0)
		rc = bind_failed(db, sqlite3_bind_int64(st, 1, id) |
					     (checkpoint ? sqlite3_bind_text(st, 2, checkpoint, -1,
									     SQLITE_STATIC)
							 : sqlite3_bind_null(st, 2)));
	if (rc == 0)
		rc = run(db, st);
	sqlite3_finalize(st);
	return rc;
}
