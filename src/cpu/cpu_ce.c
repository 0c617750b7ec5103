/* cpu_ce.c — full-softmax cross-entropy on the CPU, tiled so that no N×C buffer exists.
 *
 * Work is "GEMM tile + row epilogue": OpenBLAS computes a tile of raw dot products
 * (Nb rows × Cc items), a per-ISA row kernel (simd/) turns it into logits / softmax weights /
 * gradients in place, and a second GEMM folds the tile into an accumulator.
 *
 * Two passes in all, 8·N·C·d flops for forward + backward, both deterministic whatever the
 * thread count because each output element is owned by exactly one task and summed in a fixed
 * order:
 *
 *  1. Forward, parallel over row blocks (a row block owns its rows). Online max / sum-of-exp per
 *     row gives LSE; for training it also accumulates, flash-attention style with rescaling,
 *     A_i = Σ_j exp(z_ij − m_i)·φ_ij·e_j, from which the row's unscaled gradient
 *     ∂ℓ_i/∂h_i = (1+2λ·LSE_i)·A_i/l_i − (1−ε)·φ_iy·e_y − (ε/C)·Σ_j φ_ij·e_j is formed at the end
 *     of the row and kept in the workspace (N×d). dH in backward is then just a per-row scale.
 *  2. Backward, parallel over item chunks (a chunk owns its rows of dE and entries of db): it
 *     recomputes the logit tile of every row block in row order, forms
 *     G_ij = g_i·∂ℓ_i/∂z_ij·φ_ij and adds Gᵀ·H_block into dE_chunk.
 *
 * The alternative — forward computes only LSE and backward recomputes the tile twice (once for
 * dH by rows, once for dE by items) — costs 10·N·C·d; per-thread dE copies would cost T·C·d
 * memory and make results depend on the thread count.
 *
 * Loss-only plans (FORWARD_ONLY, no label smoothing) on a SIMD level skip the tile instead:
 * run_forward_fused keeps the logit tile in registers (simd/ fused_lse).
 *
 * OpenBLAS is called from inside the OpenMP workers: the OpenMP build of OpenBLAS then runs
 * single-threaded, which is what we want (see cmake/FindXcatBlas.cmake).
 */
#include <math.h>
#include <omp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "baseline_guard.h"
#include "cpu_blas.h"
#include "cpu_ce.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

/* ---- workspace layout --------------------------------------------------------------------- */

static int64_t env_tile(const xcat_context *ctx, const char *name, int64_t fallback)
{
    if (ctx->ignore_env) return fallback;
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    long long t = atoll(v);
    return (t >= 1 && t <= (1 << 20)) ? (int64_t)t : fallback;
}

/* Per-thread scratch, in floats, for a tile of nb × nc (see run_row_block). */
static size_t scratch_floats(int64_t nb, int64_t nc, int64_t d, bool need_phi)
{
    size_t tile = ALIGN_UP((size_t)(nb * nc), 16);
    size_t rows = ALIGN_UP((size_t)nb, 16);
    size_t f = tile               /* logit tile S */
               + 2 * rows * 2     /* l, zsum (double) */
               + 2 * rows;        /* m, z_target */
    if (need_phi) f += tile + ALIGN_UP((size_t)(nb * d), 16); /* Φ tile and B accumulator */
    return f;
}

