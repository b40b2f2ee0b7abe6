/*
 * The correlation of a decomposition (decompose_int.h): across the
 * temperatures of the database, the number of a soft method's
 * regularization samples against its students' mean test accuracy at the
 * epoch (Pearson and Spearman, stats.c), and a bootstrap interval of r over
 * seeds: each draw reweights the paired seeds, the counts are recomputed from
 * the log-probabilities under the draw's weights, and the interval is the
 * 2.5% and 97.5% of the draws' r. Written as the correlations row of (split,
 * epoch, method), in the decomposition's transaction.
 */
#include "decompose_int.h"

#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

enum {
	BOOT_CAP = 4096, /* log-probabilities of a block of samples, per replica */
	BOOT_BLOCK = 64, /* samples per block, at most */
};

typedef struct corr_data {
	int n_t;
	double temps[BV_MAX_TEMPS];
	double *ce, *m[BV_MAX_TEMPS]; /* (B, N, K) log-probabilities; ce's at every temperature */
	double *log_ps[BV_MAX_TEMPS]; /* grad criterion: (B, N) log p_s^T[y] of the method */
	double *log_pt[BV_MAX_TEMPS]; /* grad criterion: (N) log p_t^T[y] of the teacher */
	double acc[BV_MAX_TEMPS][MAX_SEEDS];        /* per seed test accuracy of the method */
	int B, N, K;
} corr_data;

/* Regularization counts of method vs ce, counts[t * n_w + q] at temperature
 * index t under the weights W + q * B of each of n_w draws. A block of
 * samples at a time, for all draws and temperatures, so that the (B, N, K)
 * log-probabilities are read once rather than once per draw, and ce (the same
 * runs at every temperature) is decomposed once per draw. wb is scratch for
 * BOOT_BLOCK * B weights. */
static void boot_counts(int *counts, const corr_data *cd, const dc_selection *s, const double *W,
			int n_w, double *wb)
{
	const size_t stride = (size_t)cd->N * cd->K;
	const int B = cd->B, K = cd->K;
	const int per_block = BOOT_CAP / K < BOOT_BLOCK ? BOOT_CAP / K : BOOT_BLOCK;
	for (int q = 0; q < n_w * cd->n_t; q++)
		counts[q] = 0;
	for (int i0 = 0; i0 < cd->N; i0 += per_block)
	for (int q = 0; q < n_w; q++) {
		const double *w = W + (size_t)q * B;
		const int n = cd->N - i0 < per_block ? cd->N - i0 : per_block;
		int skip[BOOT_BLOCK];
		for (int j = 0; j < n; j++) {
			int nb = 0;
			for (int b = 0; b < B; b++) {
				double x = w[b] * (s->oob ? s->oob[(size_t)b * cd->N + i0 + j] : 1);
				wb[(size_t)j * B + b] = x;
				nb += x > 0;
			}
			skip[j] = s->oob && nb < 2; /* as the decomposition: < 2 out-of-bag seeds */
		}
		const int *y = s->labels + i0;
		bv_math_decomp dm[BOOT_BLOCK], dce[BOOT_BLOCK]; /* the method's, ce's */
		/* without oob, the draw's weights are every sample's */
		const double *ws = s->oob ? wb : w;
		const size_t w_stride = s->oob ? (size_t)B : 0;
		if (s->crit == BV_CRIT_BV)
			bv_decompose_logp(dce, cd->ce + (size_t)i0 * K, stride, B, K, n, y, ws,
					  w_stride);
		for (int t = 0; t < cd->n_t; t++) {
			int count = 0;
			bv_decompose_logp(dm, cd->m[t] + (size_t)i0 * K, stride, B, K, n, y, ws,
					  w_stride);
			for (int j = 0; j < n; j++) {
				if (skip[j])
					continue;
				const int i = i0 + j;
				const double *ww = wb + (size_t)j * B;
				if (s->crit == BV_CRIT_BV) {
					count += bv_math_crit_bv(dm[j].bias, dm[j].variance,
								 dce[j].bias, dce[j].variance);
				} else if (s->crit == BV_CRIT_TEACHER) {
					count += bv_math_crit_teacher(s->teacher_ce[i], dm[j].loss);
				} else {
					/* grad: weighted majority of replicas with |b| > |a|;
					 * replica b's log q at b * stride, its log p_s^T[y]
					 * at b * N */
					const double *lq = cd->m[t] + (size_t)i * K + y[j];
					const double *lps = cd->log_ps[t] + i;
					const double lpt = cd->log_pt[t][i];
					double agree = 0, wsum = 0;
					for (int b = 0; b < B; b++) {
						if (ww[b] == 0)
							continue;
						const double lq_b = lq[(size_t)b * stride];
						const double lps_b = lps[(size_t)b * cd->N];
						agree += ww[b] * bv_math_crit_grad(lq_b, lps_b, lpt,
										   cd->temps[t]);
						wsum += ww[b];
					}
					count += bv_math_majority(agree, wsum);
				}
			}
			counts[(size_t)t * n_w + q] += count;
		}
	}
}

