/* fp16 convolution kernels; see tte_f16.h. Each output is one sum in the order of the fp32
 * kernel (conv.c): forward over (c, ki, kj) then the bias, input gradient over (o, ki, kj),
 * weight gradient over (n, oh, ow), channel sums over (n, h, w). The v2f16 paths pair two
 * output channels (forward, weight gradient, channel sum) or two input channels (input
 * gradient) that read the same activation. */
#include "tte_f16.h"

static int32_t groups_of(tte_window p)
{
    return p.groups > 0 ? p.groups : 1;
}

static const tte_f16 *block(const tte_f16 *w, const tte_split *s, int32_t o, int32_t c,
                            int32_t cg, tte_window p)
{
    return tte_split_block(w, s, sizeof(tte_f16), o, c, cg, p.kernel_h * p.kernel_w);
}

/* Input row/column read by output position o at tap k, or -1 in the padding. */
static int32_t tap(int32_t o, int32_t k, int32_t stride, int32_t dil, int32_t pad, int32_t size)
{
    const int32_t i = o * stride + k * dil - pad;
    return i >= 0 && i < size ? i : -1;
}

/* Output position that reads input position i at tap k, or -1. */
static int32_t untap(int32_t i, int32_t k, int32_t stride, int32_t dil, int32_t pad,
                     int32_t size)
{
    const int32_t t = i + pad - k * dil;
    if (t < 0 || t % stride) return -1;
    return t / stride < size ? t / stride : -1;
}

static float conv_out(const tte_f16 *xn, tte_dims4 xd, const tte_f16 *const *wk, int32_t c0,
                      int32_t cg, tte_window p, int32_t oh, int32_t ow, int acc32)
{
    const size_t plane = (size_t)xd.h * (size_t)xd.w;
    float acc = 0.0f;
    for (int32_t c = 0; c < cg; ++c)
        for (int32_t ki = 0; ki < p.kernel_h; ++ki) {
            const int32_t ih = tap(oh, ki, p.stride_h, p.dilation_h, p.pad_top, xd.h);
            if (ih < 0) continue;
            for (int32_t kj = 0; kj < p.kernel_w; ++kj) {
                const int32_t iw = tap(ow, kj, p.stride_w, p.dilation_w, p.pad_left, xd.w);
                if (iw < 0) continue;
                acc = tte_f16_mac(acc, (float)wk[c][ki * p.kernel_w + kj],
                                  (float)xn[(size_t)(c0 + c) * plane + (size_t)ih * (size_t)xd.w
                                            + (size_t)iw], acc32);
            }
        }
    return acc;
}

#if TTE_V2F16
/* conv_out of output channels o and o + 1 (weights wa, wb) in half pairs */
static tte_v2f16 conv_out2(const tte_f16 *xn, tte_dims4 xd, const tte_f16 *const *wa,
                           const tte_f16 *const *wb, int32_t c0, int32_t cg, tte_window p,
                           int32_t oh, int32_t ow)
{
    const size_t plane = (size_t)xd.h * (size_t)xd.w;
    tte_v2f16 acc = {0, 0};
    for (int32_t c = 0; c < cg; ++c)
        for (int32_t ki = 0; ki < p.kernel_h; ++ki) {
            const int32_t ih = tap(oh, ki, p.stride_h, p.dilation_h, p.pad_top, xd.h);
            if (ih < 0) continue;
            for (int32_t kj = 0; kj < p.kernel_w; ++kj) {
                const int32_t iw = tap(ow, kj, p.stride_w, p.dilation_w, p.pad_left, xd.w);
                const int32_t t = ki * p.kernel_w + kj;
                if (iw < 0) continue;
                const tte_f16 xv = xn[(size_t)(c0 + c) * plane + (size_t)ih * (size_t)xd.w
                                      + (size_t)iw];
                const tte_v2f16 wv = {wa[c][t], wb[c][t]}, xx = {xv, xv};
                acc = acc + wv * xx;
            }
        }
    return acc;
}
#endif

/* The taps of every (o, c) block, gathered once per output channel (cg <= 1024). */
#define TTE_F16_MAX_CG 1024

