/*
 * fuzz_writers: database text that reaches JSON and gnuplot. The input is cut
 * at NUL bytes into strings, which replace text of the seed database
 * (BV_FUZZ_SEED_DB, decomposed): a decomposition's criterion, a correlation's
 * criterion, method and split, a sample_stats method, a run's method (CHECK
 * constraints off, as an attacker may), a config value. Then, as `bvtool
 * report --format json` and `bvtool plot` do, bv_report_db and bv_plot_write
 * run on it, and their output is checked:
 *   - the JSON is valid (RFC 8259, strict: every string escaped, UTF-8) (D11);
 *   - no .gp script has a backquote outside a single-quoted string, the word
 *     `system` outside a string, a line that starts with `!`, or a string cut
 *     by a newline: gnuplot runs the first two through the shell, the third
 *     is its shell escape, and the fourth turns database text into commands
 *     (D1).
 * It checks the property, not a particular quoting function.
 */
#include "fuzz_db.h"

#include <ctype.h>
#include <dirent.h>
#include <sqlite3.h>

/* ---- a strict JSON validator -------------------------------------------- */

typedef struct json {
	const unsigned char *p, *end;
	const char *err;
	int depth;
} json;

static void ws(json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int fail(json *j, const char *why)
{
	if (!j->err)
		j->err = why;
	return -1;
}

/* One UTF-8 sequence (no overlongs, no surrogates, at most U+10FFFF). */
static int utf8(json *j)
{
	const unsigned char *p = j->p;
	unsigned c = p[0], n, cp;
	if (c < 0x80)
		n = 0, cp = c;
	else if (c >= 0xc2 && c <= 0xdf)
		n = 1, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 2, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 3, cp = c & 0x07;
	else
		return fail(j, "invalid UTF-8 in a string");
	if ((size_t)(j->end - p) <= n)
		return fail(j, "truncated UTF-8 in a string");
	for (unsigned i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return fail(j, "invalid UTF-8 in a string");
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return fail(j, "invalid UTF-8 in a string");
	j->p += n + 1;
	return 0;
}

static int string(json *j)
{
	j->p++; /* the opening quote */
	while (j->p < j->end) {
		unsigned char c = *j->p;
		if (c == '"') {
			j->p++;
			return 0;
		}
		if (c < 0x20)
			return fail(j, "an unescaped control character in a string");
		if (c == '\\') {
			if (j->end - j->p < 2)
				return fail(j, "a truncated escape");
			c = j->p[1];
			if (c == 'u') {
				if (j->end - j->p < 6)
					return fail(j, "a truncated \\u escape");
				for (int i = 2; i < 6; i++)
					if (!isxdigit(j->p[i]))
						return fail(j, "a bad \\u escape");
				j->p += 6;
			} else if (strchr("\"\\/bfnrt", c) && c) {
				j->p += 2;
			} else {
				return fail(j, "a bad escape");
			}
			continue;
		}
		if (utf8(j) != 0)
			return -1;
	}
	return fail(j, "an unterminated string");
}

static int digits(json *j)
{
	if (j->p >= j->end || !isdigit(*j->p))
		return fail(j, "a bad number");
	while (j->p < j->end && isdigit(*j->p))
		j->p++;
	return 0;
}

static int number(json *j)
{
	if (*j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (digits(j) != 0)
		return -1;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (digits(j) != 0)
			return -1;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (digits(j) != 0)
			return -1;
	}
	return 0;
}

static int value(json *j);

static int members(json *j, int object)
{
	j->p++; /* [ or { */
	if (++j->depth > 64)
		return fail(j, "nested too deep");
	ws(j);
	if (j->p < j->end && *j->p == (object ? '}' : ']')) {
		j->p++;
		j->depth--;
		return 0;
	}
	for (;;) {
		ws(j);
		if (object) {
			if (j->p >= j->end || *j->p != '"')
				return fail(j, "an object key that is not a string");
			if (string(j) != 0)
				return -1;
			ws(j);
			if (j->p >= j->end || *j->p != ':')
				return fail(j, "a missing ':'");
			j->p++;
		}
		if (value(j) != 0)
			return -1;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == (object ? '}' : ']')) {
			j->p++;
			j->depth--;
			return 0;
		}
		return fail(j, object ? "a missing ',' or '}'" : "a missing ',' or ']'");
	}
}

static int literal(json *j, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
		return fail(j, "an unexpected character");
	j->p += n;
	return 0;
}

static int value(json *j)
{
	ws(j);
	if (j->p >= j->end)
		return fail(j, "a missing value");
	switch (*j->p) {
	case '{':
		return members(j, 1);
	case '[':
		return members(j, 0);
	case '"':
		return string(j);
	case 't':
		return literal(j, "true");
	case 'f':
		return literal(j, "false");
	case 'n':
		return literal(j, "null");
	default:
		if (*j->p == '-' || isdigit(*j->p))
			return number(j);
		return fail(j, "an unexpected character");
	}
}

/* NULL when text is one valid JSON document, else what is wrong. */
static const char *json_check(const char *text, size_t len)
{
	json j = {(const unsigned char *)text, (const unsigned char *)text + len, NULL, 0};
	if (value(&j) == 0) {
		ws(&j);
		if (j.p != j.end)
			fail(&j, "text after the document");
	}
	return j.err;
}

/* ---- gnuplot scripts ------------------------------------------------------ */

/* NULL when the script runs nothing through a shell, else what it would run.
 * States: code, a single-quoted string ('' is a quote inside it), a
 * double-quoted string (backslash escapes), a # comment. Strict: a backquote
 * counts everywhere but in a single-quoted string, comments included. */
static const char *gp_check(const char *text, size_t len)
{
	enum { CODE, SINGLE, DOUBLE, COMMENT } st = CODE;
	int line_start = 1;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (c == '\n') {
			/* strings never span lines: text that ends one with a
			 * newline makes the rest of it a command */
			if (st == SINGLE)
				return "a newline inside a single-quoted string";
			if (st == DOUBLE)
				return "a newline inside a double-quoted string";
			st = CODE;
			line_start = 1;
			continue;
		}
		if (line_start && c != ' ' && c != '\t') {
			line_start = 0;
			if (c == '!' && st == CODE)
				return "a line starting with '!' (shell escape)";
		}
		switch (st) {
		case SINGLE:
			if (c == '\'') {
				if (i + 1 < len && text[i + 1] == '\'')
					i++;
				else
					st = CODE;
			}
			break;
		case DOUBLE:
			if (c == '\\' && i + 1 < len && text[i + 1] != '\n')
				i++;
			else if (c == '"')
				st = CODE;
			else if (c == '`')
				return "a backquote in a double-quoted string";
			break;
		case COMMENT:
			if (c == '`')
				return "a backquote in a comment";
			break;
		case CODE:
			if (c == '\'')
				st = SINGLE;
			else if (c == '"')
				st = DOUBLE;
			else if (c == '#')
				st = COMMENT;
			else if (c == '`')
				return "a backquote outside a string";
			else if (c == 's' && len - i >= 6 && memcmp(text + i, "system", 6) == 0)
				return "'system' outside a string";
			break;
		}
	}
	return NULL;
}

