/* ocl_sampled.c — the sampled kinds on OpenCL (kernels: cl/rng.cl + cl/sampled.cl).
 *
 * Rows are processed in chunks whose candidate entries (T = K + 1, plus N − 1 for INBATCH, per
 * row; an int item and a float value each) fit the plan's entry buffer. Forward: per chunk,
 * sampled_rows (mode 0) writes the rows' weighted losses; sampled_reduce sums them in a fixed
 * order (MEAN/SUM). Backward: sampled_gfac forms g_i; dE/db are zeroed; per chunk, sampled_rows
 * (mode 1) writes the entries (item, g_i·dℓ/dz) and the chunk's dH rows, then the entries are
 * counting-sorted (stably) by item bucket and each bucket's work-group adds them into dE/db in
 * entry order (no float atomics). Shared candidates (GIVEN_SHARED's K items, INBATCH's batch
 * positives) are GEMMs (gemm.cl): per chunk ZG = H·E_sᵀ feeds sampled_rows, which writes the
 * coefficients back in place (G), then dH += G·E_s, dE_s += Gᵀ·H, db_s += Σ G, and at the end
 * dE_s/db_s are bucket-sorted by item and added (XCAT_CL_SAMPLED_GATHER=1: gathers instead).
 * Everything is deterministic, and the draws are cl/rng.cl's, bit-identical to the CPU
 * backend's.
 *
 * Workspace (device): the entry buffer (ENTRIES_GPU / ENTRIES_CPU entries × 8 bytes, or one
 * row's worth when T is larger) and the sort's permutation (4 bytes per entry) and counters
 * (4 bytes per bucket and block of BE entries), 2 floats per row, and the sampling table (alias threshold,
 * alias index, log q: 12 bytes per item) once xcat_loss_plan_set_item_counts was called. No
 * N×K buffer: the entries are per chunk.
 *
 * Testing knobs (ignored under IGNORE_ENV), read at plan creation: XCAT_CL_SAMPLED_ENTRIES=n
 * (entry buffer capacity: more, smaller row chunks), XCAT_CL_SAMPLED_BLOCK=n (entries per sort
 * block) — neither changes a bit of the entry-order sums (CPU devices); the per-item sums of
 * GPUs round per row chunk, so there only the block size is free —
 * and XCAT_CL_SAMPLED_TEAM=lanes per candidate's dot product (a power of two <= SWG),
 * XCAT_CL_SAMPLED_ITEMS=0|1 (per-item sums in the last dE step; GPUs by default),
 * XCAT_CL_SAMPLED_HOT=0 / XCAT_CL_SAMPLED_HOT_MIN=x (hot items of a popularity sampler: off /
 * expected entries per chunk that make an item hot, default 128). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_launch.h"
#include "sampling.h"

#define ENTRIES_GPU ((int64_t)1 << 23)
#define ENTRIES_CPU ((int64_t)1 << 20)
#define SHARED_Z_BYTES ((int64_t)256 << 20) /* a chunk's dots with the shared columns */

typedef struct ocl_smp_plan {
    int swg, nb_local, nb;  /* lanes; item buckets of the dE sort (nb <= nb_local) */
    int per_item;           /* last step summed per item in registers (GPUs) */
    gemm_cfg g;             /* gemm.cl tile of the shared-candidate GEMMs */
    int vec_loads;
    int64_t entries;        /* capacity of the entry buffer */
    int64_t be;             /* entries per block of the dE sort */
    cl_kernel k_rows, k_rows_shared, k_rows_hot, k_rows_shared_hot, k_hotadd, k_zero, k_reduce, k_draw, k_gfac, k_bcount, k_bscan,
        k_bbase, k_bscatter, k_baccum, k_baccum_items, k_nt, k_nn, k_tn, k_shitems, k_gather,
        k_colsum, k_shaccum;
    cl_mem ent_item, ent_val, rowloss, gfac, dummy;
    cl_mem perm, perm2, counts, totals, bases; /* the dE sort: entries ×2, nb×blocks, nb, nb */
    cl_mem alias_thr, alias_idx, logq; /* NULL until item counts are set */
    cl_mem hot_col, hot_items;          /* popularity sampler: the hottest items' columns */
    int nhot;
    uint64_t generation;
} ocl_smp_plan;

/* The dE sort's shape: up to NB_LOCAL buckets on GPUs (thousands of work-groups to hide the
 * gathers' latency), a few per core on CPU devices; the per-bucket counters live in local
 * memory (nb_local of them at most); blocks of `be` entries. */
static void sort_shape(const xcat_context *ctx, int64_t classes, int *nb_local, int *nb_out,
                       int64_t *be)
{
    const xcat_ocl_state *s = xcat_ocl(ctx);
    int nl = 64;
    while (nl < 8192 && (size_t)nl * 2 * 4 + 4096 <= (size_t)s->local_mem) nl *= 2;
    const int cu = s->info.compute_units > 0 ? (int)s->info.compute_units : 1;
    /* GPUs: as many buckets as local memory holds (thousands of work-groups for the last
     * step, and few items each: at C = 20,000 a bucket of 128 items held ~300K entries per
     * chunk and took 2.5× the time of C = 10^6 on the H100) */
    int64_t nb = s->info.is_gpu ? classes : 8 * (int64_t)cu;
    if (nb > nl) nb = nl;
    if (nb > classes) nb = classes;
    *nb_local = nl;
    *nb_out = nb < 1 ? 1 : (int)nb;
    *be = s->info.is_gpu ? 16384 : 65536;
    if (!ctx->ignore_env) { /* testing: XCAT_CL_SAMPLED_BLOCK=entries per sort block */
        const char *v = getenv("XCAT_CL_SAMPLED_BLOCK");
        const long long e = v ? atoll(v) : 0;
        if (e >= 1 && e <= (1 << 24)) *be = e;
    }
}

/* The entry buffer's default capacity; XCAT_CL_SAMPLED_ENTRIES=n (testing) sets it. */
static int64_t entries_default(const xcat_context *ctx)
{
    int64_t ent = xcat_ocl(ctx)->info.is_gpu ? ENTRIES_GPU : ENTRIES_CPU;
    if (!ctx->ignore_env) {
        const char *v = getenv("XCAT_CL_SAMPLED_ENTRIES");
        const long long e = v ? atoll(v) : 0;
        if (e >= 1 && e <= ((int64_t)1 << 30)) ent = e;
    }
    return ent;
}

