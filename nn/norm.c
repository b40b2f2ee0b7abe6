/*
 * Batch normalisation over NCHW activations (BatchNorm2d), with PyTorch's
 * semantics: train mode normalises each channel with the mean and the biased
 * variance of its n*hw values and updates the running mean and the unbiased
 * running variance; eval mode normalises with the running statistics.
 *
 * A channel is n rows of hw contiguous floats. Its statistics are two passes
 * (mean, then the mean square deviation: no E[x^2] - E[x]^2 cancellation),
 * each row summed in float lanes that vectorise and rows combined in double.
 * For the n = 128 ResNet-20 shapes one channel (at most 512 KiB) stays in L2
 * between the passes. Channels are independent and split over the threads
 * (nn_parallel_for).
 */
#include "nn.h"

#include "internal.h"

#include <math.h>

/* sum of (x - mean)^2 over x[0..len) */
static double row_sqdev(const float *x, int len, float mean)
{
	float acc[16] = {0};
	int i = 0;
	for (; i + 16 <= len; i += 16)
		for (int j = 0; j < 16; j++) {
			const float e = x[i + j] - mean;
			acc[j] += e * e;
		}
	double s = 0;
	for (; i < len; i++)
		s += ((double)x[i] - mean) * ((double)x[i] - mean);
	for (int j = 0; j < 16; j++)
		s += acc[j];
	return s;
}

/*
 * Train: mean = sum x / N, var = sum (x - mean)^2 / N (N = n*hw),
 * invstd = 1 / sqrt(var + eps), xhat = (x - mean) * invstd,
 * out = gamma * xhat + beta; run_mean = (1 - m) run_mean + m mean,
 * run_var = (1 - m) run_var + m var N / (N - 1) (var itself when N = 1).
 * run_mean and run_var may be NULL in train mode (no running statistics).
 * Eval: the same with the running statistics; xhat and invstd are not
 * written and may be NULL.
 */
typedef struct bn_fwd {
	float *out, *xhat, *invstd, *mean, *run_mean, *run_var;
	const float *in, *gamma, *beta;
	int n, c, hw, train, relu;
	float momentum, eps;
} bn_fwd;

/* channels [lo, hi) of bv_bn_forward */
static void bn_forward_channels(void *arg, size_t lo, size_t hi)
{
	const bn_fwd *a = arg;
	const int n = a->n, hw = a->hw;
	const size_t cs = (size_t)a->c * hw; /* stride between the rows of one channel */
	const double N = (double)n * hw;
	for (size_t ch = lo; ch < hi; ch++) {
		const float *x = a->in + ch * hw;
		float mean, inv;
		if (a->train) {
			double s = 0;
			for (int i = 0; i < n; i++)
				s += nn_sum_f32(x + i * cs, hw);
			const double m = s / N;
			double ss = 0;
			for (int i = 0; i < n; i++)
				ss += row_sqdev(x + i * cs, hw, (float)m);
			/* the float mean's own error, removed: sum (x - mf)^2 = ss_exact + N (m - mf)^2 */
			double var = ss / N - (m - (float)m) * (m - (float)m);
			var = var > 0 ? var : 0;
			mean = (float)m;
			inv = (float)(1.0 / sqrt(var + a->eps));
			a->invstd[ch] = inv;
			if (a->mean)
				a->mean[ch] = mean;
			if (a->run_mean && a->run_var) {
				const double unbiased = N > 1 ? var * N / (N - 1) : var;
				const double mo = a->momentum;
				a->run_mean[ch] = (float)((1.0 - mo) * a->run_mean[ch] + mo * m);
				a->run_var[ch] = (float)((1.0 - mo) * a->run_var[ch] + mo * unbiased);
			}
		} else {
			mean = a->run_mean[ch];
			inv = (float)(1.0 / sqrt((double)a->run_var[ch] + a->eps));
		}
		const float g = a->gamma[ch], b = a->beta[ch];
		for (int i = 0; i < n; i++) {
			const float *xr = x + i * cs;
			float *o = a->out + ch * hw + i * cs;
			if (a->train && a->xhat) {
				float *xh = a->xhat + ch * hw + i * cs;
				for (int k = 0; k < hw; k++) {
					const float v = (xr[k] - mean) * inv;
					xh[k] = v;
					o[k] = g * v + b;
				}
			} else {
				for (int k = 0; k < hw; k++)
					o[k] = g * ((xr[k] - mean) * inv) + b;
			}
			if (a->relu) /* the ReLU after it, fused: the row is still in L1 */
				for (int k = 0; k < hw; k++)
					o[k] = o[k] > 0.0f ? o[k] : 0.0f;
		}
	}
}

/* Channels per thread, at least: enough values that a thread pays off. */
static size_t channel_chunk(int n, int hw)
{
	const size_t per = (size_t)n * hw;
	return per >= NN_MIN_CHUNK ? 1 : (NN_MIN_CHUNK + per - 1) / per;
}

void bv_bn_forward(float *out, float *xhat, float *invstd, const float *in, const float *gamma,
		   const float *beta, float *run_mean, float *run_var, int n, int c, int hw,
		   int train, float momentum, float eps)
{
	nn_bn_forward(out, xhat, invstd, NULL, in, gamma, beta, run_mean, run_var, n, c, hw, train,
		      momentum, eps, 0);
}

void nn_bn_forward(float *out, float *xhat, float *invstd, float *mean, const float *in,
		   const float *gamma, const float *beta, float *run_mean, float *run_var, int n,
		   int c, int hw, int train, float momentum, float eps, int relu)
{
	bn_fwd a = {out, xhat, invstd, mean, run_mean, run_var, in, gamma, beta, n, c, hw, train,
		    relu, momentum, eps};
	/* channels are independent: split them over the threads */
	nn_parallel_for((size_t)c, channel_chunk(n, hw), bn_forward_channels, &a);
}

