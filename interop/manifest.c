/*
 * interop/manifest.c: manifest.json (docs/import.md) read with jansson.
 * bv_manifest_parse checks every key the layout defines (type, range, the
 * lengths that must agree, one run per cell) and keeps the keys it does not
 * define as compact JSON text (extras), so that import can trust the struct it
 * gets; it opens none of the files the manifest names. Comparing and writing
 * are in manifest_write.c; the tables of keys and the helpers both use are
 * here (manifest_int.h).
 *
 * Every refusal is one line, "'<file>': <key path>: expected <what>, got
 * <value>", with the value shown short and printable (mf_show_text).
 */
#include "manifest_int.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"

const char *const bv_split_names[BV_N_SPLITS] = {"test", "train"};

/* A manifest is a few pages of text; a bigger file is not one, and jansson would
 * hold all of it, several times over, in memory. */
#define MAX_BYTES ((size_t)64 << 20)

/* The keys each object of the layout defines, in the order they are written;
 * any other key is an extra. A teacher refuses the run keys that are not its. */
const char *const mf_top_keys[] = {"format", "version", "dataset", "classes",
				   "labels", "teacher", "runs",    NULL};
const char *const mf_run_keys[] = {
	"method",	  "temperature", "alpha", "gamma",    "seed",	 "init",    "model",
	"epochs", "planned_epochs", "logits", "inbag", "test_acc", "metrics", "seconds", NULL};
const char *const mf_teacher_keys[] = {"model",   "epoch",   "logits", "test_acc",
				       "metrics", "seconds", NULL};
const char *const mf_metric_names[N_METRICS] = {
	"lr", "train_loss", "train_acc", "test_acc", "wsl_weight", "filtered", "seconds"};
#define METRICS_LIST "epoch, lr, train_loss, train_acc, test_acc, wsl_weight, filtered or seconds"

int mf_listed(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (strcmp(*list, s) == 0)
			return 1;
	return 0;
}

/* BV_SPLIT_TEST or BV_SPLIT_TRAIN by name, or -1 */
static int split_of(const char *name)
{
	for (int sp = 0; sp < BV_N_SPLITS; sp++)
		if (strcmp(bv_split_names[sp], name) == 0)
			return sp;
	return -1;
}

/* The metrics' columns in mf_metric_names' order. */
static double **metric_col(bv_mf_metrics *mt, int c)
{
	double **cols[N_METRICS] = {&mt->lr,	     &mt->train_loss, &mt->train_acc, &mt->test_acc,
				    &mt->wsl_weight, &mt->filtered,   &mt->seconds};
	return cols[c];
}

const double *mf_metric_col_c(const bv_mf_metrics *mt, int c)
{
	return *metric_col((bv_mf_metrics *)mt, c);
}

/* test_acc and train_acc are fractions 0..1, as the database keeps them */
static int metric_is_fraction(int c)
{
	return c == 2 || c == 3;
}

/* ---- showing values in messages ----------------------------------------- */

/* The code point of the UTF-8 sequence at s (n > 0 bytes left), its length in
 * *len; -1 (and *len 1) when it is not valid UTF-8: a stray or missing
 * continuation byte, an overlong form, a surrogate, beyond U+10FFFF (the
 * sequences jansson refuses too). */
long mf_utf8_next(const unsigned char *s, size_t n, int *len)
{
	int k;
	long c, min;
	*len = 1;
	if (s[0] < 0x80)
		return s[0];
	if ((s[0] & 0xe0) == 0xc0)
		k = 2, c = s[0] & 0x1f, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		k = 3, c = s[0] & 0x0f, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		k = 4, c = s[0] & 0x07, min = 0x10000;
	else
		return -1;
	if ((size_t)k > n)
		return -1;
	for (int i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*len = k;
	return c;
}

/* Characters a terminal shows as themselves: not the C0 and C1 controls, DEL,
 * the line and paragraph separators, the bidirectional overrides and isolates
 * (which reorder what follows them on the line), nor the byte order mark. */
static int printable(long c)
{
	return c >= 0x20 && c != 0x7f && !(c >= 0x80 && c < 0xa0) &&
	       !(c >= 0x2028 && c <= 0x202e) && !(c >= 0x2066 && c <= 0x2069) && c != 0xfeff;
}

/* s (n bytes) for a one-line message, into out: printable characters as they
 * are, any other character (or byte that is not UTF-8) as '?', cut after max
 * characters with "..." (max 0: no cut). */
const char *mf_show_text(char *out, size_t size, const char *s, size_t n, int max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	int chars = 0;
	for (size_t i = 0; i < n; chars++) {
		int len;
		long c = mf_utf8_next(p + i, n - i, &len);
		if ((max && chars == max) || o + (size_t)len + 4 > size) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0 && printable(c)) {
			memcpy(out + o, p + i, (size_t)len);
			o += (size_t)len;
		} else {
			out[o++] = '?';
		}
		i += (size_t)len;
	}
	out[o] = '\0';
	return out;
}

