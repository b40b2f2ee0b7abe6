/*
 * What a database may hold: the range checks, the rules of db.h's contract
 * that every reader (decompose, report, plot) runs before it uses a stored
 * value. A database is untrusted input (docs/security.md):
 * every label, count, index and number read from it is checked here before it
 * is used, and a value out of range is BV_EFORMAT naming the database and the
 * row. Each check is one SQL query over the stored values (their types
 * included: a label stored as text or as a 64-bit integer must not be read as
 * some other int, and text where a number belongs must not enter SQL
 * arithmetic, where SQLite reads it as 0) that gives the first bad row's
 * reason as text; it runs once per command, not per row of the work.
 */
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "db.h"

void bv_db_safe_text(char *out, size_t size, const unsigned char *s)
{
	size_t n = 0;
	for (; s && *s && n + 1 < size && n < 64; s++)
		out[n++] = *s >= 0x20 && *s < 0x7f ? (char)*s : '?';
	out[n] = '\0';
}

/* A stored value quoted for a message (SQL), cut to 40 bytes: a long text
 * cannot make the message long. */
#define Q(x) "substr(quote(" x "), 1, 40)"
#define DAMAGED " (the database is damaged)"

/*
 * Run `sql`, whose one column is the reason the first bad row is bad (?1 is
 * bound to the integer p1, ?2 to p2); when it returns a row, that reason is
 * BV_EFORMAT, "'DB': REASON (the database is damaged)", with every byte that
 * is not printable ASCII as '?'. 0 when no row is bad.
 */
static int refuse_first(bv_db *db, const char *sql, int64_t p1, int64_t p2)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = bv_db_prepare(db, &st, sql)) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, p1);
	sqlite3_bind_int64(st, 2, p2);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		char why[400];
		const unsigned char *s = sqlite3_column_text(st, 0);
		size_t n = 0;
		for (; s && *s && n + 1 < sizeof why; s++)
			why[n++] = *s >= 0x20 && *s < 0x7f ? (char)*s : '?';
		why[n] = '\0';
		rc = bv_error_set(BV_EFORMAT, "'%s': %s" DAMAGED, bv_db_path(db), why);
	} else {
		rc = rc == SQLITE_DONE ? 0 : bv_db_error(db);
	}
	sqlite3_finalize(st);
	return rc;
}

