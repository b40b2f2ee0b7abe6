/*
 * The six figures of bvtool plot. Each function runs one query (its text goes
 * into the data file's header, so a user can re-run it in sqlite3), writes the
 * rows as NAME.dat and the gnuplot script that draws them as NAME.gp, or marks
 * the figure skipped when the database has nothing for it (e.g. no wsl runs).
 * The series of a method without data are left out of the script rather than
 * plotted empty, and a figure with no series to draw is skipped: gnuplot
 * fails on a plot without a single point. Numbers that are not a column of
 * the query (quadrant counts, the least-squares line) are computed here and
 * written both into the data file's header and into the script. Text that a
 * script shows is written by plot_gp_str only (a quoted gnuplot literal).
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
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "analysis.h"

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

/* "ce", "kd (T = 4)" */
static void method_label(char *out, size_t size, bv_run_method method, const plot_ctx *c)
{
	if (!bv_db_method_soft(method))
		snprintf(out, size, "%s", bv_db_method_name(method));
	else
		snprintf(out, size, "%s (T = %s)", bv_db_method_name(method), c->t_text);
}

static void skip(plot_fig *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void skip(plot_fig *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	f->skipped = 1;
	vsnprintf(f->what, sizeof f->what, fmt, ap);
	va_end(ap);
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

/* ---- 1. mean bias and variance per epoch ------------------------------------------ */

int plot_bias_variance(plot_fig *f, const plot_ctx *c)
{
	static const char *sql =
		"SELECT epoch,\n"
		"       max(CASE WHEN method = 'ce' THEN mean_bias END) AS ce_bias,\n"
		"       max(CASE WHEN method = 'ce' THEN mean_variance END) AS ce_variance,\n"
		"       max(CASE WHEN method = 'kd' THEN mean_bias END) AS kd_bias,\n"
		"       max(CASE WHEN method = 'kd' THEN mean_variance END) AS kd_variance,\n"
		"       max(CASE WHEN method = 'wsl' THEN mean_bias END) AS wsl_bias,\n"
		"       max(CASE WHEN method = 'wsl' THEN mean_variance END) AS wsl_variance\n"
		"FROM regularization_counts\n"
		"WHERE split = 'test' AND temperature = @T\n"
		"GROUP BY epoch ORDER BY epoch";
	char text[SQL_CAP], title[256], label[300];
	plot_table t;
	int rc = plot_query(&t, text, sizeof text, c, sql), n_series[2] = {0, 0};
	if (rc)
		return rc;
	if (t.n_rows == 0) {
		skip(f, "no test-split decomposition at T = %s", c->t_text);
		goto done;
	}
	for (int panel = 0; panel < 2; panel++)
		for (size_t m = 0; m < BV_ARRAY_LEN(methods); m++)
			n_series[panel] += series(&t, methods[m].method, panel ? "_variance" : "_bias", 0) > 0;
	if (n_series[0] + n_series[1] == 0) {
		skip(f, "no finite mean bias or variance at T = %s", c->t_text);
		goto done;
	}
	plot_dat(f, c, "mean bias and variance (nats) over the test samples, per decomposed epoch", text, &t, NULL);
	char soft_text[64];
	const char *soft = soft_methods(soft_text, sizeof soft_text, &t,
					n_series[0] ? "_bias" : "_variance", 0);
	snprintf(f->what, sizeof f->what, "mean bias and variance over the test samples against epoch: ce, %s at T = %s",
		 soft, c->t_text);
	snprintf(title, sizeof title, "Mean bias and variance of the test samples (%s at T = %s)", soft, c->t_text);
	plot_gp_head(f, c, title);
	bv_buf *b = &f->gp;
	epoch_axis(b, &t);
	/* two panels under one title, and one key for both in a strip below them
	 * (a key below one panel would wrap to that panel's width) */
	plot_printf(b, "unset title\nunset key\nset multiplot title ");
	plot_gp_str(b, "%s", title);
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
			if (panel < 2 ? !series(&t, methods[m].method, panel ? "_variance" : "_bias", 0)
				      : !series(&t, methods[m].method, "_bias", 0) && !series(&t, methods[m].method, "_variance", 0))
				continue;
			method_label(label, sizeof label, methods[m].method, c);
			if (panel < 2)
				plot_printf(b, "%s'%s.dat' using 1:%d", first ? "" : ", \\\n     ", f->name,
					    plot_col(&t, col) + 1);
			else
				plot_printf(b, "%sNaN", first ? "" : ", \\\n     ");
			plot_printf(b, " with linespoints lw 2 pt 7 ps 1.1 lc rgb '%s' title ", methods[m].colour);
			plot_gp_str(b, "%s", label);
			first = 0;
		}
		plot_printf(b, "\n");
	}
	plot_printf(b, "unset multiplot\nunset output\n");
done:
	plot_table_release(&t);
	return 0;
}

