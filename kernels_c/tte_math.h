/* Math kernels of the JAX-style ops, fp32: exp, log, sqrt, comparisons, where,
 * maximum / minimum, reduce_max, argmax. (Not "math.h": the build puts kernels_c/ on the
 * include path, where that name would hide the C library's <math.h>.)
 *
 * Strided kernels take broadcasting resolved into strides, as tte_binary_bcast_f32: y is
 * contiguous row-major with shape y_shape[rank]; each operand has an element stride per
 * output axis, 0 on a broadcast axis (and on leading axes it lacks). 0 <= rank <= 6
 * (TTE_BCAST_MAX_RANK; rank 0 is a scalar); any other rank or op leaves y untouched.
 *
 * Aliasing: exp, log and sqrt may run in place (y == x). The strided kernels may write over
 * an operand only when it has the output's shape and contiguous strides.
 */
#ifndef TTE_MATH_H
#define TTE_MATH_H

#include "elementwise.h"

/* The op argument of tte_compare_bcast_f32. */
enum {
    TTE_CMP_GREATER = 0,
    TTE_CMP_GREATER_EQUAL = 1,
    TTE_CMP_LESS = 2,
    TTE_CMP_LESS_EQUAL = 3,
    TTE_CMP_EQUAL = 4,
    TTE_CMP_NOT_EQUAL = 5
};

/* y = exp(x), log(x) computed in double and rounded to float (the same floats as the numpy
 * reference on every libm, see loss.c); y = sqrtf(x) (correctly rounded everywhere). */
void tte_exp_f32(const float *x, float *y, int32_t n);
void tte_log_f32(const float *x, float *y, int32_t n);
void tte_sqrt_f32(const float *x, float *y, int32_t n);

/* y = (a op b) ? 1.0f : 0.0f, IEEE comparisons (with a NaN only not_equal holds). */
void tte_compare_bcast_f32(int op, const float *a, const int32_t *a_strides,
                           const float *b, const int32_t *b_strides,
                           float *y, const int32_t *y_shape, int32_t rank);

/* y = a where a > b (maximum) / a < b (minimum) or a is NaN, else b: NaN propagates and at
 * a tie (+0 and -0 included) y is b, as numpy.maximum / numpy.minimum. */
void tte_maximum_bcast_f32(const float *a, const int32_t *a_strides, const float *b,
                           const int32_t *b_strides, float *y, const int32_t *y_shape,
                           int32_t rank);
void tte_minimum_bcast_f32(const float *a, const int32_t *a_strides, const float *b,
                           const int32_t *b_strides, float *y, const int32_t *y_shape,
                           int32_t rank);

/* y = c != 0 ? a : b (a NaN c selects a); the chosen element is copied unchanged. */
void tte_where_bcast_f32(const float *c, const int32_t *c_strides, const float *a,
                         const int32_t *a_strides, const float *b, const int32_t *b_strides,
                         float *y, const int32_t *y_shape, int32_t rank);

/* Over x as contiguous [outer, axis_len, inner] (as reduce.h), axis_len >= 1, for each
 * (o, i) the first k whose x[o, k, i] is largest, a NaN counting as largest (the first NaN
 * wins), as numpy.argmax: reduce_max writes that element to y[o, i], argmax its k. */
void tte_reduce_max_f32(const float *x, float *y, int32_t outer, int32_t axis_len,
                        int32_t inner);
void tte_argmax_f32(const float *x, int32_t *y, int32_t outer, int32_t axis_len,
                    int32_t inner);

#endif
