/*
 * 2-D convolution (NCHW) lowered onto cblas_sgemm by im2col, or for 3x3
 * stride-1 pad-1 convolutions with c_in >= 16 by Winograd F(2x2, 3x3)
 * (nn/winograd.c, run in the same per-thread sample split; it does 4
 * multiplies per output and input channel instead of 9, and trains ResNet-20
 * 18-39% faster, docs/benchmarks.md), with a naive 7-loop reference beside
 * them that the tests compare against.
 *
 * Per sample, with K = c_in*kh*kw and col (K, oh*ow) the im2col matrix:
 *     forward   out[n] (c_out, ohw) = w (c_out, K) @ col (K, ohw)  [+ b]
 *     backward  dw^T (K, c_out) += col @ dout[n]^T (ohw, c_out)
 *               dcol (K, ohw) = w^T @ dout[n], scattered into din[n] by col2im
 *               db += the sum of dout[n] over the map
 * out[n] is already NCHW, so the sgemm writes it in place (no transpose), and
 * col, one sample's worth (at most 576 KiB for ResNet-20), stays in L2.
 * A 1x1 stride-1 unpadded convolution uses in[n] as col and writes din[n]
 * with the sgemm directly.
 *
 * Why per sample, and why our own threads (measured on the 2-core Zen 5 of
 * docs/benchmarks.md with ResNet-20's shapes at n = 128): one sgemm over the
 * whole batch (col of K x n*ohw floats, up to 84 MB) is memory bound and 2-4x
 * slower, whether or not samples are grouped; and the per-sample sgemms are
 * too small for OpenBLAS's own threading, which runs them slower at 2 threads
 * than at 1. So the samples are split among up to openblas_get_num_threads()
 * threads of nn's pool (nn/parallel.c), each running single-threaded sgemms
 * on its own slice of the workspace;
 * OpenBLAS is set to 1 thread meanwhile and restored after. Each thread sums
 * dw^T into its own partial, added into dw at the end (this orientation of
 * the product is 7-20% faster in OpenBLAS than dw += dout[n] @ col^T).
 *
 * col is rebuilt from `in` in backward, so forward and backward need not run
 * back to back on the same workspace, and one workspace can serve every
 * convolution of a model (size it for the largest).
 */
#include "nn.h"

#include "internal.h"

#include <cblas.h>
#include <stdatomic.h>
#include <string.h>

/*
 * The threads' slices of a workspace: as many as nn's threads when the first
 * workspace of the process is sized, and every later workspace gets as many.
 * A convolution never runs on more threads than that, so a workspace sized
 * before the threads were raised is never overrun (the convolutions then run
 * on fewer threads than asked: set the threads before building a model, as
 * train and collect do). Memory stays proportional to the threads in use,
 * not to a fixed maximum; 0 = no workspace sized yet.
 */
static atomic_int slices;

static int workspace_slices(void)
{
	int s = atomic_load(&slices), want = nn_threads();
	if (s == 0 && !atomic_compare_exchange_strong(&slices, &s, want))
		return s; /* another thread set it first: s holds its value */
	return s ? s : want;
}

void bv_conv_dims_init(bv_conv_dims *d)
{
	d->oh = (d->h + 2 * d->pad - d->kh) / d->stride + 1;
	d->ow = (d->w + 2 * d->pad - d->kw) / d->stride + 1;
}

static int is_pointwise(const bv_conv_dims *d)
{
	return d->kh == 1 && d->kw == 1 && d->stride == 1 && d->pad == 0;
}

static size_t round16(size_t x)
{
	return (x + 15) & ~(size_t)15; /* slices 64 bytes apart: little false sharing */
}

/* Winograd's transformed filter U (16, c_out, c_in), shared by the threads
 * at the start of the workspace; 0 on the im2col path. */
static size_t shared_size(const bv_conv_dims *d)
{
	return bv_winograd_applies(d) ? round16((size_t)16 * d->c_out * d->c_in) : 0;
}

/* One thread's slice: col (K, ohw) [absent when pointwise] or Winograd's
 * slice, then the partial dw^T (K, c_out) or dU (16, c_out, c_in), then the
 * partial db (c_out). */