/* ---- 2. per-sample kd - ce differences ------------------------------------------------ */

int plot_delta_scatter(plot_fig *f, const plot_ctx *c)
{
	static const char *sql =
		"SELECT k.sample_idx,\n"
		"       k.variance - c.variance AS d_variance,\n"
		"       k.bias - c.bias AS d_bias,\n"
		"       k.regularization\n"
		"FROM sample_stats k\n"
		"JOIN sample_stats c ON c.temperature = k.temperature AND c.epoch = k.epoch\n"
		"  AND c.split = k.split AND c.sample_idx = k.sample_idx AND c.method = 'ce'\n"
		"WHERE k.method = 'kd' AND k.temperature = @T AND k.epoch = @E AND k.split = 'test'\n"
		"ORDER BY k.sample_idx";
	/* quadrants, counter-clockwise from the upper right; a zero difference counts as down */
	static const char *quad_name[4] = {"bias up, variance up", "bias up, variance down",
					   "bias down, variance down", "bias down, variance up"};
	static const char *quad_at[4] = {"graph 0.98, graph 0.96 right", "graph 0.02, graph 0.96 left",
					 "graph 0.02, graph 0.06 left", "graph 0.98, graph 0.06 right"};
	char text[SQL_CAP], title[256], extra[1024], crit[sizeof c->criterion];
	plot_table t;
	int rc = plot_query(&t, text, sizeof text, c, sql), q[4] = {0}, n_reg = 0, n = 0;
	double xmax = 0, ymax = 0;
	if (rc)
		return rc;
	snprintf(f->what, sizeof f->what,
		 "per-sample kd - ce change of bias against change of variance at T = %s, epoch %d, "
		 "regularization samples highlighted, quadrant counts",
		 c->t_text, c->E);
	if (t.n_rows == 0) {
		skip(f, "no kd students decomposed at T = %s, epoch %d", c->t_text, c->E);
		goto done;
	}
	/* the samples with both differences (gnuplot draws no other) */
	for (int i = 0; i < t.n_rows; i++) {
		const double dv = t.v[(size_t)i * t.n_cols + 1], db = t.v[(size_t)i * t.n_cols + 2];
		if (isnan(dv) || isnan(db))
			continue;
		n++;
		q[db > 0 ? (dv > 0 ? 0 : 1) : (dv > 0 ? 3 : 2)]++;
		n_reg += t.v[(size_t)i * t.n_cols + 3] == 1;
		xmax = fmax(xmax, fabs(dv));
		ymax = fmax(ymax, fabs(db));
	}
	if (n == 0) {
		skip(f, "no finite kd - ce differences at T = %s, epoch %d", c->t_text, c->E);
		goto done;
	}
	/* symmetric ranges, so that each quadrant's label sits in its quadrant, and
	 * 40% of room above and below the farthest point, so that the labels
	 * (two text lines at the top and bottom) never hide a point */
	xmax = xmax > 0 ? 1.05 * xmax : 1;
	ymax = ymax > 0 ? 1.4 * ymax : 1;
	plot_comment_text(crit, sizeof crit, c->criterion);
	snprintf(extra, sizeof extra,
		 "# quadrant counts (d_bias > 0 is up, d_variance > 0 is right; 0 counts as down / left), %d samples%s:\n"
		 "#   %s: %d\n#   %s: %d\n#   %s: %d\n#   %s: %d\n"
		 "# regularization samples (criterion %s): %d\n",
		 n, n < t.n_rows ? " (the rows with a NaN left out)" : "", quad_name[0], q[0], quad_name[1], q[1],
		 quad_name[2], q[2], quad_name[3], q[3], crit, n_reg);
	plot_dat(f, c, "per test sample: kd minus ce bias and variance (nats), and the kd regularization flag", text, &t,
		 extra);
	snprintf(title, sizeof title, "Per-sample change from ce to kd (T = %s, epoch %d, %d test samples)", c->t_text,
		 c->E, n);
	plot_gp_head(f, c, title);
	bv_buf *b = &f->gp;
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
			    f->name);
		plot_gp_str(b, "other test samples (%d)", n - n_reg);
	}
	if (n_reg > 0) {
		plot_printf(b, "%s'%s.dat' using 2:($4 == 1 ? $3 : NaN) with points pt 7 ps 0.35 lc rgb '%s' title ",
			    n - n_reg > 0 ? ", \\\n     " : "", f->name, PLOT_WSL);
		plot_gp_str(b, "kd regularization samples, criterion %s (%d)", c->criterion, n_reg);
	}
	plot_printf(b, "\nunset output\n");
