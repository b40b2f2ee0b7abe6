/*
 * The fast paths of the per-sample bias/variance decomposition of log loss
 * (Heskes 1998), and the regularization-sample criteria of SPEC.md over the
 * replicas of a sample. The formulas, and the naive reference each fast path
 * is tested against (tests/test_math.c), are math/'s: bv_math_decompose, and
 * bv_math_crit_* for the criteria, which are called here, not rewritten.
 *
 * The database-driven `decompose` step calls bv_decompose_samples on blocks
 * of samples of (B, N, K) snapshots, so it is written for speed: no
 * allocation up to 4096 classes and no limit on K, one exp per logit plus one
 * per class, one log per replica, all of them through the vectorised
 * bv_vexp / bv_vlog (base/vmath.c) on buffers of thousands of values.
 *
 * Softmax is shift-invariant. With c_r = max_k z_r[k], s_r = sum_k
 * exp(z_r[k] - c_r) (so log q_r[k] = z_r[k] - c_r - log s_r) and weights w_r,
 * W = sum_r w_r:
 *   d_k = (1/W) sum_r w_r (z_r[k] - c_r)   mean centred logit
 *   L   = (1/W) sum_r w_r log s_r          so that l_k = d_k - L
 *   loss = L - d_y,  bias = lse_k(d) - d_y,  variance = L - lse_k(d)
 * Each is a difference of terms of size log K, never of the logits' size, so
 * rounding stays at ulps of log K: a zero variance comes out as 0 (exactly 0
 * for one replica) rather than as -1e-15 noise of a large log-sum-exp.
 * Pass 1 walks each replica's row once (max, argmax, s_r, q_r[y]); pass 2
 * forms the d_k (A_k - sum_r w_r c_r) of every sample of a block.
 *
 * bv_decompose_logp is the same decomposition from log-probabilities already
 * computed (the bootstrap of the correlation decomposes each sample once per
 * draw, from log q_r stored once).
 */
#include "analysis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the decomposition -------------------------------------------------- */

enum {
	CAP = 4096,   /* doubles of the exp buffer (32 KiB): rows of many replicas and samples */
	ITEMS = 1024, /* (sample, replica) rows per pass-1 batch, at most */
	BLOCK = 64,   /* samples per block, at most */
};

/* One (sample, replica) row of pass 1. */
typedef struct item {
	const float *z; /* the row: K logits */
	double w, c;    /* its weight and c_r = max_k z_r[k] */
	int j, arg_y;   /* its sample in the block; whether its (first) argmax is the label */
} item;

/* A sample's weighted sums over its replicas. */
typedef struct sums {
	double W, c, log_s, p_true, acc, wsl;
} sums;

/* The sum of x[0..n) in 8 interleaved partial sums, added pairwise at the
 * end: no chain of n dependent additions (the lanes sit in vector registers),
 * and no more rounding than one running sum. At K = 100 the running sums of
 * pass 1 and pass 2 were a third of decompose's time. */
static inline double sum_lanes(const double *x, int n)
{
	double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
	int k = 0;
	for (; k + 8 <= n; k += 8)
		for (int l = 0; l < 8; l++)
			a[l] += x[k + l];
	double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
	for (; k < n; k++)
		s += x[k];
	return s;
}

/* max_k z[k]. The logits are finite (dc_load refuses others), and for finite
 * values z > m ? z : m is the maximum, which GCC vectorises only when told
 * that no NaN can occur; a signed zero makes no difference either: the first
 * index equal to the maximum is the same. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("finite-math-only", "no-signed-zeros")))
#endif
BV_TARGET_CLONES static float row_max(const float *z, int K)
{
	float m = z[0];
	for (int k = 1; k < K; k++)
		m = z[k] > m ? z[k] : m;
	return m;
}

/* Whether the first maximum m of z is at y: z[y] is m and no class before it is. */
static int first_max_at(const float *z, int y, float m)
{
	if (z[y] != m)
		return 0;
	int tie = 0;
	for (int k = 0; k < y; k++)
		tie |= z[k] == m;
	return !tie;
}

/* Pass 1 for a batch of rows: s_r = sum_k exp(z_r[k] - c_r) for all of them
 * through one bv_vexp call, then log s_r, q_r[y] and the WSL weight, added to
 * each row's sample in replica order. buf holds n_it * K doubles. */
