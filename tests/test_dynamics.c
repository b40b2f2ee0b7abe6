/*
 * The training dynamics (analysis/dynamics.c) on hand-made logits whose
 * answers are known, and schema 4 (db/schema.c): a version-3 database
 * migrated by a writing open, the new table and view then there and filled
 * by db/dynamics.c, and the schema check refusing a file without them.
 * tests/test_dynamics.py holds the numbers of a real collection to NumPy.
 */
#include <math.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "analysis.h"
#include "check.h"
#include "check_db.h"
#include "db.h"

static char tmpdir[512];

/* Logits of K = 2 whose argmax is the label (correct) or not, with p(true) = p. */
static void sample_logits(float *z, int y, double p)
{
	/* softmax([a, 0])[0] = p  <=>  a = log(p / (1 - p)) */
	const float a = (float)log(p / (1 - p));
	z[y] = a;
	z[1 - y] = 0;
}

static void test_hand(void)
{
	/* 5 epochs (numbered 2, 4, ..., 10: first_learned is an epoch, not an index) x 4 samples */
	enum { E = 5, N = 4, K = 2 };
	const int epochs[E] = {2, 4, 6, 8, 10};
	const int labels[N] = {0, 1, 0, 1};
	/* p(true) of each sample at each epoch; > 0.5 is correct (K = 2) */
	const double p[N][E] = {
		{0.9, 0.2, 0.8, 0.3, 0.7},  /* correct, wrong, correct, wrong, correct: forgotten twice */
		{0.1, 0.2, 0.3, 0.4, 0.45}, /* never learned */
		{0.4, 0.3, 0.2, 0.1, 0.6},  /* learned at the last epoch only */
		{0.6, 0.7, 0.8, 0.9, 0.95}, /* correct throughout */
	};
	float z[E * N * K];
	for (int e = 0; e < E; e++)
		for (int i = 0; i < N; i++)
			sample_logits(z + ((size_t)e * N + i) * K, labels[i], p[i][e]);
	bv_dyn_row rows[N];
	CHECK(bv_dynamics_compute(rows, z, epochs, E, N, K, labels) == 0, "%s", bv_error_last());
	const int want_first[N] = {10, -1, 10, 2}, want_forget[N] = {2, 0, 0, 0};
	const double want_corr[N] = {0.6, 0, 0.2, 1};
	for (int i = 0; i < N; i++) {
		double mean = 0, ss = 0;
		for (int e = 0; e < E; e++)
			mean += p[i][e] / E;
		for (int e = 0; e < E; e++)
			ss += (p[i][e] - mean) * (p[i][e] - mean) / E;
		CHECK(rows[i].sample_idx == i && rows[i].n_epochs == E, "sample %d: idx and epochs", i);
		CHECK(rows[i].first_learned == want_first[i], "sample %d: first_learned %d, want %d", i,
		      rows[i].first_learned, want_first[i]);
		CHECK(rows[i].forgetting == want_forget[i], "sample %d: forgetting %d, want %d", i,
		      rows[i].forgetting, want_forget[i]);
		CHECK_NEAR(rows[i].correctness, want_corr[i], 1e-15, "correctness");
		/* the logits are float32: p(true) is the given p to ~1e-7 */
		CHECK_NEAR(rows[i].confidence, mean, 1e-6, "confidence");
		CHECK_NEAR(rows[i].variability, sqrt(ss), 1e-6, "variability");
	}

	/* one epoch only: variability 0, first_learned that epoch when correct */
	CHECK(bv_dynamics_compute(rows, z, epochs, 1, N, K, labels) == 0, "%s", bv_error_last());
	CHECK(rows[0].variability == 0 && rows[0].first_learned == 2 && rows[0].forgetting == 0 &&
		      rows[0].correctness == 1,
	      "one epoch: variability %g, first_learned %d", rows[0].variability, rows[0].first_learned);
	CHECK(rows[1].first_learned == -1 && rows[1].correctness == 0 && rows[1].variability == 0,
	      "one epoch, wrong: no first_learned");

	/* epochs must ascend; no more than planned */
	bv_dynamics *d = NULL;
	CHECK(bv_dynamics_new(&d, N, 2) == 0, "%s", bv_error_last());
	CHECK(bv_dynamics_add(d, 3, z, K, labels) == 0, "%s", bv_error_last());
	CHECK_ERR(bv_dynamics_add(d, 3, z, K, labels), BV_EINVAL);
	CHECK(bv_dynamics_add(d, 4, z, K, labels) == 0, "%s", bv_error_last());
	CHECK_ERR(bv_dynamics_add(d, 5, z, K, labels), BV_EINVAL);
	CHECK(bv_dynamics_epochs(d) == 2, "two epochs added");
	bv_dynamics_free(d);
	bv_dynamics_free(NULL);
}

