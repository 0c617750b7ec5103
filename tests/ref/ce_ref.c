/* Float64 reference of the full-softmax CE loss: see ce_ref.h. */
#include "ce_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double *copy_matrix(const float *src, int64_t rows, int64_t cols, int64_t stride)
{
    double *dst = malloc((size_t)(rows * cols) * sizeof *dst);
    if (!dst)
        return NULL;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < cols; ++k)
            dst[r * cols + k] = (double)src[r * stride + k];
    return dst;
}

int ce_ref_model_init(ce_ref_model *m, int64_t n, int64_t c, int64_t d, const float *h,
                      int64_t h_stride, const float *e, int64_t e_stride, const float *b,
                      const int64_t *y, const float *w)
{
    memset(m, 0, sizeof *m);
    m->n = n;
    m->c = c;
    m->d = d;
    m->h = copy_matrix(h, n, d, h_stride);
    m->e = copy_matrix(e, c, d, e_stride);
    m->b = b ? copy_matrix(b, c, 1, 1) : NULL;
    m->w = w ? copy_matrix(w, n, 1, 1) : NULL;
    m->y = malloc((size_t)n * sizeof *m->y);
    if (!m->h || !m->e || (b && !m->b) || (w && !m->w) || !m->y) {
        ce_ref_model_free(m);
        return -1;
    }
    memcpy(m->y, y, (size_t)n * sizeof *m->y);
    return 0;
}

void ce_ref_model_free(ce_ref_model *m)
{
    free(m->h);
    free(m->e);
    free(m->b);
    free(m->y);
    free(m->w);
    memset(m, 0, sizeof *m);
}

static int row_ignored(const ce_ref_model *m, const xcat_loss_desc *desc, int64_t i)
{
    return m->y[i] == desc->ignore_index;
}

static double row_weight(const ce_ref_model *m, int64_t i)
{
    return m->w ? m->w[i] : 1.0;
}

/* Σ of the weights of the rows that are not ignored: the MEAN denominator. */
static double weight_total(const ce_ref_model *m, const xcat_loss_desc *desc)
{
    double total = 0.0;
    for (int64_t i = 0; i < m->n; ++i)
        if (!row_ignored(m, desc, i))
            total += row_weight(m, i);
    return total;
}

/* Pre-activation r_ij and logit z_ij of row i for every j; returns LSE_i. */
static double row_logits(const ce_ref_model *m, const xcat_loss_desc *desc, int64_t i,
                         double *r, double *z)
{
    const double s = desc->scale, cap = desc->softcap;
    double zmax = -INFINITY;
    for (int64_t j = 0; j < m->c; ++j) {
        double dot = 0.0;
        for (int64_t k = 0; k < m->d; ++k)
            dot += m->h[i * m->d + k] * m->e[j * m->d + k];
        if (m->b)
            dot += m->b[j];
        r[j] = s * dot;
        z[j] = cap > 0 ? cap * tanh(r[j] / cap) : r[j];
        if (z[j] > zmax)
            zmax = z[j];
    }
    double sum = 0.0;
    for (int64_t j = 0; j < m->c; ++j)
        sum += exp(z[j] - zmax);
    return zmax + log(sum);
}

/* ℓ_i (unweighted) from the logits of row i and its LSE. */
static double row_loss_value(const ce_ref_model *m, const xcat_loss_desc *desc, int64_t i,
                             const double *z, double lse)
{
    const double eps = desc->label_smoothing, lambda = desc->z_loss;
    double zsum = 0.0;
    for (int64_t j = 0; j < m->c; ++j)
        zsum += z[j];
    return lse - (1.0 - eps) * z[m->y[i]] - (eps / (double)m->c) * zsum + lambda * lse * lse;
}

