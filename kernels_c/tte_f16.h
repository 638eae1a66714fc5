/* Half-precision (fp16) training kernels: activations, gradients, weights and optimizer
 * state are _Float16 (tte_f16); the loss stays float.
 *
 * Arithmetic: each kernel reads halves, computes in float and rounds what it stores. Every
 * product of two halves is exact in float (11 + 11 significant bits <= 24), and a float
 * result rounded to half equals the correctly rounded half result (24 >= 2*11 + 2 bits:
 * double rounding is innocuous), so these kernels compute what a half FPU (RISC-V Zfh)
 * computes, on any host.
 *
 * Accumulation (the last argument acc32 of every kernel that sums): 0 keeps the running
 * sum in half, rounding every product and every partial sum to half, as PULP-TrainLib's
 * fp16 kernels do in a half register; 1 keeps it in a float and rounds the total once.
 * The order of each sum is the fp32 kernels' (conv.h, linear.h, pool.h).
 *
 * Fast paths (tte_common.h: TTE_SCALAR turns every one off, on every target). Each output
 * keeps the scalar path's order of terms and every rounding, so results equal the scalar
 * path's bit for bit (tests/test_fp16.py on the host, tests/test_rv32_fp16.py on RISC-V):
 * - TTE_ZFH (RISC-V Zfh): half accumulation in native _Float16 instructions (fmul.h then
 *   fadd.h: -ffp-contract=off keeps them apart, as the scalar path rounds the product).
 * - TTE_V2F16 (default on with Zfh; -DTTE_V2F16=1 elsewhere): with half accumulation, conv
 *   and linear kernels compute two outputs at once on packed pairs of halves (tte_v2f16,
 *   PULP-TrainLib's v2f16). Zfh has no packed half instructions: a pair is two fmul.h and
 *   two fadd.h, and gains by loading a shared operand once and by conv.c's row loops. Float
 *   accumulation takes the scalar path.
 * - TTE_RVV (RISC-V V + Zvfh): conv, depthwise, linear and channel-sum kernels in RVV
 *   (f16_rvv.c: rvv_conv.inc's kernels, which fp32 shares), both accumulations, vectorised
 *   across independent outputs.
 */
#ifndef TTE_F16_H
#define TTE_F16_H

#include "split.h"

__extension__ typedef _Float16 tte_f16; /* no -pedantic warning: a GNU C type */

#if defined(__riscv_zfh) && !defined(TTE_SCALAR)
#define TTE_ZFH 1
#else
#define TTE_ZFH 0
#endif

#ifdef TTE_SCALAR
#undef TTE_V2F16
#define TTE_V2F16 0
#elif !defined(TTE_V2F16)
#define TTE_V2F16 TTE_ZFH
#endif

#if defined(__riscv_zvfh) && !defined(TTE_SCALAR)
#define TTE_RVV 1
#else
#define TTE_RVV 0
#endif

/* --- conv.h in half ------------------------------------------------------------------ */
void tte_conv2d_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *w, const tte_f16 *bias,
                    tte_f16 *y, tte_dims4 yd, tte_window p, tte_split s, int acc32);
void tte_conv2d_grad_input_f16(const tte_f16 *gy, tte_dims4 yd, const tte_f16 *w,
                               tte_f16 *gx, tte_dims4 xd, tte_window p, tte_split s, int acc32);
/* scratch: d.h * d.w halves; gx may be gy */
void tte_depthwise_grad_input_f16(const tte_f16 *gy, tte_dims4 d, const tte_f16 *w,
                                  tte_f16 *gx, tte_f16 *scratch, tte_window p, tte_split s,
                                  int acc32);
void tte_conv2d_grad_weight_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy,
                                tte_dims4 yd, tte_f16 *gw, tte_window p, tte_split s,
                                int acc32);
void tte_conv2d_grad_weight_sgd_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy,
                                    tte_dims4 yd, tte_f16 *w, tte_f16 *momentum, tte_window p,
                                    tte_split s, float lr, float momentum_coef,
                                    float weight_decay, int acc32);
void tte_channel_sum_f16(const tte_f16 *gy, tte_dims4 d, tte_f16 *gb, int acc32);
void tte_channel_sum_sgd_f16(const tte_f16 *gy, tte_dims4 d, tte_f16 *b, tte_f16 *momentum,
                             float lr, float momentum_coef, float weight_decay, int acc32);

/* --- linear.h in half ---------------------------------------------------------------- */
void tte_linear_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *w,
                    const tte_f16 *bias, tte_f16 *y, int32_t m, int acc32);
void tte_linear_grad_input_f16(const tte_f16 *gy, int32_t n, int32_t m, const tte_f16 *w,
                               tte_f16 *gx, int32_t k, int acc32);
void tte_linear_grad_weight_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *gy,
                                int32_t m, tte_f16 *gw, int acc32);
void tte_linear_grad_weight_sgd_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *gy,
                                    int32_t m, tte_f16 *w, tte_f16 *momentum, float lr,
                                    float momentum_coef, float weight_decay, int acc32);

/* --- elementwise, pooling, optimizer, loss ------------------------------------------- */
void tte_add_f16(const tte_f16 *a, const tte_f16 *b, tte_f16 *y, int32_t n);
void tte_relu_f16(const tte_f16 *x, tte_f16 *y, int32_t n);
void tte_relu_grad_f16(const tte_f16 *y, const tte_f16 *gy, tte_f16 *gx, int32_t n);
void tte_clip_f16(const tte_f16 *x, tte_f16 *y, int32_t n, float lo, float hi);
void tte_clip_grad_f16(const tte_f16 *x, const tte_f16 *gy, tte_f16 *gx, int32_t n, float lo,
                       float hi);
