/*
 * The model: spec parsing, a whole-network finite-difference check through
 * bv_model_backward, checkpoints (round trip, mismatches, corruption), SGD and
 * schedules, and byte-identical training for the same seed.
 */
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "internal.h" /* nn_model_plan, private to nn/ */
#include "train.h"

static char tmpdir[512];

static double model_loss(bv_model *m, const float *x, const int *y, int n)
{
	bv_loss_cfg cfg = {BV_METHOD_CE, 1, 0, 1};
	bv_loss_stats st;
	const float *z = bv_model_forward(m, x, n, 0, NULL);
	bv_loss(&st, NULL, NULL, &cfg, z, NULL, y, n, m->n_classes);
	return st.loss;
}

static void test_specs(void)
{
	bv_model *m = NULL;
	bv_shape in = {1, 28, 28};
	CHECK(bv_model_new(&m, "mlp:1200-1200", in, 10) == 0, "%s", bv_error_last());
	CHECK(m && m->n_params == 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10,
	      "mlp:1200-1200 parameter count %zu", m ? m->n_params : 0);
	bv_model_free(m);
	CHECK(bv_model_new(&m, "mlp:64:dropout=0.2", in, 10) == 0, "%s", bv_error_last());
	CHECK(m && m->n_nodes == 4, "linear relu dropout linear: %d nodes", m ? m->n_nodes : 0);
	bv_model_free(m);
	CHECK(bv_model_new(&m, "mlp:", in, 10) == 0 && m->n_params == 7850, "softmax regression");
	bv_model_free(m);
	const char *bad[] = {"resnet999", "mlp:12-x", "mlp:-5", "mlp:5--5", "mlp:64:dropout=1.5",
			     "mlp:64:foo=1", "", "mlp:0-0"};
	for (unsigned i = 0; i < BV_ARRAY_LEN(bad); i++) {
		m = NULL;
		CHECK_ERR(bv_model_new(&m, bad[i], in, 10), BV_EINVAL);
		CHECK(m == NULL && strstr(bv_error_last(), "unknown model spec") != NULL, "'%s': %s",
		      bad[i], bv_error_last());
	}
	bv_model_free(NULL); /* a no-op */
}

static void test_model_gradient(void)
{
	bv_model *m = NULL;
	const int n = 6, d = 12, k = 5;
	bv_shape in = {d, 1, 1};
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(rng, 7);
	float x[6 * 12], dl[6 * 5];
	int y[6];
	for (int i = 0; i < n * d; i++)
		x[i] = (float)gsl_ran_gaussian(rng, 1.0);
	for (int i = 0; i < n; i++)
		y[i] = i % k;
	CHECK(bv_model_new(&m, "mlp:16-8", in, k) == 0, "%s", bv_error_last());
	bv_model_init(m, 3);
	for (size_t i = 0; i < m->n_params; i++) /* non-zero biases too */
		if (m->params[i] == 0)
			m->params[i] = (float)gsl_ran_gaussian(rng, 0.1);
	bv_loss_cfg cfg = {BV_METHOD_CE, 1, 0, 1};
	bv_loss_stats st;
	const float *z = bv_model_forward(m, x, n, 1, rng);
	bv_loss(&st, dl, NULL, &cfg, z, NULL, y, n, k);
	bv_model_backward(m, dl, n);
	double worst = 0, gmax = 0;
	for (size_t i = 0; i < m->n_params; i++) {
		const float eps = 1e-2f, p0 = m->params[i];
		m->params[i] = p0 + eps;
		double fp = model_loss(m, x, y, n);
		m->params[i] = p0 - eps;
		double fm = model_loss(m, x, y, n);
		m->params[i] = p0;
		double g = (fp - fm) / (2 * eps);
		worst = fmax(worst, fabs(g - m->grads[i]) / (1e-2 + fabs(g)));
		gmax = fmax(gmax, fabs(m->grads[i]));
	}
	printf("mlp:16-8 whole-model finite differences over %zu parameters: worst rel error %.3g, max |grad| %.3g\n",
	       m->n_params, worst, gmax);
	CHECK(gmax > 1e-2, "gradients are clearly non-zero (max %.3g)", gmax);
	CHECK(worst < 5e-2, "model gradient vs finite differences: %.3g", worst);
	bv_model_free(m);
	gsl_rng_free(rng);
}

