/* RVV (V + Zvfh) paths of the fp16 conv, depthwise, linear and channel-sum kernels; see
 * tte_f16.h. Compiled where TTE_RVV (clang 16 -march=rv32imafcv_zfh_zvfh0p1, not with
 * TTE_SCALAR); conv_f16.c and linear_f16.c call them first and take their scalar path
 * where a function here returns 0.
 *
 * Every vector lane is one output. Conv forward and input gradient: output (input) pixels
 * along a row, accumulated in the output row over the taps (rows), or, where rows are too
 * short to fill a vector, channels at one position (lanes; lanes_faster picks). Weight
 * gradient: a weight element across output channels; channel sums: channels; linear: output
 * or input features. Each lane sums its terms in the scalar path's order (conv_f16.c:
 * forward over (c, ki, kj) then the bias, input gradient over (o, ki, kj), weight gradient
 * over (n, oh, ow), channel sums over (n, h, w); linear_f16.c), so every result equals the
 * scalar path's bit for bit:
 * - half accumulation: vfmul then vfadd, two roundings as the scalar product and sum (never
 *   vfmacc: one rounding);
 * - float accumulation: vfwmacc / vfwadd from halves: the product of two halves is exact in
 *   float (11 + 11 bits), so the fused widening op rounds once, as acc + a*b does.
 * A lane whose tap falls in the padding gets no term (the scalar path skips it), not a
 * zero term: conv rows run over the taps' ranges of real input (tte_tap_range).
 * Conversions are vfwcvt.f.f.v and vfncvt.f.f.w under the dynamic rounding mode (nearest
 * even, as the scalar (tte_f16) casts): QEMU 7.2 aborts on the static-rounding vfcvt.rtz.*.
 * Vectors are e16m4 halves and e32m8 floats: 32 lanes at QEMU's VLEN of 128.
 *
 * Left to the scalar path (return 0): windows of more than 16 rows or columns; conv rows
 * with float sums wider than the 256-float buffer; weight gradients of a depthwise weight
 * trained in a permuted channel subset (split along axis 0 with pos). Lanes across channels
 * take whole weights, and split ones along input channels in the forward; the rest goes by
 * rows, which take any split through tte_split_block.
 */
#include "tte_f16.h"

#if TTE_RVV
#include <riscv_vector.h>

typedef vfloat16m4_t vh;
typedef vfloat32m8_t vf;

/* A convolution's geometry, passed by pointer: RV32 passes larger structs by value through
 * a copy (a memcpy call per call of a helper). */
typedef struct {
    tte_dims4 xd, yd;
    tte_window p;
} geom;

/* Float sums of conv rows live in a stack buffer of this many floats, a block of whole rows
 * at a time (half sums live in the output itself). */
#define ACC_FLOATS 256

static size_t setvl(size_t n)
{
    return __riscv_vsetvl_e16m4(n);
}

static vh ld16(const tte_f16 *p, ptrdiff_t stride, size_t vl)
{
    return stride == 1 ? __riscv_vle16_v_f16m4(p, vl)
                       : __riscv_vlse16_v_f16m4(p, stride * (ptrdiff_t)sizeof(tte_f16), vl);
}

static void st16(tte_f16 *p, ptrdiff_t stride, vh v, size_t vl)
{
    if (stride == 1)
        __riscv_vse16_v_f16m4(p, v, vl);
    else
        __riscv_vsse16_v_f16m4(p, stride * (ptrdiff_t)sizeof(tte_f16), v, vl);
}

static vf ld32(const float *p, ptrdiff_t stride, size_t vl)
{
    return stride == 1 ? __riscv_vle32_v_f32m8(p, vl)
                       : __riscv_vlse32_v_f32m8(p, stride * (ptrdiff_t)sizeof(float), vl);
}

static void st32(float *p, ptrdiff_t stride, vf v, size_t vl)
{
    if (stride == 1)
        __riscv_vse32_v_f32m8(p, v, vl);
    else
        __riscv_vsse32_v_f32m8(p, stride * (ptrdiff_t)sizeof(float), v, vl);
}

static vf widen(vh v, size_t vl)
{
    return __riscv_vfwcvt_f_f_v_f32m8(v, vl);
}

static vh narrow(vf v, size_t vl)
{
    return __riscv_vfncvt_f_f_w_f16m4(v, vl);
}

/* acc + s*v with the scalar path's roundings: half (product, then sum) or float (exact
 * product, one rounding) */
static vh mac_h(vh acc, tte_f16 s, vh v, size_t vl)
{
    return __riscv_vfadd_vv_f16m4(acc, __riscv_vfmul_vf_f16m4(v, s, vl), vl);
}

static vf mac_f(vf acc, tte_f16 s, vh v, size_t vl)
{
    return __riscv_vfwmacc_vf_f32m8(acc, s, v, vl);
}

static vh mac_hv(vh acc, vh a, vh b, size_t vl)
{
    return __riscv_vfadd_vv_f16m4(acc, __riscv_vfmul_vv_f16m4(a, b, vl), vl);
}

static vf mac_fv(vf acc, vh a, vh b, size_t vl)
{
    return __riscv_vfwmacc_vv_f32m8(acc, a, b, vl);
}

/* vl outputs, their float values g (a half sum widened exactly), at out[i*stride]: stored
 * rounded to half (gradient), or one tte_sgd_step_f16 each on sgd's weight and momentum */
