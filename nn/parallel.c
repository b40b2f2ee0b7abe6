/*
 * A parallel for over an index range, for nn's elementwise and per-channel
 * work (batch norm, ReLU, the residual adds): the range is split into
 * contiguous pieces, one per thread, as many threads as OpenBLAS is set to
 * use (the training's --threads), the first piece on the calling thread.
 * Threads are created per call (about 20 us each; no state kept between
 * calls), and only when every piece gets at least min_chunk items, so small
 * layers stay on one thread. Each piece writes only its own outputs, so the
 * results do not depend on the number of threads.
 */
#include "internal.h"

#include <cblas.h>
#include <pthread.h>

#define MAX_THREADS 8

typedef struct piece {
	nn_range_fn fn;
	void *ctx;
	size_t lo, hi;
} piece;

static void *run_piece(void *arg)
{
	const piece *p = arg;
	p->fn(p->ctx, p->lo, p->hi);
	return NULL;
}

void nn_parallel_for(size_t n, size_t min_chunk, nn_range_fn fn, void *ctx)
{
	int nt = openblas_get_num_threads();
	nt = nt < MAX_THREADS ? nt : MAX_THREADS;
	if (min_chunk < 1)
		min_chunk = 1;
	while (nt > 1 && n / (size_t)nt < min_chunk)
		nt--;
	if (nt <= 1) {
		fn(ctx, 0, n);
		return;
	}
	piece pieces[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	int started[MAX_THREADS] = {0};
	for (int t = 0; t < nt; t++)
		pieces[t] = (piece){fn, ctx, n * (size_t)t / (size_t)nt, n * (size_t)(t + 1) / (size_t)nt};
	for (int t = 1; t < nt; t++)
		started[t] = pthread_create(&tid[t], NULL, run_piece, &pieces[t]) == 0;
	run_piece(&pieces[0]);
	for (int t = 1; t < nt; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
		else
			run_piece(&pieces[t]); /* a thread that could not start: its piece here */
	}
}
