/* Elementwise fp32 kernels, portable scalar C99. See elementwise.h for the contracts. */
#include "elementwise.h"

#include <math.h>

#include "bcast_walk.inc"

/* ---- same-shape binary ops ------------------------------------------------------------- */

void tte_add_f32(const float *a, const float *b, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void tte_sub_f32(const float *a, const float *b, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = a[i] - b[i];
}

void tte_mul_f32(const float *a, const float *b, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

void tte_div_f32(const float *a, const float *b, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = a[i] / b[i];
}

/* ---- strided broadcasting -------------------------------------------------------------- */

#define TTE_BCAST_ROW(expr)                                               \
    for (i = 0; i < w.last; ++i) {                                        \
        const float u = pa[i * w.step[0]], v = pb[i * w.step[1]];         \
        py[i] = (expr);                                                   \
    }

void tte_binary_bcast_f32(int op, const float *a, const int32_t *a_strides,
                          const float *b, const int32_t *b_strides,
                          float *y, const int32_t *y_shape, int32_t rank)
{
    const int32_t *const strides[2] = {a_strides, b_strides};
    walk w;
    int32_t r, i;
    if (op < TTE_OP_ADD || op > TTE_OP_DIV || !walk_begin(&w, y_shape, rank, strides, 2)) return;
    for (r = 0; r < w.rows; ++r) {
        const float *pa = a + w.off[0], *pb = b + w.off[1];
        float *py = y + r * w.last;
        switch (op) {
        case TTE_OP_ADD: TTE_BCAST_ROW(u + v) break;
        case TTE_OP_SUB: TTE_BCAST_ROW(u - v) break;
        case TTE_OP_MUL: TTE_BCAST_ROW(u * v) break;
        default: TTE_BCAST_ROW(u / v) break;
        }
        walk_next(&w, y_shape, rank, strides, 2);
    }
}

#undef TTE_BCAST_ROW

void tte_sum_to_f32(const float *x, const int32_t *x_shape, float *y, const int32_t *y_strides,
                    int32_t rank)
{
    const int32_t *const strides[1] = {y_strides};
    walk w;
    int32_t d, r, i, size = 1;
    if (rank < 0 || rank > TTE_BCAST_MAX_RANK) return;
    for (d = 0; d < rank; ++d) {
        if (x_shape[d] <= 0 && y_strides[d] != 0) size = 0; /* the small side is empty too */
        else if (x_shape[d] > 0) size += (x_shape[d] - 1) * y_strides[d];
    }
    if (size == 0) return;
    for (i = 0; i < size; ++i) y[i] = 0.0f;
    if (rank == 0) { /* a copy: 0 + -0 would be +0 */
        y[0] = x[0];
        return;
    }
    walk_begin(&w, x_shape, rank, strides, 1);
    for (r = 0; r < w.rows; ++r) {
        const float *px = x + r * w.last;
        if (w.step[0] == 0) {
            float acc = 0.0f;
            for (i = 0; i < w.last; ++i) acc += px[i];
            y[w.off[0]] += acc;
        } else {
            float *py = y + w.off[0];
            for (i = 0; i < w.last; ++i) py[i * w.step[0]] += px[i];
        }
        walk_next(&w, x_shape, rank, strides, 1);
    }
}

/* ---- unary ----------------------------------------------------------------------------- */

void tte_neg_f32(const float *x, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = -x[i];
}

void tte_scale_f32(const float *x, float s, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = s * x[i];
}

/* ---- activations: each reads x[i] before writing y[i], so y == x is allowed -------------- */

void tte_relu_f32(const float *x, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = v < 0.0f ? 0.0f : v; /* NaN propagates, as numpy.maximum */
    }
}

void tte_relu_grad_f32(const float *y, const float *gy, float *gx, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) gx[i] = y[i] > 0.0f ? gy[i] : 0.0f;
}

void tte_clip_f32(const float *x, float *y, int32_t n, float lo, float hi)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v; /* numpy.clip: min(max(x, lo), hi), hi when lo > hi */
    }
}

