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

const xcat_row_kernels xcat_row_kernels_scalar = {
    .isa = XCAT_ISA_SCALAR,
    .logits = scalar_logits,
    .softmax_weights = scalar_softmax_weights,
    .grad = scalar_grad,
    .select_above = scalar_select_above,
};
