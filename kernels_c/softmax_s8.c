/* gemmlowp fixed point (fixedpoint.h) as TFLite's int8 softmax uses it; see softmax_s8.h.
 * Raw values are int32 with a stated number of integer bits (Qm.n); additions of raw values
 * never overflow on the ranges involved, as in gemmlowp. */
#include "softmax_s8.h"

#include "quant.h" /* tte_srdhm, tte_rounding_divide_by_pot */

#define SCALED_DIFF_BITS 5  /* exp() input: Q5.26 */
#define ACCUM_BITS 12       /* sum of exps: Q12.19 */

static int32_t mul_pot(int32_t x, int32_t e) /* SaturatingRoundingMultiplyByPOT, e > 0 */
{
    int32_t threshold = (int32_t)(((uint32_t)1 << (31 - e)) - 1u);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << e);
}

/* exp(a) for a in [-1/4, 0): Taylor expansion around -1/8, Q0.31. */
static int32_t exp_interval(int32_t a)
{
    const int32_t constant_term = 1895147668, one_third = 715827883;
    int32_t x = a + (1 << 28);
    int32_t x2 = tte_srdhm(x, x), x3 = tte_srdhm(x2, x);
    int32_t x4_over_4 = tte_rounding_divide_by_pot(tte_srdhm(x2, x2), 2);
    int32_t poly = tte_rounding_divide_by_pot(tte_srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return constant_term + tte_srdhm(constant_term, x + poly);
}

/* exp of a Q5.26 value a <= 0, Q0.31: exp on [-1/4, 0) times exp(-2^k) per set bit. */
static int32_t exp_negative(int32_t a)
{
    static const int32_t mult[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535,
                                    720401, 242}; /* exp(-2^k), k = -2 .. 4 */
    const int32_t frac = 31 - SCALED_DIFF_BITS, quarter = 1 << (frac - 2);
    int32_t a_mod = (a & (quarter - 1)) - quarter;
    int32_t result = exp_interval(mul_pot(a_mod, SCALED_DIFF_BITS));
    int32_t remainder = a_mod - a, k;
    for (k = -2; k < SCALED_DIFF_BITS; k++)
        if (remainder & (1 << (frac + k))) result = tte_srdhm(result, mult[k + 2]);
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31: three Newton-Raphson steps in Q2.29. */
static int32_t one_over_one_plus(int32_t a)
{
    int64_t total = (int64_t)a + INT32_MAX;
    int32_t half_den = (int32_t)((total + (total >= 0 ? 1 : -1)) / 2), i;
    int32_t x = 1515870810 + tte_srdhm(half_den, -1010580540);
    for (i = 0; i < 3; i++) {
        int32_t one_minus = (1 << 29) - tte_srdhm(half_den, x);
        x = x + mul_pot(tte_srdhm(x, one_minus), 2);
    }
    return mul_pot(x, 1);
}

static int32_t clz32(uint32_t x)
{
    int32_t n = 0;
    while (n < 32 && !(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
}

/* exp(beta * s_in * diff) in Q0.31 for diff = x - max(row) <= 0: diff * 2^input_left_shift
 * as TFLite's int32 product (the shift may be 31, where C's 1 << 31 would overflow), then
 * rescaled to Q5.26. */
static int32_t exp_of_diff(int32_t diff, tte_softmax_s8_params p)
{
    int32_t shifted = (int32_t)(uint32_t)((uint64_t)(int64_t)diff << p.input_left_shift);
    return exp_negative(tte_srdhm(shifted, p.input_multiplier));
}

void tte_softmax_s8(const int8_t *x, int8_t *y, int32_t rows, int32_t depth,
                    tte_softmax_s8_params p)
{
    int32_t r, c;
    for (r = 0; r < rows; r++) {
        const int8_t *xr = x + (size_t)r * depth;
        int8_t *yr = y + (size_t)r * depth;
        int32_t max = -128, sum = 0, headroom, bits_over_unit, scale;
        for (c = 0; c < depth; c++)
            if (xr[c] > max) max = xr[c];
        for (c = 0; c < depth; c++) {
            int32_t diff = xr[c] - max;
            if (diff >= p.diff_min)
                sum += tte_rounding_divide_by_pot(exp_of_diff(diff, p), ACCUM_BITS);
        }
        headroom = clz32((uint32_t)sum);
        bits_over_unit = ACCUM_BITS - headroom;
        scale = one_over_one_plus((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
        for (c = 0; c < depth; c++) {
            int32_t diff = xr[c] - max, v = -128;
            if (diff >= p.diff_min) {
                int32_t e = tte_srdhm(scale, exp_of_diff(diff, p));
                v = tte_rounding_divide_by_pot(e, bits_over_unit + 31 - 8) - 128;
            }
            yr[c] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
        }
    }
}

void tte_mean_s8(const int8_t *x, tte_dims4 xd, int8_t *y, int32_t multiplier, int32_t shift,
                 int32_t in_zero, int32_t out_zero)
{
    int32_t count = xd.h * xd.w, plane;
    for (plane = 0; plane < xd.n * xd.c; plane++) {
        const int8_t *xp = x + (size_t)plane * count;
        int32_t sum = 0, i, v;
        for (i = 0; i < count; i++) sum += xp[i];
        v = tte_requantize(sum - in_zero * count, multiplier, shift) + out_zero;
        y[plane] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
    }
}
