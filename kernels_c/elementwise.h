/* Elementwise fp32 kernels: binary ops (same-shape and strided broadcasting), sum_to,
 * activations and their gradients, inference batch-norm.
 *
 * Aliasing: every kernel here that maps element i of its inputs to element i of its output
 * (all same-shape binary ops, neg, scale, the activations, their gradients and batch-norm)
 * may be called in place, with the output pointer equal to an input pointer. Outputs must
 * not otherwise overlap inputs. tte_binary_bcast_f32 may run in place only when the aliased
 * input has the output's shape and contiguous strides; tte_sum_to_f32 never in place.
 */
#ifndef TTE_ELEMENTWISE_H
#define TTE_ELEMENTWISE_H

#include "tte_common.h"

/* Largest rank handled by the strided kernels (the code generator merges adjacent axes). */
#define TTE_BCAST_MAX_RANK 6

/* The op argument of tte_binary_bcast_f32. */
enum { TTE_OP_ADD = 0, TTE_OP_SUB = 1, TTE_OP_MUL = 2, TTE_OP_DIV = 3 };

/* y[i] = a[i] op b[i], i < n. */
void tte_add_f32(const float *a, const float *b, float *y, int32_t n);
void tte_sub_f32(const float *a, const float *b, float *y, int32_t n);
void tte_mul_f32(const float *a, const float *b, float *y, int32_t n);
void tte_div_f32(const float *a, const float *b, float *y, int32_t n);

/* y = a op b with broadcasting resolved into strides. y is contiguous row-major with shape
 * y_shape[rank]; a_strides / b_strides are element strides into a and b for each output axis,
 * 0 on a broadcast axis (and on leading axes the operand lacks). 0 <= rank <= 6 (rank 0 is a
 * scalar); any other rank or op leaves y untouched. */
void tte_binary_bcast_f32(int op, const float *a, const int32_t *a_strides,
                          const float *b, const int32_t *b_strides,
                          float *y, const int32_t *y_shape, int32_t rank);

/* Sum a broadcast result back to an operand's shape (gradient of broadcasting).
 * x is contiguous row-major with shape x_shape[rank]; y_strides are element strides into the
 * small output for each axis of x, 0 on broadcast axes. y is zeroed first (its size is
 * 1 + sum over axes of (x_shape[i] - 1) * y_strides[i], i.e. the small tensor's size for
 * row-major strides), then accumulated. 0 <= rank <= 6. */
void tte_sum_to_f32(const float *x, const int32_t *x_shape, float *y, const int32_t *y_strides,
                    int32_t rank);

/* y = -x;  y = s * x. */
void tte_neg_f32(const float *x, float *y, int32_t n);
void tte_scale_f32(const float *x, float s, float *y, int32_t n);

/* Activations: forward may run in place (y == x). Gradients take the saved tensor named
 * in the comment (forward output y or forward input x) and the cotangent gy; gx == gy is
 * allowed. */
void tte_relu_f32(const float *x, float *y, int32_t n);                 /* max(x, 0) */
void tte_relu_grad_f32(const float *y, const float *gy, float *gx, int32_t n); /* gy where y > 0 */
void tte_clip_f32(const float *x, float *y, int32_t n, float lo, float hi);
void tte_clip_grad_f32(const float *x, const float *gy, float *gx, int32_t n, float lo,
                       float hi);                                       /* gy where lo < x < hi */
void tte_sigmoid_f32(const float *x, float *y, int32_t n);
void tte_sigmoid_grad_f32(const float *y, const float *gy, float *gx, int32_t n); /* gy*y*(1-y) */
void tte_tanh_f32(const float *x, float *y, int32_t n);
void tte_tanh_grad_f32(const float *y, const float *gy, float *gx, int32_t n);    /* gy*(1-y^2) */
void tte_hard_sigmoid_f32(const float *x, float *y, int32_t n, float alpha, float beta);
void tte_hard_sigmoid_grad_f32(const float *x, const float *gy, float *gx, int32_t n,
                               float alpha, float beta); /* gy*alpha where 0 < alpha*x+beta < 1 */
void tte_hard_swish_f32(const float *x, float *y, int32_t n);           /* x*clip(x+3,0,6)/6 */
void tte_hard_swish_grad_f32(const float *x, const float *gy, float *gx, int32_t n);

/* Inference batch-norm over x[n, c, h, w] (xd; h = w = 1 for 2-D input), per-channel
 * scale, bias, mean, var[c]: y = x * inv + (bias - mean * inv), inv = scale / sqrt(var + eps).
 * y == x allowed. */
void tte_batch_norm_f32(const float *x, tte_dims4 xd, const float *scale, const float *bias,
                        const float *mean, const float *var, float eps, float *y);
/* gx = gy * scale / sqrt(var + eps) per channel; gx == gy allowed. */
void tte_batch_norm_grad_input_f32(const float *gy, tte_dims4 xd, const float *scale,
                                   const float *var, float eps, float *gx);
/* gscale[c] = sum over n, h, w of gy * (x - mean[c]) / sqrt(var[c] + eps). */
void tte_batch_norm_grad_scale_f32(const float *x, const float *gy, tte_dims4 xd,
                                   const float *mean, const float *var, float eps,
                                   float *gscale);

#endif
