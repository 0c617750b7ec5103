/* tensor.c — tensor handles: validation of shapes and strides, then the backend's memory. */
#include <string.h>

#include "backend.h"

/* Validate a shape and return the element count rows·stride, or an error. */
static xcat_status check_shape(xcat_context *ctx, xcat_dtype dtype, int64_t rows, int64_t cols,
                               int64_t stride, size_t *bytes)
{
    size_t es = xcat_dtype_size(dtype);
    if (es == 0)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "dtype = %d is not a xcat_dtype",
                          (int)dtype);
    if (rows < 1 || cols < 1)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "tensor shape %lld x %lld: rows and cols must be >= 1",
                          (long long)rows, (long long)cols);
    if (stride < cols)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "row_stride = %lld is smaller than cols = %lld", (long long)stride,
                          (long long)cols);
    /* Bytes spanned: ((rows−1)·stride + cols)·es, computed without overflow. */
    size_t span;
    if ((uint64_t)rows > SIZE_MAX || (uint64_t)stride > SIZE_MAX ||
        !xcat_mul_size((size_t)(rows - 1), (size_t)stride, &span) ||
        !xcat_add_size(span, (size_t)cols, &span) || !xcat_mul_size(span, es, bytes) ||
        *bytes > (size_t)INT64_MAX)
        return xcat_error(ctx, XCAT_ERROR_SIZE_OVERFLOW,
                          "tensor %lld x %lld (stride %lld) of %zu-byte elements overflows "
                          "the address space", (long long)rows, (long long)cols,
                          (long long)stride, es);
    return XCAT_OK;
}

xcat_status xcat_tensor_new_handle(xcat_context *ctx, xcat_dtype dtype, int64_t rows,
                                   int64_t cols, int64_t stride, xcat_tensor **out,
                                   xcat_tensor **t)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    if (!out) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    size_t bytes;
    xcat_status st = check_shape(ctx, dtype, rows, cols, stride, &bytes);
    if (st) return st;
    *t = xcat_host_calloc(ctx, sizeof **t, 16);
    if (!*t) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "allocating a tensor handle");
    **t = (xcat_tensor){.ctx = ctx, .dtype = dtype, .rows = rows, .cols = cols,
                        .stride = stride};
    return XCAT_OK;
}

xcat_status xcat_tensor_create(xcat_context *ctx, xcat_dtype dtype, int64_t rows, int64_t cols,
                               xcat_tensor **out)
{
    xcat_tensor *t;
    xcat_status st = xcat_tensor_new_handle(ctx, dtype, rows, cols, cols, out, &t);
    if (st) return st;
    t->owned = true;
    st = ctx->ops->tensor_alloc(ctx, t);
    if (st) {
        xcat_host_free(ctx, t);
        return st;
    }
    *out = t;
    return XCAT_OK;
}

xcat_status xcat_tensor_wrap_host(xcat_context *ctx, xcat_dtype dtype, int64_t rows,
                                  int64_t cols, int64_t row_stride, void *data,
                                  xcat_tensor **out)
{
    if (ctx && !data) {
        if (out) *out = NULL;
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "data is NULL");
    }
    if (ctx && ctx->backend != XCAT_BACKEND_CPU) {
        if (out) *out = NULL;
        return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED,
                          "wrapping host memory needs the CPU backend");
    }
    size_t es = xcat_dtype_size(dtype);
    if (ctx && es && ((uintptr_t)data % es) != 0) {
        if (out) *out = NULL;
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "data is not aligned to its %zu-byte elements", es);
    }
    xcat_tensor *t;
    xcat_status st = xcat_tensor_new_handle(ctx, dtype, rows, cols, row_stride, out, &t);
    if (st) return st;
    t->data = data;
    *out = t;
    return XCAT_OK;
}

static xcat_status check_copy(const xcat_tensor *t, const void *host, int64_t *stride)
{
    if (!t) return XCAT_ERROR_INVALID_ARGUMENT;
    if (!host) return xcat_error(t->ctx, XCAT_ERROR_INVALID_ARGUMENT, "host pointer is NULL");
    if (*stride == 0) *stride = t->cols;
    if (*stride < t->cols)
        return xcat_error(t->ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "host row stride %lld is smaller than cols = %lld",
                          (long long)*stride, (long long)t->cols);
    return XCAT_OK;
}

xcat_status xcat_tensor_write(xcat_tensor *tensor, const void *src, int64_t src_row_stride)
{
    xcat_status st = check_copy(tensor, src, &src_row_stride);
    if (st) return st;
    return tensor->ctx->ops->tensor_write(tensor->ctx, tensor, src, src_row_stride);
}

xcat_status xcat_tensor_read(const xcat_tensor *tensor, void *dst, int64_t dst_row_stride)
{
    xcat_status st = check_copy(tensor, dst, &dst_row_stride);
    if (st) return st;
    return tensor->ctx->ops->tensor_read(tensor->ctx, tensor, dst, dst_row_stride);
}

xcat_status xcat_tensor_get_shape(const xcat_tensor *tensor, xcat_dtype *dtype, int64_t *rows,
                                  int64_t *cols, int64_t *row_stride)
{
    if (!tensor) return XCAT_ERROR_INVALID_ARGUMENT;
    if (dtype) *dtype = tensor->dtype;
    if (rows) *rows = tensor->rows;
    if (cols) *cols = tensor->cols;
    if (row_stride) *row_stride = tensor->stride;
    return XCAT_OK;
}

void xcat_tensor_free(xcat_tensor *tensor)
{
    if (!tensor) return;
    xcat_context *ctx = tensor->ctx;
    if (tensor->owned) ctx->ops->tensor_release(ctx, tensor);
    xcat_host_free(ctx, tensor);
}

int64_t xcat_tensor_vector_length(const xcat_tensor *t)
{
    if (t->cols == 1 && (t->rows == 1 || t->stride == 1)) return t->rows;
    if (t->rows == 1) return t->cols;
    return -1;
}
