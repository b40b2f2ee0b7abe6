/*
 * The training dynamics of every sample (SPEC.md, "Training dynamics";
 * Toneva et al. 2019, Swayamdipta et al. 2020): per run and sample, over the
 * run's recorded epochs of a split in epoch order, with p = softmax(z)[y] at
 * T = 1 (math/'s log-softmax) and correct = (argmax z == y):
 *   first_learned  the first recorded epoch from which the sample stays
 *                  correct to the last recorded one; none if wrong at the last
 *   forgetting     correct -> wrong transitions between consecutive recorded epochs
 *   correctness    share of the recorded epochs correct
 *   confidence     mean of p;  variability: its population standard deviation
 * First the computation on arrays (an accumulator fed one epoch's (N, K)
 * logits at a time, so a run is never held whole in memory, and
 * bv_dynamics_compute over (E, N, K) arrays for tests); then bvtool
 * dynamics over a database (bv_dynamics_db): every done student run, its rows
 * replaced in one transaction per run.
 */
#include "decompose_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bv_dynamics {
	int N, cap, E;       /* samples; epochs room; epochs added */
	int last_epoch;
	double *p;           /* (cap, N) the true-class probabilities */
	int *streak;         /* (N) the epoch the current run of correct epochs began, -1: wrong now */
	int *forgetting;     /* (N) */
	int *n_correct;      /* (N) */
};

int bv_dynamics_new(bv_dynamics **out, int N, int max_epochs)
{
	bv_dynamics *d;
	*out = NULL;
	if (N < 0 || max_epochs < 1)
		return bv_error_set(BV_EINVAL, "dynamics of %d samples over %d epochs", N, max_epochs);
	d = calloc(1, sizeof *d);
	if (!d)
		return bv_error_set(BV_ENOMEM, "out of memory");
	d->N = N;
	d->cap = max_epochs;
	d->p = malloc(sizeof(double) * (size_t)max_epochs * (size_t)(N ? N : 1));
	d->streak = malloc(sizeof(int) * (size_t)(N ? N : 1));
	d->forgetting = calloc((size_t)(N ? N : 1), sizeof(int));
	d->n_correct = calloc((size_t)(N ? N : 1), sizeof(int));
	if (!d->p || !d->streak || !d->forgetting || !d->n_correct) {
		bv_dynamics_free(d);
		return bv_error_set(BV_ENOMEM, "out of memory for the dynamics of %d samples over %d "
					       "epochs",
				    N, max_epochs);
	}
	for (int i = 0; i < N; i++)
		d->streak[i] = -1;
	*out = d;
	return 0;
}

void bv_dynamics_free(bv_dynamics *d)
{
	if (!d)
		return;
	free(d->p);
	free(d->streak);
	free(d->forgetting);
	free(d->n_correct);
	free(d);
}

int bv_dynamics_add(bv_dynamics *d, int epoch, const float *logits, int K, const int *labels)
{
	if (d->E >= d->cap)
		return bv_error_set(BV_EINVAL, "dynamics: more than the %d epochs planned", d->cap);
	if (d->E > 0 && epoch <= d->last_epoch)
		return bv_error_set(BV_EINVAL, "dynamics: epoch %d after epoch %d (epochs ascend)",
				    epoch, d->last_epoch);
	double *p = d->p + (size_t)d->E * d->N;
	for (int i = 0; i < d->N; i++) {
		const float *z = logits + (size_t)i * K;
		const int y = labels[i];
		const int correct = bv_math_argmax(z, K) == y;
		p[i] = exp(bv_math_log_softmax_at(z, K, y, 1.0));
		if (correct) {
			d->n_correct[i]++;
			if (d->streak[i] < 0)
				d->streak[i] = epoch;
		} else {
			/* correct at the previous recorded epoch, wrong now: forgotten */
			if (d->streak[i] >= 0)
				d->forgetting[i]++;
			d->streak[i] = -1;
		}
	}
	d->last_epoch = epoch;
	d->E++;
	return 0;
}

int bv_dynamics_epochs(const bv_dynamics *d)
{
	return d->E;
}

void bv_dynamics_rows(const bv_dynamics *d, bv_dyn_row *out)
{
	const int E = d->E, N = d->N;
	for (int i = 0; i < N; i++) {
		double mean = 0, ss = 0;
		/* two passes, as NumPy's std: the deviations from the mean, squared */
		for (int e = 0; e < E; e++)
			mean += d->p[(size_t)e * N + i];
		mean /= E;
		for (int e = 0; e < E; e++) {
			const double dev = d->p[(size_t)e * N + i] - mean;
			ss += dev * dev;
		}
		out[i] = (bv_dyn_row){
			.sample_idx = i,
			.first_learned = d->streak[i],
			.forgetting = d->forgetting[i],
			.correctness = (double)d->n_correct[i] / E,
			.confidence = mean,
			.variability = sqrt(ss / E),
			.n_epochs = E,
		};
	}
}

