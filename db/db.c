/*
 * The reads and writes of db.h on an open bvtool database (open.c opens and
 * closes it), each a prepared statement with bound values: here the helpers
 * the db files share (db_int.h), the transactions and handle other modules'
 * own SQL uses, configuration, runs and what makes them analysable (the
 * contract of db.h); samples.c has the samples and in-bag counts, results.c
 * the snapshots, metrics and decompose's tables.
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
	"r.checkpoint, r.seconds, r.init FROM runs r"
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
		       "IFNULL(?2, -1) AND seed = ?3 AND init = ?4",
	[S_RUN_INSERT] = "INSERT INTO runs(method, temperature, seed, alpha, gamma, model, epochs, init) "
			 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_RUN_GET] = RUN_COLUMNS " WHERE r.id = ?1",
	[S_RUNS_LIST] = RUN_COLUMNS " ORDER BY r.method, r.temperature NULLS FIRST, r.seed, r.init",
	/* the contract's analysable runs (db.h): ?1 split, ?2 epoch, ?3 done */
	[S_RUNS_ANALYSABLE] = RUN_COLUMNS " WHERE r.status = ?3 " ANALYSABLE
				" ORDER BY r.method, r.temperature NULLS FIRST, r.seed, r.init",
	/* ?3: the status is running */
	[S_RUN_STATUS] = "UPDATE runs SET status = ?2, started_at = CASE WHEN ?3 "
			 "THEN " NOW " ELSE started_at END WHERE id = ?1",
	/* ?5: done */
	[S_RUN_FINISH] = "UPDATE runs SET status = ?5, test_acc = ?2, checkpoint = ?3, "
			 "seconds = ?4, finished_at = " NOW " WHERE id = ?1",
	[S_RESET_SNAPSHOTS] = "DELETE FROM snapshots WHERE run_id = ?1",
	[S_RESET_METRICS] = "DELETE FROM metrics WHERE run_id = ?1",
	/* a run trained again is not the run its dynamics rows describe */
	[S_RESET_DYNAMICS] = "DELETE FROM dynamics WHERE run_id = ?1",
	/* ?2: pending */
	[S_RESET_RUN] = "UPDATE runs SET status = ?2, test_acc = NULL, checkpoint = NULL, "
			"seconds = NULL, started_at = NULL, finished_at = NULL WHERE id = ?1",
	[S_RUN_DELETE] = "DELETE FROM runs WHERE id = ?1",
};

/* The cached statement `id` of this file's stmt_sql, ready to bind. */
static int stmt(bv_db *db, enum stmt_id id, sqlite3_stmt **out)
{
	return db_stmt(db, id, stmt_sql[id], out);
}

/* ---- helpers (db_int.h) -------------------------------------------------- */

int db_exec(bv_db *db, const char *sql)
{
	return sqlite3_exec(db->h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : db_err(db);
}

int db_stmt(bv_db *db, enum stmt_id id, const char *sql, sqlite3_stmt **out)
{
	if (!db->stmt[id] &&
	    sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &db->stmt[id], NULL) !=
		    SQLITE_OK)
		return db_err(db);
	*out = db->stmt[id];
	return 0;
}

int db_tx_open(bv_db *db, int *own)
{
	*own = sqlite3_get_autocommit(db->h) != 0;
	return db_exec(db, *own ? "BEGIN IMMEDIATE" : "SAVEPOINT bv_call");
}

/* (the failure's message was set at the failure, before the rollback could
 * overwrite SQLite's errmsg) */
int db_tx_close(bv_db *db, int own, int rc)
{
	if (rc == 0 && (rc = db_exec(db, own ? "COMMIT" : "RELEASE bv_call")) == 0)
		return 0;
	if (own) {
		if (!sqlite3_get_autocommit(db->h)) /* SQLite rolls back by itself on some errors */
			sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	} else {
		sqlite3_exec(db->h, "ROLLBACK TO bv_call; RELEASE bv_call", NULL, NULL, NULL);
	}
	return rc;
}

int db_grow(void **p, int *cap, int n, size_t size)
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

int db_no_run(bv_db *db, int64_t id)
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
	return db_exec(db, "BEGIN IMMEDIATE");
}

