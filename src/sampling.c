/* sampling.c — the negatives API of the sampled kinds: what a call draws, for inspection, and
 * the plan's item distribution. */
#include <math.h>

#include "backend.h"
#include "loss_validate.h"
#include "sampling.h"

void xcat_sampling_free(xcat_loss_plan *plan)
{
    xcat_sampling *s = plan->sampling;
    if (!s) return;
    xcat_host_free(plan->ctx, s->alias_threshold);
    xcat_host_free(plan->ctx, s->alias_index);
    xcat_host_free(plan->ctx, s->log_q);
    xcat_host_free(plan->ctx, s);
    plan->sampling = NULL;
}

/* Walker's alias method in Vose's stable form, in double: bucket j keeps itself with
 * probability keep_j and otherwise yields alias_j. The keep probability is stored as a 32-bit
 * threshold compared with a raw draw word, so every backend decides identically. */
static void build_alias(const double *p, int64_t c, uint32_t *thr, int32_t *alias, int64_t *work)
{
    double *scaled = (double *)(work + 2 * c); /* c doubles after the two stacks */
    int64_t *small = work, *large = work + c, ns = 0, nl = 0;
    for (int64_t j = 0; j < c; ++j) {
        scaled[j] = p[j] * (double)c;
        if (scaled[j] < 1.0) small[ns++] = j; else large[nl++] = j;
    }
    while (ns && nl) {
        const int64_t s = small[--ns], l = large[nl - 1];
        thr[s] = (uint32_t)fmin(scaled[s] * 4294967296.0, 4294967295.0);
        alias[s] = (int32_t)l;
        scaled[l] -= 1.0 - scaled[s];
        if (scaled[l] < 1.0) {
            --nl;
            small[ns++] = l;
        }
    }
    /* leftovers are full buckets (up to rounding): they keep themselves */
    while (nl) {
        const int64_t l = large[--nl];
        thr[l] = 0xFFFFFFFFu;
        alias[l] = (int32_t)l;
    }
    while (ns) {
        const int64_t s = small[--ns];
        thr[s] = 0xFFFFFFFFu;
        alias[s] = (int32_t)s;
    }
}

xcat_status xcat_loss_plan_set_item_counts(xcat_loss_plan *plan, const xcat_tensor *counts)
{
    if (!plan) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_context *ctx = plan->ctx;
    if (plan->desc.kind == XCAT_LOSS_CE)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "item counts are for the sampled "
                          "kinds; this plan is XCAT_LOSS_CE");
    if (!counts) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "counts is NULL");
    if (counts->ctx != ctx)
        return xcat_error(ctx, XCAT_ERROR_WRONG_CONTEXT, "counts belongs to another context");
    const int64_t c = plan->classes;
    if (xcat_tensor_vector_length(counts) != c)
        return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "counts must be a vector of %lld "
                          "(one per item)", (long long)c);
    const xcat_dtype dt = counts->dtype;
    if (dt != XCAT_DTYPE_I32 && dt != XCAT_DTYPE_I64 && dt != XCAT_DTYPE_F32)
        return xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "counts must be I32/I64 counts or F32 "
                          "probabilities");
    /* one host block: the raw values, then p (double), then the alias work area */
    const size_t bytes = (size_t)c * (8 + 8 + 3 * 8);
    char *blk = xcat_host_alloc(ctx, bytes, 64);
    xcat_sampling *s = xcat_host_calloc(ctx, sizeof *s, 64);
    uint32_t *thr = xcat_host_alloc(ctx, (size_t)c * 4, 64);
    int32_t *alias = xcat_host_alloc(ctx, (size_t)c * 4, 64);
    float *logq = xcat_host_alloc(ctx, (size_t)c * 4, 64);
    xcat_status st = XCAT_OK;
    if (!blk || !s || !thr || !alias || !logq)
        st = xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "item distribution of %lld items",
                        (long long)c);
    if (!st) st = ctx->ops->tensor_read(ctx, counts, blk, counts->stride);
    double *p = (double *)(blk + (size_t)c * 8);
    double sum = 0.0;
    for (int64_t j = 0; !st && j < c; ++j) {
        const double v = dt == XCAT_DTYPE_F32   ? (double)((const float *)blk)[j]
                         : dt == XCAT_DTYPE_I32 ? (double)((const int32_t *)blk)[j]
                                                : (double)((const int64_t *)blk)[j];
        if (!(v >= 0.0) || !isfinite(v))
            st = xcat_error(ctx, XCAT_ERROR_OUT_OF_RANGE, "counts[%lld] = %g: counts and "
                            "probabilities must be finite and >= 0", (long long)j, v);
        p[j] = v;
        sum += v;
    }
    if (!st && !(sum > 0.0))
        st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "counts sum to 0: no item can be drawn");
    if (!st && dt == XCAT_DTYPE_F32 && fabs(sum - 1.0) > 1e-3)
        st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "F32 probabilities sum to %.6g, not 1 "
                        "(give I32/I64 counts to have xcat normalise them)", sum);
    if (st) {
        xcat_host_free(ctx, blk), xcat_host_free(ctx, s), xcat_host_free(ctx, thr);
        xcat_host_free(ctx, alias), xcat_host_free(ctx, logq);
        return st;
    }
    for (int64_t j = 0; j < c; ++j) {
        p[j] /= sum;
        logq[j] = p[j] > 0.0 ? (float)log(p[j]) : -INFINITY;
    }
    build_alias(p, c, thr, alias, (int64_t *)(blk + (size_t)c * 16));
    xcat_host_free(ctx, blk);
    const uint64_t gen = plan->sampling ? plan->sampling->generation + 1 : 1;
    xcat_sampling_free(plan);
    *s = (xcat_sampling){.classes = c, .alias_threshold = thr, .alias_index = alias,
                         .log_q = logq, .generation = gen};
    plan->sampling = s;
    if (ctx->ops->loss_sampling_changed) return ctx->ops->loss_sampling_changed(plan);
    return XCAT_OK;
}

xcat_status xcat_loss_draw_negatives(xcat_loss_plan *plan, const xcat_loss_args *args,
                                     xcat_tensor *out)
{
    if (!plan) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_context *ctx = plan->ctx;
    if (plan->desc.kind == XCAT_LOSS_CE || plan->desc.kind == XCAT_LOSS_SCE)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "XCAT_LOSS_CE and XCAT_LOSS_SCE "
                          "draw no negatives");
    xcat_loss_call call;
    xcat_status st = xcat_loss_call_prepare(plan, args, &call);
    if (st) return st;
    if (plan->desc.kind == XCAT_LOSS_INBATCH && call.num_negatives == 0)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "this INBATCH plan draws no extra "
                          "negatives (desc.num_negatives = 0): its negatives are the batch's "
                          "positives");
    if (!out) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "out is NULL");
    if (out->ctx != ctx)
        return xcat_error(ctx, XCAT_ERROR_WRONG_CONTEXT, "out belongs to another context");
    if (out->dtype != XCAT_DTYPE_I32 && out->dtype != XCAT_DTYPE_I64)
        return xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "out must be I32 or I64");
    if (out->rows != call.rows || out->cols != call.num_negatives)
        return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "out is %lld×%lld; the call draws "
                          "%lld×%lld", (long long)out->rows, (long long)out->cols,
                          (long long)call.rows, (long long)call.num_negatives);
    return ctx->ops->loss_draw_negatives(plan, &call, out);
}
