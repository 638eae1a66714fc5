/* int8 inference kernels with TFLite reference-kernel semantics, bit-exact with
 * tflite-micro (reference_integer_ops: ConvPerChannel, DepthwiseConvPerChannel,
 * FullyConnected, Add, AveragePool, MaxPool).
 *
 * Layout is TTE's: activations NCHW, conv weights OIHW ([O, C/groups, kh, kw]). The TFLite
 * frontend transposes NHWC activations and OHWI / [1, kh, kw, C*dm] weights at import;
 * depthwise with depth multiplier dm is groups = C, O = C*dm (output channel o reads input
 * channel o / dm, as TFLite's output_channel = m + ic*dm). Geometry in a tte_window;
 * positions outside the input are padding and contribute nothing (TFLite skips them, which
 * equals padding with the input zero point). The bottom/right pads are not read: the output
 * size (yd) decides how far windows run. Outputs are overwritten.
 *
 * Arithmetic (see quant.h for requantisation and the overflow rule), per tte_requant:
 *   acc = sum w * (x + input_offset)        int32, wrapping modulo 2^32
 *   TFLite (scale == NULL):
 *     acc = acc + bias[o]                   int32, wrapping (TFLite adds bias in int32)
 *     v   = tte_requantize(acc, multiplier[o], shift[o]) + output_offset
 *   half-even (scale != NULL; the MCU backbones' published rule):
 *     v   = rint(((double)acc + bias[o]) * scale[o]) + output_offset, exact sum, no wrap
 *         (their biases reach the int32 limits), saturated to int32
 *   y   = clamp(v, act_min, act_max)
 * bias may be NULL (no bias). mask, if not NULL, gets bit i (little-endian in bytes) of
 * output element i set when act_min <= v <= act_max: the clamp's gradient for training.
 * Double arithmetic must not be contracted into fused multiply-adds (-ffp-contract=off),
 * so that the half-even results equal the numpy reference bit for bit.
 *
 * Fast paths (off under TTE_SCALAR, which keeps the portable reference code on every
 * target; conv_s8.c proves each one exact, tests/kernels/test_requant_fast.py and
 * tests/test_int8_fast_paths.py check them against it):
 * - the half-even rule in single precision with a proven error bound, falling back to the
 *   double code where the bound cannot decide the rounding (cores with a single-precision
 *   FPU and no double one do the double code in software, hundreds of instructions); for
 *   conv / linear when tte_requant.scale_f is given, for tte_add_s8_double always; compiled
 *   where floats are evaluated in float (FLT_EVAL_METHOD 0) and not under -ffast-math;
 * - 1x1 convolutions as register tiles with the input offset hoisted (dsp_s8.h on
 *   Cortex-M with the DSP extension, plain C elsewhere).
 */
#ifndef TTE_CONV_S8_H
#define TTE_CONV_S8_H

#include "quant.h"
#include "split.h"

/* Requantisation of an accumulator for output channel c: TFLite's fixed point
 * (multiplier, shift) or, when scale is not NULL, half-even rounding in double. The arrays
 * hold one entry per output channel, or one for all when per_channel is 0.
 * scale_f (optional, half-even rule only): scale_f[k] == (float)scale[k], the float nearest
 * the double (round to nearest even), each 0 or of magnitude in [2^-100, 2^100]; codegen
 * emits it beside scale when every scale qualifies. It lets the kernels decide the rounding
 * in single precision (bit for bit the double rule's result); NULL: double only. */
typedef struct {
    const int32_t *multiplier, *shift;
    const double *scale;
    int32_t per_channel;
    const float *scale_f;
} tte_requant;

/* v before the clamp, for output channel c (bias may be NULL). */
int32_t tte_requant_apply(const tte_requant *r, int32_t c, int32_t acc, const int32_t *bias,
                          int32_t output_offset);

/* Store clamp(v) and the mask bit of element i. */
int8_t tte_clamp_s8_masked(int32_t v, int32_t act_min, int32_t act_max, uint8_t *mask,
                           size_t i);

