/* ocl_topk.c — fused scoring + top-K on OpenCL. (Being written.) */
#include "ocl.h"

xcat_status xcat_ocl_topk(xcat_context *ctx, const xcat_topk_call *call, xcat_tensor *indices,
                          xcat_tensor *scores)
{
    return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED, "top-K is not implemented on OpenCL yet");
}
xcat_status xcat_ocl_rank_sampled(xcat_context *ctx, const xcat_topk_call *call,
                                  const int64_t *h_targets, int64_t num_negatives, uint64_t seed,
                                  xcat_tensor *ranks)
{
    return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED, "sampled ranks are not implemented on "
                      "OpenCL yet");
}
