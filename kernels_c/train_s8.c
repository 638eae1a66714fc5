/* Backward and update kernels of int8 layers; see train_s8.h. */
#include "train_s8.h"

#include <math.h>

void tte_mask_grad_f32(const float *gy, const uint8_t *mask, float *gx, int32_t count)
{
    int32_t i;
    for (i = 0; i < count; i++)
        gx[i] = (mask[i >> 3] >> (i & 7)) & 1u ? gy[i] : 0.0f;
}

/* Adds g * w[tap] to every in-bounds input position that output (oy, ox) read, in tap
 * order: the input-gradient scatter of one output position of one channel plane. */
static void scatter_taps(float *xc, tte_dims4 xd, int32_t oy, int32_t ox, float g,
                         const int8_t *wc, tte_window p)
{
    int32_t ky, kx;
    for (ky = 0; ky < p.kernel_h; ky++) {
        int32_t iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
        if (iy < 0 || iy >= xd.h) continue;
        for (kx = 0; kx < p.kernel_w; kx++) {
            int32_t ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
            if (ix < 0 || ix >= xd.w) continue;
            xc[(size_t)iy * xd.w + ix] += g * (float)wc[ky * p.kernel_w + kx];
        }
    }
}

void tte_conv2d_s8_grad_input(const float *gy, tte_dims4 yd, const int8_t *w,
                              const float *w_scale, float *gx, tte_dims4 xd, tte_window p,
                              tte_split s)
{
    int32_t cg = xd.c / p.groups, og = yd.c / p.groups, khw = p.kernel_h * p.kernel_w;
    int32_t n, o, oy, ox, ic;
    size_t i, total = (size_t)xd.n * xd.c * xd.h * xd.w;
    for (i = 0; i < total; i++) gx[i] = 0.0f;
    for (n = 0; n < yd.n; n++) {
        for (o = 0; o < yd.c; o++) {
            const int8_t *wo = w + (size_t)o * cg * khw;
            float *xg = gx + ((size_t)n * xd.c + (size_t)(o / og) * cg) * xd.h * xd.w;
            const float *go = gy + ((size_t)n * yd.c + o) * yd.h * yd.w;
            for (oy = 0; oy < yd.h; oy++) {
                for (ox = 0; ox < yd.w; ox++) {
                    float g = go[(size_t)oy * yd.w + ox] * w_scale[o];
                    if (g == 0.0f) continue; /* masked-out outputs are common */
                    for (ic = 0; ic < cg; ic++) {
                        const int8_t *wc = s.count ? (const int8_t *)tte_split_block(
                                               w, &s, 1, o, ic, cg, khw)
                                                   : wo + (size_t)ic * khw;
                        scatter_taps(xg + (size_t)ic * xd.h * xd.w, xd, oy, ox, g, wc, p);
                    }
                }
            }
        }
    }
}

void tte_depthwise_s8_grad_input(const float *gy, tte_dims4 d, const int8_t *w,
                                 const float *w_scale, float *gx, float *scratch, tte_window p,
                                 tte_split s)
{
    int32_t n, c, oy, ox, khw = p.kernel_h * p.kernel_w;
    size_t i, hw = (size_t)d.h * d.w;
    for (n = 0; n < d.n; n++) {
        for (c = 0; c < d.c; c++) {
            const float *go = gy + ((size_t)n * d.c + c) * hw;
            const int8_t *wc = (const int8_t *)tte_split_block(w, &s, 1, c, 0, 1, khw);
            float *xc = gx + ((size_t)n * d.c + c) * hw;
            /* the scatter of tte_conv2d_s8_grad_input, in its order, into the scratch: go may
             * be xc, which is written only once the plane is complete */
            for (i = 0; i < hw; i++) scratch[i] = 0.0f;
            for (oy = 0; oy < d.h; oy++) {
                for (ox = 0; ox < d.w; ox++) {
                    float g = go[(size_t)oy * d.w + ox] * w_scale[c];
                    if (g != 0.0f) scatter_taps(scratch, d, oy, ox, g, wc, p);
                }
            }
            for (i = 0; i < hw; i++) xc[i] = scratch[i];
        }
    }
}

/* d loss / d w_q at tap (ky, kx) of output channel o and x channel xch, before the scale[o]
 * factor. */
static float grad_weight_at(const int8_t *x, tte_dims4 xd, int32_t x_zero, const float *gy,
                            tte_dims4 yd, tte_window p, int32_t o, int32_t xch, int32_t ky,
                            int32_t kx)
{
    int32_t n, oy, ox;
    float sum = 0.0f;
    for (n = 0; n < yd.n; n++) {
        const int8_t *xc = x + ((size_t)n * xd.c + xch) * xd.h * xd.w;
        const float *go = gy + ((size_t)n * yd.c + o) * yd.h * yd.w;
        for (oy = 0; oy < yd.h; oy++) {
            int32_t iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
            if (iy < 0 || iy >= xd.h) continue;
            for (ox = 0; ox < yd.w; ox++) {
                int32_t ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
                if (ix < 0 || ix >= xd.w) continue;
                sum += go[(size_t)oy * yd.w + ox] *
                       (float)((int32_t)xc[(size_t)iy * xd.w + ix] - x_zero);
            }
        }
    }
    return sum;
}

