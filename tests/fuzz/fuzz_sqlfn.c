/*
 * fuzz_sqlfn: the SQL functions of sqlfn/ (bv_sqlfn_register) on an
 * in-memory database, called with the input's values through bound
 * parameters, and the bv_predictions virtual table over snapshots and
 * samples tables built from the input.
 *
 * The input: an 8-byte header (h[0] the blobs' misalignment and binding,
 * h[1] the aggregates' group size, h[2] their labels, h[3] the number of
 * snapshots, h[4..7] the samples and the vtab queries' values), then 6 bytes
 * per snapshot, then up to MAX_ARGS argument chunks, each a tag byte and its
 * payload: a raw BLOB of any length, a BLOB of floats from a table of
 * specials (NaN, the infinities, FLT_MAX, subnormals, -0), a BLOB of over
 * SQLFN_SMALL floats, an INTEGER (8 or 1 bytes), a REAL (8 bytes), TEXT, NULL.
 *
 * Every function is prepared with 0 to 4 arguments and, where it exists at
 * that count, called on rotating windows of the chunks; the aggregates also
 * run over a table of the chunks in groups (K and label changing inside a
 * group included), and bv_predictions is queried with constraints on every
 * column it takes, ORDER BY and GROUP BY sample_idx.
 *
 * Properties checked (a failure aborts, so libFuzzer keeps the input):
 *  - every error has a non-empty one-line message, and a function's own
 *    error starts with its name;
 *  - a scalar fails exactly when an argument is wrong (a logits argument not
 *    a BLOB of 4k bytes, K differing, a class index that is not an integer,
 *    a temperature not finite > 0), and is NULL when the class is NULL or out
 *    of range; bv_nclasses(z) = len / 4; bv_logit(z, c) = z[c]; bv_argmax is
 *    the first largest non-NaN logit; probabilities in [0, 1], log-softmax
 *    <= 0, CE, entropy and soft CE >= 0, the WSL weight in [0, 1];
 *  - bv_logits(bv_logits_json(z)) = z, byte for byte, for finite z (NaN where
 *    z is not finite);
 *  - for a group whose three results are finite:
 *    |loss - bias - variance| <= 1e-9 (1 + |loss|), and loss = avg(bv_ce)
 *    within the same tolerance; bv_geomean's probabilities sum to 1 (1e-4);
 *  - bv_predictions: a constraint it takes gives the count SQLite's own
 *    filtering gives (the same predicate written +col, which is not offered
 *    to the table); an ORDER BY it consumes holds; GROUP BY sample_idx in one
 *    (split, epoch) gives each sample once, in order.
 */
#include "fuzz_common.h"

#include <float.h>
#include <math.h>
#include <sqlite3.h>

#include "sqlfn.h"

#define MAX_ARGS 12
#define SMALL_FLOATS 1024 /* SQLFN_SMALL: longer logits are copied to the heap when unaligned */
#define TOL 1e-9

typedef struct arg {
	int type; /* SQLITE_BLOB, _INTEGER, _FLOAT, _TEXT, _NULL, as SQLite sees it */
	sqlite3_int64 i;
	double d;
	const unsigned char *p; /* BLOB or TEXT bytes, in the arena */
	int len;
} arg;

static struct {
	sqlite3 *db;
	int stat; /* bind BLOBs and TEXT as SQLITE_STATIC (SQLite passes the arena's pointer) */
	arg a[MAX_ARGS];
	int n;
	unsigned char *arena;
	size_t used, cap;
	int ticks; /* the progress handler's, reset before each statement */
} F;

/* ---- the input ---------------------------------------------------------- */

typedef struct reader {
	const uint8_t *p;
	size_t n, at;
} reader;

static int rd_byte(reader *r)
{
	return r->at < r->n ? r->p[r->at++] : 0;
}

static int rd_left(const reader *r)
{
	return r->at < r->n;
}

static const float specials[24] = {
	0.0f,	       -0.0f,	     1.0f,	   -1.0f,	   NAN,		      INFINITY,
	-INFINITY,     FLT_MAX,	     -FLT_MAX,	   FLT_MIN,	   -FLT_MIN,	      1e-45f,
	-1.17549435e-38f, 1e30f,     -1e30f,	   88.7f,	   -103.9f,	      -1.23456791e-10f,
	-9.87654328e+20f, 3.14159274f, -2.71828175f, 1e-7f,	   -5.96046448e-08f, 16777216.0f,
};

static float float_of(int b)
{
	return b < 24 ? specials[b] : (float)(b - 140) / 8.0f;
}

/* n bytes of the arena, aligned to 4 plus mis (0..3) */
static unsigned char *arena_get(size_t n, int mis)
{
	size_t at = (F.used + 15) / 16 * 16 + (size_t)mis;
	if (at + n > F.cap)
		return NULL;
	F.used = at + n;
	return F.arena + at;
}