static void emit(vf g, tte_f16 *out, const tte_f16_sgd *sgd, size_t at, ptrdiff_t stride,
                 size_t vl)
{
    if (!sgd) {
        st16(out + at, stride, narrow(g, vl), vl);
        return;
    }
    tte_f16 *w = sgd->w + at;
    const vf wv = widen(ld16(w, stride, vl), vl);
    if (sgd->weight_decay != 0.0f)
        g = __riscv_vfadd_vv_f32m8(g, __riscv_vfmul_vf_f32m8(wv, sgd->weight_decay, vl), vl);
    if (sgd->momentum) {
        tte_f16 *b = sgd->momentum + at;
        const vf bv = widen(ld16(b, stride, vl), vl);
        g = __riscv_vfadd_vv_f32m8(__riscv_vfmul_vf_f32m8(bv, sgd->momentum_coef, vl), g, vl);
        st16(b, stride, narrow(g, vl), vl);
    }
    st16(w, stride, narrow(__riscv_vfsub_vv_f32m8(wv, __riscv_vfmul_vf_f32m8(g, sgd->lr, vl),
                                                  vl), vl), vl);
}

/* ---- convolution rows -------------------------------------------------------------- */

/* acc[at + i*as] += w * src[i*ss] for i < n; acc is halves, or floats with acc32 */
static inline void row_mac(void *acc, size_t at, ptrdiff_t as, const tte_f16 *src, ptrdiff_t ss,
                    tte_f16 w, size_t n, int acc32)
{
    size_t vl;
    if (acc32) {
        for (float *a = (float *)acc + at; n > 0; n -= vl, a += (ptrdiff_t)vl * as,
                                                  src += (ptrdiff_t)vl * ss) {
            vl = setvl(n);
            st32(a, as, mac_f(ld32(a, as, vl), w, ld16(src, ss, vl), vl), vl);
        }
    } else {
        for (tte_f16 *a = (tte_f16 *)acc + at; n > 0; n -= vl, a += (ptrdiff_t)vl * as,
                                                    src += (ptrdiff_t)vl * ss) {
            vl = setvl(n);
            st16(a, as, mac_h(ld16(a, as, vl), w, ld16(src, ss, vl), vl), vl);
        }
    }
}

static void zero(void *acc, size_t len, int acc32)
{
    size_t vl;
    for (size_t i = 0; i < len; i += vl) {
        vl = setvl(len - i);
        if (acc32)
            __riscv_vse32_v_f32m8((float *)acc + i, __riscv_vfmv_v_f_f32m8(0.0f, vl), vl);
        else
            __riscv_vse16_v_f16m4((tte_f16 *)acc + i, __riscv_vfmv_v_f_f16m4(0, vl), vl);
    }
}

/* out[i] = acc[i] (+ *bias), rounded to half; a half acc is out itself */
static void finish(const void *acc, tte_f16 *out, size_t len, const tte_f16 *bias, int acc32)
{
    size_t vl;
    if (!acc32 && !bias) return;
    for (size_t i = 0; i < len; i += vl) {
        vl = setvl(len - i);
        if (acc32) {
            vf v = __riscv_vle32_v_f32m8((const float *)acc + i, vl);
            if (bias) v = __riscv_vfadd_vf_f32m8(v, (float)*bias, vl);
            __riscv_vse16_v_f16m4(out + i, narrow(v, vl), vl);
        } else {
            __riscv_vse16_v_f16m4(
                out + i, __riscv_vfadd_vf_f16m4(__riscv_vle16_v_f16m4(out + i, vl), *bias, vl),
                vl);
        }
    }
}

#define MAX_TAPS 16 /* kernel rows or columns the tap tables hold; more: scalar path */

/* The output positions each tap maps to real input: rows [h[2 ki], h[2 ki + 1]), columns
 * [v[2 kj], v[2 kj + 1]), for the rows one accumulation block holds: output rows [r0, r1)
 * (fwd), or output rows whose input row lies in [r0, r1) (the input gradient). */
typedef struct {
    int32_t h[2 * MAX_TAPS], v[2 * MAX_TAPS];
} tap_table;

static void taps_of(tap_table *t, const geom *g, int32_t r0, int32_t r1, int fwd)
{
    const tte_dims4 xd = g->xd, yd = g->yd;
    const tte_window p = g->p;
    for (int32_t ki = 0; ki < p.kernel_h; ++ki) {
        const int32_t offh = ki * p.dilation_h - p.pad_top;
        int32_t *h = t->h + 2 * ki;
        if (fwd) {
            tte_tap_range(offh, p.stride_h, xd.h, yd.h, h, h + 1);
            h[0] = h[0] > r0 ? h[0] : r0;
            h[1] = h[1] < r1 ? h[1] : r1;
        } else {
            tte_tap_range(offh - r0, p.stride_h, r1 - r0, yd.h, h, h + 1);
        }
    }
    for (int32_t kj = 0; kj < p.kernel_w; ++kj)
        tte_tap_range(kj * p.dilation_w - p.pad_left, p.stride_w, xd.w, yd.w, t->v + 2 * kj,
                      t->v + 2 * kj + 1);
}

/* Every tap of weight block wk, for the output positions (oh, ow) in its table entries.
 * fwd: acc holds output rows from r0 (width yd.w) and gets w * x[input]; else acc holds
 * input rows from r0 (width xd.w) and gets w * gy[output] (the input gradient). */
