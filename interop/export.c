/*
 * bvtool export: a database as the layout of docs/import.md (interop.h).
 *
 * Everything is written into "<out>.partial-<pid>" beside the output and
 * renamed into place at the end, so that a failure or a kill leaves no
 * half-written layout under the name asked for (a failure removes the
 * partial directory; a kill leaves it, under its own name). Logits stream
 * one snapshot at a time into (E, N, K) float32 arrays; the manifest carries
 * every metrics row ("metrics", fractions as stored) so that an import gives
 * the same rows back, and, as extras, the collection's config and the list
 * of per-sample statistics files of each decomposition.
 */
#include "interop.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "manifest.h"
#include "npy.h"

typedef struct exp_ctx {
	bv_db *db;
	char tmp[1100];           /* the partial directory */
	int n[BV_N_SPLITS];       /* samples per split */
	int k;
	float *buf;               /* one snapshot of the larger split */
	bv_manifest m;            /* what manifest.json says; freed with bv_manifest_free */
	json_t *extras;
	bv_export_summary sum;
} exp_ctx;

static const char *split_name(int s)
{
	return bv_split_names[s];
}

static char *xdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		bv_error_set(BV_ENOMEM, "out of memory");
	return d;
}

static int path_in(char *out, size_t size, const exp_ctx *x, const char *name)
{
	if ((size_t)snprintf(out, size, "%s/%s", x->tmp, name) >= size)
		return bv_error_set(BV_EINVAL, "path too long: '%s/%s'", x->tmp, name);
	return 0;
}

/* ---- the output directory ---------------------------------------------------- */

/* out must be missing, or an empty directory (removed, then replaced). */
static int check_out(const char *out, int *exists)
{
	struct stat st;
	*exists = 0;
	if (lstat(out, &st) != 0) {
		if (errno != ENOENT)
			return bv_error_set(BV_EIO, "cannot use '%s': %s", out, strerror(errno));
		return bv_check_output_dir(out);
	}
	if (!S_ISDIR(st.st_mode))
		return bv_error_set(BV_EIO, "'%s' exists and is not a directory", out);
	DIR *d = opendir(out);
	if (!d)
		return bv_error_set(BV_EIO, "cannot read directory '%s': %s", out, strerror(errno));
	struct dirent *e;
	int empty = 1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			empty = 0;
	closedir(d);
	if (!empty)
		return bv_error_set(BV_EIO, "'%s' exists and is not empty (export writes a new directory)",
				    out);
	*exists = 1;
	return 0;
}

/* Remove the partial directory: the files export wrote, stats/, itself. */
static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char p[1400];
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			remove_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* ---- samples and logits ------------------------------------------------------ */

/* n ints as an int64 (n,) .npy */
static int write_ints(const char *path, const int *c, int n)
{
	int64_t *v = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
	if (!v)
		return bv_error_set(BV_ENOMEM, "out of memory for %d values", n);
	for (int i = 0; i < n; i++)
		v[i] = c[i];
	const int64_t shape[1] = {n};
	const int rc = bv_npy_write(path, "<i8", 1, shape, v);
	free(v);
	return rc;
}

static int write_labels(exp_ctx *x)
{
	for (int s = 0; s < BV_N_SPLITS; s++) {
		int n = 0, rc;
		if ((rc = bv_db_samples_get(x->db, split_name(s), NULL, 0, &n)) != 0)
			return rc;
		x->n[s] = n;
		if (!n)
			continue;
		int *lab = malloc(sizeof(int) * (size_t)n);
		char name[64], path[1200];
		snprintf(name, sizeof name, "labels_%s.npy", split_name(s));
		if (!lab)
			rc = bv_error_set(BV_ENOMEM, "out of memory for %d labels", n);
		if (rc == 0 && (rc = bv_db_samples_get(x->db, split_name(s), lab, n, &n)) == 0 &&
		    (rc = path_in(path, sizeof path, x, name)) == 0)
			rc = write_ints(path, lab, n);
		free(lab);
		if (rc)
			return rc;
		if (!(x->m.labels[s] = xdup(name)))
			return BV_ENOMEM;
	}
	if (!x->n[BV_SPLIT_TEST])
		return bv_error_set(BV_ESTATE, "database '%s' has no test samples: nothing to export",
				    bv_db_path(x->db));
	return 0;
}

