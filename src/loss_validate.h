/* loss_validate.h — argument checks of loss calls, shared by forward and backward. */
#ifndef XCAT_LOSS_VALIDATE_H
#define XCAT_LOSS_VALIDATE_H

#include "backend.h"

/* Check `args` against the plan (contexts, dtypes, shapes, targets in range) and fill `call`,
 * including the MEAN reduction's 1/Σw. */
xcat_status xcat_loss_call_prepare(xcat_loss_plan *plan, const xcat_loss_args *args,
                                   xcat_loss_call *call);
xcat_status xcat_loss_check_forward_outputs(xcat_loss_plan *plan, const xcat_loss_call *call,
                                            const xcat_tensor *loss, const xcat_tensor *lse);
xcat_status xcat_loss_check_backward_outputs(xcat_loss_plan *plan, const xcat_loss_call *call,
                                             const xcat_tensor *grad_loss,
                                             const xcat_tensor *d_hidden,
                                             const xcat_tensor *d_items,
                                             const xcat_tensor *d_bias);

#endif
