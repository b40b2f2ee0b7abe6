/*
 * nn: the neural-network core of bvtool — float32, batched, CPU.
 *
 * Three levels, each usable on its own:
 *   1. Layers: pure forward/backward pairs on caller-owned buffers, llm.c style.
 *      `bv_<layer>_forward(out, in, params..., dims)` and
 *      `bv_<layer>_backward(din, dparams..., dout, cache..., dims)`.
 *      Layers never allocate. Backward functions ACCUMULATE (+=) into din and
 *      into parameter gradients, so that a tensor read by two nodes (a residual
 *      branch) receives both gradients; the model zeroes them first.
 *      Every matrix product goes through cblas_sgemm; each BLAS path keeps a
 *      naive reference beside it (`_naive`) that the tests compare against.
 *   2. Losses: CE, KD and WSL exactly as SPEC.md defines them, returning the
 *      mean loss and dL/dlogits.
 *   3. The model: a list of nodes in topological order, built from a spec
 *      string (`mlp:1200-1200`), owning one contiguous parameter vector, its
 *      gradient, and activation buffers sized for the largest batch seen.
 *      Node i reads activation `in` (and `in2` for an add) and writes
 *      activation i+1; activation 0 is the model input. Convolution, batch norm
 *      and pooling slot in as further node kinds.
 * Plus SGD with momentum / Nesterov / weight decay, learning-rate schedules and
 * versioned checkpoints.
 *
 * nn knows nothing of files other than checkpoints, and nothing of SQLite.
 */
#ifndef BV_NN_H
#define BV_NN_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "base.h"

/* ---- layers ------------------------------------------------------------ */

/* out (n, n_out) = in (n, n_in) @ w^T + b;  w (n_out, n_in), b (n_out) or NULL */
void bv_linear_forward(float *out, const float *in, const float *w, const float *b,
		       int n, int n_in, int n_out);
void bv_linear_forward_naive(float *out, const float *in, const float *w, const float *b,
			     int n, int n_in, int n_out);
/* din (n, n_in) += dout @ w;  dw (n_out, n_in) += dout^T @ in;  db (n_out) += sum_n dout.
 * din may be NULL (input of the network), db may be NULL (no bias). */
void bv_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
			const float *w, int n, int n_in, int n_out);
void bv_linear_backward_naive(float *din, float *dw, float *db, const float *dout,
			      const float *in, const float *w, int n, int n_in, int n_out);

/* out = max(in, 0) over `size` values; din += dout * (out > 0) */
void bv_relu_forward(float *out, const float *in, size_t size);
void bv_relu_backward(float *din, const float *dout, const float *out, size_t size);

/* Inverted dropout: mask[i] = (u >= p) / (1 - p), out = in * mask; the mask
 * (size) is the cache for backward. */
void bv_dropout_forward(float *out, float *mask, const float *in, size_t size, float p,
			gsl_rng *rng);
void bv_dropout_backward(float *din, const float *dout, const float *mask, size_t size);

/* Convolution, NCHW. in (n, c_in, h, w) -> out (n, c_out, oh, ow) with
 * oh = (h + 2 pad - kh) / stride + 1 (likewise ow); w (c_out, c_in, kh, kw);
 * b (c_out) or NULL. Lowered onto cblas_sgemm by Winograd F(2x2, 3x3) for 3x3
 * stride-1 pad-1 convolutions with c_in >= 16 (bv_winograd_applies), by im2col
 * otherwise: `col` is a workspace of bv_conv2d_col_size(d) floats
 * (caller-owned, reused across calls). */
typedef struct bv_conv_dims {
	int n, c_in, h, w;
	int c_out, kh, kw, stride, pad;
	int oh, ow; /* filled by bv_conv_dims_init */
} bv_conv_dims;
void bv_conv_dims_init(bv_conv_dims *d);
size_t bv_conv2d_col_size(const bv_conv_dims *d);
void bv_conv2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
		       const bv_conv_dims *d);
void bv_conv2d_forward_naive(float *out, const float *in, const float *w, const float *b,
			     const bv_conv_dims *d);
