/*
 * The statistics that relate regularization-sample counts to accuracy
 * (SPEC.md, "Regularization samples"): Pearson and Spearman correlation with
 * two-sided p-values, and the mean with a 95% t interval. Built on GSL:
 * gsl_stats_correlation, gsl_stats_spearman (average ranks for ties) and the
 * Student t distribution.
 */
#include "analysis.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdlib.h>

/*
 * A perfect fit computed in floating point lands within a few ulps of +-1, on
 * either side (GSL's Spearman of identical ranks gives 1 - 2.2e-16), and with
 * 1 df that residue alone would read as p = 1e-8 instead of 0. So |r| within
 * 1e-14 of 1 is taken as +-1 (the p-value it replaces is below 1e-7 for n = 3
 * and far smaller for larger n).
 */
static double snap_perfect(double r)
{
	return fabs(r) > 1 - 1e-14 ? copysign(1.0, r) : r;
}

/* Two-sided p of a correlation r on n points: t = r sqrt((n-2) / (1-r^2)), n-2 df. */
static double corr_p(double r, int n)
{
	if (fabs(r) >= 1)
		return 0; /* a perfect fit; t would be infinite */
	const double t = fabs(r) * sqrt((n - 2) / (1 - r * r));
	return 2 * gsl_cdf_tdist_Q(t, n - 2);
}

static int is_constant(const double *x, int n)
{
	for (int i = 1; i < n; i++)
		if (x[i] != x[0])
			return 0;
	return 1;
}

int bv_correlate(bv_corr *out, const double *x, const double *y, int n)
{
	if (n < 3)
		return bv_error_set(BV_EINVAL, "correlation needs at least 3 points (got %d)", n);
	for (int i = 0; i < n; i++)
		if (!isfinite(x[i]) || !isfinite(y[i]))
			return bv_error_set(BV_EINVAL, "correlation: point %d is not finite (%g, %g)", i,
					    x[i], y[i]);
	if (is_constant(x, n) || is_constant(y, n))
		return bv_error_set(BV_EINVAL, "correlation of %d points: the %s series is constant", n,
				    is_constant(x, n) ? "first" : "second");

	double *work = malloc(2 * (size_t)n * sizeof(*work)); /* gsl_stats_spearman's scratch */
	if (!work)
		return bv_error_set(BV_ENOMEM, "correlation of %d points: out of memory", n);
	out->n = n;
	out->r = snap_perfect(gsl_stats_correlation(x, 1, y, 1, (size_t)n));
	out->rho = snap_perfect(gsl_stats_spearman(x, 1, y, 1, (size_t)n, work));
	out->r_p = corr_p(out->r, n);
	out->rho_p = corr_p(out->rho, n);
	free(work);
	return 0;
}

void bv_mean_ci(double *mean, double *sd, double *half95, const double *x, int n)
{
	const double m = n > 0 ? gsl_stats_mean(x, 1, (size_t)n) : NAN;
	double s = NAN, h = NAN;

	if (n >= 2) {
		s = gsl_stats_sd_m(x, 1, (size_t)n, m); /* sample sd, n - 1 */
		h = gsl_cdf_tdist_Pinv(0.975, n - 1) * s / sqrt(n);
	}
	if (mean)
		*mean = m;
	if (sd)
		*sd = s;
	if (half95)
		*half95 = h;
}
