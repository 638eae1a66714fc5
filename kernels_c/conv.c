/* Portable scalar fp32 convolution kernels; see conv.h.
 *
 * Summation order differs from the numpy references (which use einsum/BLAS and pairwise
 * sums), so results agree to float rounding, not bit for bit:
 *  - forward: each output plane accumulates in y over (c, ki, kj) in that order, bias added
 *    last (as the reference does);
 *  - grad_input: gx accumulates over (o, ki, kj, oh, ow) in scan order (scatter); the
 *    in-place depthwise one likewise, one plane at a time;
 *  - grad_weight: one float accumulator per weight, summed over (n, oh, ow) in order;
 *  - channel_sum: one float accumulator per channel, sequential over (n, h, w).
 * With TTE_RVV_F32 (rv32v) every kernel first tries its RVV path (f32_rvv.c), which keeps
 * these orders and roundings: results equal this scalar path's bit for bit.
 */
#include "conv.h"
#include "f32_rvv.h"
#include "optim.h"

static int32_t group_count(tte_window p)
{
    return p.groups > 0 ? p.groups : 1;
}

void tte_conv2d_f32(const float *x, tte_dims4 xd, const float *w, const float *bias,
                    float *y, tte_dims4 yd, tte_window p, tte_split s)
{
#if TTE_RVV_F32
    if (tte_rvv_conv2d_f32(x, xd, w, bias, y, yd, p, s)) return;
#endif
    const int32_t groups = group_count(p);
    const int32_t cg = xd.c / groups, og = yd.c / groups;
    const int32_t kh = p.kernel_h, kw = p.kernel_w;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    for (int32_t n = 0; n < yd.n; ++n) {
        for (int32_t o = 0; o < yd.c; ++o) {
            const int32_t c0 = (o / og) * cg;
            float *yo = y + ((size_t)n * (size_t)yd.c + (size_t)o) * yplane;
            for (size_t i = 0; i < yplane; ++i) yo[i] = 0.0f;
            for (int32_t c = 0; c < cg; ++c) {
                const float *xc = x + ((size_t)n * (size_t)xd.c + (size_t)(c0 + c)) * xplane;
                const float *wk = tte_split_block(w, &s, sizeof(float), o, c, cg, kh * kw);
                for (int32_t ki = 0; ki < kh; ++ki) {
                    const int32_t offh = ki * p.dilation_h - p.pad_top;
                    int32_t oh0, oh1;
                    tte_tap_range(offh, p.stride_h, xd.h, yd.h, &oh0, &oh1);
                    for (int32_t kj = 0; kj < kw; ++kj) {
                        const int32_t offw = kj * p.dilation_w - p.pad_left;
                        const float wv = wk[ki * kw + kj];
                        int32_t ow0, ow1;
                        tte_tap_range(offw, p.stride_w, xd.w, yd.w, &ow0, &ow1);
                        for (int32_t oh = oh0; oh < oh1; ++oh) {
                            const float *xr = xc + (size_t)(oh * p.stride_h + offh) * (size_t)xd.w;
                            float *yr = yo + (size_t)oh * (size_t)yd.w;
                            for (int32_t ow = ow0; ow < ow1; ++ow)
                                yr[ow] += wv * xr[ow * p.stride_w + offw];
                        }
                    }
                }
            }
            if (bias) {
                const float b = bias[o];
                for (size_t i = 0; i < yplane; ++i) yo[i] += b;
            }
        }
    }
}

/* Scatter of one (output channel, input channel) pair: every (output position, tap) adds
 * w * gy to the input position it read, taps outermost. */
