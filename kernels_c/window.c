/* Window geometry shared by the convolution and pooling kernels; see tte_common.h. */
#include "tte_common.h"

void tte_tap_range(int32_t off, int32_t step, int32_t size, int32_t count, int32_t *lo,
                   int32_t *hi)
{
    int32_t a = off < 0 ? (-off + step - 1) / step : 0;
    int32_t b = size - 1 - off < 0 ? 0 : (size - 1 - off) / step + 1;
    if (b > count) b = count;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}
