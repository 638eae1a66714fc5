/* fp16 convolution kernels; see tte_f16.h. Each output is one sum in the order of the fp32
 * kernel (conv.c): forward over (c, ki, kj) then the bias, input gradient over (o, ki, kj),
 * weight gradient over (n, oh, ow), channel sums over (n, h, w). The v2f16 paths (half
 * accumulation) compute two outputs at once: two output channels (forward, channel sums),
 * two input channels (input gradient), two weight blocks (weight gradient). */
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

#if TTE_V2F16
/* --- v2f16 pairs (half accumulation) ------------------------------------------------- *
 * Lanes a and b are any two outputs of one kind (a == b for a lone one: both lanes compute
 * it). Their sums have the same terms at the same taps, each lane with its own operands, so
 * each keeps the scalar order. Forward and input gradient accumulate in the output planes,
 * as conv.c does: exact, the running sum being a half. */

/* Tap (ki, kj) for every output position (oh, ow) it maps to real input: fwd adds
 * w * x[input] to the output planes d at (oh, ow), else w * gy[output] to the input planes
 * d at the input position (the input gradient). */
static void tap_pair(tte_f16 *da, tte_f16 *db, const tte_f16 *sa, const tte_f16 *sb,
                     tte_v2f16 w, tte_dims4 xd, tte_dims4 yd, tte_window p, int32_t ki,
                     int32_t kj, int fwd)
{
    const int32_t offh = ki * p.dilation_h - p.pad_top, offw = kj * p.dilation_w - p.pad_left;
    const int32_t ds = fwd ? 1 : p.stride_w, ss = fwd ? p.stride_w : 1;
    int32_t oh0, oh1, ow0, ow1;
    tte_tap_range(offh, p.stride_h, xd.h, yd.h, &oh0, &oh1);
    tte_tap_range(offw, p.stride_w, xd.w, yd.w, &ow0, &ow1);
    for (int32_t oh = oh0; oh < oh1; ++oh) {
        const size_t in = (size_t)(oh * p.stride_h + offh) * (size_t)xd.w
                          + (size_t)(ow0 * p.stride_w + offw);
        const size_t out = (size_t)oh * (size_t)yd.w + (size_t)ow0, di = fwd ? out : in;
        tte_f16 *ra = da + di, *rb = db + di;
        const tte_f16 *qa = sa + (fwd ? in : out), *qb = sb + (fwd ? in : out);
        if (da == db) /* a lone output */
            for (int32_t i = 0; i < ow1 - ow0; ++i) {
                const tte_f16 t = w[0] * qa[i * ss];
                ra[i * ds] = (tte_f16)(ra[i * ds] + t);
            }
        else if (qa == qb) /* both read the same input */
            for (int32_t i = 0; i < ow1 - ow0; ++i) {
                const tte_f16 q = qa[i * ss];
                const tte_v2f16 v = (tte_v2f16){ra[i * ds], rb[i * ds]} + w * (tte_v2f16){q, q};
                ra[i * ds] = v[0];
                rb[i * ds] = v[1];
            }
        else
            for (int32_t i = 0; i < ow1 - ow0; ++i) {
                const tte_v2f16 v = (tte_v2f16){ra[i * ds], rb[i * ds]}
                                    + w * (tte_v2f16){qa[i * ss], qb[i * ss]};
                ra[i * ds] = v[0];
                rb[i * ds] = v[1];
            }
    }
}

static void zero_pair(tte_f16 *a, tte_f16 *b, size_t n)
{
    for (size_t i = 0; i < n; ++i) a[i] = b[i] = 0;
}

/* Output channels a and b of one batch entry (xn, yn): conv_out of every position. */
static void conv_pair(const tte_f16 *xn, tte_dims4 xd, const tte_f16 *w, const tte_split *s,
                      const tte_f16 *bias, tte_f16 *yn, tte_dims4 yd, tte_window p, int32_t a,
                      int32_t b)
{
    const int32_t cg = xd.c / groups_of(p), og = yd.c / groups_of(p);
    const int32_t khw = p.kernel_h * p.kernel_w;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const tte_f16 *xa = xn + (size_t)((a / og) * cg) * xplane;
    const tte_f16 *xb = xn + (size_t)((b / og) * cg) * xplane;
    tte_f16 *ya = yn + (size_t)a * yplane, *yb = yn + (size_t)b * yplane;
    zero_pair(ya, yb, yplane);
    for (int32_t c = 0; c < cg; ++c) {
        const tte_f16 *wa = block(w, s, a, c, cg, p), *wb = block(w, s, b, c, cg, p);
        for (int32_t t = 0; t < khw; ++t)
            tap_pair(ya, yb, xa + (size_t)c * xplane, xb + (size_t)c * xplane,
                     (tte_v2f16){wa[t], wb[t]}, xd, yd, p, t / p.kernel_w, t % p.kernel_w, 1);
    }
    if (bias)
        for (size_t i = 0; i < yplane; ++i) {
            const tte_v2f16 v = (tte_v2f16){ya[i], yb[i]} + (tte_v2f16){bias[a], bias[b]};
            ya[i] = v[0];
            yb[i] = v[1];
        }
}

