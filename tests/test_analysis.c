/*
 * analysis/: the per-sample decomposition, the regularization-sample criteria
 * and the statistics, checked
 *   1. against closed forms written out by hand in plain doubles (identical
 *      replicas; two and three replicas through the geometric mean and the
 *      KL form of the variance), never through the code under test;
 *   2. on the identity loss = bias + variance (and variance >= 0) over many
 *      random cases, near one-hot logits (+-50, +-100) included;
 *   3. on contracts: integer weights as repeated replicas (weight 0 skipped
 *      and its row never read), strided rows, p_true and acc with ties;
 *   4. the criteria bv, grad (a and b at T = 4 by hand; strict majority) and
 *      teacher, the WSL weight mean, bv_criterion_parse/name;
 *   5. bv_correlate against $BV_FIXTURES/stats.txt, written by
 *      tests/fixtures/gen_stats.py (standard-library Python: Pearson and
 *      Spearman by formula, p-values from the t distribution through the
 *      incomplete beta continued fraction); bv_mean_ci against hand values;
 *   6. bv_report_db's JSON, read back with jansson, on a small database
 *      written through db.h: the keys in order, the numbers against hand
 *      values (the t interval by the closed form of its quantile), every
 *      double as stored, NaN and Inf as null, and the database's path and
 *      text with quotes, backslashes, control characters, UTF-8 and every
 *      kind of malformed UTF-8 coming back as they were, each bad byte one
 *      U+FFFD;
 *   7. a timing print (not a check): 1e6 decompositions, B = 16, K = 10.
 */
#include "analysis.h"
#include "check.h"

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the test logits: check.h's seeded generator */
static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
#define rng_uniform() check_rng_uniform(&rng_state)
#define rng_int(n) check_rng_int(&rng_state, (n))

/* ---- 1. closed forms ------------------------------------------------------ */

static void test_identical_replicas(void)
{
	/* exactly representable logits; softmax by hand without max subtraction */
	const float z[4] = {1.5f, -0.25f, 3.0f, 0.5f};
	const double sum = exp(1.5) + exp(-0.25) + exp(3.0) + exp(0.5);
	float rows[3 * 4];
	for (int r = 0; r < 3; r++)
		memcpy(rows + r * 4, z, sizeof(z));

	for (int y = 0; y < 4; y++) {
		const double want = log(sum) - z[y]; /* -log softmax(z)[y] */
		bv_bv o;
		bv_decompose_sample(&o, rows, 4, 3, 4, y, NULL);
		CHECK(fabs(o.variance) < 1e-12, "identical replicas y=%d: variance %.3g", y, o.variance);
		CHECK_NEAR(o.bias, want, 1e-12, "identical replicas: bias");
		CHECK_NEAR(o.loss, want, 1e-12, "identical replicas: loss");
		CHECK_NEAR(o.p_true, exp(z[y]) / sum, 1e-14, "identical replicas: p_true");
		CHECK(o.acc == (y == 2 ? 1.0 : 0.0), "identical replicas y=%d: acc %g", y, o.acc);
	}

	/* K above any stack bound: nothing in the decomposition depends on K's size */
	enum { BIG_K = 5000 };
	float *big = malloc(2 * BIG_K * sizeof(*big));
	if (!big) {
		CHECK(0, "out of memory");
		return;
	}
	double bsum = 0;
	for (int k = 0; k < BIG_K; k++) {
		big[k] = big[BIG_K + k] = (float)(k % 7) * 0.5f;
		bsum += exp(big[k]);
	}
	bv_bv o;
	bv_decompose_sample(&o, big, BIG_K, 2, BIG_K, 13, NULL); /* z[13] = 3 */
	CHECK(fabs(o.variance) < 1e-12, "K=%d identical: variance %.3g", BIG_K, o.variance);
	CHECK_NEAR(o.loss, log(bsum) - 3.0, 1e-12, "K=5000 identical: loss");
	CHECK_NEAR(o.bias, log(bsum) - 3.0, 1e-12, "K=5000 identical: bias");
	free(big);
}

/* Two replicas, K = 2: qbar[k] = sqrt(q1[k] q2[k]) / Z with Z = sum_k sqrt(q1[k] q2[k]). */
static void check_two(const char *what, const float z[4], double q1_0, double q2_0, double tol)
{
	const double q1[2] = {q1_0, 1 - q1_0}, q2[2] = {q2_0, 1 - q2_0};
	const double g0 = sqrt(q1[0] * q2[0]), g1 = sqrt(q1[1] * q2[1]), Z = g0 + g1;
	const double qb[2] = {g0 / Z, g1 / Z};
	/* variance from its definition, (1/2) sum_r KL(qbar || q_r) */
	const double kl1 = qb[0] * log(qb[0] / q1[0]) + qb[1] * log(qb[1] / q1[1]);
	const double kl2 = qb[0] * log(qb[0] / q2[0]) + qb[1] * log(qb[1] / q2[1]);
	char msg[128];

	CHECK_NEAR(-log(Z), 0.5 * (kl1 + kl2), 1e-14, "hand: -log Z = mean KL");
	for (int y = 0; y < 2; y++) {
		bv_bv o;
		bv_decompose_sample(&o, z, 2, 2, 2, y, NULL);
		snprintf(msg, sizeof(msg), "%s y=%d bias", what, y);
		CHECK_NEAR(o.bias, -log(qb[y]), tol, msg);
		snprintf(msg, sizeof(msg), "%s y=%d variance", what, y);
		CHECK_NEAR(o.variance, 0.5 * (kl1 + kl2), tol, msg);
		snprintf(msg, sizeof(msg), "%s y=%d loss", what, y);
		CHECK_NEAR(o.loss, -0.5 * (log(q1[y]) + log(q2[y])), tol, msg);
		snprintf(msg, sizeof(msg), "%s y=%d p_true", what, y);
		CHECK_NEAR(o.p_true, 0.5 * (q1[y] + q2[y]), tol, msg);
	}
}

