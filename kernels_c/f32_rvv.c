/* RVV (V extension) paths of the fp32 conv, depthwise, linear and channel-sum kernels; see
 * f32_rvv.h. The design is f16_rvv.c's, so fp16 and fp32 compare with the same
 * vectorisation: compiled where TTE_RVV_F32 (the rv32v target, not with TTE_SCALAR); conv.c
 * and linear.c call these first and take their scalar path where one returns 0.
 *
 * Every vector lane is one output: an output pixel along a row (conv forward), an input
 * pixel along a row (input gradient), a weight element across output channels (weight
 * gradient), a channel (channel sums), an output or input feature (linear). Each lane sums
 * its terms in the scalar path's order (conv.c: forward over (c, ki, kj) then the bias,
 * input gradient over (o, ki, kj), weight gradient over (n, oh, ow), channel sums over
 * (n, h, w); linear.c: the contracted axis in index order, then the bias), with vfmul then
 * vfadd: two roundings, as the scalar product and sum under -ffp-contract=off (never
 * vfmacc, which rounds once). So every result equals the scalar path's bit for bit. A lane
 * whose tap falls in the padding gets no term (the scalar path skips it), not a zero term:
 * conv rows run over the taps' ranges of real input (tte_tap_range).
 *
 * Sums live where the scalar path keeps them: conv planes accumulate in the output itself,
 * the other sums in a vector register. No float <-> int conversions (QEMU 7.2 aborts on the
 * static-rounding vfcvt.rtz.*).
 *
 * Vectors are e32m4: the register groups of f16_rvv.c's e16m4 halves, holding 16 floats
 * where those hold 32 halves at QEMU's VLEN of 128, so instruction counts of the two
 * compare the element width alone.
 */
#include "f32_rvv.h"

#if TTE_RVV_F32
#include <riscv_vector.h>

