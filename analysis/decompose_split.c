/*
 * The variance of a decomposition split by its source (decompose_int.h),
 * when every bootstrap draw was trained from M >= 2 initialisations
 * (collect --inits M). For one sample, with log q_{d,i} the log-softmax of
 * the run of draw d and init i:
 *
 *   lbar_d[k]  = mean_i log q_{d,i}[k]
 *   V_init(d)  = -log sum_k exp lbar_d[k]         (the Heskes variance of draw d's inits)
 *   g_d[k]     = lbar_d[k] + V_init(d)            (their normalised geometric mean, in logs)
 *   V_data     = -log sum_k exp mean_d g_d[k]     (the Heskes variance of the g_d)
 *
 * and the total variance -log sum_k exp(mean_d lbar_d[k]) is exactly
 * mean_d V_init(d) + V_data, since mean_d g_d = mean_d lbar_d + mean_d V_init(d).
 * V_data is computed from the g_d, not as the difference, so that the identity
 * is a check (its error joins max_identity_error) and not a definition. In
 * doubles, one sample at a time: this runs only with inits, and costs a
 * log-softmax per replica, as much as the decomposition itself.
 */
#include "decompose_int.h"

#include <math.h>
#include <stdlib.h>

/* log sum_k exp v[k] */
static double lse(const double *v, int K)
{
	double m = v[0], s = 0;
	for (int k = 1; k < K; k++)
		m = v[k] > m ? v[k] : m;
	for (int k = 0; k < K; k++)
		s += exp(v[k] - m);
	return m + log(s);
}

int dc_var_split(bv_stat_row *rows, int n, const float *buf, int B, const dc_selection *s,
		 double *max_err)
{
	const int K = s->K, M = s->n_inits, D = B / M;
	const size_t stride = (size_t)s->N * K;
	double *w = malloc(sizeof(double) * 4 * (size_t)K); /* z, lbar_d, mean_d g_d, scratch */
	if (!w)
		return bv_error_set(BV_ENOMEM, "out of memory");
	double *z = w, *lbar = w + K, *gbar = w + 2 * K;
	for (int j = 0; j < n; j++) {
		bv_stat_row *r = &rows[j];
		const int i = r->sample_idx;
		double v_init = 0;
		int n_draws = 0;
		for (int k = 0; k < K; k++)
			gbar[k] = 0;
		for (int d = 0; d < D; d++) {
			/* the inits of a draw share its in-bag counts, so its first's mask says */
			if (s->oob && !s->oob[(size_t)d * M * s->N + i])
				continue;
			for (int k = 0; k < K; k++)
				lbar[k] = 0;
			for (int m = 0; m < M; m++) {
				const float *x = buf + (size_t)(d * M + m) * stride + (size_t)i * K;
				for (int k = 0; k < K; k++)
					z[k] = x[k];
				const double l = lse(z, K);
				for (int k = 0; k < K; k++)
					lbar[k] += (z[k] - l) / M;
			}
			const double vd = -lse(lbar, K);
			v_init += vd;
			for (int k = 0; k < K; k++)
				gbar[k] += lbar[k] + vd;
			n_draws++;
		}
		if (n_draws == 0) { /* not reached: a row has >= 2 replicas, so a draw */
			r->var_init = r->var_data = NAN;
			continue;
		}
		for (int k = 0; k < K; k++)
			gbar[k] /= n_draws;
		r->var_init = v_init / n_draws;
		r->var_data = -lse(gbar, K);
		r->has_split = 1;
		*max_err = fmax(*max_err, fabs(r->variance - r->var_init - r->var_data));
	}
	free(w);
	return 0;
}
