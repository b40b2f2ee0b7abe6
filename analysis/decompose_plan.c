/*
 * Which runs take part in a decomposition (decompose_int.h): the plan of
 * every run in the database, the temperatures selected, the seeds paired at
 * each (those for which ce and every soft method present there are done), and
 * the epochs at which every run taking part is analysable (db.h's contract).
 * Only complete (done) runs take part; the others are named as skipped.
 */
#include "decompose_int.h"

#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void dc_say(bv_say_fn say, void *ctx, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (say)
		say(ctx, line);
}

/* ---- the runs and seeds ---------------------------------------------------- */

const bv_run *dc_find_run(const dc_plan *p, bv_run_method method, double T, dc_rep_t rep)
{
	for (int i = 0; i < p->n_runs; i++) {
		const bv_run *r = &p->runs[i];
		if (r->status == BV_RUN_DONE && r->method == method && dc_rep(r->seed, r->init) == rep &&
		    (isnan(T) ? isnan(r->temperature) : r->temperature == T))
			return r;
	}
	return NULL;
}

int dc_count_seeds(const dc_plan *p, bv_run_method method, double T)
{
	int n = 0;
	for (int i = 0; i < p->n_runs; i++) {
		const bv_run *r = &p->runs[i];
		n += r->status == BV_RUN_DONE && r->method == method &&
		     (isnan(T) ? isnan(r->temperature) : r->temperature == T);
	}
	return n;
}

