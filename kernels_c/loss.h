/* Losses, fp32. Scalar losses are written to *loss. */
#ifndef TTE_LOSS_H
#define TTE_LOSS_H

#include "tte_common.h"

/* loss = mean over the n rows of logits[n, classes] of -log_softmax(row)[labels[row]],
 * with a stable log-sum-exp (row maximum subtracted). Returns TTE_EBADLABEL and writes
 * nothing if any label is outside [0, classes); TTE_OK otherwise. n >= 1, classes >= 1. */
int tte_softmax_cross_entropy_f32(const float *logits, const int32_t *labels, int32_t n,
                                  int32_t classes, float *loss);

/* g[n, classes] = (softmax(logits) - onehot(labels)) / n. Same label check and return codes;
 * g == logits allowed. */
int tte_softmax_cross_entropy_grad_f32(const float *logits, const int32_t *labels, int32_t n,
                                       int32_t classes, float *g);

/* loss = mean((pred - target)^2) over n elements; g = 2 * (pred - target) / n
 * (g may alias pred or target). */
void tte_mse_f32(const float *pred, const float *target, int32_t n, float *loss);
void tte_mse_grad_f32(const float *pred, const float *target, float *g, int32_t n);

#endif