static int64_t candidates_per_row(const xcat_loss_desc *d, int64_t k, int64_t n)
{
    return k + 1 + (d->kind == XCAT_LOSS_INBATCH ? n - 1 : 0);
}

xcat_status xcat_ocl_sampled_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                            int64_t max_rows, int64_t classes, int64_t dim,
                                            size_t *bytes)
{
    (void)dim;
    int64_t ent = entries_default(ctx);
    const int64_t t = candidates_per_row(desc, desc->num_negatives, max_rows);
    if (ent < t) ent = t;
    if (ent > t * max_rows) ent = t * max_rows;
    int nl, nb;
    int64_t be;
    sort_shape(ctx, classes, &nl, &nb, &be);
    *bytes = (size_t)ent * 16 + (size_t)nb * (size_t)(cdiv(ent, be) + 2) * 4 +
             (size_t)max_rows * 8 + 16;
    if (desc->sampler == XCAT_SAMPLER_POPULARITY || desc->kind == XCAT_LOSS_INBATCH ||
        desc->correction == XCAT_CORRECTION_LOGQ)
        *bytes += (size_t)classes * 12;
    return XCAT_OK;
}

static void release_tables(ocl_smp_plan *p)
{
    cl_mem *ms[] = {&p->alias_thr, &p->alias_idx, &p->logq, &p->hot_col, &p->hot_items};
    p->nhot = 0;
    for (size_t i = 0; i < 5; i++)
        if (*ms[i]) {
            clReleaseMemObject(*ms[i]);
            *ms[i] = NULL;
        }
}

void xcat_ocl_sampled_plan_release(xcat_loss_plan *plan)
{
    ocl_smp_plan *p = plan->backend_plan;
    if (!p) return;
    cl_kernel ks[] = {p->k_rows,   p->k_rows_shared, p->k_rows_hot, p->k_rows_shared_hot,
                      p->k_hotadd, p->k_zero,   p->k_reduce,   p->k_draw,    p->k_gfac,
                      p->k_bcount, p->k_bscan,  p->k_bbase,    p->k_bscatter, p->k_baccum,
                      p->k_baccum_items, p->k_nt, p->k_nn, p->k_tn, p->k_shitems,
                      p->k_gather, p->k_colsum, p->k_shaccum};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        if (ks[i]) clReleaseKernel(ks[i]);
    cl_mem ms[] = {p->ent_item, p->ent_val, p->rowloss, p->gfac,  p->dummy,
                   p->perm,     p->perm2,   p->counts,  p->totals,  p->bases};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (ms[i]) clReleaseMemObject(ms[i]);
    release_tables(p);
    xcat_host_free(plan->ctx, p);
    plan->backend_plan = NULL;
}

/* The dE sort's buffers for p->entries entries (released first when resized). */
static xcat_status sort_buffers(xcat_context *ctx, ocl_smp_plan *p)
{
    cl_mem *ms[] = {&p->perm, &p->perm2, &p->counts, &p->totals, &p->bases};
    for (size_t i = 0; i < 5; i++)
        if (*ms[i]) {
            clReleaseMemObject(*ms[i]);
            *ms[i] = NULL;
        }
    const int64_t nblk = cdiv(p->entries, p->be);
    xcat_status st = xcat_ocl_buffer(ctx, (size_t)p->entries * 4, false, &p->perm);
    if (!st && p->per_item) st = xcat_ocl_buffer(ctx, (size_t)p->entries * 4, false, &p->perm2);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)(nblk * p->nb) * 4, false, &p->counts);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)p->nb * 4, false, &p->totals);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)p->nb * 4, false, &p->bases);
    return st;
}

xcat_status xcat_ocl_sampled_plan_init(xcat_loss_plan *plan)
{
    xcat_context *ctx = plan->ctx;
    const xcat_ocl_state *s = xcat_ocl(ctx);
    if (plan->max_rows > INT32_MAX || plan->classes > INT32_MAX || plan->dim > INT32_MAX)
        return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED, "OpenCL sampled kinds: max_rows, "
                          "num_classes and dim must be < 2^31");
    ocl_smp_plan *p = xcat_host_calloc(ctx, sizeof *p, 64);
    if (!p) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "allocating the sampled plan");
    plan->backend_plan = p;
    const size_t wmax = s->max_wg_size < s->max_wi_sizes[0] ? s->max_wg_size : s->max_wi_sizes[0];
    p->swg = pow2_at_most(wmax, s->info.is_gpu ? 128 : 16);
    sort_shape(ctx, plan->classes, &p->nb_local, &p->nb, &p->be);
    /* GPUs: sum each item's entries in registers (one dE update per item and chunk) when a
     * bucket spans at most IPB (256) items; XCAT_CL_SAMPLED_ITEMS=0|1 (testing) forces it. */
    p->per_item = s->info.is_gpu;
    if (!ctx->ignore_env) {
        const char *v = getenv("XCAT_CL_SAMPLED_ITEMS");
        if (v && (v[0] == '0' || v[0] == '1') && !v[1]) p->per_item = v[0] == '1';
    }
    if (cdiv(plan->classes, p->nb) + 1 > 256) p->per_item = 0;
    size_t ws = 0;
    xcat_status st = xcat_ocl_sampled_workspace_size(ctx, &plan->desc, plan->max_rows,
                                                     plan->classes, plan->dim, &ws);
    p->entries = entries_default(ctx);
    const int64_t t = candidates_per_row(&plan->desc, plan->desc.num_negatives, plan->max_rows);
    if (p->entries > t * plan->max_rows) p->entries = t * plan->max_rows;
    if (p->entries < t) p->entries = t;
    cl_program prog = NULL;
    if (!st) {
        /* Lanes per candidate: a team reads 16 bytes per lane per step of a gathered row, so
         * d/16 lanes (at most 16, at most SWG) read it in about four coalesced steps; CPU
         * devices keep one lane per candidate (their lanes are SIMD elements of one core). */
        int team = 1;
        while (s->info.is_gpu && team < 16 && team * 2 <= p->swg && team * 16 * 2 <= plan->dim)
            team *= 2;
        if (!ctx->ignore_env) { /* testing: XCAT_CL_SAMPLED_TEAM=lanes per candidate */
            const char *v = getenv("XCAT_CL_SAMPLED_TEAM");
            const int e = v ? atoi(v) : 0;
            if (e >= 1 && e <= p->swg && (e & (e - 1)) == 0) team = e;
        }
        st = xcat_ocl_gemm_choose(ctx, false, &p->g, &p->vec_loads);
        char gp[256], prelude[512];
        xcat_ocl_gemm_prelude(&p->g, p->vec_loads, gp, sizeof gp);
        snprintf(prelude, sizeof prelude,
                 "%s#define SWG %d\n#define NB_LOCAL %d\n#define TEAM %d\n", gp, p->swg,
                 p->nb_local, team);
        static const char *const sources[] = {"rng.cl", "gemm.cl", "sampled.cl", NULL};
        if (!st) st = xcat_ocl_program(ctx, prelude, sources, "-cl-std=CL1.2", &prog);
    }
    struct {
        cl_kernel *k;
        const char *name;
    } ks[] = {{&p->k_rows, "sampled_rows"},
              {&p->k_rows_shared, "sampled_rows_shared"},
              {&p->k_rows_hot, "sampled_rows_hot"},
              {&p->k_rows_shared_hot, "sampled_rows_shared_hot"},
              {&p->k_hotadd, "sampled_hot_add"},
              {&p->k_zero, "sampled_zero"},
              {&p->k_reduce, "sampled_reduce"},
              {&p->k_draw, "sampled_draw"},
              {&p->k_gfac, "sampled_gfac"},
              {&p->k_bcount, "sampled_bucket_count"},
              {&p->k_bscan, "sampled_bucket_scan"},
              {&p->k_bbase, "sampled_bucket_base"},
              {&p->k_bscatter, "sampled_bucket_scatter"},
              {&p->k_baccum, "sampled_bucket_accum"},
              {&p->k_baccum_items, "sampled_bucket_accum_items"},
              {&p->k_nt, "gemm_nt"},
              {&p->k_nn, "gemm_nn"},
              {&p->k_tn, "gemm_tn"},
              {&p->k_shitems, "sampled_shared_items"},
              {&p->k_gather, "sampled_gather_rows"},
              {&p->k_colsum, "sampled_colsum_add"},
              {&p->k_shaccum, "sampled_shared_accum"}};
    for (size_t i = 0; !st && i < sizeof ks / sizeof ks[0]; i++)
        st = xcat_ocl_kernel(ctx, prog, ks[i].name, ks[i].k);
    if (!st) {
        const cl_kernel gk[] = {p->k_nt, p->k_nn, p->k_tn};
        st = xcat_ocl_check_wg(ctx, gk, 3, xcat_ocl_gemm_wg(&p->g));
    }
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)p->entries * 4, false, &p->ent_item);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)p->entries * 4, false, &p->ent_val);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)plan->max_rows * 4, true, &p->rowloss);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)plan->max_rows * 4, true, &p->gfac);
    if (!st) st = xcat_ocl_buffer(ctx, 16, true, &p->dummy);
    if (!st) st = sort_buffers(ctx, p);
    if (!st && plan->sampling) st = xcat_ocl_sampled_sampling_changed(plan);
    if (st) {
        xcat_ocl_sampled_plan_release(plan);
        return st;
    }
    plan->workspace = NULL;
    plan->workspace_bytes = ws;
    return XCAT_OK;
}

