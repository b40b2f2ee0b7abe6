/*
 * The scalar functions over logits BLOBs (docs/sql.md): one class's logit,
 * probability, log-probability or cross-entropy, a row's entropy, the KL
 * divergence and the KD soft term between two rows, and the WSL weight. Each
 * turns its SQL arguments into math/'s (bvmath.h) and nothing more, so that
 * SQL and bvtool compute the same bits.
 */
#include "sqlfn_int.h"

#include <math.h>

#include "bvmath.h"

#define N_ARRAY(a) (sizeof(a) / sizeof((a)[0]))

/* The optional temperature of argument position arg (0-based in argv): 1 when
 * absent. */
static int opt_temp(double *t, sqlite3_context *ctx, const char *fn, int argc,
		    sqlite3_value **argv, int arg)
{
	*t = 1;
	return argc > arg ? sqlfn_temp_get(t, ctx, fn, arg + 1, argv[arg]) : 0;
}

/* A double result; NaN (non-finite logits) gives NULL as SQLite does. */
static void result_double(sqlite3_context *ctx, double d)
{
	if (!isnan(d))
		sqlite3_result_double(ctx, d);
}

/* bv_nclasses(z): K, the number of float32 values (0 for an empty BLOB). */
static void fn_nclasses(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	sqlfn_logits z;
	if (sqlfn_logits_get(&z, ctx, "bv_nclasses", 1, argv[0], 1) == 0)
		sqlite3_result_int(ctx, z.k);
	sqlfn_logits_release(&z);
}

/* bv_argmax(z): the 0-based class of the largest logit, the first on a tie
 * (bv_math_argmax, every accuracy's rule); NaN logits are passed over, and
 * all NaN gives NULL. */
static void fn_argmax(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	sqlfn_logits z;
	if (sqlfn_logits_get(&z, ctx, "bv_argmax", 1, argv[0], 0) == 0) {
		int best = -1;
		for (int c = 0; c < z.k; c++)
			if (!isnan(z.z[c]) && (best < 0 || z.z[c] > z.z[best]))
				best = c;
		if (best >= 0)
			sqlite3_result_int(ctx, best);
	}
	sqlfn_logits_release(&z);
}

/* bv_logit(z, c): logit c as a REAL; NULL when c is NULL or out of range. */
static void fn_logit(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	sqlfn_logits z;
	int c;
	if (sqlfn_logits_get(&z, ctx, "bv_logit", 1, argv[0], 0) == 0 &&
	    sqlfn_class_get(&c, ctx, "bv_logit", 2, argv[1], z.k) == 1)
		sqlite3_result_double(ctx, z.z[c]);
	sqlfn_logits_release(&z);
}

/* log p^T[c] for bv_softmax, bv_log_softmax and bv_ce: 1 with *out set, 0
 * for a NULL result, -1 on an error. */
static int log_prob(double *out, sqlite3_context *ctx, const char *fn, int argc,
		    sqlite3_value **argv)
{
	sqlfn_logits z;
	int c = 0, rc = sqlfn_logits_get(&z, ctx, fn, 1, argv[0], 0);
	double t = 1;
	if (rc == 0)
		rc = opt_temp(&t, ctx, fn, argc, argv, 2);
	if (rc == 0)
		rc = sqlfn_class_get(&c, ctx, fn, 2, argv[1], z.k);
	if (rc == 1)
		*out = bv_math_log_softmax_at(z.z, z.k, c, t);
	sqlfn_logits_release(&z);
	return rc;
}

/* bv_softmax(z, c [, T]) = p^T[c] = exp(log p^T[c]). */
static void fn_softmax(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	double lp;
	if (log_prob(&lp, ctx, "bv_softmax", argc, argv) == 1)
		result_double(ctx, exp(lp));
}

/* bv_log_softmax(z, c [, T]) = log p^T[c] = z_c / T - lse_T(z). */
static void fn_log_softmax(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	double lp;
	if (log_prob(&lp, ctx, "bv_log_softmax", argc, argv) == 1)
		result_double(ctx, lp);
}

/* bv_ce(z, y [, T]) = -log p^T[y]: the cross-entropy at label y (T = 1 is
 * training's CE, bv_math_ce). */
static void fn_ce(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	double lp;
	if (log_prob(&lp, ctx, "bv_ce", argc, argv) == 1)
		result_double(ctx, -lp);
}

/* Rows of log-probabilities for up to two logits arguments of one K (argv[0]
 * and, when two, argv[1]) at the temperature of argument position t_arg;
 * lp[0], lp[1] point into one allocation the caller frees with
 * sqlite3_free. 0 or -1 with the error set. */
