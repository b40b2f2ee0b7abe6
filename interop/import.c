/*
 * bvtool import: the layout of docs/import.md into a database (interop.h).
 * This file holds each run's plan, the reading of the arrays and the whole
 * import (bv_import); import_db.c what the database holds and the writing.
 *
 * Three passes. check_arrays opens every array the manifest names and reads
 * it once, an epoch at a time: shapes against the labels and the class count,
 * every logit finite, the labels in range, the in-bag counts whole and >= 0,
 * and the test accuracy of each recorded epoch (for runs without test_acc).
 * imp_check_collection and imp_check_runs then compare the database with the
 * manifest: the same collection (dataset, classes, labels), and for each run
 * already there, its content (parameters, metrics rows, snapshots byte for
 * byte, in-bag counts) to decide whether it is unchanged, refused or replaced.
 * Only then imp_write_all writes: the configuration and samples in one
 * transaction, then each run in its own. A file that changes between the
 * passes is caught as it is read again (shape, finiteness), and its run rolls
 * back.
 */
#include "import_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bvmath.h"

/* ---- one run's plan --------------------------------------------------------- */

const char *imp_split_name(int s)
{
	return bv_split_names[s];
}

static void run_label(imp_run *r)
{
	const bv_mf_run *f = r->mf;
	char t[32] = "";
	if (f->method == BV_RUN_TEACHER) {
		snprintf(r->label, sizeof r->label, "teacher");
		snprintf(r->key, sizeof r->key, "teacher");
		return;
	}
	const char *name = bv_db_method_name(f->method);
	if (!isnan(f->temperature)) {
		bv_number_format(t, sizeof t, f->temperature);
		snprintf(r->label, sizeof r->label, "%s T=%s seed %d", name, t, f->seed);
		snprintf(r->key, sizeof r->key, "%s-T%s-s%d", name, t, f->seed);
	} else {
		snprintf(r->label, sizeof r->label, "%s seed %d", name, f->seed);
		snprintf(r->key, sizeof r->key, "%s-s%d", name, f->seed);
	}
	if (f->init > 1) {
		size_t l = strlen(r->label), k = strlen(r->key);
		snprintf(r->label + l, sizeof r->label - l, " init %d", f->init);
		snprintf(r->key + k, sizeof r->key - k, "-i%d", f->init);
	}
}

/* ---- reading the arrays ------------------------------------------------------- */

static int open_array(bv_npy *a, const imp *im, const char *path)
{
	char file[2200];
	int rc = bv_manifest_file(file, sizeof file, &im->m, path);
	return rc ? rc : bv_npy_open(a, file);
}

/* The labels of a split: an integer (N,) array, 0 <= y < classes. */
static int load_labels(imp *im, int s)
{
	bv_npy a;
	int rc = open_array(&a, im, im->m.labels[s]);
	if (rc)
		return rc;
	char shape[96];
	if (a.ndim != 1 || a.shape[0] < 1 || a.shape[0] > 100000000) {
		rc = bv_error_set(BV_EFORMAT,
				  "'%s': labels.%s holds %s, expected (N,) labels with N >= 1",
				  a.where, imp_split_name(s),
				  bv_npy_shape_text(shape, sizeof shape, a.ndim, a.shape));
		goto done;
	}
	if (a.kind == 'f') {
		rc = bv_error_set(BV_EFORMAT, "'%s': labels.%s holds %s, expected integer labels",
				  a.where, imp_split_name(s), a.descr);
		goto done;
	}
	const int n = (int)a.shape[0];
	int64_t *v = malloc(sizeof *v * (size_t)n);
	im->labels[s] = malloc(sizeof(int) * (size_t)n);
	if (!v || !im->labels[s]) {
		free(v);
		rc = bv_error_set(BV_ENOMEM, "out of memory reading '%s'", a.where);
		goto done;
	}
	if ((rc = bv_npy_read_i64(&a, v, n)) == 0) {
		for (int i = 0; i < n; i++) {
			if (v[i] < 0 || v[i] >= im->k) {
				rc = bv_error_set(BV_EFORMAT,
						  "'%s': label %d is %lld, outside 0..%d (classes %d)",
						  a.where, i, (long long)v[i], im->k - 1, im->k);
				break;
			}
			im->labels[s][i] = (int)v[i];
		}
	}
	free(v);
	im->n[s] = n;
done:
	bv_npy_close(&a);
	return rc;
}

