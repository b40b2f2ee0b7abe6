/*
 * Winograd F(2x2, 3x3) (Lavin & Gray 2015) for 3x3 stride-1 pad-1
 * convolutions: the arithmetic of bv_conv2d_* on that shape, which conv.c
 * calls per thread on a range of samples.
 *
 * Each 2x2 output tile reads a 4x4 input tile d (tiles overlap by 2, zero
 * outside the image; the last tile row/column is clipped when h or w is odd).
 * With the 16 positions xi of a 4x4 transform as separate matrices,
 *     U[xi] (c_out, c_in) = (G g G^T)[xi]                   per filter g
 *     V[xi] (c_in, N)     = (B^T d B)[xi]                   per input tile
 *     M[xi] (c_out, N)    = U[xi] @ V[xi]                   16 cblas_sgemm
 *     out tile            = A^T M A                         (+ bias)
 * and backward is the adjoint of each step:
 *     dM                  = A dout_tile A^T
 *     dU[xi]             += dM[xi] @ V[xi]^T               16 cblas_sgemm
 *     dV[xi]              = U[xi]^T @ dM[xi]               16 cblas_sgemm
 *     din tiles          += B dV B^T, overlapping tiles summed
 *     dw                 += G^T dU G
 * (4 multiplies per output pixel and input channel instead of 9.)
 *
 * N is the number of tiles of a chunk: a run of whole tile rows, of one or
 * many samples, with about CHUNK_TILES tiles, so that the sgemms are big
 * enough to run near peak and the chunk's V and M stay a few MB at most.
 * Tile row g of a call is tile row g % th of sample g / th.
 */
#include "nn.h"

#include "base.h"
#include "bvmath.h"

#include <cblas.h>
#include <string.h>

/* Tiles per chunk we aim for (the sgemms' N), fewer for wide layers so that
 * a chunk's V and M stay within CHUNK_FLOATS (4 MiB); see docs/benchmarks.md. */
#ifndef CHUNK_TILES
#define CHUNK_TILES 128
#endif
#ifndef CHUNK_FLOATS
#define CHUNK_FLOATS (1024 * 1024)
#endif

typedef struct wino_geom {
	int th, tw;     /* tile rows and columns of one sample */
	int rows;       /* tile rows per chunk */
} wino_geom;

static wino_geom geom(const bv_conv_dims *d)
{
	wino_geom g;
	g.th = (d->h + 1) / 2;
	g.tw = (d->w + 1) / 2;
	int tiles = CHUNK_FLOATS / (16 * (d->c_in + d->c_out));
	tiles = tiles < CHUNK_TILES ? tiles : CHUNK_TILES;
	g.rows = tiles > g.tw ? (tiles + g.tw - 1) / g.tw : 1;
	return g;
}

/* 3x3 stride 1 pad 1 with c_in >= 16. With fewer input channels the
 * transforms cost about what the products save: at 1 thread, n = 128,
 * Winograd is 1.6x slower for 3 -> 16 at 32x32, 1.2x for 4 -> 16, even
 * for 8 -> 16 (0.95x) and 8 -> 64 at 8x8 (1.07x); from 16 -> 16 on it is
 * 1.3-3x faster (docs/benchmarks.md). */
int bv_winograd_applies(const bv_conv_dims *d)
{
	return d->kh == 3 && d->kw == 3 && d->stride == 1 && d->pad == 1 && d->c_in >= 16;
}

/* One slice: V (16, c_in, N), M (16, c_out, N), then the transforms'
 * scratch, 12 arrays of (tile rows of a segment + 1) * tw. */
static size_t slice_v(const bv_conv_dims *d)
{
	const wino_geom g = geom(d);
	return (size_t)16 * d->c_in * g.rows * g.tw;
}

static size_t slice_m(const bv_conv_dims *d)
{
	const wino_geom g = geom(d);
	return (size_t)16 * d->c_out * g.rows * g.tw;
}

