/*
 * bvtool plot's driver: choose the temperature and the epoch, build every
 * figure's data file and script in memory (figures.c) inside one read
 * transaction, so all figures see the same database, then write the files
 * into a staging directory inside the output directory (stage.c, which later
 * renames them into place: bv_plot_commit). Also the helpers the figures
 * share: quoting a string for gnuplot (bv_gp_quote: the one way database text
 * enters a script), running a query into a table of doubles, writing a data
 * file with its header, and the head of a script.
 */
#include "plot_int.h"

#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Format onto b as text (quote: 0) or as one gnuplot string literal (quote: 1). */
static void vformat(bv_buf *b, int quote, const char *fmt, va_list ap)
{
	char small[512], *text = small;
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	if (n >= 0 && (size_t)n >= sizeof small) {
		text = malloc((size_t)n + 1);
		if (text)
			vsnprintf(text, (size_t)n + 1, fmt, again);
	}
	va_end(again);
	if (n < 0 || !text) {
		b->failed = 1;
		return;
	}
	if (quote)
		bv_gp_quote(b, text, (size_t)n);
	else
		bv_buf_append(b, text, (size_t)n);
	if (text != small)
		free(text);
}

void plot_printf(bv_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat(b, 0, fmt, ap);
	va_end(ap);
}

void plot_gp_str(bv_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat(b, 1, fmt, ap);
	va_end(ap);
}

/* The length (2 to 4) of the well-formed UTF-8 sequence at s (n bytes), else 0:
 * no overlong form, no surrogate, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned lo = 0x80, hi = 0xbf;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, lo = s[0] == 0xe0 ? 0xa0 : 0x80, hi = s[0] == 0xed ? 0x9f : 0xbf;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, lo = s[0] == 0xf0 ? 0x90 : 0x80, hi = s[0] == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

int bv_gp_quote(bv_buf *out, const char *s, size_t len)
{
	/* gnuplot expands backquotes, @macros and backslash escapes everywhere but
	 * in single quotes. There '' is one quote, but gnuplot's scanner finds a
	 * doubled quote only by looking ahead from the byte before it: a quote
	 * first in a literal or after another quote would end it. Such a quote is
	 * a piece of its own joined with '.': "\047", which holds no quote byte,
	 * because gnuplot's macro pass counts every ' (even in double quotes) to
	 * tell whether it is inside single quotes, and an odd count would let it
	 * expand an @name in the text that follows */
	const unsigned char *p = (const unsigned char *)s;
	int after_text = 0; /* the literal open has a byte that is not a quote last */
	bv_buf_append(out, "'", 1);
	for (size_t i = 0; i < len;) {
		size_t n = p[i] < 0x80 ? 1 : utf8_len(p + i, len - i);
		if (n == 0 || p[i] < 0x20 || p[i] == 0x7f) {
			bv_buf_append(out, "?", 1);
			after_text = 1;
			i++;
			continue;
		}
		if (p[i] == '\'') {
			if (after_text)
				bv_buf_append(out, "''", 2);
			else
				bv_buf_append(out, "'.\"\\047\".'", 10);
			after_text = 0;
		} else {
			bv_buf_append(out, p + i, n);
			after_text = 1;
		}
		i += n;
	}
	bv_buf_append(out, "'", 1);
	return out->failed ? BV_ENOMEM : 0;
}

/* The shortest %g text that reads back as x exactly (0.1 -> "0.1", not 0.10000000000000001). */
static void shortest(char *out, size_t size, double x)
{
	for (int p = 1; p <= 17; p++) {
		snprintf(out, size, "%.*g", p, x);
		if (strtod(out, NULL) == x)
			return;
	}
}

/* ---- queries ---------------------------------------------------------------- */

