/* cpu_backend.c — the native CPU backend: host memory, the CPU "device", plans. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baseline_guard.h"
#include "cpu_ce.h"
#include "cpu_sampled.h"
#include "cpu_sce.h"
#include "sce.h"
#include "cpu_topk.h"

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return true;
    }
    return n == 0;
}

static xcat_status cpu_context_init(xcat_context *ctx, const xcat_context_options *o,
                                    const void *interop)
{
    (void)interop;
    const char *model = xcat_cpu_model_name();
    snprintf(ctx->device_name, sizeof ctx->device_name, "%s (%s)", *model ? model : "CPU",
             xcat_isa_name(ctx->isa));
    const char *sel = o->device;
    if (!sel && !(o->flags & XCAT_CONTEXT_IGNORE_ENV)) sel = getenv("XCAT_DEVICE");
    /* One device: index 0, "cpu", or a substring of its name. */
    if (sel && *sel && strcmp(sel, "0") != 0 && !contains_nocase("cpu", sel) &&
        !contains_nocase(ctx->device_name, sel))
        return xcat_error(ctx, XCAT_ERROR_DEVICE_NOT_FOUND,
                          "device '%s' matches no device of the CPU backend (it has one: "
                          "0 = %s)", sel, ctx->device_name);
    return XCAT_OK;
}

static void cpu_context_release(xcat_context *ctx)
{
    (void)ctx;
}

static bool cpu_supports(const xcat_context *ctx, xcat_op op, xcat_dtype dtype)
{
    (void)ctx;
    return (op == XCAT_OP_LOSS_CE || op == XCAT_OP_TOPK || op == XCAT_OP_LOSS_SAMPLED ||
            op == XCAT_OP_LOSS_SCE) &&
           dtype == XCAT_DTYPE_F32;
}

static xcat_status cpu_tensor_alloc(xcat_context *ctx, xcat_tensor *t)
{
    size_t bytes = (size_t)t->rows * (size_t)t->stride * xcat_dtype_size(t->dtype);
    t->data = xcat_host_calloc(ctx, bytes, 64);
    if (!t->data)
        return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "allocating a %lld x %lld tensor "
                          "(%zu bytes)", (long long)t->rows, (long long)t->cols, bytes);
    return XCAT_OK;
}

static void cpu_tensor_release(xcat_context *ctx, xcat_tensor *t)
{
    xcat_host_free(ctx, t->data);
    t->data = NULL;
}

static void copy_rows(void *dst, int64_t dst_stride, const void *src, int64_t src_stride,
                      int64_t rows, int64_t cols, size_t es)
{
    for (int64_t r = 0; r < rows; r++)
        memcpy((char *)dst + (size_t)(r * dst_stride) * es,
               (const char *)src + (size_t)(r * src_stride) * es, (size_t)cols * es);
}

static xcat_status cpu_tensor_write(xcat_context *ctx, xcat_tensor *t, const void *src,
                                    int64_t src_stride)
{
    (void)ctx;
    copy_rows(t->data, t->stride, src, src_stride, t->rows, t->cols, xcat_dtype_size(t->dtype));
    return XCAT_OK;
}

static xcat_status cpu_tensor_read(xcat_context *ctx, const xcat_tensor *t, void *dst,
                                   int64_t dst_stride)
{
    (void)ctx;
    copy_rows(dst, dst_stride, t->data, t->stride, t->rows, t->cols, xcat_dtype_size(t->dtype));
    return XCAT_OK;
}

static xcat_status cpu_loss_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                           int64_t max_rows, int64_t classes, int64_t dim,
                                           size_t *bytes)
{
    if (desc->kind == XCAT_LOSS_SCE) {
        *bytes = xcat_sce_state_bytes(desc, max_rows, dim);
        return XCAT_OK;
    }
    if (desc->kind != XCAT_LOSS_CE)
        return xcat_cpu_sampled_workspace_size(ctx, desc, max_rows, classes, dim, bytes);
    xcat_cpu_ce_plan layout;
    return xcat_cpu_ce_layout(ctx, desc, max_rows, classes, dim, &layout, bytes);
}