void tte_copy_f16(const tte_f16 *x, tte_f16 *y, int32_t n);
void tte_avg_pool2d_f16(const tte_f16 *x, tte_dims4 xd, tte_f16 *y, tte_dims4 yd,
                        tte_window p, int count_include_pad, int acc32);
/* overlapping windows add their shares into gx in half */
void tte_avg_pool2d_grad_f16(const tte_f16 *gy, tte_dims4 yd, tte_f16 *gx, tte_dims4 xd,
                             tte_window p, int count_include_pad);
void tte_max_pool2d_f16(const tte_f16 *x, tte_dims4 xd, tte_f16 *y, tte_dims4 yd,
                        tte_window p);
void tte_max_pool2d_grad_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy, tte_dims4 yd,
                             tte_f16 *gx, tte_window p);
void tte_global_avg_pool_f16(const tte_f16 *x, tte_dims4 xd, tte_f16 *y, int acc32);
void tte_global_avg_pool_grad_f16(const tte_f16 *gy, tte_f16 *gx, tte_dims4 xd);
void tte_unreduce_f16(const tte_f16 *gy, tte_f16 *gx, int32_t outer, int32_t axis_len,
                      int32_t inner, float scale);
/* optim.h's SGD on half tensors: the step is computed in float from the stored halves */
/* one step of *w from a float gradient g (the fused weight and bias updates) */
void tte_sgd_step_f16(tte_f16 *w, float g, tte_f16 *buf, float lr, float momentum_coef,
                      float weight_decay);
void tte_sgd_update_f16(tte_f16 *w, const tte_f16 *g, tte_f16 *momentum, int32_t n, float lr,
                        float momentum_coef, float weight_decay);
/* loss.h's cross-entropy on half logits: computed in float exactly as the f32 kernels, the
 * loss stays float, the gradient is rounded to half (g may be logits) */
int tte_softmax_cross_entropy_f16(const tte_f16 *logits, const int32_t *labels, int32_t n,
                                  int32_t classes, float *loss);
int tte_softmax_cross_entropy_grad_f16(const tte_f16 *logits, const int32_t *labels,
                                       int32_t n, int32_t classes, tte_f16 *g);

#if TTE_V2F16
__extension__ typedef _Float16 tte_v2f16 __attribute__((vector_size(4)));
#endif

#if TTE_RVV
/* f16_rvv.c: the RVV paths behind the kernels above (same arguments; a weight or bias
 * gradient fused with SGD passes the update in tte_f16_sgd, else NULL and the gradient's
 * array). Those returning int return 0 for a case they leave to the scalar path. */
typedef struct {
    tte_f16 *w, *momentum;
    float lr, momentum_coef, weight_decay;
} tte_f16_sgd;
int tte_rvv_conv2d_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *w, const tte_f16 *bias,
                       tte_f16 *y, tte_dims4 yd, tte_window p, tte_split s, int acc32);
int tte_rvv_conv2d_grad_input_f16(const tte_f16 *gy, tte_dims4 yd, const tte_f16 *w,
                                  tte_f16 *gx, tte_dims4 xd, tte_window p, tte_split s,
                                  int acc32);
int tte_rvv_depthwise_grad_input_f16(const tte_f16 *gy, tte_dims4 d, const tte_f16 *w,
                                     tte_f16 *gx, tte_f16 *scratch, tte_window p, tte_split s,
                                     int acc32);
int tte_rvv_conv2d_grad_weight_f16(const tte_f16 *x, tte_dims4 xd, const tte_f16 *gy,
                                   tte_dims4 yd, tte_f16 *gw, const tte_f16_sgd *sgd,
                                   tte_window p, tte_split s, int acc32);
void tte_rvv_channel_sum_f16(const tte_f16 *gy, tte_dims4 d, tte_f16 *gb,
                             const tte_f16_sgd *sgd, int acc32);
void tte_rvv_linear_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *w,
                        const tte_f16 *bias, tte_f16 *y, int32_t m, int acc32);
void tte_rvv_linear_grad_input_f16(const tte_f16 *gy, int32_t n, int32_t m, const tte_f16 *w,
                                   tte_f16 *gx, int32_t k, int acc32);
void tte_rvv_linear_grad_weight_f16(const tte_f16 *x, int32_t n, int32_t k, const tte_f16 *gy,
                                    int32_t m, tte_f16 *gw, const tte_f16_sgd *sgd, int acc32);
#endif

/* One term of a sum: acc + a*b, in half (both roundings) or in float (acc32). a, b (and
 * acc, in half) hold half values, so with Zfh the half sum runs in half instructions: the
 * conversions of a and b fold away, and each half op rounds as the float op rounded. */
static inline float tte_f16_mac(float acc, float a, float b, int acc32)
{
#if TTE_ZFH
    if (!acc32) return (float)(tte_f16)((tte_f16)acc + (tte_f16)((tte_f16)a * (tte_f16)b));
#endif
    return acc32 ? acc + a * b : (float)(tte_f16)(acc + (float)(tte_f16)(a * b));
}

static inline float tte_f16_add(float acc, float t, int acc32)
{
#if TTE_ZFH
    if (!acc32) return (float)(tte_f16)((tte_f16)acc + (tte_f16)t);
#endif
    return acc32 ? acc + t : (float)(tte_f16)(acc + t);
}

#endif
