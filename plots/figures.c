/*
 * The seven figures of bvtool plot, as one table (figures[] below): per figure
 * its name, its query (its text goes into the data file's header, so a user
 * can re-run it in sqlite3), what its data file holds, what it shows and its
 * title (templates: {T} the temperature, {E} the epoch, {soft} the soft
 * methods drawn, {n} the figure's count of points), why it is skipped when the
 * query returns no row, its x axis and its fixed axis lines. One builder,
 * plot_figure_build, runs the query, writes the rows as NAME.dat and the
 * gnuplot script that draws them as NAME.gp, or marks the figure skipped.
 * What a figure needs of its own is a hook in its entry: `look` checks the
 * rows (skipping the figure when they have nothing to draw) and computes the
 * numbers that are not a column of the query (quadrant counts, the
 * least-squares line), which go both into the data file's header and into the
 * script; `draw` writes the plot command.
 *
 * The series of a method without data are left out of the script rather than
 * plotted empty, and a figure with no series to draw is skipped: gnuplot
 * fails on a plot without a single point. Text that a script shows is written
 * by plot_gp_str only (a quoted gnuplot literal).
 *
 * The queries read the documented tables and views. delta_scatter and
 * wsl_weights pair the sample_stats rows of one sample by hand (a join on
 * temperature, epoch, split and sample_idx) rather than read the sample_wide
 * view, whose columns hold the same rows: each data file quotes its query, and
 * the files stay what they were (tests/same_results.sh compares them whole);
 * a view of their own would be a schema change, a new schema version.
 */
#include "plot_int.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h" /* bv_correlate: plots/CMakeLists.txt says why */

#define SQL_CAP 4096

typedef struct method_style {
	bv_run_method method;
	const char *colour;
} method_style;

/* the methods the figures draw; their names (the columns' prefixes) are db's */
static const method_style methods[] = {
	{BV_RUN_CE, PLOT_CE},
	{BV_RUN_KD, PLOT_KD},
	{BV_RUN_WSL, PLOT_WSL},
};

typedef enum axis {
	AXIS_NONE,        /* the figure's axes are its axes lines' or its hook's */
	AXIS_EPOCH,       /* epochs in column 0 */
	AXIS_TEMPERATURE, /* temperatures in column 0, log scale */
} axis;

typedef struct figure figure;

/* One figure being built: its entry, the context, the query's rows, and what
 * the builder and the hooks work out. */
typedef struct fig_run {
	const figure *fg;
	plot_fig *f;
	const plot_ctx *c;
	plot_table t;         /* the rows of the query */
	char sql[SQL_CAP];    /* the query as run (@T and @E filled in) */
	char soft[64];        /* {soft}: the soft methods with points, "kd and wsl" */
	int n;                /* {n}: the points drawn, where a title counts them */
	char title[256];
	char extra[2048];     /* more header lines of the data file, "" for none */
	union {               /* what the hooks of one figure work out */
		struct {
			int n_series[2]; /* series with points, bias and variance panels */
		} bv;
		struct {
			int q[4], n_reg; /* quadrant counts, regularization samples */
			double xmax, ymax; /* half-ranges of the axes */
		} delta;
		struct {
			int has_acc; /* an accuracy series to draw on the right axis */
		} share;
		struct {
			double a, slope, r, rho; /* the line, the correlation */
			const char *source;      /* where r and rho come from */
		} corr;
		struct {
			int n_reg, n_other; /* samples in each group */
		} wsl;
		struct {
			int n_reg, n_other; /* points in each group */
		} map;
	} u;
} fig_run;

struct figure {
	const char *name;
	const char *sql;    /* @T and @E are replaced (plot_query) */
	const char *data;   /* what the rows of the data file are */
	const char *what;   /* what the figure shows (a template, as the others) */
	const char *title;
	const char *empty;  /* why it is skipped when the query has no row; NULL: look decides */
	const char *soft;   /* the columns' suffix by which {soft} is found (NULL: look sets it) */
	int soft_log;       /* ... counting only the points a log x axis draws */
	axis x;
	const char *axes;   /* the script's lines after the x axis, before draw's */
	/* check the rows, skipping the figure (fig_skip) when there is nothing
	 * to draw, and work out the figure's numbers; 0 or an error */
	int (*look)(fig_run *r);
	/* the plot command, ending with its newline */
	void (*draw)(fig_run *r, bv_buf *b);
};

/* tmpl with {T}, {E}, {soft} and {n} filled in, into out */
static void expand(char *out, size_t size, const char *tmpl, const fig_run *r)
{
	size_t len = 0;
	out[0] = '\0';
	for (const char *p = tmpl; *p && len + 1 < size; p++) {
		const char *rep = NULL;
		char num[32];
		if (strncmp(p, "{T}", 3) == 0)
			rep = r->c->t_text;
		else if (strncmp(p, "{E}", 3) == 0)
			snprintf(num, sizeof num, "%d", r->c->E), rep = num;
		else if (strncmp(p, "{n}", 3) == 0)
			snprintf(num, sizeof num, "%d", r->n), rep = num;
		else if (strncmp(p, "{soft}", 6) == 0)
			rep = r->soft;
		if (!rep) {
			out[len++] = *p;
			out[len] = '\0';
			continue;
		}
		len += (size_t)snprintf(out + len, size - len, "%s", rep);
		len = len < size ? len : size - 1;
		p = strchr(p, '}');
	}
}

/* Skip the figure: its what says why (a template). */
static void fig_skip(fig_run *r, const char *why)
{
	r->f->skipped = 1;
	expand(r->f->what, sizeof r->f->what, why, r);
}

