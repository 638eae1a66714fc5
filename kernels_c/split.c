/* Split (partially trained) weights; see split.h. */
#include "split.h"

#include <string.h>

static int32_t position(const tte_split *s, int32_t c)
{
    return s->pos ? s->pos[c] : c;
}

const void *tte_split_block(const void *w, const tte_split *s, size_t elem, int32_t o,
                            int32_t ic, int32_t cg, int32_t khw)
{
    const char *base = (const char *)w;
    size_t block;
    if (s->count == 0) {
        block = (size_t)o * cg + ic;
    } else if (s->axis == 1) {
        int32_t j = position(s, ic), rest = cg - s->count;
        if (j >= s->count) {
            base = (const char *)s->frozen;
            block = (size_t)o * rest + (j - s->count);
        } else {
            block = (size_t)o * s->count + j;
        }
    } else {
        int32_t j = position(s, o);
        if (j >= s->count) {
            base = (const char *)s->frozen;
            j -= s->count;
        }
        block = (size_t)j * cg + ic;
    }
    return base + block * khw * elem;
}

int32_t tte_split_grad_cg(const tte_split *s, tte_dims4 xd, tte_window p)
{
    /* a depthwise split weight has one input channel per group; x holds only the trained */
    return s->count && s->axis == 0 ? 1 : xd.c / (p.groups > 0 ? p.groups : 1);
}

int tte_split_grad_block(const tte_split *s, int32_t o, int32_t ic, int32_t cg, int32_t og,
                         size_t *block, int32_t *xc)
{
    if (s->count && s->axis == 0) {
        int32_t j = position(s, o);
        if (j >= s->count) return 0;
        *block = (size_t)j;
        *xc = j;
        return 1;
    }
    /* whole weight, or input channels split: x holds the trained ones, groups == 1 */
    *block = (size_t)o * cg + ic;
    *xc = (o / og) * cg + ic;
    return 1;
}

void tte_slice_channels(const void *x, tte_dims4 xd, size_t elem, const int32_t *pos,
                        int32_t count, void *y)
{
    size_t plane = (size_t)xd.h * xd.w * elem;
    int32_t n, c;
    for (n = 0; n < xd.n; n++) {
        for (c = 0; c < xd.c; c++) {
            int32_t j = pos ? pos[c] : c;
            if (j < count)
                memcpy((char *)y + ((size_t)n * count + j) * plane,
                       (const char *)x + ((size_t)n * xd.c + c) * plane, plane);
        }
    }
}
