/* metrics.c — ranking metrics of top-K results, in float64 on the host. (Being written.) */
#include <string.h>

#include "backend.h"

void xcat_metrics_init(xcat_metrics *metrics)
{
    if (!metrics) return;
    memset(metrics, 0, sizeof *metrics);
    metrics->struct_size = sizeof *metrics;
}

xcat_status xcat_metrics_from_topk(xcat_context *ctx, const xcat_tensor *indices, int64_t k_at,
                                   const xcat_tensor *target_offsets, const xcat_tensor *targets,
                                   int64_t num_items, xcat_metrics *out)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED, "not implemented yet");
}

xcat_status xcat_metrics_from_ranks(xcat_context *ctx, const xcat_tensor *ranks, int64_t k_at,
                                    xcat_metrics *out)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED, "not implemented yet");
}
