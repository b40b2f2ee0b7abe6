/*
 * The database: schema and PRAGMAs of a new file; runs, samples, in-bag
 * counts, snapshots and metrics round trips; the predictions view and the SQL
 * functions; every recipe of docs/schema.md run against a real database;
 * every refused file left byte-identical; two processes writing one file at
 * once; the file's size against the raw size of its logits.
 */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "check_db.h"
#include "db.h"
#include "schema.h" /* db_schema_migrate, private to db/ */


static char tmpdir[512];

static void tmp_path(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", tmpdir, name);
}

static void q_text(sqlite3 *h, const char *sql, char *out, size_t size)
{
	sqlite3_stmt *st = NULL;
	out[0] = '\0';
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}
static float rnd_float(void)
{
	return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 8.0 - 4.0);
}
static void fill_logits(float *z, size_t n)
{
	for (size_t i = 0; i < n; i++)
		z[i] = rnd_float();
}

static int argmax(const float *z, int k)
{
	int a = 0;
	for (int j = 1; j < k; j++)
		if (z[j] > z[a])
			a = j;
	return a;
}

/* The last message must be exactly `want`. */
#define CHECK_MSG(want)                                                               \
	CHECK(strcmp(bv_error_last(), (want)) == 0, "message '%s', want '%s'", bv_error_last(), \
	      (want))

static void test_create(const char *path)
{
	bv_db *db = NULL;
	char mode[32];
	remove_db(path);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	if (!db)
		return;
	sqlite3 *h = bv_db_handle(db);
	CHECK(q_int(h, "PRAGMA user_version") == BV_DB_SCHEMA_VERSION, "user_version %lld",
	      q_int(h, "PRAGMA user_version"));
	CHECK(q_int(h, "PRAGMA application_id") == BV_DB_APPLICATION_ID, "application_id %lld",
	      q_int(h, "PRAGMA application_id"));
	q_text(h, "PRAGMA journal_mode", mode, sizeof mode);
	CHECK(strcmp(mode, "wal") == 0, "journal_mode %s", mode);
	CHECK(q_int(h, "PRAGMA foreign_keys") == 1, "foreign_keys on");
	CHECK(q_int(h, "PRAGMA page_size") == 16384, "page_size %lld", q_int(h, "PRAGMA page_size"));
	CHECK(q_int(h, "PRAGMA busy_timeout") == 60000, "busy_timeout");
	CHECK(q_int(h, "PRAGMA synchronous") == 1, "synchronous NORMAL (1)");
	CHECK(q_int(h, "SELECT count(*) FROM sqlite_master WHERE name IN ('config','runs','samples',"
		       "'snapshots','predictions','metrics','inbag','runs_cell')") == 8,
	      "all tables, the view and the index");
	CHECK(strcmp(bv_db_path(db), path) == 0, "bv_db_path");
	bv_db_close(db);
	bv_db_close(NULL); /* a no-op */
	/* reopening does not migrate again */
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	bv_db_close(db);
}

static void test_config(bv_db *db)
{
	char v[16];
	CHECK(bv_db_config_get(db, "model", v, sizeof v) == 0, "absent key");
	CHECK(bv_db_config_set(db, "model", "mlp:12") == 0, "%s", bv_error_last());
	CHECK(bv_db_config_get(db, "model", v, sizeof v) == 1 && strcmp(v, "mlp:12") == 0, "got %s", v);
	CHECK(bv_db_config_set(db, "model", "mlp:1200-1200") == 0, "%s", bv_error_last());
	CHECK(bv_db_config_get(db, "model", v, sizeof v) == 1 && strcmp(v, "mlp:1200-1200") == 0,
	      "replaced: %s", v);
	CHECK_ERR(bv_db_config_get(db, "model", v, 5), BV_EINVAL);
	CHECK_ERR(bv_db_config_set(db, "model", NULL), BV_EINVAL);
}

static void test_runs(bv_db *db)
{
	int64_t teacher, ce1, ce1b, ce2, kd4, kd2, kdnull, wsl, again;
	int created = -1;
	CHECK(bv_db_run_ensure(db, &teacher, &created, BV_RUN_TEACHER, NAN, 0, 1, NAN, NAN,
			       "mlp:1200-1200", 60) == 0 && created == 1,
	      "teacher: %s", bv_error_last());
	CHECK(bv_db_run_ensure(db, &wsl, NULL, BV_RUN_WSL, 4, 1, 1, 2.25, 1, "mlp:", 30) == 0, "%s",
	      bv_error_last());
	CHECK(bv_db_run_ensure(db, &kd4, NULL, BV_RUN_KD, 4, 1, 1, 2.25, 1, "mlp:", 30) == 0, "%s",
	      bv_error_last());
	CHECK(bv_db_run_ensure(db, &ce2, NULL, BV_RUN_CE, NAN, 2, 1, NAN, 1, "mlp:", 30) == 0, "%s",
	      bv_error_last());
	CHECK(bv_db_run_ensure(db, &kd2, NULL, BV_RUN_KD, 2, 1, 1, 2.25, 1, "mlp:", 30) == 0, "%s",
	      bv_error_last());
	CHECK(bv_db_run_ensure(db, &ce1, &created, BV_RUN_CE, NAN, 1, 1, NAN, 1, "mlp:", 30) == 0 &&
		      created == 1,
	      "%s", bv_error_last());
	/* NULL orders first within a method (an odd run, only to test the order) */
	CHECK(bv_db_run_ensure(db, &kdnull, NULL, BV_RUN_KD, NAN, 1, 1, 2.25, 1, "mlp:", 30) == 0,
	      "%s", bv_error_last());
	/* idempotent: the same cell is the same run, NULL temperature included */
	CHECK(bv_db_run_ensure(db, &ce1b, &created, BV_RUN_CE, NAN, 1, 1, 0.5, 0.5, "other", 1) == 0 &&
		      ce1b == ce1 && created == 0,
	      "ce seed 1 again: id %lld vs %lld, created %d", (long long)ce1b, (long long)ce1, created);
	CHECK(bv_db_run_ensure(db, &again, &created, BV_RUN_KD, 4, 1, 1, 2.25, 1, "mlp:", 30) == 0 &&
		      again == kd4 && created == 0,
	      "kd T=4 seed 1 again");
	sqlite3 *h = bv_db_handle(db);
	CHECK(q_int(h, "SELECT count(*) FROM runs WHERE method = 'ce' AND seed = 1") == 1, "one ce seed 1");
	CHECK(sqlite3_exec(h, "INSERT INTO runs(method, seed) VALUES('ce', 1)", NULL, NULL, NULL) ==
		      SQLITE_CONSTRAINT,
	      "the unique index refuses a second NULL-temperature ce seed 1");
	CHECK_ERR(bv_db_run_ensure(db, &again, NULL, (bv_run_method)99, 4, 1, 1, 1, 1, "mlp:", 3),
		  BV_EINVAL);

	bv_run *runs = NULL;
	int n = 0;
	CHECK(bv_db_runs_list(db, &runs, &n) == 0 && n == 7, "runs_list: %d %s", n, bv_error_last());
	const int64_t order[] = {ce1, ce2, kdnull, kd2, kd4, teacher, wsl};
	for (int i = 0; runs && i < 7; i++)
		CHECK(runs[i].id == order[i], "runs_list[%d] is run %lld (%s T=%g seed %d), want %lld", i,
		      (long long)runs[i].id, bv_db_method_name(runs[i].method), runs[i].temperature,
		      runs[i].seed,
		      (long long)order[i]);
	free(runs);

	bv_run r;
	CHECK(bv_db_run_get(db, &r, kd4) == 0, "%s", bv_error_last());
	CHECK(r.method == BV_RUN_KD && r.temperature == 4 && r.alpha == 2.25 && r.gamma == 1 &&
		      r.seed == 1 && r.status == BV_RUN_PENDING && isnan(r.test_acc) &&
		      r.epochs == 30 && r.epochs_done == 0 && strcmp(r.model, "mlp:") == 0 &&
		      r.checkpoint[0] == '\0' && isnan(r.seconds),
	      "kd run fields");
	CHECK(bv_db_run_get(db, &r, ce1) == 0 && isnan(r.temperature) && isnan(r.alpha), "ce NULLs");
	CHECK_ERR(bv_db_run_get(db, &r, 9999), BV_EINVAL);

	CHECK(bv_db_run_set_status(db, kd4, BV_RUN_RUNNING) == 0, "%s", bv_error_last());
	CHECK(q_int(h, "SELECT count(*) FROM runs WHERE status = 'running' AND started_at LIKE '20%Z'") == 1,
	      "running with started_at");
	CHECK_ERR(bv_db_run_set_status(db, kd4, BV_RUN_DONE), BV_EINVAL);
	CHECK_ERR(bv_db_run_set_status(db, 9999, BV_RUN_RUNNING), BV_EINVAL);
	bv_db_metrics m = {1, 0.1, 2.3, 0.5, 0.6, 0, 0, 1.5};
	CHECK(bv_db_snapshot_put(db, kd4, &m, NULL, 0, NULL, 0, 10) == 0, "%s", bv_error_last());
	CHECK(bv_db_run_finish(db, kd4, 0.975, "ckpt/kd-4-1.ckpt", 12.5) == 0, "%s", bv_error_last());
	CHECK(bv_db_run_get(db, &r, kd4) == 0 && r.status == BV_RUN_DONE && r.test_acc == 0.975 &&
		      strcmp(r.checkpoint, "ckpt/kd-4-1.ckpt") == 0 && r.seconds == 12.5 &&
		      r.epochs_done == 1,
	      "finished: %s %g %s %g %d", bv_db_status_name(r.status), r.test_acc, r.checkpoint,
	      r.seconds, r.epochs_done);
	CHECK(q_int(h, "SELECT count(*) FROM runs WHERE finished_at IS NOT NULL") == 1, "finished_at");
	CHECK(bv_db_run_finish(db, ce1, 0.9, NULL, 3) == 0 && bv_db_run_get(db, &r, ce1) == 0 &&
		      r.checkpoint[0] == '\0',
	      "finish without a checkpoint");
	CHECK_ERR(bv_db_run_finish(db, 9999, 0.5, NULL, 1), BV_EINVAL);
	CHECK(bv_db_run_reset(db, kd4) == 0, "%s", bv_error_last());
	CHECK(bv_db_run_get(db, &r, kd4) == 0 && r.status == BV_RUN_PENDING && isnan(r.test_acc) &&
		      r.checkpoint[0] == '\0' && r.epochs_done == 0 && isnan(r.seconds),
	      "reset: %s %d", bv_db_status_name(r.status), r.epochs_done);
	CHECK_ERR(bv_db_run_reset(db, 9999), BV_EINVAL);
}