/* The class count: the snapshots' k (one for all), else config n_classes. */
static int find_k(exp_ctx *x)
{
	sqlite3_stmt *st;
	int rc = bv_db_prepare(x->db, &st, "SELECT DISTINCT k FROM snapshots LIMIT 2");
	if (rc)
		return rc;
	int n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const sqlite3_int64 k = sqlite3_column_int64(st, 0);
		if (n++ && k != x->k) {
			sqlite3_finalize(st);
			return bv_error_set(BV_EFORMAT,
					    "database '%s': its snapshots have %d and %lld classes (the "
					    "database is damaged)",
					    bv_db_path(x->db), x->k, (long long)k);
		}
		if (k < 1 || k > BV_MANIFEST_MAX_CLASSES) {
			sqlite3_finalize(st);
			return bv_error_set(BV_EFORMAT, "database '%s': a snapshot has k = %lld (the "
							"database is damaged)",
					    bv_db_path(x->db), (long long)k);
		}
		x->k = (int)k;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return bv_db_error(x->db);
	if (!n) {
		char text[32];
		long v;
		if ((rc = bv_db_config_get(x->db, "n_classes", text, sizeof text)) < 0)
			return rc;
		if (rc == 0 || bv_parse_long(&v, text, 1, BV_MANIFEST_MAX_CLASSES, "n_classes") != 0)
			return bv_error_set(BV_ESTATE, "database '%s' has no snapshots: nothing to export",
					    bv_db_path(x->db));
		x->k = (int)v;
	}
	return 0;
}

/* A run's stem: "kd_T4_s1", "ce_s1", "ce_s1_i2" (init 2), "teacher". */
static void stem(char *out, size_t size, const bv_run *r)
{
	char t[32], i[24] = "";
	if (r->init > 1)
		snprintf(i, sizeof i, "_i%d", r->init);
	if (r->method == BV_RUN_TEACHER) {
		snprintf(out, size, "teacher");
	} else if (isnan(r->temperature)) {
		snprintf(out, size, "%s_s%d%s", bv_db_method_name(r->method), r->seed, i);
	} else {
		bv_number_format(t, sizeof t, r->temperature);
		snprintf(out, size, "%s_T%s_s%d%s", bv_db_method_name(r->method), t, r->seed, i);
	}
}

/* The snapshots of one split of a run at `epochs` as one array: (E, N, K),
 * or (N, K) for the teacher. */
static int write_logits(exp_ctx *x, const bv_run *r, int s, const int *epochs, int n_epochs,
			const char *name)
{
	const int N = x->n[s], K = x->k;
	char path[1200];
	bv_npy_writer w;
	int rc;
	const int64_t shape3[3] = {n_epochs, N, K};
	const int teacher = r->method == BV_RUN_TEACHER;
	if ((rc = path_in(path, sizeof path, x, name)) != 0 ||
	    (rc = bv_npy_writer_open(&w, path, "<f4", teacher ? 2 : 3, teacher ? shape3 + 1 : shape3)) !=
		    0)
		return rc;
	for (int e = 0; e < n_epochs; e++) {
		if ((rc = bv_db_logits_get(x->db, r->id, epochs[e], split_name(s), x->buf, N, K)) != 0 ||
		    (rc = bv_npy_writer_put(&w, x->buf, (int64_t)N * K)) != 0) {
			bv_npy_writer_abort(&w);
			return rc;
		}
		x->sum.bytes += (int64_t)N * K * 4;
	}
	return bv_npy_writer_commit(&w);
}

