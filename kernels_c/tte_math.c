/* Math kernels, portable scalar C99. See tte_math.h for the contracts. */
#include "tte_math.h"

#include <math.h>

#include "bcast_walk.inc"

void tte_exp_f32(const float *x, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (float)exp((double)x[i]);
}

void tte_log_f32(const float *x, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = (float)log((double)x[i]);
}

void tte_sqrt_f32(const float *x, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = sqrtf(x[i]);
}

/* ---- strided broadcasting over up to three operands ------------------------------------ */

/* The ops of bcast2: the TTE_CMP_* comparisons, then these two. */
enum { OP_MAXIMUM = TTE_CMP_NOT_EQUAL + 1, OP_MINIMUM };

#define TTE_ROW2(expr)                                                        \
    for (i = 0; i < w.last; ++i) {                                            \
        const float u = pa[i * w.step[0]], v = pb[i * w.step[1]];             \
        py[i] = (expr);                                                       \
    }

static void bcast2(int op, const float *a, const int32_t *a_strides, const float *b,
                   const int32_t *b_strides, float *y, const int32_t *y_shape, int32_t rank)
{
    const int32_t *const strides[2] = {a_strides, b_strides};
    walk w;
    int32_t r, i;
    if (!walk_begin(&w, y_shape, rank, strides, 2)) return;
    for (r = 0; r < w.rows; ++r) {
        const float *pa = a + w.off[0], *pb = b + w.off[1];
        float *py = y + r * w.last;
        switch (op) {
        case TTE_CMP_GREATER: TTE_ROW2(u > v ? 1.0f : 0.0f) break;
        case TTE_CMP_GREATER_EQUAL: TTE_ROW2(u >= v ? 1.0f : 0.0f) break;
        case TTE_CMP_LESS: TTE_ROW2(u < v ? 1.0f : 0.0f) break;
        case TTE_CMP_LESS_EQUAL: TTE_ROW2(u <= v ? 1.0f : 0.0f) break;
        case TTE_CMP_EQUAL: TTE_ROW2(u == v ? 1.0f : 0.0f) break;
        case TTE_CMP_NOT_EQUAL: TTE_ROW2(u != v ? 1.0f : 0.0f) break;
        case OP_MAXIMUM: TTE_ROW2(u > v || u != u ? u : v) break;
        default: TTE_ROW2(u < v || u != u ? u : v) break;
        }
        walk_next(&w, y_shape, rank, strides, 2);
    }
}

#undef TTE_ROW2

void tte_compare_bcast_f32(int op, const float *a, const int32_t *a_strides,
                           const float *b, const int32_t *b_strides,
                           float *y, const int32_t *y_shape, int32_t rank)
{
    if (op < TTE_CMP_GREATER || op > TTE_CMP_NOT_EQUAL) return;
    bcast2(op, a, a_strides, b, b_strides, y, y_shape, rank);
}

void tte_maximum_bcast_f32(const float *a, const int32_t *a_strides, const float *b,
                           const int32_t *b_strides, float *y, const int32_t *y_shape,
                           int32_t rank)
{
    bcast2(OP_MAXIMUM, a, a_strides, b, b_strides, y, y_shape, rank);
}

void tte_minimum_bcast_f32(const float *a, const int32_t *a_strides, const float *b,
                           const int32_t *b_strides, float *y, const int32_t *y_shape,
                           int32_t rank)
{
    bcast2(OP_MINIMUM, a, a_strides, b, b_strides, y, y_shape, rank);
}

void tte_where_bcast_f32(const float *c, const int32_t *c_strides, const float *a,
                         const int32_t *a_strides, const float *b, const int32_t *b_strides,
                         float *y, const int32_t *y_shape, int32_t rank)
{
    const int32_t *const strides[3] = {c_strides, a_strides, b_strides};
    walk w;
    int32_t r, i;
    if (!walk_begin(&w, y_shape, rank, strides, 3)) return;
    for (r = 0; r < w.rows; ++r) {
        const float *pc = c + w.off[0], *pa = a + w.off[1], *pb = b + w.off[2];
        float *py = y + r * w.last;
        for (i = 0; i < w.last; ++i)
            py[i] = pc[i * w.step[0]] != 0.0f ? pa[i * w.step[1]] : pb[i * w.step[2]];
        walk_next(&w, y_shape, rank, strides, 3);
    }
}

/* ---- reductions to the first maximum --------------------------------------------------- */

/* k of the first largest x[k * inner], k < axis_len (>= 1), a NaN counting as largest. */
static int32_t first_max(const float *x, int32_t axis_len, int32_t inner)
{
    int32_t k, best = 0;
    float m = x[0];
    for (k = 1; k < axis_len; ++k) {
        const float v = x[k * inner];
        if (v > m || (v != v && m == m)) {
            m = v;
            best = k;
        }
    }
    return best;
}

void tte_reduce_max_f32(const float *x, float *y, int32_t outer, int32_t axis_len,
                        int32_t inner)
{
    int32_t o, i;
    if (axis_len <= 0) return;
    for (o = 0; o < outer; ++o)
        for (i = 0; i < inner; ++i) {
            const float *px = x + o * axis_len * inner + i;
            y[o * inner + i] = px[first_max(px, axis_len, inner) * inner];
        }
}

void tte_argmax_f32(const float *x, int32_t *y, int32_t outer, int32_t axis_len,
                    int32_t inner)
{
    int32_t o, i;
    if (axis_len <= 0) return;
    for (o = 0; o < outer; ++o)
        for (i = 0; i < inner; ++i)
            y[o * inner + i] = first_max(x + o * axis_len * inner + i, axis_len, inner);
}