static void check_scripts(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name), len;
		char path[1024];
		if (n < 4 || strcmp(e->d_name + n - 3, ".gp") != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		char *text = (char *)fz_slurp(path, &len);
		const char *why = gp_check(text, len);
		if (why) {
			fprintf(stderr, "fuzz: %s:\n%.*s\n", e->d_name, (int)len, text);
			fz_fail("a gnuplot script runs database text through the shell (D1)", why);
		}
		free(text);
	}
	closedir(d);
}

/* ---- the target ---------------------------------------------------------------- */

#define N_STRINGS 7

static const char *const updates[N_STRINGS] = {
	"UPDATE decompositions SET criterion = ?1",
	"UPDATE correlations SET criterion = ?1",
	"UPDATE correlations SET method = ?1 WHERE method = 'kd'",
	"UPDATE correlations SET split = ?1 WHERE split = 'oob'",
	"UPDATE sample_stats SET method = ?1 WHERE method = 'wsl'",
	"UPDATE runs SET method = ?1 WHERE method = 'wsl'",
	"UPDATE config SET value = ?1",
};

static void set_strings(const char *path, const uint8_t *data, size_t size)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		abort();
	sqlite3_exec(db, "PRAGMA ignore_check_constraints = ON; BEGIN", NULL, NULL, NULL);
	size_t pos = 0;
	for (int i = 0; i < N_STRINGS && pos <= size; i++) {
		const uint8_t *s = data + pos;
		const uint8_t *nul = memchr(s, 0, size - pos);
		size_t n = nul ? (size_t)(nul - s) : size - pos;
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(db, updates[i], -1, &st, NULL) != SQLITE_OK)
			abort();
		sqlite3_bind_text(st, 1, (const char *)s, (int)n, SQLITE_TRANSIENT);
		sqlite3_step(st); /* a unique-key clash leaves the rows as they were */
		sqlite3_finalize(st);
		pos += n + 1;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		abort();
	sqlite3_close(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[512], out[512];
	size_t seed_len;
	const unsigned char *seed = fz_seed_db(&seed_len);
	bv_db *db = NULL;

	if (size > 16384)
		return 0;
	fz_clear(fz_dir());
	fz_path(path, sizeof path, "in.db");
	fz_write(path, seed, seed_len);
	set_strings(path, data, size);

	if (bv_db_open(&db, path, BV_DB_READONLY) != 0)
		fz_fail("the edited seed database does not open", bv_error_last());
	/* gnuplot first: D1 runs code, D11 breaks a reader */
	bv_plot_result res;
	fz_path(out, sizeof out, "plot");
	if (bv_plot_write(&res, db, out, NAN, "png") == 0) {
		/* the scripts as they land in --out */
		if (bv_plot_commit(&res, out, 0) == 0)
			check_scripts(out);
		bv_plot_result_release(&res);
	}

	bv_buf json;
	bv_buf_init(&json);
	int rc = bv_report_db(db, &json, "json");
	if (rc == 0 && !json.failed) {
		const char *text = json.data ? (const char *)json.data : "";
		const char *why = json_check(text, json.len);
		if (why) {
			fprintf(stderr, "fuzz: report --format json:\n%.*s\n", (int)json.len, text);
			fz_fail("report --format json printed invalid JSON (D11)", why);
		}
	}
	bv_buf_release(&json);
	fz_report_all(db); /* md and csv: no crash */

	bv_db_close(db);
	return 0;
}