/* Input channels a and b of one batch entry (gyn) into planes da, db: grad_in of every
 * position. */
static void grad_in_pair(const tte_f16 *gyn, tte_dims4 yd, const tte_f16 *w,
                         const tte_split *s, tte_f16 *da, tte_f16 *db, tte_dims4 xd,
                         tte_window p, int32_t a, int32_t b, int32_t cg, int32_t og)
{
    const int32_t khw = p.kernel_h * p.kernel_w, oa = (a / cg) * og, ob = (b / cg) * og;
    const size_t yplane = (size_t)yd.h * (size_t)yd.w;
    zero_pair(da, db, (size_t)xd.h * (size_t)xd.w);
    for (int32_t j = 0; j < og; ++j) {
        const tte_f16 *wa = block(w, s, oa + j, a % cg, cg, p);
        const tte_f16 *wb = block(w, s, ob + j, b % cg, cg, p);
        for (int32_t t = 0; t < khw; ++t)
            tap_pair(da, db, gyn + (size_t)(oa + j) * yplane, gyn + (size_t)(ob + j) * yplane,
                     (tte_v2f16){wa[t], wb[t]}, xd, yd, p, t / p.kernel_w, t % p.kernel_w, 0);
    }
}

/* grad_w of two weight blocks (gy channel oa, x channel xa; ob, xb) at tap (ki, kj) */
static tte_v2f16 grad_w_pair(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy, tte_dims4 yd,
                             tte_window p, int32_t oa, int32_t xa, int32_t ob, int32_t xb,
                             int32_t ki, int32_t kj)
{
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const int32_t offh = ki * p.dilation_h - p.pad_top, offw = kj * p.dilation_w - p.pad_left;
    int32_t oh0, oh1, ow0, ow1;
    tte_v2f16 acc = {0, 0};
    tte_tap_range(offh, p.stride_h, xd.h, yd.h, &oh0, &oh1);
    tte_tap_range(offw, p.stride_w, xd.w, yd.w, &ow0, &ow1);
    for (int32_t n = 0; n < yd.n; ++n)
        for (int32_t oh = oh0; oh < oh1; ++oh) {
            const size_t in = (size_t)(oh * p.stride_h + offh) * (size_t)xd.w
                              + (size_t)(ow0 * p.stride_w + offw);
            const size_t out = (size_t)oh * (size_t)yd.w + (size_t)ow0;
            const tte_f16 *ra = x + ((size_t)n * (size_t)xd.c + (size_t)xa) * xplane + in;
            const tte_f16 *rb = x + ((size_t)n * (size_t)xd.c + (size_t)xb) * xplane + in;
            const tte_f16 *ga = gy + ((size_t)n * (size_t)yd.c + (size_t)oa) * yplane + out;
            const tte_f16 *gb = gy + ((size_t)n * (size_t)yd.c + (size_t)ob) * yplane + out;
            for (int32_t i = 0; i < ow1 - ow0; ++i)
                acc = acc + (tte_v2f16){ra[i * p.stride_w], rb[i * p.stride_w]}
                            * (tte_v2f16){ga[i], gb[i]};
        }
    return acc;
}
#endif

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

/* The taps of every (o, c) block, gathered once per output channel (cg <= 1024). */
#define TTE_F16_MAX_CG 1024

/* The portable forward, out of line so that its 4 KB of weight pointers (on RV32) are not
 * on the stack while a fast path runs (the firmware's stack is 8 KB). */
#ifdef __GNUC__
__attribute__((noinline))
#endif
static void conv_scalar(const tte_f16 *x, tte_dims4 xd, const tte_f16 *w, const tte_f16 *bias,
                        tte_f16 *y, tte_dims4 yd, tte_window p, tte_split s, int acc32);