/* "ce", "kd (T = 4)" */
static void method_label(char *out, size_t size, bv_run_method method, const plot_ctx *c)
{
	if (!bv_db_method_soft(method))
		snprintf(out, size, "%s", bv_db_method_name(method));
	else
		snprintf(out, size, "%s (T = %s)", bv_db_method_name(method), c->t_text);
}

/* the points of series <method><suffix> against column 0 */
static int series(const plot_table *t, bv_run_method method, const char *suffix, int log_x)
{
	char col[40];
	snprintf(col, sizeof col, "%s%s", bv_db_method_name(method), suffix);
	return plot_points(t, 0, col, log_x);
}

/* "kd and wsl", "kd" or "wsl": the soft methods with points in column <method><suffix>, in out */
static const char *soft_methods(char *out, size_t size, const plot_table *t, const char *suffix,
				int log_x)
{
	const char *kd = bv_db_method_name(BV_RUN_KD), *wsl = bv_db_method_name(BV_RUN_WSL);
	const int has_kd = series(t, BV_RUN_KD, suffix, log_x) > 0;
	const int has_wsl = series(t, BV_RUN_WSL, suffix, log_x) > 0;
	if (has_kd && has_wsl)
		snprintf(out, size, "%s and %s", kd, wsl);
	else
		snprintf(out, size, "%s", has_wsl ? wsl : has_kd ? kd : "no soft method");
	return out;
}

/* the x range of a per-epoch figure (column 0; the caller has points): one epoch alone gets some room */
static void epoch_axis(bv_buf *b, const plot_table *t)
{
	double lo, hi;
	plot_range(t, 0, 0, &lo, &hi);
	if (lo == hi)
		plot_printf(b, "set xrange [%g:%g]\n", lo - 1, hi + 1);
	else
		plot_printf(b, "set xrange [%g:%g]\n", lo - 0.25, hi + 0.25);
	if (hi - lo <= 15)
		plot_printf(b, "set xtics 1\n");
	plot_printf(b, "set xlabel 'epoch'\n");
}

/* the log x axis of the temperatures > 0 in column 0 (the caller has points), a tic at each */
static void temperature_axis(bv_buf *b, const plot_table *t)
{
	double lo, hi;
	int first = 1;
	plot_range(t, 0, 1, &lo, &hi);
	plot_printf(b, "set logscale x 2\nset xrange [%.6g:%.6g]\nset xtics (", lo / 1.5, hi * 1.5);
	for (int i = 0; i < t->n_rows; i++) {
		const double x = t->v[(size_t)i * t->n_cols];
		if (x > 0) {
			plot_printf(b, "%s%.12g", first ? "" : ", ", x);
			first = 0;
		}
	}
	plot_printf(b, ")\nset xlabel 'temperature T (log scale)'\n");
}

/* ---- 1. mean bias and variance per epoch ------------------------------------------ */

static int bias_variance_look(fig_run *r)
{
	int *n_series = r->u.bv.n_series;
	for (int panel = 0; panel < 2; panel++)
		for (size_t m = 0; m < BV_ARRAY_LEN(methods); m++)
			n_series[panel] += series(&r->t, methods[m].method, panel ? "_variance" : "_bias", 0) > 0;
	if (n_series[0] + n_series[1] == 0) {
		fig_skip(r, "no finite mean bias or variance at T = {T}");
		return 0;
	}
	soft_methods(r->soft, sizeof r->soft, &r->t, n_series[0] ? "_bias" : "_variance", 0);
	return 0;
}

/* two panels under one title, and one key for both in a strip below them (a
 * key below one panel would wrap to that panel's width) */
static void bias_variance_draw(fig_run *r, bv_buf *b)
{
	const plot_table *t = &r->t;
	const int *n_series = r->u.bv.n_series;
	char label[300];
	plot_printf(b, "unset title\nunset key\nset multiplot title ");
	plot_gp_str(b, "%s", r->title);
	plot_printf(b, " font ',13'\nset size 0.5, 0.84\n");
	for (int panel = 0; panel < 3; panel++) {
		const char *q = panel == 1 ? "variance" : "bias";
		int first = 1;
		if (panel < 2)
			plot_printf(b, "\nset origin %s, 0.09\nset ylabel 'mean %s (nats)'\n", panel ? "0.5" : "0", q);
		if (panel < 2 && n_series[panel] == 0) {
			/* a panel without a point: an empty frame saying so (gnuplot fails on no point) */
			plot_printf(b, "set yrange [0:1]\nset label 1 'no finite values' at graph 0.5, graph 0.5 center\n"
				       "plot NaN notitle\nunset label 1\nset autoscale y\n");
			continue;
		}
		if (panel < 2)
			plot_printf(b, "plot ");
		else
			plot_printf(b, "\n# the key\nset size 1, 0.09\nset origin 0, 0\n"
				       "unset border\nunset tics\nunset grid\nunset xlabel\nunset ylabel\n"
				       "set xrange [0:1]\nset yrange [0:1]\n"
				       "set key center center horizontal\nplot ");
		for (size_t m = 0; m < BV_ARRAY_LEN(methods); m++) {
			char col[32];
			snprintf(col, sizeof col, "%s_%s", bv_db_method_name(methods[m].method), q);
			/* the key lists the methods drawn in either panel */
			if (panel < 2 ? !series(t, methods[m].method, panel ? "_variance" : "_bias", 0)
				      : !series(t, methods[m].method, "_bias", 0) && !series(t, methods[m].method, "_variance", 0))
				continue;
			method_label(label, sizeof label, methods[m].method, r->c);
			if (panel < 2)
				plot_printf(b, "%s'%s.dat' using 1:%d", first ? "" : ", \\\n     ", r->f->name,
					    plot_col(t, col) + 1);
			else
				plot_printf(b, "%sNaN", first ? "" : ", \\\n     ");
			plot_printf(b, " with linespoints lw 2 pt 7 ps 1.1 lc rgb '%s' title ", methods[m].colour);
			plot_gp_str(b, "%s", label);
			first = 0;
		}
		plot_printf(b, "\n");
	}
	plot_printf(b, "unset multiplot\n");
}