int bv_db_check_runs(bv_db *db)
{
	/* the lists of db's table (names.c): SQL's and a message's */
	char methods[128], methods_or[128], hard[64], statuses[128], statuses_or[128];
	char why_sql[2048], dup_sql[1024];
	const char *done = bv_db_status_name(BV_RUN_DONE);
	const char *teacher = bv_db_method_name(BV_RUN_TEACHER);
	bv_db_methods_text(methods, sizeof methods, bv_db_methods_mask(-1), "'", ", ", ", ");
	bv_db_methods_text(methods_or, sizeof methods_or, bv_db_methods_mask(-1), "", ", ", " or ");
	bv_db_methods_text(hard, sizeof hard, bv_db_methods_mask(0), "'", ", ", ", ");
	bv_db_statuses_text(statuses, sizeof statuses, BV_RUN_ALL_STATUSES, "'", ", ", ", ");
	bv_db_statuses_text(statuses_or, sizeof statuses_or, BV_RUN_ALL_STATUSES, "", ", ", " or ");
	/* the first reason a run is not what collect writes */
	snprintf(why_sql, sizeof why_sql,
		 "SELECT printf('run %%d %%s', id, why) FROM (SELECT id, CASE"
		 " WHEN typeof(method) != 'text' OR method NOT IN (%s)"
		 "  THEN printf('has method %%s, expected %s', " Q("method") ")"
		 " WHEN typeof(status) != 'text' OR status NOT IN (%s)"
		 "  THEN printf('has status %%s, expected %s', " Q("status") ")"
		 " WHEN typeof(seed) != 'integer' OR seed < 0 OR seed > 2147483647"
		 "  THEN printf('has seed %%s, expected a whole number 0..2147483647', "
		 Q("seed") ")"
		 " WHEN typeof(init) != 'integer' OR init < 1 OR init > 64"
		 "  THEN printf('has init %%s, expected a whole number 1..64', " Q("init") ")"
		 " WHEN method IN (%s) AND temperature IS NOT NULL"
		 "  THEN printf('is a %%s run with temperature %%s, expected none', method, "
		 Q("temperature") ")"
		 " WHEN method NOT IN (%s) AND (typeof(temperature) NOT IN ('integer', 'real')"
		 "      OR NOT (temperature > 0 AND temperature <= 1e300))"
		 "  THEN printf('is a %%s run with temperature %%s, expected a number > 0',"
		 " method, " Q("temperature") ")"
		 " WHEN status = '%s' AND (typeof(test_acc) NOT IN ('integer', 'real')"
		 "      OR NOT (test_acc >= 0 AND test_acc <= 1))"
		 "  THEN printf('is done but its test_acc is %%s, expected a number 0..1', "
		 Q("test_acc") ")"
		 " END AS why FROM runs) WHERE why IS NOT NULL ORDER BY id LIMIT 1",
		 methods, methods_or, statuses, statuses_or, hard, hard, done);
	/* one run per cell (the runs_cell index says so, unless it was dropped), one teacher */
	snprintf(dup_sql, sizeof dup_sql,
		 "SELECT printf('runs %%d and %%d are both %%s', a.id, b.id,"
		 " CASE WHEN a.method = '%s' THEN 'teacher runs'"
		 " WHEN a.temperature IS NULL THEN printf('%%s seed %%d', a.method, a.seed)"
		 " ELSE printf('%%s T=%%g seed %%d', a.method, a.temperature, a.seed) END"
		 " || CASE WHEN a.init > 1 THEN printf(' init %%d', a.init) ELSE '' END)"
		 " FROM runs a JOIN runs b ON b.id > a.id AND b.method = a.method"
		 " AND (a.method = '%s' OR (b.seed = a.seed AND b.init IS a.init"
		 " AND b.temperature IS a.temperature))"
		 " ORDER BY a.id, b.id LIMIT 1",
		 teacher, teacher);
	int rc = refuse_first(db, why_sql, 0, 0);
	return rc ? rc : refuse_first(db, dup_sql, 0, 0);
}

int bv_db_check_labels(bv_db *db, const char *split, int k)
{
	/* the split is one of bvtool's two, so it can be part of the query */
	char sql[512];
	snprintf(sql, sizeof sql,
		 "SELECT printf('%s sample %%s has label %%s, outside 0..%%d', " Q("sample_idx") ", "
		 Q("label") ", ?1 - 1) FROM samples WHERE split = '%s' AND (typeof(sample_idx) !="
		 " 'integer' OR typeof(label) != 'integer' OR label < 0 OR label >= ?1)"
		 " ORDER BY sample_idx LIMIT 1",
		 strcmp(split, "train") == 0 ? "train" : "test",
		 strcmp(split, "train") == 0 ? "train" : "test");
	return refuse_first(db, sql, k, 0);
}

int bv_db_check_snapshots(bv_db *db)
{
	return refuse_first(db,
			    "SELECT printf('run %s has a %s snapshot at epoch %s, expected a whole number"
			    " 0..%d', " Q("run_id") ", substr(split, 1, 40), " Q("epoch") ", ?1)"
			    " FROM snapshots WHERE typeof(epoch) != 'integer' OR epoch < 0 OR epoch > ?1"
			    " OR split IS NOT 'test' AND split IS NOT 'train' ORDER BY run_id LIMIT 1",
			    BV_DB_MAX_EPOCH, 0);
}

