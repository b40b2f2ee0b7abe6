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
 * Every file is written atomically (a temporary file renamed into place), and
 * only after every figure has been built in memory: an error leaves no file.
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
} bv_plot_result;

/* BV_EINVAL unless format is png, svg or pdf (the image's extension). */
int bv_plot_check_format(const char *format);

/*
 * Write the scripts and data files of every figure into dir (created with its
 * parents when missing). temp: NAN picks 4 when it is decomposed, else the
 * middle decomposed temperature. Errors: BV_ESTATE (no decomposition of the
 * test split yet, or T collected but not decomposed), BV_EINVAL (a bad format,
 * or T not in the database: the message lists the decomposed temperatures),
 * BV_EIO (dir cannot be created, a file cannot be written), BV_EDB.
 */
int bv_plot_write(bv_plot_result *out, bv_db *db, const char *dir, double temp, const char *format);

#endif