static size_t slice_col(const bv_conv_dims *d)
{
	if (bv_winograd_applies(d))
		return round16(bv_winograd_slice_size(d));
	return is_pointwise(d) ? 0 : round16((size_t)d->c_in * d->kh * d->kw * d->oh * d->ow);
}

static size_t partial_dw_size(const bv_conv_dims *d)
{
	const size_t taps = bv_winograd_applies(d) ? 16 : (size_t)d->kh * d->kw;
	return taps * d->c_out * d->c_in;
}

static size_t slice_size(const bv_conv_dims *d)
{
	return slice_col(d) + round16(partial_dw_size(d)) + round16((size_t)d->c_out);
}

/*
 * One slice per thread (workspace_slices) of (one sample's im2col matrix, K x
 * oh*ow floats, or Winograd's V and M for one chunk, plus the partial sums of
 * dw and db), after Winograd's U; never 0, also for a 1x1 convolution.
 * Independent of n: size it once per model.
 */
size_t bv_conv2d_col_size(const bv_conv_dims *d)
{
	return shared_size(d) + (size_t)workspace_slices() * slice_size(d);
}

/* [*lo, *hi): the outputs o whose input o*stride - pad + k lies inside [0, size) */
static void valid_range(int *lo, int *hi, int k, int stride, int pad, int size, int n_out)
{
	int a = pad - k > 0 ? (pad - k + stride - 1) / stride : 0;
	int b = size + pad - k > 0 ? (size + pad - k + stride - 1) / stride : 0;
	a = a < n_out ? a : n_out;
	b = b < n_out ? b : n_out;
	*lo = a;
	*hi = b > a ? b : a;
}

/*
 * col (K, ohw) <- the patches of one sample x (c_in, h, w):
 * col[(c, ki, kj)][oy*ow + ox] = x[c][oy*s - pad + ki][ox*s - pad + kj], 0 outside.
 * With stride 1 and ow == w (a "same" convolution) the valid rows of each col
 * row are one shifted copy of the plane (index + shift), after which the
 * columns that wrapped in from the neighbouring image row are zeroed.
 */
static void im2col(float *restrict col, const float *restrict x, const bv_conv_dims *d)
{
	const int s = d->stride, p = d->pad, oh = d->oh, ow = d->ow, h = d->h, w = d->w;
	const int ohw = oh * ow, flat = s == 1 && ow == w;
	for (int c = 0; c < d->c_in; c++) {
		const float *xc = x + (size_t)c * h * w;
		for (int ki = 0; ki < d->kh; ki++)
			for (int kj = 0; kj < d->kw; kj++) {
				float *row = col + (size_t)((c * d->kh + ki) * d->kw + kj) * ohw;
				const int off = kj - p;
				int lo, hi, ylo, yhi;
				valid_range(&lo, &hi, kj, s, p, w, ow);
				valid_range(&ylo, &yhi, ki, s, p, h, oh);
				memset(row, 0, sizeof(float) * (size_t)ylo * ow);
				memset(row + (size_t)yhi * ow, 0, sizeof(float) * (size_t)(oh - yhi) * ow);
				if (flat) {
					const int shift = (ki - p) * w + off;
					int a = ylo * ow, b = yhi * ow;
					a = a + shift < 0 ? -shift : a;
					b = b + shift > h * w ? h * w - shift : b;
					if (a < b)
						memcpy(row + a, xc + a + shift, sizeof(float) * (size_t)(b - a));
					if (lo > 0 || hi < ow)
						for (int oy = ylo; oy < yhi; oy++) {
							float *r = row + (size_t)oy * ow;
							for (int ox = 0; ox < lo; ox++)
								r[ox] = 0.0f;
							for (int ox = hi; ox < ow; ox++)
								r[ox] = 0.0f;
						}
					continue;
				}
				for (int oy = ylo; oy < yhi; oy++) {
					float *r = row + (size_t)oy * ow;
					const float *xr = xc + (size_t)(oy * s - p + ki) * w;
					for (int ox = 0; ox < lo; ox++)
						r[ox] = 0.0f;
					if (s == 1)
						for (int ox = lo; ox < hi; ox++)
							r[ox] = xr[ox + off];
					else
						for (int ox = lo; ox < hi; ox++)
							r[ox] = xr[ox * s + off];
					for (int ox = hi; ox < ow; ox++)
						r[ox] = 0.0f;
				}
			}
	}
}

