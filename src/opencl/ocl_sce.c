/* ocl_sce.c — stub */
#include "ocl_launch.h"
#include "sce.h"

xcat_status xcat_ocl_sce_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                        int64_t max_rows, int64_t classes, int64_t dim,
                                        size_t *bytes)
{
    (void)ctx, (void)classes;
    *bytes = xcat_sce_state_bytes(desc, max_rows, dim);
    return XCAT_OK;
}
xcat_status xcat_ocl_sce_plan_init(xcat_loss_plan *plan) { return xcat_error(plan->ctx, XCAT_ERROR_UNSUPPORTED, "SCE on OpenCL"); }
void xcat_ocl_sce_plan_release(xcat_loss_plan *plan) { (void)plan; }
xcat_status xcat_ocl_sce_forward(xcat_loss_plan *plan, const xcat_loss_call *call, xcat_tensor *loss, xcat_tensor *lse) { (void)call, (void)loss, (void)lse; return xcat_error(plan->ctx, XCAT_ERROR_UNSUPPORTED, "x"); }
xcat_status xcat_ocl_sce_backward(xcat_loss_plan *plan, const xcat_loss_call *call, bool reuse, const xcat_tensor *grad_loss, xcat_tensor *d_hidden, xcat_tensor *d_items, xcat_tensor *d_bias) { (void)call, (void)reuse, (void)grad_loss, (void)d_hidden, (void)d_items, (void)d_bias; return xcat_error(plan->ctx, XCAT_ERROR_UNSUPPORTED, "x"); }
xcat_status xcat_ocl_sce_mix_directions(xcat_loss_plan *plan, const xcat_loss_call *call, xcat_tensor *dirs) { (void)call, (void)dirs; return xcat_error(plan->ctx, XCAT_ERROR_UNSUPPORTED, "x"); }
