/* cpu_sampled.c — the sampled kinds on the CPU backend: SAMPLED_CE (corrections NONE, UNIFORM,
 * LOGQ), BCE, GBCE with the uniform (also distinct), popularity (alias) and given samplers.
 *
 * Nothing of size N×K is stored. A row's negatives are redrawn from cl/rng.cl wherever they are
 * needed (forward, backward, xcat_loss_draw_negatives), so every pass and every backend sees the
 * same items. Per row, the K+1 candidate logits live in a per-worker scratch of K+1 floats.
 *
 * Backward, deterministic without atomics: rows are processed in chunks whose (item, coefficient)
 * lists fit a bounded buffer (CHUNK_ENTRIES). Phase A, parallel over rows: each row recomputes
 * its candidates, writes its own dH row and its list. Phase B, parallel over item ranges: each
 * worker scans the whole chunk list in (row, k) order and accumulates only the items it owns, so
 * every dE row is summed in the same order whatever the thread count.
 *
 * Shared candidates are GEMMs, not gathers: the K items of GIVEN_SHARED, and the batch's own
 * positives for INBATCH. Their rows of E are gathered once per call (E_s, nsh × d); per chunk of
 * rows, Z = H_chunk · E_sᵀ (OpenBLAS, 64-row tiles per worker) gives their dot products; in the
 * backward their coefficients go to a chunk matrix G instead of the lists, dH += G · E_s, and
 * dE_s += Gᵀ · H_chunk (workers own slices of the shared columns, chunks in order), added into
 * dE in column order at the end. XCAT_CPU_SHARED_GATHER=1 (testing, benchmarks; not under
 * IGNORE_ENV) turns this off. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#define XCAT_RNG_HOST 1
#include "../cl/rng.cl"

#include "baseline_guard.h"
#include "cpu_blas.h"
#include "cpu_sampled.h"
#include "kernels.h"
#include "sampling.h"

#define CHUNK_ENTRIES ((int64_t)1 << 21) /* (item, coefficient) pairs per backward chunk */
#define REJECT_ATTEMPTS 16
#define SHARED_Z_BYTES ((int64_t)64 << 20) /* shared columns' dots (and coefficients) per chunk */

typedef struct sjob {
    const xcat_loss_plan *plan;
    const xcat_loss_call *call;
    const float *H, *E, *b, *w;
    int64_t ldh, lde, n, c, d, k;
    const void *y;
    bool y64;
    float scale, cap;
    float corr;   /* UNIFORM correction log(K/(C−1)), else 0 */
    bool logq_on; /* LOGQ: correction log(K·q(item)) per negative */
    float logk;   /* log K */
    const float *logq; /* log q per item (POPULARITY, given), or NULL: uniform q = 1/C */
    int64_t kt;   /* negatives per row in all: k, plus the other n − 1 rows' positives (INBATCH) */
    const float *logQ; /* INBATCH: log Q(item) from the item counts (LOGQ, LOGQ_CORRECTED) */
    float beta;   /* BCE / GBCE weight of the positive term */
    /* Shared candidates (GIVEN_SHARED: the K negatives; INBATCH: the n positives): their dot
     * products with a chunk of rows come from one GEMM, Z = H_chunk · E_sharedᵀ. */
    int64_t nsh;           /* shared columns, 0 = none */
    const int64_t *sh_items; /* nsh item ids (−1: none) */
    const float *Esh;      /* nsh × d gathered rows (zeros for −1) */
    const float *Z;        /* the current chunk's dots: Z[(row − z0) · nsh + s] */
    int64_t z0;
    const xcat_row_kernels *kern; /* the context's ISA: gathered dots and axpys */
} sjob;

static int64_t target_of(const sjob *j, int64_t i)
{
    return j->y64 ? ((const int64_t *)j->y)[i] : ((const int32_t *)j->y)[i];
}

static bool ignored(const sjob *j, int64_t i)
{
    return target_of(j, i) == j->plan->desc.ignore_index;
}

static bool in_row_items(const xcat_loss_call *c, int64_t row, int64_t item)
{
    if (!c->h_row_items_offsets) return false;
    int64_t lo = c->h_row_items_offsets[row], hi = c->h_row_items_offsets[row + 1];
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (c->h_row_items[mid] < item) lo = mid + 1; else hi = mid;
    }
    return lo < c->h_row_items_offsets[row + 1] && c->h_row_items[lo] == item;
}

static bool masked(const sjob *j, int64_t row, int64_t y, int64_t item)
{
    if (item < 0 || item == y || in_row_items(j->call, row, item)) return true;
    /* LOGQ is undefined for an item of probability 0: such a candidate is masked */
    return j->logq_on && j->logq && isinf(j->logq[item]);
}