static void parse_args(reader *r, int mis)
{
	F.n = 0;
	while (rd_left(r) && F.n < MAX_ARGS) {
		arg *a = &F.a[F.n];
		int tag = rd_byte(r), len;
		memset(a, 0, sizeof *a);
		unsigned char *p;
		switch (tag % 8) {
		case 0: /* a raw BLOB */
		case 5: /* TEXT */
			len = rd_byte(r);
			if (len > (int)(r->n - r->at))
				len = (int)(r->n - r->at);
			p = arena_get((size_t)len, tag % 8 == 0 ? mis : 0);
			if (!p)
				return;
			memcpy(p, r->p + r->at, (size_t)len);
			r->at += (size_t)len;
			a->type = tag % 8 == 0 ? SQLITE_BLOB : SQLITE_TEXT;
			a->p = p;
			a->len = len;
			break;
		case 1: /* floats of the table */
		case 7: { /* over SMALL_FLOATS of them, the pattern repeated */
			int k = rd_byte(r), big = tag % 8 == 7;
			int pat = big ? 1 + rd_byte(r) % 16 : k;
			if (big)
				k = SMALL_FLOATS - 8 + k * 4;
			p = arena_get((size_t)k * 4, mis);
			if (!p)
				return;
			float v[256];
			for (int j = 0; j < pat; j++)
				v[j] = float_of(rd_byte(r));
			for (int j = 0; j < k; j++)
				memcpy(p + 4 * j, &v[j % (pat ? pat : 1)], 4);
			a->type = SQLITE_BLOB;
			a->p = p;
			a->len = 4 * k;
			break;
		}
		case 2: /* an INTEGER, 8 bytes */
			for (int j = 0; j < 8; j++)
				a->i |= (sqlite3_int64)((uint64_t)rd_byte(r) << (8 * j));
			a->type = SQLITE_INTEGER;
			break;
		case 3: { /* a REAL, 8 bytes (NaN is bound as NULL) */
			uint64_t u = 0;
			for (int j = 0; j < 8; j++)
				u |= (uint64_t)rd_byte(r) << (8 * j);
			memcpy(&a->d, &u, 8);
			a->type = isnan(a->d) ? SQLITE_NULL : SQLITE_FLOAT;
			break;
		}
		case 4: /* a small INTEGER */
			a->i = (int8_t)rd_byte(r);
			a->type = SQLITE_INTEGER;
			break;
		case 6:
			a->type = SQLITE_NULL;
			break;
		}
		F.n++;
	}
}

static void bind_arg(sqlite3_stmt *st, int pos, const arg *a)
{
	sqlite3_destructor_type how = F.stat ? SQLITE_STATIC : SQLITE_TRANSIENT;
	switch (a->type) {
	case SQLITE_BLOB:
		sqlite3_bind_blob(st, pos, a->len ? (const void *)a->p : "", a->len, how);
		break;
	case SQLITE_TEXT:
		sqlite3_bind_text(st, pos, (const char *)a->p, a->len, how);
		break;
	case SQLITE_INTEGER:
		sqlite3_bind_int64(st, pos, a->i);
		break;
	case SQLITE_FLOAT:
		sqlite3_bind_double(st, pos, a->d);
		break;
	default:
		sqlite3_bind_null(st, pos);
	}
}

/* ---- checks ------------------------------------------------------------- */

/* An argument in a message: its type and value. */
static const char *describe(char *out, size_t cap, const arg *a)
{
	switch (a->type) {
	case SQLITE_BLOB:
		snprintf(out, cap, "a BLOB of %d bytes", a->len);
		break;
	case SQLITE_TEXT:
		snprintf(out, cap, "TEXT '%.*s'", a->len < 40 ? a->len : 40, (const char *)a->p);
		break;
	case SQLITE_INTEGER:
		snprintf(out, cap, "INTEGER %lld", (long long)a->i);
		break;
	case SQLITE_FLOAT:
		snprintf(out, cap, "REAL %.17g", a->d);
		break;
	default:
		snprintf(out, cap, "NULL");
	}
	return out;
}

static void check_msg(const char *what)
{
	const char *msg = sqlite3_errmsg(F.db);
	if (!msg || !msg[0] || strchr(msg, '\n'))
		fz_fail("an error without a one-line message", what);
}

/* Steps st to its end (at most max_rows rows, each given to row()): the
 * result code, the error message checked. */
static int run(sqlite3_stmt *st, const char *what, int max_rows,
	       void (*row)(sqlite3_stmt *, void *), void *ctx)
{
	int rc, rows = 0;
	F.ticks = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && rows++ < max_rows)
		if (row)
			row(st, ctx);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		check_msg(what);
	return rc;
}

static sqlite3_stmt *prepare(const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(F.db, sql, -1, &st, NULL) != SQLITE_OK) {
		check_msg(sql);
		return NULL;
	}
	return st;
}

/* The statements of the queries run many times per input, prepared once
 * (the cost of an input is mostly SQLite's parser otherwise): reset and
 * unbound for the caller, who does not finalize them. */
#define N_CACHED 64
static struct {
	char *sql;
	sqlite3_stmt *st;
} cache[N_CACHED];

static sqlite3_stmt *cached(const char *sql)
{
	int c = 0;
	for (; c < N_CACHED && cache[c].sql; c++)
		if (strcmp(cache[c].sql, sql) == 0) {
			sqlite3_reset(cache[c].st);
			sqlite3_clear_bindings(cache[c].st);
			return cache[c].st;
		}
	if (c == N_CACHED)
		fz_fail("the harness's statement cache is full", sql);
	sqlite3_stmt *st = prepare(sql);
	if (st) {
		cache[c].sql = strdup(sql);
		cache[c].st = st;
	}
	return st;
}

static void cache_clear(void)
{
	for (int c = 0; c < N_CACHED && cache[c].sql; c++) {
		sqlite3_finalize(cache[c].st);
		free(cache[c].sql);
		cache[c].sql = NULL;
	}
}

