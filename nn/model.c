/*
 * The model: a list of nodes in topological order built from a spec string,
 * one contiguous parameter vector (and one of buffers: batch norm's running
 * statistics), and activation buffers. Node i reads activation `in` (and
 * `in2` for a residual add) and writes activation i + 1; backward walks the
 * nodes in reverse, each accumulating into the gradients of what it read.
 *
 * The CIFAR networks follow the definitions of the CRD benchmark
 * (github.com/HobbitLong/RepDistiller, models/resnet.py, wrn.py, vgg.py) layer
 * by layer and in the same parameter order, so that their parameter counts
 * match and PyTorch weights map onto ours in order (tests/fixtures/gen_models.py).
 */
#include "nn.h"

#include "internal.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 1024

typedef struct builder {
	bv_node nodes[MAX_NODES];
	bv_shape shapes[MAX_NODES + 1]; /* of every activation; 0 = the input */
	int n_nodes;
	size_t n_params, n_buffers;
	int failed;
} builder;

/* Append a node reading activation `in`; returns its output activation, or -1. */
static int push(builder *b, bv_op op, int in, bv_shape out_shape)
{
	if (b->failed || b->n_nodes >= MAX_NODES || in < 0) {
		b->failed = 1;
		return -1;
	}
	bv_node *nd = &b->nodes[b->n_nodes];
	memset(nd, 0, sizeof *nd);
	nd->op = op;
	nd->in = in;
	nd->in2 = -1;
	nd->out_shape = out_shape;
	b->shapes[++b->n_nodes] = out_shape;
	return b->n_nodes;
}

static bv_node *last(builder *b)
{
	return &b->nodes[b->n_nodes - 1];
}

static void add_param(builder *b, bv_node *nd, size_t size, int fan_in)
{
	nd->param_off[nd->n_params] = b->n_params;
	nd->param_size[nd->n_params] = size;
	nd->param_fan_in[nd->n_params] = fan_in;
	nd->n_params++;
	b->n_params += size;
}

static int linear(builder *b, int in, int n_out)
{
	const int n_in = (int)bv_shape_size(b->shapes[in < 0 ? 0 : in]);
	int out = push(b, BV_OP_LINEAR, in, (bv_shape){n_out, 1, 1});
	if (out < 0)
		return -1;
	bv_node *nd = last(b);
	nd->u.linear.n_in = n_in;
	nd->u.linear.n_out = n_out;
	add_param(b, nd, (size_t)n_out * n_in, n_in); /* weight (n_out, n_in) */
	add_param(b, nd, (size_t)n_out, 0);           /* bias (n_out) */
	return out;
}

static int simple(builder *b, bv_op op, int in)
{
	return push(b, op, in, b->shapes[in < 0 ? 0 : in]);
}

static int conv(builder *b, int in, int c_out, int k, int stride, int pad, int bias)
{
	const bv_shape s = b->shapes[in < 0 ? 0 : in];
	const int oh = (s.h + 2 * pad - k) / stride + 1, ow = (s.w + 2 * pad - k) / stride + 1;
	if (oh < 1 || ow < 1) {
		b->failed = 1;
		return -1;
	}
	int out = push(b, BV_OP_CONV, in, (bv_shape){c_out, oh, ow});
	if (out < 0)
		return -1;
	bv_node *nd = last(b);
	nd->u.conv.c_out = c_out;
	nd->u.conv.k = k;
	nd->u.conv.stride = stride;
	nd->u.conv.pad = pad;
	nd->u.conv.bias = bias;
	add_param(b, nd, (size_t)c_out * s.c * k * k, s.c * k * k); /* weight (c_out, c_in, k, k) */
	if (bias)
		add_param(b, nd, (size_t)c_out, 0);
	return out;
}

static int bn(builder *b, int in)
{
	int out = simple(b, BV_OP_BN, in);
	if (out < 0)
		return -1;
	bv_node *nd = last(b);
	const int c = nd->out_shape.c;
	nd->u.bn.momentum = 0.1f;
	nd->u.bn.eps = 1e-5f;
	add_param(b, nd, (size_t)c, -1); /* gamma (c), initialised to 1 */
	add_param(b, nd, (size_t)c, 0);  /* beta (c) */
	nd->buf_off = b->n_buffers;      /* running mean (c), running variance (c) */
	b->n_buffers += 2 * (size_t)c;
	return out;
}

static int maxpool(builder *b, int in, int k, int stride, int pad)
{
	const bv_shape s = b->shapes[in < 0 ? 0 : in];
	const int oh = (s.h + 2 * pad - k) / stride + 1, ow = (s.w + 2 * pad - k) / stride + 1;
	if (oh < 1 || ow < 1) {
		b->failed = 1;
		return -1;
	}
	int out = push(b, BV_OP_MAXPOOL, in, (bv_shape){s.c, oh, ow});
	if (out < 0)
		return -1;
	bv_node *nd = last(b);
	nd->u.pool.k = k;
	nd->u.pool.stride = stride;
	nd->u.pool.pad = pad;
	return out;
}

