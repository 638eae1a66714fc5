/* Losses, portable scalar C99. See loss.h for the contracts. */
#include "loss.h"

#include <math.h>

static int labels_ok(const int32_t *labels, int32_t n, int32_t classes)
{
    int32_t r;
    for (r = 0; r < n; ++r)
        if (labels[r] < 0 || labels[r] >= classes) return 0;
    return 1;
}

/* exp and log in double, rounded to float: the numpy reference does the same with float64
 * (tte/quant/ordered.py). Every libm's expf/logf rounds differently, but glibc's, newlib's
 * and numpy's double results are each within an ulp of the exact value, so after rounding
 * to float they agree except within about 2^-29 of a float rounding boundary. Only
 * classes + 1 calls per row: the soft-double cost on single-precision FPUs is small. */
static float exp_d(float x)
{
    return (float)exp((double)x);
}

static float log_d(float x)
{
    return (float)log((double)x);
}

/* One row: returns -log_softmax(x)[label] = (max - x[label]) + log(sum exp(x - max)).
 * If g is not NULL also writes g = (softmax(x) - onehot(label)) * inv_n; x[label] is read
 * first and each x[j] is read before g[j] is written, so g == x is safe. */
static float xent_row(const float *x, int32_t classes, int32_t label, float *g, float inv_n)
{
    const float xl = x[label];
    float m = x[0], s = 0.0f, inv;
    int32_t j;
    for (j = 1; j < classes; ++j)
        if (x[j] > m) m = x[j];
    if (g) {
        for (j = 0; j < classes; ++j) {
            const float e = exp_d(x[j] - m);
            g[j] = e;
            s += e;
        }
        inv = 1.0f / s;
        for (j = 0; j < classes; ++j) g[j] = g[j] * inv * inv_n;
        g[label] -= inv_n; /* (p - 1) / n, with p already divided by n */
    } else {
        for (j = 0; j < classes; ++j) s += exp_d(x[j] - m);
    }
    return (m - xl) + log_d(s);
}

int tte_softmax_cross_entropy_f32(const float *logits, const int32_t *labels, int32_t n,
                                  int32_t classes, float *loss)
{
    float total = 0.0f;
    int32_t r;
    if (!labels_ok(labels, n, classes)) return TTE_EBADLABEL;
    for (r = 0; r < n; ++r) total += xent_row(logits + r * classes, classes, labels[r], NULL, 0.0f);
    *loss = n > 0 ? total / (float)n : 0.0f;
    return TTE_OK;
}

int tte_softmax_cross_entropy_grad_f32(const float *logits, const int32_t *labels, int32_t n,
                                       int32_t classes, float *g)
{
    const float inv_n = n > 0 ? 1.0f / (float)n : 0.0f;
    int32_t r;
    if (!labels_ok(labels, n, classes)) return TTE_EBADLABEL;
    for (r = 0; r < n; ++r)
        (void)xent_row(logits + r * classes, classes, labels[r], g + r * classes, inv_n);
    return TTE_OK;
}

void tte_mse_f32(const float *pred, const float *target, int32_t n, float *loss)
{
    float total = 0.0f;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float d = pred[i] - target[i];
        total += d * d;
    }
    *loss = n > 0 ? total / (float)n : 0.0f;
}

void tte_mse_grad_f32(const float *pred, const float *target, float *g, int32_t n)
{
    const float count = (float)n;
    int32_t i;
    for (i = 0; i < n; ++i) g[i] = 2.0f * (pred[i] - target[i]) / count; /* as the reference */
}
