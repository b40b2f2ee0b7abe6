/*
 * The teacher step of a collection: the one teacher every student of a
 * database is distilled from. Done already: its stored training-split logits
 * are read back (the students of this database were distilled from exactly
 * these bytes). Otherwise it comes from --teacher-ckpt or is trained here, is
 * saved as "<db>.ckpt/teacher.ckpt", and its logits on both splits are
 * recorded as the snapshot of its last epoch. It reports through events.
 */
#include "collect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct teacher_ctx {
	const bv_plan *plan;
	bv_collect_event_fn on_event;
	void *ctx;
} teacher_ctx;

static void emit(teacher_ctx *t, const bv_collect_event *ev)
{
	if (t->on_event)
		t->on_event(t->ctx, ev);
}

static int stopped(const bv_plan *plan)
{
	return plan->cfg.stop && *plan->cfg.stop;
}

/* After every epoch of the teacher's training: an event, and a stop when asked. */
static int teacher_epoch(void *vctx, const bv_epoch_stats *st, bv_model *m)
{
	teacher_ctx *t = vctx;
	bv_collect_event ev = {.kind = BV_EV_TEACHER_EPOCH, .slot = -1, .stats = st};
	emit(t, &ev);
	return stopped(t->plan) ? bv_error_set(BV_EINTR, "interrupted") : 0;
}

/* Train the teacher: the teacher's own seed, lr and epochs, the students' batch
 * and augmentation; its threads are cfg.threads, never jobs * threads, so that
 * it depends on neither --jobs nor the grid. */
static int train_teacher(bv_model **out, double *out_seconds, teacher_ctx *t, int64_t id)
{
	const bv_collect_cfg *o = &t->plan->cfg;
	const bv_data *d = &t->plan->data;
	bv_model *m = NULL;
	bv_train_cfg cfg;
	int rc;
	bv_train_cfg_default(&cfg);
	cfg.lr = (float)o->teacher_lr;
	cfg.epochs = o->teacher_epochs;
	cfg.batch = o->batch;
	cfg.seed = (unsigned long)o->teacher_seed;
	cfg.threads = o->threads;
	cfg.augment = o->augment;
	if ((rc = bv_model_new(&m, o->teacher_spec, d->shape, d->n_classes)) != 0)
		return bv_error_prefix(rc, "--teacher");
	bv_model_init(m, (unsigned long)o->teacher_seed);
	if ((rc = bv_db_run_set_status(t->plan->db, id, BV_RUN_RUNNING)) != 0)
		goto done;
	bv_collect_event ev = {.kind = BV_EV_TEACHER_TRAINING, .slot = -1, .spec = m->spec,
			       .n_epochs = o->teacher_epochs};
	emit(t, &ev);
	const double t0 = bv_now();
	if ((rc = bv_train_run(m, &cfg, d, NULL, 0, NULL, teacher_epoch, t)) != 0)
		goto done;
	*out_seconds = bv_now() - t0;
done:
	if (rc)
		bv_model_free(m);
	else
		*out = m;
	return rc;
}

int bv_plan_teacher(bv_plan *plan, bv_collect_event_fn on_event, void *ctx)
{
	const bv_collect_cfg *o = &plan->cfg;
	const bv_data *d = &plan->data;
	const size_t n_logits = (size_t)d->train.n * (size_t)d->n_classes;
	teacher_ctx t = {plan, on_event, ctx};
	bv_model *m = NULL;
	int64_t id;
	bv_run run;
	char rel[1024], abs[2048];
	float *logits = NULL;
	int rc;
	if ((rc = bv_db_run_ensure(plan->db, &id, NULL, BV_RUN_TEACHER, NAN, 0, 1, NAN, NAN,
				   o->teacher_spec, o->teacher_epochs)) != 0 ||
	    (rc = bv_db_run_get(plan->db, &run, id)) != 0)
		return rc;
	snprintf(rel, sizeof rel, "%s.ckpt/teacher.ckpt", plan->db_base);
	snprintf(abs, sizeof abs, "%s/%s", plan->db_dir, rel);
	if (run.status == BV_RUN_DONE) {
		/* the students of this database were distilled from exactly these bytes */
		if (!(logits = malloc(sizeof(float) * n_logits)))
			return bv_error_set(BV_ENOMEM, "out of memory for teacher logits");
		if ((rc = bv_db_logits_get(plan->db, id, o->teacher_epochs, "train", logits,
					   d->train.n, d->n_classes)) != 0)
			goto done;
		bv_collect_event ev = {.kind = BV_EV_TEACHER_READY, .slot = -1, .spec = run.model,
				       .test_acc = run.test_acc};
		emit(&t, &ev);
		plan->teacher_logits = logits;
		return 0;
	} else if (o->teacher_ckpt) {
		if ((rc = bv_ckpt_load(&m, o->teacher_ckpt, &d->shape, d->n_classes)) != 0)
			return rc;
		if (strcmp(m->spec, o->teacher_spec) != 0) {
			rc = bv_error_set(BV_EMISMATCH, "--teacher-ckpt '%s' holds a %s, not --teacher %s",
					  o->teacher_ckpt, m->spec, o->teacher_spec);
			goto done;
		}
		if ((rc = bv_ckpt_save(m, abs)) != 0)
			goto done;
		bv_collect_event ev = {.kind = BV_EV_TEACHER_LOADED, .slot = -1, .spec = m->spec,
				       .path = o->teacher_ckpt};
		emit(&t, &ev);
	} else {
		if ((rc = train_teacher(&m, &run.seconds, &t, id)) != 0)
			goto done;
		if ((rc = bv_ckpt_save(m, abs)) != 0)
			goto done;
	}
	if (!(logits = malloc(sizeof(float) * n_logits))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for teacher logits");
		goto done;
	}
	if ((rc = bv_model_predict(m, logits, d->train.x, d->train.n, 500)) != 0)
		goto done;
	if ((rc = bv_teacher_record(plan->db, id, m, d, logits, o->teacher_epochs, rel,
				    isnan(run.seconds) ? 0 : run.seconds)) != 0)
		goto done;
	if ((rc = bv_db_run_get(plan->db, &run, id)) != 0)
		goto done;
	bv_collect_event ev = {.kind = BV_EV_TEACHER_READY, .slot = -1, .spec = m->spec,
			       .test_acc = run.test_acc};
	emit(&t, &ev);
	plan->teacher_logits = logits;
	logits = NULL;
done:
	free(logits);
	bv_model_free(m);
	return rc;
}
