/* Data movement, portable scalar C99. See shape.h for the contracts. */
#include "shape.h"

#include <string.h>

void tte_copy_f32(const float *x, float *y, int32_t n)
{
    if (n > 0 && x != y) memcpy(y, x, (size_t)n * sizeof(float));
}

/* Row-major element strides of a contiguous shape. */
static void strides_of(const int32_t *shape, int32_t rank, int32_t *strides)
{
    int32_t d, s = 1;
    for (d = rank - 1; d >= 0; --d) {
        strides[d] = s;
        s *= shape[d];
    }
}

/* Walk the contiguous tensor `shape` in order, pairing element j with the strided element
 * base + sum(idx[d] * strides[d]) of the other side. gather: dense[j] = strided[...];
 * scatter: strided[...] = dense[j]. */
static void strided_copy(const float *src, float *dst, const int32_t *shape,
                         const int32_t *strides, int32_t rank, int32_t base, int scatter)
{
    int32_t idx[TTE_SHAPE_MAX_RANK];
    int32_t d, r, i, rows = 1, last, s, off = base, j = 0;
    if (rank == 0) {
        if (scatter) dst[base] = src[0];
        else dst[0] = src[base];
        return;
    }
    for (d = 0; d < rank; ++d) {
        if (shape[d] <= 0) return;
        if (d < rank - 1) rows *= shape[d];
        idx[d] = 0;
    }
    last = shape[rank - 1];
    s = strides[rank - 1];
    for (r = 0; r < rows; ++r) {
        if (scatter) {
            for (i = 0; i < last; ++i) dst[off + i * s] = src[j + i];
        } else {
            for (i = 0; i < last; ++i) dst[j + i] = src[off + i * s];
        }
        j += last;
        for (d = rank - 2; d >= 0; --d) { /* next row */
            ++idx[d];
            off += strides[d];
            if (idx[d] < shape[d]) break;
            idx[d] = 0;
            off -= strides[d] * shape[d];
        }
    }
}

void tte_transpose_f32(const float *x, const int32_t *in_shape, const int32_t *perm,
                       int32_t rank, float *y)
{
    int32_t in_strides[TTE_SHAPE_MAX_RANK], out_shape[TTE_SHAPE_MAX_RANK];
    int32_t strides[TTE_SHAPE_MAX_RANK];
    int32_t d;
    if (rank < 0 || rank > TTE_SHAPE_MAX_RANK) return;
    strides_of(in_shape, rank, in_strides);
    for (d = 0; d < rank; ++d) {
        out_shape[d] = in_shape[perm[d]];
        strides[d] = in_strides[perm[d]];
    }
    strided_copy(x, y, out_shape, strides, rank, 0, 0);
}

void tte_concat_f32(const float *const *xs, const int32_t *axis_lens, int32_t count,
                    int32_t outer, int32_t inner, float *y)
{
    int32_t o, j, total = 0, at = 0;
    for (j = 0; j < count; ++j) total += axis_lens[j];
    for (j = 0; j < count; ++j) {
        const int32_t chunk = axis_lens[j] * inner; /* one outer row of input j */
        if (chunk > 0)
            for (o = 0; o < outer; ++o)
                memcpy(y + (o * total + at) * inner, xs[j] + o * chunk,
                       (size_t)chunk * sizeof(float));
        at += axis_lens[j];
    }
}

