/* Cortex-M DSP-extension helpers of the int8 kernels (conv_s8.c).
 *
 * TTE_DSP_S8 is defined where the core has the DSP extension (__ARM_FEATURE_DSP: Cortex-M4,
 * M7, M33 with DSP, M55) and TTE_SCALAR is not: the kernels' fast paths sit behind
 * #ifdef TTE_DSP_S8, and their portable scalar paths stay the reference, run everywhere else
 * and with -DTTE_SCALAR on these cores (tests/test_cortex_m_dsp.py builds both). The
 * helpers use the ACLE intrinsics of <arm_acle.h> (arm-none-eabi-gcc and clang provide
 * them); nothing here is CMSIS.
 *
 * The dual 16-bit multiply-accumulate works on int16x2 words (two int16 lanes in one
 * int32): tte_dsp_smlad(a, b, acc) = acc + a.lo * b.lo + a.hi * b.hi. SXTB16 sign-extends
 * bytes 0 and 2 of a word into the lanes (tte_dsp_even), and after a rotation by 8 bytes 1
 * and 3 (tte_dsp_odd), so one 32-bit load of four int8 gives two lane pairs.
 *
 * Exactness: the DSP paths give the scalar paths' int32 sums, bit for bit.
 * 1. The lanes hold int8 values exactly, and each lane product is exact (|w x| <= 2^14).
 * 2. SMLAD computes acc + p0 + p1 exactly and writes its low 32 bits (Arm ARM: the Q flag is
 *    set when the sum leaves the int32 range, the result is not saturated): addition
 *    modulo 2^32, which is what the scalar kernels do through uint32_t (quant.h).
 * 3. Addition modulo 2^32 is associative and commutative, so the same products summed in
 *    any grouping or order give the same bits, whether or not a partial sum wraps.
 * 4. The fast paths sum w * x and add input_offset * sum(w) (and, for a fully connected
 *    layer, the filter offset's terms) afterwards: sum w (x + off) = sum w x + off sum w
 *    holds in Z, hence modulo 2^32; the scalar path's own products w * (x + off) are exact
 *    int32 (|.| <= 128 * 255).
 * So the accumulators are equal, and requantisation (the scalar path's code) maps equal
 * accumulators to equal outputs and masks. (Wrapping is also out of reach in practice:
 * |sum| <= 128 * 255 * K < 2^31 for K < 65,793 taps; TFLite's bias addition is what wraps,
 * and that is shared code.)
 */
#ifndef TTE_DSP_S8_H
#define TTE_DSP_S8_H

#include "tte_common.h"

#if defined(__ARM_FEATURE_DSP) && !defined(TTE_SCALAR)
#define TTE_DSP_S8
#include <arm_acle.h>
#include <string.h>

/* Four bytes from any address: one LDR (Armv7-M and Armv8-M Mainline allow unaligned LDR
 * and LDRH unless CCR.UNALIGN_TRP is set, which TTE's startup code does not do; memcpy keeps
 * the C defined and compiles to it). */
static inline uint32_t tte_dsp_load4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Two bytes from any address into the low half (LDRH). */
static inline uint32_t tte_dsp_load2(const int8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* (byte 0, byte 2) of v, each sign-extended to an int16 lane. */
static inline int32_t tte_dsp_even(uint32_t v)
{
    return __sxtb16((int32_t)v);
}

/* (byte 1, byte 3) of v: SXTB16 with its ROR #8 operand (inline assembly, as GCC 12 does
 * not fold a rotation into __sxtb16; not volatile, so it schedules as the intrinsics). Off
 * Arm (tests build these paths on the host against a C model of <arm_acle.h>, under the
 * sanitizers) the rotation is C. */
static inline int32_t tte_dsp_odd(uint32_t v)
{
#ifdef __arm__
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
#else
    return __sxtb16((int32_t)(v >> 8 | v << 24));
#endif
}

/* acc + a.lo * b.lo + a.hi * b.hi, modulo 2^32. */
static inline int32_t tte_dsp_smlad(int32_t a, int32_t b, int32_t acc)
{
    return __smlad(a, b, acc);
}

/* Four int8 a, b, c, d into one word, byte 0 first: even lanes (a, c), odd (b, d). */
static inline uint32_t tte_dsp_bytes(int32_t a, int32_t b, int32_t c, int32_t d)
{
    return (uint32_t)(uint8_t)a | (uint32_t)(uint8_t)b << 8 | (uint32_t)(uint8_t)c << 16 |
           (uint32_t)(uint8_t)d << 24;
}
#endif

#endif