static void test_checkpoints(void)
{
	char path[700], bad[700];
	bv_model *m = NULL, *l = NULL;
	bv_shape in = {1, 4, 4}, other = {1, 5, 5};
	snprintf(path, sizeof path, "%s/m.ckpt", tmpdir);
	bv_model_new(&m, "mlp:8", in, 3);
	bv_model_init(m, 11);
	CHECK(bv_ckpt_save(m, path) == 0, "save: %s", bv_error_last());
	CHECK(bv_ckpt_load(&l, path, &in, 3) == 0, "load: %s", bv_error_last());
	CHECK(l && strcmp(l->spec, "mlp:8") == 0 && l->n_params == m->n_params &&
		      memcmp(l->params, m->params, m->n_params * sizeof(float)) == 0,
	      "checkpoint round trip");
	bv_model_free(l);
	l = NULL;
	CHECK_ERR(bv_ckpt_load(&l, path, &in, 10), BV_EMISMATCH);
	CHECK(strstr(bv_error_last(), "3 classes") && strstr(bv_error_last(), path), "%s", bv_error_last());
	CHECK_ERR(bv_ckpt_load(&l, path, &other, 3), BV_EMISMATCH);
	snprintf(bad, sizeof bad, "%s/missing.ckpt", tmpdir);
	CHECK_ERR(bv_ckpt_load(&l, bad, NULL, 0), BV_EIO);

	/* corruption: a flipped byte, a truncated file, a foreign file */
	unsigned char *data;
	size_t len;
	bv_read_file(&data, &len, path);
	snprintf(bad, sizeof bad, "%s/bad.ckpt", tmpdir);
	data[len / 2] ^= 0x40;
	bv_write_file_atomic(bad, data, len);
	CHECK_ERR(bv_ckpt_load(&l, bad, NULL, 0), BV_EFORMAT);
	CHECK(strstr(bv_error_last(), "CRC") != NULL, "%s", bv_error_last());
	data[len / 2] ^= 0x40;
	bv_write_file_atomic(bad, data, len - 9);
	CHECK_ERR(bv_ckpt_load(&l, bad, NULL, 0), BV_EFORMAT);
	bv_write_file_atomic(bad, "hello world, not a checkpoint", 29);
	CHECK_ERR(bv_ckpt_load(&l, bad, NULL, 0), BV_EFORMAT);
	CHECK(l == NULL, "no model on failure");
	free(data);

	/* a spec within the limits that asks for terabytes: its parameter count
	 * is compared with the file's before anything is allocated (the model
	 * alone would be 16 M inputs x 1 M units of floats) */
	bv_model hostile = *m;
	snprintf(hostile.spec, sizeof hostile.spec, "mlp:1000000");
	hostile.in_shape = (bv_shape){1, 4096, 4096};
	snprintf(bad, sizeof bad, "%s/wide.ckpt", tmpdir);
	CHECK(bv_ckpt_save(&hostile, bad) == 0, "save: %s", bv_error_last());
	CHECK_ERR(bv_ckpt_load(&l, bad, NULL, 0), BV_EFORMAT);
	CHECK(strstr(bv_error_last(), "parameters stored, spec 'mlp:1000000' has 16777220000003"),
	      "%s", bv_error_last());
	bv_model_free(m);

	/* the plan's counts (what a checkpoint is checked against) are what
	 * bv_model_new builds */
	const char *specs[] = {"mlp:8", "mlp:16-8:dropout=0.1", "cnn-small", "resnet8"};
	for (unsigned i = 0; i < sizeof specs / sizeof *specs; i++) {
		nn_plan *p = NULL;
		bv_shape img = {3, 32, 32};
		CHECK(nn_model_plan(&p, specs[i], img, 10) == 0 &&
			      bv_model_new(&m, specs[i], img, 10) == 0 && p->n_params == m->n_params &&
			      p->n_buffers == m->n_buffers,
		      "%s: plan %zu/%zu, model %zu/%zu", specs[i], p ? p->n_params : 0,
		      p ? p->n_buffers : 0, m ? m->n_params : 0, m ? m->n_buffers : 0);
		free(p);
		bv_model_free(m);
		m = NULL;
	}
}