static void exec(const char *sql)
{
	char *err = NULL;
	F.ticks = 0;
	if (sqlite3_exec(F.db, sql, NULL, NULL, &err) != SQLITE_OK) {
		dprintf(2, "fuzz: %s: %s\n", sql, err ? err : "?");
		fz_fail("the harness's own SQL failed", sql);
	}
}

/* ---- the scalars, and the aggregates over one row ----------------------- */

/* An argument's role: L logits, C class index, T temperature, J JSON text,
 * A anything (the aggregates' label is C too). */
typedef struct fn_spec {
	const char *name;
	const char *roles[5]; /* by argument count 0..4: NULL when not registered */
	int empty_ok;	      /* an empty BLOB is 0 classes, not an error */
	int same_k;	      /* the two logits arguments must have one K */
} fn_spec;

static const fn_spec fns[] = {
	{"bv_nclasses", {NULL, "L"}, 1, 0},
	{"bv_argmax", {NULL, "L"}, 0, 0},
	{"bv_logit", {NULL, NULL, "LC"}, 0, 0},
	{"bv_softmax", {NULL, NULL, "LC", "LCT"}, 0, 0},
	{"bv_log_softmax", {NULL, NULL, "LC", "LCT"}, 0, 0},
	{"bv_ce", {NULL, NULL, "LC", "LCT"}, 0, 0},
	{"bv_entropy", {NULL, "L", "LT"}, 0, 0},
	{"bv_kl", {NULL, NULL, "LL", "LLT"}, 0, 1},
	{"bv_soft_ce", {NULL, NULL, "LL", "LLT"}, 0, 1},
	{"bv_wsl_weight", {NULL, NULL, NULL, "LLC"}, 0, 1},
	{"bv_logits_json", {NULL, "L"}, 1, 0},
	{"bv_logits", {NULL, "J"}, 0, 0},
	{"bv_bias", {NULL, NULL, "LC"}, 0, 0},
	{"bv_variance", {NULL, "L"}, 0, 0},
	{"bv_loss", {NULL, NULL, "LC"}, 0, 0},
	{"bv_geomean", {NULL, "L"}, 0, 0},
};

static int logits_ok(const arg *a, int empty_ok)
{
	return a->type == SQLITE_BLOB && a->len % 4 == 0 && (a->len > 0 || empty_ok);
}

/* class_get's rule: -2 an error, -1 a NULL result, else the class */
static int class_of(const arg *a, int k)
{
	sqlite3_int64 i;
	if (a->type == SQLITE_NULL)
		return -1;
	if (a->type == SQLITE_INTEGER) {
		i = a->i;
	} else if (a->type == SQLITE_FLOAT && a->d == floor(a->d)) {
		/* a whole REAL: out of range (1e300, inf) is a NULL result */
		if (a->d < 0 || a->d >= k)
			return -1;
		i = (sqlite3_int64)a->d;
	} else {
		return -2;
	}
	return i < 0 || i >= k ? -1 : (int)i;
}

static int temp_ok(const arg *a)
{
	double t = a->type == SQLITE_INTEGER ? (double)a->i : a->d;
	return (a->type == SQLITE_INTEGER || a->type == SQLITE_FLOAT) && t > 0 && isfinite(t);
}

static float logit_at(const arg *a, int c)
{
	float f;
	memcpy(&f, a->p + 4 * c, 4);
	return f;
}

static void check_roundtrip(const arg *z, const unsigned char *json, int len)
{
	if (len < 2 || json[0] != '[' || json[len - 1] != ']' || (int)strlen((const char *)json) != len)
		fz_fail("bv_logits_json: not a bracketed array", (const char *)json);
	sqlite3_stmt *st = cached("SELECT bv_logits(?1)");
	if (!st)
		fz_fail("bv_logits: cannot prepare", NULL);
	sqlite3_bind_text(st, 1, (const char *)json, len, SQLITE_TRANSIENT);
	F.ticks = 0;
	if (sqlite3_step(st) != SQLITE_ROW) {
		check_msg("bv_logits");
		fz_fail("bv_logits does not read bv_logits_json's text", sqlite3_errmsg(F.db));
	}
	const unsigned char *b = sqlite3_column_blob(st, 0);
	int n = sqlite3_column_bytes(st, 0);
	if (sqlite3_column_type(st, 0) != SQLITE_BLOB || n != z->len)
		fz_fail("bv_logits(bv_logits_json(z)) has another length than z", (const char *)json);
	for (int c = 0; c < n / 4; c++) {
		float x = logit_at(z, c), y;
		memcpy(&y, b + 4 * c, 4);
		if (isfinite(x) ? memcmp(&x, &y, 4) != 0 : !isnan(y)) {
			dprintf(2, "fuzz: element %d: %.9g became %.9g\n", c, (double)x, (double)y);
			fz_fail("bv_logits(bv_logits_json(z)) != z", (const char *)json);
		}
	}
	sqlite3_reset(st);
}