static void test_two_replicas(void)
{
	const double e = exp(1.0);
	/* logits (1, 0) and (0, 0): exact in float32, q1 = (e/(1+e), 1/(1+e)), q2 = (1/2, 1/2) */
	const float z_exact[4] = {1.0f, 0.0f, 0.0f, 0.0f};
	check_two("(1,0),(0,0)", z_exact, e / (1 + e), 0.5, 1e-13);
	/* q1 = (0.8, 0.2), q2 = (0.5, 0.5) as float32 logits log q: the logits' rounding
	 * (~3e-8 relative) bounds the agreement */
	const float z_q[4] = {(float)log(0.8), (float)log(0.2), (float)log(0.5), (float)log(0.5)};
	check_two("(0.8,0.2),(0.5,0.5)", z_q, 0.8, 0.5, 1e-6);
	/* the numbers themselves for the second case: Z = sqrt(0.4) + sqrt(0.1) */
	bv_bv o;
	bv_decompose_sample(&o, z_q, 2, 2, 2, 0, NULL);
	CHECK_NEAR(o.variance, -log(sqrt(0.4) + sqrt(0.1)), 1e-6, "(0.8,0.2),(0.5,0.5) variance");
	CHECK_NEAR(o.bias, -log(sqrt(0.4) / (sqrt(0.4) + sqrt(0.1))), 1e-6,
		   "(0.8,0.2),(0.5,0.5) bias");
	printf("two replicas q1=(0.8,0.2) q2=(0.5,0.5): bias %.9f variance %.9f loss %.9f\n",
	       o.bias, o.variance, o.loss);
}

/* Three replicas, K = 3: geometric mean by cube roots. */
static void test_three_replicas(void)
{
	const float z[3][3] = {{2, 0, -1}, {0, 1, 0}, {-1, 0, 3}};
	double q[3][3], g[3], Z = 0;
	for (int r = 0; r < 3; r++) {
		const double s = exp(z[r][0]) + exp(z[r][1]) + exp(z[r][2]);
		for (int k = 0; k < 3; k++)
			q[r][k] = exp(z[r][k]) / s;
	}
	for (int k = 0; k < 3; k++) {
		g[k] = cbrt(q[0][k] * q[1][k] * q[2][k]);
		Z += g[k];
	}
	double var = 0;
	for (int r = 0; r < 3; r++)
		for (int k = 0; k < 3; k++)
			var += (g[k] / Z) * log((g[k] / Z) / q[r][k]) / 3;
	CHECK_NEAR(var, -log(Z), 1e-14, "hand: K=3 -log Z = mean KL");
	for (int y = 0; y < 3; y++) {
		bv_bv o;
		bv_decompose_sample(&o, &z[0][0], 3, 3, 3, y, NULL);
		CHECK_NEAR(o.variance, var, 1e-13, "three replicas: variance");
		CHECK_NEAR(o.bias, -log(g[y] / Z), 1e-13, "three replicas: bias");
		CHECK_NEAR(o.loss, -(log(q[0][y]) + log(q[1][y]) + log(q[2][y])) / 3, 1e-13,
			   "three replicas: loss");
		CHECK_NEAR(o.p_true, (q[0][y] + q[1][y] + q[2][y]) / 3, 1e-14, "three replicas: p_true");
		/* argmaxes 0, 1, 2: one replica of three is right whatever y */
		CHECK_NEAR(o.acc, 1.0 / 3, 1e-15, "three replicas: acc");
	}
}

/* ---- 2. the identity on random cases ------------------------------------ */

static void test_identity(void)
{
	enum { MAX_B = 20, MAX_K = 60, N_CASES = 20000 };
	static float z[MAX_B * MAX_K];
	double w[MAX_B];
	double max_dev = 0, min_var = INFINITY;
	int n_bad = 0, n_onehot = 0;

	for (int c = 0; c < N_CASES; c++) {
		const int B = 1 + rng_int(MAX_B), K = 2 + rng_int(MAX_K - 1), y = rng_int(K);
		const int mode = rng_int(6);
		const double scale[] = {0.01, 1, 5, 20};
		for (int r = 0; r < B; r++) {
			if (mode >= 4) {
				/* near one-hot: +-50 or +-100 (float32 softmax underflows) */
				const float big = mode == 4 ? 50.0f : 100.0f;
				const int hot = rng_int(4) == 0 ? y : rng_int(K);
				for (int k = 0; k < K; k++)
					z[r * K + k] = (k == hot ? big : -big) +
						       (float)(rng_int(2) ? 0 : rng_uniform() - 0.5);
			} else {
				for (int k = 0; k < K; k++)
					z[r * K + k] = (float)(scale[mode] * (2 * rng_uniform() - 1));
			}
		}
		n_onehot += mode >= 4;
		const int weighted = rng_int(2);
		double wsum = 0;
		for (int r = 0; r < B; r++)
			wsum += w[r] = rng_int(4);
		if (wsum == 0)
			w[0] = 1;

		bv_bv o;
		bv_decompose_sample(&o, z, (size_t)K, B, K, y, weighted ? w : NULL);
		const double dev = fabs(o.loss - o.bias - o.variance);
		const int ok = isfinite(o.bias) && isfinite(o.variance) && isfinite(o.loss) &&
			       dev < 1e-12 && o.variance >= -1e-15 && o.bias >= -1e-12 &&
			       o.p_true >= 0 && o.p_true <= 1 && o.acc >= 0 && o.acc <= 1;
		if (!ok && n_bad++ < 5)
			CHECK(0, "random case %d (B=%d K=%d mode %d): bias %.17g variance %.17g loss %.17g "
				 "dev %.3g",
			      c, B, K, mode, o.bias, o.variance, o.loss, dev);
		if (dev > max_dev || isnan(dev))
			max_dev = dev;
		if (o.variance < min_var)
			min_var = o.variance;
	}
	CHECK(n_bad == 0, "identity: %d of %d random cases off", n_bad, N_CASES);
	printf("identity: %d random cases (%d near one-hot): max |loss - bias - variance| %.3g, "
	       "min variance %.3g\n",
	       N_CASES, n_onehot, max_dev, min_var);

	/* one-hot replicas that disagree: closed form. Rows (100, -100, ...) and
	 * (-100, 100, ...), K = 10, y = 0: l = (-100, -100, -200, ...),
	 * log Z = -100 + log 2, variance = 100 - log 2, bias = log 2, loss = 100 */
	float oh[2 * 10];
	for (int k = 0; k < 10; k++) {
		oh[k] = k == 0 ? 100.0f : -100.0f;
		oh[10 + k] = k == 1 ? 100.0f : -100.0f;
	}
	bv_bv o;
	bv_decompose_sample(&o, oh, 10, 2, 10, 0, NULL);
	CHECK_NEAR(o.variance, 100 - log(2.0), 1e-12, "one-hot +-100 disagreeing: variance");
	CHECK_NEAR(o.bias, log(2.0), 1e-12, "one-hot +-100 disagreeing: bias");
	CHECK_NEAR(o.loss, 100, 1e-12, "one-hot +-100 disagreeing: loss");
	CHECK_NEAR(o.p_true, 0.5, 1e-15, "one-hot +-100 disagreeing: p_true");
	CHECK_NEAR(o.acc, 0.5, 0, "one-hot +-100 disagreeing: acc");
}