/* The correction c_k subtracted from a negative's logit (SAMPLED_CE). */
static float corr_of(const sjob *j, int64_t item)
{
    if (!j->logq_on) return j->corr;
    return j->logk + (j->logq ? j->logq[item] : -logf((float)j->c));
}

/* Negative k of row `row` (target y): the item, or −1 when it is masked. */
static int64_t negative(const sjob *j, int64_t row, int64_t y, int64_t k, const xr_perm *perm)
{
    const xcat_loss_desc *d = &j->plan->desc;
    const xcat_loss_call *c = j->call;
    int64_t item;
    switch (d->sampler) {
    case XCAT_SAMPLER_GIVEN_PER_ROW:
    case XCAT_SAMPLER_GIVEN_SHARED: {
        const xcat_tensor *t = c->negatives;
        const int64_t at = d->sampler == XCAT_SAMPLER_GIVEN_PER_ROW ? row * t->stride + k : k;
        item = t->dtype == XCAT_DTYPE_I64 ? ((const int64_t *)t->data)[at]
                                          : ((const int32_t *)t->data)[at];
        return masked(j, row, y, item) ? -1 : item;
    }
    default:
        break;
    }
    const int attempts = (d->flags & XCAT_LOSS_REJECT_HITS) ? REJECT_ATTEMPTS : 1;
    const xcat_sampling *smp = j->plan->sampling;
    for (int a = 0; a < attempts; ++a) {
        if (perm) { /* distinct: never the positive; attempts only matter for row items */
            item = xr_draw_distinct(perm, (xr_u32)k, (xr_u32)y);
        } else if (d->sampler == XCAT_SAMPLER_POPULARITY) {
            xr_u32 v;
            XR_ALIAS_DRAW(d->seed, c->step, (xr_u32)row, (xr_u32)k, (xr_u32)a, (xr_u32)j->c,
                          smp->alias_threshold, smp->alias_index, v);
            item = v;
        } else {
            item = xr_draw_uniform(d->seed, c->step, (xr_u32)row, (xr_u32)k, (xr_u32)a,
                                   (xr_u32)j->c);
        }
        if (!masked(j, row, y, item)) return item;
        if (perm) break; /* a permutation has one value per k */
    }
    return -1;
}

/* A logit from its dot product h·e: bias, scale, softcap. */
static float logit_finish(const sjob *j, float r, int64_t item)
{
    if (j->b) r += j->b[item];
    r *= j->scale;
    return j->cap > 0.0f ? j->cap * tanhf(r / j->cap) : r;
}

static float logit_of(const sjob *j, int64_t row, int64_t item)
{
    float r;
    j->kern->gather_dots(j->H + row * j->ldh, j->E, j->lde, &item, 1, j->d, &r);
    return logit_finish(j, r, item);
}

/* The logit of a shared column s of `row`, from the chunk's GEMM. */
static float shared_logit(const sjob *j, int64_t row, int64_t s, int64_t item)
{
    return logit_finish(j, j->Z[(row - j->z0) * j->nsh + s], item);
}

/* dz/d(h·e + b) for a logit z */
static float phi_of(const sjob *j, float z)
{
    if (j->cap <= 0.0f) return j->scale;
    const float u = z / j->cap;
    return j->scale * (1.0f - u * u);
}

static float softplus(float x)
{
    return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
}