done:
	plot_table_release(&t);
	return 0;
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

int plot_share_vs_temperature(plot_fig *f, const plot_ctx *c)
{
	static const char *sql = "SELECT d.temperature,\n" PER_T_REG("100.0 * avg(s.regularization)", "kd",
								   "kd_share_pct") ",\n" PER_T_REG(
		"100.0 * avg(s.regularization)", "wsl", "wsl_share_pct") ",\n" PER_T_ACC("kd") ",\n" PER_T_ACC("wsl") "\n"
				 "FROM decompositions d\n"
				 "WHERE d.split = 'test' AND d.epoch = @E\n"
				 "ORDER BY d.temperature";
	char text[SQL_CAP], title[256];
	plot_table t;
	int rc = plot_query(&t, text, sizeof text, c, sql);
	if (rc)
		return rc;
	if (!series(&t, BV_RUN_KD, "_share_pct", 1) && !series(&t, BV_RUN_WSL, "_share_pct", 1)) {
		skip(f, "no kd or wsl students decomposed at epoch %d", c->E);
		goto done;
	}
	const int has_acc =
		series(&t, BV_RUN_KD, "_acc_pct", 1) || series(&t, BV_RUN_WSL, "_acc_pct", 1);
	char soft[64];
	snprintf(f->what, sizeof f->what,
		 "share of %s regularization samples, and mean test accuracy, against temperature (epoch %d)",
		 soft_methods(soft, sizeof soft, &t, "_share_pct", 1), c->E);
	plot_dat(f, c,
		 "per decomposed temperature at the epoch: share of regularization samples (%) and mean test accuracy (%)",
		 text, &t, NULL);
	snprintf(title, sizeof title, "Regularization samples and accuracy against temperature (test split, epoch %d)",
		 c->E);
	plot_gp_head(f, c, title);
	bv_buf *b = &f->gp;
	temperature_axis(b, &t);
	plot_printf(b, "set ylabel 'regularization samples (%% of test samples)'\n");
	if (has_acc)
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
			if (!plot_points(&t, 0, col, 1))
				continue;
			plot_printf(b, "%s'%s.dat' using 1:%d axes x1y%d with linespoints lw 2 %s lc rgb '%s' title ",
				    first ? "" : ", \\\n     ", f->name, plot_col(&t, col) + 1, pass + 1,
				    pass ? "dt 2 pt 5 ps 1.2" : "pt 7 ps 1.3", methods[m].colour);
			plot_gp_str(b, "%s: %s", bv_db_method_name(methods[m].method),
				    pass ? "mean test accuracy (right axis)" : "regularization samples (left axis)");
			first = 0;
		}
	plot_printf(b, "\nunset output\n");
