/* Optimizer updates, fp32, in place. */
#ifndef TTE_OPTIM_H
#define TTE_OPTIM_H

#include "tte_common.h"

/* One element of PyTorch SGD: g += wd*w (only if wd != 0); buf = m*buf + g (if buf);
 * returns w - lr*g. Shared by the array update and the fused gradient+update kernels. */
float tte_sgd_step_f32(float w, float g, float *buf, float lr, float momentum_coef,
                       float weight_decay);

/* PyTorch SGD (dampening 0, no Nesterov), for i < n:
 *   g' = g + weight_decay * w
 *   with momentum buffer:    buf = momentum_coef * buf + g';  w -= lr * buf
 *   without (momentum NULL): w -= lr * g'
 * The caller zero-initialises buf once before the first step; then momentum_coef * 0 + g'
 * equals PyTorch's buf = g' on its first step. */
void tte_sgd_update_f32(float *w, const float *g, float *momentum, int32_t n, float lr,
                        float momentum_coef, float weight_decay);

#endif
