/* status.c — status names, dtype and ISA names, and the last-error mechanism. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

const char *xcat_status_string(xcat_status status)
{
    switch (status) {
    case XCAT_OK: return "ok";
    case XCAT_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case XCAT_ERROR_SHAPE_MISMATCH: return "shape mismatch";
    case XCAT_ERROR_DTYPE_MISMATCH: return "dtype mismatch";
    case XCAT_ERROR_OUT_OF_RANGE: return "index out of range";
    case XCAT_ERROR_SIZE_OVERFLOW: return "size overflow";
    case XCAT_ERROR_OUT_OF_MEMORY: return "out of host memory";
    case XCAT_ERROR_DEVICE_OUT_OF_MEMORY: return "out of device memory";
    case XCAT_ERROR_OUT_OF_RESOURCES: return "out of device resources";
    case XCAT_ERROR_BACKEND_UNAVAILABLE: return "backend unavailable";
    case XCAT_ERROR_DEVICE_NOT_FOUND: return "device not found";
    case XCAT_ERROR_BUILD_FAILED: return "kernel build failed";
    case XCAT_ERROR_UNSUPPORTED: return "unsupported";
    case XCAT_ERROR_WRONG_CONTEXT: return "object from another context";
    case XCAT_ERROR_BAD_STATE: return "call out of order";
    case XCAT_ERROR_BACKEND_FAILURE: return "backend failure";
    case XCAT_ERROR_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

size_t xcat_dtype_size(xcat_dtype dtype)
{
    switch (dtype) {
    case XCAT_DTYPE_F32: return 4;
    case XCAT_DTYPE_I32: return 4;
    case XCAT_DTYPE_I64: return 8;
    case XCAT_DTYPE_BF16: return 2;
    case XCAT_DTYPE_F16: return 2;
    default: return 0;
    }
}

const char *xcat_isa_name(xcat_isa isa)
{
    switch (isa) {
    case XCAT_ISA_SCALAR: return "scalar";
    case XCAT_ISA_AVX2: return "avx2";
    case XCAT_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}

xcat_status xcat_error(xcat_context *ctx, xcat_status status, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(ctx->last_error, sizeof ctx->last_error, "%s: ",
                         xcat_status_string(status));
        if (n < 0 || (size_t)n >= sizeof ctx->last_error) n = 0;
        vsnprintf(ctx->last_error + n, sizeof ctx->last_error - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return status;
}

const char *xcat_context_last_error(const xcat_context *ctx)
{
    return ctx ? ctx->last_error : "no context (NULL passed to xcat_context_last_error)";
}