int bv_dynamics_compute(bv_dyn_row *out, const float *logits, const int *epochs, int E, int N,
			int K, const int *labels)
{
	bv_dynamics *d = NULL;
	int rc = bv_dynamics_new(&d, N, E);
	for (int e = 0; e < E && rc == 0; e++)
		rc = bv_dynamics_add(d, epochs[e], logits + (size_t)e * N * K, K, labels);
	if (rc == 0)
		bv_dynamics_rows(d, out);
	bv_dynamics_free(d);
	return rc;
}

/* ---- bvtool dynamics over a database ------------------------------------------- */

/* The runs of one (method, temperature), for the summary. */
typedef struct group {
	bv_run_method method;
	double T;
	int n_runs, min_e, max_e;
	double n_rows, correct, forgetting, never, confidence, variability;
} group;

/* "kd T=4", "ce" */
static void group_name(char *out, size_t size, bv_run_method m, double T)
{
	if (isnan(T))
		snprintf(out, size, "%s", bv_db_method_name(m));
	else
		snprintf(out, size, "%s T=%g", bv_db_method_name(m), T);
}

static group *find_group(group *g, int *n, const bv_run *r)
{
	for (int i = 0; i < *n; i++)
		if (g[i].method == r->method &&
		    (isnan(r->temperature) ? isnan(g[i].T) : g[i].T == r->temperature))
			return &g[i];
	g[*n] = (group){.method = r->method, .T = r->temperature, .min_e = 1 << 30};
	return &g[(*n)++];
}

