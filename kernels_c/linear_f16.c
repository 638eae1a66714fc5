/* fp16 fully connected kernels; see tte_f16.h. Sums in linear.c's order: forward over k,
 * input gradient over the m outputs, weight gradient over the batch. The v2f16 paths pair
 * two outputs j (forward) or two inputs p (gradients) that share the other operand. */
#include "tte_f16.h"

void tte_linear_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *w,
                    const tte_f16 *bias, tte_f16 *y, int32_t m, int acc32)
{
#if TTE_RVV
    tte_rvv_linear_f16(x, n, k, w, bias, y, m, acc32);
    return;
#endif
    for (int32_t i = 0; i < n; ++i) {
        const tte_f16 *xr = x + (size_t)i * (size_t)k;
        tte_f16 *yr = y + (size_t)i * (size_t)m;
        int32_t j = 0;
#if TTE_V2F16
        for (; !acc32 && j + 1 < m; j += 2) {
            const tte_f16 *wa = w + (size_t)j * (size_t)k, *wb = wa + k;
            tte_v2f16 acc = {0, 0};
            for (int32_t p = 0; p < k; ++p) acc = acc + (tte_v2f16){wa[p], wb[p]} *
                                                        (tte_v2f16){xr[p], xr[p]};
            if (bias) acc = acc + (tte_v2f16){bias[j], bias[j + 1]};
            yr[j] = acc[0];
            yr[j + 1] = acc[1];
        }
#endif
        for (; j < m; ++j) {
            const tte_f16 *wr = w + (size_t)j * (size_t)k;
            float acc = 0.0f;
            for (int32_t p = 0; p < k; ++p) acc = tte_f16_mac(acc, (float)xr[p], (float)wr[p], acc32);
            if (bias) acc = tte_f16_add(acc, (float)bias[j], acc32);
            yr[j] = (tte_f16)acc;
        }
    }
}

void tte_linear_grad_input_f16(const tte_f16 *gy, int32_t n, int32_t m, const tte_f16 *w,
                               tte_f16 *gx, int32_t k, int acc32)
{
#if TTE_RVV
    tte_rvv_linear_grad_input_f16(gy, n, m, w, gx, k, acc32);
    return;
#endif
    for (int32_t i = 0; i < n; ++i) {
        const tte_f16 *g = gy + (size_t)i * (size_t)m;
        tte_f16 *gr = gx + (size_t)i * (size_t)k;
        int32_t p = 0;
#if TTE_V2F16
        for (; !acc32 && p + 1 < k; p += 2) {
            tte_v2f16 acc = {0, 0};
            for (int32_t j = 0; j < m; ++j) {
                const tte_f16 *wr = w + (size_t)j * (size_t)k + (size_t)p;
                acc = acc + (tte_v2f16){g[j], g[j]} * (tte_v2f16){wr[0], wr[1]};
            }
            gr[p] = acc[0];
            gr[p + 1] = acc[1];
        }
#endif
        for (; p < k; ++p) {
            float acc = 0.0f;
            for (int32_t j = 0; j < m; ++j)
                acc = tte_f16_mac(acc, (float)g[j], (float)w[(size_t)j * (size_t)k + (size_t)p],
                                  acc32);
            gr[p] = (tte_f16)acc;
        }
    }
}

/* gw[j, p], summed over the batch */
static float grad_w(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *gy, int32_t m,
                    int32_t j, int32_t p, int acc32)
{
    float acc = 0.0f;
    for (int32_t i = 0; i < n; ++i)
        acc = tte_f16_mac(acc, (float)gy[(size_t)i * (size_t)m + (size_t)j],
                          (float)x[(size_t)i * (size_t)k + (size_t)p], acc32);
    return acc;
}

#if TTE_V2F16
/* grad_w of gw[j, p] and gw[j, p + 1] in half pairs */
static tte_v2f16 grad_w2(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *gy, int32_t m,
                         int32_t j, int32_t p)
{
    tte_v2f16 acc = {0, 0};
    for (int32_t i = 0; i < n; ++i) {
        const tte_f16 g = gy[(size_t)i * (size_t)m + (size_t)j];
        const tte_f16 *xr = x + (size_t)i * (size_t)k + (size_t)p;
        acc = acc + (tte_v2f16){g, g} * (tte_v2f16){xr[0], xr[1]};
    }
    return acc;
}
#endif

/* Where a weight gradient goes: stored (gw), or one SGD step of w (and momentum) */
typedef struct {
    tte_f16 *gw, *w, *momentum;
    float lr, momentum_coef, weight_decay;
} grad_out;

static void put(const grad_out *o, size_t e, float g)
{
    if (o->gw)
        o->gw[e] = (tte_f16)g;
    else
        tte_sgd_step_f16(o->w + e, g, o->momentum ? o->momentum + e : NULL, o->lr,
                         o->momentum_coef, o->weight_decay);
}

static void weight_grads(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *gy, int32_t m,
                         const grad_out *o, int acc32)
{
    for (int32_t j = 0; j < m; ++j) {
        const size_t row = (size_t)j * (size_t)k;
        int32_t p = 0;
#if TTE_V2F16
        for (; !acc32 && p + 1 < k; p += 2) {
            const tte_v2f16 v = grad_w2(x, n, k, gy, m, j, p);
            put(o, row + (size_t)p, (float)v[0]);
            put(o, row + (size_t)p + 1, (float)v[1]);
        }
#endif
        for (; p < k; ++p) put(o, row + (size_t)p, grad_w(x, n, k, gy, m, j, p, acc32));
    }
}

void tte_linear_grad_weight_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *gy,
                                int32_t m, tte_f16 *gw, int acc32)
{
#if TTE_RVV
    tte_rvv_linear_grad_weight_f16(x, n, k, gy, m, gw, NULL, acc32);
    return;
#endif
    const grad_out o = {gw, NULL, NULL, 0.0f, 0.0f, 0.0f};
    weight_grads(x, n, k, gy, m, &o, acc32);
}

void tte_linear_grad_weight_sgd_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *gy,
                                    int32_t m, tte_f16 *w, tte_f16 *momentum, float lr,
                                    float momentum_coef, float weight_decay, int acc32)
{
#if TTE_RVV
    const tte_f16_sgd u = {w, momentum, lr, momentum_coef, weight_decay};
    tte_rvv_linear_grad_weight_f16(x, n, k, gy, m, NULL, &u, acc32);
    return;
#endif
    const grad_out o = {NULL, w, momentum, lr, momentum_coef, weight_decay};
    weight_grads(x, n, k, gy, m, &o, acc32);
}
