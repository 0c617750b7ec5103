/* cpu_sce.c — XCAT_LOSS_SCE on the CPU backend: the per-bucket CE (src/sce.c does directions,
 * selection and the reduction).
 *
 * Forward, parallel over buckets: a worker gathers the bucket's k_y item rows once, then per
 * tile of up to TILE_ROWS selected rows gathers them, forms Z = H_X·E_Yᵀ with one OpenBLAS GEMM
 * and each row's log-denominator over its positive and the unmasked items. The per-(bucket,
 * row) losses go to an n_b × k_x buffer, and the rows' maxima are merged in bucket order
 * afterwards (so the winner on ties is the lowest bucket, and nothing depends on threads).
 *
 * Backward: only the rows a bucket won are recomputed (together about N rows, against the
 * forward's n_b·k_x). Per bucket: G = ∂ℓ/∂(h·e) for its winning rows (|R_b| × k_y), dH_R = G·E_Y
 * written to the rows' own dH (each row has one winner), dE_Y = Gᵀ·H_R and db_Y = column sums
 * of G into a per-bucket slot. Buckets go in waves of at most WAVE_BYTES of slots computed in
 * parallel; each wave's slots are then added into dE in bucket order, worker t owning the items
 * ≡ t (mod threads). The positives' terms are added last, per positive item in row order. */
#include <math.h>
#include <string.h>

#include <omp.h>

#include "baseline_guard.h"
#include "cpu_blas.h"
#include "cpu_sce.h"
#include "kernels.h"
#include "sce.h"

#define TILE_ROWS 256
#define WAVE_BYTES ((int64_t)256 << 20)

typedef struct sce_job {
    const float *H, *E, *b;
    int64_t ldh, lde, d, c;
    float scale, cap;
    int64_t ignore;
    const xcat_loss_call *call;
    const int32_t *X, *Y; /* nb × kx, nb × ky */
    xcat_sce_dims dm;
    float *zpos, *best_loss, *best_lse;
    int32_t *best_bucket;
    const xcat_row_kernels *kern; /* the context's ISA: the positives' dot products */
} sce_job;

static void job_init(sce_job *j, xcat_loss_plan *plan, const xcat_loss_call *call)
{
    const xcat_sce *s = plan->sce;
    *j = (sce_job){.H = call->hidden->data, .E = call->items->data,
                   .b = call->bias ? call->bias->data : NULL, .ldh = call->hidden->stride,
                   .lde = call->items->stride, .d = plan->dim, .c = plan->classes,
                   .scale = plan->desc.scale, .cap = plan->desc.softcap,
                   .ignore = plan->desc.ignore_index, .call = call,
                   .X = s->rows->data, .Y = s->items->data,
                   .dm = xcat_sce_dims_of(plan, call->rows), .zpos = s->zpos->data,
                   .best_loss = s->best_loss->data, .best_lse = s->best_lse->data,
                   .best_bucket = s->best_bucket->data,
                   .kern = xcat_row_kernels_get(plan->ctx->isa)};
}

/* A logit from its dot product: bias, scale, softcap (as every other kind). */
static float logit_finish(const sce_job *j, float r, int64_t item)
{
    if (j->b) r += j->b[item];
    r *= j->scale;
    return j->cap > 0.0f ? j->cap * tanhf(r / j->cap) : r;
}

/* dz/d(h·e + b) of a logit z */
static float phi_of(const sce_job *j, float z)
{
    if (j->cap <= 0.0f) return j->scale;
    const float u = z / j->cap;
    return j->scale * (1.0f - u * u);
}

/* Rows `idx[0..m)` of a matrix into a dense m × d block (−1: a zero row). */
static void gather(const float *src, int64_t ld, const int32_t *idx, int64_t m, int64_t d,
                   float *dst)
{
    for (int64_t r = 0; r < m; ++r) {
        if (idx[r] < 0)
            memset(dst + r * d, 0, (size_t)d * sizeof(float));
        else
            memcpy(dst + r * d, src + (int64_t)idx[r] * ld, (size_t)d * sizeof(float));
    }
}