static void test_optim(void)
{
	bv_sgd opt;
	float w[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f};
	bv_sgd_init(&opt, 2, 0.1f, 0.9f, 0.01f, 0);
	bv_sgd_step(&opt, w, g); /* v = g + wd w; w -= lr v */
	CHECK_NEAR(w[0], 1.0 - 0.1 * (0.5 + 0.01), 1e-7, "sgd step 1");
	bv_sgd_step(&opt, w, g);
	double v0 = 0.5 + 0.01, w1 = 1.0 - 0.1 * v0;
	double v1 = 0.9 * v0 + 0.5 + 0.01 * w1;
	CHECK_NEAR(w[0], w1 - 0.1 * v1, 1e-6, "sgd step 2 (momentum)");
	bv_sgd_release(&opt);
	float w2[1] = {1.0f}, g2[1] = {1.0f};
	bv_sgd_init(&opt, 1, 0.1f, 0.5f, 0.0f, 1);
	bv_sgd_step(&opt, w2, g2); /* v = 1; step = g + mu v = 1.5 */
	CHECK_NEAR(w2[0], 1.0 - 0.15, 1e-7, "nesterov");
	bv_sgd_release(&opt);

	bv_schedule s;
	char txt[64];
	CHECK(bv_schedule_parse(&s, "step:150,180,210:0.1", "--schedule") == 0, "%s", bv_error_last());
	CHECK_NEAR(bv_schedule_lr(&s, 0.05f, 149, 240), 0.05, 1e-9, "before the first milestone");
	CHECK_NEAR(bv_schedule_lr(&s, 0.05f, 150, 240), 0.005, 1e-9, "after one");
	CHECK_NEAR(bv_schedule_lr(&s, 0.05f, 239, 240), 0.00005, 1e-10, "after three");
	bv_schedule_format(txt, sizeof txt, &s);
	CHECK(strcmp(txt, "step:150,180,210:0.1") == 0, "format: %s", txt);
	CHECK(bv_schedule_parse(&s, "cosine", "--schedule") == 0, "cosine");
	CHECK_NEAR(bv_schedule_lr(&s, 1.0f, 0, 10), 1.0, 1e-7, "cosine start");
	CHECK_NEAR(bv_schedule_lr(&s, 1.0f, 5, 10), 0.5, 1e-7, "cosine middle");
	const char *bad[] = {"step", "step:10", "step:10,5:0.1", "step:a:0.1", "step:10:2", "linear", ""};
	for (unsigned i = 0; i < BV_ARRAY_LEN(bad); i++)
		CHECK_ERR(bv_schedule_parse(&s, bad[i], "--schedule"), BV_EINVAL);
}

/* A small separable problem: training must learn it, and be reproducible. */
static void make_data(bv_data *d, int n)
{
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(rng, 5);
	memset(d, 0, sizeof *d);
	strcpy(d->name, "synthetic");
	d->shape = (bv_shape){8, 1, 1};
	d->n_classes = 3;
	bv_split *sp[2] = {&d->train, &d->test};
	for (int s = 0; s < 2; s++) {
		sp[s]->n = n;
		sp[s]->x = malloc(sizeof(float) * 8 * (size_t)n);
		sp[s]->y = malloc(sizeof(int) * (size_t)n);
		for (int i = 0; i < n; i++) {
			int c = (int)gsl_rng_uniform_int(rng, 3);
			sp[s]->y[i] = c;
			for (int j = 0; j < 8; j++)
				sp[s]->x[i * 8 + j] = (float)gsl_ran_gaussian(rng, 1.0) + (j == c ? 2.5f : 0.0f);
		}
	}
	gsl_rng_free(rng);
}