static float sigmoid(float x)
{
    return x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

/* INBATCH, after the K extras are in items[1..K] / z[1..K]: the other rows' positives go to
 * items[K+1 .. K+n−1] (masked when ignored, equal to y, listed for the row, or of Q = 0 under a
 * correction). Corrections (xcat.h): in-batch candidates z − log Q (the positive too for LOGQ;
 * Q' = Q/(1 − Q(p)) for LOGQ_CORRECTED), extras z − log(K·q). */
static double inbatch_pass(const sjob *j, int64_t row, int64_t *items, float *z, float *coef,
                           float *lse_out)
{
    const xcat_loss_desc *d = &j->plan->desc;
    const int64_t y = target_of(j, row), K = j->k, T = j->kt;
    const xcat_correction corr = d->correction;
    const bool withq = corr != XCAT_CORRECTION_NONE;
    int64_t t = K + 1;
    for (int64_t r = 0; r < j->n; ++r) {
        if (r == row) continue;
        const int64_t v = ignored(j, r) ? -1 : target_of(j, r);
        const bool m = v < 0 || v == y || in_row_items(j->call, row, v) ||
                       (withq && isinf(j->logQ[v]));
        items[t] = m ? -1 : v;
        z[t] = m ? 0.0f : j->nsh ? shared_logit(j, row, r, v) : logit_of(j, row, v);
        ++t;
    }
    /* per-candidate corrections, in coef's room while the loss is formed */
    float lq_p = withq ? j->logQ[y] : 0.0f;
    if (withq && isinf(lq_p)) { /* the positive has Q = 0: no defined loss, the row is inert */
        if (coef) for (int64_t k = 0; k <= T; ++k) coef[k] = 0.0f;
        if (lse_out) *lse_out = 0.0f;
        return 0.0;
    }
    /* z − log Q'(j) = z − log Q(j) + log(1 − Q(p)) */
    const float shift = corr == XCAT_CORRECTION_LOGQ_CORRECTED
                            ? log1pf(-fminf(expf(lq_p), 0.99999994f)) : 0.0f;
    /* corrected logit of candidate k >= 1 */
#define ZC(k) (items[k] < 0 ? 0.0f                                                                 \
               : (k) <= K ? (withq ? z[k] - (j->logk + (j->logq ? j->logq[items[k]]                \
                                                                 : -logf((float)j->c)))           \
                                   : z[k])                                                         \
               : (withq ? z[k] - j->logQ[items[k]] + shift : z[k]))
    const float zp = corr == XCAT_CORRECTION_LOGQ ? z[0] - lq_p : z[0];
    if (corr != XCAT_CORRECTION_LOGQ_CORRECTED) {
        float m = zp;
        for (int64_t k = 1; k <= T; ++k)
            if (items[k] >= 0 && ZC(k) > m) m = ZC(k);
        double s = exp((double)(zp - m));
        for (int64_t k = 1; k <= T; ++k)
            if (items[k] >= 0) s += exp((double)(ZC(k) - m));
        const float lse = m + (float)log(s);
        if (lse_out) *lse_out = lse;
        if (coef) {
            coef[0] = (expf(zp - lse) - 1.0f) * phi_of(j, z[0]);
            for (int64_t k = 1; k <= T; ++k)
                coef[k] = items[k] >= 0 ? expf(ZC(k) - lse) * phi_of(j, z[k]) : 0.0f;
        }
        return (double)lse - (double)zp;
    }
    /* LOGQ_CORRECTED: S over the negatives only, weight w = 1 − P̂ held constant */
    float m = -INFINITY;
    for (int64_t k = 1; k <= T; ++k)
        if (items[k] >= 0 && ZC(k) > m) m = ZC(k);
    if (m == -INFINITY) { /* no unmasked negative */
        if (coef) for (int64_t k = 0; k <= T; ++k) coef[k] = 0.0f;
        if (lse_out) *lse_out = 0.0f;
        return 0.0;
    }
    double s = 0.0;
    for (int64_t k = 1; k <= T; ++k)
        if (items[k] >= 0) s += exp((double)(ZC(k) - m));
    const float S = m + (float)log(s);
    const float w = 1.0f - 1.0f / (1.0f + expf(S - z[0])); /* 1 − e^{z_p}/(e^{z_p} + e^S) */
    if (lse_out) *lse_out = S;
    if (coef) {
        coef[0] = -w * phi_of(j, z[0]);
        for (int64_t k = 1; k <= T; ++k)
            coef[k] = items[k] >= 0 ? w * expf(ZC(k) - S) * phi_of(j, z[k]) : 0.0f;
    }
#undef ZC
    return (double)w * ((double)S - (double)z[0]);
}

/* One row: candidates into items[0..K] (items[0] = positive, −1 = masked) and logits z[0..K];
 * returns the row loss (unweighted) and, for SAMPLED_CE, *lse. When `coef` is non-NULL it also
 * receives dℓ/d(h·e+b) per candidate (0 for masked ones). */
