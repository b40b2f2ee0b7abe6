/*
 * The model: a list of nodes in topological order built from a spec string,
 * one contiguous parameter vector (and one of buffers: batch norm's running
 * statistics), and activation buffers. Node i reads activation `in` (and
 * `in2` for a residual add) and writes activation i + 1; backward walks the
 * nodes in reverse, each accumulating into the gradients of what it read.
 * zoo.c turns the spec into the node list (nn_model_plan); this file owns the
 * model object, its buffers, and the forward and backward passes.
 */
#include "nn.h"

#include "internal.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the model object ------------------------------------------------------ */

static bv_conv_dims conv_dims(const bv_model *m, int i, int n);

int nn_model_from_plan(bv_model **out, const nn_plan *b, const char *spec, bv_shape in_shape,
		       int n_classes)
{
	bv_model *m = NULL;
	int rc = 0;
	*out = NULL;
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
	m->n_buffers = b->n_buffers;
	m->nodes = malloc(sizeof(bv_node) * (size_t)b->n_nodes);
	m->params = calloc(b->n_params, sizeof(float));
	m->grads = calloc(b->n_params, sizeof(float));
	m->buffers = calloc(b->n_buffers ? b->n_buffers : 1, sizeof(float));
	m->acts = calloc((size_t)b->n_nodes + 1, sizeof(float *));
	m->dacts = calloc((size_t)b->n_nodes + 1, sizeof(float *));
	m->caches = calloc((size_t)b->n_nodes, sizeof(float *));
	m->caches2 = calloc((size_t)b->n_nodes, sizeof(float *));
	if (!m->nodes || !m->params || !m->grads || !m->buffers || !m->acts || !m->dacts ||
	    !m->caches || !m->caches2) {
		rc = bv_error_set(BV_ENOMEM, "out of memory building '%s'", spec);
		goto done;
	}
	memcpy(m->nodes, b->nodes, sizeof(bv_node) * (size_t)b->n_nodes);
	/* the conv workspace does not depend on the batch size */
	size_t col = 0;
	for (int i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].op == BV_OP_CONV) {
			bv_conv_dims d = conv_dims(m, i, 1);
			size_t c = bv_conv2d_col_size(&d);
			col = c > col ? c : col;
		}
	if (col && !(m->col = malloc(col * sizeof(float)))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory building '%s'", spec);
		goto done;
	}
	*out = m;
	m = NULL;
done:
	bv_model_free(m);
	return rc;
}

int bv_model_new(bv_model **out, const char *spec, bv_shape in_shape, int n_classes)
{
	nn_plan *b = NULL;
	int rc = nn_model_plan(&b, spec, in_shape, n_classes);
	*out = NULL;
	if (rc == 0)
		rc = nn_model_from_plan(out, b, spec, in_shape, n_classes);
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
		free(m->caches2[i]);
		m->caches[i] = m->caches2[i] = NULL;
	}
	m->cap_batch = 0;
}

void bv_model_free(bv_model *m)
{
	if (!m)
		return;
	if (m->acts && m->dacts && m->caches && m->caches2)
		free_buffers(m);
	free(m->acts);
	free(m->dacts);
	free(m->caches);
	free(m->caches2);
	free(m->nodes);
	free(m->params);
	free(m->grads);
	free(m->buffers);
	free(m->col);
	free(m);
}

static bv_shape act_shape(const bv_model *m, int i)
{
	return i == 0 ? m->in_shape : m->nodes[i - 1].out_shape;
}