void tte_conv2d_s8_grad_weight(const int8_t *x, tte_dims4 xd, int32_t x_zero, const float *gy,
                               tte_dims4 yd, float *gw, tte_window p, const float *scale,
                               tte_split s)
{
    int32_t cg = tte_split_grad_cg(&s, xd, p), og = yd.c / p.groups, o, ic, ky, kx, xch;
    size_t b;
    for (o = 0; o < yd.c; o++) {
        for (ic = 0; ic < cg; ic++) {
            float *gb;
            if (!tte_split_grad_block(&s, o, ic, cg, og, &b, &xch)) continue;
            gb = gw + b * p.kernel_h * p.kernel_w;
            for (ky = 0; ky < p.kernel_h; ky++)
                for (kx = 0; kx < p.kernel_w; kx++)
                    *gb++ = grad_weight_at(x, xd, x_zero, gy, yd, p, o, xch, ky, kx) * scale[o];
        }
    }
}

void tte_channel_sum_scaled_f32(const float *gy, tte_dims4 d, const float *scale, float *out)
{
    int32_t n, c;
    size_t i, hw = (size_t)d.h * d.w;
    for (c = 0; c < d.c; c++) {
        float sum = 0.0f;
        for (n = 0; n < d.n; n++) {
            const float *g = gy + ((size_t)n * d.c + c) * hw;
            for (i = 0; i < hw; i++) sum += g[i];
        }
        out[c] = sum * scale[c];
    }
}

static double clamp_d(double v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* One int8 element: step it directly, or through its master copy (master may be NULL). */
static void update_s8(int8_t *w, float *master, size_t i, float step, int32_t lo, int32_t hi)
{
    double v;
    if (master) {
        master[i] = master[i] - step;
        v = rintf(master[i]);
    } else {
        v = (double)w[i] - (double)rintf(step);
    }
    w[i] = (int8_t)clamp_d(v, lo, hi);
}

void tte_sgd_update_s8(int8_t *w, const float *g, float *master, int32_t channels,
                       int32_t per_channel, float lr, const float *factor, int32_t lo,
                       int32_t hi)
{
    int32_t c, k;
    for (c = 0; c < channels; c++) {
        for (k = 0; k < per_channel; k++) {
            size_t i = (size_t)c * per_channel + k;
            update_s8(w, master, i, lr * (g[i] * factor[c]), lo, hi);
        }
    }
}

void tte_conv2d_s8_grad_weight_sgd(const int8_t *x, tte_dims4 xd, int32_t x_zero,
                                   const float *gy, tte_dims4 yd, int8_t *w, float *master,
                                   tte_window p, const float *scale, tte_split s, float lr,
                                   const float *factor, int32_t lo, int32_t hi)
{
    int32_t cg = tte_split_grad_cg(&s, xd, p), og = yd.c / p.groups, o, ic, ky, kx, xch;
    size_t b;
    for (o = 0; o < yd.c; o++) {
        for (ic = 0; ic < cg; ic++) {
            size_t i;
            if (!tte_split_grad_block(&s, o, ic, cg, og, &b, &xch)) continue;
            i = b * p.kernel_h * p.kernel_w;
            for (ky = 0; ky < p.kernel_h; ky++) {
                for (kx = 0; kx < p.kernel_w; kx++, i++) {
                    float g = grad_weight_at(x, xd, x_zero, gy, yd, p, o, xch, ky, kx) * scale[o];
                    update_s8(w, master, i, lr * (g * factor[o]), lo, hi);
                }
            }
        }
    }
}

void tte_linear_s8_grad_input(const float *gy, int32_t n, int32_t m, const int8_t *w,
                              int32_t w_zero, const float *w_scale, float *gx, int32_t k)
{
    int32_t b, j, i;
    for (b = 0; b < n; b++) {
        float *gr = gx + (size_t)b * k;
        for (i = 0; i < k; i++) gr[i] = 0.0f;
        for (j = 0; j < m; j++) {
            const int8_t *wj = w + (size_t)j * k;
            float g = gy[(size_t)b * m + j] * w_scale[j];
            if (g == 0.0f) continue; /* masked-out outputs are common */
            for (i = 0; i < k; i++) gr[i] += g * (float)((int32_t)wj[i] - w_zero);
        }
    }
}

/* d loss / d w_q[j, i] of a fully connected layer, before the scale[j] factor. */
static float linear_grad_weight_at(const int8_t *x, int32_t n, int32_t k, int32_t x_zero,
                                   const float *gy, int32_t m, int32_t j, int32_t i)
{
    int32_t b;
    float sum = 0.0f;
    for (b = 0; b < n; b++)
        sum += gy[(size_t)b * m + j] * (float)((int32_t)x[(size_t)b * k + i] - x_zero);
    return sum;
}

void tte_linear_s8_grad_weight(const int8_t *x, int32_t n, int32_t k, int32_t x_zero,
                               const float *gy, int32_t m, float *gw, const float *scale)
{
    int32_t j, i;
    for (j = 0; j < m; j++)
        for (i = 0; i < k; i++)
            gw[(size_t)j * k + i] = linear_grad_weight_at(x, n, k, x_zero, gy, m, j, i) * scale[j];
}

void tte_linear_s8_grad_weight_sgd(const int8_t *x, int32_t n, int32_t k, int32_t x_zero,
                                   const float *gy, int32_t m, int8_t *w, float *master,
                                   const float *scale, float lr, const float *factor,
                                   int32_t lo, int32_t hi)
{
    int32_t j, i;
    for (j = 0; j < m; j++) {
        for (i = 0; i < k; i++) {
            float g = linear_grad_weight_at(x, n, k, x_zero, gy, m, j, i) * scale[j];
            update_s8(w, master, (size_t)j * k + i, lr * (g * factor[j]), lo, hi);
        }
    }
}

void tte_sgd_update_s32(int32_t *b, const float *g, int32_t count, float lr,
                        const float *factor, int32_t lo, int32_t hi)
{
    int32_t c;
    for (c = 0; c < count; c++) {
        float step = lr * (g[c] * factor[c]);
        b[c] = (int32_t)clamp_d((double)b[c] - (double)rintf(step), lo, hi);
    }
}
