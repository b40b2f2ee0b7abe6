/*
 * math/ (bvmath.h), checked
 *   1. log-softmax, log-sum-exp, CE, the soft term H and the WSL weight
 *      against closed forms (K = 1, K = 2 through log1p, all-equal logits,
 *      H(t, t) = log K) and against the same formulas in long double (K = 10
 *      and 1000, logits +-80, T = 0.1, 1, 4 and 100): always finite, in log
 *      space (a probability that underflows still has its exact log);
 *   2. CE, H, the WSL weight and kd-filter's grad flag, per sample, against
 *      PyTorch: $BV_FIXTURES/losses.txt (tests/fixtures/gen_losses.py);
 *   3. the criteria bv, grad and teacher and the majority vote on hand
 *      cases, ties included (every comparison is strict);
 *   4. the decomposition (bv_math_decompose) against hand values, the KL form
 *      of the variance in long double, weights as repeated replicas (a
 *      replica of weight 0 never read) and no weight at all (NaN);
 *   5. naive against fast: analysis/decompose.c's bv_decompose_samples (from
 *      logits, with p_true, acc and the WSL weight) and bv_decompose_logp
 *      (from log-probabilities) against bv_math_decompose, on random logits
 *      and the edge cases (+-80, one-hot at +-80, all-equal, K = 1, 2, 1000
 *      and 5000, one replica, weighted), with the largest difference printed.
 */
#include "analysis.h"
#include "bvmath.h"
#include "check.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the test logits: check.h's seeded generator */
static uint64_t rng_state = 0x853c49e6748fea9bULL;
#define rng_uniform() check_rng_uniform(&rng_state)
#define rng_int(n) check_rng_int(&rng_state, (n))