BV_TARGET_CLONES static void pass1(sums *S, const item *it, int n_it, int K, const int *y,
				   const double *ce_t, double *buf)
{
	double v[ITEMS], u[ITEMS];
	for (int t = 0; t < n_it; t++)
		for (int k = 0; k < K; k++)
			buf[(size_t)t * K + k] = (double)it[t].z[k] - it[t].c;
	bv_vexp(buf, (size_t)n_it * K);
	for (int t = 0; t < n_it; t++) {
		const double *e = buf + (size_t)t * K;
		const double s = sum_lanes(e, K);
		v[t] = s;
		S[it[t].j].p_true += it[t].w * (e[y[it[t].j]] / s); /* q_r[y] = exp(z_y - c_r) / s_r */
	}
	bv_vlog(v, (size_t)n_it);
	/* the WSL weight 1 - exp(-CE_s / (CE_t + 1e-7)), bv_math_wsl_weight's
	 * formula with bv_vexp; CE_s = -log q_r[y] = c_r + log s_r - z_r[y] */
	if (ce_t) {
		for (int t = 0; t < n_it; t++)
			u[t] = -(it[t].c + v[t] - (double)it[t].z[y[it[t].j]]) / (ce_t[it[t].j] + 1e-7);
		bv_vexp(u, (size_t)n_it);
	}
	for (int t = 0; t < n_it; t++) {
		sums *x = &S[it[t].j];
		x->W += it[t].w;
		x->c += it[t].w * it[t].c;
		x->log_s += it[t].w * v[t];
		if (ce_t)
			x->wsl += it[t].w * (1.0 - u[t]);
		x->acc += it[t].arg_y ? it[t].w : 0.0;
	}
}

/* n <= BLOCK samples with n * K <= cap; sample j's replica r at
 * logits + r * stride + j * K, its weights at weights + j * w_stride */
BV_TARGET_CLONES static void decompose_block(bv_bv *out, double *wsl, const float *logits,
					     size_t stride, int B, int K, int n, const int *y,
					     const double *weights, size_t w_stride,
					     const double *ce_t, double *buf, size_t cap)
{
	sums S[BLOCK] = {{0}};
	item it[ITEMS];
	const int per_batch = cap / (size_t)K < ITEMS ? (int)(cap / (size_t)K) : ITEMS;
	int n_it = 0;

	/* pass 1: c_r = max_k z_r[k], whether the argmax is y, then batches of rows */
	for (int j = 0; j < n; j++)
		for (int r = 0; r < B; r++) {
			const double w = weights ? weights[(size_t)j * w_stride + (size_t)r] : 1.0;
			if (w == 0)
				continue;
			const float *z = logits + (size_t)r * stride + (size_t)j * K;
			/* c_r and whether the (first) argmax is the label, as bv_math_argmax
			 * counts it everywhere else */
			const float c = row_max(z, K);
			it[n_it++] = (item){z, w, c, j, first_max_at(z, y[j], c)};
			if (n_it == per_batch) {
				pass1(S, it, n_it, K, y, ce_t, buf);
				n_it = 0;
			}
		}
	if (n_it)
		pass1(S, it, n_it, K, y, ce_t, buf);

	/* pass 2: d_k = (1/W) sum_r w_r (z_r[k] - c_r) and lse_k(d) = m + log sum_k
	 * exp(d_k - m), m = max_k d_k, the exps of the whole block in one call */
	double m[BLOCK], d_y[BLOCK], lse[BLOCK];
	for (int j = 0; j < n; j++) {
		double *d = buf + (size_t)j * K;
		for (int k = 0; k < K; k++)
			d[k] = 0;
		m[j] = -INFINITY;
		d_y[j] = 0;
		if (!(S[j].W > 0))
			continue;
		for (int r = 0; r < B; r++) {
			const double w = weights ? weights[(size_t)j * w_stride + (size_t)r] : 1.0;
			if (w == 0)
				continue;
			const float *z = logits + (size_t)r * stride + (size_t)j * K;
			for (int k = 0; k < K; k++)
				d[k] += w * z[k];
		}
		for (int k = 0; k < K; k++) {
			d[k] = (d[k] - S[j].c) / S[j].W;
			m[j] = d[k] > m[j] ? d[k] : m[j];
		}
		d_y[j] = d[y[j]];
		for (int k = 0; k < K; k++)
			d[k] -= m[j];
	}
	bv_vexp(buf, (size_t)n * K);
	for (int j = 0; j < n; j++)
		lse[j] = S[j].W > 0 ? sum_lanes(buf + (size_t)j * K, K) : 1.0;
	bv_vlog(lse, (size_t)n);

	for (int j = 0; j < n; j++) {
		const sums *x = &S[j];
		bv_bv *o = &out[j];
		if (!(x->W > 0)) {
			o->bias = o->variance = o->loss = o->p_true = o->acc = NAN;
			if (wsl)
				wsl[j] = NAN;
			continue;
		}
		const double lse_d = m[j] + lse[j];
		const double L = x->log_s / x->W;
		o->loss = L - d_y[j];       /* (1/W) sum_r w_r (-log q_r[y]) = -l_y */
		o->bias = lse_d - d_y[j];   /* -log qbar[y] = -l_y + log Z */
		o->variance = L - lse_d;    /* mean_r KL(qbar || q_r) = -log Z, >= 0 by Jensen */
		o->p_true = x->p_true / x->W;
		o->acc = x->acc / x->W;
		if (wsl)
			wsl[j] = x->wsl / x->W;
	}
}

