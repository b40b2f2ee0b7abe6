/*
 * bvtool report: the "WSL training results" table of the paper for one
 * database — teacher accuracy; each method's test accuracy (mean ± std over
 * seeds) at the last and at the best epoch; paired per-seed differences
 * WSL − KD and KD − CE with 95% t intervals; regularization-sample counts per
 * temperature; the correlation table — printed as Markdown, CSV (long format:
 * one value per row) or JSON. Everything is read through SQL on the documented
 * tables and views, so each number can be re-derived by a user.
 *
 * The report is built in memory (a bv_buf), so that `report --out` can write
 * it atomically; the JSON one as a jansson tree, dumped into the bv_buf at the
 * end (issue 12). A database is untrusted: every string from it is escaped for
 * the format (jansson, malformed UTF-8 replaced first; RFC 4180 quoting for
 * CSV; a Markdown cell keeps its table), every value's type is checked before
 * it is read, and a NaN or Inf prints as JSON null.
 */
#include "analysis.h"

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 256
#define MAX_SEEDS 1024

typedef struct acc_group {
	bv_run_method method;
	double T;                  /* NAN for ce / teacher */
	int n;                     /* runs: seeds, or seeds x inits */
	int64_t seeds[MAX_SEEDS];  /* seed << 32 | init: the pairing key */
	double last[MAX_SEEDS];    /* per seed: final test accuracy */
	double best[MAX_SEEDS];    /* per seed: best test accuracy over epochs */
} acc_group;

typedef struct report {
	int n_groups;
	acc_group *groups;
} report;

static int same_T(double a, double b)
{
	return isnan(a) ? isnan(b) : a == b;
}

static acc_group *group_of(report *r, bv_run_method method, double T)
{
	for (int i = 0; i < r->n_groups; i++)
		if (r->groups[i].method == method && same_T(r->groups[i].T, T))
			return &r->groups[i];
	if (r->n_groups >= MAX_GROUPS)
		return NULL;
	acc_group *g = &r->groups[r->n_groups++];
	memset(g, 0, sizeof *g);
	g->method = method;
	g->T = T;
	return g;
}