static int64_t target_of(const sce_job *j, int64_t row)
{
    return xcat_sce_target(j->call, row);
}

/* The logits of one row against the bucket's items, in place in z (masked: −inf), and the
 * log-denominator with the positive. */
static float row_lse(const sce_job *j, const int32_t *Y, int64_t row, float *z)
{
    const int64_t y = target_of(j, row);
    const float zp = j->zpos[row];
    float m = zp;
    for (int64_t t = 0; t < j->dm.ky; ++t) {
        if (Y[t] < 0 || Y[t] == y) {
            z[t] = -INFINITY;
            continue;
        }
        z[t] = logit_finish(j, z[t], Y[t]);
        if (z[t] > m) m = z[t];
    }
    float s = expf(zp - m);
    for (int64_t t = 0; t < j->dm.ky; ++t) s += expf(z[t] - m); /* exp(−inf) = 0 */
    return m + logf(s);
}

/* Rows per GEMM tile of the forward. */
static int64_t tile_rows(const sce_job *j)
{
    return j->dm.kx < TILE_ROWS ? j->dm.kx : TILE_ROWS;
}

static void positive_logits(const sce_job *j, int64_t n, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const int64_t y = target_of(j, i);
        j->zpos[i] = 0.0f;
        j->best_loss[i] = -INFINITY;
        j->best_lse[i] = 0.0f;
        j->best_bucket[i] = -1;
        if (y == j->ignore) continue; /* never selected */
        float r;
        j->kern->gather_dots(j->H + i * j->ldh, j->E, j->lde, &y, 1, j->d, &r);
        j->zpos[i] = logit_finish(j, r, y);
    }
}

/* Step 3–4: every bucket's CE of its selected rows, and the rows' maxima (per-row state). */
static xcat_status bucket_pass(xcat_loss_plan *plan, const xcat_loss_call *call)
{
    xcat_context *ctx = plan->ctx;
    sce_job j;
    job_init(&j, plan, call);
    const int64_t nb = j.dm.nb, kx = j.dm.kx, ky = j.dm.ky, d = j.d;
    const int threads = ctx->num_threads;
    const int64_t tr = tile_rows(&j);
    const size_t wf = (size_t)(ky * d + tr * d + tr * ky);
    float *lb = xcat_host_alloc(ctx, (size_t)(nb * kx) * 2 * sizeof(float), 64);
    float *scratch = xcat_host_alloc(ctx, wf * (size_t)threads * sizeof(float), 64);
    if (!lb || !scratch) {
        xcat_host_free(ctx, lb);
        xcat_host_free(ctx, scratch);
        return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "SCE forward buffers");
    }
    float *lseb = lb + nb * kx;
    positive_logits(&j, call->rows, threads);
    const int saved = blas_pin_begin();