size_t bv_winograd_slice_size(const bv_conv_dims *d)
{
	const wino_geom g = geom(d);
	const int rows = g.rows < g.th ? g.rows : g.th;
	return slice_v(d) + slice_m(d) + (size_t)12 * (rows + 1) * g.tw;
}

/* G (4, 3) */
static const float G[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};

void bv_winograd_filter(float *u, const float *w, const bv_conv_dims *d)
{
	const size_t plane = (size_t)d->c_out * d->c_in;
	for (size_t k = 0; k < plane; k++) {
		const float *g = w + k * 9;
		float t[4][3]; /* G g */
		for (int i = 0; i < 4; i++)
			for (int b = 0; b < 3; b++)
				t[i][b] = G[i][0] * g[b] + G[i][1] * g[3 + b] + G[i][2] * g[6 + b];
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 4; j++)
				u[(i * 4 + j) * plane + k] =
					t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
	}
}

void bv_winograd_filter_grad(float *dw, const float *du, const bv_conv_dims *d)
{
	const size_t plane = (size_t)d->c_out * d->c_in;
	for (size_t k = 0; k < plane; k++) {
		float t[3][4]; /* G^T dU */
		for (int a = 0; a < 3; a++)
			for (int j = 0; j < 4; j++) {
				float s = 0;
				for (int i = 0; i < 4; i++)
					s += G[i][a] * du[(i * 4 + j) * plane + k];
				t[a][j] = s;
			}
		float *g = dw + k * 9;
		for (int a = 0; a < 3; a++)
			for (int b = 0; b < 3; b++)
				g[a * 3 + b] += t[a][0] * G[0][b] + t[a][1] * G[1][b] + t[a][2] * G[2][b] +
						t[a][3] * G[3][b];
	}
}

/*
 * The 1-D transforms on four (or two) rows of n values, out_k[t] from in_k[t]
 * for t < n: B^T and its adjoint B, A^T and its adjoint A. A 4x4 transform is
 * one of them down the columns of the tiles and one along their rows.
 */
static inline void bt4(float *restrict o0, float *restrict o1, float *restrict o2,
		       float *restrict o3, const float *restrict i0, const float *restrict i1,
		       const float *restrict i2, const float *restrict i3, int n)
{
	for (int t = 0; t < n; t++) {
		o0[t] = i0[t] - i2[t];
		o1[t] = i1[t] + i2[t];
		o2[t] = i2[t] - i1[t];
		o3[t] = i1[t] - i3[t];
	}
}

static inline void at4(float *restrict o0, float *restrict o1, const float *restrict i0,
		       const float *restrict i1, const float *restrict i2,
		       const float *restrict i3, int n)
{
	for (int t = 0; t < n; t++) {
		o0[t] = (i0[t] + i1[t]) + i2[t];
		o1[t] = (i1[t] - i2[t]) - i3[t];
	}
}

static inline void a4(float *restrict o0, float *restrict o1, float *restrict o2,
		      float *restrict o3, const float *restrict i0, const float *restrict i1, int n)
{
	for (int t = 0; t < n; t++) {
		o0[t] = i0[t];
		o1[t] = i0[t] + i1[t];
		o2[t] = i0[t] - i1[t];
		o3[t] = -i1[t];
	}
}

/*
 * A chunk's tile rows [g0, g1) fall into segments, runs of tile rows of one
 * sample; a segment's tiles are contiguous in V and M, so each step below
 * but the ones that touch image rows is one loop over the whole segment.
 * Scratch per segment: 12 arrays of (its tile rows + 1) * tw floats.
 */
typedef struct segment {
	int s, ty0, rows; /* sample, first tile row, tile rows */
	size_t off;       /* its first tile's column in the chunk's V and M */
} segment;

static int next_segment(segment *sg, int *g, int g0, int g1, int th, int tw)
{
	if (*g >= g1)
		return 0;
	sg->s = *g / th;
	sg->ty0 = *g % th;
	sg->rows = th - sg->ty0 < g1 - *g ? th - sg->ty0 : g1 - *g;
	sg->off = (size_t)(*g - g0) * tw;
	*g += sg->rows;
	return 1;
}

