/*
 * The model zoo of nn/model.c against PyTorch re-implementations of
 * RepDistiller's CIFAR networks: $BV_FIXTURES/models.txt, written by
 * tests/fixtures/gen_models.py (file format and weight rule documented there).
 *   1. Parameter counts of every spec at 10 and 100 classes, exactly, and the
 *      buffer count, 2 x the batch-norm channels.
 *   2. resnet8 and vgg8 (3x32x32, 10 classes, batch 4): our parameter vector,
 *      laid out node by node, must follow PyTorch's named_parameters() tensor
 *      by tensor (shape and kind), and our batch-norm buffers its running
 *      statistics; both are filled by the fixture's rule. Then eval-mode
 *      logits, train-mode logits, the mean cross-entropy, the input gradient,
 *      every parameter gradient and the running statistics after the train
 *      forward are compared with the float64 reference, max abs / rel
 *      differences printed per tensor group.
 * A missing fixture is a failure, not a skip.
 *
 * bv_model_backward does not compute the gradient of the model input (nobody
 * trains the data), so the test gets it by running the naive backward of each
 * node that reads the input (a convolution) on the gradient of its output.
 */
#include "check.h"
#include "nn.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Tolerances, relative to the largest reference value of the tensor compared
 * (for a gradient that is zero in exact arithmetic — a conv bias before batch
 * norm in train mode — relative to GRAD_FLOOR x the largest gradient of the
 * model): float32 against float64 through a few conv - BN - ReLU layers, where
 * the differences seen are about 1e-6. */
#define TOL_LOGITS 1e-4
#define TOL_GRAD 1e-4
#define GRAD_FLOOR 1e-2
#define TOL_RUNNING 1e-4

/* ---- the fixture ---------------------------------------------------------- */

typedef struct fx_tensor {
	char name[96];
	char kind;         /* w g b (parameters), m v (running mean / variance) */
	int fan_in;        /* w: numel / shape[0]; g: -1; b: 0 */
	int ndim, dims[4]; /* parameters only */
	size_t numel;
	double sum, sumsq; /* of the rule's float32 values */
	/* reference gradient (parameters) or running statistic after the train
	 * forward (buffers): all numel values, or n_vals sampled at idx */
	int full;
	double norm;
	int n_vals;
	size_t *idx;
	double *vals;
} fx_tensor;

typedef struct fx_model {
	char spec[32];
	int n_classes;
	int n_params, n_buffers;
	fx_tensor *params, *buffers;
	double *eval_logits, *train_logits; /* (n, n_classes) */
	double loss;
	double *dx; /* (n, c, h, w) */
} fx_model;

typedef struct fx_file {
	int n_counts;
	struct fx_count {
		char spec[32];
		bv_shape shape;
		int n_classes;
		size_t n_params, n_bn_channels;
	} *counts;
	int n, n_models;
	bv_shape in_shape;
	float *x; /* (n, c, h, w) */
	int *y;   /* (n) */
	fx_model *models;
} fx_file;

static void fx_model_release(fx_model *fm)
{
	for (int t = 0; fm->params && t < fm->n_params; t++) {
		free(fm->params[t].idx);
		free(fm->params[t].vals);
	}
	for (int b = 0; fm->buffers && b < fm->n_buffers; b++)
		free(fm->buffers[b].vals);
	free(fm->params);
	free(fm->buffers);
	free(fm->eval_logits);
	free(fm->train_logits);
	free(fm->dx);
}

static void fx_file_release(fx_file *fx)
{
	for (int i = 0; fx->models && i < fx->n_models; i++)
		fx_model_release(&fx->models[i]);
	free(fx->models);
	free(fx->counts);
	free(fx->x);
	free(fx->y);
}

/* Read the next token and require it to be `word`. */
static int expect_word(FILE *f, const char *word)
{
	char tok[64];
	return fscanf(f, "%63s", tok) == 1 && strcmp(tok, word) == 0;
}

static double *read_doubles(FILE *f, size_t n)
{
	double *v = malloc((n ? n : 1) * sizeof(double));
	for (size_t i = 0; v && i < n; i++)
		if (fscanf(f, "%lf", &v[i]) != 1) {
			free(v);
			return NULL;
		}
	return v;
}

/* `word <n doubles>` */
static double *read_tagged(FILE *f, const char *word, size_t n)
{
	return expect_word(f, word) ? read_doubles(f, n) : NULL;
}

