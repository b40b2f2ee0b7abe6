/*
 * One cell of the collection grid: a student trained on its bootstrap replica
 * with every recorded epoch written to the database, and the teacher's record.
 * Scheduling the cells (processes, progress, resume) is the collect engine's
 * job (collect.h); a cell depends on nothing but its (method, temperature,
 * seed), the data and the teacher's logits, so cells can run in any order, in
 * parallel, or on other machines.
 */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bvmath.h"

int bv_record_parse(bv_record_cfg *out, const char *s, int n_epochs, const char *what)
{
	int train = out->train;
	memset(out, 0, sizeof *out);
	out->train = train;
	if (strcmp(s, "all") == 0) {
		out->all = 1;
		return 0;
	}
	if (strcmp(s, "last") == 0) {
		out->last = 1;
		return 0;
	}
	char buf[1024];
	if (strlen(s) >= sizeof buf || !*s)
		goto bad;
	strcpy(buf, s);
	int prev = 0;
	for (char *tok = buf, *next; tok; tok = next) {
		long e;
		next = strchr(tok, ',');
		if (next)
			*next++ = '\0';
		if (bv_parse_long(&e, tok, 1, n_epochs, what) != 0 || e <= prev ||
		    out->n_list >= (int)BV_ARRAY_LEN(out->list))
			goto bad;
		out->list[out->n_list++] = (int)e;
		prev = (int)e;
	}
	return 0;
bad:
	return bv_error_set(BV_EINVAL,
			    "%s: bad epoch list '%s' (expected all, last, or increasing epochs "
			    "from 1 to %d, e.g. 1,5,%d)",
			    what, s, n_epochs, n_epochs);
}

int bv_record_wants(const bv_record_cfg *r, int epoch, int n_epochs)
{
	if (r->all)
		return 1;
	if (r->last)
		return epoch == n_epochs;
	for (int i = 0; i < r->n_list; i++)
		if (r->list[i] == epoch)
			return 1;
	return 0;
}

void bv_record_format(char *out, size_t size, const bv_record_cfg *r)
{
	if (r->all || r->last) {
		snprintf(out, size, "%s", r->all ? "all" : "last");
		return;
	}
	size_t len = 0;
	out[0] = '\0';
	for (int i = 0; i < r->n_list && len < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%d", i ? "," : "", r->list[i]);
}

typedef struct cell_ctx {
	bv_db *db;
	const bv_data *d;
	const bv_record_cfg *rec;
	const bv_cell *cell;
	float *train_logits; /* (train.n, k) when recording the training split */
	bv_cell_progress_fn progress;
	void *progress_ctx;
	double last_acc;     /* test accuracy of the last epoch */
} cell_ctx;

static int record_epoch(void *vctx, const bv_epoch_stats *st, bv_model *m)
{
	cell_ctx *c = vctx;
	const int want = bv_record_wants(c->rec, st->epoch, st->n_epochs);
	bv_db_metrics met = {st->epoch, st->lr, st->loss, st->train_acc, st->test_acc,
			     st->wsl_weight, st->filtered, st->seconds};
	int rc;
	if (want && c->train_logits &&
	    (rc = bv_model_predict(m, c->train_logits, c->d->train.x, c->d->train.n, 500)) != 0)
		return rc;
	rc = bv_db_snapshot_put(c->db, c->cell->run_id, &met, want ? st->test_logits : NULL,
				c->d->test.n, want ? c->train_logits : NULL, c->d->train.n,
				c->d->n_classes);
	if (rc)
		return rc;
	c->last_acc = st->test_acc;
	if (c->progress)
		c->progress(c->progress_ctx, c->cell, st);
	return 0;
}

int bv_cell_train(bv_db *db, const bv_data *d, const char *spec, const bv_train_cfg *base,
		  const bv_record_cfg *rec, const bv_cell *cell, const float *teacher_logits,
		  const char *ckpt_path, const char *ckpt_rel, bv_cell_progress_fn progress,
		  void *ctx)
{
	const int n = d->train.n;
	int *idx = malloc(sizeof(int) * (size_t)n);
	float *train_logits = NULL;
	bv_model *m = NULL;
	bv_train_cfg cfg = *base;
	int rc;

	if (!idx) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for the bootstrap replica");
		goto done;
	}
	if (rec->train &&
	    !(train_logits = malloc(sizeof(float) * (size_t)n * (size_t)d->n_classes))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for training-split logits");
		goto done;
	}
	bv_bootstrap_draw(idx, NULL, n, (unsigned long)cell->seed);
	if ((rc = bv_model_new(&m, spec, d->shape, d->n_classes)) != 0)
		goto done;
	bv_model_init(m, bv_cell_train_seed(cell));
	cfg.seed = bv_cell_train_seed(cell);
	cfg.loss.method = cell->method;
	if (!isnan(cell->temp))
		cfg.loss.temp = (float)cell->temp;
	if ((rc = bv_db_run_reset(db, cell->run_id)) != 0 ||
	    (rc = bv_db_run_set_status(db, cell->run_id, BV_RUN_RUNNING)) != 0)
		goto done;
	cell_ctx c = {db, d, rec, cell, train_logits, progress, ctx, NAN};
	const double t0 = bv_now();
	rc = bv_train_run(m, &cfg, d, idx, n, cell->method == BV_METHOD_CE ? NULL : teacher_logits,
			  record_epoch, &c);
	if (rc)
		goto done;
	if (ckpt_path && (rc = bv_ckpt_save(m, ckpt_path)) != 0)
		goto done;
	rc = bv_db_run_finish(db, cell->run_id, c.last_acc, ckpt_path ? ckpt_rel : NULL,
			      bv_now() - t0);
done:
	bv_model_free(m);
	free(train_logits);
	free(idx);
	return rc;
}

int bv_teacher_record(bv_db *db, int64_t run_id, bv_model *teacher, const bv_data *d,
		      const float *teacher_logits_train, int epoch, const char *ckpt_rel,
		      double seconds)
{
	const int k = d->n_classes;
	float *test_logits = malloc(sizeof(float) * (size_t)d->test.n * (size_t)k);
	int rc;
	if (!test_logits)
		return bv_error_set(BV_ENOMEM, "out of memory for teacher logits");
	if ((rc = bv_model_predict(teacher, test_logits, d->test.x, d->test.n, 500)) != 0)
		goto done;
	const double acc = bv_math_accuracy(test_logits, d->test.y, d->test.n, k);
	bv_db_metrics met = {epoch, NAN, NAN, bv_math_accuracy(teacher_logits_train, d->train.y, d->train.n, k),
			     acc, NAN, NAN, seconds};
	if ((rc = bv_db_run_reset(db, run_id)) != 0 ||
	    (rc = bv_db_snapshot_put(db, run_id, &met, test_logits, d->test.n, teacher_logits_train,
				     d->train.n, k)) != 0)
		goto done;
	rc = bv_db_run_finish(db, run_id, acc, ckpt_rel, seconds);
done:
	free(test_logits);
	return rc;
}
