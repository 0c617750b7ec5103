/* scalar_rows.c — portable C row kernels: the reference every SIMD level is tested against,
 * and the path on CPUs without AVX2. libm's expf/tanhf give correctly rounded-ish results. */
#include <math.h>

#include "baseline_guard.h"
#include "kernels.h"

static inline float logit_of(float x, const float *b, int64_t j, float s, float cap)
{
    float r = s * (b ? x + b[j] : x);
    return cap > 0.0f ? cap * tanhf(r / cap) : r;
}

static inline float phi_of(float z, float s, float cap)
{
    if (cap > 0.0f) {
        float t = z / cap;
        return s * (1.0f - t * t);
    }
    return s;
}

static float scalar_logits(float *x, const float *b, int64_t n, float s, float cap, double *zsum)
{
    float m = -INFINITY;
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
        float z = logit_of(x[j], b, j, s, cap);
        x[j] = z;
        m = z > m ? z : m;
        sum += z;
    }
    /* A NaN is skipped by the max but reaches the sum of exponentials, so the row's LSE and
     * loss still come out NaN (the documented behaviour). */
    *zsum += sum;
    return m;
}

static float scalar_softmax_weights(float *z, int64_t n, float m, float s, float cap, float *phi)
{
    double l = 0.0; /* the reference sums in double; the SIMD levels use lane-wise partials */
    for (int64_t j = 0; j < n; j++) {
        float e = expf(z[j] - m);
        float f = phi_of(z[j], s, cap);
        if (phi) phi[j] = f;
        l += e;
        z[j] = e * f;
    }
    return (float)l;
}

static void scalar_grad(float *x, const float *b, int64_t n, float s, float cap, float lse,
                        float a, float c, float *db)
{
    for (int64_t j = 0; j < n; j++) {
        float z = logit_of(x[j], b, j, s, cap);
        float g = (a * expf(z - lse) - c) * phi_of(z, s, cap);
        x[j] = g;
        if (db) db[j] += g;
    }
}

static int64_t scalar_select_above(const float *x, int64_t n, float t, int32_t *idx)
{
    int64_t count = 0;
    for (int64_t j = 0; j < n; ++j)
        if (x[j] > t) idx[count++] = (int32_t)j;
    return count;
}

/* Rows requested this many items ahead of their use (random lines of a large E). */
#define GATHER_AHEAD 8

static void prefetch_row(const float *e, int64_t d)
{
    for (int64_t off = 0; off < d; off += 16) __builtin_prefetch(e + off, 0, 0);
}

static void scalar_gather_dots(const float *h, const float *E, int64_t lde, const int64_t *items,
                               int64_t n, int64_t d, float *out)
{
    for (int64_t k = 0; k < n && k < GATHER_AHEAD; ++k)
        if (items[k] >= 0) prefetch_row(E + items[k] * lde, d);
    for (int64_t k = 0; k < n; ++k) {
        if (k + GATHER_AHEAD < n && items[k + GATHER_AHEAD] >= 0)
            prefetch_row(E + items[k + GATHER_AHEAD] * lde, d);
        if (items[k] < 0) {
            out[k] = 0.0f;
            continue;
        }
        const float *e = E + items[k] * lde;
        /* four partial sums: a fixed order, and enough independent chains to pipeline */
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int64_t t = 0;
        for (; t + 4 <= d; t += 4) {
            s0 += h[t] * e[t];
            s1 += h[t + 1] * e[t + 1];
            s2 += h[t + 2] * e[t + 2];
            s3 += h[t + 3] * e[t + 3];
        }
        for (; t < d; ++t) s0 += h[t] * e[t];
        out[k] = (s0 + s1) + (s2 + s3);
    }
}

static void scalar_gather_axpy(float *dh, const float *coef, const float *E, int64_t lde,
                               const int32_t *items, int64_t n, int64_t d)
{
    for (int64_t k = 0; k < n && k < GATHER_AHEAD; ++k)
        if (items[k] >= 0) prefetch_row(E + (int64_t)items[k] * lde, d);
    for (int64_t k = 0; k < n; ++k) {
        if (k + GATHER_AHEAD < n && items[k + GATHER_AHEAD] >= 0)
            prefetch_row(E + (int64_t)items[k + GATHER_AHEAD] * lde, d);
        if (items[k] < 0) continue;
        const float *e = E + (int64_t)items[k] * lde, c = coef[k];
        for (int64_t t = 0; t < d; ++t) dh[t] += c * e[t];
    }
}

const xcat_row_kernels xcat_row_kernels_scalar = {
    .isa = XCAT_ISA_SCALAR,
    .logits = scalar_logits,
    .softmax_weights = scalar_softmax_weights,
    .grad = scalar_grad,
    .select_above = scalar_select_above,
    .gather_dots = scalar_gather_dots,
    .gather_axpy = scalar_gather_axpy,
};
