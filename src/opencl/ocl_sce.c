/* ocl_sce.c — XCAT_LOSS_SCE on OpenCL: the per-bucket CE (src/sce.c does directions, selection
 * through topk.cl, and the reduction; cl/sce.cl has the kernels).
 *
 * Forward, buckets in waves of W: gather the wave's selected rows (W·k_x × d) and items
 * (W·k_y × d) into dense blocks, one batched GEMM for the W logit blocks (k_x × k_y each), one
 * row kernel for their losses; then every row's best bucket from integer keys (sce.cl), so the
 * result does not depend on the order of the buckets and no float atomics are used.
 *
 * Backward: only the rows a bucket won are recomputed (about N rows against the forward's
 * n_b·k_x). The host plan (src/sce.c) lists them contiguously by bucket; a wave is a run of
 * buckets with at most W·k_x rows. Per wave: gather those rows, a batched GEMM over an exact
 * list of (bucket, row-tile) tiles gives their logits, a row kernel turns them into G in place,
 * dH_R = G·E_Y (batched, scattered to the rows), dE_Y = Gᵀ·H_R (batched) then added into dE
 * bucket by bucket in order (items are distinct within a bucket), db likewise. The positives'
 * terms come last: per positive item in row order.
 *
 * Mixed directions: the Gaussian mixing matrix is generated chunk by chunk on the device
 * (xr_gauss12, the same numbers as the CPU's), Ω-partials of the chunks by one batched GEMM,
 * summed in chunk order.
 *
 * Testing knobs (read unless the context has XCAT_CONTEXT_IGNORE_ENV): XCAT_CL_SCE_WAVE=W buckets
 * per wave (default: as many as fit 512 MiB on a GPU, 64 MiB on a CPU device),
 * XCAT_CL_SCE_MIX_CHUNK=R rows per mixing chunk. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_launch.h"
#include "sce.h"

#define WAVE_BYTES_GPU ((int64_t)512 << 20)
#define WAVE_BYTES_CPU ((int64_t)64 << 20)
#define MIX_CHUNK 2048                   /* rows of the mixing matrix per batch */
#define MIX_BYTES ((int64_t)64 << 20)    /* R and the partial directions of one pass, each */

typedef struct sce_layout {
    int64_t nb, kx, ky, d, n;
    int64_t wave;                  /* buckets per wave */
    size_t wave_bytes, state_bytes, total;
} sce_layout;

typedef struct ocl_sce_plan {
    sce_layout L;
    gemm_cfg g;
    int vec_loads, wg;
    int64_t mix_chunk;                  /* rows of the mixing matrix per batch */
    cl_kernel k_init, k_gather, k_nt, k_nn, k_tn, k_fwd, k_pick, k_best, k_coef, k_scatter,
        k_add_items, k_add_bias, k_pos_items, k_pos_rows, k_zero, k_mix_r, k_sum, k_plain;
    cl_mem lb, lseb;                    /* n_b·k_x: every slot's loss and lse */
    cl_mem key, flat, cp, gfac;         /* per row */
    cl_mem hx, ey, s, dhr, dey;         /* wave blocks (backward: H_R, E_Y, G, dH_R, dE_Y) */
    cl_mem brows, boff, tiles, pitems, poff, prows; /* the backward's host plan, uploaded */
} ocl_sce_plan;

static xcat_status make_layout(const xcat_context *ctx, const xcat_loss_desc *desc,
                               int64_t max_rows, int64_t dim, sce_layout *L)
{
    const xcat_ocl_state *s = xcat_ocl(ctx);
    if (max_rows > INT32_MAX || dim > INT32_MAX)
        return xcat_error((xcat_context *)ctx, XCAT_ERROR_UNSUPPORTED, "OpenCL SCE: max_rows "
                          "and dim must be < 2^31");
    L->nb = desc->sce_buckets;
    L->kx = desc->sce_rows_per_bucket < max_rows ? desc->sce_rows_per_bucket : max_rows;
    L->ky = desc->sce_items_per_bucket;
    L->d = dim;
    L->n = max_rows;
    /* a bucket's blocks: logits, its rows and items, their gradients */
    const int64_t per = 4 * (L->kx * L->ky + 2 * L->kx * dim + 2 * L->ky * dim);
    int64_t budget = s->info.is_gpu ? WAVE_BYTES_GPU : WAVE_BYTES_CPU;
    if (s->info.global_mem_bytes > 0 && (int64_t)s->info.global_mem_bytes / 8 < budget)
        budget = (int64_t)s->info.global_mem_bytes / 8;
    int64_t w = budget / per;
    const int64_t amax = s->info.max_alloc_bytes > 0 ? (int64_t)s->info.max_alloc_bytes : 0;
    if (amax && w * L->kx * L->ky * 4 > amax) w = amax / (L->kx * L->ky * 4);
    if (!ctx->ignore_env) { /* testing: XCAT_CL_SCE_WAVE=buckets per wave */
        const char *v = getenv("XCAT_CL_SCE_WAVE");
        const long long e = v ? atoll(v) : 0;
        if (e >= 1) w = e;
    }
    if (w > L->nb) w = L->nb;
    if (w > 65535) w = 65535; /* NDRange dimension 1 */
    if (w < 1) w = 1;
    L->wave = w;
    L->wave_bytes = (size_t)(w * per);
    L->state_bytes = xcat_sce_state_bytes(desc, max_rows, dim);
    /* slots (2·n_b·k_x), rows (key, flat, cp, g, rows, positives: 3), offsets, tiles */
    L->total = L->wave_bytes + L->state_bytes + (size_t)(L->nb * L->kx) * 8 +
               (size_t)max_rows * 4 * 8 + (size_t)(L->nb + 1) * 4 +
               (size_t)(L->nb + max_rows) * 8;
    return XCAT_OK;
}