/* The "same"-convolution part of col2im for one channel: with stride 1 and
 * ow == w, row k of dcol adds to dx[i] its element i - shift[k] wherever that
 * lies in [a[k], b[k]). On the range where all kh*kw rows are valid the adds
 * are fused (one load and store of dx per element, not kh*kw). */
static void col2im_flat(float *restrict dx, float *restrict *rows, const int *shift,
			const int *a, const int *b, int n_rows, int size)
{
	int lo = 0, hi = size; /* dx indices where every row contributes */
	for (int k = 0; k < n_rows; k++) {
		lo = a[k] + shift[k] > lo ? a[k] + shift[k] : lo;
		hi = b[k] + shift[k] < hi ? b[k] + shift[k] : hi;
	}
	hi = hi > lo ? hi : lo;
	for (int k = 0; k < n_rows; k++) {
		const float *r = rows[k];
		const int s = shift[k], e1 = lo - s < b[k] ? lo - s : b[k];
		const int s2 = hi - s > a[k] ? hi - s : a[k];
		for (int i = a[k]; i < e1; i++)
			dx[i + s] += r[i];
		for (int i = s2 > e1 ? s2 : e1; i < b[k]; i++)
			dx[i + s] += r[i];
	}
	if (n_rows == 9) {
		const float *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3], *r4 = rows[4],
			    *r5 = rows[5], *r6 = rows[6], *r7 = rows[7], *r8 = rows[8];
		const int s0 = shift[0], s1 = shift[1], s2 = shift[2], s3 = shift[3], s4 = shift[4],
			  s5 = shift[5], s6 = shift[6], s7 = shift[7], s8 = shift[8];
		for (int i = lo; i < hi; i++)
			dx[i] += ((r0[i - s0] + r1[i - s1]) + (r2[i - s2] + r3[i - s3])) +
				 ((r4[i - s4] + r5[i - s5]) + (r6[i - s6] + r7[i - s7])) + r8[i - s8];
		return;
	}
	for (int k = 0; k < n_rows; k++)
		for (int i = lo; i < hi; i++)
			dx[i] += rows[k][i - shift[k]];
}

/* Rows of one channel handled by col2im_flat at a time (a 3x3 kernel has 9). */
#define FLAT_ROWS 9

/* dx (c_in, h, w) += dcol (K, ohw) scattered back: the adjoint of im2col. dcol
 * is scratch: on the "same"-convolution path its columns that would wrap into
 * the neighbouring image row are zeroed first. */
static void col2im(float *restrict dx, float *restrict dcol, const bv_conv_dims *d)
{
	const int s = d->stride, p = d->pad, oh = d->oh, ow = d->ow, h = d->h, w = d->w;
	const int ohw = oh * ow, flat = s == 1 && ow == w && d->kh * d->kw <= FLAT_ROWS;
	for (int c = 0; c < d->c_in; c++) {
		float *dxc = dx + (size_t)c * h * w;
		float *rows[FLAT_ROWS];
		int shift[FLAT_ROWS], ra[FLAT_ROWS], rb[FLAT_ROWS];
		for (int ki = 0; ki < d->kh; ki++)
			for (int kj = 0; kj < d->kw; kj++) {
				const int k = ki * d->kw + kj;
				float *row = dcol + (size_t)(c * d->kh * d->kw + k) * ohw;
				const int off = kj - p;
				int lo, hi, ylo, yhi;
				valid_range(&lo, &hi, kj, s, p, w, ow);
				valid_range(&ylo, &yhi, ki, s, p, h, oh);
				if (flat) {
					const int sh = (ki - p) * w + off;
					int a = ylo * ow, b = yhi * ow;
					a = a + sh < 0 ? -sh : a;
					b = b + sh > h * w ? h * w - sh : b;
					if (lo > 0 || hi < ow)
						for (int oy = ylo; oy < yhi; oy++) {
							float *r = row + (size_t)oy * ow;
							for (int ox = 0; ox < lo; ox++)
								r[ox] = 0.0f;
							for (int ox = hi; ox < ow; ox++)
								r[ox] = 0.0f;
						}
					rows[k] = row;
					shift[k] = sh;
					ra[k] = a;
					rb[k] = b > a ? b : a;
					continue;
				}
				for (int oy = ylo; oy < yhi; oy++) {
					const float *r = row + (size_t)oy * ow;
					float *xr = dxc + (size_t)(oy * s - p + ki) * w;
					if (s == 1)
						for (int ox = lo; ox < hi; ox++)
							xr[ox + off] += r[ox];
					else
						for (int ox = lo; ox < hi; ox++)
							xr[ox * s + off] += r[ox];
				}
			}
		if (flat)
			col2im_flat(dxc, rows, shift, ra, rb, d->kh * d->kw, h * w);
	}
}

