/*
 * The reads and writes of db.h on an open bvtool database (open.c opens and
 * closes it), each a prepared statement with bound values: configuration,
 * runs and what makes them analysable (the contract of db.h), samples and
 * in-bag counts, snapshots and metrics, decompositions; and the transactions
 * and handle other modules' own SQL uses.
 *
 * Statements are prepared once per connection (SQLITE_PREPARE_PERSISTENT) and
 * kept in db->stmt, so that the 60000-row inbag insert or a snapshot per epoch
 * costs no parsing. Writes that belong together run in one transaction: their
 * own BEGIN IMMEDIATE, or a savepoint inside the caller's transaction (so a
 * failed call leaves the caller's earlier work intact and its own undone).
 */
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "db_int.h"

#define RUN_COLUMNS                                                                         \
	"SELECT r.id, r.method, r.temperature, r.alpha, r.gamma, r.seed, r.status, r.test_acc, " \
	"r.epochs, (SELECT IFNULL(max(m.epoch), 0) FROM metrics m WHERE m.run_id = r.id), r.model, "         \
	"r.checkpoint, r.seconds FROM runs r"
#define NOW "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
/* run r has a snapshot of split ?1 and a metrics row at epoch ?2 */
#define ANALYSABLE                                                                                 \
	"AND EXISTS (SELECT 1 FROM snapshots s WHERE s.run_id = r.id AND s.split = ?1 "           \
	"AND s.epoch = ?2) AND EXISTS (SELECT 1 FROM metrics m WHERE m.run_id = r.id "             \
	"AND m.epoch = ?2)"

static const char *const stmt_sql[N_STMT] = {
	[S_CONFIG_GET] = "SELECT value FROM config WHERE key = ?1",
	[S_CONFIG_SET] = "INSERT INTO config(key, value) VALUES(?1, ?2) "
			 "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	/* the expression of the runs_cell index, so that the index serves it */
	[S_RUN_FIND] = "SELECT id FROM runs WHERE method = ?1 AND IFNULL(temperature, -1) = "
		       "IFNULL(?2, -1) AND seed = ?3",
	[S_RUN_INSERT] = "INSERT INTO runs(method, temperature, seed, alpha, gamma, model, epochs) "
			 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_RUN_GET] = RUN_COLUMNS " WHERE r.id = ?1",
	[S_RUNS_LIST] = RUN_COLUMNS " ORDER BY r.method, r.temperature NULLS FIRST, r.seed",
	[S_RUN_EXISTS] = "SELECT 1 FROM runs WHERE id = ?1",
	/* the contract's analysable runs (db.h): ?1 split, ?2 epoch, ?3 done */
	[S_RUNS_ANALYSABLE] = RUN_COLUMNS " WHERE r.status = ?3 " ANALYSABLE
				" ORDER BY r.method, r.temperature NULLS FIRST, r.seed",
	[S_METRICS_ACC] = "SELECT test_acc, quote(test_acc) FROM metrics WHERE run_id = ?1 AND "
			  "epoch = ?2",
	/* ?3: the status is running */
	[S_RUN_STATUS] = "UPDATE runs SET status = ?2, started_at = CASE WHEN ?3 "
			 "THEN " NOW " ELSE started_at END WHERE id = ?1",
	/* ?5: done */
	[S_RUN_FINISH] = "UPDATE runs SET status = ?5, test_acc = ?2, checkpoint = ?3, "
			 "seconds = ?4, finished_at = " NOW " WHERE id = ?1",
	[S_RESET_SNAPSHOTS] = "DELETE FROM snapshots WHERE run_id = ?1",
	[S_RESET_METRICS] = "DELETE FROM metrics WHERE run_id = ?1",
	/* ?2: pending */
	[S_RESET_RUN] = "UPDATE runs SET status = ?2, test_acc = NULL, checkpoint = NULL, "
			"seconds = NULL, started_at = NULL, finished_at = NULL WHERE id = ?1",
	[S_SAMPLES_COUNT] = "SELECT count(*) FROM samples WHERE split = ?1",
	[S_SAMPLES_GET] = "SELECT sample_idx, label FROM samples WHERE split = ?1 ORDER BY sample_idx",
	[S_SAMPLES_INSERT] = "INSERT INTO samples(split, sample_idx, label) VALUES(?1, ?2, ?3)",
	[S_INBAG_DELETE] = "DELETE FROM inbag WHERE seed = ?1",
	[S_INBAG_INSERT] = "INSERT INTO inbag(seed, sample_idx, count) VALUES(?1, ?2, ?3)",
	[S_INBAG_GET] = "SELECT sample_idx, count FROM inbag WHERE seed = ?1 ORDER BY sample_idx",
	[S_METRICS_PUT] = "INSERT OR REPLACE INTO metrics(run_id, epoch, lr, train_loss, train_acc, "
			  "test_acc, wsl_weight, filtered, seconds) "
			  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[S_SNAPSHOT_PUT] = "INSERT OR REPLACE INTO snapshots(run_id, epoch, split, n, k, logits) "
			   "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[S_LOGITS_GET] = "SELECT n, k, logits FROM snapshots WHERE run_id = ?1 AND epoch = ?2 "
			 "AND split = ?3",
	[S_SNAPSHOT_K] = "SELECT k, typeof(k) FROM snapshots WHERE run_id = ?1 AND epoch = ?2 "
			 "AND split = ?3",
	[S_EPOCHS] = "SELECT epoch FROM snapshots WHERE run_id = ?1 AND split = ?2 ORDER BY epoch",
	[S_METRICS_GET] = "SELECT epoch, lr, train_loss, train_acc, test_acc, wsl_weight, filtered, "
			  "seconds FROM metrics WHERE run_id = ?1 ORDER BY epoch",
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
enum { STATS_BATCH = 256, STATS_SHARED = 4, STATS_PER_ROW = 10 };