/*
 * Per channel, with sums over its N = n*hw values:
 * din += gamma * invstd / N * (N dout - sum dout - xhat sum(dout xhat)),
 * dgamma += sum(dout xhat), dbeta += sum dout. din may be NULL.
 */
typedef struct bn_bwd {
	float *din, *dgamma, *dbeta;
	const float *dout, *xhat, *invstd, *gamma;
	const float *x, *mean; /* without xhat: xhat = (x - mean) invstd, recomputed */
	const float *gate; /* a fused ReLU's output: dout counts where gate > 0; or NULL */
	int n, c, hw, add;
} bn_bwd;

/* sum of dy * xhat over a row, xhat = (x - mean) inv recomputed (mean 0 and
 * inv 1 pass a stored xhat as x, unchanged to the bit) */
static double row_dot_x(const float *dy, const float *x, float mean, float inv, int len)
{
	float acc[16] = {0};
	int i = 0;
	for (; i + 16 <= len; i += 16)
		for (int j = 0; j < 16; j++)
			acc[j] += dy[i + j] * ((x[i + j] - mean) * inv);
	double s = 0;
	for (; i < len; i++)
		s += (double)dy[i] * ((x[i] - mean) * inv);
	for (int j = 0; j < 16; j++)
		s += acc[j];
	return s;
}

/* sum of dy and of dy * xhat over a row, dy zeroed where gate <= 0, xhat as
 * in row_dot_x; not inlined: inlined into its caller, GCC 12 leaves the loop
 * scalar */
__attribute__((noinline)) static void gated_sums_x(double *sdy, double *sdyx, const float *dy,
						   const float *x, float mean, float inv,
						   const float *gate, int len)
{
	float a[16] = {0}, b[16] = {0};
	int i = 0;
	for (; i + 16 <= len; i += 16)
		for (int j = 0; j < 16; j++) {
			const float v = dy[i + j], d = gate[i + j] > 0.0f ? v : 0.0f;
			a[j] += d;
			b[j] += d * ((x[i + j] - mean) * inv);
		}
	double s = 0, t = 0;
	for (; i < len; i++) {
		const float v = dy[i];
		const double d = gate[i] > 0.0f ? v : 0.0f;
		s += d;
		t += d * ((x[i] - mean) * inv);
	}
	for (int j = 0; j < 16; j++)
		s += a[j], t += b[j];
	*sdy += s;
	*sdyx += t;
}

/* channels [lo, hi) of bv_bn_backward */
static void bn_backward_channels(void *arg, size_t lo, size_t hi)
{
	const bn_bwd *a = arg;
	const int n = a->n, hw = a->hw;
	const size_t cs = (size_t)a->c * hw;
	const double N = (double)n * hw;
	/* xhat = (src - mu) sc: the input with its mean and invstd, or a stored
	 * xhat with 0 and 1, which (x - 0) * 1 returns unchanged */
	const float *src = a->xhat ? a->xhat : a->x;
	for (size_t ch = lo; ch < hi; ch++) {
		const size_t off = ch * hw;
		const float inv = a->invstd[ch];
		const float mu = a->xhat ? 0.0f : a->mean[ch], sc = a->xhat ? 1.0f : inv;
		double sdy = 0, sdyx = 0;
		for (int i = 0; i < n; i++) {
			const float *dy = a->dout + off + i * cs, *xr = src + off + i * cs;
			if (a->gate) {
				gated_sums_x(&sdy, &sdyx, dy, xr, mu, sc, a->gate + off + i * cs, hw);
			} else {
				sdy += nn_sum_f32(dy, hw);
				sdyx += row_dot_x(dy, xr, mu, sc, hw);
			}
		}
		a->dgamma[ch] += (float)sdyx;
		a->dbeta[ch] += (float)sdy;
		if (!a->din)
			continue;
		const float g = a->gamma[ch] * inv, m1 = (float)(sdy / N), m2 = (float)(sdyx / N);
		for (int i = 0; i < n; i++) {
			const float *dy = a->dout + off + i * cs, *xr = src + off + i * cs;
			const float *gt = a->gate ? a->gate + off + i * cs : NULL;
			float *dx = a->din + off + i * cs;
			/* dx (+)= g (d - m1 - xhat m2), d = dy where the gate is open; a loop
			 * each, branch-free, so that both vectorise */
			if (gt)
				for (int k = 0; k < hw; k++) {
					const float v = dy[k], d = gt[k] > 0.0f ? v : 0.0f;
					const float r = g * (d - m1 - ((xr[k] - mu) * sc) * m2);
					dx[k] = a->add ? dx[k] + r : r;
				}
			else
				for (int k = 0; k < hw; k++) {
					const float r = g * (dy[k] - m1 - ((xr[k] - mu) * sc) * m2);
					dx[k] = a->add ? dx[k] + r : r;
				}
		}
	}
}

void nn_bn_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *xhat,
		    const float *x, const float *mean, const float *invstd, const float *gamma,
		    const float *gate, int n, int c, int hw, int add)
{
	bn_bwd a = {din, dgamma, dbeta, dout, xhat, invstd, gamma, x, mean, gate, n, c, hw, add};
	nn_parallel_for((size_t)c, channel_chunk(n, hw), bn_backward_channels, &a);
}

void bv_bn_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *xhat,
		    const float *invstd, const float *gamma, int n, int c, int hw)
{
	nn_bn_backward(din, dgamma, dbeta, dout, xhat, NULL, NULL, invstd, gamma, NULL, n, c, hw, 1);
}
