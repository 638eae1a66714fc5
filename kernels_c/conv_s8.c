/* int8 TFLite-semantics kernels; see conv_s8.h. */
#include "conv_s8.h"

#include <float.h>
#include <math.h>

#include "dsp_s8.h"

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

static int8_t clamp_masked(int32_t v, int32_t act_min, int32_t act_max, uint8_t *mask, size_t i)
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

int8_t tte_clamp_s8_masked(int32_t v, int32_t act_min, int32_t act_max, uint8_t *mask,
                           size_t i)
{
    return clamp_masked(v, act_min, act_max, mask, i);
}

#ifndef TTE_SCALAR
#define TTE_FAST_S8 /* the fast paths of this file (conv_s8.h); TTE_SCALAR: reference only */
#endif
/* The float requantisation's proof (below) needs each float operation evaluated in float
 * and rounded on its own: not where floats are evaluated wider (x87: FLT_EVAL_METHOD 2) or
 * under -ffast-math, which may fold (x + c) - c to x. (Contraction into fused multiply-adds
 * is off by conv_s8.h's rule, -ffp-contract=off, which the double code needs as well.) */
#if defined(TTE_FAST_S8) && defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0 && \
    !defined(__FAST_MATH__)
#define TTE_FAST_REQUANT
#endif

/* The double code, out of line where it is the fast paths' rare fallback; the fast paths'
 * per-output steps inlined into their callers (which the compilers do not all choose). */
#if defined(TTE_FAST_REQUANT) && defined(__GNUC__)
#define TTE_COLD __attribute__((noinline))
#define TTE_INLINE __attribute__((always_inline)) inline
#else
#define TTE_COLD
#define TTE_INLINE
#endif

/* ---- The half-even rule in single precision --------------------------------------------
 *
 * The rule (numpy reference, tte/quant/arith.py: requant_half_even) is
 *   v = sat32(rint(d) + zero),  d = fl64(S * s),  S = acc + bias (an exact integer, |S| < 2^32)
 * with s the double scale and rint rounding half to even. Without a double FPU (Cortex-M4/M7
 * with single-precision FPUs, rv32 ilp32f) d and rint(d) are software calls, ~680
 * instructions an output. Most outputs need none of it: round_if_clear below decides rint(d)
 * from a float estimate x of d and a float bound a >= |x - d|. Every operation named fl32 /
 * fl64 rounds to nearest even (the default mode, which the double rule assumes as well);
 * u = 2^-24 is the unit roundoff of float. Floats are evaluated in float (FLT_EVAL_METHOD 0:
 * SSE on the host, the FPUs of the MCU targets), and -ffp-contract=off keeps each operation
 * rounded on its own.
 *
 * round_if_clear(x, a), for a >= 2^-21 |x| (both callers' bounds are): n = (x + 1.5*2^23) -
 * 1.5*2^23, f = x - n, g = fl32(1/2 - |f|); decided iff g > a.
 *  (o)  Decided implies |x| < 2^20: g <= 1/2 (rounding is monotone), so a < 1/2. (A NaN or
 *       infinite x or a fails the test: comparisons with NaN are false.)
 *  (i)  For |x| < 2^22, n is an integer and |x - n| <= 1/2: x + 1.5*2^23 lies in
 *       [2^23, 2^24), where floats are the integers, so the sum rounds to an integer within
 *       1/2 of it; 1.5*2^23 is an integer, so the difference n is one, and exact (both
 *       operands in [2^23, 2^24): Sterbenz). (n is x rounded to nearest even; the proof does
 *       not need that.)
 *  (ii) f is exact: for |x| >= 1, x and n are integer multiples of ulp(x) = 2^(e-23),
 *       e = exponent of x >= 0, and |f| <= 1/2 <= 2^23 ulp(x), so f has at most 24
 *       significant bits. For |x| < 1, n is 0 (f = x) or +-1 with 1/2 <= |x| <= 1 (f = x -+ 1
 *       exact by Sterbenz).
 *  (iii) g > a implies 1/2 - |f| > a in the reals: otherwise 1/2 - |f| <= a, and rounding is
 *       monotone and leaves the float a unchanged, so g <= a.
 *  (iv) Then, given |x - d| <= a: |d - n| <= |d - x| + |x - n| <= a + |f| < 1/2, so n is the
 *       unique integer nearest d, d is no tie, and rint(d) = n whatever the tie rule.
 *  (v)  sat32(n + zero) in int32 with overflow detection equals the double code's
 *       rint(d) + zero (exact in double: |n| < 2^20, |zero| < 2^31) saturated to int32.
 * Undecided (the callers then run the double code): |x| >= 2^20, and every x within about a
 * of a half-integer, exact halves included.
 *
 * The conv/linear rule (half_even_f32): x = fl32(S_f * s_f), a = |x| * 2^-21, where
 * s_f = fl32(s) (tte_requant.scale_f; |s_f - s| <= u|s| as s lies in the normal range of
 * float, [2^-100, 2^100] by contract, or s_f = s = 0) and S_f is S in float: fl32(S) when
 * acc + bias does not leave int32, else fl32(fl32(acc + bias mod 2^32) +- 2^32), so
 * |S_f - S| <= (2u+u^2)|S| (the first rounding is at most u 2^31 <= u|S|, as |S| >= 2^31
 * there; the second u(1+u)|S|). With t = S s (real):
 *   S_f s_f = t(1 + e1)(1 + e2), |e1| <= 2u + u^2, |e2| <= u;  x = S_f s_f (1 + e3), |e3| <= u
 *   so |x - t| <= ((1+u)^4 - 1)|t| < 4.0001u|t|;  d = t(1 + e4), |e4| <= 2^-53,
 *   |x - d| < 4.0002u|t|, and |t| <= |x| + |x - t| gives |t| < |x|/(1 - 4.0001u), so
 *   |x - d| < 4.001u|x| < 8u|x| = 2^-21 |x| = a.
 * a = |x| 2^-21 is exact: S = 0 or s = 0 give x = d = 0, else |x| >= |s_f|(1 - 2u) > 2^-101,
 * far from the subnormals; x does not underflow (|S_f| >= 1, |s_f| >= 2^-100) and may
 * overflow only to infinity, which (o) rejects. So a decided output is the double rule's,
 * bit for bit; the factor 2 of slack in a costs a fallback rate of about 2^-20 |x| (tests
 * measure it: ~0.015% of outputs in the int8 range).
 */