static void scatter_plane(float *gc, tte_dims4 xd, const float *go, tte_dims4 yd,
                          const float *wk, tte_window p)
{
    const int32_t kh = p.kernel_h, kw = p.kernel_w;
    for (int32_t ki = 0; ki < kh; ++ki) {
        const int32_t offh = ki * p.dilation_h - p.pad_top;
        int32_t oh0, oh1;
        tte_tap_range(offh, p.stride_h, xd.h, yd.h, &oh0, &oh1);
        for (int32_t kj = 0; kj < kw; ++kj) {
            const int32_t offw = kj * p.dilation_w - p.pad_left;
            const float wv = wk[ki * kw + kj];
            int32_t ow0, ow1;
            tte_tap_range(offw, p.stride_w, xd.w, yd.w, &ow0, &ow1);
            for (int32_t oh = oh0; oh < oh1; ++oh) {
                float *gr = gc + (size_t)(oh * p.stride_h + offh) * (size_t)xd.w;
                const float *gyr = go + (size_t)oh * (size_t)yd.w;
                for (int32_t ow = ow0; ow < ow1; ++ow)
                    gr[ow * p.stride_w + offw] += wv * gyr[ow];
            }
        }
    }
}

void tte_conv2d_grad_input_f32(const float *gy, tte_dims4 yd, const float *w,
                               float *gx, tte_dims4 xd, tte_window p, tte_split s)
{
#if TTE_RVV_F32
    if (tte_rvv_conv2d_grad_input_f32(gy, yd, w, gx, xd, p, s)) return;
#endif
    const int32_t groups = group_count(p);
    const int32_t cg = xd.c / groups, og = yd.c / groups;
    const int32_t kh = p.kernel_h, kw = p.kernel_w;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const size_t total = (size_t)xd.n * (size_t)xd.c * xplane;
    for (size_t i = 0; i < total; ++i) gx[i] = 0.0f;
    for (int32_t n = 0; n < yd.n; ++n) {
        for (int32_t o = 0; o < yd.c; ++o) {
            const int32_t c0 = (o / og) * cg;
            const float *go = gy + ((size_t)n * (size_t)yd.c + (size_t)o) * yplane;
            for (int32_t c = 0; c < cg; ++c) {
                float *gc = gx + ((size_t)n * (size_t)xd.c + (size_t)(c0 + c)) * xplane;
                scatter_plane(gc, xd, go, yd,
                              tte_split_block(w, &s, sizeof(float), o, c, cg, kh * kw), p);
            }
        }
    }
}

void tte_depthwise_grad_input_f32(const float *gy, tte_dims4 d, const float *w, float *gx,
                                  float *scratch, tte_window p, tte_split s)
{
#if TTE_RVV_F32
    if (tte_rvv_depthwise_grad_input_f32(gy, d, w, gx, scratch, p, s)) return;
#endif
    const int32_t kh = p.kernel_h, kw = p.kernel_w;
    const size_t plane = (size_t)d.h * (size_t)d.w;
    for (int32_t n = 0; n < d.n; ++n) {
        for (int32_t c = 0; c < d.c; ++c) {
            const float *go = gy + ((size_t)n * (size_t)d.c + (size_t)c) * plane;
            const float *wk = tte_split_block(w, &s, sizeof(float), c, 0, 1, kh * kw);
            float *gc = gx + ((size_t)n * (size_t)d.c + (size_t)c) * plane;
            /* tte_conv2d_grad_input_f32's scatter into the scratch: go may be gc, which is
             * written only once the plane is complete */
            for (size_t i = 0; i < plane; ++i) scratch[i] = 0.0f;
            scatter_plane(scratch, d, go, d, wk, p);
            for (size_t i = 0; i < plane; ++i) gc[i] = scratch[i];
        }
    }
}

/* Gradient of one weight element (o, c, ki, kj): sum over n, oh, ow of x * gy. */
static float conv_weight_grad(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                              tte_window p, int32_t o, int32_t cin, int32_t ki, int32_t kj)
{
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const int32_t offh = ki * p.dilation_h - p.pad_top, offw = kj * p.dilation_w - p.pad_left;
    int32_t oh0, oh1, ow0, ow1;
    float acc = 0.0f;
    tte_tap_range(offh, p.stride_h, xd.h, yd.h, &oh0, &oh1);
    tte_tap_range(offw, p.stride_w, xd.w, yd.w, &ow0, &ow1);
    for (int32_t n = 0; n < yd.n; ++n) {
        const float *xc = x + ((size_t)n * (size_t)xd.c + (size_t)cin) * xplane;
        const float *go = gy + ((size_t)n * (size_t)yd.c + (size_t)o) * yplane;
        for (int32_t oh = oh0; oh < oh1; ++oh) {
            const float *xr = xc + (size_t)(oh * p.stride_h + offh) * (size_t)xd.w;
            const float *gyr = go + (size_t)oh * (size_t)yd.w;
            for (int32_t ow = ow0; ow < ow1; ++ow) acc += xr[ow * p.stride_w + offw] * gyr[ow];
        }
    }
    return acc;
}

