/*
 * The collect engine (train/collect.h) without the CLI: a tiny plan on a
 * Fashion-MNIST subset run through the local runner (forked workers) and
 * through an in-process runner written here, which proves that the runner
 * interface takes another implementation. Both must give the same snapshots
 * byte for byte and keep the event contract (a START, epochs, exactly one end
 * per cell; a slot holds one cell at a time). Then: a second plan finds every
 * cell done, a changed setting is refused, a stop before the run is
 * BV_EINTR, and a diverging cell is reported, marked failed and retried.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "collect.h"

#define MAX_SLOTS 4

/* What the events said, checked against the contract as they come. */
typedef struct tally {
	int n[BV_EV_IDLE + 1];
	int busy[MAX_SLOTS];
	int bad;           /* events that broke the contract */
	int first_code;    /* of the first BV_EV_CELL_FAILED */
} tally;

static void on_event(void *ctx, const bv_collect_event *ev)
{
	tally *t = ctx;
	t->n[ev->kind]++;
	switch (ev->kind) {
	case BV_EV_CELL_START:
		if (ev->slot < 0 || ev->slot >= MAX_SLOTS || t->busy[ev->slot] || !ev->cell)
			t->bad++;
		else
			t->busy[ev->slot] = 1;
		break;
	case BV_EV_CELL_EPOCH:
		if (ev->slot < 0 || ev->slot >= MAX_SLOTS || !t->busy[ev->slot] || ev->epoch < 1 ||
		    ev->epoch > ev->n_epochs)
			t->bad++;
		break;
	case BV_EV_CELL_DONE:
	case BV_EV_CELL_FAILED:
	case BV_EV_CELL_STOPPED:
		if (ev->slot < 0 || ev->slot >= MAX_SLOTS || !t->busy[ev->slot])
			t->bad++;
		else
			t->busy[ev->slot] = 0;
		if (ev->kind == BV_EV_CELL_FAILED && !t->first_code)
			t->first_code = ev->code;
		break;
	default:
		break;
	}
}

static int busy_slots(const tally *t)
{
	int n = 0;
	for (int i = 0; i < MAX_SLOTS; i++)
		n += t->busy[i];
	return n;
}

/* ---- a runner of our own: every cell in this process, one after the other ---- */

typedef struct inproc_runner {
	bv_runner base;
	int attached, planned, detached;
} inproc_runner;

typedef struct inproc_ctx {
	bv_collect_event_fn on_event;
	void *ctx;
} inproc_ctx;

static void inproc_progress(void *vctx, const bv_cell *cell, const bv_epoch_stats *st)
{
	const inproc_ctx *c = vctx;
	bv_collect_event ev = {.kind = BV_EV_CELL_EPOCH, .slot = 0, .cell = cell,
			       .epoch = st->epoch, .n_epochs = st->n_epochs,
			       .test_acc = st->test_acc, .seconds = st->seconds};
	c->on_event(c->ctx, &ev);
}

static int inproc_attach(bv_runner *r, const char *db_path)
{
	((inproc_runner *)r)->attached++;
	return 0;
}

static void inproc_planned(bv_runner *r, const bv_plan *plan)
{
	((inproc_runner *)r)->planned++;
}

static void inproc_detach(bv_runner *r)
{
	((inproc_runner *)r)->detached++;
}

/* The plan's own connection serves: nothing forks. */
static int inproc_run(bv_runner *r, bv_plan *plan, const bv_cell *cells, int n,
		      bv_collect_event_fn fn, void *ctx)
{
	inproc_ctx c = {fn, ctx};
	for (int i = 0; i < n; i++) {
		if (plan->cfg.stop && *plan->cfg.stop)
			return BV_EINTR;
		bv_collect_event ev = {.kind = BV_EV_CELL_START, .slot = 0, .cell = &cells[i],
				       .n_epochs = plan->cfg.epochs};
		fn(ctx, &ev);
		int rc = bv_plan_cell_run(plan, plan->db, &cells[i], inproc_progress, &c);
		ev.kind = rc == 0 ? BV_EV_CELL_DONE : BV_EV_CELL_FAILED;
		ev.code = rc;
		ev.message = bv_error_last();
		fn(ctx, &ev);
	}
	bv_collect_event idle = {.kind = BV_EV_IDLE, .slot = -1};
	fn(ctx, &idle);
	return 0;
}

static const bv_runner inproc_base = {"in-process", 1, inproc_attach, inproc_planned, inproc_run,
				      inproc_detach, NULL};

/* ---- the plan ----------------------------------------------------------- */

static void tiny_cfg(bv_collect_cfg *c, const char *db_path)
{
	*c = (bv_collect_cfg){
		.db_path = db_path, .data_spec = "fashion-mnist", .subset = 300,
		.teacher_spec = "mlp:8", .student_spec = "mlp:4", .teacher_epochs = 1,
		.teacher_seed = 1, .teacher_lr = 0.05, .seeds = 2, .epochs = 2, .batch = 64,
		.lr = 0.01, .momentum = 0.9, .wd = 5e-4, .alpha = 2.25, .gamma = 1, .threads = 1,
	};
	bv_grid_parse_methods(&c->grid, "ce,kd");
	bv_grid_parse_temps(&c->grid, "2");
	bv_schedule_parse(&c->schedule, "cosine", "--schedule");
	bv_record_parse(&c->rec, "all", c->epochs, "--record-epochs");
}