xcat_status xcat_cpu_ce_layout(const xcat_context *ctx, const xcat_loss_desc *desc,
                               int64_t max_rows, int64_t classes, int64_t dim,
                               xcat_cpu_ce_plan *p, size_t *bytes)
{
    memset(p, 0, sizeof *p);
    /* Default tiles: a 128 × 512 logit tile (256 KiB) plus the operand panels stays in a
     * 1 MiB L2; measured on the 2-core EPYC (docs/benchmarks.md). Overridable. */
    p->tile_rows = env_tile(ctx, "XCAT_CPU_TILE_ROWS", 128);
    p->tile_items = env_tile(ctx, "XCAT_CPU_TILE_ITEMS", 512);
    if (p->tile_rows > max_rows) p->tile_rows = max_rows;
    if (p->tile_items > classes) p->tile_items = classes;
    p->threads = ctx->num_threads;
    p->need_phi = desc->softcap > 0.0f && desc->label_smoothing > 0.0f;
    p->k = xcat_row_kernels_get(ctx->isa);
    /* Fused forward for loss-only plans without label smoothing (its Σ_j z_j is not formed
     * there), on the SIMD levels (faster than the BLAS tiles on AVX2 and AVX-512 at d = 64 …
     * 256, docs/benchmarks.md), and only at the CPU's own best level: below it (a cap)
     * OpenBLAS still runs the CPU's best code and its tiles win (16-core Xeon capped at AVX2:
     * 188 vs 258 ms at d = 64). Each thread packs chunks of ~128 KiB of items into its
     * scratch; the rows' running max / sum live in plan-wide arrays. XCAT_CPU_FUSED=0 keeps
     * the BLAS tiles, =1 fuses wherever a kernel exists. */
    const char *fused_env = ctx->ignore_env ? NULL : getenv("XCAT_CPU_FUSED");
    const bool fused_on = fused_env && fused_env[0] == '1',
               fused_off = fused_env && fused_env[0] == '0';
    p->fused = (desc->flags & XCAT_LOSS_FORWARD_ONLY) && p->k->fused_lse &&
               !(desc->label_smoothing > 0.0f) && !fused_off &&
               (fused_on || ctx->isa == xcat_cpu_isa_detect());
    if (p->fused) {
        const int64_t nr = p->k->fused_nr;
        int64_t items = (int64_t)32768 / (dim > 0 ? dim : 1);
        if (items < nr) items = nr;
        if (items > 1024) items = 1024;
        items = ALIGN_UP(items, nr);
        p->fused_items = items < ALIGN_UP(classes, nr) ? items : ALIGN_UP(classes, nr);
    }

    const size_t n = (size_t)max_rows, d = (size_t)dim;
    size_t off = 0;
    p->off_lse = off;
    off += ALIGN_UP(n * sizeof(float), 64);
    p->off_rowloss = off;
    off += ALIGN_UP(n * sizeof(double), 64);
    p->off_colsum = off; /* d floats, then d doubles */
    off += ALIGN_UP(d * sizeof(float), 64) + ALIGN_UP(d * sizeof(double), 64);
    p->off_rowgrad = off;
    if (!(desc->flags & XCAT_LOSS_FORWARD_ONLY)) off += ALIGN_UP(n * d * sizeof(float), 64);
    if (p->fused) { /* per active row: its index, running max and sum */
        p->off_fused_rows = off;
        off += ALIGN_UP(n * (sizeof(int64_t) + sizeof(float) + sizeof(double)), 64);
    }
    size_t sf = scratch_floats(p->tile_rows, p->tile_items, dim, p->need_phi);
    if (p->fused && (size_t)(p->fused_items * dim) > sf) /* a thread's packed chunk */
        sf = (size_t)(p->fused_items * dim);
    p->scratch_bytes = ALIGN_UP(sf * sizeof(float), 64);
    p->off_scratch = off;
    size_t total;
    if (!xcat_mul_size(p->scratch_bytes, (size_t)p->threads, &total) ||
        !xcat_add_size(total, off, &total))
        return xcat_error((xcat_context *)ctx, XCAT_ERROR_SIZE_OVERFLOW,
                          "workspace size overflows");
    *bytes = total;
    return XCAT_OK;
}

/* ---- shared per-call values --------------------------------------------------------------- */

typedef struct ce_job {
    const xcat_cpu_ce_plan *p;
    const xcat_row_kernels *k;
    const float *H, *E, *b, *w;
    const void *y;
    bool y64;
    int64_t ldh, lde, N, C, d;
    int64_t ignore;
    float s, cap, eps, lambda;
    char *ws;
    float *lse;    /* N */
    double *rowloss; /* N: w_i·ℓ_i (0 for ignored rows) */
    float *colsum; /* d: s·Σ_j e_j (label smoothing without softcap) */
    double *colsum_acc; /* d */
    float *A;      /* N×d accumulator → unscaled row gradient, or NULL (loss only) */
    int64_t lda;
} ce_job;