static xcat_status upload_buffer(xcat_context *ctx, const void *src, size_t bytes, cl_mem *out)
{
    xcat_status st = xcat_ocl_buffer(ctx, bytes > 0 ? bytes : 4, false, out);
    if (st || bytes == 0) return st;
    cl_int err = clEnqueueWriteBuffer(xcat_ocl(ctx)->queue, *out, CL_TRUE, 0, bytes, src, 0,
                                      NULL, NULL);
    return err == CL_SUCCESS ? XCAT_OK : xcat_ocl_error(ctx, err, "uploading a sampled table");
}

#define HOT_MIN_ENTRIES 128 /* expected entries of one item per chunk that make it hot */
#define HOT_MAX 4096

static int cmp_q_desc(const void *a, const void *b)
{
    const float x = ((const float *)a)[0], y = ((const float *)b)[0];
    return x > y ? -1 : x < y ? 1 : 0;
}

/* The popularity sampler's hottest items: those expected at least HOT_MIN_ENTRIES times in a
 * chunk of entries (at most HOT_MAX, the most probable first). Their column map (C ints) and
 * list go to the device; their gradients go through a GEMM in the backward. */
static xcat_status hot_setup(xcat_loss_plan *plan)
{
    ocl_smp_plan *p = plan->backend_plan;
    const xcat_sampling *smp = plan->sampling;
    const int64_t c = smp->classes;
    double hot_min = HOT_MIN_ENTRIES;
    if (!plan->ctx->ignore_env) { /* testing: XCAT_CL_SAMPLED_HOT_MIN=expected entries */
        const char *v = getenv("XCAT_CL_SAMPLED_HOT_MIN");
        const double e = v ? atof(v) : 0.0;
        if (e > 0.0) hot_min = e;
    }
    const float lq_min = (float)log(hot_min / (double)p->entries);
    int64_t n = 0;
    for (int64_t j = 0; j < c; ++j) n += smp->log_q[j] >= lq_min;
    if (n == 0) return XCAT_OK;
    float *pairs = xcat_host_alloc(plan->ctx, (size_t)n * 8, 64); /* (log q, item) */
    int32_t *col = xcat_host_alloc(plan->ctx, (size_t)c * 4, 64);
    if (!pairs || !col) {
        xcat_host_free(plan->ctx, pairs), xcat_host_free(plan->ctx, col);
        return xcat_error(plan->ctx, XCAT_ERROR_OUT_OF_MEMORY, "hot-item table");
    }
    int64_t m = 0;
    for (int64_t j = 0; j < c; ++j)
        if (smp->log_q[j] >= lq_min) {
            pairs[2 * m] = smp->log_q[j];
            memcpy(&pairs[2 * m + 1], &(int32_t){(int32_t)j}, 4);
            ++m;
        }
    if (n > HOT_MAX) qsort(pairs, (size_t)n, 8, cmp_q_desc); /* ties: any order, all fine */
    const int nhot = (int)(n < HOT_MAX ? n : HOT_MAX);
    int32_t *items = (int32_t *)pairs; /* compacted in place: item h from pair h (h <= 2h+1) */
    for (int64_t j = 0; j < c; ++j) col[j] = -1;
    for (int h = 0; h < nhot; ++h) {
        int32_t it;
        memcpy(&it, &pairs[2 * h + 1], 4);
        items[h] = it;
        col[it] = h;
    }
    xcat_status st = upload_buffer(plan->ctx, col, (size_t)c * 4, &p->hot_col);
    if (!st) st = upload_buffer(plan->ctx, items, (size_t)nhot * 4, &p->hot_items);
    if (!st) p->nhot = nhot;
    xcat_host_free(plan->ctx, pairs);
    xcat_host_free(plan->ctx, col);
    return st;
}