int plot_query(plot_table *t, char *sql_out, size_t cap, const plot_ctx *c, const char *sql)
{
	char e_text[32];
	size_t n = 0;
	snprintf(e_text, sizeof e_text, "%d", c->E);
	for (const char *p = sql; *p; p++) {
		const char *rep = NULL;
		if (p[0] == '@' && p[1] == 'T')
			rep = c->t_text;
		else if (p[0] == '@' && p[1] == 'E')
			rep = e_text;
		size_t len = rep ? strlen(rep) : 1;
		if (n + len + 1 > cap)
			return bv_error_set(BV_ENOMEM, "plot: a query is longer than %zu bytes", cap);
		memcpy(sql_out + n, rep ? rep : p, len);
		n += len;
		p += rep != NULL;
	}
	sql_out[n] = '\0';

	memset(t, 0, sizeof *t);
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = bv_db_prepare(c->db, &st, sql_out)) != 0)
		return rc;
	t->n_cols = sqlite3_column_count(st);
	if (t->n_cols > PLOT_MAX_COLS) {
		sqlite3_finalize(st);
		return bv_error_set(BV_EINVAL, "plot: a query has %d columns (at most %d)", t->n_cols, PLOT_MAX_COLS);
	}
	for (int j = 0; j < t->n_cols; j++)
		snprintf(t->names[j], sizeof t->names[j], "%s", sqlite3_column_name(st, j));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (t->n_rows == t->cap) {
			int cap2 = t->cap ? 2 * t->cap : 64;
			double *v = realloc(t->v, sizeof(double) * (size_t)cap2 * (size_t)t->n_cols);
			if (!v) {
				sqlite3_finalize(st);
				plot_table_release(t);
				return bv_error_set(BV_ENOMEM, "out of memory reading the plot data");
			}
			t->v = v;
			t->cap = cap2;
		}
		double *row = t->v + (size_t)t->n_rows * t->n_cols;
		for (int j = 0; j < t->n_cols; j++) {
			/* only numbers are data: NULL, text and blobs (which SQLite would read
			 * as 0) are missing, and so are infinities and magnitudes gnuplot
			 * cannot scale an axis to */
			const int type = sqlite3_column_type(st, j);
			const double x = type == SQLITE_INTEGER || type == SQLITE_FLOAT ? sqlite3_column_double(st, j) : NAN;
			row[j] = fabs(x) <= PLOT_MAX_ABS ? x : NAN;
		}
		t->n_rows++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		plot_table_release(t);
		return bv_db_error(c->db);
	}
	return 0;
}

void plot_table_release(plot_table *t)
{
	free(t->v);
	memset(t, 0, sizeof *t);
}

int plot_col(const plot_table *t, const char *name)
{
	for (int j = 0; j < t->n_cols; j++)
		if (strcmp(t->names[j], name) == 0)
			return j;
	return -1;
}

double plot_at(const plot_table *t, int row, const char *name)
{
	int j = plot_col(t, name);
	return j < 0 ? NAN : t->v[(size_t)row * t->n_cols + j];
}

int plot_has(const plot_table *t, const char *name)
{
	for (int i = 0; i < t->n_rows; i++)
		if (!isnan(plot_at(t, i, name)))
			return 1;
	return 0;
}

int plot_points(const plot_table *t, int x, const char *y, int log_x)
{
	int n = 0, j = plot_col(t, y);
	if (j < 0 || x < 0 || x >= t->n_cols)
		return 0;
	for (int i = 0; i < t->n_rows; i++) {
		const double *row = t->v + (size_t)i * t->n_cols;
		n += !isnan(row[x]) && !isnan(row[j]) && (!log_x || row[x] > 0);
	}
	return n;
}

int plot_range(const plot_table *t, int x, int log_x, double *lo, double *hi)
{
	int n = 0;
	*lo = INFINITY;
	*hi = -INFINITY;
	for (int i = 0; i < t->n_rows; i++) {
		const double v = t->v[(size_t)i * t->n_cols + x];
		if (isnan(v) || (log_x && !(v > 0)))
			continue;
		*lo = fmin(*lo, v);
		*hi = fmax(*hi, v);
		n++;
	}
	return n;
}

/* ---- the files ---------------------------------------------------------------- */