static inline int64_t target_of(const ce_job *j, int64_t i)
{
    return j->y64 ? ((const int64_t *)j->y)[i] : (int64_t)((const int32_t *)j->y)[i];
}

static inline bool row_ignored(const ce_job *j, int64_t i)
{
    return target_of(j, i) == j->ignore;
}

static inline float phi_scalar(float z, float s, float cap)
{
    if (cap > 0.0f) {
        float t = z / cap;
        return s * (1.0f - t * t);
    }
    return s;
}

static inline float logit_scalar(float x, float s, float cap)
{
    float r = s * x;
    return cap > 0.0f ? cap * tanhf(r / cap) : r;
}

static void job_init(ce_job *j, xcat_loss_plan *plan, const xcat_loss_call *call)
{
    const xcat_cpu_ce_plan *p = plan->backend_plan;
    const xcat_loss_desc *dsc = &plan->desc;
    char *ws = plan->workspace;
    *j = (ce_job){
        .p = p, .k = p->k,
        .H = call->hidden->data, .ldh = call->hidden->stride,
        .E = call->items->data, .lde = call->items->stride,
        .b = call->bias ? call->bias->data : NULL,
        .w = call->row_weights ? call->row_weights->data : NULL,
        .y = call->targets->data, .y64 = call->targets->dtype == XCAT_DTYPE_I64,
        .N = call->rows, .C = plan->classes, .d = plan->dim,
        .ignore = dsc->ignore_index,
        .s = dsc->scale, .cap = dsc->softcap, .eps = dsc->label_smoothing, .lambda = dsc->z_loss,
        .ws = ws,
        .lse = (float *)(ws + p->off_lse),
        .rowloss = (double *)(ws + p->off_rowloss),
        .colsum = (float *)(ws + p->off_colsum),
        .colsum_acc = (double *)(ws + p->off_colsum + ALIGN_UP((size_t)plan->dim * 4, 64)),
    };
}

/* ---- pass 1: forward over row blocks -------------------------------------------------------- */

typedef struct row_scratch {
    float *S, *Phi, *B, *m, *zy;
    double *l, *zs;
} row_scratch;

static row_scratch scratch_for(const ce_job *j, int tid)
{
    const xcat_cpu_ce_plan *p = j->p;
    float *f = (float *)(j->ws + p->off_scratch + (size_t)tid * p->scratch_bytes);
    size_t tile = ALIGN_UP((size_t)(p->tile_rows * p->tile_items), 16);
    size_t rows = ALIGN_UP((size_t)p->tile_rows, 16);
    row_scratch r;
    r.S = f;
    f += tile;
    r.l = (double *)f;
    f += 2 * rows;
    r.zs = (double *)f;
    f += 2 * rows;
    r.m = f;
    f += rows;
    r.zy = f;
    f += rows;
    r.Phi = r.B = NULL;
    if (p->need_phi) {
        r.Phi = f;
        f += tile;
        r.B = f;
    }
    return r;
}

/* Rescale a row of the accumulator by alpha (the running max moved). */
static void scale_row(float *a, int64_t d, float alpha)
{
    for (int64_t t = 0; t < d; t++) a[t] *= alpha;
}

