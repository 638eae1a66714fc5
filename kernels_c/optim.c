/* Optimizer updates, portable scalar C99. See optim.h for the contract. */
#include "optim.h"

void tte_sgd_update_f32(float *w, const float *g, float *momentum, int32_t n, float lr,
                        float momentum_coef, float weight_decay)
{
    int32_t i;
    /* weight_decay == 0 adds nothing (not even 0 * w, which would turn an inf w into NaN) */
    if (momentum) {
        for (i = 0; i < n; ++i) {
            const float step = weight_decay != 0.0f ? g[i] + weight_decay * w[i] : g[i];
            const float buf = momentum_coef * momentum[i] + step;
            momentum[i] = buf;
            w[i] = w[i] - lr * buf;
        }
    } else {
        for (i = 0; i < n; ++i) {
            const float step = weight_decay != 0.0f ? g[i] + weight_decay * w[i] : g[i];
            w[i] = w[i] - lr * step;
        }
    }
}
