/* kernels.h — the per-ISA CPU row kernels and their run-time dispatch.
 *
 * The CE family on the CPU is "GEMM tile + row epilogue": OpenBLAS computes a tile of raw dot
 * products x_j = h·e_j, and one of these kernels turns a row of the tile into logits, softmax
 * weights or gradients in place (loss-only forwards on the SIMD levels skip the tile: see
 * fused_lse). Each ISA implements the same table in its own translation
 * unit (scalar/ always built, the reference; avx2/ and avx512/ compiled with their own flags
 * and chosen by cpuid + xgetbv). Results of different levels agree to a few ulp, not bitwise;
 * one level is deterministic.
 *
 * Notation (see xcat.h): r = s·(x + b), z = c·tanh(r/c) (or r without softcap),
 * φ = dz/d(x+b) = s·(1 − (z/c)²) (or s). */
#ifndef XCAT_SIMD_KERNELS_H
#define XCAT_SIMD_KERNELS_H

#include <stdint.h>

#include "xcat.h"

typedef struct xcat_row_kernels {
    xcat_isa isa;
    /* x[j] ← z_j for j < n (b may be NULL, cap 0 = off). Returns max_j z_j; adds Σ_j z_j to
     * *zsum. */
    float (*logits)(float *x, const float *b, int64_t n, float s, float cap, double *zsum);
    /* z[j] ← exp(z_j − m)·φ_j, and phi[j] ← φ_j when phi != NULL. Returns Σ_j exp(z_j − m)
     * (in float, summed in a fixed order). Requires m >= every z_j (or m = +inf is not used). */
    float (*softmax_weights)(float *z, int64_t n, float m, float s, float cap, float *phi);
    /* Gradient row from raw dot products: x[j] ← (a·exp(z_j − lse) − c)·φ_j and, when db is
     * not NULL, db[j] += that value. */
    void (*grad)(float *x, const float *b, int64_t n, float s, float cap, float lse, float a,
                 float c, float *db);
    /* Top-K filter: idx[0..count) ← every j < n with x[j] > t, ascending; returns count. NaN
     * never passes (comparisons with NaN are false). */
    int64_t (*select_above)(const float *x, int64_t n, float t, int32_t *idx);
    /* Gathered dot products (sampled negatives): out[k] ← h·E[items[k]] for k < n, 0 where
     * items[k] < 0; rows of E are lde floats apart, d columns. Rows are random lines of a large
     * E, so the kernel keeps several in flight and requests rows ahead (prefetch). */
    void (*gather_dots)(const float *h, const float *E, int64_t lde, const int64_t *items,
                        int64_t n, int64_t d, float *out);
    /* Gathered axpy (their dH): dh[t] += Σ_k coef[k]·E[items[k]][t] over k < n in k order,
     * skipping items[k] < 0. */
    void (*gather_axpy)(float *dh, const float *coef, const float *E, int64_t lde,
                        const int32_t *items, int64_t n, int64_t d);
    /* Fused CE forward, loss only (NULL at the scalar level: the BLAS tile path is the
     * reference there). pack_items: the nc items E[0..nc) (rows lde apart, d columns) into
     * panels of fused_nr items, each d rows of fused_nr floats, zero past nc; P holds
     * ceil(nc / fused_nr)·fused_nr·d floats. fused_lse: for nr <= fused_mr rows h[0..nr) against
     * those packed items (bias b of nc entries or NULL), z = logit(h·e_j + b_j) as in
     * `logits`; updates each row's running max m[i] and sum l[i] of exp(z − m[i]) (both
     * rescaled when the max moves; m[i] = −inf and l[i] = 0 start a row). */
    int fused_nr, fused_mr; /* items per panel, rows per micro-tile (at most 12) */
    void (*pack_items)(const float *E, int64_t lde, int64_t nc, int64_t d, float *P);
    void (*fused_lse)(const float *const *h, int nr, const float *P, int64_t nc, int64_t d,
                      const float *b, float s, float cap, float *m, double *l);
    /* Fused top-K scoring over the same packed items: for the nr <= fused_mr rows h[0..nr),
     * x_j = h·e_j (+ b_j); row r keeps the items whose x_j > thr[r] when full[r], else every
     * non-NaN x_j: their positions j (ascending) and scores go to idx[r·ld ..] / sc[r·ld ..]
     * (room for nc each), their count to cnt[r]. */
    void (*fused_above)(const float *const *h, int nr, const float *P, int64_t nc, int64_t d,
                        const float *b, const float *thr, const int *full, int32_t *idx,
                        float *sc, int64_t ld, int64_t *cnt);
    /* fused_above is the top-K default on this level (0: only with XCAT_CPU_FUSED=1 — the
     * AVX-512 instantiation has not run on AVX-512 hardware yet). */
    int fused_above_default;
} xcat_row_kernels;

/* The kernels of `isa` (which must be built in and supported: see xcat_cpu_isa_detect). */
const xcat_row_kernels *xcat_row_kernels_get(xcat_isa isa);

/* The best level this CPU and OS support among the levels compiled in. Probed once. */
xcat_isa xcat_cpu_isa_detect(void);
/* A short CPU model description ("AMD EPYC 9R14"), "" when unknown. */
const char *xcat_cpu_model_name(void);

extern const xcat_row_kernels xcat_row_kernels_scalar;
#ifdef XCAT_HAVE_AVX2_UNIT
extern const xcat_row_kernels xcat_row_kernels_avx2;
#endif
#ifdef XCAT_HAVE_AVX512_UNIT
extern const xcat_row_kernels xcat_row_kernels_avx512;
#endif

#endif /* XCAT_SIMD_KERNELS_H */
