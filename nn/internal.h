/*
 * nn's private helpers, shared by its .c files and not part of nn.h.
 */
#ifndef BV_NN_INTERNAL_H
#define BV_NN_INTERNAL_H

#include "nn.h"
#include <stddef.h>

/* sum of x[0..len) in float lanes the compiler vectorises, combined in double */
double nn_sum_f32(const float *x, size_t len);

/* nn/parallel.c. nn_run_threads: fn(ctx, t) for t in [0, nt), t = 0 on the
 * calling thread, the others on the pool's workers (any number of them).
 * nn_threads: the threads nn uses, the training's --threads as
 * bv_nn_set_threads recorded it (nn_threads_request), else
 * openblas_get_num_threads(): OpenBLAS itself stops at the count it was built
 * for, nn's pool does not. nn_parallel_for: fn(ctx, lo, hi) over pieces of
 * [0, n), each piece at least min_chunk items. */
typedef void (*nn_thread_fn)(void *ctx, int t);
void nn_run_threads(int nt, nn_thread_fn fn, void *ctx);
int nn_threads(void);
void nn_threads_request(int n);
typedef void (*nn_range_fn)(void *ctx, size_t lo, size_t hi);
void nn_parallel_for(size_t n, size_t min_chunk, nn_range_fn fn, void *ctx);

/* nn/conv.c: the threads a convolution of d runs on now, at most nn_threads(),
 * d->n and the slices its workspace holds (bv_conv2d_col_size); for the tests. */
int nn_conv_threads(const bv_conv_dims *d);

/* bv_relu_backward and bv_bn_backward with din overwritten (add = 0) rather
 * than accumulated (add = 1): for a gradient buffer whose only consumer they
 * are, which then need not be zeroed first. */
void nn_relu_backward(float *din, const float *dout, const float *out, size_t size, int add);
/* Batch norm with the ReLU after it fused: forward with relu = 1 writes
 * relu(bn(x)); backward with gate = that output takes dout where gate > 0
 * (the ReLU's backward) before batch norm's. NULL / 0: plain batch norm.
 * Forward's xhat may be NULL (train mode then stores the batch mean in mean,
 * which may be NULL otherwise); backward takes either xhat, or NULL and the
 * input x with that mean, from which it recomputes xhat = (x - mean) invstd
 * with the same operations as forward, so to the bit. */
void nn_bn_forward(float *out, float *xhat, float *invstd, float *mean, const float *in,
		   const float *gamma, const float *beta, float *run_mean, float *run_var, int n,
		   int c, int hw, int train, float momentum, float eps, int relu);
void nn_bn_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *xhat,
		    const float *x, const float *mean, const float *invstd, const float *gamma,
		    const float *gate, int n, int c, int hw, int add);

/* Items per piece for elementwise loops: below this a thread costs more than it saves. */
#define NN_MIN_CHUNK 32768

/* A model's nodes, activation shapes and sizes as zoo.c builds them from a
 * spec; bv_model_new (model.c) copies them into a model. */
#define NN_MAX_NODES 1024
typedef struct nn_plan {
	bv_node nodes[NN_MAX_NODES];
	bv_shape shapes[NN_MAX_NODES + 1]; /* of every activation; 0 = the input */
	int n_nodes;
	size_t n_params, n_buffers;
	int failed;
} nn_plan;

/* The plan of spec on in_shape with n_classes outputs, in *out (the caller
 * frees it); BV_EINVAL naming the spec when it is unknown, too long or does
 * not fit the input. Nothing of the model is allocated. */
int nn_model_plan(nn_plan **out, const char *spec, bv_shape in_shape, int n_classes);

/* A model of that plan (its spec, in_shape and n_classes given again), its
 * parameters zero: bv_model_new is nn_model_plan, then this. */
int nn_model_from_plan(bv_model **out, const nn_plan *b, const char *spec, bv_shape in_shape,
		       int n_classes);

#endif