static void test_samples(bv_db *db, const int *labels, int n)
{
	char want[700];
	int *got = malloc(sizeof(int) * (size_t)n), *bad = malloc(sizeof(int) * (size_t)n), m = -1;
	CHECK(bv_db_samples_get(db, "test", NULL, 0, &m) == 0 && m == 0, "no samples yet: %d", m);
	CHECK(bv_db_samples_put(db, "test", labels, n) == 0, "%s", bv_error_last());
	CHECK(bv_db_samples_put(db, "test", labels, n) == 0, "same labels again: %s", bv_error_last());
	CHECK(bv_db_samples_get(db, "test", NULL, 0, &m) == 0 && m == n, "count %d", m);
	CHECK(bv_db_samples_get(db, "test", got, n, &m) == 0 && m == n &&
		      memcmp(got, labels, sizeof(int) * (size_t)n) == 0,
	      "labels round trip");
	CHECK_ERR(bv_db_samples_get(db, "test", got, n - 1, &m), BV_EINVAL);
	CHECK_ERR(bv_db_samples_put(db, "test", labels, n - 1), BV_EMISMATCH);
	snprintf(want, sizeof want, "database '%s' holds %d test samples, the data has %d",
		 bv_db_path(db), n, n - 1);
	CHECK_MSG(want);
	memcpy(bad, labels, sizeof(int) * (size_t)n);
	bad[123] = (labels[123] + 1) % 10;
	CHECK_ERR(bv_db_samples_put(db, "test", bad, n), BV_EMISMATCH);
	snprintf(want, sizeof want,
		 "database '%s': test sample 123 has label %d in the database, %d in the data",
		 bv_db_path(db), labels[123], bad[123]);
	CHECK_MSG(want);
	CHECK_ERR(bv_db_samples_put(db, "val", labels, n), BV_EINVAL);
	CHECK(q_int(bv_db_handle(db), "SELECT count(*) FROM samples") == n, "nothing half-written");
	free(got);
	free(bad);
}

static void test_inbag(bv_db *db, int seed, int *counts, int n)
{
	int *got = malloc(sizeof(int) * (size_t)n);
	for (int i = 0; i < n; i++) /* a bootstrap draw: n draws with replacement */
		counts[i] = 0;
	for (int i = 0; i < n; i++)
		counts[rnd() % (uint64_t)n]++;
	double t0 = bv_now();
	CHECK(bv_db_inbag_put(db, seed, counts, n) == 0, "%s", bv_error_last());
	double dt = bv_now() - t0;
	/* informational: speed is measured by bench/collect_bench.sh, not here */
	printf("inbag_put of %d rows: %.3f s\n", n, dt);
	CHECK(bv_db_inbag_get(db, seed, got, n) == 0 && memcmp(got, counts, sizeof(int) * (size_t)n) == 0,
	      "inbag round trip: %s", bv_error_last());
	CHECK_ERR(bv_db_inbag_get(db, seed + 100, got, n), BV_ESTATE);
	CHECK_ERR(bv_db_inbag_get(db, seed, got, n - 1), BV_EMISMATCH);
	/* put replaces */
	int c0 = counts[0];
	counts[0] = c0 + 5;
	CHECK(bv_db_inbag_put(db, seed, counts, n) == 0 && bv_db_inbag_get(db, seed, got, n) == 0 &&
		      got[0] == c0 + 5,
	      "replaced");
	counts[0] = c0;
	CHECK(bv_db_inbag_put(db, seed, counts, n) == 0, "%s", bv_error_last());
	free(got);
}

static int metrics_equal(const bv_db_metrics *a, const bv_db_metrics *b)
{
	return a->epoch == b->epoch && a->lr == b->lr && a->train_loss == b->train_loss &&
	       a->train_acc == b->train_acc && a->test_acc == b->test_acc &&
	       a->wsl_weight == b->wsl_weight && a->filtered == b->filtered && a->seconds == b->seconds;
}

static int same_bits(const float *a, const float *b, size_t n)
{
	return memcmp(a, b, n * sizeof(float)) == 0;
}