static int gap(builder *b, int in)
{
	return push(b, BV_OP_GAP, in, (bv_shape){b->shapes[in < 0 ? 0 : in].c, 1, 1});
}

static int add(builder *b, int in1, int in2)
{
	int out = simple(b, BV_OP_ADD, in1);
	if (out < 0 || in2 < 0) {
		b->failed = 1;
		return -1;
	}
	last(b)->in2 = in2;
	return out;
}

static int conv_bn_relu(builder *b, int in, int c_out, int k, int stride, int pad, int bias)
{
	return simple(b, BV_OP_RELU, bn(b, conv(b, in, c_out, k, stride, pad, bias)));
}

static int spec_error(const char *spec, const char *why)
{
	return bv_error_set(BV_EINVAL,
			    "unknown model spec '%s': %s (expected mlp:H1-H2-... with optional "
			    ":dropout=P, resnet8|14|20|32|44|56|110, resnet8x4, resnet32x4, "
			    "wrn-16-1|16-2|40-1|40-2, vgg8|11|13 or cnn-small)",
			    spec, why);
}

/* ---- families --------------------------------------------------------------- */

/* mlp:H1-H2-...[:dropout=P] */
static int build_mlp(builder *b, const char *spec, const char *args, int n_classes)
{
	char buf[128];
	float p = 0;
	int x = 0;
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
			x = simple(b, BV_OP_RELU, linear(b, x, (int)h));
			if (p > 0) {
				x = simple(b, BV_OP_DROPOUT, x);
				if (x > 0)
					last(b)->u.dropout.p = p;
			}
		}
	}
	linear(b, x, n_classes);
	return 0;
}

/* RepDistiller's CIFAR ResNet: conv3x3 - BN - ReLU, three stages of n = (depth -
 * 2) / 6 BasicBlocks (filters f1, f2, f3; the first block of stages 2 and 3 has
 * stride 2; a 1x1 conv + BN shortcut where the shape changes), global average
 * pooling, fc. BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU. */
static void build_resnet(builder *b, int depth, const int f[4], int n_classes)
{
	const int n = (depth - 2) / 6;
	int x = conv_bn_relu(b, 0, f[0], 3, 1, 1, 0);
	for (int stage = 0; stage < 3; stage++)
		for (int i = 0; i < n; i++) {
			const int stride = stage > 0 && i == 0 ? 2 : 1;
			const int planes = f[stage + 1];
			const int in_planes = b->shapes[x < 0 ? 0 : x].c;
			int y = conv_bn_relu(b, x, planes, 3, stride, 1, 0);
			y = bn(b, conv(b, y, planes, 3, 1, 1, 0));
			int shortcut = x;
			if (stride != 1 || in_planes != planes)
				shortcut = bn(b, conv(b, x, planes, 1, stride, 0, 0));
			x = simple(b, BV_OP_RELU, add(b, y, shortcut));
		}
	linear(b, gap(b, x), n_classes);
}

/* RepDistiller's Wide ResNet (pre-activation): conv3x3 to 16, three stages of n =
 * (depth - 4) / 6 blocks of widths 16k, 32k, 64k, then BN - ReLU, global average
 * pooling, fc. Block: BN-ReLU(x) -> conv3x3 -> BN-ReLU -> conv3x3, added to x, or
 * to a 1x1 conv of the pre-activated x where the width changes. */
static void build_wrn(builder *b, int depth, int k, int n_classes)
{
	const int n = (depth - 4) / 6;
	const int widths[3] = {16 * k, 32 * k, 64 * k};
	int x = conv(b, 0, 16, 3, 1, 1, 0);
	for (int stage = 0; stage < 3; stage++)
		for (int i = 0; i < n; i++) {
			const int stride = stage > 0 && i == 0 ? 2 : 1;
			const int out_planes = widths[stage];
			const int equal = b->shapes[x < 0 ? 0 : x].c == out_planes;
			int a = simple(b, BV_OP_RELU, bn(b, x));
			int y = simple(b, BV_OP_RELU, bn(b, conv(b, a, out_planes, 3, stride, 1, 0)));
			y = conv(b, y, out_planes, 3, 1, 1, 0);
			int shortcut = equal ? x : conv(b, a, out_planes, 1, stride, 0, 0);
			x = add(b, y, shortcut);
		}
	x = simple(b, BV_OP_RELU, bn(b, x));
	linear(b, gap(b, x), n_classes);
}

/* RepDistiller's VGG for CIFAR: five blocks of conv3x3 (with bias) - BN - ReLU,
 * max pooling 2x2 after the first three blocks, and after the fourth only on
 * 64-pixel-high inputs (their forward() runs pool3 when h == 64), global
 * average pooling after the last, fc 512 -> classes. */
static void build_vgg(builder *b, const int *cfg, int n_classes)
{
	int x = 0;
	for (int block = 0; block < 5; block++) {
		for (int j = 0; j < 2 && cfg[2 * block + j] > 0; j++)
			x = conv_bn_relu(b, x, cfg[2 * block + j], 3, 1, 1, 1);
		if (block < 3 || (block == 3 && b->shapes[0].h == 64))
			x = maxpool(b, x, 2, 2, 0);
	}
	linear(b, gap(b, x), n_classes);
}

