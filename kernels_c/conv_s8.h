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
 * Arithmetic (see quant.h for requantisation and the overflow rule):
 *   acc = sum w * (x + input_offset)        int32, wrapping modulo 2^32
 *   acc = acc + bias[o]                     int32, wrapping (TFLite adds bias in int32;
 *                                           the MCU backbones have biases at the int32
 *                                           limits, and we keep TFLite's result)
 *   y   = clamp(tte_requantize(acc, multiplier[o], shift[o]) + output_offset,
 *               act_min, act_max)
 * bias may be NULL (no bias).
 */
#ifndef TTE_CONV_S8_H
#define TTE_CONV_S8_H

#include "quant.h"

/* CONV_2D / DEPTHWISE_CONV_2D, per-output-channel multiplier[yd.c] and shift[yd.c]. */
void tte_conv2d_s8(const int8_t *x, tte_dims4 xd, const int8_t *w, const int32_t *bias,
                   int8_t *y, tte_dims4 yd, tte_window p, const int32_t *multiplier,
                   const int32_t *shift, tte_s8_params q);

/* FULLY_CONNECTED: y[n, m] from x[n, k] and w[m, k] (row-major), per-tensor multiplier.
 *   acc = sum (w + filter_offset) * (x + input_offset) + bias[m]
 * filter_offset is -(filter zero point), 0 for TFLite's symmetric int8 weights. */
void tte_linear_s8(const int8_t *x, int32_t n, int32_t k, const int8_t *w, const int32_t *bias,
                   int8_t *y, int32_t m, int32_t multiplier, int32_t shift,
                   int32_t filter_offset, tte_s8_params q);

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

void tte_add_s8(const int8_t *a, const int8_t *b, int8_t *y, int32_t count, tte_add_s8_params p);

/* AVERAGE_POOL_2D int8 (input and output share scale and zero point, as TFLite requires):
 * sum the in-bounds elements (count of them = divisor), round as TFLite:
 * sum > 0 ? (sum + count/2) / count : (sum - count/2) / count (C division, toward zero),
 * then clamp to [act_min, act_max]. A window with no input element yields
 * clamp(0) (TFLite reports an error there). The window's groups field is ignored. */
void tte_avg_pool2d_s8(const int8_t *x, tte_dims4 xd, int8_t *y, tte_dims4 yd, tte_window p,
                       int32_t act_min, int32_t act_max);

/* MAX_POOL_2D int8: max of the in-bounds elements (start -128), clamped to
 * [act_min, act_max]. */
void tte_max_pool2d_s8(const int8_t *x, tte_dims4 xd, int8_t *y, tte_dims4 yd, tte_window p,
                       int32_t act_min, int32_t act_max);

#endif
