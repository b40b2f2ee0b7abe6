/*
 * The per-sample rows of a decomposition (decompose_int.h): every sample of
 * one method decomposed from its replicas' logits (bias, variance, loss,
 * p_true, acc, the WSL weight) and, for a soft method, flagged as a
 * regularization sample or not against the paired ce rows by the criterion;
 * and the thread that writes the rows.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include "decompose_int.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* ---- the rows of one method ------------------------------------------------- */

/* weights of sample i: 1 for every replica, or its out-of-bag replicas */
static int sample_weights(double *w, const dc_selection *s, int B, int i)
{
	int n = 0;
	for (int b = 0; b < B; b++) {
		w[b] = s->oob ? (double)s->oob[(size_t)b * s->N + i] : 1.0;
		n += w[b] > 0;
	}
	return n;
}

enum { SAMPLES = 64 }; /* samples per bv_decompose_samples call */

/* The rows of samples [lo, hi) into rows; for a soft method, ce_rows holds the
 * ce rows of the same samples from its first. The number of rows, or < 0. */
static int rows_range(bv_stat_row *rows, const float *buf, int B, const dc_selection *s,
		      const bv_stat_row *ce_rows, int soft, int lo, int hi, double *max_err)
{
	const size_t stride = (size_t)s->N * s->K;
	const int K = s->K, use_wsl = soft && s->teacher;
	double *w = malloc(sizeof(double) * SAMPLES * (size_t)B); /* (SAMPLES, B) */
	if (!w)
		return bv_error_set(BV_ENOMEM, "out of memory");
	int n_rows = 0;
	for (int i0 = lo; i0 < hi; i0 += SAMPLES) {
		const int n = hi - i0 < SAMPLES ? hi - i0 : SAMPLES;
		/* the next block's rows lie in B places a stride apart: more streams
		 * than the hardware prefetcher follows, whose misses were half of the
		 * decomposition's time */
		const int n_next = hi - i0 - n < SAMPLES ? hi - i0 - n : SAMPLES;
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
			r->has_split = 0; /* dc_var_split's, with inits */
			r->var_init = r->var_data = NAN;
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

/* The second half of dc_rows, on a thread of its own. */
typedef struct rows_job {
	bv_stat_row *rows;
	const float *buf;
	int B, soft, lo, hi, n;
	const dc_selection *s;
	const bv_stat_row *ce_rows;
	double max_err;
	char err[512];
} rows_job;

static void *rows_main(void *arg)
{
	rows_job *j = arg;
	j->n = rows_range(j->rows, j->buf, j->B, j->s, j->ce_rows, j->soft, j->lo, j->hi, &j->max_err);
	if (j->n < 0)
		snprintf(j->err, sizeof j->err, "%s", bv_error_last());
	return NULL;
}

/* With two CPUs or more, the samples in two halves, the second on a thread:
 * each sample's numbers are its own (a sample's replicas are summed in their
 * order whatever the blocks), so the rows are the same bits as one pass
 * gives (tests/cli_analysis.sh compares decompose under taskset -c 0). */
int dc_rows(bv_stat_row *rows, const float *buf, int B, const dc_selection *s,
	    const bv_stat_row *ce_rows, int soft, double *max_err)
{
	const int half = s->N / 2;
	if (s->N < 8 * SAMPLES || dc_cpus() < 2)
		return rows_range(rows, buf, B, s, ce_rows, soft, 0, s->N, max_err);
	/* the second half's rows follow the first half's: as many as its samples
	 * with 2 replicas or more (the same for ce and the soft methods) */
	double *w = malloc(sizeof(double) * (size_t)B);
	if (!w)
		return bv_error_set(BV_ENOMEM, "out of memory");
	int first = 0;
	for (int i = 0; i < half; i++)
		first += sample_weights(w, s, B, i) >= 2;
	free(w);
	rows_job j = {rows + first, buf, B, soft, half, s->N, 0, s, soft ? ce_rows + first : NULL, 0, ""};
	pthread_t t;
	const int threaded = pthread_create(&t, NULL, rows_main, &j) == 0;
	if (!threaded)
		rows_main(&j);
	const int n = rows_range(rows, buf, B, s, ce_rows, soft, 0, half, max_err);
	if (threaded)
		pthread_join(t, NULL);
	if (n < 0)
		return n;
	if (j.n < 0)
		return bv_error_set(j.n, "%s", j.err);
	if (n != first)
		return bv_error_set(BV_EINVAL, "decompose: %d rows in the first half, %d expected", n,
				    first);
	*max_err = fmax(*max_err, j.max_err);
	return n + j.n;
}

/* ---- writing while computing ------------------------------------------------ */

/*
 * The rows of an epoch go to SQLite on a thread of their own while the next
 * epoch's snapshots are read (through a second, read-only connection) and
 * decomposed: on two cores the writing, half of the time, overlaps the rest.
 * Jobs are written in the order given, one at a time; the caller fills the
 * buffers of the next job while the writer has the previous one, and
 * dc_writer_submit waits for that one to be written before handing over.
 */

/* Write one job: its deletes, or its rows and its decompositions row. */
static int write_job(bv_db *db, const dc_job *j)
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

/* The thread: write each job handed over until told to quit; after an
 * error, skip the rest and keep the first error and its message. */
static void *writer_main(void *arg)
{
	dc_writer *w = arg;
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

int dc_cpus(void)
{
	cpu_set_t set;
	return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 2;
}

void dc_writer_start(dc_writer *w, bv_db *db, int threaded)
{
	memset(w, 0, sizeof *w);
	w->db = db;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->started = threaded && pthread_create(&w->thread, NULL, writer_main, w) == 0;
}

int dc_writer_drain(dc_writer *w)
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

int dc_writer_submit(dc_writer *w, const dc_job *j)
{
	int rc;
	if (!w->started)
		return w->rc = write_job(w->db, j);
	if ((rc = dc_writer_drain(w)) != 0)
		return rc;
	pthread_mutex_lock(&w->mu);
	w->job = *j;
	w->job.d.seeds = w->job.seeds;
	w->has_job = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

int dc_writer_stop(dc_writer *w)
{
	const int rc = dc_writer_drain(w);
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