static int copy_metrics(bv_mf_metrics *mt, const bv_db_metrics *rows, int n)
{
	if (!n)
		return 0;
	mt->epoch = malloc(sizeof(int) * (size_t)n);
	double **cols[] = {&mt->lr,	    &mt->train_loss, &mt->train_acc, &mt->test_acc,
			   &mt->wsl_weight, &mt->filtered,   &mt->seconds};
	for (size_t c = 0; c < BV_ARRAY_LEN(cols); c++)
		*cols[c] = malloc(sizeof(double) * (size_t)n);
	mt->n = n; /* so that bv_manifest_free frees what was allocated */
	if (!mt->epoch || !mt->lr || !mt->train_loss || !mt->train_acc || !mt->test_acc ||
	    !mt->wsl_weight || !mt->filtered || !mt->seconds)
		return bv_error_set(BV_ENOMEM, "out of memory for %d metrics rows", n);
	for (int i = 0; i < n; i++) {
		const bv_db_metrics *m = &rows[i];
		mt->epoch[i] = m->epoch;
		mt->lr[i] = m->lr;
		mt->train_loss[i] = m->train_loss;
		mt->train_acc[i] = m->train_acc;
		mt->test_acc[i] = m->test_acc;
		mt->wsl_weight[i] = m->wsl_weight;
		mt->filtered[i] = m->filtered;
		mt->seconds[i] = m->seconds;
	}
	return 0;
}

/* In-bag counts of a seed as inbag_s<seed>.npy, once; *name is NULL when the
 * database has none for it. */
static int write_inbag(exp_ctx *x, int seed, char **name)
{
	const int n = x->n[BV_SPLIT_TRAIN];
	char file[64], path[1200];
	*name = NULL;
	if (!n)
		return 0;
	snprintf(file, sizeof file, "inbag_s%d.npy", seed);
	if ((*name = xdup(file)) == NULL)
		return BV_ENOMEM;
	if (path_in(path, sizeof path, x, file) == 0 && access(path, F_OK) == 0)
		return 0; /* another run of the seed wrote it */
	int *c = malloc(sizeof(int) * (size_t)n);
	int rc = 0;
	if (!c)
		rc = bv_error_set(BV_ENOMEM, "out of memory for in-bag counts");
	if (rc == 0 && (rc = bv_db_inbag_get(x->db, seed, c, n)) == BV_ESTATE) {
		bv_error_clear();
		free(*name);
		*name = NULL;
		rc = 0;
	} else if (rc == 0) {
		rc = write_ints(path, c, n);
	}
	free(c);
	return rc;
}

