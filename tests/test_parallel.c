/*
 * nn's threaded layers (nn/parallel.c): batch norm forward and backward (train
 * and eval), ReLU forward and backward and the residual add give the same bits
 * at 1, 2, 3 and 12 threads (more than the 8 the pool once stopped at, on any
 * machine), on shapes large enough that the work is split, and the +=
 * convention of the backward passes holds on every thread's piece. The pool
 * runs 12 pieces on 12 distinct threads.
 */
#include <gsl/gsl_randist.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h" /* nn_run_threads, nn_threads: private to nn/ */
#include "nn.h"

/* n * hw = 32768 values a channel and 12 * 32768 in all: NN_MIN_CHUNK each,
 * so that batch norm's channels and ReLU's elements split 12 ways at 12 threads */
enum { N = 32, C = 12, HW = 32 * 32, SIZE = N * C * HW };

typedef struct outputs {
	float out[SIZE], xhat[SIZE], din[SIZE], relu[SIZE], drelu[SIZE], sum[SIZE];
	float invstd[C], run_mean[C], run_var[C], dgamma[C], dbeta[C], eval[SIZE];
} outputs;

static void run(outputs *o, int threads, const float *x, const float *dy, const float *gamma,
		const float *beta)
{
	bv_nn_set_threads(threads);
	memset(o, 0, sizeof *o);
	for (int c = 0; c < C; c++) {
		o->run_var[c] = 1.0f;
		o->dgamma[c] = 0.5f; /* += onto non-zero starts */
		o->dbeta[c] = -0.25f;
	}
	for (size_t i = 0; i < SIZE; i++) {
		o->din[i] = 0.125f;
		o->drelu[i] = -0.5f;
	}
	bv_bn_forward(o->out, o->xhat, o->invstd, x, gamma, beta, o->run_mean, o->run_var, N, C, HW,
		      1, 0.1f, 1e-5f);
	bv_bn_backward(o->din, o->dgamma, o->dbeta, dy, o->xhat, o->invstd, gamma, N, C, HW);
	bv_bn_forward(o->eval, NULL, NULL, x, gamma, beta, o->run_mean, o->run_var, N, C, HW, 0,
		      0.1f, 1e-5f);
	bv_relu_forward(o->relu, o->out, SIZE);
	bv_relu_backward(o->drelu, dy, o->relu, SIZE);
	bv_add_forward(o->sum, o->relu, x, SIZE);
}

/* past the 64 threads of Debian's OpenBLAS build: nn's pool has no cap of its own */
enum { POOL_THREADS = 80 };

typedef struct pool_probe {
	pthread_t who[POOL_THREADS];
	int ran[POOL_THREADS];
} pool_probe;

static void probe_piece(void *ctx, int t)
{
	pool_probe *p = ctx;
	p->who[t] = pthread_self();
	p->ran[t]++;
}

/* every piece once, each on a thread of its own, the caller's for piece 0 */
static void test_pool(void)
{
	bv_nn_set_threads(POOL_THREADS);
	CHECK(nn_threads() == POOL_THREADS, "nn_threads: %d, want %d (no cap of nn's own)",
	      nn_threads(), POOL_THREADS);
	for (int rep = 0; rep < 3; rep++) { /* the workers started by the first call serve the next */
		pool_probe p;
		memset(&p, 0, sizeof p);
		nn_run_threads(POOL_THREADS, probe_piece, &p);
		int once = 0, distinct = 0;
		for (int t = 0; t < POOL_THREADS; t++) {
			once += p.ran[t] == 1;
			int seen = 0;
			for (int u = 0; u < t; u++)
				seen |= pthread_equal(p.who[u], p.who[t]);
			distinct += !seen;
		}
		CHECK(once == POOL_THREADS && distinct == POOL_THREADS &&
			      pthread_equal(p.who[0], pthread_self()),
		      "call %d: %d of %d pieces ran once, on %d distinct threads", rep, once,
		      POOL_THREADS, distinct);
	}
}

int main(void)
{
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	float *x = malloc(sizeof(float) * SIZE), *dy = malloc(sizeof(float) * SIZE);
	float gamma[C], beta[C];
	outputs *one = malloc(sizeof *one), *many = malloc(sizeof *many);
	CHECK(rng && x && dy && one && many, "allocation");
	if (!rng || !x || !dy || !one || !many)
		return bv_check_done();
	gsl_rng_set(rng, 11);
	for (size_t i = 0; i < SIZE; i++) {
		x[i] = (float)gsl_ran_gaussian(rng, 2.0) + 0.5f;
		dy[i] = (float)gsl_ran_gaussian(rng, 1.0);
	}
	for (int c = 0; c < C; c++) {
		gamma[c] = 1.0f + 0.1f * (float)c;
		beta[c] = 0.05f * (float)c - 0.3f;
	}
	run(one, 1, x, dy, gamma, beta);
	/* the work is split at all: not every value of the result is trivial */
	int changed = 0;
	for (size_t i = 0; i < SIZE; i++)
		changed += one->din[i] != 0.125f;
	CHECK(changed > SIZE / 2, "bn backward changed %d of %d din values", changed, SIZE);
	static const int counts[] = {2, 3, POOL_THREADS};
	for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
		const int threads = counts[k];
		run(many, threads, x, dy, gamma, beta);
		CHECK(memcmp(one, many, sizeof *one) == 0,
		      "%d threads: the same bits as 1 thread (out %d, xhat %d, din %d, relu %d, drelu %d, "
		      "sum %d, stats %d %d %d, dgamma %d, dbeta %d, eval %d)",
		      threads, memcmp(one->out, many->out, sizeof one->out) != 0,
		      memcmp(one->xhat, many->xhat, sizeof one->xhat) != 0,
		      memcmp(one->din, many->din, sizeof one->din) != 0,
		      memcmp(one->relu, many->relu, sizeof one->relu) != 0,
		      memcmp(one->drelu, many->drelu, sizeof one->drelu) != 0,
		      memcmp(one->sum, many->sum, sizeof one->sum) != 0,
		      memcmp(one->invstd, many->invstd, sizeof one->invstd) != 0,
		      memcmp(one->run_mean, many->run_mean, sizeof one->run_mean) != 0,
		      memcmp(one->run_var, many->run_var, sizeof one->run_var) != 0,
		      memcmp(one->dgamma, many->dgamma, sizeof one->dgamma) != 0,
		      memcmp(one->dbeta, many->dbeta, sizeof one->dbeta) != 0,
		      memcmp(one->eval, many->eval, sizeof one->eval) != 0);
	}
	/* the relu backward's += and the add, checked by value on a few elements */
	for (size_t i = 0; i < SIZE; i += SIZE / 7) {
		const float want = -0.5f + (one->relu[i] > 0 ? dy[i] : 0.0f);
		CHECK(one->drelu[i] == want, "relu backward += at %zu: %g, want %g", i,
		      (double)one->drelu[i], (double)want);
		CHECK(one->sum[i] == one->relu[i] + x[i], "add at %zu", i);
	}
	test_pool();
	free(x);
	free(dy);
	free(one);
	free(many);
	gsl_rng_free(rng);
	return bv_check_done();
}
