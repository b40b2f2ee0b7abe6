/*
 * The losses of nn/loss.c (ce, kd, wsl, kd-filter) checked three ways:
 *   1. against PyTorch autograd: $BV_FIXTURES/losses.txt, written by
 *      tests/fixtures/gen_losses.py (format documented there) — loss, stats,
 *      per-sample weights and every entry of dL/ds, with the max difference
 *      printed per case; a missing fixture is a failure, not a skip;
 *   2. by central finite differences of the loss on random logits at
 *      T = 1, 2, 4, 8, with gradients asserted to be clearly non-zero. WSL's
 *      weight (and kd-filter's 0/1 flag) is a constant of the gradient, so
 *      there the differenced function is gamma*CE + alpha*T^2*w*H with w taken
 *      from the unperturbed call and CE, H from per-sample kd evaluations;
 *   3. contracts: NaN -> BV_EDIVERGED, a soft method without teacher ->
 *      BV_EINVAL, n_correct, bv_method_parse / bv_method_name.
 */
#include "check.h"
#include "nn.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- 1. the PyTorch fixture ---------------------------------------------- */

typedef struct fx_case {
	char name[64], method[16];
	double temp, alpha, gamma;
	int n, k;
	float *s, *t;   /* (n, k) */
	int *y;         /* (n) */
	double loss;
	double ce, soft, wmean;
	int n_correct, n_filtered;
	double *w;      /* (n) */
	double *grad;   /* (n, k) */
} fx_case;

static void fx_case_release(fx_case *c)
{
	free(c->s);
	free(c->t);
	free(c->y);
	free(c->w);
	free(c->grad);
	memset(c, 0, sizeof(*c));
}

/* Read the next token and require it to be `word`. */
static int expect_word(FILE *f, const char *word)
{
	char tok[64];
	return fscanf(f, "%63s", tok) == 1 && strcmp(tok, word) == 0;
}

static int read_floats(FILE *f, const char *tag, float *v, size_t n)
{
	if (!expect_word(f, tag))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (fscanf(f, "%f", &v[i]) != 1)
			return 0;
	return 1;
}

static int read_doubles(FILE *f, const char *tag, double *v, size_t n)
{
	if (!expect_word(f, tag))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (fscanf(f, "%lf", &v[i]) != 1)
			return 0;
	return 1;
}

/* One `case ... end` block; 0 on a malformed file. */
static int read_case(FILE *f, fx_case *c)
{
	memset(c, 0, sizeof(*c));
	if (!expect_word(f, "case") ||
	    fscanf(f, "%63s %15s %lf %lf %lf %d %d", c->name, c->method, &c->temp, &c->alpha,
		   &c->gamma, &c->n, &c->k) != 7 ||
	    c->n <= 0 || c->k <= 0 || c->n > 100000 || c->k > 100000)
		return 0;
	size_t nk = (size_t)c->n * (size_t)c->k;
	c->s = malloc(nk * sizeof(*c->s));
	c->t = malloc(nk * sizeof(*c->t));
	c->y = malloc((size_t)c->n * sizeof(*c->y));
	c->w = malloc((size_t)c->n * sizeof(*c->w));
	c->grad = malloc(nk * sizeof(*c->grad));
	if (!c->s || !c->t || !c->y || !c->w || !c->grad)
		return 0;
	if (!read_floats(f, "s", c->s, nk) || !read_floats(f, "t", c->t, nk) ||
	    !expect_word(f, "y"))
		return 0;
	for (int i = 0; i < c->n; i++)
		if (fscanf(f, "%d", &c->y[i]) != 1 || c->y[i] < 0 || c->y[i] >= c->k)
			return 0;
	if (!read_doubles(f, "loss", &c->loss, 1) || !expect_word(f, "stats") ||
	    fscanf(f, "%lf %lf %lf %d %d", &c->ce, &c->soft, &c->wmean, &c->n_correct,
		   &c->n_filtered) != 5 ||
	    !read_doubles(f, "w", c->w, (size_t)c->n) || !read_doubles(f, "grad", c->grad, nk) ||
	    !expect_word(f, "end"))
		return 0;
	return 1;
}

