/* cpu_sampled.c — the sampled kinds on the CPU backend. (Being written.) */
#include "cpu_sampled.h"

static xcat_status not_yet(const xcat_context *ctx)
{
    return xcat_error((xcat_context *)ctx, XCAT_ERROR_UNSUPPORTED,
                      "sampled loss kinds are not implemented on the CPU backend yet");
}

xcat_status xcat_cpu_sampled_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                            int64_t max_rows, int64_t classes, int64_t dim,
                                            size_t *bytes)
{
    return not_yet(ctx);
}
xcat_status xcat_cpu_sampled_plan_init(xcat_loss_plan *plan) { return not_yet(plan->ctx); }
void xcat_cpu_sampled_plan_release(xcat_loss_plan *plan) { (void)plan; }
xcat_status xcat_cpu_sampled_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                     xcat_tensor *loss, xcat_tensor *lse)
{
    return not_yet(plan->ctx);
}
xcat_status xcat_cpu_sampled_backward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                      bool reuse, const xcat_tensor *grad_loss,
                                      xcat_tensor *d_hidden, xcat_tensor *d_items,
                                      xcat_tensor *d_bias)
{
    return not_yet(plan->ctx);
}
xcat_status xcat_cpu_sampled_draw_negatives(xcat_loss_plan *plan, const xcat_loss_call *call,
                                            xcat_tensor *out)
{
    return not_yet(plan->ctx);
}