/* ---- 2. per-sample kd - ce differences ------------------------------------------------ */

/* quadrants, counter-clockwise from the upper right; a zero difference counts as down */
static const char *const quad_name[4] = {"bias up, variance up", "bias up, variance down",
					 "bias down, variance down", "bias down, variance up"};

static int delta_scatter_look(fig_run *r)
{
	const plot_table *t = &r->t;
	int *q = r->u.delta.q, n = 0, n_reg = 0;
	double xmax = 0, ymax = 0;
	char crit[sizeof r->c->criterion];
	/* the samples with both differences (gnuplot draws no other) */
	for (int i = 0; i < t->n_rows; i++) {
		const double dv = t->v[(size_t)i * t->n_cols + 1], db = t->v[(size_t)i * t->n_cols + 2];
		if (isnan(dv) || isnan(db))
			continue;
		n++;
		q[db > 0 ? (dv > 0 ? 0 : 1) : (dv > 0 ? 3 : 2)]++;
		n_reg += t->v[(size_t)i * t->n_cols + 3] == 1;
		xmax = fmax(xmax, fabs(dv));
		ymax = fmax(ymax, fabs(db));
	}
	if (n == 0) {
		fig_skip(r, "no finite kd - ce differences at T = {T}, epoch {E}");
		return 0;
	}
	/* symmetric ranges, so that each quadrant's label sits in its quadrant, and
	 * 40% of room above and below the farthest point, so that the labels
	 * (two text lines at the top and bottom) never hide a point */
	r->u.delta.xmax = xmax > 0 ? 1.05 * xmax : 1;
	r->u.delta.ymax = ymax > 0 ? 1.4 * ymax : 1;
	r->u.delta.n_reg = n_reg;
	r->n = n;
	plot_comment_text(crit, sizeof crit, r->c->criterion);
	snprintf(r->extra, 1024,
		 "# quadrant counts (d_bias > 0 is up, d_variance > 0 is right; 0 counts as down / left), %d samples%s:\n"
		 "#   %s: %d\n#   %s: %d\n#   %s: %d\n#   %s: %d\n"
		 "# regularization samples (criterion %s): %d\n",
		 n, n < t->n_rows ? " (the rows with a NaN left out)" : "", quad_name[0], q[0], quad_name[1], q[1],
		 quad_name[2], q[2], quad_name[3], q[3], crit, n_reg);
	return 0;
}

static void delta_scatter_draw(fig_run *r, bv_buf *b)
{
	static const char *const quad_at[4] = {"graph 0.98, graph 0.96 right", "graph 0.02, graph 0.96 left",
					       "graph 0.02, graph 0.06 left", "graph 0.98, graph 0.06 right"};
	const int *q = r->u.delta.q, n = r->n, n_reg = r->u.delta.n_reg;
	const double xmax = r->u.delta.xmax, ymax = r->u.delta.ymax;
	plot_printf(b,
		    "set xlabel 'Δ variance = kd − ce (nats)'\n"
		    "set ylabel 'Δ bias = kd − ce (nats)'\n"
		    "set xrange [%.6g:%.6g]\nset yrange [%.6g:%.6g]\n"
		    "set xzeroaxis lt -1 lw 1.5\nset yzeroaxis lt -1 lw 1.5\n"
		    "set key outside bottom center horizontal\n"
		    "set style textbox opaque noborder\n",
		    -xmax, xmax, -ymax, ymax);
	/* two lines: two literals joined by a newline */
	for (int k = 0; k < 4; k++) {
		plot_printf(b, "set label %d ", k + 1);
		plot_gp_str(b, "%s", quad_name[k]);
		plot_printf(b, ".\"\\n\".");
		plot_gp_str(b, "%d (%.1f%%)", q[k], 100.0 * q[k] / n);
		plot_printf(b, " at %s front boxed\n", quad_at[k]);
	}
	/* a group without a point is left out (gnuplot warns about it) */
	plot_printf(b, "plot ");
	if (n - n_reg > 0) {
		plot_printf(b, "'%s.dat' using 2:($4 == 1 ? NaN : $3) with points pt 7 ps 0.35 lc rgb '#8fa8c8' title ",
			    r->f->name);
		plot_gp_str(b, "other test samples (%d)", n - n_reg);
	}
	if (n_reg > 0) {
		plot_printf(b, "%s'%s.dat' using 2:($4 == 1 ? $3 : NaN) with points pt 7 ps 0.35 lc rgb '%s' title ",
			    n - n_reg > 0 ? ", \\\n     " : "", r->f->name, PLOT_WSL);
		plot_gp_str(b, "kd regularization samples, criterion %s (%d)", r->c->criterion, n_reg);
	}
	plot_printf(b, "\n");
}

/* ---- 3 and 4: per temperature ------------------------------------------------------------ */

