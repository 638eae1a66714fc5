/* Reductions and softmax, portable scalar C99. See reduce.h for the contracts. */
#include "reduce.h"

#include <math.h>

/* Every kernel walks one line x[o, :, i] at a time: base pointer + k * inner. Each line's
 * elements are read before the same elements are written, which makes y == x safe. */

void tte_softmax_f32(const float *x, float *y, int32_t outer, int32_t axis_len, int32_t inner)
{
    int32_t o, i, k;
    if (axis_len <= 0) return;
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < inner; ++i) {
            const float *px = x + o * axis_len * inner + i;
            float *py = y + o * axis_len * inner + i;
            float m = px[0], s = 0.0f, inv;
            for (k = 1; k < axis_len; ++k)
                if (px[k * inner] > m) m = px[k * inner];
            for (k = 0; k < axis_len; ++k) {
                const float e = expf(px[k * inner] - m);
                py[k * inner] = e;
                s += e;
            }
            inv = 1.0f / s; /* s >= 1: the maximum contributes exp(0) */
            for (k = 0; k < axis_len; ++k) py[k * inner] *= inv;
        }
    }
}

void tte_log_softmax_f32(const float *x, float *y, int32_t outer, int32_t axis_len,
                         int32_t inner)
{
    int32_t o, i, k;
    if (axis_len <= 0) return;
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < inner; ++i) {
            const float *px = x + o * axis_len * inner + i;
            float *py = y + o * axis_len * inner + i;
            float m = px[0], s = 0.0f, lse;
            for (k = 1; k < axis_len; ++k)
                if (px[k * inner] > m) m = px[k * inner];
            for (k = 0; k < axis_len; ++k) s += expf(px[k * inner] - m);
            lse = logf(s);
            for (k = 0; k < axis_len; ++k) py[k * inner] = (px[k * inner] - m) - lse;
        }
    }
}

void tte_softmax_grad_f32(const float *y, const float *gy, float *gx, int32_t outer,
                          int32_t axis_len, int32_t inner)
{
    int32_t o, i, k;
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < inner; ++i) {
            const int32_t base = o * axis_len * inner + i;
            const float *py = y + base, *pg = gy + base;
            float *px = gx + base;
            float dot = 0.0f;
            for (k = 0; k < axis_len; ++k) dot += pg[k * inner] * py[k * inner];
            for (k = 0; k < axis_len; ++k) px[k * inner] = py[k * inner] * (pg[k * inner] - dot);
        }
    }
}

void tte_log_softmax_grad_f32(const float *y, const float *gy, float *gx, int32_t outer,
                              int32_t axis_len, int32_t inner)
{
    int32_t o, i, k;
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < inner; ++i) {
            const int32_t base = o * axis_len * inner + i;
            const float *py = y + base, *pg = gy + base;
            float *px = gx + base;
            float s = 0.0f;
            for (k = 0; k < axis_len; ++k) s += pg[k * inner];
            for (k = 0; k < axis_len; ++k) px[k * inner] = pg[k * inner] - expf(py[k * inner]) * s;
        }
    }
}

void tte_reduce_sum_f32(const float *x, float *y, int32_t outer, int32_t axis_len,
                        int32_t inner)
{
    int32_t o, i, k;
    for (o = 0; o < outer; ++o) {
        const float *px = x + o * axis_len * inner;
        float *py = y + o * inner;
        if (inner == 1) {
            float acc = 0.0f;
            for (k = 0; k < axis_len; ++k) acc += px[k];
            py[0] = acc;
            continue;
        }
        for (i = 0; i < inner; ++i) py[i] = 0.0f;
        for (k = 0; k < axis_len; ++k) /* row by row: contiguous reads */
            for (i = 0; i < inner; ++i) py[i] += px[k * inner + i];
    }
}

void tte_reduce_mean_f32(const float *x, float *y, int32_t outer, int32_t axis_len,
                         int32_t inner)
{
    const float count = (float)axis_len;
    int32_t j;
    tte_reduce_sum_f32(x, y, outer, axis_len, inner);
    for (j = 0; j < outer * inner; ++j) y[j] = y[j] / count; /* as numpy.mean: sum / count */
}

void tte_unreduce_f32(const float *gy, float *gx, int32_t outer, int32_t axis_len,
                      int32_t inner, float scale)
{
    int32_t o, i, k;
    for (o = 0; o < outer; ++o) {
        const float *pg = gy + o * inner;
        float *px = gx + o * axis_len * inner;
        for (k = 0; k < axis_len; ++k)
            for (i = 0; i < inner; ++i) px[k * inner + i] = pg[i] * scale;
    }
}
