/* RVV (V extension) paths of the fp32 conv, depthwise, linear and channel-sum kernels; see
 * f32_rvv.h. The design is f16_rvv.c's (as of its "geometry by pointer, lanes or rows chosen
 * by fitted counts" revision), so fp16 and fp32 compare with the same vectorisation:
 * compiled where TTE_RVV_F32 (the rv32v target, not with TTE_SCALAR); conv.c and linear.c
 * call these first and take their scalar path where one returns 0.
 *
 * Every vector lane is one output: an output pixel along a row or an output channel at one
 * position (conv forward: rows or lanes, whichever lanes_faster predicts takes fewer
 * instructions), an input pixel along a row or an input channel at one position (input
 * gradient, likewise), a weight element across output channels (weight gradient), a channel
 * (channel sums), an output or input feature (linear). Each lane sums its terms in the
 * scalar path's order (conv.c: forward over (c, ki, kj) then the bias, input gradient over
 * (o, ki, kj), weight gradient over (n, oh, ow), channel sums over (n, h, w); linear.c: the
 * contracted axis in index order, then the bias), with vfmul then vfadd: two roundings, as
 * the scalar product and sum under -ffp-contract=off (never vfmacc, which rounds once). So
 * every result equals the scalar path's bit for bit. A lane whose tap falls in the padding
 * gets no term (the scalar path skips it), not a zero term: conv rows run over the taps'
 * ranges of real input (tte_tap_range), lanes over the taps of their position.
 *
 * Sums live where the scalar path keeps them: conv rows accumulate in the output plane
 * itself, the other sums in a vector register. No float <-> int conversions (QEMU 7.2
 * aborts on the static-rounding vfcvt.rtz.*).
 *
 * Left to the scalar path: windows of more than 16 rows or columns (the tap tables), and
 * the weight gradient of depthwise channels trained in a permuted order (split with pos).
 *
 * Vectors are e32m4: the register groups of f16_rvv.c's e16m4 halves, holding 16 floats
 * where those hold 32 halves at QEMU's VLEN of 128, so instruction counts of the two
 * compare the element width alone.
 */
#include "f32_rvv.h"

#if TTE_RVV_F32
#include <riscv_vector.h>

typedef vfloat32m4_t vf;

/* A convolution's geometry, passed by pointer: RV32 passes larger structs by value through
 * a copy (a memcpy call per call of a helper). */
typedef struct {
    tte_dims4 xd, yd;
    tte_window p;
} geom;

static size_t setvl(size_t n)
{
    return __riscv_vsetvl_e32m4(n);
}

static vf ld(const float *p, ptrdiff_t stride, size_t vl)
{
    return stride == 1 ? __riscv_vle32_v_f32m4(p, vl)
                       : __riscv_vlse32_v_f32m4(p, stride * (ptrdiff_t)sizeof(float), vl);
}

static void st(float *p, ptrdiff_t stride, vf v, size_t vl)
{
    if (stride == 1)
        __riscv_vse32_v_f32m4(p, v, vl);
    else
        __riscv_vsse32_v_f32m4(p, stride * (ptrdiff_t)sizeof(float), v, vl);
}

static vf zeros(size_t vl)
{
    return __riscv_vfmv_v_f_f32m4(0.0f, vl);
}

/* acc + s*v and acc + a*b: the product rounded, then the sum (the scalar path's roundings) */
static vf mac(vf acc, float s, vf v, size_t vl)
{
    return __riscv_vfadd_vv_f32m4(acc, __riscv_vfmul_vf_f32m4(v, s, vl), vl);
}

static vf macv(vf acc, vf a, vf b, size_t vl)
{
    return __riscv_vfadd_vv_f32m4(acc, __riscv_vfmul_vv_f32m4(a, b, vl), vl);
}

/* vl results g at out[at + i*stride]: stored (gradient), or each one tte_sgd_step_f32 on
 * sgd's weight and momentum at the same places, with its operations in its order */