static int src_check_shape(src *s, int whole)
{
	const bv_npy *a = &s->a;
	const int E = s->r->mf->n_epochs, N = s->im->n[s->split], K = s->im->k;
	const int ok3 = a->ndim == 3 && a->shape[0] == E && a->shape[1] == N && a->shape[2] == K;
	const int ok2 = a->ndim == 2 && a->shape[0] == N && a->shape[1] == K;
	char shape[96], key[64];
	snprintf(key, sizeof key, "%s.logits.%s", s->r->mf->where, imp_split_name(s->split));
	if (a->kind != 'f')
		return bv_error_set(BV_EFORMAT, "'%s': %s holds %s, expected float logits", a->where,
				    key, a->descr);
	if (whole ? (ok3 || (E == 1 && ok2)) : ok2)
		return 0;
	bv_npy_shape_text(shape, sizeof shape, a->ndim, a->shape);
	if (whole && E > 1)
		return bv_error_set(BV_EFORMAT,
				    "'%s': %s holds %s, expected (%d, %d, %d): %d epochs, %d %s labels, "
				    "%d classes",
				    a->where, key, shape, E, N, K, E, N, imp_split_name(s->split),
				    K);
	return bv_error_set(BV_EFORMAT,
			    "'%s': %s holds %s, expected (%d, %d): %d %s labels, %d classes", a->where,
			    key, shape, N, K, N, imp_split_name(s->split), K);
}

int imp_src_open(src *s, const imp *im, const imp_run *r, int split)
{
	memset(s, 0, sizeof *s);
	s->im = im;
	s->r = r;
	s->split = split;
	const bv_mf_logits *lg = &r->mf->logits[split];
	if (lg->n_paths != 1)
		return 0; /* one file per epoch, opened as it is read */
	int rc = open_array(&s->a, im, lg->paths[0]);
	if (rc)
		return rc;
	s->open = 1;
	return src_check_shape(s, 1);
}

void imp_src_close(src *s)
{
	if (s->open)
		bv_npy_close(&s->a);
	s->open = 0;
}

/* The next epoch's (N, K) logits into out, checked finite; `first_bad` names
 * the first NaN or infinity by its index in the file. */
int imp_src_next(src *s, float *out)
{
	const bv_mf_logits *lg = &s->r->mf->logits[s->split];
	const size_t nk = (size_t)s->im->n[s->split] * (size_t)s->im->k;
	int rc;
	if (lg->n_paths > 1) {
		imp_src_close(s);
		if ((rc = open_array(&s->a, s->im, lg->paths[s->epoch])) != 0)
			return rc;
		s->open = 1;
		if ((rc = src_check_shape(s, 0)) != 0)
			return rc;
	}
	const int64_t base = s->a.pos;
	if ((rc = bv_npy_read_f32(&s->a, out, (int64_t)nk)) != 0)
		return rc;
	const size_t bad = bv_first_nonfinite(out, nk);
	if (bad < nk) {
		const int64_t at = base + (int64_t)bad, K = s->im->k, N = s->im->n[s->split];
		char idx[96];
		if (s->a.ndim == 3)
			snprintf(idx, sizeof idx, "(%lld, %lld, %lld)", (long long)(at / (N * K)),
				 (long long)(at / K % N), (long long)(at % K));
		else
			snprintf(idx, sizeof idx, "(%lld, %lld)", (long long)(at / K),
				 (long long)(at % K));
		return bv_error_set(BV_EFORMAT, "'%s': logit %s is %s (%s.logits.%s)", s->a.where, idx,
				    isnan(out[bad]) ? "NaN" : "infinite", s->r->mf->where,
				    imp_split_name(s->split));
	}
	s->epoch++;
	return 0;
}

