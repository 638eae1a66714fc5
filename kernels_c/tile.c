/* Tile movement, portable scalar C99. See tile.h for the contracts. */
#include "tile.h"

#include <string.h>

/* Copy the rows x cols window starting at (sh, sw) of every plane of src (planes of
 * src_h x src_w elements) to (dh, dw) of the planes of dst (dst_h x dst_w); elem bytes each. */
static void copy_window(const unsigned char *src, int32_t src_h, int32_t src_w, int32_t sh,
                        int32_t sw, unsigned char *dst, int32_t dst_h, int32_t dst_w,
                        int32_t dh, int32_t dw, int32_t planes, int32_t rows, int32_t cols,
                        size_t elem)
{
    int32_t p, r;
    const size_t row_bytes = (size_t)cols * elem;
    if (rows <= 0 || cols <= 0) return;
    for (p = 0; p < planes; ++p) {
        const unsigned char *s = src + (((size_t)p * src_h + sh) * src_w + sw) * elem;
        unsigned char *d = dst + (((size_t)p * dst_h + dh) * dst_w + dw) * elem;
        for (r = 0; r < rows; ++r) {
            memcpy(d, s, row_bytes);
            s += (size_t)src_w * elem;
            d += (size_t)dst_w * elem;
        }
    }
}

void tte_crop_f32(const float *x, tte_dims4 in, int32_t h0, int32_t w0, float *y,
                  tte_dims4 out)
{
    copy_window((const unsigned char *)x, in.h, in.w, h0, w0, (unsigned char *)y, out.h,
                out.w, 0, 0, out.n * out.c, out.h, out.w, sizeof(float));
}

void tte_crop_s8(const int8_t *x, tte_dims4 in, int32_t h0, int32_t w0, int8_t *y,
                 tte_dims4 out)
{
    copy_window((const unsigned char *)x, in.h, in.w, h0, w0, (unsigned char *)y, out.h,
                out.w, 0, 0, out.n * out.c, out.h, out.w, 1);
}

void tte_paste_f32(const float *t, tte_dims4 tile, float *y, tte_dims4 out, int32_t h0,
                   int32_t w0)
{
    copy_window((const unsigned char *)t, tile.h, tile.w, 0, 0, (unsigned char *)y, out.h,
                out.w, h0, w0, tile.n * tile.c, tile.h, tile.w, sizeof(float));
}

void tte_paste_s8(const int8_t *t, tte_dims4 tile, int8_t *y, tte_dims4 out, int32_t h0,
                  int32_t w0)
{
    copy_window((const unsigned char *)t, tile.h, tile.w, 0, 0, (unsigned char *)y, out.h,
                out.w, h0, w0, tile.n * tile.c, tile.h, tile.w, 1);
}
