/*
 * Layer forward/backward pairs on caller-owned buffers (see nn.h for the
 * conventions: backward accumulates into din and parameter gradients).
 * Each BLAS path has a naive triple loop beside it, used only by the tests.
 */
#include "nn.h"

#include "internal.h"

#include <cblas.h>
#include <string.h>

void bv_linear_forward(float *out, const float *in, const float *w, const float *b,
		       int n, int n_in, int n_out)
{
	/* out (n, n_out) = in (n, n_in) @ w^T (n_in, n_out) [+ b] */
	if (b) {
		for (int i = 0; i < n; i++)
			memcpy(out + (size_t)i * n_out, b, sizeof(float) * (size_t)n_out);
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n_out, n_in, 1.0f, in, n_in,
		    w, n_in, b ? 1.0f : 0.0f, out, n_out);
}

void bv_linear_forward_naive(float *out, const float *in, const float *w, const float *b,
			     int n, int n_in, int n_out)
{
	for (int i = 0; i < n; i++)
		for (int o = 0; o < n_out; o++) {
			double acc = b ? b[o] : 0.0;
			for (int j = 0; j < n_in; j++)
				acc += (double)in[(size_t)i * n_in + j] * w[(size_t)o * n_in + j];
			out[(size_t)i * n_out + o] = (float)acc;
		}
}

void bv_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
			const float *w, int n, int n_in, int n_out)
{
	/* din (n, n_in) += dout (n, n_out) @ w (n_out, n_in) */
	if (din)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n_in, n_out, 1.0f, dout,
			    n_out, w, n_in, 1.0f, din, n_in);
	/* dw (n_out, n_in) += dout^T (n_out, n) @ in (n, n_in) */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, n_in, n, 1.0f, dout, n_out,
		    in, n_in, 1.0f, dw, n_in);
	if (db)
		for (int i = 0; i < n; i++) {
			const float *row = dout + (size_t)i * n_out;
			for (int o = 0; o < n_out; o++)
				db[o] += row[o];
		}
}

void bv_linear_backward_naive(float *din, float *dw, float *db, const float *dout,
			      const float *in, const float *w, int n, int n_in, int n_out)
{
	if (din)
		for (int i = 0; i < n; i++)
			for (int j = 0; j < n_in; j++) {
				double acc = 0;
				for (int o = 0; o < n_out; o++)
					acc += (double)dout[(size_t)i * n_out + o] * w[(size_t)o * n_in + j];
				din[(size_t)i * n_in + j] += (float)acc;
			}
	for (int o = 0; o < n_out; o++)
		for (int j = 0; j < n_in; j++) {
			double acc = 0;
			for (int i = 0; i < n; i++)
				acc += (double)dout[(size_t)i * n_out + o] * in[(size_t)i * n_in + j];
			dw[(size_t)o * n_in + j] += (float)acc;
		}
	if (db)
		for (int o = 0; o < n_out; o++) {
			double acc = 0;
			for (int i = 0; i < n; i++)
				acc += dout[(size_t)i * n_out + o];
			db[o] += (float)acc;
		}
}

typedef struct relu_args {
	float *y;            /* forward: out; backward: din */
	const float *x, *gate; /* forward: in, -; backward: dout, out */
	int add;             /* backward: din += (1) or din = (0) */
} relu_args;

static void relu_forward_range(void *arg, size_t lo, size_t hi)
{
	const relu_args *a = arg;
	for (size_t i = lo; i < hi; i++)
		a->y[i] = a->x[i] > 0.0f ? a->x[i] : 0.0f;
}

void bv_relu_forward(float *out, const float *in, size_t size)
{
	relu_args a = {out, in, NULL, 0};
	nn_parallel_for(size, NN_MIN_CHUNK, relu_forward_range, &a);
}

static void relu_backward_range(void *arg, size_t lo, size_t hi)
{
	const relu_args *a = arg;
	/* load dout outside the comparison: no branch, so the loop vectorises */
	if (a->add)
		for (size_t i = lo; i < hi; i++) {
			const float d = a->x[i];
			a->y[i] += a->gate[i] > 0.0f ? d : 0.0f;
		}
	else
		for (size_t i = lo; i < hi; i++) {
			const float d = a->x[i];
			a->y[i] = a->gate[i] > 0.0f ? d : 0.0f;
		}
}

void nn_relu_backward(float *din, const float *dout, const float *out, size_t size, int add)
{
	relu_args a = {din, dout, out, add};
	nn_parallel_for(size, NN_MIN_CHUNK, relu_backward_range, &a);
}

void bv_relu_backward(float *din, const float *dout, const float *out, size_t size)
{
	nn_relu_backward(din, dout, out, size, 1);
}

void bv_dropout_forward(float *out, float *mask, const float *in, size_t size, float p,
			gsl_rng *rng)
{
	const float keep = 1.0f / (1.0f - p);
	for (size_t i = 0; i < size; i++) {
		mask[i] = gsl_rng_uniform(rng) >= p ? keep : 0.0f;
		out[i] = in[i] * mask[i];
	}
}

void bv_dropout_backward(float *din, const float *dout, const float *mask, size_t size)
{
	for (size_t i = 0; i < size; i++)
		din[i] += dout[i] * mask[i];
}

double nn_sum_f32(const float *x, size_t len)
{
	float acc[16] = {0};
	size_t i = 0;
	for (; i + 16 <= len; i += 16)
		for (int j = 0; j < 16; j++)
			acc[j] += x[i + j];
	double s = 0;
	for (; i < len; i++)
		s += x[i];
	for (int j = 0; j < 16; j++)
		s += acc[j];
	return s;
}