/* One `model ... end` block; 0 on a malformed block. */
static int read_model(FILE *f, fx_model *fm, int n)
{
	memset(fm, 0, sizeof *fm);
	if (!expect_word(f, "model") || fscanf(f, "%31s %d", fm->spec, &fm->n_classes) != 2 ||
	    fm->n_classes < 2 || !expect_word(f, "nparams") ||
	    fscanf(f, "%d", &fm->n_params) != 1 ||
	    fm->n_params <= 0 || !(fm->params = calloc((size_t)fm->n_params, sizeof(fx_tensor))))
		return 0;
	for (int t = 0; t < fm->n_params; t++) {
		fx_tensor *p = &fm->params[t];
		int index;
		char kind[4];
		if (!expect_word(f, "param") ||
		    fscanf(f, "%d %95s %3s %d %d", &index, p->name, kind, &p->fan_in,
			   &p->ndim) != 5 ||
		    index != t || p->ndim < 1 || p->ndim > 4)
			return 0;
		p->kind = kind[0];
		p->numel = 1;
		for (int d = 0; d < p->ndim; d++) {
			if (fscanf(f, "%d", &p->dims[d]) != 1 || p->dims[d] < 1)
				return 0;
			p->numel *= (size_t)p->dims[d];
		}
		if (fscanf(f, "%lf %lf", &p->sum, &p->sumsq) != 2)
			return 0;
	}
	if (!expect_word(f, "nbuffers") || fscanf(f, "%d", &fm->n_buffers) != 1 ||
	    fm->n_buffers < 0 ||
	    !(fm->buffers = calloc((size_t)fm->n_buffers + 1, sizeof(fx_tensor))))
		return 0;
	for (int b = 0; b < fm->n_buffers; b++) {
		fx_tensor *q = &fm->buffers[b];
		int index;
		char kind[4];
		if (!expect_word(f, "buffer") ||
		    fscanf(f, "%d %95s %3s %zu %lf %lf", &index, q->name, kind, &q->numel, &q->sum,
			   &q->sumsq) != 6 ||
		    index != b)
			return 0;
		q->kind = kind[0];
	}
	const size_t nk = (size_t)n * fm->n_classes;
	if (!(fm->eval_logits = read_tagged(f, "eval_logits", nk)) ||
	    !(fm->train_logits = read_tagged(f, "train_logits", nk)) || !expect_word(f, "loss") ||
	    fscanf(f, "%lf", &fm->loss) != 1)
		return 0;
	/* dx's size is the input's: read by the caller, who knows it */
	return 1;
}

static int read_grads_and_running(FILE *f, fx_model *fm)
{
	for (int t = 0; t < fm->n_params; t++) {
		fx_tensor *p = &fm->params[t];
		int index;
		size_t numel;
		char how[16];
		if (!expect_word(f, "grad") ||
		    fscanf(f, "%d %15s %zu %lf", &index, how, &numel, &p->norm) != 4 ||
		    index != t || numel != p->numel)
			return 0;
		if (strcmp(how, "full") == 0) {
			p->full = 1;
			p->n_vals = (int)numel;
			if (!(p->vals = read_doubles(f, numel)))
				return 0;
		} else if (strcmp(how, "sampled") == 0) {
			if (fscanf(f, "%d", &p->n_vals) != 1 || p->n_vals < 1 ||
			    !(p->idx = malloc((size_t)p->n_vals * sizeof(size_t))) ||
			    !(p->vals = malloc((size_t)p->n_vals * sizeof(double))))
				return 0;
			for (int j = 0; j < p->n_vals; j++)
				if (fscanf(f, "%zu %lf", &p->idx[j], &p->vals[j]) != 2 ||
				    p->idx[j] >= numel)
					return 0;
		} else {
			return 0;
		}
	}
	for (int b = 0; b < fm->n_buffers; b++) {
		fx_tensor *q = &fm->buffers[b];
		int index;
		size_t numel;
		if (!expect_word(f, "running") || fscanf(f, "%d %zu", &index, &numel) != 2 ||
		    index != b || numel != q->numel || !(q->vals = read_doubles(f, numel)))
			return 0;
		q->full = 1;
		q->n_vals = (int)numel;
	}
	return expect_word(f, "end");
}

