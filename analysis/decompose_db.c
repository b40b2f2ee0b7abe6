/*
 * bvtool decompose over a collected database (bv_decompose_db), the steps in
 * order: which runs, seeds and epochs take part (decompose_plan.c); K and the
 * labels, the teacher (decompose_load.c); for each temperature and epoch, the
 * snapshots of ce and of every soft method loaded into (B, N, K) arrays and
 * decomposed per sample (decompose_rows.c), the rows written by a second
 * thread while the next epoch is decomposed; then the correlation of
 * regularization-sample counts with accuracy across temperatures, with a
 * bootstrap interval over seeds (decompose_boot.c). All of it one
 * transaction, committed once at the end. It reads only what db.h's contract
 * calls analysable: complete runs, at the epochs where each has a snapshot and
 * a metrics row, K from the snapshots. Every value read from the database is
 * range-checked first (the checks of db/checks.c): a shared database is
 * untrusted input.
 */
#include "decompose_int.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* What the decomposition of one temperature works with. */
typedef struct run_ctx {
	const bv_decompose_opts *o;
	const dc_plan *p;
	dc_selection *s;
	bv_db *db;                      /* the writer's connection (idle between temperatures) */
	bv_db *src;                     /* the snapshots' connection */
	dc_writer *w;
	const int *epochs;
	int n_epochs, last_epoch;
	bv_stat_row *ce_cache, *m_rows; /* (n_epochs, N) ce rows; (2, n_soft, N) the others' */
	int *ce_n;                      /* ce rows per epoch */
	char ce_seeds[1024];            /* the seeds ce_cache was computed with */
	float *ce_buf, *m_buf;          /* (B, N, K) logits */
	int *oob;
	double max_err;
	int split;                      /* a variance was split by its source (inits) */
	bv_say_fn say;
	void *ctx;
} run_ctx;

/* With inits, the mean variance of n rows by its source, said. */
static void say_split(const run_ctx *c, const bv_stat_row *rows, int n, int B)
{
	double vi = 0, vd = 0;
	for (int i = 0; i < n; i++)
		vi += rows[i].var_init, vd += rows[i].var_data;
	dc_say(c->say, c->ctx,
	       "         variance by source: init %.4f  data %.4f  (%d draws x %d inits)", vi / n,
	       vd / n, B / c->s->n_inits, c->s->n_inits);
}

/* Mean bias, variance and loss of n rows, and their regularization samples. */
static void means(const bv_stat_row *rows, int n, double *b, double *v, double *l, int *n_reg)
{
	double sb = 0, sv = 0, sl = 0;
	int reg = 0;
	for (int i = 0; i < n; i++) {
		sb += rows[i].bias, sv += rows[i].variance, sl += rows[i].loss;
		reg += rows[i].regularization == 1;
	}
	*b = sb / n;
	*v = sv / n;
	*l = sl / n;
	*n_reg = reg;
}

/* ---- reading ahead ------------------------------------------------------------- */

/*
 * The snapshots of one temperature are loaded in the order they are used, one
 * (epoch, method) at a time into one of two buffers, by a thread of their own
 * on the read-only connection when there is one and two CPUs: the next
 * method's snapshots are read while the current one is decomposed (reading
 * 1.9 GB out of SQLite was the serial part left at CIFAR-100 size). Without
 * the thread, each load happens when it is asked for. Either way the
 * buffers hold the same bytes.
 */
typedef struct ahead {
	const run_ctx *c;
	int B, n;                 /* the seeds; the loads */
	const bv_run **runs;      /* (n, B) */
	int *epochs;              /* (n) */
	float *buf[2];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int loaded, consumed, quit, rc, threaded;
	char err[512];
	pthread_t thread;
} ahead;

static int ahead_load(const ahead *a, int i)
{
	const dc_selection *s = a->c->s;
	return dc_load(a->buf[i % 2], a->c->src, a->runs + (size_t)i * a->B, a->B, a->epochs[i],
		       s->snap, s->N, s->K);
}

