/*
 * Layers: the BLAS paths against their naive references, and finite-difference
 * gradient checks (with gradients asserted to be clearly non-zero).
 */
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn.h"

static gsl_rng *rng;

static float *randn(size_t n, double sd)
{
	float *x = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		x[i] = (float)gsl_ran_gaussian(rng, sd);
	return x;
}

static float *zeros(size_t n)
{
	return calloc(n, sizeof(float));
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs((double)a[i] - b[i]) > m)
			m = fabs((double)a[i] - b[i]);
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

/* scalar objective sum(out * r) of the linear layer, in double */
static double linear_obj(const float *in, const float *w, const float *b, const float *r, int n,
			 int ni, int no)
{
	float *out = zeros((size_t)n * no);
	bv_linear_forward_naive(out, in, w, b, n, ni, no);
	double s = 0;
	for (int i = 0; i < n * no; i++)
		s += (double)out[i] * r[i];
	free(out);
	return s;
}

static void test_linear(int n, int ni, int no)
{
	float *in = randn((size_t)n * ni, 1), *w = randn((size_t)no * ni, 0.5), *b = randn(no, 0.5);
	float *out = zeros((size_t)n * no), *ref = zeros((size_t)n * no);
	bv_linear_forward(out, in, w, b, n, ni, no);
	bv_linear_forward_naive(ref, in, w, b, n, ni, no);
	double d = max_abs_diff(out, ref, (size_t)n * no);
	printf("linear %dx%d->%d forward: max |blas - naive| = %.3g\n", n, ni, no, d);
	CHECK(d < 1e-4 * (1 + max_abs(ref, (size_t)n * no)), "linear forward blas vs naive %.3g", d);

	/* backward: blas vs naive, accumulating onto non-zero starting values */
	float *r = randn((size_t)n * no, 1);
	float *din = randn((size_t)n * ni, 1), *dw = randn((size_t)no * ni, 1), *db = randn(no, 1);
	float *din2 = malloc(sizeof(float) * n * ni), *dw2 = malloc(sizeof(float) * no * ni),
	      *db2 = malloc(sizeof(float) * no);
	memcpy(din2, din, sizeof(float) * n * ni);
	memcpy(dw2, dw, sizeof(float) * no * ni);
	memcpy(db2, db, sizeof(float) * no);
	bv_linear_backward(din, dw, db, r, in, w, n, ni, no);
	bv_linear_backward_naive(din2, dw2, db2, r, in, w, n, ni, no);
	CHECK(max_abs_diff(din, din2, (size_t)n * ni) < 1e-3, "din blas vs naive");
	CHECK(max_abs_diff(dw, dw2, (size_t)no * ni) < 1e-3, "dw blas vs naive");
	CHECK(max_abs_diff(db, db2, no) < 1e-4, "db blas vs naive");

	/* finite differences of sum(out * r) */
	float *gin = zeros((size_t)n * ni), *gw = zeros((size_t)no * ni), *gb = zeros(no);
	bv_linear_backward(gin, gw, gb, r, in, w, n, ni, no);
	CHECK(max_abs(gin, (size_t)n * ni) > 1e-2 && max_abs(gw, (size_t)no * ni) > 1e-2 &&
		      max_abs(gb, no) > 1e-2,
	      "linear gradients are non-zero");
	double worst = 0;
	for (int t = 0; t < 20; t++) {
		int i = (int)gsl_rng_uniform_int(rng, (unsigned long)n * ni);
		int j = (int)gsl_rng_uniform_int(rng, (unsigned long)no * ni);
		int k = (int)gsl_rng_uniform_int(rng, (unsigned long)no);
		double g;
		FD(linear_obj(in, w, b, r, n, ni, no), in, i, 1e-2f, g);
		worst = fmax(worst, fabs(g - gin[i]) / (1 + fabs(g)));
		FD(linear_obj(in, w, b, r, n, ni, no), w, j, 1e-2f, g);
		worst = fmax(worst, fabs(g - gw[j]) / (1 + fabs(g)));
		FD(linear_obj(in, w, b, r, n, ni, no), b, k, 1e-2f, g);
		worst = fmax(worst, fabs(g - gb[k]) / (1 + fabs(g)));
	}
	printf("linear finite differences: worst relative error %.3g\n", worst);
	CHECK(worst < 2e-3, "linear finite differences %.3g", worst);
	free(in), free(w), free(b), free(out), free(ref), free(r), free(din), free(dw), free(db);
	free(din2), free(dw2), free(db2), free(gin), free(gw), free(gb);
}

static void test_relu_dropout(void)
{
	const size_t n = 1000;
	float *in = randn(n, 1), *out = zeros(n), *r = randn(n, 1), *din = zeros(n);
	/* keep inputs away from the kink so differences are well defined */
	for (size_t i = 0; i < n; i++)
		if (fabsf(in[i]) < 0.05f)
			in[i] = 0.5f;
	bv_relu_forward(out, in, n);
	bv_relu_backward(din, r, out, n);
	int n_pos = 0, bad = 0;
	for (size_t i = 0; i < n; i++) {
		n_pos += in[i] > 0;
		/* d/dx sum(relu(x) r) = r [x > 0] */
		double want = in[i] > 0 ? r[i] : 0.0;
		bad += fabs(din[i] - want) > 1e-7 || out[i] != (in[i] > 0 ? in[i] : 0);
	}
	CHECK(bad == 0 && n_pos > 300 && n_pos < 700, "relu: %d wrong, %d positive", bad, n_pos);

	float *mask = zeros(n);
	memset(din, 0, n * sizeof(float));
	bv_dropout_forward(out, mask, in, n, 0.25f, rng);
	bv_dropout_backward(din, r, mask, n);
	int dropped = 0;
	bad = 0;
	for (size_t i = 0; i < n; i++) {
		dropped += mask[i] == 0;
		bad += !(mask[i] == 0 || fabsf(mask[i] - 1 / 0.75f) < 1e-6);
		bad += fabsf(out[i] - in[i] * mask[i]) > 1e-6 || fabsf(din[i] - r[i] * mask[i]) > 1e-6;
	}
	CHECK(bad == 0, "dropout: %d wrong values", bad);
	CHECK(dropped > 200 && dropped < 300, "dropout rate 0.25: dropped %d of 1000", dropped);
	free(in), free(out), free(r), free(din), free(mask);
}

int main(void)
{
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(rng, 42);
	bv_nn_set_threads(1);
	test_linear(7, 13, 5);
	test_linear(64, 200, 30);
	test_linear(1, 1, 1);
	test_relu_dropout();
	gsl_rng_free(rng);
	return bv_check_done();
}