static void test_snapshots(bv_db *db, int64_t run, const int *test_labels, int n, int k,
			   int n_train)
{
	sqlite3 *h = bv_db_handle(db);
	float *z1 = malloc(sizeof(float) * (size_t)n * k), *z3 = malloc(sizeof(float) * (size_t)n * k);
	float *zt = malloc(sizeof(float) * (size_t)n_train * k);
	float *got = malloc(sizeof(float) * (size_t)n * k);
	int *ep = NULL, n_ep = 0;
	fill_logits(z1, (size_t)n * k);
	fill_logits(z3, (size_t)n * k);
	fill_logits(zt, (size_t)n_train * k);
	z1[0] = -0.0f; /* bit patterns survive */
	z1[1] = NAN;
	z1[2] = INFINITY;
	bv_db_metrics m1 = {1, 0.1, 2.5, 0.4, 0.45, 0.7, 0.1, 1.25};
	bv_db_metrics m2 = {2, 0.09, 2.0, 0.5, 0.55, NAN, 0, 1.5};
	bv_db_metrics m3 = {3, 0.08, 1.5, 0.6, 0.65, 0.9, 0.2, 1.75};
	CHECK(bv_db_snapshot_put(db, run, &m1, z1, n, NULL, 0, k) == 0, "%s", bv_error_last());
	CHECK(bv_db_snapshot_put(db, run, &m2, NULL, n, NULL, 0, k) == 0, "%s", bv_error_last());
	CHECK(bv_db_snapshot_put(db, run, &m3, z1, n, zt, n_train, k) == 0, "%s", bv_error_last());
	CHECK(bv_db_logits_get(db, run, 1, "test", got, n, k) == 0 && same_bits(got, z1, (size_t)n * k),
	      "test snapshot round trip, bitwise: %s", bv_error_last());
	/* re-put replaces */
	CHECK(bv_db_snapshot_put(db, run, &m3, z3, n, zt, n_train, k) == 0, "%s", bv_error_last());
	CHECK(bv_db_logits_get(db, run, 3, "test", got, n, k) == 0 && same_bits(got, z3, (size_t)n * k),
	      "replaced snapshot");
	CHECK(q_int(h, "SELECT count(*) FROM snapshots WHERE epoch = 3") == 2, "one per split");
	CHECK(bv_db_logits_get(db, run, 3, "train", got, n_train, k) == 0 &&
		      same_bits(got, zt, (size_t)n_train * k),
	      "train snapshot");
	CHECK_ERR(bv_db_logits_get(db, run, 2, "test", got, n, k), BV_ESTATE);
	CHECK_ERR(bv_db_logits_get(db, run, 1, "test", got, n - 1, k), BV_EFORMAT);
	CHECK_ERR(bv_db_logits_get(db, run, 1, "test", got, n, k - 1), BV_EFORMAT);

	CHECK(bv_db_epochs(db, run, "test", &ep, &n_ep) == 0 && n_ep == 2 && ep[0] == 1 && ep[1] == 3,
	      "test epochs: %d", n_ep);
	free(ep);
	CHECK(bv_db_epochs(db, run, "train", &ep, &n_ep) == 0 && n_ep == 1 && ep[0] == 3,
	      "train epochs: %d", n_ep);
	free(ep);
	CHECK(bv_db_epochs(db, run + 1000, "test", &ep, &n_ep) == 0 && n_ep == 0, "no epochs");
	free(ep);

	bv_db_metrics *ms = NULL;
	int n_m = 0;
	CHECK(bv_db_metrics_get(db, run, &ms, &n_m) == 0 && n_m == 3, "metrics rows %d", n_m);
	if (ms && n_m == 3) {
		CHECK(metrics_equal(&ms[0], &m1) && metrics_equal(&ms[2], &m3),
		      "metrics round trip");
		CHECK(ms[1].epoch == 2 && ms[1].lr == 0.09 && isnan(ms[1].wsl_weight), "NaN is NULL is NaN");
	}
	free(ms);
	bv_run r;
	CHECK(bv_db_run_get(db, &r, run) == 0 && r.epochs_done == 3, "epochs_done %d", r.epochs_done);

	/* the predictions view: sample 5 of epoch 3 is exactly z3[5k .. 5k+k) */
	sqlite3_stmt *st = NULL;
	CHECK(sqlite3_prepare_v2(h,
				 "SELECT logits, typeof(logits), length(logits) FROM predictions "
				 "WHERE run_id = ?1 AND epoch = 3 AND split = 'test' AND sample_idx = 5",
				 -1, &st, NULL) == SQLITE_OK,
	      "%s", sqlite3_errmsg(h));
	sqlite3_bind_int64(st, 1, run);
	CHECK(sqlite3_step(st) == SQLITE_ROW, "sample 5 in the view");
	CHECK(strcmp((const char *)sqlite3_column_text(st, 1), "blob") == 0, "the view gives a BLOB");
	CHECK(sqlite3_column_int(st, 2) == k * 4, "length %d", sqlite3_column_int(st, 2));
	CHECK(sqlite3_column_bytes(st, 0) == k * 4 &&
		      memcmp(sqlite3_column_blob(st, 0), z3 + 5 * k, (size_t)k * 4) == 0,
	      "sample 5's bytes");
	sqlite3_finalize(st);
	CHECK(q_int(h, "SELECT count(*) FROM predictions WHERE epoch = 3 AND split = 'test'") == n,
	      "one view row per test sample");
	CHECK(q_int(h, "SELECT count(*) FROM predictions WHERE epoch = 3 AND split = 'train'") == n_train,
	      "one view row per train sample");

	/* the SQL functions against C */
	int n_bad = 0;
	double worst = 0;
	CHECK(sqlite3_prepare_v2(h,
				 "SELECT p.sample_idx, bv_argmax(p.logits), bv_logit(p.logits, 2), "
				 "bv_softmax(p.logits, 7), bv_softmax(p.logits, 7, 4) "
				 "FROM predictions p WHERE run_id = ?1 AND epoch = 3 AND split = 'test'",
				 -1, &st, NULL) == SQLITE_OK,
	      "%s", sqlite3_errmsg(h));
	sqlite3_bind_int64(st, 1, run);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int i = sqlite3_column_int(st, 0);
		const float *z = z3 + (size_t)i * k;
		double mx = z[argmax(z, k)], s1 = 0, s4 = 0;
		for (int j = 0; j < k; j++) {
			s1 += exp(z[j] - mx);
			s4 += exp((z[j] - mx) / 4);
		}
		n_bad += sqlite3_column_int(st, 1) != argmax(z, k) ||
			 sqlite3_column_double(st, 2) != (double)z[2];
		worst = fmax(worst, fabs(sqlite3_column_double(st, 3) - exp(z[7] - mx) / s1));
		worst = fmax(worst, fabs(sqlite3_column_double(st, 4) - exp((z[7] - mx) / 4) / s4));
	}
	sqlite3_finalize(st);
	CHECK(n_bad == 0 && worst < 1e-12, "bv_argmax/bv_logit: %d wrong; bv_softmax max diff %.3g",
	      n_bad, worst);
	/* (every function in detail: tests/test_sqlfn.py, through the extension) */
	CHECK(q_int(h, "SELECT bv_logit(x'0000803f', 1) IS NULL AND bv_logit(x'0000803f', 0) = 1.0") == 1,
	      "out of range");
	CHECK(sqlite3_exec(h, "SELECT bv_argmax(NULL)", NULL, NULL, NULL) == SQLITE_ERROR &&
		      strstr(sqlite3_errmsg(h), "argument 1 is NULL, not a logits BLOB"),
	      "NULL is an error: %s", sqlite3_errmsg(h));
	CHECK(sqlite3_exec(h, "SELECT bv_argmax(x'')", NULL, NULL, NULL) == SQLITE_ERROR,
	      "an empty BLOB is an error");
	CHECK(sqlite3_exec(h, "SELECT bv_argmax(x'010203')", NULL, NULL, NULL) == SQLITE_ERROR,
	      "a BLOB of 3 bytes is an error");
	CHECK(sqlite3_exec(h, "SELECT bv_softmax(x'0000803f', 0, 0)", NULL, NULL, NULL) == SQLITE_ERROR,
	      "T = 0 is an error");

	/* one transaction: a failing train snapshot takes the metrics and test snapshot with it */
	bv_db_metrics m7 = {7, 0.1, 1, 1, 1, 1, 1, 1};
	CHECK_ERR(bv_db_snapshot_put(db, run, &m7, z1, n, zt, -1, k), BV_EINVAL);
	CHECK(q_int(h, "SELECT count(*) FROM metrics WHERE epoch = 7") == 0 &&
		      q_int(h, "SELECT count(*) FROM snapshots WHERE epoch = 7") == 0,
	      "nothing of the failed epoch 7");
	CHECK_ERR(bv_db_snapshot_put(db, 424242, &m7, z1, n, NULL, 0, k), BV_EINVAL);
	CHECK(q_int(h, "SELECT count(*) FROM metrics WHERE run_id = 424242") == 0, "no orphan metrics");
	/* inside the caller's transaction: a failed call undoes itself only */
	bv_db_metrics m8 = {8, 0.1, 1, 1, 1, 1, 1, 1}, m9 = {9, 0.1, 1, 1, 1, 1, 1, 1};
	CHECK(bv_db_begin(db) == 0, "%s", bv_error_last());
	CHECK(bv_db_snapshot_put(db, run, &m8, z1, n, NULL, 0, k) == 0, "%s", bv_error_last());
	CHECK_ERR(bv_db_snapshot_put(db, run, &m9, z1, n, zt, -1, k), BV_EINVAL);
	CHECK(bv_db_commit(db) == 0, "%s", bv_error_last());
	CHECK(q_int(h, "SELECT count(*) FROM snapshots WHERE epoch = 8") == 1 &&
		      q_int(h, "SELECT count(*) FROM metrics WHERE epoch = 9") == 0,
	      "epoch 8 kept, epoch 9 undone");
	CHECK(bv_db_begin(db) == 0 && bv_db_snapshot_put(db, run, &m9, z1, n, NULL, 0, k) == 0, "%s",
	      bv_error_last());
	bv_db_rollback(db);
	CHECK(q_int(h, "SELECT count(*) FROM metrics WHERE epoch = 9") == 0, "rolled back");
	CHECK(bv_db_run_reset(db, run) == 0 && q_int(h, "SELECT count(*) FROM snapshots") == 0 &&
		      q_int(h, "SELECT count(*) FROM metrics") == 0,
	      "reset deletes snapshots and metrics");
	(void)test_labels;
	free(z1);
	free(z3);
	free(zt);
	free(got);
}