int bv_dynamics_db(bv_db *db, const char *split, bv_say_fn say, void *ctx)
{
	bv_run *runs = NULL;
	const bv_run **sel = NULL;
	int **epochs = NULL, *n_epochs = NULL, *labels = NULL;
	int64_t *ids = NULL;
	bv_db_snapshot_ref *refs = NULL;
	group *groups = NULL;
	float *buf = NULL;
	bv_dyn_row *rows = NULL;
	bv_dynamics *d = NULL;
	int rc, n_runs = 0, n_sel = 0, N = 0, K = 0, n_refs = 0, n_groups = 0, n_none = 0;
	int n_few = 0, n_pruned = 0;
	long n_classes = 0;
	char few[512] = "";

	if (strcmp(split, "test") != 0 && strcmp(split, "train") != 0)
		return bv_error_set(BV_EINVAL, "--split: unknown split '%s' (expected test or train)",
				    split);
	if ((rc = bv_db_check_runs(db)) != 0 || (rc = bv_db_check_snapshots(db)) != 0 ||
	    (rc = bv_db_runs_list(db, &runs, &n_runs)) != 0 ||
	    (rc = bv_db_samples_get(db, split, NULL, 0, &N)) != 0)
		goto done;
	if (N == 0) {
		rc = bv_error_set(BV_ESTATE, "'%s' has no %s samples", bv_db_path(db), split);
		goto done;
	}
	if (N > MAX_SAMPLES) {
		rc = bv_error_set(BV_EFORMAT, "'%s' holds %d %s samples, more than the %d dynamics reads" DAMAGED,
				  bv_db_path(db), N, split, MAX_SAMPLES);
		goto done;
	}
	sel = malloc(sizeof *sel * (size_t)(n_runs + 1));
	epochs = calloc((size_t)(n_runs + 1), sizeof *epochs);
	n_epochs = calloc((size_t)(n_runs + 1), sizeof *n_epochs);
	ids = malloc(sizeof *ids * (size_t)(n_runs + 1));
	groups = malloc(sizeof *groups * (size_t)(n_runs + 1));
	if (!sel || !epochs || !n_epochs || !ids || !groups) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	/* the done students with a recorded epoch of the split (the teacher is no student) */
	for (int i = 0; i < n_runs; i++) {
		const bv_run *r = &runs[i];
		if (r->status != BV_RUN_DONE || r->method == BV_RUN_TEACHER)
			continue;
		if ((rc = bv_db_epochs(db, r->id, split, &epochs[n_sel], &n_epochs[n_sel])) != 0)
			goto done;
		if (n_epochs[n_sel] == 0) {
			free(epochs[n_sel]);
			epochs[n_sel] = NULL;
			n_none++;
			continue;
		}
		n_refs += n_epochs[n_sel];
		ids[n_sel] = r->id;
		sel[n_sel++] = r;
	}
	if (n_sel == 0) {
		rc = bv_error_set(BV_ESTATE, "'%s' has no done student run with a recorded %s epoch%s",
				  bv_db_path(db), split,
				  strcmp(split, "train") == 0 ? " (collect with --record-train)" : "");
		goto done;
	}
	/* K from the snapshots (db.h's contract), the labels checked against it */
	refs = malloc(sizeof *refs * (size_t)n_refs);
	if (!refs) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	n_refs = 0;
	for (int s = 0; s < n_sel; s++)
		for (int e = 0; e < n_epochs[s]; e++)
			refs[n_refs++] = (bv_db_snapshot_ref){sel[s]->id, epochs[s][e]};
	if ((rc = dc_n_classes(&n_classes, db)) != 0 ||
	    (rc = bv_db_snapshots_k(db, &K, split, refs, n_refs, "the dynamics")) != 0)
		goto done;
	if (K < 2 || K > MAX_CLASSES) {
		rc = bv_error_set(BV_EFORMAT, "'%s': the %s snapshots have k = %d, expected 2..%d classes" DAMAGED,
				  bv_db_path(db), split, K, MAX_CLASSES);
		goto done;
	}
	if (n_classes > 0 && n_classes != K) {
		rc = bv_error_set(BV_EFORMAT,
				  "'%s': config n_classes is %ld, the %s snapshots have k = %d" DAMAGED,
				  bv_db_path(db), n_classes, split, K);
		goto done;
	}
	labels = malloc(sizeof(int) * (size_t)N);
	buf = malloc(sizeof(float) * (size_t)N * K);
	rows = malloc(sizeof *rows * (size_t)N);
	if (!labels || !buf || !rows) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for %d x %d logits", N, K);
		goto done;
	}
	if ((rc = bv_db_check_labels(db, split, K)) != 0 ||
	    (rc = bv_db_samples_get(db, split, labels, N, &N)) != 0)
		goto done;
	/* rows of runs that are gone, reset or not done any more: not this run's to keep */
	if ((rc = bv_db_dynamics_prune(db, split, ids, n_sel, &n_pruned)) != 0)
		goto done;

	for (int s = 0; s < n_sel; s++) {
		const bv_run *r = sel[s];
		const int E = n_epochs[s];
		if ((rc = bv_dynamics_new(&d, N, E)) != 0)
			goto done;
		for (int e = 0; e < E; e++)
			if ((rc = dc_load(buf, db, &r, 1, epochs[s][e], split, N, K)) != 0 ||
			    (rc = bv_dynamics_add(d, epochs[s][e], buf, K, labels)) != 0)
				goto done;
		bv_dynamics_rows(d, rows);
		bv_dynamics_free(d);
		d = NULL;
		/* one transaction per run: its old rows go with the new ones written */
		if ((rc = bv_db_dynamics_put(db, r->id, split, rows, N)) != 0)
			goto done;
		group *g = find_group(groups, &n_groups, r);
		g->n_runs++;
		g->min_e = E < g->min_e ? E : g->min_e;
		g->max_e = E > g->max_e ? E : g->max_e;
		for (int i = 0; i < N; i++) {
			g->n_rows++;
			g->correct += rows[i].correctness;
			g->forgetting += rows[i].forgetting;
			g->never += rows[i].first_learned < 0;
			g->confidence += rows[i].confidence;
			g->variability += rows[i].variability;
		}
		if (E < 3) {
			size_t len = strlen(few);
			char name[64];
			group_name(name, sizeof name, r->method, r->temperature);
			if (n_few < 4 && len < sizeof few - 96)
				snprintf(few + len, sizeof few - len, "%s%s seed %d: %d", n_few ? ", " : "",
					 name, r->seed, E);
			n_few++;
		}
	}

	dc_say(say, ctx, "dynamics of the %s split: %d student run%s, %d samples", split, n_sel,
	       n_sel == 1 ? "" : "s", N);
	for (int i = 0; i < n_groups; i++) {
		const group *g = &groups[i];
		char name[64], ep[32];
		group_name(name, sizeof name, g->method, g->T);
		if (g->min_e == g->max_e)
			snprintf(ep, sizeof ep, "%d", g->min_e);
		else
			snprintf(ep, sizeof ep, "%d-%d", g->min_e, g->max_e);
		dc_say(say, ctx,
		       "%-12s %3d run%s  %s epochs  correct %.2f%%  forgettings %.4f  wrong at the last "
		       "epoch %.2f%%  confidence %.4f  variability %.4f",
		       name, g->n_runs, g->n_runs == 1 ? " " : "s", ep, 100 * g->correct / g->n_rows,
		       g->forgetting / g->n_rows, 100 * g->never / g->n_rows,
		       g->confidence / g->n_rows, g->variability / g->n_rows);
	}
	if (n_few)
		dc_say(say, ctx,
		       "sparse: %d run%s %s fewer than 3 recorded %s epochs (%s%s); their "
		       "first_learned, forgetting and variability rest on so few (n_epochs says how many)",
		       n_few, n_few == 1 ? "" : "s", n_few == 1 ? "has" : "have", split, few,
		       n_few > 4 ? ", ..." : "");
	if (n_none)
		dc_say(say, ctx, "%d done student run%s no recorded %s epoch and no rows", n_none,
		       n_none == 1 ? " has" : "s have", split);
	if (n_pruned)
		dc_say(say, ctx, "removed the %s rows of %d run%s that are not done (reset or deleted)",
		       split, n_pruned, n_pruned == 1 ? "" : "s");
	rc = 0;
done:
	bv_dynamics_free(d);
	if (epochs)
		for (int s = 0; s < n_runs; s++)
			free(epochs[s]);
	free(epochs);
	free(n_epochs);
	free(sel);
	free(ids);
	free(groups);
	free(refs);
	free(labels);
	free(buf);
	free(rows);
	free(runs);
	return rc;
}
