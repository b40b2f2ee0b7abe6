/*
 * The model: a list of nodes in topological order built from a spec string,
 * one contiguous parameter vector, and activation buffers. Node i reads
 * activation `in` (and `in2`) and writes activation i + 1; backward walks the
 * nodes in reverse, each accumulating into the gradients of what it read.
 */
#include "nn.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 512

typedef struct builder {
	bv_node nodes[MAX_NODES];
	int n_nodes;
	size_t n_params;
	bv_shape cur;      /* shape of the last activation */
} builder;

static bv_node *push(builder *b, bv_op op, bv_shape out_shape)
{
	if (b->n_nodes >= MAX_NODES)
		return NULL;
	bv_node *nd = &b->nodes[b->n_nodes];
	memset(nd, 0, sizeof *nd);
	nd->op = op;
	nd->in = b->n_nodes; /* the previous activation */
	nd->in2 = -1;
	nd->out_shape = out_shape;
	b->n_nodes++;
	b->cur = out_shape;
	return nd;
}

static void add_param(builder *b, bv_node *nd, size_t size, int fan_in)
{
	nd->param_off[nd->n_params] = b->n_params;
	nd->param_size[nd->n_params] = size;
	nd->param_fan_in[nd->n_params] = fan_in;
	nd->n_params++;
	b->n_params += size;
}

static int add_linear(builder *b, int n_out)
{
	const int n_in = (int)bv_shape_size(b->cur);
	bv_node *nd = push(b, BV_OP_LINEAR, (bv_shape){n_out, 1, 1});
	if (!nd)
		return -1;
	nd->u.linear.n_in = n_in;
	nd->u.linear.n_out = n_out;
	add_param(b, nd, (size_t)n_out * n_in, n_in); /* weight (n_out, n_in) */
	add_param(b, nd, (size_t)n_out, 0);           /* bias (n_out) */
	return 0;
}

static int add_simple(builder *b, bv_op op)
{
	return push(b, op, b->cur) ? 0 : -1;
}

static int spec_error(const char *spec, const char *why)
{
	return bv_error_set(BV_EINVAL,
			    "unknown model spec '%s': %s (expected mlp:H1-H2-... with optional "
			    ":dropout=P, e.g. mlp:1200-1200)",
			    spec, why);
}

/* mlp:H1-H2-...[:dropout=P] */
static int build_mlp(builder *b, const char *spec, const char *args, int n_classes)
{
	char buf[128];
	float p = 0;
	if (strlen(args) >= sizeof buf)
		return spec_error(spec, "too long");
	strcpy(buf, args);
	char *opt = strchr(buf, ':');
	if (opt) {
		*opt++ = '\0';
		double v;
		if (strncmp(opt, "dropout=", 8) != 0)
			return spec_error(spec, "unknown option");
		if (bv_parse_double(&v, opt + 8, 0.0, 0.95, "dropout") != 0)
			return spec_error(spec, "dropout must be a number from 0 to 0.95");
		p = (float)v;
	}
	if (buf[0] != '\0' && strcmp(buf, "0") != 0) {
		/* split on '-' by hand: an empty width ("5--5", "-5") is an error */
		for (char *tok = buf, *next; tok; tok = next) {
			long h;
			next = strchr(tok, '-');
			if (next)
				*next++ = '\0';
			if (bv_parse_long(&h, tok, 1, 1 << 20, "width") != 0)
				return spec_error(spec, "hidden widths must be whole numbers from 1");
			if (add_linear(b, (int)h) || add_simple(b, BV_OP_RELU))
				return spec_error(spec, "too many layers");
			if (p > 0) {
				if (add_simple(b, BV_OP_DROPOUT))
					return spec_error(spec, "too many layers");
				b->nodes[b->n_nodes - 1].u.dropout.p = p;
			}
		}
	}
	if (add_linear(b, n_classes))
		return spec_error(spec, "too many layers");
	return 0;
}