/* ---- the recipes of docs/schema.md -------------------------------------- */

typedef struct recipe {
	char desc[1024];
	int bvtool; /* fenced ```sql bvtool */
	char *sql;
} recipe;

static int read_recipes(recipe *out, int cap, const char *doc)
{
	FILE *f = fopen(doc, "r");
	char line[1024], last[1024] = "";
	int n = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = '\0';
		int plain = strcmp(line, "```sql") == 0, bv = strcmp(line, "```sql ext") == 0;
		if ((plain || bv) && n < cap) {
			recipe *r = &out[n++];
			bv_buf b;
			bv_buf_init(&b);
			snprintf(r->desc, sizeof r->desc, "%s", last);
			r->bvtool = bv;
			while (fgets(line, sizeof line, f) && strncmp(line, "```", 3) != 0)
				bv_buf_append(&b, line, strlen(line));
			bv_buf_append(&b, "", 1);
			r->sql = (char *)b.data;
		} else if (line[0]) {
			snprintf(last, sizeof last, "%s", line);
		}
	}
	fclose(f);
	return n;
}

/* Run one recipe; the first column of every row goes to col0 (up to cap). */
static int run_recipe(sqlite3 *h, const char *sql, long long *col0, int cap, int *rows)
{
	sqlite3_stmt *st = NULL;
	const char *tail = sql;
	*rows = 0;
	while (tail && *tail) {
		int rc = sqlite3_prepare_v2(h, tail, -1, &st, &tail);
		if (rc != SQLITE_OK)
			return rc;
		if (!st)
			break;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (*rows < cap)
				col0[*rows] = sqlite3_column_int64(st, 0);
			(*rows)++;
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return rc;
	}
	return SQLITE_OK;
}

static void test_recipes(const char *path, const int *labels, int n, int k)
{
	bv_db *db = NULL;
	remove_db(path);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	if (!db)
		return;
	sqlite3 *h = bv_db_handle(db);
	float *z = malloc(sizeof(float) * (size_t)n * k);
	int64_t teacher, kd1, kd2, ce1;
	int *counts = malloc(sizeof(int) * (size_t)n), n_oob = 0, n_wrong = 0;
	long long *wrong = malloc(sizeof(long long) * (size_t)n);
	long long *oob = malloc(sizeof(long long) * (size_t)n), *got = malloc(sizeof(long long) * (size_t)n);
	bv_db_samples_put(db, "test", labels, n);
	bv_db_samples_put(db, "train", labels, n);
	for (int i = 0; i < n; i++)
		counts[i] = 0;
	for (int i = 0; i < n; i++)
		counts[rnd() % (uint64_t)n]++;
	for (int i = 0; i < n; i++)
		if (counts[i] == 0)
			oob[n_oob++] = i;
	CHECK(bv_db_inbag_put(db, 3, counts, n) == 0, "%s", bv_error_last());
	/* a teacher right on about 70% of the samples, two epochs recorded */
	bv_db_run_ensure(db, &teacher, NULL, BV_RUN_TEACHER, NAN, 0, 1, NAN, NAN, "mlp:", 2);
	bv_db_metrics m = {1, NAN, NAN, 0.5, 0.5, NAN, NAN, 1};
	fill_logits(z, (size_t)n * k);
	CHECK(bv_db_snapshot_put(db, teacher, &m, z, n, NULL, 0, k) == 0, "%s", bv_error_last());
	fill_logits(z, (size_t)n * k);
	for (int i = 0; i < n; i++) {
		if (rnd() % 10 < 7)
			z[(size_t)i * k + labels[i]] = 5;
		if (argmax(z + (size_t)i * k, k) != labels[i])
			wrong[n_wrong++] = i;
	}
	m.epoch = 2;
	CHECK(bv_db_snapshot_put(db, teacher, &m, z, n, NULL, 0, k) == 0, "%s", bv_error_last());
	bv_db_run_finish(db, teacher, 1 - (double)n_wrong / n, NULL, 10);
	bv_db_run_ensure(db, &kd1, NULL, BV_RUN_KD, 4, 1, 1, 2.25, 1, "mlp:", 2);
	bv_db_run_ensure(db, &kd2, NULL, BV_RUN_KD, 4, 2, 1, 2.25, 1, "mlp:", 2);
	bv_db_run_ensure(db, &ce1, NULL, BV_RUN_CE, NAN, 1, 1, NAN, 1, "mlp:", 2);
	const int64_t students[] = {kd1, kd2, ce1};
	for (int s = 0; s < 3; s++) {
		for (int e = 1; e <= 2; e++) {
			bv_db_metrics ms = {e, 0.1, 1.0 / e, 0.8, 0.8 + 0.01 * s, 0, 0, 2};
			fill_logits(z, (size_t)n * k);
			CHECK(bv_db_snapshot_put(db, students[s], &ms, e == 2 ? z : NULL, n, NULL, 0, k) == 0,
			      "%s", bv_error_last());
		}
		bv_db_run_finish(db, students[s], 0.81 + 0.01 * s, NULL, 4);
	}

	char doc[1024];
	recipe rs[32];
	snprintf(doc, sizeof doc, "%s/../../docs/schema.md",
		 getenv("BV_FIXTURES") ? getenv("BV_FIXTURES") : "tests/fixtures");
	int n_rs = read_recipes(rs, 32, doc);
	CHECK(n_rs >= 5, "recipes in %s: %d", doc, n_rs);
	int n_wrong_checked = 0, n_oob_checked = 0;
	for (int i = 0; i < n_rs; i++) {
		int rows = 0;
		double t0 = bv_now();
		int rc = run_recipe(h, rs[i].sql, got, n, &rows);
		printf("recipe %d%s (%.40s...): %d rows, %.3f s\n", i, rs[i].bvtool ? " [ext]" : "",
		       rs[i].desc, rows, bv_now() - t0);
		/* this database has no decomposition: those recipes need only run (tests/cli_analysis.sh
		 * runs them on a decomposed one and wants rows) */
		const int needs_decompose = strstr(rs[i].sql, "regularization_") ||
					    strstr(rs[i].sql, "sample_wide") ||
					    strstr(rs[i].sql, "correlations") || strstr(rs[i].sql, "sample_stats");
		CHECK(rc == SQLITE_OK && (rows > 0 || needs_decompose), "recipe '%s': %s, %d rows",
		      rs[i].desc, rc == SQLITE_OK ? "ok" : sqlite3_errmsg(h), rows);
		/* the plain ones must not need bvtool's functions */
		CHECK(rs[i].bvtool || !strstr(rs[i].sql, "bv_"), "recipe '%s' uses bv_ functions in a plain block",
		      rs[i].desc);
		if (strncmp(rs[i].desc, "(b)", 3) == 0) {
			n_wrong_checked++;
			CHECK(rows == n_wrong && memcmp(got, wrong, sizeof(long long) * (size_t)n_wrong) == 0,
			      "recipe '%s': %d samples, want %d", rs[i].desc, rows, n_wrong);
		}
		if (strncmp(rs[i].desc, "(c)", 3) == 0) {
			n_oob_checked++;
			CHECK(rows == n_oob && memcmp(got, oob, sizeof(long long) * (size_t)n_oob) == 0,
			      "recipe '%s': %d samples, want %d", rs[i].desc, rows, n_oob);
		}
		free(rs[i].sql);
	}
	CHECK(n_wrong_checked == 2 && n_oob_checked == 1, "recipes (b) plain and bvtool, and (c) found");
	bv_db_close(db);
	free(z);
	free(counts);
	free(wrong);
	free(oob);
	free(got);
}

/* ---- files that must be refused, untouched ------------------------------ */

static int file_equals(const char *path, const unsigned char *data, size_t len)
{
	unsigned char *now = NULL;
	size_t n = 0;
	int same = bv_read_file(&now, &n, path) == 0 && n == len && memcmp(now, data, len) == 0;
	free(now);
	return same;
}