static double row_pass(const sjob *j, int64_t row, int64_t *items, float *z, float *coef,
                       float *lse_out)
{
    const xcat_loss_desc *d = &j->plan->desc;
    const int64_t y = target_of(j, row), K = j->k;
    xr_perm perm, *pp = NULL;
    if (d->flags & XCAT_LOSS_DISTINCT_NEGATIVES) {
        perm = xr_perm_make(d->seed, j->call->step, (xr_u32)row, (xr_u32)(j->c - 1));
        pp = &perm;
    }
    items[0] = y;
    z[0] = logit_of(j, row, y);
    /* Draw first, then gather: the rows are random lines of E, so the loop is bound by memory
     * latency; knowing every item up front lets the ISA kernel prefetch rows ahead. */
    for (int64_t k = 0; k < K; ++k) items[k + 1] = negative(j, row, y, k, pp);
    const bool shared = j->nsh > 0 && d->sampler == XCAT_SAMPLER_GIVEN_SHARED;
    for (int64_t k = 0; k < K && shared; ++k)
        z[k + 1] = items[k + 1] >= 0 ? shared_logit(j, row, k, items[k + 1]) : 0.0f;
    if (!shared) {
        j->kern->gather_dots(j->H + row * j->ldh, j->E, j->lde, items + 1, K, j->d, z + 1);
        for (int64_t k = 1; k <= K; ++k)
            z[k] = items[k] >= 0 ? logit_finish(j, z[k], items[k]) : 0.0f;
    }
    if (d->kind == XCAT_LOSS_INBATCH) return inbatch_pass(j, row, items, z, coef, lse_out);
    if (d->kind == XCAT_LOSS_SAMPLED_CE) {
        /* corrected negative logits, kept in coef's room when there is one */
        float m = z[0];
        for (int64_t k = 1; k <= K; ++k)
            if (items[k] >= 0) {
                const float zc = z[k] - corr_of(j, items[k]);
                if (zc > m) m = zc;
            }
        double s = exp((double)(z[0] - m));
        for (int64_t k = 1; k <= K; ++k)
            if (items[k] >= 0) s += exp((double)(z[k] - corr_of(j, items[k]) - m));
        const float lse = m + (float)log(s);
        if (lse_out) *lse_out = lse;
        if (coef) {
            coef[0] = (expf(z[0] - lse) - 1.0f) * phi_of(j, z[0]);
            for (int64_t k = 1; k <= K; ++k)
                coef[k] = items[k] >= 0
                              ? expf(z[k] - corr_of(j, items[k]) - lse) * phi_of(j, z[k])
                              : 0.0f;
        }
        return (double)lse - (double)z[0];
    }
    /* BCE / GBCE: −[β·log σ(z⁺) + Σ log(1 − σ(z_k))] / (K + 1) */
    const float inv = 1.0f / (float)(K + 1);
    double l = (double)j->beta * softplus(-z[0]);
    for (int64_t k = 1; k <= K; ++k)
        if (items[k] >= 0) l += softplus(z[k]);
    if (coef) {
        coef[0] = -j->beta * (1.0f - sigmoid(z[0])) * inv * phi_of(j, z[0]);
        for (int64_t k = 1; k <= K; ++k)
            coef[k] = items[k] >= 0 ? sigmoid(z[k]) * inv * phi_of(j, z[k]) : 0.0f;
    }
    if (lse_out) *lse_out = 0.0f;
    return l * inv;
}

static void job_init(sjob *j, const xcat_loss_plan *plan, const xcat_loss_call *c)
{
    const xcat_loss_desc *d = &plan->desc;
    *j = (sjob){.plan = plan, .call = c, .H = c->hidden->data, .E = c->items->data,
                .b = c->bias ? c->bias->data : NULL,
                .w = c->row_weights ? c->row_weights->data : NULL,
                .ldh = c->hidden->stride, .lde = c->items->stride, .n = c->rows,
                .c = plan->classes, .d = plan->dim, .k = c->num_negatives,
                .y = c->targets->data, .y64 = c->targets->dtype == XCAT_DTYPE_I64,
                .scale = d->scale, .cap = d->softcap, .beta = 1.0f,
                .kern = xcat_row_kernels_get(plan->ctx->isa)};
    if (d->kind == XCAT_LOSS_SAMPLED_CE && d->correction == XCAT_CORRECTION_UNIFORM)
        j->corr = logf((float)j->k / (float)(j->c - 1));
    if (d->kind == XCAT_LOSS_SAMPLED_CE && d->correction == XCAT_CORRECTION_LOGQ) {
        j->logq_on = true;
        j->logk = logf((float)j->k);
        if (d->sampler != XCAT_SAMPLER_UNIFORM && plan->sampling) j->logq = plan->sampling->log_q;
    }
    j->kt = j->k;
    if (d->kind == XCAT_LOSS_INBATCH) {
        j->kt = j->k + j->n - 1;
        j->logk = j->k > 0 ? logf((float)j->k) : 0.0f;
        if (plan->sampling) {
            j->logQ = plan->sampling->log_q;
            if (d->sampler == XCAT_SAMPLER_POPULARITY) j->logq = plan->sampling->log_q;
        }
    }
    if (d->kind == XCAT_LOSS_GBCE) {
        const double alpha = (double)j->k / (double)(j->c - 1);
        j->beta = (float)(1.0 - d->gbce_t * (1.0 - alpha));
    }
}

/* Per-worker scratch: items (K+1 int64), z and coef (K+1 floats each). */
static size_t scratch_bytes(int64_t k)
{
    return ((size_t)(k + 1) * (8 + 4 + 4) + 63) / 64 * 64;
}

