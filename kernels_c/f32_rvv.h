/* RVV paths of the fp32 conv, depthwise, channel-sum and linear kernels (f32_rvv.c): the
 * code of f16_rvv.c's (both include rvv_conv.inc), so fp16 and fp32 compare on RISC-V with
 * the same vectorisation (tests/test_rv32_fp32_rvv.py).
 *
 * TTE_RVV_F32 is 1 where the vector extension is (__riscv_vector: the rv32v target) and
 * TTE_SCALAR is not defined (tte_common.h: one switch for every fast path); conv.c and
 * linear.c then call the functions below first. Those returning int return 0 for a case
 * they leave to the scalar path. Results equal the scalar path's bit for bit.
 */
#ifndef TTE_F32_RVV_H
#define TTE_F32_RVV_H

#include "split.h"

#if !defined(__riscv_vector) || defined(TTE_SCALAR)
#define TTE_RVV_F32 0
#else
#define TTE_RVV_F32 1
#endif

#if TTE_RVV_F32
/* The SGD update of a weight or bias gradient fused with it (optim.h's tte_sgd_step_f32);
 * momentum may be NULL. Kernels given one write no gradient (their gw/gb is NULL). */
typedef struct {
    float *w, *momentum;
    float lr, momentum_coef, weight_decay;
} tte_f32_sgd;

int tte_rvv_conv2d_f32(const float *x, tte_dims4 xd, const float *w, const float *bias,
                       float *y, tte_dims4 yd, tte_window p, tte_split s);
int tte_rvv_conv2d_grad_input_f32(const float *gy, tte_dims4 yd, const float *w, float *gx,
                                  tte_dims4 xd, tte_window p, tte_split s);
int tte_rvv_depthwise_grad_input_f32(const float *gy, tte_dims4 d, const float *w, float *gx,
                                     float *scratch, tte_window p, tte_split s);
int tte_rvv_conv2d_grad_weight_f32(const float *x, tte_dims4 xd, const float *gy, tte_dims4 yd,
                                   float *gw, const tte_f32_sgd *sgd, tte_window p,
                                   tte_split s);
void tte_rvv_channel_sum_f32(const float *gy, tte_dims4 d, float *gb, const tte_f32_sgd *sgd);
void tte_rvv_linear_f32(const float *x, int32_t n, int32_t k, const float *w,
                        const float *bias, float *y, int32_t m);
void tte_rvv_linear_grad_input_f32(const float *gy, int32_t n, int32_t m, const float *w,
                                   float *gx, int32_t k);
void tte_rvv_linear_grad_weight_f32(const float *x, int32_t n, int32_t k, const float *gy,
                                    int32_t m, float *gw, const tte_f32_sgd *sgd);
#endif

#endif