/* "relative 1e-5 or absolute 1e-6" for losses and their means */
static int close_rel(double got, double want)
{
	double d = fabs(got - want);
	return !isnan(got) && (d <= 1e-6 || d <= 1e-5 * fabs(want));
}

static void check_case(const fx_case *c)
{
	bv_loss_cfg cfg = {.temp = (float)c->temp, .alpha = (float)c->alpha,
			   .gamma = (float)c->gamma};
	size_t nk = (size_t)c->n * (size_t)c->k;
	float *grad = malloc(nk * sizeof(*grad));
	float *w = malloc((size_t)c->n * sizeof(*w));
	if (!grad || !w) {
		CHECK(0, "%s: out of memory", c->name);
		goto done;
	}
	if (bv_method_parse(&cfg.method, c->method, "fixture method") != 0) {
		CHECK(0, "%s: %s", c->name, bv_error_last());
		goto done;
	}
	/* garbage first: dlogits and weights are overwritten, not accumulated */
	for (size_t j = 0; j < nk; j++)
		grad[j] = 1e3f;
	for (int i = 0; i < c->n; i++)
		w[i] = -7.0f;
	bv_loss_stats st;
	/* ce runs without teacher logits: it must not need them */
	const float *t = cfg.method == BV_METHOD_CE ? NULL : c->t;
	int rc = bv_loss(&st, grad, w, &cfg, c->s, t, c->y, c->n, c->k);
	CHECK(rc == 0, "%s: bv_loss rc %d (%s)", c->name, rc, bv_error_last());

	CHECK(close_rel(st.loss, c->loss), "%s: loss got %.9g want %.9g", c->name, st.loss,
	      c->loss);
	CHECK(close_rel(st.ce, c->ce), "%s: stats.ce got %.9g want %.9g", c->name, st.ce, c->ce);
	CHECK(close_rel(st.soft, c->soft), "%s: stats.soft got %.9g want %.9g", c->name, st.soft,
	      c->soft);
	CHECK_NEAR(st.wsl_weight, c->wmean, 1e-5, "stats.wsl_weight");
	CHECK(st.n_correct == c->n_correct, "%s: n_correct got %d want %d", c->name,
	      st.n_correct, c->n_correct);
	CHECK(st.n_filtered == c->n_filtered, "%s: n_filtered got %d want %d", c->name,
	      st.n_filtered, c->n_filtered);

	double max_w = 0, max_g = 0, max_g_rel = 0;
	int bad_w = 0, bad_g = 0;
	for (int i = 0; i < c->n; i++) {
		double d = fabs(w[i] - c->w[i]);
		if (!(d <= 1e-5)) {
			if (bad_w++ < 3)
				CHECK(0, "%s: w[%d] got %.9g want %.9g", c->name, i, w[i], c->w[i]);
		}
		max_w = d > max_w || isnan(d) ? d : max_w;
	}
	for (size_t j = 0; j < nk; j++) {
		double d = fabs(grad[j] - c->grad[j]);
		if (!(d <= 1e-6 + 1e-4 * fabs(c->grad[j]))) {
			if (bad_g++ < 3)
				CHECK(0, "%s: grad[%d,%d] got %.9g want %.9g", c->name,
				      (int)(j / (size_t)c->k), (int)(j % (size_t)c->k), grad[j],
				      c->grad[j]);
		}
		max_g = d > max_g || isnan(d) ? d : max_g;
		if (fabs(c->grad[j]) > 1e-6 && d / fabs(c->grad[j]) > max_g_rel)
			max_g_rel = d / fabs(c->grad[j]);
	}
	CHECK(bad_w == 0, "%s: %d weights off", c->name, bad_w);
	CHECK(bad_g == 0, "%s: %d gradient entries off", c->name, bad_g);
	printf("fixture %-32s %-9s T=%-2g loss %.6g (diff %.2g)  max|dw| %.2g  max|dgrad| %.2g "
	       "(rel %.2g)\n",
	       c->name, c->method, c->temp, st.loss, fabs(st.loss - c->loss), max_w, max_g,
	       max_g_rel);

	/* NULL dlogits and weights are allowed and change nothing */
	bv_loss_stats st2;
	rc = bv_loss(&st2, NULL, NULL, &cfg, c->s, t, c->y, c->n, c->k);
	CHECK(rc == 0 && st2.loss == st.loss, "%s: loss without outputs %.9g vs %.9g", c->name,
	      st2.loss, st.loss);
done:
	free(grad);
	free(w);
}