xcat_status xcat_cpu_sampled_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                            int64_t max_rows, int64_t classes, int64_t dim,
                                            size_t *bytes)
{
    /* Given negatives take K from the call: size for the largest K a row list may hold. */
    int64_t k = desc->num_negatives > 0 ? desc->num_negatives : 0;
    if (desc->kind == XCAT_LOSS_INBATCH) k += max_rows - 1; /* the batch's other positives */
    (void)classes;
    (void)dim;
    /* Shared candidates (GIVEN_SHARED, INBATCH) allocate their GEMM buffers per call:
     * E_s and its gradient (8·nsh·d bytes) and the chunk's Z and G (<= 2 × SHARED_Z_BYTES). */
    *bytes = (size_t)max_rows * sizeof(double) + (size_t)ctx->num_threads * scratch_bytes(k);
    return XCAT_OK;
}

xcat_status xcat_cpu_sampled_plan_init(xcat_loss_plan *plan)
{
    size_t bytes;
    xcat_status st = xcat_cpu_sampled_workspace_size(plan->ctx, &plan->desc, plan->max_rows,
                                                     plan->classes, plan->dim, &bytes);
    if (st) return st;
    plan->workspace = xcat_host_alloc(plan->ctx, bytes, 64);
    if (!plan->workspace)
        return xcat_error(plan->ctx, XCAT_ERROR_OUT_OF_MEMORY, "sampled-loss workspace (%zu "
                          "bytes)", bytes);
    plan->workspace_bytes = bytes;
    return XCAT_OK;
}

void xcat_cpu_sampled_plan_release(xcat_loss_plan *plan)
{
    xcat_host_free(plan->ctx, plan->workspace);
    plan->workspace = NULL;
}

/* Scratch for a call: the plan's, or (given negatives with a K beyond the plan's) a fresh one. */
static char *call_scratch(xcat_loss_plan *plan, int64_t k, bool *owned)
{
    const int threads = plan->ctx->num_threads;
    const size_t need = (size_t)plan->max_rows * sizeof(double) +
                        (size_t)threads * scratch_bytes(k);
    *owned = need > plan->workspace_bytes;
    return *owned ? xcat_host_alloc(plan->ctx, need, 64) : plan->workspace;
}

/* ---- shared candidates as GEMMs -------------------------------------------------------- */

#define SHARED_BLOCK 64                    /* rows per tile GEMM */

/* The call's shared columns (GIVEN_SHARED: the K given items; INBATCH: the n rows' positives,
 * −1 for ignored rows) and their rows of E gathered once; sets j->nsh (0: none). */
typedef struct shared_cols {
    int64_t *items;
    float *E;
} shared_cols;

static xcat_status shared_setup(sjob *j, xcat_context *ctx, shared_cols *sc)
{
    const xcat_loss_desc *d = &j->plan->desc;
    *sc = (shared_cols){0};
    j->nsh = d->sampler == XCAT_SAMPLER_GIVEN_SHARED ? j->k
             : d->kind == XCAT_LOSS_INBATCH          ? j->n
                                                     : 0;
    /* XCAT_CPU_SHARED_GATHER=1 (testing, benchmarks): gathered dot products instead */
    const char *v = ctx->ignore_env ? NULL : getenv("XCAT_CPU_SHARED_GATHER");
    if (v && v[0] == '1') j->nsh = 0;
    if (!j->nsh) return XCAT_OK;
    sc->items = xcat_host_alloc(ctx, (size_t)j->nsh * sizeof(int64_t), 64);
    sc->E = xcat_host_alloc(ctx, (size_t)(j->nsh * j->d) * sizeof(float), 64);
    if (!sc->items || !sc->E) {
        xcat_host_free(ctx, sc->items), xcat_host_free(ctx, sc->E);
        *sc = (shared_cols){0};
        return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "shared candidates (%lld rows)",
                          (long long)j->nsh);
    }
    for (int64_t c = 0; c < j->nsh; ++c) {
        int64_t it;
        if (d->sampler == XCAT_SAMPLER_GIVEN_SHARED) {
            const xcat_tensor *t = j->call->negatives;
            it = t->dtype == XCAT_DTYPE_I64 ? ((const int64_t *)t->data)[c]
                                            : ((const int32_t *)t->data)[c];
        } else {
            it = ignored(j, c) ? -1 : target_of(j, c);
        }
        sc->items[c] = it;
        float *dst = sc->E + c * j->d;
        if (it >= 0) memcpy(dst, j->E + it * j->lde, (size_t)j->d * sizeof(float));
        else memset(dst, 0, (size_t)j->d * sizeof(float));
    }
    j->sh_items = sc->items;
    j->Esh = sc->E;
    return XCAT_OK;
}

