/* Training through int8 layers (tte/ops/quantized.py): fp32 gradients in real units flow
 * back through int8 activations; int8 weights and int32 biases are updated in place.
 *
 * - The clamp of an int8 layer passes gradient where its 1-bit mask (conv_s8.h) is set.
 * - Gradients w.r.t. the stored integers: d/dw_q[o] = s_x * s_w[o] * sum gy * (x_q - x_zero),
 *   d/db_q[o] = s_x * s_w[o] * sum gy; scale[o] = s_x * s_w[o] comes from the build.
 * - Updates: step = lr * (g * factor[c]) (factor = the QAS scale s_w^-2 or (s_x s_w)^-2, or 1);
 *   p = clamp(p - rint(step), lo, hi), or through an fp32 master copy:
 *   master -= step; p = clamp(rint(master), lo, hi). rint rounds half to even.
 * Layout and geometry as conv_s8.h; a fully connected layer's x[n, k], w[m, k] and gradients
 * are row-major. Outputs are overwritten.
 */
#ifndef TTE_TRAIN_S8_H
#define TTE_TRAIN_S8_H

#include "split.h"

/* gx[i] = bit i of mask ? gy[i] : 0 (gx may be gy). */
void tte_mask_grad_f32(const float *gy, const uint8_t *mask, float *gx, int32_t count);

/* Real-unit input gradient: gx = conv_transpose(gy * w_scale[o], w_q); w may be split
 * (split.h; TTE_SPLIT_NONE: whole). */
void tte_conv2d_s8_grad_input(const float *gy, tte_dims4 yd, const int8_t *w,
                              const float *w_scale, float *gx, tte_dims4 xd, tte_window p,
                              tte_split s);

/* tte_conv2d_s8_grad_input of a depthwise convolution whose output gradient gy and input
 * gradient gx share the shape d (same result, same order of sums), plane by plane through
 * scratch (d.h * d.w floats): gx may be gy. */
void tte_depthwise_s8_grad_input(const float *gy, tte_dims4 d, const int8_t *w,
                                 const float *w_scale, float *gx, float *scratch, tte_window p,
                                 tte_split s);

/* gw[o, c, ky, kx] = scale[o] * sum over n, oy, ox of gy * (x - x_zero). For a split weight
 * (s.count > 0; s.frozen unused) x is sliced to the trained channels and gw holds only
 * theirs, in the trained part's layout. */
void tte_conv2d_s8_grad_weight(const int8_t *x, tte_dims4 xd, int32_t x_zero, const float *gy,
                               tte_dims4 yd, float *gw, tte_window p, const float *scale,
                               tte_split s);

/* out[c] = scale[c] * sum over n, h, w of gy[n, c, h, w]. */
void tte_channel_sum_scaled_f32(const float *gy, tte_dims4 d, const float *scale, float *out);

/* In-place update of an int8 tensor of `channels` rows of `per_channel` elements;
 * master may be NULL. (A split weight's trained part is such a tensor.) */
void tte_sgd_update_s8(int8_t *w, const float *g, float *master, int32_t channels,
                       int32_t per_channel, float lr, const float *factor, int32_t lo,
                       int32_t hi);

/* The weight gradient applied by tte_sgd_update_s8 element by element as it is computed,
 * so no gradient buffer exists. For a split weight, x, w and master as gw above: only the
 * trained part is computed and written. */
void tte_conv2d_s8_grad_weight_sgd(const int8_t *x, tte_dims4 xd, int32_t x_zero,
                                   const float *gy, tte_dims4 yd, int8_t *w, float *master,
                                   tte_window p, const float *scale, tte_split s, float lr,
                                   const float *factor, int32_t lo, int32_t hi);

/* Real-unit input gradient of tte_linear_s8 (conv_s8.h): gx[n, k] = sum over j of
 * (gy[n, j] * w_scale[j]) * (w[j, k] - w_zero), j = 0..m-1 in order. */
void tte_linear_s8_grad_input(const float *gy, int32_t n, int32_t m, const int8_t *w,
                              int32_t w_zero, const float *w_scale, float *gx, int32_t k);

/* gw[j, k] = scale[j] * sum over n in order of gy[n, j] * (x[n, k] - x_zero). */
void tte_linear_s8_grad_weight(const int8_t *x, int32_t n, int32_t k, int32_t x_zero,
                               const float *gy, int32_t m, float *gw, const float *scale);

/* tte_linear_s8_grad_weight applied by tte_sgd_update_s8 (rows j of k elements) element by
 * element as it is computed: no gradient buffer. */
void tte_linear_s8_grad_weight_sgd(const int8_t *x, int32_t n, int32_t k, int32_t x_zero,
                                   const float *gy, int32_t m, int8_t *w, float *master,
                                   const float *scale, float lr, const float *factor,
                                   int32_t lo, int32_t hi);

/* In-place update of an int32 vector (one element per channel). */
void tte_sgd_update_s32(int32_t *b, const float *g, int32_t count, float lr,
                        const float *factor, int32_t lo, int32_t hi);

#endif