#ifdef TTE_FAST_REQUANT
static TTE_INLINE int round_if_clear(float x, float a, int32_t zero, int32_t *v)
{
    float n = (x + 0x1.8p23f) - 0x1.8p23f, f = x - n;
    int32_t ni, sum;
    if (!(0.5f - fabsf(f) > a)) return 0;
    ni = (int32_t)n;
    sum = (int32_t)((uint32_t)ni + (uint32_t)zero);
    if (((ni ^ sum) & (zero ^ sum)) < 0) sum = zero < 0 ? INT32_MIN : INT32_MAX; /* overflow */
    *v = sum;
    return 1;
}

/* The half-even rule for S = acc + bias decided in float (see above): 1 and *v, or 0. */
static TTE_INLINE int half_even_f32(int32_t acc, int32_t bias, float scale_f, int32_t zero,
                                     int32_t *v)
{
    int32_t s = (int32_t)((uint32_t)acc + (uint32_t)bias);
    float sf = (float)s, x;
    if (((acc ^ s) & (bias ^ s)) < 0) /* acc + bias left int32: S = s + 2^32 or s - 2^32 */
        sf += s < 0 ? 0x1p32f : -0x1p32f;
    x = sf * scale_f;
    return round_if_clear(x, fabsf(x) * 0x1p-21f, zero, v);
}
#endif

/* The double code of the half-even rule (out of line: the rare fallback of the fast one). */
TTE_COLD static int32_t half_even_f64(int32_t acc, int32_t bias, double scale, int32_t zero)
{
    return rint_plus_zero(((double)acc + (double)bias) * scale, zero);
}

int32_t tte_requant_apply(const tte_requant *r, int32_t c, int32_t acc, const int32_t *bias,
                          int32_t output_offset)
{
    int32_t k = r->per_channel ? c : 0, b = bias ? bias[c] : 0; /* (adding 0 is exact) */
    if (r->scale) {
#ifdef TTE_FAST_REQUANT
        int32_t v;
        if (r->scale_f && half_even_f32(acc, b, r->scale_f[k], output_offset, &v)) return v;
#endif
        return half_even_f64(acc, b, r->scale[k], output_offset);
    }
    return wadd(tte_requantize(wadd(acc, b), r->multiplier[k], r->shift[k]), output_offset);
}

#ifdef TTE_FAST_S8
/* One output channel's requantisation constants, looked up once per channel by the fast
 * conv paths (tte_requant_apply's arithmetic, without the lookups per output). */
typedef struct {
    int32_t bias, zero;      /* bias 0 when there is none: both rules add it exactly then */
    int32_t mult, shift;     /* TFLite rule */
    const double *scale;     /* half-even rule when not NULL */
    float scale_f;
    int32_t fast;            /* scale_f given */
} rq_chan;

static rq_chan rq_prepare(const tte_requant *r, int32_t c, const int32_t *bias, int32_t zero)
{
    rq_chan ch;
    int32_t k = r->per_channel ? c : 0;
    ch.bias = bias ? bias[c] : 0;
    ch.zero = zero;
    ch.scale = r->scale ? r->scale + k : NULL;
    ch.mult = r->scale ? 0 : r->multiplier[k];
    ch.shift = r->scale ? 0 : r->shift[k];
#ifdef TTE_FAST_REQUANT
    ch.fast = r->scale && r->scale_f;
#else
    ch.fast = 0;
#endif
    ch.scale_f = ch.fast ? r->scale_f[k] : 0.0f;
    return ch;
}