/* One call of spec f with the arguments av (roles r), stepped and checked. */
static void call_one(sqlite3_stmt *st, const fn_spec *f, const char *r, const arg *const *av,
		     int argc)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (int p = 0; p < argc; p++)
		bind_arg(st, p + 1, av[p]);
	/* what the call must do: fail, give NULL, or a value */
	int bad = 0, null = 0, k = -1, cls = -1;
	for (int p = 0; p < argc; p++) {
		const arg *a = av[p];
		switch (r[p]) {
		case 'L':
			if (!logits_ok(a, f->empty_ok))
				bad = 1;
			else if (k < 0)
				k = a->len / 4;
			else if (f->same_k && k != a->len / 4)
				bad = 1;
			break;
		case 'T':
			bad |= !temp_ok(a);
			break;
		case 'J':
			bad |= a->type != SQLITE_TEXT;
			break;
		}
	}
	for (int p = 0; p < argc && !bad; p++)
		if (r[p] == 'C') {
			cls = class_of(av[p], k);
			bad = cls == -2;
			null = cls == -1;
		}
	int json = strcmp(f->name, "bv_logits") == 0;
	F.ticks = 0;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		check_msg(f->name);
		const char *msg = sqlite3_errmsg(F.db);
		size_t nl = strlen(f->name);
		if (strncmp(msg, f->name, nl) != 0 || msg[nl] != ':') {
			/* SQLite's own word for memory, or another function's */
			if (strcmp(msg, "out of memory") != 0)
				fz_fail("an error that does not start with the function's name", msg);
		}
		if (!bad && !json && rc != SQLITE_INTERRUPT) {
			dprintf(2, "fuzz: %s: %s\n", f->name, msg);
			fz_fail("a call with good arguments failed", f->name);
		}
		return;
	}
	if (bad)
		fz_fail("a call with a wrong argument did not fail", f->name);
	int type = sqlite3_column_type(st, 0);
	double v = sqlite3_column_double(st, 0);
	if (null && type != SQLITE_NULL)
		fz_fail("a class out of range or NULL did not give NULL", f->name);
	if (json || type == SQLITE_NULL)
		return;
	const arg *z = av[0];
	char detail[160];
	snprintf(detail, sizeof detail, "%s = %.17g", f->name, v);
	if (strcmp(f->name, "bv_nclasses") == 0) {
		if (type != SQLITE_INTEGER || sqlite3_column_int64(st, 0) != z->len / 4)
			fz_fail("bv_nclasses(z) != len / 4", detail);
	} else if (strcmp(f->name, "bv_argmax") == 0) {
		int best = -1;
		for (int c = 0; c < k; c++)
			if (!isnan(logit_at(z, c)) && (best < 0 || logit_at(z, c) > logit_at(z, best)))
				best = c;
		if (type != SQLITE_INTEGER || sqlite3_column_int64(st, 0) != best)
			fz_fail("bv_argmax is not the first largest logit", detail);
	} else if (strcmp(f->name, "bv_logit") == 0) {
		if (v != (double)logit_at(z, cls))
			fz_fail("bv_logit(z, c) != z[c]", detail);
	} else if (strcmp(f->name, "bv_softmax") == 0) {
		if (!(v >= 0 && v <= 1))
			fz_fail("a probability outside [0, 1]", detail);
	} else if (strcmp(f->name, "bv_log_softmax") == 0) {
		if (!(v <= 0))
			fz_fail("a log-probability > 0", detail);
	} else if (strcmp(f->name, "bv_ce") == 0 || strcmp(f->name, "bv_entropy") == 0 ||
		   strcmp(f->name, "bv_soft_ce") == 0) {
		if (!(v >= 0))
			fz_fail("a cross-entropy or entropy < 0", detail);
	} else if (strcmp(f->name, "bv_wsl_weight") == 0) {
		if (!(v >= 0 && v <= 1))
			fz_fail("a WSL weight outside [0, 1]", detail);
	} else if (strcmp(f->name, "bv_logits_json") == 0) {
		if (type != SQLITE_TEXT)
			fz_fail("bv_logits_json did not give TEXT", NULL);
		char *text = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
		int n = sqlite3_column_bytes(st, 0);
		sqlite3_reset(st); /* the next statement may reuse the arena's pointer */
		check_roundtrip(z, (const unsigned char *)text, n);
		sqlite3_free(text);
	}
}

static void call_scalars(void)
{
	static const char *const qs[5] = {"SELECT %s()", "SELECT %s(?1)", "SELECT %s(?1, ?2)",
					  "SELECT %s(?1, ?2, ?3)", "SELECT %s(?1, ?2, ?3, ?4)"};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		const fn_spec *f = &fns[i];
		for (int argc = 0; argc <= 4; argc++) {
			char sql[96];
			snprintf(sql, sizeof sql, qs[argc], f->name);
			sqlite3_stmt *st = NULL;
			int rc = sqlite3_prepare_v2(F.db, sql, -1, &st, NULL);
			if (!f->roles[argc]) {
				if (rc == SQLITE_OK)
					fz_fail("an argument count that is not registered prepared", sql);
				check_msg(sql);
				continue;
			}
			if (rc != SQLITE_OK) {
				check_msg(sql);
				fz_fail("a registered function did not prepare", sql);
			}
			/* rotating windows of the chunks, and all pairs when few */
			const arg *av[4];
			int n = F.n;
			for (int t = 0; t < n; t++) {
				for (int p = 0; p < argc; p++)
					av[p] = &F.a[(t + p) % n];
				call_one(st, f, f->roles[argc], av, argc);
			}
			if (argc >= 2 && n <= 6)
				for (int t = 0; t < n * n; t++) {
					for (int p = 0; p < argc; p++)
						av[p] = &F.a[p == 0 ? t % n : p == 1 ? t / n : (t + p) % n];
					call_one(st, f, f->roles[argc], av, argc);
				}
			sqlite3_finalize(st);
		}
	}
}

/* ---- the aggregates over groups of rows --------------------------------- */

