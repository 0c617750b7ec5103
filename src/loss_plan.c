/* loss_plan.c — loss descriptors and plans: everything validated once, at plan creation. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "loss_validate.h"
#include "sampling.h"
#include "sce.h"

void xcat_loss_desc_init(xcat_loss_desc *desc, xcat_loss_kind kind)
{
    if (!desc) return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->kind = kind;
    desc->reduction = XCAT_REDUCTION_MEAN;
    desc->dtype = XCAT_DTYPE_F32;
    desc->ignore_index = -100;
    desc->scale = 1.0f;
}

void xcat_loss_args_init(xcat_loss_args *args)
{
    if (!args) return;
    memset(args, 0, sizeof *args);
    args->struct_size = sizeof *args;
}

/* The caller's descriptor, read up to its struct_size; missing fields keep their defaults. */
static xcat_status copy_desc(xcat_context *ctx, const xcat_loss_desc *in, xcat_loss_desc *out)
{
    if (!in) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc is NULL");
    if (in->struct_size < offsetof(xcat_loss_desc, flags) + sizeof in->flags)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "desc->struct_size = %u: initialise the descriptor with "
                          "xcat_loss_desc_init()", in->struct_size);
    xcat_loss_desc_init(out, in->kind);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    out->struct_size = sizeof *out;
    return XCAT_OK;
}

/* The sampled kinds' fields (their sizes against C are checked in check_sampled_sizes). */
static xcat_status check_sampled_desc(xcat_context *ctx, const xcat_loss_desc *d)
{
    if (d->label_smoothing != 0.0f || d->z_loss != 0.0f)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.label_smoothing and "
                          "desc.z_loss must be 0 for the sampled kinds");
    if ((unsigned)d->sampler > XCAT_SAMPLER_IN_BATCH)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.sampler = %d is not a "
                          "xcat_sampler", (int)d->sampler);
    if ((unsigned)d->correction > XCAT_CORRECTION_LOGQ_CORRECTED)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.correction = %d is not a "
                          "xcat_correction", (int)d->correction);
    if (d->sampler == XCAT_SAMPLER_IN_BATCH && d->kind != XCAT_LOSS_INBATCH)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.sampler = IN_BATCH goes with "
                          "XCAT_LOSS_INBATCH only");
    if (d->kind == XCAT_LOSS_INBATCH && d->sampler != XCAT_SAMPLER_IN_BATCH &&
        d->sampler != XCAT_SAMPLER_UNIFORM && d->sampler != XCAT_SAMPLER_POPULARITY)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "XCAT_LOSS_INBATCH draws its extra "
                          "negatives with UNIFORM or POPULARITY");
    if ((d->flags & XCAT_LOSS_DISTINCT_NEGATIVES) && d->sampler != XCAT_SAMPLER_UNIFORM)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "XCAT_LOSS_DISTINCT_NEGATIVES needs "
                          "the UNIFORM sampler");
    if ((d->kind == XCAT_LOSS_BCE || d->kind == XCAT_LOSS_GBCE) &&
        d->correction != XCAT_CORRECTION_NONE)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "BCE and GBCE take no logit "
                          "correction (desc.correction must be NONE)");
    if (d->kind == XCAT_LOSS_SAMPLED_CE && d->correction == XCAT_CORRECTION_LOGQ_CORRECTED)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "LOGQ_CORRECTED is defined for "
                          "XCAT_LOSS_INBATCH only");
    if (d->kind == XCAT_LOSS_GBCE && !(d->gbce_t >= 0.0f && d->gbce_t <= 1.0f))
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.gbce_t = %g: must be in "
                          "[0, 1]", (double)d->gbce_t);
    const bool given = d->sampler == XCAT_SAMPLER_GIVEN_PER_ROW ||
                       d->sampler == XCAT_SAMPLER_GIVEN_SHARED;
    if (d->kind == XCAT_LOSS_INBATCH) {
        if (d->num_negatives < 0 || d->num_negatives > INT32_MAX ||
            (d->sampler == XCAT_SAMPLER_IN_BATCH && d->num_negatives != 0))
            return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.num_negatives = %lld: "
                              "INBATCH takes K >= 0 extra negatives (0 with the IN_BATCH "
                              "sampler)", (long long)d->num_negatives);
        if (d->correction == XCAT_CORRECTION_UNIFORM)
            return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "XCAT_LOSS_INBATCH takes the "
                              "NONE, LOGQ or LOGQ_CORRECTED correction");
        if (d->flags & XCAT_LOSS_DISTINCT_NEGATIVES)
            return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "XCAT_LOSS_INBATCH draws its "
                              "extras with replacement (no DISTINCT_NEGATIVES)");
        return XCAT_OK;
    }
    if (!given && (d->num_negatives < 1 || d->num_negatives > INT32_MAX))
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.num_negatives = %lld: K must "
                          "be in [1, 2^31)", (long long)d->num_negatives);
    if (given && d->num_negatives < 0)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.num_negatives = %lld: given "
                          "negatives take K from args.negatives (0) or must match it",
                          (long long)d->num_negatives);
    if ((d->flags & XCAT_LOSS_DISTINCT_NEGATIVES) && d->correction == XCAT_CORRECTION_LOGQ)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "LOGQ with distinct negatives: "
                          "use the UNIFORM correction (q is 1/(C−1) for every item)");
    return XCAT_OK;
}

