/* loss_validate.c — every check of a loss call happens here, once per call and never per tile:
 * contexts, dtypes, shapes, and targets (read once: O(N)). */
#include <string.h>

#include "loss_validate.h"

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
    call->reduction_scale = 1.0;
    if (plan->desc.reduction == XCAT_REDUCTION_MEAN)
        call->reduction_scale = wsum != 0.0 ? 1.0 / wsum : 0.0;
    return XCAT_OK;
}

xcat_status xcat_loss_call_prepare(xcat_loss_plan *plan, const xcat_loss_args *args,
                                   xcat_loss_call *call)
{
    xcat_context *ctx = plan->ctx;
    if (!args) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "args is NULL");
    if (args->struct_size < offsetof(xcat_loss_args, row_weights) + sizeof args->row_weights)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "args->struct_size = %u: initialise with xcat_loss_args_init()",
                          args->struct_size);
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
    return scan_targets(plan, call);
}

xcat_status xcat_loss_check_forward_outputs(xcat_loss_plan *plan, const xcat_loss_call *call,
                                            const xcat_tensor *loss, const xcat_tensor *lse)
{
    int64_t n = plan->desc.reduction == XCAT_REDUCTION_NONE ? call->rows : 1;
    xcat_status st = check_vector(plan, loss, "loss", n, XCAT_DTYPE_F32, XCAT_DTYPE_F32);
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