void tte_clip_grad_f32(const float *x, const float *gy, float *gx, int32_t n, float lo, float hi)
{
    int32_t i;
    for (i = 0; i < n; ++i) gx[i] = (x[i] > lo && x[i] < hi) ? gy[i] : 0.0f;
}

void tte_sigmoid_f32(const float *x, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        if (v >= 0.0f) {
            y[i] = 1.0f / (1.0f + expf(-v));
        } else { /* exp(v) cannot overflow; keeps full relative precision for small outputs */
            const float e = expf(v);
            y[i] = e / (1.0f + e);
        }
    }
}

void tte_sigmoid_grad_f32(const float *y, const float *gy, float *gx, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) gx[i] = gy[i] * y[i] * (1.0f - y[i]);
}

void tte_tanh_f32(const float *x, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = tanhf(x[i]);
}

void tte_tanh_grad_f32(const float *y, const float *gy, float *gx, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) gx[i] = gy[i] * (1.0f - y[i] * y[i]);
}

void tte_hard_sigmoid_f32(const float *x, float *y, int32_t n, float alpha, float beta)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float t = alpha * x[i] + beta;
        y[i] = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    }
}

void tte_hard_sigmoid_grad_f32(const float *x, const float *gy, float *gx, int32_t n,
                               float alpha, float beta)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float t = alpha * x[i] + beta;
        gx[i] = (t > 0.0f && t < 1.0f) ? gy[i] * alpha : 0.0f;
    }
}

void tte_hard_swish_f32(const float *x, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i], t = v + 3.0f;
        const float c = t < 0.0f ? 0.0f : (t > 6.0f ? 6.0f : t);
        y[i] = v * c / 6.0f;
    }
}

void tte_hard_swish_grad_f32(const float *x, const float *gy, float *gx, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        const float d = v < -3.0f ? 0.0f : (v > 3.0f ? 1.0f : (2.0f * v + 3.0f) / 6.0f);
        gx[i] = gy[i] * d;
    }
}

/* ---- batch-norm (inference) ------------------------------------------------------------ */

void tte_batch_norm_f32(const float *x, tte_dims4 xd, const float *scale, const float *bias,
                        const float *mean, const float *var, float eps, float *y)
{
    const int32_t hw = xd.h * xd.w;
    int32_t b, c, i;
    for (c = 0; c < xd.c; ++c) {
        const float inv = scale[c] / sqrtf(var[c] + eps);
        const float shift = bias[c] - mean[c] * inv;
        for (b = 0; b < xd.n; ++b) {
            const float *px = x + (b * xd.c + c) * hw;
            float *py = y + (b * xd.c + c) * hw;
            for (i = 0; i < hw; ++i) py[i] = px[i] * inv + shift;
        }
    }
}

void tte_batch_norm_grad_input_f32(const float *gy, tte_dims4 xd, const float *scale,
                                   const float *var, float eps, float *gx)
{
    const int32_t hw = xd.h * xd.w;
    int32_t b, c, i;
    for (c = 0; c < xd.c; ++c) {
        const float inv = scale[c] / sqrtf(var[c] + eps);
        for (b = 0; b < xd.n; ++b) {
            const float *pg = gy + (b * xd.c + c) * hw;
            float *px = gx + (b * xd.c + c) * hw;
            for (i = 0; i < hw; ++i) px[i] = pg[i] * inv;
        }
    }
}

void tte_batch_norm_grad_scale_f32(const float *x, const float *gy, tte_dims4 xd,
                                   const float *mean, const float *var, float eps,
                                   float *gscale)
{
    const int32_t hw = xd.h * xd.w;
    int32_t b, c, i;
    for (c = 0; c < xd.c; ++c) {
        const float m = mean[c];
        float acc = 0.0f;
        for (b = 0; b < xd.n; ++b) {
            const float *px = x + (b * xd.c + c) * hw;
            const float *pg = gy + (b * xd.c + c) * hw;
            float part = 0.0f;
            for (i = 0; i < hw; ++i) part += (px[i] - m) * pg[i];
            acc += part;
        }
        gscale[c] = acc / sqrtf(var[c] + eps);
    }
}