/* v before the clamp, as tte_requant_apply's. */
static TTE_INLINE int32_t rq_value(const rq_chan *ch, int32_t acc)
{
    if (ch->scale) {
#ifdef TTE_FAST_REQUANT
        int32_t v;
        if (ch->fast && half_even_f32(acc, ch->bias, ch->scale_f, ch->zero, &v)) return v;
#endif
        return half_even_f64(acc, ch->bias, *ch->scale, ch->zero);
    }
    return wadd(tte_requantize(wadd(acc, ch->bias), ch->mult, ch->shift), ch->zero);
}

/* Shared by the fast conv paths below (DSP and portable): requantisation constants looked up
 * once per output channel (rq_chan), weight rows of split 1x1 weights gathered. */

#define PW_ROW 256 /* longest weight row a split pointwise weight gathers (on the stack) */

/* Store the count outputs i, i+1, ... of one channel from their accumulators: requantise,
 * clamp, mask bits. One call a run (a tile's row of pixels), its per-output steps inlined
 * (TTE_INLINE) into its loop. */
static void store_run(int8_t *y, size_t i, const rq_chan *ch, const int32_t *acc, int32_t count,
                      const tte_s8_params *q, uint8_t *mask)
{
    int32_t j;
    for (j = 0; j < count; j++)
        y[i + j] = clamp_masked(rq_value(ch, acc[j]), q->act_min, q->act_max, mask, i + j);
}

/* a * b modulo 2^32 */
static int32_t wmul(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a * (uint32_t)b);
}

/* Sum of c int8 (|sum| <= 128 c: no overflow for c < 2^24). */
static int32_t sum_s8(const int8_t *v, int32_t c)
{
    int32_t k, acc = 0;
    for (k = 0; k < c; k++) acc += v[k];
    return acc;
}

/* Weight row of output channel o of a 1x1 convolution with c input channels: in w, or
 * gathered into buf from a split weight. */
static const int8_t *pw_row(const int8_t *w, const tte_split *s, int32_t o, int32_t c,
                            int8_t *buf)
{
    int32_t ic;
    if (!s->count) return w + (size_t)o * c;
    for (ic = 0; ic < c; ic++) buf[ic] = *(const int8_t *)tte_split_block(w, s, 1, o, ic, c, 1);
    return buf;
}

/* A 1x1 convolution the pointwise paths take: stride 1, no padding, one group, the output
 * plane the input's, split weights no longer than PW_ROW, and (portable path) at most 2^16
 * input channels, so that |sum of w x| <= 2^14 2^16 fits int32 without wrapping. */
static int is_pointwise(tte_dims4 xd, tte_dims4 yd, const tte_window *p, const tte_split *s)
{
    return p->kernel_h == 1 && p->kernel_w == 1 && p->groups == 1 && p->stride_h == 1 &&
           p->stride_w == 1 && p->pad_top == 0 && p->pad_left == 0 && yd.h == xd.h &&
           yd.w == xd.w && (!s->count || xd.c <= PW_ROW) && xd.c <= 65536;
}

/* Output channels o and o + 1 of a 1x1 convolution, as pw_plane (one per path) takes them:
 * weight rows, input_offset * sum(w) (mod 2^32) and requantisation constants; without an
 * o + 1 (two == 0) channel o's copy is computed and not stored. */
typedef struct {
    const int8_t *w0, *w1;
    int32_t b0, b1, two;
    rq_chan r0, r1;
} pw_pair;
#endif

#ifdef TTE_DSP_S8
/* Cortex-M DSP paths of tte_conv2d_s8 and tte_linear_s8 (dsp_s8.h says why their sums equal
 * the scalar paths' bit for bit): the input offset leaves the inner loops as
 * input_offset * sum(w), and SMLAD multiplies two int8 lanes per instruction. Requantisation,
 * clamp and mask are the shared ones (store_run, rq_value). Geometries they do not cover take
 * the scalar path. Their stack buffers below add up to about 0.8 KB over the scalar path's. */

#define WIN_PACK 64  /* int16x2 words of one output channel's packed taps (on the stack) */
#define RUN 8        /* outputs of a row stored together */

/* sum_s8 four bytes a word. */
static int32_t dsp_sum_s8(const int8_t *v, int32_t c)
{
    int32_t k, acc = 0;
    for (k = 0; k + 4 <= c; k += 4) {
        uint32_t q = tte_dsp_load4(v + k);
        acc = tte_dsp_smlad(tte_dsp_even(q), 0x00010001, acc);
        acc = tte_dsp_smlad(tte_dsp_odd(q), 0x00010001, acc);
    }
    return acc + sum_s8(v + k, c - k);
}

/* 1x1, stride 1, no padding, one group: y[o, p] = sum over k of w[o, k] * (x[k, p] + off)
 * for every pixel p of the plane (hw of them), a tile of 2 output channels x 2 pixels at a
 * time. Four channels k..k+3 of two pixels load as two words
 *   v02 = (x[k, p], x[k, p+1], x[k+2, p], x[k+2, p+1]),  v13 likewise for k+1, k+3,
 * whose even bytes are pixel p's lanes (x[k], x[k+2]) / (x[k+1], x[k+3]) and odd bytes
 * pixel p+1's; one word of w[o, k..k+3] gives the matching (w[k], w[k+2]), (w[k+1], w[k+3]). */
