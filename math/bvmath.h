/*
 * math: the formulas of SPEC.md, once. Every layer that computes a loss, a
 * criterion or a decomposition calls these: nn's training losses, analysis'
 * decomposition and criteria, db's SQL functions. Plain C on caller-owned
 * arrays, no allocation, no state, nothing but libm (built position-
 * independent, so that a loadable SQLite extension can link it too).
 *
 * Notation (SPEC.md): z a row of K float32 logits, T > 0 a temperature,
 * p^T = softmax(z / T), q = p^1; s the student's logits, t the teacher's, y the
 * label. Everything is in double and in log space: a probability is the exp of
 * a log-probability, never the other way round, so no log of an underflowed
 * probability is ever taken.
 *
 * Where a faster path exists (analysis/decompose.c's vectorised
 * decomposition), the function here is its reference and tests/test_math.c
 * holds the two together.
 */
#ifndef BV_MATH_H
#define BV_MATH_H

#include <stddef.h>

/* ---- vectorised exp and log ------------------------------------------- */

/* On x86-64 with GCC: compile the function for AVX-512, AVX2 and the baseline,
 * the loader picking the best for the machine. For loops worth vectorising;
 * with floating-point contraction off (ISO C mode) every clone rounds alike. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
/* (not under ThreadSanitizer, whose runtime is not up when the loader runs the
 * clones' resolvers) */
#define BV_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BV_TARGET_CLONES
#endif

/* In place, x[i] = exp(x[i]) and x[i] = log(x[i]) for i < n, vectorised
 * (math/vmath.c), within a few ulps of libm. bv_vexp: any input (0 under
 * -708, +inf over 709.78, NaN stays NaN). bv_vlog: positive normal finite
 * inputs only (no check: 0, subnormals, negatives and infinities give
 * meaningless values). */
void bv_vexp(double *x, size_t n);
void bv_vlog(double *x, size_t n);
/* The index of the first NaN or infinity of x[0..n), or n when all are finite. */
size_t bv_first_nonfinite(const float *x, size_t n);

/* ---- softmax and losses ------------------------------------------------- */

/* lse_T(z) = m + log sum_k exp(z_k / T - m), m = max_k z_k / T: the log of
 * softmax's denominator. K >= 1. */
double bv_math_logsumexp(const float *z, int K, double T);

/* out[k] = log p^T[k] = z_k / T - lse_T(z) for k < K (out holds K doubles). */
void bv_math_log_softmax(double *out, const float *z, int K, double T);

/* out[k] = log q[k] = (z_k - m) - log sum_j exp(z_j - m), m = max_k z_k (T = 1),
 * with its exps through bv_vexp: the formula of decompose's fast path, within
 * a few ulps of bv_math_log_softmax and several times faster for small K
 * (the SQL aggregates' per-row step). tmp holds K rounded up to a multiple
 * of 8 doubles of scratch; finite logits. */
void bv_math_log_softmax_fast(double *out, double *tmp, const float *z, int K);

/* log p^T[c] = z_c / T - lse_T(z): one entry of bv_math_log_softmax, the same bits. */
double bv_math_log_softmax_at(const float *z, int K, int c, double T);

/* The predicted class: the index of the largest of z[0..K) (finite logits),
 * the first on a tie; how every accuracy is counted (training, import,
 * decompose). Inline, so that it is vectorised as its callers are (decompose's
 * -O3 and AVX-512 clones). */
static inline int bv_math_argmax(const float *z, int K)
{
	/* the largest value first, in 8 independent lanes (a loop without a
	 * branch, which the compiler can keep in vector registers), then its first
	 * index: the same answer as one scan keeping the first maximum, for finite
	 * logits (import computes the accuracy of every recorded epoch: 10^9 of them
	 * at CIFAR-100 size) */
	float lane[8];
	int j = 0;
	for (int l = 0; l < 8; l++)
		lane[l] = z[0];
	for (; j + 8 <= K; j += 8)
		for (int l = 0; l < 8; l++)
			lane[l] = z[j + l] > lane[l] ? z[j + l] : lane[l];
	float m = lane[0];
	for (int l = 1; l < 8; l++)
		m = lane[l] > m ? lane[l] : m;
	for (; j < K; j++)
		m = z[j] > m ? z[j] : m;
	for (j = 0; j < K - 1 && z[j] != m; j++) /* bounded: a NaN never equals m */
		;
	return j;
}