xcat_status xcat_ocl_sce_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                        int64_t max_rows, int64_t classes, int64_t dim,
                                        size_t *bytes)
{
    (void)classes;
    sce_layout L = {0};
    xcat_status st = make_layout(ctx, desc, max_rows, dim, &L);
    if (!st) *bytes = L.total;
    return st;
}

void xcat_ocl_sce_plan_release(xcat_loss_plan *plan)
{
    ocl_sce_plan *p = plan->backend_plan;
    if (!p) return;
    const cl_kernel ks[] = {p->k_init,      p->k_gather,    p->k_nt,        p->k_nn,
                            p->k_tn,        p->k_fwd,       p->k_pick,      p->k_best,
                            p->k_coef,      p->k_scatter,   p->k_add_items, p->k_add_bias,
                            p->k_pos_items, p->k_pos_rows,  p->k_zero,      p->k_mix_r,
                            p->k_sum,       p->k_plain};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        if (ks[i]) clReleaseKernel(ks[i]);
    const cl_mem ms[] = {p->lb,  p->lseb, p->key,   p->flat,   p->cp,   p->gfac,
                         p->hx,  p->ey,   p->s,     p->dhr,    p->dey,  p->brows,
                         p->boff, p->tiles, p->pitems, p->poff, p->prows};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (ms[i]) clReleaseMemObject(ms[i]);
    xcat_host_free(plan->ctx, p);
    plan->backend_plan = NULL;
}

xcat_status xcat_ocl_sce_plan_init(xcat_loss_plan *plan)
{
    xcat_context *ctx = plan->ctx;
    const xcat_ocl_state *s = xcat_ocl(ctx);
    ocl_sce_plan *p = xcat_host_calloc(ctx, sizeof *p, 64);
    if (!p) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "allocating the OpenCL SCE plan");
    plan->backend_plan = p;
    sce_layout *L = &p->L;
    xcat_status st = make_layout(ctx, &plan->desc, plan->max_rows, plan->dim, L);
    const size_t wmax = s->max_wg_size < s->max_wi_sizes[0] ? s->max_wg_size : s->max_wi_sizes[0];
    p->wg = pow2_at_most(wmax, s->info.is_gpu ? 128 : 16);
    p->mix_chunk = MIX_CHUNK;
    if (!ctx->ignore_env) { /* testing: XCAT_CL_SCE_MIX_CHUNK=rows per mixing batch */
        const char *v = getenv("XCAT_CL_SCE_MIX_CHUNK");
        const long long e = v ? atoll(v) : 0;
        if (e >= 1 && e <= (1 << 20)) p->mix_chunk = e;
    }
    cl_program prog = NULL;
    if (!st) st = xcat_ocl_gemm_choose(ctx, false, &p->g, &p->vec_loads);
    if (!st) {
        char gp[256], prelude[512];
        xcat_ocl_gemm_prelude(&p->g, p->vec_loads, gp, sizeof gp);
        /* ce.cl's kernels come along for its helpers: their sizes set to SCE_WG too */
        snprintf(prelude, sizeof prelude,
                 "%s#define SCE_WG %d\n#define ROW_WG %d\n#define RED_WG %d\n#define EW %d\n"
                 "#define CS_X %d\n#define CS_Y 1\n",
                 gp, p->wg, p->wg, p->wg, p->wg, p->wg);
        static const char *const sources[] = {"rng.cl", "gemm.cl", "ce.cl", "sce.cl", NULL};
        st = xcat_ocl_program(ctx, prelude, sources, "-cl-std=CL1.2", &prog);
    }
    struct {
        cl_kernel *k;
        const char *name;
    } ks[] = {{&p->k_init, "sce_init_rows"},      {&p->k_gather, "sce_gather"},
              {&p->k_nt, "sce_bgemm_nt"},         {&p->k_nn, "sce_bgemm_nn"},
              {&p->k_tn, "sce_bgemm_tn"},         {&p->k_fwd, "sce_fwd_rows"},
              {&p->k_pick, "sce_pick"},           {&p->k_best, "sce_best"},
              {&p->k_coef, "sce_bwd_coef"},       {&p->k_scatter, "sce_scatter_rows"},
              {&p->k_add_items, "sce_add_items"}, {&p->k_add_bias, "sce_add_bias"},
              {&p->k_pos_items, "sce_pos_items"}, {&p->k_pos_rows, "sce_pos_rows"},
              {&p->k_zero, "sce_zero"},           {&p->k_mix_r, "sce_mix_r"},
              {&p->k_sum, "sce_sum_parts"},       {&p->k_plain, "sce_plain_dirs"}};
    for (size_t i = 0; !st && i < sizeof ks / sizeof ks[0]; i++)
        st = xcat_ocl_kernel(ctx, prog, ks[i].name, ks[i].k);
    if (!st) {
        const cl_kernel gk[] = {p->k_nt, p->k_nn, p->k_tn};
        st = xcat_ocl_check_wg(ctx, gk, 3, xcat_ocl_gemm_wg(&p->g));
    }
    const int64_t n = plan->max_rows, w = L->wave, d = L->d;
    const struct {
        cl_mem *m;
        int64_t bytes;
    } bufs[] = {{&p->lb, L->nb * L->kx * 4},
                {&p->lseb, L->nb * L->kx * 4},
                {&p->key, n * 4},
                {&p->flat, n * 4},
                {&p->cp, n * 4},
                {&p->gfac, n * 4},
                {&p->hx, w * L->kx * d * 4},
                {&p->ey, w * L->ky * d * 4},
                {&p->s, w * L->kx * L->ky * 4},
                {&p->dhr, w * L->kx * d * 4},
                {&p->dey, w * L->ky * d * 4},
                {&p->brows, n * 4},
                {&p->boff, (L->nb + 1) * 4},
                {&p->tiles, (L->nb + n) * 8},
                {&p->pitems, n * 4},
                {&p->poff, (n + 1) * 4},
                {&p->prows, n * 4}};
    for (size_t i = 0; !st && i < sizeof bufs / sizeof bufs[0]; i++)
        st = xcat_ocl_buffer(ctx, (size_t)bufs[i].bytes, false, bufs[i].m);
    if (st) {
        xcat_ocl_sce_plan_release(plan);
        return st;
    }
    plan->workspace = NULL;
    plan->workspace_bytes = L->total;
    return XCAT_OK;
}