/* Constant pad of elements of `size` bytes (value points at one element). */
static void pad_bytes(const unsigned char *x, const int32_t *in_shape, int32_t rank,
                      const int32_t *pads, const void *value, size_t size, unsigned char *y)
{
    int32_t out_shape[TTE_SHAPE_MAX_RANK], in_strides[TTE_SHAPE_MAX_RANK];
    int32_t idx[TTE_SHAPE_MAX_RANK];
    int32_t d, r, i, rows = 1, last, pb, pe, in_last;
    unsigned char *py = y;
    if (rank < 0 || rank > TTE_SHAPE_MAX_RANK) return;
    if (rank == 0) {
        memcpy(y, x, size);
        return;
    }
    for (d = 0; d < rank; ++d) {
        out_shape[d] = in_shape[d] + pads[d] + pads[rank + d];
        if (out_shape[d] <= 0) return;
        if (d < rank - 1) rows *= out_shape[d];
        idx[d] = 0;
    }
    strides_of(in_shape, rank, in_strides);
    last = out_shape[rank - 1];
    in_last = in_shape[rank - 1];
    pb = pads[rank - 1];
    pe = pads[2 * rank - 1];
    for (r = 0; r < rows; ++r, py += (size_t)last * size) {
        int32_t off = 0, inside = in_last > 0;
        for (d = 0; d < rank - 1 && inside; ++d) {
            const int32_t k = idx[d] - pads[d];
            if (k < 0 || k >= in_shape[d]) inside = 0;
            else off += k * in_strides[d];
        }
        if (!inside) {
            for (i = 0; i < last; ++i) memcpy(py + (size_t)i * size, value, size);
        } else {
            for (i = 0; i < pb; ++i) memcpy(py + (size_t)i * size, value, size);
            memcpy(py + (size_t)pb * size, x + (size_t)off * size, (size_t)in_last * size);
            for (i = 0; i < pe; ++i) memcpy(py + (size_t)(pb + in_last + i) * size, value, size);
        }
        for (d = rank - 2; d >= 0; --d) { /* next output row */
            if (++idx[d] < out_shape[d]) break;
            idx[d] = 0;
        }
    }
}

void tte_pad_f32(const float *x, const int32_t *in_shape, int32_t rank, const int32_t *pads,
                 float value, float *y)
{
    pad_bytes((const unsigned char *)x, in_shape, rank, pads, &value, sizeof value,
              (unsigned char *)y);
}

void tte_pad_s8(const int8_t *x, const int32_t *in_shape, int32_t rank, const int32_t *pads,
                int8_t value, int8_t *y)
{
    pad_bytes((const unsigned char *)x, in_shape, rank, pads, &value, sizeof value,
              (unsigned char *)y);
}

/* Base offset and per-axis strides of a slice into its (contiguous) input. */
static int32_t slice_geometry(const int32_t *in_shape, int32_t rank, const int32_t *starts,
                              const int32_t *steps, int32_t *strides)
{
    int32_t in_strides[TTE_SHAPE_MAX_RANK];
    int32_t d, base = 0;
    strides_of(in_shape, rank, in_strides);
    for (d = 0; d < rank; ++d) {
        base += starts[d] * in_strides[d];
        strides[d] = steps[d] * in_strides[d];
    }
    return base;
}

void tte_slice_f32(const float *x, const int32_t *in_shape, int32_t rank, const int32_t *starts,
                   const int32_t *steps, const int32_t *out_shape, float *y)
{
    int32_t strides[TTE_SHAPE_MAX_RANK], base;
    if (rank < 0 || rank > TTE_SHAPE_MAX_RANK) return;
    base = slice_geometry(in_shape, rank, starts, steps, strides);
    strided_copy(x, y, out_shape, strides, rank, base, 0);
}

void tte_slice_grad_f32(const float *gy, const int32_t *in_shape, int32_t rank,
                        const int32_t *starts, const int32_t *steps, const int32_t *out_shape,
                        float *gx)
{
    int32_t strides[TTE_SHAPE_MAX_RANK], base, d, n = 1, i;
    if (rank < 0 || rank > TTE_SHAPE_MAX_RANK) return;
    for (d = 0; d < rank; ++d) n *= in_shape[d] > 0 ? in_shape[d] : 0;
    for (i = 0; i < n; ++i) gx[i] = 0.0f;
    base = slice_geometry(in_shape, rank, starts, steps, strides);
    strided_copy(gy, gx, out_shape, strides, rank, base, 1);
}