/* One complete run into f: its logits files, in-bag counts, metrics. */
static int export_run(exp_ctx *x, const bv_run *r, bv_mf_run *f)
{
	char st[64];
	int rc = 0, *ep[BV_N_SPLITS] = {NULL, NULL}, n_ep[BV_N_SPLITS] = {0, 0};
	bv_db_metrics *rows = NULL;
	int n_rows = 0;
	stem(st, sizeof st, r);
	snprintf(f->where, sizeof f->where, "%.31s", st);
	f->method = r->method;
	f->temperature = r->temperature;
	f->alpha = r->alpha;
	f->gamma = r->gamma;
	f->seed = r->seed;
	f->init = r->init;
	f->seconds = r->seconds;
	f->planned_epochs = r->epochs;
	if (r->model[0] && !(f->model = xdup(r->model)))
		return BV_ENOMEM;
	for (int s = 0; s < BV_N_SPLITS; s++)
		if ((rc = bv_db_epochs(x->db, r->id, split_name(s), &ep[s], &n_ep[s])) != 0)
			goto done;
	/* one list of epochs for both splits: the manifest has one */
	const int *epochs = n_ep[0] ? ep[0] : ep[1];
	int n_epochs = n_ep[0] ? n_ep[0] : n_ep[1];
	if (n_ep[0] && n_ep[1] &&
	    (n_ep[0] != n_ep[1] || memcmp(ep[0], ep[1], sizeof(int) * (size_t)n_ep[0]) != 0)) {
		rc = bv_error_set(BV_EFORMAT,
				  "database '%s': run %lld (%s) records the test split at other epochs "
				  "than the train split, which the layout cannot hold",
				  bv_db_path(x->db), (long long)r->id, st);
		goto done;
	}
	if (!n_epochs)
		goto done; /* no snapshot: not exported (the caller skips it) */
	if (r->method == BV_RUN_TEACHER) {
		/* the teacher's one snapshot: its last */
		epochs += n_epochs - 1;
		n_epochs = 1;
	}
	f->n_epochs = n_epochs;
	if (!(f->epochs = malloc(sizeof(int) * (size_t)n_epochs))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(f->epochs, epochs, sizeof(int) * (size_t)n_epochs);
	for (int s = 0; s < BV_N_SPLITS; s++) {
		if (!n_ep[s])
			continue;
		char name[128];
		snprintf(name, sizeof name, "%s_%s.npy", st, split_name(s));
		f->logits[s].paths = calloc(1, sizeof(char *));
		if (!f->logits[s].paths || !(f->logits[s].paths[0] = xdup(name))) {
			rc = BV_ENOMEM;
			goto done;
		}
		f->logits[s].n_paths = 1;
		if ((rc = write_logits(x, r, s, f->epochs, n_epochs, name)) != 0)
			goto done;
	}
	if (r->method != BV_RUN_TEACHER && (rc = write_inbag(x, r->seed, &f->inbag)) != 0)
		goto done;
	if ((rc = bv_db_metrics_get(x->db, r->id, &rows, &n_rows)) != 0 ||
	    (rc = copy_metrics(&f->metrics, rows, n_rows)) != 0)
		goto done;
	x->sum.runs++;
done:
	free(ep[0]);
	free(ep[1]);
	free(rows);
	return rc;
}

/* Free what a bv_mf_run holds, through a manifest that owns it as its teacher. */
static void free_run(bv_mf_run *f)
{
	bv_manifest m1;
	memset(&m1, 0, sizeof m1);
	m1.has_teacher = 1;
	m1.teacher = *f;
	bv_manifest_free(&m1);
	memset(f, 0, sizeof *f);
}

static int export_runs(exp_ctx *x)
{
	bv_run *runs = NULL;
	int n = 0, rc;
	if ((rc = bv_db_check_runs(x->db)) != 0 || (rc = bv_db_runs_list(x->db, &runs, &n)) != 0)
		return rc;
	x->m.runs = calloc((size_t)n + 1, sizeof *x->m.runs);
	if (!x->m.runs) {
		free(runs);
		return bv_error_set(BV_ENOMEM, "out of memory");
	}
	for (int i = 0; i < n; i++) {
		const bv_run *r = &runs[i];
		if (r->status != BV_RUN_DONE)
			continue; /* only complete runs: an unfinished one is not a result */
		bv_mf_run f;
		memset(&f, 0, sizeof f);
		if ((rc = export_run(x, r, &f)) != 0 || !f.n_epochs) {
			free_run(&f); /* failed, or no snapshot to export: left out */
			if (rc)
				break;
			continue;
		}
		if (r->method == BV_RUN_TEACHER) {
			x->m.teacher = f;
			x->m.has_teacher = 1;
		} else {
			x->m.runs[x->m.n_runs++] = f;
		}
	}
	free(runs);
	return rc;
}

/* ---- decompositions: per-sample statistics ------------------------------------- */

/* the last two only for a selection whose variance was split by source (inits) */
static const char *const stat_cols[] = {"sample_idx", "bias",	"variance", "loss",
					"regularization", "n_seeds", "p_true", "acc",
					"wsl_weight", "teacher_p_true", "var_init", "var_data"};
enum { N_STAT_COLS = 10, N_STAT_COLS_SPLIT = 12 };

/* The rows of st (cols doubles each; NULL as NaN) as "<stem>.npy", a float64
 * (n, cols) array, and "<stem>.csv" with the header names (the columns of
 * int_mask as whole numbers, NULL as an empty field); st is finalized. */
static int write_table(exp_ctx *x, sqlite3_stmt *st, int cols, const char *const *names,
		       unsigned int_mask, const char *fstem)
{
	bv_buf csv, vals;
	int rc;
	bv_buf_init(&csv);
	bv_buf_init(&vals);
	for (int c = 0; c < cols; c++) {
		bv_buf_append(&csv, names[c], strlen(names[c]));
		bv_buf_append(&csv, c + 1 < cols ? "," : "\n", 1);
	}
	int64_t n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int c = 0; c < cols; c++) {
			double v = sqlite3_column_type(st, c) == SQLITE_NULL ? NAN
									     : sqlite3_column_double(st, c);
			bv_buf_append(&vals, &v, sizeof v);
			char text[40] = "";
			if (!isnan(v))
				snprintf(text, sizeof text, int_mask >> c & 1 ? "%.0f" : "%.17g", v);
			bv_buf_append(&csv, text, strlen(text));
			bv_buf_append(&csv, c + 1 < cols ? "," : "\n", 1);
		}
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rc = bv_db_error(x->db);
		goto done;
	}
	rc = 0;
	if (csv.failed || vals.failed) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for %s", fstem);
		goto done;
	}
	char name[300], path[1400];
	const int64_t shape[2] = {n, cols};
	snprintf(name, sizeof name, "%s.npy", fstem);
	if ((rc = path_in(path, sizeof path, x, name)) != 0 ||
	    (rc = bv_npy_write(path, "<f8", 2, shape, vals.data)) != 0)
		goto done;
	snprintf(name, sizeof name, "%s.csv", fstem);
	if ((rc = path_in(path, sizeof path, x, name)) == 0)
		rc = bv_write_file_atomic(path, csv.data, csv.len);
