/* sampling.c — the negatives API of the sampled kinds: what a call draws, for inspection, and
 * the plan's item distribution. */
#include "backend.h"
#include "loss_validate.h"
#include "sampling.h"

xcat_status xcat_loss_plan_set_item_counts(xcat_loss_plan *plan, const xcat_tensor *counts)
{
    if (!plan) return XCAT_ERROR_INVALID_ARGUMENT;
    (void)counts;
    /* The POPULARITY sampler and the LOGQ corrections are refused at plan creation in this
     * release, so no plan can use counts yet. */
    return xcat_error(plan->ctx, XCAT_ERROR_UNSUPPORTED, "item counts feed the POPULARITY "
                      "sampler and the LOGQ corrections, which this release does not implement "
                      "yet");
}

xcat_status xcat_loss_draw_negatives(xcat_loss_plan *plan, const xcat_loss_args *args,
                                     xcat_tensor *out)
{
    if (!plan) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_context *ctx = plan->ctx;
    if (plan->desc.kind == XCAT_LOSS_CE)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "XCAT_LOSS_CE draws no negatives");
    xcat_loss_call call;
    xcat_status st = xcat_loss_call_prepare(plan, args, &call);
    if (st) return st;
    if (!out) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "out is NULL");
    if (out->ctx != ctx)
        return xcat_error(ctx, XCAT_ERROR_WRONG_CONTEXT, "out belongs to another context");
    if (out->dtype != XCAT_DTYPE_I32 && out->dtype != XCAT_DTYPE_I64)
        return xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "out must be I32 or I64");
    if (out->rows != call.rows || out->cols != call.num_negatives)
        return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "out is %lld×%lld; the call draws "
                          "%lld×%lld", (long long)out->rows, (long long)out->cols,
                          (long long)call.rows, (long long)call.num_negatives);
    return ctx->ops->loss_draw_negatives(plan, &call, out);
}