int bv_model_new(bv_model **out, const char *spec, bv_shape in_shape, int n_classes)
{
	builder *b = NULL;
	bv_model *m = NULL;
	int rc = 0;
	*out = NULL;
	if (strlen(spec) >= sizeof m->spec)
		return spec_error(spec, "too long");
	if (n_classes < 2 || bv_shape_size(in_shape) == 0)
		return bv_error_set(BV_EINVAL, "model '%s': bad input shape or class count", spec);
	b = calloc(1, sizeof *b);
	if (!b)
		return bv_error_set(BV_ENOMEM, "out of memory building '%s'", spec);
	b->cur = in_shape;
	if (strncmp(spec, "mlp:", 4) == 0)
		rc = build_mlp(b, spec, spec + 4, n_classes);
	else
		rc = spec_error(spec, "unknown family");
	if (rc)
		goto done;
	m = calloc(1, sizeof *m);
	if (!m) {
		rc = bv_error_set(BV_ENOMEM, "out of memory building '%s'", spec);
		goto done;
	}
	strcpy(m->spec, spec);
	m->in_shape = in_shape;
	m->n_classes = n_classes;
	m->n_nodes = b->n_nodes;
	m->n_params = b->n_params;
	m->nodes = malloc(sizeof(bv_node) * (size_t)b->n_nodes);
	m->params = calloc(b->n_params, sizeof(float));
	m->grads = calloc(b->n_params, sizeof(float));
	m->acts = calloc((size_t)b->n_nodes + 1, sizeof(float *));
	m->dacts = calloc((size_t)b->n_nodes + 1, sizeof(float *));
	m->caches = calloc((size_t)b->n_nodes, sizeof(float *));
	if (!m->nodes || !m->params || !m->grads || !m->acts || !m->dacts || !m->caches) {
		rc = bv_error_set(BV_ENOMEM, "out of memory building '%s'", spec);
		goto done;
	}
	memcpy(m->nodes, b->nodes, sizeof(bv_node) * (size_t)b->n_nodes);
	*out = m;
	m = NULL;
done:
	bv_model_free(m);
	free(b);
	return rc;
}

static void free_buffers(bv_model *m)
{
	for (int i = 0; i <= m->n_nodes; i++) {
		free(m->acts[i]);
		free(m->dacts[i]);
		m->acts[i] = m->dacts[i] = NULL;
	}
	for (int i = 0; i < m->n_nodes; i++) {
		free(m->caches[i]);
		m->caches[i] = NULL;
	}
	m->cap_batch = 0;
}

void bv_model_free(bv_model *m)
{
	if (!m)
		return;
	if (m->acts && m->dacts && m->caches)
		free_buffers(m);
	free(m->acts);
	free(m->dacts);
	free(m->caches);
	free(m->nodes);
	free(m->params);
	free(m->grads);
	free(m);
}

static bv_shape act_shape(const bv_model *m, int i)
{
	return i == 0 ? m->in_shape : m->nodes[i - 1].out_shape;
}

int bv_model_reserve(bv_model *m, int n)
{
	if (n <= m->cap_batch)
		return 0;
	free_buffers(m);
	for (int i = 0; i <= m->n_nodes; i++) {
		size_t sz = bv_shape_size(act_shape(m, i)) * (size_t)n;
		m->acts[i] = malloc(sz * sizeof(float));
		m->dacts[i] = malloc(sz * sizeof(float));
		if (!m->acts[i] || !m->dacts[i])
			goto oom;
	}
	for (int i = 0; i < m->n_nodes; i++) {
		if (m->nodes[i].op == BV_OP_DROPOUT) {
			m->caches[i] = malloc(bv_shape_size(m->nodes[i].out_shape) * (size_t)n * sizeof(float));
			if (!m->caches[i])
				goto oom;
		}
	}
	m->cap_batch = n;
	return 0;
oom:
	free_buffers(m);
	return bv_error_set(BV_ENOMEM, "out of memory for a batch of %d", n);
}

