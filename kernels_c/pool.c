/* Portable scalar fp32 pooling kernels; see pool.h.
 *
 * Window sums accumulate in one float, sequentially in scan order (kernel row, then
 * column); the numpy references sum a strided view, so averages agree to float rounding.
 * Max pooling and its gradient are exact.
 */
#include <math.h>

#include "pool.h"

/* Taps of one window along one axis: [lo, hi) read the input; cnt is the averaging
 * divisor along this axis. */
typedef struct {
    int32_t lo, hi, cnt;
} axis_taps;

static axis_taps window_taps(int32_t o, int32_t stride, int32_t pad_lo, int32_t pad_hi,
                             int32_t dilation, int32_t k, int32_t size, int count_include_pad)
{
    axis_taps t;
    const int32_t start = o * stride - pad_lo;
    tte_tap_range(start, dilation, size, k, &t.lo, &t.hi);
    t.cnt = t.hi - t.lo;
    if (count_include_pad) { /* explicit pads count; a ceil-mode overhang does not */
        int32_t lo, hi;
        tte_tap_range(start + pad_lo, dilation, size + pad_lo + pad_hi, k, &lo, &hi);
        t.cnt = hi - lo;
    }
    return t;
}

void tte_avg_pool2d_f32(const float *x, tte_dims4 xd, float *y, tte_dims4 yd, tte_window p,
                        int count_include_pad)
{
    const size_t xplane = (size_t)xd.h * (size_t)xd.w;
    const int32_t planes = xd.n * xd.c;
    for (int32_t pl = 0; pl < planes; ++pl) {
        const float *xc = x + (size_t)pl * xplane;
        for (int32_t oh = 0; oh < yd.h; ++oh) {
            const axis_taps th = window_taps(oh, p.stride_h, p.pad_top, p.pad_bottom,
                                             p.dilation_h, p.kernel_h, xd.h, count_include_pad);
            const int32_t h0 = oh * p.stride_h - p.pad_top;
            for (int32_t ow = 0; ow < yd.w; ++ow) {
                const axis_taps tw = window_taps(ow, p.stride_w, p.pad_left, p.pad_right,
                                                 p.dilation_w, p.kernel_w, xd.w,
                                                 count_include_pad);
                const int32_t w0 = ow * p.stride_w - p.pad_left;
                const int32_t cnt = th.cnt * tw.cnt;
                float acc = 0.0f;
                for (int32_t ki = th.lo; ki < th.hi; ++ki) {
                    const float *xr = xc + (size_t)(h0 + ki * p.dilation_h) * (size_t)xd.w;
                    for (int32_t kj = tw.lo; kj < tw.hi; ++kj) acc += xr[w0 + kj * p.dilation_w];
                }
                *y++ = cnt > 0 ? acc / (float)cnt : 0.0f;
            }
        }
    }
}

void tte_avg_pool2d_grad_f32(const float *gy, tte_dims4 yd, float *gx, tte_dims4 xd,
                             tte_window p, int count_include_pad)
{
    const size_t xplane = (size_t)xd.h * (size_t)xd.w;
    const int32_t planes = xd.n * xd.c;
    for (size_t i = 0; i < (size_t)planes * xplane; ++i) gx[i] = 0.0f;
    for (int32_t pl = 0; pl < planes; ++pl) {
        float *gc = gx + (size_t)pl * xplane;
        for (int32_t oh = 0; oh < yd.h; ++oh) {
            const axis_taps th = window_taps(oh, p.stride_h, p.pad_top, p.pad_bottom,
                                             p.dilation_h, p.kernel_h, xd.h, count_include_pad);
            const int32_t h0 = oh * p.stride_h - p.pad_top;
            for (int32_t ow = 0; ow < yd.w; ++ow, ++gy) {
                const axis_taps tw = window_taps(ow, p.stride_w, p.pad_left, p.pad_right,
                                                 p.dilation_w, p.kernel_w, xd.w,
                                                 count_include_pad);
                const int32_t w0 = ow * p.stride_w - p.pad_left;
                const int32_t cnt = th.cnt * tw.cnt;
                float share;
                if (cnt <= 0) continue;
                share = *gy / (float)cnt;
                for (int32_t ki = th.lo; ki < th.hi; ++ki) {
                    float *gr = gc + (size_t)(h0 + ki * p.dilation_h) * (size_t)xd.w;
                    for (int32_t kj = tw.lo; kj < tw.hi; ++kj) gr[w0 + kj * p.dilation_w] += share;
                }
            }
        }
    }
}

