/* sampled_ref.c — see sampled_ref.h. Straightforward double arithmetic, row by row. */
#include "sampled_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { K_SAMPLED_CE = 1, K_BCE = 2, K_GBCE = 3 };
enum { R_MEAN = 0, R_SUM = 1, R_NONE = 2 };

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

void sampled_ref(const sampled_ref_opts *o, const float *H, int64_t ldh, const float *E,
                 int64_t lde, const float *b, const int64_t *y, const float *w,
                 const int64_t *neg, int64_t n, int64_t c, int64_t d, int64_t k,
                 const double *up, double *loss, double *lse, double *dH, double *dE,
                 double *db)
{
    double *z = malloc((size_t)(k + 1) * sizeof *z), *phi = malloc((size_t)(k + 1) * sizeof *phi);
    int64_t *it = malloc((size_t)(k + 1) * sizeof *it);
    double wsum = 0.0, total = 0.0;
    for (int64_t i = 0; i < n; ++i)
        if (y[i] != o->ignore_index) wsum += w ? w[i] : 1.0;
    const double mscale = o->reduction == R_MEAN ? (wsum != 0.0 ? 1.0 / wsum : 0.0) : 1.0;
    if (dH) memset(dH, 0, (size_t)(n * d) * sizeof *dH);
    if (dE) memset(dE, 0, (size_t)(c * d) * sizeof *dE);
    if (db) memset(db, 0, (size_t)c * sizeof *db);
    for (int64_t i = 0; i < n; ++i) {
        double li = 0.0, lsei = 0.0;
        if (y[i] == o->ignore_index) {
            if (o->reduction == R_NONE) loss[i] = 0.0;
            if (lse) lse[i] = 0.0;
            continue;
        }
        it[0] = y[i];
        for (int64_t t = 0; t < k; ++t) it[t + 1] = neg[i * k + t];
        for (int64_t t = 0; t <= k; ++t) {
            if (it[t] < 0) continue;
            double r = b ? b[it[t]] : 0.0;
            for (int64_t u = 0; u < d; ++u) r += (double)H[i * ldh + u] * E[it[t] * lde + u];
            r *= o->scale;
            if (o->softcap > 0) {
                z[t] = o->softcap * tanh(r / o->softcap);
                phi[t] = o->scale * (1.0 - (z[t] / o->softcap) * (z[t] / o->softcap));
            } else {
                z[t] = r;
                phi[t] = o->scale;
            }
        }
        double gz[1 + 4096 + 8]; /* dℓ/dz per candidate; K <= 4096 in the tests */
        double cr[1 + 4096 + 8];
        for (int64_t t = 1; t <= k; ++t) {
            cr[t] = o->corr;
            if (o->logq_on && it[t] >= 0) {
                const double lq = o->logq ? o->logq[it[t]] : o->logq_uniform;
                if (isinf(lq)) it[t] = -1; /* q = 0: masked */
                else cr[t] = o->logk + lq;
            }
        }
        if (o->kind == K_SAMPLED_CE) {
            double m = z[0];
            for (int64_t t = 1; t <= k; ++t) if (it[t] >= 0 && z[t] - cr[t] > m) m = z[t] - cr[t];
            double s = exp(z[0] - m);
            for (int64_t t = 1; t <= k; ++t) if (it[t] >= 0) s += exp(z[t] - cr[t] - m);
            lsei = m + log(s);
            li = lsei - z[0];
            gz[0] = exp(z[0] - lsei) - 1.0;
            for (int64_t t = 1; t <= k; ++t) gz[t] = it[t] >= 0 ? exp(z[t] - cr[t] - lsei) : 0.0;
        } else {
            const double inv = 1.0 / (double)(k + 1);
            li = o->beta * softplus(-z[0]);
            gz[0] = -o->beta * (1.0 - sigm(z[0])) * inv;
            for (int64_t t = 1; t <= k; ++t) {
                gz[t] = 0.0;
                if (it[t] < 0) continue;
                li += softplus(z[t]);
                gz[t] = sigm(z[t]) * inv;
            }
            li *= inv;
        }
        const double wi = w ? w[i] : 1.0;
        if (o->reduction == R_NONE) loss[i] = wi * li; else total += wi * li;
        if (lse) lse[i] = lsei;
        const double g = mscale * wi * (up ? (o->reduction == R_NONE ? up[i] : up[0]) : 1.0);
        for (int64_t t = 0; t <= k; ++t) {
            if (it[t] < 0) continue;
            const double cf = g * gz[t] * phi[t];
            for (int64_t u = 0; u < d; ++u) {
                if (dH) dH[i * d + u] += cf * E[it[t] * lde + u];
                if (dE) dE[it[t] * d + u] += cf * H[i * ldh + u];
            }
            if (db) db[it[t]] += cf;
        }
    }
    if (o->reduction != R_NONE) loss[0] = total * mscale;
    free(z), free(phi), free(it);
}