/* Plan, teacher and run of cfg through runner; the events into t. */
static int collect(const bv_collect_cfg *cfg, bv_runner *runner, tally *t, int *out_cells)
{
	bv_plan plan;
	int rc;
	memset(t, 0, sizeof *t);
	if ((rc = bv_plan_init(&plan, cfg, runner)) == 0 &&
	    (rc = bv_plan_teacher(&plan, on_event, t)) == 0 && plan.n_cells > 0)
		rc = bv_plan_run(&plan, on_event, t);
	if (out_cells)
		*out_cells = plan.n_cells;
	bv_plan_release(&plan);
	return rc;
}

/* Every test snapshot of a and b, by run (both list runs in the same order). */
static void check_same_snapshots(const char *a_path, const char *b_path)
{
	bv_db *a = NULL, *b = NULL;
	bv_run *ra = NULL, *rb = NULL;
	int na = 0, nb = 0, compared = 0, differ = 0;
	const size_t size = 10000 * 10;
	float *la = malloc(sizeof(float) * size), *lb = malloc(sizeof(float) * size);
	CHECK(bv_db_open(&a, a_path, BV_DB_READONLY) == 0 &&
		      bv_db_open(&b, b_path, BV_DB_READONLY) == 0,
	      "open the two databases: %s", bv_error_last());
	if (!a || !b || !la || !lb)
		goto done;
	CHECK(bv_db_runs_list(a, &ra, &na) == 0 && bv_db_runs_list(b, &rb, &nb) == 0 && na == nb &&
		      na == 5,
	      "both hold the teacher and 4 cells (%d, %d runs)", na, nb);
	for (int i = 0; i < na && i < nb; i++) {
		CHECK(ra[i].method == rb[i].method && ra[i].seed == rb[i].seed &&
			      ra[i].status == BV_RUN_DONE && rb[i].status == BV_RUN_DONE,
		      "run %d: %s seed %d %s vs %s seed %d %s", i, bv_db_method_name(ra[i].method),
		      ra[i].seed, bv_db_status_name(ra[i].status), bv_db_method_name(rb[i].method),
		      rb[i].seed, bv_db_status_name(rb[i].status));
		const int last = ra[i].method == BV_RUN_TEACHER ? 1 : 2;
		for (int e = 1; e <= last; e++) {
			if (bv_db_logits_get(a, ra[i].id, e, "test", la, 10000, 10) != 0 ||
			    bv_db_logits_get(b, rb[i].id, e, "test", lb, 10000, 10) != 0) {
				differ++;
				continue;
			}
			compared++;
			differ += memcmp(la, lb, sizeof(float) * size) != 0;
		}
	}
	CHECK(compared == 9 && differ == 0,
	      "local and in-process runners: %d of %d snapshots differ", differ, compared);
done:
	free(ra);
	free(rb);
	free(la);
	free(lb);
	bv_db_close(a);
	bv_db_close(b);
}

