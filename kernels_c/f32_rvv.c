/* RVV (V extension) paths of the fp32 conv, depthwise, linear and channel-sum kernels; see
 * f32_rvv.h. Compiled where TTE_RVV_F32 (the rv32v target, not with TTE_SCALAR); conv.c and
 * linear.c call these first and take their scalar path where one returns 0.
 *
 * The kernels are rvv_conv.inc's, which f16_rvv.c includes too, so fp16 and fp32 vectorise
 * the same way. fp32's sums run in float: each product rounded, then each sum, as the scalar
 * path's under -ffp-contract=off. Vectors are e32m4: the register groups of f16_rvv.c's
 * e16m4 halves, holding 16 floats where those hold 32 halves at QEMU's VLEN of 128, so
 * instruction counts of the two compare the element width alone.
 */
#include "f32_rvv.h"

#if TTE_RVV_F32
#include <riscv_vector.h>

typedef float elem;
typedef tte_f32_sgd sgd_t;
#define SEW 32
#define LMUL m4
typedef vfloat32m4_t fvec; /* the SGD step's vectors: floats already */
#define TO_FLOAT(v, vl) (v)
#define TO_ELEM(v, vl) (v)
#define SUMS(name) name
#include "rvv_conv.inc"

int tte_rvv_conv2d_f32(const float *x, tte_dims4 xd, const float *w, const float *bias,
                       float *y, tte_dims4 yd, tte_window p, tte_split s)
{
    return conv2d(x, xd, w, bias, y, yd, p, s);
}

int tte_rvv_conv2d_grad_input_f32(const float *gy, tte_dims4 yd, const float *w, float *gx,
                                  tte_dims4 xd, tte_window p, tte_split s)
{
    return grad_input(gy, yd, w, gx, xd, p, s);
}

int tte_rvv_depthwise_grad_input_f32(const float *gy, tte_dims4 d, const float *w, float *gx,
                                     float *scratch, tte_window p, tte_split s)
{
    return depthwise_grad_input(gy, d, w, gx, scratch, p, s);
}

int tte_rvv_conv2d_grad_weight_f32(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                                   float *gw, const tte_f32_sgd *sgd, tte_window p,
                                   tte_split s)
{
    return grad_weight(x, xd, gy, yd, gw, sgd, p, s);
}

void tte_rvv_channel_sum_f32(const float *gy, tte_dims4 d, float *gb, const tte_f32_sgd *sgd)
{
    channel_sum(gy, d, gb, sgd);
}

void tte_rvv_linear_f32(const float *x, int32_t n, int32_t k, const float *w,
                        const float *bias, float *y, int32_t m)
{
    linear(x, n, k, w, bias, y, m);
}

void tte_rvv_linear_grad_input_f32(const float *gy, int32_t n, int32_t m, const float *w,
                                   float *gx, int32_t k)
{
    linear_grad_input(gy, n, m, w, gx, k);
}

void tte_rvv_linear_grad_weight_f32(const float *x, int32_t n, int32_t k, const float *gy,
                                    int32_t m, float *gw, const tte_f32_sgd *sgd)
{
    linear_grad_weight(x, n, k, gy, m, gw, sgd);
}

#else
typedef int tte_f32_rvv_unused; /* ISO C: a translation unit declares something */
#endif