static void emit(vf g, float *out, const tte_f32_sgd *sgd, size_t at, ptrdiff_t stride,
                 size_t vl)
{
    if (!sgd) {
        st(out + at, stride, g, vl);
        return;
    }
    float *w = sgd->w + at;
    const vf wv = ld(w, stride, vl);
    if (sgd->weight_decay != 0.0f)
        g = __riscv_vfadd_vv_f32m4(g, __riscv_vfmul_vf_f32m4(wv, sgd->weight_decay, vl), vl);
    if (sgd->momentum) {
        float *b = sgd->momentum + at;
        g = __riscv_vfadd_vv_f32m4(
            __riscv_vfmul_vf_f32m4(ld(b, stride, vl), sgd->momentum_coef, vl), g, vl);
        st(b, stride, g, vl);
    }
    st(w, stride, __riscv_vfsub_vv_f32m4(wv, __riscv_vfmul_vf_f32m4(g, sgd->lr, vl), vl), vl);
}

/* ---- convolution rows -------------------------------------------------------------- */

/* acc[i*as] += w * src[i*ss] for i < n */
static inline void row_mac(float *acc, ptrdiff_t as, const float *src, ptrdiff_t ss, float w,
                           size_t n)
{
    size_t vl;
    for (; n > 0; n -= vl, acc += (ptrdiff_t)vl * as, src += (ptrdiff_t)vl * ss) {
        vl = setvl(n);
        st(acc, as, mac(ld(acc, as, vl), w, ld(src, ss, vl), vl), vl);
    }
}

static void fill(float *a, size_t len, float v)
{
    size_t vl;
    for (size_t i = 0; i < len; i += vl) {
        vl = setvl(len - i);
        __riscv_vse32_v_f32m4(a + i, __riscv_vfmv_v_f_f32m4(v, vl), vl);
    }
}

#define MAX_TAPS 16 /* kernel rows or columns the tap tables hold; more: scalar path */

/* The output positions each tap maps to real input: rows [h[2 ki], h[2 ki + 1]), columns
 * [v[2 kj], v[2 kj + 1]) (the same table serves the input gradient: a tap's outputs are the
 * ones whose input it reaches). */
typedef struct {
    int32_t h[2 * MAX_TAPS], v[2 * MAX_TAPS];
} tap_table;

static void taps_of(tap_table *t, const geom *g)
{
    const tte_dims4 xd = g->xd, yd = g->yd;
    const tte_window p = g->p;
    for (int32_t ki = 0; ki < p.kernel_h; ++ki)
        tte_tap_range(ki * p.dilation_h - p.pad_top, p.stride_h, xd.h, yd.h, t->h + 2 * ki,
                      t->h + 2 * ki + 1);
    for (int32_t kj = 0; kj < p.kernel_w; ++kj)
        tte_tap_range(kj * p.dilation_w - p.pad_left, p.stride_w, xd.w, yd.w, t->v + 2 * kj,
                      t->v + 2 * kj + 1);
}

/* Every tap of weight block wk, for the output positions (oh, ow) in its table entries.
 * fwd: acc is an output plane (width yd.w) and gets w * x[input]; else acc is an input
 * plane (width xd.w) and gets w * gy[output] (the input gradient: lanes of one run reach
 * distinct inputs, one tap maps outputs to inputs one to one). */
static void taps_rows(float *acc, const float *src, const float *wk, const tap_table *t,
                      const geom *g, int fwd)
{
    const tte_dims4 xd = g->xd, yd = g->yd;
    const tte_window p = g->p;
    const ptrdiff_t as = fwd ? 1 : p.stride_w, ss = fwd ? p.stride_w : 1;
    /* whole rows whose inputs follow each other at one stride: one run */
    const int whole_rows = p.stride_h * xd.w == p.stride_w * yd.w;
    for (int32_t ki = 0; ki < p.kernel_h; ++ki) {
        const int32_t oh0 = t->h[2 * ki], oh1 = t->h[2 * ki + 1];
        const int32_t offh = ki * p.dilation_h - p.pad_top;
        for (int32_t kj = 0; kj < p.kernel_w && oh0 < oh1; ++kj) {
            const int32_t ow0 = t->v[2 * kj], ow1 = t->v[2 * kj + 1];
            const int32_t offw = kj * p.dilation_w - p.pad_left;
            const float w = wk[ki * p.kernel_w + kj];
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
                row_mac(acc + (fwd ? o : i), as, src + (fwd ? i : o), ss, w, n);
            }
        }
    }
}