/* 0 with a CHECK failure naming the problem when the file is missing or malformed. */
static int read_fixture(fx_file *fx)
{
	const char *dir = getenv("BV_FIXTURES");
	char path[4096];
	int version = 0, ok = 0;
	size_t in_size = 0;
	FILE *f;
	memset(fx, 0, sizeof *fx);
	if (!dir) {
		CHECK(0, "BV_FIXTURES is not set (run through ctest, or set it to tests/fixtures)");
		return 0;
	}
	snprintf(path, sizeof path, "%s/models.txt", dir);
	if (!(f = fopen(path, "r"))) {
		CHECK(0, "cannot open fixture '%s' (regenerate with tests/fixtures/gen_models.py)",
		      path);
		return 0;
	}
	if (!expect_word(f, "bvtool-models") || fscanf(f, "%d", &version) != 1 || version != 1 ||
	    !expect_word(f, "counts") || fscanf(f, "%d", &fx->n_counts) != 1 || fx->n_counts <= 0 ||
	    !(fx->counts = calloc((size_t)fx->n_counts, sizeof *fx->counts))) {
		CHECK(0, "'%s': bad header (expected 'bvtool-models 1' and 'counts N')", path);
		goto done;
	}
	for (int i = 0; i < fx->n_counts; i++) {
		struct fx_count *c = &fx->counts[i];
		if (!expect_word(f, "count") ||
		    fscanf(f, "%31s %d %d %d %d %zu %zu", c->spec, &c->shape.c, &c->shape.h,
			   &c->shape.w, &c->n_classes, &c->n_params, &c->n_bn_channels) != 7) {
			CHECK(0, "'%s': count line %d is malformed", path, i + 1);
			goto done;
		}
	}
	if (!expect_word(f, "input") ||
	    fscanf(f, "%d %d %d %d", &fx->n, &fx->in_shape.c, &fx->in_shape.h,
		   &fx->in_shape.w) != 4 ||
	    fx->n < 1 || (in_size = bv_shape_size(fx->in_shape) * (size_t)fx->n) == 0 ||
	    !(fx->x = malloc(in_size * sizeof(float))) ||
	    !(fx->y = malloc((size_t)fx->n * sizeof(int))) ||
	    !expect_word(f, "x")) {
		CHECK(0, "'%s': bad input header", path);
		goto done;
	}
	for (size_t i = 0; i < in_size; i++)
		if (fscanf(f, "%f", &fx->x[i]) != 1) {
			CHECK(0, "'%s': short input", path);
			goto done;
		}
	if (!expect_word(f, "y")) {
		CHECK(0, "'%s': no labels", path);
		goto done;
	}
	for (int i = 0; i < fx->n; i++)
		if (fscanf(f, "%d", &fx->y[i]) != 1) {
			CHECK(0, "'%s': short labels", path);
			goto done;
		}
	if (!expect_word(f, "nmodels") || fscanf(f, "%d", &fx->n_models) != 1 || fx->n_models < 1 ||
	    !(fx->models = calloc((size_t)fx->n_models, sizeof(fx_model)))) {
		CHECK(0, "'%s': bad 'nmodels'", path);
		goto done;
	}
	for (int i = 0; i < fx->n_models; i++) {
		fx_model *fm = &fx->models[i];
		if (!read_model(f, fm, fx->n) || !(fm->dx = read_tagged(f, "dx", in_size)) ||
		    !read_grads_and_running(f, fm)) {
			CHECK(0, "'%s': model block %d ('%s') is malformed", path, i + 1, fm->spec);
			fx->n_models = i + 1; /* release what was read */
			goto done;
		}
	}
	printf("fixture: %d counts, %d models from %s\n", fx->n_counts, fx->n_models, path);
	ok = 1;
done:
	fclose(f);
	return ok;
}

/* ---- 1. counts ---------------------------------------------------------------- */