/* One item chunk [c0, c0+nc) against one row block [r0, r0+nb). */
static void forward_chunk(const ce_job *j, row_scratch *r, int64_t r0, int64_t nb, int64_t c0,
                          int64_t nc)
{
    const int64_t ldS = j->p->tile_items, d = j->d;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nc, (int)d, 1.0f,
                j->H + r0 * j->ldh, (int)j->ldh, j->E + c0 * j->lde, (int)j->lde, 0.0f, r->S,
                (int)ldS);
    const float *bc = j->b ? j->b + c0 : NULL;
    for (int64_t i = 0; i < nb; i++) {
        float *row = r->S + i * ldS;
        if (row_ignored(j, r0 + i)) {
            if (j->A) memset(row, 0, (size_t)nc * sizeof(float));
            if (r->Phi) memset(r->Phi + i * ldS, 0, (size_t)nc * sizeof(float));
            continue;
        }
        float mx = j->k->logits(row, bc, nc, j->s, j->cap, &r->zs[i]);
        int64_t y = target_of(j, r0 + i);
        if (y >= c0 && y < c0 + nc) r->zy[i] = row[y - c0];
        float m_new = fmaxf(r->m[i], mx);
        double alpha = r->m[i] == -INFINITY ? 0.0 : exp((double)r->m[i] - (double)m_new);
        float *phi = r->Phi ? r->Phi + i * ldS : NULL;
        r->l[i] = r->l[i] * alpha + (double)j->k->softmax_weights(row, nc, m_new, j->s, j->cap, phi);
        if (j->A && alpha != 1.0) scale_row(j->A + (r0 + i) * j->lda, d, (float)alpha);
        r->m[i] = m_new;
    }
    if (j->A)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)d, (int)nc, 1.0f,
                    r->S, (int)ldS, j->E + c0 * j->lde, (int)j->lde, 1.0f, j->A + r0 * j->lda,
                    (int)j->lda);
    if (r->Phi)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)d, (int)nc, 1.0f,
                    r->Phi, (int)ldS, j->E + c0 * j->lde, (int)j->lde, 1.0f, r->B, (int)d);
}

/* End of a row: LSE, the weighted loss, and the unscaled gradient row. */
static void finish_row(const ce_job *j, row_scratch *r, int64_t r0, int64_t i)
{
    const int64_t gi = r0 + i, d = j->d;
    float *a = j->A ? j->A + gi * j->lda : NULL;
    if (row_ignored(j, gi)) {
        j->lse[gi] = 0.0f;
        j->rowloss[gi] = 0.0;
        if (a) memset(a, 0, (size_t)d * sizeof(float));
        return;
    }
    const double lse = (double)r->m[i] + log(r->l[i]);
    const double zy = r->zy[i], C = (double)j->C, eps = j->eps, lam = j->lambda;
    double loss = lse - (1.0 - eps) * zy - (eps / C) * r->zs[i] + lam * lse * lse;
    j->lse[gi] = (float)lse;
    j->rowloss[gi] = (j->w ? (double)j->w[gi] : 1.0) * loss;
    if (!a) return;
    const float ca = (float)((1.0 + 2.0 * lam * lse) / r->l[i]);
    const float cy = (float)(1.0 - eps) * phi_scalar((float)zy, j->s, j->cap);
    const float ce = (float)(eps / C);
    const float *ey = j->E + target_of(j, gi) * j->lde;
    const float *bsum = r->B ? r->B + i * d : j->colsum;
    for (int64_t t = 0; t < d; t++) {
        float v = ca * a[t] - cy * ey[t];
        if (eps > 0.0) v -= ce * bsum[t];
        a[t] = v;
    }
}

static void forward_row_block(const ce_job *j, row_scratch *r, int64_t r0, int64_t nb)
{
    const int64_t Cc = j->p->tile_items, d = j->d;
    for (int64_t i = 0; i < nb; i++) {
        r->m[i] = -INFINITY;
        r->l[i] = 0.0;
        r->zs[i] = 0.0;
        r->zy[i] = 0.0f;
        if (j->A) memset(j->A + (r0 + i) * j->lda, 0, (size_t)d * sizeof(float));
    }
    if (r->B) memset(r->B, 0, (size_t)(nb * d) * sizeof(float));
    for (int64_t c0 = 0; c0 < j->C; c0 += Cc)
        forward_chunk(j, r, r0, nb, c0, j->C - c0 < Cc ? j->C - c0 : Cc);
    for (int64_t i = 0; i < nb; i++) finish_row(j, r, r0, i);
}

/* Loss only, fused (see the plan's `fused`): the active rows in blocks, one block per task;
 * a task packs each chunk of items into its thread's scratch and runs the block's rows
 * fused_mr (6 or 12) at a time against it (simd/ fused_lse: the logit tile lives in registers). No barrier inside:
 * a version that packed each chunk once for all threads (two barriers per chunk) ran 15-25 %
 * slower at d = 256 on the 2-vCPU VM, where a preempted vCPU stalls every barrier. Each row's
 * arithmetic is the same whatever the blocking and thread count (rows are independent, chunks
 * come in a fixed order). */
