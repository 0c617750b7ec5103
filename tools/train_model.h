/* train_model.h — xcat-train's small sequential recommender, on the host.
 *
 * User state for a history s_1..s_n (time order), with the last L items s_{n−p}, p = 0..L−1:
 *     x = Σ_p α_p·A[s_{n−p}] / Σ_p α_p,   α_p = exp(w_p)     (position-weighted mean)
 *     h = W·x                                                 (d×d projection)
 * Item output embeddings E (C×d) and bias b (C) are the catalog the xcat loss runs over:
 * logits h·e_j + b_j. A (C×d) are the input embeddings. Everything is trained with Adam
 * (Kingma & Ba 2015; β1 0.9, β2 0.999, ε 1e-8). Single-threaded and ordered, so the same seed
 * gives bitwise the same model on any machine for the host part. */
#ifndef XCAT_TRAIN_MODEL_H
#define XCAT_TRAIN_MODEL_H

#include <stdint.h>

typedef struct train_param {
    float *value, *grad, *m, *v;
    int64_t count;
} train_param;

typedef struct train_model {
    int64_t num_items, dim;
    int32_t window;
    train_param A, E, b, W, w;
    int64_t step;
} train_model;

int train_model_init(train_model *m, int64_t num_items, int64_t dim, int32_t window,
                     uint64_t seed);
void train_model_free(train_model *m);
/* x and h (d each) for the history hist[0..n) (n >= 1). */
void train_model_state(const train_model *m, const int32_t *hist, int64_t n, float *x, float *h);
/* Accumulate the gradients of A, W, w for one sample, given dL/dh. */
void train_model_state_backward(train_model *m, const int32_t *hist, int64_t n, const float *x,
                                const float *dh);
/* Zero every gradient. */
void train_model_zero_grad(train_model *m);
/* One Adam step on every parameter (E and b take their gradients from xcat's dE, db). */
void train_model_adam(train_model *m, float lr);

#endif