/* kd / wsl at every temperature decomposed at epoch E: the share and number of
 * regularization samples, and the students' mean test accuracy at E over the
 * decomposition's (paired) seeds */
#define PER_T_ACC(m)                                                                                   \
	"       (SELECT 100.0 * avg(m.test_acc) FROM runs r JOIN metrics m ON m.run_id = r.id AND m.epoch = d.epoch\n" \
	"        WHERE r.method = '" m "' AND r.temperature = d.temperature AND r." BV_DB_SQL_DONE "\n"    \
	"          AND instr(',' || d.seeds || ',', ',' || r.seed || ',') > 0) AS " m "_acc_pct"
#define PER_T_REG(agg, m, as)                                                                             \
	"       (SELECT " agg " FROM sample_stats s WHERE s.temperature = d.temperature AND s.epoch = d.epoch\n" \
	"        AND s.split = d.split AND s.method = '" m "') AS " as

static int share_look(fig_run *r)
{
	if (!series(&r->t, BV_RUN_KD, "_share_pct", 1) && !series(&r->t, BV_RUN_WSL, "_share_pct", 1)) {
		fig_skip(r, "no kd or wsl students decomposed at epoch {E}");
		return 0;
	}
	r->u.share.has_acc =
		series(&r->t, BV_RUN_KD, "_acc_pct", 1) || series(&r->t, BV_RUN_WSL, "_acc_pct", 1);
	return 0;
}

static void share_draw(fig_run *r, bv_buf *b)
{
	if (r->u.share.has_acc)
		plot_printf(b, "set y2label 'mean test accuracy (%%)'\nset ytics nomirror\nset y2tics\n");
	plot_printf(b, "set offsets 0, 0, graph 0.08, graph 0.08\n"
		       "set key outside bottom center horizontal maxcols 2\n"
		       "plot ");
	int first = 1;
	for (int pass = 0; pass < 2; pass++)
		for (size_t m = 1; m < BV_ARRAY_LEN(methods); m++) {
			char col[32];
			snprintf(col, sizeof col, "%s_%s", bv_db_method_name(methods[m].method),
				 pass ? "acc_pct" : "share_pct");
			if (!plot_points(&r->t, 0, col, 1))
				continue;
			plot_printf(b, "%s'%s.dat' using 1:%d axes x1y%d with linespoints lw 2 %s lc rgb '%s' title ",
				    first ? "" : ", \\\n     ", r->f->name, plot_col(&r->t, col) + 1, pass + 1,
				    pass ? "dt 2 pt 5 ps 1.2" : "pt 7 ps 1.3", methods[m].colour);
			plot_gp_str(b, "%s: %s", bv_db_method_name(methods[m].method),
				    pass ? "mean test accuracy (right axis)" : "regularization samples (left axis)");
			first = 0;
		}
	plot_printf(b, "\n");
}

static const char count_corr_sql[] = "SELECT pearson_r, spearman_rho, n_points FROM correlations\n"
				      "WHERE split = 'test' AND epoch = @E AND method = 'kd'";

static int count_look(fig_run *r)
{
	char ctext[SQL_CAP];
	double x[64], y[64];
	plot_table ct = {0};
	int n = 0, rc;
	for (int i = 0; i < r->t.n_rows && n < 64; i++) {
		x[n] = plot_at(&r->t, i, "kd_acc_pct");
		y[n] = plot_at(&r->t, i, "kd_count");
		n += !isnan(x[n]) && !isnan(y[n]);
	}
	if (n == 0) {
		if (plot_has(&r->t, "kd_count"))
			fig_skip(r, "no kd test accuracy recorded at epoch {E}");
		else
			fig_skip(r, "no kd students decomposed at epoch {E}");
		return 0;
	}
	if ((rc = plot_query(&ct, ctext, sizeof ctext, r->c, count_corr_sql)) != 0)
		return rc;

	/* least squares count = a + b * accuracy; defined with two distinct accuracies */
	double mx = 0, my = 0, sxx = 0, sxy = 0, a = NAN, slope = NAN;
	for (int i = 0; i < n; i++) {
		mx += x[i] / n;
		my += y[i] / n;
	}
	for (int i = 0; i < n; i++) {
		sxx += (x[i] - mx) * (x[i] - mx);
		sxy += (x[i] - mx) * (y[i] - my);
	}
	if (n >= 2 && sxx > 0 && isfinite(sxx) && isfinite(sxy)) {
		slope = sxy / sxx;
		a = my - slope * mx;
	}
	if (!isfinite(a) || !isfinite(slope))
		a = slope = NAN;
	/* r and rho: the correlations table (written by decompose), else from these points */
	double cr = NAN, rho = NAN;
	const char *source;
	if (ct.n_rows > 0) {
		cr = plot_at(&ct, 0, "pearson_r");
		rho = plot_at(&ct, 0, "spearman_rho");
		source = "the correlations table";
	} else {
		bv_corr bc;
		if (bv_correlate(&bc, x, y, n) == 0) {
			cr = bc.r;
			rho = bc.rho;
		}
		bv_error_clear();
		source = "these points";
	}
	char *extra = r->extra;
	const size_t cap = sizeof r->extra;
	size_t len = (size_t)snprintf(extra, cap,
				      "# least squares: kd_count = a + b * kd_acc_pct with a = %.12g, b = %.12g (%d points)\n"
				      "# Pearson r = %.12g, Spearman rho = %.12g, from %s",
				      a, slope, n, cr, rho, source);
	if (ct.n_rows > 0) {
		len += (size_t)snprintf(extra + len, cap - len, ":\n#   ");
		for (const char *p = ctext; *p && len + 8 < cap; p++)
			len += (size_t)snprintf(extra + len, cap - len, *p == '\n' ? "\n#   " : "%c", *p);
	}
	snprintf(extra + len, cap - len, "\n");
	plot_table_release(&ct);
	r->n = n;
	r->u.corr.a = a;
	r->u.corr.slope = slope;
	r->u.corr.r = cr;
	r->u.corr.rho = rho;
	r->u.corr.source = source;
	return 0;
}