static void test_counts(const fx_file *fx)
{
	printf("%-12s %-8s %7s %12s %12s %10s\n", "spec", "input", "classes", "params", "reference",
	       "buffers");
	for (int i = 0; i < fx->n_counts; i++) {
		const struct fx_count *c = &fx->counts[i];
		bv_model *m = NULL;
		int rc = bv_model_new(&m, c->spec, c->shape, c->n_classes);
		CHECK(rc == 0, "bv_model_new('%s'): %s", c->spec, bv_error_last());
		if (rc != 0)
			continue;
		printf("%-12s %dx%dx%-4d %7d %12zu %12zu %10zu\n", c->spec, c->shape.c, c->shape.h,
		       c->shape.w, c->n_classes, m->n_params, c->n_params, m->n_buffers);
		CHECK(m->n_params == c->n_params, "%s (%dx%dx%d, %d classes): %zu parameters, "
		      "RepDistiller's definition has %zu", c->spec, c->shape.c, c->shape.h,
		      c->shape.w, c->n_classes, m->n_params, c->n_params);
		CHECK(m->n_buffers == 2 * c->n_bn_channels,
		      "%s: %zu buffers, want 2 x %zu BN channels", c->spec, m->n_buffers,
		      c->n_bn_channels);
		bv_model_free(m);
	}
}

/* ---- 2. numerics ----------------------------------------------------------------- */

/* gen_models.py's rule: v[i] = float32(off + amp * (2u - 1)) with u the top 24
 * bits of lowbias32(i * 0x9e3779b1 + stream * 0x85ebca77) over 2^24. */
static void rule_fill(float *v, size_t n, uint32_t stream, double off, double amp)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t h = (uint32_t)i * 0x9e3779b1u + stream * 0x85ebca77u;
		h ^= h >> 16;
		h *= 0x7feb352du;
		h ^= h >> 15;
		h *= 0x846ca68bu;
		h ^= h >> 16;
		const double u = (double)(h >> 8) / (double)(1u << 24);
		v[i] = (float)(off + amp * (2.0 * u - 1.0));
	}
}

#define BUFFER_STREAM 1000u

static const char *op_name(bv_op op)
{
	switch (op) {
	case BV_OP_LINEAR: return "linear";
	case BV_OP_CONV: return "conv";
	case BV_OP_BN: return "batch norm";
	default: return "other";
	}
}

static bv_shape in_shape_of(const bv_model *m, const bv_node *nd)
{
	return nd->in == 0 ? m->in_shape : m->nodes[nd->in - 1].out_shape;
}

/* The shape our node gives parameter p, PyTorch's layout: conv weight (c_out,
 * c_in, k, k), linear weight (n_out, n_in), anything else a vector. */
static int our_dims(int *dims, const bv_model *m, const bv_node *nd, int p)
{
	if (nd->op == BV_OP_CONV && p == 0) {
		dims[0] = nd->u.conv.c_out;
		dims[1] = in_shape_of(m, nd).c;
		dims[2] = dims[3] = nd->u.conv.k;
		return 4;
	}
	if (nd->op == BV_OP_LINEAR && p == 0) {
		dims[0] = nd->u.linear.n_out;
		dims[1] = nd->u.linear.n_in;
		return 2;
	}
	dims[0] = (int)nd->param_size[p];
	return 1;
}

static void check_sums(const char *spec, const fx_tensor *t, const float *v)
{
	double s = 0, sa = 0, s2 = 0;
	for (size_t i = 0; i < t->numel; i++) {
		s += v[i];
		sa += fabs(v[i]);
		s2 += (double)v[i] * v[i];
	}
	CHECK(fabs(s - t->sum) <= 1e-9 * sa && fabs(s2 - t->sumsq) <= 1e-9 * s2,
	      "%s: '%s' filled by the rule sums to %.9g (squares %.9g), the reference's to %.9g "
	      "(%.9g): the C and Python weight rules differ",
	      spec, t->name, s, s2, t->sum, t->sumsq);
}

/* Where PyTorch's parameter tensor t lives in our model: node, parameter slot. */
typedef struct slot {
	int node, p;
} slot;

static void fmt_shape(char *out, size_t size, int ndim, const int *dims)
{
	int len = snprintf(out, size, "(");
	for (int d = 0; d < ndim && len > 0 && (size_t)len < size; d++)
		len += snprintf(out + len, size - (size_t)len, d ? ", %d" : "%d", dims[d]);
	if (len > 0 && (size_t)len < size)
		snprintf(out + len, size - (size_t)len, ")");
}