/* ---- launches ------------------------------------------------------------------------------ */

/* What every bucket kernel needs about the call. */
typedef struct sce_io {
    mat H, E;
    cl_mem b, y;
    uint64_t offb, offy;
    int has_b, y64;
    float scale, cap;
} sce_io;

static sce_io io_of(const xcat_loss_plan *plan, const xcat_loss_call *call, cl_mem dummy)
{
    return (sce_io){.H = tensor_mat(call->hidden), .E = tensor_mat(call->items),
                    .b = call->bias ? xcat_ocl_mem(call->bias) : dummy,
                    .offb = call->bias ? elem_off(call->bias) : 0,
                    .has_b = call->bias != NULL, .y = xcat_ocl_mem(call->targets),
                    .offy = elem_off(call->targets),
                    .y64 = call->targets->dtype == XCAT_DTYPE_I64, .scale = plan->desc.scale,
                    .cap = plan->desc.softcap};
}

static xcat_status run1(xcat_context *ctx, const args *a, int64_t items, size_t local,
                        const char *what)
{
    if (items <= 0) return XCAT_OK;
    const size_t global = (size_t)cdiv(items, (int64_t)local) * local;
    return launch(ctx, a, 1, &global, &local, what);
}

/* Element-wise kernels run in groups of 64 (or the device's limit). */
static size_t ew_local(const xcat_context *ctx)
{
    const xcat_ocl_state *s = xcat_ocl(ctx);
    return (size_t)pow2_at_most(s->max_wg_size < s->max_wi_sizes[0] ? s->max_wg_size
                                                                     : s->max_wi_sizes[0], 64);
}

/* A kernel over a rows × cols matrix (sce.cl's row-shaped kernels): dimension 0 the column,
 * padded to the group size, dimension 1 the rows, striding past the 65,535 groups NVIDIA allows
 * there. No per-element 64-bit division (the flat 1-D form of the gather moved 0.4 TB/s on an
 * H200). */
static xcat_status run_rows(xcat_context *ctx, const args *a, int64_t rows, int64_t cols,
                            const char *what)
{
    if (rows <= 0 || cols <= 0) return XCAT_OK;
    const size_t lx = ew_local(ctx);
    const size_t global[2] = {(size_t)cdiv(cols, (int64_t)lx) * lx,
                              (size_t)(rows < 65535 ? rows : 65535)},
                 local[2] = {lx, 1};
    return launch(ctx, a, 2, global, local, what);
}

static xcat_status gather(xcat_context *ctx, ocl_sce_plan *p, int64_t n, cl_mem idx,
                          uint64_t offi, mat src, cl_mem dst)
{
    args a = {.k = p->k_gather};
    A_INT(&a, n);
    A_INT(&a, p->L.d);
    A_MEM(&a, idx);
    A_ULONG(&a, offi);
    A_MEM(&a, src.mem);
    A_ULONG(&a, src.off);
    A_LONG(&a, src.ld);
    A_MEM(&a, dst);
    return run_rows(ctx, &a, n, p->L.d, "SCE gather");
}

/* One batched GEMM (sce.cl SCE_BGEMM): operand X is (buffer, offset, ld, per-batch stride,
 * per-row-offset stride). */
typedef struct bop {
    cl_mem mem;
    uint64_t off;
    int64_t ld;
    uint64_t sz, sr;
} bop;

typedef struct bgemm {
    cl_kernel k;
    int64_t M, N, K;
    int var;
    int64_t z0, t0, ntiles, batches; /* ntiles > 0: the tile list; else `batches` in dim 1 */
    bop A, B, C;
    float beta;
} bgemm;