static int32_t groups_of(tte_window p)
{
    return p.groups > 0 ? p.groups : 1;
}

static const float *block(const float *w, const tte_split *s, int32_t o, int32_t c, int32_t cg,
                          const tte_window *p)
{
    return tte_split_block(w, s, sizeof(float), o, c, cg, p->kernel_h * p->kernel_w);
}

/* ---- convolution lanes: one position at a time, lanes across channels ------------------ *
 * Rows of a few outputs leave most of a vector idle; small planes with many channels take
 * their lanes across channels instead, summing each lane's terms in the scalar order. */

/* Weight block (o, c) as tte_split_block finds it, and *stride: how far apart the blocks
 * (o + l, c) of the next output channels lie (a whole weight, or split along input
 * channels: each part is [O][its channels][taps]). */
static const float *lanes_block(const float *w, const tte_split *s, int32_t o, int32_t c,
                                int32_t cg, int32_t khw, ptrdiff_t *stride)
{
    const int32_t j = s->count && s->pos ? s->pos[c] : c;
    if (s->count == 0 || j < s->count) {
        const int32_t part = s->count ? s->count : cg;
        *stride = (ptrdiff_t)part * khw;
        return w + ((size_t)o * (size_t)part + (size_t)j) * (size_t)khw;
    }
    *stride = (ptrdiff_t)(cg - s->count) * khw;
    return (const float *)s->frozen
           + ((size_t)o * (size_t)(cg - s->count) + (size_t)(j - s->count)) * (size_t)khw;
}

/* Forward of output channels [o0, o0 + lanes): each position sums over (c, ki, kj) as
 * conv.c, then the bias. xl == 0: the lanes share their group's x; else lane l reads the x
 * channels xl further on (one output channel per group). */
static void conv_lanes(const float *xn, const float *w, const tte_split *s, const float *bias,
                       float *yn, const geom *g, int32_t o0, int32_t lanes, ptrdiff_t xl)
{
    const tte_dims4 xd = g->xd, yd = g->yd;
    const tte_window p = g->p;
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const int32_t kw = p.kernel_w, khw = p.kernel_h * p.kernel_w;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    size_t vl;
    for (int32_t l = 0; l < lanes; l += (int32_t)vl) {
        const int32_t o = o0 + l;
        const float *xg = xn + (size_t)((o / og) * cg) * xplane;
        vl = setvl((size_t)(lanes - l));
        for (int32_t oh = 0; oh < yd.h; ++oh) {
            const int32_t h0 = oh * p.stride_h - p.pad_top;
            int32_t ki0, ki1;
            tte_tap_range(h0, p.dilation_h, xd.h, p.kernel_h, &ki0, &ki1);
            for (int32_t ow = 0; ow < yd.w; ++ow) {
                const int32_t w0 = ow * p.stride_w - p.pad_left;
                int32_t kj0, kj1;
                vf acc = zeros(vl);
                tte_tap_range(w0, p.dilation_w, xd.w, kw, &kj0, &kj1);
                for (int32_t c = 0; c < cg; ++c) {
                    ptrdiff_t ws;
                    const float *wc = lanes_block(w, s, o, c, cg, khw, &ws);
                    for (int32_t ki = ki0; ki < ki1; ++ki) {
                        const float *xr = xg + (size_t)c * xplane
                                          + (size_t)(h0 + ki * p.dilation_h) * (size_t)xd.w
                                          + (size_t)(w0 + kj0 * p.dilation_w);
                        const float *wr = wc + ki * kw + kj0;
                        const int32_t n = kj1 - kj0, dw = p.dilation_w;
                        if (xl == 0)
                            for (int32_t j = 0; j < n; ++j)
                                acc = mac(acc, xr[j * dw], ld(wr + j, ws, vl), vl);
                        else
                            for (int32_t j = 0; j < n; ++j)
                                acc = macv(acc, ld(xr + j * dw, xl, vl), ld(wr + j, ws, vl), vl);
                    }
                }
                if (bias) acc = __riscv_vfadd_vv_f32m4(acc, ld(bias + o, 1, vl), vl);
                st(yn + (size_t)o * yplane + (size_t)oh * (size_t)yd.w + (size_t)ow,
                   (ptrdiff_t)yplane, acc, vl);
            }
        }
    }
}