void plot_comment_text(char *out, size_t size, const char *s)
{
	size_t i = 0;
	for (; s[i] && i + 1 < size; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\' ? '?' : s[i];
	out[i] = '\0';
}

void plot_dat(plot_fig *f, const plot_ctx *c, const char *what, const char *sql, const plot_table *t,
	      const char *extra)
{
	char src[1100];
	bv_buf *b = &f->dat;
	plot_comment_text(src, sizeof src, bv_db_path(c->db));
	plot_printf(b, "# %s.dat: %s\n", f->name, what);
	plot_printf(b, "# written by bvtool %s plot from '%s' (T = %s; last decomposed test epoch at T: %d); drawn by %s.gp\n",
		    BV_VERSION, src, c->t_text, c->E, f->name);
	if (extra)
		plot_printf(b, "%s", extra);
	plot_printf(b, "# columns:");
	for (int j = 0; j < t->n_cols; j++)
		plot_printf(b, " %s", t->names[j]);
	plot_printf(b, "\n# the rows are the result of this SQL (missing, infinite or out-of-range values: NaN):\n#   ");
	for (const char *p = sql; *p; p++)
		plot_printf(b, *p == '\n' ? "\n#   " : "%c", *p);
	plot_printf(b, "\n");
	for (int i = 0; i < t->n_rows; i++) {
		for (int j = 0; j < t->n_cols; j++) {
			double v = t->v[(size_t)i * t->n_cols + j];
			if (isnan(v))
				plot_printf(b, "%sNaN", j ? " " : "");
			else
				plot_printf(b, "%s%.12g", j ? " " : "", v);
		}
		plot_printf(b, "\n");
	}
}

void plot_gp_head(plot_fig *f, const plot_ctx *c, const char *title)
{
	char src[1100];
	const char *term;
	bv_buf *b = &f->gp;
	if (strcmp(c->format, "svg") == 0)
		term = "svg size 900,600 dynamic font 'sans,11' background rgb 'white'";
	else if (strcmp(c->format, "pdf") == 0)
		term = "pdfcairo size 7.5in,5in font 'sans,10'";
	else
		term = "pngcairo size 900,600 font 'sans,11'";
	plot_comment_text(src, sizeof src, bv_db_path(c->db));
	plot_printf(b,
		    "# %s.gp: %s\n"
		    "# written by bvtool %s plot from '%s' (T = %s; last decomposed test epoch at T: %d); reads %s.dat\n"
		    "# render from this directory:  gnuplot %s.gp\n"
		    "# another terminal or file:    gnuplot -e 'term=\"svg size 900,600\"; outfile=\"%s.svg\"' %s.gp\n"
		    "#                              gnuplot -e 'term=\"dumb size 120,40\"; outfile=\"\"' %s.gp\n",
		    f->name, f->what, BV_VERSION, src, c->t_text, c->E, f->name, f->name, f->name, f->name, f->name);
	plot_printf(b,
		    "bv_term = exists(\"term\") ? term : \"%s\"\n"
		    "bv_outfile = exists(\"outfile\") ? outfile : \"%s.%s\"\n"
		    "# a gnuplot built without cairo has the libgd png terminal only\n"
		    "if (strstrt(bv_term, \"pngcairo\") == 1 && !strstrt(GPVAL_TERMINALS, \"pngcairo\")) "
		    "bv_term = \"png size 900,600\"\n"
		    "set terminal @bv_term\n"
		    "if (bv_outfile eq \"\") { set output } else { set output bv_outfile }\n"
		    "set termoption noenhanced\n"
		    "reset\n"
		    "set encoding utf8\n"
		    "set title ",
		    term, f->name, c->format);
	plot_gp_str(b, "%s", title);
	plot_printf(b, " font ',13'\n"
		       "set grid back lt 1 lw 0.6 lc rgb '#e3e3e3'\n"
		       "set border lw 1.2\n\n");
}

/* ---- choosing T and E ---------------------------------------------------------- */

static int scalar_double(double *out, bv_db *db, const char *sql, const double *arg)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = bv_db_prepare(db, &st, sql)) != 0)
		return rc;
	if (arg)
		sqlite3_bind_double(st, 1, *arg);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL ? sqlite3_column_double(st, 0) : NAN;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : bv_db_error(db);
}