done:
	bv_buf_release(&csv);
	bv_buf_release(&vals);
	return rc;
}

/* A file pair's entry in the manifest's extras: {key: value, npy, csv}. */
static int list_files(json_t *files, const char *key, const char *value, const char *fstem)
{
	json_t *entry = json_pack("{s:s, s:s+, s:s+}", key, value, "npy", fstem, ".npy", "csv", fstem,
				  ".csv");
	if (!entry || json_array_append_new(files, entry) != 0)
		return bv_error_set(BV_ENOMEM, "out of memory");
	return 0;
}

static int write_stats_one(exp_ctx *x, double temp, int epoch, const char *split, const char *method,
			   json_t *files)
{
	sqlite3_stmt *st;
	static const char where[] = " FROM sample_stats WHERE temperature = ?1 AND epoch = ?2 AND "
				    "split = ?3 AND method = ?4";
	int cols = N_STAT_COLS, rc;
	for (int pass = 0; pass < 2; pass++) {
		/* pass 0: is any row's variance split? pass 1: the rows */
		char sql[512];
		snprintf(sql, sizeof sql, "%s%s%s",
			 pass ? "SELECT sample_idx, bias, variance, loss, regularization, n_seeds, "
				"p_true, acc, wsl_weight, teacher_p_true, var_init, var_data"
			      : "SELECT count(*)",
			 where, pass ? " ORDER BY sample_idx" : " AND var_init IS NOT NULL");
		if ((rc = bv_db_prepare(x->db, &st, sql)) != 0)
			return rc;
		sqlite3_bind_double(st, 1, temp);
		sqlite3_bind_int(st, 2, epoch);
		sqlite3_bind_text(st, 3, split, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, method, -1, SQLITE_STATIC);
		if (pass)
			break;
		if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
			sqlite3_finalize(st);
			return bv_db_error(x->db);
		}
		cols = sqlite3_column_int64(st, 0) > 0 ? N_STAT_COLS_SPLIT : N_STAT_COLS;
		sqlite3_finalize(st);
	}
	char t[32], fstem[160];
	bv_number_format(t, sizeof t, temp);
	snprintf(fstem, sizeof fstem, "stats/%s_T%s_e%d_%s", split, t, epoch, method);
	/* sample_idx, regularization, n_seeds are whole numbers */
	if ((rc = write_table(x, st, cols, stat_cols, 1u << 0 | 1u << 4 | 1u << 5, fstem)) != 0 ||
	    (rc = list_files(files, "method", method, fstem)) != 0)
		return rc;
	x->sum.stats++;
	return 0;
}

