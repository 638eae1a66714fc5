/* fp16 elementwise, pooling, SGD and cross-entropy kernels; see tte_f16.h. Each computes in
 * float from the stored halves and rounds what it stores, as the fp32 kernels compute. */
#include <math.h>

#include "tte_f16.h"

void tte_add_f16(const tte_f16 *a, const tte_f16 *b, tte_f16 *y, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) y[i] = (tte_f16)((float)a[i] + (float)b[i]);
}

void tte_relu_f16(const tte_f16 *x, tte_f16 *y, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) y[i] = x[i] > 0 ? x[i] : (tte_f16)0.0f;
}

void tte_relu_grad_f16(const tte_f16 *y, const tte_f16 *gy, tte_f16 *gx, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) gx[i] = y[i] > 0 ? gy[i] : (tte_f16)0.0f;
}

void tte_clip_f16(const tte_f16 *x, tte_f16 *y, int32_t n, float lo, float hi)
{
    for (int32_t i = 0; i < n; ++i) {
        const float v = (float)x[i] < lo ? lo : (float)x[i];
        y[i] = (tte_f16)(v > hi ? hi : v); /* min(max(x, lo), hi), as tte_clip_f32 */
    }
}

void tte_clip_grad_f16(const tte_f16 *x, const tte_f16 *gy, tte_f16 *gx, int32_t n, float lo,
                       float hi)
{
    for (int32_t i = 0; i < n; ++i) {
        const float v = (float)x[i];
        gx[i] = v > lo && v < hi ? gy[i] : (tte_f16)0.0f;
    }
}

void tte_copy_f16(const tte_f16 *x, tte_f16 *y, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) y[i] = x[i];
}

/* Taps [lo, hi) of a window along one axis and its averaging count (pool.c's window_taps). */
static void taps(int32_t o, int32_t stride, int32_t pad_lo, int32_t pad_hi, int32_t dil,
                 int32_t k, int32_t size, int count_include_pad, int32_t *lo, int32_t *hi,
                 int32_t *cnt)
{
    const int32_t start = o * stride - pad_lo;
    tte_tap_range(start, dil, size, k, lo, hi);
    *cnt = *hi - *lo;
    if (count_include_pad) {
        int32_t a, b;
        tte_tap_range(start + pad_lo, dil, size + pad_lo + pad_hi, k, &a, &b);
        *cnt = b - a;
    }
}

typedef struct {
    int32_t h0, w0, hlo, hhi, wlo, whi, cnt;
} window_at;

static window_at window(tte_dims4 xd, tte_window p, int32_t oh, int32_t ow, int cip)
{
    window_at t;
    int32_t ch, cw;
    taps(oh, p.stride_h, p.pad_top, p.pad_bottom, p.dilation_h, p.kernel_h, xd.h, cip, &t.hlo,
         &t.hhi, &ch);
    taps(ow, p.stride_w, p.pad_left, p.pad_right, p.dilation_w, p.kernel_w, xd.w, cip, &t.wlo,
         &t.whi, &cw);
    t.h0 = oh * p.stride_h - p.pad_top;
    t.w0 = ow * p.stride_w - p.pad_left;
    t.cnt = ch * cw;
    return t;
}

static size_t at(tte_dims4 xd, tte_window p, window_at t, int32_t ki, int32_t kj)
{
    return (size_t)(t.h0 + ki * p.dilation_h) * (size_t)xd.w + (size_t)(t.w0 + kj * p.dilation_w);
}

void tte_avg_pool2d_f16(const tte_f16 *x, tte_dims4 xd, tte_f16 *y, tte_dims4 yd,
                        tte_window p, int count_include_pad, int acc32)
{
    const size_t plane = (size_t)xd.h * (size_t)xd.w;
    for (int32_t pl = 0; pl < xd.n * xd.c; ++pl) {
        const tte_f16 *xc = x + (size_t)pl * plane;
        for (int32_t oh = 0; oh < yd.h; ++oh)
            for (int32_t ow = 0; ow < yd.w; ++ow) {
                const window_at t = window(xd, p, oh, ow, count_include_pad);
                float acc = 0.0f;
                for (int32_t ki = t.hlo; ki < t.hhi; ++ki)
                    for (int32_t kj = t.wlo; kj < t.whi; ++kj)
                        acc = tte_f16_add(acc, (float)xc[at(xd, p, t, ki, kj)], acc32);
                *y++ = (tte_f16)(t.cnt > 0 ? acc / (float)t.cnt : 0.0f);
            }
    }
}

