/* int8 TFLite-semantics kernels; see conv_s8.h. */
#include "conv_s8.h"

#include <math.h>

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

/* rint(v) + zero in double, saturated to the int32 range (the clamp to int8 follows anyway;
 * NaN becomes INT32_MIN rather than an undefined conversion): the half-even rule's value
 * before its clamp, as the numpy reference computes it. */
static int32_t rint_plus_zero(double v, int32_t zero)
{
    v = rint(v) + zero;
    if (v != v || v < -2147483648.0) return INT32_MIN;
    if (v > 2147483647.0) return INT32_MAX;
    return (int32_t)v;
}

int8_t tte_clamp_s8_masked(int32_t v, int32_t act_min, int32_t act_max, uint8_t *mask,
                           size_t i)
{
    if (mask) {
        uint8_t bit = (uint8_t)(1u << (i & 7u));
        if (v >= act_min && v <= act_max)
            mask[i >> 3] |= bit;
        else
            mask[i >> 3] &= (uint8_t)~bit;
    }
    return clamp_s8(v, act_min, act_max);
}

int32_t tte_requant_apply(const tte_requant *r, int32_t c, int32_t acc, const int32_t *bias,
                          int32_t output_offset)
{
    int32_t k = r->per_channel ? c : 0;
    if (r->scale) {
        double sum = (double)acc + (bias ? (double)bias[c] : 0.0);
        return rint_plus_zero(sum * r->scale[k], output_offset);
    }
    if (bias) acc = wadd(acc, bias[c]);
    return wadd(tte_requantize(acc, r->multiplier[k], r->shift[k]), output_offset);
}

void tte_conv2d_s8(const int8_t *x, tte_dims4 xd, const int8_t *w, const int32_t *bias,
                   int8_t *y, tte_dims4 yd, tte_window p, tte_requant rq, tte_s8_params q,
                   uint8_t *mask, tte_split s)
{
    int32_t cg = xd.c / p.groups; /* input channels per group */
    int32_t og = yd.c / p.groups; /* output channels per group */
    int32_t khw = p.kernel_h * p.kernel_w;
    int32_t n, o, oy, ox, ic, ky, kx;
    for (n = 0; n < yd.n; n++) {
        for (o = 0; o < yd.c; o++) {
            const int8_t *wo = w + (size_t)o * cg * khw;
            const int8_t *xg = x + ((size_t)n * xd.c + (size_t)(o / og) * cg) * xd.h * xd.w;
            int8_t *yo = y + ((size_t)n * yd.c + o) * yd.h * yd.w;
            for (oy = 0; oy < yd.h; oy++) {
                int32_t iy0 = oy * p.stride_h - p.pad_top;
                for (ox = 0; ox < yd.w; ox++) {
                    int32_t ix0 = ox * p.stride_w - p.pad_left;
                    int32_t acc = 0;
                    for (ic = 0; ic < cg; ic++) {
                        const int8_t *xc = xg + (size_t)ic * xd.h * xd.w;
                        const int8_t *wc = s.count ? (const int8_t *)tte_split_block(
                                               w, &s, 1, o, ic, cg, khw)
                                                   : wo + (size_t)ic * khw;
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
                    size_t i = (size_t)(yo - y) + (size_t)oy * yd.w + ox;
                    acc = tte_requant_apply(&rq, o, acc, bias, q.output_offset);
                    y[i] = tte_clamp_s8_masked(acc, q.act_min, q.act_max, mask, i);
                }
            }
        }
    }
}

void tte_linear_s8(const int8_t *x, int32_t n, int32_t k, const int8_t *w, const int32_t *bias,
                   int8_t *y, int32_t m, tte_requant rq, int32_t filter_offset, tte_s8_params q,
                   uint8_t *mask)
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
            acc = tte_requant_apply(&rq, j, acc, bias, q.output_offset);
            y[(size_t)b * m + j] = tte_clamp_s8_masked(acc, q.act_min, q.act_max, mask,
                                                       (size_t)b * m + j);
        }
    }
}

