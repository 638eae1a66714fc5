/* Fully connected layer and plain 2-D matrix product, with gradients, fp32.
 * All matrices are row-major and contiguous. Outputs are overwritten, not accumulated.
 */
#ifndef TTE_LINEAR_H
#define TTE_LINEAR_H

#include "tte_common.h"

/* y[n, m] = x[n, k] @ w[m, k]^T + bias[m]; bias may be NULL. */
void tte_linear_f32(const float *x, int32_t n, int32_t k, const float *w, const float *bias,
                    float *y, int32_t m);

/* gx[n, k] = gy[n, m] @ w[m, k]. */
void tte_linear_grad_input_f32(const float *gy, int32_t n, int32_t m, const float *w, float *gx,
                               int32_t k);

/* gw[m, k] = gy[n, m]^T @ x[n, k]. */
void tte_linear_grad_weight_f32(const float *x, int32_t n, int32_t k, const float *gy, int32_t m,
                                float *gw);

/* tte_linear_grad_weight_f32 fused with PyTorch SGD on w[m, k] (see
 * tte_conv2d_grad_weight_sgd_f32 in conv.h); momentum may be NULL. */
void tte_linear_grad_weight_sgd_f32(const float *x, int32_t n, int32_t k, const float *gy,
                                    int32_t m, float *w, float *momentum, float lr,
                                    float momentum_coef, float weight_decay);

/* y[m, n] = a[m, k] @ b[k, n]. */
void tte_matmul_f32(const float *a, const float *b, float *y, int32_t m, int32_t k, int32_t n);

#endif