void tte_conv2d_grad_weight_f32(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                                float *gw, tte_window p, tte_split s)
{
#if TTE_RVV_F32
    if (tte_rvv_conv2d_grad_weight_f32(x, xd, gy, yd, gw, NULL, p, s)) return;
#endif
    const int32_t groups = group_count(p);
    const int32_t cg = tte_split_grad_cg(&s, xd, p), og = yd.c / groups;
    for (int32_t o = 0; o < yd.c; ++o)
        for (int32_t c = 0; c < cg; ++c) {
            size_t i;
            int32_t xc;
            if (!tte_split_grad_block(&s, o, c, cg, og, &i, &xc)) continue;
            i *= (size_t)(p.kernel_h * p.kernel_w);
            for (int32_t ki = 0; ki < p.kernel_h; ++ki)
                for (int32_t kj = 0; kj < p.kernel_w; ++kj)
                    gw[i++] = conv_weight_grad(x, xd, gy, yd, p, o, xc, ki, kj);
        }
}

void tte_conv2d_grad_weight_sgd_f32(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                                    float *w, float *momentum, tte_window p, tte_split s,
                                    float lr, float momentum_coef, float weight_decay)
{
#if TTE_RVV_F32
    const tte_f32_sgd u = {w, momentum, lr, momentum_coef, weight_decay};
    if (tte_rvv_conv2d_grad_weight_f32(x, xd, gy, yd, NULL, &u, p, s)) return;
#endif
    const int32_t groups = group_count(p);
    const int32_t cg = tte_split_grad_cg(&s, xd, p), og = yd.c / groups;
    for (int32_t o = 0; o < yd.c; ++o)
        for (int32_t c = 0; c < cg; ++c) {
            size_t i;
            int32_t xc;
            if (!tte_split_grad_block(&s, o, c, cg, og, &i, &xc)) continue;
            i *= (size_t)(p.kernel_h * p.kernel_w);
            for (int32_t ki = 0; ki < p.kernel_h; ++ki)
                for (int32_t kj = 0; kj < p.kernel_w; ++kj, ++i) {
                    const float g = conv_weight_grad(x, xd, gy, yd, p, o, xc, ki, kj);
                    w[i] = tte_sgd_step_f32(w[i], g, momentum ? momentum + i : NULL, lr,
                                            momentum_coef, weight_decay);
                }
        }
}

static float channel_total(const float *gy, tte_dims4 d, int32_t c)
{
    const size_t plane = (size_t)d.h * (size_t)d.w;
    float acc = 0.0f;
    for (int32_t n = 0; n < d.n; ++n) {
        const float *g = gy + ((size_t)n * (size_t)d.c + (size_t)c) * plane;
        for (size_t i = 0; i < plane; ++i) acc += g[i];
    }
    return acc;
}

void tte_channel_sum_f32(const float *gy, tte_dims4 d, float *gb)
{
#if TTE_RVV_F32
    tte_rvv_channel_sum_f32(gy, d, gb, NULL);
    return;
#endif
    for (int32_t c = 0; c < d.c; ++c) gb[c] = channel_total(gy, d, c);
}

void tte_channel_sum_sgd_f32(const float *gy, tte_dims4 d, float *b, float *momentum, float lr,
                             float momentum_coef, float weight_decay)
{
#if TTE_RVV_F32
    const tte_f32_sgd u = {b, momentum, lr, momentum_coef, weight_decay};
    tte_rvv_channel_sum_f32(gy, d, NULL, &u);
    return;
#endif
    for (int32_t c = 0; c < d.c; ++c)
        b[c] = tte_sgd_step_f32(b[c], channel_total(gy, d, c), momentum ? momentum + c : NULL,
                                lr, momentum_coef, weight_decay);
}