static int write_stats(exp_ctx *x, json_t *list)
{
	sqlite3_stmt *st;
	int rc = bv_db_prepare(x->db, &st,
			       "SELECT d.temperature, d.epoch, d.split, d.criterion, d.n_samples, d.seeds, "
			       "d.max_identity_error, (SELECT group_concat(method) FROM (SELECT DISTINCT "
			       "method FROM sample_stats s WHERE s.temperature = d.temperature AND "
			       "s.epoch = d.epoch AND s.split = d.split ORDER BY method)) "
			       "FROM decompositions d ORDER BY d.split, d.temperature, d.epoch");
	if (rc)
		return rc;
	char stats_dir[1200];
	if ((rc = path_in(stats_dir, sizeof stats_dir, x, "stats")) != 0)
		goto done;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const double temp = sqlite3_column_double(st, 0);
		const int epoch = sqlite3_column_int(st, 1);
		char split[16], crit[32], seeds[4096], methods[256];
		bv_db_safe_text(split, sizeof split, sqlite3_column_text(st, 2));
		bv_db_safe_text(crit, sizeof crit, sqlite3_column_text(st, 3));
		snprintf(seeds, sizeof seeds, "%s", (const char *)sqlite3_column_text(st, 5));
		bv_db_safe_text(methods, sizeof methods, sqlite3_column_text(st, 7));
		if (mkdir(stats_dir, 0777) != 0 && errno != EEXIST) {
			rc = bv_error_set(BV_EIO, "cannot create '%s': %s", stats_dir, strerror(errno));
			goto done;
		}
		json_t *files = json_array();
		json_t *d = json_pack("{s:f, s:i, s:s, s:s, s:i, s:s, s:f, s:o}", "temperature", temp,
				      "epoch", epoch, "split", split, "criterion", crit, "n_samples",
				      sqlite3_column_int(st, 4), "seeds", seeds, "max_identity_error",
				      sqlite3_column_double(st, 6), "stats", files);
		if (!d || json_array_append_new(list, d) != 0) {
			rc = bv_error_set(BV_ENOMEM, "out of memory");
			goto done;
		}
		for (char *m = strtok(methods, ","); m; m = strtok(NULL, ","))
			if ((rc = write_stats_one(x, temp, epoch, split, m, files)) != 0)
				goto done;
	}
	rc = rc == SQLITE_DONE ? 0 : bv_db_error(x->db);
done:
	sqlite3_finalize(st);
	return rc;
}

/* ---- training dynamics: per run and split --------------------------------------- */

static const char *const dyn_cols[] = {"sample_idx",  "first_learned", "forgetting", "correctness",
				       "confidence", "variability",   "n_epochs"};

/* Every (run, split) of the dynamics table, of the runs export writes (done
 * students), as dynamics/<run stem>_<split>.npy and .csv, listed in the extras. */
static int write_dynamics(exp_ctx *x, json_t *list)
{
	sqlite3_stmt *st, *rows;
	int rc = bv_db_prepare(x->db, &st,
			       "SELECT DISTINCT d.run_id, d.split FROM dynamics d JOIN runs r ON "
			       "r.id = d.run_id WHERE r.status = 'done' ORDER BY d.run_id, d.split");
	if (rc)
		return rc;
	char dir[1200];
	if ((rc = path_in(dir, sizeof dir, x, "dynamics")) != 0)
		goto done;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const int64_t id = sqlite3_column_int64(st, 0);
		char split[16], run_stem[64], fstem[160];
		bv_run r;
		bv_db_safe_text(split, sizeof split, sqlite3_column_text(st, 1));
		if ((rc = bv_db_run_get(x->db, &r, id)) != 0)
			goto done;
		stem(run_stem, sizeof run_stem, &r);
		snprintf(fstem, sizeof fstem, "dynamics/%s_%s", run_stem, split);
		if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
			rc = bv_error_set(BV_EIO, "cannot create '%s': %s", dir, strerror(errno));
			goto done;
		}
		if ((rc = bv_db_prepare(x->db, &rows,
					"SELECT sample_idx, first_learned, forgetting, correctness, "
					"confidence, variability, n_epochs FROM dynamics WHERE run_id = ?1 "
					"AND split = ?2 ORDER BY sample_idx")) != 0)
			goto done;
		sqlite3_bind_int64(rows, 1, id);
		sqlite3_bind_text(rows, 2, split, -1, SQLITE_TRANSIENT);
		/* sample_idx, first_learned, forgetting, n_epochs are whole numbers */
		if ((rc = write_table(x, rows, 7, dyn_cols, 1u << 0 | 1u << 1 | 1u << 2 | 1u << 6,
				      fstem)) != 0 ||
		    (rc = list_files(list, "run", run_stem, fstem)) != 0)
			goto done;
		json_t *last = json_array_get(list, json_array_size(list) - 1);
		if (json_object_set_new(last, "split", json_string(split)) != 0) {
			rc = bv_error_set(BV_ENOMEM, "out of memory");
			goto done;
		}
		x->sum.dynamics++;
	}
	rc = rc == SQLITE_DONE ? 0 : bv_db_error(x->db);
done:
	sqlite3_finalize(st);
	return rc;
}