static void pw_plane(const int8_t *xn, size_t hw, int32_t c, const pw_pair *pp, int8_t *y,
                     size_t y0, const tte_s8_params *q, uint8_t *mask)
{
    const int8_t *w0 = pp->w0, *w1 = pp->w1;
    int32_t b0 = pp->b0, b1 = pp->b1, two = pp->two, k;
    size_t y1 = y0 + hw, p;
    for (p = 0; p + 2 <= hw; p += 2) {
        int32_t a00 = b0, a01 = b0, a10 = b1, a11 = b1;
        const int8_t *xp = xn + p;
        for (k = 0; k + 4 <= c; k += 4, xp += 4 * hw) {
            uint32_t v02 = tte_dsp_load2(xp) | tte_dsp_load2(xp + 2 * hw) << 16;
            uint32_t v13 = tte_dsp_load2(xp + hw) | tte_dsp_load2(xp + 3 * hw) << 16;
            int32_t e0 = tte_dsp_even(v02), e1 = tte_dsp_odd(v02);
            int32_t d0 = tte_dsp_even(v13), d1 = tte_dsp_odd(v13);
            uint32_t wq = tte_dsp_load4(w0 + k);
            int32_t we = tte_dsp_even(wq), wd = tte_dsp_odd(wq);
            a00 = tte_dsp_smlad(d0, wd, tte_dsp_smlad(e0, we, a00));
            a01 = tte_dsp_smlad(d1, wd, tte_dsp_smlad(e1, we, a01));
            wq = tte_dsp_load4(w1 + k);
            we = tte_dsp_even(wq);
            wd = tte_dsp_odd(wq);
            a10 = tte_dsp_smlad(d0, wd, tte_dsp_smlad(e0, we, a10));
            a11 = tte_dsp_smlad(d1, wd, tte_dsp_smlad(e1, we, a11));
        }
        for (; k < c; k++, xp += hw) {
            a00 = wadd(a00, (int32_t)w0[k] * xp[0]);
            a01 = wadd(a01, (int32_t)w0[k] * xp[1]);
            a10 = wadd(a10, (int32_t)w1[k] * xp[0]);
            a11 = wadd(a11, (int32_t)w1[k] * xp[1]);
        }
        {
            int32_t run[2][2];
            run[0][0] = a00;
            run[0][1] = a01;
            run[1][0] = a10;
            run[1][1] = a11;
            store_run(y, y0 + p, &pp->r0, run[0], 2, q, mask);
            if (two) store_run(y, y1 + p, &pp->r1, run[1], 2, q, mask);
        }
    }
    if (p < hw) { /* the last pixel of an odd plane: its four channels gathered */
        int32_t a0 = b0, a1 = b1;
        const int8_t *xp = xn + p;
        for (k = 0; k + 4 <= c; k += 4, xp += 4 * hw) {
            uint32_t v = tte_dsp_bytes(xp[0], xp[hw], xp[2 * hw], xp[3 * hw]);
            int32_t e = tte_dsp_even(v), d = tte_dsp_odd(v);
            uint32_t wq = tte_dsp_load4(w0 + k);
            a0 = tte_dsp_smlad(d, tte_dsp_odd(wq), tte_dsp_smlad(e, tte_dsp_even(wq), a0));
            wq = tte_dsp_load4(w1 + k);
            a1 = tte_dsp_smlad(d, tte_dsp_odd(wq), tte_dsp_smlad(e, tte_dsp_even(wq), a1));
        }
        for (; k < c; k++, xp += hw) {
            a0 = wadd(a0, (int32_t)w0[k] * xp[0]);
            a1 = wadd(a1, (int32_t)w1[k] * xp[0]);
        }
        store_run(y, y0 + p, &pp->r0, &a0, 1, q, mask);
        if (two) store_run(y, y1 + p, &pp->r1, &a1, 1, q, mask);
    }
}

/* The taps of output channel o for conv_window_dsp: per kernel row (ic, ky), `quads` groups
 * of four taps (zero past kernel_w), each as its even and its odd int16x2 lane pair in pk,
 * and *sum = the sum of the taps (when quads > 0). Returns the taps as int8 [ic][ky][kx]:
 * in w, or gathered into buf from a split weight. */
static const int8_t *pack_taps(const int8_t *w, const tte_split *s, int32_t o, int32_t cg,
                               const tte_window *p, int32_t quads, int8_t *buf, int32_t *pk,
                               int32_t *sum)
{
    int32_t kw = p->kernel_w, khw = p->kernel_h * kw, rows = cg * p->kernel_h, ic, r, qd, j;
    const int8_t *taps = w + (size_t)o * cg * khw;
    if (s->count) {
        for (ic = 0; ic < cg; ic++)
            memcpy(buf + ic * khw, tte_split_block(w, s, 1, o, ic, cg, khw), (size_t)khw);
        taps = buf;
    }
    *sum = 0;
    for (r = 0; r < rows && quads; r++) { /* rows (ic, ky) lie one after another in taps */
        const int8_t *t = taps + r * kw;
        for (qd = 0; qd < quads; qd++, pk += 2) {
            int32_t left = kw - 4 * qd;
            uint32_t v = 0;
            if (left >= 4)
                v = tte_dsp_load4(t + 4 * qd);
            else
                for (j = 0; j < left; j++) v |= (uint32_t)(uint8_t)t[4 * qd + j] << 8 * j;
            pk[0] = tte_dsp_even(v);
            pk[1] = tte_dsp_odd(v);
            *sum = tte_dsp_smlad(pk[1], 0x00010001, tte_dsp_smlad(pk[0], 0x00010001, *sum));
        }
    }
    return taps;
}