/* ---- 3. weights, strides, p_true and acc -------------------------------- */

static int same_bv(const bv_bv *a, const bv_bv *b, double tol)
{
	return fabs(a->bias - b->bias) <= tol && fabs(a->variance - b->variance) <= tol &&
	       fabs(a->loss - b->loss) <= tol && fabs(a->p_true - b->p_true) <= tol &&
	       fabs(a->acc - b->acc) <= tol;
}

static void test_weights(void)
{
	enum { K = 7 };
	float z[3 * K], rep[3 * K];
	for (int i = 0; i < 3 * K; i++)
		z[i] = (float)(3 * (2 * rng_uniform() - 1));
	for (int k = 0; k < K; k++)
		z[K + k] = NAN; /* weight 0: the row must not be read */
	memcpy(rep, z, K * sizeof(float));
	memcpy(rep + K, z, K * sizeof(float));
	memcpy(rep + 2 * K, z + 2 * K, K * sizeof(float));
	const double w[3] = {2, 0, 1};

	for (int y = 0; y < K; y++) {
		bv_bv a, b;
		bv_decompose_sample(&a, z, K, 3, K, y, w);
		bv_decompose_sample(&b, rep, K, 3, K, y, NULL);
		CHECK(same_bv(&a, &b, 1e-13),
		      "weights (2,0,1) y=%d: bias %.17g/%.17g variance %.17g/%.17g loss %.17g/%.17g", y,
		      a.bias, b.bias, a.variance, b.variance, a.loss, b.loss);
	}
	/* all-ones weights are the NULL case */
	const double ones[3] = {1, 1, 1};
	bv_bv a, b;
	bv_decompose_sample(&a, rep, K, 3, K, 2, ones);
	bv_decompose_sample(&b, rep, K, 3, K, 2, NULL);
	CHECK(same_bv(&a, &b, 0), "weights all 1 differ from NULL");
}

static void test_stride(void)
{
	enum { B = 5, N = 9, K = 6 };
	static float snap[B * N * K]; /* (B, N, K) */
	float rows[B * K];
	const double w[B] = {1, 3, 0, 2, 1};
	int n_diff = 0;

	for (int i = 0; i < B * N * K; i++)
		snap[i] = (float)(4 * (2 * rng_uniform() - 1));
	for (int i = 0; i < N; i++) {
		for (int r = 0; r < B; r++)
			memcpy(rows + r * K, snap + ((size_t)r * N + i) * K, K * sizeof(float));
		const int y = i % K;
		for (int weighted = 0; weighted < 2; weighted++) {
			bv_bv a, b;
			bv_decompose_sample(&a, snap + (size_t)i * K, (size_t)N * K, B, K, y,
					    weighted ? w : NULL);
			bv_decompose_sample(&b, rows, K, B, K, y, weighted ? w : NULL);
			n_diff += !same_bv(&a, &b, 0);
		}
	}
	CHECK(n_diff == 0, "stride N*K differs from copied rows on %d of %d samples", n_diff, 2 * N);
}

static void test_ptrue_acc(void)
{
	/* K = 3, y = 1. Rows and their q[1], argmax (first max wins):
	 *   (0, 0, 0)  1/3            0  (three-way tie)
	 *   (0, 1, 0)  e/(e+2)        1
	 *   (1, 1, 0)  e/(2e+1)       0  (tie 0/1: first wins)
	 *   (0, 2, 2)  e^2/(1+2e^2)   1  (tie 1/2: first wins) */
	const float z[4 * 3] = {0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 2, 2};
	const double e = exp(1.0);
	const double q[4] = {1.0 / 3, e / (e + 2), e / (2 * e + 1), e * e / (1 + 2 * e * e)};
	const double w[4] = {1, 3, 0, 1};
	bv_bv o;

	bv_decompose_sample(&o, z, 3, 4, 3, 1, NULL);
	CHECK_NEAR(o.p_true, (q[0] + q[1] + q[2] + q[3]) / 4, 1e-15, "p_true");
	CHECK_NEAR(o.acc, 0.5, 0, "acc (ties: first max wins)");
	bv_decompose_sample(&o, z, 3, 4, 3, 1, w);
	CHECK_NEAR(o.p_true, (q[0] + 3 * q[1] + q[3]) / 5, 1e-15, "weighted p_true");
	CHECK_NEAR(o.acc, 0.8, 1e-15, "weighted acc");
	bv_decompose_sample(&o, z, 3, 4, 3, 0, NULL);
	CHECK_NEAR(o.acc, 0.5, 0, "acc y=0");
	bv_decompose_sample(&o, z, 3, 4, 3, 2, NULL);
	CHECK_NEAR(o.acc, 0, 0, "acc y=2 (never the first max)");
}

/* ---- 4. criteria ---------------------------------------------------------- */

static void test_criterion_parse(void)
{
	const char *names[] = {"bv", "grad", "teacher"};
	for (int i = 0; i < 3; i++) {
		bv_criterion c = (bv_criterion)-1;
		CHECK(bv_criterion_parse(&c, names[i], "--criterion") == 0 && (int)c == i &&
			      strcmp(bv_criterion_name(c), names[i]) == 0,
		      "criterion '%s' round trip", names[i]);
	}
	bv_criterion c = BV_CRIT_GRAD;
	CHECK_ERR(bv_criterion_parse(&c, "x", "--criterion"), BV_EINVAL);
	CHECK(strcmp(bv_error_last(),
		     "--criterion: unknown criterion 'x' (expected bv, grad or teacher)") == 0,
	      "parse message: '%s'", bv_error_last());
	CHECK(c == BV_CRIT_GRAD, "a failed parse changed *out");
	CHECK_ERR(bv_criterion_parse(&c, "BV", "--criterion"), BV_EINVAL);
	CHECK(strcmp(bv_criterion_name((bv_criterion)7), "?") == 0, "name of an unknown criterion");
}

