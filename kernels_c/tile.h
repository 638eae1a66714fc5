/* Tile movement for patch-based execution: crop a window out of an NCHW map, paste a tile
 * into one. fp32 and int8, portable C99, no allocation. Source and destination must not
 * overlap. */
#ifndef TTE_TILE_H
#define TTE_TILE_H

#include "tte_common.h"

/* y (n, c, out.h, out.w) = x[:, :, h0:h0 + out.h, w0:w0 + out.w]; the window lies inside
 * x (in.n == out.n, in.c == out.c). */
void tte_crop_f32(const float *x, tte_dims4 in, int32_t h0, int32_t w0, float *y,
                  tte_dims4 out);
void tte_crop_s8(const int8_t *x, tte_dims4 in, int32_t h0, int32_t w0, int8_t *y,
                 tte_dims4 out);

/* y[:, :, h0:h0 + tile.h, w0:w0 + tile.w] = t; the other elements of y are left as they
 * are. The tile lies inside y (tile.n == out.n, tile.c == out.c). */
void tte_paste_f32(const float *t, tte_dims4 tile, float *y, tte_dims4 out, int32_t h0,
                   int32_t w0);
void tte_paste_s8(const int8_t *t, tte_dims4 tile, int8_t *y, tte_dims4 out, int32_t h0,
                  int32_t w0);

#endif