static void count_draw(fig_run *r, bv_buf *b)
{
	const double a = r->u.corr.a, slope = r->u.corr.slope, cr = r->u.corr.r, rho = r->u.corr.rho;
	const int n = r->n;
	char key[256];
	if (!isnan(slope))
		plot_printf(b, "a = %.12g\nb = %.12g\nfit_line(x) = a + b * x\n", a, slope);
	plot_printf(b,
		    "plot '%s.dat' using 2:3 with points pt 7 ps 1.6 lc rgb '%s' title 'kd, one point per temperature', \\\n"
		    "     '%s.dat' using 2:3:(sprintf('T = %%g', $1)) with labels offset char 1.2, char 0.9 left notitle",
		    r->f->name, PLOT_KD, r->f->name);
	if (isnan(cr))
		snprintf(key, sizeof key, "r and rho: not defined (%d point%s)", n, n == 1 ? "" : "s");
	else
		snprintf(key, sizeof key, "Pearson r = %.3f, Spearman rho = %.3f (%d temperatures; from %s)", cr, rho, n,
			 r->u.corr.source);
	if (!isnan(slope)) {
		plot_printf(b, ", \\\n     fit_line(x) with lines lw 2 dt 2 lc rgb '%s' title ", PLOT_CE);
		plot_gp_str(b, "least squares: count = %.1f %+.1f × accuracy", a, slope);
	}
	plot_printf(b, ", \\\n     NaN with lines lc rgb 'white' title ");
	plot_gp_str(b, "%s", key);
	plot_printf(b, "\n");
}

/* ---- 5. test accuracy per epoch ------------------------------------------------------------ */

#define ACC_BAND(cond, m)                                                      \
	"       avg(CASE WHEN " cond " THEN 100.0 * m.test_acc END) AS " m "_mean,\n" \
	"       min(CASE WHEN " cond " THEN 100.0 * m.test_acc END) AS " m "_min,\n"  \
	"       max(CASE WHEN " cond " THEN 100.0 * m.test_acc END) AS " m "_max"

static int accuracy_look(fig_run *r)
{
	if (!series(&r->t, BV_RUN_CE, "_mean", 0) && !series(&r->t, BV_RUN_KD, "_mean", 0) &&
	    !series(&r->t, BV_RUN_WSL, "_mean", 0))
		fig_skip(r, "no test accuracy recorded");
	return 0;
}

/* the bands first, the lines over them: no band hides a line (the libgd png has no transparency) */
static void accuracy_draw(fig_run *r, bv_buf *b)
{
	const plot_table *t = &r->t;
	char label[300];
	int first = 1;
	plot_printf(b, "plot ");
	for (int pass = 0; pass < 2; pass++)
		for (size_t m = 0; m < BV_ARRAY_LEN(methods); m++) {
			char col[32];
			snprintf(col, sizeof col, "%s_mean", bv_db_method_name(methods[m].method));
			if (!plot_points(t, 0, col, 0))
				continue;
			const int j = plot_col(t, col) + 1;
			method_label(label, sizeof label, methods[m].method, r->c);
			plot_printf(b, "%s'%s.dat' ", first ? "" : ", \\\n     ", r->f->name);
			if (pass == 0) {
				plot_printf(b, "using 1:%d:%d with filledcurves lc rgb '%s' notitle", j + 1, j + 2,
					    methods[m].colour);
			} else {
				plot_printf(b, "using 1:%d with linespoints lw 2 pt 7 ps 1.1 lc rgb '%s' title ", j,
					    methods[m].colour);
				plot_gp_str(b, "%s", label);
			}
			first = 0;
		}
	for (int i = 0; i < t->n_rows; i++) {
		const double teacher = plot_at(t, i, "teacher");
		if (isnan(teacher) || isnan(t->v[(size_t)i * t->n_cols]))
			continue;
		plot_printf(b, ", \\\n     '%s.dat' using 1:%d with lines lw 2 dt 2 lc rgb 'black' title ", r->f->name,
			    plot_col(t, "teacher") + 1);
		plot_gp_str(b, "teacher (%.2f%%)", teacher);
		break;
	}
	plot_printf(b, "\n");
}

/* ---- 6. WSL weights of kd regularization samples vs the rest --------------------------------- */

static int wsl_look(fig_run *r)
{
	int n_reg = 0, n_other = 0;
	for (int i = 0; i < r->t.n_rows; i++) {
		const double reg = plot_at(&r->t, i, "n_kd_regularization");
		const double other = plot_at(&r->t, i, "n_other");
		n_reg += reg >= 0 && reg < 1e9 ? (int)reg : 0;
		n_other += other >= 0 && other < 1e9 ? (int)other : 0;
	}
	if (n_reg + n_other == 0)
		fig_skip(r, "no wsl students with WSL weights and kd students decomposed at T = {T}, epoch {E}");
	r->u.wsl.n_reg = n_reg;
	r->u.wsl.n_other = n_other;
	return 0;
}

