/* cpu_sce.h — XCAT_LOSS_SCE on the CPU backend (cpu_sce.c). */
#ifndef XCAT_CPU_SCE_H
#define XCAT_CPU_SCE_H

#include "backend.h"

xcat_status xcat_cpu_sce_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                 xcat_tensor *loss, xcat_tensor *lse);
xcat_status xcat_cpu_sce_backward(xcat_loss_plan *plan, const xcat_loss_call *call, bool reuse,
                                  const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                  xcat_tensor *d_items, xcat_tensor *d_bias);
xcat_status xcat_cpu_sce_mix_directions(xcat_loss_plan *plan, const xcat_loss_call *call,
                                        xcat_tensor *dirs);

#endif