/* Where xi = 4 i + j of a chunk's (16, c, N) matrix starts for channel ch and segment sg. */
#define PLANE(base, xi, ch) ((base) + (size_t)(xi) * pstride + (size_t)(ch) * n_tiles + sg.off)

/* o_j[t] = bt4 of (x[2t - 1], x[2t], x[2t + 1], x[2t + 2]), 0 outside the row:
 * d B along one image row (or 0 for a row of padding, xr NULL). The row is
 * copied between zeros first, pad[k + 1] = x[k], so that one loop without
 * bounds covers every tile. */
static inline void row_bt4(float *restrict o0, float *restrict o1, float *restrict o2,
			   float *restrict o3, float *restrict pad, const float *restrict xr, int w)
{
	const int tw = (w + 1) / 2;
	if (!xr) {
		memset(o0, 0, sizeof(float) * (size_t)tw);
		memset(o1, 0, sizeof(float) * (size_t)tw);
		memset(o2, 0, sizeof(float) * (size_t)tw);
		memset(o3, 0, sizeof(float) * (size_t)tw);
		return;
	}
	pad[0] = 0;
	memcpy(pad + 1, xr, sizeof(float) * (size_t)w);
	for (int k = w + 1; k < 2 * tw + 2; k++)
		pad[k] = 0;
	for (int t = 0; t < tw; t++) {
		const float d0 = pad[2 * t], d1 = pad[2 * t + 1], d2 = pad[2 * t + 2],
			    d3 = pad[2 * t + 3];
		o0[t] = d0 - d2;
		o1[t] = d1 + d2;
		o2[t] = d2 - d1;
		o3[t] = d1 - d3;
	}
}

/* xr (one image row) += the adjoint of row_bt4 from r_j[t], t < tw:
 * x[2t - 1] += r0, x[2t] += r1 - r3 ... as B (.) spread over the 4 pixels. */
static inline void row_b4(float *restrict xr, const float *restrict r0, const float *restrict r1,
			  const float *restrict r2, const float *restrict r3, int w)
{
	const int tw = (w + 1) / 2, half = w / 2;
	/* pixel 2k gets d1 of tile k and d3 of tile k - 1; pixel 2k + 1 gets d2 of
	 * tile k and d0 of tile k + 1 */
	xr[0] += (r1[0] - r2[0]) + r3[0];
	for (int k = 1; k < tw; k++)
		xr[2 * k] += ((r1[k] - r2[k]) + r3[k]) - r3[k - 1];
	const int full = half < tw - 1 ? half : tw - 1;
	for (int k = 0; k < full; k++)
		xr[2 * k + 1] += ((r1[k] + r2[k]) - r0[k]) + r0[k + 1];
	if (half == tw) /* w even: the last pixel has no tile to its right */
		xr[w - 1] += (r1[tw - 1] + r2[tw - 1]) - r0[tw - 1];
}

/*
 * v (16, c, N) <- B^T d B for the tiles of tile rows [g0, g1) of x (., c, h, w).
 * d B along each padded image row p of a segment (row_bt4, into e_j for even p
 * and o_j for odd p, (rows + 1, tw) each), then B^T down the columns: tile t
 * of tile row r reads rows 2r .. 2r + 3, i.e. e[n], o[n], e[n + tw], o[n + tw]
 * with n = r tw + t, one loop over the segment.
 */
