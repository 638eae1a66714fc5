/* 2-D average / max pooling (NCHW) and their gradients, fp32.
 *
 * The window's groups field is ignored. ceil_mode is expressed by the caller through the
 * output size (yd): windows that run past the input (and past the bottom/right pads) treat
 * those positions as padding. Max: padding never wins. Average: the divisor counts the
 * real input positions of the window, or, with count_include_pad, the positions inside
 * input + explicit pads (never the ceil-mode overhang). A window with nothing to count
 * yields 0 (and passes no gradient). Outputs are overwritten, not accumulated.
 */
#ifndef TTE_POOL_H
#define TTE_POOL_H

#include "tte_common.h"

void tte_avg_pool2d_f32(const float *x, tte_dims4 xd, float *y, tte_dims4 yd, tte_window p,
                        int count_include_pad);

void tte_avg_pool2d_grad_f32(const float *gy, tte_dims4 yd, float *gx, tte_dims4 xd,
                             tte_window p, int count_include_pad);

/* A window with no input position in it yields -INFINITY. */
void tte_max_pool2d_f32(const float *x, tte_dims4 xd, float *y, tte_dims4 yd, tte_window p);

/* Each output's gradient goes to the FIRST maximum of its window in scan order
 * (kernel row-major, then column); a NaN counts as a maximum, the first one wins. */
void tte_max_pool2d_grad_f32(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                             float *gx, tte_window p);

/* y[n, c] = mean of x[n, c, :, :]; y has xd.n * xd.c elements. */
void tte_global_avg_pool_f32(const float *x, tte_dims4 xd, float *y);

/* gx[n, c, i, j] = gy[n, c] / (h * w). */
void tte_global_avg_pool_grad_f32(const float *gy, float *gx, tte_dims4 xd);

#endif