_Static_assert(sizeof(float) == 4, "logits BLOBs are float32");

/* ---- helpers ------------------------------------------------------------- */

/* Run SQL that returns no rows. */
static int exec(bv_db *db, const char *sql)
{
	return sqlite3_exec(db->h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : db_err(db);
}

/* The cached statement `id`, reset and unbound, ready to bind. */
static int stmt(bv_db *db, enum stmt_id id, sqlite3_stmt **out)
{
	if (!db->stmt[id] && sqlite3_prepare_v3(db->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
						&db->stmt[id], NULL) != SQLITE_OK)
		return db_err(db);
	*out = db->stmt[id];
	return 0;
}

/* Done with a cached statement: release its read lock and its bound pointers. */
static void unstmt(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

/* 1 for a row, 0 when done, BV_EDB with the message on an error. */
static int step(bv_db *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_err(db);
}

/* Step a statement that returns no rows. */
static int run(bv_db *db, sqlite3_stmt *st)
{
	int rc = step(db, st);
	return rc > 0 ? 0 : rc;
}

static int bind_real(sqlite3_stmt *st, int i, double v)
{
	return isnan(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}

static double column_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static void column_text(char *out, size_t size, sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(out, size, "%s", t ? (const char *)t : "");
}

static int bind_failed(bv_db *db, int rc)
{
	return rc == SQLITE_OK ? 0 : db_err(db);
}

/* Open the transaction of one call: BEGIN IMMEDIATE when none is open (*own =
 * 1), else a savepoint inside the caller's transaction. */
static int tx_open(bv_db *db, int *own)
{
	*own = sqlite3_get_autocommit(db->h) != 0;
	return exec(db, *own ? "BEGIN IMMEDIATE" : "SAVEPOINT bv_call");
}

/* Close it: commit when rc is 0, else undo it and return rc (whose message
 * was set at the failure, before the rollback could overwrite errmsg). */
int db_tx_close(bv_db *db, int own, int rc)
{
	if (rc == 0 && (rc = exec(db, own ? "COMMIT" : "RELEASE bv_call")) == 0)
		return 0;
	if (own) {
		if (!sqlite3_get_autocommit(db->h)) /* SQLite rolls back by itself on some errors */
			sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	} else {
		sqlite3_exec(db->h, "ROLLBACK TO bv_call; RELEASE bv_call", NULL, NULL, NULL);
	}
	return rc;
}

/* Grow *p (of *cap elements of `size` bytes) to hold at least n + 1. */
static int grow(void **p, int *cap, int n, size_t size)
{
	if (n < *cap)
		return 0;
	int c = *cap ? 2 * *cap : 64;
	void *q = realloc(*p, (size_t)c * size);
	if (!q)
		return bv_error_set(BV_ENOMEM, "out of memory reading the database");
	*p = q;
	*cap = c;
	return 0;
}

static int valid_split(const char *split)
{
	return split && (strcmp(split, "test") == 0 || strcmp(split, "train") == 0);
}

static int no_run(bv_db *db, int64_t id)
{
	return bv_error_set(BV_EINVAL, "database '%s' has no run %lld", db->path, (long long)id);
}


int bv_db_error(bv_db *db)
{
	return db_err(db);
}

int bv_db_prepare(bv_db *db, sqlite3_stmt **out, const char *sql)
{
	*out = NULL;
	return sqlite3_prepare_v2(db->h, sql, -1, out, NULL) == SQLITE_OK ? 0 : db_err(db);
}

sqlite3 *bv_db_handle(bv_db *db)
{
	return db->h;
}

const char *bv_db_path(const bv_db *db)
{
	return db->path;
}

/* ---- transactions ------------------------------------------------------- */

int bv_db_begin(bv_db *db)
{
	return exec(db, "BEGIN IMMEDIATE");
}

int bv_db_commit(bv_db *db)
{
	int rc = exec(db, "COMMIT");
	if (rc && !sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

void bv_db_rollback(bv_db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- configuration ------------------------------------------------------ */

int bv_db_config_get(bv_db *db, const char *key, char *out, size_t size)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if (!key)
		return bv_error_set(BV_EINVAL, "no configuration key given");
	if ((rc = stmt(db, S_CONFIG_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC))) != 0 ||
	    (rc = step(db, st)) <= 0)
		goto done;
	const char *v = (const char *)sqlite3_column_text(st, 0);
	size_t len = (size_t)sqlite3_column_bytes(st, 0);
	if (len >= size) {
		rc = bv_error_set(BV_EINVAL, "database '%s': the value of '%s' is longer than %zu bytes",
				  db->path, key, size ? size - 1 : 0);
		goto done;
	}
	memcpy(out, v ? v : "", len + 1);
	rc = 1;
done:
	unstmt(st);
	return rc;
}

int bv_db_config_set(bv_db *db, const char *key, const char *value)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if (!key || !value)
		return bv_error_set(BV_EINVAL, "a configuration entry needs a key and a value");
	if ((rc = stmt(db, S_CONFIG_SET, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) |
					  sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC))) == 0)
		rc = run(db, st);
	unstmt(st);
	return rc;
}

/* ---- runs --------------------------------------------------------------- */

/* A name of names.c as a bound text (static: the table outlives the statement). */
static int bind_name(sqlite3_stmt *st, int i, const char *name)
{
	return sqlite3_bind_text(st, i, name, -1, SQLITE_STATIC);
}

int bv_db_run_ensure(bv_db *db, int64_t *out_id, int *out_created, bv_run_method method,
		     double temperature, int seed, double alpha, double gamma, const char *model,
		     int epochs)
{
	sqlite3_stmt *st = NULL;
	int rc, own, created = 0;
	char list[128];
	if ((unsigned)method >= BV_RUN_N_METHODS)
		return bv_error_set(BV_EINVAL, "unknown method %d (%s)", (int)method,
				    bv_db_methods_text(list, sizeof list, bv_db_methods_mask(-1),
						       "", ", ", ", "));
	const char *name = bv_db_method_name(method);
	if ((rc = tx_open(db, &own)) != 0)
		return rc;
	if ((rc = stmt(db, S_RUN_FIND, &st)) != 0 ||
	    (rc = bind_failed(db, bind_name(st, 1, name) | bind_real(st, 2, temperature) |
					  sqlite3_bind_int(st, 3, seed))) != 0 ||
	    (rc = step(db, st)) < 0)
		goto done;
	if (rc == 1) {
		*out_id = sqlite3_column_int64(st, 0);
		rc = 0;
		goto done;
	}
	unstmt(st);
	if ((rc = stmt(db, S_RUN_INSERT, &st)) != 0 ||
	    (rc = bind_failed(db, bind_name(st, 1, name) | bind_real(st, 2, temperature) |
					  sqlite3_bind_int(st, 3, seed) | bind_real(st, 4, alpha) |
					  bind_real(st, 5, gamma) |
					  sqlite3_bind_text(st, 6, model, -1, SQLITE_STATIC) |
					  sqlite3_bind_int(st, 7, epochs))) != 0 ||
	    (rc = run(db, st)) != 0)
		goto done;
	*out_id = sqlite3_last_insert_rowid(db->h);
	created = 1;
done:
	unstmt(st);
	rc = db_tx_close(db, own, rc);
	if (rc == 0 && out_created)
		*out_created = created;
	return rc;
}

/* A method or status that names.c lacks: bv_db_check_runs names the run, the
 * value and the names expected. */
static int unknown_name(bv_db *db, sqlite3_stmt *st)
{
	const int rc = bv_db_check_runs(db);
	return rc ? rc
		  : bv_error_set(BV_EFORMAT,
				 "'%s': run %lld has a method or status bvtool does not know (the "
				 "database is damaged)",
				 db->path, (long long)sqlite3_column_int64(st, 0));
}

static int run_row(bv_db *db, bv_run *r, sqlite3_stmt *st)
{
	memset(r, 0, sizeof *r);
	r->id = sqlite3_column_int64(st, 0);
	if (sqlite3_column_type(st, 1) != SQLITE_TEXT ||
	    sqlite3_column_type(st, 6) != SQLITE_TEXT ||
	    bv_db_method_parse(&r->method, (const char *)sqlite3_column_text(st, 1)) != 0 ||
	    bv_db_status_parse(&r->status, (const char *)sqlite3_column_text(st, 6)) != 0)
		return unknown_name(db, st);
	r->temperature = column_real(st, 2);
	r->alpha = column_real(st, 3);
	r->gamma = column_real(st, 4);
	r->seed = sqlite3_column_int(st, 5);
	r->test_acc = column_real(st, 7);
	r->epochs = sqlite3_column_int(st, 8);
	r->epochs_done = sqlite3_column_int(st, 9);
	column_text(r->model, sizeof r->model, st, 10);
	column_text(r->checkpoint, sizeof r->checkpoint, st, 11);
	r->seconds = column_real(st, 12);
	return 0;
}

int bv_db_run_get(bv_db *db, bv_run *out, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_RUN_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, id))) != 0 ||
	    (rc = step(db, st)) < 0)
		goto done;
	if (rc == 0) {
		rc = no_run(db, id);
		goto done;
	}
	rc = run_row(db, out, st);