static xcat_status bgemm_run(xcat_context *ctx, ocl_sce_plan *p, const bgemm *m)
{
    const int wg = xcat_ocl_gemm_wg(&p->g);
    args a = {.k = m->k};
    A_INT(&a, m->M);
    A_INT(&a, m->N);
    A_INT(&a, m->K);
    A_INT(&a, m->var);
    A_MEM(&a, p->boff);
    A_INT(&a, m->z0);
    A_MEM(&a, p->tiles);
    A_INT(&a, m->t0);
    A_INT(&a, m->ntiles > 0);
    A_FLOAT(&a, 1.0f);
    const bop *ops[3] = {&m->A, &m->B, &m->C};
    for (int i = 0; i < 3; i++) {
        if (i == 2) A_FLOAT(&a, m->beta);
        A_MEM(&a, ops[i]->mem);
        A_ULONG(&a, ops[i]->off);
        A_LONG(&a, ops[i]->ld);
        A_ULONG(&a, ops[i]->sz);
        A_ULONG(&a, ops[i]->sr);
    }
    const int64_t ntn = cdiv(m->N, p->g.bn);
    const int64_t groups = m->ntiles > 0 ? m->ntiles * ntn : cdiv(m->M, p->g.bm) * ntn;
    if (groups <= 0) return XCAT_OK;
    const size_t global[2] = {(size_t)groups * (size_t)wg,
                              (size_t)(m->ntiles > 0 ? 1 : m->batches)};
    const size_t local[2] = {(size_t)wg, 1};
    return launch(ctx, &a, 2, global, local, "enqueueing an SCE batched GEMM");
}

/* The row state: positive logits, empty bests. */
static xcat_status init_rows(xcat_context *ctx, ocl_sce_plan *p, const xcat_loss_plan *plan,
                             const sce_io *io, int64_t n)
{
    args a = {.k = p->k_init};
    A_INT(&a, p->L.d);
    A_MEM(&a, io->H.mem);
    A_ULONG(&a, io->H.off);
    A_LONG(&a, io->H.ld);
    A_MEM(&a, io->E.mem);
    A_ULONG(&a, io->E.off);
    A_LONG(&a, io->E.ld);
    A_MEM(&a, io->b);
    A_ULONG(&a, io->offb);
    A_INT(&a, io->has_b);
    A_MEM(&a, io->y);
    A_ULONG(&a, io->offy);
    A_INT(&a, io->y64);
    A_LONG(&a, plan->desc.ignore_index);
    A_FLOAT(&a, io->scale);
    A_FLOAT(&a, io->cap);
    A_MEM(&a, xcat_ocl_mem(plan->sce->zpos));
    A_MEM(&a, p->key);
    A_MEM(&a, p->flat);
    return run1(ctx, &a, n * p->wg, (size_t)p->wg, "SCE row init");
}

/* Steps 3–4: every bucket's losses, then each row's best (per-row state of plan->sce). */
static xcat_status bucket_pass(xcat_loss_plan *plan, const xcat_loss_call *call)
{
    xcat_context *ctx = plan->ctx;
    ocl_sce_plan *p = plan->backend_plan;
    xcat_sce *sc = plan->sce;
    const xcat_sce_dims dm = xcat_sce_dims_of(plan, call->rows);
    const int64_t nb = dm.nb, kx = dm.kx, ky = dm.ky, d = p->L.d, n = call->rows;
    const sce_io io = io_of(plan, call, p->key);
    cl_mem X = xcat_ocl_mem(sc->rows), Y = xcat_ocl_mem(sc->items);
    xcat_status st = init_rows(ctx, p, plan, &io, n);
    for (int64_t q0 = 0; !st && q0 < nb; q0 += p->L.wave) {
        const int64_t w = nb - q0 < p->L.wave ? nb - q0 : p->L.wave;
        st = gather(ctx, p, w * kx, X, (uint64_t)(q0 * kx), io.H, p->hx);
        if (!st) st = gather(ctx, p, w * ky, Y, (uint64_t)(q0 * ky), io.E, p->ey);
        if (!st) {
            const bgemm m = {.k = p->k_nt, .M = kx, .N = ky, .K = d, .batches = w,
                             .A = {p->hx, 0, d, (uint64_t)(kx * d), 0},
                             .B = {p->ey, 0, d, (uint64_t)(ky * d), 0},
                             .C = {p->s, 0, ky, (uint64_t)(kx * ky), 0}};
            st = bgemm_run(ctx, p, &m);
        }
        if (st) break;
        args a = {.k = p->k_fwd};
        A_INT(&a, kx);
        A_INT(&a, ky);
        A_MEM(&a, p->s);
        A_MEM(&a, X);
        A_ULONG(&a, q0 * kx);
        A_MEM(&a, Y);
        A_ULONG(&a, q0 * ky);
        A_MEM(&a, io.b);
        A_ULONG(&a, io.offb);
        A_INT(&a, io.has_b);
        A_MEM(&a, io.y);
        A_ULONG(&a, io.offy);
        A_INT(&a, io.y64);
        A_FLOAT(&a, io.scale);
        A_FLOAT(&a, io.cap);
        A_MEM(&a, xcat_ocl_mem(sc->zpos));
        A_MEM(&a, p->lb);
        A_MEM(&a, p->lseb);
        A_ULONG(&a, q0 * kx);
        A_MEM(&a, p->key);
        st = run1(ctx, &a, w * kx * p->wg, (size_t)p->wg, "SCE bucket rows");
    }
    if (!st) {
        args a = {.k = p->k_pick};
        A_INT(&a, nb * kx);
        A_MEM(&a, X);
        A_MEM(&a, p->lb);
        A_MEM(&a, p->key);
        A_MEM(&a, p->flat);
        st = run1(ctx, &a, nb * kx, ew_local(ctx), "SCE best slot");
    }
    if (!st) {
        args a = {.k = p->k_best};
        A_INT(&a, n);
        A_INT(&a, kx);
        A_MEM(&a, p->flat);
        A_MEM(&a, p->lb);
        A_MEM(&a, p->lseb);
        A_MEM(&a, xcat_ocl_mem(sc->best_loss));
        A_MEM(&a, xcat_ocl_mem(sc->best_lse));
        A_MEM(&a, xcat_ocl_mem(sc->best_bucket));
        st = run1(ctx, &a, n, ew_local(ctx), "SCE row state");
    }
    return st;
}