static void test_flag_bv(void)
{
	const bv_bv ce = {.bias = 1.0, .variance = 0.3};
	const bv_bv up_down = {.bias = 1.2, .variance = 0.1};
	const bv_bv up_same = {.bias = 1.2, .variance = 0.3};
	const bv_bv same_down = {.bias = 1.0, .variance = 0.1};
	const bv_bv down_down = {.bias = 0.9, .variance = 0.1};
	const bv_bv up_up = {.bias = 1.2, .variance = 0.4};

	CHECK(bv_flag_bv(&up_down, &ce) == 1, "bv: bias up, variance down flags");
	CHECK(bv_flag_bv(&up_same, &ce) == 0, "bv: equal variance does not flag");
	CHECK(bv_flag_bv(&same_down, &ce) == 0, "bv: equal bias does not flag");
	CHECK(bv_flag_bv(&down_down, &ce) == 0, "bv: bias down does not flag");
	CHECK(bv_flag_bv(&up_up, &ce) == 0, "bv: variance up does not flag");
}

/* softmax(z / T)[y] for K = 3, written out */
static double p3(const float *z, int y, double T)
{
	return exp(z[y] / T) / (exp(z[0] / T) + exp(z[1] / T) + exp(z[2] / T));
}

/* a and b of the grad criterion by hand */
static void hand_ab(double *a, double *b, const float *s, const float *t, int y, double T)
{
	*a = p3(s, y, 1) - 1;
	*b = T * (p3(s, y, T) - p3(t, y, T)) - *a;
}

static void test_flag_grad(void)
{
	const double T = 4;
	const int y = 0;
	const float t[3] = {2, 0, 0};     /* teacher */
	const float t8[3] = {8, 0, 0};    /* a surer teacher */
	const float sA[3] = {3, 0, 0};    /* surer than the teacher: b > 0, flags */
	const float sB[3] = {1, 0, 0};    /* a bit less sure: -2|a|/T < diff < 0, no flag */
	const float sC[3] = {2, 0, 0};    /* the teacher itself: b = -a, |b| = |a|, no flag */
	const float sD[3] = {0, 0, 0};    /* against t8: b < -|a|, flags through |b| */
	double a, b;

	hand_ab(&a, &b, sA, t, y, T);
	printf("grad T=4 A: a %.6f b %.6f\n", a, b);
	CHECK(fabs(b) > fabs(a), "hand: A flags (a %g b %g)", a, b);
	hand_ab(&a, &b, sB, t, y, T);
	printf("grad T=4 B: a %.6f b %.6f\n", a, b);
	CHECK(!(fabs(b) > fabs(a)), "hand: B does not flag (a %g b %g)", a, b);
	hand_ab(&a, &b, sD, t8, y, T);
	printf("grad T=4 D (teacher 8,0,0): a %.6f b %.6f\n", a, b);
	CHECK(b < 0 && fabs(b) > fabs(a), "hand: D flags with b < 0 (a %g b %g)", a, b);

	/* replica sets, rows with stride 5 and poisoned padding */
	struct {
		const float *rows[4];
		int B;
		const float *teacher;
		int flag;
		double share;
	} cases[] = {
		{{sA, sA, sB, sB}, 4, t, 0, 0.5}, /* exactly half: not a majority */
		{{sA, sA, sA, sB}, 4, t, 1, 0.75},
		{{sA, sB, sC}, 3, t, 0, 1.0 / 3},
		{{sA, sC, sA}, 3, t, 1, 2.0 / 3},
		{{sB, sC}, 2, t, 0, 0},
		{{sC}, 1, t, 0, 0}, /* |b| = |a| exactly */
		{{sA}, 1, t, 1, 1},
		{{sD, sD, sB}, 3, t8, 1, 1}, /* sB against t8 also flags (b < -|a|) */
	};
	for (unsigned i = 0; i < BV_ARRAY_LEN(cases); i++) {
		float buf[4 * 5];
		for (int j = 0; j < 4 * 5; j++)
			buf[j] = 1e30f;
		for (int r = 0; r < cases[i].B; r++)
			memcpy(buf + r * 5, cases[i].rows[r], 3 * sizeof(float));
		double share = -1;
		int f = bv_flag_grad(&share, buf, 5, cases[i].B, 3, y, cases[i].teacher, T);
		CHECK(f == cases[i].flag, "grad case %u: flag %d want %d", i, f, cases[i].flag);
		CHECK_NEAR(share, cases[i].share, 1e-15, "grad share");
		CHECK(bv_flag_grad(NULL, buf, 5, cases[i].B, 3, y, cases[i].teacher, T) == f,
		      "grad case %u without share", i);
	}
}

static void test_flag_teacher(void)
{
	const float t[3] = {0, 1, 0};
	const double ce_t = log(2 + exp(1.0)); /* -log softmax(t)[0] = 1.5514... */

	CHECK(bv_flag_teacher(t, 3, 0, ce_t - 0.01) == 1, "teacher: CE_t above student loss flags");
	CHECK(bv_flag_teacher(t, 3, 0, ce_t + 0.01) == 0, "teacher: CE_t below does not");
	CHECK(bv_flag_teacher(t, 3, 1, 0.6) == 0, "teacher: sure teacher (CE_t 0.55) vs 0.6");
	CHECK(bv_flag_teacher(t, 3, 1, 0.5) == 1, "teacher: CE_t 0.55 vs 0.5");
}

