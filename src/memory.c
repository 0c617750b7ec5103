/* memory.c — host allocation through the context's allocator, and checked size arithmetic. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

bool xcat_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

bool xcat_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return false;
    *out = a + b;
    return true;
}

void *xcat_host_alloc(xcat_context *ctx, size_t bytes, size_t alignment)
{
    if (bytes == 0) bytes = 1;
    if (ctx && ctx->alloc) return ctx->alloc(ctx->alloc_user, bytes, alignment);
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    size_t rounded;
    if (!xcat_add_size(bytes, alignment - 1, &rounded)) return NULL;
    rounded &= ~(alignment - 1);
    return aligned_alloc(alignment, rounded);
}

void *xcat_host_calloc(xcat_context *ctx, size_t bytes, size_t alignment)
{
    void *p = xcat_host_alloc(ctx, bytes, alignment);
    if (p) memset(p, 0, bytes);
    return p;
}

void xcat_host_free(xcat_context *ctx, void *ptr)
{
    if (!ptr) return;
    if (ctx && ctx->free)
        ctx->free(ctx->alloc_user, ptr);
    else
        free(ptr);
}
