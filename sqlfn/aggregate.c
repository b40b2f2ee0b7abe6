/*
 * The aggregates over the replicas of one sample (one row per replica,
 * GROUP BY the sample): bv_bias(z, y), bv_variance(z), bv_loss(z, y) and
 * bv_geomean(z), SPEC.md's Heskes decomposition. Each row adds log q_r =
 * log softmax(z_r) into a running sum; the final step hands the mean row
 * l = (1/B) sum_r log q_r to bv_math_decompose as a single replica, whose
 * formulas then give
 *   bias = lse(l) - l_y,  variance = -lse(l),  loss = -l_y,
 * and log qbar = l - lse(l) for bv_geomean (a logits BLOB of
 * log-probabilities). The three aggregates of one query see the same rows:
 * the last row's log-softmax is kept per connection and reused when the
 * next call brings the same bytes, so a query asking for all three computes
 * each row's log-softmax once.
 */
#include "sqlfn_int.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bvmath.h"

/* The running state of one group, in SQLite's aggregate context: allocated
 * on the first row with room for that row's K sums. */
typedef struct agg_state {
	int k;
	int y; /* the label of the group's first row (bias, loss); -1: none yet */
	int y_null;
	sqlite3_int64 rows;
	double sum[]; /* (k) sum_r log q_r[k] */
} agg_state;

/* The last log-softmax computed on this connection (one per registration
 * set, shared by the four aggregates, freed when the last is dropped). */
typedef struct lsm_cache {
	int refs;
	int k, cap;
	float *z;    /* (k) the last row's logits */
	double *lp;  /* (k) their log-softmax */
	double *tmp; /* (k + 7) scratch of bv_math_log_softmax_fast */
} lsm_cache;

static void cache_unref(void *p)
{
	lsm_cache *c = p;
	if (--c->refs > 0)
		return;
	sqlite3_free(c->z);
	sqlite3_free(c->lp);
	sqlite3_free(c->tmp);
	sqlite3_free(c);
}

/* log softmax(z) (T = 1), from the cache when z is the last row's; NULL when
 * memory runs out. */
/* memcmp(a, b, 4 k) == 0, inline: at K = 10 the library call cost more than
 * the comparison */
static int same_floats(const float *a, const float *b, int k)
{
	int same = 1;
	for (int j = 0; j < k; j++) {
		uint32_t x, y;
		memcpy(&x, a + j, 4);
		memcpy(&y, b + j, 4);
		same &= x == y;
	}
	return same;
}

static const double *cached_log_softmax(lsm_cache *c, const float *z, int k)
{
	if (c->k == k && same_floats(c->z, z, k))
		return c->lp;
	if (k > c->cap) {
		float *nz = sqlite3_realloc64(c->z, sizeof(float) * (sqlite3_uint64)k);
		if (nz)
			c->z = nz;
		double *nlp = sqlite3_realloc64(c->lp, sizeof(double) * (sqlite3_uint64)k);
		if (nlp)
			c->lp = nlp;
		double *ntmp = sqlite3_realloc64(c->tmp, sizeof(double) * (sqlite3_uint64)(k + 7));
		if (ntmp)
			c->tmp = ntmp;
		if (!nz || !nlp || !ntmp) {
			c->k = 0;
			return NULL;
		}
		c->cap = k;
	}
	memcpy(c->z, z, sizeof(float) * (size_t)k);
	bv_math_log_softmax_fast(c->lp, c->tmp, z, k);
	c->k = k;
	return c->lp;
}

/* One row of the aggregate named fn: argv[0] the logits, argv[1] the label
 * when with_label. */
static void agg_step(sqlite3_context *ctx, const char *fn, sqlite3_value **argv, int with_label)
{
	sqlfn_logits z;
	if (sqlfn_logits_get(&z, ctx, fn, 1, argv[0], 0) != 0)
		goto done;
	agg_state *st = sqlite3_aggregate_context(ctx, (int)(sizeof(agg_state) +
							     sizeof(double) * (size_t)z.k));
	if (!st) {
		sqlite3_result_error_nomem(ctx);
		goto done;
	}
	if (st->rows == 0) {
		st->k = z.k;
		st->y = -1;
	} else if (z.k != st->k) {
		sqlfn_error(ctx, fn, "the logits have %d classes in one row and %d in another of the "
				     "same group", st->k, z.k);
		goto done;
	}
	if (with_label) {
		int y = -1, rc = sqlfn_class_get(&y, ctx, fn, 2, argv[1], z.k);
		if (rc < 0)
			goto done;
		int is_null = sqlite3_value_type(argv[1]) == SQLITE_NULL;
		if (st->rows == 0) {
			st->y = y;
			st->y_null = is_null;
		} else if (y != st->y || is_null != st->y_null) {
			sqlfn_error(ctx, fn, "the label changes inside one group (%d, then %d): "
					     "group by the sample", st->y, y);
			goto done;
		}
	}
	const double *lp = cached_log_softmax(sqlite3_user_data(ctx), z.z, z.k);
	if (!lp) {
		sqlite3_result_error_nomem(ctx);
		goto done;
	}
	for (int k = 0; k < z.k; k++)
		st->sum[k] += lp[k];
	st->rows++;
done:
	sqlfn_logits_release(&z);
}