/* din (may be NULL) += ..., dw += ..., db (may be NULL) += ... */
void bv_conv2d_backward(float *din, float *dw, float *db, float *col, const float *dout,
			const float *in, const float *w, const bv_conv_dims *d);
void bv_conv2d_backward_naive(float *din, float *dw, float *db, const float *dout,
			      const float *in, const float *w, const bv_conv_dims *d);
/* The Winograd path's arithmetic (nn/winograd.c), which bv_conv2d_* run per
 * thread on samples [lo, hi): u (16, c_out, c_in) = G w G^T; forward writes
 * out, backward adds into din (may be NULL) and du (16, c_out, c_in), with
 * `slice` a scratch of bv_winograd_slice_size(d) floats; dw += G^T du G. */
int bv_winograd_applies(const bv_conv_dims *d);
size_t bv_winograd_slice_size(const bv_conv_dims *d);
void bv_winograd_filter(float *u, const float *w, const bv_conv_dims *d);
void bv_winograd_filter_grad(float *dw, const float *du, const bv_conv_dims *d);
void bv_winograd_forward(float *out, float *slice, const float *in, const float *u,
			 const float *b, const bv_conv_dims *d, int lo, int hi);
void bv_winograd_backward(float *din, float *du, float *slice, const float *dout,
			  const float *in, const float *u, const bv_conv_dims *d, int lo, int hi);

/* BatchNorm2d over (n, h*w) per channel, PyTorch's semantics: train mode
 * normalises with the batch mean and biased variance and updates the running
 * mean and the unbiased running variance with `momentum` (0.1); eval mode uses
 * the running statistics. Cache for backward (train mode): xhat (n, c, hw),
 * invstd (c). */
void bv_bn_forward(float *out, float *xhat, float *invstd, const float *in, const float *gamma,
		   const float *beta, float *run_mean, float *run_var, int n, int c, int hw,
		   int train, float momentum, float eps);
/* din += ..., dgamma += ..., dbeta += ... (train-mode statistics) */
void bv_bn_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *xhat,
		    const float *invstd, const float *gamma, int n, int c, int hw);

/* Max pooling k x k with stride and padding (padding counts as -inf), NCHW;
 * argmax (n, c, oh, ow) caches the input index of each output. */
void bv_maxpool_forward(float *out, int *argmax, const float *in, int n, int c, int h, int w,
			int k, int stride, int pad, int oh, int ow);
void bv_maxpool_backward(float *din, const float *dout, const int *argmax, int n, int c, int oh,
			 int ow);

/* Global average pooling: in (n, c, hw) -> out (n, c). */
void bv_gap_forward(float *out, const float *in, int n, int c, int hw);
void bv_gap_backward(float *din, const float *dout, int n, int c, int hw);

/* Residual add: out = a + b; backward da += dout, db += dout. */
void bv_add_forward(float *out, const float *a, const float *b, size_t size);

/* ---- losses ------------------------------------------------------------ */

typedef enum bv_method {
	BV_METHOD_CE = 0,   /* hard labels only */
	BV_METHOD_KD,       /* gamma*CE + alpha*T^2*H */
	BV_METHOD_WSL,      /* gamma*CE + alpha*T^2*w_i*H, w_i = 1 - exp(-CEs/(CEt+1e-7)) */
	BV_METHOD_KD_FILTER,/* KD with the soft term dropped on samples flagged online as
			       regularization samples (the `grad` criterion of SPEC.md) */
	BV_METHOD_TEACHER,  /* the teacher's own run: trained like CE */
} bv_method;

const char *bv_method_name(bv_method m);
/* Parse "ce|kd|wsl|kd-filter" (and "teacher"); BV_EINVAL with a message naming `what`. */
int bv_method_parse(bv_method *out, const char *s, const char *what);

typedef struct bv_loss_cfg {
	bv_method method;
	float temp;  /* T > 0 */
	float alpha; /* weight of the soft term */
	float gamma; /* weight of the hard term */
} bv_loss_cfg;

/* Per-batch diagnostics of a loss evaluation. */
typedef struct bv_loss_stats {
	double loss;        /* the mean loss L */
	double ce;          /* mean hard CE of the student */
	double soft;        /* mean soft term H (unweighted) */
	double wsl_weight;  /* mean w_i (WSL) */
	int n_correct;      /* argmax(s) == y */
	int n_filtered;     /* samples whose soft term was dropped (kd-filter) */
} bv_loss_stats;