static xcat_status cpu_loss_plan_init(xcat_loss_plan *plan)
{
    if (plan->desc.kind == XCAT_LOSS_SCE) { /* its state lives in plan->sce (src/sce.c) */
        plan->workspace_bytes = xcat_sce_state_bytes(&plan->desc, plan->max_rows, plan->dim);
        return XCAT_OK;
    }
    if (plan->desc.kind != XCAT_LOSS_CE) return xcat_cpu_sampled_plan_init(plan);
    xcat_context *ctx = plan->ctx;
    xcat_cpu_ce_plan *p = xcat_host_calloc(ctx, sizeof *p, 64);
    if (!p) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "allocating the CPU plan");
    size_t bytes;
    xcat_status st = xcat_cpu_ce_layout(ctx, &plan->desc, plan->max_rows, plan->classes,
                                        plan->dim, p, &bytes);
    if (!st) {
        plan->workspace = xcat_host_alloc(ctx, bytes, 64);
        if (!plan->workspace)
            st = xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY,
                            "allocating the plan workspace (%zu bytes)", bytes);
    }
    if (st) {
        xcat_host_free(ctx, p);
        return st;
    }
    plan->workspace_bytes = bytes;
    plan->backend_plan = p;
    return XCAT_OK;
}

static void cpu_loss_plan_release(xcat_loss_plan *plan)
{
    if (plan->desc.kind == XCAT_LOSS_SCE) return;
    if (plan->desc.kind != XCAT_LOSS_CE) {
        xcat_cpu_sampled_plan_release(plan);
        return;
    }
    xcat_host_free(plan->ctx, plan->workspace);
    xcat_host_free(plan->ctx, plan->backend_plan);
    plan->workspace = plan->backend_plan = NULL;
}

static xcat_status cpu_loss_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                    xcat_tensor *loss, xcat_tensor *lse)
{
    if (plan->desc.kind == XCAT_LOSS_CE) return xcat_cpu_ce_forward(plan, call, loss, lse);
    if (plan->desc.kind == XCAT_LOSS_SCE) return xcat_cpu_sce_forward(plan, call, loss, lse);
    return xcat_cpu_sampled_forward(plan, call, loss, lse);
}

static xcat_status cpu_loss_backward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                     bool reuse, const xcat_tensor *grad_loss,
                                     xcat_tensor *d_hidden, xcat_tensor *d_items,
                                     xcat_tensor *d_bias)
{
    if (plan->desc.kind == XCAT_LOSS_CE)
        return xcat_cpu_ce_backward(plan, call, reuse, grad_loss, d_hidden, d_items, d_bias);
    if (plan->desc.kind == XCAT_LOSS_SCE)
        return xcat_cpu_sce_backward(plan, call, reuse, grad_loss, d_hidden, d_items, d_bias);
    return xcat_cpu_sampled_backward(plan, call, reuse, grad_loss, d_hidden, d_items, d_bias);
}

const xcat_backend_ops xcat_cpu_backend = {
    .name = "cpu",
    .context_init = cpu_context_init,
    .context_release = cpu_context_release,
    .supports = cpu_supports,
    .synchronize = NULL,
    .tensor_alloc = cpu_tensor_alloc,
    .tensor_release = cpu_tensor_release,
    .tensor_write = cpu_tensor_write,
    .tensor_read = cpu_tensor_read,
    .loss_workspace_size = cpu_loss_workspace_size,
    .loss_plan_init = cpu_loss_plan_init,
    .loss_plan_release = cpu_loss_plan_release,
    .loss_forward = cpu_loss_forward,
    .loss_backward = cpu_loss_backward,
    .loss_sampling_changed = NULL, /* the CPU kernels read plan->sampling directly */
    .loss_draw_negatives = xcat_cpu_sampled_draw_negatives,
    .sce_mix_directions = xcat_cpu_sce_mix_directions,
    .topk = xcat_cpu_topk,
    .rank_sampled = xcat_cpu_rank_sampled,
};