xcat_status xcat_ocl_sampled_sampling_changed(xcat_loss_plan *plan)
{
    ocl_smp_plan *p = plan->backend_plan;
    if (!p) return XCAT_OK; /* the plan uploads at init */
    release_tables(p);
    const xcat_sampling *smp = plan->sampling;
    if (!smp) return XCAT_OK;
    const size_t c = (size_t)smp->classes;
    xcat_status st = upload_buffer(plan->ctx, smp->alias_threshold, c * 4, &p->alias_thr);
    if (!st) st = upload_buffer(plan->ctx, smp->alias_index, c * 4, &p->alias_idx);
    if (!st) st = upload_buffer(plan->ctx, smp->log_q, c * 4, &p->logq);
    if (!st && plan->desc.sampler == XCAT_SAMPLER_POPULARITY) st = hot_setup(plan);
    if (st) release_tables(p);
    p->generation = smp->generation;
    return st;
}

/* Per-call values and the row-items CSR on the device. */
typedef struct smp_call {
    xcat_context *ctx;
    ocl_smp_plan *p;
    const xcat_loss_plan *plan;
    const xcat_loss_call *call;
    int64_t n, k, t;
    int64_t te;        /* entries per row: t, or the gathered candidates only (shared modes) */
    cl_mem ri_off, ri; /* uploaded row items, or NULL */
    /* shared candidates as GEMMs: shmode 1 GIVEN_SHARED (nsh = K), 2 INBATCH (nsh = n), 0 none;
     * their items, gathered rows, gradients, and the chunk's dots / coefficients (ZG) */
    int shmode;
    int64_t nsh, zrows;
    cl_mem sh_items, Esh, dEsh, dbsh, ZG;
    /* hot items of a popularity sampler (backward only): GH chunk coefficients, gradients */
    int hot;
    cl_mem GH, dEhot, dbhot;
} smp_call;

static xcat_status ensure_entries(smp_call *c);

static xcat_status call_init(smp_call *c, xcat_loss_plan *plan, const xcat_loss_call *call)
{
    *c = (smp_call){.ctx = plan->ctx, .p = plan->backend_plan, .plan = plan, .call = call,
                    .n = call->rows, .k = call->num_negatives};
    c->t = candidates_per_row(&plan->desc, c->k, c->n);
    /* shared candidates (GEMMs) keep no entries: only the gathered ones are listed */
    const xcat_loss_desc *D = &plan->desc;
    c->shmode = D->sampler == XCAT_SAMPLER_GIVEN_SHARED ? 1 : D->kind == XCAT_LOSS_INBATCH ? 2 : 0;
    if (!c->ctx->ignore_env) { /* XCAT_CL_SAMPLED_GATHER=1 (testing): gathered dots instead */
        const char *v = getenv("XCAT_CL_SAMPLED_GATHER");
        if (v && v[0] == '1') c->shmode = 0;
    }
    c->nsh = c->shmode == 1 ? c->k : c->shmode == 2 ? c->n : 0;
    if (!c->nsh) c->shmode = 0;
    c->te = c->shmode == 1 ? 1 : c->shmode == 2 ? c->k + 1 : c->t;
    if (c->t > INT32_MAX)
        return xcat_error(c->ctx, XCAT_ERROR_UNSUPPORTED, "OpenCL sampled kinds: %lld "
                          "candidates per row", (long long)c->t);
    xcat_status st = ensure_entries(c);
    if (st || !call->h_row_items_offsets) return st;
    const int64_t nnz = call->h_row_items_offsets[c->n];
    int32_t *ids = xcat_host_alloc(c->ctx, (size_t)(nnz > 0 ? nnz : 1) * 4, 64);
    if (!ids) return xcat_error(c->ctx, XCAT_ERROR_OUT_OF_MEMORY, "staging row items");
    for (int64_t i = 0; i < nnz; ++i) ids[i] = (int32_t)call->h_row_items[i];
    st = upload_buffer(c->ctx, call->h_row_items_offsets, (size_t)(c->n + 1) * 8, &c->ri_off);
    if (!st) st = upload_buffer(c->ctx, ids, (size_t)nnz * 4, &c->ri);
    xcat_host_free(c->ctx, ids);
    return st;
}

/* Given negatives take K from the call: grow the entry buffer when one row no longer fits. */
static xcat_status ensure_entries(smp_call *c)
{
    ocl_smp_plan *p = c->p;
    /* one row's entries, and the shared columns' bucket sort, must fit */
    const int64_t need = c->te > c->nsh ? c->te : c->nsh;
    if (p->entries >= need) return XCAT_OK;
    int64_t want = entries_default(c->ctx);
    if (want > c->te * c->plan->max_rows) want = c->te * c->plan->max_rows;
    if (want < need) want = need;
    cl_mem it = NULL, val = NULL;
    xcat_status st = xcat_ocl_buffer(c->ctx, (size_t)want * 4, false, &it);
    if (!st) st = xcat_ocl_buffer(c->ctx, (size_t)want * 4, false, &val);
    if (st) {
        if (it) clReleaseMemObject(it);
        return st;
    }
    clReleaseMemObject(p->ent_item);
    clReleaseMemObject(p->ent_val);
    p->ent_item = it;
    p->ent_val = val;
    p->entries = want;
    return sort_buffers(c->ctx, p);
}

static void call_release(smp_call *c)
{
    cl_mem ms[] = {c->ri_off, c->ri,    c->sh_items, c->Esh,  c->dEsh,
                   c->dbsh,   c->ZG,    c->GH,       c->dEhot, c->dbhot};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (ms[i]) clReleaseMemObject(ms[i]);
}

