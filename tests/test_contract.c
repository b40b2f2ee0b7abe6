/*
 * The database contract of db/db.h: the one table of methods and statuses
 * (names.c) against the names spelt out elsewhere (the frozen CHECK
 * constraints of the schema, nn's training methods), and a run whose method
 * or status the table does not know refused on reading; K taken from the
 * snapshots of a decomposition, and a snapshot with another k refused; what
 * makes a run analysable (bv_db_runs_analysable and its kin).
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis.h"
#include "check.h"
#include "check_db.h"
#include "db.h"
#include "nn.h"

static char tmpdir[512];

static void tmp_path(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", tmpdir, name);
}

/* The SQL of the runs table as the schema created it ("" when absent). */
static void runs_sql(bv_db *db, char *out, size_t size)
{
	sqlite3_stmt *st = NULL;
	out[0] = '\0';
	if (bv_db_prepare(db, &st, "SELECT sql FROM sqlite_master WHERE name = 'runs'") == 0 &&
	    sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

/* Each name once, each name back to its value, and "?" outside the table. */
static void test_table(void)
{
	for (int m = 0; m < BV_RUN_N_METHODS; m++) {
		bv_run_method back = BV_RUN_N_METHODS;
		const char *name = bv_db_method_name((bv_run_method)m);
		CHECK(bv_db_method_parse(&back, name) == 0 && back == (bv_run_method)m,
		      "method %d '%s' parses back", m, name);
		for (int j = 0; j < m; j++)
			CHECK(strcmp(name, bv_db_method_name((bv_run_method)j)) != 0,
			      "method %d named twice", m);
	}
	for (int s = 0; s < BV_RUN_N_STATUSES; s++) {
		bv_run_status back = BV_RUN_N_STATUSES;
		const char *name = bv_db_status_name((bv_run_status)s);
		CHECK(bv_db_status_parse(&back, name) == 0 && back == (bv_run_status)s,
		      "status %d '%s' parses back", s, name);
	}
	bv_run_method m;
	bv_run_status st;
	CHECK_ERR(bv_db_method_parse(&m, "kd2"), BV_EINVAL);
	CHECK(strcmp(bv_error_last(), "unknown method 'kd2' (expected teacher, ce, kd, wsl or "
				      "kd-filter)") == 0,
	      "message: %s", bv_error_last());
	CHECK_ERR(bv_db_method_parse(&m, NULL), BV_EINVAL);
	CHECK_ERR(bv_db_status_parse(&st, "Done"), BV_EINVAL);
	CHECK(strcmp(bv_db_method_name(BV_RUN_N_METHODS), "?") == 0, "no name out of range");
	CHECK(strcmp(bv_db_status_name((bv_run_status)-1), "?") == 0, "no name out of range");
	char text[128];
	CHECK(strcmp(bv_db_methods_text(text, sizeof text, bv_db_methods_mask(1), "'", ", ", ", "),
		     "'kd', 'wsl', 'kd-filter'") == 0,
	      "the soft methods: %s", text);
	CHECK(strcmp(bv_db_methods_text(text, sizeof text, bv_db_methods_mask(0), "", ", ", " or "),
		     "teacher or ce") == 0,
	      "the others: %s", text);
	CHECK(strcmp(bv_db_statuses_text(text, sizeof text, 1u << BV_RUN_DONE, "", ", ", " or "),
		     "done") == 0,
	      "one status: %s", text);
	bv_run_method soft[BV_RUN_N_METHODS];
	const int n_soft = bv_db_soft_methods(soft);
	CHECK(n_soft == 3 && soft[0] == BV_RUN_KD && soft[1] == BV_RUN_WSL &&
		      soft[2] == BV_RUN_KD_FILTER,
	      "soft methods: %d", n_soft);
}

/* The schema's CHECK constraints (frozen migration text) name the table's
 * methods and statuses, in its order, and runs start pending. */
static void test_schema(void)
{
	char path[600], sql[4096], want[512], list[256];
	bv_db *db = NULL;
	tmp_path(path, sizeof path, "schema.db");
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "create: %s", bv_error_last());
	if (!db)
		return;
	runs_sql(db, sql, sizeof sql);
	snprintf(want, sizeof want, "method TEXT NOT NULL CHECK(method IN (%s))",
		 bv_db_methods_text(list, sizeof list, bv_db_methods_mask(-1), "'", ",", ","));
	CHECK(strstr(sql, want) != NULL, "the runs table has '%s':\n%s", want, sql);
	snprintf(want, sizeof want, "status TEXT NOT NULL DEFAULT '%s' CHECK(status IN (%s))",
		 bv_db_status_name(BV_RUN_PENDING),
		 bv_db_statuses_text(list, sizeof list, BV_RUN_ALL_STATUSES, "'", ",", ","));
	CHECK(strstr(sql, want) != NULL, "the runs table has '%s':\n%s", want, sql);
	bv_db_close(db);
	remove_db(path);
}

/* nn's training methods are db's methods of the same names, soft alike. */
static void test_nn_names(void)
{
	const bv_method nn_all[] = {BV_METHOD_CE, BV_METHOD_KD, BV_METHOD_WSL, BV_METHOD_KD_FILTER,
				    BV_METHOD_TEACHER};
	CHECK(BV_ARRAY_LEN(nn_all) == BV_RUN_N_METHODS, "as many methods in nn as in db");
	for (size_t i = 0; i < BV_ARRAY_LEN(nn_all); i++) {
		bv_run_method m = BV_RUN_N_METHODS;
		const char *name = bv_method_name(nn_all[i]);
		CHECK(bv_db_method_parse(&m, name) == 0, "nn's '%s' is a db method", name);
		const int nn_soft = nn_all[i] == BV_METHOD_KD || nn_all[i] == BV_METHOD_WSL ||
				    nn_all[i] == BV_METHOD_KD_FILTER;
		CHECK(bv_db_method_soft(m) == nn_soft, "'%s' soft in both or neither", name);
	}
	for (int m = 0; m < BV_RUN_N_METHODS; m++) {
		bv_method nm;
		const char *name = bv_db_method_name((bv_run_method)m);
		CHECK(bv_method_parse(&nm, name, "test") == 0 &&
			      strcmp(bv_method_name(nm), name) == 0,
		      "db's '%s' is an nn method", name);
	}
}

/* A run row with a method or status the table lacks is refused on reading,
 * naming the run. */
static void test_unknown_rows(void)
{
	char path[600];
	bv_db *db = NULL;
	int64_t id = 0;
	tmp_path(path, sizeof path, "unknown.db");
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0 &&
		      bv_db_run_ensure(db, &id, NULL, BV_RUN_KD, 4, 1, 1, 1, 1, "mlp:", 2) == 0,
	      "a run: %s", bv_error_last());
	if (!db)
		return;
	sqlite3 *h = bv_db_handle(db);
	bv_run r;
	bv_run *runs = NULL;
	int n = 0;
	sqlite3_exec(h, "PRAGMA ignore_check_constraints = 1; UPDATE runs SET status = 'weird'",
		     NULL, NULL, NULL);
	CHECK_ERR(bv_db_run_get(db, &r, id), BV_EFORMAT);
	char want[1024];
	snprintf(want, sizeof want,
		 "'%s': run %lld has status 'weird', expected pending, running, done or failed "
		 "(the database is damaged)",
		 path, (long long)id);
	CHECK(strcmp(bv_error_last(), want) == 0, "message: %s", bv_error_last());
	sqlite3_exec(h, "UPDATE runs SET status = 'done', method = 'kd2'", NULL, NULL, NULL);
	CHECK_ERR(bv_db_runs_list(db, &runs, &n), BV_EFORMAT);
	CHECK(runs == NULL && n == 0, "nothing listed");
	snprintf(want, sizeof want,
		 "'%s': run %lld has method 'kd2', expected teacher, ce, kd, wsl or kd-filter (the "
		 "database is damaged)",
		 path, (long long)id);
	CHECK(strcmp(bv_error_last(), want) == 0, "message: %s", bv_error_last());
	bv_db_close(db);
	remove_db(path);
}

