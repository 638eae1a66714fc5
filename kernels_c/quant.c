/* TFLite requantisation; see quant.h. */
#include "quant.h"

int32_t tte_srdhm(int32_t a, int32_t b)
{
    int64_t ab, q;
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    ab = (int64_t)a * (int64_t)b;
    ab += ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    q = ab / ((int64_t)1 << 31); /* C division truncates toward zero, as in gemmlowp */
    return (int32_t)q;
}

int32_t tte_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t tte_requantize(int32_t acc, int32_t multiplier, int32_t shift)
{
    int32_t left_shift = shift > 0 ? shift : 0;
    int32_t right_shift = shift > 0 ? 0 : -shift;
    int32_t shifted = (int32_t)((uint32_t)acc << left_shift);
    return tte_rounding_divide_by_pot(tte_srdhm(shifted, multiplier), right_shift);
}