static void taps_rows(void *acc, const tte_f16 *src, const tte_f16 *wk, const tap_table *t,
                      const geom *g, int32_t r0, int fwd, int acc32)
{
    const tte_dims4 xd = g->xd, yd = g->yd;
    const tte_window p = g->p;
    const size_t obase = (size_t)r0 * (size_t)(fwd ? yd.w : xd.w);
    const ptrdiff_t as = fwd ? 1 : p.stride_w, ss = fwd ? p.stride_w : 1;
    /* whole rows whose inputs follow each other at one stride: one run */
    const int whole_rows = p.stride_h * xd.w == p.stride_w * yd.w;
    for (int32_t ki = 0; ki < p.kernel_h; ++ki) {
        const int32_t oh0 = t->h[2 * ki], oh1 = t->h[2 * ki + 1];
        const int32_t offh = ki * p.dilation_h - p.pad_top;
        for (int32_t kj = 0; kj < p.kernel_w && oh0 < oh1; ++kj) {
            const int32_t ow0 = t->v[2 * kj], ow1 = t->v[2 * kj + 1];
            const int32_t offw = kj * p.dilation_w - p.pad_left;
            const tte_f16 w = wk[ki * p.kernel_w + kj];
            int32_t rows = oh1 - oh0;
            size_t n = (size_t)(ow1 - ow0);
            if (ow0 >= ow1) continue;
            if (whole_rows && ow0 == 0 && ow1 == yd.w) {
                n *= (size_t)rows;
                rows = 1;
            }
            for (int32_t oh = oh0; oh < oh0 + rows; ++oh) {
                const size_t o = (size_t)oh * (size_t)yd.w + (size_t)ow0;
                const size_t i = (size_t)(oh * p.stride_h + offh) * (size_t)xd.w
                                 + (size_t)(ow0 * p.stride_w + offw);
                row_mac(acc, (fwd ? o : i) - obase, as, src + (fwd ? i : o), ss, w, n, acc32);
            }
        }
    }
}

static int32_t groups_of(tte_window p)
{
    return p.groups > 0 ? p.groups : 1;
}

static const tte_f16 *block(const tte_f16 *w, const tte_split *s, int32_t o, int32_t c,
                            int32_t cg, const tte_window *p)
{
    return tte_split_block(w, s, sizeof(tte_f16), o, c, cg, p->kernel_h * p->kernel_w);
}

/* Rows per accumulation block of planes `width` wide: the whole plane in half, what the
 * float buffer holds in float (0: a row is wider than it) */
static int32_t block_rows(int32_t width, int32_t height, int acc32)
{
    return acc32 ? (width > 0 ? ACC_FLOATS / width : height) : height;
}

/* ---- convolution lanes: one position at a time, lanes across channels ------------------ *
 * Rows of a few outputs leave most of a vector idle; small planes with many channels take
 * their lanes across channels instead, summing each lane's terms in the scalar order. */

/* Weight block (o, c) as tte_split_block finds it, and *stride: how far apart the blocks
 * (o + l, c) of the next output channels lie (a whole weight, or split along input
 * channels: each part is [O][its channels][taps]). */
static const tte_f16 *lanes_block(const tte_f16 *w, const tte_split *s, int32_t o, int32_t c,
                                  int32_t cg, int32_t khw, ptrdiff_t *stride)
{
    const int32_t j = s->count && s->pos ? s->pos[c] : c;
    if (s->count == 0 || j < s->count) {
        const int32_t part = s->count ? s->count : cg;
        *stride = (ptrdiff_t)part * khw;
        return w + ((size_t)o * (size_t)part + (size_t)j) * (size_t)khw;
    }
    *stride = (ptrdiff_t)(cg - s->count) * khw;
    return (const tte_f16 *)s->frozen
           + ((size_t)o * (size_t)(cg - s->count) + (size_t)(j - s->count)) * (size_t)khw;
}

/* Forward of output channels [o0, o0 + lanes): each position sums over (c, ki, kj) as
 * conv_out. xl == 0: the lanes share their group's x; else lane l reads the x channels xl
 * further on (one output channel per group). */
