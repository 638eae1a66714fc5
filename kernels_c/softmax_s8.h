/* int8 SOFTMAX and MEAN bit-exact with tflite-micro. SOFTMAX is TFLite's reference kernel
 * (reference_ops::Softmax, int8 in and out): gemmlowp fixed-point exp (input Q5.26) and
 * reciprocal, output scale 1/256 and zero point -128. The numpy twin is tte/quant/softmax.py, which also
 * prepares the parameters (PreprocessSoftmaxScaling, CalculateInputRadius). */
#ifndef TTE_SOFTMAX_S8_H
#define TTE_SOFTMAX_S8_H

#include "tte_common.h"

typedef struct {
    int32_t input_multiplier, input_left_shift, diff_min;
} tte_softmax_s8_params;

/* rows softmaxes over the last axis of x[rows, depth], depth < 512. */
void tte_softmax_s8(const int8_t *x, int8_t *y, int32_t rows, int32_t depth,
                    tte_softmax_s8_params p);

/* MEAN over H and W of x[n, c, h, w] as tflite-micro (QuantizedMeanOrSum):
 *   y = clamp(requantize(sum(x) - in_zero*h*w, multiplier, shift) + out_zero)
 * with 1/(h*w) folded into multiplier and shift at build time. y has shape [n, c, 1, 1]. */
void tte_mean_s8(const int8_t *x, tte_dims4 xd, int8_t *y, int32_t multiplier, int32_t shift,
                 int32_t in_zero, int32_t out_zero);

#endif