/* Both open modes refuse `path` with `code` and `msg`; the file stays as it was. */
static void expect_refused(const char *path, int code, const char *msg, int readonly_too)
{
	unsigned char *before = NULL;
	size_t len = 0;
	bv_db *db = NULL;
	CHECK(bv_read_file(&before, &len, path) == 0, "read %s", path);
	CHECK_ERR(bv_db_open(&db, path, BV_DB_CREATE), code);
	CHECK_MSG(msg);
	CHECK(db == NULL, "no handle on failure");
	if (readonly_too) {
		CHECK_ERR(bv_db_open(&db, path, BV_DB_READONLY), code);
		CHECK_MSG(msg);
	}
	CHECK(file_equals(path, before, len), "'%s' unchanged", path);
	free(before);
}

static void test_bad_files(void)
{
	char path[600], want[1400], dir[540];
	bv_db *db = NULL;

	/* a missing directory */
	snprintf(dir, sizeof dir, "%s/no-such-dir", tmpdir);
	snprintf(path, sizeof path, "%s/x.db", dir);
	CHECK_ERR(bv_db_open(&db, path, BV_DB_CREATE), BV_EIO);
	snprintf(want, sizeof want, "cannot open database '%s': directory '%s' does not exist", path, dir);
	CHECK_MSG(want);
	CHECK_ERR(bv_db_open(&db, path, BV_DB_READONLY), BV_EIO);
	CHECK_MSG(want);

	/* READONLY on a missing file, which is not created */
	tmp_path(path, sizeof path, "missing.db");
	remove_db(path);
	CHECK_ERR(bv_db_open(&db, path, BV_DB_READONLY), BV_EIO);
	snprintf(want, sizeof want, "database '%s' does not exist", path);
	CHECK_MSG(want);
	CHECK(access(path, F_OK) != 0, "not created");

	/* a directory */
	CHECK_ERR(bv_db_open(&db, tmpdir, BV_DB_CREATE), BV_EIO);

	/* a read-only file: refused for writing, fine for reading. Root passes
	 * access(W_OK), so bvtool also refuses a file with no write bit at all. */
	tmp_path(path, sizeof path, "readonly.db");
	remove_db(path);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	bv_db_close(db);
	chmod(path, 0444);
	snprintf(want, sizeof want, "database '%s' is read-only", path);
	expect_refused(path, BV_EIO, want, 0);
	db = NULL;
	CHECK(bv_db_open(&db, path, BV_DB_READONLY) == 0, "READONLY on a 0444 file: %s", bv_error_last());
	bv_db_close(db);
	chmod(path, 0644);

	/* a text file */
	tmp_path(path, sizeof path, "notes.txt");
	const char *text = "this is not a database, but it is long enough to have a header or two\n";
	bv_write_file_atomic(path, text, strlen(text));
	snprintf(want, sizeof want, "'%s' is not a SQLite database", path);
	expect_refused(path, BV_EFORMAT, want, 1);

	/* a foreign SQLite database with a table of its own */
	tmp_path(path, sizeof path, "foreign.db");
	remove_db(path);
	raw_sqlite(path, "CREATE TABLE mine(x); INSERT INTO mine VALUES(42)");
	snprintf(want, sizeof want, "'%s' is not a bvtool database", path);
	expect_refused(path, BV_EFORMAT, want, 1);
	snprintf(want, sizeof want, "%s-wal", path);
	CHECK(access(want, F_OK) != 0, "no journal created beside the foreign file");
	/* ... or an empty one with another application's id */
	tmp_path(path, sizeof path, "foreign-id.db");
	remove_db(path);
	raw_sqlite(path, "PRAGMA application_id = 42");
	snprintf(want, sizeof want, "'%s' is not a bvtool database", path);
	expect_refused(path, BV_EFORMAT, want, 1);

	/* a newer schema */
	tmp_path(path, sizeof path, "future.db");
	remove_db(path);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	bv_db_close(db);
	raw_sqlite(path, "PRAGMA user_version = 99");
	snprintf(want, sizeof want,
		 "'%s' has schema version 99, this bvtool reads up to %d: upgrade bvtool", path,
		 BV_DB_SCHEMA_VERSION);
	expect_refused(path, BV_EFORMAT, want, 1);

	/* an older schema (here: version 0, marked but empty): READONLY asks for a
	 * writing command, CREATE migrates */
	tmp_path(path, sizeof path, "old.db");
	remove_db(path);
	raw_sqlite(path, "PRAGMA application_id = 1651922018; PRAGMA user_version = 0");
	CHECK_ERR(bv_db_open(&db, path, BV_DB_READONLY), BV_EFORMAT);
	CHECK(strstr(bv_error_last(), "schema version 0") != NULL, "%s", bv_error_last());
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0 &&
		      q_int(bv_db_handle(db), "PRAGMA user_version") == BV_DB_SCHEMA_VERSION,
	      "migrated from 0: %s", bv_error_last());
	bv_db_close(db);

	/* version 1 (before the decomposition tables) with data: CREATE migrates to
	 * the current version and keeps the data; READONLY asks for a writing command */
	tmp_path(path, sizeof path, "v1.db");
	remove_db(path);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	bv_db_close(db);
	raw_sqlite(path, "DROP VIEW dynamics_by_method; DROP TABLE dynamics; DROP VIEW run_accuracy; DROP VIEW regularization_samples; DROP VIEW sample_wide;"
			 "DROP VIEW regularization_counts; DROP TABLE sample_stats;" UNDO_5_RUNS
			 "DROP TABLE decompositions; DROP TABLE correlations;"
			 "INSERT INTO runs(method, seed, status) VALUES('ce', 1, 'done');"
			 "PRAGMA user_version = 1");
	CHECK_ERR(bv_db_open(&db, path, BV_DB_READONLY), BV_EFORMAT);
	CHECK(strstr(bv_error_last(), "schema version 1") != NULL, "%s", bv_error_last());
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	CHECK(db && q_int(bv_db_handle(db), "PRAGMA user_version") == BV_DB_SCHEMA_VERSION &&
		      q_int(bv_db_handle(db), "SELECT count(*) FROM sample_stats") == 0 &&
		      q_int(bv_db_handle(db), "SELECT count(*) FROM run_accuracy") == 1 &&
		      q_int(bv_db_handle(db), "SELECT count(*) FROM runs WHERE method = 'ce'") == 1,
	      "migrated from 1 with the data kept: %s", bv_error_last());
	bv_db_close(db);

	/* version 2 (snapshots WITHOUT ROWID) with snapshots: a writer migrates to 3,
	 * a rowid table with the same rows byte for byte */
	tmp_path(path, sizeof path, "v2.db");
	remove_db(path);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	int64_t v2_run = 0;
	float v2_z[6] = {1.5f, -2, 3e-30f, 4, 5, -6e20f}, v2_back[6];
	bv_db_metrics v2_m = {3, NAN, NAN, NAN, 0.5, NAN, NAN, NAN};
	CHECK(bv_db_run_ensure(db, &v2_run, NULL, BV_RUN_CE, NAN, 1, 1, NAN, NAN, "m", 3) == 0 &&
		      bv_db_snapshot_put(db, v2_run, &v2_m, v2_z, 2, NULL, 0, 3) == 0,
	      "%s", bv_error_last());
	bv_db_close(db);
	raw_sqlite(path, UNDO_5 "DROP VIEW dynamics_by_method; DROP TABLE dynamics; DROP VIEW predictions;"
			 "CREATE TABLE s2(run_id INTEGER NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL,"
			 " split TEXT NOT NULL, n INTEGER NOT NULL, k INTEGER NOT NULL, logits BLOB NOT NULL,"
			 " PRIMARY KEY(run_id, epoch, split)) WITHOUT ROWID;"
			 "INSERT INTO s2 SELECT * FROM snapshots; DROP TABLE snapshots;"
			 "ALTER TABLE s2 RENAME TO snapshots;"
			 "CREATE VIEW predictions(run_id, epoch, split, sample_idx, logits) AS"
			 " SELECT sn.run_id, sn.epoch, sn.split, s.sample_idx,"
			 " substr(sn.logits, s.sample_idx * sn.k * 4 + 1, sn.k * 4)"
			 " FROM snapshots sn JOIN samples s ON s.split = sn.split AND s.sample_idx < sn.n;"
			 "PRAGMA user_version = 2");
	CHECK_ERR(bv_db_open(&db, path, BV_DB_READONLY), BV_EFORMAT);
	CHECK(bv_db_open(&db, path, BV_DB_WRITE) == 0, "%s", bv_error_last());
	CHECK(db && q_int(bv_db_handle(db), "PRAGMA user_version") == BV_DB_SCHEMA_VERSION &&
		      q_int(bv_db_handle(db), "SELECT count(*) FROM sqlite_master WHERE name = "
					      "'snapshots' AND sql LIKE '%WITHOUT ROWID%'") == 0 &&
		      q_int(bv_db_handle(db), "SELECT count(*) FROM snapshots WHERE rowid > 0") == 1,
	      "migrated from 2 to a rowid snapshots table: %s", bv_error_last());
	CHECK(db && bv_db_logits_get(db, v2_run, 3, "test", v2_back, 2, 3) == 0 &&
		      memcmp(v2_back, v2_z, sizeof v2_z) == 0,
	      "the snapshot kept byte for byte: %s", bv_error_last());
	bv_db_close(db);

	/* version 4 (before --inits) with a run and a decomposed sample: a writer
	 * migrates to 5, the run becomes init 1, the sample's split NULL, and the
	 * cell's index takes a second init of the same seed */
	tmp_path(path, sizeof path, "v4.db");
	remove_db(path);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	bv_db_close(db);
	raw_sqlite(path, UNDO_5 "INSERT INTO runs(method, seed, status) VALUES('ce', 3, 'pending');"
			 "INSERT INTO sample_stats(temperature, epoch, split, sample_idx, method, bias,"
			 " variance, loss, n_seeds) VALUES(4, 1, 'test', 0, 'ce', 0.5, 0.25, 0.75, 2);"
			 "PRAGMA user_version = 4");
	CHECK_ERR(bv_db_open(&db, path, BV_DB_READONLY), BV_EFORMAT);
	CHECK(bv_db_open(&db, path, BV_DB_WRITE) == 0, "%s", bv_error_last());
	int64_t v4_id = 0, v4_new = 0;
	int v4_created = 0;
	CHECK(db && q_int(bv_db_handle(db), "PRAGMA user_version") == BV_DB_SCHEMA_VERSION &&
		      q_int(bv_db_handle(db), "SELECT init FROM runs WHERE seed = 3") == 1 &&
		      q_int(bv_db_handle(db), "SELECT init FROM run_accuracy WHERE seed = 3") == 1 &&
		      q_int(bv_db_handle(db), "SELECT count(*) FROM sample_stats WHERE var_init IS "
					      "NULL AND var_data IS NULL AND variance = 0.25") == 1,
	      "migrated from 4: %s", bv_error_last());
	CHECK(db && bv_db_run_find(db, &v4_id, BV_RUN_CE, NAN, 3, 1) == 0 && v4_id > 0 &&
		      bv_db_run_ensure(db, &v4_new, &v4_created, BV_RUN_CE, NAN, 3, 2, NAN, NAN, "m",
				       3) == 0 &&
		      v4_created && v4_new != v4_id,
	      "init 2 of seed 3 is a run of its own: %s", bv_error_last());
	bv_db_close(db);

	/* an empty file gets the schema; READONLY refuses it */
	tmp_path(path, sizeof path, "empty.db");
	remove_db(path);
	bv_write_file_atomic(path, "", 0);
	db = NULL;
	CHECK_ERR(bv_db_open(&db, path, BV_DB_READONLY), BV_EFORMAT);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0 &&
		      q_int(bv_db_handle(db), "PRAGMA application_id") == BV_DB_APPLICATION_ID,
	      "empty file: %s", bv_error_last());
	bv_db_close(db);
}

