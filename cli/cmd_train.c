/*
 * `bvtool train`: train one model on one data set — a teacher (method ce), or
 * a student with ce, kd, wsl or kd-filter against a teacher checkpoint — print
 * one line per epoch, and save the checkpoint atomically at the end.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "bvmath.h"
#include "train.h"

typedef struct train_ctx {
	int method;
} train_ctx;

static int print_epoch(void *ctx, const bv_epoch_stats *st, bv_model *m)
{
	const train_ctx *c = ctx;
	printf("epoch %3d/%d  lr %.4f  loss %.4f  train %6.2f%%  test %6.2f%%", st->epoch,
	       st->n_epochs, st->lr, st->loss, 100.0 * st->train_acc, 100.0 * st->test_acc);
	if (c->method == BV_METHOD_WSL)
		printf("  weight %.3f", st->wsl_weight);
	if (c->method == BV_METHOD_KD_FILTER)
		printf("  filtered %.1f%%", 100.0 * st->filtered);
	printf("  %.1fs\n", st->seconds);
	fflush(stdout);
	return 0;
}

int cmd_train(const cli_cmd *cmd, int argc, char **argv)
{
	const char *data_spec = "fashion-mnist", *model_spec = "mlp:1200-1200", *method = "ce";
	const char *teacher_path = NULL, *out_path = NULL, *schedule = "cosine";
	const char *augment = "none", *teacher_bn = "eval";
	bv_train_cfg cfg;
	bv_train_cfg_default(&cfg);
	double temp = cfg.loss.temp, alpha = cfg.loss.alpha, gamma = cfg.loss.gamma;
	double lr = cfg.lr, momentum = cfg.momentum, wd = cfg.wd;
	int nesterov = 0, epochs = cfg.epochs, batch = cfg.batch, seed = (int)cfg.seed;
	/* a default that depends on the machine: docs/cli.md tells those who want
	 * the same bytes on another one to pass --threads */
	int threads = bv_cpus_available(), subset = 0;
	const cli_opt opts[] = {
		{"--data", OPT_STR, &data_spec, "NAME[:DIR]", "fashion-mnist[:DIR], mnist:DIR, idx:DIR, cifar10:DIR or cifar100:DIR"},
		{"--model", OPT_STR, &model_spec, "SPEC", "model spec, e.g. mlp:1200-1200, mlp:64:dropout=0.2, cnn-small, resnet20, wrn-16-2, vgg8"},
		{"--method", OPT_STR, &method, "M", "ce, kd, wsl or kd-filter"},
		{"--teacher", OPT_STR, &teacher_path, "CKPT", "teacher checkpoint (kd, wsl, kd-filter)"},
		{"--out", OPT_STR, &out_path, "CKPT", "write the trained model here (atomically)"},
		{"--temp", OPT_DOUBLE, &temp, "T", "distillation temperature", 0, 1000, 1},
		{"--alpha", OPT_DOUBLE, &alpha, "A", "weight of the soft (KD/WSL) term", 0, 1e6},
		{"--gamma", OPT_DOUBLE, &gamma, "G", "weight of the hard (CE) term in kd/wsl", 0, 1e6},
		{"--lr", OPT_DOUBLE, &lr, "LR", "base learning rate", 0, 100, 1},
		{"--momentum", OPT_DOUBLE, &momentum, "M", "SGD momentum", 0, 0.999},
		{"--nesterov", OPT_FLAG, &nesterov, NULL, "use Nesterov momentum"},
		{"--wd", OPT_DOUBLE, &wd, "WD", "weight decay", 0, 1},
		{"--schedule", OPT_STR, &schedule, "S", "const, cosine or step:E1,E2,...:GAMMA"},
		{"--epochs", OPT_INT, &epochs, "N", "training epochs", 1, 100000},
		{"--batch", OPT_INT, &batch, "N", "mini-batch size", 1, 65536},
		{"--seed", OPT_INT, &seed, "N", "seed of the weights, batch order and dropout", 0, 2147483647},
		{"--threads", OPT_INT, &threads, "N", "BLAS threads", 1, 4096, 0, 1},
		{"--train-subset", OPT_INT, &subset, "N", "use only the first N training samples (0 = all)", 0, 100000000},
		{"--augment", OPT_STR, &augment, "A", "none, or crop-flip (random 4-pixel padded crop and horizontal flip)"},
		{"--teacher-bn", OPT_STR, &teacher_bn, "M", "the teacher's batch norm: eval (running statistics) or train (batch statistics)"},
		{0},
	};
	cli_cmd local = *cmd;
	local.opts = opts;
	bv_data data = {0};
	bv_model *model = NULL, *teacher = NULL;
	float *teacher_logits = NULL;
	train_ctx ctx;
	int rc = cli_parse(&local, argc, argv);
	if (rc)
		return rc < 0 ? BV_EXIT_OK : rc;

	if ((rc = bv_method_parse(&cfg.loss.method, method, "--method")) != 0 ||
	    cfg.loss.method == BV_METHOD_TEACHER) {
		bv_error_set(BV_EINVAL, "--method: unknown method '%s' (expected ce, kd, wsl or kd-filter)",
			     method);
		rc = cli_fail(BV_EINVAL);
		goto done;
	}
	const int soft = cfg.loss.method != BV_METHOD_CE;
	if (soft && !teacher_path) {
		bv_error_set(BV_EINVAL, "--method %s needs a teacher: --teacher CKPT", method);
		rc = cli_fail(BV_EINVAL);
		goto done;
	}
	if (!soft && teacher_path) {
		bv_error_set(BV_EINVAL, "--teacher is used only with --method kd, wsl or kd-filter");
		rc = cli_fail(BV_EINVAL);
		goto done;
	}
	if ((rc = bv_schedule_parse(&cfg.schedule, schedule, "--schedule")) != 0 ||
	    (rc = bv_augment_parse(&cfg.augment, augment, "--augment")) != 0) {
		rc = cli_fail(rc);
		goto done;
	}
	if (strcmp(teacher_bn, "eval") != 0 && strcmp(teacher_bn, "train") != 0) {
		rc = cli_fail(bv_error_set(BV_EINVAL, "--teacher-bn: expected eval or train, got '%s'",
					   teacher_bn));
		goto done;
	}
	cfg.teacher_bn_train = strcmp(teacher_bn, "train") == 0;
	/* a bad --out is named now, not after the training: never a device, a FIFO
	 * or a directory (the atomic write would refuse it too), nor a missing directory */
	if (out_path && ((rc = bv_check_output(out_path)) != 0 || (rc = bv_check_output_dir(out_path)) != 0)) {
		rc = cli_fail(rc);
		goto done;
	}
	cfg.loss.temp = (float)temp;
	cfg.loss.alpha = (float)alpha;
	cfg.loss.gamma = (float)gamma;
	cfg.lr = (float)lr;
	cfg.momentum = (float)momentum;
	cfg.wd = (float)wd;
	cfg.nesterov = nesterov;
	cfg.epochs = epochs;
	cfg.batch = batch;
	cfg.seed = (unsigned long)seed;
	cfg.threads = threads;
	bv_nn_set_threads(threads);

	if ((rc = bv_data_load(&data, data_spec)) != 0) {
		rc = cli_fail(rc);
		goto done;
	}
	if (subset > 0 && subset < data.train.n)
		bv_data_truncate_train(&data, subset);
	/* check the spec before spending time on a teacher */
	if ((rc = bv_model_new(&model, model_spec, data.shape, data.n_classes)) != 0) {
		bv_error_prefix(rc, "--model");
		rc = cli_fail(rc);
		goto done;
	}
	bv_model_init(model, (unsigned long)seed);
	if (soft) {
		if ((rc = bv_ckpt_load(&teacher, teacher_path, &data.shape, data.n_classes)) != 0) {
			rc = cli_fail(rc);
			goto done;
		}
		/* the teacher sees each augmented batch, or runs with batch statistics */
		cfg.teacher = teacher;
	}
	if (soft && !cfg.augment && !cfg.teacher_bn_train) {
		/* otherwise: once, in eval mode, gathered per batch */
		teacher_logits = malloc(sizeof(float) * (size_t)data.train.n * data.n_classes);
		if (!teacher_logits) {
			rc = cli_fail(bv_error_set(BV_ENOMEM, "out of memory for teacher logits"));
			goto done;
		}
		if ((rc = bv_model_predict(teacher, teacher_logits, data.train.x, data.train.n, 500)) != 0) {
			rc = cli_fail(rc);
			goto done;
		}
	}
	printf("data %s: %d train, %d test, %dx%dx%d, %d classes; model %s (%zu parameters); method %s\n",
	       data.name, data.train.n, data.test.n, data.shape.c, data.shape.h, data.shape.w,
	       data.n_classes, model->spec, model->n_params, bv_method_name(cfg.loss.method));
	ctx.method = (int)cfg.loss.method;
	if ((rc = bv_train_run(model, &cfg, &data, NULL, 0, teacher_logits, print_epoch, &ctx)) != 0) {
		rc = cli_fail(rc);
		goto done;
	}
	if (out_path && (rc = bv_ckpt_save(model, out_path)) != 0) {
		rc = cli_fail(rc);
		goto done;
	}
	float *logits = malloc(sizeof(float) * (size_t)data.test.n * data.n_classes);
	if (!logits || bv_model_predict(model, logits, data.test.x, data.test.n, 500) != 0) {
		free(logits);
		rc = cli_fail(bv_error_set(BV_ENOMEM, "out of memory for test logits"));
		goto done;
	}
	if (out_path)
		printf("wrote %s\n", out_path);
	printf("test accuracy: %.2f%%\n", 100.0 * bv_math_accuracy(logits, data.test.y, data.test.n, data.n_classes));
	free(logits);
	rc = BV_EXIT_OK;
done:
	free(teacher_logits);
	bv_model_free(teacher);
	bv_model_free(model);
	bv_data_release(&data);
	return rc;
}
