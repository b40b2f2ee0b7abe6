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
 * between the passes.
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

/* sum of a[i] * b[i] over [0, len) */
static double row_dot(const float *a, const float *b, int len)
{
	float acc[16] = {0};
	int i = 0;
	for (; i + 16 <= len; i += 16)
		for (int j = 0; j < 16; j++)
			acc[j] += a[i + j] * b[i + j];
	double s = 0;
	for (; i < len; i++)
		s += (double)a[i] * b[i];
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
void bv_bn_forward(float *out, float *xhat, float *invstd, const float *in, const float *gamma,
		   const float *beta, float *run_mean, float *run_var, int n, int c, int hw,
		   int train, float momentum, float eps)
{
	const size_t cs = (size_t)c * hw; /* stride between the rows of one channel */
	const double N = (double)n * hw;
	for (int ch = 0; ch < c; ch++) {
		const float *x = in + (size_t)ch * hw;
		float mean, inv;
		if (train) {
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
			inv = (float)(1.0 / sqrt(var + eps));
			invstd[ch] = inv;
			if (run_mean && run_var) {
				const double unbiased = N > 1 ? var * N / (N - 1) : var;
				run_mean[ch] = (float)((1.0 - momentum) * run_mean[ch] + momentum * m);
				run_var[ch] = (float)((1.0 - momentum) * run_var[ch] + momentum * unbiased);
			}
		} else {
			mean = run_mean[ch];
			inv = (float)(1.0 / sqrt((double)run_var[ch] + eps));
		}
		const float g = gamma[ch], b = beta[ch];
		for (int i = 0; i < n; i++) {
			const float *xr = x + i * cs;
			float *o = out + (size_t)ch * hw + i * cs;
			if (train) {
				float *xh = xhat + (size_t)ch * hw + i * cs;
				for (int k = 0; k < hw; k++) {
					const float v = (xr[k] - mean) * inv;
					xh[k] = v;
					o[k] = g * v + b;
				}
			} else {
				for (int k = 0; k < hw; k++)
					o[k] = g * ((xr[k] - mean) * inv) + b;
			}
		}
	}
}

/*
 * Per channel, with sums over its N = n*hw values:
 * din += gamma * invstd / N * (N dout - sum dout - xhat sum(dout xhat)),
 * dgamma += sum(dout xhat), dbeta += sum dout. din may be NULL.
 */
void bv_bn_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *xhat,
		    const float *invstd, const float *gamma, int n, int c, int hw)
{
	const size_t cs = (size_t)c * hw;
	const double N = (double)n * hw;
	for (int ch = 0; ch < c; ch++) {
		const size_t off = (size_t)ch * hw;
		double sdy = 0, sdyx = 0;
		for (int i = 0; i < n; i++) {
			sdy += nn_sum_f32(dout + off + i * cs, hw);
			sdyx += row_dot(dout + off + i * cs, xhat + off + i * cs, hw);
		}
		dgamma[ch] += (float)sdyx;
		dbeta[ch] += (float)sdy;
		if (!din)
			continue;
		const float a = gamma[ch] * invstd[ch], m1 = (float)(sdy / N), m2 = (float)(sdyx / N);
		for (int i = 0; i < n; i++) {
			const float *dy = dout + off + i * cs, *xh = xhat + off + i * cs;
			float *dx = din + off + i * cs;
			for (int k = 0; k < hw; k++)
				dx[k] += a * (dy[k] - m1 - xh[k] * m2);
		}
	}
}