/* cnn-small: [conv3x3 32 - BN - ReLU - maxpool 2] [conv3x3 64 - BN - ReLU - maxpool 2]
 * fc 128 - ReLU - fc classes. */
static void build_cnn_small(builder *b, int n_classes)
{
	int x = maxpool(b, conv_bn_relu(b, 0, 32, 3, 1, 1, 0), 2, 2, 0);
	x = maxpool(b, conv_bn_relu(b, x, 64, 3, 1, 1, 0), 2, 2, 0);
	linear(b, simple(b, BV_OP_RELU, linear(b, x, 128)), n_classes);
}

static int build(builder *b, const char *spec, int n_classes)
{
	static const struct {
		const char *name;
		int depth, f[4];
	} resnets[] = {
		{"resnet8", 8, {16, 16, 32, 64}},       {"resnet14", 14, {16, 16, 32, 64}},
		{"resnet20", 20, {16, 16, 32, 64}},     {"resnet32", 32, {16, 16, 32, 64}},
		{"resnet44", 44, {16, 16, 32, 64}},     {"resnet56", 56, {16, 16, 32, 64}},
		{"resnet110", 110, {16, 16, 32, 64}},   {"resnet8x4", 8, {32, 64, 128, 256}},
		{"resnet32x4", 32, {32, 64, 128, 256}},
	};
	static const struct {
		const char *name;
		int depth, k;
	} wrns[] = {{"wrn-16-1", 16, 1}, {"wrn-16-2", 16, 2}, {"wrn-40-1", 40, 1}, {"wrn-40-2", 40, 2}};
	static const struct {
		const char *name;
		int cfg[10];
	} vggs[] = {
		{"vgg8", {64, 0, 128, 0, 256, 0, 512, 0, 512, 0}},
		{"vgg11", {64, 0, 128, 0, 256, 256, 512, 512, 512, 512}},
		{"vgg13", {64, 64, 128, 128, 256, 256, 512, 512, 512, 512}},
	};
	if (strncmp(spec, "mlp:", 4) == 0)
		return build_mlp(b, spec, spec + 4, n_classes);
	for (unsigned i = 0; i < BV_ARRAY_LEN(resnets); i++)
		if (strcmp(spec, resnets[i].name) == 0) {
			build_resnet(b, resnets[i].depth, resnets[i].f, n_classes);
			return 0;
		}
	for (unsigned i = 0; i < BV_ARRAY_LEN(wrns); i++)
		if (strcmp(spec, wrns[i].name) == 0) {
			build_wrn(b, wrns[i].depth, wrns[i].k, n_classes);
			return 0;
		}
	for (unsigned i = 0; i < BV_ARRAY_LEN(vggs); i++)
		if (strcmp(spec, vggs[i].name) == 0) {
			build_vgg(b, vggs[i].cfg, n_classes);
			return 0;
		}
	if (strcmp(spec, "cnn-small") == 0) {
		build_cnn_small(b, n_classes);
		return 0;
	}
	return spec_error(spec, "unknown family");
}

/* ---- the model object ------------------------------------------------------ */

static bv_conv_dims conv_dims(const bv_model *m, int i, int n);

/* The nodes, shapes and sizes of a spec on in_shape, in *out (the caller
 * frees it); nothing of the model is allocated yet. */
static int plan(builder **out, const char *spec, bv_shape in_shape, int n_classes)
{
	int rc;
	*out = NULL;
	if (strlen(spec) >= sizeof ((bv_model *)0)->spec)
		return spec_error(spec, "too long");
	if (n_classes < 2 || bv_shape_size(in_shape) == 0)
		return bv_error_set(BV_EINVAL, "model '%s': bad input shape or class count", spec);
	builder *b = calloc(1, sizeof *b);
	if (!b)
		return bv_error_set(BV_ENOMEM, "out of memory building '%s'", spec);
	b->shapes[0] = in_shape;
	if ((rc = build(b, spec, n_classes)) == 0 && b->failed)
		rc = bv_error_set(BV_EINVAL, "model '%s' does not fit %dx%dx%d inputs (or is too deep)",
				  spec, in_shape.c, in_shape.h, in_shape.w);
	if (rc)
		free(b);
	else
		*out = b;
	return rc;
}

int bv_model_sizes(const char *spec, bv_shape in_shape, int n_classes, size_t *n_params,
		   size_t *n_buffers)
{
	builder *b = NULL;
	int rc = plan(&b, spec, in_shape, n_classes);
	if (rc == 0) {
		*n_params = b->n_params;
		*n_buffers = b->n_buffers;
	}
	free(b);
	return rc;
}

int bv_model_new(bv_model **out, const char *spec, bv_shape in_shape, int n_classes)
{
	builder *b = NULL;
	bv_model *m = NULL;
	int rc = 0;
	*out = NULL;
	if ((rc = plan(&b, spec, in_shape, n_classes)) != 0)
		return rc;
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