#pragma omp parallel num_threads(threads)
    {
        blas_single_threaded();
        float *Eg = scratch + wf * (size_t)omp_get_thread_num();
        float *Hg = Eg + ky * d, *Z = Hg + tr * d;
#pragma omp for schedule(dynamic, 1)
        for (int64_t q = 0; q < nb; ++q) {
            const int32_t *X = j.X + q * kx, *Y = j.Y + q * ky;
            gather(j.E, j.lde, Y, ky, d, Eg);
            for (int64_t r0 = 0; r0 < kx; r0 += tr) {
                const int64_t m = kx - r0 < tr ? kx - r0 : tr;
                gather(j.H, j.ldh, X + r0, m, d, Hg);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)ky, (int)d,
                            1.0f, Hg, (int)d, Eg, (int)d, 0.0f, Z, (int)ky);
                for (int64_t r = 0; r < m; ++r) {
                    const int64_t row = X[r0 + r], at = q * kx + r0 + r;
                    if (row < 0) {
                        lb[at] = lseb[at] = 0.0f;
                        continue;
                    }
                    const float l = row_lse(&j, Y, row, Z + r * ky);
                    lseb[at] = l;
                    lb[at] = l - j.zpos[row];
                }
            }
        }
    }
    blas_pin_end(saved);
    /* maxima in bucket order: strict > keeps the lowest bucket on ties; a NaN loss wins (the
     * row's loss is then NaN, as for every other kind) */
    for (int64_t q = 0; q < nb; ++q)
        for (int64_t r = 0; r < kx; ++r) {
            const int32_t row = j.X[q * kx + r];
            if (row < 0) continue;
            const float l = lb[q * kx + r], best = j.best_loss[row];
            if (j.best_bucket[row] < 0 || l > best || (isnan(l) && !isnan(best))) {
                j.best_loss[row] = l;
                j.best_lse[row] = lseb[q * kx + r];
                j.best_bucket[row] = (int32_t)q;
            }
        }
    xcat_host_free(ctx, lb);
    xcat_host_free(ctx, scratch);
    return XCAT_OK;
}

/* Ω = d^(−1/4)·Rᵀ·H over the call's non-ignored rows, R from xr_gauss12 (index i·n_b + b),
 * chunk by chunk of rows in a fixed order. */
xcat_status xcat_cpu_sce_mix_directions(xcat_loss_plan *plan, const xcat_loss_call *call,
                                        xcat_tensor *dirs)
{
    xcat_context *ctx = plan->ctx;
    const int64_t nb = plan->sce->nb, d = plan->dim, n = call->rows;
    const int64_t chunk = 1024;
    float *R = xcat_host_alloc(ctx, (size_t)(chunk * nb) * sizeof(float), 64);
    if (!R) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "SCE mixing matrix");
    float *O = dirs->data;
    const float f = (float)pow((double)d, -0.25);
    memset(O, 0, (size_t)(nb * d) * sizeof(float));
    const int saved = blas_pin_begin();
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t m = n - r0 < chunk ? n - r0 : chunk;
#pragma omp parallel for num_threads(ctx->num_threads) schedule(static)
        for (int64_t r = 0; r < m; ++r) {
            const bool ign = xcat_sce_target(call, r0 + r) == plan->desc.ignore_index;
            for (int64_t q = 0; q < nb; ++q)
                R[r * nb + q] = ign ? 0.0f
                                    : xcat_sce_gauss(plan->desc.seed, call->step,
                                                     (uint64_t)(r0 + r) * (uint64_t)nb +
                                                         (uint64_t)q);
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nb, (int)d, (int)m, f, R,
                    (int)nb, (const float *)call->hidden->data + r0 * call->hidden->stride,
                    (int)call->hidden->stride, 1.0f, O, (int)d);
    }
    blas_pin_end(saved);
    xcat_host_free(ctx, R);
    return XCAT_OK;
}

xcat_status xcat_cpu_sce_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                 xcat_tensor *loss, xcat_tensor *lse)
{
    xcat_status st = xcat_sce_select(plan, call);
    if (!st) st = bucket_pass(plan, call);
    if (!st) st = xcat_sce_finish_forward(plan, call, loss, lse);
    return st;
}

