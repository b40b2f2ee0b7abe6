/*
 * The internals of bvtool decompose (bv_decompose_db), shared by its files and
 * by nothing else (not installed, not included outside analysis/):
 *   decompose_db.c    the command: the steps in order, one transaction
 *   decompose_plan.c  which runs, seeds, temperatures and epochs take part
 *   decompose_load.c  snapshots into (B, N, K) arrays, K, the teacher, out-of-bag
 *   decompose_rows.c  the per-sample rows of a method, and the thread that writes them
 *   decompose_split.c the variance split by its source (draws x inits)
 *   decompose_boot.c  the correlation across temperatures and its bootstrap over seeds
 * Names start with dc_.
 */
#ifndef BV_DECOMPOSE_INT_H
#define BV_DECOMPOSE_INT_H

#include <pthread.h>

#include "analysis.h"

#define MAX_SEEDS 1024
#define MAX_CLASSES 1024        /* as many as training supports (nn's bv_loss) */
#define MAX_SAMPLES 10000000    /* samples of a split */
#define N_SOFT BV_RUN_N_METHODS /* at most: the soft methods of db's table */
#define DAMAGED " (the database is damaged)"

/* A replica of a decomposition: the run of one (seed, init), numbered
 * seed-major so that the replicas of one bootstrap draw are adjacent (the
 * variance split reads them as groups). Runs before schema 5 and of
 * collect --inits 1 all have init 1, and then a replica is seed * DC_MAX_INITS. */
#define DC_MAX_INITS 64
typedef int64_t dc_rep_t;
static inline dc_rep_t dc_rep(int seed, int init) { return (dc_rep_t)seed * DC_MAX_INITS + init - 1; }
static inline int dc_rep_seed(dc_rep_t rep) { return (int)(rep / DC_MAX_INITS); }
static inline int dc_rep_init(dc_rep_t rep) { return (int)(rep % DC_MAX_INITS) + 1; }