static void *ahead_main(void *arg)
{
	ahead *a = arg;
	for (int i = 0; i < a->n; i++) {
		pthread_mutex_lock(&a->mu);
		while (!a->quit && i - a->consumed >= 2) /* both buffers in use */
			pthread_cond_wait(&a->cv, &a->mu);
		const int quit = a->quit;
		pthread_mutex_unlock(&a->mu);
		if (quit)
			break;
		const int rc = ahead_load(a, i);
		pthread_mutex_lock(&a->mu);
		if (rc) {
			a->rc = rc;
			snprintf(a->err, sizeof a->err, "%s", bv_error_last());
		} else {
			a->loaded = i + 1;
		}
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
		if (rc)
			break;
	}
	return NULL;
}

static void ahead_start(ahead *a)
{
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->threaded = a->c->src != a->c->db && dc_cpus() > 1 &&
		      pthread_create(&a->thread, NULL, ahead_main, a) == 0;
}

/* Load i (the loads are asked for in order), once loaded. */
static int ahead_get(ahead *a, int i, float **out)
{
	*out = a->buf[i % 2];
	if (!a->threaded)
		return ahead_load(a, i);
	pthread_mutex_lock(&a->mu);
	while (a->loaded <= i && a->rc == 0)
		pthread_cond_wait(&a->cv, &a->mu);
	const int rc = a->loaded > i ? 0 : a->rc;
	pthread_mutex_unlock(&a->mu);
	return rc ? bv_error_set(rc, "%s", a->err) : 0;
}

/* Load i has been used: its buffer may take the next. */
static void ahead_done(ahead *a, int i)
{
	pthread_mutex_lock(&a->mu);
	a->consumed = i + 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

static void ahead_stop(ahead *a)
{
	if (a->threaded) {
		pthread_mutex_lock(&a->mu);
		a->quit = 1;
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
	}
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a->runs);
	free(a->epochs);
}

static int decompose_epochs(run_ctx *c, double T, ahead *a, int reuse_ce, int B,
			    const char *seeds_text);

/* M when the B replicas (ascending) are draws of M >= 2 inits 1..M each, else 1 */
static int inits_of(const dc_rep_t *reps, int B)
{
	int M = 0;
	while (M < B && dc_rep_seed(reps[M]) == dc_rep_seed(reps[0]))
		M++;
	if (M < 2 || B % M)
		return 1;
	for (int b = 0; b < B; b++)
		if (dc_rep_init(reps[b]) != b % M + 1 || dc_rep_seed(reps[b]) != dc_rep_seed(reps[b - b % M]))
			return 1;
	return M;
}

/* Decompose every selected epoch at temperature T: ce (reused from the last
 * temperature while the paired seeds are the same) and each soft method,
 * handing each epoch's rows to the writer. */