done:
	plot_table_release(&t);
	return 0;
}

int plot_count_vs_accuracy(plot_fig *f, const plot_ctx *c)
{
	static const char *sql = "SELECT d.temperature,\n" PER_T_ACC("kd") ",\n" PER_T_REG(
		"sum(s.regularization)", "kd", "kd_count") "\n"
				 "FROM decompositions d\n"
				 "WHERE d.split = 'test' AND d.epoch = @E\n"
				 "ORDER BY d.temperature";
	static const char *corr_sql = "SELECT pearson_r, spearman_rho, n_points FROM correlations\n"
				      "WHERE split = 'test' AND epoch = @E AND method = 'kd'";
	char text[SQL_CAP], ctext[SQL_CAP], title[256], extra[2048], key[256];
	plot_table t, ct = {0};
	double x[64], y[64];
	int n = 0, rc = plot_query(&t, text, sizeof text, c, sql);
	if (rc)
		return rc;
	snprintf(f->what, sizeof f->what,
		 "kd regularization-sample count against kd mean test accuracy, one point per temperature "
		 "(epoch %d), least-squares line, r and rho",
		 c->E);
	for (int i = 0; i < t.n_rows && n < 64; i++) {
		x[n] = plot_at(&t, i, "kd_acc_pct");
		y[n] = plot_at(&t, i, "kd_count");
		n += !isnan(x[n]) && !isnan(y[n]);
	}
	if (n == 0) {
		if (plot_has(&t, "kd_count"))
			skip(f, "no kd test accuracy recorded at epoch %d", c->E);
		else
			skip(f, "no kd students decomposed at epoch %d", c->E);
		goto done;
	}
	if ((rc = plot_query(&ct, ctext, sizeof ctext, c, corr_sql)) != 0)
		goto done;

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
	double r = NAN, rho = NAN;
	const char *source;
	if (ct.n_rows > 0) {
		r = plot_at(&ct, 0, "pearson_r");
		rho = plot_at(&ct, 0, "spearman_rho");
		source = "the correlations table";
	} else {
		bv_corr bc;
		if (bv_correlate(&bc, x, y, n) == 0) {
			r = bc.r;
			rho = bc.rho;
		}
		bv_error_clear();
		source = "these points";
	}
	size_t len = (size_t)snprintf(extra, sizeof extra,
				      "# least squares: kd_count = a + b * kd_acc_pct with a = %.12g, b = %.12g (%d points)\n"
				      "# Pearson r = %.12g, Spearman rho = %.12g, from %s",
				      a, slope, n, r, rho, source);
	if (ct.n_rows > 0) {
		len += (size_t)snprintf(extra + len, sizeof extra - len, ":\n#   ");
		for (const char *p = ctext; *p && len + 8 < sizeof extra; p++)
			len += (size_t)snprintf(extra + len, sizeof extra - len, *p == '\n' ? "\n#   " : "%c", *p);
	}
	snprintf(extra + len, sizeof extra - len, "\n");
	plot_dat(f, c, "per decomposed temperature at the epoch: kd mean test accuracy (%) and regularization count",
		 text, &t, extra);
	snprintf(title, sizeof title, "kd: regularization samples against accuracy across temperatures (epoch %d)",
		 c->E);
	plot_gp_head(f, c, title);
	bv_buf *b = &f->gp;
	plot_printf(b, "set xlabel 'kd mean test accuracy (%%)'\n"
		       "set ylabel 'kd regularization samples (count of test samples)'\n"
		       "set offsets graph 0.15, graph 0.15, graph 0.15, graph 0.15\n"
		       "set key outside bottom center vertical\n");
	if (!isnan(slope))
		plot_printf(b, "a = %.12g\nb = %.12g\nfit_line(x) = a + b * x\n", a, slope);
	plot_printf(b,
		    "plot '%s.dat' using 2:3 with points pt 7 ps 1.6 lc rgb '%s' title 'kd, one point per temperature', \\\n"
		    "     '%s.dat' using 2:3:(sprintf('T = %%g', $1)) with labels offset char 1.2, char 0.9 left notitle",
		    f->name, PLOT_KD, f->name);
	if (isnan(r))
		snprintf(key, sizeof key, "r and rho: not defined (%d point%s)", n, n == 1 ? "" : "s");
	else
		snprintf(key, sizeof key, "Pearson r = %.3f, Spearman rho = %.3f (%d temperatures; from %s)", r, rho, n,
			 source);
	if (!isnan(slope)) {
		plot_printf(b, ", \\\n     fit_line(x) with lines lw 2 dt 2 lc rgb '%s' title ", PLOT_CE);
		plot_gp_str(b, "least squares: count = %.1f %+.1f × accuracy", a, slope);
	}
	plot_printf(b, ", \\\n     NaN with lines lc rgb 'white' title ");
	plot_gp_str(b, "%s", key);
	plot_printf(b, "\nunset output\n");
done:
	plot_table_release(&t);
	plot_table_release(&ct);
	return rc;
}

