/*
 * bvtool decompose over a collected database: which runs and seeds take part,
 * loading snapshots into (B, N, K) arrays, the per-sample decomposition and
 * criteria for ce and every soft method, the sample_stats rows (written by a
 * second thread while the next epoch is decomposed), and the correlation of
 * regularization-sample counts with accuracy across temperatures, with a
 * bootstrap interval over seeds: all of it one transaction, committed once at
 * the end. It reads only what db.h's contract calls analysable: complete runs,
 * at the epochs where each has a snapshot and a metrics row, K from the
 * snapshots. Every value read from the database is range-checked first (the
 * checks of db/checks.c): a shared database is untrusted input.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include "analysis.h"

#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEDS 1024
#define MAX_CLASSES 1024      /* as many as training supports (nn's bv_loss) */
#define MAX_SAMPLES 10000000 /* samples of a split */
#define N_SOFT BV_RUN_N_METHODS /* at most: the soft methods of db's table */

static void sayf(bv_say_fn say, void *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sayf(bv_say_fn say, void *ctx, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (say)
		say(ctx, line);
}

#define DAMAGED " (the database is damaged)"

/* ---- which runs take part ------------------------------------------------ */

typedef struct plan {
	bv_run *runs;
	int n_runs;
	int64_t teacher_id;      /* 0 if none done */
	int n_soft;
	bv_run_method soft[N_SOFT]; /* the methods compared with ce (kd, wsl, kd-filter) */
	int n_temps;
	double temps[BV_MAX_TEMPS];
	int k;                   /* classes */
} plan;

/* The done run of (method, T, seed), or NULL. */
static const bv_run *find_run(const plan *p, bv_run_method method, double T, int seed)
{
	for (int i = 0; i < p->n_runs; i++) {
		const bv_run *r = &p->runs[i];
		if (r->status == BV_RUN_DONE && r->method == method && r->seed == seed &&
		    (isnan(T) ? isnan(r->temperature) : r->temperature == T))
			return r;
	}
	return NULL;
}

static int count_seeds(const plan *p, bv_run_method method, double T)
{
	int n = 0;
	for (int i = 0; i < p->n_runs; i++) {
		const bv_run *r = &p->runs[i];
		n += r->status == BV_RUN_DONE && r->method == method &&
		     (isnan(T) ? isnan(r->temperature) : r->temperature == T);
	}
	return n;
}

/* Seeds (ascending) for which ce and every soft method present at T are done. */
static int paired_seeds(int *out, const plan *p, double T)
{
	int n = 0;
	for (int i = 0; i < p->n_runs; i++) {
		const bv_run *r = &p->runs[i];
		if (r->method != BV_RUN_CE || r->status != BV_RUN_DONE || n >= MAX_SEEDS)
			continue;
		int ok = 1;
		for (int m = 0; m < p->n_soft; m++)
			if (count_seeds(p, p->soft[m], T) > 0 &&
			    !find_run(p, p->soft[m], T, r->seed))
				ok = 0;
		if (ok)
			out[n++] = r->seed;
	}
	/* runs are listed by seed within a method; keep them sorted anyway */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

static void temps_text(char *out, size_t size, const plan *p)
{
	size_t len = 0;
	out[0] = '\0';
	for (int i = 0; i < p->n_temps && len < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%g", i ? ", " : "", p->temps[i]);
}

static int make_plan(plan *p, bv_db *db, const bv_decompose_opts *o, bv_say_fn say, void *ctx)
{
	int rc, n_skipped = 0;
	char skipped[512] = "";
	memset(p, 0, sizeof *p);
	p->n_soft = bv_db_soft_methods(p->soft);
	if ((rc = bv_db_runs_list(db, &p->runs, &p->n_runs)) != 0)
		return rc;
	for (int i = 0; i < p->n_runs; i++) {
		const bv_run *r = &p->runs[i];
		const char *method = bv_db_method_name(r->method);
		const char *status = bv_db_status_name(r->status);
		if (r->status != BV_RUN_DONE) {
			size_t len = strlen(skipped);
			if (n_skipped < 6 && len < sizeof skipped - 64) {
				if (isnan(r->temperature))
					snprintf(skipped + len, sizeof skipped - len, "%s%s seed %d (%s)",
						 n_skipped ? ", " : "", method, r->seed, status);
				else
					snprintf(skipped + len, sizeof skipped - len,
						 "%s%s T=%g seed %d (%s)", n_skipped ? ", " : "",
						 method, r->temperature, r->seed, status);
			}
			n_skipped++;
			continue;
		}
		if (r->method == BV_RUN_TEACHER)
			p->teacher_id = r->id;
		if (isnan(r->temperature))
			continue;
		int seen = 0;
		for (int t = 0; t < p->n_temps; t++)
			seen |= p->temps[t] == r->temperature;
		if (!seen && p->n_temps == BV_MAX_TEMPS)
			return bv_error_set(BV_EFORMAT, "'%s' has more than %d temperatures; decompose reads at most %d",
					    bv_db_path(db), BV_MAX_TEMPS, BV_MAX_TEMPS);
		if (!seen)
			p->temps[p->n_temps++] = r->temperature;
	}
	gsl_sort(p->temps, 1, (size_t)p->n_temps);
	if (n_skipped)
		sayf(say, ctx, "skipped %d run%s that %s not done: %s%s", n_skipped,
		     n_skipped == 1 ? "" : "s", n_skipped == 1 ? "is" : "are", skipped,
		     n_skipped > 6 ? ", ..." : "");

	const int n_ce = count_seeds(p, BV_RUN_CE, NAN);
	if (n_ce > MAX_SEEDS)
		return bv_error_set(BV_EFORMAT, "'%s' has %d finished ce runs; decompose reads at most %d",
				    bv_db_path(db), n_ce, MAX_SEEDS);
	if (n_ce == 0)
		return bv_error_set(BV_ESTATE,
				    "'%s' has no finished ce runs: decompose needs the ce students as the "
				    "baseline (bvtool collect --methods ce,kd,...)",
				    bv_db_path(db));
	if (n_ce < 2)
		return bv_error_set(BV_ESTATE,
				    "decompose needs >= 2 finished seeds of ce; '%s' has %d", bv_db_path(db),
				    n_ce);
	if (p->n_temps == 0) {
		char soft[128];
		return bv_error_set(BV_ESTATE, "'%s' has no finished %s runs to compare with %s",
				    bv_db_path(db),
				    bv_db_methods_text(soft, sizeof soft, bv_db_methods_mask(1), "",
						       ", ", " or "),
				    bv_db_method_name(BV_RUN_CE));
	}
	if (o->n_temps > 0) {
		char have[512];
		temps_text(have, sizeof have, p);
		for (int i = 0; i < o->n_temps; i++) {
			int found = 0;
			for (int t = 0; t < p->n_temps; t++)
				found |= p->temps[t] == o->temps[i];
			if (!found)
				return bv_error_set(BV_EINVAL, "--temp: temperature %g is not in '%s' (it has %s)",
						    o->temps[i], bv_db_path(db), have);
		}
		memcpy(p->temps, o->temps, sizeof(double) * (size_t)o->n_temps);
		p->n_temps = o->n_temps;
		gsl_sort(p->temps, 1, (size_t)p->n_temps);
	}
	for (int t = 0; t < p->n_temps; t++)
		for (int m = 0; m < p->n_soft; m++) {
			int n = count_seeds(p, p->soft[m], p->temps[t]);
			if (n == 1)
				return bv_error_set(BV_ESTATE,
						    "decompose needs >= 2 finished seeds of %s at T=%g; '%s' has 1",
						    bv_db_method_name(p->soft[m]), p->temps[t],
						    bv_db_path(db));
		}
	return 0;
}

/* ---- loading ------------------------------------------------------------- */

static void run_name(char *out, size_t size, const bv_run *r)
{
	if (isnan(r->temperature))
		snprintf(out, size, "run %lld (%s seed %d)", (long long)r->id,
			 bv_db_method_name(r->method), r->seed);
	else
		snprintf(out, size, "run %lld (%s T=%g seed %d)", (long long)r->id,
			 bv_db_method_name(r->method), r->temperature, r->seed);
}

/* Load the snapshots of `runs` (B) at `epoch` into buf (B, N, K), checking
 * every value is finite. */
static int load(float *buf, bv_db *db, const bv_run *const *runs, int B, int epoch,
		const char *split, int N, int K)
{
	int rc;
	for (int b = 0; b < B; b++) {
		float *dst = buf + (size_t)b * N * K;
		char name[128];
		run_name(name, sizeof name, runs[b]);
		if ((rc = bv_db_logits_get(db, runs[b]->id, epoch, split, dst, N, K)) != 0)
			return bv_error_prefix(rc, "%s epoch %d", name, epoch);
		const size_t i = bv_first_nonfinite(dst, (size_t)N * K);
		if (i < (size_t)N * K)
			return bv_error_set(BV_EFORMAT,
					    "%s epoch %d: non-finite logit (%g) for %s sample %zu; "
					    "the run diverged or the database is damaged",
					    name, epoch, (double)dst[i], split, i / (size_t)K);
	}
	return 0;
}

/*
 * K, the classes: the k of the snapshots this decomposition reads (every done
 * student's at the decomposed epochs, the teacher's at teacher_epoch when
 * teacher_id is not 0), which must all be the same and 2..MAX_CLASSES; and
 * config n_classes, when the database has it (n_classes > 0), must say so too.
 */
static int snapshot_classes(int *out_k, bv_db *db, const plan *p, const int *epochs, int n_epochs,
			    const char *snap, int64_t teacher_id, int teacher_epoch, long n_classes)
{
	bv_db_snapshot_ref *refs = malloc(sizeof *refs * ((size_t)p->n_runs * n_epochs + 1));
	int n = 0, rc;
	if (!refs)
		return bv_error_set(BV_ENOMEM, "out of memory");
	for (int i = 0; i < p->n_runs; i++)
		for (int e = 0; e < n_epochs; e++)
			if (p->runs[i].status == BV_RUN_DONE && p->runs[i].method != BV_RUN_TEACHER)
				refs[n++] = (bv_db_snapshot_ref){p->runs[i].id, epochs[e]};
	if (teacher_id)
		refs[n++] = (bv_db_snapshot_ref){teacher_id, teacher_epoch};
	rc = bv_db_snapshots_k(db, out_k, snap, refs, n, "this decomposition");
	free(refs);
	if (rc)
		return rc;
	if (*out_k < 2 || *out_k > MAX_CLASSES)
		return bv_error_set(BV_EFORMAT,
				    "'%s': the %s snapshots have k = %d, expected 2..%d classes"
				    DAMAGED, bv_db_path(db), snap, *out_k, MAX_CLASSES);
	if (n_classes > 0 && n_classes != *out_k)
		return bv_error_set(BV_EFORMAT,
				    "'%s': config n_classes is %ld, the snapshots of this "
				    "decomposition have k = %d" DAMAGED,
				    bv_db_path(db), n_classes, *out_k);
	return 0;
}

/* ---- per-sample work ---------------------------------------------------- */

typedef struct selection {
	const char *split;      /* test | train | oob */
	const char *snap;       /* the snapshots' split: test or train */
	int N, K;
	const int *labels;      /* (N) */
	const float *teacher;   /* (N, K) or NULL */
	const double *teacher_ce; /* (N) -log softmax(teacher)[y], when teacher is not NULL */
	const int *oob;         /* (B, N) 1 where seed b did not draw sample i; NULL unless oob */
	bv_criterion crit;
	double T;
} selection;

/* weights of sample i: 1 for every replica, or its out-of-bag replicas */
static int sample_weights(double *w, const selection *s, int B, int i)
{
	int n = 0;
	for (int b = 0; b < B; b++) {
		w[b] = s->oob ? (double)s->oob[(size_t)b * s->N + i] : 1.0;
		n += w[b] > 0;
	}
	return n;
}

enum { SAMPLES = 64 }; /* samples per bv_decompose_samples call */

/* Decompose every sample of one method; rows (N) out, returning how many were
 * written (oob samples with < 2 out-of-bag seeds are left out), or BV_ENOMEM. */
static int decompose_method(bv_stat_row *rows, const float *buf, int B, const selection *s,
			    const bv_stat_row *ce_rows, int soft, double *max_err)
{
	const size_t stride = (size_t)s->N * s->K;
	const int K = s->K, use_wsl = soft && s->teacher;
	double *w = malloc(sizeof(double) * SAMPLES * (size_t)B); /* (SAMPLES, B) */
	if (!w)
		return bv_error_set(BV_ENOMEM, "out of memory");
	int n_rows = 0;
	for (int i0 = 0; i0 < s->N; i0 += SAMPLES) {
		const int n = s->N - i0 < SAMPLES ? s->N - i0 : SAMPLES;
		/* the next block's rows lie in B places a stride apart: more streams
		 * than the hardware prefetcher follows, whose misses were half of the
		 * decomposition's time */
		const int n_next = s->N - i0 - n < SAMPLES ? s->N - i0 - n : SAMPLES;
		for (int b = 0; b < B; b++)
			for (int f = 0; f < n_next * K; f += 16)
				__builtin_prefetch(buf + (size_t)b * stride + (size_t)(i0 + n) * K + f);
		int nb[SAMPLES];
		for (int j = 0; j < n; j++)
			nb[j] = sample_weights(w + (size_t)j * B, s, B, i0 + j);
		bv_bv d[SAMPLES];
		double wsl[SAMPLES];
		bv_decompose_samples(d, use_wsl ? wsl : NULL, buf + (size_t)i0 * K, stride, B, K, n,
				     s->labels + i0, s->oob ? w : NULL, (size_t)B,
				     use_wsl ? s->teacher_ce + i0 : NULL);
		for (int j = 0; j < n; j++) {
			if (nb[j] < 2)
				continue;
			const int i = i0 + j, y = s->labels[i];
			const float *t = s->teacher ? s->teacher + (size_t)i * K : NULL;
			bv_stat_row *r = &rows[n_rows];
			r->sample_idx = i;
			r->bias = d[j].bias;
			r->variance = d[j].variance;
			r->loss = d[j].loss;
			r->n_seeds = nb[j];
			r->p_true = d[j].p_true;
			r->acc = d[j].acc;
			r->regularization = -1;
			r->wsl_weight = use_wsl ? wsl[j] : NAN;
			r->teacher_p_true = t ? exp(-s->teacher_ce[i]) : NAN;
			if (soft) {
				/* ce_rows[] holds every sample that has a row, in the same order */
				const bv_stat_row *c = &ce_rows[n_rows];
				switch (s->crit) {
				case BV_CRIT_BV:
					r->regularization =
						bv_flag_bv(&d[j], &(bv_bv){c->bias, c->variance, c->loss, 0, 0});
					break;
				case BV_CRIT_GRAD:
					r->regularization = bv_flag_grad(NULL, buf + (size_t)i * K, stride, B,
									 K, y, t, s->T);
					break;
				case BV_CRIT_TEACHER:
					r->regularization = bv_flag_teacher(t, K, y, d[j].loss);
					break;
				}
			}
			*max_err = fmax(*max_err, fabs(d[j].loss - d[j].bias - d[j].variance));
			n_rows++;
		}
	}
	free(w);
	return n_rows;
}

/* ---- writing while computing ------------------------------------------------ */

/*
 * The rows of an epoch go to SQLite on a thread of their own while the next
 * epoch's snapshots are read (through a second, read-only connection) and
 * decomposed: on two cores the writing, half of the time, overlaps the rest.
 * Jobs are written in the order given, one at a time; the caller fills the
 * buffers of the next job while the writer has the previous one, and
 * writer_submit waits for that one to be written before handing over.
 */
enum { MAX_PUTS = 1 + N_SOFT };

typedef struct epoch_job {
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
} epoch_job;

typedef struct writer {
	bv_db *db;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started, has_job, quit, rc;
	epoch_job job;
	char err[1024]; /* the writer thread's error message (messages are per thread) */
} writer;

static int write_job(bv_db *db, const epoch_job *j)
{
	int rc = 0;
	if (j->n_clear > 0) {
		for (int e = 0; e < j->n_clear && rc == 0; e++)
			rc = bv_db_stats_clear(db, j->T, j->clear[e], j->split);
		return rc;
	}
	for (int m = 0; m < j->n_puts && rc == 0; m++)
		rc = bv_db_stats_put(db, j->T, j->E, j->split, j->method[m], j->rows[m], j->n[m]);
	return rc ? rc : bv_db_decomposition_put(db, &j->d);
}

static void *writer_main(void *arg)
{
	writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->has_job && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->has_job)
			break;
		pthread_mutex_unlock(&w->mu);
		int rc = w->rc == 0 ? write_job(w->db, &w->job) : 0; /* after an error, skip */
		pthread_mutex_lock(&w->mu);
		if (rc != 0 && w->rc == 0) {
			w->rc = rc;
			snprintf(w->err, sizeof w->err, "%s", bv_error_last());
		}
		w->has_job = 0;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* The CPUs this process may run on (taskset, cgroups' cpusets). */
static int cpus_available(void)
{
	cpu_set_t set;
	return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 2;
}

/* Start the thread when `threaded`; without one (or when it could not start)
 * jobs are written inline by writer_submit. */
static void writer_start(writer *w, bv_db *db, int threaded)
{
	memset(w, 0, sizeof *w);
	w->db = db;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->started = threaded && pthread_create(&w->thread, NULL, writer_main, w) == 0;
}

/* Wait until the job handed over last is written; its error, if any. */
static int writer_drain(writer *w)
{
	if (!w->started)
		return w->rc;
	pthread_mutex_lock(&w->mu);
	while (w->has_job)
		pthread_cond_wait(&w->cv, &w->mu);
	const int rc = w->rc;
	pthread_mutex_unlock(&w->mu);
	return rc ? bv_error_set(rc, "%s", w->err) : 0;
}

/* Hand over a job (copied); the buffers it points to must stay untouched until
 * the next writer_submit or writer_drain returns. */
static int writer_submit(writer *w, const epoch_job *j)
{
	int rc;
	if (!w->started)
		return w->rc = write_job(w->db, j);
	if ((rc = writer_drain(w)) != 0)
		return rc;
	pthread_mutex_lock(&w->mu);
	w->job = *j;
	w->job.d.seeds = w->job.seeds;
	w->has_job = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

/* Drain, stop and join the thread; the first error of all. */
static int writer_stop(writer *w)
{
	const int rc = writer_drain(w);
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->quit = 1;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	return rc;
}

/* ---- the correlation ------------------------------------------------------ */

enum {
	BOOT_CAP = 4096, /* log-probabilities of a block of samples, per replica */
	BOOT_BLOCK = 64, /* samples per block, at most */
};

typedef struct corr_data {
	int n_t;
	double temps[BV_MAX_TEMPS];
	double *ce, *m[BV_MAX_TEMPS]; /* (B, N, K) log-probabilities; ce's at every temperature */
	double *log_ps[BV_MAX_TEMPS]; /* grad criterion: (B, N) log p_s^T[y] of the method */
	double *log_pt[BV_MAX_TEMPS]; /* grad criterion: (N) log p_t^T[y] of the teacher */
	double acc[BV_MAX_TEMPS][MAX_SEEDS];        /* per seed test accuracy of the method */
	int B, N, K;
} corr_data;

/* Regularization counts of method vs ce, counts[t * n_w + q] at temperature
 * index t under the weights W + q * B of each of n_w draws. A block of
 * samples at a time, for all draws and temperatures, so that the (B, N, K)
 * log-probabilities are read once rather than once per draw, and ce (the same
 * runs at every temperature) is decomposed once per draw. wb is scratch for
 * BOOT_BLOCK * B weights. */
static void boot_counts(int *counts, const corr_data *cd, const selection *s, const double *W,
			int n_w, double *wb)
{
	const size_t stride = (size_t)cd->N * cd->K;
	const int B = cd->B, K = cd->K;
	const int per_block = BOOT_CAP / K < BOOT_BLOCK ? BOOT_CAP / K : BOOT_BLOCK;
	for (int q = 0; q < n_w * cd->n_t; q++)
		counts[q] = 0;
	for (int i0 = 0; i0 < cd->N; i0 += per_block)
	for (int q = 0; q < n_w; q++) {
		const double *w = W + (size_t)q * B;
		const int n = cd->N - i0 < per_block ? cd->N - i0 : per_block;
		int skip[BOOT_BLOCK];
		for (int j = 0; j < n; j++) {
			int nb = 0;
			for (int b = 0; b < B; b++) {
				double x = w[b] * (s->oob ? s->oob[(size_t)b * cd->N + i0 + j] : 1);
				wb[(size_t)j * B + b] = x;
				nb += x > 0;
			}
			skip[j] = s->oob && nb < 2; /* as the decomposition: < 2 out-of-bag seeds */
		}
		const int *y = s->labels + i0;
		bv_math_decomp dm[BOOT_BLOCK], dce[BOOT_BLOCK]; /* the method's, ce's */
		/* without oob, the draw's weights are every sample's */
		const double *ws = s->oob ? wb : w;
		const size_t w_stride = s->oob ? (size_t)B : 0;
		if (s->crit == BV_CRIT_BV)
			bv_decompose_logp(dce, cd->ce + (size_t)i0 * K, stride, B, K, n, y, ws,
					  w_stride);
		for (int t = 0; t < cd->n_t; t++) {
			int count = 0;
			bv_decompose_logp(dm, cd->m[t] + (size_t)i0 * K, stride, B, K, n, y, ws,
					  w_stride);
			for (int j = 0; j < n; j++) {
				if (skip[j])
					continue;
				const int i = i0 + j;
				const double *ww = wb + (size_t)j * B;
				if (s->crit == BV_CRIT_BV) {
					count += bv_math_crit_bv(dm[j].bias, dm[j].variance,
								 dce[j].bias, dce[j].variance);
				} else if (s->crit == BV_CRIT_TEACHER) {
					count += bv_math_crit_teacher(s->teacher_ce[i], dm[j].loss);
				} else {
					/* grad: weighted majority of replicas with |b| > |a|;
					 * replica b's log q at b * stride, its log p_s^T[y]
					 * at b * N */
					const double *lq = cd->m[t] + (size_t)i * K + y[j];
					const double *lps = cd->log_ps[t] + i;
					const double lpt = cd->log_pt[t][i];
					double agree = 0, wsum = 0;
					for (int b = 0; b < B; b++) {
						if (ww[b] == 0)
							continue;
						const double lq_b = lq[(size_t)b * stride];
						const double lps_b = lps[(size_t)b * cd->N];
						agree += ww[b] * bv_math_crit_grad(lq_b, lps_b, lpt,
										   cd->temps[t]);
						wsum += ww[b];
					}
					count += bv_math_majority(agree, wsum);
				}
			}
			counts[(size_t)t * n_w + q] += count;
		}
	}
}

static int correlation_clear(bv_db *db, const char *split, int epoch, bv_run_method method)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = bv_db_prepare(db, &st, "DELETE FROM correlations WHERE split = ?1 AND epoch = ?2 "
					 "AND method = ?3")) != 0)
		return rc;
	sqlite3_bind_text(st, 1, split, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, epoch);
	sqlite3_bind_text(st, 3, bv_db_method_name(method), -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : bv_db_error(db);
	sqlite3_finalize(st);
	return rc;
}

static int correlate_method(bv_db *db, const plan *p, bv_run_method method, int epoch,
			    const selection *s0, const bv_decompose_opts *o, bv_say_fn say, void *ctx)
{
	const char *name = bv_db_method_name(method);
	corr_data *cd = calloc(1, sizeof *cd);
	double x[BV_MAX_TEMPS], y[BV_MAX_TEMPS];
	int seeds[MAX_SEEDS], rc = 0;
	double *rs = NULL, *wb = NULL; /* wb: boot_counts' weights (BOOT_BLOCK, B) */
	double *W = NULL;              /* (1 + n_boot, B) the draws' weights */
	int *counts = NULL;
	float *raw = NULL;
	if (!cd)
		return bv_error_set(BV_ENOMEM, "out of memory for the correlation");
	/* an earlier row of (split, epoch, method) goes, whether or not a new one
	 * can be computed: it was of other statistics */
	if ((rc = correlation_clear(db, s0->split, epoch, method)) != 0)
		goto done;
	/* temperatures with this method and seeds paired at every one of them */
	int B = -1;
	for (int t = 0; t < p->n_temps; t++) {
		if (count_seeds(p, method, p->temps[t]) < 2)
			continue;
		int sd[MAX_SEEDS], n = paired_seeds(sd, p, p->temps[t]);
		if (B < 0) {
			memcpy(seeds, sd, sizeof(int) * (size_t)n);
			B = n;
		} else {
			int m = 0;
			for (int a = 0; a < B; a++)
				for (int b = 0; b < n; b++)
					if (seeds[a] == sd[b])
						seeds[m++] = seeds[a];
			B = m;
		}
		cd->temps[cd->n_t++] = p->temps[t];
	}
	if (cd->n_t < 3) {
		sayf(say, ctx, "correlation (%s): needs >= 3 temperatures with %s students; %s has %d",
		     name, name, bv_db_path(db), cd->n_t);
		goto done;
	}
	if (B < 2) {
		sayf(say, ctx, "correlation (%s): fewer than 2 seeds are done at every temperature",
		     name);
		goto done;
	}
	cd->B = B;
	cd->N = s0->N;
	cd->K = s0->K;
	selection s = *s0;
	const bv_run *runs[MAX_SEEDS];
	raw = malloc(sizeof(float) * (size_t)B * s.N * s.K);
	wb = malloc(sizeof(double) * BOOT_BLOCK * (size_t)B);
	if (!raw || !wb) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for the correlation");
		goto done;
	}
	for (int t = 0; t < cd->n_t; t++) {
		const bv_run_method mm[2] = {BV_RUN_CE, method};
		double **dst[2] = {&cd->ce, &cd->m[t]};
		for (int j = t == 0 ? 0 : 1; j < 2; j++) { /* ce (no temperature) once */
			for (int b = 0; b < B; b++)
				runs[b] = find_run(p, mm[j], j == 0 ? NAN : cd->temps[t], seeds[b]);
			if ((rc = load(raw, db, runs, B, epoch, s.snap, s.N, s.K)) != 0)
				goto done;
			if (!(*dst[j] = malloc(sizeof(double) * (size_t)B * s.N * s.K))) {
				rc = bv_error_set(BV_ENOMEM, "out of memory for the correlation");
				goto done;
			}
			for (size_t i = 0; i < (size_t)B * s.N; i++) /* log q, in double */
				bv_math_log_softmax(*dst[j] + i * s.K, raw + i * s.K, s.K, 1.0);
		}
		if (s.crit == BV_CRIT_GRAD) { /* raw holds the method's logits at temps[t] */
			const double T = cd->temps[t];
			cd->log_ps[t] = malloc(sizeof(double) * (size_t)B * s.N);
			cd->log_pt[t] = malloc(sizeof(double) * (size_t)s.N);
			if (!cd->log_ps[t] || !cd->log_pt[t]) {
				rc = bv_error_set(BV_ENOMEM, "out of memory for the correlation");
				goto done;
			}
			for (int i = 0; i < s.N; i++) {
				const int yi = s.labels[i];
				const float *tz = s.teacher + (size_t)i * s.K;
				cd->log_pt[t][i] = bv_math_log_softmax_at(tz, s.K, yi, T);
				for (int b = 0; b < B; b++)
					cd->log_ps[t][(size_t)b * s.N + i] = bv_math_log_softmax_at(
						raw + ((size_t)b * s.N + i) * s.K, s.K, yi, T);
			}
		}
		for (int b = 0; b < B; b++) {
			const bv_run *r = find_run(p, method, cd->temps[t], seeds[b]);
			if ((rc = bv_db_run_test_acc(db, r->id, epoch, &cd->acc[t][b])) != 0)
				goto done;
		}
	}
	/* the weights: all seeds (the point estimate), then each bootstrap draw */
	const int n_w = 1 + (o->n_boot > 0 ? o->n_boot : 0);
	W = malloc(sizeof(double) * (size_t)n_w * B);
	counts = malloc(sizeof(int) * (size_t)n_w * cd->n_t); /* (n_t, n_w) */
	rs = malloc(sizeof(double) * (size_t)n_w);
	if (!W || !counts || !rs) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for the bootstrap");
		goto done;
	}
	for (int b = 0; b < B; b++)
		W[b] = 1;
	if (o->n_boot > 0) {
		gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
		if (!rng) {
			rc = bv_error_set(BV_ENOMEM, "out of memory for the bootstrap");
			goto done;
		}
		gsl_rng_set(rng, o->boot_seed);
		for (int it = 0; it < o->n_boot; it++) {
			double *w = W + (size_t)(1 + it) * B;
			for (int b = 0; b < B; b++)
				w[b] = 0;
			for (int b = 0; b < B; b++)
				w[gsl_rng_uniform_int(rng, (unsigned long)B)] += 1;
		}
		gsl_rng_free(rng);
	}
	boot_counts(counts, cd, &s, W, n_w, wb);
	for (int t = 0; t < cd->n_t; t++) {
		x[t] = counts[(size_t)t * n_w];
		y[t] = 0;
		for (int b = 0; b < B; b++)
			y[t] += cd->acc[t][b] / B;
	}
	bv_corr c;
	if (bv_correlate(&c, x, y, cd->n_t) != 0) {
		sayf(say, ctx, "correlation (%s): not defined (%s)", name, bv_error_last());
		goto done;
	}
	double lo = NAN, hi = NAN;
	int n_ok = 0;
	for (int it = 0; it < o->n_boot; it++) {
		const double *w = W + (size_t)(1 + it) * B;
		double xb[BV_MAX_TEMPS], yb[BV_MAX_TEMPS];
		for (int t = 0; t < cd->n_t; t++) {
			xb[t] = counts[(size_t)t * n_w + 1 + it];
			yb[t] = 0;
			for (int b = 0; b < B; b++)
				yb[t] += w[b] * cd->acc[t][b] / B;
		}
		bv_corr cb;
		if (bv_correlate(&cb, xb, yb, cd->n_t) == 0)
			rs[n_ok++] = cb.r;
	}
	if (n_ok >= 2) {
		gsl_sort(rs, 1, (size_t)n_ok);
		lo = rs[(size_t)floor(0.025 * (n_ok - 1))];
		hi = rs[(size_t)ceil(0.975 * (n_ok - 1))];
	}
	bv_db_correlation cor = {s.split, method, bv_criterion_name(s.crit), epoch, cd->n_t, n_ok,
				 c.r, c.r_p, c.rho, c.rho_p, lo, hi};
	if ((rc = bv_db_correlation_put(db, &cor)) != 0)
		goto done;
	sayf(say, ctx,
	     "correlation (%s, %s split, epoch %d, %d temperatures, %d seeds): regularization samples "
	     "vs mean test accuracy: Pearson r = %.3f (p = %.3g), Spearman rho = %.3f (p = %.3g)",
	     name, s.split, epoch, cd->n_t, B, c.r, c.r_p, c.rho, c.rho_p);
	if (o->n_boot > 0)
		sayf(say, ctx, "  bootstrap 95%% interval for r over seeds: [%.3f, %.3f] (%d of %d resamples defined)",
		     lo, hi, n_ok, o->n_boot);
done:
	for (int t = 0; t < BV_MAX_TEMPS; t++) {
		free(cd->m[t]);
		free(cd->log_ps[t]);
		free(cd->log_pt[t]);
	}
	free(cd->ce);
	free(cd);
	free(rs);
	free(raw);
	free(wb);
	free(W);
	free(counts);
	return rc;
}

/* ---- the command ------------------------------------------------------------ */

int bv_decompose_db(bv_db *db, const bv_decompose_opts *o, bv_say_fn say, void *ctx)
{
	plan p = {0};
	selection s = {0};
	int rc, *labels = NULL, *epochs = NULL, n_epochs = 0, *oob = NULL, N = 0;
	float *teacher = NULL, *ce_buf = NULL, *m_buf = NULL;
	double *teacher_ce = NULL;
	bv_stat_row *ce_cache = NULL, *m_rows = NULL; /* ce rows of every epoch (n_epochs, N) */
	int *ce_n = NULL;                             /* rows per epoch */
	char ce_seeds[1024] = "";                     /* the seeds ce_cache was computed with */
	const bv_run **runs = NULL;
	int in_tx = 0, writer_running = 0;
	double max_err = 0;
	bv_db *rd = NULL; /* read-only, for the snapshots */
	writer w;

	/* read the snapshots through a memory map: no copy through the kernel */
	sqlite3_exec(bv_db_handle(db), "PRAGMA mmap_size = 17179869184", NULL, NULL, NULL);
	if ((rc = bv_db_check_runs(db)) != 0 || (rc = make_plan(&p, db, o, say, ctx)) != 0)
		goto done;
	s.split = o->split;
	s.snap = strcmp(o->split, "test") == 0 ? "test" : "train";
	s.crit = o->criterion;

	/* the classes are the snapshots' (below); config n_classes, when there,
	 * is checked against them */
	char k_text[64], k_safe[80];
	long n_classes = 0;
	if ((rc = bv_db_config_get(db, "n_classes", k_text, sizeof k_text)) < 0)
		goto done;
	if (rc == 1 && bv_parse_long(&n_classes, k_text, 2, MAX_CLASSES, "n_classes") != 0) {
		bv_db_safe_text(k_safe, sizeof k_safe, (const unsigned char *)k_text);
		rc = bv_error_set(BV_EFORMAT,
				  "'%s': config n_classes is '%s', expected a whole number 2..%d" DAMAGED,
				  bv_db_path(db), k_safe, MAX_CLASSES);
		goto done;
	}
	if ((rc = bv_db_samples_get(db, s.snap, NULL, 0, &N)) != 0)
		goto done;
	if (N == 0) {
		rc = bv_error_set(BV_ESTATE, "'%s' has no %s samples", bv_db_path(db), s.snap);
		goto done;
	}
	if (N > MAX_SAMPLES) {
		rc = bv_error_set(BV_EFORMAT, "'%s' holds %d %s samples, more than the %d decompose reads" DAMAGED,
				  bv_db_path(db), N, s.snap, MAX_SAMPLES);
		goto done;
	}
	if ((rc = bv_db_check_snapshots(db)) != 0)
		goto done;

	/* every run that takes part, to find the epochs they all recorded */
	runs = malloc(sizeof(*runs) * (size_t)(p.n_runs + 1));
	if (!runs) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	int n_part = 0;
	for (int t = 0; t < p.n_temps; t++) {
		int sd[MAX_SEEDS], n = paired_seeds(sd, &p, p.temps[t]);
		if (n < 2) {
			rc = bv_error_set(BV_ESTATE,
					  "decompose needs >= 2 seeds with ce and every method done at T=%g; "
					  "'%s' has %d",
					  p.temps[t], bv_db_path(db), n);
			goto done;
		}
		for (int b = 0; b < n; b++) {
			const bv_run *r = find_run(&p, BV_RUN_CE, NAN, sd[b]);
			int dup = 0;
			for (int j = 0; j < n_part; j++)
				dup |= runs[j] == r;
			if (!dup)
				runs[n_part++] = r;
			for (int m = 0; m < p.n_soft; m++)
				if ((r = find_run(&p, p.soft[m], p.temps[t], sd[b])) != NULL)
					runs[n_part++] = r;
		}
	}
	/* the epochs at which every one of them is analysable (db.h) */
	int64_t *ids = malloc(sizeof(int64_t) * (size_t)(n_part > 0 ? n_part : 1));
	if (!ids) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < n_part; i++)
		ids[i] = runs[i]->id;
	rc = bv_db_epochs_analysable(db, s.snap, ids, n_part, &epochs, &n_epochs);
	free(ids);
	if (rc)
		goto done;
	if (n_epochs == 0) {
		rc = bv_error_set(BV_ESTATE,
				  "no epoch of the %s split is recorded by every run of '%s'%s", s.snap,
				  bv_db_path(db),
				  strcmp(s.snap, "train") == 0 ? " (collect with --record-train)" : "");
		goto done;
	}
	if (o->epoch > 0) {
		int found = 0;
		char list[512] = "";
		size_t len = 0;
		for (int i = 0; i < n_epochs; i++) {
			found |= epochs[i] == o->epoch;
			if (len < sizeof list)
				len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", i ? "," : "",
							epochs[i]);
		}
		if (!found) {
			rc = bv_error_set(BV_EINVAL, "--epoch: epoch %d is not recorded for the %s split (recorded: %s)",
					  o->epoch, s.snap, list);
			goto done;
		}
		epochs[0] = o->epoch;
		n_epochs = 1;
	} else if (o->epoch < 0) {
		epochs[0] = epochs[n_epochs - 1];
		n_epochs = 1;
	}

	/* the teacher's last snapshot of the split (for wsl weights and the
	 * grad/teacher criteria), if it has one */
	int teacher_epoch = -1;
	if (p.teacher_id) {
		int *te = NULL, nte = 0;
		if ((rc = bv_db_epochs(db, p.teacher_id, s.snap, &te, &nte)) != 0)
			goto done;
		teacher_epoch = nte > 0 ? te[nte - 1] : -1;
		free(te);
	}

	/* K, then the labels, checked against it */
	if ((rc = snapshot_classes(&s.K, db, &p, epochs, n_epochs, s.snap,
				   teacher_epoch >= 0 ? p.teacher_id : 0, teacher_epoch,
				   n_classes)) != 0 ||
	    (rc = bv_db_check_labels(db, s.snap, s.K)) != 0)
		goto done;
	labels = malloc(sizeof(int) * (size_t)N);
	if (!labels || (rc = bv_db_samples_get(db, s.snap, labels, N, &N)) != 0) {
		rc = rc ? rc : bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	if (teacher_epoch >= 0) {
		teacher = malloc(sizeof(float) * (size_t)N * s.K);
		if (!teacher)
			rc = bv_error_set(BV_ENOMEM, "out of memory");
		else
			rc = bv_db_logits_get(db, p.teacher_id, teacher_epoch, s.snap, teacher, N,
					      s.K);
		if (rc)
			goto done;
	}
	s.teacher = teacher;
	if (teacher) {
		teacher_ce = malloc(sizeof(double) * (size_t)N);
		if (!teacher_ce) {
			rc = bv_error_set(BV_ENOMEM, "out of memory");
			goto done;
		}
		for (int i = 0; i < N; i++)
			teacher_ce[i] = bv_math_ce(teacher + (size_t)i * s.K, s.K, labels[i]);
	}
	s.teacher_ce = teacher_ce;
	if (!teacher && s.crit != BV_CRIT_BV) {
		rc = bv_error_set(BV_ESTATE, "--criterion %s needs the teacher's %s logits, which '%s' lacks",
				  bv_criterion_name(s.crit), s.snap, bv_db_path(db));
		goto done;
	}

	s.N = N;
	s.labels = labels;
	ce_cache = malloc(sizeof(bv_stat_row) * (size_t)N * (size_t)n_epochs);
	ce_n = calloc((size_t)n_epochs, sizeof(int));
	/* (2, n_soft, N) */
	m_rows = malloc(sizeof(bv_stat_row) * 2 * (size_t)p.n_soft * (size_t)N);
	if (!ce_cache || !ce_n || !m_rows) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	/* snapshots are read through a read-only connection of their own while the
	 * writer thread writes through db; with one CPU, or without that
	 * connection, everything on db, in turn */
	if (cpus_available() > 1 && bv_db_open(&rd, bv_db_path(db), BV_DB_READONLY) == 0)
		sqlite3_exec(bv_db_handle(rd), "PRAGMA mmap_size = 17179869184", NULL, NULL, NULL);
	else
		rd = NULL;
	bv_db *src = rd ? rd : db;
	if ((rc = bv_db_begin(db)) != 0)
		goto done;
	in_tx = 1;
	writer_start(&w, db, rd != NULL);
	writer_running = 1;
	const int last_epoch = epochs[n_epochs - 1];
	for (int t = 0; t < p.n_temps; t++) {
		const double T = p.temps[t];
		int sd[MAX_SEEDS], B = paired_seeds(sd, &p, T);
		const bv_run *rr[MAX_SEEDS];
		char seeds_text[1024];
		size_t len = 0;
		seeds_text[0] = '\0';
		for (int b = 0; b < B && len < sizeof seeds_text; b++)
			len += (size_t)snprintf(seeds_text + len, sizeof seeds_text - len, "%s%d", b ? "," : "",
						sd[b]);
		s.T = T;
		free(oob);
		oob = NULL;
		if (strcmp(o->split, "oob") == 0) {
			oob = malloc(sizeof(int) * (size_t)B * N);
			if (!oob) {
				rc = bv_error_set(BV_ENOMEM, "out of memory");
				goto done;
			}
			for (int b = 0; b < B; b++) {
				if ((rc = bv_db_check_inbag(db, sd[b])) != 0 ||
				    (rc = bv_db_inbag_get(db, sd[b], oob + (size_t)b * N, N)) != 0)
					goto done;
				for (int i = 0; i < N; i++)
					oob[(size_t)b * N + i] = oob[(size_t)b * N + i] == 0;
			}
		}
		s.oob = oob;
		free(ce_buf);
		free(m_buf);
		ce_buf = malloc(sizeof(float) * (size_t)B * N * s.K);
		m_buf = malloc(sizeof(float) * (size_t)B * N * s.K);
		if (!ce_buf || !m_buf) {
			rc = bv_error_set(BV_ENOMEM, "out of memory for %d x %d x %d logits", B, N, s.K);
			goto done;
		}
		/* the ce baseline does not depend on T: reuse it while the paired seeds stay the same */
		const int reuse_ce = strcmp(ce_seeds, seeds_text) == 0;
		if (!reuse_ce)
			snprintf(ce_seeds, sizeof ce_seeds, "%s", seeds_text);
		/* the earlier rows of every epoch go first, so that the new ones are
		 * appended in key order rather than split into the old ones' pages;
		 * the writer deletes them while the first epoch is decomposed */
		epoch_job clear = {.T = T, .split = o->split, .clear = epochs, .n_clear = n_epochs};
		if ((rc = writer_submit(&w, &clear)) != 0)
			goto done;
		for (int e = 0; e < n_epochs; e++) {
			const int E = epochs[e];
			bv_stat_row *ce_rows = ce_cache + (size_t)e * N;
			/* the writer may still have the previous epoch's rows: the other half */
			bv_stat_row *mr = m_rows + (size_t)(e % 2) * p.n_soft * N;
			epoch_job job = {.T = T, .E = E, .split = o->split};
			if (!reuse_ce) {
				for (int b = 0; b < B; b++)
					rr[b] = find_run(&p, BV_RUN_CE, NAN, sd[b]);
				if ((rc = load(ce_buf, src, rr, B, E, s.snap, N, s.K)) != 0)
					goto done;
				if ((rc = ce_n[e] = decompose_method(ce_rows, ce_buf, B, &s, NULL, 0, &max_err)) < 0)
					goto done;
			}
			const int n_rows = ce_n[e];
			job.method[0] = BV_RUN_CE;
			job.rows[0] = ce_rows;
			job.n[0] = n_rows;
			job.n_puts = 1;
			double sb = 0, sv = 0, sl = 0;
			for (int i = 0; i < n_rows; i++)
				sb += ce_rows[i].bias, sv += ce_rows[i].variance, sl += ce_rows[i].loss;
			if (E == last_epoch)
				sayf(say, ctx, "T=%-4g epoch %-3d %-9s bias %.4f  variance %.4f  loss %.4f  (%d samples, %d seeds)",
				     T, E, bv_db_method_name(BV_RUN_CE), sb / n_rows, sv / n_rows,
				     sl / n_rows, n_rows, B);
			for (int m = 0; m < p.n_soft; m++) {
				if (count_seeds(&p, p.soft[m], T) == 0)
					continue;
				for (int b = 0; b < B; b++)
					rr[b] = find_run(&p, p.soft[m], T, sd[b]);
				if ((rc = load(m_buf, src, rr, B, E, s.snap, N, s.K)) != 0)
					goto done;
				bv_stat_row *m_rows_m = mr + (size_t)m * N;
				const int n_m = decompose_method(m_rows_m, m_buf, B, &s, ce_rows, 1, &max_err);
				if ((rc = n_m) < 0)
					goto done;
				job.method[job.n_puts] = p.soft[m];
				job.rows[job.n_puts] = m_rows_m;
				job.n[job.n_puts++] = n_m;
				if (E == last_epoch) {
					double mb = 0, mv = 0, ml = 0;
					int n_reg = 0;
					for (int i = 0; i < n_m; i++) {
						mb += m_rows_m[i].bias, mv += m_rows_m[i].variance, ml += m_rows_m[i].loss;
						n_reg += m_rows_m[i].regularization == 1;
					}
					sayf(say, ctx,
					     "T=%-4g epoch %-3d %-9s bias %.4f  variance %.4f  loss %.4f  "
					     "regularization samples %d (%.2f%%)",
					     T, E, bv_db_method_name(p.soft[m]), mb / n_m, mv / n_m,
					     ml / n_m, n_reg,
					     100.0 * n_reg / n_m);
				}
			}
			snprintf(job.seeds, sizeof job.seeds, "%s", seeds_text);
			job.d = (bv_db_decomposition){T, E, o->split, bv_criterion_name(s.crit), job.seeds,
						      n_rows, max_err};
			if ((rc = writer_submit(&w, &job)) != 0)
				goto done;
			if (strcmp(o->split, "oob") == 0 && n_rows < N && E == last_epoch)
				sayf(say, ctx, "T=%g: %d of %d training samples have < 2 out-of-bag seeds and are left out",
				     T, N - n_rows, N);
		}
		/* the next temperature starts with deletes on the writer's connection */
		if ((rc = writer_drain(&w)) != 0)
			goto done;
	}
	writer_running = 0;
	if ((rc = writer_stop(&w)) != 0)
		goto done;
	if (max_err > 1e-4) {
		rc = bv_error_set(BV_EFORMAT,
				  "identity check failed: max |loss - bias - variance| = %.3g > 1e-4; "
				  "nothing was written",
				  max_err);
		goto done;
	}
	sayf(say, ctx, "identity check: max |loss - bias - variance| = %.3g over all rows", max_err);

	/* the correlation across temperatures, for each soft method, in the same
	 * transaction: statistics and correlations are committed together or not
	 * at all, so a reader never sees new rows beside old correlations */
	for (int m = 0; m < p.n_soft; m++) {
		int any = 0;
		for (int t = 0; t < p.n_temps; t++)
			any |= count_seeds(&p, p.soft[m], p.temps[t]) >= 2;
		if (!any)
			continue;
		/* all temperatures of the database, not only those selected */
		plan all = p;
		int n_all = 0;
		double tall[BV_MAX_TEMPS];
		for (int i = 0; i < p.n_runs; i++) {
			const bv_run *r = &p.runs[i];
			if (r->status != BV_RUN_DONE || isnan(r->temperature))
				continue;
			int seen = 0;
			for (int j = 0; j < n_all; j++)
				seen |= tall[j] == r->temperature;
			if (!seen && n_all < BV_MAX_TEMPS)
				tall[n_all++] = r->temperature;
		}
		gsl_sort(tall, 1, (size_t)n_all);
		memcpy(all.temps, tall, sizeof(double) * (size_t)n_all);
		all.n_temps = n_all;
		if ((rc = correlate_method(db, &all, p.soft[m], last_epoch, &s, o, say, ctx)) != 0)
			goto done;
	}
	if ((rc = bv_db_commit(db)) != 0)
		goto done;
	in_tx = 0;
done:
	if (writer_running)
		writer_stop(&w);
	bv_db_close(rd);
	if (in_tx)
		bv_db_rollback(db);
	free(p.runs);
	free(runs);
	free(labels);
	free(epochs);
	free(oob);
	free(teacher);
	free(teacher_ce);
	free(ce_buf);
	free(m_buf);
	free(ce_cache);
	free(ce_n);
	free(m_rows);
	return rc;
}
