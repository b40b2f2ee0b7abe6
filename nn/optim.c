/*
 * SGD with momentum, Nesterov and weight decay (PyTorch's semantics, so runs
 * compare with the PyTorch references), learning-rate schedules, and the BLAS
 * thread setting.
 */
#include "nn.h"
#include "internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int bv_sgd_init(bv_sgd *opt, size_t n, float lr, float momentum, float wd, int nesterov)
{
	memset(opt, 0, sizeof *opt);
	opt->velocity = calloc(n, sizeof(float));
	if (!opt->velocity)
		return bv_error_set(BV_ENOMEM, "out of memory for the optimiser");
	opt->n = n;
	opt->lr = lr;
	opt->momentum = momentum;
	opt->wd = wd;
	opt->nesterov = nesterov;
	return 0;
}

void bv_sgd_release(bv_sgd *opt)
{
	free(opt->velocity);
	memset(opt, 0, sizeof *opt);
}

void bv_sgd_step(bv_sgd *opt, float *params, const float *grads)
{
	const float lr = opt->lr, mu = opt->momentum, wd = opt->wd;
	float *v = opt->velocity;
	for (size_t i = 0; i < opt->n; i++) {
		float g = grads[i] + wd * params[i];
		v[i] = mu * v[i] + g;
		params[i] -= lr * (opt->nesterov ? g + mu * v[i] : v[i]);
	}
}

int bv_schedule_parse(bv_schedule *out, const char *s, const char *what)
{
	memset(out, 0, sizeof *out);
	if (strcmp(s, "const") == 0) {
		out->kind = BV_SCHED_CONST;
		return 0;
	}
	if (strcmp(s, "cosine") == 0) {
		out->kind = BV_SCHED_COSINE;
		return 0;
	}
	if (strncmp(s, "step:", 5) == 0) {
		char buf[256];
		const char *colon = strrchr(s + 5, ':');
		if (!colon || strlen(s) >= sizeof buf)
			goto bad;
		size_t len = (size_t)(colon - (s + 5));
		memcpy(buf, s + 5, len);
		buf[len] = '\0';
		double g;
		if (bv_parse_double(&g, colon + 1, 0.0, 1.0, what) != 0)
			goto bad;
		out->gamma = (float)g;
		char *save = NULL;
		int prev = 0;
		for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			long e;
			if (out->n_milestones >= BV_MAX_MILESTONES ||
			    bv_parse_long(&e, tok, 1, 1000000, what) != 0 || e <= prev)
				goto bad;
			out->milestones[out->n_milestones++] = (int)e;
			prev = (int)e;
		}
		if (out->n_milestones == 0)
			goto bad;
		out->kind = BV_SCHED_STEP;
		return 0;
	}
bad:
	return bv_error_set(BV_EINVAL,
			    "%s: bad schedule '%s' (expected const, cosine or step:E1,E2,...:GAMMA "
			    "with increasing epochs, e.g. step:150,180,210:0.1)",
			    what, s);
}

float bv_schedule_lr(const bv_schedule *s, float base_lr, int epoch, int n_epochs)
{
	switch (s->kind) {
	case BV_SCHED_STEP: {
		double lr = base_lr;
		for (int i = 0; i < s->n_milestones; i++)
			if (s->milestones[i] <= epoch)
				lr *= s->gamma;
		return (float)lr;
	}
	case BV_SCHED_COSINE:
		return (float)(base_lr * 0.5 * (1.0 + cos(3.14159265358979323846 * epoch / (double)n_epochs)));
	case BV_SCHED_CONST:
	default:
		return base_lr;
	}
}

void bv_schedule_format(char *out, size_t size, const bv_schedule *s)
{
	if (s->kind == BV_SCHED_CONST) {
		snprintf(out, size, "const");
	} else if (s->kind == BV_SCHED_COSINE) {
		snprintf(out, size, "cosine");
	} else {
		size_t len = (size_t)snprintf(out, size, "step:");
		for (int i = 0; i < s->n_milestones && len < size; i++)
			len += (size_t)snprintf(out + len, size - len, "%s%d", i ? "," : "",
						s->milestones[i]);
		if (len < size)
			snprintf(out + len, size - len, ":%g", s->gamma);
	}
}

void bv_nn_set_threads(int n)
{
	if (n > 0) {
		openblas_set_num_threads(n);
		nn_threads_request(n);
	}
}