static void shared_free(xcat_context *ctx, shared_cols *sc)
{
    xcat_host_free(ctx, sc->items);
    xcat_host_free(ctx, sc->E);
}

/* Rows per chunk so that the chunk's nsh-wide dots fit SHARED_Z_BYTES. */
static int64_t shared_chunk_rows(const sjob *j)
{
    if (!j->nsh) return j->n;
    int64_t r = SHARED_Z_BYTES / (4 * j->nsh);
    if (r < 1) r = 1;
    return r < j->n ? r : j->n;
}

/* Z rows [0, nr) = H[r0 .. r0+nr) · E_sharedᵀ, by the team (inside a parallel region). */
static void shared_dots(const sjob *j, float *Z, int64_t r0, int64_t nr)
{
#pragma omp for schedule(static)
    for (int64_t b = 0; b < nr; b += SHARED_BLOCK) {
        const int64_t m = nr - b < SHARED_BLOCK ? nr - b : SHARED_BLOCK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)j->nsh, (int)j->d,
                    1.0f, j->H + (r0 + b) * j->ldh, (int)j->ldh, j->Esh, (int)j->d, 0.0f,
                    Z + b * j->nsh, (int)j->nsh);
    }
}

/* Shared column of candidate t of `row`, or −1 when t is not a shared candidate. */
static int64_t shared_col(const sjob *j, int64_t row, int64_t t)
{
    if (!j->nsh || t == 0) return -1;
    if (j->plan->desc.sampler == XCAT_SAMPLER_GIVEN_SHARED) return t <= j->k ? t - 1 : -1;
    if (t <= j->k) return -1; /* INBATCH extras are drawn per row */
    const int64_t r = t - j->k - 1;
    return r < row ? r : r + 1;
}

xcat_status xcat_cpu_sampled_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                     xcat_tensor *loss, xcat_tensor *lse)
{
    xcat_context *ctx = plan->ctx;
    sjob j;
    job_init(&j, plan, call);
    shared_cols sc;
    xcat_status st = shared_setup(&j, ctx, &sc);
    if (st) return st;
    bool owned;
    char *ws = call_scratch(plan, j.kt, &owned);
    const int64_t rc = shared_chunk_rows(&j);
    float *Z = j.nsh ? xcat_host_alloc(ctx, (size_t)(rc * j.nsh) * sizeof(float), 64) : NULL;
    if (!ws || (j.nsh && !Z)) {
        if (owned) xcat_host_free(ctx, ws);
        xcat_host_free(ctx, Z);
        shared_free(ctx, &sc);
        return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "sampled-loss scratch");
    }
    j.Z = Z;
    double *rowloss = (double *)ws;
    char *scr = ws + (size_t)plan->max_rows * sizeof(double);
    const size_t sb = scratch_bytes(j.kt);
    float *lse_out = lse ? lse->data : NULL;
    const int saved = blas_pin_begin();
    for (int64_t r0 = 0; r0 < j.n; r0 += rc) {
        const int64_t nr = j.n - r0 < rc ? j.n - r0 : rc;
        j.z0 = r0;
#pragma omp parallel num_threads(ctx->num_threads)
        {
            blas_single_threaded();
            if (j.nsh) shared_dots(&j, Z, r0, nr);
            char *mine = scr + sb * (size_t)omp_get_thread_num();
            int64_t *items = (int64_t *)mine;
            float *z = (float *)(items + j.kt + 1);
#pragma omp for schedule(dynamic, 16)
            for (int64_t i = r0; i < r0 + nr; ++i) {
                if (ignored(&j, i)) {
                    rowloss[i] = 0.0;
                    if (lse_out) lse_out[i] = 0.0f;
                    continue;
                }
                float l;
                const double v = row_pass(&j, i, items, z, NULL, &l);
                rowloss[i] = v * (j.w ? (double)j.w[i] : 1.0);
                if (lse_out) lse_out[i] = l;
            }
        }
    }
    blas_pin_end(saved);
    float *out = loss->data;
    if (plan->desc.reduction == XCAT_REDUCTION_NONE) {
        for (int64_t i = 0; i < j.n; ++i) out[i] = (float)rowloss[i];
    } else {
        double sum = 0.0; /* fixed order: deterministic */
        for (int64_t i = 0; i < j.n; ++i) sum += rowloss[i];
        out[0] = (float)(sum * call->reduction_scale);
    }
    if (owned) xcat_host_free(ctx, ws);
    xcat_host_free(ctx, Z);
    shared_free(ctx, &sc);
    return XCAT_OK;
}

