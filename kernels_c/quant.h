/* Integer requantisation with TFLite's reference arithmetic (int8 inference kernels).
 *
 * The int8 kernels (conv_s8.h) follow TFLite / tflite-micro reference kernels bit for bit;
 * tflite-micro's interpreter is the oracle (tests/kernels/test_s8_kernels.py).
 * Multipliers and shifts are prepared at build time exactly as TFLite's QuantizeMultiplier
 * does (tests/kernels/tflite_arith.py: quantize_multiplier): real = multiplier * 2^(shift-31),
 * multiplier in [2^30, 2^31) (or 0), shift in [-31, 30].
 *
 * Overflow: TFLite computes in int32 and relies on two's complement wrap-around where a sum
 * overflows (signed overflow is undefined in C, but every target compiler wraps). These
 * kernels do the same sums modulo 2^32 through uint32_t, so they give TFLite's results
 * without undefined behaviour (clean under UBSan).
 */
#ifndef TTE_QUANT_H
#define TTE_QUANT_H

#include "tte_common.h"

/* Offsets and fused-activation clamp of an int8 op. RELU / RELU6 / NONE are expressed as
 * [act_min, act_max] (TFLite CalculateActivationRangeQuantized); NONE is [-128, 127]. */
typedef struct {
    int32_t input_offset;  /* -(input zero point) */
    int32_t output_offset; /* output zero point */
    int32_t act_min, act_max;
} tte_s8_params;

/* TFLite MultiplyByQuantizedMultiplier, double rounding (gemmlowp path of
 * tensorflow/lite/kernels/internal/common.h):
 *   RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc * 2^max(shift,0), multiplier),
 *                       max(-shift, 0)).
 * acc * 2^left_shift wraps modulo 2^32 as in TFLite. Defined for every int32 acc and
 * multiplier and shift in [-31, 31]. */
int32_t tte_requantize(int32_t acc, int32_t multiplier, int32_t shift);

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a*b / 2^31), ties away from zero,
 * saturating the one overflowing case a == b == INT32_MIN. */
int32_t tte_srdhm(int32_t a, int32_t b);

/* gemmlowp RoundingDivideByPOT: x / 2^exponent (0..31) rounded to nearest, ties away from
 * zero. */
int32_t tte_rounding_divide_by_pot(int32_t x, int32_t exponent);

#endif