static void run_forward_fused(const ce_job *j)
{
    const xcat_cpu_ce_plan *p = j->p;
    const xcat_row_kernels *k = j->k;
    const int64_t d = j->d, Cc = p->fused_items, N = j->N;
    const int T = p->threads;
    int64_t *rows = (int64_t *)(j->ws + p->off_fused_rows);
    double *cl = (double *)(rows + N);
    float *cm = (float *)(cl + N);
    int64_t na = 0;
    for (int64_t i = 0; i < N; i++)
        if (!row_ignored(j, i)) rows[na++] = i;
    /* Blocks of at most 1,020 rows (packing then costs < 0.2 % of the FMAs), as many as a
     * multiple of the thread count so that every thread gets the same share. */
    const int64_t mr = k->fused_mr;
    int64_t blocks = (na + 1019) / 1020;
    blocks = (blocks + T - 1) / T * T;
    const int64_t nb = blocks > 0 ? ALIGN_UP((na + blocks - 1) / blocks, mr) : mr;
    blocks = (na + nb - 1) / nb;
#pragma omp parallel num_threads(T)
    {
        float *P = (float *)(j->ws + p->off_scratch + (size_t)omp_get_thread_num() *
                                                          p->scratch_bytes);
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < blocks; blk++) {
            const int64_t b0 = blk * nb, b1 = na - b0 < nb ? na : b0 + nb;
            for (int64_t a = b0; a < b1; a++) {
                cm[a] = -INFINITY;
                cl[a] = 0.0;
            }
            for (int64_t c0 = 0; c0 < j->C; c0 += Cc) {
                const int64_t nc = j->C - c0 < Cc ? j->C - c0 : Cc;
                k->pack_items(j->E + c0 * j->lde, j->lde, nc, d, P);
                for (int64_t a0 = b0; a0 < b1; a0 += mr) {
                    const int nr = b1 - a0 < mr ? (int)(b1 - a0) : (int)mr;
                    const float *hp[12];
                    for (int q = 0; q < nr; q++) hp[q] = j->H + rows[a0 + q] * j->ldh;
                    k->fused_lse(hp, nr, P, nc, d, j->b ? j->b + c0 : NULL, j->s, j->cap,
                                 cm + a0, cl + a0);
                }
            }
        }
#pragma omp for schedule(static)
        for (int64_t a = 0; a < na; a++) {
            /* The target's logit from its own dot product. */
            const int64_t gi = rows[a], y = target_of(j, gi);
            const float *h = j->H + gi * j->ldh, *e = j->E + y * j->lde;
            float x = 0.0f;
            for (int64_t t = 0; t < d; t++) x = fmaf(h[t], e[t], x);
            if (j->b) x += j->b[y];
            float m = cm[a], zy = logit_scalar(x, j->s, j->cap);
            double l = cl[a], zs = 0.0;
            row_scratch r = {.m = &m, .l = &l, .zs = &zs, .zy = &zy};
            finish_row(j, &r, gi, 0);
        }
    }
    for (int64_t i = 0; i < N; i++) /* ignored rows: LSE and loss 0 */
        if (row_ignored(j, i)) {
            j->lse[i] = 0.0f;
            j->rowloss[i] = 0.0;
        }
}

/* s·Σ_j e_j, the label-smoothing term's Σ_j φ_ij·e_j when φ is the constant s (summed in
 * double in item order). */
static void compute_colsum(const ce_job *j)
{
    for (int64_t t = 0; t < j->d; t++) j->colsum[t] = 0.0f;
    if (!(j->eps > 0.0f) || j->p->need_phi || !j->A) return;
    double *acc = j->colsum_acc;
    for (int64_t t = 0; t < j->d; t++) acc[t] = 0.0;
    for (int64_t c = 0; c < j->C; c++)
        for (int64_t t = 0; t < j->d; t++) acc[t] += j->E[c * j->lde + t];
    for (int64_t t = 0; t < j->d; t++) j->colsum[t] = (float)(j->s * acc[t]);
}