/* The work of one thread: samples [lo, hi) with its own workspace slice. */
typedef struct conv_job {
	const bv_conv_dims *d;
	float *out;          /* forward: (n, c_out, oh, ow) */
	float *din;          /* backward: (n, c_in, h, w) or NULL */
	float *dw;           /* backward: this thread's partial dw^T (K, c_out) or dU */
	float *db;           /* backward: this thread's db accumulator, or NULL */
	const float *in, *w, *b, *dout;
	const float *u;      /* Winograd's U (16, c_out, c_in) */
	float *col;          /* (K, ohw) or Winograd's slice of this thread; unused when pointwise */
	int lo, hi;
} conv_job;

static void forward_job(void *arg, int t)
{
	const conv_job *j = (const conv_job *)arg + t;
	const bv_conv_dims *d = j->d;
	const int K = d->c_in * d->kh * d->kw, ohw = d->oh * d->ow;
	const size_t in_size = (size_t)d->c_in * d->h * d->w, out_size = (size_t)d->c_out * ohw;
	for (int i = j->lo; i < j->hi; i++) {
		const float *x = j->in + (size_t)i * in_size, *a = x;
		float *o = j->out + (size_t)i * out_size;
		if (!is_pointwise(d)) {
			im2col(j->col, x, d);
			a = j->col;
		}
		if (j->b)
			for (int co = 0; co < d->c_out; co++)
				for (int k = 0; k < ohw; k++)
					o[(size_t)co * ohw + k] = j->b[co];
		/* out[i] (c_out, ohw) = w (c_out, K) @ col (K, ohw) [+ b] */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->c_out, ohw, K, 1.0f, j->w,
			    K, a, ohw, j->b ? 1.0f : 0.0f, o, ohw);
	}
}

static void backward_job(void *arg, int t)
{
	const conv_job *j = (const conv_job *)arg + t;
	const bv_conv_dims *d = j->d;
	const int K = d->c_in * d->kh * d->kw, ohw = d->oh * d->ow;
	const size_t in_size = (size_t)d->c_in * d->h * d->w, out_size = (size_t)d->c_out * ohw;
	for (int i = j->lo; i < j->hi; i++) {
		const float *x = j->in + (size_t)i * in_size, *a = x;
		const float *dy = j->dout + (size_t)i * out_size;
		if (!is_pointwise(d)) {
			im2col(j->col, x, d);
			a = j->col;
		}
		/* dw^T (K, c_out) += col (K, ohw) @ dout[i]^T (ohw, c_out) */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, d->c_out, ohw, 1.0f, a, ohw,
			    dy, ohw, 1.0f, j->dw, d->c_out);
		if (j->db)
			for (int co = 0; co < d->c_out; co++)
				j->db[co] += (float)nn_sum_f32(dy + (size_t)co * ohw, (size_t)ohw);
		if (!j->din)
			continue;
		float *dx = j->din + (size_t)i * in_size;
		if (is_pointwise(d)) {
			/* din[i] (c_in, hw) += w^T (c_in, c_out) @ dout[i] (c_out, hw) */
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ohw, d->c_out, 1.0f,
				    j->w, K, dy, ohw, 1.0f, dx, ohw);
			continue;
		}
		/* dcol (K, ohw) = w^T (K, c_out) @ dout[i] (c_out, ohw), over col */
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ohw, d->c_out, 1.0f, j->w, K,
			    dy, ohw, 0.0f, j->col, ohw);
		col2im(dx, j->col, d);
	}
}

