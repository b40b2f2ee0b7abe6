/*
 * analysis: the per-sample bias/variance decomposition of log loss (Heskes
 * 1998), the regularization-sample criteria, and the statistics that relate
 * their counts to accuracy. Pure computation on arrays here (this header's
 * first half); the database-driven `decompose` and `report` steps in its second
 * half. analysis never trains.
 *
 * The formulas are math/'s (bvmath.h: bv_math_decompose and the
 * bv_math_crit_* criteria, with their equations); here are the fast paths of
 * the decomposition, held to bv_math_decompose by tests/test_math.c, and the
 * criteria over the replicas of a sample. In short, for one sample with label
 * y and B replicas' log-probabilities log q_r (T = 1), l = mean_r log q_r:
 *   bias = log Z - l_y,  variance = -log Z,  loss = -l_y = bias + variance,
 * Z = sum_k exp(l_k). Everything in double, in log space.
 */
#ifndef BV_ANALYSIS_H
#define BV_ANALYSIS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "base.h"
#include "bvmath.h"
#include "db.h"

/* ---- the decomposition -------------------------------------------------- */

typedef struct bv_bv {
	double bias, variance, loss;
	double p_true;   /* mean over replicas of q_r[y] */
	double acc;      /* share of replicas whose argmax is y */
} bv_bv;

/*
 * Decompose one sample. logits: B rows of K float32, row r at logits + r*stride
 * (stride >= K, in floats), so a caller can point into (B, N, K) snapshot arrays
 * with stride = N*K. weights (B) may be NULL (all 1); otherwise replica r counts
 * weights[r] times (bootstrap over seeds) and replicas with weight 0 are skipped;
 * the sum of weights must be > 0.
 */
void bv_decompose_sample(bv_bv *out, const float *logits, size_t stride, int B, int K, int y,
			 const double *weights);

/* As bv_decompose_sample, plus *wsl: the (weighted) mean over replicas of the
 * WSL weight bv_math_wsl_weight(CE_s, teacher_ce), teacher_ce being the
 * teacher's -log softmax(t)[y] (bv_math_ce), computed in the same pass
 * (bv_wsl_weight_mean is the unweighted stand-alone form). */
void bv_decompose_sample_wsl(bv_bv *out, double *wsl, const float *logits, size_t stride, int B,
			     int K, int y, const double *weights, double teacher_ce);

/* bv_decompose_sample(_wsl) for n samples at once (faster: the exps and logs
 * of many rows go through one vectorised call): sample j's rows at logits +
 * j*K (+ r*stride for replica r), its label y[j], its weights (B, may be NULL:
 * all 1) at weights + j*w_stride, its teacher CE teacher_ce[j]; out[j] and,
 * when wsl is not NULL, wsl[j]. Results are those of the one-sample calls,
 * bit for bit. */
void bv_decompose_samples(bv_bv *out, double *wsl, const float *logits, size_t stride, int B,
			  int K, int n, const int *y, const double *weights, size_t w_stride,
			  const double *teacher_ce);

/* bv_math_decompose for n samples from log-probabilities (the fast path:
 * blocks of samples, the exps and logs of a block in one vectorised call):
 * sample j's replica r at logp + r*stride + j*K, its label y[j], its weights
 * (B) at w + j*w_stride (w_stride 0: the same B weights for every sample; w
 * NULL: all 1); out[j]. Within a few ulps of bv_math_decompose. */
void bv_decompose_logp(bv_math_decomp *out, const double *logp, size_t stride, int B, int K,
		       int n, const int *y, const double *w, size_t w_stride);

/* ---- regularization-sample criteria (SPEC.md) --------------------------- */

typedef enum bv_criterion {
	BV_CRIT_BV = 0,   /* bias_kd > bias_ce and variance_kd < variance_ce */
	BV_CRIT_GRAD,     /* |b| > |a| at the true class on a majority of replicas */
	BV_CRIT_TEACHER,  /* CE_teacher > mean over replicas of CE_student */
} bv_criterion;

const char *bv_criterion_name(bv_criterion c);
int bv_criterion_parse(bv_criterion *out, const char *s, const char *what);

/* bv: flag when the student's bias is above and its variance below the paired
 * CE students' (bv_math_crit_bv). */
int bv_flag_bv(const bv_bv *student, const bv_bv *ce);

/*
 * grad: for each replica r with student logits s_r (rows as in bv_decompose_sample)
 * and the teacher's logits t (K), a = q_s[y] - 1 and b = T (p_s^T[y] - p_t^T[y]) - a;
 * the sample is flagged when |b| > |a| on more than half of the replicas
 * (bv_math_crit_grad, bv_math_majority).
 * Returns the flag; *out_share (may be NULL) receives the share of replicas agreeing.
 */
int bv_flag_grad(double *out_share, const float *logits, size_t stride, int B, int K, int y,
		 const float *teacher, double T);

/* teacher: CE_t = -log softmax(t)[y] > student_loss (the mean CE of the student
 * replicas; bv_math_crit_teacher). */
int bv_flag_teacher(const float *teacher, int K, int y, double student_loss);

/* Mean over replicas of the WSL weight bv_math_wsl_weight(CE_s, CE_t). */
double bv_wsl_weight_mean(const float *logits, size_t stride, int B, int K, int y,
			  const float *teacher);

/* ---- statistics ----------------------------------------------------------- */