/* The taps k < count of a window axis through which output positions reach input position
 * i, in k order, with those positions in pos; returns how many. */
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
 * over (o, ki, kj), the order in which conv.c's scatter reaches it. Lanes of one group share
 * gy (own == 0; lane l's weight block is khw further on); with one input channel per group
 * (own), lane l reads its group's gy channels, og planes further on, and weight blocks og
 * further on. */
static void grad_in_lanes(const float *gyn, const float *w, float *gxn, const geom *g,
                          int32_t c0, int32_t lanes, int own)
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
        const float *wl = w + ((size_t)o0 * (size_t)cg + (size_t)(c % cg)) * (size_t)khw;
        vl = setvl((size_t)(lanes - l));
        for (int32_t ih = 0; ih < xd.h; ++ih) {
            const int32_t nh = untaps(ih, p.kernel_h, p.stride_h, p.dilation_h, p.pad_top, yd.h,
                                      kis, ohs);
            for (int32_t iw = 0; iw < xd.w; ++iw) {
                const int32_t nw = untaps(iw, kw, p.stride_w, p.dilation_w, p.pad_left, yd.w,
                                          kjs, ows);
                vf acc = zeros(vl);
                for (int32_t j = 0; j < og; ++j) {
                    const float *wo = wl + (size_t)j * (size_t)cg * (size_t)khw;
                    const float *go = gyn + (size_t)(o0 + j) * yplane;
                    for (int32_t a = 0; a < nh; ++a) {
                        const float *gr = go + (size_t)ohs[a] * (size_t)yd.w;
                        const float *wr = wo + kis[a] * kw;
                        if (!own)
                            for (int32_t b = 0; b < nw; ++b)
                                acc = mac(acc, gr[ows[b]], ld(wr + kjs[b], ws, vl), vl);
                        else
                            for (int32_t b = 0; b < nw; ++b)
                                acc = macv(acc, ld(gr + ows[b], gl, vl), ld(wr + kjs[b], ws, vl),
                                           vl);
                    }
                }
                st(gxn + (size_t)c * xplane + (size_t)ih * (size_t)xd.w + (size_t)iw,
                   (ptrdiff_t)xplane, acc, vl);
            }
        }
    }
}

/* grad_in_lanes over every input channel of every batch entry, one input channel per group
 * (lanes with their own gy and weights) */
static void grad_in_own(const float *gy, const float *w, float *gx, const geom *g)
{
    const size_t xsize = (size_t)g->xd.c * (size_t)g->xd.h * (size_t)g->xd.w;
    const size_t ysize = (size_t)g->yd.c * (size_t)g->yd.h * (size_t)g->yd.w;
    for (int32_t n = 0; n < g->xd.n; ++n)
        grad_in_lanes(gy + (size_t)n * ysize, w, gx + (size_t)n * xsize, g, 0, g->xd.c, 1);
}

/* Which way a conv forward or input gradient goes, f16_rvv.c's rule (instruction counts of
 * its code fitted to QEMU's on mbv2_stack's layers; this file's code is the same but for the
 * element width) with this file's vector length: both ways are exact, this only picks the
 * faster. Rows pay per (output, input) channel block, per tap and per row of a tap; lanes pay
 * per position, per channel block and per term, for every set of up to a vector of
 * channels. A 1x1 window that reads whole rows makes one run of each block (taps_rows merges
 * them). */