static void wino_forward_job(void *arg, int t)
{
	const conv_job *j = (const conv_job *)arg + t;
	bv_winograd_forward(j->out, j->col, j->in, j->u, j->b, j->d, j->lo, j->hi);
}

static void wino_backward_job(void *arg, int t)
{
	const conv_job *j = (const conv_job *)arg + t;
	const bv_conv_dims *d = j->d;
	const size_t hw = (size_t)d->h * d->w;
	bv_winograd_backward(j->din, j->dw, j->col, j->dout, j->in, j->u, d, j->lo, j->hi);
	if (j->db)
		for (int i = j->lo; i < j->hi; i++)
			for (int co = 0; co < d->c_out; co++)
				j->db[co] += (float)nn_sum_f32(j->dout + ((size_t)i * d->c_out + co) * hw, hw);
}

/* Threads for n samples: nn's thread count (OpenBLAS's), at most the
 * workspace's slices and n. */
static int n_threads(int n)
{
	const int s = atomic_load(&slices), t = nn_threads();
	const int nt = s > 0 && s < t ? s : t;
	return nt < n ? nt : n > 1 ? n : 1;
}

int nn_conv_threads(const bv_conv_dims *d)
{
	return n_threads(d->n);
}

/* Run fn(jobs, t) for t < nt on nn's thread pool, t = 0 on the calling
 * thread, with OpenBLAS single-threaded meanwhile. */
static void run_jobs(nn_thread_fn fn, conv_job *jobs, int nt)
{
	if (nt == 1) {
		fn(jobs, 0);
		return;
	}
	const int blas_threads = openblas_get_num_threads();
	openblas_set_num_threads(1);
	nn_run_threads(nt, fn, jobs);
	openblas_set_num_threads(blas_threads);
}

/* Split n samples into nt contiguous ranges, one workspace slice each. */
static void make_jobs(conv_job *jobs, int nt, float *col, const bv_conv_dims *d)
{
	const size_t slice = slice_size(d);
	for (int t = 0; t < nt; t++) {
		memset(&jobs[t], 0, sizeof jobs[t]);
		jobs[t].d = d;
		jobs[t].u = col;
		jobs[t].col = col + shared_size(d) + (size_t)t * slice;
		jobs[t].lo = (int)((long long)d->n * t / nt);
		jobs[t].hi = (int)((long long)d->n * (t + 1) / nt);
	}
}

void bv_conv2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
		       const bv_conv_dims *d)
{
	const int nt = n_threads(d->n), wino = bv_winograd_applies(d);
	conv_job jobs[nt];
	make_jobs(jobs, nt, col, d);
	if (wino)
		bv_winograd_filter(col, w, d);
	for (int t = 0; t < nt; t++) {
		jobs[t].out = out;
		jobs[t].in = in;
		jobs[t].w = w;
		jobs[t].b = b;
	}
	run_jobs(wino ? wino_forward_job : forward_job, jobs, nt);
}