int bv_db_commit(bv_db *db)
{
	int rc = db_exec(db, "COMMIT");
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

int bv_db_run_find(bv_db *db, int64_t *out_id, bv_run_method method, double temperature, int seed,
		   int init)
{
	sqlite3_stmt *st = NULL;
	int rc;
	*out_id = 0;
	if ((unsigned)method >= BV_RUN_N_METHODS)
		return bv_error_set(BV_EINVAL, "unknown method %d", (int)method);
	if ((rc = stmt(db, S_RUN_FIND, &st)) == 0 &&
	    (rc = bind_failed(db, bind_name(st, 1, bv_db_method_name(method)) |
					  bind_real(st, 2, temperature) | sqlite3_bind_int(st, 3, seed) |
					  sqlite3_bind_int(st, 4, init))) ==
		    0 &&
	    (rc = step(db, st)) == 1) {
		*out_id = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	unstmt(st);
	return rc < 0 ? rc : 0;
}

int bv_db_run_ensure(bv_db *db, int64_t *out_id, int *out_created, bv_run_method method,
		     double temperature, int seed, int init, double alpha, double gamma,
		     const char *model, int epochs)
{
	sqlite3_stmt *st = NULL;
	int rc, own, created = 0;
	char list[128];
	if ((unsigned)method >= BV_RUN_N_METHODS)
		return bv_error_set(BV_EINVAL, "unknown method %d (%s)", (int)method,
				    bv_db_methods_text(list, sizeof list, bv_db_methods_mask(-1),
						       "", ", ", ", "));
	const char *name = bv_db_method_name(method);
	if ((rc = db_tx_open(db, &own)) != 0)
		return rc;
	if ((rc = stmt(db, S_RUN_FIND, &st)) != 0 ||
	    (rc = bind_failed(db, bind_name(st, 1, name) | bind_real(st, 2, temperature) |
					  sqlite3_bind_int(st, 3, seed) | sqlite3_bind_int(st, 4, init))) != 0 ||
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
					  sqlite3_bind_int(st, 7, epochs) | sqlite3_bind_int(st, 8, init))) != 0 ||
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
	r->init = sqlite3_column_int(st, 13);
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
		rc = db_no_run(db, id);
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
		if ((rc = db_grow((void **)&runs, &cap, count, sizeof *runs)) != 0 ||
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
		rc = db_no_run(db, id);
	unstmt(st);
	return rc;
}

/* The statements `steps` on run id in one transaction; S_RESET_RUN takes the
 * pending status as ?2; the one that changes the run row must change one. */
static int run_steps(bv_db *db, int64_t id, const enum stmt_id *steps, size_t n)
{
	sqlite3_stmt *st = NULL;
	int rc, own;
	if ((rc = db_tx_open(db, &own)) != 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const int row = steps[i] == S_RESET_RUN || steps[i] == S_RUN_DELETE;
		if ((rc = stmt(db, steps[i], &st)) == 0 &&
		    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, id))) == 0 &&
		    (steps[i] != S_RESET_RUN ||
		     (rc = bind_failed(db, bind_name(st, 2, bv_db_status_name(BV_RUN_PENDING)))) ==
			     0) &&
		    (rc = run(db, st)) == 0 && row && sqlite3_changes(db->h) == 0)
			rc = db_no_run(db, id);
		unstmt(st);
	}
	return db_tx_close(db, own, rc);
}

int bv_db_run_reset(bv_db *db, int64_t id)
{
	static const enum stmt_id steps[] = {S_RESET_RUN, S_RESET_SNAPSHOTS, S_RESET_METRICS,
					     S_RESET_DYNAMICS};
	return run_steps(db, id, steps, BV_ARRAY_LEN(steps));
}

int bv_db_run_delete(bv_db *db, int64_t id)
{
	static const enum stmt_id steps[] = {S_RESET_SNAPSHOTS, S_RESET_METRICS, S_RESET_DYNAMICS,
					     S_RUN_DELETE};
	return run_steps(db, id, steps, BV_ARRAY_LEN(steps));
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
		rc = db_no_run(db, id);
	unstmt(st);
	return rc;
}
