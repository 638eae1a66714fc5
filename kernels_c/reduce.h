/* Reductions and softmax over one axis, fp32.
 *
 * Tensors are seen as contiguous [outer, axis_len, inner]: the reduced (or softmax) axis is
 * the middle one, outer is the product of the axes before it and inner of those after it.
 * The code generator merges adjacent reduced axes into one, or chains calls for axes that are
 * not adjacent. Reduced outputs are [outer, inner] (keepdims does not change the data).
 *
 * Aliasing: softmax, log_softmax (y == x) and their gradients (gx == gy) may run in place;
 * reduce/unreduce outputs must not overlap their inputs.
 */
#ifndef TTE_REDUCE_H
#define TTE_REDUCE_H

#include "tte_common.h"

/* Numerically stable: the maximum along the axis is subtracted before exp. */
void tte_softmax_f32(const float *x, float *y, int32_t outer, int32_t axis_len, int32_t inner);
void tte_log_softmax_f32(const float *x, float *y, int32_t outer, int32_t axis_len,
                         int32_t inner);

/* Gradients from the forward output y and the cotangent gy:
 * softmax:     gx = y * (gy - sum(gy * y))
 * log_softmax: gx = gy - exp(y) * sum(gy)          (sums along the axis) */
void tte_softmax_grad_f32(const float *y, const float *gy, float *gx, int32_t outer,
                          int32_t axis_len, int32_t inner);
void tte_log_softmax_grad_f32(const float *y, const float *gy, float *gx, int32_t outer,
                              int32_t axis_len, int32_t inner);

/* y[o, i] = sum (or mean) over k of x[o, k, i]; accumulated in fp32, in order of k. */
void tte_reduce_sum_f32(const float *x, float *y, int32_t outer, int32_t axis_len,
                        int32_t inner);
void tte_reduce_mean_f32(const float *x, float *y, int32_t outer, int32_t axis_len,
                         int32_t inner);

/* Gradient of a reduction: gx[o, k, i] = gy[o, i] * scale (scale = 1 for sum,
 * 1 / (number of reduced elements) for mean). */
void tte_unreduce_f32(const float *gy, float *gx, int32_t outer, int32_t axis_len,
                      int32_t inner, float scale);

#endif
