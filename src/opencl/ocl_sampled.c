/* ocl_sampled.c — the sampled kinds on OpenCL (kernels: cl/rng.cl + cl/sampled.cl).
 *
 * Rows are processed in chunks whose candidate entries (T = K + 1, plus N − 1 for INBATCH, per
 * row; an int item and a float value each) fit the plan's entry buffer. Forward: per chunk,
 * sampled_rows (mode 0) writes the rows' weighted losses; sampled_reduce sums them in a fixed
 * order (MEAN/SUM). Backward: sampled_gfac forms g_i; dE/db are zeroed; per chunk, sampled_rows
 * (mode 1) writes the entries (item, g_i·dℓ/dz) and the chunk's dH rows, then sampled_dE adds
 * the entries into dE/db with item ownership (no atomics). Everything is deterministic, and the
 * draws are cl/rng.cl's, bit-identical to the CPU backend's.
 *
 * Workspace (device): the entry buffer (ENTRIES_GPU / ENTRIES_CPU entries × 8 bytes, or one
 * row's worth when T is larger), 2 floats per row, and the sampling table (alias threshold,
 * alias index, log q: 12 bytes per item) once xcat_loss_plan_set_item_counts was called. No
 * N×K buffer: the entries are per chunk. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ocl_launch.h"
#include "sampling.h"

#define ENTRIES_GPU ((int64_t)1 << 24)
#define ENTRIES_CPU ((int64_t)1 << 20)

typedef struct ocl_smp_plan {
    int swg, dE_groups;
    int64_t entries; /* capacity of the entry buffer */
    cl_kernel k_rows, k_dE, k_zero, k_reduce, k_draw, k_gfac;
    cl_mem ent_item, ent_val, rowloss, gfac, dummy;
    cl_mem alias_thr, alias_idx, logq; /* NULL until item counts are set */
    uint64_t generation;
} ocl_smp_plan;

static int64_t candidates_per_row(const xcat_loss_desc *d, int64_t k, int64_t n)
{
    return k + 1 + (d->kind == XCAT_LOSS_INBATCH ? n - 1 : 0);
}

xcat_status xcat_ocl_sampled_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                            int64_t max_rows, int64_t classes, int64_t dim,
                                            size_t *bytes)
{
    (void)dim;
    const xcat_ocl_state *s = xcat_ocl(ctx);
    int64_t ent = s->info.is_gpu ? ENTRIES_GPU : ENTRIES_CPU;
    const int64_t t = candidates_per_row(desc, desc->num_negatives, max_rows);
    if (ent < t) ent = t;
    if (ent > t * max_rows) ent = t * max_rows;
    *bytes = (size_t)ent * 8 + (size_t)max_rows * 8 + 16;
    if (desc->sampler == XCAT_SAMPLER_POPULARITY || desc->kind == XCAT_LOSS_INBATCH ||
        desc->correction == XCAT_CORRECTION_LOGQ)
        *bytes += (size_t)classes * 12;
    return XCAT_OK;
}

static void release_tables(ocl_smp_plan *p)
{
    cl_mem *ms[] = {&p->alias_thr, &p->alias_idx, &p->logq};
    for (size_t i = 0; i < 3; i++)
        if (*ms[i]) {
            clReleaseMemObject(*ms[i]);
            *ms[i] = NULL;
        }
}

void xcat_ocl_sampled_plan_release(xcat_loss_plan *plan)
{
    ocl_smp_plan *p = plan->backend_plan;
    if (!p) return;
    cl_kernel ks[] = {p->k_rows, p->k_dE, p->k_zero, p->k_reduce, p->k_draw, p->k_gfac};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        if (ks[i]) clReleaseKernel(ks[i]);
    cl_mem ms[] = {p->ent_item, p->ent_val, p->rowloss, p->gfac, p->dummy};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (ms[i]) clReleaseMemObject(ms[i]);
    release_tables(p);
    xcat_host_free(plan->ctx, p);
    plan->backend_plan = NULL;
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
    const int cu = s->info.compute_units > 0 ? (int)s->info.compute_units : 1;
    p->dE_groups = s->info.is_gpu ? 2 * cu : cu;
    size_t ws = 0;
    xcat_status st = xcat_ocl_sampled_workspace_size(ctx, &plan->desc, plan->max_rows,
                                                     plan->classes, plan->dim, &ws);
    p->entries = s->info.is_gpu ? ENTRIES_GPU : ENTRIES_CPU;
    const int64_t t = candidates_per_row(&plan->desc, plan->desc.num_negatives, plan->max_rows);
    if (p->entries > t * plan->max_rows) p->entries = t * plan->max_rows;
    if (p->entries < t) p->entries = t;
    cl_program prog = NULL;
    if (!st) {
        char prelude[64];
        snprintf(prelude, sizeof prelude, "#define SWG %d\n", p->swg);
        static const char *const sources[] = {"rng.cl", "sampled.cl", NULL};
        st = xcat_ocl_program(ctx, prelude, sources, "-cl-std=CL1.2", &prog);
    }
    struct {
        cl_kernel *k;
        const char *name;
    } ks[] = {{&p->k_rows, "sampled_rows"},     {&p->k_dE, "sampled_dE"},
              {&p->k_zero, "sampled_zero"},     {&p->k_reduce, "sampled_reduce"},
              {&p->k_draw, "sampled_draw"},     {&p->k_gfac, "sampled_gfac"}};
    for (size_t i = 0; !st && i < sizeof ks / sizeof ks[0]; i++)
        st = xcat_ocl_kernel(ctx, prog, ks[i].name, ks[i].k);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)p->entries * 4, false, &p->ent_item);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)p->entries * 4, false, &p->ent_val);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)plan->max_rows * 4, true, &p->rowloss);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)plan->max_rows * 4, true, &p->gfac);
    if (!st) st = xcat_ocl_buffer(ctx, 16, true, &p->dummy);
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
    cl_mem ri_off, ri; /* uploaded row items, or NULL */
} smp_call;