void bv_model_init(bv_model *m, unsigned long seed)
{
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(rng, seed);
	for (int i = 0; i < m->n_nodes; i++) {
		const bv_node *nd = &m->nodes[i];
		for (int p = 0; p < nd->n_params; p++) {
			float *w = m->params + nd->param_off[p];
			if (nd->param_fan_in[p] > 0) {
				/* He: N(0, 2 / fan_in) */
				const double sd = sqrt(2.0 / nd->param_fan_in[p]);
				for (size_t j = 0; j < nd->param_size[p]; j++)
					w[j] = (float)gsl_ran_gaussian_ziggurat(rng, sd);
			} else {
				memset(w, 0, nd->param_size[p] * sizeof(float));
			}
		}
	}
	gsl_rng_free(rng);
}

const float *bv_model_forward(bv_model *m, const float *x, int n, int train, gsl_rng *rng)
{
	if (bv_model_reserve(m, n) != 0)
		return NULL;
	memcpy(m->acts[0], x, bv_shape_size(m->in_shape) * (size_t)n * sizeof(float));
	for (int i = 0; i < m->n_nodes; i++) {
		const bv_node *nd = &m->nodes[i];
		const float *in = m->acts[nd->in];
		float *out = m->acts[i + 1];
		const size_t size = bv_shape_size(nd->out_shape) * (size_t)n;
		const float *P0 = m->params + nd->param_off[0], *P1 = m->params + nd->param_off[1];
		switch (nd->op) {
		case BV_OP_LINEAR:
			bv_linear_forward(out, in, P0, P1, n, nd->u.linear.n_in, nd->u.linear.n_out);
			break;
		case BV_OP_RELU:
			bv_relu_forward(out, in, size);
			break;
		case BV_OP_DROPOUT:
			if (train && nd->u.dropout.p > 0)
				bv_dropout_forward(out, m->caches[i], in, size, nd->u.dropout.p, rng);
			else
				memcpy(out, in, size * sizeof(float));
			break;
		}
	}
	return m->acts[m->n_nodes];
}

void bv_model_backward(bv_model *m, const float *dlogits, int n)
{
	memset(m->grads, 0, m->n_params * sizeof(float));
	/* dacts[0] (the input) is never needed */
	for (int i = 1; i < m->n_nodes; i++)
		memset(m->dacts[i], 0, bv_shape_size(act_shape(m, i)) * (size_t)n * sizeof(float));
	memcpy(m->dacts[m->n_nodes], dlogits, (size_t)m->n_classes * n * sizeof(float));
	for (int i = m->n_nodes - 1; i >= 0; i--) {
		const bv_node *nd = &m->nodes[i];
		float *din = nd->in == 0 ? NULL : m->dacts[nd->in];
		const float *dout = m->dacts[i + 1];
		const size_t size = bv_shape_size(nd->out_shape) * (size_t)n;
		const float *P0 = m->params + nd->param_off[0];
		float *G0 = m->grads + nd->param_off[0], *G1 = m->grads + nd->param_off[1];
		switch (nd->op) {
		case BV_OP_LINEAR:
			bv_linear_backward(din, G0, G1, dout, m->acts[nd->in], P0, n,
					   nd->u.linear.n_in, nd->u.linear.n_out);
			break;
		case BV_OP_RELU:
			if (din)
				bv_relu_backward(din, dout, m->acts[i + 1], size);
			break;
		case BV_OP_DROPOUT:
			if (din)
				bv_dropout_backward(din, dout, m->caches[i], size);
			break;
		}
	}
}

int bv_model_predict(bv_model *m, float *out, const float *x, int n, int batch)
{
	const size_t d = bv_shape_size(m->in_shape);
	for (int i = 0; i < n; i += batch) {
		int nb = n - i < batch ? n - i : batch;
		const float *logits = bv_model_forward(m, x + (size_t)i * d, nb, 0, NULL);
		if (!logits)
			return bv_error_code();
		memcpy(out + (size_t)i * m->n_classes, logits, sizeof(float) * (size_t)nb * m->n_classes);
	}
	return 0;
}

double bv_model_flops_per_sample(const bv_model *m)
{
	double f = 0;
	for (int i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].op == BV_OP_LINEAR)
			f += 2.0 * m->nodes[i].u.linear.n_in * m->nodes[i].u.linear.n_out;
	return f;
}
