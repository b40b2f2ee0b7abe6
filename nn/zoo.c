/*
 * The model zoo: a spec string ("mlp:1200-1200", "resnet20", "cnn-small", ...)
 * turned into the node list, activation shapes and parameter and buffer sizes
 * of a model (nn_model_plan), without allocating the model: bv_model_new
 * (model.c) copies the plan into a model; a checkpoint's stored counts are
 * compared with a plan's before any model is allocated (checkpoint.c).
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

#define MAX_NODES NN_MAX_NODES
typedef nn_plan builder;

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

/* ---- the plan of a spec (internal.h) --------------------------------------- */

int nn_model_plan(nn_plan **out, const char *spec, bv_shape in_shape, int n_classes)
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