BV_TARGET_CLONES static void input_transform(float *restrict v, float *restrict scratch,
					     const float *restrict x, int c, int h, int w, int g0,
					     int g1)
{
	const int th = (h + 1) / 2, tw = (w + 1) / 2;
	const size_t n_tiles = (size_t)(g1 - g0) * tw, pstride = (size_t)c * n_tiles;
	const size_t stride = ((size_t)(g1 - g0 < th ? g1 - g0 : th) + 1) * tw;
	float *e = scratch, *o = e + 4 * stride; /* (4, rows + 1, tw) each */
	float *pad = o + 4 * stride;             /* row_bt4's 2 tw + 2 */
	for (int ch = 0; ch < c; ch++) {
		segment sg;
		for (int g = g0; next_segment(&sg, &g, g0, g1, th, tw);) {
			const float *xc = x + ((size_t)sg.s * c + ch) * h * w;
			for (int p = 0; p < 2 * sg.rows + 2; p++) {
				const int y = 2 * sg.ty0 - 1 + p;
				float *r = (p & 1 ? o : e) + (size_t)(p >> 1) * tw;
				row_bt4(r, r + stride, r + 2 * stride, r + 3 * stride, pad,
					y >= 0 && y < h ? xc + (size_t)y * w : NULL, w);
			}
			const int len = sg.rows * tw;
			for (int j = 0; j < 4; j++) {
				const float *ej = e + j * stride, *oj = o + j * stride;
				bt4(PLANE(v, j, ch), PLANE(v, 4 + j, ch), PLANE(v, 8 + j, ch),
				    PLANE(v, 12 + j, ch), ej, oj, ej + tw, oj + tw, len);
			}
		}
	}
}

/*
 * x (., c, h, w) += B v B^T for the tiles of tile rows [g0, g1): the adjoint
 * of input_transform, each tile added onto the 4x4 patch it was read from
 * (patches overlap; the parts outside the image are dropped). With
 * (u0, u1, u2, u3) = B (v0, v1, v2, v3) down the columns, e[n] gets u0[n] and
 * u2[n - tw], o[n] gets u1[n] and u3[n - tw]; then row_b4 per image row.
 */
BV_TARGET_CLONES static void input_transform_adjoint(float *restrict x, float *restrict scratch,
						     const float *restrict v, int c, int h, int w,
						     int g0, int g1)
{
	const int th = (h + 1) / 2, tw = (w + 1) / 2;
	const size_t n_tiles = (size_t)(g1 - g0) * tw, pstride = (size_t)c * n_tiles;
	const size_t stride = ((size_t)(g1 - g0 < th ? g1 - g0 : th) + 1) * tw;
	float *e = scratch, *o = e + 4 * stride; /* (4, rows + 1, tw) each */
	for (int ch = 0; ch < c; ch++) {
		segment sg;
		for (int g = g0; next_segment(&sg, &g, g0, g1, th, tw);) {
			float *xc = x + ((size_t)sg.s * c + ch) * h * w;
			const int len = sg.rows * tw;
			for (int j = 0; j < 4; j++) {
				float *restrict ej = e + j * stride, *restrict oj = o + j * stride;
				const float *restrict v0 = PLANE(v, j, ch), *restrict v1 = PLANE(v, 4 + j, ch),
						      *restrict v2 = PLANE(v, 8 + j, ch),
						      *restrict v3 = PLANE(v, 12 + j, ch);
				for (int n = 0; n < tw; n++) {
					ej[n] = v0[n];
					oj[n] = (v1[n] - v2[n]) + v3[n];
				}
				for (int n = tw; n < len; n++) {
					ej[n] = v0[n] + ((v1[n - tw] + v2[n - tw]) - v0[n - tw]);
					oj[n] = ((v1[n] - v2[n]) + v3[n]) - v3[n - tw];
				}
				for (int n = len; n < len + tw; n++) {
					ej[n] = (v1[n - tw] + v2[n - tw]) - v0[n - tw];
					oj[n] = -v3[n - tw];
				}
			}
			for (int p = 0; p < 2 * sg.rows + 2; p++) {
				const int y = 2 * sg.ty0 - 1 + p;
				if (y < 0 || y >= h)
					continue;
				const float *r = (p & 1 ? o : e) + (size_t)(p >> 1) * tw;
				row_b4(xc + (size_t)y * w, r, r + stride, r + 2 * stride,
				       r + 3 * stride, w);
			}
		}
	}
}

/*
 * y (., c, h, w) = A^T m A [+ b] for the tiles of tile rows [g0, g1) of
 * m (16, c, N): at4 down each of the 4 columns, then along the 2 rows, over
 * the whole segment; the 2x2 tiles are then interleaved into the image and
 * clipped at its edge.
 */