/* ---- hostile files (issue 10): refused by every mode, left as they were -- */

/* No -wal, -shm or -journal beside `path`. */
static int alone(const char *path)
{
	static const char *const ext[] = {"-wal", "-shm", "-journal"};
	char p[700];
	for (size_t i = 0; i < BV_ARRAY_LEN(ext); i++) {
		snprintf(p, sizeof p, "%s%s", path, ext[i]);
		if (access(p, F_OK) == 0)
			return 0;
	}
	return 1;
}

static const char *mode_name(int flags)
{
	return flags == BV_DB_CREATE ? "CREATE" : flags == BV_DB_WRITE ? "WRITE" : "READONLY";
}

/* Opening `path` in mode `flags` fails with `code` and exactly `msg`, and
 * leaves the file byte for byte as it was, with nothing created beside it. */
static void refused(const char *path, int flags, int code, const char *msg)
{
	unsigned char *before = NULL;
	size_t len = 0;
	bv_db *db = NULL;
	struct stat st;
	const int regular = stat(path, &st) == 0 && S_ISREG(st.st_mode);
	if (regular)
		CHECK(bv_read_file(&before, &len, path) == 0, "read %s", path);
	alarm(20); /* a FIFO must not hang the open */
	int rc = bv_db_open(&db, path, flags);
	alarm(0);
	CHECK(rc == code, "%s %s: rc %d want %d (%s)", mode_name(flags), path, rc, code,
	      bv_error_last());
	CHECK(strcmp(bv_error_last(), msg) == 0, "%s: message '%s', want '%s'", mode_name(flags),
	      bv_error_last(), msg);
	CHECK(db == NULL, "no handle on failure");
	bv_db_close(db);
	if (regular)
		CHECK(file_equals(path, before, len), "%s: '%s' unchanged", mode_name(flags), path);
	CHECK(alone(path), "%s: no -wal, -shm or -journal beside '%s'", mode_name(flags), path);
	free(before);
}

static void refused_all(const char *path, int code, const char *msg)
{
	refused(path, BV_DB_READONLY, code, msg);
	refused(path, BV_DB_WRITE, code, msg);
	refused(path, BV_DB_CREATE, code, msg);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
	remove_db(path);
	CHECK(bv_write_file_atomic(path, data, len) == 0, "write %s: %s", path, bv_error_last());
}

/* A complete bvtool database at `path` with one run, closed (so checkpointed,
 * with no -wal or -shm), then `sql` run on it by a plain SQLite connection. */
static void crafted(const char *path, const char *sql)
{
	bv_db *db = NULL;
	int64_t id;
	remove_db(path);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0 &&
		      bv_db_run_ensure(db, &id, NULL, BV_RUN_CE, NAN, 1, 1, NAN, 1, "mlp:8", 1) == 0,
	      "%s", bv_error_last());
	bv_db_close(db);
	if (sql)
		raw_sqlite(path, sql);
	CHECK(alone(path), "'%s' is closed cleanly", path);
}