/* say(ctx, line) with the line formatted, when say is not NULL */
void dc_say(bv_say_fn say, void *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- which runs take part (decompose_plan.c) ------------------------------- */

typedef struct dc_plan {
	bv_run *runs;
	int n_runs;
	int64_t teacher_id;         /* 0 if none done */
	int n_soft;
	bv_run_method soft[N_SOFT]; /* the methods compared with ce (kd, wsl, kd-filter) */
	int n_temps;
	double temps[BV_MAX_TEMPS];
} dc_plan;

/* Every run of the database (the complete ones take part; the others are
 * named as skipped), the temperatures to decompose (o's, or all), and the
 * checks that enough seeds are done. */
int dc_plan_make(dc_plan *p, bv_db *db, const bv_decompose_opts *o, bv_say_fn say, void *ctx);
/* The done run of (method, T (NAN for none), replica rep), or NULL. */
const bv_run *dc_find_run(const dc_plan *p, bv_run_method method, double T, dc_rep_t rep);
/* The done runs of (method, T). */
int dc_count_seeds(const dc_plan *p, bv_run_method method, double T);
/* The replicas (dc_rep, ascending) for which ce and every soft method present
 * at T are done. */
int dc_paired_seeds(dc_rep_t *out, const dc_plan *p, double T);
/* The epochs to decompose (*out, heap): those at which every run taking part
 * (ce and each soft method of the paired seeds at each temperature) is
 * analysable for the split snap, then `epoch` of bv_decompose_opts. */
int dc_plan_epochs(int **out, int *n_out, bv_db *db, const dc_plan *p, const char *snap, int epoch);
/* p with every temperature of the database (the correlation's), not only those selected. */
void dc_plan_all_temps(dc_plan *all, const dc_plan *p);

/* ---- loading (decompose_load.c) ---------------------------------------------- */

/* Load the snapshots of `runs` (B) at `epoch` into buf (B, N, K), checking
 * every value is finite. */
int dc_load(float *buf, bv_db *db, const bv_run *const *runs, int B, int epoch, const char *split,
	    int N, int K);
/* Config n_classes: *out 0 when absent, else a whole number 2..MAX_CLASSES. */
int dc_n_classes(long *out, bv_db *db);
/* K: the k of the snapshots the decomposition reads (every done student's at
 * the epochs, the teacher's at teacher_epoch when teacher_id is not 0): all
 * the same and 2..MAX_CLASSES, and n_classes (when > 0) equal to it. */
int dc_classes(int *out_k, bv_db *db, const dc_plan *p, const int *epochs, int n_epochs,
	       const char *snap, int64_t teacher_id, int teacher_epoch, long n_classes);
/* The teacher's last epoch with a snapshot of snap (-1: none, or no teacher). */
int dc_teacher_epoch(int *out, bv_db *db, const dc_plan *p, const char *snap);
/* The teacher's logits (N, K) at epoch and their CE at the labels, (N): heap. */
int dc_load_teacher(float **out, double **out_ce, bv_db *db, const dc_plan *p, int epoch,
		    const char *snap, const int *labels, int N, int K);
/* (B, N) 1 where the seed of replica reps[b] did not draw training sample i: heap. */
int dc_load_oob(int **out, bv_db *db, const dc_rep_t *reps, int B, int N);

/* ---- the rows (decompose_rows.c) ------------------------------------------------ */

/* What is decomposed: the split, its samples, the teacher, the criterion, T. */
typedef struct dc_selection {
	const char *split;        /* test | train | oob */
	const char *snap;         /* the snapshots' split: test or train */
	int N, K;
	const int *labels;        /* (N) */
	const float *teacher;     /* (N, K) or NULL */
	const double *teacher_ce; /* (N) -log softmax(teacher)[y], when teacher is not NULL */
	const int *oob;           /* (B, N) 1 where seed b did not draw sample i; NULL unless oob */
	bv_criterion crit;
	double T;
	int n_inits;              /* M >= 2: the replicas are draws x M inits, split the variance */
} dc_selection;

/* Decompose every sample of one method from buf (B, N, K); rows (N) out,
 * returning how many were written (oob samples with < 2 out-of-bag seeds are
 * left out), or BV_ENOMEM. soft: flag regularization samples against ce_rows
 * (the ce rows of the same samples, in the same order). *max_err grows to
 * the largest |loss - bias - variance|. */
int dc_rows(bv_stat_row *rows, const float *buf, int B, const dc_selection *s,
	    const bv_stat_row *ce_rows, int soft, double *max_err);
/* The variance of each of the n rows split by its source (s->n_inits = M >=
 * 2, buf's B replicas B / M draws of M inits each, in that order): with
 * lbar_d = mean_i log q_{d,i} per class, V_init(d) = -log sum_k exp lbar_d[k];
 * var_init = mean_d V_init(d) over the sample's draws (its out-of-bag draws
 * for oob) and var_data = the Heskes variance of the draws' normalised
 * geometric means. *max_err grows to the largest |variance - var_init - var_data|. */
int dc_var_split(bv_stat_row *rows, int n, const float *buf, int B, const dc_selection *s,
		 double *max_err);

enum { MAX_PUTS = 1 + N_SOFT };

/* One epoch's rows for the writer, or (n_clear > 0) the deletes of earlier ones. */
typedef struct dc_job {
	double T;
	int E, n_puts;
	const char *split;
	const int *clear; /* with n_clear > 0 the job only deletes these epochs' earlier rows */
	int n_clear;
	bv_run_method method[MAX_PUTS];
	const bv_stat_row *rows[MAX_PUTS];
	int n[MAX_PUTS];
	bv_db_decomposition d;
	char seeds[1024];
} dc_job;

typedef struct dc_writer {
	bv_db *db;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started, has_job, quit, rc;
	dc_job job;
	char err[1024]; /* the writer thread's error message (messages are per thread) */
} dc_writer;

/* The CPUs this process may run on (taskset, cgroups' cpusets). */
int dc_cpus(void);
/* Start the thread when `threaded`; without one (or when it could not start)
 * jobs are written inline by dc_writer_submit. */
void dc_writer_start(dc_writer *w, bv_db *db, int threaded);
/* Hand over a job (copied); the buffers it points to must stay untouched until
 * the next dc_writer_submit or dc_writer_drain returns. */
int dc_writer_submit(dc_writer *w, const dc_job *j);
/* Wait until the job handed over last is written; its error, if any. */
int dc_writer_drain(dc_writer *w);
/* Drain, stop and join the thread; the first error of all. */
int dc_writer_stop(dc_writer *w);

/* ---- the correlation (decompose_boot.c) ----------------------------------------- */

/* The correlation across p's temperatures of method's regularization-sample
 * count with its students' mean test accuracy at epoch, with the bootstrap
 * interval of r over seeds (o->n_boot draws): the correlations row of (split,
 * epoch, method), replaced (deleted when none is defined), and its lines said. */
int dc_correlate(bv_db *db, const dc_plan *p, bv_run_method method, int epoch,
		 const dc_selection *s, const bv_decompose_opts *o, bv_say_fn say, void *ctx);

#endif