static void agg_row(sqlite3_stmt *st, void *ctx)
{
	(void)ctx;
	int all = 1;
	double b = sqlite3_column_double(st, 1), v = sqlite3_column_double(st, 2),
	       l = sqlite3_column_double(st, 3);
	for (int c = 1; c <= 3; c++)
		all &= sqlite3_column_type(st, c) == SQLITE_FLOAT;
	if (all && isfinite(b) && isfinite(v) && isfinite(l)) {
		double diff = fabs(l - b - v);
		if (diff > TOL * (1 + fabs(l))) {
			char d[160];
			snprintf(d, sizeof d, "loss %.17g bias %.17g variance %.17g: diff %.3g", l, b, v, diff);
			fz_fail("loss != bias + variance", d);
		}
		if (sqlite3_column_type(st, 5) == SQLITE_FLOAT) {
			/* bv_ce's z_c - (m + log sum) keeps only the ulps of the
			 * largest logit m (column 6: |m|, the largest over the group's
			 * rows): 1e21 absorbs log K whole */
			double ce = sqlite3_column_double(st, 5), m = sqlite3_column_double(st, 6);
			diff = fabs(l - ce);
			if (isfinite(ce) && diff > TOL * (1 + fabs(l)) + 8 * DBL_EPSILON * m) {
				char d[160];
				snprintf(d, sizeof d, "loss %.17g avg ce %.17g: diff %.3g", l, ce, diff);
				fz_fail("bv_loss != avg(bv_ce)", d);
			}
		}
	}
	if (sqlite3_column_type(st, 4) == SQLITE_BLOB) {
		const unsigned char *q = sqlite3_column_blob(st, 4);
		int n = sqlite3_column_bytes(st, 4), fin = 1;
		double s = 0;
		for (int c = 0; c < n / 4; c++) {
			float f;
			memcpy(&f, q + 4 * c, 4);
			fin &= isfinite(f) || f == -INFINITY;
			s += exp((double)f);
		}
		if (n % 4 != 0)
			fz_fail("bv_geomean gave a BLOB of a length not a multiple of 4", NULL);
		if (fin && all && isfinite(v) && fabs(s - 1) > 1e-4) {
			char d[96];
			snprintf(d, sizeof d, "sum of exp = %.17g: diff %.3g", s, fabs(s - 1));
			fz_fail("bv_geomean's probabilities do not sum to 1", d);
		}
	}
}

static void run_aggregates(const uint8_t *h)
{
	exec("DROP TABLE IF EXISTS temp.g; CREATE TEMP TABLE g(grp, z, y)");
	sqlite3_stmt *ins = prepare("INSERT INTO temp.g VALUES (?1, ?2, ?3)");
	if (!ins)
		fz_fail("cannot prepare the insert", NULL);
	int size = h[1] & 7, mode = h[2] >> 6;
	for (int r = 0; r < F.n; r++) {
		sqlite3_reset(ins);
		sqlite3_bind_int(ins, 1, size ? r / size : 0);
		bind_arg(ins, 2, &F.a[r]);
		if (mode == 1)
			sqlite3_bind_null(ins, 3);
		else if (mode == 2)
			bind_arg(ins, 3, &F.a[(r + 1) % F.n]);
		else
			sqlite3_bind_int(ins, 3, (h[2] & 15) + (mode == 3 && (r & 1)));
		if (sqlite3_step(ins) != SQLITE_DONE)
			fz_fail("cannot insert a row", sqlite3_errmsg(F.db));
	}
	sqlite3_finalize(ins);
	static const char *const qs[] = {
		"SELECT grp, bv_bias(z, y), bv_variance(z), bv_loss(z, y), bv_geomean(z), "
		"avg(bv_ce(z, y)), max(abs(bv_logit(z, bv_argmax(z)))) FROM temp.g GROUP BY grp",
		"SELECT grp, bv_bias(z, y), bv_variance(z), bv_loss(z, y), bv_geomean(z), NULL "
		"FROM temp.g GROUP BY grp",
		"SELECT grp, bv_bias(z, y) FROM temp.g GROUP BY grp",
		"SELECT grp, bv_variance(z) FROM temp.g GROUP BY grp",
		"SELECT grp, bv_loss(z, y) FROM temp.g GROUP BY grp",
		"SELECT grp, bv_geomean(z) FROM temp.g GROUP BY grp",
		"SELECT bv_bias(z, y), bv_loss(z, y) FROM temp.g WHERE 0",
		"SELECT bv_variance(z) OVER (PARTITION BY grp) FROM temp.g",
	};
	for (size_t q = 0; q < sizeof qs / sizeof qs[0]; q++) {
		sqlite3_stmt *st = prepare(qs[q]);
		if (!st)
			continue;
		run(st, qs[q], 1000, q < 2 ? agg_row : NULL, NULL);
		sqlite3_finalize(st);
	}
}

/* ---- bv_predictions ----------------------------------------------------- */

static const char *const split_names[] = {"test", "train", "val", "", "test ", "aaaaaaaaaaaaaaaaaaaab"};

