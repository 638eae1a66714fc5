/* Optimizer updates, portable scalar C99. See optim.h for the contract. */
#include <stddef.h>

#include "optim.h"

float tte_sgd_step_f32(float w, float g, float *buf, float lr, float momentum_coef,
                       float weight_decay)
{
    /* weight_decay == 0 adds nothing (not even 0 * w, which would turn an inf w into NaN) */
    if (weight_decay != 0.0f) g += weight_decay * w;
    if (buf) {
        *buf = momentum_coef * *buf + g;
        g = *buf;
    }
    return w - lr * g;
}

void tte_sgd_update_f32(float *w, const float *g, float *momentum, int32_t n, float lr,
                        float momentum_coef, float weight_decay)
{
    for (int32_t i = 0; i < n; ++i)
        w[i] = tte_sgd_step_f32(w[i], g[i], momentum ? momentum + i : NULL, lr, momentum_coef,
                                weight_decay);
}