/* The shared columns' items and gathered rows, and the ZG chunk buffer (rows c->zrows). */
static xcat_status shared_setup(smp_call *c, bool grads)
{
    const xcat_loss_desc *D = &c->plan->desc;
    const ocl_smp_plan *p = c->p;
    if (!c->shmode) return XCAT_OK;
    const int64_t d = c->plan->dim;
    c->zrows = SHARED_Z_BYTES / (4 * c->nsh);
    if (c->zrows < 1) c->zrows = 1;
    if (c->zrows > c->n) c->zrows = c->n;
    xcat_status st = xcat_ocl_buffer(c->ctx, (size_t)c->nsh * 4, false, &c->sh_items);
    if (!st) st = xcat_ocl_buffer(c->ctx, (size_t)(c->nsh * d) * 4, false, &c->Esh);
    if (!st) st = xcat_ocl_buffer(c->ctx, (size_t)(c->zrows * c->nsh) * 4, false, &c->ZG);
    if (!st && grads) st = xcat_ocl_buffer(c->ctx, (size_t)(c->nsh * d) * 4, true, &c->dEsh);
    if (!st && grads) st = xcat_ocl_buffer(c->ctx, (size_t)c->nsh * 4, true, &c->dbsh);
    if (st) return st;
    const xcat_tensor *src = c->shmode == 1 ? c->call->negatives : c->call->targets;
    args a = {.k = p->k_shitems};
    A_INT(&a, c->nsh);
    A_INT(&a, c->shmode);
    A_MEM(&a, xcat_ocl_mem(src));
    A_ULONG(&a, elem_off(src));
    A_INT(&a, src->dtype == XCAT_DTYPE_I64);
    A_LONG(&a, D->ignore_index);
    A_MEM(&a, c->sh_items);
    const size_t lw = (size_t)p->swg, gw = (size_t)cdiv(c->nsh, p->swg) * lw;
    st = launch(c->ctx, &a, 1, &gw, &lw, "enqueueing sampled_shared_items");
    if (st) return st;
    const mat E = tensor_mat(c->call->items);
    args b = {.k = p->k_gather};
    A_INT(&b, c->nsh);
    A_INT(&b, d);
    A_MEM(&b, c->sh_items);
    A_MEM(&b, E.mem);
    A_ULONG(&b, E.off);
    A_LONG(&b, E.ld);
    A_MEM(&b, c->Esh);
    const size_t gw2 = (size_t)cdiv(c->nsh * d, p->swg) * lw;
    return launch(c->ctx, &b, 1, &gw2, &lw, "enqueueing sampled_gather_rows");
}

/* ZG = H[r0 .. r0+nr) · E_sharedᵀ */
static xcat_status shared_dots(const smp_call *c, int64_t r0, int64_t nr)
{
    const mat H = tensor_mat(c->call->hidden);
    return xcat_ocl_gemm_launch(c->ctx, c->p->k_nt, &c->p->g, nr, c->nsh, c->plan->dim, 1.0f,
                                chunk_of(H, r0), (mat){c->Esh, 0, c->plan->dim}, 0.0f,
                                (mat){c->ZG, 0, c->nsh}, 1, 0);
}

/* The SMP_ARGS block of cl/sampled.cl, in its order. */
static void smp_args(args *a, const smp_call *c)
{
    const xcat_loss_desc *D = &c->plan->desc;
    const xcat_loss_call *call = c->call;
    const ocl_smp_plan *p = c->p;
    const int64_t C = c->plan->classes;
    const bool given = D->sampler == XCAT_SAMPLER_GIVEN_PER_ROW ||
                       D->sampler == XCAT_SAMPLER_GIVEN_SHARED;
    float corr = 0.0f, logk = 0.0f, beta = 1.0f;
    int logq_on = 0, has_logq = 0, withq = 0;
    if (D->kind == XCAT_LOSS_SAMPLED_CE && D->correction == XCAT_CORRECTION_UNIFORM)
        corr = logf((float)c->k / (float)(C - 1));
    if (D->kind == XCAT_LOSS_SAMPLED_CE && D->correction == XCAT_CORRECTION_LOGQ) {
        logq_on = 1;
        logk = logf((float)c->k);
        has_logq = D->sampler != XCAT_SAMPLER_UNIFORM && p->logq != NULL;
    }
    if (D->kind == XCAT_LOSS_INBATCH) {
        logk = c->k > 0 ? logf((float)c->k) : 0.0f;
        withq = D->correction != XCAT_CORRECTION_NONE;
        has_logq = D->sampler == XCAT_SAMPLER_POPULARITY && p->logq != NULL;
    }
    if (D->kind == XCAT_LOSS_GBCE) {
        const double alpha = (double)c->k / (double)(C - 1);
        beta = (float)(1.0 - D->gbce_t * (1.0 - alpha));
    }
    A_INT(a, D->kind);
    A_INT(a, D->sampler == XCAT_SAMPLER_IN_BATCH ? XCAT_SAMPLER_UNIFORM : D->sampler);
    A_INT(a, D->correction);
    A_INT(a, (D->flags & XCAT_LOSS_REJECT_HITS) != 0);
    A_INT(a, (D->flags & XCAT_LOSS_DISTINCT_NEGATIVES) != 0);
    A_INT(a, c->n);
    A_INT(a, C);
    A_INT(a, c->plan->dim);
    A_INT(a, c->k);
    A_INT(a, c->t);
    A_FLOAT(a, D->scale);
    A_FLOAT(a, D->softcap);
    A_FLOAT(a, beta);
    A_FLOAT(a, corr);
    A_FLOAT(a, logk);
    A_INT(a, logq_on);
    A_INT(a, has_logq);
    A_INT(a, withq);
    A_ULONG(a, D->seed);
    A_ULONG(a, call->step);
    const mat H = tensor_mat(call->hidden), E = tensor_mat(call->items);
    A_MEM(a, H.mem);
    A_ULONG(a, H.off);
    A_LONG(a, H.ld);
    A_MEM(a, E.mem);
    A_ULONG(a, E.off);
    A_LONG(a, E.ld);
    A_MEM(a, call->bias ? xcat_ocl_mem(call->bias) : p->dummy);
    A_ULONG(a, call->bias ? elem_off(call->bias) : 0);
    A_INT(a, call->bias != NULL);
    A_MEM(a, xcat_ocl_mem(call->targets));
    A_ULONG(a, elem_off(call->targets));
    A_INT(a, call->targets->dtype == XCAT_DTYPE_I64);
    A_LONG(a, D->ignore_index);
    A_MEM(a, p->alias_thr ? p->alias_thr : p->dummy);
    A_MEM(a, p->alias_idx ? p->alias_idx : p->dummy);
    A_MEM(a, p->logq ? p->logq : p->dummy);
    A_MEM(a, given ? xcat_ocl_mem(call->negatives) : p->dummy);
    A_ULONG(a, given ? elem_off(call->negatives) : 0);
    A_LONG(a, given ? call->negatives->stride : 0);
    A_INT(a, given && call->negatives->dtype == XCAT_DTYPE_I64);
    A_MEM(a, c->ri_off ? c->ri_off : p->dummy);
    A_MEM(a, c->ri ? c->ri : p->dummy);
    A_INT(a, c->ri_off != NULL);
}

