/*
 * bvtool import's database side (import_int.h): what the database already
 * holds, compared with the manifest before anything is written (the same
 * collection: imp_check_collection; each run already there unchanged, refused
 * or replaced: imp_check_runs), then the writing (imp_write_all): the
 * configuration and samples in one transaction, then each run in its own,
 * through db/'s writers.
 */
#include "import_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/* ---- what the database holds ---------------------------------------------------- */

#define CFG_SOURCE "source"
#define CFG_IMPORT "import"

int imp_check_collection(imp *im)
{
	bv_db *db = im->db;
	char source[64], data[1600] = "", classes[32];
	int rc = bv_db_config_get(db, CFG_SOURCE, source, sizeof source);
	if (rc < 0)
		return rc;
	bv_run *runs = NULL;
	int n_runs = 0;
	if (rc == 0) {
		/* a database import did not make: only an empty one will do */
		if ((rc = bv_db_runs_list(db, &runs, &n_runs)) != 0)
			return rc;
		free(runs);
		if (n_runs || bv_db_config_get(db, "data", data, sizeof data) > 0)
			return bv_error_set(BV_EMISMATCH,
					    "database '%s' holds a collection of bvtool collect; import "
					    "into another --db",
					    bv_db_path(db));
		return 0;
	}
	if (strcmp(source, CFG_IMPORT) != 0)
		return bv_error_set(BV_EMISMATCH, "database '%s' holds runs from '%.32s', not an import",
				    bv_db_path(db), source);
	snprintf(classes, sizeof classes, "%d", im->k);
	char have_classes[32] = "";
	if ((rc = bv_db_config_get(db, "data", data, sizeof data)) < 0 ||
	    (rc = bv_db_config_get(db, "n_classes", have_classes, sizeof have_classes)) < 0)
		return rc;
	if (strcmp(data, im->m.dataset) != 0 || strcmp(have_classes, classes) != 0) {
		char safe[80];
		bv_db_safe_text(safe, sizeof safe, (const unsigned char *)data);
		return bv_error_set(BV_EMISMATCH,
				    "database '%s' holds an import of dataset '%s' with %s classes, not "
				    "'%.64s' with %d (use another --db)",
				    bv_db_path(db), safe, have_classes, im->m.dataset, im->k);
	}
	/* the same samples: labels the database already has must be these */
	for (int s = 0; s < BV_N_SPLITS; s++) {
		int have = 0;
		if ((rc = bv_db_samples_get(db, imp_split_name(s), NULL, 0, &have)) != 0)
			return rc;
		if (!have || !im->n[s])
			continue;
		int *lab = malloc(sizeof(int) * (size_t)have);
		if (!lab)
			return bv_error_set(BV_ENOMEM, "out of memory reading the labels");
		if ((rc = bv_db_samples_get(db, imp_split_name(s), lab, have, &have)) == 0) {
			if (have != im->n[s])
				rc = bv_error_set(BV_EMISMATCH,
						  "database '%s' holds %d %s samples, the manifest %d",
						  bv_db_path(db), have, imp_split_name(s),
						  im->n[s]);
			for (int i = 0; rc == 0 && i < have; i++)
				if (lab[i] != im->labels[s][i])
					rc = bv_error_set(BV_EMISMATCH,
							  "database '%s': %s sample %d has label %d, "
							  "the manifest's '%s' %d",
							  bv_db_path(db), imp_split_name(s), i,
							  lab[i], im->m.labels[s], im->labels[s][i]);
		}
		free(lab);
		if (rc)
			return rc;
	}
	return 0;
}

