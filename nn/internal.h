/*
 * nn's private helpers, shared by its .c files and not part of nn.h.
 */
#ifndef BV_NN_INTERNAL_H
#define BV_NN_INTERNAL_H

#include <stddef.h>

/* sum of x[0..len) in float lanes the compiler vectorises, combined in double */
double nn_sum_f32(const float *x, size_t len);

#endif
