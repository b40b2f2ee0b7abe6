/*
 * CNN layers: conv2d's im2col + sgemm and Winograd F(2x2, 3x3) paths against
 * the naive reference (many shapes: odd maps, a 1x1 map, chunks that split a
 * sample or end early; 1, 2 and 12 threads), the same bytes of forward and din
 * at 12 threads as at 1 (more threads than the 8 conv once stopped at, on any
 * machine), finite-difference gradient checks of conv2d, batch
 * norm, max pooling, global average pooling and the residual add (gradients
 * asserted clearly non-zero), batch-norm running statistics and eval mode
 * against hand-computed values, and the accumulate (+=) convention of every
 * backward. Prints the forward + backward speed of a ResNet-20 stage-1 conv.
 */
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h" /* nn_conv_threads: private to nn/ */
#include "nn.h"

static gsl_rng *rng;

static float *randn(size_t n, double sd)
{
	float *x = malloc((n ? n : 1) * sizeof(float));
	for (size_t i = 0; i < n; i++)
		x[i] = (float)gsl_ran_gaussian(rng, sd);
	return x;
}

static float *zeros(size_t n)
{
	return calloc(n ? n : 1, sizeof(float));
}

static float *copy(const float *x, size_t n)
{
	float *y = malloc((n ? n : 1) * sizeof(float));
	memcpy(y, x, n * sizeof(float));
	return y;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs((double)a[i] - b[i]) > m || isnan(a[i]) || isnan(b[i]))
			m = isnan(a[i]) || isnan(b[i]) ? INFINITY : fabs((double)a[i] - b[i]);
	return m;
}

static double max_abs(const float *a, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(a[i]) > m)
			m = fabs(a[i]);
	return m;
}