void tte_conv2d_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *w, const tte_f16 *bias,
                    tte_f16 *y, tte_dims4 yd, tte_window p, tte_split s, int acc32)
{
#if TTE_RVV
    if (tte_rvv_conv2d_f16(x, xd, w, bias, y, yd, p, s, acc32)) return;
#endif
#if TTE_V2F16
    if (!acc32) {
        const size_t xbatch = (size_t)xd.c * (size_t)xd.h * (size_t)xd.w;
        const size_t ybatch = (size_t)yd.c * (size_t)yd.h * (size_t)yd.w;
        for (int32_t n = 0; n < yd.n; ++n)
            for (int32_t o = 0; o < yd.c; o += 2)
                conv_pair(x + (size_t)n * xbatch, xd, w, &s, bias, y + (size_t)n * ybatch, yd, p,
                          o, o + 1 < yd.c ? o + 1 : o);
        return;
    }
#endif
    conv_scalar(x, xd, w, bias, y, yd, p, s, acc32);
}

static void conv_scalar(const tte_f16 *x, tte_dims4 xd, const tte_f16 *w, const tte_f16 *bias,
                        tte_f16 *y, tte_dims4 yd, tte_window p, tte_split s, int acc32)
{
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w;
    const tte_f16 *wa[TTE_F16_MAX_CG];
    for (int32_t n = 0; n < yd.n; ++n) {
        const tte_f16 *xn = x + (size_t)n * (size_t)xd.c * xplane;
        for (int32_t o = 0; o < yd.c; ++o) {
            const int32_t c0 = (o / og) * cg;
            tte_f16 *yo = y + ((size_t)n * (size_t)yd.c + (size_t)o) * (size_t)yd.h * (size_t)yd.w;
            for (int32_t c = 0; c < cg; ++c) wa[c] = block(w, &s, o, c, cg, p);
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

void tte_conv2d_grad_input_f16(const tte_f16 *gy, tte_dims4 yd, const tte_f16 *w,
                               tte_f16 *gx, tte_dims4 xd, tte_window p, tte_split s, int acc32)
{
#if TTE_RVV
    if (tte_rvv_conv2d_grad_input_f16(gy, yd, w, gx, xd, p, s, acc32)) return;
#endif
#if TTE_V2F16
    if (!acc32) {
        const int32_t cg = xd.c / groups_of(p), og = yd.c / groups_of(p);
        const size_t xplane = (size_t)xd.h * (size_t)xd.w;
        const size_t ybatch = (size_t)yd.c * (size_t)yd.h * (size_t)yd.w;
        for (int32_t n = 0; n < xd.n; ++n)
            for (int32_t c = 0; c < xd.c; c += 2) {
                const int32_t b = c + 1 < xd.c ? c + 1 : c;
                grad_in_pair(gy + (size_t)n * ybatch, yd, w, &s,
                             gx + ((size_t)n * (size_t)xd.c + (size_t)c) * xplane,
                             gx + ((size_t)n * (size_t)xd.c + (size_t)b) * xplane, xd, p, c, b,
                             cg, og);
            }
        return;
    }
#endif
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w;
    for (int32_t n = 0; n < xd.n; ++n) {
        const tte_f16 *gyn = gy + (size_t)n * (size_t)yd.c * (size_t)yd.h * (size_t)yd.w;
        for (int32_t c = 0; c < xd.c; ++c) {
            tte_f16 *gc = gx + ((size_t)n * (size_t)xd.c + (size_t)c) * xplane;
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
#if TTE_V2F16
    if (!acc32 && gx != gy) { /* not in place: planes in pairs straight into gx */
        const size_t plane = (size_t)d.h * (size_t)d.w;
        for (int32_t n = 0; n < d.n; ++n)
            for (int32_t c = 0; c < d.c; c += 2) {
                const int32_t b = c + 1 < d.c ? c + 1 : c;
                grad_in_pair(gy + (size_t)n * (size_t)d.c * plane, d, w, &s,
                             gx + ((size_t)n * (size_t)d.c + (size_t)c) * plane,
                             gx + ((size_t)n * (size_t)d.c + (size_t)b) * plane, d, p, c, b, 1, 1);
            }
        return;
    }
#endif
    const size_t plane = (size_t)d.h * (size_t)d.w;
    for (int32_t n = 0; n < d.n; ++n) {
        const tte_f16 *gyn = gy + (size_t)n * (size_t)d.c * plane;
        for (int32_t c = 0; c < d.c; ++c) {
            /* the plane goes to scratch first: gyn's plane c may be gx's */
#if TTE_V2F16
            if (!acc32)
                grad_in_pair(gyn, d, w, &s, scratch, scratch, d, p, c, c, 1, 1);
            else
#endif
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

#if TTE_V2F16
/* weight_grads in half pairs: consecutive trained blocks two by two */
static void weight_grad_pairs(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy, tte_dims4 yd,
                              tte_window p, tte_split s, put_fn put, void *ctx)
{
    const int32_t cg = tte_split_grad_cg(&s, xd, p), og = yd.c / groups_of(p);
    const int32_t khw = p.kernel_h * p.kernel_w;
    int32_t pending = 0, po = 0, pxc = 0;
    size_t pi = 0;
    for (int32_t o = 0; o < yd.c; ++o)
        for (int32_t c = 0; c < cg; ++c) {
            size_t i;
            int32_t xc;
            if (!tte_split_grad_block(&s, o, c, cg, og, &i, &xc)) continue;
            i *= (size_t)khw;
            if (!pending) {
                pending = 1, po = o, pxc = xc, pi = i;
                continue;
            }
            pending = 0;
            for (int32_t t = 0; t < khw; ++t) {
                const tte_v2f16 v = grad_w_pair(x, xd, gy, yd, p, po, pxc, o, xc, t / p.kernel_w,
                                                t % p.kernel_w);
                put(ctx, pi + (size_t)t, (float)v[0]);
                put(ctx, i + (size_t)t, (float)v[1]);
            }
        }
    for (int32_t t = 0; pending && t < khw; ++t)
        put(ctx, pi + (size_t)t, (float)grad_w_pair(x, xd, gy, yd, p, po, pxc, po, pxc,
                                                    t / p.kernel_w, t % p.kernel_w)[0]);
}
#endif

static void weight_grads(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy, tte_dims4 yd,
                         tte_window p, tte_split s, int acc32, put_fn put, void *ctx)
{
    const int32_t cg = tte_split_grad_cg(&s, xd, p), og = yd.c / groups_of(p);
    const int32_t khw = p.kernel_h * p.kernel_w;
#if TTE_V2F16
    if (!acc32) {
        weight_grad_pairs(x, xd, gy, yd, p, s, put, ctx);
        return;
    }
#endif
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

#if TTE_V2F16
/* channel_total of channels a and b in half pairs */
static tte_v2f16 channel_pair(const tte_f16 *gy, tte_dims4 d, int32_t a, int32_t b)
{
    const size_t plane = (size_t)d.h * (size_t)d.w;
    tte_v2f16 acc = {0, 0};
    for (int32_t n = 0; n < d.n; ++n) {
        const tte_f16 *ga = gy + ((size_t)n * (size_t)d.c + (size_t)a) * plane;
        const tte_f16 *gb = gy + ((size_t)n * (size_t)d.c + (size_t)b) * plane;
        for (size_t i = 0; i < plane; ++i) acc = acc + (tte_v2f16){ga[i], gb[i]};
    }
    return acc;
}
#endif

void tte_channel_sum_f16(const tte_f16 *gy, tte_dims4 d, tte_f16 *gb, int acc32)
{
#if TTE_RVV
    tte_rvv_channel_sum_f16(gy, d, gb, NULL, acc32);
    return;
#endif
#if TTE_V2F16
    for (int32_t c = 0; !acc32 && c < d.c; c += 2) {
        const int32_t b = c + 1 < d.c ? c + 1 : c;
        const tte_v2f16 v = channel_pair(gy, d, c, b);
        gb[c] = v[0];
        gb[b] = v[1];
    }
    if (!acc32) return;
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
#if TTE_V2F16
    for (int32_t c = 0; !acc32 && c < d.c; c += 2) {
        const tte_v2f16 v = channel_pair(gy, d, c, c + 1 < d.c ? c + 1 : c);
        tte_sgd_step_f16(b + c, (float)v[0], momentum ? momentum + c : NULL, lr, momentum_coef,
                         weight_decay);
        if (c + 1 < d.c)
            tte_sgd_step_f16(b + c + 1, (float)v[1], momentum ? momentum + c + 1 : NULL, lr,
                             momentum_coef, weight_decay);
    }
    if (!acc32) return;
#endif
    for (int32_t c = 0; c < d.c; ++c)
        tte_sgd_step_f16(b + c, channel_total(gy, d, c, acc32), momentum ? momentum + c : NULL,
                         lr, momentum_coef, weight_decay);
}