/* a group without a sample is left out (its shares are NaN) */
static void wsl_draw(fig_run *r, bv_buf *b)
{
	const int n_reg = r->u.wsl.n_reg, n_other = r->u.wsl.n_other;
	plot_printf(b, "plot ");
	if (n_reg > 0) {
		plot_printf(b, "'%s.dat' using (($1 + $2) / 2 - 0.0115):5 with boxes lc rgb '%s' title ", r->f->name,
			    PLOT_WSL);
		plot_gp_str(b, "kd regularization samples (%d)", n_reg);
	}
	if (n_other > 0) {
		plot_printf(b, "%s'%s.dat' using (($1 + $2) / 2 + 0.0115):6 with boxes lc rgb '%s' title ",
			    n_reg > 0 ? ", \\\n     " : "", r->f->name, PLOT_KD);
		plot_gp_str(b, "other test samples (%d)", n_other);
	}
	plot_printf(b, "\n");
}

/* ---- 7. the data map of the kd students ------------------------------------------------------ */

/* The group means of one column, regularization samples (g 1) and the others (g 0), the NaNs
 * (a NULL first_learned: no seed learned the sample) left out. */
static void group_means(const plot_table *t, const char *col, double out[2])
{
	double sum[2] = {0, 0};
	int n[2] = {0, 0};
	const int j = plot_col(t, col), jr = plot_col(t, "regularization");
	for (int i = 0; i < t->n_rows; i++) {
		const double v = t->v[(size_t)i * t->n_cols + j];
		const int g = t->v[(size_t)i * t->n_cols + jr] == 1;
		if (!isnan(v)) {
			sum[g] += v;
			n[g]++;
		}
	}
	for (int g = 0; g < 2; g++)
		out[g] = n[g] ? sum[g] / n[g] : NAN;
}

static int data_map_look(fig_run *r)
{
	const plot_table *t = &r->t;
	int n = 0, n_reg = 0, rc;
	/* the view averages these columns: text in them would count as 0 */
	if ((rc = bv_db_check_dynamics(r->c->db)) != 0)
		return rc;
	for (int i = 0; i < t->n_rows; i++) {
		const double v = plot_at(t, i, "variability"), c = plot_at(t, i, "confidence");
		if (isnan(v) || isnan(c))
			continue;
		n++;
		n_reg += plot_at(t, i, "regularization") == 1;
	}
	if (n == 0) {
		fig_skip(r, "no training dynamics of kd students at T = {T} (run bvtool dynamics)");
		return 0;
	}
	r->n = n;
	r->u.map.n_reg = n_reg;
	r->u.map.n_other = n - n_reg;
	/* what the figure says in numbers: each group's means, for docs/results.md to quote */
	static const char *const cols[] = {"confidence", "variability", "correctness", "forgetting",
					   "first_learned", "not_learned"};
	size_t len = (size_t)snprintf(r->extra, sizeof r->extra,
				      "# group means (regularization samples at epoch %d | the other samples), %d | %d "
				      "samples%s:\n",
				      r->c->E, n_reg, n - n_reg, n < t->n_rows ? " (rows with a NaN left out)" : "");
	for (size_t k = 0; k < BV_ARRAY_LEN(cols) && len < sizeof r->extra; k++) {
		double m[2];
		group_means(t, cols[k], m);
		len += (size_t)snprintf(r->extra + len, sizeof r->extra - len, "#   %s: %.6g | %.6g\n", cols[k],
					m[1], m[0]);
	}
	return 0;
}

static void data_map_draw(fig_run *r, bv_buf *b)
{
	const int n_reg = r->u.map.n_reg, n_other = r->u.map.n_other;
	/* the regularization samples last, over the others */
	plot_printf(b, "plot ");
	if (n_other > 0) {
		plot_printf(b, "'%s.dat' using 2:($4 == 1 ? NaN : $3) with points pt 7 ps 0.35 lc rgb '#8fa8c8' title ",
			    r->f->name);
		plot_gp_str(b, "other test samples (%d)", n_other);
	}
	if (n_reg > 0) {
		plot_printf(b, "%s'%s.dat' using 2:($4 == 1 ? $3 : NaN) with points pt 7 ps 0.35 lc rgb '%s' title ",
			    n_other > 0 ? ", \\\n     " : "", r->f->name, PLOT_WSL);
		plot_gp_str(b, "kd regularization samples at epoch %d, criterion %s (%d)", r->c->E, r->c->criterion,
			    n_reg);
	}
	plot_printf(b, "\n");
}

/* ---- the table ----------------------------------------------------------------------------- */