static void test_hostile_files(void)
{
	char path[600], want[1400];

	/* D3: a schema version no bvtool writes, negative or just above ours;
	 * the migrations are never indexed with it */
	tmp_path(path, sizeof path, "minus.db");
	crafted(path, "PRAGMA user_version = -1");
	snprintf(want, sizeof want,
		 "'%s' has schema version -1, which no bvtool writes (the database is damaged)", path);
	refused_all(path, BV_EFORMAT, want);
	crafted(path, "PRAGMA user_version = -2147483648");
	snprintf(want, sizeof want,
		 "'%s' has schema version -2147483648, which no bvtool writes (the database is damaged)",
		 path);
	refused_all(path, BV_EFORMAT, want);
	crafted(path, "PRAGMA user_version = 6");
	snprintf(want, sizeof want,
		 "'%s' has schema version 6, this bvtool reads up to %d: upgrade bvtool", path,
		 BV_DB_SCHEMA_VERSION);
	refused_all(path, BV_EFORMAT, want);
	sqlite3 *mem = NULL;
	CHECK(sqlite3_open(":memory:", &mem) == SQLITE_OK, "memory database");
	CHECK(db_schema_migrate(mem, -1) != SQLITE_OK, "db_schema_migrate refuses version -1");
	CHECK(db_schema_migrate(mem, INT_MIN) != SQLITE_OK, "db_schema_migrate refuses INT_MIN");
	CHECK(db_schema_migrate(mem, BV_DB_SCHEMA_VERSION + 1) != SQLITE_OK,
	      "db_schema_migrate refuses a version above ours");
	CHECK(q_int(mem, "SELECT count(*) FROM sqlite_master") == 0, "and runs nothing");
	sqlite3_close(mem);

	/* D7: nothing but a missing path or a 0-byte file is made a database;
	 * a 0-byte file only by CREATE (collect), which is what `touch` leaves */
	tmp_path(path, sizeof path, "one.db");
	write_bytes(path, "x", 1);
	snprintf(want, sizeof want, "'%s' is not a SQLite database", path);
	refused_all(path, BV_EFORMAT, want);
	/* the magic but no page: SQLite would take it for an empty database */
	tmp_path(path, sizeof path, "magic.db");
	write_bytes(path, "SQLite format 3\0\x40\0\1\1\0\x40\x20\x20", 24);
	snprintf(want, sizeof want, "'%s' is not a SQLite database", path);
	refused_all(path, BV_EFORMAT, want);
	tmp_path(path, sizeof path, "empty.db");
	write_bytes(path, "", 0);
	snprintf(want, sizeof want, "'%s' is not a bvtool database (it is empty)", path);
	refused(path, BV_DB_READONLY, BV_EFORMAT, want);
	refused(path, BV_DB_WRITE, BV_EFORMAT, want);
	/* a SQLite file without tables, and one in WAL mode: not bvtool's, even empty */
	tmp_path(path, sizeof path, "tableless.db");
	remove_db(path);
	raw_sqlite(path, "CREATE TABLE a(x); DROP TABLE a");
	snprintf(want, sizeof want, "'%s' is not a bvtool database", path);
	refused_all(path, BV_EFORMAT, want);
	tmp_path(path, sizeof path, "foreign-wal.db");
	remove_db(path);
	raw_sqlite(path, "PRAGMA journal_mode = WAL; CREATE TABLE people(name); INSERT INTO people VALUES('ada')");
	snprintf(want, sizeof want, "'%s' is not a bvtool database", path);
	refused_all(path, BV_EFORMAT, want);

	/* D10: a FIFO, a directory, a device are not opened at all */
	tmp_path(path, sizeof path, "fifo.db");
	remove_db(path);
	CHECK(mkfifo(path, 0600) == 0, "mkfifo");
	snprintf(want, sizeof want, "'%s' is not a regular file", path);
	refused_all(path, BV_EIO, want);
	unlink(path);
	tmp_path(path, sizeof path, "dir.db");
	mkdir(path, 0755);
	snprintf(want, sizeof want, "'%s' is not a regular file", path);
	refused_all(path, BV_EIO, want);
	rmdir(path);
	refused(path, BV_DB_READONLY, BV_EIO, (snprintf(want, sizeof want, "database '%s' does not exist", path), want));
	refused("/dev/null", BV_DB_READONLY, BV_EIO, "'/dev/null' is not a regular file");

	/* bvtool's application_id over a schema that is not bvtool's */
	tmp_path(path, sizeof path, "noruns.db");
	crafted(path, "DROP VIEW dynamics_by_method; DROP TABLE dynamics; DROP VIEW run_accuracy; DROP TABLE runs");
	snprintf(want, sizeof want, "'%s' is a damaged bvtool database: it has no table 'runs'", path);
	refused_all(path, BV_EFORMAT, want);
	tmp_path(path, sizeof path, "columns.db");
	crafted(path, "DROP VIEW predictions; DROP VIEW sample_wide; DROP TABLE samples;"
		      "CREATE TABLE samples(split TEXT, idx INTEGER, label INTEGER)");
	snprintf(want, sizeof want,
		 "'%s' is a damaged bvtool database: table 'samples' has no column 'sample_idx'", path);
	refused_all(path, BV_EFORMAT, want);
	tmp_path(path, sizeof path, "viewtable.db");
	crafted(path, "DROP VIEW predictions; CREATE TABLE predictions(x)");
	snprintf(want, sizeof want,
		 "'%s' is a damaged bvtool database: 'predictions' is a table, not a view", path);
	refused_all(path, BV_EFORMAT, want);
	/* an index or a view of the user's own is fine */
	tmp_path(path, sizeof path, "extra.db");
	crafted(path, "CREATE INDEX mine ON runs(status); CREATE VIEW my_view AS SELECT 1");
	bv_db *db = NULL;
	CHECK(bv_db_open(&db, path, BV_DB_WRITE) == 0, "extra objects: %s", bv_error_last());
	bv_db_close(db);
	db = NULL;
	/* a version-1 file without its runs table: the migration is undone */
	tmp_path(path, sizeof path, "v1-noruns.db");
	crafted(path, "DROP VIEW dynamics_by_method; DROP TABLE dynamics; DROP VIEW run_accuracy; DROP VIEW regularization_samples; DROP VIEW sample_wide;"
		      "DROP VIEW regularization_counts; DROP TABLE sample_stats;"
		      "DROP TABLE decompositions; DROP TABLE correlations; DROP TABLE runs;"
		      "PRAGMA user_version = 1");
	snprintf(want, sizeof want,
		 "'%s' is a damaged bvtool database: its schema version 1 cannot be upgraded to %d "
		 "(no such table: runs)",
		 path, BV_DB_SCHEMA_VERSION);
	refused(path, BV_DB_WRITE, BV_EFORMAT, want);
	refused(path, BV_DB_CREATE, BV_EFORMAT, want);

	/* a trigger of anyone's but bvtool's, on a current file and on a version-1
	 * file being migrated: refused, and the migration undone */
	tmp_path(path, sizeof path, "trigger.db");
	crafted(path, "CREATE TRIGGER quiet AFTER INSERT ON runs BEGIN DELETE FROM runs; END");
	snprintf(want, sizeof want,
		 "'%s' is a damaged bvtool database: it has a trigger 'quiet' that bvtool did not create",
		 path);
	refused_all(path, BV_EFORMAT, want);
	tmp_path(path, sizeof path, "v1-trigger.db");
	crafted(path, "DROP VIEW dynamics_by_method; DROP TABLE dynamics; DROP VIEW run_accuracy; DROP VIEW regularization_samples; DROP VIEW sample_wide;"
		      "DROP VIEW regularization_counts; DROP TABLE sample_stats;"
		      "DROP TABLE decompositions; DROP TABLE correlations;" UNDO_5_RUNS
		      "CREATE TRIGGER quiet AFTER INSERT ON runs BEGIN DELETE FROM runs; END;"
		      "PRAGMA user_version = 1");
	snprintf(want, sizeof want,
		 "'%s' is a damaged bvtool database: it has a trigger 'quiet' that bvtool did not create",
		 path);
	refused(path, BV_DB_CREATE, BV_EFORMAT, want);
	{
		sqlite3 *h = NULL;
		CHECK(sqlite3_open(path, &h) == SQLITE_OK && q_int(h, "PRAGMA user_version") == 1,
		      "the refused migration is undone");
		sqlite3_close(h);
	}

	/* a damaged page: BV_EFORMAT naming the file, not a database error */
	tmp_path(path, sizeof path, "malformed.db");
	crafted(path, NULL);
	{
		sqlite3 *h = NULL;
		sqlite3_open(path, &h);
		const long long root = q_int(h, "SELECT rootpage FROM sqlite_master WHERE name = 'runs'");
		const long long page = q_int(h, "PRAGMA page_size");
		sqlite3_close(h);
		FILE *f = fopen(path, "r+b");
		CHECK(f && root > 1 && fseek(f, (long)((root - 1) * page), SEEK_SET) == 0, "seek");
		for (int i = 0; f && i < 64; i++)
			fputc(0xa5, f);
		if (f)
			fclose(f);
	}
	int rc = bv_db_open(&db, path, BV_DB_READONLY);
	bv_run *runs = NULL;
	int n = 0;
	if (rc == 0)
		rc = bv_db_runs_list(db, &runs, &n);
	CHECK(rc == BV_EFORMAT, "malformed page: rc %d (%s)", rc, bv_error_last());
	snprintf(want, sizeof want, "database '%s' is damaged: database disk image is malformed", path);
	CHECK_MSG(want);
	free(runs);
	bv_db_close(db);
}

/* ---- two processes, one file -------------------------------------------- */

static int child_write(const char *path, int64_t run, int n, int k)
{
	bv_db *db = NULL;
	float *z = malloc(sizeof(float) * (size_t)n * k);
	int rc = bv_db_open(&db, path, BV_DB_CREATE);
	for (int e = 1; e <= 20 && rc == 0; e++) {
		bv_db_metrics m = {e, 0.1, 1, 1, 1, 0, 0, 1};
		for (int i = 0; i < n * k; i++)
			z[i] = (float)(run * 1000 + e) + (float)i / (float)(n * k);
		rc = bv_db_snapshot_put(db, run, &m, z, n, NULL, 0, k);
	}
	if (rc)
		fprintf(stderr, "child for run %lld: %s\n", (long long)run, bv_error_last());
	bv_db_close(db);
	free(z);
	return rc ? 1 : 0;
}