static int last_acc(void *ctx, const bv_epoch_stats *st, bv_model *m)
{
	*(double *)ctx = st->test_acc;
	return 0;
}

static void train_once(float **out_params, size_t *n_params, double *acc, const bv_data *d,
		       bv_method method, const float *tl)
{
	bv_model *m = NULL;
	bv_train_cfg cfg;
	bv_train_cfg_default(&cfg);
	cfg.loss.method = method;
	cfg.epochs = 4;
	cfg.batch = 32;
	cfg.lr = 0.02f;
	bv_model_new(&m, "mlp:16:dropout=0.1", d->shape, d->n_classes);
	bv_model_init(m, 9);
	int rc = bv_train_run(m, &cfg, d, NULL, 0, tl, last_acc, acc);
	CHECK(rc == 0, "training: %s", bv_error_last());
	*n_params = m->n_params;
	*out_params = malloc(m->n_params * sizeof(float));
	memcpy(*out_params, m->params, m->n_params * sizeof(float));
	bv_model_free(m);
}

static void test_training(void)
{
	bv_data d;
	float *p1, *p2;
	size_t n1, n2;
	double acc1 = 0, acc2 = 0;
	make_data(&d, 600);
	train_once(&p1, &n1, &acc1, &d, BV_METHOD_CE, NULL);
	train_once(&p2, &n2, &acc2, &d, BV_METHOD_CE, NULL);
	CHECK(acc1 > 0.85, "synthetic task learnt: %.3f", acc1);
	CHECK(n1 == n2 && memcmp(p1, p2, n1 * sizeof(float)) == 0, "same seed, same bytes");
	free(p2);
	/* a teacher's logits make kd and wsl runnable; they differ from ce */
	float *tl = malloc(sizeof(float) * 3 * 600);
	for (int i = 0; i < 600; i++)
		for (int j = 0; j < 3; j++)
			tl[i * 3 + j] = j == d.train.y[i] ? 3.0f : 0.0f;
	train_once(&p2, &n2, &acc2, &d, BV_METHOD_WSL, tl);
	CHECK(acc2 > 0.85 && memcmp(p1, p2, n1 * sizeof(float)) != 0, "wsl trains: %.3f", acc2);
	free(p2);
	/* kd without a teacher, and divergence, are errors */
	bv_model *m = NULL;
	bv_train_cfg cfg;
	bv_train_cfg_default(&cfg);
	bv_model_new(&m, "mlp:16", d.shape, d.n_classes);
	bv_model_init(m, 1);
	cfg.loss.method = BV_METHOD_KD;
	CHECK_ERR(bv_train_run(m, &cfg, &d, NULL, 0, NULL, NULL, NULL), BV_EINVAL);
	cfg.loss.method = BV_METHOD_CE;
	cfg.lr = 1e4f;
	cfg.momentum = 0.99f;
	CHECK_ERR(bv_train_run(m, &cfg, &d, NULL, 0, NULL, NULL, NULL), BV_EDIVERGED);
	CHECK(strstr(bv_error_last(), "diverged at epoch") && strstr(bv_error_last(), "--lr"), "%s",
	      bv_error_last());
	bv_model_free(m);
	free(p1);
	free(tl);
	bv_data_release(&d);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/model-%ld", getenv("BV_TMP") ? getenv("BV_TMP") : "/tmp",
		 (long)getpid());
	mkdir(tmpdir, 0755);
	test_specs();
	test_model_gradient();
	test_checkpoints();
	test_optim();
	test_training();
	return bv_check_done();
}