void tte_conv2d_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *w, const tte_f16 *bias,
                    tte_f16 *y, tte_dims4 yd, tte_window p, tte_split s, int acc32)
{
#if TTE_RVV
    if (tte_rvv_conv2d_f16(x, xd, w, bias, y, yd, p, s, acc32)) return;
#endif
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w;
    const tte_f16 *wa[TTE_F16_MAX_CG], *wb[TTE_F16_MAX_CG];
    for (int32_t n = 0; n < yd.n; ++n) {
        const tte_f16 *xn = x + (size_t)n * (size_t)xd.c * xplane;
        for (int32_t o = 0; o < yd.c; ++o) {
            const int32_t c0 = (o / og) * cg;
            tte_f16 *yo = y + ((size_t)n * (size_t)yd.c + (size_t)o) * (size_t)yd.h * (size_t)yd.w;
            for (int32_t c = 0; c < cg; ++c) wa[c] = block(w, &s, o, c, cg, p);
#if TTE_V2F16
            if (!acc32 && (o + 1) % og != 0 && o + 1 < yd.c) { /* o + 1 in the same group */
                tte_f16 *yb = yo + (size_t)yd.h * (size_t)yd.w;
                for (int32_t c = 0; c < cg; ++c) wb[c] = block(w, &s, o + 1, c, cg, p);
                for (int32_t oh = 0; oh < yd.h; ++oh)
                    for (int32_t ow = 0; ow < yd.w; ++ow) {
                        tte_v2f16 v = conv_out2(xn, xd, wa, wb, c0, cg, p, oh, ow);
                        if (bias) v = v + (tte_v2f16){bias[o], bias[o + 1]};
                        yo[oh * yd.w + ow] = v[0];
                        yb[oh * yd.w + ow] = v[1];
                    }
                ++o;
                continue;
            }
#else
            (void)wb;
#endif
            for (int32_t oh = 0; oh < yd.h; ++oh)
                for (int32_t ow = 0; ow < yd.w; ++ow) {
                    float acc = conv_out(xn, xd, wa, c0, cg, p, oh, ow, acc32);
                    if (bias) acc = tte_f16_add(acc, (float)bias[o], acc32);
                    yo[oh * yd.w + ow] = (tte_f16)acc;
                }
        }
    }
}

/* Input gradient at (input channel ci, ih, iw) of batch n: over the group's outputs o,
 * then taps (ki, kj), as conv.c's scatter adds them. */
static float grad_in(const tte_f16 *gyn, tte_dims4 yd, const tte_f16 *w, const tte_split *s,
                     int32_t ci, int32_t cg, int32_t og, tte_window p, int32_t ih, int32_t iw,
                     int acc32)
{
    const int32_t o0 = (ci / cg) * og;
    float acc = 0.0f;
    for (int32_t o = o0; o < o0 + og; ++o) {
        const tte_f16 *wk = block(w, s, o, ci % cg, cg, p);
        const tte_f16 *go = gyn + (size_t)o * (size_t)yd.h * (size_t)yd.w;
        for (int32_t ki = 0; ki < p.kernel_h; ++ki) {
            const int32_t oh = untap(ih, ki, p.stride_h, p.dilation_h, p.pad_top, yd.h);
            if (oh < 0) continue;
            for (int32_t kj = 0; kj < p.kernel_w; ++kj) {
                const int32_t ow = untap(iw, kj, p.stride_w, p.dilation_w, p.pad_left, yd.w);
                if (ow < 0) continue;
                acc = tte_f16_mac(acc, (float)wk[ki * p.kernel_w + kj],
                                  (float)go[(size_t)oh * (size_t)yd.w + (size_t)ow], acc32);
            }
        }
    }
    return acc;
}

#if TTE_V2F16
/* grad_in of input channels ci and ci + 1 (same group) in half pairs */
static tte_v2f16 grad_in2(const tte_f16 *gyn, tte_dims4 yd, const tte_f16 *w,
                          const tte_split *s, int32_t ci, int32_t cg, int32_t og, tte_window p,
                          int32_t ih, int32_t iw)
{
    const int32_t o0 = (ci / cg) * og;
    tte_v2f16 acc = {0, 0};
    for (int32_t o = o0; o < o0 + og; ++o) {
        const tte_f16 *wa = block(w, s, o, ci % cg, cg, p), *wb = block(w, s, o, ci % cg + 1, cg, p);
        const tte_f16 *go = gyn + (size_t)o * (size_t)yd.h * (size_t)yd.w;
        for (int32_t ki = 0; ki < p.kernel_h; ++ki) {
            const int32_t oh = untap(ih, ki, p.stride_h, p.dilation_h, p.pad_top, yd.h);
            if (oh < 0) continue;
            for (int32_t kj = 0; kj < p.kernel_w; ++kj) {
                const int32_t ow = untap(iw, kj, p.stride_w, p.dilation_w, p.pad_left, yd.w);
                const int32_t t = ki * p.kernel_w + kj;
                if (ow < 0) continue;
                const tte_f16 g = go[(size_t)oh * (size_t)yd.w + (size_t)ow];
                const tte_v2f16 wv = {wa[t], wb[t]}, gg = {g, g};
                acc = acc + wv * gg;
            }
        }
    }
    return acc;
}
#endif