typedef struct bv_corr {
	int n;            /* points */
	double r, r_p;    /* Pearson and its two-sided p-value (t test, n - 2 df) */
	double rho, rho_p;/* Spearman (average ranks for ties) and its p-value (same t approximation) */
} bv_corr;

/* Pearson and Spearman of n points; BV_EINVAL when n < 3 or a series is constant. */
int bv_correlate(bv_corr *out, const double *x, const double *y, int n);

/* Mean, sample standard deviation and the half-width of the 95% t interval of the mean. */
void bv_mean_ci(double *mean, double *sd, double *half95, const double *x, int n);

/* ---- bvtool decompose: the decomposition of a collected database -------- */

#define BV_MAX_TEMPS 64

typedef struct bv_decompose_opts {
	int n_temps;              /* 0: every temperature in the database */
	double temps[BV_MAX_TEMPS];
	int epoch;                /* > 0: that epoch; 0: every recorded epoch; -1: the last */
	const char *split;        /* test | train | oob */
	bv_criterion criterion;
	int n_boot;               /* bootstrap resamples of seeds for the CI of r (0: none) */
	unsigned long boot_seed;
} bv_decompose_opts;

/* Receives the lines of the summary (no newline), in order. */
typedef void (*bv_say_fn)(void *ctx, const char *line);

/*
 * Decompose every selected (temperature, epoch) of `split` for ce and each
 * soft method, using finished runs only (the others are named as skipped) and,
 * per temperature, the seeds for which ce and every soft method are done
 * (paired). Writes sample_stats, decompositions and the correlation, across
 * the temperatures decomposed so far for this split and epoch, of the
 * regularization-sample count with the students' mean test accuracy (with a
 * bootstrap interval over seeds; an earlier row of the same split, epoch and
 * method is deleted when none is defined now) in ONE transaction, replacing
 * the rows of an earlier decompose of the same selection: on any error, or a
 * kill, the database keeps its previous state.
 * Errors: BV_ESTATE (no ce runs, < 2 finished seeds, nothing recorded for
 * the split), BV_EINVAL (a temperature or epoch not in the database, listing
 * those that are), BV_EFORMAT (NaN/Inf logits, naming the run and epoch; the
 * identity |loss - bias - variance| above 1e-4; a damaged database: a label,
 * class count, seed, temperature, status, snapshot, in-bag count or test
 * accuracy out of range, duplicate runs, naming the row). The classes K are
 * the snapshots' k: every snapshot the decomposition reads (the done
 * students' at the decomposed epochs, the teacher's) has the same, else
 * BV_EFORMAT naming the run and epoch of the odd one; config n_classes, when
 * present, is only checked against it.
 */
int bv_decompose_db(bv_db *db, const bv_decompose_opts *o, bv_say_fn say, void *ctx);

/* ---- training dynamics (dynamics.c; SPEC.md) ------------------------------ */

/*
 * Per sample, over a run's recorded epochs in ascending order, with p =
 * softmax(z)[y] at T = 1 and correct = (bv_math_argmax(z) == y): the epoch
 * from which it stays correct to the last (-1: wrong at the last), the
 * correct -> wrong transitions, the share correct, and the mean and
 * population standard deviation of p (bv_dyn_row, db.h). An accumulator fed
 * one epoch's (N, K) logits at a time: new for N samples and at most
 * max_epochs epochs; add an epoch (BV_EINVAL when epochs do not ascend or
 * exceed max_epochs; the logits are the caller's to check finite); rows into
 * out (N), sample_idx 0..N-1, once at least one epoch is added.
 */
typedef struct bv_dynamics bv_dynamics;
int bv_dynamics_new(bv_dynamics **out, int N, int max_epochs);
int bv_dynamics_add(bv_dynamics *d, int epoch, const float *logits, int K, const int *labels);
int bv_dynamics_epochs(const bv_dynamics *d);
void bv_dynamics_rows(const bv_dynamics *d, bv_dyn_row *out);
void bv_dynamics_free(bv_dynamics *d); /* NULL is a no-op */
/* The same over (E, N, K) logits whose epoch e is epochs[e]. */
int bv_dynamics_compute(bv_dyn_row *out, const float *logits, const int *epochs, int E, int N,
			int K, const int *labels);

/*
 * bvtool dynamics: for every done student run (not the teacher) with a
 * recorded epoch of split (test or train), its dynamics over all its
 * recorded epochs, replacing its rows in ONE transaction per run; rows of
 * runs not done any more are deleted first. The summary (per method and
 * temperature; runs with fewer than 3 recorded epochs named) goes to say.
 * Errors: BV_EINVAL (split), BV_ESTATE (no such run, no samples), BV_EFORMAT
 * (a damaged database, as decompose: runs, snapshots, k, labels, non-finite
 * logits naming the run and epoch).
 */
int bv_dynamics_db(bv_db *db, const char *split, bv_say_fn say, void *ctx);

/* ---- bvtool report ---------------------------------------------------------- */

/* The results tables of a database, as format "md", "csv" (long: table,
 * method, temperature, quantity, value) or "json", appended to out (built in
 * memory, so that a caller can write it atomically). Every string from the
 * database is escaped for the format; NaN/Inf print as JSON null. BV_ESTATE
 * when no run is done; BV_EFORMAT naming the row for a damaged database (the
 * runs as bv_db_check_runs; a value of the wrong type). */
int bv_report_db(bv_db *db, bv_buf *out, const char *format);

#endif