void bv_decompose_samples(bv_bv *out, double *wsl, const float *logits, size_t stride, int B,
			  int K, int n, const int *y, const double *weights, size_t w_stride,
			  const double *teacher_ce)
{
	double stack[CAP];
	double *buf = stack;
	size_t cap = CAP;
	if (K > CAP) { /* more classes than the stack buffer holds: one sample's row at a time */
		if (!(buf = malloc(sizeof(double) * (size_t)K))) {
			for (int j = 0; j < n; j++) {
				out[j].bias = out[j].variance = out[j].loss = out[j].p_true = out[j].acc = NAN;
				if (wsl)
					wsl[j] = NAN;
			}
			return;
		}
		cap = (size_t)K;
	}
	const int per_block = cap / (size_t)K < BLOCK ? (int)(cap / (size_t)K) : BLOCK;
	for (int j0 = 0; j0 < n; j0 += per_block) {
		const int nb = n - j0 < per_block ? n - j0 : per_block;
		decompose_block(out + j0, wsl ? wsl + j0 : NULL, logits + (size_t)j0 * K, stride, B, K,
				nb, y + j0, weights ? weights + (size_t)j0 * w_stride : NULL, w_stride,
				wsl ? teacher_ce + j0 : NULL, buf, cap);
	}
	if (buf != stack)
		free(buf);
}

void bv_decompose_sample(bv_bv *out, const float *logits, size_t stride, int B, int K, int y,
			 const double *weights)
{
	bv_decompose_samples(out, NULL, logits, stride, B, K, 1, &y, weights, 0, NULL);
}

void bv_decompose_sample_wsl(bv_bv *out, double *wsl, const float *logits, size_t stride, int B,
			     int K, int y, const double *weights, double teacher_ce)
{
	bv_decompose_samples(out, wsl, logits, stride, B, K, 1, &y, weights, 0, &teacher_ce);
}

/* ---- the decomposition from log-probabilities ---------------------------- */

/* bias, variance and loss of n samples (n <= BLOCK, n * K <= CAP) from
 * log-probabilities: sample j's replica b at logp + b * stride + j * K,
 * weighted by w[j * w_stride + b] (w NULL: all 1); the exps and logs of the
 * block in one vectorised call each */