done:
	unstmt(st);
	return rc;
}

/* The runs a bound RUN_COLUMNS statement returns, into *out (heap) and *n. */
static int list_runs(bv_db *db, sqlite3_stmt *st, bv_run **out, int *n)
{
	bv_run *runs = NULL;
	int rc, count = 0, cap = 0;
	while ((rc = step(db, st)) == 1) {
		if ((rc = grow((void **)&runs, &cap, count, sizeof *runs)) != 0 ||
		    (rc = run_row(db, &runs[count++], st)) != 0)
			break;
	}
	unstmt(st);
	if (rc) {
		free(runs);
		return rc;
	}
	*out = runs;
	*n = count;
	return 0;
}

int bv_db_runs_list(bv_db *db, bv_run **out, int *n)
{
	sqlite3_stmt *st = NULL;
	int rc;
	*out = NULL;
	*n = 0;
	if ((rc = stmt(db, S_RUNS_LIST, &st)) != 0)
		return rc;
	return list_runs(db, st, out, n);
}

/* ---- what makes a run analysable ------------------------------------------ */

/* Bind the split (?1), the epoch (?2) and done (?3) of S_RUNS_ANALYSABLE. */
static int bind_analysable(bv_db *db, sqlite3_stmt *st, const char *split, int epoch)
{
	return bind_failed(db, bind_name(st, 1, split) | sqlite3_bind_int(st, 2, epoch) |
				       bind_name(st, 3, bv_db_status_name(BV_RUN_DONE)));
}