void tte_avg_pool2d_grad_f16(const tte_f16 *gy, tte_dims4 yd, tte_f16 *gx, tte_dims4 xd,
                             tte_window p, int count_include_pad)
{
    const size_t plane = (size_t)xd.h * (size_t)xd.w;
    for (size_t i = 0; i < (size_t)(xd.n * xd.c) * plane; ++i) gx[i] = 0;
    for (int32_t pl = 0; pl < xd.n * xd.c; ++pl) {
        tte_f16 *gc = gx + (size_t)pl * plane;
        for (int32_t oh = 0; oh < yd.h; ++oh)
            for (int32_t ow = 0; ow < yd.w; ++ow, ++gy) {
                const window_at t = window(xd, p, oh, ow, count_include_pad);
                if (t.cnt <= 0) continue;
                const float share = (float)*gy / (float)t.cnt;
                for (int32_t ki = t.hlo; ki < t.hhi; ++ki)
                    for (int32_t kj = t.wlo; kj < t.whi; ++kj) {
                        tte_f16 *g = gc + at(xd, p, t, ki, kj);
                        *g = (tte_f16)((float)*g + share);
                    }
            }
    }
}

/* Offset of the window's first maximum, -1 for an empty window (pool.c's window_argmax). */
static ptrdiff_t argmax(const tte_f16 *xc, tte_dims4 xd, tte_window p, int32_t oh, int32_t ow)
{
    const window_at t = window(xd, p, oh, ow, 0);
    float best = -INFINITY;
    ptrdiff_t where = -1;
    for (int32_t ki = t.hlo; ki < t.hhi; ++ki)
        for (int32_t kj = t.wlo; kj < t.whi; ++kj) {
            const ptrdiff_t i = (ptrdiff_t)at(xd, p, t, ki, kj);
            const float v = (float)xc[i];
            if (v > best || (v != v && best == best) || where < 0) {
                best = v;
                where = i;
            }
        }
    return where;
}

void tte_max_pool2d_f16(const tte_f16 *x, tte_dims4 xd, tte_f16 *y, tte_dims4 yd,
                        tte_window p)
{
    const size_t plane = (size_t)xd.h * (size_t)xd.w;
    for (int32_t pl = 0; pl < xd.n * xd.c; ++pl) {
        const tte_f16 *xc = x + (size_t)pl * plane;
        for (int32_t oh = 0; oh < yd.h; ++oh)
            for (int32_t ow = 0; ow < yd.w; ++ow) {
                const ptrdiff_t i = argmax(xc, xd, p, oh, ow);
                *y++ = i >= 0 ? xc[i] : (tte_f16)-INFINITY;
            }
    }
}

void tte_max_pool2d_grad_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy, tte_dims4 yd,
                             tte_f16 *gx, tte_window p)
{
    const size_t plane = (size_t)xd.h * (size_t)xd.w;
    for (size_t i = 0; i < (size_t)(xd.n * xd.c) * plane; ++i) gx[i] = 0;
    for (int32_t pl = 0; pl < xd.n * xd.c; ++pl) {
        const tte_f16 *xc = x + (size_t)pl * plane;
        tte_f16 *gc = gx + (size_t)pl * plane;
        for (int32_t oh = 0; oh < yd.h; ++oh)
            for (int32_t ow = 0; ow < yd.w; ++ow, ++gy) {
                const ptrdiff_t i = argmax(xc, xd, p, oh, ow);
                if (i >= 0) gc[i] = (tte_f16)((float)gc[i] + (float)*gy);
            }
    }
}

void tte_global_avg_pool_f16(const tte_f16 *x, tte_dims4 xd, tte_f16 *y, int acc32)
{
    const size_t plane = (size_t)xd.h * (size_t)xd.w;
    for (int32_t pl = 0; pl < xd.n * xd.c; ++pl) {
        float acc = 0.0f;
        for (size_t i = 0; i < plane; ++i)
            acc = tte_f16_add(acc, (float)x[(size_t)pl * plane + i], acc32);
        y[pl] = (tte_f16)(acc / (float)plane);
    }
}