double ce_ref_forward(const ce_ref_model *m, const xcat_loss_desc *desc, double *row_loss,
                      double *lse)
{
    double *r = malloc((size_t)m->c * sizeof *r);
    double *z = malloc((size_t)m->c * sizeof *z);
    double total = 0.0;
    if (!r || !z) {
        free(r);
        free(z);
        return NAN;
    }
    for (int64_t i = 0; i < m->n; ++i) {
        double li = 0.0, lse_i = 0.0;
        if (!row_ignored(m, desc, i)) {
            lse_i = row_logits(m, desc, i, r, z);
            li = row_weight(m, i) * row_loss_value(m, desc, i, z, lse_i);
        }
        if (row_loss)
            row_loss[i] = li;
        if (lse)
            lse[i] = lse_i;
        total += li;
    }
    free(r);
    free(z);
    if (desc->reduction == XCAT_REDUCTION_MEAN) {
        const double wsum = weight_total(m, desc);
        return wsum == 0.0 ? 0.0 : total / wsum; /* all ignored (or weights sum to 0) → 0 */
    }
    return total;
}

static double upstream(const ce_ref_model *m, const xcat_loss_desc *desc,
                       const double *grad_loss, int64_t i)
{
    (void)m;
    if (!grad_loss)
        return 1.0;
    return desc->reduction == XCAT_REDUCTION_NONE ? grad_loss[i] : grad_loss[0];
}

double ce_ref_objective(const ce_ref_model *m, const xcat_loss_desc *desc,
                        const double *grad_loss)
{
    if (desc->reduction != XCAT_REDUCTION_NONE)
        return upstream(m, desc, grad_loss, 0) * ce_ref_forward(m, desc, NULL, NULL);
    double *rows = malloc((size_t)m->n * sizeof *rows);
    if (!rows)
        return NAN;
    ce_ref_forward(m, desc, rows, NULL);
    double total = 0.0;
    for (int64_t i = 0; i < m->n; ++i)
        total += upstream(m, desc, grad_loss, i) * rows[i];
    free(rows);
    return total;
}

/* Accumulate the gradient contributions of row i, scaled by the row factor f. */
static void row_backward(const ce_ref_model *m, const xcat_loss_desc *desc, int64_t i,
                         double f, const double *r, const double *z, double lse, double *dh,
                         double *de, double *db)
{
    const double s = desc->scale, cap = desc->softcap;
    const double eps = desc->label_smoothing, lambda = desc->z_loss;
    for (int64_t j = 0; j < m->c; ++j) {
        double dz = exp(z[j] - lse) * (1.0 + 2.0 * lambda * lse) - eps / (double)m->c;
        if (j == m->y[i])
            dz -= 1.0 - eps;
        if (cap > 0) {
            const double t = tanh(r[j] / cap);
            dz *= 1.0 - t * t;
        }
        const double g = f * dz * s; /* ∂objective/∂(h_i·e_j + b_j) */
        for (int64_t k = 0; k < m->d; ++k) {
            if (dh)
                dh[i * m->d + k] += g * m->e[j * m->d + k];
            if (de)
                de[j * m->d + k] += g * m->h[i * m->d + k];
        }
        if (db)
            db[j] += g;
    }
}

static void zero(double *x, int64_t count)
{
    if (x)
        memset(x, 0, (size_t)count * sizeof *x);
}

void ce_ref_backward(const ce_ref_model *m, const xcat_loss_desc *desc,
                     const double *grad_loss, double *dh, double *de, double *db)
{
    zero(dh, m->n * m->d);
    zero(de, m->c * m->d);
    zero(db, m->c);
    const double wsum = weight_total(m, desc);
    if (desc->reduction == XCAT_REDUCTION_MEAN && wsum == 0.0)
        return; /* MEAN over no rows is the constant 0 */
    double *r = malloc((size_t)m->c * sizeof *r);
    double *z = malloc((size_t)m->c * sizeof *z);
    if (r && z) {
        for (int64_t i = 0; i < m->n; ++i) {
            if (row_ignored(m, desc, i))
                continue;
            double f = upstream(m, desc, grad_loss, i) * row_weight(m, i);
            if (desc->reduction == XCAT_REDUCTION_MEAN)
                f /= wsum;
            const double lse = row_logits(m, desc, i, r, z);
            row_backward(m, desc, i, f, r, z, lse, dh, de, db);
        }
    }
    free(r);
    free(z);
}