int dc_paired_seeds(dc_rep_t *out, const dc_plan *p, double T)
{
	int n = 0;
	for (int i = 0; i < p->n_runs; i++) {
		const bv_run *r = &p->runs[i];
		if (r->method != BV_RUN_CE || r->status != BV_RUN_DONE || n >= MAX_SEEDS)
			continue;
		int ok = 1;
		for (int m = 0; m < p->n_soft; m++)
			if (dc_count_seeds(p, p->soft[m], T) > 0 &&
			    !dc_find_run(p, p->soft[m], T, dc_rep(r->seed, r->init)))
				ok = 0;
		if (ok)
			out[n++] = dc_rep(r->seed, r->init);
	}
	/* runs are listed by seed and init within a method; keep them sorted anyway */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			dc_rep_t t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

/* "1, 2, 4": the plan's temperatures */
static void temps_text(char *out, size_t size, const dc_plan *p)
{
	size_t len = 0;
	out[0] = '\0';
	for (int i = 0; i < p->n_temps && len < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%g", i ? ", " : "", p->temps[i]);
}

int dc_plan_make(dc_plan *p, bv_db *db, const bv_decompose_opts *o, bv_say_fn say, void *ctx)
{
	int rc, n_skipped = 0;
	char skipped[512] = "";
	memset(p, 0, sizeof *p);
	p->n_soft = bv_db_soft_methods(p->soft);
	if ((rc = bv_db_runs_list(db, &p->runs, &p->n_runs)) != 0)
		return rc;
	for (int i = 0; i < p->n_runs; i++) {
		const bv_run *r = &p->runs[i];
		const char *method = bv_db_method_name(r->method);
		const char *status = bv_db_status_name(r->status);
		if (r->seed < 0 || r->init < 1 || r->init > DC_MAX_INITS)
			return bv_error_set(BV_EFORMAT,
					    "'%s': run %lld has seed %d and init %d; decompose reads "
					    "seeds >= 0 and inits 1..%d",
					    bv_db_path(db), (long long)r->id, r->seed, r->init,
					    DC_MAX_INITS);
		if (r->status != BV_RUN_DONE) {
			size_t len = strlen(skipped);
			if (n_skipped < 6 && len < sizeof skipped - 64) {
				if (isnan(r->temperature))
					snprintf(skipped + len, sizeof skipped - len, "%s%s seed %d (%s)",
						 n_skipped ? ", " : "", method, r->seed, status);
				else
					snprintf(skipped + len, sizeof skipped - len,
						 "%s%s T=%g seed %d (%s)", n_skipped ? ", " : "",
						 method, r->temperature, r->seed, status);
			}
			n_skipped++;
			continue;
		}
		if (r->method == BV_RUN_TEACHER)
			p->teacher_id = r->id;
		if (isnan(r->temperature))
			continue;
		int seen = 0;
		for (int t = 0; t < p->n_temps; t++)
			seen |= p->temps[t] == r->temperature;
		if (!seen && p->n_temps == BV_MAX_TEMPS)
			return bv_error_set(BV_EFORMAT, "'%s' has more than %d temperatures; decompose reads at most %d",
					    bv_db_path(db), BV_MAX_TEMPS, BV_MAX_TEMPS);
		if (!seen)
			p->temps[p->n_temps++] = r->temperature;
	}
	gsl_sort(p->temps, 1, (size_t)p->n_temps);
	if (n_skipped)
		dc_say(say, ctx, "skipped %d run%s that %s not done: %s%s", n_skipped,
		     n_skipped == 1 ? "" : "s", n_skipped == 1 ? "is" : "are", skipped,
		     n_skipped > 6 ? ", ..." : "");

	const int n_ce = dc_count_seeds(p, BV_RUN_CE, NAN);
	if (n_ce > MAX_SEEDS)
		return bv_error_set(BV_EFORMAT, "'%s' has %d finished ce runs; decompose reads at most %d",
				    bv_db_path(db), n_ce, MAX_SEEDS);
	if (n_ce == 0)
		return bv_error_set(BV_ESTATE,
				    "'%s' has no finished ce runs: decompose needs the ce students as the "
				    "baseline (bvtool collect --methods ce,kd,...)",
				    bv_db_path(db));
	if (n_ce < 2)
		return bv_error_set(BV_ESTATE,
				    "decompose needs >= 2 finished seeds of ce; '%s' has %d", bv_db_path(db),
				    n_ce);
	if (p->n_temps == 0) {
		char soft[128];
		return bv_error_set(BV_ESTATE, "'%s' has no finished %s runs to compare with %s",
				    bv_db_path(db),
				    bv_db_methods_text(soft, sizeof soft, bv_db_methods_mask(1), "",
						       ", ", " or "),
				    bv_db_method_name(BV_RUN_CE));
	}
	if (o->n_temps > 0) {
		char have[512];
		temps_text(have, sizeof have, p);
		for (int i = 0; i < o->n_temps; i++) {
			int found = 0;
			for (int t = 0; t < p->n_temps; t++)
				found |= p->temps[t] == o->temps[i];
			if (!found)
				return bv_error_set(BV_EINVAL, "--temp: temperature %g is not in '%s' (it has %s)",
						    o->temps[i], bv_db_path(db), have);
		}
		memcpy(p->temps, o->temps, sizeof(double) * (size_t)o->n_temps);
		p->n_temps = o->n_temps;
		gsl_sort(p->temps, 1, (size_t)p->n_temps);
	}
	for (int t = 0; t < p->n_temps; t++)
		for (int m = 0; m < p->n_soft; m++) {
			int n = dc_count_seeds(p, p->soft[m], p->temps[t]);
			if (n == 1)
				return bv_error_set(BV_ESTATE,
						    "decompose needs >= 2 finished seeds of %s at T=%g; '%s' has 1",
						    bv_db_method_name(p->soft[m]), p->temps[t],
						    bv_db_path(db));
		}
	return 0;
}

/* ---- the epochs ------------------------------------------------------------ */

int dc_plan_epochs(int **out, int *n_out, bv_db *db, const dc_plan *p, const char *snap, int epoch)
{
	int rc, *epochs = NULL, n_epochs = 0, n_part = 0;
	*out = NULL;
	*n_out = 0;
	/* every run that takes part, to find the epochs at which all are analysable */
	int64_t *ids = malloc(sizeof(int64_t) * (size_t)(p->n_runs + 1));
	if (!ids)
		return bv_error_set(BV_ENOMEM, "out of memory");
	for (int t = 0; t < p->n_temps; t++) {
		dc_rep_t sd[MAX_SEEDS];
		int n = dc_paired_seeds(sd, p, p->temps[t]);
		if (n < 2) {
			rc = bv_error_set(BV_ESTATE,
					  "decompose needs >= 2 seeds with ce and every method done at T=%g; "
					  "'%s' has %d",
					  p->temps[t], bv_db_path(db), n);
			goto done;
		}
		for (int b = 0; b < n; b++) {
			const bv_run *r = dc_find_run(p, BV_RUN_CE, NAN, sd[b]);
			int dup = 0;
			for (int j = 0; j < n_part; j++)
				dup |= ids[j] == r->id;
			if (!dup)
				ids[n_part++] = r->id;
			for (int m = 0; m < p->n_soft; m++)
				if ((r = dc_find_run(p, p->soft[m], p->temps[t], sd[b])) != NULL)
					ids[n_part++] = r->id;
		}
	}
	if ((rc = bv_db_epochs_analysable(db, snap, ids, n_part, &epochs, &n_epochs)) != 0)
		goto done;
	if (n_epochs == 0) {
		rc = bv_error_set(BV_ESTATE,
				  "no epoch of the %s split is recorded by every run of '%s'%s",
				  snap, bv_db_path(db),
				  strcmp(snap, "train") == 0 ? " (collect with --record-train)" : "");
		goto done;
	}
	if (epoch > 0) {
		int found = 0;
		char list[512] = "";
		size_t len = 0;
		for (int i = 0; i < n_epochs; i++) {
			found |= epochs[i] == epoch;
			if (len < sizeof list)
				len += (size_t)snprintf(list + len, sizeof list - len, "%s%d",
							i ? "," : "", epochs[i]);
		}
		if (!found) {
			rc = bv_error_set(BV_EINVAL,
					  "--epoch: epoch %d is not recorded for the %s split (recorded: %s)",
					  epoch, snap, list);
			goto done;
		}
		epochs[0] = epoch;
		n_epochs = 1;
	} else if (epoch < 0) {
		epochs[0] = epochs[n_epochs - 1];
		n_epochs = 1;
	}
	*out = epochs;
	*n_out = n_epochs;
	epochs = NULL;
	rc = 0;
done:
	free(ids);
	free(epochs);
	return rc;
}

void dc_plan_all_temps(dc_plan *all, const dc_plan *p)
{
	int n_all = 0;
	double tall[BV_MAX_TEMPS];
	*all = *p;
	for (int i = 0; i < p->n_runs; i++) {
		const bv_run *r = &p->runs[i];
		if (r->status != BV_RUN_DONE || isnan(r->temperature))
			continue;
		int seen = 0;
		for (int j = 0; j < n_all; j++)
			seen |= tall[j] == r->temperature;
		if (!seen && n_all < BV_MAX_TEMPS)
			tall[n_all++] = r->temperature;
	}
	gsl_sort(tall, 1, (size_t)n_all);
	memcpy(all->temps, tall, sizeof(double) * (size_t)n_all);
	all->n_temps = n_all;
}