static xcat_status check_tables(const smp_call *c)
{
    const xcat_loss_desc *D = &c->plan->desc;
    const bool need = D->sampler == XCAT_SAMPLER_POPULARITY ||
                      (D->kind == XCAT_LOSS_INBATCH && D->correction != XCAT_CORRECTION_NONE);
    if (need && !c->p->logq)
        return xcat_error(c->ctx, XCAT_ERROR_BAD_STATE, "this loss needs item counts: call "
                          "xcat_loss_plan_set_item_counts first");
    return XCAT_OK;
}

/* Rows per chunk: as many as the entry buffer holds. */
static int64_t chunk_rows(const smp_call *c)
{
    int64_t r = c->p->entries / c->te;
    if (r < 1) r = 1;
    if (c->shmode && r > c->zrows) r = c->zrows;
    if (c->hot && r > SHARED_Z_BYTES / (4 * c->p->nhot)) r = SHARED_Z_BYTES / (4 * c->p->nhot);
    if (r < 1) r = 1;
    return r < c->n ? r : c->n;
}

/* sampled_rows over rows [r0, r0 + nr) in `mode`. */
static xcat_status rows_pass(const smp_call *c, int mode, int64_t r0, int64_t nr,
                             const xcat_tensor *lse, const xcat_tensor *dH)
{
    const ocl_smp_plan *p = c->p;
    const xcat_loss_call *call = c->call;
    const bool hot = c->hot && mode == 1;
    args a = {.k = hot ? (c->shmode ? p->k_rows_shared_hot : p->k_rows_hot)
                       : (c->shmode ? p->k_rows_shared : p->k_rows)};
    smp_args(&a, c);
    A_INT(&a, mode);
    A_LONG(&a, r0);
    A_MEM(&a, call->row_weights ? xcat_ocl_mem(call->row_weights) : p->dummy);
    A_ULONG(&a, call->row_weights ? elem_off(call->row_weights) : 0);
    A_INT(&a, call->row_weights != NULL);
    A_MEM(&a, p->gfac);
    A_MEM(&a, p->rowloss);
    A_MEM(&a, lse ? xcat_ocl_mem(lse) : p->dummy);
    A_ULONG(&a, lse ? elem_off(lse) : 0);
    A_INT(&a, lse != NULL);
    A_MEM(&a, p->ent_item);
    A_MEM(&a, p->ent_val);
    A_MEM(&a, dH ? xcat_ocl_mem(dH) : p->dummy);
    A_ULONG(&a, dH ? elem_off(dH) : 0);
    A_LONG(&a, dH ? dH->stride : 0);
    A_INT(&a, dH != NULL);
    A_MEM(&a, c->ZG ? c->ZG : p->dummy);
    A_INT(&a, c->nsh);
    A_INT(&a, c->shmode);
    A_MEM(&a, hot ? c->GH : p->dummy);
    A_INT(&a, hot ? p->nhot : 0);
    A_MEM(&a, hot ? p->hot_col : p->dummy);
    const size_t lw = (size_t)p->swg, gw = (size_t)nr * lw;
    return launch(c->ctx, &a, 1, &gw, &lw, "enqueueing sampled_rows");
}

xcat_status xcat_ocl_sampled_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                     xcat_tensor *loss, xcat_tensor *lse)
{
    smp_call c;
    xcat_status st = call_init(&c, plan, call);
    if (!st) st = check_tables(&c);
    if (!st) st = shared_setup(&c, false);
    const int64_t rc = chunk_rows(&c);
    for (int64_t r0 = 0; !st && r0 < c.n; r0 += rc) {
        const int64_t nr = c.n - r0 < rc ? c.n - r0 : rc;
        if (c.shmode) st = shared_dots(&c, r0, nr);
        if (!st) st = rows_pass(&c, 0, r0, nr, lse, NULL);
    }
    if (!st && plan->desc.reduction == XCAT_REDUCTION_NONE) {
        cl_int err = clEnqueueCopyBuffer(xcat_ocl(c.ctx)->queue, c.p->rowloss,
                                         xcat_ocl_mem(loss), 0, loss->offset, (size_t)c.n * 4, 0,
                                         NULL, NULL);
        if (err != CL_SUCCESS) st = xcat_ocl_error(c.ctx, err, "copying the row losses");
    } else if (!st) {
        args a = {.k = c.p->k_reduce};
        A_LONG(&a, c.n);
        A_MEM(&a, c.p->rowloss);
        A_FLOAT(&a, call->reduction_scale);
        A_MEM(&a, xcat_ocl_mem(loss));
        A_ULONG(&a, elem_off(loss));
        const size_t lw = (size_t)c.p->swg;
        st = launch(c.ctx, &a, 1, &lw, &lw, "enqueueing sampled_reduce");
    }
    st = finish(c.ctx, st);
    call_release(&c);
    return st;
}

/* Zero the first `cols` columns of a rows×stride tensor. */
static xcat_status zero_rows(const smp_call *c, const xcat_tensor *t, int64_t rows, int64_t cols)
{
    args a = {.k = c->p->k_zero};
    A_MEM(&a, xcat_ocl_mem(t));
    A_ULONG(&a, elem_off(t));
    A_LONG(&a, cols == 1 ? 1 : t->stride);
    A_LONG(&a, rows);
    A_INT(&a, cols);
    const size_t lw = (size_t)c->p->swg, gw = (size_t)cdiv(rows * cols, c->p->swg) * lw;
    return launch(c->ctx, &a, 1, &gw, &lw, "enqueueing sampled_zero");
}

/* The dE / db outputs of the accumulation kernels: (dE, offset, stride, has_dE, db, offset,
 * has_db), a dummy buffer for an absent one. */
static void grad_out_args(args *a, const ocl_smp_plan *p, const xcat_tensor *d_items,
                          const xcat_tensor *d_bias)
{
    A_MEM(a, d_items ? xcat_ocl_mem(d_items) : p->dummy);
    A_ULONG(a, d_items ? elem_off(d_items) : 0);
    A_LONG(a, d_items ? d_items->stride : 0);
    A_INT(a, d_items != NULL);
    A_MEM(a, d_bias ? xcat_ocl_mem(d_bias) : p->dummy);
    A_ULONG(a, d_bias ? elem_off(d_bias) : 0);
    A_INT(a, d_bias != NULL);
}

/* Stable counting sort of `nent` items (−1 skipped) by item bucket: p->perm lists their indices
 * bucket by bucket, in index order within a bucket; p->bases / p->totals locate the buckets. */