xcat_status xcat_ocl_sce_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                 xcat_tensor *loss, xcat_tensor *lse)
{
    xcat_status st = xcat_sce_select(plan, call);
    if (!st) st = bucket_pass(plan, call);
    /* while the device runs the bucket pass: the backward's grouping of the positives (it
     * depends on the targets only) */
    if (!st) {
        clFlush(xcat_ocl(plan->ctx)->queue);
        st = xcat_sce_group_positives(plan, call);
    }
    if (!st) st = xcat_sce_finish_forward(plan, call, loss, lse);
    return finish(plan->ctx, st);
}

/* ---- backward ------------------------------------------------------------------------------ */

/* Non-blocking: the host arrays (the plan's scratch, the tile list) stay untouched until the
 * call's closing clFinish, so the host goes on with the plan while the device works (a blocking
 * write waits for every kernel queued before it). */
static xcat_status upload(xcat_context *ctx, cl_mem m, const void *src, size_t bytes)
{
    if (bytes == 0) return XCAT_OK;
    cl_int err = clEnqueueWriteBuffer(xcat_ocl(ctx)->queue, m, CL_FALSE, 0, bytes, src, 0, NULL,
                                      NULL);
    return err == CL_SUCCESS ? XCAT_OK : xcat_ocl_error(ctx, err, "uploading the SCE backward plan");
}

static xcat_status zero(xcat_context *ctx, ocl_sce_plan *p, const xcat_tensor *t, int64_t rows)
{
    args a = {.k = p->k_zero};
    A_MEM(&a, xcat_ocl_mem(t));
    A_ULONG(&a, elem_off(t));
    A_LONG(&a, t->stride);
    A_LONG(&a, rows);
    A_INT(&a, t->cols);
    return run_rows(ctx, &a, rows, t->cols, "SCE zeroing a gradient");
}

/* The row tiles of every bucket's winning rows, (bucket, m0), and each bucket's first tile;
 * the host list goes to *list (the caller frees it after the queue has drained). */
static xcat_status upload_tiles(xcat_context *ctx, ocl_sce_plan *p, const xcat_sce_bwd *bw,
                                int64_t nb, int64_t *toff, cl_int **list)
{
    const int64_t bm = p->g.bm;
    int64_t nt = 0;
    for (int64_t q = 0; q < nb; ++q) nt += cdiv(bw->bucket_off[q + 1] - bw->bucket_off[q], bm);
    cl_int *t = xcat_host_alloc(ctx, (size_t)(nt + 1) * 8, 64);
    *list = t;
    if (!t) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "SCE tile list");
    int64_t u = 0;
    for (int64_t q = 0; q < nb; ++q) {
        toff[q] = u;
        for (int64_t m0 = 0; m0 < bw->bucket_off[q + 1] - bw->bucket_off[q]; m0 += bm) {
            t[2 * u] = (cl_int)q;
            t[2 * u + 1] = (cl_int)m0;
            u++;
        }
    }
    toff[nb] = u;
    return upload(ctx, p->tiles, t, (size_t)nt * 8);
}

typedef struct bwd_out {
    const xcat_tensor *dH, *dE, *db;
} bwd_out;

