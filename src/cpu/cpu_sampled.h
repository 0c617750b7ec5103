/* cpu_sampled.h — the CPU backend's sampled kinds (SAMPLED_CE, BCE, GBCE, INBATCH). */
#ifndef XCAT_CPU_SAMPLED_H
#define XCAT_CPU_SAMPLED_H

#include "backend.h"

xcat_status xcat_cpu_sampled_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                            int64_t max_rows, int64_t classes, int64_t dim,
                                            size_t *bytes);
xcat_status xcat_cpu_sampled_plan_init(xcat_loss_plan *plan);
void xcat_cpu_sampled_plan_release(xcat_loss_plan *plan);
xcat_status xcat_cpu_sampled_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                     xcat_tensor *loss, xcat_tensor *lse);
xcat_status xcat_cpu_sampled_backward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                      bool reuse, const xcat_tensor *grad_loss,
                                      xcat_tensor *d_hidden, xcat_tensor *d_items,
                                      xcat_tensor *d_bias);
xcat_status xcat_cpu_sampled_draw_negatives(xcat_loss_plan *plan, const xcat_loss_call *call,
                                            xcat_tensor *out);

#endif