static const figure figures[] = {
	{
		.name = "bias_variance",
		.sql = "SELECT epoch,\n"
		       "       max(CASE WHEN method = 'ce' THEN mean_bias END) AS ce_bias,\n"
		       "       max(CASE WHEN method = 'ce' THEN mean_variance END) AS ce_variance,\n"
		       "       max(CASE WHEN method = 'kd' THEN mean_bias END) AS kd_bias,\n"
		       "       max(CASE WHEN method = 'kd' THEN mean_variance END) AS kd_variance,\n"
		       "       max(CASE WHEN method = 'wsl' THEN mean_bias END) AS wsl_bias,\n"
		       "       max(CASE WHEN method = 'wsl' THEN mean_variance END) AS wsl_variance\n"
		       "FROM regularization_counts\n"
		       "WHERE split = 'test' AND temperature = @T\n"
		       "GROUP BY epoch ORDER BY epoch",
		.data = "mean bias and variance (nats) over the test samples, per decomposed epoch",
		.what = "mean bias and variance over the test samples against epoch: ce, {soft} at T = {T}",
		.title = "Mean bias and variance of the test samples ({soft} at T = {T})",
		.empty = "no test-split decomposition at T = {T}",
		.x = AXIS_EPOCH,
		.look = bias_variance_look,
		.draw = bias_variance_draw,
	},
	{
		.name = "delta_scatter",
		.sql = "SELECT k.sample_idx,\n"
		       "       k.variance - c.variance AS d_variance,\n"
		       "       k.bias - c.bias AS d_bias,\n"
		       "       k.regularization\n"
		       "FROM sample_stats k\n"
		       "JOIN sample_stats c ON c.temperature = k.temperature AND c.epoch = k.epoch\n"
		       "  AND c.split = k.split AND c.sample_idx = k.sample_idx AND c.method = 'ce'\n"
		       "WHERE k.method = 'kd' AND k.temperature = @T AND k.epoch = @E AND k.split = 'test'\n"
		       "ORDER BY k.sample_idx",
		.data = "per test sample: kd minus ce bias and variance (nats), and the kd regularization flag",
		.what = "per-sample kd - ce change of bias against change of variance at T = {T}, epoch {E}, "
			"regularization samples highlighted, quadrant counts",
		.title = "Per-sample change from ce to kd (T = {T}, epoch {E}, {n} test samples)",
		.empty = "no kd students decomposed at T = {T}, epoch {E}",
		.look = delta_scatter_look,
		.draw = delta_scatter_draw,
	},
	{
		.name = "share_vs_temperature",
		.sql = "SELECT d.temperature,\n" PER_T_REG("100.0 * avg(s.regularization)", "kd",
							   "kd_share_pct") ",\n"
		       PER_T_REG("100.0 * avg(s.regularization)", "wsl", "wsl_share_pct") ",\n"
		       PER_T_ACC("kd") ",\n" PER_T_ACC("wsl") "\n"
		       "FROM decompositions d\n"
		       "WHERE d.split = 'test' AND d.epoch = @E\n"
		       "ORDER BY d.temperature",
		.data = "per decomposed temperature at the epoch: share of regularization samples (%) and mean "
			"test accuracy (%)",
		.what = "share of {soft} regularization samples, and mean test accuracy, against temperature "
			"(epoch {E})",
		.title = "Regularization samples and accuracy against temperature (test split, epoch {E})",
		.soft = "_share_pct",
		.soft_log = 1,
		.x = AXIS_TEMPERATURE,
		.axes = "set ylabel 'regularization samples (% of test samples)'\n",
		.look = share_look,
		.draw = share_draw,
	},
	{
		.name = "count_vs_accuracy",
		.sql = "SELECT d.temperature,\n" PER_T_ACC("kd") ",\n"
		       PER_T_REG("sum(s.regularization)", "kd", "kd_count") "\n"
		       "FROM decompositions d\n"
		       "WHERE d.split = 'test' AND d.epoch = @E\n"
		       "ORDER BY d.temperature",
		.data = "per decomposed temperature at the epoch: kd mean test accuracy (%) and regularization "
			"count",
		.what = "kd regularization-sample count against kd mean test accuracy, one point per temperature "
			"(epoch {E}), least-squares line, r and rho",
		.title = "kd: regularization samples against accuracy across temperatures (epoch {E})",
		.axes = "set xlabel 'kd mean test accuracy (%)'\n"
			"set ylabel 'kd regularization samples (count of test samples)'\n"
			"set offsets graph 0.15, graph 0.15, graph 0.15, graph 0.15\n"
			"set key outside bottom center vertical\n",
		.look = count_look,
		.draw = count_draw,
	},
	{
		.name = "accuracy_epochs",
		.sql = "SELECT m.epoch,\n" ACC_BAND("r.method = 'ce'", "ce") ",\n"
		       ACC_BAND("r.method = 'kd' AND r.temperature = @T", "kd") ",\n"
		       ACC_BAND("r.method = 'wsl' AND r.temperature = @T", "wsl") ",\n"
		       "       (SELECT 100.0 * test_acc FROM runs WHERE method = 'teacher' AND "
		       BV_DB_SQL_DONE ") AS teacher\n"
		       "FROM metrics m JOIN runs r ON r.id = m.run_id\n"
		       "WHERE r." BV_DB_SQL_DONE " AND r.method IN ('ce', 'kd', 'wsl')\n"
		       "GROUP BY m.epoch ORDER BY m.epoch",
		.data = "test accuracy (%) of the finished runs per epoch: mean, min and max over seeds; teacher: "
			"final",
		.what = "test accuracy against epoch: teacher, ce, {soft} at T = {T} (mean and min-max over seeds)",
		.title = "Test accuracy per epoch ({soft} at T = {T}; bands: min–max over seeds)",
		.empty = "no finished ce, kd or wsl runs",
		.soft = "_mean",
		.x = AXIS_EPOCH,
		.axes = "set ylabel 'test accuracy (%)'\n"
			"set offsets 0, 0, graph 0.05, graph 0.05\n"
			"set key outside bottom center horizontal\n"
			"set style fill transparent solid 0.2 noborder\n",
		.look = accuracy_look,
		.draw = accuracy_draw,
	},
	{
		.name = "wsl_weights",
		.sql = "WITH w(bin, reg) AS (\n"
		       "  SELECT min(CAST(s.wsl_weight * 20 AS INTEGER), 19), k.regularization\n"
		       "  FROM sample_stats s\n"
		       "  JOIN sample_stats k ON k.temperature = s.temperature AND k.epoch = s.epoch\n"
		       "    AND k.split = s.split AND k.sample_idx = s.sample_idx AND k.method = 'kd'\n"
		       "  WHERE s.method = 'wsl' AND s.temperature = @T AND s.epoch = @E AND s.split = 'test'\n"
		       "    AND s.wsl_weight IS NOT NULL),\n"
		       "bins(bin) AS (SELECT 0 UNION ALL SELECT bin + 1 FROM bins WHERE bin < 19)\n"
		       "SELECT bins.bin * 0.05 AS weight_lo, (bins.bin + 1) * 0.05 AS weight_hi,\n"
		       "       count(CASE WHEN w.reg = 1 THEN 1 END) AS n_kd_regularization,\n"
		       "       count(CASE WHEN w.reg = 0 THEN 1 END) AS n_other,\n"
		       "       100.0 * count(CASE WHEN w.reg = 1 THEN 1 END) / (SELECT count(*) FROM w WHERE reg = 1)\n"
		       "         AS pct_kd_regularization,\n"
		       "       100.0 * count(CASE WHEN w.reg = 0 THEN 1 END) / (SELECT count(*) FROM w WHERE reg = 0)\n"
		       "         AS pct_other\n"
		       "FROM bins LEFT JOIN w ON w.bin = bins.bin\n"
		       "GROUP BY bins.bin ORDER BY bins.bin",
		.data = "WSL weights of the wsl students (mean over seeds) in 20 bins: count and % of each group, "
			"the group being whether kd flags the sample as a regularization sample",
		.what = "distribution of the wsl students' WSL weights at T = {T}, epoch {E}: kd regularization "
			"samples vs the rest",
		.title = "WSL weights of the test samples (T = {T}, epoch {E})",
		.axes = "set xlabel 'WSL weight of the wsl students (mean over seeds; 0 to 1)'\n"
			"set ylabel 'share of the group (%)'\n"
			"set xrange [0:1]\nset xtics 0.1\nset yrange [0:*]\n"
			"set offsets 0, 0, graph 0.05, 0\n"
			"set key outside bottom center horizontal\n"
			"set style fill solid 0.6 border lc rgb 'white'\n"
			"set boxwidth 0.022\n",
		.look = wsl_look,
		.draw = wsl_draw,
	},
	{
		.name = "data_map",
		.sql = "SELECT d.sample_idx, d.variability, d.confidence, s.regularization, d.correctness,\n"
		       "       d.forgetting, d.first_learned, d.n_runs - d.n_learned AS not_learned, d.n_runs,\n"
		       "       d.min_epochs\n"
		       "FROM dynamics_by_method d\n"
		       "LEFT JOIN sample_stats s ON s.temperature = d.temperature AND s.epoch = @E\n"
		       "  AND s.split = d.split AND s.method = d.method AND s.sample_idx = d.sample_idx\n"
		       "WHERE d.method = 'kd' AND d.temperature = @T AND d.split = 'test'\n"
		       "ORDER BY d.sample_idx",
		.data = "per test sample: the kd students' training dynamics (means over seeds, bvtool dynamics) "
			"and the kd regularization flag at the epoch",
		.what = "data map of the kd students at T = {T}: confidence against variability per test sample "
			"(mean over seeds), regularization samples at epoch {E} highlighted",
		.title = "Data map of the kd students (T = {T}, {n} test samples)",
		.axes = "set xlabel 'variability: std of p(true) over the recorded epochs (mean over seeds)'\n"
			"set ylabel 'confidence: mean p(true) over the recorded epochs (mean over seeds)'\n"
			"set xrange [0:*]\nset yrange [0:1]\n"
			"set key outside bottom center horizontal\n",
		.look = data_map_look,
		.draw = data_map_draw,
	},
};
_Static_assert(BV_ARRAY_LEN(figures) == PLOT_N_FIGURES, "PLOT_N_FIGURES is the table's length");

