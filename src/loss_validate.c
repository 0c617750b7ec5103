/* loss_validate.c — every check of a loss call happens here, once per call and never per tile:
 * contexts, dtypes, shapes, and targets (read once: O(N)). */
#include <string.h>

#include "loss_validate.h"
#include "sce.h"
#include "topk_validate.h"

static xcat_status check_tensor(xcat_loss_plan *plan, const xcat_tensor *t, const char *name,
                                bool required)
{
    xcat_context *ctx = plan->ctx;
    if (!t) {
        if (required) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "%s is NULL", name);
        return XCAT_OK;
    }
    if (t->ctx != ctx)
        return xcat_error(ctx, XCAT_ERROR_WRONG_CONTEXT,
                          "%s belongs to another context than the plan", name);
    return XCAT_OK;
}

static xcat_status check_matrix(xcat_loss_plan *plan, const xcat_tensor *t, const char *name,
                                int64_t rows, int64_t cols)
{
    xcat_status st = check_tensor(plan, t, name, true);
    if (st) return st;
    if (t->dtype != XCAT_DTYPE_F32)
        return xcat_error(plan->ctx, XCAT_ERROR_DTYPE_MISMATCH, "%s must be F32 (dtype %d)",
                          name, (int)t->dtype);
    if (t->rows != rows || t->cols != cols)
        return xcat_error(plan->ctx, XCAT_ERROR_SHAPE_MISMATCH,
                          "%s is %lld x %lld, expected %lld x %lld", name, (long long)t->rows,
                          (long long)t->cols, (long long)rows, (long long)cols);
    return XCAT_OK;
}

/* A vector of `n` elements of one of the dtypes `a` or `b`. */
static xcat_status check_vector(xcat_loss_plan *plan, const xcat_tensor *t, const char *name,
                                int64_t n, xcat_dtype a, xcat_dtype b)
{
    xcat_status st = check_tensor(plan, t, name, true);
    if (st) return st;
    if (t->dtype != a && t->dtype != b)
        return xcat_error(plan->ctx, XCAT_ERROR_DTYPE_MISMATCH, "%s has dtype %d, expected %s",
                          name, (int)t->dtype, a == b ? "F32" : "I32 or I64");
    int64_t len = xcat_tensor_vector_length(t);
    if (len != n)
        return xcat_error(plan->ctx, XCAT_ERROR_SHAPE_MISMATCH,
                          "%s is %lld x %lld (stride %lld), expected a contiguous vector of "
                          "%lld", name, (long long)t->rows, (long long)t->cols,
                          (long long)t->stride, (long long)n);
    return XCAT_OK;
}

static int64_t target_at(const void *y, bool y64, int64_t i)
{
    return y64 ? ((const int64_t *)y)[i] : (int64_t)((const int32_t *)y)[i];
}

/* Host-visible contents of a vector tensor: its memory (CPU backend) or a copy read into the
 * plan's host scratch at byte offset `at` (device backends). */
static xcat_status host_view(xcat_loss_plan *plan, const xcat_tensor *t, size_t at,
                             const void **out)
{
    if (t->data) {
        *out = t->data;
        return XCAT_OK;
    }
    void *dst = (char *)plan->host_scratch + at;
    xcat_status st = plan->ctx->ops->tensor_read(plan->ctx, t, dst, t->stride);
    *out = dst;
    return st;
}

/* Targets in range, and Σ w over counted rows for MEAN. */
static xcat_status scan_targets(xcat_loss_plan *plan, xcat_loss_call *call)
{
    const xcat_tensor *yt = call->targets, *wt = call->row_weights;
    const void *y;
    const float *wd = NULL;
    xcat_status st = host_view(plan, yt, 0, &y);
    if (!st && wt) st = host_view(plan, wt, (size_t)plan->max_rows * 8, (const void **)&wd);
    if (st) return st;
    const bool y64 = yt->dtype == XCAT_DTYPE_I64;
    const int64_t C = plan->classes, ignore = plan->desc.ignore_index;
    double wsum = 0.0;
    for (int64_t i = 0; i < call->rows; i++) {
        int64_t v = target_at(y, y64, i);
        if (v == ignore) continue;
        if (v < 0 || v >= C)
            return xcat_error(plan->ctx, XCAT_ERROR_OUT_OF_RANGE,
                              "targets: row %lld has target %lld, outside [0, %lld) and not "
                              "ignore_index (%lld)", (long long)i, (long long)v, (long long)C,
                              (long long)ignore);
        wsum += wd ? (double)wd[i] : 1.0;
    }
    call->h_targets = y;
    call->h_targets64 = y64;
    call->h_weights = wd;
    call->reduction_scale = 1.0;
    if (plan->desc.reduction == XCAT_REDUCTION_MEAN)
        call->reduction_scale = wsum != 0.0 ? 1.0 / wsum : 0.0;
    return XCAT_OK;
}

/* The sampled kinds' inputs: given negatives (values in [−1, C)) and the row-items CSR (ids
 * ascending per row, in range), checked on the host once per call. */