static xcat_status check_sampled_sizes(xcat_context *ctx, xcat_loss_desc *d, int64_t max_rows,
                                       int64_t classes)
{
    if (d->kind == XCAT_LOSS_CE) return XCAT_OK;
    if (d->kind == XCAT_LOSS_SCE) return xcat_sce_check_desc(ctx, d, max_rows, classes);
    if (classes < 2 || classes > INT32_MAX)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "num_classes = %lld: the sampled "
                          "kinds need 2 <= C < 2^31 (negatives are drawn in 32 bits)",
                          (long long)classes);
    if ((d->flags & XCAT_LOSS_DISTINCT_NEGATIVES) && d->num_negatives > classes - 1)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.num_negatives = %lld: "
                          "distinct negatives need K <= C − 1 = %lld", (long long)d->num_negatives,
                          (long long)classes - 1);
    return XCAT_OK;
}

static xcat_status check_desc(xcat_context *ctx, const xcat_loss_desc *d)
{
    if ((unsigned)d->kind > XCAT_LOSS_SCE)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.kind = %d is not a "
                          "xcat_loss_kind", (int)d->kind);
    if ((unsigned)d->reduction > XCAT_REDUCTION_NONE)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.reduction = %d is not a "
                          "xcat_reduction", (int)d->reduction);
    if (xcat_dtype_size(d->dtype) == 0 || d->dtype == XCAT_DTYPE_I32 ||
        d->dtype == XCAT_DTYPE_I64)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "desc.dtype = %d is not a floating-point xcat_dtype", (int)d->dtype);
    if (!(isfinite(d->scale) && d->scale > 0.0f))
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "desc.scale = %g: must be finite and > 0", (double)d->scale);
    if (!(isfinite(d->softcap) && d->softcap >= 0.0f))
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "desc.softcap = %g: must be 0 (off) or finite and > 0",
                          (double)d->softcap);
    if (!(d->label_smoothing >= 0.0f && d->label_smoothing < 1.0f))
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "desc.label_smoothing = %g: must be in [0, 1)",
                          (double)d->label_smoothing);
    if (!(isfinite(d->z_loss) && d->z_loss >= 0.0f))
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "desc.z_loss = %g: must be finite and >= 0", (double)d->z_loss);
    if (d->flags & ~(XCAT_LOSS_FORWARD_ONLY | XCAT_LOSS_REJECT_HITS |
                     XCAT_LOSS_DISTINCT_NEGATIVES))
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.flags = 0x%x has unknown bits",
                          d->flags);
    if (d->dtype != XCAT_DTYPE_F32)
        return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED,
                          "desc.dtype = %d: this release stores H and E as F32 only",
                          (int)d->dtype);
    if (d->kind == XCAT_LOSS_CE || d->kind == XCAT_LOSS_SCE) return XCAT_OK; /* SCE: sce.c */
    return check_sampled_desc(ctx, d);
}