static xcat_status ensure_entries(smp_call *c);

static xcat_status call_init(smp_call *c, xcat_loss_plan *plan, const xcat_loss_call *call)
{
    *c = (smp_call){.ctx = plan->ctx, .p = plan->backend_plan, .plan = plan, .call = call,
                    .n = call->rows, .k = call->num_negatives};
    c->t = candidates_per_row(&plan->desc, c->k, c->n);
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
    if (p->entries >= c->t) return XCAT_OK;
    const xcat_ocl_state *s = xcat_ocl(c->ctx);
    int64_t want = s->info.is_gpu ? ENTRIES_GPU : ENTRIES_CPU;
    if (want > c->t * c->plan->max_rows) want = c->t * c->plan->max_rows;
    if (want < c->t) want = c->t;
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
    return XCAT_OK;
}

static void call_release(smp_call *c)
{
    if (c->ri_off) clReleaseMemObject(c->ri_off);
    if (c->ri) clReleaseMemObject(c->ri);
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
    int64_t r = c->p->entries / c->t;
    if (r < 1) r = 1;
    return r < c->n ? r : c->n;
}

/* sampled_rows over rows [r0, r0 + nr) in `mode`. */
static xcat_status rows_pass(const smp_call *c, int mode, int64_t r0, int64_t nr,
                             const xcat_tensor *lse, const xcat_tensor *dH)
{
    const ocl_smp_plan *p = c->p;
    const xcat_loss_call *call = c->call;
    args a = {.k = p->k_rows};
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
    const size_t lw = (size_t)p->swg, gw = (size_t)nr * lw;
    return launch(c->ctx, &a, 1, &gw, &lw, "enqueueing sampled_rows");
}

xcat_status xcat_ocl_sampled_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                     xcat_tensor *loss, xcat_tensor *lse)
{
    smp_call c;
    xcat_status st = call_init(&c, plan, call);
    if (!st) st = check_tables(&c);
    const int64_t rc = chunk_rows(&c);
    for (int64_t r0 = 0; !st && r0 < c.n; r0 += rc)
        st = rows_pass(&c, 0, r0, c.n - r0 < rc ? c.n - r0 : rc, lse, NULL);
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
    const int64_t rc = chunk_rows(&c);
    for (int64_t r0 = 0; !st && r0 < c.n; r0 += rc) {
        const int64_t nr = c.n - r0 < rc ? c.n - r0 : rc;
        st = rows_pass(&c, 1, r0, nr, NULL, d_hidden);
        if (st || (!d_items && !d_bias)) continue;
        args a = {.k = p->k_dE};
        A_MEM(&a, p->ent_item);
        A_MEM(&a, p->ent_val);
        A_LONG(&a, nr * c.t);
        A_INT(&a, c.t);
        A_LONG(&a, r0);
        A_INT(&a, plan->classes);
        A_INT(&a, plan->dim);
        const mat H = tensor_mat(call->hidden);
        A_MEM(&a, H.mem);
        A_ULONG(&a, H.off);
        A_LONG(&a, H.ld);
        A_MEM(&a, d_items ? xcat_ocl_mem(d_items) : p->dummy);
        A_ULONG(&a, d_items ? elem_off(d_items) : 0);
        A_LONG(&a, d_items ? d_items->stride : 0);
        A_INT(&a, d_items != NULL);
        A_MEM(&a, d_bias ? xcat_ocl_mem(d_bias) : p->dummy);
        A_ULONG(&a, d_bias ? elem_off(d_bias) : 0);
        A_INT(&a, d_bias != NULL);
        const size_t lw = (size_t)p->swg, gw = (size_t)p->dE_groups * lw;
        st = launch(c.ctx, &a, 1, &gw, &lw, "enqueueing sampled_dE");
    }
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