void bv_conv2d_backward(float *din, float *dw, float *db, float *col, const float *dout,
			const float *in, const float *w, const bv_conv_dims *d)
{
	const int nt = n_threads(d->n), wino = bv_winograd_applies(d);
	conv_job jobs[nt]; /* at most the workspace's slices, bounded by n */
	const int K = d->c_in * d->kh * d->kw;
	const size_t n_w = partial_dw_size(d);
	make_jobs(jobs, nt, col, d);
	if (wino && din)
		bv_winograd_filter(col, w, d);
	for (int t = 0; t < nt; t++) {
		conv_job *j = &jobs[t];
		j->din = din;
		j->dout = dout;
		j->in = in;
		j->w = w;
		/* partial dw^T in the slice after col; db in place for thread 0 */
		j->dw = j->col + slice_col(d);
		memset(j->dw, 0, sizeof(float) * n_w);
		j->db = db;
		if (t > 0 && db) {
			j->db = j->dw + round16(n_w);
			memset(j->db, 0, sizeof(float) * (size_t)d->c_out);
		}
	}
	run_jobs(wino ? wino_backward_job : backward_job, jobs, nt);
	for (int t = 0; t < nt; t++) {
		const float *p = jobs[t].dw;
		if (wino && t > 0) /* summed into thread 0's dU, transformed once below */
			for (size_t k = 0; k < n_w; k++)
				jobs[0].dw[k] += p[k];
		else if (!wino)
			for (int co = 0; co < d->c_out; co++)
				for (int k = 0; k < K; k++)
					dw[(size_t)co * K + k] += p[(size_t)k * d->c_out + co];
		if (db && t > 0)
			for (int co = 0; co < d->c_out; co++)
				db[co] += jobs[t].db[co];
	}
	if (wino)
		bv_winograd_filter_grad(dw, jobs[0].dw, d);
}

void bv_conv2d_forward_naive(float *out, const float *in, const float *w, const float *b,
			     const bv_conv_dims *d)
{
	for (int i = 0; i < d->n; i++)
		for (int co = 0; co < d->c_out; co++)
			for (int oy = 0; oy < d->oh; oy++)
				for (int ox = 0; ox < d->ow; ox++) {
					double acc = b ? b[co] : 0.0;
					for (int ci = 0; ci < d->c_in; ci++)
						for (int ki = 0; ki < d->kh; ki++)
							for (int kj = 0; kj < d->kw; kj++) {
								const int iy = oy * d->stride - d->pad + ki;
								const int ix = ox * d->stride - d->pad + kj;
								if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
									continue;
								acc += (double)in[(((size_t)i * d->c_in + ci) * d->h + iy) * d->w + ix] *
								       w[(((size_t)co * d->c_in + ci) * d->kh + ki) * d->kw + kj];
							}
					out[(((size_t)i * d->c_out + co) * d->oh + oy) * d->ow + ox] = (float)acc;
				}
}

void bv_conv2d_backward_naive(float *din, float *dw, float *db, const float *dout,
			      const float *in, const float *w, const bv_conv_dims *d)
{
	/* out[i][co][oy][ox] = sum x[i][ci][oy*s - pad + ki][ox*s - pad + kj] * w[co][ci][ki][kj]:
	 * dw[co][ci][ki][kj] sums dout * x over (i, oy, ox), din[i][ci][iy][ix] sums dout * w */
	for (int co = 0; co < d->c_out; co++)
		for (int ci = 0; ci < d->c_in; ci++)
			for (int ki = 0; ki < d->kh; ki++)
				for (int kj = 0; kj < d->kw; kj++) {
					const size_t wi = (((size_t)co * d->c_in + ci) * d->kh + ki) * d->kw + kj;
					double acc = 0;
					for (int i = 0; i < d->n; i++)
						for (int oy = 0; oy < d->oh; oy++)
							for (int ox = 0; ox < d->ow; ox++) {
								const int iy = oy * d->stride - d->pad + ki;
								const int ix = ox * d->stride - d->pad + kj;
								if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
									continue;
								const size_t xi = (((size_t)i * d->c_in + ci) * d->h + iy) * d->w + ix;
								const double g = dout[(((size_t)i * d->c_out + co) * d->oh + oy) * d->ow + ox];
								acc += g * in[xi];
								if (din)
									din[xi] += (float)(g * w[wi]);
							}
					dw[wi] += (float)acc;
				}
	if (db)
		for (int co = 0; co < d->c_out; co++) {
			double acc = 0;
			for (int i = 0; i < d->n; i++)
				for (int k = 0; k < d->oh * d->ow; k++)
					acc += dout[((size_t)i * d->c_out + co) * d->oh * d->ow + k];
			db[co] += (float)acc;
		}
}