static void test_migration(void)
{
	char path[600], want[1400];
	bv_db *db = NULL;
	int64_t run = 0;
	snprintf(path, sizeof path, "%s/v3.db", tmpdir);
	remove_db(path);
	/* a version-3 file: today's schema less what migration 3 -> 4 adds, with a run */
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	CHECK(bv_db_run_ensure(db, &run, NULL, BV_RUN_CE, NAN, 1, 1, NAN, NAN, "m", 3) == 0, "%s",
	      bv_error_last());
	bv_db_close(db);
	raw_sqlite(path, UNDO_5 "DROP VIEW dynamics_by_method; DROP TABLE dynamics; PRAGMA user_version = 3");
	db = NULL;
	CHECK_ERR(bv_db_open(&db, path, BV_DB_READONLY), BV_EFORMAT);
	CHECK(strstr(bv_error_last(), "schema version 3") != NULL, "%s", bv_error_last());
	CHECK(bv_db_open(&db, path, BV_DB_WRITE) == 0, "migrating 3 -> 4: %s", bv_error_last());
	sqlite3 *h = db ? bv_db_handle(db) : NULL;
	CHECK(h && q_int(h, "PRAGMA user_version") == BV_DB_SCHEMA_VERSION, "user_version %d",
	      BV_DB_SCHEMA_VERSION);
	CHECK(h && q_int(h, "SELECT count(*) FROM runs") == 1, "the run kept");
	CHECK(h && q_int(h, "SELECT count(*) FROM sqlite_master WHERE name = 'dynamics' AND "
			    "type = 'table' AND sql LIKE '%WITHOUT ROWID%'") == 1,
	      "the dynamics table");

	/* rows in, replaced whole, NULL first_learned, the view over done runs */
	const bv_dyn_row rows[2] = {{0, 3, 1, 0.5, 0.6, 0.1, 3}, {1, -1, 0, 0, 0.2, 0.05, 3}};
	CHECK(db && bv_db_dynamics_put(db, run, "test", rows, 2) == 0, "%s", bv_error_last());
	CHECK(db && bv_db_dynamics_put(db, run, "test", rows + 1, 1) == 0, "%s", bv_error_last());
	CHECK(h && q_int(h, "SELECT count(*) FROM dynamics WHERE run_id = 1 AND sample_idx = 1 AND "
			    "first_learned IS NULL AND n_epochs = 3") == 1 &&
		      q_int(h, "SELECT count(*) FROM dynamics") == 1,
	      "a put replaces the run's rows");
	CHECK(h && q_int(h, "SELECT count(*) FROM dynamics_by_method") == 0, "the view: done runs only");
	CHECK(db && bv_db_run_finish(db, run, 0.5, NULL, 1) == 0, "%s", bv_error_last());
	CHECK(h && q_int(h, "SELECT n_runs * 10 + n_learned FROM dynamics_by_method") == 10,
	      "the view: one run, none learned");
	CHECK(db && bv_db_check_dynamics(db) == 0, "%s", bv_error_last());
	int pruned = -1;
	CHECK(db && bv_db_dynamics_prune(db, "test", &run, 1, &pruned) == 0 && pruned == 0,
	      "prune keeps the listed run");
	CHECK(db && bv_db_dynamics_prune(db, "test", NULL, 0, &pruned) == 0 && pruned == 1 &&
		      q_int(h, "SELECT count(*) FROM dynamics") == 0,
	      "prune drops the others");
	/* text where a number belongs is refused, naming the row */
	CHECK(h && sqlite3_exec(h, "INSERT INTO dynamics VALUES(1, 'test', 7, NULL, 0, 'x', 0.1, 0, 2)",
				NULL, NULL, NULL) == SQLITE_OK,
	      "a crafted row");
	CHECK_ERR(bv_db_check_dynamics(db), BV_EFORMAT);
	snprintf(want, sizeof want,
		 "'%s': the dynamics row of run 1, split 'test', sample 7 has a bad correctness "
		 "(the database is damaged)",
		 path);
	CHECK(strcmp(bv_error_last(), want) == 0, "message: %s", bv_error_last());
	bv_db_close(db);

	/* the schema check refuses a version-4 file without the table or the view */
	raw_sqlite(path, "DROP VIEW dynamics_by_method");
	db = NULL;
	CHECK_ERR(bv_db_open(&db, path, BV_DB_WRITE), BV_EFORMAT);
	snprintf(want, sizeof want,
		 "'%s' is a damaged bvtool database: it has no view 'dynamics_by_method'", path);
	CHECK(strcmp(bv_error_last(), want) == 0, "message: %s", bv_error_last());
	raw_sqlite(path, "DROP TABLE dynamics; CREATE TABLE dynamics(run_id, split, sample_idx)");
	CHECK_ERR(bv_db_open(&db, path, BV_DB_READONLY), BV_EFORMAT);
	snprintf(want, sizeof want,
		 "'%s' is a damaged bvtool database: table 'dynamics' has no column 'first_learned'",
		 path);
	CHECK(strcmp(bv_error_last(), want) == 0, "message: %s", bv_error_last());
	remove_db(path);
}

int main(void)
{
	if (bv_check_tmpdir(tmpdir, sizeof tmpdir, "test_dynamics") != 0)
		return 1;
	test_hand();
	test_migration();
	rmdir(tmpdir);
	return bv_check_done();
}