static void conv_lanes(const tte_f16 *xn, const tte_f16 *w, const tte_split *s,
                       const tte_f16 *bias, tte_f16 *yn, const geom *g, int32_t o0,
                       int32_t lanes, ptrdiff_t xl, int acc32)
{
    const tte_dims4 xd = g->xd, yd = g->yd;
    const tte_window p = g->p;
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const int32_t kw = p.kernel_w, khw = p.kernel_h * p.kernel_w;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    size_t vl;
    for (int32_t l = 0; l < lanes; l += (int32_t)vl) {
        const int32_t o = o0 + l;
        const tte_f16 *xg = xn + (size_t)((o / og) * cg) * xplane;
        vl = setvl((size_t)(lanes - l));
        for (int32_t oh = 0; oh < yd.h; ++oh) {
            const int32_t h0 = oh * p.stride_h - p.pad_top;
            int32_t ki0, ki1;
            tte_tap_range(h0, p.dilation_h, xd.h, p.kernel_h, &ki0, &ki1);
            for (int32_t ow = 0; ow < yd.w; ++ow) {
                const int32_t w0 = ow * p.stride_w - p.pad_left;
                int32_t kj0, kj1;
                vh hacc = __riscv_vfmv_v_f_f16m4(0, vl);
                vf facc = __riscv_vfmv_v_f_f32m8(0.0f, vl);
                tte_tap_range(w0, p.dilation_w, xd.w, kw, &kj0, &kj1);
                for (int32_t c = 0; c < cg; ++c) {
                    ptrdiff_t ws;
                    const tte_f16 *wc = lanes_block(w, s, o, c, cg, khw, &ws);
                    for (int32_t ki = ki0; ki < ki1; ++ki) {
                        const tte_f16 *xr = xg + (size_t)c * xplane
                                            + (size_t)(h0 + ki * p.dilation_h) * (size_t)xd.w
                                            + (size_t)(w0 + kj0 * p.dilation_w);
                        const tte_f16 *wr = wc + ki * kw + kj0;
                        const int32_t n = kj1 - kj0, dw = p.dilation_w;
                        if (xl == 0 && acc32)
                            for (int32_t j = 0; j < n; ++j)
                                facc = mac_f(facc, xr[j * dw], ld16(wr + j, ws, vl), vl);
                        else if (xl == 0)
                            for (int32_t j = 0; j < n; ++j)
                                hacc = mac_h(hacc, xr[j * dw], ld16(wr + j, ws, vl), vl);
                        else if (acc32)
                            for (int32_t j = 0; j < n; ++j)
                                facc = mac_fv(facc, ld16(xr + j * dw, xl, vl),
                                              ld16(wr + j, ws, vl), vl);
                        else
                            for (int32_t j = 0; j < n; ++j)
                                hacc = mac_hv(hacc, ld16(xr + j * dw, xl, vl),
                                              ld16(wr + j, ws, vl), vl);
                    }
                }
                if (bias && acc32) facc = __riscv_vfwadd_wv_f32m8(facc, ld16(bias + o, 1, vl), vl);
                if (bias && !acc32) hacc = __riscv_vfadd_vv_f16m4(hacc, ld16(bias + o, 1, vl), vl);
                st16(yn + (size_t)o * yplane + (size_t)oh * (size_t)yd.w + (size_t)ow,
                     (ptrdiff_t)yplane, acc32 ? narrow(facc, vl) : hacc, vl);
            }
        }
    }
}

/* The taps k < count of a window axis through which output positions reach input position
 * i (conv_f16.c's untap), in k order, with those positions in pos; returns how many. */
static int32_t untaps(int32_t i, int32_t count, int32_t stride, int32_t dil, int32_t pad,
                      int32_t size, int32_t *k, int32_t *pos)
{
    int32_t n = 0;
    for (int32_t t = 0; t < count; ++t) {
        const int32_t u = i + pad - t * dil;
        if (u >= 0 && u % stride == 0 && u / stride < size) {
            k[n] = t;
            pos[n++] = u / stride;
        }
    }
    return n;
}

/* Input gradient of input channels [c0, c0 + lanes) (a whole weight): each position sums
 * over (o, ki, kj) as grad_in. Lanes of one group share gy (own == 0; lane l's weight block is
 * khw further on); with one input channel per group (own), lane l reads its group's gy
 * channels, og planes further on, and weight blocks og further on. */
static void grad_in_lanes(const tte_f16 *gyn, const tte_f16 *w, tte_f16 *gxn, const geom *g,
                          int32_t c0, int32_t lanes, int own, int acc32)
{
    const tte_dims4 xd = g->xd, yd = g->yd;
    const tte_window p = g->p;
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const int32_t kw = p.kernel_w, khw = p.kernel_h * p.kernel_w;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const ptrdiff_t gl = own ? (ptrdiff_t)((size_t)og * yplane) : 0;
    const ptrdiff_t ws = own ? (ptrdiff_t)og * khw : khw;
    int32_t kis[MAX_TAPS], ohs[MAX_TAPS], kjs[MAX_TAPS], ows[MAX_TAPS];
    size_t vl;
    for (int32_t l = 0; l < lanes; l += (int32_t)vl) {
        const int32_t c = c0 + l, o0 = (c / cg) * og;
        const tte_f16 *wl = w + ((size_t)o0 * (size_t)cg + (size_t)(c % cg)) * (size_t)khw;
        vl = setvl((size_t)(lanes - l));
        for (int32_t ih = 0; ih < xd.h; ++ih) {
            const int32_t nh = untaps(ih, p.kernel_h, p.stride_h, p.dilation_h, p.pad_top, yd.h,
                                      kis, ohs);
            for (int32_t iw = 0; iw < xd.w; ++iw) {
                const int32_t nw = untaps(iw, kw, p.stride_w, p.dilation_w, p.pad_left, yd.w,
                                          kjs, ows);
                vh hacc = __riscv_vfmv_v_f_f16m4(0, vl);
                vf facc = __riscv_vfmv_v_f_f32m8(0.0f, vl);
                for (int32_t j = 0; j < og; ++j) {
                    const tte_f16 *wo = wl + (size_t)j * (size_t)cg * (size_t)khw;
                    const tte_f16 *go = gyn + (size_t)(o0 + j) * yplane;
                    for (int32_t a = 0; a < nh; ++a) {
                        const tte_f16 *gr = go + (size_t)ohs[a] * (size_t)yd.w;
                        const tte_f16 *wr = wo + kis[a] * kw;
                        if (!own && acc32)
                            for (int32_t b = 0; b < nw; ++b)
                                facc = mac_f(facc, gr[ows[b]], ld16(wr + kjs[b], ws, vl), vl);
                        else if (!own)
                            for (int32_t b = 0; b < nw; ++b)
                                hacc = mac_h(hacc, gr[ows[b]], ld16(wr + kjs[b], ws, vl), vl);
                        else if (acc32)
                            for (int32_t b = 0; b < nw; ++b)
                                facc = mac_fv(facc, ld16(gr + ows[b], gl, vl),
                                              ld16(wr + kjs[b], ws, vl), vl);
                        else
                            for (int32_t b = 0; b < nw; ++b)
                                hacc = mac_hv(hacc, ld16(gr + ows[b], gl, vl),
                                              ld16(wr + kjs[b], ws, vl), vl);
                    }
                }
                st16(gxn + (size_t)c * xplane + (size_t)ih * (size_t)xd.w + (size_t)iw,
                     (ptrdiff_t)xplane, acc32 ? narrow(facc, vl) : hacc, vl);
            }
        }
    }
}