static int decompose_temperature(run_ctx *c, double T)
{
	const dc_plan *p = c->p;
	dc_selection *s = c->s;
	const char *split = c->o->split;
	const int N = s->N;
	dc_rep_t sd[MAX_SEEDS];
	int B = dc_paired_seeds(sd, p, T), rc;
	char seeds_text[1024];
	size_t len = 0;
	seeds_text[0] = '\0';
	s->n_inits = inits_of(sd, B);
	c->split |= s->n_inits >= 2;
	/* "1,2,3" as before schema 5; with inits, "seed:init" */
	for (int b = 0; b < B && len < sizeof seeds_text; b++)
		len += (size_t)(dc_rep_init(sd[b]) == 1 && s->n_inits < 2
					? snprintf(seeds_text + len, sizeof seeds_text - len, "%s%d",
						   b ? "," : "", dc_rep_seed(sd[b]))
					: snprintf(seeds_text + len, sizeof seeds_text - len, "%s%d:%d",
						   b ? "," : "", dc_rep_seed(sd[b]),
						   dc_rep_init(sd[b])));
	int any_init = 0;
	for (int b = 0; b < B; b++)
		any_init |= dc_rep_init(sd[b]) != 1;
	if (s->n_inits == 1 && any_init)
		dc_say(c->say, c->ctx,
		       "T=%g: the draws have different numbers of inits, the variance is not split "
		       "by its source",
		       T);
	s->T = T;
	free(c->oob);
	c->oob = NULL;
	if (strcmp(split, "oob") == 0 && (rc = dc_load_oob(&c->oob, c->db, sd, B, N)) != 0)
		return rc;
	s->oob = c->oob;
	free(c->ce_buf);
	free(c->m_buf);
	c->ce_buf = malloc(sizeof(float) * (size_t)B * N * s->K);
	c->m_buf = malloc(sizeof(float) * (size_t)B * N * s->K);
	if (!c->ce_buf || !c->m_buf)
		return bv_error_set(BV_ENOMEM, "out of memory for %d x %d x %d logits", B, N, s->K);
	/* the ce baseline does not depend on T: reuse it while the paired seeds stay the same */
	const int reuse_ce = strcmp(c->ce_seeds, seeds_text) == 0;
	if (!reuse_ce)
		snprintf(c->ce_seeds, sizeof c->ce_seeds, "%s", seeds_text);
	/* the earlier rows of every epoch go first, so that the new ones are
	 * appended in key order rather than split into the old ones' pages;
	 * the writer deletes them while the first epoch is decomposed */
	dc_job clear = {.T = T, .split = split, .clear = c->epochs, .n_clear = c->n_epochs};
	if ((rc = dc_writer_submit(c->w, &clear)) != 0)
		return rc;
	/* the loads, in the order the loop below uses them */
	ahead a = {.c = c, .B = B};
	const int per_epoch = !reuse_ce + p->n_soft;
	a.runs = malloc(sizeof *a.runs * (size_t)(c->n_epochs * per_epoch * B + 1));
	a.epochs = malloc(sizeof *a.epochs * (size_t)(c->n_epochs * per_epoch + 1));
	a.buf[0] = c->ce_buf;
	a.buf[1] = c->m_buf;
	if (!a.runs || !a.epochs) {
		free(a.runs);
		free(a.epochs);
		return bv_error_set(BV_ENOMEM, "out of memory");
	}
	for (int e = 0; e < c->n_epochs; e++)
		for (int m = reuse_ce ? 0 : -1; m < p->n_soft; m++) {
			if (m >= 0 && dc_count_seeds(p, p->soft[m], T) == 0)
				continue;
			for (int b = 0; b < B; b++)
				a.runs[(size_t)a.n * B + b] = dc_find_run(p, m < 0 ? BV_RUN_CE : p->soft[m],
									  m < 0 ? NAN : T, sd[b]);
			a.epochs[a.n++] = c->epochs[e];
		}
	ahead_start(&a);
	rc = decompose_epochs(c, T, &a, reuse_ce, B, seeds_text);
	ahead_stop(&a);
	if (rc)
		return rc;
	/* the next temperature starts with deletes on the writer's connection */
	return dc_writer_drain(c->w);
}