void tte_conv2d_grad_input_f16(const tte_f16 *gy, tte_dims4 yd, const tte_f16 *w,
                               tte_f16 *gx, tte_dims4 xd, tte_window p, tte_split s, int acc32)
{
#if TTE_RVV
    if (tte_rvv_conv2d_grad_input_f16(gy, yd, w, gx, xd, p, s, acc32)) return;
#endif
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w;
    for (int32_t n = 0; n < xd.n; ++n) {
        const tte_f16 *gyn = gy + (size_t)n * (size_t)yd.c * (size_t)yd.h * (size_t)yd.w;
        for (int32_t c = 0; c < xd.c; ++c) {
            tte_f16 *gc = gx + ((size_t)n * (size_t)xd.c + (size_t)c) * xplane;
#if TTE_V2F16
            if (!acc32 && (c + 1) % cg != 0 && c + 1 < xd.c) {
                for (int32_t ih = 0; ih < xd.h; ++ih)
                    for (int32_t iw = 0; iw < xd.w; ++iw) {
                        const tte_v2f16 v = grad_in2(gyn, yd, w, &s, c, cg, og, p, ih, iw);
                        gc[ih * xd.w + iw] = v[0];
                        gc[xplane + (size_t)(ih * xd.w + iw)] = v[1];
                    }
                ++c;
                continue;
            }
#endif
            for (int32_t ih = 0; ih < xd.h; ++ih)
                for (int32_t iw = 0; iw < xd.w; ++iw)
                    gc[ih * xd.w + iw] =
                        (tte_f16)grad_in(gyn, yd, w, &s, c, cg, og, p, ih, iw, acc32);
        }
    }
}

void tte_depthwise_grad_input_f16(const tte_f16 *gy, tte_dims4 d, const tte_f16 *w,
                                  tte_f16 *gx, tte_f16 *scratch, tte_window p, tte_split s,
                                  int acc32)
{
#if TTE_RVV
    if (tte_rvv_depthwise_grad_input_f16(gy, d, w, gx, scratch, p, s, acc32)) return;
#endif
    const size_t plane = (size_t)d.h * (size_t)d.w;
    for (int32_t n = 0; n < d.n; ++n) {
        const tte_f16 *gyn = gy + (size_t)n * (size_t)d.c * plane;
        for (int32_t c = 0; c < d.c; ++c) {
            /* the plane goes to scratch first: gyn's plane c may be gx's */
            for (int32_t ih = 0; ih < d.h; ++ih)
                for (int32_t iw = 0; iw < d.w; ++iw)
                    scratch[ih * d.w + iw] =
                        (tte_f16)grad_in(gyn, d, w, &s, c, 1, 1, p, ih, iw, acc32);
            tte_f16 *gc = gx + ((size_t)n * (size_t)d.c + (size_t)c) * plane;
            for (size_t i = 0; i < plane; ++i) gc[i] = scratch[i];
        }
    }
}

/* Weight gradient of (o, x channel xc, ki, kj): over (n, oh, ow). */
static float grad_w(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy, tte_dims4 yd,
                    tte_window p, int32_t o, int32_t xc, int32_t ki, int32_t kj, int acc32)
{
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    float acc = 0.0f;
    for (int32_t n = 0; n < yd.n; ++n) {
        const tte_f16 *xp = x + ((size_t)n * (size_t)xd.c + (size_t)xc) * xplane;
        const tte_f16 *go = gy + ((size_t)n * (size_t)yd.c + (size_t)o) * yplane;
        for (int32_t oh = 0; oh < yd.h; ++oh) {
            const int32_t ih = tap(oh, ki, p.stride_h, p.dilation_h, p.pad_top, xd.h);
            if (ih < 0) continue;
            for (int32_t ow = 0; ow < yd.w; ++ow) {
                const int32_t iw = tap(ow, kj, p.stride_w, p.dilation_w, p.pad_left, xd.w);
                if (iw < 0) continue;
                acc = tte_f16_mac(acc, (float)xp[(size_t)ih * (size_t)xd.w + (size_t)iw],
                                  (float)go[(size_t)oh * (size_t)yd.w + (size_t)ow], acc32);
            }
        }
    }
    return acc;
}

