/*
 * The per-sample bias/variance decomposition of log loss (Heskes 1998) and the
 * regularization-sample criteria of SPEC.md, on plain float32 logit arrays.
 * The database-driven `decompose` step calls bv_decompose_sample once per
 * (sample, method, epoch) with rows pointing into (B, N, K) snapshots, so it
 * is written for speed: no allocation and no limit on K, one exp per logit
 * plus one per class, one log per replica.
 *
 * Softmax is shift-invariant. With c_r = max_k z_r[k], s_r = sum_k
 * exp(z_r[k] - c_r) (so log q_r[k] = z_r[k] - c_r - log s_r) and weights w_r,
 * W = sum_r w_r:
 *   d_k = (1/W) sum_r w_r (z_r[k] - c_r)   mean centred logit
 *   L   = (1/W) sum_r w_r log s_r          so that l_k = d_k - L
 *   loss = L - d_y,  bias = lse_k(d) - d_y,  variance = L - lse_k(d)
 * Each is a difference of terms of size log K, never of the logits' size, so
 * rounding stays at ulps of log K: a zero variance comes out as 0 (exactly 0
 * for one replica) rather than as -1e-15 noise of a large logsumexp.
 * Pass 1 walks each replica's row once (max, argmax, s_r, q_r[y]); pass 2
 * forms d_k one class at a time (A_k - sum_r w_r c_r; twice, for the max and
 * then the sum of exps), so no K-sized buffer is needed.
 */
#include "analysis.h"

#include <math.h>
#include <string.h>

static double log_softmax_at(const float *z, int K, int y, double T);

/* ---- the decomposition -------------------------------------------------- */

/* W d_k + sum_r w_r c_r = sum_r w_r z_r[k], skipping weight-0 rows unread */
static double weighted_column(const float *logits, size_t stride, int B, int k,
			      const double *weights)
{
	double a = 0;
	if (weights) {
		for (int r = 0; r < B; r++)
			if (weights[r] != 0)
				a += weights[r] * logits[(size_t)r * stride + (size_t)k];
	} else {
		for (int r = 0; r < B; r++)
			a += logits[(size_t)r * stride + (size_t)k];
	}
	return a;
}

/* The decomposition; with ce_t not NaN also the weighted mean WSL weight
 * 1 - exp(-CE_s / (ce_t + 1e-7)) of the replicas, from the same pass. */
static void decompose(bv_bv *out, double *wsl, const float *logits, size_t stride, int B, int K,
		      int y, const double *weights, double ce_t)
{
	double W = 0, sum_c = 0, sum_log_s = 0, p_true = 0, acc = 0, sum_wsl = 0;

	/* pass 1: c_r, log s_r, q_r[y] and the argmax of each replica's row */
	for (int r = 0; r < B; r++) {
		const double w = weights ? weights[r] : 1.0;
		if (w == 0)
			continue;
		const float *z = logits + (size_t)r * stride;
		int arg = 0; /* first max wins, like the rest of bvtool */
		for (int k = 1; k < K; k++)
			if (z[k] > z[arg])
				arg = k;
		const double c = z[arg];
		double s = 0, e_y = 0;
		for (int k = 0; k < K; k++) {
			const double e = exp((double)z[k] - c);
			s += e;
			if (k == y)
				e_y = e;
		}
		const double log_s = log(s);
		W += w;
		sum_c += w * c;
		sum_log_s += w * log_s;
		if (wsl) /* CE_s = -log q_r[y] = c_r + log s_r - z_r[y] */
			sum_wsl += w * (1.0 - exp(-(c + log_s - (double)z[y]) / (ce_t + 1e-7)));
		p_true += w * (e_y / s); /* q_r[y] = exp(z_y - c_r) / s_r */
		acc += arg == y ? w : 0.0;
	}
	if (!(W > 0)) {
		out->bias = out->variance = out->loss = out->p_true = out->acc = NAN;
		if (wsl)
			*wsl = NAN;
		return;
	}
	if (wsl)
		*wsl = sum_wsl / W;

	/* pass 2: lse_k(d) = m + log sum_k exp(d_k - m), m = max_k d_k */
	double m = -INFINITY, d_y = 0;
	for (int k = 0; k < K; k++) {
		const double d = (weighted_column(logits, stride, B, k, weights) - sum_c) / W;
		if (d > m)
			m = d;
		if (k == y)
			d_y = d;
	}
	double s = 0;
	for (int k = 0; k < K; k++)
		s += exp((weighted_column(logits, stride, B, k, weights) - sum_c) / W - m);
	const double lse_d = m + log(s);
	const double L = sum_log_s / W;

	out->loss = L - d_y;         /* (1/W) sum_r w_r (-log q_r[y]) = -l_y */
	out->bias = lse_d - d_y;     /* -log qbar[y] = -l_y + log Z */
	out->variance = L - lse_d;   /* mean_r KL(qbar || q_r) = -log Z, >= 0 by Jensen */
	out->p_true = p_true / W;
	out->acc = acc / W;
}