BV_TARGET_CLONES static void output_transform(float *restrict y, float *restrict scratch,
					      const float *restrict m, const float *restrict bias,
					      int c, int h, int w, int g0, int g1)
{
	const int th = (h + 1) / 2, tw = (w + 1) / 2, half = w / 2;
	const size_t n_tiles = (size_t)(g1 - g0) * tw, pstride = (size_t)c * n_tiles;
	const size_t stride = (size_t)(g1 - g0 < th ? g1 - g0 : th) * tw;
	float *a = scratch;          /* A^T (.) down the columns: (2, 4, segment) */
	float *t = a + 8 * stride;   /* the tiles' 2 x 2 outputs: (2, 2, segment) */
	for (int ch = 0; ch < c; ch++) {
		const float b = bias ? bias[ch] : 0.0f;
		segment sg;
		for (int g = g0; next_segment(&sg, &g, g0, g1, th, tw);) {
			const int len = sg.rows * tw;
			for (int j = 0; j < 4; j++)
				at4(a + j * stride, a + (4 + j) * stride, PLANE(m, j, ch),
				    PLANE(m, 4 + j, ch), PLANE(m, 8 + j, ch), PLANE(m, 12 + j, ch), len);
			for (int q = 0; q < 2; q++) {
				const float *aq = a + 4 * q * stride;
				at4(t + 2 * q * stride, t + (2 * q + 1) * stride, aq, aq + stride,
				    aq + 2 * stride, aq + 3 * stride, len);
			}
			float *yc = y + ((size_t)sg.s * c + ch) * h * w;
			for (int r = 0; r < sg.rows; r++)
				for (int q = 0; q < 2; q++) {
					const int yy = 2 * (sg.ty0 + r) + q;
					if (yy >= h)
						break;
					float *restrict yr = yc + (size_t)yy * w;
					const float *ev = t + 2 * q * stride + (size_t)r * tw, *od = ev + stride;
					for (int k = 0; k < half; k++) {
						yr[2 * k] = ev[k] + b;
						yr[2 * k + 1] = od[k] + b;
					}
					if (w & 1)
						yr[w - 1] = ev[half] + b;
				}
		}
	}
}

/*
 * m (16, c, N) <- A dy A^T for the 2x2 tiles of tile rows [g0, g1) of
 * dy (., c, h, w), 0 outside the image: the adjoint of output_transform. The
 * tiles' 4 values are split out of the image rows, then a4 along the tiles'
 * 2 rows and down their 4 columns, over the whole segment.
 */
BV_TARGET_CLONES static void output_transform_adjoint(float *restrict m, float *restrict scratch,
						      const float *restrict dy, int c, int h, int w,
						      int g0, int g1)
{
	const int th = (h + 1) / 2, tw = (w + 1) / 2, half = w / 2;
	const size_t n_tiles = (size_t)(g1 - g0) * tw, pstride = (size_t)c * n_tiles;
	const size_t stride = (size_t)(g1 - g0 < th ? g1 - g0 : th) * tw;
	float *t = scratch;          /* the tiles' 2 x 2 values: (2, 2, segment) */
	float *a = t + 4 * stride;   /* (.) A^T along the rows: (2, 4, segment) */
	for (int ch = 0; ch < c; ch++) {
		segment sg;
		for (int g = g0; next_segment(&sg, &g, g0, g1, th, tw);) {
			const float *yc = dy + ((size_t)sg.s * c + ch) * h * w;
			const int len = sg.rows * tw;
			for (int r = 0; r < sg.rows; r++)
				for (int q = 0; q < 2; q++) {
					const int yy = 2 * (sg.ty0 + r) + q;
					float *restrict ev = t + 2 * q * stride + (size_t)r * tw;
					float *restrict od = ev + stride;
					if (yy >= h) {
						memset(ev, 0, sizeof(float) * (size_t)tw);
						memset(od, 0, sizeof(float) * (size_t)tw);
						continue;
					}
					const float *yr = yc + (size_t)yy * w;
					for (int k = 0; k < half; k++) {
						ev[k] = yr[2 * k];
						od[k] = yr[2 * k + 1];
					}
					if (w & 1) {
						ev[half] = yr[w - 1];
						od[half] = 0;
					}
				}
			for (int q = 0; q < 2; q++) {
				float *aq = a + 4 * q * stride;
				a4(aq, aq + stride, aq + 2 * stride, aq + 3 * stride, t + 2 * q * stride,
				   t + (2 * q + 1) * stride, len);
			}
			for (int j = 0; j < 4; j++)
				a4(PLANE(m, j, ch), PLANE(m, 4 + j, ch), PLANE(m, 8 + j, ch),
				   PLANE(m, 12 + j, ch), a + j * stride, a + (4 + j) * stride, len);
		}
	}
}