int bv_db_runs_analysable(bv_db *db, const char *split, int epoch, bv_run **out, int *n)
{
	sqlite3_stmt *st = NULL;
	int rc;
	*out = NULL;
	*n = 0;
	if ((rc = stmt(db, S_RUNS_ANALYSABLE, &st)) != 0)
		return rc;
	if ((rc = bind_analysable(db, st, split, epoch)) != 0) {
		unstmt(st);
		return rc;
	}
	return list_runs(db, st, out, n);
}

int bv_db_epochs_analysable(bv_db *db, const char *split, const int64_t *run_ids, int n,
			    int **out, int *n_out)
{
	int *epochs = NULL, n_epochs = 0, m = 0, rc;
	*out = NULL;
	*n_out = 0;
	if (n <= 0)
		return 0;
	/* the candidates: the epochs of the first run's snapshots */
	if ((rc = bv_db_epochs(db, run_ids[0], split, &epochs, &n_epochs)) != 0)
		return rc;
	for (int e = 0; e < n_epochs; e++) {
		bv_run *runs = NULL;
		int n_runs = 0, all = 1;
		if ((rc = bv_db_runs_analysable(db, split, epochs[e], &runs, &n_runs)) != 0) {
			free(epochs);
			return rc;
		}
		for (int i = 0; i < n && all; i++) {
			int found = 0;
			for (int j = 0; j < n_runs && !found; j++)
				found = runs[j].id == run_ids[i];
			all = found;
		}
		free(runs);
		if (all)
			epochs[m++] = epochs[e];
	}
	*out = epochs;
	*n_out = m;
	return 0;
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

int bv_db_run_set_status(bv_db *db, int64_t id, bv_run_status status)
{
	sqlite3_stmt *st = NULL;
	int rc;
	char list[128];
	if ((unsigned)status >= BV_RUN_N_STATUSES || status == BV_RUN_DONE)
		return bv_error_set(BV_EINVAL, "bad run status '%s' (%s)",
				    bv_db_status_name(status),
				    bv_db_statuses_text(list, sizeof list,
							BV_RUN_ALL_STATUSES & ~(1u << BV_RUN_DONE),
							"", ", ", " or "));
	if ((rc = stmt(db, S_RUN_STATUS, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, id) |
					  bind_name(st, 2, bv_db_status_name(status)) |
					  sqlite3_bind_int(st, 3,
							   status == BV_RUN_RUNNING))) == 0 &&
	    (rc = run(db, st)) == 0 && sqlite3_changes(db->h) == 0)
		rc = no_run(db, id);
	unstmt(st);
	return rc;
}