/* Which way a conv forward or input gradient goes: instruction counts of this file's code
 * fitted to QEMU's on mbv2_stack's layers (both ways are exact; this only picks the faster).
 * Rows pay per (output, input) channel block, per tap and per row of a tap; lanes pay per
 * position, per channel block and per term, for every set of up to a vector of channels. A 1x1 window that reads
 * whole rows makes one run of each block (taps_rows merges them). */
static int lanes_faster(const geom *g, float blocks, float sets, float positions,
                        float lane_blocks, float terms)
{
    const tte_window p = g->p;
    const int whole = p.kernel_h == 1 && p.kernel_w == 1 && p.pad_left == 0 && p.pad_right == 0
                      && p.stride_h * g->xd.w == p.stride_w * g->yd.w;
    const int32_t vlmax = (int32_t)__riscv_vsetvlmax_e16m4();
    const int32_t run = whole ? g->yd.h * g->yd.w : g->yd.w;
    const float chunks = (float)((run + vlmax - 1) / vlmax), rows = whole ? 1.0f : (float)g->yd.h;
    const float taps = (float)(p.kernel_h * p.kernel_w);
    const float by_rows = blocks * (150.0f + taps * (20.0f + rows * (37.0f + 8.0f * chunks)));
    const float by_lanes = sets * positions * (116.0f + lane_blocks * (35.0f + terms * 12.0f));
    return by_lanes < by_rows;
}

static float lane_sets(int32_t groups, int32_t lanes)
{
    const int32_t vlmax = (int32_t)__riscv_vsetvlmax_e16m4();
    return (float)groups * (float)((lanes + vlmax - 1) / vlmax);
}

int tte_rvv_conv2d_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *w, const tte_f16 *bias,
                       tte_f16 *y, tte_dims4 yd, tte_window p, tte_split s, int acc32)
{
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const int32_t rows = block_rows(yd.w, yd.h, acc32);
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const geom g = {xd, yd, p};
    const float blocks = (float)yd.c * (float)cg, taps = (float)(p.kernel_h * p.kernel_w);
    float buf[ACC_FLOATS];
    if (og > 1 && !(s.count && s.axis == 0)
        && lanes_faster(&g, blocks, lane_sets(groups, og), (float)yplane, (float)cg, taps)) {
        for (int32_t n = 0; n < yd.n; ++n)
            for (int32_t k = 0; k < groups; ++k)
                conv_lanes(x + (size_t)n * (size_t)xd.c * xplane, w, &s, bias,
                           y + (size_t)n * (size_t)yd.c * yplane, &g, k * og, og, 0, acc32);
        return 1;
    }
    if (og == 1 && s.count == 0
        && lanes_faster(&g, blocks, lane_sets(1, yd.c), (float)yplane, (float)cg, taps)) {
        for (int32_t n = 0; n < yd.n; ++n)
            conv_lanes(x + (size_t)n * (size_t)xd.c * xplane, w, &s, bias,
                       y + (size_t)n * (size_t)yd.c * yplane, &g, 0, yd.c,
                       (ptrdiff_t)((size_t)cg * xplane), acc32);
        return 1;
    }
    /* float sums of rows wider than the buffer, or windows wider than the tap table: the
     * scalar path */
    if (rows < 1 || p.kernel_h > MAX_TAPS || p.kernel_w > MAX_TAPS) return 0;
    for (int32_t n = 0; n < yd.n; ++n)
        for (int32_t o = 0; o < yd.c; ++o) {
            const tte_f16 *xn = x + ((size_t)n * (size_t)xd.c + (size_t)((o / og) * cg)) * xplane;
            tte_f16 *yo = y + ((size_t)n * (size_t)yd.c + (size_t)o) * yplane;
            for (int32_t r0 = 0; r0 < yd.h; r0 += rows) {
                const int32_t r1 = r0 + rows < yd.h ? r0 + rows : yd.h;
                const size_t len = (size_t)(r1 - r0) * (size_t)yd.w;
                void *acc = acc32 ? (void *)buf : (void *)(yo + (size_t)r0 * (size_t)yd.w);
                tap_table taps;
                taps_of(&taps, &g, r0, r1, 1);
                zero(acc, len, acc32);
                for (int32_t c = 0; c < cg; ++c)
                    taps_rows(acc, xn + (size_t)c * xplane, block(w, &s, o, c, cg, &p), &taps,
                              &g, r0, 1, acc32);
                finish(acc, yo + (size_t)r0 * (size_t)yd.w, len, bias ? bias + o : NULL, acc32);
            }
        }
    return 1;
}

