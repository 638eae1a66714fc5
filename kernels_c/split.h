/* Partially trained convolution weights (tte/ops/slice_channels.py).
 *
 * A split weight trains `count` of the channels along one axis (1: input channels of a
 * group-1 convolution, 0: channels of a depthwise one). Channel c of that axis is stored at
 * position pos[c] (pos NULL: at c, i.e. the first `count` channels train): positions
 * [0, count) in the array the kernel is given as the weight (SRAM, writable), positions
 * [count, C) in `frozen` (flash), each part in the weight's own order with the axis cut to
 * its length. count == 0 (TTE_SPLIT_NONE) is a whole weight in one array.
 *
 * Weight-gradient kernels given a split read x sliced to the trained channels
 * (tte_slice_channels) and write only the trained part, in its layout; untrained channels
 * are neither computed nor touched.
 */
#ifndef TTE_SPLIT_H
#define TTE_SPLIT_H

#include "tte_common.h"

typedef struct {
    const void *frozen; /* the untrained channels (flash) */
    const int32_t *pos; /* storage position of each channel along axis; NULL: identity */
    int32_t axis;       /* 0: output channels (depthwise), 1: input channels */
    int32_t count;      /* trained channels; 0: not split */
} tte_split;

#define TTE_SPLIT_NONE ((tte_split){NULL, NULL, 0, 0})

/* The kernel_h*kernel_w taps of weight block (o, ic) (ic < cg, the input channels per
 * group), elem bytes per element: in w or in s->frozen. */
const void *tte_split_block(const void *w, const tte_split *s, size_t elem, int32_t o,
                            int32_t ic, int32_t cg, int32_t khw);

/* For weight-gradient kernels, which walk blocks (o, ic) for ic < tte_split_grad_cg(): 1 when
 * block (o, ic) trains, with *block its index in the gradient (whole weight, or the trained
 * part) and *xc the channel of x it reads (x sliced when s is split); else 0. og is the
 * output channels per group. */
int32_t tte_split_grad_cg(const tte_split *s, tte_dims4 xd, tte_window p);
int tte_split_grad_block(const tte_split *s, int32_t o, int32_t ic, int32_t cg, int32_t og,
                         size_t *block, int32_t *xc);

/* y[n, pos[c]] = x[n, c] for the channels c with pos[c] < count (pos NULL: c < count), elem
 * bytes per element: the trained channels of a split weight's input. */
void tte_slice_channels(const void *x, tte_dims4 xd, size_t elem, const int32_t *pos,
                        int32_t count, void *y);

#endif
