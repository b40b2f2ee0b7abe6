/*
 * bench_sgemm: the ceiling for bench_train. Measures OpenBLAS cblas_sgemm in
 * GFLOP/s (2*M*N*K / seconds) on square matrices and on the exact calls
 * (shapes and transposes) that nn/layers.c makes for an MLP batch of 128,
 * at 1 and 2 BLAS threads. Each case repeats until it has run for at least
 * --min-time seconds and reports its fastest call. The last line,
 *   sgemm peak: X GFLOP/s (1 thread), Y GFLOP/s (2 threads)
 * is the best case per thread count; bench/run_mlp.sh reads it.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

typedef struct gemm_case {
	const char *name;
	CBLAS_TRANSPOSE ta, tb;
	int m, n, k;
	float beta;
} gemm_case;

/* Square sizes, then the calls of bv_linear_forward / bv_linear_backward for
 * mlp:1200-1200 on 784 inputs, 10 classes, batch 128. */
static const gemm_case cases[] = {
	{ "square 256", CblasNoTrans, CblasNoTrans, 256, 256, 256, 0.0f },
	{ "square 512", CblasNoTrans, CblasNoTrans, 512, 512, 512, 0.0f },
	{ "square 1024", CblasNoTrans, CblasNoTrans, 1024, 1024, 1024, 0.0f },
	{ "square 2048", CblasNoTrans, CblasNoTrans, 2048, 2048, 2048, 0.0f },
	{ "fwd  fc1  x@W^T", CblasNoTrans, CblasTrans, 128, 1200, 784, 1.0f },
	{ "fwd  fc2  x@W^T", CblasNoTrans, CblasTrans, 128, 1200, 1200, 1.0f },
	{ "fwd  fc3  x@W^T", CblasNoTrans, CblasTrans, 128, 10, 1200, 1.0f },
	{ "bwd  fc3  dW=dy^T@x", CblasTrans, CblasNoTrans, 10, 1200, 128, 1.0f },
	{ "bwd  fc3  dx=dy@W", CblasNoTrans, CblasNoTrans, 128, 1200, 10, 1.0f },
	{ "bwd  fc2  dW=dy^T@x", CblasTrans, CblasNoTrans, 1200, 1200, 128, 1.0f },
	{ "bwd  fc2  dx=dy@W", CblasNoTrans, CblasNoTrans, 128, 1200, 1200, 1.0f },
	{ "bwd  fc1  dW=dy^T@x", CblasTrans, CblasNoTrans, 1200, 784, 128, 1.0f },
};

static const int thread_counts[] = { 1, 2 };

/* xorshift32 in [-1, 1): the values do not matter, only that they are not
 * zero or denormal. */
static void fill(float *a, size_t n, unsigned *state)
{
	for (size_t i = 0; i < n; i++) {
		unsigned x = *state;
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		*state = x;
		a[i] = (float)((double)x / 2147483648.0 - 1.0);
	}
}

/* Best GFLOP/s of one call over at least min_time seconds of calls. */
static double time_case(const gemm_case *c, float *a, float *b, float *cc, double min_time)
{
	/* row-major: A is (m, k) or, transposed, stored (k, m); likewise B */
	const int lda = c->ta == CblasNoTrans ? c->k : c->m;
	const int ldb = c->tb == CblasNoTrans ? c->n : c->k;
	const double flops = 2.0 * c->m * c->n * c->k;
	double best = 1e30, start = bv_now(), now = start;
	int reps = 0;
	/* one untimed call: thread start-up and first touch of C */
	cblas_sgemm(CblasRowMajor, c->ta, c->tb, c->m, c->n, c->k, 1e-3f, a, lda, b, ldb,
		    c->beta, cc, c->n);
	while (now - start < min_time || reps < 3) {
		double t0 = bv_now();
		cblas_sgemm(CblasRowMajor, c->ta, c->tb, c->m, c->n, c->k, 1e-3f, a, lda, b, ldb,
			    c->beta, cc, c->n);
		now = bv_now();
		if (now - t0 < best)
			best = now - t0;
		reps++;
	}
	return flops / best * 1e-9;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_sgemm [--min-time SECONDS]\n"
		   "  --min-time S  run each case for at least S seconds (default 0.5)\n");
}

int main(int argc, char **argv)
{
	double min_time = 0.5;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--min-time") == 0 && i + 1 < argc) {
			if (bv_parse_double(&min_time, argv[++i], 0.0, 60.0, "--min-time") != 0) {
				fprintf(stderr, "bench_sgemm: %s\n", bv_error_last());
				return 2;
			}
		} else {
			usage(stderr);
			return 2;
		}
	}

	size_t max_a = 0, max_b = 0, max_c = 0;
	for (size_t i = 0; i < BV_ARRAY_LEN(cases); i++) {
		const gemm_case *c = &cases[i];
		if ((size_t)c->m * c->k > max_a)
			max_a = (size_t)c->m * c->k;
		if ((size_t)c->k * c->n > max_b)
			max_b = (size_t)c->k * c->n;
		if ((size_t)c->m * c->n > max_c)
			max_c = (size_t)c->m * c->n;
	}
	float *a = malloc(max_a * sizeof(float));
	float *b = malloc(max_b * sizeof(float));
	float *cc = malloc(max_c * sizeof(float));
	if (!a || !b || !cc) {
		fprintf(stderr, "bench_sgemm: out of memory\n");
		return 1;
	}
	unsigned state = 2463534242u;
	fill(a, max_a, &state);
	fill(b, max_b, &state);
	fill(cc, max_c, &state);

	printf("OpenBLAS %s, core %s, %d threads available\n", openblas_get_config(),
	       openblas_get_corename(), openblas_get_num_procs());
	printf("best of >= %.2f s per case; GFLOP/s = 2*M*N*K / seconds\n\n", min_time);
	printf("| %-20s | %5s | %5s | %5s | %8s | %8s |\n", "case", "M", "N", "K", "1 thread",
	       "2 threads");
	printf("|%s|------:|------:|------:|---------:|----------:|\n", "----------------------");
	double peak[BV_ARRAY_LEN(thread_counts)] = { 0 };
	for (size_t i = 0; i < BV_ARRAY_LEN(cases); i++) {
		const gemm_case *c = &cases[i];
		double g[BV_ARRAY_LEN(thread_counts)];
		for (size_t t = 0; t < BV_ARRAY_LEN(thread_counts); t++) {
			openblas_set_num_threads(thread_counts[t]);
			g[t] = time_case(c, a, b, cc, min_time);
			if (g[t] > peak[t])
				peak[t] = g[t];
		}
		printf("| %-20s | %5d | %5d | %5d | %8.1f | %9.1f |\n", c->name, c->m, c->n, c->k,
		       g[0], g[1]);
		fflush(stdout);
	}
	printf("\nsgemm peak: %.1f GFLOP/s (1 thread), %.1f GFLOP/s (2 threads)\n", peak[0],
	       peak[1]);
	free(a);
	free(b);
	free(cc);
	return 0;
}
