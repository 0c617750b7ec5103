/* cpu_topk.h — the CPU backend's fused scoring + top-K selection and sampled evaluation. */
#ifndef XCAT_CPU_TOPK_H
#define XCAT_CPU_TOPK_H

#include "backend.h"

xcat_status xcat_cpu_topk(xcat_context *ctx, const xcat_topk_call *call, xcat_tensor *indices,
                          xcat_tensor *scores);
xcat_status xcat_cpu_rank_sampled(xcat_context *ctx, const xcat_topk_call *call,
                                  const int64_t *h_targets, int64_t num_negatives, uint64_t seed,
                                  xcat_tensor *ranks);

#endif
