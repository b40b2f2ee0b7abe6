/*
 * nn's threads: a pool of workers started on first use and kept for the
 * process's life, which runs fn(ctx, t) for t = 0 .. nt-1 (t = 0 on the
 * calling thread), and a parallel for over an index range built on it. The
 * convolutions split their samples with it, and batch norm, ReLU and the
 * residual adds their channels or elements, as many threads as OpenBLAS is
 * set to use (the training's --threads).
 *
 * Creating threads per call cost 20-40 us each plus their stacks' page
 * faults, about a tenth of a ResNet-20 step at two threads with the 150 calls
 * a step makes. Idle workers poll for the next job for about 200 us before
 * they sleep on a condition, and the caller polls for the last piece the
 * same way. A call made
 * while the pool is busy (from another thread) runs its pieces inline, and a
 * child process after fork() starts a pool of its own (pthread_atfork). Each piece writes only
 * its own outputs, so the results do not depend on the number of threads.
 * The pool has no size limit of its own: workers are started as a call first
 * asks for them. nn's thread count is OpenBLAS's, whose build sets the only
 * limit (64 threads in Debian's).
 */
#include "internal.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Polls of a flag before a thread sleeps on a condition: about 200 us (on
 * the machine of docs/benchmarks.md, 2000 polls gave ResNet-20 at batch 64
 * 4-8% less, 30000 no more). A step of a ResNet makes about 150 parallel
 * calls; waking a sleeping thread through the kernel costs tens of
 * microseconds each time. */
#define SPINS 8000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

static struct {
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	int n_workers, busy;         /* workers started (threads 1 .. n_workers) */
	int waiting;                 /* the caller sleeps on done */
	atomic_ulong gen;            /* bumped for each job, after the job is set */
	atomic_int pending;          /* workers that have not finished with the job */
	int nt;                      /* the job: threads taking part */
	nn_thread_fn fn;
	void *ctx;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

/* What a worker is started with; it copies and frees it. */
typedef struct worker {
	int t;
	unsigned long gen0; /* the job generation before its first job */
} worker;

/* In a child of fork(), the parent's workers do not exist and the pool's
 * mutex and conditions may hold their state: start afresh. */
static void child_reset(void)
{
	pthread_mutex_init(&pool.mu, NULL);
	pthread_cond_init(&pool.go, NULL);
	pthread_cond_init(&pool.done, NULL);
	pool.n_workers = 0;
	pool.busy = 0;
	pool.waiting = 0;
	atomic_store(&pool.pending, 0);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void register_fork(void)
{
	pthread_atfork(NULL, NULL, child_reset);
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	const int t = w->t;
	/* not the current generation: the job this worker was started for may
	 * already be posted */
	unsigned long seen = w->gen0;
	free(w);
	for (;;) {
		unsigned long g = atomic_load_explicit(&pool.gen, memory_order_acquire);
		for (int i = 0; g == seen && i < SPINS; i++) {
			cpu_relax();
			g = atomic_load_explicit(&pool.gen, memory_order_acquire);
		}
		if (g == seen) {
			pthread_mutex_lock(&pool.mu);
			while ((g = atomic_load(&pool.gen)) == seen)
				pthread_cond_wait(&pool.go, &pool.mu);
			pthread_mutex_unlock(&pool.mu);
		}
		seen = g;
		/* every worker answers every job, taking part or not, so that none can
		 * still be reading this job's fields when the next one is posted */
		if (t < pool.nt)
			pool.fn(pool.ctx, t);
		if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
			pthread_mutex_lock(&pool.mu); /* the caller may be asleep */
			if (pool.waiting)
				pthread_cond_signal(&pool.done);
			pthread_mutex_unlock(&pool.mu);
		}
	}
	return NULL;
}

/* Workers 1 .. nt-1 running (started now if needed); how many threads there
 * are, the caller's included: fewer when a thread cannot be started (its
 * pieces then run on the caller). Called with pool.mu held. */
static int ensure_workers(int nt)
{
	while (pool.n_workers < nt - 1) {
		const int t = pool.n_workers + 1;
		pthread_t th;
		worker *w = malloc(sizeof *w);
		if (!w)
			break;
		w->t = t;
		w->gen0 = atomic_load(&pool.gen);
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		const int ok = pthread_create(&th, &attr, worker_main, w) == 0;
		pthread_attr_destroy(&attr);
		if (!ok) {
			free(w);
			break;
		}
		pool.n_workers = t;
	}
	return pool.n_workers + 1;
}

void nn_run_threads(int nt, nn_thread_fn fn, void *ctx)
{
	if (nt <= 1) {
		fn(ctx, 0);
		return;
	}
	pthread_once(&fork_once, register_fork);
	pthread_mutex_lock(&pool.mu);
	if (pool.busy) { /* in use by another thread: inline */
		pthread_mutex_unlock(&pool.mu);
		for (int t = 0; t < nt; t++)
			fn(ctx, t);
		return;
	}
	const int have = ensure_workers(nt);
	const int run = nt < have ? nt : have; /* threads that run pieces */
	pool.busy = 1;
	pool.fn = fn;
	pool.ctx = ctx;
	pool.nt = run;
	atomic_store(&pool.pending, pool.n_workers);
	atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release); /* publishes the job */
	pthread_cond_broadcast(&pool.go); /* the workers that went to sleep */
	pthread_mutex_unlock(&pool.mu);
	fn(ctx, 0);
	for (int t = run; t < nt; t++) /* pieces without a worker (one could not start) */
		fn(ctx, t);
	for (int i = 0; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0 && i < SPINS; i++)
		cpu_relax();
	pthread_mutex_lock(&pool.mu);
	pool.waiting = 1;
	while (atomic_load(&pool.pending) > 0)
		pthread_cond_wait(&pool.done, &pool.mu);
	pool.waiting = 0;
	pool.busy = 0;
	pthread_mutex_unlock(&pool.mu);
}

/* The count bv_nn_set_threads asked for: OpenBLAS stops at the thread count it
 * was built for (64 in Debian's), nn's own pool does not. 0: OpenBLAS's count. */
static int requested;

void nn_threads_request(int n)
{
	requested = n > 0 ? n : 0;
}

int nn_threads(void)
{
	const int nt = requested ? requested : openblas_get_num_threads();
	return nt < 1 ? 1 : nt;
}

typedef struct range_job {
	nn_range_fn fn;
	void *ctx;
	size_t n;
	int nt;
} range_job;

static void run_range(void *arg, int t)
{
	const range_job *j = arg;
	j->fn(j->ctx, j->n * (size_t)t / (size_t)j->nt, j->n * (size_t)(t + 1) / (size_t)j->nt);
}

void nn_parallel_for(size_t n, size_t min_chunk, nn_range_fn fn, void *ctx)
{
	int nt = nn_threads();
	if (min_chunk < 1)
		min_chunk = 1;
	while (nt > 1 && n / (size_t)nt < min_chunk)
		nt--;
	if (nt <= 1) {
		fn(ctx, 0, n);
		return;
	}
	range_job j = {fn, ctx, n, nt};
	nn_run_threads(nt, run_range, &j);
}