/* a standard normal deviate (Box-Muller) */
static double rng_normal(void)
{
	const double u = rng_uniform() + 1e-300, v = rng_uniform();
	return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* ---- 1. log-softmax, CE, H, the WSL weight ---------------------------------- */

/* log softmax(z / T) in long double: the reference of bv_math_log_softmax */
static void ref_log_softmax(long double *out, const float *z, int K, double T)
{
	long double m = -INFINITY, s = 0;
	for (int k = 0; k < K; k++)
		if ((long double)z[k] / T > m)
			m = (long double)z[k] / T;
	for (int k = 0; k < K; k++)
		s += expl((long double)z[k] / T - m);
	for (int k = 0; k < K; k++)
		out[k] = (long double)z[k] / T - m - logl(s);
}

/* The tolerance of a log-probability z_k / T - lse: a few ulps of the largest
 * |z / T| (the division, the max) and of log K, and K ulps of relative error
 * in the sum of K exps (the worst case, met when the K terms are equal). */
static double lsm_tol(const float *z, int K, double T)
{
	double zmax = 0;
	for (int k = 0; k < K; k++)
		zmax = fmax(zmax, fabs(z[k] / T));
	return 4 * DBL_EPSILON * (1 + 2 * zmax + log(K) + K);
}

static double worst_lsm; /* the largest |error| / tolerance of check_log_softmax */

/* bv_math_log_softmax (and _at, logsumexp) of one row against long double */
static void check_log_softmax(const float *z, int K, double T, const char *what)
{
	double *out = malloc(sizeof(double) * (size_t)K);
	long double *want = malloc(sizeof(long double) * (size_t)K);
	if (!out || !want) {
		CHECK(0, "%s: out of memory", what);
		goto done;
	}
	bv_math_log_softmax(out, z, K, T);
	ref_log_softmax(want, z, K, T);
	const double tol = lsm_tol(z, K, T), lse = bv_math_logsumexp(z, K, T);
	int bad = 0, not_at = 0;
	long double total = 0;
	for (int k = 0; k < K; k++) {
		const double d = fabs((double)(out[k] - want[k]));
		worst_lsm = fmax(worst_lsm, d / tol);
		bad += !(d <= tol) || !isfinite(out[k]);
		not_at += bv_math_log_softmax_at(z, K, k, T) != out[k]; /* the same bits */
		not_at += z[k] / T - lse != out[k];
		total += expl((long double)out[k]);
	}
	CHECK(bad == 0, "%s (K %d, T %g): %d log-probabilities off by more than %.3g", what, K, T,
	      bad, tol);
	CHECK(not_at == 0, "%s: bv_math_log_softmax_at or logsumexp differ from the row in %d places",
	      what, not_at);
	CHECK(fabsl(total - 1) < 1e-13L * K, "%s: sum_k p_k = %.17Lg", what, total);
done:
	free(out);
	free(want);
}

static void test_log_softmax(void)
{
	static float z[1000];
	const double temps[] = {0.1, 1, 4, 100};

	/* K = 1: log p = 0 exactly, lse = z / T */
	const float one = 80;
	for (unsigned t = 0; t < BV_ARRAY_LEN(temps); t++) {
		double o = -1;
		bv_math_log_softmax(&o, &one, 1, temps[t]);
		CHECK(o == 0, "K = 1, T %g: log p = %g, want 0", temps[t], o);
		CHECK(bv_math_logsumexp(&one, 1, temps[t]) == 80 / temps[t], "K = 1: lse = z / T");
	}

	/* K = 2: log p_0 = -log1p(exp(-(z0 - z1) / T)) for z0 >= z1 */
	const float pairs[][2] = {{1, 0}, {3.5f, -2}, {80, -80}, {80, 79.5f}, {-80, -80}};
	for (unsigned i = 0; i < BV_ARRAY_LEN(pairs); i++)
		for (unsigned t = 0; t < BV_ARRAY_LEN(temps); t++) {
			const double T = temps[t], g = ((double)pairs[i][0] - pairs[i][1]) / T;
			const double want0 = -log1p(exp(-g)), want1 = -g - log1p(exp(-g));
			double o[2];
			bv_math_log_softmax(o, pairs[i], 2, T);
			const double tol = lsm_tol(pairs[i], 2, T);
			CHECK(fabs(o[0] - want0) <= tol && fabs(o[1] - want1) <= tol,
			      "K = 2 (%g, %g) T %g: (%.17g, %.17g) want (%.17g, %.17g)",
			      pairs[i][0], pairs[i][1], T, o[0], o[1], want0, want1);
			check_log_softmax(pairs[i], 2, T, "K = 2");
		}
	/* +-80 at T = 0.1: p_1 = exp(-1600) underflows, its log does not */
	double o[2];
	bv_math_log_softmax(o, pairs[2], 2, 0.1);
	CHECK(o[0] == 0 && isfinite(o[1]) && fabs(o[1] + 1600) < 1e-9,
	      "+-80 at T = 0.1: log p = (%g, %g), want (0, -1600)", o[0], o[1]);

	/* all-equal logits: log p = -log K */
	const int ks[] = {2, 10, 1000};
	const float vals[] = {0, 80, -80, 3.25f};
	for (unsigned a = 0; a < BV_ARRAY_LEN(ks); a++)
		for (unsigned v = 0; v < BV_ARRAY_LEN(vals); v++)
			for (unsigned t = 0; t < BV_ARRAY_LEN(temps); t++) {
				const int K = ks[a];
				for (int k = 0; k < K; k++)
					z[k] = vals[v];
				const double tol = lsm_tol(z, K, temps[t]);
				int bad = 0;
				double *row = malloc(sizeof(double) * (size_t)K);
				if (!row) {
					CHECK(0, "out of memory");
					return;
				}
				bv_math_log_softmax(row, z, K, temps[t]);
				for (int k = 0; k < K; k++)
					bad += !(fabs(row[k] + log(K)) <= tol);
				free(row);
				CHECK(bad == 0, "all-equal %g, K %d, T %g: %d entries not -log K", vals[v],
				      K, temps[t], bad);
			}

	/* random rows, small and large, and the one-hot +-80 rows */
	for (unsigned t = 0; t < BV_ARRAY_LEN(temps); t++)
		for (int rep = 0; rep < 20; rep++) {
			const int K = rep % 2 ? 1000 : 10;
			const double scale = rep % 4 < 2 ? 3 : 40;
			for (int k = 0; k < K; k++)
				z[k] = (float)(scale * rng_normal());
			check_log_softmax(z, K, temps[t], "random");
			for (int k = 0; k < K; k++)
				z[k] = (float)(160 * rng_uniform() - 80);
			check_log_softmax(z, K, temps[t], "uniform +-80");
			for (int k = 0; k < K; k++)
				z[k] = -80;
			z[rng_int(K)] = 80;
			check_log_softmax(z, K, temps[t], "one-hot +-80");
		}
	printf("log-softmax: worst error %.3g of its tolerance\n", worst_lsm);

	/* CE = -log softmax(z)[y], by hand */
	const float zc[4] = {1.5f, -0.25f, 3.0f, 0.5f};
	const double sum = exp(1.5) + exp(-0.25) + exp(3.0) + exp(0.5);
	for (int y = 0; y < 4; y++) {
		CHECK_NEAR(bv_math_ce(zc, 4, y), log(sum) - zc[y], 1e-15, "CE by hand");
		CHECK(bv_math_ce(zc, 4, y) == -bv_math_log_softmax_at(zc, 4, y, 1.0),
		      "CE is -log softmax(z)[y], the same bits");
	}
}

/* H = -sum_k p_t^T[k] log p_s^T[k] in long double */
static long double ref_soft_ce(const float *s, const float *t, int K, double T)
{
	long double *ls = malloc(sizeof(long double) * (size_t)K);
	long double *lt = malloc(sizeof(long double) * (size_t)K), h = 0;
	if (!ls || !lt) {
		free(ls);
		free(lt);
		return NAN;
	}
	ref_log_softmax(ls, s, K, T);
	ref_log_softmax(lt, t, K, T);
	for (int k = 0; k < K; k++)
		h -= expl(lt[k]) * ls[k];
	free(ls);
	free(lt);
	return h;
}

static void test_soft_ce(void)
{
	static float s[1000], t[1000];
	static double ls[1000], lt[1000];
	const double temps[] = {0.1, 1, 4, 100};
	double worst = 0;

	for (unsigned i = 0; i < BV_ARRAY_LEN(temps); i++)
		for (int rep = 0; rep < 20; rep++) {
			const double T = temps[i];
			const int K = rep % 2 ? 1000 : rep % 4 ? 10 : 2;
			const double scale = rep % 3 == 0 ? 3 : 80;
			for (int k = 0; k < K; k++) {
				s[k] = (float)(scale * (2 * rng_uniform() - 1));
				t[k] = (float)(scale * (2 * rng_uniform() - 1));
			}
			bv_math_log_softmax(ls, s, K, T);
			bv_math_log_softmax(lt, t, K, T);
			const double h = bv_math_soft_ce(s, t, K, T);
			CHECK(h == bv_math_soft_ce_logp(lt, ls, K),
			      "H from logits and from log-probabilities: the same bits");
			const long double want = ref_soft_ce(s, t, K, T);
			/* log p_t off by e is p_t off by a factor 1 + e, hence H's
			 * error e_t H + e_s, e_t and e_s those of the log-probabilities */
			const double tol = lsm_tol(t, K, T) * (1 + fabs((double)want)) + lsm_tol(s, K, T);
			const double d = fabs((double)(h - want));
			worst = fmax(worst, d / tol);
			CHECK(d <= tol && isfinite(h), "H (K %d, T %g): %.17g want %.17Lg", K, T, h, want);
			/* Gibbs: H(p_t, p_s) >= H(p_t, p_t) */
			CHECK(h >= bv_math_soft_ce(t, t, K, T) - tol, "H(t, s) >= H(t, t)");
		}
	printf("soft term H: worst error %.3g of its tolerance\n", worst);

	/* all-equal student: H = log K whatever the teacher */
	for (int k = 0; k < 10; k++) {
		s[k] = 2;
		t[k] = (float)k;
	}
	CHECK_NEAR(bv_math_soft_ce(s, t, 10, 4), log(10), 1e-14, "H with a uniform student");
	/* one-hot +-80 at T = 0.1: H = 0 when they agree, 1600 when they do not
	 * (p_s^T of the teacher's class is exp(-1600), its log -1600) */
	const float a[2] = {80, -80}, b[2] = {-80, 80};
	CHECK(bv_math_soft_ce(a, a, 2, 0.1) == 0, "H of agreeing one-hot rows is 0");
	CHECK_NEAR(bv_math_soft_ce(b, a, 2, 0.1), 1600, 1e-9, "H of opposite one-hot rows, T 0.1");
}

static void test_wsl_weight(void)
{
	CHECK(bv_math_wsl_weight(0, 0.7) == 0, "w = 0 when the student is sure of the truth");
	CHECK(bv_math_wsl_weight(0.5, 0) == 1, "w = 1 when the teacher is (exp(-5e6) = 0)");
	CHECK_NEAR(bv_math_wsl_weight(1, 1), 1 - exp(-1 / (1 + 1e-7)), 1e-16, "w(1, 1)");
	CHECK_NEAR(bv_math_wsl_weight(2, 0.5), 1 - exp(-2 / (0.5 + 1e-7)), 1e-16, "w(2, 0.5)");
	CHECK(bv_math_wsl_weight(1, 2) < bv_math_wsl_weight(2, 2) &&
		      bv_math_wsl_weight(2, 2) > bv_math_wsl_weight(2, 3),
	      "w rises with CEs and falls with CEt");
}

/* the predicted class against one plain scan keeping the first maximum: every K
 * from 1 to 40 (the lanes and the tail), ties everywhere, the maximum first and last */
static void test_argmax(void)
{
	float z[40];
	unsigned x = 12345;
	int bad = 0, n = 0;
	for (int K = 1; K <= 40; K++)
		for (int trial = 0; trial < 200; trial++, n++) {
			for (int j = 0; j < K; j++) {
				x = x * 1103515245u + 12345u;
				z[j] = (float)((int)(x >> 16) % 5) - 2.5f; /* few values: many ties */
			}
			if (trial == 0)
				z[K - 1] = 9; /* the maximum last */
			if (trial == 1)
				z[0] = 9;     /* and first */
			int want = 0;
			for (int j = 1; j < K; j++)
				if (z[j] > z[want])
					want = j;
			bad += bv_math_argmax(z, K) != want;
		}
	CHECK(bad == 0, "argmax: %d of %d arrays differ from a plain scan", bad, n);
	const float neg[3] = {-80, -1e-30f, -1e-30f};
	CHECK(bv_math_argmax(neg, 3) == 1, "argmax: the first of two equal negative maxima");
}

/* ---- 2. the PyTorch fixture ------------------------------------------------- */

static int expect_word(FILE *f, const char *word)
{
	char tok[64];
	return fscanf(f, "%63s", tok) == 1 && strcmp(tok, word) == 0;
}

/* n numbers after `tag`, as floats (fl) or doubles (db), whichever is not NULL */
static int read_numbers(FILE *f, const char *tag, float *fl, double *db, size_t n)
{
	if (!expect_word(f, tag))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (fl ? fscanf(f, "%f", &fl[i]) != 1 : fscanf(f, "%lf", &db[i]) != 1)
			return 0;
	return 1;
}

/* relative 1e-12 (absolute below 1): PyTorch in float64 from the same float32 logits */
static int close12(double got, double want)
{
	return fabs(got - want) <= 1e-12 * fmax(1, fabs(want));
}

static void test_fixture(void)
{
	const char *dir = getenv("BV_FIXTURES");
	char path[1024], name[64], method[16];
	int n_cases = 0, n_read = 0, n_w = 0, n_flag = 0;
	double worst = 0;
	if (!dir) {
		CHECK(0, "BV_FIXTURES is not set (run through ctest, or set it to tests/fixtures)");
		return;
	}
	snprintf(path, sizeof path, "%s/losses.txt", dir);
	FILE *f = fopen(path, "r");
	if (!f) {
		CHECK(0, "cannot open fixture '%s' (regenerate with tests/fixtures/gen_losses.py)", path);
		return;
	}
	if (!expect_word(f, "bvtool-losses") || !expect_word(f, "1") || !expect_word(f, "ncases") ||
	    fscanf(f, "%d", &n_cases) != 1 || n_cases <= 0) {
		CHECK(0, "'%s': not a bvtool-losses 1 file", path);
		fclose(f);
		return;
	}
	for (int c = 0; c < n_cases; c++) {
		double T, alpha, gamma, loss, st[3], *w = NULL, *grad = NULL;
		int n, k, n_correct, n_filtered, *y = NULL, ok = 0;
		float *s = NULL, *t = NULL;
		if (!expect_word(f, "case") ||
		    fscanf(f, "%63s %15s %lf %lf %lf %d %d", name, method, &T, &alpha, &gamma, &n, &k) != 7 ||
		    n <= 0 || k <= 0 || n > 1000 || k > 1000)
			goto next;
		const size_t nk = (size_t)n * k;
		s = malloc(sizeof(float) * nk);
		t = malloc(sizeof(float) * nk);
		y = malloc(sizeof(int) * (size_t)n);
		w = malloc(sizeof(double) * (size_t)n);
		grad = malloc(sizeof(double) * nk);
		if (!s || !t || !y || !w || !grad || !read_numbers(f, "s", s, NULL, nk) ||
		    !read_numbers(f, "t", t, NULL, nk) || !expect_word(f, "y"))
			goto next;
		for (int i = 0; i < n; i++)
			if (fscanf(f, "%d", &y[i]) != 1 || y[i] < 0 || y[i] >= k)
				goto next;
		if (!read_numbers(f, "loss", NULL, &loss, 1) || !expect_word(f, "stats") ||
		    fscanf(f, "%lf %lf %lf %d %d", &st[0], &st[1], &st[2], &n_correct, &n_filtered) != 5 ||
		    !read_numbers(f, "w", NULL, w, (size_t)n) || !read_numbers(f, "grad", NULL, grad, nk) ||
		    !expect_word(f, "end"))
			goto next;
		ok = 1;
		n_read++;
		double ce = 0, h = 0;
		for (int i = 0; i < n; i++) {
			const float *si = s + (size_t)i * k, *ti = t + (size_t)i * k;
			const double ce_s = bv_math_ce(si, k, y[i]);
			ce += ce_s / n;
			if (strcmp(method, "ce") == 0)
				continue;
			h += bv_math_soft_ce(si, ti, k, T) / n;
			if (strcmp(method, "wsl") == 0) {
				const double wi = bv_math_wsl_weight(ce_s, bv_math_ce(ti, k, y[i]));
				worst = fmax(worst, fabs(wi - w[i]));
				CHECK(close12(wi, w[i]), "%s: w[%d] %.17g want %.17g", name, i, wi, w[i]);
				n_w++;
			} else if (strcmp(method, "kd-filter") == 0) {
				const int flag = bv_math_crit_grad(bv_math_log_softmax_at(si, k, y[i], 1),
								   bv_math_log_softmax_at(si, k, y[i], T),
								   bv_math_log_softmax_at(ti, k, y[i], T), T);
				CHECK(flag == (w[i] == 0), "%s: grad flag of sample %d is %d", name, i, flag);
				n_flag++;
			}
		}
		worst = fmax(worst, fabs(ce - st[0]));
		CHECK(close12(ce, st[0]), "%s: mean CE %.17g want %.17g", name, ce, st[0]);
		if (strcmp(method, "ce") != 0) {
			worst = fmax(worst, fabs(h - st[1]));
			CHECK(close12(h, st[1]), "%s: mean H %.17g want %.17g", name, h, st[1]);
		}
next:
		if (!ok)
			CHECK(0, "'%s': case %d is malformed", path, c + 1);
		free(s);
		free(t);
		free(y);
		free(w);
		free(grad);
		if (!ok)
			break;
	}
	fclose(f);
	CHECK(n_read == n_cases && n_w > 0 && n_flag > 0, "fixture: %d of %d cases, %d weights, %d flags",
	      n_read, n_cases, n_w, n_flag);
	printf("fixture: %d cases from %s (%d WSL weights, %d grad flags), max diff %.3g\n", n_read,
	       path, n_w, n_flag, worst);
}

/* ---- 3. the criteria -------------------------------------------------------- */

static void test_criteria(void)
{
	CHECK(bv_math_crit_bv(1.1, 0.2, 1.0, 0.3) == 1, "bv: bias up, variance down flags");
	CHECK(bv_math_crit_bv(1.0, 0.2, 1.0, 0.3) == 0, "bv: equal bias does not flag");
	CHECK(bv_math_crit_bv(1.1, 0.3, 1.0, 0.3) == 0, "bv: equal variance does not flag");
	CHECK(bv_math_crit_bv(0.9, 0.2, 1.0, 0.3) == 0, "bv: bias down does not flag");
	CHECK(bv_math_crit_bv(1.1, 0.4, 1.0, 0.3) == 0, "bv: variance up does not flag");

	CHECK(bv_math_crit_teacher(0.8, 0.5) == 1, "teacher: CEt > CEs flags");
	CHECK(bv_math_crit_teacher(0.5, 0.5) == 0, "teacher: CEt = CEs does not");
	CHECK(bv_math_crit_teacher(0.4, 0.5) == 0, "teacher: CEt < CEs does not");

	CHECK(bv_math_majority(3, 4) == 1 && bv_math_majority(2, 4) == 0, "majority: 3 of 4, not 2");
	CHECK(bv_math_majority(1.5, 3) == 0 && bv_math_majority(1.6, 3) == 1,
	      "majority: weighted, exactly half is not enough");
	CHECK(bv_math_majority(0, 0) == 0, "majority: no replica, no flag");

	/* grad from exact probabilities: a = q - 1, b = T (ps - pt) - a */
	CHECK(bv_math_crit_grad(log(0.5), log(0.5), log(0.25), 1) == 1,
	      "grad: a -0.5, b 0.75 flags");
	CHECK(bv_math_crit_grad(log(0.5), log(0.3), log(0.3), 4) == 0,
	      "grad: ps = pt gives b = -a, |b| = |a|: no flag");
	CHECK(bv_math_crit_grad(log(0.5), log(0.45), log(0.5), 4) == 0,
	      "grad: a -0.5, b 0.3 does not flag");
	CHECK(bv_math_crit_grad(log(0.5), log(0.2), log(0.5), 4) == 1,
	      "grad: a -0.5, b -0.7 flags through |b|");

	/* grad at T = 4 by hand from logits: s (3, 0, 0), t (2, 0, 0), y = 0 */
	const float s[3] = {3, 0, 0}, t[3] = {2, 0, 0};
	const double T = 4, q = exp(3.0) / (exp(3.0) + 2);
	const double ps = exp(0.75) / (exp(0.75) + 2), pt = exp(0.5) / (exp(0.5) + 2);
	const double a = q - 1, b = T * (ps - pt) - a;
	const int want = fabs(b) > fabs(a);
	CHECK(want == 1, "hand: s (3, 0, 0) against t (2, 0, 0) flags (a %g b %g)", a, b);
	CHECK(bv_math_crit_grad(bv_math_log_softmax_at(s, 3, 0, 1), bv_math_log_softmax_at(s, 3, 0, T),
				bv_math_log_softmax_at(t, 3, 0, T), T) == want,
	      "grad from logits, T = 4");

	/* +-80: the probabilities are exactly 0 and 1, never NaN */
	const float up[2] = {80, -80}, down[2] = {-80, 80}, flat[2] = {0, 0};
	CHECK(bv_math_crit_grad(bv_math_log_softmax_at(up, 2, 0, 1), bv_math_log_softmax_at(up, 2, 0, 0.1),
				bv_math_log_softmax_at(down, 2, 0, 0.1), 0.1) == 1,
	      "grad +-80, T 0.1: a = 0, b = 0.1 flags");
	CHECK(bv_math_crit_grad(bv_math_log_softmax_at(up, 2, 0, 1), bv_math_log_softmax_at(up, 2, 0, 0.1),
				bv_math_log_softmax_at(up, 2, 0, 0.1), 0.1) == 0,
	      "grad +-80, T 0.1, the teacher agrees: a = b = 0, no flag");
	CHECK(bv_math_crit_grad(bv_math_log_softmax_at(up, 2, 0, 1), bv_math_log_softmax_at(up, 2, 0, 100),
				bv_math_log_softmax_at(flat, 2, 0, 100), 100) == 1,
	      "grad +-80, T 100: b = 100 (0.83 - 0.5) flags");
}

/* ---- 4. the decomposition --------------------------------------------------- */

static void test_decompose_reference(void)
{
	bv_math_decomp o;
	/* q_1 = (0.8, 0.2), q_2 = (0.2, 0.8): l = log 0.4, Z = 0.8, qbar = (1/2, 1/2) */
	double lp[2][2] = {{log(0.8), log(0.2)}, {log(0.2), log(0.8)}};
	bv_math_decompose(&o, &lp[0][0], 2, 2, 2, 0, NULL);
	CHECK_NEAR(o.bias, log(2), 1e-15, "two replicas: bias = log 2");
	CHECK_NEAR(o.variance, -log(0.8), 1e-15, "two replicas: variance = -log 0.8");
	CHECK_NEAR(o.loss, -log(0.4), 1e-15, "two replicas: loss = -log 0.4");

	/* weights: (2, 0) is q_1 alone, twice; the weight-0 row is never read */
	double poisoned[2][2] = {{log(0.8), log(0.2)}, {NAN, NAN}};
	const double w20[2] = {2, 0};
	bv_math_decompose(&o, &poisoned[0][0], 2, 2, 2, 0, w20);
	CHECK(fabs(o.variance) < 1e-15 && fabs(o.bias + log(0.8)) < 1e-15 &&
		      fabs(o.loss + log(0.8)) < 1e-15,
	      "weight 0: one replica, variance 0, bias = loss = -log 0.8 (%g %g %g)", o.bias,
	      o.variance, o.loss);
	const double w00[2] = {0, 0};
	bv_math_decompose(&o, &lp[0][0], 2, 2, 2, 0, w00);
	CHECK(isnan(o.bias) && isnan(o.variance) && isnan(o.loss), "no weight: NaN");

	/* integer weights are repeated replicas */
	enum { B = 5, K = 10 };
	static float z[B][K];
	static double l[B][K], rep[B * 3][K];
	for (int it = 0; it < 50; it++) {
		int n_rep = 0;
		double w[B];
		for (int r = 0; r < B; r++) {
			for (int k = 0; k < K; k++)
				z[r][k] = (float)(3 * rng_normal());
			bv_math_log_softmax(l[r], z[r], K, 1);
			w[r] = rng_int(3);
			for (int c = 0; c < (int)w[r]; c++)
				memcpy(rep[n_rep++], l[r], sizeof l[r]);
		}
		if (n_rep == 0)
			continue;
		const int y = rng_int(K);
		bv_math_decomp a, b;
		bv_math_decompose(&a, &l[0][0], K, B, K, y, w);
		bv_math_decompose(&b, &rep[0][0], K, n_rep, K, y, NULL);
		CHECK(fabs(a.bias - b.bias) < 1e-13 && fabs(a.variance - b.variance) < 1e-13 &&
			      fabs(a.loss - b.loss) < 1e-13,
		      "weights as repeated replicas (it %d)", it);

		/* the KL form of the variance and the identity, in long double */
		long double lbar[K], m = -INFINITY, zs = 0, var = 0;
		for (int k = 0; k < K; k++) {
			lbar[k] = 0;
			for (int r = 0; r < B; r++)
				lbar[k] += (long double)l[r][k] / B;
			m = lbar[k] > m ? lbar[k] : m;
		}
		for (int k = 0; k < K; k++)
			zs += expl(lbar[k] - m);
		const long double log_z = m + logl(zs);
		for (int r = 0; r < B; r++)
			for (int k = 0; k < K; k++) { /* KL(qbar || q_r) / B */
				const long double lq = lbar[k] - log_z;
				var += expl(lq) * (lq - l[r][k]) / B;
			}
		bv_math_decompose(&a, &l[0][0], K, B, K, y, NULL);
		CHECK(fabs(a.variance - (double)var) < 1e-13, "variance = mean_r KL(qbar || q_r): %.17g vs %.17Lg",
		      a.variance, var);
		CHECK(fabs(a.bias + (double)(lbar[y] - log_z)) < 1e-13, "bias = -log qbar[y]");
		CHECK(fabs(a.loss - a.bias - a.variance) < 1e-13 && a.variance >= -1e-15,
		      "loss = bias + variance, variance >= 0");
	}

	/* K = 1: nothing to decompose */
	const double zero[3] = {0, 0, 0};
	bv_math_decompose(&o, zero, 1, 3, 1, 0, NULL);
	CHECK(o.bias == 0 && o.variance == 0 && o.loss == 0, "K = 1: all zero");
}

/* ---- 5. naive against fast -------------------------------------------------- */

typedef struct worst {
	double d, tol;
} worst;

static worst worst_fast = {0, 1}, worst_logp = {0, 1};

/* |got - want| <= tol; keeps the difference that came closest to its tolerance */
static int near(worst *w, double got, double want, double tol)
{
	const double d = fabs(got - want);
	if (d / tol > w->d / w->tol) {
		w->d = d;
		w->tol = tol;
	}
	return d <= tol;
}

enum { GEN_NORMAL, GEN_UNIFORM80, GEN_ONEHOT80, GEN_EQUAL, GEN_CLOSE, N_GEN };
static const char *const gen_names[N_GEN] = {"normal", "uniform +-80", "one-hot +-80",
					     "all-equal", "near-identical replicas"};

/* logits (B, N, K) of one kind */
static void make_logits(float *z, int B, int N, int K, int gen)
{
	for (int i = 0; i < N; i++) {
		const int hot = rng_int(K);
		const float base = (float)(5 * rng_normal());
		for (int r = 0; r < B; r++) {
			float *row = z + ((size_t)r * N + i) * K;
			const int hot_r = rng_uniform() < 0.3 ? rng_int(K) : hot;
			for (int k = 0; k < K; k++) {
				switch (gen) {
				case GEN_NORMAL:
					row[k] = (float)(2 * rng_normal());
					break;
				case GEN_UNIFORM80:
					row[k] = (float)(160 * rng_uniform() - 80);
					break;
				case GEN_ONEHOT80:
					row[k] = k == hot_r ? 80 : -80;
					break;
				case GEN_EQUAL:
					row[k] = base + (float)r; /* each replica its own constant */
					break;
				default:
					row[k] = (float)(k == hot ? 3 : 0) + (float)(1e-3 * rng_normal());
				}
			}
		}
	}
}

/*
 * One case of the naive-vs-fast test: N samples of B replicas and K classes,
 * weights none / per sample (out-of-bag style, some 0) / the same for every
 * sample (a bootstrap draw). Checks bv_decompose_samples against
 * bv_math_log_softmax + bv_math_decompose (and p_true, acc, the WSL weight
 * from math/), and bv_decompose_logp against bv_math_decompose.
 */
static void naive_vs_fast(int B, int N, int K, int gen, int weighting)
{
	const size_t nk = (size_t)N * K, stride = nk;
	float *z = malloc(sizeof(float) * B * nk), *t = malloc(sizeof(float) * nk);
	double *lp = malloc(sizeof(double) * B * nk), *w = malloc(sizeof(double) * (size_t)N * B);
	double *ce_t = malloc(sizeof(double) * (size_t)N), *wsl = malloc(sizeof(double) * (size_t)N);
	int *y = malloc(sizeof(int) * (size_t)N);
	bv_bv *fast = malloc(sizeof(bv_bv) * (size_t)N);
	bv_math_decomp *fl = malloc(sizeof(bv_math_decomp) * (size_t)N);
	double *rows = malloc(sizeof(double) * (size_t)B * K);
	if (!z || !t || !lp || !w || !ce_t || !wsl || !y || !fast || !fl || !rows) {
		CHECK(0, "out of memory");
		goto done;
	}
	make_logits(z, B, N, K, gen);
	make_logits(t, 1, N, K, GEN_NORMAL);
	for (size_t i = 0; i < (size_t)B * N; i++)
		bv_math_log_softmax(lp + i * K, z + i * K, K, 1);
	for (int i = 0; i < N; i++) {
		y[i] = rng_int(K);
		ce_t[i] = bv_math_ce(t + (size_t)i * K, K, y[i]);
		double W = 0;
		for (int r = 0; r < B; r++) {
			/* per sample: 0..2, at least one replica; shared: sample 0's */
			w[(size_t)i * B + r] = weighting == 2 && i > 0 ? w[r] : rng_int(3);
			W += w[(size_t)i * B + r];
		}
		if (W == 0)
			w[(size_t)i * B + rng_int(B)] = 1;
	}
	const double *ws = weighting ? w : NULL;
	const size_t w_stride = weighting == 1 ? (size_t)B : 0;
	bv_decompose_samples(fast, wsl, z, stride, B, K, N, y, ws, w_stride, ce_t);
	bv_decompose_logp(fl, lp, stride, B, K, N, y, ws, w_stride);

	int bad = 0, bad_logp = 0, bad_id = 0;
	for (int i = 0; i < N; i++) {
		const double *wi = ws ? ws + (size_t)i * w_stride : NULL;
		double W = 0, p_true = 0, acc = 0, wsum = 0, scale = 0;
		for (int r = 0; r < B; r++) {
			const double wr = wi ? wi[r] : 1;
			const double *l = lp + ((size_t)r * N + i) * K;
			const float *zr = z + ((size_t)r * N + i) * K;
			memcpy(rows + (size_t)r * K, l, sizeof(double) * K);
			for (int k = 0; k < K; k++)
				scale = fmax(scale, fabs(l[k]));
			if (wr == 0)
				continue;
			int arg = 0;
			for (int k = 1; k < K; k++)
				if (zr[k] > zr[arg])
					arg = k;
			W += wr;
			p_true += wr * exp(l[y[i]]);
			acc += wr * (arg == y[i]);
			wsum += wr * bv_math_wsl_weight(-l[y[i]], ce_t[i]);
		}
		bv_math_decomp ref;
		bv_math_decompose(&ref, rows, K, B, K, y[i], wi);
		/* the fast path works from centred logits, the reference from
		 * log-probabilities as large as `scale`: a few ulps of either */
		const double tol = 16 * DBL_EPSILON * (1 + scale + log(K));
		/* q_r[y] = exp(log q_r[y]): relative error of the exponent's */
		const double tol_p = 16 * DBL_EPSILON * (1 + scale);
		/* 1 - exp(-CEs / CEt): CEs's error divided by CEt */
		const double tol_w = tol_p * (1 + 1 / (ce_t[i] + 1e-7));
		const bv_bv *f = &fast[i];
		const int ok = near(&worst_fast, f->bias, ref.bias, tol) &&
			       near(&worst_fast, f->variance, ref.variance, tol) &&
			       near(&worst_fast, f->loss, ref.loss, tol) &&
			       near(&worst_fast, f->p_true, p_true / W, tol_p) &&
			       near(&worst_fast, f->acc, acc / W, 1e-15) &&
			       near(&worst_fast, wsl[i], wsum / W, tol_w);
		if (!ok && bad++ < 3)
			CHECK(0, "fast %s B %d K %d weighting %d, sample %d: bias %.17g/%.17g variance "
				 "%.17g/%.17g loss %.17g/%.17g p_true %.17g/%.17g acc %g/%g wsl %.17g/%.17g",
			      gen_names[gen], B, K, weighting, i, f->bias, ref.bias, f->variance,
			      ref.variance, f->loss, ref.loss, f->p_true, p_true / W, f->acc, acc / W,
			      wsl[i], wsum / W);
		const int ok_logp = near(&worst_logp, fl[i].bias, ref.bias, tol) &&
				    near(&worst_logp, fl[i].variance, ref.variance, tol) &&
				    near(&worst_logp, fl[i].loss, ref.loss, tol);
		if (!ok_logp && bad_logp++ < 3)
			CHECK(0, "logp %s B %d K %d weighting %d, sample %d: bias %.17g/%.17g variance "
				 "%.17g/%.17g loss %.17g/%.17g",
			      gen_names[gen], B, K, weighting, i, fl[i].bias, ref.bias, fl[i].variance,
			      ref.variance, fl[i].loss, ref.loss);
		/* one replica: the fast path's variance is exactly 0 */
		if (B == 1)
			bad_id += f->variance != 0;
		bad_id += !(fabs(ref.loss - ref.bias - ref.variance) <= tol);
	}
	CHECK(bad == 0, "bv_decompose_samples vs bv_math_decompose, %s B %d K %d weighting %d: %d off",
	      gen_names[gen], B, K, weighting, bad);
	CHECK(bad_logp == 0, "bv_decompose_logp vs bv_math_decompose, %s B %d K %d weighting %d: %d off",
	      gen_names[gen], B, K, weighting, bad_logp);
	CHECK(bad_id == 0, "%s B %d K %d: %d samples break loss = bias + variance or a zero variance",
	      gen_names[gen], B, K, bad_id);

	/* the same through one-sample calls: identical to the batch */
	bv_bv one;
	const int i = N - 1;
	bv_decompose_sample(&one, z + (size_t)i * K, stride, B, K, y[i],
			    ws ? ws + (size_t)i * w_stride : NULL);
	CHECK(one.bias == fast[i].bias && one.variance == fast[i].variance && one.loss == fast[i].loss,
	      "bv_decompose_sample is bv_decompose_samples, bit for bit");
done:
	free(z);
	free(t);
	free(lp);
	free(w);
	free(ce_t);
	free(wsl);
	free(y);
	free(fast);
	free(fl);
	free(rows);
}

static void test_naive_vs_fast(void)
{
	const int ks[] = {1, 2, 10, 1000, 5000}, bs[] = {1, 2, 7};
	for (unsigned a = 0; a < BV_ARRAY_LEN(ks); a++)
		for (unsigned b = 0; b < BV_ARRAY_LEN(bs); b++)
			for (int gen = 0; gen < N_GEN; gen++)
				for (int weighting = 0; weighting < 3; weighting++) {
					const int N = ks[a] >= 1000 ? 9 : 70; /* 70: more than a block */
					naive_vs_fast(bs[b], N, ks[a], gen, weighting);
				}
	printf("naive vs fast: bv_decompose_samples worst |diff| %.3g (tolerance %.3g), "
	       "bv_decompose_logp %.3g (tolerance %.3g)\n",
	       worst_fast.d, worst_fast.tol, worst_logp.d, worst_logp.tol);
}

int main(void)
{
	test_log_softmax();
	test_soft_ce();
	test_wsl_weight();
	test_argmax();
	test_fixture();
	test_criteria();
	test_decompose_reference();
	test_naive_vs_fast();
	return bv_check_done();
}