int main(void)
{
	char root[1024], local_db[1200], inproc_db[1200], stop_db[1200], div_db[1200];
	bv_collect_cfg cfg;
	bv_runner *local = NULL;
	inproc_runner inproc = {inproc_base, 0, 0, 0};
	tally t;
	int rc, n_cells = -1;
	if (bv_check_tmpdir(root, sizeof root, "test_engine") != 0)
		return 1;
	snprintf(local_db, sizeof local_db, "%s/local.db", root);
	snprintf(inproc_db, sizeof inproc_db, "%s/inproc.db", root);
	snprintf(stop_db, sizeof stop_db, "%s/stop.db", root);
	snprintf(div_db, sizeof div_db, "%s/div.db", root);

	/* the local runner: two forked workers */
	CHECK(bv_runner_local_new(&local, 2, 50) == 0 && local->n_slots == 2, "a local runner");
	if (!local)
		return bv_check_done();
	tiny_cfg(&cfg, local_db);
	rc = collect(&cfg, local, &t, NULL);
	CHECK(rc == 0, "local runner: rc %d (%s)", rc, bv_error_last());
	CHECK(t.n[BV_EV_TEACHER_TRAINING] == 1 && t.n[BV_EV_TEACHER_EPOCH] == 1 &&
		      t.n[BV_EV_TEACHER_READY] == 1,
	      "local: the teacher's events (%d training, %d epochs, %d ready)",
	      t.n[BV_EV_TEACHER_TRAINING], t.n[BV_EV_TEACHER_EPOCH], t.n[BV_EV_TEACHER_READY]);
	CHECK(t.n[BV_EV_CELL_START] == 4 && t.n[BV_EV_CELL_EPOCH] == 8 &&
		      t.n[BV_EV_CELL_DONE] == 4 && t.n[BV_EV_CELL_FAILED] == 0 &&
		      t.n[BV_EV_CELL_STOPPED] == 0,
	      "local: 4 starts, 8 epochs, 4 done (%d, %d, %d; %d failed, %d stopped)",
	      t.n[BV_EV_CELL_START], t.n[BV_EV_CELL_EPOCH], t.n[BV_EV_CELL_DONE],
	      t.n[BV_EV_CELL_FAILED], t.n[BV_EV_CELL_STOPPED]);
	CHECK(t.bad == 0 && busy_slots(&t) == 0 && t.n[BV_EV_IDLE] >= 1,
	      "local: the event contract (%d bad, %d slots busy, %d idle)", t.bad, busy_slots(&t),
	      t.n[BV_EV_IDLE]);

	/* the in-process runner: the same cells, the same bytes */
	tiny_cfg(&cfg, inproc_db);
	rc = collect(&cfg, &inproc.base, &t, NULL);
	CHECK(rc == 0, "in-process runner: rc %d (%s)", rc, bv_error_last());
	CHECK(t.n[BV_EV_CELL_START] == 4 && t.n[BV_EV_CELL_EPOCH] == 8 &&
		      t.n[BV_EV_CELL_DONE] == 4 && t.bad == 0,
	      "in-process: 4 starts, 8 epochs, 4 done (%d, %d, %d; %d bad)", t.n[BV_EV_CELL_START],
	      t.n[BV_EV_CELL_EPOCH], t.n[BV_EV_CELL_DONE], t.bad);
	CHECK(inproc.attached == 1 && inproc.planned == 1 && inproc.detached == 1,
	      "the hooks: attach %d, planned %d, detach %d", inproc.attached, inproc.planned,
	      inproc.detached);
	check_same_snapshots(local_db, inproc_db);

	/* again: every cell is done, the teacher is read back */
	rc = collect(&cfg, &inproc.base, &t, &n_cells);
	CHECK(rc == 0 && n_cells == 0 && t.n[BV_EV_TEACHER_READY] == 1 &&
		      t.n[BV_EV_TEACHER_TRAINING] == 0,
	      "a second plan: rc %d, %d cells to run, teacher read back (%d ready, %d trained)", rc,
	      n_cells, t.n[BV_EV_TEACHER_READY], t.n[BV_EV_TEACHER_TRAINING]);

	/* a changed setting is refused */
	cfg.epochs = 3;
	rc = collect(&cfg, &inproc.base, &t, NULL);
	CHECK(rc == BV_EMISMATCH && strstr(bv_error_last(), "was collected with --epochs 2, not 3"),
	      "another --epochs: rc %d (%s)", rc, bv_error_last());

	/* stopped before the run: nothing starts, BV_EINTR */
	static volatile sig_atomic_t stop;
	tiny_cfg(&cfg, stop_db);
	cfg.stop = &stop;
	bv_plan plan;
	rc = bv_plan_init(&plan, &cfg, local);
	if (rc == 0)
		rc = bv_plan_teacher(&plan, on_event, &t);
	if (rc == 0) {
		memset(&t, 0, sizeof t);
		stop = 1;
		rc = bv_plan_run(&plan, on_event, &t);
	}
	bv_plan_release(&plan);
	CHECK(rc == BV_EINTR &&
		      strcmp(bv_error_last(), "interrupted: 0 of 4 cells done; "
					      "run the same command again to resume") == 0 &&
		      t.n[BV_EV_CELL_START] == 0,
	      "a stop: rc %d (%s), %d started", rc, bv_error_last(), t.n[BV_EV_CELL_START]);

	/* a diverging cell: failed, named, marked, and tried again by the next plan */
	tiny_cfg(&cfg, div_db);
	bv_grid_parse_methods(&cfg.grid, "ce");
	cfg.seeds = 1;
	cfg.lr = 1e4;
	cfg.momentum = 0.99;
	rc = collect(&cfg, local, &t, NULL);
	CHECK(rc == BV_EDIVERGED && t.first_code == BV_EDIVERGED && t.n[BV_EV_CELL_FAILED] == 1 &&
		      strstr(bv_error_last(), "ce seed 1: training diverged at epoch ") &&
		      strstr(bv_error_last(), "; the other cells are recorded in '"),
	      "a diverging cell: rc %d (%s)", rc, bv_error_last());
	bv_plan plan2;
	rc = bv_plan_init(&plan2, &cfg, NULL);
	CHECK(rc == 0 && plan2.n_cells == 1 && plan2.n_failed == 1,
	      "the failed cell is run again: rc %d, %d cells, %d failed", rc, plan2.n_cells,
	      plan2.n_failed);
	bv_plan_release(&plan2);

	bv_runner_free(local);
	bv_runner_free(NULL);
	char cmd[1100];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (system(cmd) != 0)
		printf("note: could not remove %s\n", root);
	return bv_check_done();
}