/* One wave of the backward: buckets [q0, q1). */
static xcat_status backward_wave(xcat_loss_plan *plan, const xcat_loss_call *call,
                                 const xcat_sce_bwd *bw, const int64_t *toff, int64_t q0,
                                 int64_t q1, const bwd_out *o)
{
    xcat_context *ctx = plan->ctx;
    ocl_sce_plan *p = plan->backend_plan;
    const int64_t ky = p->L.ky, d = p->L.d, w = q1 - q0;
    const int64_t r0 = bw->bucket_off[q0], nr = bw->bucket_off[q1] - r0;
    const sce_io io = io_of(plan, call, p->key);
    cl_mem Y = xcat_ocl_mem(plan->sce->items);
    xcat_status st = gather(ctx, p, nr, p->brows, (uint64_t)r0, io.H, p->hx);
    if (!st) st = gather(ctx, p, w * ky, Y, (uint64_t)(q0 * ky), io.E, p->ey);
    if (!st) { /* the rows' logits into G */
        const bgemm m = {.k = p->k_nt, .N = ky, .K = d, .var = 1, .z0 = q0, .t0 = toff[q0],
                         .ntiles = toff[q1] - toff[q0], .A = {p->hx, 0, d, 0, (uint64_t)d},
                         .B = {p->ey, 0, d, (uint64_t)(ky * d), 0},
                         .C = {p->s, 0, ky, 0, (uint64_t)ky}};
        st = bgemm_run(ctx, p, &m);
    }
    if (!st) {
        args a = {.k = p->k_coef};
        A_INT(&a, ky);
        A_MEM(&a, p->s);
        A_MEM(&a, p->brows);
        A_ULONG(&a, r0);
        A_MEM(&a, xcat_ocl_mem(plan->sce->best_bucket));
        A_MEM(&a, Y);
        A_MEM(&a, io.b);
        A_ULONG(&a, io.offb);
        A_INT(&a, io.has_b);
        A_MEM(&a, io.y);
        A_ULONG(&a, io.offy);
        A_INT(&a, io.y64);
        A_FLOAT(&a, io.scale);
        A_FLOAT(&a, io.cap);
        A_MEM(&a, xcat_ocl_mem(plan->sce->best_lse));
        A_MEM(&a, xcat_ocl_mem(plan->sce->zpos));
        A_MEM(&a, p->gfac);
        A_MEM(&a, p->cp);
        st = run1(ctx, &a, nr * p->wg, (size_t)p->wg, "SCE backward coefficients");
    }
    if (!st && o->dH) { /* dH_R = G·E_Y, scattered to the rows */
        const bgemm m = {.k = p->k_nn, .N = d, .K = ky, .var = 1, .z0 = q0, .t0 = toff[q0],
                         .ntiles = toff[q1] - toff[q0], .A = {p->s, 0, ky, 0, (uint64_t)ky},
                         .B = {p->ey, 0, d, (uint64_t)(ky * d), 0},
                         .C = {p->dhr, 0, d, 0, (uint64_t)d}};
        st = bgemm_run(ctx, p, &m);
        if (!st) {
            args a = {.k = p->k_scatter};
            A_INT(&a, nr);
            A_INT(&a, d);
            A_MEM(&a, p->brows);
            A_ULONG(&a, r0);
            A_MEM(&a, p->dhr);
            A_MEM(&a, xcat_ocl_mem(o->dH));
            A_ULONG(&a, elem_off(o->dH));
            A_LONG(&a, o->dH->stride);
            st = run_rows(ctx, &a, nr, d, "SCE dH rows");
        }
    }
    if (!st && o->dE) { /* dE_Y = Gᵀ·H_R per bucket */
        const bgemm m = {.k = p->k_tn, .M = ky, .N = d, .var = 2, .z0 = q0, .batches = w,
                         .A = {p->s, 0, ky, 0, (uint64_t)ky}, .B = {p->hx, 0, d, 0, (uint64_t)d},
                         .C = {p->dey, 0, d, (uint64_t)(ky * d), 0}};
        st = bgemm_run(ctx, p, &m);
    }
    /* into dE / db bucket by bucket, in order */
    for (int64_t q = q0; !st && q < q1; ++q) {
        const int64_t rows = bw->bucket_off[q + 1] - bw->bucket_off[q];
        if (rows == 0) continue;
        if (o->dE) {
            args a = {.k = p->k_add_items};
            A_INT(&a, ky);
            A_INT(&a, d);
            A_MEM(&a, Y);
            A_ULONG(&a, q * ky);
            A_MEM(&a, p->dey);
            A_ULONG(&a, (q - q0) * ky * d);
            A_MEM(&a, xcat_ocl_mem(o->dE));
            A_ULONG(&a, elem_off(o->dE));
            A_LONG(&a, o->dE->stride);
            st = run_rows(ctx, &a, ky, d, "SCE dE of a bucket");
        }
        if (!st && o->db) {
            args a = {.k = p->k_add_bias};
            A_INT(&a, ky);
            A_INT(&a, rows);
            A_MEM(&a, p->s);
            A_ULONG(&a, (bw->bucket_off[q] - r0) * ky);
            A_MEM(&a, Y);
            A_ULONG(&a, q * ky);
            A_MEM(&a, xcat_ocl_mem(o->db));
            A_ULONG(&a, elem_off(o->db));
            st = run1(ctx, &a, ky, ew_local(ctx), "SCE db of a bucket");
        }
    }
    return st;
}

/* The positives' terms, after every bucket. */
static xcat_status positives(xcat_loss_plan *plan, const xcat_loss_call *call,
                             const xcat_sce_bwd *bw, const bwd_out *o)
{
    xcat_context *ctx = plan->ctx;
    ocl_sce_plan *p = plan->backend_plan;
    const int64_t d = p->L.d, n = call->rows;
    const sce_io io = io_of(plan, call, p->key);
    xcat_status st = XCAT_OK;
    if (o->dH) {
        args a = {.k = p->k_pos_rows};
        A_INT(&a, n);
        A_INT(&a, d);
        A_MEM(&a, xcat_ocl_mem(plan->sce->best_bucket));
        A_MEM(&a, io.y);
        A_ULONG(&a, io.offy);
        A_INT(&a, io.y64);
        A_MEM(&a, p->cp);
        A_MEM(&a, io.E.mem);
        A_ULONG(&a, io.E.off);
        A_LONG(&a, io.E.ld);
        A_MEM(&a, xcat_ocl_mem(o->dH));
        A_ULONG(&a, elem_off(o->dH));
        A_LONG(&a, o->dH->stride);
        st = run_rows(ctx, &a, n, d, "SCE dH of the positives");
    }
    if (!st && (o->dE || o->db) && bw->npos > 0) {
        args a = {.k = p->k_pos_items};
        A_INT(&a, d);
        A_MEM(&a, p->pitems);
        A_MEM(&a, p->poff);
        A_MEM(&a, p->prows);
        A_MEM(&a, xcat_ocl_mem(plan->sce->best_bucket));
        A_MEM(&a, p->cp);
        A_MEM(&a, io.H.mem);
        A_ULONG(&a, io.H.off);
        A_LONG(&a, io.H.ld);
        A_MEM(&a, o->dE ? xcat_ocl_mem(o->dE) : p->key);
        A_ULONG(&a, o->dE ? elem_off(o->dE) : 0);
        A_LONG(&a, o->dE ? o->dE->stride : 0);
        A_INT(&a, o->dE != NULL);
        A_MEM(&a, o->db ? xcat_ocl_mem(o->db) : p->key);
        A_ULONG(&a, o->db ? elem_off(o->db) : 0);
        A_INT(&a, o->db != NULL);
        st = run1(ctx, &a, bw->npos * p->wg, (size_t)p->wg, "SCE positives");
    }
    return st;
}