static void test_wsl_weight(void)
{
	/* two replicas at stride 4, teacher (1, 0.5, 0), y = 0 */
	const float s[2 * 4] = {2, 0, -1, 99, 0, 1, 0, 99};
	const float t[3] = {1, 0.5f, 0};
	const double ce1 = log(exp(2.0) + 1 + exp(-1.0)) - 2;
	const double ce2 = log(2 + exp(1.0));
	const double cet = log(exp(1.0) + exp(0.5) + 1) - 1;
	const double want =
		0.5 * ((1 - exp(-ce1 / (cet + 1e-7))) + (1 - exp(-ce2 / (cet + 1e-7))));

	CHECK_NEAR(bv_wsl_weight_mean(s, 4, 2, 3, 0, t), want, 1e-12, "wsl weight mean");
	/* y = 1: the student's CE on class 1 */
	const double ce1b = log(exp(2.0) + 1 + exp(-1.0));
	const double ce2b = log(2 + exp(1.0)) - 1;
	const double cetb = log(exp(1.0) + exp(0.5) + 1) - 0.5;
	const double wantb =
		0.5 * ((1 - exp(-ce1b / (cetb + 1e-7))) + (1 - exp(-ce2b / (cetb + 1e-7))));
	CHECK_NEAR(bv_wsl_weight_mean(s, 4, 2, 3, 1, t), wantb, 1e-12, "wsl weight mean y=1");
	printf("wsl weight mean: %.9f (y=0), %.9f (y=1)\n", want, wantb);

	/* the fused form: the same decomposition and the same weight */
	bv_bv a, b;
	double wsl = NAN;
	bv_decompose_sample(&a, s, 4, 2, 3, 0, NULL);
	bv_decompose_sample_wsl(&b, &wsl, s, 4, 2, 3, 0, NULL, bv_math_ce(t, 3, 0));
	CHECK(a.bias == b.bias && a.variance == b.variance && a.loss == b.loss && a.p_true == b.p_true,
	      "bv_decompose_sample_wsl decomposes like bv_decompose_sample");
	CHECK_NEAR(wsl, want, 1e-12, "fused wsl weight mean");
	/* weighted: replica 2 counted twice, replica 1 not at all */
	const double w2[2] = {0, 2};
	bv_decompose_sample_wsl(&b, &wsl, s, 4, 2, 3, 0, w2, bv_math_ce(t, 3, 0));
	CHECK_NEAR(wsl, 1 - exp(-ce2 / (cet + 1e-7)), 1e-12, "fused wsl weight, weighted");
}

/* ---- 5. statistics ---------------------------------------------------------- */

static int expect_word(FILE *f, const char *word)
{
	char tok[64];
	return fscanf(f, "%63s", tok) == 1 && strcmp(tok, word) == 0;
}

static int read_doubles(FILE *f, const char *tag, double *v, int n)
{
	if (!expect_word(f, tag))
		return 0;
	for (int i = 0; i < n; i++)
		if (fscanf(f, "%lf", &v[i]) != 1)
			return 0;
	return 1;
}

/* p-values: relative 1e-6, with an absolute floor of 1e-10 for p = 0 */
static int close_p(double got, double want)
{
	return !isnan(got) && fabs(got - want) <= 1e-6 * fabs(want) + 1e-10;
}

static void test_correlate_fixture(void)
{
	enum { MAX_N = 64 };
	const char *dir = getenv("BV_FIXTURES");
	char path[4096];
	int n_cases = 0, n_read = 0, version = 0;
	double max_dr = 0, max_dp = 0;

	if (!dir) {
		CHECK(0, "BV_FIXTURES is not set (run through ctest, or set it to tests/fixtures)");
		return;
	}
	snprintf(path, sizeof(path), "%s/stats.txt", dir);
	FILE *f = fopen(path, "r");
	if (!f) {
		CHECK(0, "cannot open fixture '%s' (regenerate with tests/fixtures/gen_stats.py)", path);
		return;
	}
	if (!expect_word(f, "bvtool-stats") || fscanf(f, "%d", &version) != 1 || version != 1 ||
	    !expect_word(f, "ncases") || fscanf(f, "%d", &n_cases) != 1 || n_cases <= 0) {
		CHECK(0, "'%s': bad header (expected 'bvtool-stats 1' and 'ncases N')", path);
		goto done;
	}
	for (int i = 0; i < n_cases; i++) {
		char name[64];
		int n = 0;
		double x[MAX_N], y[MAX_N], want[4];
		if (!expect_word(f, "case") || fscanf(f, "%63s %d", name, &n) != 2 || n < 3 ||
		    n > MAX_N || !read_doubles(f, "x", x, n) || !read_doubles(f, "y", y, n) ||
		    !read_doubles(f, "r", want, 2) || !read_doubles(f, "rho", want + 2, 2) ||
		    !expect_word(f, "end")) {
			CHECK(0, "'%s': case %d is malformed", path, i + 1);
			break;
		}
		bv_corr c;
		memset(&c, 0, sizeof(c));
		int rc = bv_correlate(&c, x, y, n);
		CHECK(rc == 0, "%s: bv_correlate rc %d (%s)", name, rc, bv_error_last());
		CHECK(c.n == n, "%s: n %d want %d", name, c.n, n);
		CHECK(fabs(c.r - want[0]) <= 1e-9, "%s: r got %.17g want %.17g", name, c.r, want[0]);
		CHECK(close_p(c.r_p, want[1]), "%s: r_p got %.17g want %.17g", name, c.r_p, want[1]);
		CHECK(fabs(c.rho - want[2]) <= 1e-9, "%s: rho got %.17g want %.17g", name, c.rho,
		      want[2]);
		CHECK(close_p(c.rho_p, want[3]), "%s: rho_p got %.17g want %.17g", name, c.rho_p,
		      want[3]);
		const double dr = fmax(fabs(c.r - want[0]), fabs(c.rho - want[2]));
		const double dp = fmax(fabs(c.r_p - want[1]), fabs(c.rho_p - want[3]));
		max_dr = fmax(max_dr, dr);
		max_dp = fmax(max_dp, dp);
		printf("fixture %-20s n=%d r % .6f p %.4g  rho % .6f p %.4g  (diff r %.2g, p %.2g)\n",
		       name, n, c.r, c.r_p, c.rho, c.rho_p, dr, dp);
		n_read++;
	}
	CHECK(n_read == n_cases, "'%s': read %d of %d cases", path, n_read, n_cases);
	printf("fixture: %d cases from %s, max diff r/rho %.2g, p %.2g\n", n_read, path, max_dr,
	       max_dp);
done:
	fclose(f);
}

static void test_correlate_errors(void)
{
	const double x[4] = {1, 2, 3, 4}, y[4] = {2, 1, 4, 3}, k[4] = {5, 5, 5, 5};
	const double bad[4] = {1, NAN, 3, 4};
	bv_corr c;

	CHECK_ERR(bv_correlate(&c, x, y, 2), BV_EINVAL);
	CHECK_ERR(bv_correlate(&c, x, y, 0), BV_EINVAL);
	CHECK_ERR(bv_correlate(&c, k, y, 4), BV_EINVAL);
	printf("constant series: %s\n", bv_error_last());
	CHECK_ERR(bv_correlate(&c, x, k, 3), BV_EINVAL);
	CHECK_ERR(bv_correlate(&c, x, bad, 4), BV_EINVAL);
	CHECK_ERR(bv_correlate(&c, x, y, 3), 0);
}