static bv_conv_dims conv_dims(const bv_model *m, int i, int n)
{
	const bv_node *nd = &m->nodes[i];
	const bv_shape s = act_shape(m, nd->in);
	bv_conv_dims d = {n, s.c, s.h, s.w, nd->u.conv.c_out, nd->u.conv.k, nd->u.conv.k,
			  nd->u.conv.stride, nd->u.conv.pad, 0, 0};
	bv_conv_dims_init(&d);
	return d;
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
		const bv_node *nd = &m->nodes[i];
		const size_t sz = bv_shape_size(nd->out_shape) * (size_t)n;
		if (nd->op == BV_OP_DROPOUT || nd->op == BV_OP_MAXPOOL) {
			/* dropout mask, max-pool argmax (int, the size of a float) */
			if (!(m->caches[i] = malloc(sz * sizeof(float))))
				goto oom;
		}
		/* BN: invstd and mean per channel; its backward recomputes xhat from its input */
		if (nd->op == BV_OP_BN &&
		    !(m->caches2[i] = malloc(2 * (size_t)nd->out_shape.c * sizeof(float))))
			goto oom;
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
				const float v = nd->param_fan_in[p] < 0 ? 1.0f : 0.0f;
				for (size_t j = 0; j < nd->param_size[p]; j++)
					w[j] = v;
			}
		}
		if (nd->op == BV_OP_BN) {
			const int c = nd->out_shape.c;
			float *rm = m->buffers + nd->buf_off;
			for (int j = 0; j < c; j++) {
				rm[j] = 0.0f;     /* running mean */
				rm[c + j] = 1.0f; /* running variance */
			}
		}
	}
	gsl_rng_free(rng);
}

/* Whether node i, a batch norm, and node i + 1, a ReLU that is its output's
 * only consumer, run fused: one pass over the activation instead of two in
 * forward and in backward, and the batch norm's output is never written. */
static int fuses_relu(const bv_model *m, int i)
{
	if (m->nodes[i].op != BV_OP_BN || i + 1 >= m->n_nodes)
		return 0;
	const bv_node *r = &m->nodes[i + 1];
	if (r->op != BV_OP_RELU || r->in != i + 1)
		return 0;
	for (int j = 0; j < m->n_nodes; j++)
		if (j != i + 1 && (m->nodes[j].in == i + 1 || m->nodes[j].in2 == i + 1))
			return 0;
	return 1;
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
		const bv_shape is = act_shape(m, nd->in), os = nd->out_shape;
		const size_t size = bv_shape_size(os) * (size_t)n;
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
		case BV_OP_CONV: {
			bv_conv_dims d = conv_dims(m, i, n);
			bv_conv2d_forward(out, m->col, in, P0, nd->u.conv.bias ? P1 : NULL, &d);
			break;
		}
		case BV_OP_BN: {
			float *rs = m->buffers + nd->buf_off;
			const int fused = fuses_relu(m, i); /* then writes the ReLU's output */
			nn_bn_forward(fused ? m->acts[i + 2] : out, NULL, m->caches2[i],
				      m->caches2[i] + os.c, in, P0, P1, rs, rs + os.c, n, os.c, os.h * os.w,
				      train, nd->u.bn.momentum, nd->u.bn.eps, fused);
			i += fused;
			break;
		}
		case BV_OP_MAXPOOL:
			bv_maxpool_forward(out, (int *)m->caches[i], in, n, is.c, is.h, is.w, nd->u.pool.k,
					   nd->u.pool.stride, nd->u.pool.pad, os.h, os.w);
			break;
		case BV_OP_GAP:
			bv_gap_forward(out, in, n, is.c, is.h * is.w);
			break;
		case BV_OP_ADD:
			bv_add_forward(out, in, m->acts[nd->in2], size);
			break;
		}
	}
	return m->acts[m->n_nodes];
}

static void copy_range(void *arg, size_t lo, size_t hi)
{
	float *const *p = arg; /* {din, dout} */
	memcpy(p[0] + lo, p[1] + lo, (hi - lo) * sizeof(float));
}

/* The residual add's backward into one input: din += dout, or din = dout
 * where the add is that input's only reader (its gradient was not zeroed) */
static void pass_on(float *din, const float *dout, size_t size, int first)
{
	if (!first) {
		bv_add_forward(din, din, dout, size);
		return;
	}
	float *p[2] = {din, (float *)dout};
	nn_parallel_for(size, 4 * NN_MIN_CHUNK, copy_range, p);
}

static void zero_range(void *arg, size_t lo, size_t hi)
{
	memset((float *)arg + lo, 0, (hi - lo) * sizeof(float));
}

/* Whether activation a's gradient is written, not added to, by the backward
 * of its only reader: a ReLU, a batch norm or a residual add that reads it
 * once and is the only node that reads it. Such a gradient buffer need not be
 * zeroed first (about three quarters of a ResNet's). */
