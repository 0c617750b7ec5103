/* sampling.c — the plan's item distribution and the negatives API. (Being written.) */
#include "backend.h"
#include "sampling.h"

xcat_status xcat_loss_plan_set_item_counts(xcat_loss_plan *plan, const xcat_tensor *counts)
{
    if (!plan) return XCAT_ERROR_INVALID_ARGUMENT;
    return xcat_error(plan->ctx, XCAT_ERROR_UNSUPPORTED, "not implemented yet");
}

xcat_status xcat_loss_draw_negatives(xcat_loss_plan *plan, const xcat_loss_args *args,
                                     xcat_tensor *out)
{
    if (!plan) return XCAT_ERROR_INVALID_ARGUMENT;
    return xcat_error(plan->ctx, XCAT_ERROR_UNSUPPORTED, "not implemented yet");
}