/* Is parameter p of node i PyTorch's tensor ft? If not, say how they differ. */
static int match_param(const bv_model *m, int i, int p, const fx_tensor *ft, int t)
{
	const bv_node *nd = &m->nodes[i];
	const int fan_in = nd->param_fan_in[p];
	const char kind = fan_in > 0 ? 'w' : fan_in < 0 ? 'g' : 'b';
	int dims[4];
	const int ndim = our_dims(dims, m, nd, p);
	int same = ndim == ft->ndim && kind == ft->kind && nd->param_size[p] == ft->numel &&
		   (kind != 'w' || fan_in == ft->fan_in);
	for (int d = 0; same && d < ndim; d++)
		same = dims[d] == ft->dims[d];
	if (!same) {
		char ours[64], theirs[64];
		fmt_shape(ours, sizeof ours, ndim, dims);
		fmt_shape(theirs, sizeof theirs, ft->ndim, ft->dims);
		CHECK(0, "%s: parameter tensor %d: ours is node %d (%s) param %d, kind %c, "
		      "shape %s; PyTorch's is '%s', kind %c, shape %s", m->spec, t, i,
		      op_name(nd->op), p, kind, ours, ft->name, ft->kind, theirs);
	}
	return same;
}

/* Fill our parameters and buffers from the fixture's tensors in order, checking
 * that each node's tensors are the next ones of named_parameters() / buffers();
 * 0 (with the mismatch reported) when the layouts differ. */
static int fill_model(bv_model *m, const fx_model *fm, slot *slots)
{
	int t = 0, b = 0;
	for (int i = 0; i < m->n_nodes; i++) {
		const bv_node *nd = &m->nodes[i];
		for (int p = 0; p < nd->n_params; p++, t++) {
			if (t >= fm->n_params) {
				CHECK(0, "%s: node %d (%s) has parameter tensor %d, PyTorch's "
				      "model only %d tensors", fm->spec, i, op_name(nd->op), t,
				      fm->n_params);
				return 0;
			}
			const fx_tensor *ft = &fm->params[t];
			if (!match_param(m, i, p, ft, t))
				return 0;
			float *v = m->params + nd->param_off[p];
			if (ft->kind == 'w')
				rule_fill(v, ft->numel, (uint32_t)t, 0.0, sqrt(6.0 / ft->fan_in));
			else if (ft->kind == 'g')
				rule_fill(v, ft->numel, (uint32_t)t, 1.0, 0.25);
			else
				rule_fill(v, ft->numel, (uint32_t)t, 0.0, 0.1);
			check_sums(fm->spec, ft, v);
			slots[t] = (slot){i, p};
		}
		if (nd->op != BV_OP_BN)
			continue;
		const size_t c = (size_t)nd->out_shape.c;
		for (int j = 0; j < 2; j++, b++) {
			const fx_tensor *q = b < fm->n_buffers ? &fm->buffers[b] : NULL;
			if (!q || q->kind != (j ? 'v' : 'm') || q->numel != c) {
				CHECK(0, "%s: batch norm node %d's running %s (%zu) is not "
				      "PyTorch's buffer %d ('%s')", fm->spec, i,
				      j ? "variance" : "mean", c, b, q ? q->name : "none");
				return 0;
			}
			float *v = m->buffers + nd->buf_off + (size_t)j * c;
			rule_fill(v, c, BUFFER_STREAM + (uint32_t)b, j ? 1.0 : 0.0, j ? 0.5 : 0.1);
			check_sums(fm->spec, q, v);
		}
	}
	CHECK(t == fm->n_params, "%s: our model has %d parameter tensors, PyTorch's %d", fm->spec,
	      t, fm->n_params);
	CHECK(b == fm->n_buffers, "%s: our model has %d running-statistics tensors, PyTorch's %d",
	      fm->spec, b, fm->n_buffers);
	return t == fm->n_params && b == fm->n_buffers;
}

/* max |got - want| and the largest |want| over n values */
typedef struct diff {
	double abs, ref;
} diff;

static diff compare(const float *got, const double *want, size_t n)
{
	diff d = {0, 0};
	for (size_t i = 0; i < n; i++) {
		const double e = fabs((double)got[i] - want[i]);
		d.abs = e > d.abs || isnan(e) ? e : d.abs;
		d.ref = fabs(want[i]) > d.ref ? fabs(want[i]) : d.ref;
	}
	return d;
}

static double rel(diff d)
{
	return d.ref > 0 ? d.abs / d.ref : d.abs;
}

