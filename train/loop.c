/*
 * The training loop: shuffled mini-batches over a row index list (a bootstrap
 * replica or the whole training split), the loss of the chosen method against
 * precomputed teacher logits, SGD, and an evaluation of the test split after
 * every epoch, handed to a callback (printing in `bvtool train`, recording in
 * `bvtool collect`).
 */
#include "train.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bvmath.h"

void bv_train_cfg_default(bv_train_cfg *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->loss.method = BV_METHOD_CE;
	cfg->loss.temp = 4.0f;
	cfg->loss.alpha = 2.25f;
	cfg->loss.gamma = 1.0f;
	cfg->lr = 0.05f;
	cfg->momentum = 0.9f;
	cfg->wd = 5e-4f;
	cfg->nesterov = 0;
	cfg->schedule.kind = BV_SCHED_COSINE;
	cfg->epochs = 10;
	cfg->batch = 128;
	cfg->seed = 1;
	cfg->threads = 1;
}


/* The seed of the epoch's shuffle: depends on the run seed and the epoch only,
 * never on the method, so paired runs see the same batches. */
static unsigned long shuffle_seed(unsigned long seed, int epoch)
{
	return seed * 1000003ul + (unsigned long)epoch * 7919ul + 17ul;
}

int bv_train_run(bv_model *m, const bv_train_cfg *cfg, const bv_data *d, const int *idx,
		 int n_idx, const float *teacher_logits, bv_epoch_fn on_epoch, void *ctx)
{
	const int k = m->n_classes, B = cfg->batch;
	const size_t D = bv_shape_size(d->shape);
	const int soft = cfg->loss.method == BV_METHOD_KD || cfg->loss.method == BV_METHOD_WSL ||
			 cfg->loss.method == BV_METHOD_KD_FILTER;
	int *order = NULL, *yb = NULL;
	float *xb = NULL, *xa = NULL, *tb = NULL, *dlogits = NULL, *test_logits = NULL;
	gsl_rng *rng_shuffle = NULL, *rng_drop = NULL, *rng_aug = NULL, *rng_teacher = NULL;
	float pad_value[3] = {0, 0, 0}; /* a black pixel, normalised: the crop's padding */
	bv_sgd opt = {0};
	int rc = 0;

	if (!idx)
		n_idx = d->train.n;
	/* the teacher runs per batch on the augmented inputs, or in BN train mode;
	 * otherwise its precomputed eval-mode logits are gathered */
	const int teacher_per_batch =
		soft && cfg->teacher && (cfg->augment || cfg->teacher_bn_train || !teacher_logits);
	if (soft && !teacher_logits && !cfg->teacher)
		return bv_error_set(BV_EINVAL, "method '%s' needs a teacher (--teacher)",
				    bv_method_name(cfg->loss.method));
	if (k != d->n_classes)
		return bv_error_set(BV_EMISMATCH, "model '%s' has %d classes, the data has %d",
				    m->spec, k, d->n_classes);
	rng_shuffle = gsl_rng_alloc(gsl_rng_mt19937);
	rng_drop = gsl_rng_alloc(gsl_rng_mt19937);
	rng_aug = gsl_rng_alloc(gsl_rng_mt19937);
	/* the teacher's own stream (dropout in train mode), so that running it does not
	 * shift the student's streams: ce and kd students of a seed stay paired */
	rng_teacher = gsl_rng_alloc(gsl_rng_mt19937);
	if (d->shape.c <= 3)
		bv_data_zero_value(pad_value, d);
	if (cfg->augment && !(xa = malloc(sizeof(float) * D * (size_t)B))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for training");
		goto done;
	}
	order = malloc(sizeof(int) * (size_t)n_idx);
	yb = malloc(sizeof(int) * (size_t)B);
	xb = malloc(sizeof(float) * D * (size_t)B);
	tb = malloc(sizeof(float) * (size_t)k * (size_t)B);
	dlogits = malloc(sizeof(float) * (size_t)k * (size_t)B);
	test_logits = malloc(sizeof(float) * (size_t)k * (size_t)(d->test.n ? d->test.n : 1));
	if (!order || !yb || !xb || !tb || !dlogits || !test_logits || !rng_shuffle || !rng_drop ||
	    !rng_aug || !rng_teacher ||
	    bv_sgd_init(&opt, m->n_params, cfg->lr, cfg->momentum, cfg->wd, cfg->nesterov) != 0) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for training");
		goto done;
	}
	if ((rc = bv_model_reserve(m, B)) != 0)
		goto done;
	bv_nn_set_threads(cfg->threads);
	gsl_rng_set(rng_drop, cfg->seed ^ 0x5bd1e995ul);

	for (int epoch = 0; epoch < cfg->epochs; epoch++) {
		const double t0 = bv_now();
		double sum_loss = 0, sum_w = 0;
		long n_seen = 0, n_correct = 0, n_filtered = 0;
		opt.lr = bv_schedule_lr(&cfg->schedule, cfg->lr, epoch, cfg->epochs);
		for (int i = 0; i < n_idx; i++)
			order[i] = idx ? idx[i] : i;
		gsl_rng_set(rng_shuffle, shuffle_seed(cfg->seed, epoch));
		gsl_ran_shuffle(rng_shuffle, order, (size_t)n_idx, sizeof(int));
		/* augmentation, like the batch order, depends on the seed and epoch only */
		gsl_rng_set(rng_aug, shuffle_seed(cfg->seed, epoch) ^ 0x2545f491ul);

		for (int start = 0, step = 0; start < n_idx; start += B, step++) {
			const int nb = n_idx - start < B ? n_idx - start : B;
			for (int j = 0; j < nb; j++) {
				const int r = order[start + j];
				memcpy(xb + (size_t)j * D, d->train.x + (size_t)r * D, D * sizeof(float));
				yb[j] = d->train.y[r];
				if (soft && !teacher_per_batch)
					memcpy(tb + (size_t)j * k, teacher_logits + (size_t)r * k,
					       (size_t)k * sizeof(float));
			}
			const float *xin = xb;
			if (cfg->augment) {
				bv_augment_crop_flip(xa, xb, nb, d->shape, 4, pad_value, rng_aug);
				xin = xa;
			}
			if (teacher_per_batch) {
				const float *tl = bv_model_forward(cfg->teacher, xin, nb, cfg->teacher_bn_train,
								  rng_teacher);
				if (!tl) {
					rc = bv_error_code();
					goto done;
				}
				memcpy(tb, tl, sizeof(float) * (size_t)nb * k);
			}
			const float *logits = bv_model_forward(m, xin, nb, 1, rng_drop);
			bv_loss_stats st;
			if (!logits) {
				rc = bv_error_code();
				goto done;
			}
			rc = bv_loss(&st, dlogits, NULL, &cfg->loss, logits, soft ? tb : NULL, yb, nb, k);
			if (rc == BV_EDIVERGED) {
				rc = bv_error_set(BV_EDIVERGED,
						  "training diverged at epoch %d step %d (loss %g): try a "
						  "lower --lr (now %g)",
						  epoch + 1, step + 1, st.loss, cfg->lr);
				goto done;
			} else if (rc) {
				goto done;
			}
			bv_model_backward(m, dlogits, nb);
			bv_sgd_step(&opt, m->params, m->grads);
			sum_loss += st.loss * nb;
			sum_w += st.wsl_weight * nb;
			n_correct += st.n_correct;
			n_filtered += st.n_filtered;
			n_seen += nb;
		}
		if ((rc = bv_model_predict(m, test_logits, d->test.x, d->test.n, 500)) != 0)
			goto done;
		bv_epoch_stats es = {
			.epoch = epoch + 1,
			.n_epochs = cfg->epochs,
			.lr = opt.lr,
			.loss = sum_loss / (double)n_seen,
			.train_acc = (double)n_correct / (double)n_seen,
			.test_acc = bv_math_accuracy(test_logits, d->test.y, d->test.n, k),
			.wsl_weight = cfg->loss.method == BV_METHOD_WSL ? sum_w / (double)n_seen : 0.0,
			.filtered = (double)n_filtered / (double)n_seen,
			.test_logits = test_logits,
		};
		es.seconds = bv_now() - t0;
		if (on_epoch && (rc = on_epoch(ctx, &es, m)) != 0)
			goto done;
	}
done:
	bv_sgd_release(&opt);
	if (rng_shuffle)
		gsl_rng_free(rng_shuffle);
	if (rng_drop)
		gsl_rng_free(rng_drop);
	if (rng_aug)
		gsl_rng_free(rng_aug);
	if (rng_teacher)
		gsl_rng_free(rng_teacher);
	free(xa);
	free(order);
	free(yb);
	free(xb);
	free(tb);
	free(dlogits);
	free(test_logits);
	return rc;
}