static xcat_status backward_pass(xcat_loss_plan *plan, const xcat_loss_call *call,
                                 xcat_sce_bwd *bw, const bwd_out *o)
{
    xcat_context *ctx = plan->ctx;
    ocl_sce_plan *p = plan->backend_plan;
    const int64_t nb = p->L.nb, n = call->rows, kx = xcat_sce_dims_of(plan, n).kx;
    int64_t *toff = xcat_host_alloc(ctx, (size_t)(nb + 1) * sizeof *toff, 64);
    if (!toff) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "SCE tile offsets");
    /* the host plan in two halves, each overlapping device work: the gradients are zeroed
     * while the host sorts rows by winning bucket, and the waves run while it groups the
     * positives (needed only at the end) */
    xcat_status st = XCAT_OK;
    if (o->dH) st = zero(ctx, p, o->dH, n);
    if (!st && o->dE) st = zero(ctx, p, o->dE, plan->classes);
    if (!st && o->db) st = zero(ctx, p, o->db, plan->classes);
    clFlush(xcat_ocl(ctx)->queue);
    xcat_sce_backward_rows(plan, call, bw);
    if (!st) st = upload(ctx, p->gfac, bw->g, (size_t)n * 4);
    if (!st) st = upload(ctx, p->brows, bw->bucket_rows, (size_t)bw->contributing * 4);
    if (!st) st = upload(ctx, p->boff, bw->bucket_off, (size_t)(nb + 1) * 4);
    cl_int *tiles = NULL;
    if (!st) st = upload_tiles(ctx, p, bw, nb, toff, &tiles);
    /* waves: runs of at most `wave` buckets holding at most wave·k_x rows (one bucket's rows
     * never exceed k_x) */
    const int64_t rcap = p->L.wave * kx;
    for (int64_t q0 = 0; !st && q0 < nb;) {
        int64_t q1 = q0 + 1;
        while (q1 < nb && q1 - q0 < p->L.wave &&
               bw->bucket_off[q1 + 1] - bw->bucket_off[q0] <= rcap)
            q1++;
        if (bw->bucket_off[q1] > bw->bucket_off[q0])
            st = backward_wave(plan, call, bw, toff, q0, q1, o);
        q0 = q1;
    }
    clFlush(xcat_ocl(ctx)->queue);
    if (!st) st = xcat_sce_backward_positives(plan, call, bw); /* built by the forward */
    if (!st) st = upload(ctx, p->pitems, bw->pos_items, (size_t)bw->npos * 4);
    if (!st) st = upload(ctx, p->poff, bw->pos_off, (size_t)(bw->npos + 1) * 4);
    if (!st) st = upload(ctx, p->prows, bw->pos_rows, (size_t)bw->pos_count * 4);
    if (!st) st = positives(plan, call, bw, o);
    const cl_int err = clFinish(xcat_ocl(ctx)->queue); /* the tile list is read until here */
    if (!st && err != CL_SUCCESS) st = xcat_ocl_error(ctx, err, "clFinish");
    xcat_host_free(ctx, tiles);
    xcat_host_free(ctx, toff);
    return st;
}

xcat_status xcat_ocl_sce_backward(xcat_loss_plan *plan, const xcat_loss_call *call, bool reuse,
                                  const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                  xcat_tensor *d_items, xcat_tensor *d_bias)
{
    xcat_status st = XCAT_OK;
    if (!reuse) {
        st = xcat_sce_select(plan, call);
        if (!st) st = bucket_pass(plan, call);
    }
    xcat_sce_bwd bw;
    if (!st) st = xcat_sce_backward_read(plan, call, grad_loss, &bw);
    if (st) return finish(plan->ctx, st);
    const bwd_out o = {d_hidden, d_items, d_bias};
    st = backward_pass(plan, call, &bw, &o);
    return finish(plan->ctx, st);
}

/* ---- directions ---------------------------------------------------------------------------- */

/* Plain directions on the device: the host's float formula on the same integer draws (a host
 * loop of 12 Philox words per value took 9 ms at n_b = 1,280, d = 256). */
xcat_status xcat_ocl_sce_plain_directions(xcat_loss_plan *plan, uint64_t step, xcat_tensor *dirs)
{
    ocl_sce_plan *p = plan->backend_plan;
    const int64_t count = p->L.nb * p->L.d;
    args a = {.k = p->k_plain};
    A_LONG(&a, count);
    A_ULONG(&a, plan->desc.seed);
    A_ULONG(&a, step);
    A_FLOAT(&a, (float)pow((double)p->L.d, -0.25));
    A_MEM(&a, xcat_ocl_mem(dirs));
    A_ULONG(&a, elem_off(dirs));
    return run1(plan->ctx, &a, count, ew_local(plan->ctx), "SCE directions");
}


