/*
 * plots' internals, shared by plot.c (the driver: choosing T and the epoch,
 * running the queries, building the files), figures.c (the table of figures
 * and its builder) and stage.c (the staging directory the files are written into, and
 * the commit). Not part of the public interface (plots.h).
 */
#ifndef BV_PLOT_INT_H
#define BV_PLOT_INT_H

#include "plots.h"

#define PLOT_MAX_COLS 16
/* a number farther from 0 is out of range (NaN in the data): gnuplot fails to
 * scale an axis to values near DBL_MAX */
#define PLOT_MAX_ABS 1e300

/* The result rows of one query, as doubles (NULL -> NAN), row-major. */
typedef struct plot_table {
	int n_cols, n_rows, cap;
	char names[PLOT_MAX_COLS][40];
	double *v; /* (n_rows, n_cols) */
} plot_table;

/* What every figure needs to know. */
typedef struct plot_ctx {
	bv_db *db;
	double T;            /* the temperature of the figures */
	int E;               /* the last decomposed test epoch at T */
	char t_text[32];     /* T as SQL and labels print it ("4", "0.5") */
	const char *format;  /* png | svg | pdf */
	char criterion[64];  /* the criterion of the decomposition at (T, E): database text, cut */
} plot_ctx;

/* One figure being built: its two files in memory, or why it is skipped. */
typedef struct plot_fig {
	char name[32];
	char what[256];
	int skipped;         /* 1: no data for it; what says why */
	bv_buf dat, gp;
} plot_fig;

/* printf onto a buffer */
void plot_printf(bv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* printf onto a buffer as one gnuplot string literal (bv_gp_quote): every
 * text a script shows (titles, labels, keys) goes through here */
void plot_gp_str(bv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Run sql (after replacing every @T and @E by ctx's T and E) into t, and keep
 * the substituted text in sql_out (size cap) for the data file's header. */
int plot_query(plot_table *t, char *sql_out, size_t cap, const plot_ctx *c, const char *sql);
void plot_table_release(plot_table *t);
/* the column named name (-1 when absent) and the value at row i */
int plot_col(const plot_table *t, const char *name);
double plot_at(const plot_table *t, int row, const char *name);
/* 1 when column name has a non-NULL value in some row */
int plot_has(const plot_table *t, const char *name);
/* the rows gnuplot can draw as points (x: column index, y: column name): both
 * values present, and x > 0 on a log axis (log_x) */
int plot_points(const plot_table *t, int x, const char *y, int log_x);
/* the smallest and largest present value of column x (> 0 only, with log_x);
 * returns how many rows have one */
int plot_range(const plot_table *t, int x, int log_x, double *lo, double *hi);

/* Text for a comment line of a data file or script, cut to size: a control
 * character (a newline in a path or a criterion) becomes '?', so the text
 * stays on its line, and a backslash too, so that no line ends in one (which
 * would continue the comment over the script's next line). */
void plot_comment_text(char *out, size_t size, const char *s);

/* The data file: the header (what, source, columns, the SQL, extra comment
 * lines) and the rows. */
void plot_dat(plot_fig *f, const plot_ctx *c, const char *what, const char *sql, const plot_table *t,
	      const char *extra);
/* The script's head: its comment, the terminal and output lines (overridable
 * with the variables term and outfile), reset, and the common style. */
void plot_gp_head(plot_fig *f, const plot_ctx *c, const char *title);

/* the staging directory (stage.c): create dir with its parents, remove the
 * staging directories this host's dead bvtool processes left there, and create
 * this process's, *out (heap); BV_EIO when one cannot be created, BV_ENOMEM */
int plot_make_stage(char **out, const char *dir);
/* write b as the file dir/name + ext (bv_write_file_atomic) */
int plot_write_buf(const char *dir, const char *name, const char *ext, const bv_buf *b);

/* the figures (figures.c), in the order they are built and listed: figure
 * i's name, and building it into f (its two files, or why it is skipped) */
#define PLOT_N_FIGURES 7
const char *plot_figure_name(int i);
int plot_figure_build(int i, plot_fig *f, const plot_ctx *c);

/* method colours, the same in every figure */
#define PLOT_CE "#4d4d4d"
#define PLOT_KD "#1f77b4"
#define PLOT_WSL "#d62728"

#endif