static int same_double(double a, double b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

static int same_metrics(const bv_db_metrics *a, const bv_db_metrics *b)
{
	return a->epoch == b->epoch && same_double(a->lr, b->lr) &&
	       same_double(a->train_loss, b->train_loss) && same_double(a->train_acc, b->train_acc) &&
	       same_double(a->test_acc, b->test_acc) && same_double(a->wsl_weight, b->wsl_weight) &&
	       same_double(a->filtered, b->filtered) && same_double(a->seconds, b->seconds);
}

/* 1 when the stored run `id` holds exactly what r would write, 0 when not. */
static int same_run(imp *im, imp_run *r, int64_t id)
{
	bv_db *db = im->db;
	const bv_mf_run *f = r->mf;
	bv_run have;
	int rc;
	if ((rc = bv_db_run_get(db, &have, id)) != 0)
		return rc;
	const int planned = f->planned_epochs;
	if (have.status != BV_RUN_DONE || !same_double(have.alpha, f->alpha) ||
	    !same_double(have.gamma, f->gamma) || strcmp(have.model, f->model ? f->model : "") != 0 ||
	    have.epochs != planned || !same_double(have.test_acc, r->final_acc) ||
	    !same_double(have.seconds, f->seconds))
		return 0;
	bv_db_metrics *met = NULL;
	int n_met = 0, same = 1;
	if ((rc = bv_db_metrics_get(db, id, &met, &n_met)) != 0)
		return rc;
	same = n_met == r->n_rows;
	for (int i = 0; same && i < n_met; i++)
		same = same_metrics(&met[i], &r->rows[i]);
	free(met);
	if (!same)
		return 0;
	if (f->inbag) {
		int *have_bag = malloc(sizeof(int) * (size_t)im->n[BV_SPLIT_TRAIN]);
		if (!have_bag)
			return bv_error_set(BV_ENOMEM, "out of memory reading in-bag counts");
		rc = bv_db_inbag_get(db, f->seed, have_bag, im->n[BV_SPLIT_TRAIN]);
		same = rc == 0 && memcmp(have_bag, r->inbag,
					 sizeof(int) * (size_t)im->n[BV_SPLIT_TRAIN]) == 0;
		free(have_bag);
		if (rc && rc != BV_ESTATE && rc != BV_EMISMATCH && rc != BV_EFORMAT)
			return rc;
		bv_error_clear();
		if (!same)
			return 0;
	}
	/* the snapshots: the same epochs of each split, the same bytes */
	for (int s = 0; same && s < BV_N_SPLITS; s++) {
		int *ep = NULL, n_ep = 0;
		if ((rc = bv_db_epochs(db, id, imp_split_name(s), &ep, &n_ep)) != 0)
			return rc;
		const int want = f->logits[s].n_paths ? f->n_epochs : 0;
		same = n_ep == want;
		for (int e = 0; same && e < n_ep; e++)
			same = ep[e] == f->epochs[e];
		free(ep);
		if (!same || !want)
			continue;
		src sr;
		const int N = im->n[s], K = im->k;
		rc = imp_src_open(&sr, im, r, s);
		for (int e = 0; rc == 0 && same && e < f->n_epochs; e++) {
			/* a stored snapshot of another size (BV_EFORMAT) is a change */
			rc = bv_db_logits_get(db, id, f->epochs[e], imp_split_name(s), im->buf[1],
					      N, K);
			if (rc == BV_EFORMAT) {
				bv_error_clear();
				rc = 0;
				same = 0;
				break;
			}
			if (rc == 0 && (rc = imp_src_next(&sr, im->buf[0])) == 0)
				same = memcmp(im->buf[0], im->buf[1], sizeof(float) * (size_t)N * K) == 0;
			im->sum.bytes_read += (int64_t)N * K * 4;
		}
		imp_src_close(&sr);
		if (rc)
			return rc;
	}
	return same;
}

/* 1 when the database holds in-bag counts for r's seed other than r's. */
static int inbag_differs(imp *im, const imp_run *r)
{
	if (!r->inbag)
		return 0;
	const int n = im->n[BV_SPLIT_TRAIN];
	int *have = malloc(sizeof(int) * (size_t)n);
	if (!have)
		return bv_error_set(BV_ENOMEM, "out of memory reading in-bag counts");
	int rc = bv_db_inbag_get(im->db, r->mf->seed, have, n);
	if (rc == 0)
		rc = memcmp(have, r->inbag, sizeof(int) * (size_t)n) != 0;
	else if (rc == BV_ESTATE || rc == BV_EFORMAT || rc == BV_EMISMATCH)
		rc = rc != BV_ESTATE; /* none stored: no conflict; another count: differs */
	free(have);
	if (rc >= 0)
		bv_error_clear();
	return rc;
}

int imp_check_runs(imp *im)
{
	for (int i = 0; i < im->n_runs; i++) {
		imp_run *r = &im->runs[i];
		const bv_mf_run *f = r->mf;
		int rc = bv_db_run_find(im->db, &r->existing, f->method, f->temperature, f->seed,
					f->init);
		if (rc < 0)
			return rc;
		r->action = BV_IMPORT_ADDED;
		if (!r->existing) {
			if ((rc = inbag_differs(im, r)) < 0)
				return rc;
			r->inbag_differs = rc;
			continue;
		}
		if ((rc = same_run(im, r, r->existing)) < 0)
			return rc;
		if (rc == 1)
			r->action = BV_IMPORT_UNCHANGED;
		else
			r->action = BV_IMPORT_REPLACED;
	}
	return 0;
}

/* ---- writing -------------------------------------------------------------------- */

/* A config row, written only when it differs: an import that changes nothing
 * writes nothing. */
static int config_put(bv_db *db, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int rc = bv_db_prepare(db, &st, "SELECT value = ?2 FROM config WHERE key = ?1");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	const int same = rc == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return bv_db_error(db);
	return same ? 0 : bv_db_config_set(db, key, value);
}

/* 1 when config has the key, 0 when not, < 0 on error. */
static int config_has(bv_db *db, const char *key)
{
	sqlite3_stmt *st;
	int rc = bv_db_prepare(db, &st, "SELECT 1 FROM config WHERE key = ?1");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : bv_db_error(db);
}

static int put_config(imp *im)
{
	bv_db *db = im->db;
	char text[32];
	int rc;
	snprintf(text, sizeof text, "%d", im->k);
	if ((rc = config_put(db, CFG_SOURCE, CFG_IMPORT)) != 0 ||
	    (rc = config_put(db, "data", im->m.dataset)) != 0 ||
	    (rc = config_put(db, "n_classes", text)) != 0 ||
	    (im->m.extras && (rc = config_put(db, "import.extras", im->m.extras)) != 0))
		return rc;
	if (im->m.has_teacher && im->m.teacher.model &&
	    (rc = config_put(db, "teacher", im->m.teacher.model)) != 0)
		return rc;
	/* the students' model, when the runs of the first import share one (report shows it) */
	const char *student = NULL;
	for (int i = 0; i < im->m.n_runs; i++) {
		const char *mo = im->m.runs[i].model;
		if (!mo || (student && strcmp(student, mo) != 0)) {
			student = NULL;
			break;
		}
		student = mo;
	}
	if (student && (rc = config_has(db, "student")) <= 0 &&
	    (rc < 0 || (rc = bv_db_config_set(db, "student", student)) != 0))
		return rc;
	/* and their planned epochs, when they share them */
	int epochs = im->m.n_runs ? im->m.runs[0].planned_epochs : 0;
	for (int i = 1; i < im->m.n_runs; i++)
		if (im->m.runs[i].planned_epochs != epochs)
			epochs = 0;
	char text_epochs[32];
	snprintf(text_epochs, sizeof text_epochs, "%d", epochs);
	if (epochs > 0 && (rc = config_has(db, "epochs")) <= 0 &&
	    (rc < 0 || (rc = bv_db_config_set(db, "epochs", text_epochs)) != 0))
		return rc;
	/* labels: stored once (imp_check_collection compared those already there) */
	for (int s = 0; s < BV_N_SPLITS; s++) {
		int n = 0;
		if (im->n[s] &&
		    ((rc = bv_db_samples_get(db, imp_split_name(s), NULL, 0, &n)) != 0 ||
		     (n == 0 && (rc = bv_db_samples_put(db, imp_split_name(s), im->labels[s],
							im->n[s])) != 0)))
			return rc;
	}
	return 0;
}

static int write_run(imp *im, imp_run *r)
{
	bv_db *db = im->db;
	const bv_mf_run *f = r->mf;
	src sr[BV_N_SPLITS] = {0};
	int64_t id = 0;
	int created = 0, rc;
	char key[96];
	if ((rc = bv_db_begin(db)) != 0)
		return rc;
	if (r->existing && (rc = bv_db_run_delete(db, r->existing)) != 0)
		goto fail;
	if ((rc = bv_db_run_ensure(db, &id, &created, f->method, f->temperature, f->seed, f->init, f->alpha,
				   f->gamma, f->model, f->planned_epochs)) != 0)
		goto fail;
	if (!created) {
		rc = bv_error_set(BV_ESTATE, "database '%s': %s appeared while importing (another "
					     "import?); run the import again",
				  bv_db_path(db), r->label);
		goto fail;
	}
	for (int s = 0; s < BV_N_SPLITS; s++)
		if (f->logits[s].n_paths && (rc = imp_src_open(&sr[s], im, r, s)) != 0)
			goto fail;
	for (int i = 0; i < r->n_rows; i++) {
		const float *z[BV_N_SPLITS] = {NULL, NULL};
		if (r->rec[i] >= 0)
			for (int s = 0; s < BV_N_SPLITS; s++) {
				if (!f->logits[s].n_paths)
					continue;
				if ((rc = imp_src_next(&sr[s], im->buf[s])) != 0)
					goto fail;
				z[s] = im->buf[s];
				im->sum.bytes += (int64_t)im->n[s] * im->k * 4;
				im->sum.bytes_read += (int64_t)im->n[s] * im->k * 4;
			}
		if ((rc = bv_db_snapshot_put(db, id, &r->rows[i], z[0], im->n[0], z[1], im->n[1],
					     im->k)) != 0)
			goto fail;
	}
	if (r->inbag && (rc = bv_db_inbag_put(db, f->seed, r->inbag, im->n[BV_SPLIT_TRAIN])) != 0)
		goto fail;
	snprintf(key, sizeof key, "import.run.%s", r->key);
	if (f->extras && (rc = bv_db_config_set(db, key, f->extras)) != 0)
		goto fail;
	if ((rc = bv_db_run_finish(db, id, r->final_acc, NULL, f->seconds)) != 0 ||
	    (rc = bv_db_commit(db)) != 0)
		goto fail;
	for (int s = 0; s < BV_N_SPLITS; s++)
		imp_src_close(&sr[s]);
	return 0;
fail:
	for (int s = 0; s < BV_N_SPLITS; s++)
		imp_src_close(&sr[s]);
	bv_db_rollback(db);
	return rc;
}

static void report(imp *im, const bv_import_opts *o, const imp_run *r)
{
	if (!o || !o->on_run)
		return;
	bv_import_event ev = {r->label, r->action, r->mf->n_epochs, r->final_acc};
	o->on_run(o->ctx, &ev);
}

int imp_write_all(imp *im, const bv_import_opts *o)
{
	int rc;
	if ((rc = bv_db_begin(im->db)) != 0)
		return rc;
	if ((rc = put_config(im)) != 0 || (rc = bv_db_commit(im->db)) != 0) {
		bv_db_rollback(im->db);
		return rc;
	}
	for (int i = 0; i < im->n_runs; i++) {
		imp_run *r = &im->runs[i];
		if (r->action != BV_IMPORT_UNCHANGED && (rc = write_run(im, r)) != 0)
			return bv_error_prefix(rc, "%s", r->label);
		if (r->action == BV_IMPORT_ADDED)
			im->sum.added++;
		else if (r->action == BV_IMPORT_REPLACED)
			im->sum.replaced++;
		else
			im->sum.unchanged++;
		report(im, o, r);
	}
	return 0;
}