static xcat_status prepare_sampled(xcat_loss_plan *plan, const xcat_loss_args *a,
                                   xcat_loss_call *call)
{
    xcat_context *ctx = plan->ctx;
    const xcat_loss_desc *d = &plan->desc;
    const int64_t n = call->rows, c = plan->classes;
    xcat_status st = XCAT_OK;
    call->num_negatives = d->num_negatives;
    call->step = a->step;
    const bool given_q = d->sampler == XCAT_SAMPLER_GIVEN_PER_ROW ||
                         d->sampler == XCAT_SAMPLER_GIVEN_SHARED;
    const bool inbatch_q = d->kind == XCAT_LOSS_INBATCH && d->correction != XCAT_CORRECTION_NONE;
    if (!plan->sampling && (d->sampler == XCAT_SAMPLER_POPULARITY || inbatch_q ||
                            (d->correction == XCAT_CORRECTION_LOGQ && given_q)))
        return xcat_error(ctx, XCAT_ERROR_BAD_STATE, "this plan needs item counts: call "
                          "xcat_loss_plan_set_item_counts() first");
    if (d->sampler == XCAT_SAMPLER_GIVEN_PER_ROW || d->sampler == XCAT_SAMPLER_GIVEN_SHARED) {
        const xcat_tensor *t = a->negatives;
        if ((st = check_tensor(plan, t, "negatives", true))) return st;
        if (t->dtype != XCAT_DTYPE_I32 && t->dtype != XCAT_DTYPE_I64)
            return xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "negatives must be I32 or I64");
        const bool per_row = d->sampler == XCAT_SAMPLER_GIVEN_PER_ROW;
        const int64_t k = per_row ? t->cols : xcat_tensor_vector_length(t);
        if ((per_row && t->rows != n) || k < 1)
            return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "negatives is %lld×%lld: expected "
                              "%s", (long long)t->rows, (long long)t->cols,
                              per_row ? "N×K (one row per hidden row)" : "a vector of K");
        if (d->num_negatives && d->num_negatives != k)
            return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "negatives has K = %lld but "
                              "desc.num_negatives = %lld", (long long)k,
                              (long long)d->num_negatives);
        call->negatives = t;
        call->num_negatives = k;
        /* the ids are checked on the host: a device tensor is read back (contiguous) */
        const bool i64 = t->dtype == XCAT_DTYPE_I64;
        const void *data = t->data;
        int64_t ld = t->stride;
        void *copy = NULL;
        if (!data) {
            copy = xcat_host_alloc(ctx, (size_t)(t->rows * t->cols) * xcat_dtype_size(t->dtype),
                                   64);
            if (!copy) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "reading negatives");
            xcat_status rs = ctx->ops->tensor_read(ctx, t, copy, t->cols);
            if (rs) {
                xcat_host_free(ctx, copy);
                return rs;
            }
            data = copy;
            ld = t->cols;
        }
        xcat_status bad = XCAT_OK;
        for (int64_t r = 0; !bad && r < (per_row ? n : 1); ++r)
            for (int64_t k2 = 0; !bad && k2 < k; ++k2) {
                const int64_t at = per_row ? r * ld + k2 : k2;
                const int64_t v = i64 ? ((const int64_t *)data)[at] : ((const int32_t *)data)[at];
                if (v < -1 || v >= c)
                    bad = xcat_error(ctx, XCAT_ERROR_OUT_OF_RANGE, "negatives[%lld][%lld] = "
                                     "%lld is outside [−1, %lld)", (long long)r, (long long)k2,
                                     (long long)v, (long long)c);
            }
        xcat_host_free(ctx, copy);
        if (bad) return bad;
    }
    if (!a->row_items_offsets != !a->row_items)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "row_items_offsets and row_items "
                          "go together: give both or neither");
    xcat_host_free(ctx, plan->h_row_items_offsets);
    xcat_host_free(ctx, plan->h_row_items);
    plan->h_row_items_offsets = plan->h_row_items = NULL;
    if (!a->row_items) return XCAT_OK;
    int64_t noff = 0, nnz = 0;
    st = xcat_read_index_vector(ctx, a->row_items_offsets, "row_items_offsets",
                                &plan->h_row_items_offsets, &noff);
    if (!st) st = xcat_read_index_vector(ctx, a->row_items, "row_items", &plan->h_row_items, &nnz);
    const int64_t *o = plan->h_row_items_offsets, *v = plan->h_row_items;
    if (!st && (noff != n + 1 || o[0] != 0))
        st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "row_items_offsets: need %lld CSR "
                        "offsets starting at 0", (long long)n + 1);
    for (int64_t r = 0; !st && r < n; ++r) {
        if (o[r + 1] < o[r] || o[r + 1] > nnz)
            st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "row_items_offsets[%lld] = %lld: "
                            "offsets must be non-decreasing and at most %lld", (long long)r + 1,
                            (long long)o[r + 1], (long long)nnz);
        for (int64_t i = o[r]; !st && i < o[r + 1]; ++i) {
            if (v[i] < 0 || v[i] >= c)
                st = xcat_error(ctx, XCAT_ERROR_OUT_OF_RANGE, "row_items[%lld] = %lld (row "
                                "%lld) is outside [0, %lld)", (long long)i, (long long)v[i],
                                (long long)r, (long long)c);
            else if (i > o[r] && v[i] < v[i - 1])
                st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "row_items of row %lld are "
                                "not ascending", (long long)r);
        }
    }
    if (st) return st;
    call->row_items_offsets = a->row_items_offsets;
    call->row_items = a->row_items;
    call->h_row_items_offsets = plan->h_row_items_offsets;
    call->h_row_items = plan->h_row_items;
    return XCAT_OK;
}