/* Every logit array of a run read once: shapes, finite values, accuracies. */
static int check_logits(imp *im, imp_run *r)
{
	const bv_mf_run *f = r->mf;
	for (int s = 0; s < BV_N_SPLITS; s++) {
		if (!f->logits[s].n_paths)
			continue;
		if (!im->n[s])
			return bv_error_set(
				BV_EFORMAT, "'%s': %s.logits.%s: the manifest has no %s labels",
				im->m.path, f->where, imp_split_name(s), imp_split_name(s));
		src sr;
		int rc = imp_src_open(&sr, im, r, s);
		for (int e = 0; rc == 0 && e < f->n_epochs; e++) {
			if ((rc = imp_src_next(&sr, im->buf[0])) == 0 && s == BV_SPLIT_TEST)
				r->acc[e] = bv_math_accuracy(im->buf[0], im->labels[s], im->n[s], im->k);
			im->sum.bytes_read += (int64_t)im->n[s] * im->k * 4;
		}
		imp_src_close(&sr);
		if (rc)
			return rc;
	}
	return 0;
}

static int check_inbag(imp *im, imp_run *r)
{
	const bv_mf_run *f = r->mf;
	if (!f->inbag)
		return 0;
	const int n = im->n[BV_SPLIT_TRAIN];
	if (!n)
		return bv_error_set(BV_EFORMAT, "'%s': %s.inbag: the manifest has no train labels",
				    im->m.path, f->where);
	bv_npy a;
	int rc = open_array(&a, im, f->inbag);
	if (rc)
		return rc;
	char shape[96];
	int64_t *v = NULL;
	if (a.ndim != 1 || a.shape[0] != n || a.kind == 'f') {
		rc = bv_error_set(BV_EFORMAT, "'%s': %s.inbag holds %s %s, expected (%d,) integer "
					      "counts, one per train label",
				  a.where, f->where, a.descr,
				  bv_npy_shape_text(shape, sizeof shape, a.ndim, a.shape), n);
		goto done;
	}
	v = malloc(sizeof *v * (size_t)n);
	r->inbag = malloc(sizeof(int) * (size_t)n);
	if (!v || !r->inbag) {
		rc = bv_error_set(BV_ENOMEM, "out of memory reading '%s'", a.where);
		goto done;
	}
	if ((rc = bv_npy_read_i64(&a, v, n)) != 0)
		goto done;
	for (int i = 0; i < n; i++) {
		if (v[i] < 0 || v[i] > n) {
			rc = bv_error_set(BV_EFORMAT, "'%s': in-bag count %d is %lld, expected 0..%d",
					  a.where, i, (long long)v[i], n);
			goto done;
		}
		r->inbag[i] = (int)v[i];
	}
	/* the runs of one seed share its bootstrap draw */
	for (imp_run *o = im->runs; o < r; o++)
		if (o->inbag && o->mf->seed == f->seed &&
		    memcmp(o->inbag, r->inbag, sizeof(int) * (size_t)n) != 0) {
			rc = bv_error_set(BV_EFORMAT,
					  "'%s': %s.inbag differs from %s.inbag of the same seed %d",
					  im->m.path, f->where, o->mf->where, f->seed);
			goto done;
		}
done:
	free(v);
	bv_npy_close(&a);
	return rc;
}

/* The metrics rows of a run: every epoch of "metrics" and of "epochs", with a
 * test accuracy at each recorded epoch (metrics, else test_acc, else the
 * logits'). */
