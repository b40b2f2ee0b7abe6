/*
 * bench_train: training throughput of the nn core on synthetic data, the
 * number that bench/torch_mlp.py (MLPs) and bench/torch_cnn.py (CNNs)
 * reproduce in PyTorch. Inputs are uniform [0, 1) of shape --input CxHxW per
 * sample (default 784x1x1, an MNIST-sized MLP; 3x32x32 for the CIFAR
 * networks), labels uniform over 10 classes, teacher logits N(0, 3^2) for
 * --method kd (T = 4, alpha = 2.25, gamma = 1, the SPEC.md defaults). One
 * step is exactly what train/ does:
 *   forward(train = 1) -> bv_loss -> bv_model_backward -> bv_sgd_step
 * with SGD lr 0.01, momentum 0.9, weight decay 5e-4. After --warmup untimed
 * steps, --steps steps are timed; the time of each phase is reported too.
 * GFLOP/s counts 3x the forward flops of bv_model_flops_per_sample (forward,
 * plus two products of the same size in backward), as is customary. The
 * first layer's backward has no input gradient to compute, so that convention
 * overstates the work (by 15% for mlp:1200-1200 on 784 inputs, 49% for
 * mlp:64); gflops_exact counts the products nn actually runs (linear and
 * convolution layers), and is the one to hold against bench_sgemm's peak.
 * peak_rss_kb is the process's peak resident set (getrusage ru_maxrss, KiB),
 * which includes the 8 synthetic batches. The last line is for scripts:
 *   bench_train model=... input=CxHxW batch=... threads=... method=...
 *     samples_per_s=... gflops=... gflops_exact=... flops_per_sample=...
 *     peak_rss_kb=...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "base.h"
#include "nn.h"

/* OpenBLAS's own: the kernel family it runs (cblas.h clashes with GSL's) */
char *openblas_get_corename(void);

#define N_CLASSES 10
#define N_POOL 8 /* distinct synthetic batches, cycled */

typedef struct bench_opts {
	const char *model;
	long batch, threads, steps, warmup;
	const char *method;
	bv_shape input; /* per sample */
} bench_opts;

static void usage(FILE *f, const bench_opts *o)
{
	fprintf(f,
		"usage: bench_train [--model SPEC] [--batch N] [--threads N] [--steps N]\n"
		"                   [--warmup N] [--method ce|kd] [--input CxHxW]\n"
		"  --model SPEC   model spec (default %s)\n"
		"  --input CxHxW  shape of one synthetic input (default %dx%dx%d; 3x32x32 for the\n"
		"                 CIFAR networks)\n"
		"  --batch N      samples per step (default %ld)\n"
		"  --threads N    BLAS threads (default %ld)\n"
		"  --steps N      timed steps (default %ld)\n"
		"  --warmup N     untimed steps first (default %ld)\n"
		"  --method M     loss: ce, or kd on random teacher logits (default %s)\n",
		o->model, o->input.c, o->input.h, o->input.w, o->batch, o->threads, o->steps,
		o->warmup, o->method);
}

/* "CxHxW" (three whole numbers from 1, at most 2^24 values in all) */
static int parse_shape(bv_shape *out, const char *v)
{
	int c, h, w, len = 0;
	if (sscanf(v, "%d x %d x %d%n", &c, &h, &w, &len) != 3 || v[len] != '\0' || c < 1 ||
	    h < 1 || w < 1 || (double)c * h * w > (double)(1 << 24))
		return bv_error_set(BV_EINVAL, "--input: expected CxHxW (e.g. 3x32x32), got '%s'",
				    v);
	*out = (bv_shape){ c, h, w };
	return 0;
}