static void test_fixture(void)
{
	const char *dir = getenv("BV_FIXTURES");
	char path[4096];
	FILE *f = NULL;
	int n_cases = 0, n_read = 0, version = 0;

	if (!dir) {
		CHECK(0, "BV_FIXTURES is not set (run through ctest, or set it to tests/fixtures)");
		return;
	}
	snprintf(path, sizeof(path), "%s/losses.txt", dir);
	f = fopen(path, "r");
	if (!f) {
		CHECK(0, "cannot open fixture '%s' (regenerate with tests/fixtures/gen_losses.py)",
		      path);
		return;
	}
	if (!expect_word(f, "bvtool-losses") || fscanf(f, "%d", &version) != 1 || version != 1 ||
	    !expect_word(f, "ncases") || fscanf(f, "%d", &n_cases) != 1 || n_cases <= 0) {
		CHECK(0, "'%s': bad header (expected 'bvtool-losses 1' and 'ncases N')", path);
		goto done;
	}
	for (int i = 0; i < n_cases; i++) {
		fx_case c;
		int ok = read_case(f, &c);
		CHECK(ok, "'%s': case %d is malformed", path, i + 1);
		if (ok) {
			check_case(&c);
			n_read++;
		}
		fx_case_release(&c);
		if (!ok)
			break;
	}
	CHECK(n_read == n_cases, "'%s': read %d of %d cases", path, n_read, n_cases);
	printf("fixture: %d cases from %s\n", n_read, path);
done:
	fclose(f);
}

/* ---- 2. finite differences ---------------------------------------------- */