static int plan_rows(imp *im, imp_run *r)
{
	const bv_mf_run *f = r->mf;
	const bv_mf_metrics *mt = &f->metrics;
	const int cap = f->n_epochs + mt->n;
	if (f->model && strlen(f->model) >= sizeof ((bv_run *)0)->model)
		return bv_error_set(BV_EFORMAT, "'%s': %s.model: longer than %zu bytes", im->m.path,
				    f->where, sizeof ((bv_run *)0)->model - 1);
	r->rows = calloc((size_t)cap, sizeof *r->rows);
	r->rec = malloc(sizeof(int) * (size_t)cap);
	if (!r->rows || !r->rec)
		return bv_error_set(BV_ENOMEM, "out of memory planning %s", f->where);
	int i = 0, j = 0, n = 0;
	while (i < f->n_epochs || j < mt->n) {
		const int ei = i < f->n_epochs ? f->epochs[i] : INT32_MAX;
		const int ej = j < mt->n ? mt->epoch[j] : INT32_MAX;
		bv_db_metrics *row = &r->rows[n];
		*row = (bv_db_metrics){ei < ej ? ei : ej, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
		r->rec[n] = -1;
		if (ej <= ei) {
			*row = (bv_db_metrics){ej,		  mt->lr[j],	     mt->train_loss[j],
					       mt->train_acc[j],  mt->test_acc[j],   mt->wsl_weight[j],
					       mt->filtered[j],	  mt->seconds[j]};
			j++;
		}
		if (ei <= ej) {
			r->rec[n] = i;
			if (isnan(row->test_acc))
				row->test_acc = f->test_acc ? f->test_acc[i] / 100.0 : r->acc[i];
			if (isnan(row->test_acc))
				return bv_error_set(BV_EFORMAT,
						    "'%s': %s: no test accuracy at epoch %d (give "
						    "test_acc, metrics.test_acc or test logits)",
						    im->m.path, f->where, ei);
			i++;
		}
		n++;
	}
	r->n_rows = n;
	r->final_acc = NAN;
	for (int q = n - 1; q >= 0 && isnan(r->final_acc); q--)
		r->final_acc = r->rows[q].test_acc;
	return 0;
}

static int check_arrays(imp *im)
{
	int rc;
	for (int s = 0; s < BV_N_SPLITS; s++)
		if (im->m.labels[s] && (rc = load_labels(im, s)) != 0)
			return rc;
	const size_t most = (size_t)(im->n[0] > im->n[1] ? im->n[0] : im->n[1]) * (size_t)im->k;
	im->buf[0] = malloc(sizeof(float) * most);
	im->buf[1] = malloc(sizeof(float) * most);
	if (!im->buf[0] || !im->buf[1])
		return bv_error_set(BV_ENOMEM, "out of memory for %zu logits", most);
	for (int i = 0; i < im->n_runs; i++) {
		imp_run *r = &im->runs[i];
		r->acc = malloc(sizeof(double) * (size_t)r->mf->n_epochs);
		if (!r->acc)
			return bv_error_set(BV_ENOMEM, "out of memory planning %s", r->mf->where);
		for (int e = 0; e < r->mf->n_epochs; e++)
			r->acc[e] = NAN;
		if ((rc = check_logits(im, r)) != 0 || (rc = check_inbag(im, r)) != 0 ||
		    (rc = plan_rows(im, r)) != 0)
			return rc;
	}
	return 0;
}

/* ---- the whole import ---------------------------------------------------------- */

static void imp_free(imp *im)
{
	for (int i = 0; i < im->n_runs; i++) {
		free(im->runs[i].rows);
		free(im->runs[i].rec);
		free(im->runs[i].acc);
		free(im->runs[i].inbag);
	}
	free(im->runs);
	for (int s = 0; s < BV_N_SPLITS; s++)
		free(im->labels[s]);
	free(im->buf[0]);
	free(im->buf[1]);
	bv_db_close(im->db);
	bv_manifest_free(&im->m);
}

/* A database file and what SQLite may have left beside it. */
static void remove_db_files(const char *path)
{
	static const char *const side[] = {"", "-journal", "-wal", "-shm"};
	char p[1200];
	for (size_t i = 0; i < BV_ARRAY_LEN(side); i++) {
		snprintf(p, sizeof p, "%s%s", path, side[i]);
		unlink(p);
	}
}

/* The complete temporary database on disk, then under its name: link(2)
 * refuses a name that appeared meanwhile (another import), where rename
 * would replace it. */
static int publish(const char *tmp, const char *path)
{
	int fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		const int e = errno;
		if (fd >= 0)
			close(fd);
		return bv_error_set(BV_EIO, "cannot write database '%s': %s", tmp, strerror(e));
	}
	close(fd);
	if (link(tmp, path) != 0) {
		const int e = errno;
		if (e == EEXIST)
			return bv_error_set(BV_ESTATE, "database '%s' was created while importing (another "
						       "import?); run the import again",
					    path);
		return bv_error_set(BV_EIO, "cannot create database '%s': %s", path, strerror(e));
	}
	unlink(tmp);
	/* the new name on disk too */
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir] = '\0';
	else
		snprintf(dir, sizeof dir, ".");
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

