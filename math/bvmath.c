/*
 * The formulas of math/bvmath.h, written for clarity and for bit-stable
 * results rather than speed: training's losses (nn/loss.c) and the
 * criteria of the decomposition (analysis/) call the same functions here, so
 * that kd-filter's online flag and decompose's grad criterion agree to the
 * bit on the same logits. Each function computes its formula in one fixed
 * order of operations; changing that order changes training's checkpoints
 * (tests/same_results.sh tells).
 */
#include "bvmath.h"

#include <math.h>

/* ---- softmax and losses ------------------------------------------------- */

double bv_math_logsumexp(const float *z, int K, double T)
{
	double mx = -INFINITY;
	for (int k = 0; k < K; k++)
		if (z[k] / T > mx)
			mx = z[k] / T;
	double sum = 0;
	for (int k = 0; k < K; k++)
		sum += exp(z[k] / T - mx); /* each term <= 1: no overflow, the largest is 1 */
	return mx + log(sum);
}

void bv_math_log_softmax(double *out, const float *z, int K, double T)
{
	const double lse = bv_math_logsumexp(z, K, T);
	for (int k = 0; k < K; k++)
		out[k] = z[k] / T - lse;
}

void bv_math_log_softmax_fast(double *out, double *tmp, const float *z, int K)
{
	float m = z[0];
	for (int k = 1; k < K; k++)
		m = z[k] > m ? z[k] : m;
	for (int k = 0; k < K; k++)
		out[k] = tmp[k] = (double)z[k] - m;
	/* up to a multiple of 8 with exp(-1000) = 0 terms, so that bv_vexp runs
	 * whole vectors and no scalar remainder (a third of its time at K = 10) */
	const int padded = (K + 7) / 8 * 8;
	for (int k = K; k < padded; k++)
		tmp[k] = -1000.0;
	bv_vexp(tmp, (size_t)padded);
	double s = 0;
	for (int k = 0; k < K; k++)
		s += tmp[k];
	const double ls = log(s);
	for (int k = 0; k < K; k++)
		out[k] -= ls;
}

double bv_math_log_softmax_at(const float *z, int K, int c, double T)
{
	return z[c] / T - bv_math_logsumexp(z, K, T);
}

double bv_math_accuracy(const float *logits, const int *y, int n, int K)
{
	int correct = 0;
	for (int i = 0; i < n; i++)
		correct += bv_math_argmax(logits + (size_t)i * K, K) == y[i];
	return n ? (double)correct / n : 0.0;
}

double bv_math_ce(const float *z, int K, int y)
{
	return -bv_math_log_softmax_at(z, K, y, 1.0);
}

double bv_math_soft_ce_logp(const double *log_pt, const double *log_ps, int K)
{
	double h = 0;
	for (int k = 0; k < K; k++)
		h -= exp(log_pt[k]) * log_ps[k]; /* -p_t^T[k] log p_s^T[k] */
	return h;
}

double bv_math_soft_ce(const float *s, const float *t, int K, double T)
{
	const double lse_s = bv_math_logsumexp(s, K, T), lse_t = bv_math_logsumexp(t, K, T);
	double h = 0;
	for (int k = 0; k < K; k++)
		h -= exp(t[k] / T - lse_t) * (s[k] / T - lse_s);
	return h;
}

double bv_math_entropy_logp(const double *log_p, int K)
{
	double h = 0;
	for (int k = 0; k < K; k++)
		h -= exp(log_p[k]) * log_p[k];
	return h;
}

double bv_math_kl_logp(const double *log_p, const double *log_q, int K)
{
	double kl = 0;
	for (int k = 0; k < K; k++)
		kl += exp(log_p[k]) * (log_p[k] - log_q[k]);
	return kl;
}

double bv_math_wsl_weight(double ce_s, double ce_t)
{
	return 1.0 - exp(-ce_s / (ce_t + 1e-7));
}

/* ---- regularization-sample criteria ------------------------------------- */

int bv_math_crit_bv(double bias, double variance, double bias_ce, double variance_ce)
{
	return bias > bias_ce && variance < variance_ce;
}

int bv_math_crit_grad(double log_qs_y, double log_ps_y, double log_pt_y, double T)
{
	const double a = exp(log_qs_y) - 1.0;                     /* dCE/ds_y */
	const double b = T * (exp(log_ps_y) - exp(log_pt_y)) - a; /* the soft term's, minus a */
	return fabs(b) > fabs(a);
}

int bv_math_majority(double agree, double total)
{
	return 2 * agree > total;
}

int bv_math_crit_teacher(double ce_t, double ce_s)
{
	return ce_t > ce_s;
}

/* ---- the decomposition -------------------------------------------------- */

/* l_k = (1/W) sum_r w_r log q_r[k], summed in replica order */
static double mean_logp(const double *logp, size_t stride, int B, int k, const double *w,
			double W)
{
	double sum = 0;
	for (int r = 0; r < B; r++) {
		const double wr = w ? w[r] : 1.0;
		if (wr != 0)
			sum += wr * logp[(size_t)r * stride + (size_t)k];
	}
	return sum / W;
}

void bv_math_decompose(bv_math_decomp *out, const double *logp, size_t stride, int B, int K,
		       int y, const double *w)
{
	double W = 0;
	for (int r = 0; r < B; r++)
		W += w ? w[r] : 1.0;
	if (!(W > 0)) {
		out->bias = out->variance = out->loss = NAN;
		return;
	}
	/* log Z = m + log sum_k exp(l_k - m), m = max_k l_k: two passes over l,
	 * recomputed (the same bits) rather than stored, so that any K works
	 * without a buffer */
	double m = -INFINITY;
	for (int k = 0; k < K; k++) {
		const double l = mean_logp(logp, stride, B, k, w, W);
		if (l > m)
			m = l;
	}
	double sum = 0;
	for (int k = 0; k < K; k++)
		sum += exp(mean_logp(logp, stride, B, k, w, W) - m);
	const double log_z = m + log(sum), l_y = mean_logp(logp, stride, B, y, w, W);
	out->bias = log_z - l_y;   /* -log qbar[y] */
	out->variance = -log_z;    /* mean_r KL(qbar || q_r) */
	out->loss = -l_y;          /* mean_r -log q_r[y] */
}