/* xorshift64* and Box-Muller: a self-contained source of test logits */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static double rng_uniform(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return ((rng_state * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

static double rng_normal(void)
{
	double u = rng_uniform(), v = rng_uniform();
	return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v) /* 2 pi */;
}

#define FD_N 4
#define FD_K 10

/* The function whose gradient bv_loss returns. For ce and kd the loss itself;
 * for wsl and kd-filter gamma*mean CE_i + alpha*T^2*mean(w_i H_i) with the
 * weights w held at their unperturbed values, CE_i and H_i from per-sample kd
 * evaluations (stats.ce, stats.soft). */
static double fd_objective(const bv_loss_cfg *cfg, const float *w, const float *s,
			   const float *t, const int *y)
{
	bv_loss_stats st;
	if (cfg->method == BV_METHOD_CE || cfg->method == BV_METHOD_KD) {
		int rc = bv_loss(&st, NULL, NULL, cfg, s, t, y, FD_N, FD_K);
		CHECK(rc == 0, "fd: bv_loss rc %d (%s)", rc, bv_error_last());
		return st.loss;
	}
	bv_loss_cfg kd = *cfg;
	kd.method = BV_METHOD_KD;
	double sum = 0, T = cfg->temp;
	for (int i = 0; i < FD_N; i++) {
		int rc = bv_loss(&st, NULL, NULL, &kd, s + i * FD_K, t + i * FD_K, y + i, 1, FD_K);
		CHECK(rc == 0, "fd: bv_loss rc %d (%s)", rc, bv_error_last());
		sum += (double)cfg->gamma * st.ce + (double)cfg->alpha * T * T * w[i] * st.soft;
	}
	return sum / FD_N;
}

static void fd_check(bv_method method, float T, float alpha, float gamma)
{
	bv_loss_cfg cfg = {.method = method, .temp = T, .alpha = alpha, .gamma = gamma};
	float s[FD_N * FD_K], t[FD_N * FD_K], grad[FD_N * FD_K], w[FD_N];
	float ce_grad[FD_N * FD_K];
	int y[FD_N];
	const char *name = bv_method_name(method);

	bv_loss_stats st;
	int rc;
	/* redraw while kd-filter drops every sample's soft term (a vacuous check) */
	for (int tries = 0; tries < 20; tries++) {
		for (int i = 0; i < FD_N; i++) {
			y[i] = (int)(rng_uniform() * FD_K) % FD_K;
			for (int j = 0; j < FD_K; j++) {
				s[i * FD_K + j] =
					(float)(1.5 * rng_normal() + (j == y[i] ? 1.0 : 0.0));
				t[i * FD_K + j] =
					(float)(2.0 * rng_normal() + (j == y[i] ? 3.0 : 0.0));
			}
		}
		rc = bv_loss(&st, grad, w, &cfg, s, t, y, FD_N, FD_K);
		if (rc != 0 || st.wsl_weight > 0)
			break;
	}
	CHECK(rc == 0, "fd %s T=%g: rc %d (%s)", name, T, rc, bv_error_last());

	/* the objective with w held fixed reproduces the loss at the base point */
	double f0 = fd_objective(&cfg, w, s, t, y);
	CHECK(fabs(f0 - st.loss) <= 1e-6 * fabs(st.loss) + 1e-9,
	      "fd %s T=%g: objective %.9g but loss %.9g", name, T, f0, st.loss);

	/* central differences; the step actually taken is what float rounding left */
	const float h = 1e-3f;
	double max_an = 0, max_fd = 0, max_diff = 0, max_soft = 0;
	int bad = 0;
	for (int j = 0; j < FD_N * FD_K; j++) {
		const float s0 = s[j];
		s[j] = s0 + h;
		const float up = s[j];
		double fp = fd_objective(&cfg, w, s, t, y);
		s[j] = s0 - h;
		const float lo = s[j];
		double fm = fd_objective(&cfg, w, s, t, y);
		s[j] = s0;
		double fd = (fp - fm) / ((double)up - (double)lo);
		double an = grad[j];
		double d = fabs(fd - an);
		/* the loss is evaluated in double from float inputs: truncation
		 * (h^2 L'''/6) and rounding are far below this */
		if (!(d <= 1e-5 + 1e-3 * fabs(an))) {
			if (bad++ < 3)
				CHECK(0, "fd %s T=%g: dL/ds[%d,%d] analytic %.9g fd %.9g", name, T,
				      j / FD_K, j % FD_K, an, fd);
		}
		max_an = fmax(max_an, fabs(an));
		max_fd = fmax(max_fd, fabs(fd));
		max_diff = fmax(max_diff, d);
	}
	CHECK(bad == 0, "fd %s T=%g: %d gradient entries off", name, T, bad);
	/* not vacuous: the gradient, and its soft part, are clearly non-zero */
	CHECK(max_an > 1e-3 && max_fd > 1e-3, "fd %s T=%g: gradient vanishes (%.3g, %.3g)", name,
	      T, max_an, max_fd);
	if (method != BV_METHOD_CE) {
		bv_loss_cfg ce = cfg;
		ce.method = BV_METHOD_CE;
		rc = bv_loss(&st, ce_grad, NULL, &ce, s, NULL, y, FD_N, FD_K);
		CHECK(rc == 0, "fd ce: rc %d", rc);
		for (int j = 0; j < FD_N * FD_K; j++)
			max_soft = fmax(max_soft, fabs(grad[j] - gamma * ce_grad[j]));
		CHECK(max_soft > 1e-3, "fd %s T=%g: the soft term adds no gradient (%.3g)", name, T,
		      max_soft);
	}
	printf("fd %-9s T=%g alpha=%g gamma=%g: max|grad| %.3g, max|soft part| %.3g, "
	       "max|fd - analytic| %.2g\n",
	       name, T, alpha, gamma, max_an, max_soft, max_diff);
}

static void test_finite_differences(void)
{
	static const float temps[] = {1, 2, 4, 8};
	static const bv_method methods[] = {BV_METHOD_CE, BV_METHOD_KD, BV_METHOD_WSL,
					    BV_METHOD_KD_FILTER};
	for (size_t m = 0; m < BV_ARRAY_LEN(methods); m++)
		for (size_t i = 0; i < BV_ARRAY_LEN(temps); i++)
			fd_check(methods[m], temps[i], 2.25f, 1.0f);
	/* CRD-style weights */
	fd_check(BV_METHOD_KD, 4, 0.9f, 0.1f);
	fd_check(BV_METHOD_WSL, 4, 0.9f, 0.1f);
}

/* ---- 3. contracts ------------------------------------------------------- */

static void test_errors(void)
{
	enum { N = 3, K = 4 };
	float s[N * K] = {1, 2, 3, 4, 0, 0, 1, 0, -1, 5, 2, 2};
	float t[N * K] = {0, 1, 4, 1, 1, 0, 2, 0, 0, 3, 1, 0};
	int y[N] = {3, 2, 0};
	float grad[N * K], w[N];
	bv_loss_stats st;
	static const bv_method soft[] = {BV_METHOD_KD, BV_METHOD_WSL, BV_METHOD_KD_FILTER};

	/* a soft method needs the teacher */
	for (size_t m = 0; m < BV_ARRAY_LEN(soft); m++) {
		bv_loss_cfg cfg = {.method = soft[m], .temp = 4, .alpha = 2.25f, .gamma = 1};
		CHECK_ERR(bv_loss(&st, grad, w, &cfg, s, NULL, y, N, K), BV_EINVAL);
	}

	/* a NaN logit (student or teacher) is divergence */
	static const bv_method all[] = {BV_METHOD_CE, BV_METHOD_KD, BV_METHOD_WSL,
					BV_METHOD_KD_FILTER};
	for (size_t m = 0; m < BV_ARRAY_LEN(all); m++) {
		bv_loss_cfg cfg = {.method = all[m], .temp = 2, .alpha = 2.25f, .gamma = 1};
		float sn[N * K];
		memcpy(sn, s, sizeof(s));
		sn[5] = NAN;
		CHECK_ERR(bv_loss(&st, grad, w, &cfg, sn, t, y, N, K), BV_EDIVERGED);
		if (all[m] != BV_METHOD_CE) {
			float tn[N * K];
			memcpy(tn, t, sizeof(t));
			tn[2] = NAN;
			CHECK_ERR(bv_loss(&st, grad, w, &cfg, s, tn, y, N, K), BV_EDIVERGED);
		}
	}

	/* n_correct counts argmax(s) == y: rows' argmaxes are 3, 2, 1 */
	bv_loss_cfg cfg = {.method = BV_METHOD_KD, .temp = 4, .alpha = 2.25f, .gamma = 1};
	CHECK(bv_loss(&st, grad, w, &cfg, s, t, y, N, K) == 0, "kd: %s", bv_error_last());
	CHECK(st.n_correct == 2, "n_correct got %d want 2", st.n_correct);
	int y_none[N] = {0, 0, 0};
	cfg.method = BV_METHOD_CE;
	CHECK(bv_loss(&st, grad, w, &cfg, s, NULL, y_none, N, K) == 0, "ce: %s", bv_error_last());
	CHECK(st.n_correct == 0, "n_correct got %d want 0", st.n_correct);

	/* kd-filter's criterion is strict, |b| > |a|: with t == s, b = -a exactly
	 * (bitwise) at every T, so nothing is filtered and it equals kd */
	for (int T = 1; T <= 8; T *= 2) {
		bv_loss_cfg kf = {.method = BV_METHOD_KD_FILTER, .temp = (float)T, .alpha = 2.25f,
				  .gamma = 1};
		bv_loss_cfg kd = kf;
		kd.method = BV_METHOD_KD;
		bv_loss_stats st_kf, st_kd;
		CHECK(bv_loss(&st_kf, NULL, w, &kf, s, s, y, N, K) == 0, "kd-filter: %s",
		      bv_error_last());
		CHECK(bv_loss(&st_kd, NULL, NULL, &kd, s, s, y, N, K) == 0, "kd: %s",
		      bv_error_last());
		CHECK(st_kf.n_filtered == 0 && w[0] == 1 && w[1] == 1 && w[2] == 1 &&
			      st_kf.loss == st_kd.loss,
		      "kd-filter T=%d with t == s: %d filtered (|b| = |a| must not be)", T,
		      st_kf.n_filtered);
	}

	/* the teacher's own run trains like ce: same loss, same gradient */
	float g_ce[N * K], g_teacher[N * K];
	bv_loss_stats st_ce, st_teacher;
	bv_loss_cfg cfg_ce = {.method = BV_METHOD_CE, .temp = 4, .alpha = 2.25f, .gamma = 0.1f};
	bv_loss_cfg cfg_teacher = cfg_ce;
	cfg_teacher.method = BV_METHOD_TEACHER;
	CHECK(bv_loss(&st_ce, g_ce, NULL, &cfg_ce, s, NULL, y, N, K) == 0, "ce");
	CHECK(bv_loss(&st_teacher, g_teacher, NULL, &cfg_teacher, s, NULL, y, N, K) == 0,
	      "teacher: %s", bv_error_last());
	CHECK(st_ce.loss == st_teacher.loss && memcmp(g_ce, g_teacher, sizeof(g_ce)) == 0,
	      "teacher loss %.9g differs from ce %.9g", st_teacher.loss, st_ce.loss);
}

static void test_method_parse(void)
{
	static const struct {
		const char *s;
		bv_method m;
	} ok[] = {{"ce", BV_METHOD_CE},
		  {"kd", BV_METHOD_KD},
		  {"wsl", BV_METHOD_WSL},
		  {"kd-filter", BV_METHOD_KD_FILTER},
		  {"teacher", BV_METHOD_TEACHER}};
	for (size_t i = 0; i < BV_ARRAY_LEN(ok); i++) {
		bv_method m = (bv_method)-1;
		int rc = bv_method_parse(&m, ok[i].s, "--method");
		CHECK(rc == 0 && m == ok[i].m, "parse '%s': rc %d method %d", ok[i].s, rc, (int)m);
		CHECK(strcmp(bv_method_name(ok[i].m), ok[i].s) == 0, "name of %d is '%s' not '%s'",
		      (int)ok[i].m, bv_method_name(ok[i].m), ok[i].s);
	}
	static const char *bad[] = {"foo", "", "KD", "kd_filter", "wsl "};
	for (size_t i = 0; i < BV_ARRAY_LEN(bad); i++) {
		bv_method m;
		bv_error_clear();
		CHECK_ERR(bv_method_parse(&m, bad[i], "--method"), BV_EINVAL);
	}
	bv_method m;
	bv_error_clear();
	CHECK_ERR(bv_method_parse(&m, "foo", "--method"), BV_EINVAL);
	const char *msg = bv_error_last();
	CHECK(strstr(msg, "'foo'") && strstr(msg, "--method"),
	      "message should name the value and the flag: '%s'", msg);
	printf("parse: \"foo\" -> %s\n", msg);
}

int main(void)
{
	test_fixture();
	test_finite_differences();
	test_errors();
	test_method_parse();
	return bv_check_done();
}