int bv_import(const char *db_path, const char *dir, const bv_import_opts *o,
	      bv_import_summary *out)
{
	imp im;
	memset(&im, 0, sizeof im);
	char tmp[1100] = "";
	int fresh = 0, rc = bv_manifest_read(&im.m, dir);
	if (rc)
		return rc;
	im.k = im.m.classes;
	im.runs = calloc((size_t)im.m.n_runs + 1, sizeof *im.runs);
	if (!im.runs) {
		rc = bv_error_set(BV_ENOMEM, "out of memory reading '%s'", im.m.path);
		goto done;
	}
	if (im.m.has_teacher)
		im.runs[im.n_runs++].mf = &im.m.teacher;
	for (int i = 0; i < im.m.n_runs; i++)
		im.runs[im.n_runs++].mf = &im.m.runs[i];
	for (int i = 0; i < im.n_runs; i++)
		run_label(&im.runs[i]);
	/* the database is opened only once every file has been checked, so that a
	 * bad layout leaves it as it was (and creates none) */
	if ((rc = check_arrays(&im)) != 0 || (rc = bv_check_output_dir(db_path)) != 0 ||
	    (rc = bv_check_output(db_path)) != 0)
		goto done;
	/* a new database is filled under a temporary name in bulk mode (a
	 * rollback journal: every byte written once) and linked into place when
	 * complete; an existing one is added to in WAL mode, run by run */
	struct stat st;
	fresh = lstat(db_path, &st) != 0 && errno == ENOENT;
	if (fresh && (size_t)snprintf(tmp, sizeof tmp, "%s.import-%ld", db_path, (long)getpid()) >=
			     sizeof tmp) {
		rc = bv_error_set(BV_EINVAL, "path too long: '%s'", db_path);
		goto done;
	}
	if (fresh)
		remove_db_files(tmp);
	if ((rc = bv_db_open(&im.db, fresh ? tmp : db_path, BV_DB_CREATE)) != 0 ||
	    (fresh && (rc = bv_db_bulk(im.db, 1)) != 0) || (rc = imp_check_collection(&im)) != 0 ||
	    (rc = imp_check_runs(&im)) != 0)
		goto done;
	for (int i = 0; i < im.n_runs; i++) {
		const imp_run *r = &im.runs[i];
		if (r->action == BV_IMPORT_REPLACED && !(o && o->replace)) {
			rc = bv_error_set(BV_EMISMATCH,
					  "database '%s' holds %s with other content than '%s' %s (use "
					  "--replace to rewrite it, or another --db)",
					  bv_db_path(im.db), r->label, im.m.path, r->mf->where);
			goto done;
		}
		if (r->inbag_differs && !(o && o->replace)) {
			rc = bv_error_set(BV_EMISMATCH,
					  "database '%s' holds other in-bag counts for seed %d than '%s' "
					  "%s.inbag (use --replace to rewrite them, or another --db)",
					  bv_db_path(im.db), r->mf->seed, im.m.path, r->mf->where);
			goto done;
		}
	}
	if ((rc = imp_write_all(&im, o)) != 0 || !fresh)
		goto done;
	rc = bv_db_bulk(im.db, 0);
	bv_db_close(im.db);
	im.db = NULL;
	if (rc == 0)
		rc = publish(tmp, db_path);
done:
	if (out)
		*out = im.sum;
	imp_free(&im);
	if (fresh)
		remove_db_files(tmp); /* a failure's, or the name linked into place */
	return rc;
}
