/*
 * Running the cells of a plan: the engine's side of the runner contract
 * (collect.h). bv_plan_run hands the cells to the plan's runner, passes its
 * events on, and turns what they said into one result: done, interrupted, or
 * the first failure and how many there were. bv_plan_cell_run is the work of
 * one cell, which a runner calls in whatever process it gives the cell.
 */
#include "collect.h"

#include <stdio.h>
#include <string.h>

void bv_cell_tally_add(bv_cell_tally *t, const bv_collect_event *ev)
{
	if (ev->kind == BV_EV_CELL_DONE) {
		t->done++;
	} else if (ev->kind == BV_EV_CELL_FAILED && !t->failures++) {
		char label[64];
		bv_cell_label(label, sizeof label, ev->cell);
		t->first_code = ev->code;
		snprintf(t->first_msg, sizeof t->first_msg, "%s: %s", label, ev->message);
	}
}

int bv_cell_tally_result(const bv_cell_tally *t, int n_cells, const char *db_path)
{
	if (t->failures == 1)
		return bv_error_set(t->first_code, "%s; the other cells are recorded in '%s'",
				    t->first_msg, db_path);
	if (t->failures)
		return bv_error_set(t->first_code,
				    "%s; %d of %d cells failed (listed above); the others are recorded in '%s'",
				    t->first_msg, t->failures, n_cells, db_path);
	return 0;
}

/* What bv_plan_run learns from the runner's events on their way to the caller. */
typedef struct outcome {
	bv_collect_event_fn on_event;
	void *ctx;
	bv_cell_tally tally;
} outcome;

static void count_event(void *vctx, const bv_collect_event *ev)
{
	outcome *o = vctx;
	bv_cell_tally_add(&o->tally, ev);
	if (o->on_event)
		o->on_event(o->ctx, ev);
}

int bv_plan_run(bv_plan *plan, bv_collect_event_fn on_event, void *ctx)
{
	outcome o = {on_event, ctx, {0}};
	bv_runner *r = plan->runner;
	int rc;
	if (!r || !r->run)
		return bv_error_set(BV_EINVAL, "collect: no runner to run the cells");
	rc = r->run(r, plan, plan->cells, plan->n_cells, count_event, &o);
	if (rc && rc != BV_EINTR)
		return rc;
	if (rc == BV_EINTR || (plan->cfg.stop && *plan->cfg.stop))
		return bv_error_set(BV_EINTR,
				    "interrupted: %d of %d cells done; run the same command again to resume",
				    o.tally.done, plan->n_cells);
	return bv_cell_tally_result(&o.tally, plan->n_cells, plan->cfg.db_path);
}

int bv_plan_cell_run(const bv_plan *plan, bv_db *db, const bv_cell *cell,
		     bv_cell_progress_fn progress, void *ctx)
{
	char rel[1024], abs[2048];
	bv_train_cfg c = plan->student;
	bv_model *teacher = NULL;
	int rc = 0;
	bv_nn_set_threads(plan->cfg.threads);
	bv_plan_ckpt_name(rel, sizeof rel, plan, cell);
	snprintf(abs, sizeof abs, "%s/%s", plan->db_dir, rel);
	if (cell->method != BV_METHOD_CE && (c.augment || c.teacher_bn_train)) {
		/* the teacher must see each augmented batch (or use batch statistics) */
		char tpath[2048];
		const bv_data *d = &plan->data;
		snprintf(tpath, sizeof tpath, "%s/%s.ckpt/teacher.ckpt", plan->db_dir,
			 plan->db_base);
		if ((rc = bv_ckpt_load(&teacher, tpath, &d->shape, d->n_classes)) != 0)
			return rc;
		c.teacher = teacher;
	}
	rc = bv_cell_train(db, &plan->data, plan->cfg.student_spec, &c, &plan->cfg.rec, cell,
			   plan->teacher_logits, abs, rel, progress, ctx);
	if (rc != 0) {
		/* marking the run failed must not replace the message of the failure */
		char saved[1024];
		snprintf(saved, sizeof saved, "%s", bv_error_last());
		bv_db_run_set_status(db, cell->run_id, BV_RUN_FAILED);
		bv_error_set(rc, "%s", saved);
	}
	bv_model_free(teacher);
	return rc;
}