/* Delete the correlations row of (split, epoch, method). */
static int correlation_clear(bv_db *db, const char *split, int epoch, bv_run_method method)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = bv_db_prepare(db, &st, "DELETE FROM correlations WHERE split = ?1 AND epoch = ?2 "
					 "AND method = ?3")) != 0)
		return rc;
	sqlite3_bind_text(st, 1, split, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, epoch);
	sqlite3_bind_text(st, 3, bv_db_method_name(method), -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : bv_db_error(db);
	sqlite3_finalize(st);
	return rc;
}

int dc_correlate(bv_db *db, const dc_plan *p, bv_run_method method, int epoch,
		 const dc_selection *s0, const bv_decompose_opts *o, bv_say_fn say, void *ctx)
{
	const char *name = bv_db_method_name(method);
	corr_data *cd = calloc(1, sizeof *cd);
	double x[BV_MAX_TEMPS], y[BV_MAX_TEMPS];
	dc_rep_t seeds[MAX_SEEDS];
	int rc = 0;
	double *rs = NULL, *wb = NULL; /* wb: boot_counts' weights (BOOT_BLOCK, B) */
	double *W = NULL;              /* (1 + n_boot, B) the draws' weights */
	int *counts = NULL;
	float *raw = NULL;
	if (!cd)
		return bv_error_set(BV_ENOMEM, "out of memory for the correlation");
	/* an earlier row of (split, epoch, method) goes, whether or not a new one
	 * can be computed: it was of other statistics */
	if ((rc = correlation_clear(db, s0->split, epoch, method)) != 0)
		goto done;
	/* temperatures with this method and seeds paired at every one of them */
	int B = -1;
	for (int t = 0; t < p->n_temps; t++) {
		if (dc_count_seeds(p, method, p->temps[t]) < 2)
			continue;
		dc_rep_t sd[MAX_SEEDS];
		int n = dc_paired_seeds(sd, p, p->temps[t]);
		if (B < 0) {
			memcpy(seeds, sd, sizeof *seeds * (size_t)n);
			B = n;
		} else {
			int m = 0;
			for (int a = 0; a < B; a++)
				for (int b = 0; b < n; b++)
					if (seeds[a] == sd[b])
						seeds[m++] = seeds[a];
			B = m;
		}
		cd->temps[cd->n_t++] = p->temps[t];
	}
	if (cd->n_t < 3) {
		dc_say(say, ctx, "correlation (%s): needs >= 3 temperatures with %s students; %s has %d",
		     name, name, bv_db_path(db), cd->n_t);
		goto done;
	}
	if (B < 2) {
		dc_say(say, ctx, "correlation (%s): fewer than 2 seeds are done at every temperature",
		     name);
		goto done;
	}
	cd->B = B;
	cd->N = s0->N;
	cd->K = s0->K;
	dc_selection s = *s0;
	const bv_run *runs[MAX_SEEDS];
	raw = malloc(sizeof(float) * (size_t)B * s.N * s.K);
	wb = malloc(sizeof(double) * BOOT_BLOCK * (size_t)B);
	if (!raw || !wb) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for the correlation");
		goto done;
	}
	for (int t = 0; t < cd->n_t; t++) {
		const bv_run_method mm[2] = {BV_RUN_CE, method};
		double **dst[2] = {&cd->ce, &cd->m[t]};
		for (int j = t == 0 ? 0 : 1; j < 2; j++) { /* ce (no temperature) once */
			for (int b = 0; b < B; b++)
				runs[b] = dc_find_run(p, mm[j], j == 0 ? NAN : cd->temps[t], seeds[b]);
			if ((rc = dc_load(raw, db, runs, B, epoch, s.snap, s.N, s.K)) != 0)
				goto done;
			if (!(*dst[j] = malloc(sizeof(double) * (size_t)B * s.N * s.K))) {
				rc = bv_error_set(BV_ENOMEM, "out of memory for the correlation");
				goto done;
			}
			for (size_t i = 0; i < (size_t)B * s.N; i++) /* log q, in double */
				bv_math_log_softmax(*dst[j] + i * s.K, raw + i * s.K, s.K, 1.0);
		}
		if (s.crit == BV_CRIT_GRAD) { /* raw holds the method's logits at temps[t] */
			const double T = cd->temps[t];
			cd->log_ps[t] = malloc(sizeof(double) * (size_t)B * s.N);
			cd->log_pt[t] = malloc(sizeof(double) * (size_t)s.N);
			if (!cd->log_ps[t] || !cd->log_pt[t]) {
				rc = bv_error_set(BV_ENOMEM, "out of memory for the correlation");
				goto done;
			}
			for (int i = 0; i < s.N; i++) {
				const int yi = s.labels[i];
				const float *tz = s.teacher + (size_t)i * s.K;
				cd->log_pt[t][i] = bv_math_log_softmax_at(tz, s.K, yi, T);
				for (int b = 0; b < B; b++)
					cd->log_ps[t][(size_t)b * s.N + i] = bv_math_log_softmax_at(
						raw + ((size_t)b * s.N + i) * s.K, s.K, yi, T);
			}
		}
		for (int b = 0; b < B; b++) {
			const bv_run *r = dc_find_run(p, method, cd->temps[t], seeds[b]);
			if ((rc = bv_db_run_test_acc(db, r->id, epoch, &cd->acc[t][b])) != 0)
				goto done;
		}
	}
	/* the weights: all seeds (the point estimate), then each bootstrap draw */
	const int n_w = 1 + (o->n_boot > 0 ? o->n_boot : 0);
	W = malloc(sizeof(double) * (size_t)n_w * B);
	counts = malloc(sizeof(int) * (size_t)n_w * cd->n_t); /* (n_t, n_w) */
	rs = malloc(sizeof(double) * (size_t)n_w);
	if (!W || !counts || !rs) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for the bootstrap");
		goto done;
	}
	for (int b = 0; b < B; b++)
		W[b] = 1;
	if (o->n_boot > 0) {
		gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
		if (!rng) {
			rc = bv_error_set(BV_ENOMEM, "out of memory for the bootstrap");
			goto done;
		}
		gsl_rng_set(rng, o->boot_seed);
		for (int it = 0; it < o->n_boot; it++) {
			double *w = W + (size_t)(1 + it) * B;
			for (int b = 0; b < B; b++)
				w[b] = 0;
			for (int b = 0; b < B; b++)
				w[gsl_rng_uniform_int(rng, (unsigned long)B)] += 1;
		}
		gsl_rng_free(rng);
	}
	boot_counts(counts, cd, &s, W, n_w, wb);
	for (int t = 0; t < cd->n_t; t++) {
		x[t] = counts[(size_t)t * n_w];
		y[t] = 0;
		for (int b = 0; b < B; b++)
			y[t] += cd->acc[t][b] / B;
	}
	bv_corr c;
	if (bv_correlate(&c, x, y, cd->n_t) != 0) {
		dc_say(say, ctx, "correlation (%s): not defined (%s)", name, bv_error_last());
		goto done;
	}
	double lo = NAN, hi = NAN;
	int n_ok = 0;
	for (int it = 0; it < o->n_boot; it++) {
		const double *w = W + (size_t)(1 + it) * B;
		double xb[BV_MAX_TEMPS], yb[BV_MAX_TEMPS];
		for (int t = 0; t < cd->n_t; t++) {
			xb[t] = counts[(size_t)t * n_w + 1 + it];
			yb[t] = 0;
			for (int b = 0; b < B; b++)
				yb[t] += w[b] * cd->acc[t][b] / B;
		}
		bv_corr cb;
		if (bv_correlate(&cb, xb, yb, cd->n_t) == 0)
			rs[n_ok++] = cb.r;
	}
	if (n_ok >= 2) {
		gsl_sort(rs, 1, (size_t)n_ok);
		lo = rs[(size_t)floor(0.025 * (n_ok - 1))];
		hi = rs[(size_t)ceil(0.975 * (n_ok - 1))];
	}
	bv_db_correlation cor = {s.split, method, bv_criterion_name(s.crit), epoch, cd->n_t, n_ok,
				 c.r, c.r_p, c.rho, c.rho_p, lo, hi};
	if ((rc = bv_db_correlation_put(db, &cor)) != 0)
		goto done;
	dc_say(say, ctx,
	     "correlation (%s, %s split, epoch %d, %d temperatures, %d seeds): regularization samples "
	     "vs mean test accuracy: Pearson r = %.3f (p = %.3g), Spearman rho = %.3f (p = %.3g)",
	     name, s.split, epoch, cd->n_t, B, c.r, c.r_p, c.rho, c.rho_p);
	if (o->n_boot > 0)
		dc_say(say, ctx, "  bootstrap 95%% interval for r over seeds: [%.3f, %.3f] (%d of %d resamples defined)",
		     lo, hi, n_ok, o->n_boot);
done:
	for (int t = 0; t < BV_MAX_TEMPS; t++) {
		free(cd->m[t]);
		free(cd->log_ps[t]);
		free(cd->log_pt[t]);
	}
	free(cd->ce);
	free(cd);
	free(rs);
	free(raw);
	free(wb);
	free(W);
	free(counts);
	return rc;
}