int bv_db_run_reset(bv_db *db, int64_t id)
{
	static const enum stmt_id steps[] = {S_RESET_RUN, S_RESET_SNAPSHOTS, S_RESET_METRICS};
	sqlite3_stmt *st = NULL;
	int rc, own;
	if ((rc = tx_open(db, &own)) != 0)
		return rc;
	for (size_t i = 0; i < BV_ARRAY_LEN(steps) && rc == 0; i++) {
		if ((rc = stmt(db, steps[i], &st)) == 0 &&
		    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, id))) == 0 &&
		    (steps[i] != S_RESET_RUN ||
		     (rc = bind_failed(db, bind_name(st, 2, bv_db_status_name(BV_RUN_PENDING)))) ==
			     0) &&
		    (rc = run(db, st)) == 0 && steps[i] == S_RESET_RUN && sqlite3_changes(db->h) == 0)
			rc = no_run(db, id);
		unstmt(st);
	}
	return db_tx_close(db, own, rc);
}

int bv_db_run_finish(bv_db *db, int64_t id, double test_acc, const char *checkpoint,
		     double seconds)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_RUN_FINISH, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, id) | bind_real(st, 2, test_acc) |
					  (checkpoint ? sqlite3_bind_text(st, 3, checkpoint, -1,
									  SQLITE_STATIC)
						      : sqlite3_bind_null(st, 3)) |
					  bind_real(st, 4, seconds) |
					  bind_name(st, 5, bv_db_status_name(BV_RUN_DONE)))) == 0 &&
	    (rc = run(db, st)) == 0 && sqlite3_changes(db->h) == 0)
		rc = no_run(db, id);
	unstmt(st);
	return rc;
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
	if ((rc = tx_open(db, &own)) != 0)
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
	if ((rc = tx_open(db, &own)) != 0)
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
	if ((rc = tx_open(db, &own)) != 0)
		return rc;
	/* an explicit check: metrics has no foreign key, and the message is clearer */
	if ((rc = stmt(db, S_RUN_EXISTS, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id))) != 0 ||
	    (rc = step(db, st)) < 0)
		goto done;
	if (rc == 0) {
		rc = no_run(db, run_id);
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
	const void *blob = sqlite3_column_blob(st, 2);
	const sqlite3_uint64 bytes = (sqlite3_uint64)sqlite3_column_bytes(st, 2);
	const sqlite3_uint64 want = (sqlite3_uint64)n * (sqlite3_uint64)k * 4;
	if (sn != n || sk != k || bytes != want) {
		rc = bv_error_set(BV_EFORMAT,
				  "database '%s': the %s snapshot of run %lld at epoch %d holds "
				  "%d x %d logits in %llu bytes, expected %d x %d",
				  db->path, split, (long long)run_id, epoch, sn, sk,
				  (unsigned long long)bytes, n, k);
		goto done;
	}
	if (bytes)
		memcpy(out, blob, bytes); /* little-endian float32 on a little-endian host */
	rc = 0;
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
		if ((rc = grow((void **)&epochs, &cap, count, sizeof *epochs)) != 0)
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
		if ((rc = grow((void **)&rows, &cap, count, sizeof *rows)) != 0)
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
 * and method, shared; row j's ten values are ?(5 + 10 j) to ?(14 + 10 j). */
static int stats_prepare(bv_db *db, sqlite3_stmt **out, int n_rows)
{
	bv_buf sql;
	bv_buf_init(&sql);
	static const char head[] = "INSERT OR REPLACE INTO sample_stats(temperature, epoch, split, "
				   "method, sample_idx, bias, variance, loss, regularization, n_seeds, "
				   "p_true, acc, wsl_weight, teacher_p_true) VALUES";
	bv_buf_append(&sql, head, sizeof head - 1);
	/* row j's anonymous ?s take the next numbers, 5 + 10 j to 14 + 10 j;
	 * numbered ones would make SQLite's parser scan its list of parameter
	 * names for each (quadratic in the rows) */
	static const char row[] = ",(?1,?2,?3,?4,?,?,?,?,?,?,?,?,?,?)";
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

/* Bind row j's ten values of a stats_prepare statement. */
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
				       bind_real(st, p + 9, r->teacher_p_true));
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