/* ---- the builder ------------------------------------------------------------------------------ */

const char *plot_figure_name(int i)
{
	return figures[i].name;
}

int plot_figure_build(int i, plot_fig *f, const plot_ctx *c)
{
	const figure *fg = &figures[i];
	fig_run *r = calloc(1, sizeof *r);
	int rc;
	if (!r)
		return bv_error_set(BV_ENOMEM, "out of memory building the figure '%s'", fg->name);
	r->fg = fg;
	r->f = f;
	r->c = c;
	if ((rc = plot_query(&r->t, r->sql, sizeof r->sql, c, fg->sql)) != 0)
		goto done;
	if (fg->empty && r->t.n_rows == 0)
		fig_skip(r, fg->empty);
	else if (fg->look)
		rc = fg->look(r);
	if (rc || f->skipped)
		goto done;
	if (fg->soft)
		soft_methods(r->soft, sizeof r->soft, &r->t, fg->soft, fg->soft_log);
	plot_dat(f, c, fg->data, r->sql, &r->t, r->extra[0] ? r->extra : NULL);
	expand(f->what, sizeof f->what, fg->what, r);
	expand(r->title, sizeof r->title, fg->title, r);
	plot_gp_head(f, c, r->title);
	bv_buf *b = &f->gp;
	if (fg->x == AXIS_EPOCH)
		epoch_axis(b, &r->t);
	else if (fg->x == AXIS_TEMPERATURE)
		temperature_axis(b, &r->t);
	if (fg->axes)
		plot_printf(b, "%s", fg->axes);
	fg->draw(r, b);
	plot_printf(b, "unset output\n");
done:
	plot_table_release(&r->t);
	free(r);
	return rc;
}