xcat_status xcat_loss_call_prepare(xcat_loss_plan *plan, const xcat_loss_args *args_in,
                                   xcat_loss_call *call)
{
    xcat_context *ctx = plan->ctx;
    if (!args_in) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "args is NULL");
    if (args_in->struct_size < offsetof(xcat_loss_args, row_weights) + sizeof args_in->row_weights)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "args->struct_size = %u: initialise with xcat_loss_args_init()",
                          args_in->struct_size);
    /* The caller's args up to their struct_size; fields of a newer header default. */
    xcat_loss_args argsv;
    xcat_loss_args_init(&argsv);
    memcpy(&argsv, args_in, args_in->struct_size < sizeof argsv ? args_in->struct_size
                                                                  : sizeof argsv);
    const xcat_loss_args *args = &argsv;
    memset(call, 0, sizeof *call);
    const xcat_tensor *h = args->hidden;
    xcat_status st = check_tensor(plan, h, "hidden", true);
    if (st) return st;
    if (h->rows > plan->max_rows)
        return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH,
                          "hidden has %lld rows, more than the plan's max_rows = %lld",
                          (long long)h->rows, (long long)plan->max_rows);
    const int64_t n = h->rows, c = plan->classes, d = plan->dim;
    if ((st = check_matrix(plan, h, "hidden", n, d)) ||
        (st = check_matrix(plan, args->items, "items", c, d)) ||
        (st = check_vector(plan, args->targets, "targets", n, XCAT_DTYPE_I32,
                           XCAT_DTYPE_I64)))
        return st;
    if (args->bias &&
        (st = check_vector(plan, args->bias, "bias", c, XCAT_DTYPE_F32, XCAT_DTYPE_F32)))
        return st;
    if (args->row_weights && (st = check_vector(plan, args->row_weights, "row_weights", n,
                                                XCAT_DTYPE_F32, XCAT_DTYPE_F32)))
        return st;
    *call = (xcat_loss_call){.hidden = h, .items = args->items, .bias = args->bias,
                             .targets = args->targets, .row_weights = args->row_weights,
                             .rows = n};
    st = scan_targets(plan, call);
    if (!st && plan->desc.kind == XCAT_LOSS_SCE) {
        call->step = args->step;
        call->banned_items = args->banned_items;
        st = xcat_sce_prepare_call(plan, args->banned_items);
    } else if (!st && plan->desc.kind != XCAT_LOSS_CE) {
        st = prepare_sampled(plan, args, call);
    }
    return st;
}

xcat_status xcat_loss_check_forward_outputs(xcat_loss_plan *plan, const xcat_loss_call *call,
                                            const xcat_tensor *loss, const xcat_tensor *lse)
{
    int64_t n = plan->desc.reduction == XCAT_REDUCTION_NONE ? call->rows : 1;
    xcat_status st = check_vector(plan, loss, "loss", n, XCAT_DTYPE_F32, XCAT_DTYPE_F32);
    if (!st && lse && (plan->desc.kind == XCAT_LOSS_BCE || plan->desc.kind == XCAT_LOSS_GBCE))
        st = xcat_error(plan->ctx, XCAT_ERROR_INVALID_ARGUMENT, "lse must be NULL for BCE and "
                        "GBCE (they have no softmax normaliser)");
    if (!st && lse) st = check_vector(plan, lse, "lse", call->rows, XCAT_DTYPE_F32, XCAT_DTYPE_F32);
    return st;
}

xcat_status xcat_loss_check_backward_outputs(xcat_loss_plan *plan, const xcat_loss_call *call,
                                             const xcat_tensor *grad_loss,
                                             const xcat_tensor *d_hidden,
                                             const xcat_tensor *d_items,
                                             const xcat_tensor *d_bias)
{
    if (!d_hidden && !d_items && !d_bias)
        return xcat_error(plan->ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "d_hidden, d_items and d_bias are all NULL: nothing to compute");
    int64_t n = plan->desc.reduction == XCAT_REDUCTION_NONE ? call->rows : 1;
    xcat_status st = XCAT_OK;
    if (grad_loss)
        st = check_vector(plan, grad_loss, "grad_loss", n, XCAT_DTYPE_F32, XCAT_DTYPE_F32);
    if (!st && d_hidden) st = check_matrix(plan, d_hidden, "d_hidden", call->rows, plan->dim);
    if (!st && d_items) st = check_matrix(plan, d_items, "d_items", plan->classes, plan->dim);
    if (!st && d_bias)
        st = check_vector(plan, d_bias, "d_bias", plan->classes, XCAT_DTYPE_F32, XCAT_DTYPE_F32);
    return st;
}