static void test_mean_ci(void)
{
	const double x[4] = {1, 2, 3, 4};
	double mean, sd, half;

	bv_mean_ci(&mean, &sd, &half, x, 4);
	CHECK_NEAR(mean, 2.5, 1e-15, "mean_ci n=4 mean");
	CHECK_NEAR(sd, sqrt(5.0 / 3.0), 1e-14, "mean_ci n=4 sd");
	/* t_{0.975, 3} = 3.182446305284263 */
	CHECK_NEAR(half, 3.182446305284263 * sqrt(5.0 / 3.0) / 2, 1e-9, "mean_ci n=4 half95");

	const double x2[2] = {1, 3};
	bv_mean_ci(&mean, &sd, &half, x2, 2);
	CHECK_NEAR(sd, sqrt(2.0), 1e-15, "mean_ci n=2 sd");
	/* t_{0.975, 1} = tan(0.475 pi) (Cauchy); sd / sqrt(n) = 1 */
	CHECK_NEAR(half, tan(0.475 * 3.14159265358979323846), 1e-8, "mean_ci n=2 half95");

	bv_mean_ci(&mean, &sd, &half, x2, 1);
	CHECK(mean == 1 && isnan(sd) && isnan(half), "mean_ci n=1: %g %g %g", mean, sd, half);
	bv_mean_ci(&mean, &sd, &half, x2, 0);
	CHECK(isnan(mean) && isnan(sd) && isnan(half), "mean_ci n=0: %g %g %g", mean, sd, half);
	bv_mean_ci(&mean, NULL, NULL, x, 4);
	CHECK(mean == 2.5, "mean_ci with NULL sd and half95");
}

/* ---- 6. timing -------------------------------------------------------------- */