/* Replaces the main schema's snapshots and samples with the input's. */
static void build_tables(reader *r, const uint8_t *h, int mis)
{
	(void)mis;
	exec("DROP TABLE IF EXISTS main.snapshots; DROP TABLE IF EXISTS main.samples");
	/* typed as bvtool makes them (affinity) or untyped (any value stays) */
	if (h[0] & 0x10)
		exec("CREATE TABLE main.snapshots(run_id, epoch, split, n, k, logits, "
		     "UNIQUE(run_id, epoch, split));"
		     "CREATE TABLE main.samples(split, sample_idx, label)");
	else
		exec("CREATE TABLE main.snapshots(run_id INTEGER, epoch INTEGER, split TEXT, "
		     "n INTEGER, k INTEGER, logits BLOB, UNIQUE(run_id, epoch, split));"
		     "CREATE TABLE main.samples(split TEXT, sample_idx INTEGER, label INTEGER)");
	int n_snaps = h[3] & 7;
	uint8_t d[8][6];
	for (int s = 0; s < n_snaps; s++)
		for (int j = 0; j < 6; j++)
			d[s][j] = (uint8_t)rd_byte(r);
	F.used = 0;
	parse_args(r, mis);
	sqlite3_stmt *ins = prepare("INSERT INTO main.snapshots VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
	if (!ins)
		fz_fail("cannot prepare the insert", NULL);
	for (int s = 0; s < n_snaps; s++) {
		const uint8_t *e = d[s];
		int n = e[3] & 7, k = 1 + ((e[3] >> 3) & 3), how = e[4] & 7;
		sqlite3_reset(ins);
		sqlite3_clear_bindings(ins);
		/* run_id and epoch small integers, or a chunk's value (REAL, TEXT...) */
		if ((e[0] & 0xc0) == 0xc0 && F.n)
			bind_arg(ins, 1, &F.a[e[0] % F.n]);
		else
			sqlite3_bind_int(ins, 1, e[0] & 3);
		if ((e[1] & 0xc0) == 0xc0 && F.n)
			bind_arg(ins, 2, &F.a[e[1] % F.n]);
		else if ((e[1] & 0xc0) == 0x80)
			sqlite3_bind_double(ins, 2, (e[1] & 3) + 0.5);
		else
			sqlite3_bind_int(ins, 2, e[1] & 3);
		if ((e[2] & 0xc0) == 0xc0 && F.n)
			bind_arg(ins, 3, &F.a[e[2] % F.n]);
		else if ((e[2] & 0xc0) == 0x80)
			sqlite3_bind_int(ins, 3, e[2] & 15);
		else
			sqlite3_bind_text(ins, 3, split_names[(e[2] & 63) % 6], -1, SQLITE_STATIC);
		/* n and k as said, or a chunk's (negative, huge, TEXT) */
		if (how == 5 && F.n)
			bind_arg(ins, 4, &F.a[e[5] % F.n]);
		else
			sqlite3_bind_int(ins, 4, n);
		if (how == 6 && F.n)
			bind_arg(ins, 5, &F.a[e[5] % F.n]);
		else
			sqlite3_bind_int(ins, 5, k);
		/* logits: n x k floats of the table, one float more or less, a chunk */
		int cnt = n * k + (how == 1) - (how == 2 && n * k > 0);
		if (how == 3 && F.n) {
			bind_arg(ins, 6, &F.a[e[5] % F.n]);
		} else if (how == 4) {
			sqlite3_bind_null(ins, 6);
		} else {
			float v[40];
			for (int j = 0; j < cnt; j++)
				v[j] = float_of((e[5] + 37 * j + 11 * s) & 0xff);
			sqlite3_bind_blob(ins, 6, cnt ? (const void *)v : "", 4 * cnt, SQLITE_TRANSIENT);
		}
		/* a (run_id, epoch, split) taken (bvtool's key): not inserted */
		if (sqlite3_step(ins) != SQLITE_DONE && sqlite3_errcode(F.db) != SQLITE_CONSTRAINT)
			fz_fail("cannot insert a snapshot", sqlite3_errmsg(F.db));
	}
	sqlite3_finalize(ins);
	/* samples: test and train 0..n-1 with labels, some missing, some odd */
	ins = prepare("INSERT INTO main.samples VALUES (?1, ?2, ?3)");
	if (!ins)
		fz_fail("cannot prepare the insert", NULL);
	for (int sp = 0; sp < 2; sp++) {
		int n = h[4 + sp] & 15, miss = h[6], odd = h[7];
		for (int i = 0; i < n; i++) {
			if ((miss >> (i & 7)) & 1)
				continue;
			sqlite3_reset(ins);
			sqlite3_bind_text(ins, 1, split_names[sp], -1, SQLITE_STATIC);
			sqlite3_bind_int(ins, 2, i);
			sqlite3_bind_int(ins, 3, (i * 7 + sp) % 5);
			if ((odd & 0x80) && F.n && (odd & 7) == i % 8)
				bind_arg(ins, (odd >> 3) & 1 ? 2 : 3, &F.a[(odd >> 4) % F.n]);
			if (sqlite3_step(ins) != SQLITE_DONE)
				fz_fail("cannot insert a sample", sqlite3_errmsg(F.db));
		}
	}
	sqlite3_finalize(ins);
}

/* a count(*) query with ?1 (and ?2) bound: -1 when it failed */
static sqlite3_int64 count_of(const char *sql, const arg *a, const arg *b)
{
	sqlite3_stmt *st = cached(sql);
	sqlite3_int64 n = -1;
	F.ticks = 0;
	if (!st)
		fz_fail("a count query did not prepare", sql);
	if (a)
		bind_arg(st, 1, a);
	if (b)
		bind_arg(st, 2, b);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		check_msg(sql);
	sqlite3_reset(st);
	return n;
}

typedef struct order_ctx {
	const int *cols; /* the ORDER BY, column indices of the result */
	int n_cols;
	sqlite3_value *prev[6];
	int rows;
	const char *sql;
} order_ctx;

/* SQLite's order of two values (BINARY collation) */
static int value_cmp(sqlite3_value *a, sqlite3_value *b)
{
	sqlite3_stmt *st = cached("SELECT CASE WHEN ?1 < ?2 THEN -1 WHEN ?1 > ?2 THEN 1 ELSE 0 END");
	sqlite3_bind_value(st, 1, a);
	sqlite3_bind_value(st, 2, b);
	int c = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_reset(st);
	return c;
}

static void order_row(sqlite3_stmt *st, void *p)
{
	order_ctx *o = p;
	int y = sqlite3_column_type(st, 5);
	if (y != SQLITE_NULL && (y != SQLITE_INTEGER || sqlite3_column_int64(st, 5) < 0))
		fz_fail("bv_predictions gave a label that is not a class", o->sql);
	if (sqlite3_column_type(st, 4) != SQLITE_BLOB)
		fz_fail("bv_predictions gave logits that are not a BLOB", o->sql);
	if (o->rows++ > 0) {
		for (int t = 0; t < o->n_cols; t++) {
			int c = value_cmp(o->prev[o->cols[t]], sqlite3_column_value(st, o->cols[t]));
			if (c < 0)
				break;
			if (c > 0) {
				dprintf(2, "fuzz: row %d, column %d\n", o->rows, o->cols[t]);
				fz_fail("bv_predictions broke the ORDER BY it took", o->sql);
			}
		}
	}
	for (int c = 0; c < 6; c++) {
		sqlite3_value_free(o->prev[c]);
		o->prev[c] = sqlite3_value_dup(sqlite3_column_value(st, c));
	}
}

static void group_row(sqlite3_stmt *st, void *p)
{
	order_ctx *o = p;
	sqlite3_int64 i = sqlite3_column_int64(st, 0);
	if (o->rows++ > 0 && i <= sqlite3_value_int64(o->prev[0]))
		fz_fail("GROUP BY sample_idx gave a sample twice or out of order", o->sql);
	sqlite3_value_free(o->prev[0]);
	o->prev[0] = sqlite3_value_dup(sqlite3_column_value(st, 0));
	agg_row(st, NULL);
}

static void ordered(const char *sql, const int *cols, int n_cols, const arg *a, const arg *b,
		    void (*row)(sqlite3_stmt *, void *))
{
	order_ctx o = {cols, n_cols, {NULL}, 0, sql};
	sqlite3_stmt *st = prepare(sql);
	if (!st)
		fz_fail("a bv_predictions query did not prepare", sql);
	if (a)
		bind_arg(st, 1, a);
	if (b)
		bind_arg(st, 2, b);
	run(st, sql, 5000, row, &o);
	sqlite3_finalize(st);
	for (int c = 0; c < 6; c++)
		sqlite3_value_free(o.prev[c]);
}

static void query_predictions(const uint8_t *h)
{
	/* each constraint the table takes, against SQLite's own filtering (+col) */
	static const char *const pairs[][2] = {
		{"run_id = ?1", "CAST(run_id AS INTEGER) = ?1"},
		{"epoch = ?1", "CAST(epoch AS INTEGER) = ?1"},
		{"split = ?1", "CAST(split AS TEXT) = ?1"},
		{"sample_idx = ?1", "CAST(sample_idx AS INTEGER) = ?1"},
		{"sample_idx < ?1", "CAST(sample_idx AS INTEGER) < ?1"},
		{"sample_idx <= ?1", "CAST(sample_idx AS INTEGER) <= ?1"},
		{"sample_idx > ?1", "CAST(sample_idx AS INTEGER) > ?1"},
		{"sample_idx >= ?1", "CAST(sample_idx AS INTEGER) >= ?1"},
		{"run_id IN (?1, ?2)", "CAST(run_id AS INTEGER) IN (?1, ?2)"},
		{"epoch IN (?1, ?2)", "CAST(epoch AS INTEGER) IN (?1, ?2)"},
		{"split IN (?1, ?2, 'test')", "CAST(split AS TEXT) IN (?1, ?2, 'test')"},
		{"split = 'test' AND epoch = ?1 AND sample_idx >= ?2",
		 "CAST(split AS TEXT) = 'test' AND CAST(epoch AS INTEGER) = ?1 AND "
		 "CAST(sample_idx AS INTEGER) >= ?2"},
		{"sample_idx > ?1 AND sample_idx < ?2",
		 "CAST(sample_idx AS INTEGER) > ?1 AND CAST(sample_idx AS INTEGER) < ?2"},
	};
	const int n = F.n;
	sqlite3_int64 all = count_of("SELECT count(*) FROM bv_predictions", NULL, NULL);
	for (size_t q = 0; q < sizeof pairs / sizeof pairs[0]; q++) {
		char sql[2][200];
		for (int v = 0; v < 2; v++)
			snprintf(sql[v], sizeof sql[v], "SELECT count(*) FROM bv_predictions WHERE %s",
				 pairs[q][v]);
		/* the values: the chunks, and small integers */
		const int n_vals = n < 4 ? n : 4;
		for (int t = 0; t < n_vals + 2; t++) {
			arg small[2] = {{SQLITE_INTEGER, t, 0, NULL, 0}, {SQLITE_INTEGER, h[4] & 7, 0, NULL, 0}};
			const arg *a = t < n_vals ? &F.a[(t + h[6]) % n] : &small[t - n_vals];
			const arg *b = n ? &F.a[(t + 1) % n] : &small[1];
			sqlite3_int64 got = count_of(sql[0], a, b), want = count_of(sql[1], a, b);
			if (got >= 0 && want >= 0 && got != want) {
				char d[400], da[100], db[100];
				snprintf(d, sizeof d, "%s with %s, %s: %lld rows, %lld by SQLite's filtering",
					 sql[0], describe(da, sizeof da, a), describe(db, sizeof db, b),
					 (long long)got, (long long)want);
				fz_fail("bv_predictions took a constraint wrongly", d);
			}
			if (got >= 0 && all >= 0 && got > all)
				fz_fail("a constrained query gave more rows than the whole table", sql[0]);
		}
	}
	/* the orders it may consume */
	static const int nat[] = {0, 1, 2, 3}, by_s[] = {2, 1, 3, 0}, samp[] = {3};
	ordered("SELECT * FROM bv_predictions ORDER BY run_id, epoch, split, sample_idx", nat, 4,
		NULL, NULL, order_row);
	ordered("SELECT * FROM bv_predictions ORDER BY split, epoch, sample_idx, run_id", by_s, 4,
		NULL, NULL, order_row);
	arg e = {SQLITE_INTEGER, h[5] & 3, 0, NULL, 0};
	ordered("SELECT * FROM bv_predictions WHERE split = 'test' AND epoch = ?1 ORDER BY sample_idx",
		samp, 1, n ? &F.a[0] : &e, NULL, order_row);
	ordered("SELECT * FROM bv_predictions WHERE split = ?2 AND epoch = ?1 ORDER BY sample_idx, run_id",
		(const int[]){3, 0}, 2, &e, n ? &F.a[n - 1] : NULL, order_row);
	ordered("SELECT * FROM bv_predictions WHERE run_id = ?1 ORDER BY epoch, split, sample_idx",
		(const int[]){1, 2, 3}, 3, &e, NULL, order_row);
	ordered("SELECT * FROM bv_predictions WHERE run_id IN (0, 1, 2, 3) AND epoch = ?1 "
		"AND split = 'test' ORDER BY sample_idx, run_id",
		(const int[]){3, 0}, 2, &e, NULL, order_row);
	/* GROUP BY sample_idx with the aggregates, in one (split, epoch) */
	static const char *const grouped[] = {
		"SELECT sample_idx, bv_bias(logits, label), bv_variance(logits), bv_loss(logits, label), "
		"bv_geomean(logits), avg(bv_ce(logits, label)), "
		"max(abs(bv_logit(logits, bv_argmax(logits)))) FROM bv_predictions "
		"WHERE split = 'test' AND epoch = ?1 GROUP BY sample_idx",
		"SELECT sample_idx, bv_bias(logits, label), bv_variance(logits), bv_loss(logits, label), "
		"bv_geomean(logits), NULL FROM bv_predictions "
		"WHERE split = 'train' AND epoch = ?1 AND sample_idx < 5 GROUP BY sample_idx",
		"SELECT sample_idx, bv_bias(logits, label), bv_variance(logits), bv_loss(logits, label), "
		"bv_geomean(logits), NULL FROM bv_predictions WHERE epoch = ?1 AND split = ?2 "
		"AND run_id IN (0, 1, 3) GROUP BY sample_idx",
	};
	for (size_t q = 0; q < sizeof grouped / sizeof grouped[0]; q++)
		ordered(grouped[q], NULL, 0, &e, n ? &F.a[q % n] : NULL, group_row);
	/* not a table-valued function; no CREATE VIRTUAL TABLE */
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(F.db, "SELECT * FROM bv_predictions(1)", -1, &st, NULL) == SQLITE_OK)
		run(st, "bv_predictions(1)", 10, NULL, NULL);
	else
		check_msg("bv_predictions(1)");
	sqlite3_finalize(st);
	if (sqlite3_exec(F.db, "CREATE VIRTUAL TABLE temp.p USING bv_predictions", NULL, NULL, NULL) !=
	    SQLITE_OK)
		check_msg("CREATE VIRTUAL TABLE");
}

