/*
 * The per-sample bias/variance decomposition of log loss (Heskes 1998) and the
 * regularization-sample criteria of SPEC.md, on plain float32 logit arrays.
 * The database-driven `decompose` step calls bv_decompose_sample once per
 * (sample, method, epoch) with rows pointing into (B, N, K) snapshots, so it
 * is written for speed: no allocation and no limit on K, one exp per logit
 * plus one per class, one log per replica, all of them through the vectorised
 * bv_vexp / bv_vlog (base/vmath.c) on buffers of a few hundred values.
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
 * forms the d_k (A_k - sum_r w_r c_r) up to 512 classes at a time.
 */
#include "analysis.h"

#include <math.h>
#include <string.h>

static double log_softmax_at(const float *z, int K, int y, double T);

/* ---- the decomposition -------------------------------------------------- */

enum {
	CHUNK = 512, /* doubles of the exp buffer: whole rows of up to 512 classes, or pieces of one */
	GROUP = 64,  /* replicas whose rows pass 1 puts through one bv_vexp call, at most */
};

/* d[k] = ((sum_r w_r z_r[k0 + k]) - sum_c) / W for k < n, over the rows of weight != 0:
 * the mean centred logit d_k of the classes k0 .. k0 + n - 1 */
static void centred_means(double *d, const float *logits, size_t stride, int B, int k0, int n,
			  const double *weights, double sum_c, double W)
{
	for (int k = 0; k < n; k++)
		d[k] = 0;
	for (int r = 0; r < B; r++) {
		const double w = weights ? weights[r] : 1.0;
		if (w == 0)
			continue;
		const float *z = logits + (size_t)r * stride + (size_t)k0;
		for (int k = 0; k < n; k++)
			d[k] += w * z[k];
	}
	for (int k = 0; k < n; k++)
		d[k] = (d[k] - sum_c) / W;
}

/* The decomposition; with ce_t not NaN also the weighted mean WSL weight
 * 1 - exp(-CE_s / (ce_t + 1e-7)) of the replicas, from the same pass. The exps
 * and logs go through bv_vexp / bv_vlog a buffer at a time. */
static void decompose(bv_bv *out, double *wsl, const float *logits, size_t stride, int B, int K,
		      int y, const double *weights, double ce_t)
{
	double W = 0, sum_c = 0, sum_log_s = 0, p_true = 0, acc = 0, sum_wsl = 0;
	double buf[CHUNK];
	double c[GROUP], ls[GROUP], e_y[GROUP], u[GROUP], wg[GROUP];
	const float *zg[GROUP];
	int arg_y[GROUP];
	const int per_group = K > CHUNK ? 1 : CHUNK / K < GROUP ? CHUNK / K : GROUP;

	/* pass 1, a group of replicas at a time: c_r = max_k z_r[k], log s_r with
	 * s_r = sum_k exp(z_r[k] - c_r), q_r[y] and whether the argmax is y */
	for (int r = 0; r < B;) {
		int g = 0;
		for (; r < B && g < per_group; r++) {
			const double w = weights ? weights[r] : 1.0;
			if (w == 0)
				continue;
			const float *z = logits + (size_t)r * stride;
			int arg = 0; /* first max wins, like the rest of bvtool */
			for (int k = 1; k < K; k++)
				if (z[k] > z[arg])
					arg = k;
			zg[g] = z;
			wg[g] = w;
			c[g] = z[arg];
			arg_y[g] = arg == y;
			g++;
		}
		if (g == 0)
			break;
		if (K <= CHUNK) { /* g whole rows in buf */
			for (int j = 0; j < g; j++)
				for (int k = 0; k < K; k++)
					buf[j * K + k] = (double)zg[j][k] - c[j];
			bv_vexp(buf, (size_t)g * K);
			for (int j = 0; j < g; j++) {
				double s = 0;
				for (int k = 0; k < K; k++)
					s += buf[j * K + k];
				ls[j] = s;
				e_y[j] = buf[j * K + y];
			}
		} else { /* one row (g == 1), CHUNK classes at a time */
			double s = 0;
			for (int k0 = 0; k0 < K; k0 += CHUNK) {
				const int n = K - k0 < CHUNK ? K - k0 : CHUNK;
				for (int k = 0; k < n; k++)
					buf[k] = (double)zg[0][k0 + k] - c[0];
				bv_vexp(buf, (size_t)n);
				for (int k = 0; k < n; k++)
					s += buf[k];
				if (y >= k0 && y < k0 + n)
					e_y[0] = buf[y - k0];
			}
			ls[0] = s;
		}
		for (int j = 0; j < g; j++)
			p_true += wg[j] * (e_y[j] / ls[j]); /* q_r[y] = exp(z_y - c_r) / s_r */
		bv_vlog(ls, (size_t)g);
		if (wsl) { /* CE_s = -log q_r[y] = c_r + log s_r - z_r[y] */
			for (int j = 0; j < g; j++)
				u[j] = -(c[j] + ls[j] - (double)zg[j][y]) / (ce_t + 1e-7);
			bv_vexp(u, (size_t)g);
		}
		for (int j = 0; j < g; j++) {
			W += wg[j];
			sum_c += wg[j] * c[j];
			sum_log_s += wg[j] * ls[j];
			if (wsl)
				sum_wsl += wg[j] * (1.0 - u[j]);
			acc += arg_y[j] ? wg[j] : 0.0;
		}
	}
	if (!(W > 0)) {
		out->bias = out->variance = out->loss = out->p_true = out->acc = NAN;
		if (wsl)
			*wsl = NAN;
		return;
	}
	if (wsl)
		*wsl = sum_wsl / W;

	/* pass 2: lse_k(d) = m + log sum_k exp(d_k - m), m = max_k d_k; with more
	 * than CHUNK classes the d_k are formed twice, for the max and for the sum */
	double m = -INFINITY, d_y = 0;
	for (int k0 = 0; k0 < K; k0 += CHUNK) {
		const int n = K - k0 < CHUNK ? K - k0 : CHUNK;
		centred_means(buf, logits, stride, B, k0, n, weights, sum_c, W);
		for (int k = 0; k < n; k++)
			m = buf[k] > m ? buf[k] : m;
		if (y >= k0 && y < k0 + n)
			d_y = buf[y - k0];
	}
	double s = 0;
	for (int k0 = 0; k0 < K; k0 += CHUNK) {
		const int n = K - k0 < CHUNK ? K - k0 : CHUNK;
		if (K > CHUNK)
			centred_means(buf, logits, stride, B, k0, n, weights, sum_c, W);
		for (int k = 0; k < n; k++)
			buf[k] -= m;
		bv_vexp(buf, (size_t)n);
		for (int k = 0; k < n; k++)
			s += buf[k];
	}
	buf[0] = s;
	bv_vlog(buf, 1);
	const double lse_d = m + buf[0];
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
			     int K, int y, const double *weights, double teacher_ce)
{
	decompose(out, wsl, logits, stride, B, K, y, weights, teacher_ce);
}

double bv_ce_at(const float *z, int K, int y)
{
	return -log_softmax_at(z, K, y, 1.0);
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