static int writes_first(const bv_model *m, int a)
{
	int readers = 0, reader = -1;
	for (int j = 0; j < m->n_nodes; j++) {
		const int uses = (m->nodes[j].in == a) + (m->nodes[j].op == BV_OP_ADD && m->nodes[j].in2 == a);
		readers += uses;
		reader = uses ? j : reader;
	}
	if (a == 0 || readers != 1)
		return 0;
	const int op = m->nodes[reader].op;
	return op == BV_OP_RELU || op == BV_OP_BN || op == BV_OP_ADD;
}

void bv_model_backward(bv_model *m, const float *dlogits, int n)
{
	memset(m->grads, 0, m->n_params * sizeof(float));
	/* dacts[0] (the input) is never needed */
	for (int i = 1; i < m->n_nodes; i++)
		if (!writes_first(m, i))
			nn_parallel_for(bv_shape_size(act_shape(m, i)) * (size_t)n, 4 * NN_MIN_CHUNK,
					zero_range, m->dacts[i]);
	memcpy(m->dacts[m->n_nodes], dlogits, (size_t)m->n_classes * n * sizeof(float));
	for (int i = m->n_nodes - 1; i >= 0; i--) {
		const bv_node *nd = &m->nodes[i];
		float *din = nd->in == 0 ? NULL : m->dacts[nd->in];
		const float *dout = m->dacts[i + 1];
		const bv_shape is = act_shape(m, nd->in), os = nd->out_shape;
		const size_t size = bv_shape_size(os) * (size_t)n;
		const float *P0 = m->params + nd->param_off[0];
		float *G0 = m->grads + nd->param_off[0], *G1 = m->grads + nd->param_off[1];
		switch (nd->op) {
		case BV_OP_LINEAR:
			bv_linear_backward(din, G0, G1, dout, m->acts[nd->in], P0, n,
					   nd->u.linear.n_in, nd->u.linear.n_out);
			break;
		case BV_OP_RELU:
			if (din && !(i > 0 && fuses_relu(m, i - 1))) /* fused: in the batch norm's */
				nn_relu_backward(din, dout, m->acts[i + 1], size, !writes_first(m, nd->in));
			break;
		case BV_OP_DROPOUT:
			if (din)
				bv_dropout_backward(din, dout, m->caches[i], size);
			break;
		case BV_OP_CONV: {
			bv_conv_dims d = conv_dims(m, i, n);
			bv_conv2d_backward(din, G0, nd->u.conv.bias ? G1 : NULL, m->col, dout,
					   m->acts[nd->in], P0, &d);
			break;
		}
		case BV_OP_BN:
			if (fuses_relu(m, i)) /* the ReLU's gradient and output, gating */
				nn_bn_backward(din, G0, G1, m->dacts[i + 2], NULL, m->acts[nd->in],
					       m->caches2[i] + os.c, m->caches2[i], P0, m->acts[i + 2], n, os.c,
					       os.h * os.w, !writes_first(m, nd->in));
			else
				nn_bn_backward(din, G0, G1, dout, NULL, m->acts[nd->in], m->caches2[i] + os.c,
					       m->caches2[i], P0, NULL, n, os.c, os.h * os.w,
					       !writes_first(m, nd->in));
			break;
		case BV_OP_MAXPOOL:
			if (din)
				bv_maxpool_backward(din, dout, (const int *)m->caches[i], n, os.c, os.h, os.w);
			break;
		case BV_OP_GAP:
			if (din)
				bv_gap_backward(din, dout, n, is.c, is.h * is.w);
			break;
		case BV_OP_ADD:
			if (din)
				pass_on(din, dout, size, writes_first(m, nd->in));
			if (nd->in2 > 0)
				pass_on(m->dacts[nd->in2], dout, size, writes_first(m, nd->in2));
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
	for (int i = 0; i < m->n_nodes; i++) {
		const bv_node *nd = &m->nodes[i];
		if (nd->op == BV_OP_LINEAR) {
			f += 2.0 * nd->u.linear.n_in * nd->u.linear.n_out;
		} else if (nd->op == BV_OP_CONV) {
			const bv_shape is = act_shape(m, nd->in), os = nd->out_shape;
			f += 2.0 * os.c * os.h * os.w * is.c * nd->u.conv.k * nd->u.conv.k;
		}
	}
	return f;
}