/* CONV_2D / DEPTHWISE_CONV_2D (per-output-channel requantisation). A split weight (split.h)
 * has its trained channels in w and the rest in s.frozen; TTE_SPLIT_NONE: w is whole. */
void tte_conv2d_s8(const int8_t *x, tte_dims4 xd, const int8_t *w, const int32_t *bias,
                   int8_t *y, tte_dims4 yd, tte_window p, tte_requant rq, tte_s8_params q,
                   uint8_t *mask, tte_split s);

/* FULLY_CONNECTED: y[n, m] from x[n, k] and w[m, k] (row-major).
 *   acc = sum (w + filter_offset) * (x + input_offset) (+ bias[m] as above)
 * filter_offset is -(filter zero point), 0 for TFLite's symmetric int8 weights. */
void tte_linear_s8(const int8_t *x, int32_t n, int32_t k, const int8_t *w, const int32_t *bias,
                   int8_t *y, int32_t m, tte_requant rq, int32_t filter_offset, tte_s8_params q,
                   uint8_t *mask);

/* ADD int8, element-wise over count elements (same shapes, no broadcasting). TFLite's
 * prepared parameters: offsets are -(input zero points) and the output zero point,
 * left_shift is 20 for int8, multipliers/shifts from QuantizeMultiplierSmallerThanOneExp
 * (shifts <= 0). Per element:
 *   a' = requantize((a + input1_offset) << left_shift, input1_multiplier, input1_shift)
 *   b' likewise; y = clamp(requantize(a' + b', output_multiplier, output_shift)
 *                          + output_offset, act_min, act_max) */
typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} tte_add_s8_params;

void tte_add_s8(const int8_t *a, const int8_t *b, int8_t *y, int32_t count, tte_add_s8_params p,
                uint8_t *mask);

/* The MCU backbones' residual add, half-even in double:
 *   y = clamp(rint(((a - a_zero) * a_scale + (b - b_zero) * b_scale) / out_scale) + out_zero) */
typedef struct {
    double a_scale, b_scale, out_scale;
    int32_t a_zero, b_zero, out_zero;
    int32_t act_min, act_max;
} tte_add_s8_double_params;

void tte_add_s8_double(const int8_t *a, const int8_t *b, int8_t *y, int32_t count,
                       tte_add_s8_double_params p, uint8_t *mask);

/* QUANTIZE float32 -> int8 (TFLite AffineQuantize): clamp(roundf(x / scale) + zero), the
 * quotient in float, rounded half away from zero. */
void tte_quantize_s8(const float *x, int8_t *y, int32_t count, float scale, int32_t zero);

/* DEQUANTIZE: y = (float)(scale * (x - zero)) in double, as TFLite's reference. */
void tte_dequantize_s8(const int8_t *x, float *y, int32_t count, double scale, int32_t zero);

/* float32 -> int8 with the MCU input rule: clamp(rint((double)x / scale) + zero). */
void tte_quantize_half_even_s8(const float *x, int8_t *y, int32_t count, double scale,
                               int32_t zero);

/* AVERAGE_POOL_2D int8 (input and output share scale and zero point, as TFLite requires):
 * sum the in-bounds elements (count of them = divisor), round as TFLite:
 * sum > 0 ? (sum + count/2) / count : (sum - count/2) / count (C division, toward zero),
 * or, with half_even, to the nearest integer with ties to even (the MCU backbones'
 * round(mean)); then clamp to [act_min, act_max]. A window with no input element yields
 * clamp(0) (TFLite reports an error there). The window's groups field is ignored. */
void tte_avg_pool2d_s8(const int8_t *x, tte_dims4 xd, int8_t *y, tte_dims4 yd, tte_window p,
                       int32_t act_min, int32_t act_max, int32_t half_even);

/* MAX_POOL_2D int8: max of the in-bounds elements (start -128), clamped to
 * [act_min, act_max]. */
void tte_max_pool2d_s8(const int8_t *x, tte_dims4 xd, int8_t *y, tte_dims4 yd, tte_window p,
                       int32_t act_min, int32_t act_max);

#endif