/* One bucket's backward into its slot: dH of its winning rows, and dE_Y / db_Y of the slot. */
static void bucket_backward(const sce_job *j, const xcat_sce_bwd *bw, int64_t q, float *cp,
                            float *dH, int64_t lddh, float *slot_e, float *slot_b, float *work)
{
    const int64_t ky = j->dm.ky, d = j->d;
    const int32_t *Y = j->Y + q * ky;
    const int32_t *rows = bw->bucket_rows + bw->bucket_off[q];
    const int64_t nr = bw->bucket_off[q + 1] - bw->bucket_off[q];
    float *Eg = work, *Hg = Eg + ky * d, *dHg = Hg + TILE_ROWS * d, *G = dHg + TILE_ROWS * d;
    if (slot_e) memset(slot_e, 0, (size_t)(ky * d) * sizeof(float));
    if (slot_b) memset(slot_b, 0, (size_t)ky * sizeof(float));
    if (nr == 0) return;
    gather(j->E, j->lde, Y, ky, d, Eg);
    for (int64_t r0 = 0; r0 < nr; r0 += TILE_ROWS) {
        const int64_t m = nr - r0 < TILE_ROWS ? nr - r0 : TILE_ROWS;
        gather(j->H, j->ldh, rows + r0, m, d, Hg);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)ky, (int)d, 1.0f, Hg,
                    (int)d, Eg, (int)d, 0.0f, G, (int)ky);
        for (int64_t r = 0; r < m; ++r) {
            const int32_t row = rows[r0 + r];
            float *z = G + r * ky;
            const int64_t y = target_of(j, row);
            const float lse = j->best_lse[row], g = bw->g[row];
            for (int64_t t = 0; t < ky; ++t) {
                if (Y[t] < 0 || Y[t] == y) {
                    z[t] = 0.0f;
                    continue;
                }
                const float zt = logit_finish(j, z[t], Y[t]);
                z[t] = g * expf(zt - lse) * phi_of(j, zt);
            }
            const float zp = j->zpos[row];
            cp[row] = g * (expf(zp - lse) - 1.0f) * phi_of(j, zp);
        }
        if (dH) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)d, (int)ky,
                        1.0f, G, (int)ky, Eg, (int)d, 0.0f, dHg, (int)d);
            for (int64_t r = 0; r < m; ++r)
                memcpy(dH + (int64_t)rows[r0 + r] * lddh, dHg + r * d, (size_t)d * sizeof(float));
        }
        if (slot_e)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ky, (int)d, (int)m, 1.0f,
                        G, (int)ky, Hg, (int)d, 1.0f, slot_e, (int)d);
        for (int64_t t = 0; slot_b && t < ky; ++t)
            for (int64_t r = 0; r < m; ++r) slot_b[t] += G[r * ky + t];
    }
}

