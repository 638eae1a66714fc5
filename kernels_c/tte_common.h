/* Conventions shared by every TTE kernel.
 *
 * - Names: tte_<op>[_<direction>]_<type>, e.g. tte_conv2d_grad_weight_f32.
 * - Layout: activations NCHW, conv weights OIHW, row-major, contiguous.
 * - Shapes travel in the small structs below; kernels never allocate. A kernel that needs
 *   scratch memory has a <name>_scratch_size() companion and takes a scratch pointer.
 * - Kernels return void unless they can fail on data (then int: 0 = ok, TTE_E* below).
 * - Every kernel has a portable scalar C99 path; faster paths sit behind #if on target
 *   macros and are tested against it. Defining TTE_SCALAR takes the portable path on every
 *   target (tests build firmware both ways and compare).
 */
#ifndef TTE_COMMON_H
#define TTE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define TTE_OK 0
#define TTE_EBADLABEL 1 /* a class label outside [0, classes) */

/* Generated train steps wrap each node in these; firmware built with TTE_PROFILE defines
 * the functions (targets/firmware/main.c.in) to count each node's instructions. */
#ifdef TTE_PROFILE
void tte_profile_begin(int32_t node);
void tte_profile_end(int32_t node);
#define TTE_PROFILE_BEGIN(node) tte_profile_begin(node)
#define TTE_PROFILE_END(node) tte_profile_end(node)
#else
#define TTE_PROFILE_BEGIN(node) ((void)0)
#define TTE_PROFILE_END(node) ((void)0)
#endif

typedef struct {
    int32_t n, c, h, w;
} tte_dims4;

/* Geometry of a 2-D convolution or pooling window. Padding may be asymmetric. */
typedef struct {
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left, pad_bottom, pad_right;
    int32_t dilation_h, dilation_w;
    int32_t groups; /* convolution only; 1 for pooling */
} tte_window;

/* Taps t in [0, count) with 0 <= t*step + off < size form [*lo, *hi), possibly empty:
 * the output positions of a window row or column that read real input (window.c). */
void tte_tap_range(int32_t off, int32_t step, int32_t size, int32_t count, int32_t *lo,
                   int32_t *hi);

#endif