/* A window wholly inside the input, whose kernel row r = (ic, ky) starts at xp + roff[r]:
 * `quads` words of four input bytes per row against the packed taps (bytes past kernel_w
 * meet zero taps), added to acc. */
static int32_t inner_acc(const int8_t *xp, const int32_t *roff, int32_t rows, int32_t quads,
                         const int32_t *pk, int32_t acc)
{
    int32_t r, qd;
    if (quads == 1) { /* kernel_w <= 4: one word per row */
        for (r = 0; r < rows; r++, pk += 2) {
            uint32_t v = tte_dsp_load4(xp + roff[r]);
            acc = tte_dsp_smlad(tte_dsp_odd(v), pk[1], tte_dsp_smlad(tte_dsp_even(v), pk[0], acc));
        }
        return acc;
    }
    for (r = 0; r < rows; r++) {
        const int8_t *xr = xp + roff[r];
        for (qd = 0; qd < quads; qd++, pk += 2) {
            uint32_t v = tte_dsp_load4(xr + 4 * qd);
            acc = tte_dsp_smlad(tte_dsp_odd(v), pk[1], tte_dsp_smlad(tte_dsp_even(v), pk[0], acc));
        }
    }
    return acc;
}

/* A window over the padding: its taps that read the input one by one, w * (x + off), for
 * the kernel rows [ylo, yhi) the caller found (tte_tap_range) and the columns found here;
 * taps[ic][ky][kx] are the channel's taps. */
static int32_t border_acc(const int8_t *xg, tte_dims4 xd, const int8_t *taps, int32_t cg,
                          const tte_window *p, int32_t iy0, int32_t ylo, int32_t yhi,
                          int32_t ix0, int32_t off)
{
    int32_t kh = p->kernel_h, kw = p->kernel_w, acc = 0, ic, ky, kx;
    int32_t xlo = ix0 < 0 ? -ix0 : 0, xhi = xd.w - ix0 < kw ? xd.w - ix0 : kw;
    for (ic = 0; ic < cg; ic++) {
        const int8_t *xc = xg + (size_t)ic * xd.h * xd.w + ix0, *tc = taps + ic * kh * kw;
        for (ky = ylo; ky < yhi; ky++) {
            const int8_t *xr = xc + (size_t)(iy0 + ky * p->dilation_h) * xd.w;
            for (kx = xlo; kx < xhi; kx++)
                acc = wadd(acc, (int32_t)tc[ky * kw + kx] * (xr[kx] + off));
        }
    }
    return acc;
}

/* Any other convolution with dilation_w 1 whose taps fit WIN_PACK (depthwise 3x3 to 7x7,
 * the stem's 3x3 over 3 channels, strided 1x1, ...). Output positions [oy_a, oy_b) x
 * [ox_a, ox_b) have their window wholly inside the input: inner_acc, with the input offset
 * as input_offset * (sum of the taps), provided the window's last word ends inside x (so
 * nothing outside x is read; else, and for the other positions, border_acc). Returns 0
 * (nothing done) when not applicable. */