static int lanes_faster(const geom *g, float blocks, float sets, float positions,
                        float lane_blocks, float terms)
{
    const tte_window p = g->p;
    const int whole = p.kernel_h == 1 && p.kernel_w == 1 && p.pad_left == 0 && p.pad_right == 0
                      && p.stride_h * g->xd.w == p.stride_w * g->yd.w;
    const int32_t vlmax = (int32_t)__riscv_vsetvlmax_e32m4();
    const int32_t run = whole ? g->yd.h * g->yd.w : g->yd.w;
    const float chunks = (float)((run + vlmax - 1) / vlmax), rows = whole ? 1.0f : (float)g->yd.h;
    const float taps = (float)(p.kernel_h * p.kernel_w);
    const float by_rows = blocks * (150.0f + taps * (20.0f + rows * (37.0f + 8.0f * chunks)));
    const float by_lanes = sets * positions * (116.0f + lane_blocks * (35.0f + terms * 12.0f));
    return by_lanes < by_rows;
}

static float lane_sets(int32_t groups, int32_t lanes)
{
    const int32_t vlmax = (int32_t)__riscv_vsetvlmax_e32m4();
    return (float)groups * (float)((lanes + vlmax - 1) / vlmax);
}

int tte_rvv_conv2d_f32(const float *x, tte_dims4 xd, const float *w, const float *bias,
                       float *y, tte_dims4 yd, tte_window p, tte_split s)
{
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const geom g = {xd, yd, p};
    const float blocks = (float)yd.c * (float)cg, taps = (float)(p.kernel_h * p.kernel_w);
    size_t vl;
    if (og > 1 && !(s.count && s.axis == 0)
        && lanes_faster(&g, blocks, lane_sets(groups, og), (float)yplane, (float)cg, taps)) {
        for (int32_t n = 0; n < yd.n; ++n)
            for (int32_t k = 0; k < groups; ++k)
                conv_lanes(x + (size_t)n * (size_t)xd.c * xplane, w, &s, bias,
                           y + (size_t)n * (size_t)yd.c * yplane, &g, k * og, og, 0);
        return 1;
    }
    if (og == 1 && s.count == 0
        && lanes_faster(&g, blocks, lane_sets(1, yd.c), (float)yplane, (float)cg, taps)) {
        for (int32_t n = 0; n < yd.n; ++n)
            conv_lanes(x + (size_t)n * (size_t)xd.c * xplane, w, &s, bias,
                       y + (size_t)n * (size_t)yd.c * yplane, &g, 0, yd.c,
                       (ptrdiff_t)((size_t)cg * xplane));
        return 1;
    }
    /* windows wider than the tap table: the scalar path */
    if (p.kernel_h > MAX_TAPS || p.kernel_w > MAX_TAPS) return 0;
    tap_table t;
    taps_of(&t, &g);
    for (int32_t n = 0; n < yd.n; ++n)
        for (int32_t o = 0; o < yd.c; ++o) {
            const float *xn = x + ((size_t)n * (size_t)xd.c + (size_t)((o / og) * cg)) * xplane;
            float *yo = y + ((size_t)n * (size_t)yd.c + (size_t)o) * yplane;
            fill(yo, yplane, 0.0f);
            for (int32_t c = 0; c < cg; ++c)
                taps_rows(yo, xn + (size_t)c * xplane, block(w, &s, o, c, cg, &p), &t, &g, 1);
            if (!bias) continue;
            for (size_t i = 0; i < yplane; i += vl) {
                vl = setvl(yplane - i);
                __riscv_vse32_v_f32m4(
                    yo + i, __riscv_vfadd_vf_f32m4(__riscv_vle32_v_f32m4(yo + i, vl), bias[o], vl),
                    vl);
            }
        }
    return 1;
}

/* Input gradient of input channel ci (group of cg inputs, og outputs) of one batch entry
 * (gyn) into the plane out: over the group's outputs o, then taps, the order in which
 * conv.c's scatter reaches each input. */
