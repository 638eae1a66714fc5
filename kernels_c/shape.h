/* Data movement, fp32 (constant pad also int8): copy (reshape), transpose, concat, constant pad,
 * strided slice.
 * Outputs must not overlap inputs. Shapes are row-major and contiguous. */
#ifndef TTE_SHAPE_H
#define TTE_SHAPE_H

#include "tte_common.h"

/* Largest rank of transpose, pad and slice (the code generator merges adjacent axes);
 * calls with another rank do nothing. */
#define TTE_SHAPE_MAX_RANK 6

/* y[i] = x[i], i < n (reshape moves no data; this is for when it needs a new buffer). */
void tte_copy_f32(const float *x, float *y, int32_t n);

/* y = numpy.transpose(x, perm): output axis d is input axis perm[d]. 0 <= rank <= 6. */
void tte_transpose_f32(const float *x, const int32_t *in_shape, const int32_t *perm,
                       int32_t rank, float *y);

/* Concatenate a list of count inputs along one axis, each seen as [outer, axis_lens[j], inner]
 * (outer/inner: products of the axes before/after the concat axis, equal for all inputs).
 * y is [outer, sum(axis_lens), inner]. A two-input concat is count = 2. */
void tte_concat_f32(const float *const *xs, const int32_t *axis_lens, int32_t count,
                    int32_t outer, int32_t inner, float *y);

/* Constant pad: y has shape in_shape[d] + pads[d] + pads[rank + d] (ONNX order: all begins,
 * then all ends; non-negative); elements outside x are value. 0 <= rank <= 6. */
void tte_pad_f32(const float *x, const int32_t *in_shape, int32_t rank, const int32_t *pads,
                 float value, float *y);
void tte_pad_s8(const int8_t *x, const int32_t *in_shape, int32_t rank, const int32_t *pads,
                int8_t value, int8_t *y);

/* Strided slice over all rank axes: y[j0, j1, ...] = x[starts[0] + j0 * steps[0], ...],
 * out_shape[d] elements along axis d. Steps are non-zero and may be negative; starts are
 * resolved to actual indices 0 <= starts[d] < in_shape[d] (an axis that is not sliced has
 * start 0, step 1, out_shape = in_shape). 0 <= rank <= 6. */
void tte_slice_f32(const float *x, const int32_t *in_shape, int32_t rank, const int32_t *starts,
                   const int32_t *steps, const int32_t *out_shape, float *y);

/* Gradient of tte_slice_f32 with the same arguments: gx (in_shape) is zeroed, then gy
 * (out_shape) is scattered to the sliced positions. */
void tte_slice_grad_f32(const float *gy, const int32_t *in_shape, int32_t rank,
                        const int32_t *starts, const int32_t *steps, const int32_t *out_shape,
                        float *gx);

#endif