static int conv_window_dsp(const int8_t *x, tte_dims4 xd, const int8_t *w, const int32_t *bias,
                           int8_t *y, tte_dims4 yd, const tte_window *p, const tte_requant *rq,
                           const tte_s8_params *q, uint8_t *mask, const tte_split *s)
{
    int32_t cg = xd.c / p->groups, og = yd.c / p->groups, kh = p->kernel_h, kw = p->kernel_w;
    int32_t quads = (kw + 3) / 4, rows = cg * kh, off = q->input_offset;
    int32_t n, o, oy, ox, r, oy_a, oy_b, ox_a, ox_b, nrun = 0;
    int32_t pk[WIN_PACK], roff[WIN_PACK / 2], run[RUN];
    int8_t buf[WIN_PACK * 2];
    size_t hw = (size_t)xd.h * xd.w, total = (size_t)xd.n * xd.c * hw;
    if (p->dilation_w != 1 || rows * quads * 2 > WIN_PACK) return 0;
    for (r = 0; r < rows; r++) roff[r] = (int32_t)((r / kh) * hw + (r % kh) * p->dilation_h * xd.w);
    tte_tap_range(-p->pad_top, p->stride_h, xd.h - (kh - 1) * p->dilation_h, yd.h, &oy_a, &oy_b);
    tte_tap_range(-p->pad_left, p->stride_w, xd.w - kw + 1, yd.w, &ox_a, &ox_b);
    if (oy_a == oy_b || ox_a == ox_b) { /* small planes: no window inside, nothing to pack */
        oy_b = oy_a;
        quads = 0;
    }
    for (n = 0; n < yd.n; n++) {
        for (o = 0; o < yd.c; o++) {
            size_t xoff = ((size_t)n * xd.c + (size_t)(o / og) * cg) * hw;
            const int8_t *xg = x + xoff;
            size_t yo = ((size_t)n * yd.c + o) * yd.h * yd.w;
            int32_t sum, base;
            const int8_t *taps = pack_taps(w, s, o, cg, p, quads, buf, pk, &sum);
            rq_chan ch = rq_prepare(rq, o, bias, q->output_offset);
            /* a fast window's last word ends at xg + its first element + need */
            size_t need = (size_t)roff[rows - 1] + 4 * (size_t)quads, room = total - xoff;
            base = wmul(off, sum);
            for (oy = 0; oy < yd.h; oy++) {
                int32_t iy0 = oy * p->stride_h - p->pad_top, ylo, yhi;
                int inside = oy >= oy_a && oy < oy_b;
                tte_tap_range(iy0, p->dilation_h, xd.h, kh, &ylo, &yhi);
                for (ox = 0; ox < yd.w; ox++) {
                    int32_t ix0 = ox * p->stride_w - p->pad_left, acc;
                    size_t at = (size_t)iy0 * xd.w + ix0; /* valid when inside */
                    if (inside && ox >= ox_a && ox < ox_b && need <= room - at)
                        acc = inner_acc(xg + at, roff, rows, quads, pk, base);
                    else
                        acc = border_acc(xg, xd, taps, cg, p, iy0, ylo, yhi, ix0, off);
                    run[nrun++] = acc;
                    if (nrun == RUN || ox == yd.w - 1) { /* outputs ox + 1 - nrun .. ox */
                        store_run(y, yo + (size_t)oy * yd.w + (ox + 1 - nrun), &ch, run, nrun,
                                  q, mask);
                        nrun = 0;
                    }
                }
            }
        }
    }
    return 1;
}

/* tte_linear_s8, each sum of (w + filter_offset) * (x + input_offset) over k taken as
 *   sum(w x) + input_offset sum(w) + [filter_offset sum(x) + k filter_offset input_offset]:
 * the first two in one pass of SMLADs over words of four, the bracket once per row of x. */
static void linear_dsp(const int8_t *x, int32_t n, int32_t k, const int8_t *w,
                       const int32_t *bias, int8_t *y, int32_t m, const tte_requant *rq,
                       int32_t filter_offset, const tte_s8_params *q, uint8_t *mask)
{
    int32_t b, j, i;
    for (b = 0; b < n; b++) {
        const int8_t *xb = x + (size_t)b * k;
        int32_t xterm = filter_offset == 0
                            ? 0
                            : wadd(wmul(filter_offset, dsp_sum_s8(xb, k)),
                                   wmul(k, wmul(filter_offset, q->input_offset)));
        for (j = 0; j < m; j++) {
            const int8_t *wj = w + (size_t)j * k;
            int32_t dot = 0, wsum = 0;
            for (i = 0; i + 4 <= k; i += 4) {
                uint32_t vx = tte_dsp_load4(xb + i), vw = tte_dsp_load4(wj + i);
                int32_t we = tte_dsp_even(vw), wd = tte_dsp_odd(vw);
                dot = tte_dsp_smlad(tte_dsp_odd(vx), wd, tte_dsp_smlad(tte_dsp_even(vx), we, dot));
                wsum = tte_dsp_smlad(wd, 0x00010001, tte_dsp_smlad(we, 0x00010001, wsum));
            }
            for (; i < k; i++) {
                dot = wadd(dot, (int32_t)wj[i] * xb[i]);
                wsum += wj[i];
            }
            rq_chan ch = rq_prepare(rq, j, bias, q->output_offset);
            dot = wadd(wadd(dot, wmul(q->input_offset, wsum)), xterm);
            store_run(y, (size_t)b * m + j, &ch, &dot, 1, q, mask);
        }
    }
}
#endif

#if defined(TTE_FAST_S8) && !defined(TTE_DSP_S8)
/* The portable fast path of a 1x1 convolution (is_pointwise) for cores without the DSP
 * extension (rv32, rv32v, the host): the DSP path's restructuring in plain C. The generic
 * window loop spends ~50 instructions a multiply-accumulate on bounds checks, split-weight
 * lookups and the input offset; here
 *   y[o, p] = input_offset * sum_k w[o, k] + sum_k w[o, k] x[k, p]
 * with the first term once per output channel and the second in tiles of 2 output channels
 * x 4 pixels: per input channel k, four bytes of x (one per pixel, consecutive) and two
 * weights make eight products, each accumulator a register. Exact as the DSP path
 * (dsp_s8.h, 4): sum w (x + off) = sum w x + off sum w in Z, hence modulo 2^32; the inner
 * sums do not wrap (|w x| <= 2^14, at most 2^16 terms: is_pointwise), and the offset term
 * and the final addition are taken modulo 2^32 (wmul, wadd) as the scalar path's sum is. */