static void grad_in_plane(float *out, const float *gyn, const float *w, const tte_split *s,
                          const geom *g, const tap_table *t, int32_t ci, int32_t cg, int32_t og)
{
    const size_t yplane = (size_t)g->yd.h * (size_t)g->yd.w;
    const int32_t o0 = (ci / cg) * og;
    fill(out, (size_t)g->xd.h * (size_t)g->xd.w, 0.0f);
    for (int32_t o = o0; o < o0 + og; ++o)
        taps_rows(out, gyn + (size_t)o * yplane, block(w, s, o, ci % cg, cg, &g->p), t, g, 0);
}

int tte_rvv_conv2d_grad_input_f32(const float *gy, tte_dims4 yd, const float *w, float *gx,
                                  tte_dims4 xd, tte_window p, tte_split s)
{
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const geom g = {xd, yd, p};
    const float taps = (float)(p.kernel_h * p.kernel_w) / (float)(p.stride_h * p.stride_w);
    const float blocks = (float)xd.c * (float)og;
    const int fits = p.kernel_h <= MAX_TAPS && p.kernel_w <= MAX_TAPS;
    if (!fits) return 0; /* windows wider than the tap tables: the scalar path */
    if (s.count == 0 && cg > 1
        && lanes_faster(&g, blocks, lane_sets(groups, cg), (float)xplane, (float)og, taps)) {
        for (int32_t n = 0; n < xd.n; ++n)
            for (int32_t k = 0; k < groups; ++k)
                grad_in_lanes(gy + (size_t)n * (size_t)yd.c * yplane, w,
                              gx + (size_t)n * (size_t)xd.c * xplane, &g, k * cg, cg, 0);
        return 1;
    }
    if (s.count == 0 && cg == 1
        && lanes_faster(&g, blocks, lane_sets(1, xd.c), (float)xplane, (float)og, taps)) {
        grad_in_own(gy, w, gx, &g);
        return 1;
    }
    tap_table t;
    taps_of(&t, &g);
    for (int32_t n = 0; n < xd.n; ++n)
        for (int32_t c = 0; c < xd.c; ++c)
            grad_in_plane(gx + ((size_t)n * (size_t)xd.c + (size_t)c) * xplane,
                          gy + (size_t)n * (size_t)yd.c * yplane, w, &s, &g, &t, c, cg, og);
    return 1;
}

int tte_rvv_depthwise_grad_input_f32(const float *gy, tte_dims4 d, const float *w, float *gx,
                                     float *scratch, tte_window p, tte_split s)
{
    const size_t plane = (size_t)d.h * (size_t)d.w;
    const geom g = {d, d, p};
    const float taps = (float)(p.kernel_h * p.kernel_w) / (float)(p.stride_h * p.stride_w);
    size_t vl;
    if (p.kernel_h > MAX_TAPS || p.kernel_w > MAX_TAPS) return 0; /* the scalar path */
    if (gx != gy && s.count == 0
        && lanes_faster(&g, (float)d.c, lane_sets(1, d.c), (float)plane, 1.0f, taps)) {
        grad_in_own(gy, w, gx, &g); /* not in place: every channel straight into gx */
        return 1;
    }
    tap_table t;
    taps_of(&t, &g);
    for (int32_t n = 0; n < d.n; ++n)
        for (int32_t c = 0; c < d.c; ++c) {
            /* into scratch first: gy's plane c may be gx's */
            grad_in_plane(scratch, gy + (size_t)n * (size_t)d.c * plane, w, &s, &g, &t, c, 1, 1);
            float *gc = gx + ((size_t)n * (size_t)d.c + (size_t)c) * plane;
            for (size_t i = 0; i < plane; i += vl) {
                vl = setvl(plane - i);
                __riscv_vse32_v_f32m4(gc + i, __riscv_vle32_v_f32m4(scratch + i, vl), vl);
            }
        }
    return 1;
}

/* ---- weight gradients: lanes are weight blocks --------------------------------------- */