/* The collection's config rows, as an object of the extras. */
static int config_json(exp_ctx *x, json_t *obj)
{
	sqlite3_stmt *st;
	int rc = bv_db_prepare(x->db, &st, "SELECT key, value FROM config ORDER BY key");
	if (rc)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		const char *v = (const char *)sqlite3_column_text(st, 1);
		if (k && v && json_object_set_new(obj, k, json_string(v)) != 0) {
			/* text that is not UTF-8: left out rather than written broken */
			continue;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : bv_db_error(x->db);
}

static int dataset_name(exp_ctx *x)
{
	char data[1600];
	int rc = bv_db_config_get(x->db, "data", data, sizeof data);
	if (rc < 0)
		return rc;
	return (x->m.dataset = xdup(rc ? data : "unknown")) ? 0 : BV_ENOMEM;
}

int bv_export(const char *db_path, const char *out_dir, bv_export_summary *out)
{
	exp_ctx x;
	memset(&x, 0, sizeof x);
	int exists = 0, made = 0, rc;
	char path[1200];
	json_t *config = NULL, *decomps = NULL, *dyn = NULL;
	if ((rc = check_out(out_dir, &exists)) != 0 ||
	    (rc = bv_db_open(&x.db, db_path, BV_DB_READONLY)) != 0)
		goto done;
	if ((size_t)snprintf(x.tmp, sizeof x.tmp, "%s.partial-%ld", out_dir, (long)getpid()) >=
	    sizeof x.tmp) {
		rc = bv_error_set(BV_EINVAL, "path too long: '%s'", out_dir);
		goto done;
	}
	if (mkdir(x.tmp, 0777) != 0) {
		rc = bv_error_set(BV_EIO, "cannot create '%s': %s", x.tmp, strerror(errno));
		goto done;
	}
	made = 1;
	if ((rc = find_k(&x)) != 0 || (rc = write_labels(&x)) != 0 || (rc = bv_db_check_snapshots(x.db)) != 0)
		goto done;
	for (int s = 0; s < BV_N_SPLITS; s++)
		if (x.n[s] && (rc = bv_db_check_labels(x.db, split_name(s), x.k)) != 0)
			goto done;
	const size_t most = (size_t)(x.n[0] > x.n[1] ? x.n[0] : x.n[1]) * (size_t)x.k;
	if (!(x.buf = malloc(sizeof(float) * most))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for %zu logits", most);
		goto done;
	}
	x.m.classes = x.k;
	if ((rc = dataset_name(&x)) != 0 || (rc = export_runs(&x)) != 0)
		goto done;
	config = json_object();
	decomps = json_array();
	dyn = json_array();
	x.extras = json_object();
	if (!config || !decomps || !dyn || !x.extras) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	if ((rc = config_json(&x, config)) != 0 || (rc = write_stats(&x, decomps)) != 0 ||
	    (rc = write_dynamics(&x, dyn)) != 0)
		goto done;
	json_object_set_new(x.extras, "exported_by", json_string("bvtool " BV_VERSION));
	json_object_set(x.extras, "config", config);
	json_object_set(x.extras, "decompositions", decomps);
	if (json_array_size(dyn) > 0)
		json_object_set(x.extras, "dynamics", dyn);
	if (!(x.m.extras = json_dumps(x.extras, JSON_COMPACT | JSON_REAL_PRECISION(17)))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	if ((rc = path_in(path, sizeof path, &x, BV_MANIFEST_NAME)) != 0 ||
	    (rc = bv_manifest_write(&x.m, path)) != 0)
		goto done;
	/* into place: an empty directory of that name is replaced */
	if (exists && rmdir(out_dir) != 0) {
		rc = bv_error_set(BV_EIO, "cannot replace '%s': %s", out_dir, strerror(errno));
		goto done;
	}
	if (rename(x.tmp, out_dir) != 0) {
		rc = bv_error_set(BV_EIO, "cannot rename '%s' to '%s': %s", x.tmp, out_dir,
				  strerror(errno));
		goto done;
	}
	made = 0;
done:
	if (made)
		remove_tree(x.tmp);
	json_decref(config);
	json_decref(decomps);
	json_decref(dyn);
	json_decref(x.extras);
	free(x.buf);
	bv_manifest_free(&x.m);
	bv_db_close(x.db);
	if (out)
		*out = x.sum;
	return rc;
}