/* ---- the entry point ---------------------------------------------------- */

static int stop_long(void *ctx)
{
	(void)ctx;
	return ++F.ticks > 20000; /* 2e7 virtual machine steps in one statement */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8 || size > 16384)
		return 0;
	static int configured;
	if (!configured) {
		/* one thread, no memory statistics: SQLite's mallocs through ASan
		 * are most of an input's time */
		sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
		configured = 1;
		/* the arena once (a fresh megabyte per input is page faults) */
		F.cap = 1u << 20;
		F.arena = malloc(F.cap);
	}
	const uint8_t *h = data;
	reader r = {data, size, 8};
	if (!F.arena || sqlite3_open(":memory:", &F.db) != SQLITE_OK)
		abort();
	sqlite3_progress_handler(F.db, 1000, stop_long, NULL);
	if (bv_sqlfn_register(F.db) != SQLITE_OK)
		fz_fail("bv_sqlfn_register failed", sqlite3_errmsg(F.db));
	F.stat = (h[0] >> 2) & 1;
	int mis = h[0] & 3;
	F.used = 0;

	/* the bv_predictions tables' descriptions come first, then the chunks
	 * (shared by the tables and the calls) */
	build_tables(&r, h, mis);
	call_scalars();
	if (F.n)
		run_aggregates(h);
	query_predictions(h);

	cache_clear();
	sqlite3_close(F.db);
	F.db = NULL;
	return 0;
}
