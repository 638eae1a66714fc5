/* RVV (V + Zvfh) paths of the fp16 conv, depthwise, linear and channel-sum kernels; see
 * tte_f16.h. Compiled where TTE_RVV (clang 16 -march=rv32imafcv_zfh_zvfh0p1, not with
 * TTE_SCALAR); conv_f16.c and linear_f16.c call them first and take their scalar path
 * where a function here returns 0.
 *
 * The kernels are rvv_conv.inc's, which f32_rvv.c includes too, so fp16 and fp32 vectorise
 * the same way. This file includes them twice, once for each accumulation (acc32), each with
 * the scalar path's roundings:
 * - half sums: vfmul then vfadd, two roundings as the scalar product and sum (never vfmacc:
 *   one rounding); conv rows sum in the output plane itself;
 * - float sums: vfwmacc / vfwadd from halves: the product of two halves is exact in float
 *   (11 + 11 bits), so the fused widening op rounds once, as acc + a*b does; conv rows sum
 *   in a stack buffer of ROW_BUF floats, a block of whole rows at a time.
 * Conversions are vfwcvt.f.f.v and vfncvt.f.f.w under the dynamic rounding mode (nearest
 * even, as the scalar (tte_f16) casts): QEMU 7.2 aborts on the static-rounding vfcvt.rtz.*.
 * Vectors are e16m4 halves and e32m8 floats: 32 lanes at QEMU's VLEN of 128.
 */
#include "tte_f16.h"

#if TTE_RVV
#include <riscv_vector.h>

typedef tte_f16 elem;
typedef tte_f16_sgd sgd_t;
#define SEW 16
#define LMUL m4
typedef vfloat32m8_t fvec;
#define TO_FLOAT(v, vl) __riscv_vfwcvt_f(v, vl)
#define TO_ELEM(v, vl) __riscv_vfncvt_f(v, vl)

/* half sums: in the element type, rvv_conv.inc's default */
#define SUMS(name) name##_h
#include "rvv_conv.inc"

/* float sums */
RVV_ACCESS(ldf, stf, zerosf, float, 32, m8)
#undef SUMS
#define SUMS(name) name##_f
#define ACC float
#define VACC fvec
#define ACC_LD ldf
#define ACC_ST stf
#define ACC_ZEROS zerosf
#define MAC(acc, a, b, vl) __riscv_vfwmacc(acc, a, b, vl)
#define ADD(acc, v, vl) __riscv_vfwadd_wv(acc, v, vl)
#define ROUND(acc, vl) TO_ELEM(acc, vl)
#define FLOAT(acc, vl) (acc)
#define ROW_BUF 256
#include "rvv_conv.inc"

int tte_rvv_conv2d_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *w, const tte_f16 *bias,
                       tte_f16 *y, tte_dims4 yd, tte_window p, tte_split s, int acc32)
{
    return (acc32 ? conv2d_f : conv2d_h)(x, xd, w, bias, y, yd, p, s);
}

int tte_rvv_conv2d_grad_input_f16(const tte_f16 *gy, tte_dims4 yd, const tte_f16 *w,
                                  tte_f16 *gx, tte_dims4 xd, tte_window p, tte_split s,
                                  int acc32)
{
    return (acc32 ? grad_input_f : grad_input_h)(gy, yd, w, gx, xd, p, s);
}

int tte_rvv_depthwise_grad_input_f16(const tte_f16 *gy, tte_dims4 d, const tte_f16 *w,
                                     tte_f16 *gx, tte_f16 *scratch, tte_window p, tte_split s,
                                     int acc32)
{
    return (acc32 ? depthwise_grad_input_f : depthwise_grad_input_h)(gy, d, w, gx, scratch, p,
                                                                      s);
}

int tte_rvv_conv2d_grad_weight_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy,
                                   tte_dims4 yd, tte_f16 *gw, const tte_f16_sgd *sgd,
                                   tte_window p, tte_split s, int acc32)
{
    return (acc32 ? grad_weight_f : grad_weight_h)(x, xd, gy, yd, gw, sgd, p, s);
}

void tte_rvv_channel_sum_f16(const tte_f16 *gy, tte_dims4 d, tte_f16 *gb,
                             const tte_f16_sgd *sgd, int acc32)
{
    (acc32 ? channel_sum_f : channel_sum_h)(gy, d, gb, sgd);
}

void tte_rvv_linear_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *w,
                        const tte_f16 *bias, tte_f16 *y, int32_t m, int acc32)
{
    (acc32 ? linear_f : linear_h)(x, n, k, w, bias, y, m);
}

void tte_rvv_linear_grad_input_f16(const tte_f16 *gy, int32_t n, int32_t m, const tte_f16 *w,
                                   tte_f16 *gx, int32_t k, int acc32)
{
    (acc32 ? linear_grad_input_f : linear_grad_input_h)(gy, n, m, w, gx, k);
}

void tte_rvv_linear_grad_weight_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *gy,
                                    int32_t m, tte_f16 *gw, const tte_f16_sgd *sgd, int acc32)
{
    (acc32 ? linear_grad_weight_f : linear_grad_weight_h)(x, n, k, gy, m, gw, sgd);
}

#else
typedef int tte_f16_rvv_unused; /* ISO C: a translation unit declares something */
#endif