/* Offset in the plane of the window's first maximum, or -1 if the window is empty.
 * A NaN beats everything and the first NaN stays (numpy max/argmax behaviour). */
static ptrdiff_t window_argmax(const float *xc, tte_dims4 xd, tte_window p, int32_t oh,
                               int32_t ow, float *best_out)
{
    const axis_taps th = window_taps(oh, p.stride_h, p.pad_top, p.pad_bottom, p.dilation_h,
                                     p.kernel_h, xd.h, 0);
    const axis_taps tw = window_taps(ow, p.stride_w, p.pad_left, p.pad_right, p.dilation_w,
                                     p.kernel_w, xd.w, 0);
    const int32_t h0 = oh * p.stride_h - p.pad_top, w0 = ow * p.stride_w - p.pad_left;
    float best = -INFINITY;
    ptrdiff_t at = -1;
    for (int32_t ki = th.lo; ki < th.hi; ++ki) {
        const ptrdiff_t row = (ptrdiff_t)(h0 + ki * p.dilation_h) * xd.w;
        for (int32_t kj = tw.lo; kj < tw.hi; ++kj) {
            const ptrdiff_t i = row + w0 + kj * p.dilation_w;
            const float v = xc[i];
            if (v > best || (v != v && best == best) || at < 0) {
                /* at < 0: the first real element is taken even if it is -inf, since
                   padding never wins (numpy would route to an earlier -inf pad). */
                best = v;
                at = i;
            }
        }
    }
    *best_out = best;
    return at;
}

void tte_max_pool2d_f32(const float *x, tte_dims4 xd, float *y, tte_dims4 yd, tte_window p)
{
    const size_t xplane = (size_t)xd.h * (size_t)xd.w;
    const int32_t planes = xd.n * xd.c;
    for (int32_t pl = 0; pl < planes; ++pl) {
        const float *xc = x + (size_t)pl * xplane;
        for (int32_t oh = 0; oh < yd.h; ++oh)
            for (int32_t ow = 0; ow < yd.w; ++ow) {
                float best;
                (void)window_argmax(xc, xd, p, oh, ow, &best);
                *y++ = best;
            }
    }
}

void tte_max_pool2d_grad_f32(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                             float *gx, tte_window p)
{
    const size_t xplane = (size_t)xd.h * (size_t)xd.w;
    const int32_t planes = xd.n * xd.c;
    for (size_t i = 0; i < (size_t)planes * xplane; ++i) gx[i] = 0.0f;
    for (int32_t pl = 0; pl < planes; ++pl) {
        const float *xc = x + (size_t)pl * xplane;
        float *gc = gx + (size_t)pl * xplane;
        for (int32_t oh = 0; oh < yd.h; ++oh)
            for (int32_t ow = 0; ow < yd.w; ++ow, ++gy) {
                float best;
                const ptrdiff_t at = window_argmax(xc, xd, p, oh, ow, &best);
                if (at >= 0) gc[at] += *gy;
            }
    }
}

void tte_global_avg_pool_f32(const float *x, tte_dims4 xd, float *y)
{
    const size_t plane = (size_t)xd.h * (size_t)xd.w;
    const int32_t planes = xd.n * xd.c;
    for (int32_t pl = 0; pl < planes; ++pl) {
        const float *xc = x + (size_t)pl * plane;
        float acc = 0.0f;
        for (size_t i = 0; i < plane; ++i) acc += xc[i];
        y[pl] = acc / (float)plane;
    }
}

void tte_global_avg_pool_grad_f32(const float *gy, float *gx, tte_dims4 xd)
{
    const size_t plane = (size_t)xd.h * (size_t)xd.w;
    const int32_t planes = xd.n * xd.c;
    const float scale = 1.0f / (float)plane; /* as unreduce: gy * (1 / (h*w)) */
    for (int32_t pl = 0; pl < planes; ++pl) {
        const float g = gy[pl] * scale;
        float *gc = gx + (size_t)pl * plane;
        for (size_t i = 0; i < plane; ++i) gc[i] = g;
    }
}