typedef vfloat32m4_t vf;

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
static void row_mac(float *acc, ptrdiff_t as, const float *src, ptrdiff_t ss, float w,
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

static void copy(float *dst, const float *src, size_t len)
{
    size_t vl;
    for (size_t i = 0; i < len; i += vl) {
        vl = setvl(len - i);
        __riscv_vse32_v_f32m4(dst + i, __riscv_vle32_v_f32m4(src + i, vl), vl);
    }
}

/* Tap (ki, kj) with weight w, for the output positions (oh, ow) it maps to real input.
 * fwd: acc is an output plane (width yd.w) and gets w * x[input]; else acc is an input
 * plane (width xd.w) and gets w * gy[output] (the input gradient: lanes of one run reach
 * distinct inputs, one tap maps outputs to inputs one to one). */
static void tap_rows(float *acc, const float *src, float w, tte_dims4 xd, tte_dims4 yd,
                     tte_window p, int32_t ki, int32_t kj, int fwd)
{
    const int32_t offh = ki * p.dilation_h - p.pad_top, offw = kj * p.dilation_w - p.pad_left;
    int32_t oh0, oh1, ow0, ow1;
    tte_tap_range(offh, p.stride_h, xd.h, yd.h, &oh0, &oh1);
    tte_tap_range(offw, p.stride_w, xd.w, yd.w, &ow0, &ow1);
    if (oh0 >= oh1 || ow0 >= ow1) return;
    int32_t rows = oh1 - oh0;
    size_t n = (size_t)(ow1 - ow0);
    /* whole rows whose inputs follow each other at one stride: a single run */
    if (ow0 == 0 && ow1 == yd.w && p.stride_h * xd.w == p.stride_w * yd.w) {
        n *= (size_t)rows;
        rows = 1;
    }
    for (int32_t oh = oh0; oh < oh0 + rows; ++oh) {
        const size_t o = (size_t)oh * (size_t)yd.w + (size_t)ow0;
        const size_t i = (size_t)(oh * p.stride_h + offh) * (size_t)xd.w
                         + (size_t)(ow0 * p.stride_w + offw);
        if (fwd)
            row_mac(acc + o, 1, src + i, p.stride_w, w, n);
        else
            row_mac(acc + i, p.stride_w, src + o, 1, w, n);
    }
}

static int32_t groups_of(tte_window p)
{
    return p.groups > 0 ? p.groups : 1;
}

static const float *block(const float *w, const tte_split *s, int32_t o, int32_t c, int32_t cg,
                          tte_window p)
{
    return tte_split_block(w, s, sizeof(float), o, c, cg, p.kernel_h * p.kernel_w);
}

void tte_rvv_conv2d_f32(const float *x, tte_dims4 xd, const float *w, const float *bias,
                        float *y, tte_dims4 yd, tte_window p, tte_split s)
{
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    size_t vl;
    for (int32_t n = 0; n < yd.n; ++n)
        for (int32_t o = 0; o < yd.c; ++o) {
            const float *xn = x + ((size_t)n * (size_t)xd.c + (size_t)((o / og) * cg)) * xplane;
            float *yo = y + ((size_t)n * (size_t)yd.c + (size_t)o) * yplane;
            fill(yo, yplane, 0.0f);
            for (int32_t c = 0; c < cg; ++c) {
                const float *wk = block(w, &s, o, c, cg, p);
                for (int32_t t = 0; t < p.kernel_h * p.kernel_w; ++t)
                    tap_rows(yo, xn + (size_t)c * xplane, wk[t], xd, yd, p, t / p.kernel_w,
                             t % p.kernel_w, 1);
            }
            if (!bias) continue;
            for (size_t i = 0; i < yplane; i += vl) {
                vl = setvl(yplane - i);
                __riscv_vse32_v_f32m4(
                    yo + i, __riscv_vfadd_vf_f32m4(__riscv_vle32_v_f32m4(yo + i, vl), bias[o], vl),
                    vl);
            }
        }
}

/* Input gradient of input channel ci (group of cg inputs, og outputs) of one batch entry
 * (gyn) into the plane out: over the group's outputs o, then taps, the order in which
 * conv.c's scatter reaches each input. */
static void grad_in_plane(float *out, const float *gyn, tte_dims4 yd, const float *w,
                          const tte_split *s, tte_dims4 xd, tte_window p, int32_t ci,
                          int32_t cg, int32_t og)
{
    const size_t yplane = (size_t)yd.h * (size_t)yd.w;
    const int32_t o0 = (ci / cg) * og;
    fill(out, (size_t)xd.h * (size_t)xd.w, 0.0f);
    for (int32_t o = o0; o < o0 + og; ++o) {
        const float *wk = block(w, s, o, ci % cg, cg, p);
        for (int32_t t = 0; t < p.kernel_h * p.kernel_w; ++t)
            tap_rows(out, gyn + (size_t)o * yplane, wk[t], xd, yd, p, t / p.kernel_w,
                     t % p.kernel_w, 0);
    }
}

void tte_rvv_conv2d_grad_input_f32(const float *gy, tte_dims4 yd, const float *w, float *gx,
                                   tte_dims4 xd, tte_window p, tte_split s)
{
    const int32_t groups = groups_of(p), cg = xd.c / groups, og = yd.c / groups;
    const size_t xplane = (size_t)xd.h * (size_t)xd.w, yplane = (size_t)yd.h * (size_t)yd.w;
    for (int32_t n = 0; n < xd.n; ++n)
        for (int32_t c = 0; c < xd.c; ++c)
            grad_in_plane(gx + ((size_t)n * (size_t)xd.c + (size_t)c) * xplane,
                          gy + (size_t)n * (size_t)yd.c * yplane, yd, w, &s, xd, p, c, cg, og);
}

void tte_rvv_depthwise_grad_input_f32(const float *gy, tte_dims4 d, const float *w, float *gx,
                                      float *scratch, tte_window p, tte_split s)
{
    const size_t plane = (size_t)d.h * (size_t)d.w;
    for (int32_t n = 0; n < d.n; ++n)
        for (int32_t c = 0; c < d.c; ++c) {
            /* into scratch first: gy's plane c may be gx's */
            grad_in_plane(scratch, gy + (size_t)n * (size_t)d.c * plane, d, w, &s, d, p, c, 1, 1);
            copy(gx + ((size_t)n * (size_t)d.c + (size_t)c) * plane, scratch, plane);
        }
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

static vf wgrad_sum(const wlanes *L, size_t l, size_t vl, tte_dims4 xd, tte_dims4 yd,
                    tte_window p, int32_t ki, int32_t kj)
{
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

static void wgrad_lanes(const wlanes *L, tte_dims4 xd, tte_dims4 yd, tte_window p, float *gw,
                        const tte_f32_sgd *sgd)
{
    const int32_t khw = p.kernel_h * p.kernel_w;
    size_t vl;
    for (size_t l = 0; l < L->lanes; l += vl) {
        vl = setvl(L->lanes - l);
        for (int32_t t = 0; t < khw; ++t)
            emit(wgrad_sum(L, l, vl, xd, yd, p, t / p.kernel_w, t % p.kernel_w), gw, sgd,
                 L->at + (size_t)((ptrdiff_t)l * L->il) + (size_t)t, L->il, vl);
    }
}

int tte_rvv_conv2d_grad_weight_f32(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                                   float *gw, const tte_f32_sgd *sgd, tte_window p,
                                   tte_split s)
{
    const int32_t groups = groups_of(p), og = yd.c / groups, cg = tte_split_grad_cg(&s, xd, p);
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
        wgrad_lanes(&L, xd, yd, p, gw, sgd);
        return 1;
    }
    if (og == 1) { /* one output channel per group (depthwise): lanes read their own x */
        L.xl = (ptrdiff_t)((size_t)cg * xplane);
        for (int32_t c = 0; c < cg; ++c) {
            L.x = x + (size_t)c * xplane;
            L.at = (size_t)c * khw;
            wgrad_lanes(&L, xd, yd, p, gw, sgd);
        }
        return 1;
    }
    /* lanes: the og output channels of a group, which read the same x channel (a split
     * along input channels: x and the gradient hold the trained ones, cg of them) */
    L.lanes = (size_t)og;
    for (int32_t g = 0; g < groups; ++g)
        for (int32_t c = 0; c < cg; ++c) {
            L.x = x + (size_t)(g * cg + c) * xplane;
            L.gy = gy + (size_t)(g * og) * yplane;
            L.at = ((size_t)(g * og) * (size_t)cg + (size_t)c) * khw;
            wgrad_lanes(&L, xd, yd, p, gw, sgd);
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