static int choose(plot_ctx *c, double temp)
{
	bv_db *db = c->db;
	const char *path = bv_db_path(db);
	double any, temps[64], x;
	int n = 0, rc;
	sqlite3_stmt *st = NULL;

	if ((rc = scalar_double(&any, db, "SELECT count(*) FROM decompositions", NULL)) != 0)
		return rc;
	if (any == 0)
		return bv_error_set(BV_ESTATE, "'%s' has no decomposition yet: run bvtool decompose --db %s first",
				    path, path);
	if ((rc = bv_db_prepare(db, &st, "SELECT DISTINCT temperature FROM decompositions "
				     "WHERE split = 'test' ORDER BY temperature")) != 0)
		return rc;
	/* a temperature is a finite number > 0 (a crafted file may hold NULL, text, inf or -1) */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 64) {
		const int type = sqlite3_column_type(st, 0);
		x = sqlite3_column_double(st, 0);
		if ((type == SQLITE_FLOAT || type == SQLITE_INTEGER) && isfinite(x) && x > 0)
			temps[n++] = x;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return bv_db_error(db);
	if (n == 0)
		return bv_error_set(BV_ESTATE,
				    "'%s' has no decomposition of the test split yet: run bvtool decompose --db %s first",
				    path, path);
	if (isnan(temp)) {
		c->T = temps[(n - 1) / 2];
		for (int i = 0; i < n; i++)
			if (temps[i] == 4)
				c->T = 4;
	} else {
		int found = 0;
		for (int i = 0; i < n; i++)
			found |= temps[i] == temp;
		if (!found) {
			char list[1024] = "", t[32];
			size_t len = 0;
			for (int i = 0; i < n && len + 40 < sizeof list; i++) {
				shortest(t, sizeof t, temps[i]);
				len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", t);
			}
			shortest(t, sizeof t, temp);
			if ((rc = scalar_double(&x, db, "SELECT count(*) FROM runs WHERE temperature = ?", &temp)) != 0)
				return rc;
			if (x > 0)
				return bv_error_set(BV_ESTATE,
						    "temperature %s of '%s' is not decomposed yet (decomposed: %s): "
						    "run bvtool decompose --db %s --temp %s first",
						    t, path, list, path, t);
			return bv_error_set(BV_EINVAL, "--temp: temperature %s is not in '%s' (it has %s)", t, path,
					    list);
		}
		c->T = temp;
	}
	shortest(c->t_text, sizeof c->t_text, c->T);
	if ((rc = scalar_double(&x, db, "SELECT max(epoch) FROM decompositions WHERE split = 'test' AND temperature = ? "
				"AND typeof(epoch) = 'integer' AND epoch BETWEEN 0 AND 2147483647",
				&c->T)) != 0)
		return rc;
	if (isnan(x))
		return bv_error_set(BV_EFORMAT, "'%s' has no valid epoch in its decompositions of the test split at T = %s",
				    path, c->t_text);
	c->E = (int)x;
	if ((rc = bv_db_prepare(db, &st, "SELECT criterion FROM decompositions WHERE split = 'test' "
				     "AND temperature = ? AND epoch = ?")) != 0)
		return rc;
	sqlite3_bind_double(st, 1, c->T);
	sqlite3_bind_int(st, 2, c->E);
	snprintf(c->criterion, sizeof c->criterion, "bv");
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(c->criterion, sizeof c->criterion, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return 0;
}

/* ---- the entry point -------------------------------------------------------------- */

int bv_plot_check_format(const char *format)
{
	if (strcmp(format, "png") == 0 || strcmp(format, "svg") == 0 || strcmp(format, "pdf") == 0)
		return 0;
	return bv_error_set(BV_EINVAL, "--format: unknown format '%s' (expected png, svg or pdf)", format);
}

int bv_plot_write(bv_plot_result *out, bv_db *db, const char *dir, double temp, const char *format)
{
	enum { N_FIG = PLOT_N_FIGURES };
	_Static_assert(N_FIG <= BV_PLOT_MAX_FIGURES, "raise BV_PLOT_MAX_FIGURES");
	plot_fig fig[N_FIG];
	plot_ctx c = {.db = db, .format = format};
	int rc, in_txn = 0;

	memset(out, 0, sizeof *out);
	memset(fig, 0, sizeof fig);
	for (int i = 0; i < N_FIG; i++) {
		snprintf(fig[i].name, sizeof fig[i].name, "%s", plot_figure_name(i));
		bv_buf_init(&fig[i].dat);
		bv_buf_init(&fig[i].gp);
	}
	if ((rc = bv_plot_check_format(format)) != 0)
		goto done;
	snprintf(out->format, sizeof out->format, "%s", format);
	/* one read transaction: every figure sees the same database, even while a collect writes */
	if (sqlite3_exec(bv_db_handle(db), "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		rc = bv_db_error(db);
		goto done;
	}
	in_txn = 1;
	/* the tables the figures read, checked inside the same transaction: text
	 * where a number belongs would enter their SQL arithmetic as 0 (other odd
	 * values, NULLs and infinities, the figures draw around) */
	if ((rc = bv_db_check_numbers(db)) != 0 || (rc = choose(&c, temp)) != 0)
		goto done;
	for (int i = 0; i < N_FIG; i++) {
		if ((rc = plot_figure_build(i, &fig[i], &c)) != 0)
			goto done;
		if (fig[i].dat.failed || fig[i].gp.failed) {
			rc = bv_error_set(BV_ENOMEM, "out of memory building the figure '%s'", fig[i].name);
			goto done;
		}
	}
	sqlite3_exec(bv_db_handle(db), "COMMIT", NULL, NULL, NULL);
	in_txn = 0;

	if ((rc = plot_make_stage(&out->stage, dir)) != 0)
		goto done;
	out->temp = c.T;
	out->epoch = c.E;
	for (int i = 0; i < N_FIG; i++) {
		bv_plot_figure *r;
		if (fig[i].skipped) {
			r = &out->skipped[out->n_skipped++];
		} else {
			if ((rc = plot_write_buf(out->stage, fig[i].name, ".dat", &fig[i].dat)) != 0 ||
			    (rc = plot_write_buf(out->stage, fig[i].name, ".gp", &fig[i].gp)) != 0)
				goto done;
			r = &out->figures[out->n_figures++];
		}
		_Static_assert(sizeof r->name == sizeof fig[i].name && sizeof r->what == sizeof fig[i].what,
			       "plot_fig and bv_plot_figure hold the same strings");
		memcpy(r->name, fig[i].name, sizeof r->name);
		memcpy(r->what, fig[i].what, sizeof r->what);
	}
done:
	if (in_txn)
		sqlite3_exec(bv_db_handle(db), "ROLLBACK", NULL, NULL, NULL);
	for (int i = 0; i < N_FIG; i++) {
		bv_buf_release(&fig[i].dat);
		bv_buf_release(&fig[i].gp);
	}
	if (rc)
		bv_plot_result_release(out);
	return rc;
}