static xcat_status backward_pass(xcat_loss_plan *plan, const xcat_loss_call *call,
                                 const xcat_sce_bwd *bw, xcat_tensor *d_hidden,
                                 xcat_tensor *d_items, xcat_tensor *d_bias)
{
    xcat_context *ctx = plan->ctx;
    sce_job j;
    job_init(&j, plan, call);
    const int64_t nb = j.dm.nb, ky = j.dm.ky, d = j.d, n = call->rows;
    const int threads = ctx->num_threads;
    float *dH = d_hidden ? d_hidden->data : NULL, *dE = d_items ? d_items->data : NULL;
    float *db = d_bias ? d_bias->data : NULL;
    const int64_t lddh = d_hidden ? d_hidden->stride : 0, ldde = d_items ? d_items->stride : 0;
    const int64_t slot = (dE ? ky * d : 0) + (db ? ky : 0);
    int64_t wave = slot ? WAVE_BYTES / (slot * (int64_t)sizeof(float)) : nb;
    if (wave < 1) wave = 1;
    if (wave > nb) wave = nb;
    const size_t wf = (size_t)(ky * d + 2 * TILE_ROWS * d + TILE_ROWS * ky);
    float *slots = slot ? xcat_host_alloc(ctx, (size_t)(wave * slot) * sizeof(float), 64) : NULL;
    float *work = xcat_host_alloc(ctx, wf * (size_t)threads * sizeof(float), 64);
    float *cp = xcat_host_calloc(ctx, (size_t)n * sizeof(float) + 64, 64);
    if ((slot && !slots) || !work || !cp) {
        xcat_host_free(ctx, slots);
        xcat_host_free(ctx, work);
        xcat_host_free(ctx, cp);
        return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "SCE backward buffers");
    }
    for (int64_t i = 0; dH && i < n; ++i) memset(dH + i * lddh, 0, (size_t)d * sizeof(float));
    for (int64_t i = 0; dE && i < j.c; ++i) memset(dE + i * ldde, 0, (size_t)d * sizeof(float));
    if (db) memset(db, 0, (size_t)j.c * sizeof(float));
    const int saved = blas_pin_begin();
    for (int64_t q0 = 0; q0 < nb; q0 += wave) {
        const int64_t nw = nb - q0 < wave ? nb - q0 : wave;
#pragma omp parallel num_threads(threads)
        {
            blas_single_threaded();
            float *mine = work + wf * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
            for (int64_t w = 0; w < nw; ++w) {
                float *se = dE ? slots + w * slot : NULL;
                float *sb = db ? slots + w * slot + (dE ? ky * d : 0) : NULL;
                bucket_backward(&j, bw, q0 + w, cp, dH, lddh, se, sb, mine);
            }
            /* the wave's slots into dE / db in bucket order; worker t owns items ≡ t */
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            for (int64_t w = 0; slot && w < nw; ++w) {
                const int64_t q = q0 + w;
                if (bw->bucket_off[q + 1] == bw->bucket_off[q]) continue;
                const int32_t *Y = j.Y + q * ky;
                for (int64_t u = 0; u < ky; ++u) {
                    const int32_t it = Y[u];
                    if (it < 0 || it % nt != t) continue;
                    if (dE) {
                        float *de = dE + (int64_t)it * ldde;
                        const float *src = slots + w * slot + u * d;
                        for (int64_t c = 0; c < d; ++c) de[c] += src[c];
                    }
                    if (db) db[it] += slots[w * slot + (dE ? ky * d : 0) + u];
                }
            }
        }
    }
    blas_pin_end(saved);
    /* the positives: dH_i += cp_i·e_y; dE_y += Σ cp_i·h_i and db_y += Σ cp_i in row order */
#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; ++i) {
            if (!dH || bw->winner[i] < 0) continue;
            const float *e = j.E + target_of(&j, i) * j.lde;
            float *dh = dH + i * lddh;
            for (int64_t c = 0; c < d; ++c) dh[c] += cp[i] * e[c];
        }
#pragma omp for schedule(dynamic, 64)
        for (int64_t p = 0; p < bw->npos; ++p) {
            const int32_t it = bw->pos_items[p];
            for (int32_t t = bw->pos_off[p]; t < bw->pos_off[p + 1]; ++t) {
                const int32_t row = bw->pos_rows[t];
                if (bw->winner[row] < 0) continue; /* contributes nothing */
                if (db) db[it] += cp[row];
                if (!dE) continue;
                const float *h = j.H + (int64_t)row * j.ldh;
                float *de = dE + (int64_t)it * ldde;
                for (int64_t c = 0; c < d; ++c) de[c] += cp[row] * h[c];
            }
        }
    }
    xcat_host_free(ctx, slots);
    xcat_host_free(ctx, work);
    xcat_host_free(ctx, cp);
    return XCAT_OK;
}

xcat_status xcat_cpu_sce_backward(xcat_loss_plan *plan, const xcat_loss_call *call, bool reuse,
                                  const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                  xcat_tensor *d_items, xcat_tensor *d_bias)
{
    xcat_status st = XCAT_OK;
    if (!reuse) {
        st = xcat_sce_select(plan, call);
        if (!st) st = bucket_pass(plan, call);
        if (st) return st;
    }
    xcat_sce_bwd bw;
    st = xcat_sce_backward_read(plan, call, grad_loss, &bw);
    if (st) return st;
    xcat_sce_backward_rows(plan, call, &bw);
    st = xcat_sce_backward_positives(plan, call, &bw);
    if (st) return st;
    st = backward_pass(plan, call, &bw, d_hidden, d_items, d_bias);
    return st;
}