static void pw_plane(const int8_t *xn, size_t hw, int32_t c, const pw_pair *pp, int8_t *y,
                     size_t y0, const tte_s8_params *q, uint8_t *mask)
{
    const int8_t *w0 = pp->w0, *w1 = pp->w1;
    int32_t b0 = pp->b0, b1 = pp->b1, two = pp->two, k;
    size_t y1 = y0 + hw, p;
    for (p = 0; p + 4 <= hw; p += 4) {
        int32_t a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
        const int8_t *xp = xn + p;
        for (k = 0; k < c; k++, xp += hw) {
            int32_t x0 = xp[0], x1 = xp[1], x2 = xp[2], x3 = xp[3];
            int32_t v0 = w0[k], v1 = w1[k];
            a00 += v0 * x0;
            a01 += v0 * x1;
            a02 += v0 * x2;
            a03 += v0 * x3;
            a10 += v1 * x0;
            a11 += v1 * x1;
            a12 += v1 * x2;
            a13 += v1 * x3;
        }
        {
            int32_t run[2][4];
            run[0][0] = wadd(b0, a00);
            run[0][1] = wadd(b0, a01);
            run[0][2] = wadd(b0, a02);
            run[0][3] = wadd(b0, a03);
            run[1][0] = wadd(b1, a10);
            run[1][1] = wadd(b1, a11);
            run[1][2] = wadd(b1, a12);
            run[1][3] = wadd(b1, a13);
            store_run(y, y0 + p, &pp->r0, run[0], 4, q, mask);
            if (two) store_run(y, y1 + p, &pp->r1, run[1], 4, q, mask);
        }
    }
    for (; p < hw; p++) { /* the last pixels of a plane not a multiple of four */
        int32_t a0 = 0, a1 = 0;
        const int8_t *xp = xn + p;
        for (k = 0; k < c; k++, xp += hw) {
            a0 += w0[k] * xp[0];
            a1 += w1[k] * xp[0];
        }
        a0 = wadd(b0, a0);
        a1 = wadd(b1, a1);
        store_run(y, y0 + p, &pp->r0, &a0, 1, q, mask);
        if (two) store_run(y, y1 + p, &pp->r1, &a1, 1, q, mask);
    }
}
#endif

#ifdef TTE_FAST_S8
/* The 1x1 paths' walk (is_pointwise): per image and pair of output channels, the pair's
 * weight rows, offset terms and requantisation constants, then the plane's tiles. */
static void conv_pointwise(const int8_t *x, tte_dims4 xd, const int8_t *w, const int32_t *bias,
                           int8_t *y, tte_dims4 yd, const tte_requant *rq,
                           const tte_s8_params *q, uint8_t *mask, const tte_split *s)
{
    int32_t c = xd.c, n, o;
    size_t hw = (size_t)yd.h * yd.w;
    int8_t buf[2][PW_ROW];
    pw_pair pp;
    for (n = 0; n < yd.n; n++) {
        for (o = 0; o < yd.c; o += 2) {
            pp.two = o + 1 < yd.c;
            pp.w0 = pw_row(w, s, o, c, buf[0]);
            pp.w1 = pp.two ? pw_row(w, s, o + 1, c, buf[1]) : pp.w0;
#ifdef TTE_DSP_S8
            pp.b0 = wmul(q->input_offset, dsp_sum_s8(pp.w0, c));
            pp.b1 = wmul(q->input_offset, dsp_sum_s8(pp.w1, c));
#else
            pp.b0 = wmul(q->input_offset, sum_s8(pp.w0, c));
            pp.b1 = wmul(q->input_offset, sum_s8(pp.w1, c));
#endif
            pp.r0 = rq_prepare(rq, o, bias, q->output_offset);
            pp.r1 = pp.two ? rq_prepare(rq, o + 1, bias, q->output_offset) : pp.r0;
            pw_plane(x + (size_t)n * c * hw, hw, c, &pp, y, ((size_t)n * yd.c + o) * hw, q,
                     mask);
        }
    }
}
#endif