enum { T_N = 20, T_K = 3 }; /* samples and classes of the small database */

/* A small collection written through db.h: K = 3 classes (no config
 * n_classes), 20 test samples, a teacher, ce and kd at T = 2 for seeds 1 and
 * 2, two epochs each, logits from a fixed formula. Ids: teacher 1, then ce 1,
 * kd 1, ce 2, kd 2. */
static bv_db *small_db(const char *path)
{
	bv_db *db = NULL;
	int labels[T_N];
	float logits[T_N * T_K];
	for (int i = 0; i < T_N; i++)
		labels[i] = i % T_K;
	if (bv_db_open(&db, path, BV_DB_CREATE) != 0 ||
	    bv_db_samples_put(db, "test", labels, T_N) != 0)
		goto fail;
	const struct {
		bv_run_method m;
		double T;
		int seed;
	} cells[] = {{BV_RUN_TEACHER, NAN, 0}, {BV_RUN_CE, NAN, 1}, {BV_RUN_KD, 2, 1},
		     {BV_RUN_CE, NAN, 2}, {BV_RUN_KD, 2, 2}};
	for (size_t c = 0; c < BV_ARRAY_LEN(cells); c++) {
		int64_t id;
		if (bv_db_run_ensure(db, &id, NULL, cells[c].m, cells[c].T, cells[c].seed, 1, 1, 1,
				     "mlp:", 2) != 0)
			goto fail;
		for (int e = 1; e <= 2; e++) {
			bv_db_metrics m = {e, 0.1, 1, 0.5, 0.5 + 0.01 * (double)c, 0, 0, 1};
			for (int i = 0; i < T_N * T_K; i++)
				logits[i] = (float)((i * 7 + (int)c * 3 + e) % 11) / 4.0f;
			if (bv_db_snapshot_put(db, id, &m, logits, T_N, NULL, 0, T_K) != 0)
				goto fail;
		}
		if (bv_db_run_finish(db, id, 0.5, NULL, 1) != 0)
			goto fail;
	}
	return db;
fail:
	fprintf(stderr, "small_db: %s\n", bv_error_last());
	bv_db_close(db);
	return NULL;
}