static void check_diff(const char *spec, const char *what, diff d, double tol)
{
	printf("  %-8s %-26s max abs diff %.3g  rel %.3g  (max |ref| %.3g)\n", spec, what, d.abs,
	       rel(d), d.ref);
	CHECK(d.abs <= tol * d.ref, "%s: %s differ from PyTorch's: max abs diff %.3g, relative "
	      "%.3g > %.3g", spec, what, d.abs, rel(d), tol);
}

/* Tensor groups for the printout of gradient differences. */
enum { G_CONV_W, G_CONV_B, G_BN_G, G_BN_B, G_FC_W, G_FC_B, N_GROUPS };
static const char *const group_name[N_GROUPS] = {
	"grad conv weight", "grad conv bias", "grad bn weight (gamma)", "grad bn bias (beta)",
	"grad fc weight", "grad fc bias",
};

static void check_grads(const bv_model *m, const fx_model *fm, const slot *slots)
{
	double gabs[N_GROUPS] = {0}, grel[N_GROUPS] = {0};
	int seen[N_GROUPS] = {0};
	double floor_ref = 0; /* GRAD_FLOOR x the largest reference gradient of the model */
	for (int t = 0; t < fm->n_params; t++)
		for (int j = 0; j < fm->params[t].n_vals; j++)
			floor_ref = fmax(floor_ref, GRAD_FLOOR * fabs(fm->params[t].vals[j]));
	for (int t = 0; t < fm->n_params; t++) {
		const fx_tensor *ft = &fm->params[t];
		const bv_node *nd = &m->nodes[slots[t].node];
		const int p = slots[t].p;
		const float *g = m->grads + nd->param_off[p];
		diff d = {0, 0};
		double norm = 0;
		for (size_t i = 0; i < ft->numel; i++)
			norm += (double)g[i] * g[i];
		norm = sqrt(norm);
		for (int j = 0; j < ft->n_vals; j++) {
			const size_t i = ft->full ? (size_t)j : ft->idx[j];
			const double e = fabs((double)g[i] - ft->vals[j]);
			d.abs = e > d.abs || isnan(e) ? e : d.abs;
			d.ref = fmax(d.ref, fabs(ft->vals[j]));
		}
		const double scale = fmax(d.ref, floor_ref);
		CHECK(d.abs <= TOL_GRAD * scale,
		      "%s: gradient of '%s' (%s): max abs diff %.3g > %.3g (max |ref| %.3g)",
		      fm->spec, ft->name, ft->full ? "all values" : "sampled", d.abs,
		      TOL_GRAD * scale, d.ref);
		CHECK(fabs(norm - ft->norm) <= TOL_GRAD * fmax(ft->norm, floor_ref),
		      "%s: gradient norm of '%s': %.9g, PyTorch's %.9g", fm->spec, ft->name, norm,
		      ft->norm);
		const int gi = nd->op == BV_OP_CONV ? (p == 0 ? G_CONV_W : G_CONV_B)
			       : nd->op == BV_OP_BN ? (p == 0 ? G_BN_G : G_BN_B)
						     : (p == 0 ? G_FC_W : G_FC_B);
		gabs[gi] = fmax(gabs[gi], d.abs);
		grel[gi] = fmax(grel[gi], d.abs / scale);
		seen[gi]++;
	}
	for (int gi = 0; gi < N_GROUPS; gi++)
		if (seen[gi])
			printf("  %-8s %-26s max abs diff %.3g  rel %.3g  (%d tensors)\n", fm->spec,
			       group_name[gi], gabs[gi], grel[gi], seen[gi]);
}

/* dL/dx: the naive conv backward of every node that reads the input, on the
 * gradient bv_model_backward left at its output. */
static int input_grad(float *dx, const bv_model *m, int n)
{
	memset(dx, 0, bv_shape_size(m->in_shape) * (size_t)n * sizeof(float));
	for (int i = 0; i < m->n_nodes; i++) {
		const bv_node *nd = &m->nodes[i];
		if (nd->in != 0 && nd->in2 != 0)
			continue;
		if (nd->op != BV_OP_CONV || nd->in != 0) {
			CHECK(0, "%s: node %d (%s) reads the input: the test only knows "
			      "convolutions", m->spec, i, op_name(nd->op));
			return 0;
		}
		const bv_shape s = m->in_shape;
		bv_conv_dims d = {n, s.c, s.h, s.w, nd->u.conv.c_out, nd->u.conv.k, nd->u.conv.k,
				  nd->u.conv.stride, nd->u.conv.pad, 0, 0};
		bv_conv_dims_init(&d);
		float *dw = calloc(nd->param_size[0], sizeof(float)); /* not needed, but written */
		if (!dw) {
			CHECK(0, "out of memory");
			return 0;
		}
		bv_conv2d_backward_naive(dx, dw, NULL, m->dacts[i + 1], m->acts[0],
					 m->params + nd->param_off[0], &d);
		free(dw);
	}
	return 1;
}