/*
 * Loss of a batch and its gradient with respect to the student logits.
 *   s (n, k) student logits, t (n, k) teacher logits (NULL for CE), y (n) labels.
 *   dlogits (n, k) receives dL/ds (overwritten), may be NULL.
 *   weights (n) receives w_i for WSL (1 for KD, 0/1 for kd-filter), may be NULL.
 * Returns 0, or BV_EDIVERGED if the loss is not finite.
 */
int bv_loss(bv_loss_stats *out, float *dlogits, float *weights, const bv_loss_cfg *cfg,
	    const float *s, const float *t, const int *y, int n, int k);

/* ---- the model --------------------------------------------------------- */

typedef struct bv_shape {
	int c, h, w; /* per sample; an MLP's activations are (c = features, h = w = 1) */
} bv_shape;

static inline size_t bv_shape_size(bv_shape s)
{
	return (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

typedef enum bv_op {
	BV_OP_LINEAR = 1,
	BV_OP_RELU,
	BV_OP_DROPOUT,
	BV_OP_CONV,
	BV_OP_BN,
	BV_OP_MAXPOOL,
	BV_OP_GAP,
	BV_OP_ADD,
} bv_op;

#define BV_MAX_NODE_PARAMS 4

typedef struct bv_node {
	bv_op op;
	int in, in2;          /* activations read (0 = model input); in2 = -1 if unused */
	bv_shape out_shape;   /* per sample */
	int n_params;
	size_t param_off[BV_MAX_NODE_PARAMS];  /* offsets into model->params / grads */
	size_t param_size[BV_MAX_NODE_PARAMS];
	int param_fan_in[BV_MAX_NODE_PARAMS];  /* > 0: He-initialised weight; 0: zeros; -1: ones */
	size_t buf_off;       /* batch norm: running mean at buffers + buf_off, variance after it */
	union {
		struct { int n_in, n_out; } linear;
		struct { float p; } dropout;
		struct { int c_out, k, stride, pad, bias; } conv;
		struct { float momentum, eps; } bn;
		struct { int k, stride, pad; } pool;
	} u;
} bv_node;

typedef struct bv_model {
	char spec[128];       /* the spec string it was built from */
	bv_shape in_shape;    /* per sample */
	int n_classes;
	int n_nodes;
	bv_node *nodes;
	size_t n_params;
	float *params;        /* (n_params) all trainable tensors, contiguous */
	float *grads;         /* (n_params) */
	size_t n_buffers;
	float *buffers;       /* (n_buffers) state that is saved but not trained: BN running stats */
	float *col;           /* convolution workspace, shared by every conv node */
	/* activation buffers, sized for `cap_batch` samples */
	int cap_batch;
	float **acts;         /* n_nodes + 1 buffers: acts[0] holds a copy of the input */
	float **dacts;        /* gradients of the activations */
	float **caches;       /* per node: dropout mask, max-pool argmax; NULL where unused */
	float **caches2;      /* per node: BN invstd, then mean (c each) */
} bv_model;

/*
 * Build a model from a spec:
 *   mlp:H1-H2-...        fully connected, ReLU between layers (mlp: or mlp:0 = linear)
 *   mlp:H1-H2:dropout=P  dropout with rate P after every hidden ReLU
 *   resnet8|14|20|32|44|56|110, resnet8x4, resnet32x4, wrn-16-1|16-2|40-1|40-2,
 *   vgg8|11|13           the CIFAR networks of the CRD benchmark (RepDistiller's
 *                        definitions), any input C x H x W
 *   cnn-small            two conv-BN-ReLU-maxpool stages (32, 64) and a 128-unit
 *                        hidden layer: a fast convolutional student
 * Input shape and class count come from the data. Parameters are zero until
 * bv_model_init. An unknown spec is BV_EINVAL with a message listing the forms.
 */
int bv_model_new(bv_model **out, const char *spec, bv_shape in_shape, int n_classes);
void bv_model_free(bv_model *m);
/* He-normal weights N(0, 2/fan_in), zero biases, BN scale 1 and shift 0, BN
 * running mean 0 and variance 1, from a GSL mt19937 seeded with `seed`. */
void bv_model_init(bv_model *m, unsigned long seed);
/* Make the activation buffers hold at least n samples. */
int bv_model_reserve(bv_model *m, int n);
/* Forward n samples x (n, in_shape); returns the logits (n, n_classes), owned by
 * the model and valid until the next call. `train` enables dropout and batch
 * norm's batch statistics (and updates its running statistics); rng drives
 * dropout and may be NULL when train == 0. NULL on out of memory. */
const float *bv_model_forward(bv_model *m, const float *x, int n, int train, gsl_rng *rng);
/* Backward from dlogits (n, n_classes) after a forward of the same n;
 * overwrites m->grads. */
void bv_model_backward(bv_model *m, const float *dlogits, int n);
/* Eval-mode logits of n samples into out (n, n_classes), in batches of `batch`. */
int bv_model_predict(bv_model *m, float *out, const float *x, int n, int batch);
/* Floating-point operations (2 per multiply-add) of one forward pass of one
 * sample, for GFLOP/s reports. */
double bv_model_flops_per_sample(const bv_model *m);

/* ---- optimisation ------------------------------------------------------ */

typedef struct bv_sgd {
	float lr, momentum, wd;
	int nesterov;
	size_t n;
	float *velocity; /* (n) */
} bv_sgd;

int bv_sgd_init(bv_sgd *opt, size_t n, float lr, float momentum, float wd, int nesterov);
void bv_sgd_release(bv_sgd *opt);
/* PyTorch's SGD: g = grad + wd*w; v = mu*v + g; step = nesterov ? g + mu*v : v; w -= lr*step */
void bv_sgd_step(bv_sgd *opt, float *params, const float *grads);

typedef enum bv_sched_kind { BV_SCHED_CONST = 0, BV_SCHED_STEP, BV_SCHED_COSINE } bv_sched_kind;

#define BV_MAX_MILESTONES 16
typedef struct bv_schedule {
	bv_sched_kind kind;
	int n_milestones;
	int milestones[BV_MAX_MILESTONES]; /* epochs (0-based count of finished epochs) */
	float gamma;
} bv_schedule;

/* "const", "cosine", or "step:E1,E2,...:GAMMA" (e.g. step:150,180,210:0.1). */
int bv_schedule_parse(bv_schedule *out, const char *s, const char *what);
/* The learning rate for 0-based `epoch` of `n_epochs`: step multiplies by gamma
 * once per milestone <= epoch; cosine is base * (1 + cos(pi * epoch / n_epochs)) / 2. */
float bv_schedule_lr(const bv_schedule *s, float base_lr, int epoch, int n_epochs);
/* Canonical text form (round-trips through bv_schedule_parse). */
void bv_schedule_format(char *out, size_t size, const bv_schedule *s);

/* ---- checkpoints ------------------------------------------------------- */

/*
 * File layout (all little-endian):
 *   "BVCKPT\0\0" magic, u32 version (2), u32 spec length, spec bytes,
 *   u32 c, h, w, n_classes, u64 n_params, n_params float32, u64 n_buffers,
 *   n_buffers float32 (batch norm's running statistics; version 2), u32 CRC-32
 *   of everything before it. Version 1 files (no buffers) still load.
 * Written atomically (temp file + rename).
 */
#define BV_CKPT_VERSION 2
int bv_ckpt_save(const bv_model *m, const char *path);
/* Load a checkpoint into a new model; expect_in / expect_classes, when non-NULL /
 * > 0, must match (BV_EMISMATCH otherwise). The file is untrusted: a bad magic,
 * version, length, CRC, spec byte, an input shape over 2^24 values or a class
 * count over 65536, a non-finite parameter or running statistic, or a negative
 * running variance is BV_EFORMAT, the message naming the file (and the tensor). */
int bv_ckpt_load(bv_model **out, const char *path, const bv_shape *expect_in,
		 int expect_classes);

/* Number of BLAS threads (OpenBLAS); n <= 0 leaves it unchanged. */
void bv_nn_set_threads(int n);

#endif