static xcat_status bucket_sort(const smp_call *c, cl_mem items, int64_t nent)
{
    const ocl_smp_plan *p = c->p;
    const int64_t nblk = cdiv(nent, p->be);
    const int C = (int)c->plan->classes;
    const size_t lw = (size_t)p->swg, g_blk = (size_t)nblk * lw, g_nb = (size_t)p->nb * lw;
    args a = {.k = p->k_bcount};
    A_MEM(&a, items);
    A_LONG(&a, nent);
    A_INT(&a, C);
    A_INT(&a, p->nb);
    A_INT(&a, p->be);
    A_MEM(&a, p->counts);
    A_INT(&a, nblk);
    xcat_status st = launch(c->ctx, &a, 1, &g_blk, &lw, "enqueueing sampled_bucket_count");
    if (st) return st;
    args b = {.k = p->k_bscan};
    A_MEM(&b, p->counts);
    A_INT(&b, nblk);
    A_MEM(&b, p->totals);
    st = launch(c->ctx, &b, 1, &g_nb, &lw, "enqueueing sampled_bucket_scan");
    if (st) return st;
    args e = {.k = p->k_bbase};
    A_MEM(&e, p->totals);
    A_INT(&e, p->nb);
    A_MEM(&e, p->bases);
    const size_t one = 1;
    st = launch(c->ctx, &e, 1, &one, &one, "enqueueing sampled_bucket_base");
    if (st) return st;
    args f = {.k = p->k_bscatter};
    A_MEM(&f, items);
    A_LONG(&f, nent);
    A_INT(&f, C);
    A_INT(&f, p->nb);
    A_INT(&f, p->be);
    A_MEM(&f, p->counts);
    A_INT(&f, nblk);
    A_MEM(&f, p->bases);
    A_MEM(&f, p->perm);
    return launch(c->ctx, &f, 1, &g_blk, &lw, "enqueueing sampled_bucket_scatter");
}

/* dE/db of one chunk's entries: the bucket sort, then per-bucket sums in entry order. */
static xcat_status dE_pass(const smp_call *c, int64_t r0, int64_t nr, const xcat_tensor *d_items,
                           const xcat_tensor *d_bias)
{
    const ocl_smp_plan *p = c->p;
    const int C = (int)c->plan->classes;
    const size_t lw = (size_t)p->swg, g_nb = (size_t)p->nb * lw;
    xcat_status st = bucket_sort(c, p->ent_item, nr * c->te);
    if (st) return st;
    const mat H = tensor_mat(c->call->hidden);
    args g = {.k = p->per_item ? p->k_baccum_items : p->k_baccum};
    A_MEM(&g, p->perm);
    if (p->per_item) A_MEM(&g, p->perm2);
    A_MEM(&g, p->bases);
    A_MEM(&g, p->totals);
    A_MEM(&g, p->ent_item);
    A_MEM(&g, p->ent_val);
    A_INT(&g, c->te);
    A_LONG(&g, r0);
    if (p->per_item) {
        A_INT(&g, C);
        A_INT(&g, p->nb);
    }
    A_INT(&g, c->plan->dim);
    A_MEM(&g, H.mem);
    A_ULONG(&g, H.off);
    A_LONG(&g, H.ld);
    grad_out_args(&g, p, d_items, d_bias);
    return launch(c->ctx, &g, 1, &g_nb, &lw, "enqueueing sampled_bucket_accum");
}

/* The shared columns' gradients into dE/db: columns bucket-sorted by item, then added in
 * column order per bucket (repeated items add up deterministically). */
static xcat_status shared_scatter(const smp_call *c, const xcat_tensor *d_items,
                                  const xcat_tensor *d_bias)
{
    const ocl_smp_plan *p = c->p;
    xcat_status st = bucket_sort(c, c->sh_items, c->nsh);
    if (st) return st;
    args a = {.k = p->k_shaccum};
    A_MEM(&a, p->perm);
    A_MEM(&a, p->bases);
    A_MEM(&a, p->totals);
    A_MEM(&a, c->sh_items);
    A_MEM(&a, c->dEsh);
    A_MEM(&a, c->dbsh);
    A_INT(&a, c->plan->dim);
    grad_out_args(&a, p, d_items, d_bias);
    const size_t lw = (size_t)p->swg, gw = (size_t)p->nb * lw;
    return launch(c->ctx, &a, 1, &gw, &lw, "enqueueing sampled_shared_accum");
}

/* A chunk's shared-candidate gradients from G (in ZG): dH += G·E_s, dE_s += Gᵀ·H, db_s += Σ G. */
static xcat_status shared_grads(const smp_call *c, int64_t r0, int64_t nr, const xcat_tensor *dH,
                                bool want_dE, bool want_db)
{
    const ocl_smp_plan *p = c->p;
    const int64_t d = c->plan->dim;
    const mat G = {c->ZG, 0, c->nsh}, Es = {c->Esh, 0, d};
    xcat_status st = XCAT_OK;
    if (dH)
        st = xcat_ocl_gemm_launch(c->ctx, p->k_nn, &p->g, nr, d, c->nsh, 1.0f, G, Es, 1.0f,
                                  chunk_of(tensor_mat(dH), r0), 1, 0);
    if (!st && want_dE)
        st = xcat_ocl_gemm_launch(c->ctx, p->k_tn, &p->g, c->nsh, d, nr, 1.0f, G,
                                  chunk_of(tensor_mat(c->call->hidden), r0), r0 ? 1.0f : 0.0f,
                                  (mat){c->dEsh, 0, d}, 1, 0);
    if (!st && want_db) {
        args a = {.k = p->k_colsum};
        A_INT(&a, nr);
        A_INT(&a, c->nsh);
        A_MEM(&a, c->ZG);
        A_MEM(&a, c->dbsh);
        const size_t lw = (size_t)p->swg, gw = (size_t)cdiv(c->nsh, p->swg) * lw;
        st = launch(c->ctx, &a, 1, &gw, &lw, "enqueueing sampled_colsum_add");
    }
    return st;
}