void tte_conv2d_s8(const int8_t *x, tte_dims4 xd, const int8_t *w, const int32_t *bias,
                   int8_t *y, tte_dims4 yd, tte_window p, tte_requant rq, tte_s8_params q,
                   uint8_t *mask, tte_split s)
{
    int32_t cg = xd.c / p.groups; /* input channels per group */
    int32_t og = yd.c / p.groups; /* output channels per group */
    int32_t khw = p.kernel_h * p.kernel_w;
    int32_t n, o, oy, ox, ic, ky, kx;
#ifdef TTE_FAST_S8
    if (is_pointwise(xd, yd, &p, &s)) {
        conv_pointwise(x, xd, w, bias, y, yd, &rq, &q, mask, &s);
        return;
    }
#endif
#ifdef TTE_DSP_S8
    if (conv_window_dsp(x, xd, w, bias, y, yd, &p, &rq, &q, mask, &s)) return;
#endif
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
#ifdef TTE_DSP_S8
    if (k >= 4) { /* (shorter rows: the scalar loop costs less) */
        linear_dsp(x, n, k, w, bias, y, m, &rq, filter_offset, &q, mask);
        return;
    }
#endif
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

/* The residual add's value before the clamp, in double (the rule of conv_s8.h). */
TTE_COLD static int32_t add_f64(int32_t a, int32_t b, const tte_add_s8_double_params *p)
{
    double total = (double)(a - p->a_zero) * p->a_scale + (double)(b - p->b_zero) * p->b_scale;
    return rint_plus_zero(total / p->out_scale, p->out_zero);
}

#ifdef TTE_FAST_REQUANT
/* 0 or a magnitude within [2^lo, 2^hi] */
static int in_range(double v, double lo, double hi)
{
    double m = fabs(v);
    return m == 0.0 || (m >= lo && m <= hi);
}

/* The residual add decided in single precision (round_if_clear), exactly as add_f64.
 * With A = a - a_zero, B = b - b_zero (integers, |A|, |B| <= 2^16 + 128 here, exact in
 * float), r_a = a_scale / out_scale, r_b likewise (reals), the double rule computes
 *   d = fl64(fl64(fl64(A a_scale) + fl64(B b_scale)) / out_scale),
 * an estimate of t = A r_a + B r_b. Let P = |A r_a| + |B r_b| >= |t| and eta = 2^-53.
 * Double: each product and the sum are within eta of their exact values (relative; a sum
 * that is subnormal is exact), the quotient within eta or 2^-1074 absolute if it underflows:
 *   |d - t| <= eta P (1+eta)^2 + (2 eta + eta^2) P + 2^-1074 <= 3.0001 eta P + 2^-1074.
 * Float: k_a = fl32(fl64(a_scale / out_scale)) = r_a (1 + e), |e| <= u + eta + u eta, so
 * p_a = fl32(A k_a) is within ((1+u+2eta)(1+u) - 1) <= 2.0001u of A r_a (relative), p_b
 * likewise, and x = fl32(p_a + p_b) is within u |p_a + p_b| <= u(1 + 2.0001u) P of their sum:
 *   |x - t| <= 3.0002u P,  so  |x - d| <= 3.0003u P + 2^-1074.
 * The bound: Q = fl32(|p_a| + |p_b|) >= P (1 - 2.0001u)(1 - u) >= P (1 - 3.0002u), so
 * P <= Q (1 + 3.0003u), and a = Q 2^-21 = 8u Q exceeds 3.001u Q + 2^-1074 >= |x - d|:
 * when A r_a or B r_b is not 0 it is at least 2^-100 (r_a, r_b are 0 or at least 2^-100
 * here), so Q >= 2^-101 and a is exact; when both are 0, x = d = 0 = Q. And a >= 2^-21 |x|,
 * as |x| = fl32(|p_a + p_b|) <= Q (monotone rounding). The scales' ranges (checked once a
 * call) keep every double product, sum and quotient finite and the products normal, and
 * every float finite: |A k_a| <= 2^17 2^100. */
static int add_fast_ok(const tte_add_s8_double_params *p, float *ka, float *kb)
{
    double ra, rb;
    if (p->a_zero < -65536 || p->a_zero > 65536 || p->b_zero < -65536 || p->b_zero > 65536 ||
        !in_range(p->a_scale, 0x1p-500, 0x1p500) || !in_range(p->b_scale, 0x1p-500, 0x1p500) ||
        p->out_scale == 0.0 || !in_range(p->out_scale, 0x1p-500, 0x1p500))
        return 0;
    ra = p->a_scale / p->out_scale;
    rb = p->b_scale / p->out_scale;
    if (!in_range(ra, 0x1p-100, 0x1p100) || !in_range(rb, 0x1p-100, 0x1p100)) return 0;
    *ka = (float)ra;
    *kb = (float)rb;
    return 1;
}

/* One element of the add decided in float (with add_fast_ok's ka, kb): 1 and *v, or 0. */
static TTE_INLINE int add_f32(int32_t a, int32_t b, const tte_add_s8_double_params *p,
                              float ka, float kb, int32_t *v)
{
    float pa = (float)(a - p->a_zero) * ka, pb = (float)(b - p->b_zero) * kb;
    return round_if_clear(pa + pb, (fabsf(pa) + fabsf(pb)) * 0x1p-21f, p->out_zero, v);
}
#endif

void tte_add_s8_double(const int8_t *a, const int8_t *b, int8_t *y, int32_t count,
                       tte_add_s8_double_params p, uint8_t *mask)
{
    int32_t i;
#ifdef TTE_FAST_REQUANT
    float ka, kb;
    if (add_fast_ok(&p, &ka, &kb)) {
        for (i = 0; i < count; i++) {
            int32_t v;
            if (!add_f32(a[i], b[i], &p, ka, kb, &v)) v = add_f64(a[i], b[i], &p);
            y[i] = tte_clamp_s8_masked(v, p.act_min, p.act_max, mask, (size_t)i);
        }
        return;
    }
#endif
    for (i = 0; i < count; i++)
        y[i] = tte_clamp_s8_masked(add_f64(a[i], b[i], &p), p.act_min, p.act_max, mask,
                                   (size_t)i);
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