static void run_forward(const ce_job *j)
{
    if (j->p->fused && !j->A) {
        run_forward_fused(j);
        return;
    }
    compute_colsum(j);
    const int64_t Nb = j->p->tile_rows, blocks = (j->N + Nb - 1) / Nb;
    const int pinned = blas_pin_begin();
#pragma omp parallel num_threads(j->p->threads)
    {
        blas_single_threaded();
        row_scratch r = scratch_for(j, omp_get_thread_num());
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < blocks; blk++) {
            int64_t r0 = blk * Nb;
            forward_row_block(j, &r, r0, j->N - r0 < Nb ? j->N - r0 : Nb);
        }
    }
    blas_pin_end(pinned);
}

/* BLAS takes int dimensions and strides; xcat's own offsets are 64-bit. */
static xcat_status check_blas_limits(xcat_loss_plan *plan, const xcat_loss_call *call,
                                     const xcat_tensor *d_hidden, const xcat_tensor *d_items)
{
    const xcat_tensor *t[] = {call->hidden, call->items, d_hidden, d_items};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i] && t[i]->stride > INT_MAX)
            return xcat_error(plan->ctx, XCAT_ERROR_UNSUPPORTED,
                              "row stride %lld exceeds the BLAS limit of %d elements",
                              (long long)t[i]->stride, INT_MAX);
    if (plan->dim > INT_MAX)
        return xcat_error(plan->ctx, XCAT_ERROR_UNSUPPORTED, "dim %lld exceeds %d",
                          (long long)plan->dim, INT_MAX);
    return XCAT_OK;
}

xcat_status xcat_cpu_ce_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                xcat_tensor *loss, xcat_tensor *lse)
{
    xcat_status st = check_blas_limits(plan, call, NULL, NULL);
    if (st) return st;
    ce_job j;
    job_init(&j, plan, call);
    const xcat_cpu_ce_plan *p = plan->backend_plan;
    if (!(plan->desc.flags & XCAT_LOSS_FORWARD_ONLY)) {
        j.A = (float *)(j.ws + p->off_rowgrad);
        j.lda = j.d;
    }
    run_forward(&j);
    float *out = loss->data;
    if (plan->desc.reduction == XCAT_REDUCTION_NONE) {
        for (int64_t i = 0; i < j.N; i++) out[i] = (float)j.rowloss[i];
    } else {
        double sum = 0.0; /* fixed order: deterministic */
        for (int64_t i = 0; i < j.N; i++) sum += j.rowloss[i];
        out[0] = (float)(sum * call->reduction_scale);
    }
    if (lse) memcpy(lse->data, j.lse, (size_t)j.N * sizeof(float));
    return XCAT_OK;
}

/* ---- pass 2: backward over item chunks ------------------------------------------------------ */

/* g_i: the upstream gradient of row i's loss, weights and the MEAN scale folded in. */
static void row_factors(const ce_job *j, const xcat_loss_call *call, const xcat_tensor *grad,
                        bool per_row, float *g)
{
    const float *gd = grad ? grad->data : NULL;
    for (int64_t i = 0; i < j->N; i++) {
        if (row_ignored(j, i)) {
            g[i] = 0.0f;
            continue;
        }
        double v = call->reduction_scale * (j->w ? (double)j->w[i] : 1.0);
        if (gd) v *= per_row ? (double)gd[i] : (double)gd[0];
        g[i] = (float)v;
    }
}

static void grad_tile_rows(const ce_job *j, const float *g, float *S, int64_t r0, int64_t nb,
                           int64_t c0, int64_t nc)
{
    const int64_t ldS = j->p->tile_items;
    const float *bc = j->b ? j->b + c0 : NULL;
    const float C = (float)j->C;
    for (int64_t i = 0; i < nb; i++) {
        float *row = S + i * ldS;
        const float gi = g[r0 + i];
        if (gi == 0.0f) {
            memset(row, 0, (size_t)nc * sizeof(float));
            continue;
        }
        const float lse = j->lse[r0 + i];
        const int64_t y = target_of(j, r0 + i);
        const bool has_y = y >= c0 && y < c0 + nc;
        const float xy = has_y ? row[y - c0] + (bc ? bc[y - c0] : 0.0f) : 0.0f;
        const float a = gi * (1.0f + 2.0f * j->lambda * lse), c = gi * j->eps / C;
        j->k->grad(row, bc, nc, j->s, j->cap, lse, a, c, NULL);
        /* The target's −(1−ε) term, formed in fp32 from the fp32 logit. */
        if (has_y)
            row[y - c0] -= gi * (1.0f - j->eps) * phi_scalar(logit_scalar(xy, j->s, j->cap),
                                                          j->s, j->cap);
    }
}

