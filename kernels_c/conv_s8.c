/* int8 TFLite-semantics kernels; see conv_s8.h. */
#include "conv_s8.h"

/* int32 addition modulo 2^32 (TFLite's wrap-around, without signed-overflow UB). */
static int32_t wadd(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static int8_t clamp_s8(int32_t v, int32_t lo, int32_t hi)
{
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (int8_t)v;
}

void tte_conv2d_s8(const int8_t *x, tte_dims4 xd, const int8_t *w, const int32_t *bias,
                   int8_t *y, tte_dims4 yd, tte_window p, const int32_t *multiplier,
                   const int32_t *shift, tte_s8_params q)
{
    int32_t cg = xd.c / p.groups; /* input channels per group */
    int32_t og = yd.c / p.groups; /* output channels per group */
    int32_t n, o, oy, ox, ic, ky, kx;
    for (n = 0; n < yd.n; n++) {
        for (o = 0; o < yd.c; o++) {
            const int8_t *wo = w + (size_t)o * cg * p.kernel_h * p.kernel_w;
            const int8_t *xg = x + ((size_t)n * xd.c + (size_t)(o / og) * cg) * xd.h * xd.w;
            int8_t *yo = y + ((size_t)n * yd.c + o) * yd.h * yd.w;
            for (oy = 0; oy < yd.h; oy++) {
                int32_t iy0 = oy * p.stride_h - p.pad_top;
                for (ox = 0; ox < yd.w; ox++) {
                    int32_t ix0 = ox * p.stride_w - p.pad_left;
                    int32_t acc = 0;
                    for (ic = 0; ic < cg; ic++) {
                        const int8_t *xc = xg + (size_t)ic * xd.h * xd.w;
                        const int8_t *wc = wo + (size_t)ic * p.kernel_h * p.kernel_w;
                        for (ky = 0; ky < p.kernel_h; ky++) {
                            int32_t iy = iy0 + ky * p.dilation_h;
                            if (iy < 0 || iy >= xd.h) continue;
                            for (kx = 0; kx < p.kernel_w; kx++) {
                                int32_t ix = ix0 + kx * p.dilation_w;
                                if (ix < 0 || ix >= xd.w) continue;
                                acc = wadd(acc, (int32_t)wc[ky * p.kernel_w + kx] *
                                                    ((int32_t)xc[(size_t)iy * xd.w + ix] +
                                                     q.input_offset));
                            }
                        }
                    }
                    if (bias) acc = wadd(acc, bias[o]);
                    acc = wadd(tte_requantize(acc, multiplier[o], shift[o]), q.output_offset);
                    yo[(size_t)oy * yd.w + ox] = clamp_s8(acc, q.act_min, q.act_max);
                }
            }
        }
    }
}

void tte_linear_s8(const int8_t *x, int32_t n, int32_t k, const int8_t *w, const int32_t *bias,
                   int8_t *y, int32_t m, int32_t multiplier, int32_t shift,
                   int32_t filter_offset, tte_s8_params q)
{
    int32_t b, j, i;
    for (b = 0; b < n; b++) {
        const int8_t *xb = x + (size_t)b * k;
        for (j = 0; j < m; j++) {
            const int8_t *wj = w + (size_t)j * k;
            int32_t acc = 0;
            for (i = 0; i < k; i++)
                acc = wadd(acc, ((int32_t)wj[i] + filter_offset) *
                                    ((int32_t)xb[i] + q.input_offset));
            if (bias) acc = wadd(acc, bias[j]);
            acc = wadd(tte_requantize(acc, multiplier, shift), q.output_offset);
            y[(size_t)b * m + j] = clamp_s8(acc, q.act_min, q.act_max);
        }
    }
}

void tte_add_s8(const int8_t *a, const int8_t *b, int8_t *y, int32_t count, tte_add_s8_params p)
{
    int32_t i;
    for (i = 0; i < count; i++) {
        int32_t va = (int32_t)((uint32_t)((int32_t)a[i] + p.input1_offset) << p.left_shift);
        int32_t vb = (int32_t)((uint32_t)((int32_t)b[i] + p.input2_offset) << p.left_shift);
        int32_t sa = tte_requantize(va, p.input1_multiplier, p.input1_shift);
        int32_t sb = tte_requantize(vb, p.input2_multiplier, p.input2_shift);
        int32_t r = wadd(tte_requantize(wadd(sa, sb), p.output_multiplier, p.output_shift),
                         p.output_offset);
        y[i] = clamp_s8(r, p.act_min, p.act_max);
    }
}

/* Shared window walk of the two pools: max != 0 selects max pooling. */
static void pool_s8(const int8_t *x, tte_dims4 xd, int8_t *y, tte_dims4 yd, tte_window p,
                    int32_t act_min, int32_t act_max, int max)
{
    int32_t n, c, oy, ox, ky, kx;
    for (n = 0; n < yd.n; n++) {
        for (c = 0; c < yd.c; c++) {
            const int8_t *xc = x + ((size_t)n * xd.c + c) * xd.h * xd.w;
            int8_t *yc = y + ((size_t)n * yd.c + c) * yd.h * yd.w;
            for (oy = 0; oy < yd.h; oy++) {
                int32_t iy0 = oy * p.stride_h - p.pad_top;
                for (ox = 0; ox < yd.w; ox++) {
                    int32_t ix0 = ox * p.stride_w - p.pad_left;
                    int32_t acc = max ? -128 : 0, count = 0;
                    for (ky = 0; ky < p.kernel_h; ky++) {
                        int32_t iy = iy0 + ky * p.dilation_h;
                        if (iy < 0 || iy >= xd.h) continue;
                        for (kx = 0; kx < p.kernel_w; kx++) {
                            int32_t ix = ix0 + kx * p.dilation_w;
                            int32_t v;
                            if (ix < 0 || ix >= xd.w) continue;
                            v = xc[(size_t)iy * xd.w + ix];
                            if (max) {
                                if (v > acc) acc = v;
                            } else {
                                acc += v;
                            }
                            count++;
                        }
                    }
                    if (!max && count > 0)
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    yc[(size_t)oy * yd.w + ox] = clamp_s8(acc, act_min, act_max);
                }
            }
        }
    }
}

void tte_avg_pool2d_s8(const int8_t *x, tte_dims4 xd, int8_t *y, tte_dims4 yd, tte_window p,
                       int32_t act_min, int32_t act_max)
{
    pool_s8(x, xd, y, yd, p, act_min, act_max, 0);
}

void tte_max_pool2d_s8(const int8_t *x, tte_dims4 xd, int8_t *y, tte_dims4 yd, tte_window p,
                       int32_t act_min, int32_t act_max)
{
    pool_s8(x, xd, y, yd, p, act_min, act_max, 1);
}