static int parse_args(bench_opts *o, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout, o);
			exit(0);
		}
		if (i + 1 >= argc) {
			usage(stderr, o);
			return BV_EINVAL;
		}
		const char *v = argv[++i];
		int rc = 0;
		if (strcmp(a, "--model") == 0)
			o->model = v;
		else if (strcmp(a, "--method") == 0)
			o->method = v;
		else if (strcmp(a, "--input") == 0)
			rc = parse_shape(&o->input, v);
		else if (strcmp(a, "--batch") == 0)
			rc = bv_parse_long(&o->batch, v, 1, 1 << 16, a);
		else if (strcmp(a, "--threads") == 0)
			rc = bv_parse_long(&o->threads, v, 1, 1024, a);
		else if (strcmp(a, "--steps") == 0)
			rc = bv_parse_long(&o->steps, v, 1, 100000000, a);
		else if (strcmp(a, "--warmup") == 0)
			rc = bv_parse_long(&o->warmup, v, 0, 100000000, a);
		else {
			usage(stderr, o);
			return BV_EINVAL;
		}
		if (rc) {
			fprintf(stderr, "bench_train: %s\n", bv_error_last());
			return rc;
		}
	}
	return 0;
}

/* Flops per sample of one training step as nn runs it: every linear and
 * convolution layer's forward and weight gradient, and its input gradient
 * unless it reads the model input (bv_model_backward passes din = NULL
 * there). Batch norm, ReLU, pooling and the SGD step are not counted. */
static double step_flops_per_sample(const bv_model *m)
{
	double f = 0;
	for (int i = 0; i < m->n_nodes; i++) {
		const bv_node *nd = &m->nodes[i];
		double mm;
		if (nd->op == BV_OP_LINEAR) {
			mm = 2.0 * nd->u.linear.n_in * nd->u.linear.n_out;
		} else if (nd->op == BV_OP_CONV) {
			const bv_shape is = nd->in == 0 ? m->in_shape : m->nodes[nd->in - 1].out_shape;
			const bv_shape os = nd->out_shape;
			mm = 2.0 * os.c * os.h * os.w * is.c * nd->u.conv.k * nd->u.conv.k;
		} else {
			continue;
		}
		f += nd->in == 0 ? 2 * mm : 3 * mm;
	}
	return f;
}