/* ---- 5. test accuracy per epoch ------------------------------------------------------------ */

#define ACC_BAND(cond, m)                                                      \
	"       avg(CASE WHEN " cond " THEN 100.0 * m.test_acc END) AS " m "_mean,\n" \
	"       min(CASE WHEN " cond " THEN 100.0 * m.test_acc END) AS " m "_min,\n"  \
	"       max(CASE WHEN " cond " THEN 100.0 * m.test_acc END) AS " m "_max"

int plot_accuracy_epochs(plot_fig *f, const plot_ctx *c)
{
	static const char *sql =
		"SELECT m.epoch,\n" ACC_BAND("r.method = 'ce'", "ce") ",\n" ACC_BAND(
			"r.method = 'kd' AND r.temperature = @T", "kd") ",\n" ACC_BAND("r.method = 'wsl' AND r.temperature = @T",
										  "wsl") ",\n"
		"       (SELECT 100.0 * test_acc FROM runs WHERE method = 'teacher' AND " BV_DB_SQL_DONE ") AS teacher\n"
		"FROM metrics m JOIN runs r ON r.id = m.run_id\n"
		"WHERE r." BV_DB_SQL_DONE " AND r.method IN ('ce', 'kd', 'wsl')\n"
		"GROUP BY m.epoch ORDER BY m.epoch";
	char text[SQL_CAP], title[256], label[64];
	plot_table t;
	int rc = plot_query(&t, text, sizeof text, c, sql);
	if (rc)
		return rc;
	if (t.n_rows == 0) {
		skip(f, "no finished ce, kd or wsl runs");
		goto done;
	}
	if (!series(&t, BV_RUN_CE, "_mean", 0) && !series(&t, BV_RUN_KD, "_mean", 0) &&
	    !series(&t, BV_RUN_WSL, "_mean", 0)) {
		skip(f, "no test accuracy recorded");
		goto done;
	}
	plot_dat(f, c, "test accuracy (%) of the finished runs per epoch: mean, min and max over seeds; teacher: final",
		 text, &t, NULL);
	char soft[64];
	soft_methods(soft, sizeof soft, &t, "_mean", 0);
	snprintf(f->what, sizeof f->what, "test accuracy against epoch: teacher, ce, %s at T = %s (mean and min-max over seeds)",
		 soft, c->t_text);
	snprintf(title, sizeof title, "Test accuracy per epoch (%s at T = %s; bands: min–max over seeds)",
		 soft, c->t_text);
	plot_gp_head(f, c, title);
	bv_buf *b = &f->gp;
	epoch_axis(b, &t);
	plot_printf(b, "set ylabel 'test accuracy (%%)'\n"
		       "set offsets 0, 0, graph 0.05, graph 0.05\n"
		       "set key outside bottom center horizontal\n"
		       "set style fill transparent solid 0.2 noborder\n"
		       "plot ");
	/* the bands first, the lines over them: no band hides a line (the libgd png has no transparency) */
	int first = 1;
	for (int pass = 0; pass < 2; pass++)
		for (size_t m = 0; m < BV_ARRAY_LEN(methods); m++) {
			char col[32];
			snprintf(col, sizeof col, "%s_mean", bv_db_method_name(methods[m].method));
			if (!plot_points(&t, 0, col, 0))
				continue;
			const int j = plot_col(&t, col) + 1;
			method_label(label, sizeof label, methods[m].method, c);
			plot_printf(b, "%s'%s.dat' ", first ? "" : ", \\\n     ", f->name);
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
	for (int i = 0; i < t.n_rows; i++) {
		const double teacher = plot_at(&t, i, "teacher");
		if (isnan(teacher) || isnan(t.v[(size_t)i * t.n_cols]))
			continue;
		plot_printf(b, ", \\\n     '%s.dat' using 1:%d with lines lw 2 dt 2 lc rgb 'black' title ", f->name,
			    plot_col(&t, "teacher") + 1);
		plot_gp_str(b, "teacher (%.2f%%)", teacher);
		break;
	}
	plot_printf(b, "\nunset output\n");
done:
	plot_table_release(&t);
	return 0;
}

/* ---- 6. WSL weights of kd regularization samples vs the rest --------------------------------- */

int plot_wsl_weights(plot_fig *f, const plot_ctx *c)
{
	static const char *sql =
		"WITH w(bin, reg) AS (\n"
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
		"GROUP BY bins.bin ORDER BY bins.bin";
	char text[SQL_CAP], title[256];
	plot_table t;
	int rc = plot_query(&t, text, sizeof text, c, sql), n_reg = 0, n_other = 0;
	if (rc)
		return rc;
	snprintf(f->what, sizeof f->what,
		 "distribution of the wsl students' WSL weights at T = %s, epoch %d: kd regularization samples vs "
		 "the rest",
		 c->t_text, c->E);
	for (int i = 0; i < t.n_rows; i++) {
		const double reg = plot_at(&t, i, "n_kd_regularization"), other = plot_at(&t, i, "n_other");
		n_reg += reg >= 0 && reg < 1e9 ? (int)reg : 0;
		n_other += other >= 0 && other < 1e9 ? (int)other : 0;
	}
	if (n_reg + n_other == 0) {
		skip(f, "no wsl students with WSL weights and kd students decomposed at T = %s, epoch %d", c->t_text, c->E);
		goto done;
	}
	plot_dat(f, c,
		 "WSL weights of the wsl students (mean over seeds) in 20 bins: count and % of each group, the "
		 "group being whether kd flags the sample as a regularization sample",
		 text, &t, NULL);
	snprintf(title, sizeof title, "WSL weights of the test samples (T = %s, epoch %d)", c->t_text, c->E);
	plot_gp_head(f, c, title);
	bv_buf *b = &f->gp;
	plot_printf(b,
		    "set xlabel 'WSL weight of the wsl students (mean over seeds; 0 to 1)'\n"
		    "set ylabel 'share of the group (%%)'\n"
		    "set xrange [0:1]\nset xtics 0.1\nset yrange [0:*]\n"
		    "set offsets 0, 0, graph 0.05, 0\n"
		    "set key outside bottom center horizontal\n"
		    "set style fill solid 0.6 border lc rgb 'white'\n"
		    "set boxwidth 0.022\n"
		    "plot ");
	/* a group without a sample is left out (its shares are NaN) */
	if (n_reg > 0) {
		plot_printf(b, "'%s.dat' using (($1 + $2) / 2 - 0.0115):5 with boxes lc rgb '%s' title ", f->name,
			    PLOT_WSL);
		plot_gp_str(b, "kd regularization samples (%d)", n_reg);
	}
	if (n_other > 0) {
		plot_printf(b, "%s'%s.dat' using (($1 + $2) / 2 + 0.0115):6 with boxes lc rgb '%s' title ",
			    n_reg > 0 ? ", \\\n     " : "", f->name, PLOT_KD);
		plot_gp_str(b, "other test samples (%d)", n_other);
	}
	plot_printf(b, "\nunset output\n");
done:
	plot_table_release(&t);
	return 0;
}