/* Input gradient of input channel ci (group of cg inputs, og outputs) of one batch entry
 * (gyn) into out: over the group's outputs o, then taps, as conv_f16.c's grad_in. */
static void grad_in_plane(tte_f16 *out, const tte_f16 *gyn, const tte_f16 *w,
                          const tte_split *s, const geom *g, int32_t ci, int32_t cg, int32_t og,
                          int32_t rows, int acc32)
{
    const tte_dims4 xd = g->xd, yd = g->yd;
    const size_t yplane = (size_t)yd.h * (size_t)yd.w;
    const int32_t o0 = (ci / cg) * og;
    float buf[ACC_FLOATS];
    for (int32_t r0 = 0; r0 < xd.h; r0 += rows) {
        const int32_t r1 = r0 + rows < xd.h ? r0 + rows : xd.h;
        const size_t len = (size_t)(r1 - r0) * (size_t)xd.w;
        void *acc = acc32 ? (void *)buf : (void *)(out + (size_t)r0 * (size_t)xd.w);
        tap_table taps;
        taps_of(&taps, g, r0, r1, 0);
        zero(acc, len, acc32);
        for (int32_t o = o0; o < o0 + og; ++o)
            taps_rows(acc, gyn + (size_t)o * yplane, block(w, s, o, ci % cg, cg, &g->p), &taps,
                      g, r0, 0, acc32);
        finish(acc, out + (size_t)r0 * (size_t)xd.w, len, NULL, acc32);
    }
}

int tte_rvv_conv2d_grad_input_f16(const tte_f16 *gy, tte_dims4 yd, const tte_f16 *w,
                                  tte_f16 *gx, tte_dims4 xd, tte_window p, tte_split s,
                                  int acc32)
{
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const int32_t rows = block_rows(xd.w, xd.h, acc32);
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const geom g = {xd, yd, p};
    const float taps = (float)(p.kernel_h * p.kernel_w) / (float)(p.stride_h * p.stride_w);
    const float blocks = (float)xd.c * (float)og;
    const int fits = s.count == 0 && p.kernel_h <= MAX_TAPS && p.kernel_w <= MAX_TAPS;
    if (fits && cg > 1
        && lanes_faster(&g, blocks, lane_sets(groups, cg), (float)xplane, (float)og, taps)) {
        for (int32_t n = 0; n < xd.n; ++n)
            for (int32_t k = 0; k < groups; ++k)
                grad_in_lanes(gy + (size_t)n * (size_t)yd.c * yplane, w,
                              gx + (size_t)n * (size_t)xd.c * xplane, &g, k * cg, cg, 0, acc32);
        return 1;
    }
    if (fits && cg == 1
        && lanes_faster(&g, blocks, lane_sets(1, xd.c), (float)xplane, (float)og, taps)) {
        for (int32_t n = 0; n < xd.n; ++n)
            grad_in_lanes(gy + (size_t)n * (size_t)yd.c * yplane, w,
                          gx + (size_t)n * (size_t)xd.c * xplane, &g, 0, xd.c, 1, acc32);
        return 1;
    }
    /* float sums of rows wider than the buffer, or windows wider than the tap table: the
     * scalar path */
    if (rows < 1 || p.kernel_h > MAX_TAPS || p.kernel_w > MAX_TAPS) return 0;
    for (int32_t n = 0; n < xd.n; ++n)
        for (int32_t c = 0; c < xd.c; ++c)
            grad_in_plane(gx + ((size_t)n * (size_t)xd.c + (size_t)c) * xplane,
                          gy + (size_t)n * (size_t)yd.c * yplane, w, &s, &g, c, cg, og, rows,
                          acc32);
    return 1;
}

int tte_rvv_depthwise_grad_input_f16(const tte_f16 *gy, tte_dims4 d, const tte_f16 *w,
                                     tte_f16 *gx, tte_f16 *scratch, tte_window p, tte_split s,
                                     int acc32)
{
    const int32_t rows = block_rows(d.w, d.h, acc32);
    const size_t plane = (size_t)d.h * (size_t)d.w;
    const geom g = {d, d, p};
    const float taps = (float)(p.kernel_h * p.kernel_w) / (float)(p.stride_h * p.stride_w);
    size_t vl;
    if (gx != gy && s.count == 0 && p.kernel_h <= MAX_TAPS && p.kernel_w <= MAX_TAPS
        && lanes_faster(&g, (float)d.c, lane_sets(1, d.c), (float)plane, 1.0f, taps)) {
        /* not in place: every channel's plane straight into gx */
        for (int32_t n = 0; n < d.n; ++n)
            grad_in_lanes(gy + (size_t)n * (size_t)d.c * plane, w,
                          gx + (size_t)n * (size_t)d.c * plane, &g, 0, d.c, 1, acc32);
        return 1;
    }
    /* float sums of rows wider than the buffer, or windows wider than the tap table: the
     * scalar path */
    if (rows < 1 || p.kernel_h > MAX_TAPS || p.kernel_w > MAX_TAPS) return 0;
    for (int32_t n = 0; n < d.n; ++n)
        for (int32_t c = 0; c < d.c; ++c) {
            /* into scratch first: gy's plane c may be gx's */
            grad_in_plane(scratch, gy + (size_t)n * (size_t)d.c * plane, w, &s, &g, c, 1, 1,
                          rows, acc32);
            tte_f16 *gc = gx + ((size_t)n * (size_t)d.c + (size_t)c) * plane;
            for (size_t i = 0; i < plane; i += vl) {
                vl = setvl(plane - i);
                __riscv_vse16_v_f16m4(gc + i, __riscv_vle16_v_f16m4(scratch + i, vl), vl);
            }
        }
    return 1;
}