int bv_db_check_inbag(bv_db *db, int seed)
{
	return refuse_first(db,
			    "SELECT printf('seed %d has in-bag count %s for train sample %s, expected a"
			    " whole number >= 0', ?1, " Q("count") ", " Q("sample_idx") ")"
			    " FROM inbag WHERE seed = ?1 AND (typeof(sample_idx) != 'integer'"
			    " OR typeof(count) != 'integer' OR count < 0 OR count > 2147483647)"
			    " ORDER BY sample_idx LIMIT 1",
			    seed, 0);
}

/* The type test of a number column: an integer or a real. */
#define NUM(x) "typeof(" x ") IN ('integer', 'real')"

int bv_db_check_stats(bv_db *db)
{
	return refuse_first(
		db,
		"SELECT printf('sample_stats row (%s, %s, %s, %s, %s): bias, variance and loss must be"
		" numbers, regularization 0, 1 or NULL', temperature, epoch, split, method, sample_idx)"
		" FROM sample_stats WHERE NOT (" NUM("bias") " AND " NUM("variance") " AND " NUM("loss")
		" AND (regularization IS NULL OR regularization IS 0 OR regularization IS 1)) LIMIT 1",
		0, 0);
}

/*
 * The number columns of the tables the figures read, and the columns that
 * name a row in a message. A text or a BLOB there is what no bvtool writes,
 * and what SQL arithmetic would take for 0.
 */
static const struct {
	const char *table, *key_fmt, *key, *cols;
} number_cols[] = {
	{"runs", "%s", "id", "temperature seed test_acc epochs"},
	{"metrics", "%s, %s", "run_id, epoch",
	 "run_id epoch lr train_loss train_acc test_acc wsl_weight filtered seconds"},
	{"sample_stats", "%s, %s, %s, %s, %s", "temperature, epoch, split, method, sample_idx",
	 "temperature epoch sample_idx bias variance loss regularization n_seeds p_true acc "
	 "wsl_weight teacher_p_true"},
	{"decompositions", "%s, %s, %s", "temperature, epoch, split",
	 "temperature epoch n_samples max_identity_error"},
	{"correlations", "%s, %s, %s", "split, epoch, method",
	 "epoch n_points pearson_r pearson_p spearman_rho spearman_p r_ci_low r_ci_high n_boot"},
};

/* Append to sql[*n] (of cap bytes) what fmt makes; -1 when it does not fit. */
static int add(char *sql, size_t cap, size_t *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int add(char *sql, size_t cap, size_t *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(sql + *n, cap - *n, fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= cap - *n)
		return -1;
	*n += (size_t)len;
	return 0;
}

int bv_db_check_numbers(bv_db *db)
{
	for (size_t t = 0; t < BV_ARRAY_LEN(number_cols); t++) {
		char sql[4096], cases[2048] = "", where[1024] = "", col[64];
		size_t n = 0, nc = 0, nw = 0;
		int bad = 0;
		for (const char *p = number_cols[t].cols; *p;) {
			size_t len = strcspn(p, " ");
			snprintf(col, sizeof col, "%.*s", (int)len, p);
			p += len + (p[len] == ' ');
			bad |= add(cases, sizeof cases, &nc,
				   " WHEN typeof(%s) IN ('text', 'blob') THEN printf('%s is %%s', " Q("%s") ")",
				   col, col, col) ||
			       add(where, sizeof where, &nw, "%stypeof(%s) IN ('text', 'blob')",
				   nw ? " OR " : "", col);
		}
		bad |= add(sql, sizeof sql, &n,
			   "SELECT printf('%s row (%s): %%s, expected a number', %s, CASE%s END)"
			   " FROM %s WHERE %s LIMIT 1",
			   number_cols[t].table, number_cols[t].key_fmt, number_cols[t].key, cases,
			   number_cols[t].table, where);
		if (bad) /* the table above is too long for the buffers */
			return bv_error_set(BV_EINVAL, "checking '%s': a query is too long", bv_db_path(db));
		int rc = refuse_first(db, sql, 0, 0);
		if (rc)
			return rc;
	}
	return 0;
}
