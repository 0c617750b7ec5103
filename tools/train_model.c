/* train_model.c — see train_model.h. */
#include "train_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

static void param_free(train_param *p)
{
    free(p->value);
    free(p->grad);
    free(p->m);
    free(p->v);
    memset(p, 0, sizeof *p);
}

static int param_alloc(train_param *p, int64_t count)
{
    p->count = count;
    p->value = calloc((size_t)count, sizeof(float));
    p->grad = calloc((size_t)count, sizeof(float));
    p->m = calloc((size_t)count, sizeof(float));
    p->v = calloc((size_t)count, sizeof(float));
    return p->value && p->grad && p->m && p->v ? 0 : -1;
}

void train_model_free(train_model *m)
{
    param_free(&m->A);
    param_free(&m->E);
    param_free(&m->b);
    param_free(&m->W);
    param_free(&m->w);
}

int train_model_init(train_model *m, int64_t num_items, int64_t dim, int32_t window,
                     uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->num_items = num_items;
    m->dim = dim;
    m->window = window;
    if (param_alloc(&m->A, num_items * dim) || param_alloc(&m->E, num_items * dim) ||
        param_alloc(&m->b, num_items) || param_alloc(&m->W, dim * dim) ||
        param_alloc(&m->w, window)) {
        train_model_free(m);
        return -1;
    }
    /* Embeddings with standard deviation 1/sqrt(d): logits start near 0 with unit-scale rows. */
    fill_uniform(m->A.value, m->A.count, 1.0f / sqrtf((float)dim), seed * 4 + 1);
    fill_uniform(m->E.value, m->E.count, 1.0f / sqrtf((float)dim), seed * 4 + 2);
    /* W starts as the identity, so h = x and the projection learns only what helps. */
    for (int64_t i = 0; i < dim; ++i) m->W.value[i * dim + i] = 1.0f;
    /* Position weights start favouring the most recent items: w_p = −p/4. */
    for (int32_t p = 0; p < window; ++p) m->w.value[p] = -0.25f * (float)p;
    return 0;
}

void train_model_state(const train_model *m, const int32_t *hist, int64_t n, float *x, float *h)
{
    const int64_t d = m->dim;
    const int64_t L = n < m->window ? n : m->window;
    memset(x, 0, (size_t)d * sizeof *x);
    double z = 0.0;
    for (int64_t p = 0; p < L; ++p) z += exp((double)m->w.value[p]);
    for (int64_t p = 0; p < L; ++p) {
        const float a = (float)(exp((double)m->w.value[p]) / z);
        const float *row = m->A.value + (int64_t)hist[n - 1 - p] * d;
        for (int64_t k = 0; k < d; ++k) x[k] += a * row[k];
    }
    for (int64_t i = 0; i < d; ++i) {
        const float *wr = m->W.value + i * d;
        float s = 0.0f;
        for (int64_t k = 0; k < d; ++k) s += wr[k] * x[k];
        h[i] = s;
    }
}

void train_model_state_backward(train_model *m, const int32_t *hist, int64_t n, const float *x,
                                const float *dh)
{
    const int64_t d = m->dim;
    const int64_t L = n < m->window ? n : m->window;
    float dx[1024];
    float *dxp = d <= 1024 ? dx : malloc((size_t)d * sizeof *dxp);
    if (!dxp) return;
    /* dW += dh·xᵀ; dx = Wᵀ·dh */
    memset(dxp, 0, (size_t)d * sizeof *dxp);
    for (int64_t i = 0; i < d; ++i) {
        float *gw = m->W.grad + i * d;
        const float *wr = m->W.value + i * d;
        for (int64_t k = 0; k < d; ++k) {
            gw[k] += dh[i] * x[k];
            dxp[k] += wr[k] * dh[i];
        }
    }
    /* x = Σ a_p A_p with a = softmax(w): dA_p += a_p·dx; dw_p = a_p·(A_p − x)·dx */
    double z = 0.0;
    for (int64_t p = 0; p < L; ++p) z += exp((double)m->w.value[p]);
    float xdx = 0.0f;
    for (int64_t k = 0; k < d; ++k) xdx += x[k] * dxp[k];
    for (int64_t p = 0; p < L; ++p) {
        const float a = (float)(exp((double)m->w.value[p]) / z);
        const int64_t item = hist[n - 1 - p];
        const float *row = m->A.value + item * d;
        float *grow = m->A.grad + item * d;
        float adx = 0.0f;
        for (int64_t k = 0; k < d; ++k) {
            grow[k] += a * dxp[k];
            adx += row[k] * dxp[k];
        }
        m->w.grad[p] += a * (adx - xdx);
    }
    if (dxp != dx) free(dxp);
}

static void param_zero(train_param *p)
{
    memset(p->grad, 0, (size_t)p->count * sizeof(float));
}

void train_model_zero_grad(train_model *m)
{
    param_zero(&m->A);
    param_zero(&m->E);
    param_zero(&m->b);
    param_zero(&m->W);
    param_zero(&m->w);
}

static void adam(train_param *p, float lr, float c1, float c2)
{
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    /* Element-wise, so threads change nothing in the result. */
#pragma omp parallel for schedule(static) if (p->count >= 65536)
    for (int64_t i = 0; i < p->count; ++i) {
        const float g = p->grad[i];
        p->m[i] = b1 * p->m[i] + (1.0f - b1) * g;
        p->v[i] = b2 * p->v[i] + (1.0f - b2) * g * g;
        p->value[i] -= lr * (p->m[i] / c1) / (sqrtf(p->v[i] / c2) + eps);
    }
}

void train_model_adam(train_model *m, float lr)
{
    ++m->step;
    const float c1 = 1.0f - powf(0.9f, (float)m->step);
    const float c2 = 1.0f - powf(0.999f, (float)m->step);
    adam(&m->A, lr, c1, c2);
    adam(&m->E, lr, c1, c2);
    adam(&m->b, lr, c1, c2);
    adam(&m->W, lr, c1, c2);
    adam(&m->w, lr, c1, c2);
}