/* The epochs of one temperature, their snapshots from a. */
static int decompose_epochs(run_ctx *c, double T, ahead *a, int reuse_ce, int B,
			    const char *seeds_text)
{
	const dc_plan *p = c->p;
	dc_selection *s = c->s;
	const char *split = c->o->split;
	const int N = s->N;
	int rc, i = 0;
	for (int e = 0; e < c->n_epochs; e++) {
		const int E = c->epochs[e];
		bv_stat_row *ce_rows = c->ce_cache + (size_t)e * N;
		/* the writer may still have the previous epoch's rows: the other half */
		bv_stat_row *mr = c->m_rows + (size_t)(e % 2) * p->n_soft * N;
		dc_job job = {.T = T, .E = E, .split = split};
		double mb, mv, ml;
		int n_reg;
		if (!reuse_ce) {
			float *buf;
			if ((rc = ahead_get(a, i, &buf)) != 0)
				return rc;
			rc = c->ce_n[e] = dc_rows(ce_rows, buf, B, s, NULL, 0, &c->max_err);
			if (rc >= 0 && s->n_inits >= 2)
				rc = dc_var_split(ce_rows, c->ce_n[e], buf, B, s, &c->max_err);
			ahead_done(a, i++);
			if (rc < 0)
				return rc;
		}
		const int n_rows = c->ce_n[e];
		job.method[0] = BV_RUN_CE;
		job.rows[0] = ce_rows;
		job.n[0] = n_rows;
		job.n_puts = 1;
		means(ce_rows, n_rows, &mb, &mv, &ml, &n_reg);
		if (E == c->last_epoch)
			dc_say(c->say, c->ctx,
			       "T=%-4g epoch %-3d %-9s bias %.4f  variance %.4f  loss %.4f  (%d samples, "
			       "%d seeds)",
			       T, E, bv_db_method_name(BV_RUN_CE), mb, mv, ml, n_rows, B);
		if (E == c->last_epoch && s->n_inits >= 2 && n_rows > 0)
			say_split(c, ce_rows, n_rows, B);
		for (int m = 0; m < p->n_soft; m++) {
			if (dc_count_seeds(p, p->soft[m], T) == 0)
				continue;
			float *buf;
			if ((rc = ahead_get(a, i, &buf)) != 0)
				return rc;
			bv_stat_row *m_rows_m = mr + (size_t)m * N;
			const int n_m = dc_rows(m_rows_m, buf, B, s, ce_rows, 1, &c->max_err);
			rc = n_m >= 0 && s->n_inits >= 2
				     ? dc_var_split(m_rows_m, n_m, buf, B, s, &c->max_err)
				     : n_m;
			ahead_done(a, i++);
			if (rc < 0)
				return rc;
			job.method[job.n_puts] = p->soft[m];
			job.rows[job.n_puts] = m_rows_m;
			job.n[job.n_puts++] = n_m;
			if (E == c->last_epoch) {
				means(m_rows_m, n_m, &mb, &mv, &ml, &n_reg);
				dc_say(c->say, c->ctx,
				       "T=%-4g epoch %-3d %-9s bias %.4f  variance %.4f  loss %.4f  "
				       "regularization samples %d (%.2f%%)",
				       T, E, bv_db_method_name(p->soft[m]), mb, mv, ml, n_reg,
				       100.0 * n_reg / n_m);
				if (s->n_inits >= 2 && n_m > 0)
					say_split(c, m_rows_m, n_m, B);
			}
		}
		snprintf(job.seeds, sizeof job.seeds, "%s", seeds_text);
		job.d = (bv_db_decomposition){T, E, split, bv_criterion_name(s->crit), job.seeds,
					      n_rows, c->max_err};
		if ((rc = dc_writer_submit(c->w, &job)) != 0)
			return rc;
		if (strcmp(split, "oob") == 0 && n_rows < N && E == c->last_epoch)
			dc_say(c->say, c->ctx,
			       "T=%g: %d of %d training samples have < 2 out-of-bag seeds and are left "
			       "out",
			       T, N - n_rows, N);
	}
	return 0;
}