/* ---- weight gradients: lanes are weight blocks --------------------------------------- */

/* Weight blocks of `lanes` output channels: lane l reads gy channel (gy + l*gl) and x channel
 * (x + l*xl; xl == 0: every lane reads the same), batch entries bx / by apart, and its
 * gradient goes to weight element at + l*il + t of tap t. Each sums over (n, oh, ow). */
typedef struct {
    const tte_f16 *x, *gy;
    ptrdiff_t xl, gl, il;
    size_t bx, by, at, lanes;
} wlanes;

static vf wgrad_sum(const wlanes *L, size_t l, size_t vl, const geom *g, int32_t ki,
                    int32_t kj, int acc32)
{
    const tte_dims4 xd = g->xd, yd = g->yd;
    const tte_window p = g->p;
    const int32_t offh = ki * p.dilation_h - p.pad_top, offw = kj * p.dilation_w - p.pad_left;
    int32_t oh0, oh1, ow0, ow1;
    vh hacc = __riscv_vfmv_v_f_f16m4(0, vl);
    vf facc = __riscv_vfmv_v_f_f32m8(0.0f, vl);
    tte_tap_range(offh, p.stride_h, xd.h, yd.h, &oh0, &oh1);
    tte_tap_range(offw, p.stride_w, xd.w, yd.w, &ow0, &ow1);
    for (int32_t n = 0; n < yd.n; ++n)
        for (int32_t oh = oh0; oh < oh1; ++oh) {
            const tte_f16 *xr = L->x + (size_t)n * L->bx + (ptrdiff_t)l * L->xl
                                + (size_t)(oh * p.stride_h + offh) * (size_t)xd.w
                                + (size_t)(ow0 * p.stride_w + offw);
            const tte_f16 *gr = L->gy + (size_t)n * L->by + (ptrdiff_t)l * L->gl
                                + (size_t)oh * (size_t)yd.w + (size_t)ow0;
            const int32_t cnt = ow1 - ow0, sw = p.stride_w;
            if (L->xl == 0 && acc32)
                for (int32_t i = 0; i < cnt; ++i)
                    facc = mac_f(facc, xr[i * sw], ld16(gr + i, L->gl, vl), vl);
            else if (L->xl == 0)
                for (int32_t i = 0; i < cnt; ++i)
                    hacc = mac_h(hacc, xr[i * sw], ld16(gr + i, L->gl, vl), vl);
            else if (acc32)
                for (int32_t i = 0; i < cnt; ++i)
                    facc = mac_fv(facc, ld16(xr + i * sw, L->xl, vl), ld16(gr + i, L->gl, vl),
                                  vl);
            else
                for (int32_t i = 0; i < cnt; ++i)
                    hacc = mac_hv(hacc, ld16(xr + i * sw, L->xl, vl), ld16(gr + i, L->gl, vl),
                                  vl);
        }
    return acc32 ? facc : widen(hacc, vl);
}

static void wgrad_lanes(const wlanes *L, const geom *g, tte_f16 *gw, const tte_f16_sgd *sgd,
                        int acc32)
{
    const int32_t kw = g->p.kernel_w, khw = g->p.kernel_h * kw;
    size_t vl;
    for (size_t l = 0; l < L->lanes; l += vl) {
        vl = setvl(L->lanes - l);
        for (int32_t t = 0; t < khw; ++t)
            emit(wgrad_sum(L, l, vl, g, t / kw, t % kw, acc32), gw, sgd,
                 L->at + (size_t)((ptrdiff_t)l * L->il) + (size_t)t, L->il, vl);
    }
}

int tte_rvv_conv2d_grad_weight_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy,
                                   tte_dims4 yd, tte_f16 *gw, const tte_f16_sgd *sgd,
                                   tte_window p, tte_split s, int acc32)
{
    const int32_t groups = groups_of(p), og = yd.c / groups, cg = tte_split_grad_cg(&s, xd, p);
    const geom g = {xd, yd, p};
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const size_t khw = (size_t)(p.kernel_h * p.kernel_w);
    wlanes L = {x, gy, 0, (ptrdiff_t)yplane, (ptrdiff_t)((size_t)cg * khw),
                (size_t)xd.c * xplane, (size_t)yd.c * yplane, 0, (size_t)yd.c};
    if (s.count && s.axis == 0) {
        /* trained channels in a permuted order: the scalar path */
        if (s.pos) return 0;
        /* the first count channels train: x holds them, gradient block j of channel j */
        L.xl = (ptrdiff_t)xplane;
        L.lanes = (size_t)s.count;
        wgrad_lanes(&L, &g, gw, sgd, acc32);
        return 1;
    }
    if (og == 1) { /* one output channel per group (depthwise): lanes read their own x */
        L.xl = (ptrdiff_t)((size_t)cg * xplane);
        for (int32_t c = 0; c < cg; ++c) {
            L.x = x + (size_t)c * xplane;
            L.at = (size_t)c * khw;
            wgrad_lanes(&L, &g, gw, sgd, acc32);
        }
        return 1;
    }
    /* lanes: the og output channels of a group, which read the same x channel */
    L.lanes = (size_t)og;
    for (int32_t k = 0; k < groups; ++k)
        for (int32_t c = 0; c < cg; ++c) {
            L.x = x + (size_t)(k * cg + c) * xplane;
            L.gy = gy + (size_t)(k * og) * yplane;
            L.at = ((size_t)(k * og) * (size_t)cg + (size_t)c) * khw;
            wgrad_lanes(&L, &g, gw, sgd, acc32);
        }
    return 1;
}