void tte_global_avg_pool_grad_f16(const tte_f16 *gy, tte_f16 *gx, tte_dims4 xd)
{
    const size_t plane = (size_t)xd.h * (size_t)xd.w;
    const float scale = 1.0f / (float)plane;
    for (int32_t pl = 0; pl < xd.n * xd.c; ++pl) {
        const tte_f16 g = (tte_f16)((float)gy[pl] * scale);
        for (size_t i = 0; i < plane; ++i) gx[(size_t)pl * plane + i] = g;
    }
}

void tte_unreduce_f16(const tte_f16 *gy, tte_f16 *gx, int32_t outer, int32_t axis_len,
                      int32_t inner, float scale)
{
    for (int32_t o = 0; o < outer; ++o)
        for (int32_t k = 0; k < axis_len; ++k)
            for (int32_t i = 0; i < inner; ++i)
                gx[((size_t)o * (size_t)axis_len + (size_t)k) * (size_t)inner + (size_t)i] =
                    (tte_f16)((float)gy[(size_t)o * (size_t)inner + (size_t)i] * scale);
}

/* The momentum buffer is stored in half, but this step uses its float value (as the
 * reference, which computes each update in float and rounds what it stores). */
void tte_sgd_step_f16(tte_f16 *w, float g, tte_f16 *buf, float lr, float momentum_coef,
                      float weight_decay)
{
    const float wv = (float)*w;
    if (weight_decay != 0.0f) g += weight_decay * wv;
    if (buf) {
        g = momentum_coef * (float)*buf + g;
        *buf = (tte_f16)g;
    }
    *w = (tte_f16)(wv - lr * g);
}

void tte_sgd_update_f16(tte_f16 *w, const tte_f16 *g, tte_f16 *momentum, int32_t n, float lr,
                        float momentum_coef, float weight_decay)
{
    for (int32_t i = 0; i < n; ++i)
        tte_sgd_step_f16(w + i, (float)g[i], momentum ? momentum + i : NULL, lr, momentum_coef,
                         weight_decay);
}

/* loss.c's xent_row on half logits, exp and log in double rounded to float as there; the
 * gradient recomputes each exp (deterministic) rather than keep it in half. */
static float xent_row(const tte_f16 *x, int32_t classes, int32_t label, tte_f16 *g,
                      float inv_n)
{
    const float xl = (float)x[label];
    float m = (float)x[0], s = 0.0f;
    for (int32_t j = 1; j < classes; ++j)
        if ((float)x[j] > m) m = (float)x[j];
    for (int32_t j = 0; j < classes; ++j) s += (float)exp((double)((float)x[j] - m));
    if (g) {
        const float inv = 1.0f / s;
        for (int32_t j = 0; j < classes; ++j) {
            float v = (float)exp((double)((float)x[j] - m)) * inv * inv_n;
            if (j == label) v -= inv_n;
            g[j] = (tte_f16)v;
        }
    }
    return (m - xl) + (float)log((double)s);
}

static int labels_ok(const int32_t *labels, int32_t n, int32_t classes)
{
    for (int32_t r = 0; r < n; ++r)
        if (labels[r] < 0 || labels[r] >= classes) return 0;
    return 1;
}

int tte_softmax_cross_entropy_f16(const tte_f16 *logits, const int32_t *labels, int32_t n,
                                  int32_t classes, float *loss)
{
    float total = 0.0f;
    if (!labels_ok(labels, n, classes)) return TTE_EBADLABEL;
    for (int32_t r = 0; r < n; ++r)
        total += xent_row(logits + (size_t)r * (size_t)classes, classes, labels[r], NULL, 0.0f);
    *loss = n > 0 ? total / (float)n : 0.0f;
    return TTE_OK;
}

int tte_softmax_cross_entropy_grad_f16(const tte_f16 *logits, const int32_t *labels,
                                       int32_t n, int32_t classes, tte_f16 *g)
{
    const float inv_n = n > 0 ? 1.0f / (float)n : 0.0f;
    if (!labels_ok(labels, n, classes)) return TTE_EBADLABEL;
    for (int32_t r = 0; r < n; ++r)
        (void)xent_row(logits + (size_t)r * (size_t)classes, classes, labels[r],
                       g + (size_t)r * (size_t)classes, inv_n);
    return TTE_OK;
}