void tte_add_s8(const int8_t *a, const int8_t *b, int8_t *y, int32_t count, tte_add_s8_params p,
                uint8_t *mask)
{
    int32_t i;
    for (i = 0; i < count; i++) {
        int32_t va = (int32_t)((uint32_t)((int32_t)a[i] + p.input1_offset) << p.left_shift);
        int32_t vb = (int32_t)((uint32_t)((int32_t)b[i] + p.input2_offset) << p.left_shift);
        int32_t sa = tte_requantize(va, p.input1_multiplier, p.input1_shift);
        int32_t sb = tte_requantize(vb, p.input2_multiplier, p.input2_shift);
        int32_t r = wadd(tte_requantize(wadd(sa, sb), p.output_multiplier, p.output_shift),
                         p.output_offset);
        y[i] = tte_clamp_s8_masked(r, p.act_min, p.act_max, mask, (size_t)i);
    }
}

void tte_add_s8_double(const int8_t *a, const int8_t *b, int8_t *y, int32_t count,
                       tte_add_s8_double_params p, uint8_t *mask)
{
    int32_t i;
    for (i = 0; i < count; i++) {
        double total = (double)((int32_t)a[i] - p.a_zero) * p.a_scale +
                       (double)((int32_t)b[i] - p.b_zero) * p.b_scale;
        int32_t v = rint_plus_zero(total / p.out_scale, p.out_zero);
        y[i] = tte_clamp_s8_masked(v, p.act_min, p.act_max, mask, (size_t)i);
    }
}

void tte_quantize_s8(const float *x, int8_t *y, int32_t count, float scale, int32_t zero)
{
    int32_t i;
    for (i = 0; i < count; i++) {
        float q = roundf(x[i] / scale);
        q = q < -1e6f ? -1e6f : q > 1e6f ? 1e6f : q; /* NaN stays, and clamps to -128 below */
        y[i] = clamp_s8(q == q ? (int32_t)q + zero : -128, -128, 127);
    }
}

void tte_dequantize_s8(const int8_t *x, float *y, int32_t count, double scale, int32_t zero)
{
    int32_t i;
    for (i = 0; i < count; i++) y[i] = (float)(scale * (double)((int32_t)x[i] - zero));
}

void tte_quantize_half_even_s8(const float *x, int8_t *y, int32_t count, double scale,
                               int32_t zero)
{
    int32_t i;
    for (i = 0; i < count; i++)
        y[i] = clamp_s8(rint_plus_zero((double)x[i] / scale, zero), -128, 127);
}

/* Shared window walk of the two pools: max != 0 selects max pooling. */
/* sum / count rounded to nearest, ties to even (count > 0). */
static int32_t div_half_even(int32_t sum, int32_t count)
{
    int32_t q = sum / count, r = sum % count; /* C: q toward zero, r has sum's sign */
    if (r < 0) {
        q -= 1;
        r += count; /* now floor division: 0 <= r < count */
    }
    if (2 * r > count || (2 * r == count && (q & 1))) q += 1;
    return q;
}

static void pool_s8(const int8_t *x, tte_dims4 xd, int8_t *y, tte_dims4 yd, tte_window p,
                    int32_t act_min, int32_t act_max, int max, int32_t half_even)
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
                    if (!max && count > 0 && half_even)
                        acc = div_half_even(acc, count);
                    else if (!max && count > 0)
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    yc[(size_t)oy * yd.w + ox] = clamp_s8(acc, act_min, act_max);
                }
            }
        }
    }
}

void tte_avg_pool2d_s8(const int8_t *x, tte_dims4 xd, int8_t *y, tte_dims4 yd, tte_window p,
                       int32_t act_min, int32_t act_max, int32_t half_even)
{
    pool_s8(x, xd, y, yd, p, act_min, act_max, 0, half_even);
}

void tte_max_pool2d_s8(const int8_t *x, tte_dims4 xd, int8_t *y, tte_dims4 yd, tte_window p,
                       int32_t act_min, int32_t act_max)
{
    pool_s8(x, xd, y, yd, p, act_min, act_max, 1, 0);
}