/* ---- channel sums: lanes are channels ------------------------------------------------ */

void tte_rvv_channel_sum_f16(const tte_f16 *gy, tte_dims4 d, tte_f16 *gb,
                             const tte_f16_sgd *sgd, int acc32)
{
    const size_t plane = (size_t)d.h * (size_t)d.w;
    size_t vl;
    for (size_t c = 0; c < (size_t)d.c; c += vl) {
        vl = setvl((size_t)d.c - c);
        vh hacc = __riscv_vfmv_v_f_f16m4(0, vl);
        vf facc = __riscv_vfmv_v_f_f32m8(0.0f, vl);
        for (int32_t n = 0; n < d.n; ++n) {
            const tte_f16 *g = gy + ((size_t)n * (size_t)d.c + c) * plane;
            for (size_t i = 0; i < plane; ++i) {
                const vh v = ld16(g + i, (ptrdiff_t)plane, vl);
                if (acc32)
                    facc = __riscv_vfwadd_wv_f32m8(facc, v, vl);
                else
                    hacc = __riscv_vfadd_vv_f16m4(hacc, v, vl);
            }
        }
        emit(acc32 ? facc : widen(hacc, vl), gb, sgd, c, 1, vl);
    }
}

/* ---- linear: lanes are outputs (forward) or inputs (gradients) ----------------------- */

void tte_rvv_linear_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *w,
                        const tte_f16 *bias, tte_f16 *y, int32_t m, int acc32)
{
    size_t vl;
    for (int32_t i = 0; i < n; ++i) {
        const tte_f16 *xr = x + (size_t)i * (size_t)k;
        for (size_t j = 0; j < (size_t)m; j += vl) {
            vl = setvl((size_t)m - j);
            const tte_f16 *wj = w + j * (size_t)k;
            vh hacc = __riscv_vfmv_v_f_f16m4(0, vl);
            vf facc = __riscv_vfmv_v_f_f32m8(0.0f, vl);
            if (acc32) {
                for (int32_t p = 0; p < k; ++p) facc = mac_f(facc, xr[p], ld16(wj + p, k, vl), vl);
                if (bias) facc = __riscv_vfwadd_wv_f32m8(facc, ld16(bias + j, 1, vl), vl);
            } else {
                for (int32_t p = 0; p < k; ++p) hacc = mac_h(hacc, xr[p], ld16(wj + p, k, vl), vl);
                if (bias) hacc = __riscv_vfadd_vv_f16m4(hacc, ld16(bias + j, 1, vl), vl);
            }
            st16(y + (size_t)i * (size_t)m + j, 1, acc32 ? narrow(facc, vl) : hacc, vl);
        }
    }
}

void tte_rvv_linear_grad_input_f16(const tte_f16 *gy, int32_t n, int32_t m, const tte_f16 *w,
                                   tte_f16 *gx, int32_t k, int acc32)
{
    size_t vl;
    for (int32_t i = 0; i < n; ++i) {
        const tte_f16 *g = gy + (size_t)i * (size_t)m;
        for (size_t p = 0; p < (size_t)k; p += vl) {
            vl = setvl((size_t)k - p);
            vh hacc = __riscv_vfmv_v_f_f16m4(0, vl);
            vf facc = __riscv_vfmv_v_f_f32m8(0.0f, vl);
            for (int32_t j = 0; j < m; ++j) {
                const vh wv = ld16(w + (size_t)j * (size_t)k + p, 1, vl);
                if (acc32)
                    facc = mac_f(facc, g[j], wv, vl);
                else
                    hacc = mac_h(hacc, g[j], wv, vl);
            }
            st16(gx + (size_t)i * (size_t)k + p, 1, acc32 ? narrow(facc, vl) : hacc, vl);
        }
    }
}

void tte_rvv_linear_grad_weight_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *gy,
                                    int32_t m, tte_f16 *gw, const tte_f16_sgd *sgd, int acc32)
{
    size_t vl;
    for (int32_t j = 0; j < m; ++j)
        for (size_t p = 0; p < (size_t)k; p += vl) {
            vl = setvl((size_t)k - p);
            vh hacc = __riscv_vfmv_v_f_f16m4(0, vl);
            vf facc = __riscv_vfmv_v_f_f32m8(0.0f, vl);
            for (int32_t i = 0; i < n; ++i) {
                const tte_f16 g = gy[(size_t)i * (size_t)m + (size_t)j];
                const vh xv = ld16(x + (size_t)i * (size_t)k + p, 1, vl);
                if (acc32)
                    facc = mac_f(facc, g, xv, vl);
                else
                    hacc = mac_h(hacc, g, xv, vl);
            }
            emit(acc32 ? facc : widen(hacc, vl), gw, sgd, (size_t)j * (size_t)k + p, 1, vl);
        }
}

#else
typedef int tte_f16_rvv_unused; /* ISO C: a translation unit declares something */
#endif