/* The share of n samples (rows of K logits) whose first argmax is the label;
 * 0 for n = 0. Training's, collect's and import's accuracy. */
double bv_math_accuracy(const float *logits, const int *y, int n, int K);

/* CE = -log q[y] = lse_1(z) - z_y: the cross-entropy at the label (T = 1). */
double bv_math_ce(const float *z, int K, int y);

/* H = -sum_k p_t^T[k] log p_s^T[k] from the two rows of log-probabilities
 * (log_pt = log p_t^T, log_ps = log p_s^T): the KD soft term, the
 * cross-entropy to the teacher's tempered distribution. */
double bv_math_soft_ce_logp(const double *log_pt, const double *log_ps, int K);

/* H of bv_math_soft_ce_logp from the logits s and t at temperature T (the
 * same bits as through bv_math_log_softmax). */
double bv_math_soft_ce(const float *s, const float *t, int K, double T);

/* -sum_k p[k] log p[k] from a row of log-probabilities log_p: the entropy
 * (a term of 0 where p[k] underflows to 0). */
double bv_math_entropy_logp(const double *log_p, int K);

/* KL(p || q) = sum_k p[k] (log p[k] - log q[k]) from two rows of
 * log-probabilities: summed term by term, not as H(p, q) - H(p), so that a
 * small divergence keeps its digits. */
double bv_math_kl_logp(const double *log_p, const double *log_q, int K);

/* w = 1 - exp(-CEs / (CEt + 1e-7)): the WSL weight from the untempered
 * cross-entropies of student and teacher at the label (a constant in
 * training: no gradient flows through it). */
double bv_math_wsl_weight(double ce_s, double ce_t);

/* ---- regularization-sample criteria ------------------------------------- */

/* bv: bias_kd > bias_ce and variance_kd < variance_ce (the student's bias
 * rises and its variance falls against the paired ce students). */
int bv_math_crit_bv(double bias, double variance, double bias_ce, double variance_ce);

/* grad, for one replica: |b| > |a| with a = q_s[y] - 1 and
 * b = T (p_s^T[y] - p_t^T[y]) - a, from log q_s[y], log p_s^T[y] and
 * log p_t^T[y]: at the true-class logit the soft part's gradient outweighs
 * the hard part's. */
int bv_math_crit_grad(double log_qs_y, double log_ps_y, double log_pt_y, double T);

/* The grad criterion's vote: agree > total / 2 (a strict majority; exactly
 * half is not enough), agree and total being (weighted) counts of replicas. */
int bv_math_majority(double agree, double total);

/* teacher: CEt > CEs (the teacher is less sure of the truth than the student). */
int bv_math_crit_teacher(double ce_t, double ce_s);

/* ---- the decomposition (Heskes 1998, log loss) -------------------------- */

typedef struct bv_math_decomp {
	double bias, variance, loss;
} bv_math_decomp;

/*
 * The per-sample decomposition from the log-probabilities log q_r (T = 1) of
 * B replicas: row r (K doubles) at logp + r * stride, weight w[r] (w NULL:
 * all 1; a replica of weight 0 is skipped, its row never read), W = sum_r w_r:
 *   l_k      = (1/W) sum_r w_r log q_r[k]
 *   log Z    = lse_k(l)                         (Z <= 1 by Jensen)
 *   bias     = KL(y || qbar) = -log qbar[y] = log Z - l_y
 *   variance = (1/W) sum_r w_r KL(qbar || q_r) = -log Z
 *   loss     = (1/W) sum_r w_r (-log q_r[y]) = -l_y = bias + variance
 * with qbar = exp(l) / Z the normalised geometric mean. NaN for all three
 * when W is not > 0. The naive reference of analysis/decompose.c's fast
 * paths (bv_decompose_samples from logits, bv_decompose_logp).
 */
void bv_math_decompose(bv_math_decomp *out, const double *logp, size_t stride, int B, int K,
		       int y, const double *w);

#endif
