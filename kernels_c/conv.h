/* 2-D convolution (NCHW activations, OIHW weights) and its gradients, fp32.
 *
 * Geometry comes in a tte_window: kernel, stride, asymmetric pads, dilation, groups
 * (weights are [O, C/groups, kh, kw]; groups == C == O is depthwise). Input positions
 * outside the input are zero padding. Output sizes are the caller's (yd); kernels never
 * allocate. Outputs are overwritten, not accumulated.
 */
#ifndef TTE_CONV_H
#define TTE_CONV_H

#include "split.h"

/* y = conv(x, w) + bias; bias may be NULL. w may be split (split.h): its trained channels
 * in w, the rest in s.frozen; TTE_SPLIT_NONE: w is whole. */
void tte_conv2d_f32(const float *x, tte_dims4 xd, const float *w, const float *bias,
                    float *y, tte_dims4 yd, tte_window p, tte_split s);

/* gx = d(loss)/dx from gy = d(loss)/dy; w as above. */
void tte_conv2d_grad_input_f32(const float *gy, tte_dims4 yd, const float *w,
                               float *gx, tte_dims4 xd, tte_window p, tte_split s);

/* tte_conv2d_grad_input_f32 of a depthwise convolution whose gy and gx share the shape d,
 * plane by plane through scratch (d.h * d.w floats): gx may be gy. */
void tte_depthwise_grad_input_f32(const float *gy, tte_dims4 d, const float *w, float *gx,
                                  float *scratch, tte_window p, tte_split s);

/* gw = d(loss)/dw, shape [yd.c, xd.c/groups, kernel_h, kernel_w]. For a split weight
 * (s.count > 0; s.frozen unused), x is sliced to the trained channels and gw holds only
 * theirs, in the trained part's layout. */
void tte_conv2d_grad_weight_f32(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                                float *gw, tte_window p, tte_split s);

/* Weight gradient fused with PyTorch SGD, without a gradient buffer: for each weight
 * element g is computed, then g += weight_decay*w; buf = momentum_coef*buf + g;
 * w -= lr*buf. momentum may be NULL (no momentum buffer: w -= lr*g); when given it must
 * be zero-initialised by the caller before the first step. A split weight as for gw above:
 * w and momentum are its trained part, the only one touched. */
void tte_conv2d_grad_weight_sgd_f32(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                                    float *w, float *momentum, tte_window p, tte_split s,
                                    float lr, float momentum_coef, float weight_decay);

/* gb[c] = sum of gy over every axis but 1 (bias gradient of conv, linear, batch-norm).
 * A 2-D [N, M] tensor is passed as d = {N, M, 1, 1}. */
void tte_channel_sum_f32(const float *gy, tte_dims4 d, float *gb);

/* tte_channel_sum_f32 fused with SGD on the bias b (same update as above). */
void tte_channel_sum_sgd_f32(const float *gy, tte_dims4 d, float *b, float *momentum, float lr,
                             float momentum_coef, float weight_decay);

#endif