void bv_decompose_sample(bv_bv *out, const float *logits, size_t stride, int B, int K, int y,
			 const double *weights)
{
	decompose(out, NULL, logits, stride, B, K, y, weights, NAN);
}

void bv_decompose_sample_wsl(bv_bv *out, double *wsl, const float *logits, size_t stride, int B,
			     int K, int y, const double *weights, const float *teacher)
{
	decompose(out, wsl, logits, stride, B, K, y, weights, -log_softmax_at(teacher, K, y, 1.0));
}

/* ---- regularization-sample criteria ------------------------------------- */

static const char *criterion_names[] = {
	[BV_CRIT_BV] = "bv", [BV_CRIT_GRAD] = "grad", [BV_CRIT_TEACHER] = "teacher",
};

const char *bv_criterion_name(bv_criterion c)
{
	return (unsigned)c < BV_ARRAY_LEN(criterion_names) ? criterion_names[c] : "?";
}

int bv_criterion_parse(bv_criterion *out, const char *s, const char *what)
{
	for (unsigned i = 0; i < BV_ARRAY_LEN(criterion_names); i++)
		if (strcmp(s, criterion_names[i]) == 0) {
			*out = (bv_criterion)i;
			return 0;
		}
	return bv_error_set(BV_EINVAL, "%s: unknown criterion '%s' (expected bv, grad or teacher)",
			    what, s);
}

int bv_flag_bv(const bv_bv *student, const bv_bv *ce)
{
	return student->bias > ce->bias && student->variance < ce->variance;
}

/*
 * log softmax(z / T)[y], computed exactly as nn/loss.c's bv_log_softmax does
 * (same operations, same order), so that the grad criterion here and
 * kd-filter's online flag agree to the bit on the same logits.
 */
static double log_softmax_at(const float *z, int K, int y, double T)
{
	double mx = -INFINITY;
	for (int k = 0; k < K; k++)
		if (z[k] / T > mx)
			mx = z[k] / T;
	double sum = 0;
	for (int k = 0; k < K; k++)
		sum += exp(z[k] / T - mx);
	return z[y] / T - (mx + log(sum));
}

int bv_flag_grad(double *out_share, const float *logits, size_t stride, int B, int K, int y,
		 const float *teacher, double T)
{
	const double pt = exp(log_softmax_at(teacher, K, y, T)); /* p_t^T[y] */
	int n_agree = 0;

	for (int r = 0; r < B; r++) {
		const float *s = logits + (size_t)r * stride;
		/* a: gradient of CE at the true logit; b: that of the soft term, minus a */
		const double a = exp(log_softmax_at(s, K, y, 1.0)) - 1.0;
		const double b = T * (exp(log_softmax_at(s, K, y, T)) - pt) - a;
		n_agree += fabs(b) > fabs(a);
	}
	if (out_share)
		*out_share = B > 0 ? (double)n_agree / B : NAN;
	return 2 * n_agree > B; /* strict majority: exactly half is not enough */
}

int bv_flag_teacher(const float *teacher, int K, int y, double student_loss)
{
	return -log_softmax_at(teacher, K, y, 1.0) > student_loss;
}

double bv_wsl_weight_mean(const float *logits, size_t stride, int B, int K, int y,
			  const float *teacher)
{
	const double ce_t = -log_softmax_at(teacher, K, y, 1.0);
	double sum = 0;

	for (int r = 0; r < B; r++) {
		const double ce_s = -log_softmax_at(logits + (size_t)r * stride, K, y, 1.0);
		sum += 1.0 - exp(-ce_s / (ce_t + 1e-7)); /* as nn/loss.c's WSL weight */
	}
	return B > 0 ? sum / B : NAN;
}