static void backward_chunk(const ce_job *j, const float *g, float *S, float *dE, int64_t ldde,
                           float *db, int64_t c0, int64_t nc)
{
    const int64_t Nb = j->p->tile_rows, ldS = j->p->tile_items, d = j->d;
    if (db) memset(db + c0, 0, (size_t)nc * sizeof(float));
    bool first = true;
    for (int64_t r0 = 0; r0 < j->N; r0 += Nb) {
        const int64_t nb = j->N - r0 < Nb ? j->N - r0 : Nb;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nc, (int)d, 1.0f,
                    j->H + r0 * j->ldh, (int)j->ldh, j->E + c0 * j->lde, (int)j->lde, 0.0f, S,
                    (int)ldS);
        grad_tile_rows(j, g, S, r0, nb, c0, nc);
        if (dE)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nc, (int)d, (int)nb,
                        1.0f, S, (int)ldS, j->H + r0 * j->ldh, (int)j->ldh, first ? 0.0f : 1.0f,
                        dE + c0 * ldde, (int)ldde);
        if (db)
            for (int64_t i = 0; i < nb; i++)
                for (int64_t t = 0; t < nc; t++) db[c0 + t] += S[i * ldS + t];
        first = false;
    }
}

static void run_backward_items(const ce_job *j, const float *g, float *dE, int64_t ldde,
                               float *db)
{
    const int64_t Cc = j->p->tile_items, chunks = (j->C + Cc - 1) / Cc;
    const int pinned = blas_pin_begin();
#pragma omp parallel num_threads(j->p->threads)
    {
        blas_single_threaded();
        row_scratch r = scratch_for(j, omp_get_thread_num());
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < chunks; ch++) {
            int64_t c0 = ch * Cc;
            backward_chunk(j, g, r.S, dE, ldde, db, c0, j->C - c0 < Cc ? j->C - c0 : Cc);
        }
    }
    blas_pin_end(pinned);
}

xcat_status xcat_cpu_ce_backward(xcat_loss_plan *plan, const xcat_loss_call *call, bool reuse,
                                 const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                 xcat_tensor *d_items, xcat_tensor *d_bias)
{
    xcat_status st = check_blas_limits(plan, call, d_hidden, d_items);
    if (st) return st;
    ce_job j;
    job_init(&j, plan, call);
    const xcat_cpu_ce_plan *p = plan->backend_plan;
    const bool forward_only = plan->desc.flags & XCAT_LOSS_FORWARD_ONLY;
    /* Per-row state: the forward's, or recomputed now (into d_hidden itself when the plan
     * keeps no N×d buffer). */
    if (forward_only) {
        j.A = d_hidden ? d_hidden->data : NULL;
        j.lda = d_hidden ? d_hidden->stride : 0;
    } else {
        j.A = (float *)(j.ws + p->off_rowgrad);
        j.lda = j.d;
    }
    if (!reuse) run_forward(&j);

    /* g_i lives in the row-loss buffer (no longer needed), reinterpreted as floats. */
    float *g = (float *)j.rowloss;
    row_factors(&j, call, grad_loss, plan->desc.reduction == XCAT_REDUCTION_NONE, g);
    if (d_hidden) {
        float *dh = d_hidden->data;
        for (int64_t i = 0; i < j.N; i++) {
            const float *src = j.A + i * j.lda;
            float *dst = dh + i * d_hidden->stride;
            for (int64_t t = 0; t < j.d; t++) dst[t] = g[i] * src[t];
        }
    }
    if (d_items || d_bias)
        run_backward_items(&j, g, d_items ? d_items->data : NULL,
                           d_items ? d_items->stride : 0, d_bias ? d_bias->data : NULL);
    /* The row-loss buffer was reused for g: the saved state still holds LSE and rowgrad,
     * which is all a later backward needs. */
    return XCAT_OK;
}