static int child_create(const char *path, int seed)
{
	bv_db *db = NULL;
	int64_t id;
	int rc = bv_db_open(&db, path, BV_DB_CREATE);
	if (rc == 0)
		rc = bv_db_run_ensure(db, &id, NULL, BV_RUN_CE, NAN, seed, 1, NAN, 1, "mlp:", 1);
	if (rc)
		fprintf(stderr, "creating child %d: %s\n", seed, bv_error_last());
	bv_db_close(db);
	return rc ? 1 : 0;
}

static void test_concurrency(const char *path)
{
	const int n = 1000, k = 10;
	bv_db *db = NULL;
	int64_t runs[2];
	pid_t pid[2];
	int status;
	remove_db(path);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	if (!db)
		return;
	bv_db_run_ensure(db, &runs[0], NULL, BV_RUN_KD, 4, 1, 1, 1, 1, "mlp:", 20);
	bv_db_run_ensure(db, &runs[1], NULL, BV_RUN_KD, 4, 2, 1, 1, 1, "mlp:", 20);
	bv_db_close(db); /* never carry a connection across fork */
	fflush(NULL);
	for (int c = 0; c < 2; c++)
		if ((pid[c] = fork()) == 0)
			_exit(child_write(path, runs[c], n, k));
	for (int c = 0; c < 2; c++)
		CHECK(waitpid(pid[c], &status, 0) == pid[c] && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 0,
		      "writer %d", c);
	CHECK(bv_db_open(&db, path, BV_DB_READONLY) == 0, "%s", bv_error_last());
	if (!db)
		return;
	CHECK(q_int(bv_db_handle(db), "SELECT count(*) FROM snapshots") == 40 &&
		      q_int(bv_db_handle(db), "SELECT count(*) FROM metrics") == 40,
	      "all 40 snapshots");
	float *z = malloc(sizeof(float) * (size_t)n * k);
	int ok = 1;
	for (int c = 0; c < 2; c++)
		for (int e = 1; e <= 20; e++)
			ok &= bv_db_logits_get(db, runs[c], e, "test", z, n, k) == 0 &&
			      z[17] == (float)(runs[c] * 1000 + e) + 17.0f / (float)(n * k);
	CHECK(ok, "every snapshot holds its writer's values");
	free(z);
	bv_db_close(db);

	/* two processes creating the same new file at once */
	char fresh[600];
	snprintf(fresh, sizeof fresh, "%s.new", path);
	remove_db(fresh);
	fflush(NULL);
	for (int c = 0; c < 2; c++)
		if ((pid[c] = fork()) == 0)
			_exit(child_create(fresh, c + 1));
	for (int c = 0; c < 2; c++)
		CHECK(waitpid(pid[c], &status, 0) == pid[c] && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 0,
		      "creator %d", c);
	db = NULL;
	CHECK(bv_db_open(&db, fresh, BV_DB_READONLY) == 0 &&
		      q_int(bv_db_handle(db), "SELECT count(*) FROM runs") == 2,
	      "both creators' runs: %s", bv_error_last());
	bv_db_close(db);
}

/* ---- size and speed ----------------------------------------------------- */

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void test_size(const char *path, const int *labels)
{
	const int n = 10000, k = 10, n_snap = 10;
	bv_db *db = NULL;
	int64_t run;
	remove_db(path);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	if (!db)
		return;
	sqlite3 *h = bv_db_handle(db);
	bv_db_samples_put(db, "test", labels, n);
	bv_db_run_ensure(db, &run, NULL, BV_RUN_KD, 4, 1, 1, 1, 1, "mlp:", n_snap);
	sqlite3_exec(h, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	const long long base = file_size(path);
	float *z = malloc(sizeof(float) * (size_t)n * k);
	fill_logits(z, (size_t)n * k);
	double t_put = 0;
	for (int e = 1; e <= n_snap; e++) {
		bv_db_metrics m = {e, 0.1, 1, 1, 1, 0, 0, 1};
		z[0] = (float)e;
		double t0 = bv_now();
		CHECK(bv_db_snapshot_put(db, run, &m, z, n, NULL, 0, k) == 0, "%s", bv_error_last());
		t_put += bv_now() - t0;
	}
	CHECK(sqlite3_exec(h, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) == SQLITE_OK, "%s",
	      sqlite3_errmsg(h));
	const long long size = file_size(path), raw = (long long)n_snap * n * k * 4;
	/* informational, like every timing here: bench/collect_bench.sh measures the
	 * recording cost against its target (docs/benchmarks.md, "Collecting") */
	printf("snapshot_put of %dx%d: %.2f ms each\n", n, k, 1e3 * t_put / n_snap);
	printf("size: %lld bytes for %lld bytes of logits + %lld bytes of schema and samples: "
	       "ratio %.4f (logits part %.4f)\n",
	       size, raw, base, (double)size / (double)(raw + base), (double)(size - base) / (double)raw);
	CHECK(size <= 1.5 * raw + base, "file %lld bytes > 1.5 x %lld + %lld", size, raw, base);
	/* the view over a whole snapshot: one BLOB read per row */
	double t0 = bv_now();
	long long rows = q_int(h, "SELECT count(bv_argmax(logits)) FROM predictions WHERE epoch = 1");
	printf("bv_argmax over the predictions view of one %dx%d snapshot: %.3f s\n", n, k,
	       bv_now() - t0);
	CHECK(rows == n, "view rows %lld", rows);
	free(z);
	bv_db_close(db);

	/* read back through a READONLY connection; writes are refused */
	CHECK(bv_db_open(&db, path, BV_DB_READONLY) == 0, "%s", bv_error_last());
	if (!db)
		return;
	int *ep = NULL, n_ep = 0;
	CHECK(bv_db_epochs(db, run, "test", &ep, &n_ep) == 0 && n_ep == n_snap, "epochs %d", n_ep);
	free(ep);
	CHECK_ERR(bv_db_config_set(db, "x", "y"), BV_EDB);
	CHECK(strstr(bv_error_last(), "readonly") != NULL, "%s", bv_error_last());
	bv_db_close(db);
}

static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[1024];
	while (d && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

int main(void)
{
	const int n = 10000, k = 10, n_train = 2000;
	char path[600];
	snprintf(tmpdir, sizeof tmpdir, "%s/db-%ld", getenv("BV_TMP") ? getenv("BV_TMP") : "/tmp",
		 (long)getpid());
	mkdir(tmpdir, 0755);
	int *labels = malloc(sizeof(int) * (size_t)n);
	int *counts = malloc(sizeof(int) * 60000);
	for (int i = 0; i < n; i++)
		labels[i] = (int)(rnd() % (uint64_t)k);

	tmp_path(path, sizeof path, "main.db");
	test_create(path);
	bv_db *db = NULL;
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0, "%s", bv_error_last());
	if (db) {
		int64_t kd;
		test_config(db);
		test_runs(db);
		test_samples(db, labels, n);
		CHECK(bv_db_samples_put(db, "train", labels, n_train) == 0, "%s", bv_error_last());
		test_inbag(db, 1, counts, 60000);
		bv_db_run_ensure(db, &kd, NULL, BV_RUN_KD, 4, 1, 1, 2.25, 1, "mlp:", 30);
		test_snapshots(db, kd, labels, n, k, n_train);
		bv_db_close(db);
		db = NULL;
		CHECK(bv_db_open(&db, path, BV_DB_READONLY) == 0, "reopen READONLY: %s", bv_error_last());
		bv_run r;
		CHECK(db && bv_db_run_get(db, &r, kd) == 0 && r.method == BV_RUN_KD, "read a run");
		bv_db_close(db);
	}
	tmp_path(path, sizeof path, "recipes.db");
	test_recipes(path, labels, 2000, k);
	test_bad_files();
	test_hostile_files();
	tmp_path(path, sizeof path, "concurrent.db");
	test_concurrency(path);
	tmp_path(path, sizeof path, "size.db");
	test_size(path, labels);
	free(labels);
	free(counts);
	if (bv_check_fail_ == 0) /* keep the files of a failed run for a look */
		remove_tmpdir();
	return bv_check_done();
}