static xcat_status check_sizes(xcat_context *ctx, int64_t rows, int64_t classes, int64_t dim)
{
    if (rows < 1 || classes < 1 || dim < 1)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "max_rows = %lld, num_classes = %lld, dim = %lld: all must be >= 1",
                          (long long)rows, (long long)classes, (long long)dim);
    size_t a, b;
    if ((uint64_t)rows > SIZE_MAX / 8 || (uint64_t)classes > SIZE_MAX / 8 ||
        !xcat_mul_size((size_t)rows, (size_t)dim, &a) || !xcat_mul_size(a, 8, &a) ||
        !xcat_mul_size((size_t)classes, (size_t)dim, &b) || !xcat_mul_size(b, 8, &b))
        return xcat_error(ctx, XCAT_ERROR_SIZE_OVERFLOW,
                          "max_rows·dim or num_classes·dim (%lld, %lld, %lld) overflows",
                          (long long)rows, (long long)classes, (long long)dim);
    return XCAT_OK;
}

xcat_status xcat_loss_workspace_size(xcat_context *ctx, const xcat_loss_desc *desc,
                                     int64_t max_rows, int64_t num_classes, int64_t dim,
                                     size_t *bytes)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    if (!bytes) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "bytes is NULL");
    xcat_loss_desc d;
    xcat_status st = copy_desc(ctx, desc, &d);
    if (!st) st = check_desc(ctx, &d);
    if (!st) st = check_sizes(ctx, max_rows, num_classes, dim);
    if (!st) st = check_sampled_sizes(ctx, &d, max_rows, num_classes);
    if (st) return st;
    return ctx->ops->loss_workspace_size(ctx, &d, max_rows, num_classes, dim, bytes);
}

xcat_status xcat_loss_plan_create(xcat_context *ctx, const xcat_loss_desc *desc,
                                  int64_t max_rows, int64_t num_classes, int64_t dim,
                                  xcat_loss_plan **out)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    if (!out) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    xcat_loss_desc d;
    xcat_status st = copy_desc(ctx, desc, &d);
    if (!st) st = check_desc(ctx, &d);
    if (!st) st = check_sizes(ctx, max_rows, num_classes, dim);
    if (!st) st = check_sampled_sizes(ctx, &d, max_rows, num_classes);
    if (st) return st;
    xcat_loss_plan *plan = xcat_host_calloc(ctx, sizeof *plan, 64);
    if (!plan) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "allocating a loss plan");
    *plan = (xcat_loss_plan){.ctx = ctx, .desc = d, .max_rows = max_rows,
                             .classes = num_classes, .dim = dim};
    if (ctx->backend != XCAT_BACKEND_CPU) { /* targets are validated on the host */
        plan->host_scratch = xcat_host_alloc(ctx, (size_t)max_rows * 12, 64);
        if (!plan->host_scratch) {
            xcat_host_free(ctx, plan);
            return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "allocating %lld bytes of host "
                              "scratch for targets", (long long)max_rows * 12);
        }
    }
    st = ctx->ops->loss_plan_init(plan);
    if (!st && d.kind == XCAT_LOSS_SCE && (st = xcat_sce_plan_init(plan)))
        ctx->ops->loss_plan_release(plan);
    if (st) {
        xcat_host_free(ctx, plan->host_scratch);
        xcat_host_free(ctx, plan);
        return st;
    }
    *out = plan;
    return XCAT_OK;
}

xcat_status xcat_loss_plan_workspace_size(const xcat_loss_plan *plan, size_t *bytes)
{
    if (!plan || !bytes) return XCAT_ERROR_INVALID_ARGUMENT;
    *bytes = plan->workspace_bytes;
    return XCAT_OK;
}

void xcat_loss_plan_free(xcat_loss_plan *plan)
{
    if (!plan) return;
    xcat_context *ctx = plan->ctx;
    xcat_sce_plan_release(plan);
    ctx->ops->loss_plan_release(plan);
    xcat_sampling_free(plan);
    xcat_host_free(ctx, plan->h_row_items_offsets);
    xcat_host_free(ctx, plan->h_row_items);
    xcat_host_free(ctx, plan->host_scratch);
    xcat_host_free(ctx, plan);
}

