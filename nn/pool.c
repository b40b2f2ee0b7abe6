/*
 * Pooling and the residual add, NCHW: max pooling (argmax cached for
 * backward), global average pooling (the head of a ResNet), and out = a + b
 * (its backward is dout added to both inputs' gradients, which the model does
 * with the accumulating backward convention).
 */
#include "nn.h"

#include "internal.h"

#include <math.h>

/*
 * out[p][oy][ox] = max over the k x k window at (oy*stride - pad, ox*stride - pad)
 * of plane p; positions in the padding count as -inf. argmax holds the index
 * into `in` (n, c, h, w) of the maximum, the first one on ties; like PyTorch
 * a NaN wins. A window wholly in the padding gives -inf and argmax -1.
 */
typedef struct pool_args {
	float *out;      /* forward: out; backward: din */
	int *argmax;
	const float *in; /* forward: in; backward: dout */
	const int *arg;  /* backward: argmax */
	int h, w, k, stride, pad, oh, ow;
} pool_args;

/* planes [lo, hi) of bv_maxpool_forward */
static void maxpool_planes(void *arg, size_t lo, size_t hi)
{
	const pool_args *a = arg;
	const int h = a->h, w = a->w, k = a->k, stride = a->stride, pad = a->pad, oh = a->oh,
		  ow = a->ow;
	for (size_t p = lo; p < hi; p++) {
		const size_t base = p * h * w;
		const float *x = a->in + base;
		float *o = a->out + p * oh * ow;
		int *am = a->argmax + p * oh * ow;
		for (int oy = 0; oy < oh; oy++)
			for (int ox = 0; ox < ow; ox++) {
				float best = -INFINITY;
				long arg_max = -1;
				for (int ki = 0; ki < k; ki++) {
					const int iy = oy * stride - pad + ki;
					if (iy < 0 || iy >= h)
						continue;
					for (int kj = 0; kj < k; kj++) {
						const int ix = ox * stride - pad + kj;
						if (ix < 0 || ix >= w)
							continue;
						const float v = x[iy * w + ix];
						if (arg_max < 0 || v > best || isnan(v)) {
							best = v;
							arg_max = (long)(base + (size_t)iy * w + ix);
						}
					}
				}
				o[oy * ow + ox] = best;
				am[oy * ow + ox] = (int)arg_max;
			}
	}
}

/* Planes per thread, at least: enough outputs that a thread pays off. */
static size_t plane_chunk(size_t per_plane)
{
	return per_plane >= NN_MIN_CHUNK ? 1 : (NN_MIN_CHUNK + per_plane - 1) / per_plane;
}

void bv_maxpool_forward(float *out, int *argmax, const float *in, int n, int c, int h, int w,
			int k, int stride, int pad, int oh, int ow)
{
	pool_args a = {out, argmax, in, NULL, h, w, k, stride, pad, oh, ow};
	/* planes are independent: split them over the threads */
	nn_parallel_for((size_t)n * c, plane_chunk((size_t)h * w), maxpool_planes, &a);
}

/* planes [lo, hi) of bv_maxpool_backward: a plane's outputs scatter into
 * that plane only, so pieces of whole planes never write the same element */
static void maxpool_back_planes(void *arg, size_t lo, size_t hi)
{
	const pool_args *a = arg;
	const size_t per = (size_t)a->oh * a->ow;
	for (size_t i = lo * per; i < hi * per; i++)
		if (a->arg[i] >= 0)
			a->out[a->arg[i]] += a->in[i];
}

/* din[argmax[i]] += dout[i] over the n*c*oh*ow outputs */
void bv_maxpool_backward(float *din, const float *dout, const int *argmax, int n, int c, int oh,
			 int ow)
{
	pool_args a = {din, NULL, dout, argmax, 0, 0, 0, 0, 0, oh, ow};
	nn_parallel_for((size_t)n * c, plane_chunk((size_t)oh * ow), maxpool_back_planes, &a);
}

/* out[p] = mean of in[p][0..hw) for the n*c planes */
void bv_gap_forward(float *out, const float *in, int n, int c, int hw)
{
	const size_t planes = (size_t)n * c;
	for (size_t p = 0; p < planes; p++) {
		const float *x = in + p * hw;
		float acc[16] = {0};
		int i = 0;
		for (; i + 16 <= hw; i += 16)
			for (int j = 0; j < 16; j++)
				acc[j] += x[i + j];
		double s = 0;
		for (; i < hw; i++)
			s += x[i];
		for (int j = 0; j < 16; j++)
			s += acc[j];
		out[p] = (float)(s / hw);
	}
}

/* din[p][i] += dout[p] / hw */
void bv_gap_backward(float *din, const float *dout, int n, int c, int hw)
{
	const size_t planes = (size_t)n * c;
	const float scale = 1.0f / (float)hw;
	for (size_t p = 0; p < planes; p++) {
		const float g = dout[p] * scale;
		float *dx = din + p * hw;
		for (int i = 0; i < hw; i++)
			dx[i] += g;
	}
}

typedef struct add_args {
	float *out;
	const float *a, *b;
} add_args;

static void add_range(void *arg, size_t lo, size_t hi)
{
	const add_args *x = arg;
	for (size_t i = lo; i < hi; i++)
		x->out[i] = x->a[i] + x->b[i];
}

/* out = a + b; out may be a or b */
void bv_add_forward(float *out, const float *a, const float *b, size_t size)
{
	add_args x = {out, a, b};
	nn_parallel_for(size, NN_MIN_CHUNK, add_range, &x);
}