static void time_decompose(void)
{
	enum { B = 16, N = 1000, K = 10, CALLS = 1000000 };
	float *snap = malloc((size_t)B * N * K * sizeof(*snap)); /* (B, N, K) */
	int *labels = malloc(N * sizeof(*labels));
	if (!snap || !labels) {
		CHECK(0, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < (size_t)B * N * K; i++)
		snap[i] = (float)(3 * (2 * rng_uniform() - 1));
	for (int i = 0; i < N; i++)
		labels[i] = rng_int(K);

	double sum = 0, t0 = bv_now();
	for (int c = 0; c < CALLS; c++) {
		const int i = c % N;
		bv_bv o;
		bv_decompose_sample(&o, snap + (size_t)i * K, (size_t)N * K, B, K, labels[i], NULL);
		sum += o.bias + o.variance;
	}
	double dt = bv_now() - t0;
	CHECK(isfinite(sum), "timing loop: non-finite sum");
	printf("timing: %d decompositions (B=%d, K=%d, stride N*K) in %.3f s: %.0f ns per call\n",
	       CALLS, B, K, dt, dt / CALLS * 1e9);
done:
	free(snap);
	free(labels);
}

/* ---- 6. report --format json ---------------------------------------------- */

/* "k1 k2 ...": the keys of obj in their order */
static void keys_of(char *out, size_t size, json_t *obj)
{
	size_t len = 0;
	out[0] = '\0';
	for (void *it = json_object_iter(obj); it && len < size; it = json_object_iter_next(obj, it))
		len += (size_t)snprintf(out + len, size - len, "%s%s", len ? " " : "",
					json_object_iter_key(it));
}

/* The object at a[i], with exactly the keys `keys` in that order; NULL (and
 * a failed check) when it is not. */
static json_t *row_of(json_t *a, size_t i, const char *keys, const char *what)
{
	char got[512];
	json_t *o = json_array_get(a, i);
	CHECK(json_is_object(o), "%s[%zu]: not an object", what, i);
	if (!json_is_object(o))
		return NULL;
	keys_of(got, sizeof got, o);
	CHECK(strcmp(got, keys) == 0, "%s[%zu]: keys '%s', want '%s'", what, i, got, keys);
	return o;
}

/* key of o is a JSON number within tol of want, or null when want is NaN */
static void check_num(json_t *o, const char *key, double want, double tol, const char *what)
{
	json_t *v = json_object_get(o, key);
	if (isnan(want)) {
		CHECK(json_is_null(v), "%s.%s: want null", what, key);
		return;
	}
	CHECK(json_is_number(v), "%s.%s: not a number", what, key);
	if (json_is_number(v))
		CHECK(fabs(json_number_value(v) - want) <= tol,
		      "%s.%s: got %.17g want %.17g (diff %.3g > tol %.3g)", what, key,
		      json_number_value(v), want, fabs(json_number_value(v) - want), tol);
}

static void check_int(json_t *o, const char *key, long long want, const char *what)
{
	json_t *v = json_object_get(o, key);
	CHECK(json_is_integer(v) && json_integer_value(v) == want, "%s.%s: want the integer %lld",
	      what, key, want);
}

/* key of o is the string want, byte for byte */
static void check_str(json_t *o, const char *key, const char *want, const char *what)
{
	json_t *v = json_object_get(o, key);
	CHECK(json_is_string(v) && json_string_length(v) == strlen(want) &&
		      memcmp(json_string_value(v), want, strlen(want)) == 0,
	      "%s.%s: got '%s' want '%s'", what, key, json_is_string(v) ? json_string_value(v) : "?",
	      want);
}

#define FFFD "\xef\xbf\xbd" /* U+FFFD in UTF-8 */

/* The database's file name: quotes, a backslash, control characters, UTF-8
 * of 2, 3 and 4 bytes and the edges of each, then malformed UTF-8 of every
 * kind; and what JSON must give back: each bad byte one U+FFFD, and what
 * follows it read afresh. */
static const char report_name[] =
	"q\"b\\s\n\r\t\x01\x1f\x7f|"
	"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|"
	"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf|"
	"\xff|a\x80z|"          /* an invalid byte, a stray continuation */
	"\xc0\xaf|\xc1\xbf|"    /* overlong, 2 bytes */
	"\xe0\x80\xaf|"         /* overlong, 3 bytes */
	"\xed\xa0\x80|"         /* a surrogate */
	"\xf0\x80\x80\xaf|"     /* overlong, 4 bytes */
	"\xf4\x90\x80\x80|"     /* above U+10FFFF */
	"\xf5\x80|"
	"\xe2\x82\"|"           /* cut short by a quote */
	"\xf0\x9f\x98";         /* cut short at the end */
static const char report_name_json[] =
	"q\"b\\s\n\r\t\x01\x1f\x7f|"
	"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|"
	"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf|"
	FFFD "|a" FFFD "z|"
	FFFD FFFD "|" FFFD FFFD "|"
	FFFD FFFD FFFD "|"
	FFFD FFFD FFFD "|"
	FFFD FFFD FFFD FFFD "|"
	FFFD FFFD FFFD FFFD "|"
	FFFD FFFD "|"
	FFFD FFFD "\"|"
	FFFD FFFD FFFD;
/* a criterion and a method name as a damaged database may hold them */
static const char report_crit[] = "b\"v\\\x02\r\xce\xbb\xfe";
static const char report_crit_json[] = "b\"v\\\x02\r\xce\xbb" FFFD;
static const char report_method[] = "kd\",\\\n\xe2\x82\xac\x80";
static const char report_method_json[] = "kd\",\\\n\xe2\x82\xac" FFFD;

/* A database for the report: a teacher (90%), ce and kd at T = 2 for seeds
 * 1 and 2 (80, 84 and 82, 88%; ce seed 1 best at 83% in epoch 1), the
 * sample_stats of four test samples at T = 2 (kd's under report_method) and
 * at T = Inf, both decomposed under report_crit, and one correlation row. */
static int report_db(bv_db *db)
{
	const struct {
		bv_run_method m;
		double T;
		int seed;
		double acc;
	} cells[] = {{BV_RUN_TEACHER, NAN, 0, 0.90}, {BV_RUN_CE, NAN, 1, 0.80},
		     {BV_RUN_CE, NAN, 2, 0.84}, {BV_RUN_KD, 2, 1, 0.82}, {BV_RUN_KD, 2, 2, 0.88}};
	for (size_t c = 0; c < BV_ARRAY_LEN(cells); c++) {
		int64_t id;
		if (bv_db_run_ensure(db, &id, NULL, cells[c].m, cells[c].T, cells[c].seed, 1, 1, 1,
				     "mlp:", 2) != 0)
			return -1;
		if (c == 1) {
			const bv_db_metrics m1 = {1, 0.1, 1, 0.5, 0.83, 0, 0, 1};
			const bv_db_metrics m2 = {2, 0.1, 1, 0.5, 0.80, 0, 0, 1};
			if (bv_db_snapshot_put(db, id, &m1, NULL, 0, NULL, 0, 3) != 0 ||
			    bv_db_snapshot_put(db, id, &m2, NULL, 0, NULL, 0, 3) != 0)
				return -1;
		}
		if (bv_db_run_finish(db, id, cells[c].acc, NULL, 1) != 0)
			return -1;
	}
	/* kd: regularization 1, 0, 1, 1; bias mean 0.5, variance mean 0.125 */
	const bv_stat_row kd[4] = {{0, 0.5, 0.125, 0.625, 1, 2, 0.5, 1, NAN, NAN},
				   {1, 0.25, 0.25, 0.5, 0, 2, 0.5, 1, NAN, NAN},
				   {2, 1.0, 0.0625, 1.0625, 1, 2, 0.5, 1, NAN, NAN},
				   {3, 0.25, 0.0625, 0.3125, 1, 2, 0.5, 1, NAN, NAN}};
	const bv_stat_row ce[4] = {{0, 0.5, 0.5, 1, -1, 2, 0.5, 1, NAN, NAN},
				   {1, 0.5, 0.5, 1, -1, 2, 0.5, 1, NAN, NAN},
				   {2, 0.5, 0.5, 1, -1, 2, 0.5, 1, NAN, NAN},
				   {3, 0.5, 0.5, 1, -1, 2, 0.5, 1, NAN, NAN}};
	const double temps[2] = {2, INFINITY};
	for (int t = 0; t < 2; t++) {
		const bv_db_decomposition d = {temps[t], 2, "test", report_crit, "1,2", 4, 0};
		if (bv_db_stats_put(db, temps[t], 2, "test", BV_RUN_CE, ce, 4) != 0 ||
		    bv_db_stats_put(db, temps[t], 2, "test", BV_RUN_KD, kd, 4) != 0 ||
		    bv_db_decomposition_put(db, &d) != 0)
			return -1;
	}
	sqlite3_stmt *st = NULL;
	if (bv_db_prepare(db, &st, "UPDATE sample_stats SET method = ?1 "
				   "WHERE method = 'kd' AND temperature = 2") != 0)
		return -1;
	sqlite3_bind_text(st, 1, report_method, -1, SQLITE_STATIC);
	const int done = sqlite3_step(st) == SQLITE_DONE;
	sqlite3_finalize(st);
	if (!done)
		return bv_db_error(db);
	/* r = 0.1 + 0.2 is 0.30000000000000004: ten digits would not give it back */
	const bv_db_correlation c = {"test", BV_RUN_KD, report_crit, 2, 3, 0,
				     0.1 + 0.2, NAN, -1, 1.0 / 3, NAN, NAN};
	return bv_db_correlation_put(db, &c);
}

static void test_report_json(void)
{
	char dir[512], path[1024], want_path[1024], side[1100], keys[512];
	bv_db *db = NULL;
	bv_buf b;
	json_t *doc = NULL;
	bv_buf_init(&b);
	if (bv_check_tmpdir(dir, sizeof dir, "report_json") != 0) {
		CHECK(0, "a temporary directory");
		return;
	}
	snprintf(path, sizeof path, "%s/%s", dir, report_name);
	snprintf(want_path, sizeof want_path, "%s/%s", dir, report_name_json);
	CHECK(bv_db_open(&db, path, BV_DB_CREATE) == 0 && report_db(db) == 0, "the database: %s",
	      bv_error_last());
	if (!db)
		goto done;
	CHECK(bv_report_db(db, &b, "json") == 0 && !b.failed, "report: %s", bv_error_last());
	CHECK(b.len > 0 && b.data[b.len - 1] == '\n', "the report ends its last line");
	/* jansson's parser refuses raw control characters and malformed UTF-8 in
	 * a string, and (asked to) repeated keys: what it reads was escaped */
	json_error_t err;
	doc = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, &err);
	CHECK(doc != NULL, "report --format json is not JSON: line %d, column %d: %s\n%.*s", err.line,
	      err.column, err.text, (int)b.len, (const char *)b.data);
	if (!json_is_object(doc))
		goto done;
	keys_of(keys, sizeof keys, doc);
	CHECK(strcmp(keys, "database accuracy paired regularization correlation") == 0,
	      "the document's keys: %s", keys);
	check_str(doc, "database", want_path, "report");

	/* accuracy: the methods in the table's order; in %, mean and sample sd */
	json_t *a = json_object_get(doc, "accuracy"), *o;
	const char *acc_keys = "method temperature seeds last_mean last_sd best_mean best_sd";
	CHECK(json_array_size(a) == 3, "accuracy: %zu rows, want 3", json_array_size(a));
	if ((o = row_of(a, 0, acc_keys, "accuracy"))) {
		check_str(o, "method", "teacher", "accuracy[0]");
		check_num(o, "temperature", NAN, 0, "accuracy[0]");
		check_int(o, "seeds", 1, "accuracy[0]");
		check_num(o, "last_mean", 90, 1e-12, "accuracy[0]");
		check_num(o, "last_sd", NAN, 0, "accuracy[0]"); /* one seed: no sd */
		check_num(o, "best_mean", 90, 1e-12, "accuracy[0]");
		check_num(o, "best_sd", NAN, 0, "accuracy[0]");
	}
	if ((o = row_of(a, 1, acc_keys, "accuracy"))) {
		check_str(o, "method", "ce", "accuracy[1]");
		check_num(o, "temperature", NAN, 0, "accuracy[1]");
		check_int(o, "seeds", 2, "accuracy[1]");
		check_num(o, "last_mean", 82, 1e-12, "accuracy[1]");
		check_num(o, "last_sd", sqrt(8), 1e-12, "accuracy[1]");   /* 80, 84 */
		check_num(o, "best_mean", 83.5, 1e-12, "accuracy[1]");    /* 83, 84 */
		check_num(o, "best_sd", sqrt(0.5), 1e-12, "accuracy[1]");
	}
	if ((o = row_of(a, 2, acc_keys, "accuracy"))) {
		check_str(o, "method", "kd", "accuracy[2]");
		check_num(o, "temperature", 2, 0, "accuracy[2]");
		check_int(o, "seeds", 2, "accuracy[2]");
		check_num(o, "last_mean", 85, 1e-12, "accuracy[2]");
		check_num(o, "last_sd", sqrt(18), 1e-12, "accuracy[2]");  /* 82, 88 */
		check_num(o, "best_mean", 85, 1e-12, "accuracy[2]");
		check_num(o, "best_sd", sqrt(18), 1e-12, "accuracy[2]");
	}

	/* paired: kd - ce per seed, 2 and 4 points; the 95% t interval with one
	 * degree of freedom, whose quantile is the Cauchy's: tan(pi (0.975 - 1/2)) */
	a = json_object_get(doc, "paired");
	CHECK(json_array_size(a) == 1, "paired: %zu rows, want 1", json_array_size(a));
	if ((o = row_of(a, 0, "comparison temperature seeds mean ci_low ci_high", "paired"))) {
		const double t = tan(acos(-1) * 0.475);   /* t(0.975) with 1 degree of freedom */
		const double h = t * sqrt(2) / sqrt(2);  /* t sd / sqrt(n): sd of 2, 4 is sqrt(2) */
		check_str(o, "comparison", "kd - ce", "paired[0]");
		check_num(o, "temperature", 2, 0, "paired[0]");
		check_int(o, "seeds", 2, "paired[0]");
		check_num(o, "mean", 3, 1e-12, "paired[0]");
		check_num(o, "ci_low", 3 - h, 1e-9, "paired[0]");
		check_num(o, "ci_high", 3 + h, 1e-9, "paired[0]");
	}

	/* regularization: T = 2, then T = Inf (null); ce's rows are not listed */
	a = json_object_get(doc, "regularization");
	const char *reg_keys = "split epoch temperature method criterion count samples share "
			       "mean_bias mean_variance";
	CHECK(json_array_size(a) == 2, "regularization: %zu rows, want 2", json_array_size(a));
	for (size_t i = 0; i < 2; i++) {
		char what[32];
		snprintf(what, sizeof what, "regularization[%zu]", i);
		if (!(o = row_of(a, i, reg_keys, "regularization")))
			continue;
		check_str(o, "split", "test", what);
		check_int(o, "epoch", 2, what);
		check_num(o, "temperature", i == 0 ? 2 : NAN, 0, what);
		check_str(o, "method", i == 0 ? report_method_json : "kd", what);
		check_str(o, "criterion", report_crit_json, what);
		check_int(o, "count", 3, what);
		check_int(o, "samples", 4, what);
		check_num(o, "share", 0.75, 0, what);
		check_num(o, "mean_bias", 0.5, 0, what);
		check_num(o, "mean_variance", 0.125, 0, what);
	}

	/* correlation: the stored doubles exactly, NULLs as null */
	a = json_object_get(doc, "correlation");
	CHECK(json_array_size(a) == 1, "correlation: %zu rows, want 1", json_array_size(a));
	if ((o = row_of(a, 0, "method split epoch criterion temperatures pearson_r pearson_p "
			      "spearman_rho spearman_p r_ci_low r_ci_high n_boot", "correlation"))) {
		check_str(o, "method", "kd", "correlation[0]");
		check_str(o, "split", "test", "correlation[0]");
		check_int(o, "epoch", 2, "correlation[0]");
		check_str(o, "criterion", report_crit_json, "correlation[0]");
		check_int(o, "temperatures", 3, "correlation[0]");
		check_num(o, "pearson_r", 0.1 + 0.2, 0, "correlation[0]");
		check_num(o, "pearson_p", NAN, 0, "correlation[0]");
		check_num(o, "spearman_rho", -1, 0, "correlation[0]");
		check_num(o, "spearman_p", 1.0 / 3, 0, "correlation[0]");
		check_num(o, "r_ci_low", NAN, 0, "correlation[0]");
		check_num(o, "r_ci_high", NAN, 0, "correlation[0]");
		check_int(o, "n_boot", 0, "correlation[0]");
	}
done:
	json_decref(doc);
	bv_buf_release(&b);
	bv_db_close(db);
	unlink(path);
	snprintf(side, sizeof side, "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof side, "%s-shm", path);
	unlink(side);
	CHECK(rmdir(dir) == 0, "nothing left in '%s'", dir);
}

int main(void)
{
	test_identical_replicas();
	test_two_replicas();
	test_three_replicas();
	test_identity();
	test_weights();
	test_stride();
	test_ptrue_acc();
	test_criterion_parse();
	test_flag_bv();
	test_flag_grad();
	test_flag_teacher();
	test_wsl_weight();
	test_correlate_fixture();
	test_correlate_errors();
	test_mean_ci();
	test_report_json();
	time_decompose();
	return bv_check_done();
}