/* Note which inputs the plan's per-row state belongs to (none for FORWARD_ONLY plans). */
static void remember_call(xcat_loss_plan *plan, const xcat_loss_call *c)
{
    if (plan->desc.flags & XCAT_LOSS_FORWARD_ONLY) return;
    plan->saved = (xcat_loss_saved){.valid = true, .hidden = c->hidden, .items = c->items,
                                    .bias = c->bias, .targets = c->targets,
                                    .row_weights = c->row_weights, .rows = c->rows,
                                    .step = c->step, .banned_items = c->banned_items};
}

xcat_status xcat_loss_forward(xcat_loss_plan *plan, const xcat_loss_args *args,
                              xcat_tensor *loss, xcat_tensor *lse)
{
    if (!plan) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_loss_call call;
    plan->saved.valid = false;
    xcat_status st = xcat_loss_call_prepare(plan, args, &call);
    if (!st) st = xcat_loss_check_forward_outputs(plan, &call, loss, lse);
    if (st) return st;
    st = plan->ctx->ops->loss_forward(plan, &call, loss, lse);
    if (!st) remember_call(plan, &call);
    return st;
}

static bool saved_matches(const xcat_loss_saved *s, const xcat_loss_call *c)
{
    return s->valid && s->hidden == c->hidden && s->items == c->items && s->bias == c->bias &&
           s->targets == c->targets && s->row_weights == c->row_weights && s->rows == c->rows &&
           s->step == c->step && s->banned_items == c->banned_items;
}

xcat_status xcat_loss_forward_backward(xcat_loss_plan *plan, const xcat_loss_args *args,
                                       xcat_tensor *loss, xcat_tensor *lse,
                                       const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                       xcat_tensor *d_items, xcat_tensor *d_bias)
{
    if (!plan) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_loss_call call;
    plan->saved.valid = false;
    xcat_status st = xcat_loss_call_prepare(plan, args, &call);
    if (!st) st = xcat_loss_check_forward_outputs(plan, &call, loss, lse);
    if (!st) st = xcat_loss_check_backward_outputs(plan, &call, grad_loss, d_hidden, d_items,
                                                   d_bias);
    if (!st && grad_loss && (grad_loss == loss || grad_loss == lse))
        st = xcat_error(plan->ctx, XCAT_ERROR_INVALID_ARGUMENT,
                        "forward_backward: grad_loss must not be the loss or lse output");
    if (st) return st;
    const xcat_backend_ops *ops = plan->ctx->ops;
    bool done = false;
    if (ops->loss_forward_backward) {
        st = ops->loss_forward_backward(plan, &call, loss, lse, grad_loss, d_hidden, d_items,
                                        d_bias, &done);
        if (st || done) return st;
    }
    st = ops->loss_forward(plan, &call, loss, lse);
    if (!st) st = ops->loss_backward(plan, &call, !(plan->desc.flags & XCAT_LOSS_FORWARD_ONLY),
                                     grad_loss, d_hidden, d_items, d_bias);
    if (!st) remember_call(plan, &call);
    return st;
}

xcat_status xcat_loss_backward(xcat_loss_plan *plan, const xcat_loss_args *args,
                               const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                               xcat_tensor *d_items, xcat_tensor *d_bias)
{
    if (!plan) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_loss_call call;
    xcat_status st = xcat_loss_call_prepare(plan, args, &call);
    if (!st) st = xcat_loss_check_backward_outputs(plan, &call, grad_loss, d_hidden, d_items,
                                                   d_bias);
    if (st) return st;
    bool reuse = saved_matches(&plan->saved, &call);
    st = plan->ctx->ops->loss_backward(plan, &call, reuse, grad_loss, d_hidden, d_items, d_bias);
    /* A recompute leaves fresh per-row state behind, which a second backward may reuse. */
    if (!st && !reuse) remember_call(plan, &call);
    return st;
}