static double dot(const float *a, const float *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* |analytic - numeric| relative to 1 + |numeric|, folded into *worst */
static void fold(double *worst, double analytic, double numeric)
{
	double e = fabs(analytic - numeric) / (1 + fabs(numeric));
	if (e > *worst || isnan(e))
		*worst = isnan(e) ? INFINITY : e;
}

/* ---- conv2d: BLAS vs naive ---------------------------------------------- */

typedef struct conv_case {
	int n, c_in, h, w, c_out, kh, kw, stride, pad, bias;
} conv_case;

static bv_conv_dims dims_of(conv_case c)
{
	bv_conv_dims d = {.n = c.n, .c_in = c.c_in, .h = c.h, .w = c.w, .c_out = c.c_out,
			  .kh = c.kh, .kw = c.kw, .stride = c.stride, .pad = c.pad};
	bv_conv_dims_init(&d);
	return d;
}

static float *new_col(const bv_conv_dims *d)
{
	/* exactly the advertised size (ASan catches an overrun), NaN-poisoned so
	 * that reading a stale workspace shows */
	size_t size = bv_conv2d_col_size(d);
	float *col = malloc((size ? size : 1) * sizeof(float));
	for (size_t i = 0; i < size; i++)
		col[i] = NAN;
	return col;
}

/* Largest difference allowed, relative to 1 + the largest |reference|, for
 * both paths: im2col's worst here is about 3e-7; Winograd's about 1e-6 (it adds
 * and subtracts transformed values a few times the size of the result). */
#define CONV_TOL 1e-5

static void test_conv_vs_naive(conv_case cc, int threads)
{
	bv_conv_dims d = dims_of(cc);
	const int wino = bv_winograd_applies(&d);
	const double tol = CONV_TOL;
	const size_t ni = (size_t)d.n * d.c_in * d.h * d.w, no = (size_t)d.n * d.c_out * d.oh * d.ow;
	const size_t nw = (size_t)d.c_out * d.c_in * d.kh * d.kw;
	float *in = randn(ni, 1), *w = randn(nw, 0.5), *b = cc.bias ? randn(d.c_out, 0.5) : NULL;
	bv_nn_set_threads(threads);
	float *col = new_col(&d), *out = randn(no, 1), *ref = randn(no, 1);

	bv_conv2d_forward(out, col, in, w, b, &d);
	bv_conv2d_forward_naive(ref, in, w, b, &d);
	double df = max_abs_diff(out, ref, no) / (1 + max_abs(ref, no));

	/* backward onto non-zero starting values, then again with din NULL */
	float *r = randn(no, 1);
	float *din = randn(ni, 1), *dw = randn(nw, 1), *db = randn(d.c_out, 1);
	float *din2 = copy(din, ni), *dw2 = copy(dw, nw), *db2 = copy(db, d.c_out);
	bv_conv2d_backward(din, dw, cc.bias ? db : NULL, col, r, in, w, &d);
	bv_conv2d_backward_naive(din2, dw2, cc.bias ? db2 : NULL, r, in, w, &d);
	double ddin = max_abs_diff(din, din2, ni) / (1 + max_abs(din2, ni));
	double ddw = max_abs_diff(dw, dw2, nw) / (1 + max_abs(dw2, nw));
	double ddb = max_abs_diff(db, db2, d.c_out) / (1 + max_abs(db2, d.c_out));
	bv_conv2d_backward(NULL, dw, cc.bias ? db : NULL, col, r, in, w, &d);
	bv_conv2d_backward_naive(NULL, dw2, cc.bias ? db2 : NULL, r, in, w, &d);
	double ddw_null = max_abs_diff(dw, dw2, nw) / (1 + max_abs(dw2, nw));
	double worst = fmax(fmax(df, ddin), fmax(fmax(ddw, ddb), ddw_null));
	printf("conv n=%d %dx%dx%d -> %d k%dx%d s%d p%d%s, %d thread%s: %s vs naive, worst "
	       "relative diff %.3g (fwd %.2g din %.2g dw %.2g db %.2g)\n",
	       d.n, d.c_in, d.h, d.w, d.c_out, d.kh, d.kw, d.stride, d.pad, cc.bias ? " +b" : "",
	       threads, threads > 1 ? "s" : "", wino ? "winograd" : "im2col", worst, df, ddin, ddw,
	       ddb);
	CHECK(df < tol, "conv forward %s vs naive %.3g", wino ? "winograd" : "im2col", df);
	CHECK(ddin < tol && ddw < tol && ddb < tol && ddw_null < tol,
	      "conv backward %s vs naive din %.3g dw %.3g db %.3g (din NULL: dw %.3g)",
	      wino ? "winograd" : "im2col", ddin, ddw, ddb, ddw_null);
	free(in), free(w), free(b), free(col), free(out), free(ref), free(r);
	free(din), free(dw), free(db), free(din2), free(dw2), free(db2);
}

/* ---- conv2d: the same bytes at any number of threads --------------------- */

/* Each sample's output and din are one thread's work: the same bytes at
 * `many` threads as at 1. dw and db are sums of per-thread partials, so their
 * rounding follows the split; they are held to the naive reference above. */
static void test_conv_threads(conv_case cc, int many)
{
	bv_conv_dims d = dims_of(cc);
	const int wino = bv_winograd_applies(&d);
	const size_t ni = (size_t)d.n * d.c_in * d.h * d.w, no = (size_t)d.n * d.c_out * d.oh * d.ow;
	const size_t nw = (size_t)d.c_out * d.c_in * d.kh * d.kw;
	float *in = randn(ni, 1), *w = randn(nw, 0.5), *b = cc.bias ? randn(d.c_out, 0.5) : NULL;
	float *dout = randn(no, 1), *out[2], *din[2], *dw[2];
	int used[2];
	for (int k = 0; k < 2; k++) {
		bv_nn_set_threads(k == 0 ? many : 1);
		float *col = new_col(&d);
		used[k] = nn_conv_threads(&d);
		out[k] = zeros(no), din[k] = zeros(ni), dw[k] = zeros(nw);
		bv_conv2d_forward(out[k], col, in, w, b, &d);
		bv_conv2d_backward(din[k], dw[k], NULL, col, dout, in, w, &d);
		free(col);
	}
	const int want = many < d.n ? many : d.n;
	const int same_out = memcmp(out[0], out[1], no * sizeof(float)) == 0;
	const int same_din = memcmp(din[0], din[1], ni * sizeof(float)) == 0;
	const double ddw = max_abs_diff(dw[0], dw[1], nw) / (1 + max_abs(dw[1], nw));
	printf("conv n=%d %dx%dx%d -> %d k%dx%d %s at %d threads vs 1: forward %s, din %s, dw within "
	       "%.2g\n",
	       d.n, d.c_in, d.h, d.w, d.c_out, d.kh, d.kw, wino ? "winograd" : "im2col", used[0],
	       same_out ? "identical" : "DIFFERENT", same_din ? "identical" : "DIFFERENT", ddw);
	CHECK(used[0] == want && used[1] == 1, "conv ran on %d and %d threads, want %d and 1",
	      used[0], used[1], want);
	CHECK(same_out && same_din, "conv %s at %d threads: forward %s, din %s the bytes of 1 thread",
	      wino ? "winograd" : "im2col", many, same_out ? "has" : "differs from",
	      same_din ? "has" : "differs from");
	CHECK(ddw < CONV_TOL, "conv dw at %d threads vs 1: %.3g", many, ddw);
	for (int k = 0; k < 2; k++)
		free(out[k]), free(din[k]), free(dw[k]);
	free(in), free(w), free(b), free(dout);
}

/* ---- conv2d: finite differences ----------------------------------------- */

static double conv_obj(float *out, float *col, const float *in, const float *w, const float *b,
		       const float *r, const bv_conv_dims *d)
{
	bv_conv2d_forward(out, col, in, w, b, d);
	return dot(out, r, (size_t)d->n * d->c_out * d->oh * d->ow);
}

static void test_conv_fd(conv_case cc)
{
	bv_conv_dims d = dims_of(cc);
	const size_t ni = (size_t)d.n * d.c_in * d.h * d.w, no = (size_t)d.n * d.c_out * d.oh * d.ow;
	const size_t nw = (size_t)d.c_out * d.c_in * d.kh * d.kw;
	float *in = randn(ni, 1), *w = randn(nw, 0.5), *b = randn(d.c_out, 0.5), *r = randn(no, 1);
	float *col = new_col(&d), *out = zeros(no);
	float *gin = zeros(ni), *gw = zeros(nw), *gb = zeros(d.c_out);
	bv_conv2d_backward(gin, gw, gb, col, r, in, w, &d);
	CHECK(max_abs(gin, ni) > 1e-3 && max_abs(gw, nw) > 1e-3 && max_abs(gb, d.c_out) > 1e-3,
	      "conv gradients are non-zero");
	double win = 0, ww = 0, wb = 0, g;
	for (size_t i = 0; i < ni; i++) {
		FD(conv_obj(out, col, in, w, b, r, &d), in, i, 1e-2f, g);
		fold(&win, gin[i], g);
	}
	for (size_t i = 0; i < nw; i++) {
		FD(conv_obj(out, col, in, w, b, r, &d), w, i, 1e-2f, g);
		fold(&ww, gw[i], g);
	}
	for (int i = 0; i < d.c_out; i++) {
		FD(conv_obj(out, col, in, w, b, r, &d), b, i, 1e-2f, g);
		fold(&wb, gb[i], g);
	}
	printf("conv finite differences k%d s%d p%d: worst relative error in %.3g, w %.3g, b %.3g\n",
	       d.kh, d.stride, d.pad, win, ww, wb);
	CHECK(win < 2e-3 && ww < 2e-3 && wb < 2e-3, "conv finite differences %.3g %.3g %.3g", win,
	      ww, wb);

	/* accumulate: a second backward doubles every gradient */
	float *gin2 = copy(gin, ni), *gw2 = copy(gw, nw), *gb2 = copy(gb, d.c_out);
	bv_conv2d_backward(gin2, gw2, gb2, col, r, in, w, &d);
	for (size_t i = 0; i < ni; i++)
		gin[i] *= 2;
	for (size_t i = 0; i < nw; i++)
		gw[i] *= 2;
	for (int i = 0; i < d.c_out; i++)
		gb[i] *= 2;
	CHECK(max_abs_diff(gin, gin2, ni) < 1e-5 * (1 + max_abs(gin, ni)) &&
		      max_abs_diff(gw, gw2, nw) < 1e-5 * (1 + max_abs(gw, nw)) &&
		      max_abs_diff(gb, gb2, d.c_out) < 1e-5 * (1 + max_abs(gb, d.c_out)),
	      "conv backward twice doubles the gradients");
	free(in), free(w), free(b), free(r), free(col), free(out), free(gin), free(gw), free(gb);
	free(gin2), free(gw2), free(gb2);
}

/* ---- batch norm --------------------------------------------------------- */

/* sum(out * r) of train-mode batch norm (running statistics into scratch) */
static double bn_obj(const float *in, const float *gamma, const float *beta, const float *r,
		     int n, int c, int hw)
{
	const size_t size = (size_t)n * c * hw;
	float *out = zeros(size), *xhat = zeros(size), *invstd = zeros(c);
	float *rm = zeros(c), *rv = zeros(c);
	bv_bn_forward(out, xhat, invstd, in, gamma, beta, rm, rv, n, c, hw, 1, 0.1f, 1e-5f);
	double s = dot(out, r, size);
	free(out), free(xhat), free(invstd), free(rm), free(rv);
	return s;
}

static void test_bn_fd(int n, int c, int hw)
{
	const size_t size = (size_t)n * c * hw;
	/* per-channel offsets and scales, so that normalisation has work to do */
	float *in = randn(size, 1), *gamma = randn(c, 1), *beta = randn(c, 1), *r = randn(size, 1);
	for (int i = 0; i < n; i++)
		for (int ch = 0; ch < c; ch++)
			for (int k = 0; k < hw; k++)
				in[((size_t)i * c + ch) * hw + k] = in[((size_t)i * c + ch) * hw + k] * (1.0f + ch) + 0.5f * ch;
	float *out = zeros(size), *xhat = zeros(size), *invstd = zeros(c), *rm = zeros(c), *rv = zeros(c);
	float *gin = zeros(size), *gg = zeros(c), *gbeta = zeros(c);
	bv_bn_forward(out, xhat, invstd, in, gamma, beta, rm, rv, n, c, hw, 1, 0.1f, 1e-5f);
	bv_bn_backward(gin, gg, gbeta, r, xhat, invstd, gamma, n, c, hw);
	CHECK(max_abs(gin, size) > 1e-3 && max_abs(gg, c) > 1e-3 && max_abs(gbeta, c) > 1e-3,
	      "batch norm gradients are non-zero (max |din| %.3g)", max_abs(gin, size));
	double win = 0, wg = 0, wb = 0, g;
	for (size_t i = 0; i < size; i++) {
		FD(bn_obj(in, gamma, beta, r, n, c, hw), in, i, 1e-2f, g);
		fold(&win, gin[i], g);
	}
	for (int i = 0; i < c; i++) {
		FD(bn_obj(in, gamma, beta, r, n, c, hw), gamma, i, 1e-2f, g);
		fold(&wg, gg[i], g);
		FD(bn_obj(in, gamma, beta, r, n, c, hw), beta, i, 1e-2f, g);
		fold(&wb, gbeta[i], g);
	}
	printf("batch norm finite differences n=%d c=%d hw=%d: worst relative error in %.3g, "
	       "gamma %.3g, beta %.3g\n", n, c, hw, win, wg, wb);
	CHECK(win < 5e-3 && wg < 5e-3 && wb < 5e-3, "batch norm finite differences %.3g %.3g %.3g",
	      win, wg, wb);

	/* accumulate; din NULL still updates dgamma and dbeta */
	float *gin2 = copy(gin, size), *gg2 = copy(gg, c), *gb2 = copy(gbeta, c);
	bv_bn_backward(gin2, gg2, gb2, r, xhat, invstd, gamma, n, c, hw);
	int bad = 0;
	for (size_t i = 0; i < size; i++)
		bad += fabsf(gin2[i] - 2 * gin[i]) > 1e-5f * (1 + fabsf(gin[i]));
	for (int i = 0; i < c; i++)
		bad += fabsf(gg2[i] - 2 * gg[i]) > 1e-5f * (1 + fabsf(gg[i])) ||
		       fabsf(gb2[i] - 2 * gbeta[i]) > 1e-5f * (1 + fabsf(gbeta[i]));
	bv_bn_backward(NULL, gg2, gb2, r, xhat, invstd, gamma, n, c, hw);
	for (int i = 0; i < c; i++)
		bad += fabsf(gg2[i] - 3 * gg[i]) > 1e-5f * (1 + fabsf(gg[i])) ||
		       fabsf(gb2[i] - 3 * gbeta[i]) > 1e-5f * (1 + fabsf(gbeta[i]));
	CHECK(bad == 0, "batch norm backward accumulates: %d wrong", bad);
	free(in), free(gamma), free(beta), free(r), free(out), free(xhat), free(invstd), free(rm);
	free(rv), free(gin), free(gg), free(gbeta), free(gin2), free(gg2), free(gb2);
}

/* Two samples, two channels of three values: statistics worked out by hand. */
static void test_bn_values(void)
{
	const float in[12] = {
		1, 2, 3, -1, 0, 1,  /* sample 0: channel 0, channel 1 */
		4, 5, 6, 2, 2, 2,   /* sample 1 */
	};
	const float gamma[2] = {2.0f, -0.5f}, beta[2] = {0.5f, 1.0f};
	float rm[2] = {0.0f, 0.5f}, rv[2] = {1.0f, 2.0f};
	float out[12], xhat[12], invstd[2];
	bv_bn_forward(out, xhat, invstd, in, gamma, beta, rm, rv, 2, 2, 3, 1, 0.1f, 1e-5f);
	/* channel 0: {1,2,3,4,5,6}, mean 3.5, squared deviations sum 17.5:
	 * biased var 17.5/6, unbiased 17.5/5 = 3.5.
	 * channel 1: {-1,0,1,2,2,2}, mean 1, squared deviations sum 8:
	 * biased var 8/6, unbiased 8/5 = 1.6. */
	CHECK_NEAR(rm[0], 0.9 * 0.0 + 0.1 * 3.5, 1e-6, "running mean 0 = 0.35");
	CHECK_NEAR(rv[0], 0.9 * 1.0 + 0.1 * 3.5, 1e-6, "running var 0 = 1.25 (unbiased)");
	CHECK_NEAR(rm[1], 0.9 * 0.5 + 0.1 * 1.0, 1e-6, "running mean 1 = 0.55");
	CHECK_NEAR(rv[1], 0.9 * 2.0 + 0.1 * 1.6, 1e-6, "running var 1 = 1.96 (unbiased)");
	CHECK_NEAR(invstd[0], 1 / sqrt(17.5 / 6 + 1e-5), 1e-6, "invstd 0");
	CHECK_NEAR(invstd[1], 1 / sqrt(8.0 / 6 + 1e-5), 1e-6, "invstd 1");
	/* x = 1 in channel 0: 2 * (1 - 3.5) / sqrt(17.5/6 + 1e-5) + 0.5 = -2.4276952...;
	 * x = 2 in channel 1 (sample 1): -0.5 * (2 - 1) / sqrt(8/6 + 1e-5) + 1 = 0.5669889... */
	CHECK_NEAR(out[0], -2.4276952, 1e-5, "train output x=1 channel 0");
	CHECK_NEAR(out[9], 0.56698892, 1e-5, "train output x=2 channel 1");
	CHECK_NEAR(xhat[5], (1.0 - 1.0) / sqrt(8.0 / 6 + 1e-5), 1e-6, "xhat of the channel-1 mean");

	/* eval mode: the running statistics, no cache written (NULL) */
	float eout[12];
	bv_bn_forward(eout, NULL, NULL, in, gamma, beta, rm, rv, 2, 2, 3, 0, 0.1f, 1e-5f);
	/* channel 0, x = 6: 2 * (6 - 0.35) / sqrt(1.25 + 1e-5) + 0.5 = 10.6069868...;
	 * channel 1, x = -1: -0.5 * (-1 - 0.55) / sqrt(1.96 + 1e-5) + 1 = 1.5535700...
	 * (PyTorch 1.13's BatchNorm2d gives the same four outputs and running stats) */
	CHECK_NEAR(eout[8], 10.6069868, 1e-5, "eval output x=6 channel 0");
	CHECK_NEAR(eout[3], 1.55357002, 1e-5, "eval output x=-1 channel 1");
	CHECK(rm[0] == 0.35f || fabsf(rm[0] - 0.35f) < 1e-6f, "eval mode leaves running stats alone");
	printf("batch norm hand values: running mean %.6g %.6g, running var %.6g %.6g, "
	       "eval out[8] %.7g\n", rm[0], rm[1], rv[0], rv[1], eout[8]);
}

/* ---- pooling and add ---------------------------------------------------- */

static double maxpool_obj(const float *in, const float *r, int n, int c, int h, int w, int k,
			  int s, int p, int oh, int ow)
{
	const size_t no = (size_t)n * c * oh * ow;
	float *out = zeros(no);
	int *am = malloc(no * sizeof(int));
	bv_maxpool_forward(out, am, in, n, c, h, w, k, s, p, oh, ow);
	double v = dot(out, r, no);
	free(out), free(am);
	return v;
}

static void test_maxpool(int n, int c, int h, int w, int k, int s, int p)
{
	const int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
	const size_t ni = (size_t)n * c * h * w, no = (size_t)n * c * oh * ow;
	/* distinct values 0.05 apart in a random order: no ties, and a step of
	 * 1e-2 never changes the argmax */
	float *in = zeros(ni), *r = randn(no, 1), *out = zeros(no), *din = zeros(ni);
	size_t *perm = malloc(ni * sizeof(size_t));
	for (size_t i = 0; i < ni; i++)
		perm[i] = i;
	gsl_ran_shuffle(rng, perm, ni, sizeof(size_t));
	for (size_t i = 0; i < ni; i++)
		in[i] = 0.05f * (float)perm[i] - 0.025f * (float)ni; /* about half negative */
	int *am = malloc(no * sizeof(int));
	bv_maxpool_forward(out, am, in, n, c, h, w, k, s, p, oh, ow);
	bv_maxpool_backward(din, r, am, n, c, oh, ow);
	CHECK(max_abs(din, ni) > 1e-3, "maxpool gradient is non-zero");
	double worst = 0, g;
	for (size_t i = 0; i < ni; i++) {
		FD(maxpool_obj(in, r, n, c, h, w, k, s, p, oh, ow), in, i, 1e-2f, g);
		fold(&worst, din[i], g);
	}
	/* every output is the maximum of the real inputs of its window */
	int bad = 0;
	for (int pl = 0; pl < n * c; pl++)
		for (int oy = 0; oy < oh; oy++)
			for (int ox = 0; ox < ow; ox++) {
				float m = -INFINITY;
				for (int ki = 0; ki < k; ki++)
					for (int kj = 0; kj < k; kj++) {
						int iy = oy * s - p + ki, ix = ox * s - p + kj;
						if (iy >= 0 && iy < h && ix >= 0 && ix < w)
							m = fmaxf(m, in[((size_t)pl * h + iy) * w + ix]);
					}
				size_t o = ((size_t)pl * oh + oy) * ow + ox;
				bad += out[o] != m || in[am[o]] != m;
			}
	printf("maxpool %dx%dx%dx%d k%d s%d p%d: worst relative error %.3g, %d wrong maxima\n", n,
	       c, h, w, k, s, p, worst, bad);
	CHECK(worst < 1e-3 && bad == 0, "maxpool finite differences %.3g, %d wrong maxima", worst,
	      bad);
	float *din2 = copy(din, ni);
	bv_maxpool_backward(din2, r, am, n, c, oh, ow);
	bad = 0;
	for (size_t i = 0; i < ni; i++)
		bad += fabsf(din2[i] - 2 * din[i]) > 1e-6f;
	CHECK(bad == 0, "maxpool backward accumulates: %d wrong", bad);
	free(in), free(r), free(out), free(din), free(din2), free(perm), free(am);
}

static void test_maxpool_rules(void)
{
	/* ties: the first maximum wins; padding is -inf, so an all-negative
	 * input pools to its own maximum, never to 0 */
	const float tie[4] = {1, 1, 1, 1}, neg[4] = {-3, -1, -2, -4};
	float out[4];
	int am[4];
	bv_maxpool_forward(out, am, tie, 1, 1, 2, 2, 2, 2, 0, 1, 1);
	CHECK(out[0] == 1 && am[0] == 0, "maxpool tie: argmax %d, want the first (0)", am[0]);
	bv_maxpool_forward(out, am, neg, 1, 1, 2, 2, 3, 1, 1, 2, 2);
	CHECK(out[0] == -1 && out[1] == -1 && out[2] == -1 && out[3] == -1 && am[3] == 1,
	      "maxpool padding is -inf: got %g %g %g %g", out[0], out[1], out[2], out[3]);
}

static double gap_obj(const float *in, const float *r, int n, int c, int hw)
{
	float *out = zeros((size_t)n * c);
	bv_gap_forward(out, in, n, c, hw);
	double v = dot(out, r, (size_t)n * c);
	free(out);
	return v;
}

static void test_gap_add(int n, int c, int hw)
{
	const size_t ni = (size_t)n * c * hw, no = (size_t)n * c;
	float *in = randn(ni, 1), *r = randn(no, 1), *out = zeros(no), *din = zeros(ni);
	bv_gap_forward(out, in, n, c, hw);
	double dmean = 0;
	for (size_t p = 0; p < no; p++) {
		double s = 0;
		for (int i = 0; i < hw; i++)
			s += in[p * hw + i];
		dmean = fmax(dmean, fabs(out[p] - s / hw));
	}
	CHECK(dmean < 1e-6, "gap forward is the mean: diff %.3g", dmean);
	bv_gap_backward(din, r, n, c, hw);
	CHECK(max_abs(din, ni) > 1e-3, "gap gradient is non-zero");
	double worst = 0, g;
	for (size_t i = 0; i < ni; i++) {
		FD(gap_obj(in, r, n, c, hw), in, i, 1e-2f, g);
		fold(&worst, din[i], g);
	}
	float *din2 = copy(din, ni);
	bv_gap_backward(din2, r, n, c, hw);
	int bad = 0;
	for (size_t i = 0; i < ni; i++)
		bad += fabsf(din2[i] - 2 * din[i]) > 1e-6f;
	printf("gap n=%d c=%d hw=%d: worst relative error %.3g\n", n, c, hw, worst);
	CHECK(worst < 1e-3, "gap finite differences %.3g", worst);
	CHECK(bad == 0, "gap backward accumulates: %d wrong", bad);

	/* add: out = a + b, so d sum(out r) / da = d / db = r; both inputs'
	 * gradients are dout added in, which the model does (no backward function) */
	float *a = randn(ni, 1), *b = randn(ni, 1), *sum = zeros(ni), *ra = randn(ni, 1);
	bv_add_forward(sum, a, b, ni);
	bad = 0;
	for (size_t i = 0; i < ni; i++)
		bad += sum[i] != a[i] + b[i];
	double wadd = 0;
	for (size_t i = 0; i < ni; i += 7) {
		float *ab[2] = {a, b};
		for (int t = 0; t < 2; t++) {
			float x0 = ab[t][i];
			ab[t][i] = x0 + 1e-2f;
			bv_add_forward(sum, a, b, ni);
			double fp = dot(sum, ra, ni);
			ab[t][i] = x0 - 1e-2f;
			bv_add_forward(sum, a, b, ni);
			double fm = dot(sum, ra, ni);
			ab[t][i] = x0;
			fold(&wadd, ra[i], (fp - fm) / 2e-2);
		}
	}
	printf("add: worst relative error %.3g\n", wadd);
	CHECK(bad == 0 && wadd < 1e-3, "add: %d wrong sums, finite differences %.3g", bad, wadd);
	free(in), free(r), free(out), free(din), free(din2), free(a), free(b), free(sum), free(ra);
}

/* ---- speed -------------------------------------------------------------- */

static void time_conv(int threads)
{
	conv_case cc = {128, 16, 32, 32, 16, 3, 3, 1, 1, 0};
	bv_conv_dims d = dims_of(cc);
	const size_t ni = (size_t)d.n * d.c_in * d.h * d.w, no = (size_t)d.n * d.c_out * d.oh * d.ow;
	const size_t nw = (size_t)d.c_out * d.c_in * d.kh * d.kw;
	bv_nn_set_threads(threads);
	float *in = randn(ni, 1), *w = randn(nw, 0.1), *col = new_col(&d), *out = zeros(no);
	float *dout = randn(no, 1), *din = zeros(ni), *dw = zeros(nw);
	double best = INFINITY;
	for (int rep = 0; rep < 5; rep++) {
		double t0 = bv_now();
		bv_conv2d_forward(out, col, in, w, NULL, &d);
		bv_conv2d_backward(din, dw, NULL, col, dout, in, w, &d);
		best = fmin(best, bv_now() - t0);
	}
	/* forward, dw and din: three products of 2 * n * c_out * K * oh * ow flops */
	double flops = 3 * 2.0 * d.n * d.c_out * (double)d.c_in * d.kh * d.kw * d.oh * d.ow;
	printf("timing: conv 16->16 3x3 n=128 32x32 forward+backward, %d thread%s: %.2f ms, "
	       "%.1f GFLOP/s (best of 5)\n",
	       threads, threads > 1 ? "s" : "", best * 1e3, flops / best * 1e-9);
	free(in), free(w), free(col), free(out), free(dout), free(din), free(dw);
}

int main(void)
{
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(rng, 42);
	static const conv_case cases[] = {
		/* n  c_in h  w  c_out kh kw s p bias */
		{1, 3, 7, 5, 4, 3, 3, 1, 1, 1},    /* c_in 3, n 1, "same" 3x3 */
		{3, 2, 9, 6, 5, 3, 3, 2, 1, 1},    /* stride 2, pad 1 */
		{2, 4, 8, 8, 3, 1, 1, 1, 0, 0},    /* 1x1 stride 1: col = input */
		{5, 3, 8, 7, 6, 1, 1, 2, 0, 0},    /* 1x1 stride 2 shortcut */
		{2, 3, 6, 9, 4, 3, 3, 1, 0, 1},    /* valid 3x3: ow != w */
		{3, 2, 7, 10, 3, 2, 3, 2, 1, 0},   /* non-square kernel, stride 2 */
		{2, 2, 9, 9, 3, 5, 5, 1, 2, 1},    /* 5x5 "same": more rows than the fused col2im */
		{9, 16, 10, 10, 8, 3, 3, 1, 1, 0}, /* more samples than threads, uneven split */
		{2, 3, 4, 4, 2, 3, 3, 1, 2, 1},    /* pad 2 > kernel reach of some rows */
		{3, 2, 2, 3, 2, 3, 3, 2, 1, 0},    /* tiny map: every window touches padding */
		{2, 2, 5, 6, 3, 1, 3, 1, 1, 1},    /* 1x3 "same" in width: 3 fused col2im rows */
		{2, 2, 6, 5, 3, 3, 1, 1, 0, 0},    /* 3x1 unpadded: ow == w, 3 fused rows */
		/* Winograd: 3x3 s1 p1 with c_in >= 16 */
		{1, 16, 7, 7, 5, 3, 3, 1, 1, 1},   /* odd map: clipped last tile row and column, n 1 */
		{3, 17, 5, 9, 24, 3, 3, 1, 1, 0},  /* 5x9, c_out > c_in */
		{2, 24, 9, 5, 16, 3, 3, 1, 1, 1},  /* 9x5, c_out < c_in */
		{4, 16, 1, 1, 6, 3, 3, 1, 1, 1},   /* 1x1 map: one tile, all padding but the centre */
		{3, 16, 2, 1, 4, 3, 3, 1, 1, 0},   /* 2x1 map */
		{13, 16, 8, 8, 16, 3, 3, 1, 1, 1}, /* 8 samples a chunk: one full chunk and a partial */
		{70, 16, 4, 4, 10, 3, 3, 1, 1, 0}, /* 32 samples a chunk: 70 = 64 + 6, 35 = 32 + 3 */
		{3, 16, 41, 35, 9, 3, 3, 1, 1, 1}, /* 21 tile rows of 18 tiles: chunks of 8 rows
						      split samples and straddle two */
		{5, 64, 8, 8, 64, 3, 3, 1, 1, 0},  /* ResNet-20's stage 3 */
		{2, 8, 6, 6, 4, 3, 3, 1, 1, 1},    /* c_in 8: im2col */
	};
	/* first: a workspace's thread slices are fixed by the first one sized
	 * (nn/conv.c), which must be sized at 12 threads for 12 to run */
	test_conv_threads((conv_case){24, 3, 9, 9, 8, 3, 3, 1, 1, 1}, 12);  /* im2col, 2 per thread */
	test_conv_threads((conv_case){13, 4, 6, 5, 6, 1, 1, 1, 0, 0}, 12);  /* pointwise, n 13 */
	test_conv_threads((conv_case){12, 16, 8, 8, 16, 3, 3, 1, 1, 1}, 12); /* Winograd, 1 each */
	test_conv_threads((conv_case){5, 16, 6, 6, 8, 3, 3, 1, 1, 0}, 12);  /* fewer samples than threads */
	static const int counts[] = {1, 2, 12};
	for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++)
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
			test_conv_vs_naive(cases[i], counts[k]);
	bv_nn_set_threads(2);
	test_conv_fd((conv_case){2, 3, 7, 6, 4, 3, 3, 2, 1, 1});
	test_conv_fd((conv_case){2, 2, 5, 6, 3, 3, 3, 1, 1, 1});
	test_conv_fd((conv_case){2, 16, 5, 6, 3, 3, 3, 1, 1, 1}); /* Winograd */
	test_conv_fd((conv_case){3, 3, 4, 5, 2, 1, 1, 1, 0, 1});
	bv_nn_set_threads(1);
	test_bn_fd(3, 2, 6);
	test_bn_fd(5, 3, 1);
	test_bn_values();
	test_maxpool(2, 2, 7, 6, 3, 2, 1);
	test_maxpool(1, 3, 6, 6, 2, 2, 0);
	test_maxpool_rules();
	test_gap_add(2, 3, 10);
	time_conv(1);
	time_conv(2);
	gsl_rng_free(rng);
	return bv_check_done();
}
