/* Portable scalar fp32 fully connected / matmul kernels; see linear.h.
 *
 * Every output element is a float sum in index order of the contracted axis (numpy uses
 * BLAS, whose blocking and FMA change the rounding), so results agree to float rounding.
 * grad_weight and its fused SGD variant sum over the batch in the same order and so give
 * bit-identical gradients. With TTE_RVV_F32 (rv32v) the linear kernels take their RVV path
 * (f32_rvv.c; not matmul), which keeps these orders and roundings: bit for bit the same.
 */
#include "f32_rvv.h"
#include "linear.h"
#include "optim.h"

void tte_linear_f32(const float *x, int32_t n, int32_t k, const float *w, const float *bias,
                    float *y, int32_t m)
{
#if TTE_RVV_F32
    tte_rvv_linear_f32(x, n, k, w, bias, y, m);
    return;
#endif
    for (int32_t i = 0; i < n; ++i) {
        const float *xr = x + (size_t)i * (size_t)k;
        for (int32_t j = 0; j < m; ++j) {
            const float *wr = w + (size_t)j * (size_t)k;
            float acc = 0.0f;
            for (int32_t p = 0; p < k; ++p) acc += xr[p] * wr[p];
            *y++ = bias ? acc + bias[j] : acc;
        }
    }
}

void tte_linear_grad_input_f32(const float *gy, int32_t n, int32_t m, const float *w, float *gx,
                               int32_t k)
{
#if TTE_RVV_F32
    tte_rvv_linear_grad_input_f32(gy, n, m, w, gx, k);
    return;
#endif
    for (int32_t i = 0; i < n; ++i) {
        float *gr = gx + (size_t)i * (size_t)k;
        for (int32_t p = 0; p < k; ++p) gr[p] = 0.0f;
        for (int32_t j = 0; j < m; ++j) {
            const float g = gy[(size_t)i * (size_t)m + (size_t)j];
            const float *wr = w + (size_t)j * (size_t)k;
            for (int32_t p = 0; p < k; ++p) gr[p] += g * wr[p];
        }
    }
}

void tte_linear_grad_weight_f32(const float *x, int32_t n, int32_t k, const float *gy, int32_t m,
                                float *gw)
{
#if TTE_RVV_F32
    tte_rvv_linear_grad_weight_f32(x, n, k, gy, m, gw, NULL);
    return;
#endif
    for (int32_t j = 0; j < m; ++j) {
        float *gr = gw + (size_t)j * (size_t)k;
        for (int32_t p = 0; p < k; ++p) gr[p] = 0.0f;
        for (int32_t i = 0; i < n; ++i) {
            const float g = gy[(size_t)i * (size_t)m + (size_t)j];
            const float *xr = x + (size_t)i * (size_t)k;
            for (int32_t p = 0; p < k; ++p) gr[p] += g * xr[p];
        }
    }
}

void tte_linear_grad_weight_sgd_f32(const float *x, int32_t n, int32_t k, const float *gy,
                                    int32_t m, float *w, float *momentum, float lr,
                                    float momentum_coef, float weight_decay)
{
#if TTE_RVV_F32
    const tte_f32_sgd u = {w, momentum, lr, momentum_coef, weight_decay};
    tte_rvv_linear_grad_weight_f32(x, n, k, gy, m, NULL, &u);
    return;
#endif
    for (int32_t j = 0; j < m; ++j)
        for (int32_t p = 0; p < k; ++p) {
            const size_t e = (size_t)j * (size_t)k + (size_t)p;
            float acc = 0.0f;
            for (int32_t i = 0; i < n; ++i)
                acc += gy[(size_t)i * (size_t)m + (size_t)j] * x[(size_t)i * (size_t)k + (size_t)p];
            w[e] = tte_sgd_step_f32(w[e], acc, momentum ? momentum + e : NULL, lr,
                                    momentum_coef, weight_decay);
        }
}

void tte_matmul_f32(const float *a, const float *b, float *y, int32_t m, int32_t k, int32_t n)
{
    for (int32_t i = 0; i < m; ++i) {
        float *yr = y + (size_t)i * (size_t)n;
        const float *ar = a + (size_t)i * (size_t)k;
        for (int32_t j = 0; j < n; ++j) yr[j] = 0.0f;
        for (int32_t p = 0; p < k; ++p) {
            const float av = ar[p];
            const float *br = b + (size_t)p * (size_t)n;
            for (int32_t j = 0; j < n; ++j) yr[j] += av * br[j];
        }
    }
}
