/*
 * plots: the figures of a decomposed database, as gnuplot scripts and the data
 * files they read. `bvtool plot` calls bv_plot_write, then runs gnuplot on each
 * script it wrote; plots itself never runs gnuplot.
 *
 * Every figure NAME is two files in the output directory:
 *   NAME.dat  whitespace-separated columns, a `#` header naming the columns and
 *             quoting the SQL (with T and the epoch filled in) whose result
 *             rows they are, so each number can be re-derived in sqlite3;
 *   NAME.gp   the gnuplot script that reads NAME.dat and draws NAME.<format>,
 *             runnable by hand from the output directory (`gnuplot NAME.gp`).
 *             Its first lines pick the terminal and the output file from the
 *             variables `term` and `outfile` when they are set, e.g.
 *             gnuplot -e 'term="dumb size 120,40"; outfile=""' NAME.gp
 *
 * The figures, for one temperature T and the last decomposed epoch E of the
 * test split at T (docs/cli.md has the details):
 *   bias_variance         mean bias and variance of ce, kd@T, wsl@T per epoch
 *   delta_scatter         per-sample kd - ce bias and variance differences at E
 *   share_vs_temperature  share of regularization samples and accuracy per T
 *   count_vs_accuracy     kd regularization count against kd accuracy per T,
 *                         with the least-squares line and r, rho
 *   accuracy_epochs       test accuracy per epoch: mean and min-max over seeds
 *   wsl_weights           WSL weights of kd regularization samples vs the rest
 *   data_map              confidence against variability of the kd students'
 *                         samples (bvtool dynamics), regularization samples
 *                         highlighted; skipped without dynamics rows
 *
 * A database is untrusted input (docs/security.md): every string from it that
 * reaches a script is a single-quoted gnuplot literal made by bv_gp_quote,
 * which gnuplot never expands (no backquotes, macros or escapes), and every
 * file name in a script is bvtool's own. A missing, non-finite or out-of-range
 * number is NaN in the data files, and a figure with nothing to draw is
 * skipped with the reason.
 *
 * Nothing is written into the output directory until the whole new set is
 * ready: bv_plot_write builds every figure in memory and writes it into a
 * staging directory inside the output directory, `.bvtool-plot.tmp.HOST.PID`
 * (where the caller runs gnuplot, so the scripts are run by their own names);
 * bv_plot_commit then renames the files into place, and
 * bv_plot_result_release removes whatever is left of the staging directory.
 * An error or an interruption before the commit leaves the output directory
 * as it was; a process killed outright leaves at most its staging directory,
 * which the next bv_plot_write into that directory removes.
 */
#ifndef BV_PLOTS_H
#define BV_PLOTS_H

#include "base.h"
#include "db.h"

#define BV_PLOT_MAX_FIGURES 8

typedef struct bv_plot_figure {
	char name[32];   /* "bias_variance": NAME.gp, NAME.dat, NAME.<format> */
	char what[256];  /* one line: what it shows, or (skipped) why it was not drawn */
} bv_plot_figure;

typedef struct bv_plot_result {
	double temp;     /* the temperature T of the figures */
	int epoch;       /* the epoch E of the single-epoch figures */
	int n_figures;
	bv_plot_figure figures[BV_PLOT_MAX_FIGURES];
	int n_skipped;   /* figures the database has no data for (e.g. no wsl runs) */
	bv_plot_figure skipped[BV_PLOT_MAX_FIGURES];
	char format[8];  /* the images' extension: png, svg or pdf */
	char *stage;     /* the staging directory (heap), NULL once committed or released */
} bv_plot_result;

/*
 * Append s (len bytes, any bytes) to out as a gnuplot string that gnuplot
 * reads back verbatim and never expands: single-quoted, a quote doubled ('')
 * or, first in the string or after another quote (where gnuplot's scanner
 * cannot take '' in), a piece "'" of its own joined by '.' ('a''b',
 * ''."\047".'a', never a quote byte in the piece, which would confuse
 * gnuplot's macro pass); a control character, a NUL or a byte that is not part of
 * valid UTF-8 is written '?'. The result is a string expression, valid where
 * gnuplot takes one (titles, labels, keys). Total: 0, or BV_ENOMEM when out
 * cannot grow.
 */
int bv_gp_quote(bv_buf *out, const char *s, size_t len);

/* BV_EINVAL unless format is png, svg or pdf (the image's extension). */
int bv_plot_check_format(const char *format);

/*
 * Build every figure and write its script and data file into out->stage, a
 * new staging directory in dir (dir is created with its parents when
 * missing; staging directories this host's dead bvtool processes left there
 * are removed). temp: NAN picks 4 when it is decomposed, else the middle
 * decomposed temperature. Errors (nothing is left in dir, and out needs no
 * release): BV_ESTATE (no decomposition of the test split yet, or T collected
 * but not decomposed), BV_EINVAL (a bad format, or T not in the database: the
 * message lists the decomposed temperatures), BV_EFORMAT (no valid epoch),
 * BV_EIO (dir cannot be created, a file cannot be written), BV_EDB.
 */
int bv_plot_write(bv_plot_result *out, bv_db *db, const char *dir, double temp, const char *format);

/*
 * Move the new figures from r->stage into dir: NAME.dat, NAME.gp and, with
 * images, the NAME.<format> the caller drew in r->stage. Without images an
 * older NAME.<format> is removed (it would show other data than the new
 * script), and so are the three files of every skipped figure. Every source
 * and target is checked before the first rename (BV_EIO: an image missing, a
 * target that is not a regular file), so a refusal changes nothing.
 */
int bv_plot_commit(bv_plot_result *r, const char *dir, int images);

/* Remove the staging directory if it is still there, and free it. */
void bv_plot_result_release(bv_plot_result *r);

#endif