#undef PLANE

/* Tile rows of samples [lo, hi): [lo * th, hi * th), in chunks of geom().rows. */
void bv_winograd_forward(float *out, float *slice, const float *in, const float *u,
			 const float *b, const bv_conv_dims *d, int lo, int hi)
{
	const wino_geom gm = geom(d);
	float *v = slice, *m = v + slice_v(d), *scratch = m + slice_m(d);
	const size_t plane = (size_t)d->c_out * d->c_in;
	for (int g0 = lo * gm.th; g0 < hi * gm.th; g0 += gm.rows) {
		const int g1 = g0 + gm.rows < hi * gm.th ? g0 + gm.rows : hi * gm.th;
		const int n_tiles = (g1 - g0) * gm.tw;
		input_transform(v, scratch, in, d->c_in, d->h, d->w, g0, g1);
		/* M[xi] (c_out, N) = U[xi] (c_out, c_in) @ V[xi] (c_in, N) */
		for (int xi = 0; xi < 16; xi++)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->c_out, n_tiles,
				    d->c_in, 1.0f, u + xi * plane, d->c_in,
				    v + (size_t)xi * d->c_in * n_tiles, n_tiles, 0.0f,
				    m + (size_t)xi * d->c_out * n_tiles, n_tiles);
		output_transform(out, scratch, m, b, d->c_out, d->h, d->w, g0, g1);
	}
}

void bv_winograd_backward(float *din, float *du, float *slice, const float *dout,
			  const float *in, const float *u, const bv_conv_dims *d, int lo, int hi)
{
	const wino_geom gm = geom(d);
	float *v = slice, *m = v + slice_v(d), *scratch = m + slice_m(d);
	const size_t plane = (size_t)d->c_out * d->c_in;
	for (int g0 = lo * gm.th; g0 < hi * gm.th; g0 += gm.rows) {
		const int g1 = g0 + gm.rows < hi * gm.th ? g0 + gm.rows : hi * gm.th;
		const int n_tiles = (g1 - g0) * gm.tw;
		input_transform(v, scratch, in, d->c_in, d->h, d->w, g0, g1);
		output_transform_adjoint(m, scratch, dout, d->c_out, d->h, d->w, g0, g1);
		for (int xi = 0; xi < 16; xi++) {
			float *vx = v + (size_t)xi * d->c_in * n_tiles;
			const float *mx = m + (size_t)xi * d->c_out * n_tiles;
			/* dU[xi] (c_out, c_in) += dM[xi] (c_out, N) @ V[xi]^T (N, c_in) */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->c_out, d->c_in,
				    n_tiles, 1.0f, mx, n_tiles, vx, n_tiles, 1.0f, du + xi * plane,
				    d->c_in);
			/* dV[xi] (c_in, N) = U[xi]^T (c_in, c_out) @ dM[xi] (c_out, N), over V */
			if (din)
				cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d->c_in, n_tiles,
					    d->c_out, 1.0f, u + xi * plane, d->c_in, mx, n_tiles,
					    0.0f, vx, n_tiles);
		}
		if (din)
			input_transform_adjoint(din, scratch, v, d->c_in, d->h, d->w, g0, g1);
	}
}