/* A JSON value as a message shows it: 3, 1.5, "text", true, null, a list of
 * 2, an object. */
static const char *got(char *out, size_t size, const json_t *v)
{
	char s[SHOW_MAX];
	switch (json_typeof(v)) {
	case JSON_STRING:
		mf_show_text(s, sizeof s, json_string_value(v), json_string_length(v), SHOW_CHARS);
		snprintf(out, size, "\"%s\"", s);
		break;
	case JSON_INTEGER:
		snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(out, size, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(out, size, "true");
		break;
	case JSON_FALSE:
		snprintf(out, size, "false");
		break;
	case JSON_NULL:
		snprintf(out, size, "null");
		break;
	case JSON_ARRAY:
		if (json_array_size(v) == 0)
			snprintf(out, size, "an empty list");
		else
			snprintf(out, size, "a list of %zu", json_array_size(v));
		break;
	case JSON_OBJECT:
		snprintf(out, size, json_object_size(v) ? "an object" : "an empty object");
		break;
	}
	return out;
}

/* ---- reading ------------------------------------------------------------ */

/* "<parent>.<name>" (name alone at the top level) into out (KEY_MAX). The
 * parts are bounded (a user's key is shown cut), so a key path fits; were it
 * ever longer it would be cut, which a message can bear. */
const char *mf_key(char *out, const char *parent, const char *name)
{
	if (snprintf(out, KEY_MAX, "%s%s%s", parent, *parent ? "." : "", name) >= KEY_MAX)
		out[KEY_MAX - 1] = '\0';
	return out;
}

const char *mf_key_at(char *out, const char *parent, size_t i)
{
	if (snprintf(out, KEY_MAX, "%s[%zu]", parent, i) >= KEY_MAX)
		out[KEY_MAX - 1] = '\0';
	return out;
}

/* "'<file>': <key>: expected <what>, got <v>", or "missing (expected <what>)"
 * when v is NULL: BV_EFORMAT. */
__attribute__((format(printf, 4, 5))) static int expected(const char *path, const char *k,
							  const json_t *v, const char *fmt, ...)
{
	char what[256], g[SHOW_MAX + 8];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (!v)
		return bv_error_set(BV_EFORMAT, "'%s': %s: missing (expected %s)", path, k, what);
	return bv_error_set(BV_EFORMAT, "'%s': %s: expected %s, got %s", path, k, what,
			    got(g, sizeof g, v));
}

static int no_memory(const char *path)
{
	return bv_error_set(BV_ENOMEM, "out of memory reading '%s'", path);
}

/* v is a whole number in lo..hi: a JSON integer, or a real without a fraction
 * (60.0, as some writers put an epoch). */
static int whole(const json_t *v, long long lo, long long hi, long long *out)
{
	if (json_is_integer(v)) {
		const long long x = json_integer_value(v);
		if (x < lo || x > hi)
			return 0;
		*out = x;
		return 1;
	}
	if (json_is_real(v)) {
		const double d = json_real_value(v);
		if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
			return 0;
		*out = (long long)d;
		return 1;
	}
	return 0;
}

static int whole_int(const json_t *v, long long lo, long long hi, int *out)
{
	long long x;
	if (!whole(v, lo, hi, &x))
		return 0;
	*out = (int)x;
	return 1;
}

/* v is a number in lo..hi (JSON has no infinity nor NaN; jansson refuses an
 * overflowing literal) */
static int number(const json_t *v, double lo, double hi, double *out)
{
	if (!json_is_number(v))
		return 0;
	const double d = json_number_value(v);
	if (!(d >= lo && d <= hi) || !isfinite(d))
		return 0;
	*out = d;
	return 1;
}

static int path_value(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 0;
}

static int dup_string(char **out, const json_t *v, const char *path)
{
	if (!(*out = strdup(json_string_value(v))))
		return no_memory(path);
	return 0;
}

/* The keys of o that are not in known (nor in also) as a compact JSON object,
 * in their order, into *out (left NULL when there are none). */
static int read_extras(char **out, json_t *o, const char *const *known, const char *const *also,
		       const char *path)
{
	json_t *x = NULL, *v;
	const char *k;
	json_object_foreach (o, k, v) {
		if (mf_listed(known, k) || mf_listed(also, k))
			continue;
		if ((!x && !(x = json_object())) || json_object_set(x, k, v) != 0) {
			json_decref(x);
			return no_memory(path);
		}
	}
	if (!x)
		return 0;
	*out = json_dumps(x, JSON_COMPACT | JSON_REAL_PRECISION(17));
	json_decref(x);
	return *out ? 0 : no_memory(path);
}

/* A list of epochs: whole numbers 0..BV_DB_MAX_EPOCH, strictly ascending, at
 * least one. */
static int read_epochs(int **out, int *n_out, const json_t *v, const char *path, const char *k)
{
	char ki[KEY_MAX];
	if (!json_is_array(v) || json_array_size(v) == 0)
		return expected(path, k, v,
				"a non-empty list of epochs (whole numbers 0..%d, ascending)",
				BV_DB_MAX_EPOCH);
	const size_t n = json_array_size(v);
	if (n > (size_t)BV_DB_MAX_EPOCH + 1) /* cannot be ascending */
		return expected(path, k, v, "at most %d epochs (0..%d)", BV_DB_MAX_EPOCH + 1,
				BV_DB_MAX_EPOCH);
	int *e = malloc(n * sizeof *e);
	if (!e)
		return no_memory(path);
	*out = e;
	*n_out = (int)n;
	for (size_t i = 0; i < n; i++) {
		const json_t *x = json_array_get(v, i);
		mf_key_at(ki, k, i);
		if (!whole_int(x, 0, BV_DB_MAX_EPOCH, &e[i]))
			return expected(path, ki, x, "a whole number 0..%d", BV_DB_MAX_EPOCH);
		if (i > 0 && e[i] <= e[i - 1])
			return expected(path, ki, x, "an epoch after %d (ascending, distinct)",
					e[i - 1]);
	}
	return 0;
}

/* "logits": {"test": ..., "train": ...}, at least one split. A run's split is
 * one path (one (E, N, K) file) or a list of n_epochs paths; the teacher's
 * (n_epochs 0) one path. */
static int read_logits(bv_mf_logits lg[BV_N_SPLITS], json_t *v, const char *path, const char *where,
		       int n_epochs)
{
	char k[KEY_MAX], ks[KEY_MAX], ki[KEY_MAX], s[SHOW_MAX];
	const char *name;
	json_t *x;
	int rc;
	mf_key(k, where, "logits");
	if (!json_is_object(v))
		return expected(path, k, v, "an object {\"test\": ..., \"train\": ...}");
	json_object_foreach (v, name, x) {
		if (split_of(name) < 0)
			return bv_error_set(
				BV_EFORMAT, "'%s': %s: unknown split (expected test or train)",
				path,
				mf_key(ks, k,
				       mf_show_text(s, sizeof s, name, strlen(name), SHOW_CHARS)));
	}
	if (json_object_size(v) == 0)
		return expected(path, k, v, "a test or train split");
	for (int sp = 0; sp < BV_N_SPLITS; sp++) {
		if (!(x = json_object_get(v, bv_split_names[sp])))
			continue;
		mf_key(ks, k, bv_split_names[sp]);
		size_t n;
		if (path_value(x))
			n = 1;
		else if (n_epochs > 0 && json_is_array(x) && json_array_size(x) == (size_t)n_epochs)
			n = (size_t)n_epochs;
		else if (n_epochs == 0)
			return expected(path, ks, x, "a path (one (N, K) file)");
		else
			return expected(path, ks, x,
					"a path or a list of %d path%s (one per epoch)", n_epochs,
					n_epochs == 1 ? "" : "s");
		if (!(lg[sp].paths = calloc(n, sizeof *lg[sp].paths)))
			return no_memory(path);
		lg[sp].n_paths = (int)n;
		for (size_t i = 0; i < n; i++) {
			const json_t *y = json_is_string(x) ? x : json_array_get(x, i);
			if (!path_value(y))
				return expected(path, mf_key_at(ki, ks, i), y, "a path");
			if ((rc = dup_string(&lg[sp].paths[i], y, path)) != 0)
				return rc;
		}
	}
	return 0;
}

/* "metrics": {"epoch": [...], "<metric>": [numbers or null], ...}, each list as
 * long as "epoch". Every column is allocated (NAN where null or absent). */
static int read_metrics(bv_mf_metrics *mt, json_t *v, const char *path, const char *where)
{
	char k[KEY_MAX], kc[KEY_MAX], ki[KEY_MAX], s[SHOW_MAX];
	const char *name;
	json_t *x;
	int rc, n;
	mf_key(k, where, "metrics");
	if (!json_is_object(v))
		return expected(path, k, v,
				"an object of lists {\"epoch\": [...], \"test_acc\": [...], ...}");
	json_object_foreach (v, name, x) {
		int known = strcmp(name, "epoch") == 0;
		for (int c = 0; c < N_METRICS && !known; c++)
			known = strcmp(name, mf_metric_names[c]) == 0;
		if (!known)
			return bv_error_set(
				BV_EFORMAT, "'%s': %s: unknown metric (expected %s)", path,
				mf_key(kc, k,
				       mf_show_text(s, sizeof s, name, strlen(name), SHOW_CHARS)),
				METRICS_LIST);
	}
	if ((rc = read_epochs(&mt->epoch, &n, json_object_get(v, "epoch"), path,
			      mf_key(kc, k, "epoch"))))
		return rc;
	for (int c = 0; c < N_METRICS; c++) {
		double *col = malloc((size_t)n * sizeof *col);
		if (!col)
			return no_memory(path);
		*metric_col(mt, c) = col;
		for (int i = 0; i < n; i++)
			col[i] = NAN;
	}
	mt->n = n;
	for (int c = 0; c < N_METRICS; c++) {
		double *col = *metric_col(mt, c);
		const int frac = metric_is_fraction(c);
		if (!(x = json_object_get(v, mf_metric_names[c])))
			continue;
		mf_key(kc, k, mf_metric_names[c]);
		if (!json_is_array(x) || json_array_size(x) != (size_t)n)
			return expected(
				path, kc, x,
				"a list of %d number%s or nulls (one per epoch of %s.epoch)", n,
				n == 1 ? "" : "s", k);
		for (int i = 0; i < n; i++) {
			const json_t *y = json_array_get(x, (size_t)i);
			if (json_is_null(y))
				continue;
			if (!number(y, frac ? 0 : -HUGE_VAL, frac ? 1 : HUGE_VAL, &col[i]))
				return expected(path, mf_key_at(ki, kc, (size_t)i), y, "%s or null",
						frac ? "a fraction 0..1" : "a number");
		}
	}
	return 0;
}

/* One run of "runs", or the teacher (teacher 1): r->where is set. */
static int read_run(bv_mf_run *r, json_t *o, const char *path, int teacher)
{
	char k[KEY_MAX], list[128], s[SHOW_MAX];
	const char *w = r->where;
	json_t *v;
	int rc;
	r->temperature = r->alpha = r->gamma = r->seconds = NAN;
	if (!json_is_object(o))
		return expected(path, w, o, "an object");
	bv_db_methods_text(list, sizeof list, bv_db_methods_mask(-1) & ~(1u << BV_RUN_TEACHER), "",
			   ", ", " or ");

	if (teacher) {
		for (const char *const *rk = mf_run_keys; *rk; rk++) {
			if (mf_listed(mf_teacher_keys, *rk) || !(v = json_object_get(o, *rk)))
				continue;
			if (strcmp(*rk, "inbag") == 0)
				return expected(
					path, mf_key(k, w, *rk), v,
					"none (the teacher trains on the whole training set)");
			return expected(
				path, mf_key(k, w, *rk), v,
				"none (a run's key; the teacher's are model, epoch, logits, "
				"test_acc, metrics and seconds)");
		}
		r->method = BV_RUN_TEACHER;
		r->seed = 0;
		r->init = 1;
	} else {
		v = json_object_get(o, "method");
		mf_key(k, w, "method");
		if (!json_is_string(v))
			return expected(path, k, v, "a method (%s)", list);
		const char *name = json_string_value(v);
		if (bv_db_method_parse(&r->method, name) != 0)
			return bv_error_set(
				BV_EFORMAT,
				"'%s': %s: unknown method '%s' (expected %s; the database "
				"has no other methods yet)",
				path, k, mf_show_text(s, sizeof s, name, strlen(name), SHOW_CHARS),
				list);
		if (r->method == BV_RUN_TEACHER)
			return bv_error_set(BV_EFORMAT,
					    "'%s': %s: 'teacher' is not a run's method; use the "
					    "top-level 'teacher' key",
					    path, k);

		v = json_object_get(o, "temperature");
		mf_key(k, w, "temperature");
		if (bv_db_method_soft(r->method)) {
			if (!number(v, 0, HUGE_VAL, &r->temperature) || !(r->temperature > 0))
				return expected(path, k, v,
						"a number > 0 (%s learns from the teacher at a "
						"temperature)",
						bv_db_method_name(r->method));
		} else if (v) {
			return expected(path, k, v,
					"none for %s (it does not learn from the teacher)",
					bv_db_method_name(r->method));
		}
		if ((v = json_object_get(o, "alpha")) && !number(v, -HUGE_VAL, HUGE_VAL, &r->alpha))
			return expected(path, mf_key(k, w, "alpha"), v, "a number");
		if ((v = json_object_get(o, "gamma")) && !number(v, -HUGE_VAL, HUGE_VAL, &r->gamma))
			return expected(path, mf_key(k, w, "gamma"), v, "a number");
		v = json_object_get(o, "seed");
		if (!whole_int(v, 1, INT_MAX, &r->seed))
			return expected(path, mf_key(k, w, "seed"), v, "a whole number 1..%d",
					INT_MAX);
		r->init = 1;
		if ((v = json_object_get(o, "init")) && !whole_int(v, 1, 64, &r->init))
			return expected(path, mf_key(k, w, "init"), v, "a whole number 1..64");
	}

	if ((v = json_object_get(o, "model"))) {
		if (!json_is_string(v))
			return expected(path, mf_key(k, w, "model"), v, "a string");
		if ((rc = dup_string(&r->model, v, path)))
			return rc;
	}

	if (teacher) {
		int epoch = 0;
		v = json_object_get(o, "epoch");
		if (v && !whole_int(v, 0, BV_DB_MAX_EPOCH, &epoch))
			return expected(path, mf_key(k, w, "epoch"), v, "a whole number 0..%d",
					BV_DB_MAX_EPOCH);
		if (!(r->epochs = malloc(sizeof *r->epochs)))
			return no_memory(path);
		r->epochs[0] = epoch;
		r->n_epochs = 1;
		r->planned_epochs = epoch;
	} else {
		if ((rc = read_epochs(&r->epochs, &r->n_epochs, json_object_get(o, "epochs"), path,
				      mf_key(k, w, "epochs"))))
			return rc;
		const int last = r->epochs[r->n_epochs - 1];
		r->planned_epochs = last;
		v = json_object_get(o, "planned_epochs");
		if (v && !whole_int(v, last, BV_DB_MAX_EPOCH, &r->planned_epochs))
			return expected(path, mf_key(k, w, "planned_epochs"), v,
					"a whole number %d..%d (at least the last epoch)", last,
					BV_DB_MAX_EPOCH);
	}

	if ((rc = read_logits(r->logits, json_object_get(o, "logits"), path, w,
			      teacher ? 0 : r->n_epochs)))
		return rc;

	if (!teacher && (v = json_object_get(o, "inbag"))) {
		if (!path_value(v))
			return expected(path, mf_key(k, w, "inbag"), v, "a path");
		if ((rc = dup_string(&r->inbag, v, path)))
			return rc;
	}

	if ((v = json_object_get(o, "test_acc"))) {
		mf_key(k, w, "test_acc");
		if (!(r->test_acc = malloc((size_t)r->n_epochs * sizeof *r->test_acc)))
			return no_memory(path);
		if (teacher) {
			if (!number(v, 0, 100, &r->test_acc[0]))
				return expected(path, k, v, "a number 0..100 (percent)");
		} else {
			char ki[KEY_MAX];
			if (!json_is_array(v) || json_array_size(v) != (size_t)r->n_epochs)
				return expected(
					path, k, v,
					"a list of %d number%s 0..100 (percent, one per epoch)",
					r->n_epochs, r->n_epochs == 1 ? "" : "s");
			for (int i = 0; i < r->n_epochs; i++) {
				const json_t *x = json_array_get(v, (size_t)i);
				if (!number(x, 0, 100, &r->test_acc[i]))
					return expected(path, mf_key_at(ki, k, (size_t)i), x,
							"a number 0..100 (percent)");
			}
		}
	}

	if ((v = json_object_get(o, "metrics")) && (rc = read_metrics(&r->metrics, v, path, w)))
		return rc;
	if ((v = json_object_get(o, "seconds")) && !number(v, 0, HUGE_VAL, &r->seconds))
		return expected(path, mf_key(k, w, "seconds"), v, "a number >= 0");

	return read_extras(&r->extras, o, teacher ? mf_teacher_keys : mf_run_keys,
			   teacher ? mf_run_keys : NULL, path);
}

/* One run per (method, temperature, seed, init): the runs sorted by their cell, then
 * by position, so that each cell's first run comes first. */
typedef struct cell {
	int method, seed, init;
	double temperature; /* NAN for ce */
	int i;
} cell;

static int cell_cmp3(const cell *a, const cell *b)
{
	if (a->method != b->method)
		return a->method < b->method ? -1 : 1;
	if (a->temperature < b->temperature)
		return -1;
	if (a->temperature > b->temperature)
		return 1;
	if (a->seed != b->seed)
		return a->seed < b->seed ? -1 : 1;
	if (a->init != b->init)
		return a->init < b->init ? -1 : 1;
	return 0;
}

static int cell_cmp(const void *pa, const void *pb)
{
	const cell *a = pa, *b = pb;
	const int c = cell_cmp3(a, b);
	return c ? c : (a->i > b->i) - (a->i < b->i);
}

static int check_cells(const bv_manifest *m, const char *path)
{
	if (m->n_runs < 2)
		return 0;
	cell *c = malloc((size_t)m->n_runs * sizeof *c);
	if (!c)
		return no_memory(path);
	for (int i = 0; i < m->n_runs; i++)
		c[i] = (cell){(int)m->runs[i].method, m->runs[i].seed, m->runs[i].init,
			      m->runs[i].temperature, i};
	qsort(c, (size_t)m->n_runs, sizeof *c, cell_cmp);
	/* the earliest run that repeats a cell, and the cell's first run */
	int first = -1, again = -1;
	for (int j = 1; j < m->n_runs; j++)
		if (cell_cmp3(&c[j - 1], &c[j]) == 0 &&
		    (j < 2 || cell_cmp3(&c[j - 2], &c[j]) != 0) && (again < 0 || c[j].i < again))
			first = c[j - 1].i, again = c[j].i;
	free(c);
	if (again < 0)
		return 0;
	const bv_mf_run *r = &m->runs[again];
	char t[48] = "";
	if (bv_db_method_soft(r->method))
		snprintf(t, sizeof t, " T=%g", r->temperature);
	char init[24] = "";
	if (r->init > 1)
		snprintf(init, sizeof init, " init %d", r->init);
	return bv_error_set(BV_EFORMAT, "'%s': runs[%d] repeats the cell %s%s seed %d%s of runs[%d]",
			    path, again, bv_db_method_name(r->method), t, r->seed, init, first);
}

static int read_top(bv_manifest *m, json_t *root, const char *path)
{
	char k[KEY_MAX], s[SHOW_MAX];
	const char *name;
	json_t *v, *x;
	int rc;
	if (!json_is_object(root)) {
		char g[SHOW_MAX + 8];
		return bv_error_set(BV_EFORMAT, "'%s': expected an object at the top level, got %s",
				    path, got(g, sizeof g, root));
	}
	v = json_object_get(root, "format");
	if (!json_is_string(v) || strcmp(json_string_value(v), BV_MANIFEST_FORMAT) != 0)
		return expected(path, "format", v, "\"%s\"", BV_MANIFEST_FORMAT);
	v = json_object_get(root, "version");
	if (json_is_number(v) && json_number_value(v) > BV_MANIFEST_VERSION &&
	    json_number_value(v) == floor(json_number_value(v))) {
		char g[SHOW_MAX + 8];
		return bv_error_set(
			BV_EFORMAT,
			"'%s': version %s is newer than this bvtool reads (%d); upgrade bvtool",
			path, got(g, sizeof g, v), BV_MANIFEST_VERSION);
	}
	long long version;
	if (!whole(v, BV_MANIFEST_VERSION, BV_MANIFEST_VERSION, &version))
		return expected(path, "version", v, "%d (the version this bvtool reads)",
				BV_MANIFEST_VERSION);
	v = json_object_get(root, "dataset");
	if (!path_value(v))
		return expected(path, "dataset", v, "a non-empty string");
	if ((rc = dup_string(&m->dataset, v, path)))
		return rc;
	v = json_object_get(root, "classes");
	if (!whole_int(v, 1, BV_MANIFEST_MAX_CLASSES, &m->classes))
		return expected(path, "classes", v, "a whole number 1..%d",
				BV_MANIFEST_MAX_CLASSES);

	v = json_object_get(root, "labels");
	if (!json_is_object(v))
		return expected(path, "labels", v, "an object {\"test\": path, \"train\": path}");
	json_object_foreach (v, name, x) {
		if (split_of(name) < 0)
			return bv_error_set(
				BV_EFORMAT, "'%s': %s: unknown split (expected test or train)",
				path,
				mf_key(k, "labels",
				       mf_show_text(s, sizeof s, name, strlen(name), SHOW_CHARS)));
	}
	for (int sp = 0; sp < BV_N_SPLITS; sp++) {
		x = json_object_get(v, bv_split_names[sp]);
		if (!x && sp == BV_SPLIT_TRAIN)
			continue;
		if (!path_value(x))
			return expected(path, mf_key(k, "labels", bv_split_names[sp]), x, "a path");
		if ((rc = dup_string(&m->labels[sp], x, path)))
			return rc;
	}

	if ((v = json_object_get(root, "teacher"))) {
		m->has_teacher = 1;
		snprintf(m->teacher.where, sizeof m->teacher.where, "teacher");
		if ((rc = read_run(&m->teacher, v, path, 1)))
			return rc;
	}

	v = json_object_get(root, "runs");
	if (!json_is_array(v))
		return expected(path, "runs", v, "a list of runs");
	const size_t n = json_array_size(v);
	if (n > INT_MAX)
		return expected(path, "runs", v, "at most %d runs", INT_MAX);
	if (!(m->runs = calloc(n ? n : 1, sizeof *m->runs)))
		return no_memory(path);
	m->n_runs = (int)n;
	for (size_t i = 0; i < n; i++) {
		bv_mf_run *r = &m->runs[i];
		snprintf(r->where, sizeof r->where, "runs[%zu]", i);
		if ((rc = read_run(r, json_array_get(v, i), path, 0)))
			return rc;
	}
	if ((rc = check_cells(m, path)))
		return rc;
	return read_extras(&m->extras, root, mf_top_keys, NULL, path);
}

/* jansson's refusal: a line and a column, its text made printable */
static int not_json(const char *path, const json_error_t *err)
{
	char s[SHOW_MAX];
	mf_show_text(s, sizeof s, err->text, strlen(err->text), 0);
	switch (json_error_code(err)) {
	case json_error_out_of_memory:
		return no_memory(path);
	case json_error_duplicate_key:
		return bv_error_set(
			BV_EFORMAT,
			"'%s': line %d, column %d: %s (a key may appear once in an object)", path,
			err->line, err->column, s);
	default:
		return bv_error_set(BV_EFORMAT, "'%s': not JSON: line %d, column %d: %s", path,
				    err->line, err->column, s);
	}
}

int bv_manifest_parse(bv_manifest *m, const char *text, size_t len, const char *path,
		      const char *dir)
{
	int rc;
	memset(m, 0, sizeof *m);
	if (!path)
		path = BV_MANIFEST_NAME;
	if (!dir)
		dir = "";
	if (strlen(path) >= sizeof m->path)
		return bv_error_set(BV_EINVAL,
				    "manifest path '%.40s...' too long (%zu bytes at most)", path,
				    sizeof m->path - 1);
	if (strlen(dir) >= sizeof m->dir)
		return bv_error_set(BV_EINVAL, "directory '%.40s...' too long (%zu bytes at most)",
				    dir, sizeof m->dir - 1);
	if (len > MAX_BYTES)
		return bv_error_set(BV_EFORMAT,
				    "'%s': %zu bytes, more than a manifest may have (%zu MB)", path,
				    len, MAX_BYTES >> 20);
	snprintf(m->path, sizeof m->path, "%s", path);
	snprintf(m->dir, sizeof m->dir, "%s", dir);

	json_error_t err;
	/* any top-level value, so that a list or a number is named as such */
	json_t *root = json_loadb(text ? text : "", text ? len : 0,
				  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (!root) {
		memset(m, 0, sizeof *m);
		return not_json(path, &err);
	}
	rc = read_top(m, root, path);
	json_decref(root);
	if (rc)
		bv_manifest_free(m);
	return rc;
}

int bv_manifest_read(bv_manifest *m, const char *dir)
{
	char path[sizeof m->path];
	unsigned char *text = NULL;
	size_t size, len;
	int fd, rc;
	memset(m, 0, sizeof *m);
	if (strlen(dir) >= sizeof m->dir)
		return bv_error_set(BV_EINVAL, "directory '%.40s...' too long (%zu bytes at most)",
				    dir, sizeof m->dir - 1);
	const size_t n = strlen(dir);
	snprintf(path, sizeof path, "%s%s%s", dir, n && dir[n - 1] != '/' ? "/" : "",
		 BV_MANIFEST_NAME);
	/* the size first, so that a huge file is refused before it is read */
	if ((rc = bv_open_input(&fd, &size, path)))
		return rc;
	close(fd);
	if (size > MAX_BYTES)
		return bv_error_set(BV_EFORMAT,
				    "'%s': %zu bytes, more than a manifest may have (%zu MB)", path,
				    size, MAX_BYTES >> 20);
	if ((rc = bv_read_file(&text, &len, path)))
		return rc;
	rc = bv_manifest_parse(m, (const char *)text, len, path, dir);
	free(text);
	return rc;
}

static void free_run(bv_mf_run *r)
{
	free(r->model);
	free(r->epochs);
	for (int sp = 0; sp < BV_N_SPLITS; sp++) {
		for (int i = 0; r->logits[sp].paths && i < r->logits[sp].n_paths; i++)
			free(r->logits[sp].paths[i]);
		free(r->logits[sp].paths);
	}
	free(r->inbag);
	free(r->test_acc);
	free(r->metrics.epoch);
	for (int c = 0; c < N_METRICS; c++)
		free(*metric_col(&r->metrics, c));
	free(r->extras);
	memset(r, 0, sizeof *r);
}

void bv_manifest_free(bv_manifest *m)
{
	if (!m)
		return;
	free(m->dataset);
	for (int sp = 0; sp < BV_N_SPLITS; sp++)
		free(m->labels[sp]);
	free_run(&m->teacher);
	for (int i = 0; m->runs && i < m->n_runs; i++)
		free_run(&m->runs[i]);
	free(m->runs);
	free(m->extras);
	memset(m, 0, sizeof *m);
}

int bv_manifest_file(char *out, size_t size, const bv_manifest *m, const char *path)
{
	const size_t n = strlen(m->dir);
	int len;
	if (path[0] == '/' || n == 0)
		len = snprintf(out, size, "%s", path);
	else
		len = snprintf(out, size, "%s%s%s", m->dir, m->dir[n - 1] == '/' ? "" : "/", path);
	if (len < 0 || (size_t)len >= size) {
		char s[SHOW_MAX];
		if (size)
			out[0] = '\0';
		return bv_error_set(BV_EINVAL, "'%s': path '%s' is too long (%zu bytes at most)",
				    m->path,
				    mf_show_text(s, sizeof s, path, strlen(path), SHOW_CHARS),
				    size ? size - 1 : 0);
	}
	return 0;
}