/* Hot items in this backward: a popularity plan with a hot list, and dE or db wanted. */
static xcat_status hot_setup_call(smp_call *c, bool grads)
{
    const ocl_smp_plan *p = c->p;
    c->hot = grads && p->nhot > 0 && c->plan->desc.sampler == XCAT_SAMPLER_POPULARITY;
    if (!c->ctx->ignore_env) { /* XCAT_CL_SAMPLED_HOT=0 (testing): every item bucket-sorted */
        const char *v = getenv("XCAT_CL_SAMPLED_HOT");
        if (v && v[0] == '0') c->hot = 0;
    }
    if (!c->hot) return XCAT_OK;
    const int64_t rows = chunk_rows(c), d = c->plan->dim;
    xcat_status st = xcat_ocl_buffer(c->ctx, (size_t)(rows * p->nhot) * 4, false, &c->GH);
    if (!st) st = xcat_ocl_buffer(c->ctx, (size_t)(p->nhot * d) * 4, true, &c->dEhot);
    if (!st) st = xcat_ocl_buffer(c->ctx, (size_t)p->nhot * 4, true, &c->dbhot);
    return st;
}

/* A chunk's hot-item gradients from GH: dE_hot += GHᵀ·H_chunk, db_hot += column sums. */
static xcat_status hot_grads(const smp_call *c, int64_t r0, int64_t nr, const xcat_tensor *dE,
                             const xcat_tensor *db)
{
    const ocl_smp_plan *p = c->p;
    const int64_t d = c->plan->dim;
    xcat_status st = XCAT_OK;
    if (dE)
        st = xcat_ocl_gemm_launch(c->ctx, p->k_tn, &p->g, p->nhot, d, nr, 1.0f,
                                  (mat){c->GH, 0, p->nhot},
                                  chunk_of(tensor_mat(c->call->hidden), r0), 1.0f,
                                  (mat){c->dEhot, 0, d}, 1, 0);
    if (!st && db) {
        args a = {.k = p->k_colsum};
        A_INT(&a, nr);
        A_INT(&a, p->nhot);
        A_MEM(&a, c->GH);
        A_MEM(&a, c->dbhot);
        const size_t lw = (size_t)p->swg, gw = (size_t)cdiv(p->nhot, p->swg) * lw;
        st = launch(c->ctx, &a, 1, &gw, &lw, "enqueueing sampled_colsum_add");
    }
    return st;
}

static xcat_status hot_scatter(const smp_call *c, const xcat_tensor *d_items,
                               const xcat_tensor *d_bias)
{
    const ocl_smp_plan *p = c->p;
    args a = {.k = p->k_hotadd};
    A_MEM(&a, p->hot_items);
    A_MEM(&a, c->dEhot);
    A_MEM(&a, c->dbhot);
    A_INT(&a, c->plan->dim);
    grad_out_args(&a, p, d_items, d_bias);
    const size_t lw = (size_t)p->swg, gw = (size_t)p->nhot * lw;
    return launch(c->ctx, &a, 1, &gw, &lw, "enqueueing sampled_hot_add");
}

xcat_status xcat_ocl_sampled_backward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                      bool reuse, const xcat_tensor *grad_loss,
                                      xcat_tensor *d_hidden, xcat_tensor *d_items,
                                      xcat_tensor *d_bias)
{
    (void)reuse; /* every pass redraws and recomputes: nothing to reuse */
    smp_call c;
    xcat_status st = call_init(&c, plan, call);
    if (!st) st = check_tables(&c);
    const ocl_smp_plan *p = c.p;
    const xcat_loss_desc *D = &plan->desc;
    if (!st) { /* g_i */
        args a = {.k = p->k_gfac};
        A_LONG(&a, c.n);
        A_MEM(&a, xcat_ocl_mem(call->targets));
        A_ULONG(&a, elem_off(call->targets));
        A_INT(&a, call->targets->dtype == XCAT_DTYPE_I64);
        A_LONG(&a, D->ignore_index);
        A_MEM(&a, call->row_weights ? xcat_ocl_mem(call->row_weights) : p->dummy);
        A_ULONG(&a, call->row_weights ? elem_off(call->row_weights) : 0);
        A_INT(&a, call->row_weights != NULL);
        A_MEM(&a, grad_loss ? xcat_ocl_mem(grad_loss) : p->dummy);
        A_ULONG(&a, grad_loss ? elem_off(grad_loss) : 0);
        A_INT(&a, !grad_loss ? 0 : D->reduction == XCAT_REDUCTION_NONE ? 2 : 1);
        A_FLOAT(&a, call->reduction_scale);
        A_MEM(&a, p->gfac);
        const size_t lw = (size_t)p->swg, gw = (size_t)cdiv(c.n, p->swg) * lw;
        st = launch(c.ctx, &a, 1, &gw, &lw, "enqueueing sampled_gfac");
    }
    if (!st && d_items) st = zero_rows(&c, d_items, plan->classes, plan->dim);
    if (!st && d_bias) st = zero_rows(&c, d_bias, plan->classes, 1);
    if (!st) st = shared_setup(&c, true);
    if (!st) st = hot_setup_call(&c, d_items || d_bias);
    const int64_t rc = chunk_rows(&c);
    for (int64_t r0 = 0; !st && r0 < c.n; r0 += rc) {
        const int64_t nr = c.n - r0 < rc ? c.n - r0 : rc;
        if (c.shmode) st = shared_dots(&c, r0, nr);
        if (!st) st = rows_pass(&c, 1, r0, nr, NULL, d_hidden);
        if (!st && c.shmode) st = shared_grads(&c, r0, nr, d_hidden, d_items, d_bias);
        if (!st && c.hot) st = hot_grads(&c, r0, nr, d_items, d_bias);
        if (st || (!d_items && !d_bias)) continue;
        st = dE_pass(&c, r0, nr, d_items, d_bias);
    }
    if (!st && c.shmode && (d_items || d_bias)) st = shared_scatter(&c, d_items, d_bias);
    if (!st && c.hot) st = hot_scatter(&c, d_items, d_bias);
    st = finish(c.ctx, st);
    call_release(&c);
    return st;
}

xcat_status xcat_ocl_sampled_draw_negatives(xcat_loss_plan *plan, const xcat_loss_call *call,
                                            xcat_tensor *out)
{
    smp_call c;
    xcat_status st = call_init(&c, plan, call);
    if (!st) st = check_tables(&c);
    if (!st && c.n * c.k > 0) {
        args a = {.k = c.p->k_draw};
        smp_args(&a, &c);
        A_MEM(&a, xcat_ocl_mem(out));
        A_ULONG(&a, elem_off(out));
        A_LONG(&a, out->stride);
        A_INT(&a, out->dtype == XCAT_DTYPE_I64);
        const size_t lw = (size_t)c.p->swg, gw = (size_t)cdiv(c.n * c.k, c.p->swg) * lw;
        st = launch(c.ctx, &a, 1, &gw, &lw, "enqueueing sampled_draw");
    }
    st = finish(c.ctx, st);
    call_release(&c);
    return st;
}