/* The decomposition of the group's rows into *out; 0, or -1 when the group
 * had no rows (the result is NULL). l (k doubles, from sqlite3_malloc64) is
 * left holding the mean row for the caller to free. */
static int agg_final(sqlite3_context *ctx, bv_math_decomp *out, double **l, int y)
{
	agg_state *st = sqlite3_aggregate_context(ctx, 0);
	*l = NULL;
	if (!st || st->rows == 0)
		return -1;
	*l = sqlite3_malloc64(sizeof(double) * (sqlite3_uint64)st->k);
	if (!*l) {
		sqlite3_result_error_nomem(ctx);
		return -1;
	}
	for (int k = 0; k < st->k; k++)
		(*l)[k] = st->sum[k] / (double)st->rows;
	bv_math_decompose(out, *l, (size_t)st->k, 1, st->k, y < 0 ? 0 : y, NULL);
	return 0;
}

static void bias_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	agg_step(ctx, "bv_bias", argv, 1);
}

static void loss_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	agg_step(ctx, "bv_loss", argv, 1);
}

static void variance_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	agg_step(ctx, "bv_variance", argv, 0);
}

static void geomean_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	agg_step(ctx, "bv_geomean", argv, 0);
}

/* The group's label: -1 when it was NULL or out of range (the result is NULL). */
static int group_label(sqlite3_context *ctx)
{
	agg_state *st = sqlite3_aggregate_context(ctx, 0);
	return st && !st->y_null ? st->y : -1;
}

static void result_double(sqlite3_context *ctx, double d)
{
	if (!isnan(d))
		sqlite3_result_double(ctx, d);
}

/* One term of the group's decomposition as the result: bias and loss need
 * the group's label (NULL without one), the variance does not. */
enum term { BIAS, VARIANCE, LOSS };

static void term_final(sqlite3_context *ctx, enum term which)
{
	bv_math_decomp d;
	double *l;
	int y = which == VARIANCE ? 0 : group_label(ctx);
	if (agg_final(ctx, &d, &l, y) == 0 && y >= 0)
		result_double(ctx, which == BIAS ? d.bias : which == LOSS ? d.loss : d.variance);
	sqlite3_free(l);
}

static void bias_final(sqlite3_context *ctx)
{
	term_final(ctx, BIAS);
}

static void loss_final(sqlite3_context *ctx)
{
	term_final(ctx, LOSS);
}

static void variance_final(sqlite3_context *ctx)
{
	term_final(ctx, VARIANCE);
}

/* log qbar = l - lse(l) = l + variance, as K float32 */
static void geomean_final(sqlite3_context *ctx)
{
	bv_math_decomp d;
	double *l;
	agg_state *st = sqlite3_aggregate_context(ctx, 0);
	if (agg_final(ctx, &d, &l, 0) == 0) {
		float *q = sqlite3_malloc64(sizeof(float) * (sqlite3_uint64)st->k);
		if (!q) {
			sqlite3_result_error_nomem(ctx);
		} else {
			for (int k = 0; k < st->k; k++)
				q[k] = (float)(l[k] + d.variance);
			sqlite3_result_blob64(ctx, q, sizeof(float) * (sqlite3_uint64)st->k,
					      sqlite3_free);
		}
	}
	sqlite3_free(l);
}

int sqlfn_aggregate_register(sqlite3 *h)
{
	static const struct {
		const char *name;
		int argc;
		void (*step)(sqlite3_context *, int, sqlite3_value **);
		void (*final)(sqlite3_context *);
	} fns[] = {
		{"bv_bias", 2, bias_step, bias_final},
		{"bv_variance", 1, variance_step, variance_final},
		{"bv_loss", 2, loss_step, loss_final},
		{"bv_geomean", 1, geomean_step, geomean_final},
	};
	lsm_cache *c = sqlite3_malloc64(sizeof *c);
	if (!c)
		return SQLITE_NOMEM;
	memset(c, 0, sizeof *c);
	c->refs = 1; /* held by this function until the registrations take it over */
	const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
	int rc = SQLITE_OK;
	for (size_t i = 0; i < sizeof fns / sizeof fns[0] && rc == SQLITE_OK; i++) {
		c->refs++;
		/* on failure sqlite3_create_function_v2 calls cache_unref itself */
		rc = sqlite3_create_function_v2(h, fns[i].name, fns[i].argc, flags, c, NULL,
						fns[i].step, fns[i].final, cache_unref);
	}
	cache_unref(c);
	return rc;
}