xcat_status xcat_ocl_sce_mix_directions(xcat_loss_plan *plan, const xcat_loss_call *call,
                                        xcat_tensor *dirs)
{
    xcat_context *ctx = plan->ctx;
    ocl_sce_plan *p = plan->backend_plan;
    const int64_t nb = p->L.nb, d = p->L.d, n = call->rows;
    const float f = (float)pow((double)d, -0.25);
    /* chunks per pass: R (chunks·mix_chunk × n_b) and the partials (chunks × n_b × d) each
     * within MIX_BYTES */
    int64_t parts = cdiv(n, p->mix_chunk);
    const int64_t by_r = MIX_BYTES / (p->mix_chunk * nb * 4), by_o = MIX_BYTES / (nb * d * 4);
    if (parts > by_r) parts = by_r;
    if (parts > by_o) parts = by_o;
    if (parts > 65535) parts = 65535;
    if (parts < 1) parts = 1;
    cl_mem R = NULL, P = NULL, roff = NULL;
    cl_int *h = xcat_host_alloc(ctx, (size_t)(parts + 1) * 4, 64);
    xcat_status st = h ? XCAT_OK : xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "SCE mixing");
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)(parts * p->mix_chunk * nb) * 4, false, &R);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)(parts * nb * d) * 4, false, &P);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)(parts + 1) * 4, false, &roff);
    const mat H = tensor_mat(call->hidden);
    const sce_io io = io_of(plan, call, p->key);
    for (int64_t r0 = 0; !st && r0 < n; r0 += parts * p->mix_chunk) {
        const int64_t m = n - r0 < parts * p->mix_chunk ? n - r0 : parts * p->mix_chunk;
        const int64_t np = cdiv(m, p->mix_chunk);
        for (int64_t z = 0; z <= np; ++z) h[z] = (cl_int)(z * p->mix_chunk < m ? z * p->mix_chunk : m);
        st = upload(ctx, roff, h, (size_t)(np + 1) * 4);
        if (st) break;
        args a = {.k = p->k_mix_r};
        A_LONG(&a, r0);
        A_INT(&a, m);
        A_INT(&a, nb);
        A_ULONG(&a, plan->desc.seed);
        A_ULONG(&a, call->step);
        A_MEM(&a, io.y);
        A_ULONG(&a, io.offy);
        A_INT(&a, io.y64);
        A_LONG(&a, plan->desc.ignore_index);
        A_MEM(&a, R);
        st = run1(ctx, &a, m * nb, ew_local(ctx), "SCE mixing matrix");
        if (st) break;
        /* partial z = R_zᵀ·H_z (n_b × d, inner the chunk's rows) */
        args g = {.k = p->k_tn};
        const int wg = xcat_ocl_gemm_wg(&p->g);
        A_INT(&g, nb);
        A_INT(&g, d);
        A_INT(&g, 0);
        A_INT(&g, 2);
        A_MEM(&g, roff);
        A_INT(&g, 0);
        A_MEM(&g, p->tiles);
        A_INT(&g, 0);
        A_INT(&g, 0);
        A_FLOAT(&g, 1.0f);
        A_MEM(&g, R);
        A_ULONG(&g, 0);
        A_LONG(&g, nb);
        A_ULONG(&g, 0);
        A_ULONG(&g, nb);
        A_MEM(&g, H.mem);
        A_ULONG(&g, H.off + (uint64_t)r0 * (uint64_t)H.ld);
        A_LONG(&g, H.ld);
        A_ULONG(&g, 0);
        A_ULONG(&g, H.ld);
        A_FLOAT(&g, 0.0f);
        A_MEM(&g, P);
        A_ULONG(&g, 0);
        A_LONG(&g, d);
        A_ULONG(&g, nb * d);
        A_ULONG(&g, 0);
        const size_t global[2] = {(size_t)(cdiv(nb, p->g.bm) * cdiv(d, p->g.bn) * wg),
                                  (size_t)np};
        const size_t local[2] = {(size_t)wg, 1};
        st = launch(ctx, &g, 2, global, local, "SCE mixing GEMM");
        if (st) break;
        args s = {.k = p->k_sum};
        A_INT(&s, nb * d);
        A_INT(&s, np);
        A_MEM(&s, P);
        A_INT(&s, r0 > 0);
        A_MEM(&s, xcat_ocl_mem(dirs));
        A_FLOAT(&s, f);
        st = run1(ctx, &s, nb * d, ew_local(ctx), "SCE directions");
    }
    if (!st && n == 0) { /* no rows: zero directions */
        args s = {.k = p->k_sum};
        A_INT(&s, nb * d);
        A_INT(&s, 0);
        A_MEM(&s, p->key);
        A_INT(&s, 0);
        A_MEM(&s, xcat_ocl_mem(dirs));
        A_FLOAT(&s, f);
        st = run1(ctx, &s, nb * d, ew_local(ctx), "SCE directions");
    }
    st = finish(ctx, st); /* R and P are in use until the queue drains */
    if (R) clReleaseMemObject(R);
    if (P) clReleaseMemObject(P);
    if (roff) clReleaseMemObject(roff);
    xcat_host_free(ctx, h);
    return st;
}
