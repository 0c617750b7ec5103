/* topk.c — validation of top-K and sampled-rank calls, then dispatch. (Being written.) */
#include <string.h>

#include "backend.h"

void xcat_topk_args_init(xcat_topk_args *args)
{
    if (!args) return;
    memset(args, 0, sizeof *args);
    args->struct_size = sizeof *args;
}

xcat_status xcat_topk(xcat_context *ctx, const xcat_topk_args *args, int64_t k,
                      xcat_tensor *indices, xcat_tensor *scores)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED, "top-K is not implemented yet");
}

xcat_status xcat_rank_sampled(xcat_context *ctx, const xcat_topk_args *args,
                              const xcat_tensor *targets, int64_t num_negatives, uint64_t seed,
                              xcat_tensor *ranks)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED, "sampled ranks are not implemented yet");
}
