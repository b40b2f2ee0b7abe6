/*
 * exp and log over arrays of doubles, in place, written so that the compiler
 * turns each loop into SIMD code: no branches (selects only), no libm calls,
 * integer work on 64-bit lanes only. On x86-64 each function is compiled three
 * times (AVX-512, AVX2, baseline SSE2) and the loader picks the best one for
 * the machine (GCC's target_clones). Floating-point contraction is off in
 * ISO C mode, so every clone rounds the same way: results are bit-identical
 * whichever clone runs.
 *
 * They exist for `bvtool decompose`, whose time was a third scalar libm exp
 * and log (docs/benchmarks.md), and serve the SQL aggregates' log-softmax
 * (bv_math_log_softmax_fast). Accuracy, checked against libm by
 * tests/test_base.c: a few ulps.
 *
 * exp: x = n ln2 + r, |r| <= ln2/2, n = round(x / ln2) by the 1.5*2^52
 * shifter (x clamped to [-746, 710], past which exp is 0 or inf); ln2 split in two (fdlibm's ln2_hi has 32 significant bits, so
 * n ln2_hi is exact); exp(r) by its Taylor polynomial to degree 13 (the
 * remainder |r|^14/14! < 5e-18); 2^n built in the exponent bits.
 * log: x = 2^e m, m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(u), u = (m-1)/(m+1),
 * |u| < 0.172, by its series to u^21 (the remainder < 3e-17 relative).
 */
#include "bvmath.h"

#include <stdint.h>
#include <math.h>
#include <string.h>

static const double LN2_HI = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
static const double LN2_LO = 1.90821492927058770002e-10; /* 0x3dea39ef35793c76 */
static const double LOG2E = 1.44269504088896338700e+00;
static const double SHIFTER = 0x1.8p52;

static inline uint64_t bits_of(double x)
{
	uint64_t u;
	memcpy(&u, &x, sizeof u);
	return u;
}

static inline double double_of(uint64_t u)
{
	double x;
	memcpy(&x, &u, sizeof x);
	return x;
}

BV_TARGET_CLONES void bv_vexp(double *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const double v = x[i];
		/* past these bounds exp is 0 (under half the least subnormal) or inf */
		double c = v < -746.0 ? -746.0 : v;
		c = c > 710.0 ? 710.0 : c;
		const double t = c * LOG2E + SHIFTER; /* low bits of t: 2^51 + n */
		const double k = t - SHIFTER;         /* n, exactly */
		const double r = (c - k * LN2_HI) - k * LN2_LO;
		/* exp(r) = sum_i r^i / i!, i <= 13, by Estrin's scheme: a dependency
		 * chain of 8 operations instead of Horner's 26, so that the out-of-order
		 * core overlaps more iterations */
		const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
		const double q0 = 1.0 + r, q1 = 0.5 + r * (1.0 / 6.0);
		const double q2 = 1.0 / 24.0 + r * (1.0 / 120.0), q3 = 1.0 / 720.0 + r * (1.0 / 5040.0);
		const double q4 = 1.0 / 40320.0 + r * (1.0 / 362880.0), q5 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0);
		const double q6 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
		const double s0 = q0 + q1 * r2, s1 = q2 + q3 * r2, s2 = q4 + q5 * r2;
		const double p = (s0 + s1 * r4) + (s2 + q6 * r4) * r8;
		/* 2^n = 2^(n + a) 2^-a, a = 64 near the bottom of the range and -64 near
		 * the top, so that 2^(n + a) is a normal double; (2^51 + n + 1023 + a) << 52
		 * shifts the 2^51 out and puts n + 1023 + a in the exponent field */
		const uint64_t bias = v < -700.0 ? 1023 + 64 : v > 700.0 ? 1023 - 64 : 1023;
		const double back = v < -700.0 ? 0x1p-64 : v > 700.0 ? 0x1p64 : 1.0;
		const double e = p * double_of((bits_of(t) + bias) << 52) * back;
		x[i] = v != v ? v : e; /* NaN stays NaN */
	}
}

BV_TARGET_CLONES void bv_vlog(double *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint64_t b = bits_of(x[i]);
		/* the biased exponent as a double, exactly: 2^52 + field - 2^52 */
		double e = double_of(0x4330000000000000ULL | (b >> 52)) - 0x1p52 - 1023.0;
		double m = double_of((b & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL); /* [1, 2) */
		const int big = m > 1.41421356237309504880;
		m = big ? 0.5 * m : m;
		e = big ? e + 1.0 : e;
		const double u = (m - 1.0) / (m + 1.0);
		const double u2 = u * u;
		/* sum_j u2^j / (2j + 3), j <= 9, by Estrin's scheme */
		const double u4 = u2 * u2, u8 = u4 * u4;
		const double a0 = 1.0 / 3.0 + u2 * (1.0 / 5.0), a1 = 1.0 / 7.0 + u2 * (1.0 / 9.0);
		const double a2 = 1.0 / 11.0 + u2 * (1.0 / 13.0), a3 = 1.0 / 15.0 + u2 * (1.0 / 17.0);
		const double a4 = 1.0 / 19.0 + u2 * (1.0 / 21.0);
		const double p = (a0 + a1 * u4) + ((a2 + a3 * u4) + a4 * u8) * u8;
		const double lm = 2.0 * u + 2.0 * u * (u2 * p); /* log m */
		x[i] = e * LN2_HI + (e * LN2_LO + lm);
	}
}

BV_TARGET_CLONES size_t bv_first_nonfinite(const float *x, size_t n)
{
	/* a pass of exponent-field tests (vectorised) over blocks, a scalar search
	 * only inside the block that holds a NaN or an infinity */
	for (size_t i0 = 0; i0 < n; i0 += 4096) {
		const size_t end = n - i0 < 4096 ? n : i0 + 4096;
		uint32_t bad = 0;
		for (size_t i = i0; i < end; i++) {
			uint32_t u;
			memcpy(&u, &x[i], sizeof u);
			bad |= (u & 0x7f800000u) == 0x7f800000u;
		}
		if (bad)
			for (size_t i = i0; i < end; i++)
				if (!isfinite(x[i]))
					return i;
	}
	return n;
}