BV_TARGET_CLONES static void logp_block(bv_math_decomp *out, const double *logp, size_t stride,
					int B, int K, int n, const int *y, const double *w,
					size_t w_stride)
{
	double l[CAP], m[BLOCK], s[BLOCK], ly[BLOCK], wsum[BLOCK];
	const size_t nk = (size_t)n * K;
	for (size_t i = 0; i < nk; i++)
		l[i] = 0;
	for (int j = 0; j < n; j++)
		wsum[j] = 0;
	/* replica by replica: its rows of the block are contiguous */
	for (int b = 0; b < B; b++) {
		const double *lp = logp + (size_t)b * stride;
		if (!w || w_stride == 0) { /* one weight for every sample: one long loop */
			const double wb = w ? w[b] : 1.0;
			if (wb == 0)
				continue;
			for (size_t i = 0; i < nk; i++)
				l[i] += wb * lp[i];
			for (int j = 0; j < n; j++)
				wsum[j] += wb;
			continue;
		}
		for (int j = 0; j < n; j++) {
			const double wb = w[(size_t)j * w_stride + (size_t)b];
			if (wb == 0)
				continue;
			for (int k = 0; k < K; k++)
				l[(size_t)j * K + k] += wb * lp[(size_t)j * K + k];
			wsum[j] += wb;
		}
	}
	/* l_k = (1/W) sum_b w_b log q_b[k], m = max_k l_k, then l_k - m for the exps */
	for (int j = 0; j < n; j++) {
		double *lj = l + (size_t)j * K, mx = -INFINITY;
		const double inv = 1.0 / wsum[j];
		for (int k = 0; k < K; k++) {
			lj[k] *= inv;
			mx = lj[k] > mx ? lj[k] : mx;
		}
		ly[j] = lj[y[j]];
		m[j] = mx;
		for (int k = 0; k < K; k++)
			lj[k] -= mx;
	}
	bv_vexp(l, (size_t)n * K);
	for (int j = 0; j < n; j++) {
		double sum = 0;
		for (int k = 0; k < K; k++)
			sum += l[(size_t)j * K + k];
		s[j] = wsum[j] > 0 ? sum : 1.0; /* bv_vlog takes positive numbers only */
	}
	bv_vlog(s, (size_t)n);
	for (int j = 0; j < n; j++) {
		bv_math_decomp *o = &out[j];
		if (!(wsum[j] > 0)) {
			o->bias = o->variance = o->loss = NAN;
			continue;
		}
		const double logZ = m[j] + s[j];
		o->bias = -ly[j] + logZ;  /* -log qbar[y] */
		o->variance = -logZ;      /* mean_b KL(qbar || q_b) */
		o->loss = -ly[j];         /* mean_b -log q_b[y] */
	}
}

void bv_decompose_logp(bv_math_decomp *out, const double *logp, size_t stride, int B, int K,
		       int n, const int *y, const double *w, size_t w_stride)
{
	if (K > CAP) { /* more classes than the stack buffer holds: the reference */
		for (int j = 0; j < n; j++)
			bv_math_decompose(&out[j], logp + (size_t)j * K, stride, B, K, y[j],
					  w ? w + (size_t)j * w_stride : NULL);
		return;
	}
	const int per_block = CAP / K < BLOCK ? CAP / K : BLOCK;
	for (int j0 = 0; j0 < n; j0 += per_block) {
		const int nb = n - j0 < per_block ? n - j0 : per_block;
		logp_block(out + j0, logp + (size_t)j0 * K, stride, B, K, nb, y + j0,
			   w ? w + (size_t)j0 * w_stride : NULL, w_stride);
	}
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
	return bv_math_crit_bv(student->bias, student->variance, ce->bias, ce->variance);
}

int bv_flag_grad(double *out_share, const float *logits, size_t stride, int B, int K, int y,
		 const float *teacher, double T)
{
	const double log_pt = bv_math_log_softmax_at(teacher, K, y, T); /* log p_t^T[y] */
	int n_agree = 0;

	for (int r = 0; r < B; r++) {
		const float *s = logits + (size_t)r * stride;
		n_agree += bv_math_crit_grad(bv_math_log_softmax_at(s, K, y, 1.0),
					     bv_math_log_softmax_at(s, K, y, T), log_pt, T);
	}
	if (out_share)
		*out_share = B > 0 ? (double)n_agree / B : NAN;
	return bv_math_majority(n_agree, B);
}

int bv_flag_teacher(const float *teacher, int K, int y, double student_loss)
{
	return bv_math_crit_teacher(bv_math_ce(teacher, K, y), student_loss);
}

double bv_wsl_weight_mean(const float *logits, size_t stride, int B, int K, int y,
			  const float *teacher)
{
	const double ce_t = bv_math_ce(teacher, K, y);
	double sum = 0;

	for (int r = 0; r < B; r++)
		sum += bv_math_wsl_weight(bv_math_ce(logits + (size_t)r * stride, K, y), ce_t);
	return B > 0 ? sum / B : NAN;
}