/* Weight blocks of `lanes` output channels: lane l reads gy channel (gy + l*gl) and x channel
 * (x + l*xl; xl == 0: every lane reads the same), batch entries bx / by apart, and its
 * gradient goes to weight element at + l*il + t of tap t. Each sums over (n, oh, ow). */
typedef struct {
    const float *x, *gy;
    ptrdiff_t xl, gl, il;
    size_t bx, by, at, lanes;
} wlanes;

static vf wgrad_sum(const wlanes *L, size_t l, size_t vl, const geom *g, int32_t ki,
                    int32_t kj)
{
    const tte_dims4 xd = g->xd, yd = g->yd;
    const tte_window p = g->p;
    const int32_t offh = ki * p.dilation_h - p.pad_top, offw = kj * p.dilation_w - p.pad_left;
    int32_t oh0, oh1, ow0, ow1;
    vf acc = zeros(vl);
    tte_tap_range(offh, p.stride_h, xd.h, yd.h, &oh0, &oh1);
    tte_tap_range(offw, p.stride_w, xd.w, yd.w, &ow0, &ow1);
    for (int32_t n = 0; n < yd.n; ++n)
        for (int32_t oh = oh0; oh < oh1; ++oh) {
            const float *xr = L->x + (size_t)n * L->bx + (ptrdiff_t)l * L->xl
                              + (size_t)(oh * p.stride_h + offh) * (size_t)xd.w
                              + (size_t)(ow0 * p.stride_w + offw);
            const float *gr = L->gy + (size_t)n * L->by + (ptrdiff_t)l * L->gl
                              + (size_t)oh * (size_t)yd.w + (size_t)ow0;
            const int32_t cnt = ow1 - ow0, sw = p.stride_w;
            if (L->xl == 0)
                for (int32_t i = 0; i < cnt; ++i)
                    acc = mac(acc, xr[i * sw], ld(gr + i, L->gl, vl), vl);
            else
                for (int32_t i = 0; i < cnt; ++i)
                    acc = macv(acc, ld(xr + i * sw, L->xl, vl), ld(gr + i, L->gl, vl), vl);
        }
    return acc;
}

static void wgrad_lanes(const wlanes *L, const geom *g, float *gw, const tte_f32_sgd *sgd)
{
    const int32_t kw = g->p.kernel_w, khw = g->p.kernel_h * kw;
    size_t vl;
    for (size_t l = 0; l < L->lanes; l += vl) {
        vl = setvl(L->lanes - l);
        for (int32_t t = 0; t < khw; ++t)
            emit(wgrad_sum(L, l, vl, g, t / kw, t % kw), gw, sgd,
                 L->at + (size_t)((ptrdiff_t)l * L->il) + (size_t)t, L->il, vl);
    }
}

int tte_rvv_conv2d_grad_weight_f32(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                                   float *gw, const tte_f32_sgd *sgd, tte_window p,
                                   tte_split s)
{
    const int32_t groups = groups_of(p), og = yd.c / groups, cg = tte_split_grad_cg(&s, xd, p);
    const geom g = {xd, yd, p};
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    const size_t khw = (size_t)(p.kernel_h * p.kernel_w);
    wlanes L = {x, gy, 0, (ptrdiff_t)yplane, (ptrdiff_t)((size_t)cg * khw),
                (size_t)xd.c * xplane, (size_t)yd.c * yplane, 0, (size_t)yd.c};
    if (s.count && s.axis == 0) {
        /* depthwise channels trained in a permuted order (by magnitude): the lanes' x
         * channels and gradient blocks would need gathers, left to the scalar path */
        if (s.pos) return 0;
        /* the first count channels train: x holds them, gradient block j of channel j */
        L.xl = (ptrdiff_t)xplane;
        L.lanes = (size_t)s.count;
        wgrad_lanes(&L, &g, gw, sgd);
        return 1;
    }
    if (og == 1) { /* one output channel per group (depthwise): lanes read their own x */
        L.xl = (ptrdiff_t)((size_t)cg * xplane);
        for (int32_t c = 0; c < cg; ++c) {
            L.x = x + (size_t)c * xplane;
            L.at = (size_t)c * khw;
            wgrad_lanes(&L, &g, gw, sgd);
        }
        return 1;
    }
    /* lanes: the og output channels of a group, which read the same x channel (a split
     * along input channels: x and the gradient hold the trained ones, cg of them) */
    L.lanes = (size_t)og;
    for (int32_t k = 0; k < groups; ++k)
        for (int32_t c = 0; c < cg; ++c) {
            L.x = x + (size_t)(k * cg + c) * xplane;
            L.gy = gy + (size_t)(k * og) * yplane;
            L.at = ((size_t)(k * og) * (size_t)cg + (size_t)c) * khw;
            wgrad_lanes(&L, &g, gw, sgd);
        }
    return 1;
}