xcat_status xcat_cpu_sampled_backward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                      bool reuse, const xcat_tensor *grad_loss,
                                      xcat_tensor *d_hidden, xcat_tensor *d_items,
                                      xcat_tensor *d_bias)
{
    (void)reuse; /* every pass redraws and recomputes its K+1 logits: nothing to reuse */
    xcat_context *ctx = plan->ctx;
    sjob j;
    job_init(&j, plan, call);
    shared_cols sc;
    xcat_status st = shared_setup(&j, ctx, &sc);
    if (st) return st;
    const int threads = ctx->num_threads;
    const int64_t per_row = j.kt + 1, nsh = j.nsh;
    int64_t chunk_rows = CHUNK_ENTRIES / per_row;
    if (chunk_rows < 1) chunk_rows = 1;
    if (chunk_rows > shared_chunk_rows(&j)) chunk_rows = shared_chunk_rows(&j);
    bool owned;
    char *ws = call_scratch(plan, j.kt, &owned);
    const size_t list_bytes = (size_t)(chunk_rows * per_row) * (sizeof(int32_t) + sizeof(float));
    char *list = xcat_host_alloc(ctx, list_bytes, 64);
    /* shared columns: the chunk's dots Z and coefficients G (chunk_rows × nsh each), and the
     * gradient of the gathered rows dEsh (nsh × d) and of their biases (nsh) */
    const size_t zg = (size_t)(chunk_rows * nsh), esz = (size_t)(nsh * j.d);
    float *shbuf = nsh ? xcat_host_alloc(ctx, (2 * zg + esz + (size_t)nsh) * sizeof(float), 64)
                       : NULL;
    if (!ws || !list || (nsh && !shbuf)) {
        if (owned) xcat_host_free(ctx, ws);
        xcat_host_free(ctx, list);
        xcat_host_free(ctx, shbuf);
        shared_free(ctx, &sc);
        return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "sampled-loss backward buffers");
    }
    float *Z = shbuf, *G = nsh ? shbuf + zg : NULL, *dEsh = nsh ? shbuf + 2 * zg : NULL;
    float *dbsh = nsh ? dEsh + esz : NULL;
    if (nsh) memset(dEsh, 0, (esz + (size_t)nsh) * sizeof(float));
    j.Z = Z;
    float *g = (float *)ws; /* the row-loss doubles' room holds the per-row factors */
    char *scr = ws + (size_t)plan->max_rows * sizeof(double);
    const size_t sb = scratch_bytes(j.kt);
    int32_t *li = (int32_t *)list;
    float *lc = (float *)(li + chunk_rows * per_row);
    const float *gd = grad_loss ? grad_loss->data : NULL;
    const bool none = plan->desc.reduction == XCAT_REDUCTION_NONE;
    for (int64_t i = 0; i < j.n; ++i) {
        double v = ignored(&j, i) ? 0.0 : call->reduction_scale * (j.w ? (double)j.w[i] : 1.0);
        if (gd) v *= none ? (double)gd[i] : (double)gd[0];
        g[i] = (float)v;
    }
    float *dE = d_items ? d_items->data : NULL, *db = d_bias ? d_bias->data : NULL;
    const int64_t lde_out = d_items ? d_items->stride : 0;
    if (dE)
        for (int64_t r = 0; r < j.c; ++r) memset(dE + r * lde_out, 0, (size_t)j.d * sizeof(float));
    if (db) memset(db, 0, (size_t)j.c * sizeof(float));
    const int saved = blas_pin_begin();
    for (int64_t r0 = 0; r0 < j.n; r0 += chunk_rows) {
        const int64_t nr = j.n - r0 < chunk_rows ? j.n - r0 : chunk_rows;
        j.z0 = r0;
#pragma omp parallel num_threads(threads)
        {
            blas_single_threaded();
            if (nsh) shared_dots(&j, Z, r0, nr);
            char *mine = scr + sb * (size_t)omp_get_thread_num();
            int64_t *items = (int64_t *)mine;
            float *z = (float *)(items + per_row), *coef = z + per_row;
#pragma omp for schedule(dynamic, 16)
            for (int64_t r = 0; r < nr; ++r) {
                const int64_t i = r0 + r;
                int32_t *ri = li + r * per_row;
                float *rc = lc + r * per_row;
                float *gr = nsh ? G + r * nsh : NULL;
                float *dh = d_hidden ? (float *)d_hidden->data + i * d_hidden->stride : NULL;
                if (dh) memset(dh, 0, (size_t)j.d * sizeof(float));
                if (gr) memset(gr, 0, (size_t)nsh * sizeof(float));
                if (g[i] == 0.0f) {
                    for (int64_t k = 0; k < per_row; ++k) ri[k] = -1;
                    continue;
                }
                row_pass(&j, i, items, z, coef, NULL);
                for (int64_t k = 0; k < per_row; ++k) {
                    const float cf = coef[k] * g[i];
                    const int64_t col = shared_col(&j, i, k);
                    if (col >= 0) { /* a shared candidate: its gradients come from GEMMs */
                        gr[col] = items[k] >= 0 ? cf : 0.0f;
                        ri[k] = -1;
                        continue;
                    }
                    ri[k] = items[k] >= 0 && cf != 0.0f ? (int32_t)items[k] : -1;
                    rc[k] = cf;
                }
                /* the same rows as the logits pass, again in random order */
                if (dh) j.kern->gather_axpy(dh, rc, j.E, j.lde, ri, per_row, j.d);
            }
            if (nsh && d_hidden) { /* dH += G · E_shared, row blocks */
#pragma omp for schedule(static)
                for (int64_t b = 0; b < nr; b += SHARED_BLOCK) {
                    const int64_t m = nr - b < SHARED_BLOCK ? nr - b : SHARED_BLOCK;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)j.d,
                                (int)nsh, 1.0f, G + b * nsh, (int)nsh, j.Esh, (int)j.d, 1.0f,
                                (float *)d_hidden->data + (r0 + b) * d_hidden->stride,
                                (int)d_hidden->stride);
                }
            }
            if (nsh && (dE || db)) {
                /* dE_shared += Gᵀ · H_chunk: worker t owns a slice of the shared columns, each
                 * column summed over the chunk's rows in one GEMM, chunks in order */
                const int t = omp_get_thread_num(), nt = omp_get_num_threads();
                const int64_t s0 = nsh * t / nt, s1 = nsh * (t + 1) / nt;
                if (dE && s1 > s0)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(s1 - s0),
                                (int)j.d, (int)nr, 1.0f, G + s0, (int)nsh, j.H + r0 * j.ldh,
                                (int)j.ldh, 1.0f, dEsh + s0 * j.d, (int)j.d);
                for (int64_t c = s0; db && c < s1; ++c)
                    for (int64_t r = 0; r < nr; ++r) dbsh[c] += G[r * nsh + c];
            }
            if (dE || db) {
                /* Phase B: worker t owns items [lo, hi) and adds them in (row, k) order. */
#pragma omp barrier
                const int t = omp_get_thread_num(), nt = omp_get_num_threads();
                const int64_t lo = j.c * t / nt, hi = j.c * (t + 1) / nt;
                for (int64_t r = 0; r < nr; ++r) {
                    const float *h = j.H + (r0 + r) * j.ldh;
                    for (int64_t k = 0; k < per_row; ++k) {
                        const int64_t it = li[r * per_row + k];
                        if (it < lo || it >= hi) continue;
                        const float cf = lc[r * per_row + k];
                        if (db) db[it] += cf;
                        if (dE) {
                            float *de = dE + it * lde_out;
                            for (int64_t u = 0; u < j.d; ++u) de[u] += cf * h[u];
                        }
                    }
                }
            }
        }
    }
    blas_pin_end(saved);
    /* the shared columns' gradients into their items, in column order (repeats add up) */
    for (int64_t c = 0; c < nsh; ++c) {
        const int64_t it = sc.items[c];
        if (it < 0) continue;
        if (db) db[it] += dbsh[c];
        if (dE) {
            float *de = dE + it * lde_out;
            const float *src = dEsh + c * j.d;
            for (int64_t u = 0; u < j.d; ++u) de[u] += src[u];
        }
    }
    xcat_host_free(ctx, list);
    xcat_host_free(ctx, shbuf);
    if (owned) xcat_host_free(ctx, ws);
    shared_free(ctx, &sc);
    return XCAT_OK;
}

xcat_status xcat_cpu_sampled_draw_negatives(xcat_loss_plan *plan, const xcat_loss_call *call,
                                            xcat_tensor *out)
{
    sjob j;
    job_init(&j, plan, call);
    const bool i64 = out->dtype == XCAT_DTYPE_I64;
    for (int64_t i = 0; i < j.n; ++i) {
        const int64_t y = target_of(&j, i);
        xr_perm perm, *pp = NULL;
        if (plan->desc.flags & XCAT_LOSS_DISTINCT_NEGATIVES) {
            perm = xr_perm_make(plan->desc.seed, call->step, (xr_u32)i, (xr_u32)(j.c - 1));
            pp = &perm;
        }
        for (int64_t k = 0; k < j.k; ++k) {
            /* an ignored row's target may be anything: it masks nothing */
            const int64_t v = negative(&j, i, ignored(&j, i) ? -2 : y, k, pp);
            if (i64)
                ((int64_t *)out->data)[i * out->stride + k] = v;
            else
                ((int32_t *)out->data)[i * out->stride + k] = (int32_t)v;
        }
    }
    return XCAT_OK;
}