static int log_rows(double *lp[2], int *k, double *t, sqlite3_context *ctx, const char *fn,
		    int argc, sqlite3_value **argv, int n_rows, int t_arg)
{
	sqlfn_logits z[2];
	int rc = 0, n_got = 0;
	lp[0] = lp[1] = NULL;
	for (; n_got < n_rows && rc == 0; n_got++)
		rc = sqlfn_logits_get(&z[n_got], ctx, fn, n_got + 1, argv[n_got], 0);
	if (rc == 0 && n_rows == 2 && z[0].k != z[1].k) {
		sqlfn_error(ctx, fn, "the two logits BLOBs have %d and %d classes", z[0].k, z[1].k);
		rc = -1;
	}
	if (rc == 0)
		rc = opt_temp(t, ctx, fn, argc, argv, t_arg);
	if (rc == 0) {
		*k = z[0].k;
		lp[0] = sqlite3_malloc64(sizeof(double) * (sqlite3_uint64)*k * (sqlite3_uint64)n_rows);
		if (!lp[0]) {
			sqlite3_result_error_nomem(ctx);
			rc = -1;
		}
	}
	for (int r = 0; r < n_got; r++) {
		if (rc == 0) {
			lp[r] = lp[0] + (size_t)r * (size_t)*k;
			bv_math_log_softmax(lp[r], z[r].z, *k, *t);
		}
		sqlfn_logits_release(&z[r]);
	}
	return rc;
}

/* bv_entropy(z [, T]) = -sum_k p^T[k] log p^T[k]. */
static void fn_entropy(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	double *lp[2], t;
	int k;
	if (log_rows(lp, &k, &t, ctx, "bv_entropy", argc, argv, 1, 1) == 0)
		result_double(ctx, bv_math_entropy_logp(lp[0], k));
	sqlite3_free(lp[0]);
}

/* bv_kl(zp, zq [, T]) = KL(softmax(zp / T) || softmax(zq / T)). */
static void fn_kl(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	double *lp[2], t;
	int k;
	if (log_rows(lp, &k, &t, ctx, "bv_kl", argc, argv, 2, 2) == 0)
		result_double(ctx, bv_math_kl_logp(lp[0], lp[1], k));
	sqlite3_free(lp[0]);
}

/* bv_soft_ce(z_teacher, z_student [, T]) = H = -sum_k p_t^T[k] log p_s^T[k],
 * the KD soft term of SPEC.md (bv_math_soft_ce_logp, training's formula). */
static void fn_soft_ce(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	double *lp[2], t;
	int k;
	if (log_rows(lp, &k, &t, ctx, "bv_soft_ce", argc, argv, 2, 2) == 0)
		result_double(ctx, bv_math_soft_ce_logp(lp[0], lp[1], k));
	sqlite3_free(lp[0]);
}

/* bv_wsl_weight(z_student, z_teacher, y) = 1 - exp(-CEs / (CEt + 1e-7)), from
 * the untempered cross-entropies at label y; NULL when y is NULL or out of
 * range. */
static void fn_wsl_weight(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	static const char fn[] = "bv_wsl_weight";
	sqlfn_logits s, t;
	int y, rc = sqlfn_logits_get(&s, ctx, fn, 1, argv[0], 0);
	t.z = t.own = t.small;
	if (rc == 0)
		rc = sqlfn_logits_get(&t, ctx, fn, 2, argv[1], 0);
	if (rc == 0 && s.k != t.k) {
		sqlfn_error(ctx, fn, "the two logits BLOBs have %d and %d classes", s.k, t.k);
		rc = -1;
	}
	if (rc == 0 && sqlfn_class_get(&y, ctx, fn, 3, argv[2], s.k) == 1)
		result_double(ctx, bv_math_wsl_weight(bv_math_ce(s.z, s.k, y), bv_math_ce(t.z, t.k, y)));
	sqlfn_logits_release(&s);
	sqlfn_logits_release(&t);
}

int sqlfn_scalar_register(sqlite3 *h)
{
	static const struct {
		const char *name;
		int argc;
		void (*fn)(sqlite3_context *, int, sqlite3_value **);
	} fns[] = {
		{"bv_nclasses", 1, fn_nclasses},      {"bv_argmax", 1, fn_argmax},
		{"bv_logit", 2, fn_logit},	      {"bv_softmax", 2, fn_softmax},
		{"bv_softmax", 3, fn_softmax},	      {"bv_log_softmax", 2, fn_log_softmax},
		{"bv_log_softmax", 3, fn_log_softmax}, {"bv_ce", 2, fn_ce},
		{"bv_ce", 3, fn_ce},		      {"bv_entropy", 1, fn_entropy},
		{"bv_entropy", 2, fn_entropy},	      {"bv_kl", 2, fn_kl},
		{"bv_kl", 3, fn_kl},		      {"bv_soft_ce", 2, fn_soft_ce},
		{"bv_soft_ce", 3, fn_soft_ce},	      {"bv_wsl_weight", 3, fn_wsl_weight},
	};
	const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
	for (size_t i = 0; i < N_ARRAY(fns); i++) {
		int rc = sqlite3_create_function_v2(h, fns[i].name, fns[i].argc, flags, NULL,
						    fns[i].fn, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}