static void test_model(const fx_file *fx, const fx_model *fm)
{
	bv_model *m = NULL;
	slot *slots = calloc((size_t)fm->n_params, sizeof(slot));
	float *dl = NULL, *dx = NULL;
	const int n = fx->n, k = fm->n_classes;
	const size_t nk = (size_t)n * k, in_size = bv_shape_size(fx->in_shape) * (size_t)n;
	int rc = bv_model_new(&m, fm->spec, fx->in_shape, k);
	CHECK(rc == 0, "bv_model_new('%s'): %s", fm->spec, bv_error_last());
	if (rc != 0 || !slots)
		goto done;
	printf("%s: %zu parameters in %d tensors, %zu buffers\n", fm->spec, m->n_params,
	       fm->n_params, m->n_buffers);
	if (!fill_model(m, fm, slots))
		goto done;
	dl = malloc(nk * sizeof(float));
	dx = malloc(in_size * sizeof(float));
	CHECK(dl && dx, "out of memory");
	if (!dl || !dx)
		goto done;

	const float *z = bv_model_forward(m, fx->x, n, 0, NULL);
	CHECK(z != NULL, "%s: eval forward failed", fm->spec);
	if (!z)
		goto done;
	check_diff(fm->spec, "eval logits", compare(z, fm->eval_logits, nk), TOL_LOGITS);

	/* dropout-free models: the rng is never read */
	z = bv_model_forward(m, fx->x, n, 1, NULL);
	CHECK(z != NULL, "%s: train forward failed", fm->spec);
	if (!z)
		goto done;
	check_diff(fm->spec, "train logits", compare(z, fm->train_logits, nk), TOL_LOGITS);

	bv_loss_cfg cfg = {BV_METHOD_CE, 1, 0, 1};
	bv_loss_stats st;
	rc = bv_loss(&st, dl, NULL, &cfg, z, NULL, fx->y, n, k);
	CHECK(rc == 0, "%s: bv_loss: %s", fm->spec, bv_error_last());
	printf("  %-8s %-26s %.9g, PyTorch's %.9g\n", fm->spec, "mean cross-entropy", st.loss,
	       fm->loss);
	CHECK(fabs(st.loss - fm->loss) <= TOL_LOGITS * fm->loss, "%s: loss %.9g, PyTorch's %.9g",
	      fm->spec, st.loss, fm->loss);
	bv_model_backward(m, dl, n);

	if (input_grad(dx, m, n))
		check_diff(fm->spec, "input gradient", compare(dx, fm->dx, in_size), TOL_GRAD);
	check_grads(m, fm, slots);

	diff run = {0, 0};
	int b = 0;
	for (int i = 0; i < m->n_nodes; i++) {
		const bv_node *nd = &m->nodes[i];
		if (nd->op != BV_OP_BN)
			continue;
		for (int j = 0; j < 2; j++, b++) {
			const fx_tensor *q = &fm->buffers[b];
			const float *got = m->buffers + nd->buf_off + (size_t)j * q->numel;
			const diff d = compare(got, q->vals, q->numel);
			CHECK(d.abs <= TOL_RUNNING * d.ref,
			      "%s: '%s' after the train forward: max abs diff %.3g "
			      "(max |ref| %.3g)", fm->spec, q->name, d.abs, d.ref);
			run.abs = fmax(run.abs, d.abs);
			run.ref = fmax(run.ref, d.ref);
		}
	}
	printf("  %-8s %-26s max abs diff %.3g  (max |ref| %.3g, %d tensors)\n", fm->spec,
	       "running mean / variance", run.abs, run.ref, b);
done:
	free(slots);
	free(dl);
	free(dx);
	bv_model_free(m);
}

int main(void)
{
	fx_file fx;
	if (read_fixture(&fx)) {
		test_counts(&fx);
		for (int i = 0; i < fx.n_models; i++)
			test_model(&fx, &fx.models[i]);
	}
	fx_file_release(&fx);
	return bv_check_done();
}