int bv_decompose_db(bv_db *db, const bv_decompose_opts *o, bv_say_fn say, void *ctx)
{
	dc_plan p = {0};
	dc_selection s = {0};
	run_ctx c = {.o = o, .p = &p, .s = &s, .db = db, .say = say, .ctx = ctx};
	int rc, *labels = NULL, *epochs = NULL, n_epochs = 0, N = 0, teacher_epoch = -1;
	long n_classes = 0;
	float *teacher = NULL;
	double *teacher_ce = NULL;
	int in_tx = 0, writer_running = 0;
	bv_db *rd = NULL; /* read-only, for the snapshots */
	dc_writer w;

	/* no memory map: bv_db_logits_get reads each snapshot straight into its
	 * place (sqlite3_blob_read), one copy either way, and a map would keep
	 * every page read in the resident set (2 GB at CIFAR-100 size) */
	if ((rc = bv_db_check_runs(db)) != 0 || (rc = dc_plan_make(&p, db, o, say, ctx)) != 0)
		goto done;
	s.split = o->split;
	s.snap = strcmp(o->split, "test") == 0 ? "test" : "train";
	s.crit = o->criterion;

	/* the samples, the snapshots' epochs, the epochs every run taking part
	 * has, and the teacher's; the classes are the snapshots' (config
	 * n_classes, when there, is checked against them), the labels are
	 * checked against them */
	if ((rc = dc_n_classes(&n_classes, db)) != 0 ||
	    (rc = bv_db_samples_get(db, s.snap, NULL, 0, &N)) != 0)
		goto done;
	if (N == 0) {
		rc = bv_error_set(BV_ESTATE, "'%s' has no %s samples", bv_db_path(db), s.snap);
		goto done;
	}
	if (N > MAX_SAMPLES) {
		rc = bv_error_set(BV_EFORMAT,
				  "'%s' holds %d %s samples, more than the %d decompose reads" DAMAGED,
				  bv_db_path(db), N, s.snap, MAX_SAMPLES);
		goto done;
	}
	if ((rc = bv_db_check_snapshots(db)) != 0 ||
	    (rc = dc_plan_epochs(&epochs, &n_epochs, db, &p, s.snap, o->epoch)) != 0 ||
	    (rc = dc_teacher_epoch(&teacher_epoch, db, &p, s.snap)) != 0 ||
	    (rc = dc_classes(&s.K, db, &p, epochs, n_epochs, s.snap,
			     teacher_epoch >= 0 ? p.teacher_id : 0, teacher_epoch,
			     n_classes)) != 0 ||
	    (rc = bv_db_check_labels(db, s.snap, s.K)) != 0)
		goto done;
	labels = malloc(sizeof(int) * (size_t)N);
	if (!labels || (rc = bv_db_samples_get(db, s.snap, labels, N, &N)) != 0) {
		rc = rc ? rc : bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	/* the teacher's logits, for wsl weights and the grad/teacher criteria */
	if (teacher_epoch >= 0 &&
	    (rc = dc_load_teacher(&teacher, &teacher_ce, db, &p, teacher_epoch, s.snap, labels, N,
				  s.K)) != 0)
		goto done;
	s.teacher = teacher;
	s.teacher_ce = teacher_ce;
	if (!teacher && s.crit != BV_CRIT_BV) {
		rc = bv_error_set(BV_ESTATE,
				  "--criterion %s needs the teacher's %s logits, which '%s' lacks",
				  bv_criterion_name(s.crit), s.snap, bv_db_path(db));
		goto done;
	}

	s.N = N;
	s.labels = labels;
	c.epochs = epochs;
	c.n_epochs = n_epochs;
	c.last_epoch = epochs[n_epochs - 1];
	c.ce_cache = malloc(sizeof(bv_stat_row) * (size_t)N * (size_t)n_epochs);
	c.ce_n = calloc((size_t)n_epochs, sizeof(int));
	c.m_rows = malloc(sizeof(bv_stat_row) * 2 * (size_t)p.n_soft * (size_t)N);
	if (!c.ce_cache || !c.ce_n || !c.m_rows) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	/* snapshots are read through a read-only connection of their own while the
	 * writer thread writes through db; with one CPU, or without that
	 * connection, everything on db, in turn */
	if (dc_cpus() <= 1 || bv_db_open(&rd, bv_db_path(db), BV_DB_READONLY) != 0)
		rd = NULL;
	c.src = rd ? rd : db;
	c.w = &w;
	if ((rc = bv_db_begin(db)) != 0)
		goto done;
	in_tx = 1;
	dc_writer_start(&w, db, rd != NULL);
	writer_running = 1;
	for (int t = 0; t < p.n_temps; t++)
		if ((rc = decompose_temperature(&c, p.temps[t])) != 0)
			goto done;
	writer_running = 0;
	if ((rc = dc_writer_stop(&w)) != 0)
		goto done;
	const char *identity = c.split ? "max |loss - bias - variance| and "
					 "|variance - var_init - var_data|"
				       : "max |loss - bias - variance|";
	if (c.max_err > 1e-4) {
		rc = bv_error_set(BV_EFORMAT, "identity check failed: %s = %.3g > 1e-4; nothing was written",
				  identity, c.max_err);
		goto done;
	}
	dc_say(say, ctx, "identity check: %s = %.3g over all rows", identity, c.max_err);

	/* the correlation across temperatures, for each soft method, in the same
	 * transaction: statistics and correlations are committed together or not
	 * at all, so a reader never sees new rows beside old correlations */
	for (int m = 0; m < p.n_soft; m++) {
		int any = 0;
		for (int t = 0; t < p.n_temps; t++)
			any |= dc_count_seeds(&p, p.soft[m], p.temps[t]) >= 2;
		if (!any)
			continue;
		dc_plan all;
		dc_plan_all_temps(&all, &p);
		if ((rc = dc_correlate(db, &all, p.soft[m], c.last_epoch, &s, o, say, ctx)) != 0)
			goto done;
	}
	if ((rc = bv_db_commit(db)) != 0)
		goto done;
	in_tx = 0;
done:
	if (writer_running)
		dc_writer_stop(&w);
	bv_db_close(rd);
	if (in_tx)
		bv_db_rollback(db);
	free(p.runs);
	free(labels);
	free(epochs);
	free(c.oob);
	free(teacher);
	free(teacher_ce);
	free(c.ce_buf);
	free(c.m_buf);
	free(c.ce_cache);
	free(c.ce_n);
	free(c.m_rows);
	return rc;
}