static void quiet(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

/* decompose reads K from the snapshots (3 here; there is no n_classes), and
 * refuses a snapshot of another k and an n_classes that disagrees. */
static void test_snapshot_k(void)
{
	char path[600], want[1024];
	tmp_path(path, sizeof path, "k.db");
	bv_db *db = small_db(path);
	CHECK(db != NULL, "the small database");
	if (!db)
		return;
	sqlite3 *h = bv_db_handle(db);
	bv_decompose_opts o = {.epoch = 0, .split = "test", .criterion = BV_CRIT_BV};
	CHECK(bv_decompose_db(db, &o, quiet, NULL) == 0, "decompose with K = 3: %s",
	      bv_error_last());
	sqlite3_stmt *st = NULL;
	CHECK(bv_db_prepare(db, &st, "SELECT count(*) FROM sample_stats") == 0 &&
		      sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 2 * 2 * T_N,
	      "one row per sample, method and epoch");
	sqlite3_finalize(st);

	bv_db_snapshot_ref refs[] = {{2, 1}, {3, 1}, {4, 2}, {99, 1}};
	int k = -1;
	CHECK(bv_db_snapshots_k(db, &k, "test", refs, 4, "these") == 0 && k == T_K,
	      "the snapshots' k, a missing one left out: %d %s", k, bv_error_last());
	CHECK(bv_db_snapshots_k(db, &k, "train", refs, 4, "these") == 0 && k == 0,
	      "no snapshot: k 0 (%d)", k);

	/* run 3 (kd seed 1) at epoch 2 with k = 4: named, whatever the order */
	sqlite3_exec(h, "UPDATE snapshots SET k = 4 WHERE run_id = 3 AND epoch = 2", NULL, NULL,
		     NULL);
	snprintf(want, sizeof want,
		 "'%s': run 3 epoch 2 has k = 4, the other snapshots of this decomposition have 3 "
		 "(the database is damaged)",
		 path);
	CHECK_ERR(bv_decompose_db(db, &o, quiet, NULL), BV_EFORMAT);
	CHECK(strcmp(bv_error_last(), want) == 0, "message: %s", bv_error_last());
	o.epoch = 1; /* epoch 2 is not read: no complaint */
	CHECK(bv_decompose_db(db, &o, quiet, NULL) == 0, "epoch 1 only: %s", bv_error_last());
	o.epoch = 0;
	sqlite3_exec(h, "UPDATE snapshots SET k = 3 WHERE run_id = 3 AND epoch = 2", NULL, NULL,
		     NULL);
	sqlite3_exec(h, "UPDATE snapshots SET k = 'x' WHERE run_id = 1", NULL, NULL, NULL);
	snprintf(want, sizeof want,
		 "'%s': run 1 epoch 2 has k = x, expected a whole number > 0 (the database is "
		 "damaged)",
		 path);
	CHECK_ERR(bv_decompose_db(db, &o, quiet, NULL), BV_EFORMAT);
	CHECK(strcmp(bv_error_last(), want) == 0, "the teacher's k: %s", bv_error_last());
	sqlite3_exec(h, "UPDATE snapshots SET k = 3 WHERE run_id = 1", NULL, NULL, NULL);

	/* config n_classes is only a cross-check */
	CHECK(bv_db_config_set(db, "n_classes", "3") == 0 &&
		      bv_decompose_db(db, &o, quiet, NULL) == 0,
	      "n_classes 3: %s", bv_error_last());
	bv_db_config_set(db, "n_classes", "10");
	snprintf(want, sizeof want,
		 "'%s': config n_classes is 10, the snapshots of this decomposition have k = 3 "
		 "(the database is damaged)",
		 path);
	CHECK_ERR(bv_decompose_db(db, &o, quiet, NULL), BV_EFORMAT);
	CHECK(strcmp(bv_error_last(), want) == 0, "message: %s", bv_error_last());
	bv_db_close(db);
	remove_db(path);
}

/* Analysable: done, with a snapshot of the split and a metrics row at the
 * epoch; the epochs at which a set of runs all are; a metrics row's test_acc. */
static void test_analysable(void)
{
	char path[600], want[1024], done[64];
	tmp_path(path, sizeof path, "analysable.db");
	bv_db *db = small_db(path);
	CHECK(db != NULL, "the small database");
	if (!db)
		return;
	snprintf(done, sizeof done, "status = '%s'", bv_db_status_name(BV_RUN_DONE));
	CHECK(strcmp(BV_DB_SQL_DONE, done) == 0, "BV_DB_SQL_DONE is '%s'", BV_DB_SQL_DONE);
	sqlite3 *h = bv_db_handle(db);
	bv_run *runs = NULL;
	int n = 0, *epochs = NULL, n_epochs = 0;
	const int64_t students[] = {2, 3, 4, 5};
	CHECK(bv_db_runs_analysable(db, "test", 2, &runs, &n) == 0 && n == 5,
	      "every run at epoch 2: %d %s", n, bv_error_last());
	free(runs);
	CHECK(bv_db_runs_analysable(db, "train", 2, &runs, &n) == 0 && n == 0 && !runs,
	      "no train snapshots: %d", n);
	CHECK(bv_db_epochs_analysable(db, "test", students, 4, &epochs, &n_epochs) == 0 &&
		      n_epochs == 2 && epochs[0] == 1 && epochs[1] == 2,
	      "the students at epochs 1 and 2: %d", n_epochs);
	free(epochs);
	/* a snapshot without its metrics row, and a run that is not done */
	sqlite3_exec(h, "DELETE FROM metrics WHERE run_id = 3 AND epoch = 2", NULL, NULL, NULL);
	CHECK(bv_db_run_set_status(db, 5, BV_RUN_RUNNING) == 0, "%s", bv_error_last());
	CHECK(bv_db_runs_analysable(db, "test", 2, &runs, &n) == 0 && n == 3 && runs[0].id == 2 &&
		      runs[1].id == 4 && runs[2].id == 1,
	      "ce 1, ce 2 and the teacher at epoch 2: %d", n);
	free(runs);
	CHECK(bv_db_epochs_analysable(db, "test", students, 3, &epochs, &n_epochs) == 0 &&
		      n_epochs == 1 && epochs[0] == 1,
	      "ce 1, kd 1, ce 2: epoch 1 only (%d)", n_epochs);
	free(epochs);
	CHECK(bv_db_epochs_analysable(db, "test", students, 4, &epochs, &n_epochs) == 0 &&
		      n_epochs == 0,
	      "with kd 2 (running): none (%d)", n_epochs);
	free(epochs);

	double acc = -1;
	CHECK(bv_db_run_test_acc(db, 2, 1, &acc) == 0 && fabs(acc - 0.51) < 1e-12, "acc %g", acc);
	CHECK_ERR(bv_db_run_test_acc(db, 3, 2, &acc), BV_ESTATE);
	CHECK(strcmp(bv_error_last(), "run 3 has no metrics for epoch 2") == 0, "message: %s",
	      bv_error_last());
	sqlite3_exec(h, "UPDATE metrics SET test_acc = 1.5 WHERE run_id = 2 AND epoch = 1", NULL,
		     NULL, NULL);
	CHECK_ERR(bv_db_run_test_acc(db, 2, 1, &acc), BV_EFORMAT);
	snprintf(want, sizeof want,
		 "'%s': run 2 epoch 1 has test_acc 1.5 in metrics, expected a number 0..1 (the "
		 "database is damaged)",
		 path);
	CHECK(strcmp(bv_error_last(), want) == 0, "message: %s", bv_error_last());
	bv_db_close(db);
	remove_db(path);
}

int main(void)
{
	if (bv_check_tmpdir(tmpdir, sizeof tmpdir, "test_contract") != 0)
		return 1;
	test_table();
	test_schema();
	test_nn_names();
	test_unknown_rows();
	test_snapshot_k();
	test_analysable();
	rmdir(tmpdir);
	return bv_check_done();
}