/* ---- channel sums: lanes are channels ------------------------------------------------ */

void tte_rvv_channel_sum_f32(const float *gy, tte_dims4 d, float *gb, const tte_f32_sgd *sgd)
{
    const size_t plane = (size_t)d.h * (size_t)d.w;
    size_t vl;
    for (size_t c = 0; c < (size_t)d.c; c += vl) {
        vl = setvl((size_t)d.c - c);
        vf acc = zeros(vl);
        for (int32_t n = 0; n < d.n; ++n) {
            const float *g = gy + ((size_t)n * (size_t)d.c + c) * plane;
            for (size_t i = 0; i < plane; ++i)
                acc = __riscv_vfadd_vv_f32m4(acc, ld(g + i, (ptrdiff_t)plane, vl), vl);
        }
        emit(acc, gb, sgd, c, 1, vl);
    }
}

/* ---- linear: lanes are outputs (forward) or inputs (gradients) ----------------------- */

void tte_rvv_linear_f32(const float *x, int32_t n, int32_t k, const float *w,
                        const float *bias, float *y, int32_t m)
{
    size_t vl;
    for (int32_t i = 0; i < n; ++i) {
        const float *xr = x + (size_t)i * (size_t)k;
        for (size_t j = 0; j < (size_t)m; j += vl) {
            vl = setvl((size_t)m - j);
            const float *wj = w + j * (size_t)k;
            vf acc = zeros(vl);
            for (int32_t p = 0; p < k; ++p) acc = mac(acc, xr[p], ld(wj + p, k, vl), vl);
            if (bias) acc = __riscv_vfadd_vv_f32m4(acc, ld(bias + j, 1, vl), vl);
            st(y + (size_t)i * (size_t)m + j, 1, acc, vl);
        }
    }
}

void tte_rvv_linear_grad_input_f32(const float *gy, int32_t n, int32_t m, const float *w,
                                   float *gx, int32_t k)
{
    size_t vl;
    for (int32_t i = 0; i < n; ++i) {
        const float *g = gy + (size_t)i * (size_t)m;
        for (size_t p = 0; p < (size_t)k; p += vl) {
            vl = setvl((size_t)k - p);
            vf acc = zeros(vl);
            for (int32_t j = 0; j < m; ++j)
                acc = mac(acc, g[j], ld(w + (size_t)j * (size_t)k + p, 1, vl), vl);
            st(gx + (size_t)i * (size_t)k + p, 1, acc, vl);
        }
    }
}

void tte_rvv_linear_grad_weight_f32(const float *x, int32_t n, int32_t k, const float *gy,
                                    int32_t m, float *gw, const tte_f32_sgd *sgd)
{
    size_t vl;
    for (int32_t j = 0; j < m; ++j)
        for (size_t p = 0; p < (size_t)k; p += vl) {
            vl = setvl((size_t)k - p);
            vf acc = zeros(vl);
            for (int32_t i = 0; i < n; ++i)
                acc = mac(acc, gy[(size_t)i * (size_t)m + (size_t)j],
                          ld(x + (size_t)i * (size_t)k + p, 1, vl), vl);
            emit(acc, gw, sgd, (size_t)j * (size_t)k + p, 1, vl);
        }
}

#else
typedef int tte_f32_rvv_unused; /* ISO C: a translation unit declares something */
#endif
