/*
 * A minimal test harness: CHECK records a failure with file:line and a message
 * and goes on; bv_check_done() prints "check: N passed, N failed" and returns
 * the exit status (non-zero on any failure), so `return bv_check_done();` ends
 * every test's main.
 */
#ifndef BV_CHECK_H
#define BV_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int bv_check_pass_, bv_check_fail_;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (cond) {                                                     \
			bv_check_pass_++;                                       \
		} else {                                                        \
			bv_check_fail_++;                                       \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);    \
			fprintf(stderr, __VA_ARGS__);                           \
			fprintf(stderr, "\n");                                  \
		}                                                               \
	} while (0)

/* |got - want| <= tol, printed with the difference either way when verbose */
#define CHECK_NEAR(got, want, tol, what)                                        \
	do {                                                                    \
		double g_ = (double)(got), w_ = (double)(want);                 \
		CHECK(fabs(g_ - w_) <= (tol) && !isnan(g_),                     \
		      "%s: got %.9g want %.9g (diff %.3g > tol %.3g)", (what), g_, \
		      w_, fabs(g_ - w_), (double)(tol));                        \
	} while (0)

/* Expect a library call to fail with `code`; prints the message it left. */
#define CHECK_ERR(call, code)                                                   \
	do {                                                                    \
		int rc_ = (call);                                               \
		CHECK(rc_ == (code), "%s: got rc %d want %d (%s)", #call, rc_,  \
		      (code), bv_error_last());                                 \
	} while (0)

/* central difference of f with respect to x[i]; float inputs, eps suits float32 */
#define FD(expr, x, i, eps, out)                                               \
	do {                                                                   \
		float x0_ = (x)[i];                                            \
		(x)[i] = x0_ + (eps);                                          \
		double fp_ = (expr);                                           \
		(x)[i] = x0_ - (eps);                                          \
		double fm_ = (expr);                                           \
		(x)[i] = x0_;                                                  \
		(out) = (fp_ - fm_) / (2.0 * (eps));                           \
	} while (0)

/* A fresh directory "$BV_TMP/<name>.XXXXXX" (mkdtemp's template) in root; 0 or -1. */
static inline int bv_check_tmpdir(char *root, size_t size, const char *name)
{
	const char *tmp = getenv("BV_TMP");
	if (!tmp || !*tmp) {
		tmp = "/tmp";
		printf("note: BV_TMP not set, using /tmp\n");
	}
	snprintf(root, size, "%s/%s.XXXXXX", tmp, name);
	if (!mkdtemp(root)) {
		fprintf(stderr, "cannot create a directory under '%s'\n", tmp);
		return -1;
	}
	return 0;
}

static inline int bv_check_done(void)
{
	printf("check: %d passed, %d failed\n", bv_check_pass_, bv_check_fail_);
	return bv_check_fail_ ? 1 : 0;
}

/* xorshift64*: a self-contained, seeded source of test numbers (the same on
 * every machine). A test file keeps its own state, seeded with any nonzero value. */
static inline double check_rng_uniform(uint64_t *state) /* in [0, 1) */
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return (double)((*state * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

static inline int check_rng_int(uint64_t *state, int n) /* in 0..n-1 */
{
	return (int)(check_rng_uniform(state) * n) % n;
}

#endif
