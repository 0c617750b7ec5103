/*
 * Float64 reference of XCAT_LOSS_CE, written straight from the formulas in include/xcat.h
 * (the comment block above xcat_loss_kind), with no tiling and no cleverness, so that the
 * library's fp32 tiled kernels can be checked against it.
 *
 *     r_ij = s·(h_i·e_j + b_j),  z_ij = c·tanh(r_ij/c) (c > 0) else r_ij,
 *     LSE_i = log Σ_j exp(z_ij),
 *     ℓ_i = LSE_i − (1−ε)·z_{i,y_i} − (ε/C)·Σ_j z_ij + λ·LSE_i²,
 *     ∂ℓ_i/∂z_ij = p_ij·(1 + 2λ·LSE_i) − (1−ε)·δ_{j,y_i} − ε/C.
 */
#ifndef XCAT_TEST_CE_REF_H
#define XCAT_TEST_CE_REF_H

#include <stdint.h>

#include "xcat.h"

/** The inputs of one loss call, converted to float64 and stored contiguously. */
typedef struct ce_ref_model {
    int64_t n, c, d;
    double *h;  /* n×d */
    double *e;  /* c×d */
    double *b;  /* c, or NULL (no bias) */
    int64_t *y; /* n targets */
    double *w;  /* n row weights, or NULL (all 1) */
} ce_ref_model;

/** Copy float inputs (row strides in elements; b and w may be NULL) into `m`.
 *  Returns 0 on success, -1 if memory ran out. */
int ce_ref_model_init(ce_ref_model *m, int64_t n, int64_t c, int64_t d, const float *h,
                      int64_t h_stride, const float *e, int64_t e_stride, const float *b,
                      const int64_t *y, const float *w);
void ce_ref_model_free(ce_ref_model *m);

/**
 * Forward pass. Returns the reduced loss (MEAN or SUM; for NONE the sum of the row losses).
 * `row_loss` (n, or NULL) receives w_i·ℓ_i, 0 for ignored rows; `lse` (n, or NULL) receives
 * LSE_i, 0 for ignored rows.
 */
double ce_ref_forward(const ce_ref_model *m, const xcat_loss_desc *desc, double *row_loss,
                      double *lse);

/**
 * Backward pass: gradients of the objective ce_ref_objective(). `grad_loss` is NULL (1), one
 * value (MEAN/SUM) or n values (NONE). `dh` (n×d), `de` (c×d), `db` (c) are overwritten; each
 * may be NULL.
 */
void ce_ref_backward(const ce_ref_model *m, const xcat_loss_desc *desc,
                     const double *grad_loss, double *dh, double *de, double *db);

/** g·loss for MEAN/SUM, Σ_i g_i·(w_i ℓ_i) for NONE (g = 1 when grad_loss is NULL). */
double ce_ref_objective(const ce_ref_model *m, const xcat_loss_desc *desc,
                        const double *grad_loss);

#endif /* XCAT_TEST_CE_REF_H */