/* Every trained weight element's gradient, handed to `put` with its index. */
typedef void (*put_fn)(void *ctx, size_t i, float g);

static void weight_grads(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy, tte_dims4 yd,
                         tte_window p, tte_split s, int acc32, put_fn put, void *ctx)
{
    const int32_t cg = tte_split_grad_cg(&s, xd, p), og = yd.c / groups_of(p);
    const int32_t khw = p.kernel_h * p.kernel_w;
    for (int32_t o = 0; o < yd.c; ++o)
        for (int32_t c = 0; c < cg; ++c) {
            size_t i;
            int32_t xc;
            if (!tte_split_grad_block(&s, o, c, cg, og, &i, &xc)) continue;
            i *= (size_t)khw;
            for (int32_t t = 0; t < khw; ++t)
                put(ctx, i + (size_t)t,
                    grad_w(x, xd, gy, yd, p, o, xc, t / p.kernel_w, t % p.kernel_w, acc32));
        }
}

typedef struct {
    tte_f16 *w, *momentum;
    float lr, momentum_coef, weight_decay;
} sgd_ctx;

static void put_grad(void *ctx, size_t i, float g)
{
    ((tte_f16 *)ctx)[i] = (tte_f16)g;
}

static void put_sgd(void *ctx, size_t i, float g)
{
    const sgd_ctx *c = ctx;
    tte_sgd_step_f16(c->w + i, g, c->momentum ? c->momentum + i : NULL, c->lr,
                     c->momentum_coef, c->weight_decay);
}

void tte_conv2d_grad_weight_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy,
                                tte_dims4 yd, tte_f16 *gw, tte_window p, tte_split s,
                                int acc32)
{
#if TTE_RVV
    if (tte_rvv_conv2d_grad_weight_f16(x, xd, gy, yd, gw, NULL, p, s, acc32)) return;
#endif
    weight_grads(x, xd, gy, yd, p, s, acc32, put_grad, gw);
}

void tte_conv2d_grad_weight_sgd_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy,
                                    tte_dims4 yd, tte_f16 *w, tte_f16 *momentum, tte_window p,
                                    tte_split s, float lr, float momentum_coef,
                                    float weight_decay, int acc32)
{
#if TTE_RVV
    const tte_f16_sgd u = {w, momentum, lr, momentum_coef, weight_decay};
    if (tte_rvv_conv2d_grad_weight_f16(x, xd, gy, yd, NULL, &u, p, s, acc32)) return;
#endif
    sgd_ctx c = {w, momentum, lr, momentum_coef, weight_decay};
    weight_grads(x, xd, gy, yd, p, s, acc32, put_sgd, &c);
}

static float channel_total(const tte_f16 *gy, tte_dims4 d, int32_t c, int acc32)
{
    const size_t plane = (size_t)d.h * (size_t)d.w;
    float acc = 0.0f;
    for (int32_t n = 0; n < d.n; ++n) {
        const tte_f16 *g = gy + ((size_t)n * (size_t)d.c + (size_t)c) * plane;
        for (size_t i = 0; i < plane; ++i) acc = tte_f16_add(acc, (float)g[i], acc32);
    }
    return acc;
}

void tte_channel_sum_f16(const tte_f16 *gy, tte_dims4 d, tte_f16 *gb, int acc32)
{
#if TTE_RVV
    tte_rvv_channel_sum_f16(gy, d, gb, NULL, acc32);
    return;
#endif
    for (int32_t c = 0; c < d.c; ++c) gb[c] = (tte_f16)channel_total(gy, d, c, acc32);
}

void tte_channel_sum_sgd_f16(const tte_f16 *gy, tte_dims4 d, tte_f16 *b, tte_f16 *momentum,
                             float lr, float momentum_coef, float weight_decay, int acc32)
{
#if TTE_RVV
    const tte_f16_sgd u = {b, momentum, lr, momentum_coef, weight_decay};
    tte_rvv_channel_sum_f16(gy, d, NULL, &u, acc32);
    return;
#endif
    for (int32_t c = 0; c < d.c; ++c)
        tte_sgd_step_f16(b + c, channel_total(gy, d, c, acc32), momentum ? momentum + c : NULL,
                         lr, momentum_coef, weight_decay);
}