static int load_accuracy(report *r, bv_db *db)
{
	sqlite3_stmt *st = NULL;
	char sql[1024];
	size_t len = (size_t)snprintf(sql, sizeof sql,
				      "SELECT method, temperature, seed, final_acc, best_acc, "
				      "run_id, init FROM run_accuracy WHERE status = ?1 "
				      "ORDER BY CASE method");
	/* the methods in the table's order (teacher, ce, kd, ...), then T and seed */
	for (int m = 0; m < BV_RUN_N_METHODS && len < sizeof sql; m++)
		len += (size_t)snprintf(sql + len, sizeof sql - len, " WHEN '%s' THEN %d",
					bv_db_method_name((bv_run_method)m), m);
	if (len < sizeof sql)
		snprintf(sql + len, sizeof sql - len, " END, temperature, seed, init");
	int rc;
	/* method, status, seed, temperature and final_acc are checked here; best_acc
	 * is a max over metrics rows, checked like them */
	if ((rc = bv_db_check_runs(db)) != 0 || (rc = bv_db_prepare(db, &st, sql)) != 0)
		return rc;
	sqlite3_bind_text(st, 1, bv_db_status_name(BV_RUN_DONE), -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bv_run_method m = BV_RUN_N_METHODS;
		/* checked above */
		bv_db_method_parse(&m, (const char *)sqlite3_column_text(st, 0));
		double T = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
		const int bt = sqlite3_column_type(st, 4);
		const double best = sqlite3_column_double(st, 4);
		acc_group *g = group_of(r, m, T);
		if (!g || g->n >= MAX_SEEDS) {
			sqlite3_finalize(st);
			return bv_error_set(BV_EFORMAT, "'%s' holds more than %d %s, more than report reads",
					    bv_db_path(db), g ? MAX_SEEDS : MAX_GROUPS,
					    g ? "seeds of one method and temperature" : "(method, temperature) groups");
		}
		if (bt != SQLITE_NULL && !((bt == SQLITE_INTEGER || bt == SQLITE_FLOAT) && best >= 0 && best <= 1)) {
			rc = bv_error_set(BV_EFORMAT,
					  "'%s': run %lld has a test_acc in metrics that is not a number 0..1 "
					  "(the database is damaged)",
					  bv_db_path(db), (long long)sqlite3_column_int64(st, 5));
			sqlite3_finalize(st);
			return rc;
		}
		g->seeds[g->n] = (int64_t)sqlite3_column_int(st, 2) << 32 | sqlite3_column_int(st, 6);
		g->last[g->n] = sqlite3_column_double(st, 3);
		g->best[g->n] = bt == SQLITE_NULL ? g->last[g->n] : best;
		g->n++;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : bv_db_error(db);
}

/* Per-run differences a - b over the (seed, init) both groups have. */
static int paired(double *d, const acc_group *a, const acc_group *b)
{
	int n = 0;
	for (int i = 0; i < a->n; i++)
		for (int j = 0; j < b->n; j++)
			if (a->seeds[i] == b->seeds[j])
				d[n++] = 100.0 * (a->last[i] - b->last[j]);
	return n;
}

/* ---- output helpers ------------------------------------------------------- */

typedef enum { FMT_MD, FMT_CSV, FMT_JSON } fmt;

static void bprintf(bv_buf *b, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(bv_buf *b, const char *format, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, format);
	const int n = vsnprintf(small, sizeof small, format, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof small) {
		bv_buf_append(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		b->failed = 1;
		return;
	}
	va_start(ap, format);
	vsnprintf(big, (size_t)n + 1, format, ap);
	va_end(ap);
	bv_buf_append(b, big, (size_t)n);
	free(big);
}

static void bputs(bv_buf *b, const char *s)
{
	bv_buf_append(b, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 when the bytes
 * there are not one (a stray continuation byte, an overlong form, a surrogate,
 * a code point above U+10FFFF, a sequence cut short). */
static int utf8_len(const unsigned char *s)
{
	const unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	int n;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0; /* overlong below U+0800 */
	else if (c == 0xed)
		hi = 0x9f; /* U+D800..U+DFFF, surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong below U+10000 */
	else if (c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* s as a jansson string. json_string refuses malformed UTF-8, and a
 * database's text may be anything: each byte that is not part of well-formed
 * UTF-8 becomes U+FFFD (EF BF BD), so that the report is valid JSON whatever
 * the database holds. NULL when out of memory, or when s is NULL (what
 * sqlite3_column_text returns when it runs out of memory). */
static json_t *jstr(const char *s)
{
	if (!s)
		return NULL;
	const unsigned char *p = (const unsigned char *)s;
	size_t len = 0, n_bad = 0;
	while (p[len]) {
		const int n = utf8_len(p + len);
		n_bad += n == 0;
		len += n ? (size_t)n : 1;
	}
	if (n_bad == 0)
		return json_stringn(s, len);
	char *clean = malloc(len + 2 * n_bad); /* each bad byte: 1 -> 3 bytes */
	if (!clean)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		const int n = utf8_len(p + i);
		if (n == 0) {
			memcpy(clean + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(clean + o, p + i, (size_t)n);
			o += (size_t)n;
			i += (size_t)n;
		}
	}
	json_t *j = json_stringn(clean, o);
	free(clean);
	return j;
}

/* a JSON number; NaN and Inf, which JSON lacks (and json_real refuses), as null */
static json_t *jnum(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* json_dump_callback's sink: the report's buffer */
static int jdump(const char *text, size_t size, void *data)
{
	bv_buf *b = data;
	bv_buf_append(b, text, size);
	return b->failed ? -1 : 0;
}

/* a CSV field (RFC 4180): quoted, its quotes doubled, when it holds a comma,
 * a quote or a line break */
static void csv_field(bv_buf *b, const char *s)
{
	if (!s[strcspn(s, ",\"\r\n")]) {
		bputs(b, s);
		return;
	}
	bv_buf_append(b, "\"", 1);
	for (; *s; s++) {
		bv_buf_append(b, s, 1);
		if (*s == '"')
			bv_buf_append(b, s, 1);
	}
	bv_buf_append(b, "\"", 1);
}

/* Markdown text in a table cell or a line: '|' escaped, a line break or other
 * control character as a space, so that the text cannot end or add a row */
static void md_text(bv_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			bputs(b, "\\|");
		else if ((unsigned char)*s < 0x20 || *s == 0x7f)
			bputs(b, " ");
		else
			bv_buf_append(b, s, 1);
	}
}

/* a REAL column: NULL as NaN */
static double column_num(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static void temp_text(char *out, size_t size, double T)
{
	if (isnan(T))
		snprintf(out, size, "-");
	else
		snprintf(out, size, "%g", T);
}

/* CSV long format: table,method,temperature,quantity,value */
static void csv_row(bv_buf *b, const char *table, const char *method, double T, const char *q,
		    double v)
{
	csv_field(b, table);
	bputs(b, ",");
	csv_field(b, method);
	bputs(b, ",");
	if (!isnan(T))
		bprintf(b, "%g", T);
	bputs(b, ",");
	csv_field(b, q);
	bputs(b, ",");
	if (!isnan(v))
		bprintf(b, "%.10g", v);
	bputs(b, "\n");
}

/* A row named by its first n_key columns, "kd, test, 3" */
static void row_key(char *out, size_t size, sqlite3_stmt *st, int n_key)
{
	size_t len = 0;
	out[0] = '\0';
	for (int k = 0; k < n_key && len < size; k++) {
		char v[80];
		bv_db_safe_text(v, sizeof v, sqlite3_column_text(st, k));
		len += (size_t)snprintf(out + len, size - len, "%s%s", k ? ", " : "", v);
	}
}

/* The columns of a row are of the kinds given, one letter each: 't' text, 'i'
 * a whole number in int range, 'n' a number or NULL, 'N' a number. Else
 * BV_EFORMAT naming the table, the row by its first n_key columns, and the
 * column. Call before any sqlite3_column_* conversion of the row. */
static int check_row(bv_db *db, sqlite3_stmt *st, const char *table, const char *kinds, int n_key)
{
	static const char *const expected[128] = {
		['t'] = "text", ['i'] = "a whole number", ['n'] = "a number or NULL", ['N'] = "a number",
	};
	for (int i = 0; kinds[i]; i++) {
		const int t = sqlite3_column_type(st, i);
		int ok = 0;
		switch (kinds[i]) {
		case 't':
			ok = t == SQLITE_TEXT;
			break;
		case 'i':
			ok = t == SQLITE_INTEGER && sqlite3_column_int64(st, i) >= -2147483647 &&
			     sqlite3_column_int64(st, i) <= 2147483647;
			break;
		case 'n':
			ok = t == SQLITE_INTEGER || t == SQLITE_FLOAT || t == SQLITE_NULL;
			break;
		case 'N':
			ok = t == SQLITE_INTEGER || t == SQLITE_FLOAT;
			break;
		}
		if (ok)
			continue;
		char key[256], val[80];
		row_key(key, sizeof key, st, n_key);
		if (t == SQLITE_NULL) {
			snprintf(val, sizeof val, "NULL");
		} else {
			char v[72];
			bv_db_safe_text(v, sizeof v, sqlite3_column_text(st, i));
			snprintf(val, sizeof val, t == SQLITE_TEXT || t == SQLITE_BLOB ? "'%s'" : "%s", v);
		}
		return bv_error_set(BV_EFORMAT, "'%s': %s row (%s): %s is %s, expected %s (the database is damaged)",
				    bv_db_path(db), table, key, sqlite3_column_name(st, i), val,
				    expected[(unsigned char)kinds[i]]);
	}
	return 0;
}

/* The split of a row (column 0 or 1, after check_row) is test, train or oob. */
static int check_split(bv_db *db, sqlite3_stmt *st, const char *table, int n_key)
{
	const int i = strcmp(table, "correlations") == 0 ? 1 : 0;
	const char *split = (const char *)sqlite3_column_text(st, i);
	if (strcmp(split, "test") == 0 || strcmp(split, "train") == 0 || strcmp(split, "oob") == 0)
		return 0;
	char key[256];
	row_key(key, sizeof key, st, n_key);
	return bv_error_set(BV_EFORMAT, "'%s': %s row (%s): split is not test, train or oob (the database is damaged)",
			    bv_db_path(db), table, key);
}

/* ---- the variance by its source (collect --inits M): only when decomposed so */
static int variance_sources(bv_buf *f, bv_db *db, int fm, json_t *doc, int *jfail)
{
	/* the last decomposed epoch of each split, each method beside the paired ce rows */
	static const char sql[] =
		"SELECT s.split, s.epoch, s.temperature, s.method, count(*), avg(s.variance), "
		"avg(s.var_init), avg(s.var_data), avg(s.var_init - c.var_init), "
		"avg(s.var_data - c.var_data) FROM sample_stats s JOIN sample_stats c "
		"ON c.temperature = s.temperature AND c.epoch = s.epoch AND c.split = s.split "
		"AND c.sample_idx = s.sample_idx AND c.method = ?1 "
		"WHERE s.var_init IS NOT NULL AND c.var_init IS NOT NULL "
		"AND s.epoch = (SELECT max(epoch) FROM decompositions d WHERE d.split = s.split) "
		"GROUP BY s.split, s.epoch, s.temperature, s.method "
		"ORDER BY CASE s.split WHEN 'test' THEN 0 WHEN 'train' THEN 1 ELSE 2 END, "
		"s.temperature, s.method != ?1, s.method";
	sqlite3_stmt *st = NULL;
	json_t *arr = NULL;
	int rc, n_out = 0;
	if ((rc = bv_db_prepare(db, &st, sql)) != 0)
		return rc;
	sqlite3_bind_text(st, 1, bv_db_method_name(BV_RUN_CE), -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = check_row(db, st, "sample_stats", "tiNtinnnnn", 4)) != 0 ||
		    (rc = check_split(db, st, "sample_stats", 4)) != 0)
			break;
		const char *split = (const char *)sqlite3_column_text(st, 0);
		const char *m = (const char *)sqlite3_column_text(st, 3);
		const int E = sqlite3_column_int(st, 1), n = sqlite3_column_int(st, 4);
		const double T = sqlite3_column_double(st, 2);
		double v[5];
		for (int i = 0; i < 5; i++)
			v[i] = column_num(st, 5 + i);
		if (fm == FMT_MD) {
			if (n_out == 0)
				bprintf(f, "\n## Variance by source\n\nEach sample's variance split into the "
					   "mean variance over the initialisations of one bootstrap draw "
					   "(init) and the variance across the draws' normalised geometric "
					   "means (data); means over the samples at the last decomposed epoch, "
					   "and the change against the paired ce rows.\n\n| split | epoch | T | "
					   "method | samples | variance | init | data | init - ce | data - ce |\n"
					   "|---|---|---|---|---|---|---|---|---|---|\n");
			bprintf(f, "| %s | %d | %g | ", split, E, T);
			md_text(f, m);
			bprintf(f, " | %d | %.4f | %.4f | %.4f | %+.4f | %+.4f |\n", n, v[0], v[1], v[2],
				v[3], v[4]);
		} else if (fm == FMT_CSV) {
			static const char *const q[] = {"variance", "var_init", "var_data",
							"var_init_minus_ce", "var_data_minus_ce"};
			char key[96];
			for (int i = 0; i < 5; i++) {
				snprintf(key, sizeof key, "%s_epoch%d_%s", split, E, q[i]);
				csv_row(f, "variance_source", m, T, key, v[i]);
			}
		} else {
			if (!arr && (!(arr = json_array()) || json_object_set_new(doc, "variance_sources", arr))) {
				*jfail = 1;
				break;
			}
			json_t *row = json_pack("{s:o, s:i, s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o}",
				"split", jstr(split), "epoch", E, "temperature", jnum(T), "method", jstr(m),
				"samples", n, "variance", jnum(v[0]), "var_init", jnum(v[1]),
				"var_data", jnum(v[2]), "var_init_minus_ce", jnum(v[3]),
				"var_data_minus_ce", jnum(v[4]));
			*jfail |= json_array_append_new(arr, row) != 0;
		}
		n_out++;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	return rc < 0 ? rc : bv_db_error(db);
}


int bv_report_db(bv_db *db, bv_buf *f, const char *format)
{
	report r = {0};
	fmt fm;
	int rc = 0;
	sqlite3_stmt *st = NULL;
	double d[MAX_SEEDS];
	/* --format json: the document and its four arrays (borrowed from it); a
	 * failed json_pack or append (out of memory) sets jfail */
	json_t *doc = NULL, *j_acc = NULL, *j_paired = NULL, *j_reg = NULL, *j_corr = NULL;
	int jfail = 0;
	char cfg_teacher[256] = "?", cfg_student[256] = "?", cfg_data[1100] = "?", cfg_epochs[32] = "?";

	if (strcmp(format, "md") == 0 || strcmp(format, "markdown") == 0)
		fm = FMT_MD;
	else if (strcmp(format, "csv") == 0)
		fm = FMT_CSV;
	else if (strcmp(format, "json") == 0)
		fm = FMT_JSON;
	else
		return bv_error_set(BV_EINVAL, "--format: unknown format '%s' (expected md, csv or json)", format);
	r.groups = calloc(MAX_GROUPS, sizeof *r.groups);
	if (!r.groups)
		return bv_error_set(BV_ENOMEM, "out of memory for the report");
	if ((rc = load_accuracy(&r, db)) != 0)
		goto done;
	if (r.n_groups == 0) {
		rc = bv_error_set(BV_ESTATE, "'%s' has no finished runs: run bvtool collect first", bv_db_path(db));
		goto done;
	}
	bv_db_config_get(db, "teacher", cfg_teacher, sizeof cfg_teacher);
	bv_db_config_get(db, "student", cfg_student, sizeof cfg_student);
	bv_db_config_get(db, "data", cfg_data, sizeof cfg_data);
	bv_db_config_get(db, "epochs", cfg_epochs, sizeof cfg_epochs);

	/* ---- accuracy table */
	if (fm == FMT_MD) {
		bputs(f, "# bvtool report: ");
		md_text(f, bv_db_path(db));
		bputs(f, "\n\nData `");
		md_text(f, cfg_data);
		bputs(f, "`; teacher `");
		md_text(f, cfg_teacher);
		bputs(f, "`; students `");
		md_text(f, cfg_student);
		bputs(f, "`, ");
		md_text(f, cfg_epochs);
		bputs(f, " epochs. Test accuracy in %, mean ± standard deviation over seeds (bootstrap "
			 "replicas); *best* is each run's best epoch.\n\n");
		bprintf(f, "## Test accuracy\n\n| method | T | seeds | last epoch | best epoch |\n|---|---|---|---|---|\n");
	} else if (fm == FMT_CSV) {
		bprintf(f, "table,method,temperature,quantity,value\n");
	} else {
		doc = json_pack("{s:o, s:[], s:[], s:[], s:[]}", "database", jstr(bv_db_path(db)),
				"accuracy", "paired", "regularization", "correlation");
		if (!doc) {
			rc = bv_error_set(BV_ENOMEM, "out of memory for the report");
			goto done;
		}
		j_acc = json_object_get(doc, "accuracy");
		j_paired = json_object_get(doc, "paired");
		j_reg = json_object_get(doc, "regularization");
		j_corr = json_object_get(doc, "correlation");
	}
	for (int i = 0; i < r.n_groups; i++) {
		const acc_group *g = &r.groups[i];
		double lm, ls, lh, bm, bs, bh, tmp[MAX_SEEDS];
		char tt[32];
		for (int j = 0; j < g->n; j++)
			tmp[j] = 100 * g->last[j];
		bv_mean_ci(&lm, &ls, &lh, tmp, g->n);
		for (int j = 0; j < g->n; j++)
			tmp[j] = 100 * g->best[j];
		bv_mean_ci(&bm, &bs, &bh, tmp, g->n);
		temp_text(tt, sizeof tt, g->T);
		if (fm == FMT_MD) {
			bputs(f, "| ");
			md_text(f, bv_db_method_name(g->method));
			bprintf(f, " | %s | %d | %.2f", tt, g->n, lm);
			if (g->n > 1)
				bprintf(f, " ± %.2f", ls);
			bprintf(f, " | %.2f", bm);
			if (g->n > 1)
				bprintf(f, " ± %.2f", bs);
			bprintf(f, " |\n");
		} else if (fm == FMT_CSV) {
			csv_row(f, "accuracy", bv_db_method_name(g->method), g->T, "seeds", g->n);
			csv_row(f, "accuracy", bv_db_method_name(g->method), g->T, "last_mean", lm);
			csv_row(f, "accuracy", bv_db_method_name(g->method), g->T, "last_sd", ls);
			csv_row(f, "accuracy", bv_db_method_name(g->method), g->T, "best_mean", bm);
			csv_row(f, "accuracy", bv_db_method_name(g->method), g->T, "best_sd", bs);
		} else {
			json_t *row = json_pack("{s:o, s:o, s:i, s:o, s:o, s:o, s:o}",
				"method", jstr(bv_db_method_name(g->method)),
				"temperature", jnum(g->T), "seeds", g->n,
				"last_mean", jnum(lm), "last_sd", jnum(ls),
				"best_mean", jnum(bm), "best_sd", jnum(bs));
			jfail |= json_array_append_new(j_acc, row) != 0;
		}
	}

	/* ---- paired differences */
	int inits = 0; /* a collection with inits pairs per (seed, init) */
	for (int i = 0; i < r.n_groups; i++)
		for (int j = 0; j < r.groups[i].n; j++)
			inits |= (r.groups[i].seeds[j] & 0xffffffff) > 1;
	if (fm == FMT_MD)
		bprintf(f, "\n## Paired differences at the last epoch\n\nPer %s (the same bootstrap replica, "
			   "initial weights and batch order), in percentage points; 95%% t interval of the "
			   "mean.\n\n| comparison | T | seeds | mean | 95%% interval |\n|---|---|---|---|---|\n",
			inits ? "(seed, init)" : "seed");
	int n_out = 0;
	const acc_group *ce = NULL;
	for (int i = 0; i < r.n_groups; i++)
		if (r.groups[i].method == BV_RUN_CE)
			ce = &r.groups[i];
	for (int i = 0; i < r.n_groups; i++) {
		/* wsl against kd at its temperature and against ce; kd-filter against kd and
		 * wsl at its temperature (does filtering the regularization samples out
		 * hurt?) and against ce; kd against ce */
		const acc_group *g = &r.groups[i];
		const acc_group *other[3] = {NULL, NULL, NULL};
		if (g->method == BV_RUN_WSL || g->method == BV_RUN_KD_FILTER) {
			for (int j = 0; j < r.n_groups; j++) {
				if (!same_T(r.groups[j].T, g->T))
					continue;
				if (r.groups[j].method == BV_RUN_KD)
					other[0] = &r.groups[j];
				else if (r.groups[j].method == BV_RUN_WSL && g->method == BV_RUN_KD_FILTER)
					other[1] = &r.groups[j];
			}
			other[2] = ce;
		} else if (g->method == BV_RUN_KD) {
			other[2] = ce;
		}
		for (int c = 0; c < 3; c++) {
			char name[48];
			if (!other[c])
				continue;
			snprintf(name, sizeof name, "%s - %s", bv_db_method_name(g->method),
				 bv_db_method_name(other[c]->method));
			int n = paired(d, g, other[c]);
			if (n == 0)
				continue;
			double mean, sd, h;
			char tt[32];
			bv_mean_ci(&mean, &sd, &h, d, n);
			temp_text(tt, sizeof tt, g->T);
			if (fm == FMT_MD) {
				bputs(f, "| ");
				md_text(f, name);
				bprintf(f, " | %s | %d | %+.2f | ", tt, n, mean);
				if (n > 1)
					bprintf(f, "[%+.2f, %+.2f] |\n", mean - h, mean + h);
				else
					bprintf(f, "(one seed) |\n");
			} else if (fm == FMT_CSV) {
				csv_row(f, "paired", name, g->T, "seeds", n);
				csv_row(f, "paired", name, g->T, "mean", mean);
				csv_row(f, "paired", name, g->T, "ci_low", mean - h);
				csv_row(f, "paired", name, g->T, "ci_high", mean + h);
			} else {
				json_t *row = json_pack("{s:o, s:o, s:i, s:o, s:o, s:o}",
					"comparison", jstr(name), "temperature", jnum(g->T),
					"seeds", n, "mean", jnum(mean),
					"ci_low", jnum(mean - h), "ci_high", jnum(mean + h));
				jfail |= json_array_append_new(j_paired, row) != 0;
			}
			n_out++;
		}
	}
	if (fm == FMT_MD && n_out == 0)
		bprintf(f, "| (no paired runs) | | | | |\n");

	/* ---- regularization samples: the last decomposed epoch of each split */
	const char *reg_sql =
		"SELECT c.split, c.epoch, c.temperature, c.method, c.n_regularization, c.n_samples, "
		"c.share, c.mean_bias, c.mean_variance, d.criterion FROM regularization_counts c "
		"JOIN decompositions d ON d.temperature = c.temperature AND d.epoch = c.epoch AND d.split = c.split "
		"WHERE c.method != ?1 AND c.epoch = (SELECT max(epoch) FROM decompositions d2 WHERE d2.split = c.split) "
		"ORDER BY CASE c.split WHEN 'test' THEN 0 WHEN 'train' THEN 1 ELSE 2 END, c.temperature, c.method";
	if ((rc = bv_db_check_stats(db)) != 0 || (rc = bv_db_prepare(db, &st, reg_sql)) != 0)
		goto done;
	sqlite3_bind_text(st, 1, bv_db_method_name(BV_RUN_CE), -1, SQLITE_STATIC);
	if (fm == FMT_MD)
		bprintf(f, "\n## Regularization samples\n\nSamples whose bias rises and variance falls "
			   "against the paired ce students (or the criterion named), at the last decomposed "
			   "epoch.\n\n| split | epoch | T | method | criterion | count | share | mean bias | mean variance |\n"
			   "|---|---|---|---|---|---|---|---|---|\n");
	n_out = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = check_row(db, st, "regularization_counts", "tiNtiinnnt", 4)) != 0 ||
		    (rc = check_split(db, st, "regularization_counts", 4)) != 0)
			goto done;
		const char *split = (const char *)sqlite3_column_text(st, 0);
		const int E = sqlite3_column_int(st, 1);
		const double T = sqlite3_column_double(st, 2);
		const char *m = (const char *)sqlite3_column_text(st, 3);
		const int cnt = sqlite3_column_int(st, 4), n = sqlite3_column_int(st, 5);
		const double share = column_num(st, 6), mb = column_num(st, 7), mv = column_num(st, 8);
		const char *crit = (const char *)sqlite3_column_text(st, 9);
		if (fm == FMT_MD) {
			bprintf(f, "| %s | %d | %g | ", split, E, T);
			md_text(f, m);
			bputs(f, " | ");
			md_text(f, crit);
			bprintf(f, " | %d of %d | %.2f%% | %.4f | %.4f |\n", cnt, n, 100 * share, mb, mv);
		} else if (fm == FMT_CSV) {
			char q[64];
			snprintf(q, sizeof q, "%s_epoch%d_count", split, E);
			csv_row(f, "regularization", m, T, q, cnt);
			snprintf(q, sizeof q, "%s_epoch%d_share", split, E);
			csv_row(f, "regularization", m, T, q, share);
		} else {
			json_t *row = json_pack("{s:o, s:i, s:o, s:o, s:o, s:i, s:i, s:o, s:o, s:o}",
				"split", jstr(split), "epoch", E, "temperature", jnum(T),
				"method", jstr(m), "criterion", jstr(crit),
				"count", cnt, "samples", n, "share", jnum(share),
				"mean_bias", jnum(mb), "mean_variance", jnum(mv));
			jfail |= json_array_append_new(j_reg, row) != 0;
		}
		n_out++;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE) {
		rc = bv_db_error(db);
		goto done;
	}
	rc = 0;
	if (fm == FMT_MD && n_out == 0)
		bprintf(f, "| (not decomposed yet: run bvtool decompose) | | | | | | | | |\n");

	/* ---- correlations */
	const char *corr_sql = "SELECT method, split, epoch, criterion, n_points, pearson_r, pearson_p, "
			       "spearman_rho, spearman_p, r_ci_low, r_ci_high, n_boot FROM correlations "
			       "ORDER BY CASE split WHEN 'test' THEN 0 WHEN 'train' THEN 1 ELSE 2 END, method";
	if ((rc = bv_db_prepare(db, &st, corr_sql)) != 0)
		goto done;
	if (fm == FMT_MD)
		bprintf(f, "\n## Correlation: regularization samples vs accuracy\n\nAcross temperatures: "
			   "the number of regularization samples against the students' mean test accuracy "
			   "at the same epoch.\n\n| method | split | epoch | criterion | temperatures | "
			   "Pearson r (p) | Spearman rho (p) | bootstrap 95%% interval of r |\n"
			   "|---|---|---|---|---|---|---|---|\n");
	n_out = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = check_row(db, st, "correlations", "ttitinnnnnni", 3)) != 0 ||
		    (rc = check_split(db, st, "correlations", 3)) != 0)
			goto done;
		const char *m = (const char *)sqlite3_column_text(st, 0);
		const char *split = (const char *)sqlite3_column_text(st, 1);
		const int E = sqlite3_column_int(st, 2);
		const char *crit = (const char *)sqlite3_column_text(st, 3);
		const int np = sqlite3_column_int(st, 4), nb = sqlite3_column_int(st, 11);
		double v[6];
		for (int j = 0; j < 6; j++)
			v[j] = column_num(st, 5 + j);
		if (fm == FMT_MD) {
			bputs(f, "| ");
			md_text(f, m);
			bprintf(f, " | %s | %d | ", split, E);
			md_text(f, crit);
			bprintf(f, " | %d | %.3f (%.3g) | %.3f (%.3g) | ", np, v[0], v[1], v[2], v[3]);
			if (nb > 0 && !isnan(v[4]))
				bprintf(f, "[%.3f, %.3f] (%d resamples) |\n", v[4], v[5], nb);
			else
				bprintf(f, "- |\n");
		} else if (fm == FMT_CSV) {
			char q[64];
			const char *names[6] = {"pearson_r", "pearson_p", "spearman_rho", "spearman_p", "r_ci_low",
						"r_ci_high"};
			for (int j = 0; j < 6; j++) {
				snprintf(q, sizeof q, "%s_epoch%d_%s", split, E, names[j]);
				csv_row(f, "correlation", m, NAN, q, v[j]);
			}
		} else {
			json_t *row = json_pack(
				"{s:o, s:o, s:i, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:i}",
				"method", jstr(m), "split", jstr(split), "epoch", E,
				"criterion", jstr(crit), "temperatures", np,
				"pearson_r", jnum(v[0]), "pearson_p", jnum(v[1]),
				"spearman_rho", jnum(v[2]), "spearman_p", jnum(v[3]),
				"r_ci_low", jnum(v[4]), "r_ci_high", jnum(v[5]), "n_boot", nb);
			jfail |= json_array_append_new(j_corr, row) != 0;
		}
		n_out++;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE) {
		rc = bv_db_error(db);
		goto done;
	}
	rc = 0;
	if (fm == FMT_MD && n_out == 0)
		bprintf(f, "| (none: needs bvtool decompose and >= 3 temperatures) | | | | | | | |\n");
	if ((rc = variance_sources(f, db, fm, doc, &jfail)) != 0)
		goto done;
	if (fm == FMT_JSON) {
		/* 17 significant digits, so that every double reads back as it was */
		const size_t flags = JSON_INDENT(2) | JSON_REAL_PRECISION(17);
		if (jfail || json_dump_callback(doc, jdump, f, flags) != 0) {
			rc = bv_error_set(BV_ENOMEM, "out of memory for the report");
			goto done;
		}
		bv_buf_append(f, "\n", 1);
	}
	if (f->failed)
		rc = bv_error_set(BV_ENOMEM, "out of memory for the report");
done:
	if (st)
		sqlite3_finalize(st);
	json_decref(doc);
	free(r.groups);
	return rc;
}