int main(int argc, char **argv)
{
	bench_opts o = { "mlp:1200-1200", 128, 1, 200, 10, "ce", { 784, 1, 1 } };
	bv_model *m = NULL;
	bv_sgd opt = { 0 };
	gsl_rng *rng = NULL;
	float *x = NULL, *t = NULL, *dlogits = NULL;
	int *y = NULL;
	int rc = 0;

	if (parse_args(&o, argc, argv) != 0)
		return 2;
	bv_method method;
	if (bv_method_parse(&method, o.method, "--method") != 0 ||
	    (method != BV_METHOD_CE && method != BV_METHOD_KD)) {
		fprintf(stderr, "bench_train: --method: expected ce or kd, got '%s'\n", o.method);
		return 2;
	}
	const bv_loss_cfg cfg = { method, 4.0f, 2.25f, 1.0f };
	const int n = (int)o.batch;
	const size_t n_in = bv_shape_size(o.input); /* floats per sample */

	bv_nn_set_threads((int)o.threads);
	if ((rc = bv_model_new(&m, o.model, o.input, N_CLASSES)) != 0)
		goto done;
	bv_model_init(m, 1);
	if ((rc = bv_model_reserve(m, n)) != 0 ||
	    (rc = bv_sgd_init(&opt, m->n_params, 0.01f, 0.9f, 5e-4f, 0)) != 0)
		goto done;

	rng = gsl_rng_alloc(gsl_rng_mt19937);
	x = malloc(sizeof(float) * N_POOL * (size_t)n * n_in);
	t = malloc(sizeof(float) * N_POOL * (size_t)n * N_CLASSES);
	y = malloc(sizeof(int) * N_POOL * (size_t)n);
	dlogits = malloc(sizeof(float) * (size_t)n * N_CLASSES);
	if (!rng || !x || !t || !y || !dlogits) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for a batch of %d", n);
		goto done;
	}
	gsl_rng_set(rng, 2);
	for (size_t i = 0; i < (size_t)N_POOL * n * n_in; i++)
		x[i] = (float)gsl_rng_uniform(rng);
	for (size_t i = 0; i < (size_t)N_POOL * n * N_CLASSES; i++)
		t[i] = (float)gsl_ran_gaussian_ziggurat(rng, 3.0);
	for (size_t i = 0; i < (size_t)N_POOL * n; i++)
		y[i] = (int)gsl_rng_uniform_int(rng, N_CLASSES);

	/* phase times: forward, loss, backward, sgd */
	double ph[4] = { 0 }, start = 0;
	bv_loss_stats st;
	for (long s = 0; s < o.warmup + o.steps; s++) {
		if (s == o.warmup) {
			memset(ph, 0, sizeof ph);
			start = bv_now();
		}
		const size_t b = (size_t)(s % N_POOL);
		double t0 = bv_now();
		const float *logits = bv_model_forward(m, x + b * n * n_in, n, 1, rng);
		if (!logits) {
			rc = bv_error_code();
			goto done;
		}
		double t1 = bv_now();
		rc = bv_loss(&st, dlogits, NULL, &cfg, logits,
			     method == BV_METHOD_KD ? t + b * n * N_CLASSES : NULL, y + b * n, n,
			     N_CLASSES);
		/* random labels on random data: the loss need not fall, only stay finite */
		if (rc)
			goto done;
		double t2 = bv_now();
		bv_model_backward(m, dlogits, n);
		double t3 = bv_now();
		bv_sgd_step(&opt, m->params, m->grads);
		double t4 = bv_now();
		ph[0] += t1 - t0;
		ph[1] += t2 - t1;
		ph[2] += t3 - t2;
		ph[3] += t4 - t3;
	}
	const double elapsed = bv_now() - start;
	const double samples_per_s = (double)o.steps * n / elapsed;
	const double gflops = samples_per_s * 3.0 * bv_model_flops_per_sample(m) * 1e-9;
	const double gflops_exact = samples_per_s * step_flops_per_sample(m) * 1e-9;
	const double ms = 1e3 / (double)o.steps;
	struct rusage ru;
	const long peak_rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;

	printf("model %s (%zu parameters), input %dx%dx%d, batch %d, %ld BLAS threads, "
	       "method %s\n",
	       o.model, m->n_params, o.input.c, o.input.h, o.input.w, n, o.threads, o.method);
	printf("%ld steps in %.3f s: %.2f ms/step (forward %.3f, loss %.3f, backward %.3f, "
	       "sgd %.3f ms), final loss %.4f\n",
	       o.steps, elapsed, elapsed * ms, ph[0] * ms, ph[1] * ms, ph[2] * ms, ph[3] * ms,
	       st.loss);
	printf("%.0f samples/s, %.2f GFLOP/s (3 x %.0f forward flops per sample), %.2f GFLOP/s "
	       "executed (%.0f flops per sample)\n",
	       samples_per_s, gflops, bv_model_flops_per_sample(m), gflops_exact,
	       step_flops_per_sample(m));
	printf("peak RSS %.1f MiB; OpenBLAS core %s\n", peak_rss_kb / 1024.0, openblas_get_corename());
	printf("bench_train model=%s input=%dx%dx%d batch=%d threads=%ld method=%s "
	       "samples_per_s=%.1f gflops=%.3f gflops_exact=%.3f flops_per_sample=%.0f "
	       "peak_rss_kb=%ld openblas_core=%s\n",
	       o.model, o.input.c, o.input.h, o.input.w, n, o.threads, o.method, samples_per_s,
	       gflops, gflops_exact, bv_model_flops_per_sample(m), peak_rss_kb,
	       openblas_get_corename());
done:
	if (rc)
		fprintf(stderr, "bench_train: %s\n", bv_error_last());
	bv_sgd_release(&opt);
	bv_model_free(m);
	gsl_rng_free(rng);
	free(x);
	free(t);
	free(y);
	free(dlogits);
	return rc ? 1 : 0;
}
