/* internal.h — the objects behind the public handles, and the helpers every src/ file uses.
 * Not installed. Backends see these structs through backend.h. */
#ifndef XCAT_INTERNAL_H
#define XCAT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xcat.h"

struct xcat_backend_ops;

#define XCAT_LAST_ERROR_SIZE 4096

struct xcat_context {
    const struct xcat_backend_ops *ops;
    xcat_backend_kind backend;
    char device_name[256];
    xcat_isa isa;        /* CPU level in use (also meaningful for host-side helpers) */
    int32_t num_threads; /* >= 1 */
    bool ignore_env;     /* XCAT_CONTEXT_IGNORE_ENV: plans read no XCAT_* tuning variables */
    void *(*alloc)(void *user, size_t size, size_t alignment);
    void (*free)(void *user, void *ptr);
    void *alloc_user;
    void *backend_state; /* owned by the backend */
    char last_error[XCAT_LAST_ERROR_SIZE];
};

struct xcat_tensor {
    xcat_context *ctx;
    xcat_dtype dtype;
    int64_t rows, cols, stride; /* stride in elements, >= cols */
    void *data;                 /* host pointer (CPU backend) */
    void *handle;               /* backend-specific (e.g. cl_mem) */
    size_t offset;              /* bytes from the start of `handle` to element (0, 0) */
    bool owned;                 /* memory allocated by xcat */
};

/* What forward left behind for backward (see xcat_loss_backward in xcat.h). */
typedef struct xcat_loss_saved {
    bool valid;
    const xcat_tensor *hidden, *items, *bias, *targets, *row_weights;
    int64_t rows;
    uint64_t step;                     /* SCE: the directions depend on it */
    const xcat_tensor *banned_items;   /* SCE: so does the item selection */
} xcat_loss_saved;

struct xcat_loss_plan {
    xcat_context *ctx;
    xcat_loss_desc desc;
    int64_t max_rows, classes, dim;
    size_t workspace_bytes;
    void *workspace;
    void *backend_plan; /* owned by the backend */
    xcat_loss_saved saved;
    void *host_scratch; /* max_rows·12 bytes: host copies of device targets and weights */
    struct xcat_sampling *sampling; /* sampled kinds: item counts, alias table (src/sampling.h) */
    int64_t *h_row_items_offsets, *h_row_items; /* the last call's row-items CSR, on the host */
    struct xcat_sce *sce; /* XCAT_LOSS_SCE: selections and per-row state (src/sce.h) */
};

/* ---- errors ---- */
/* Record a formatted message as the context's last error and return `status` (ctx may be
 * NULL: then only the status is returned). */
xcat_status xcat_error(xcat_context *ctx, xcat_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- host memory through the context's allocator ---- */
void *xcat_host_alloc(xcat_context *ctx, size_t bytes, size_t alignment);
void *xcat_host_calloc(xcat_context *ctx, size_t bytes, size_t alignment);
void xcat_host_free(xcat_context *ctx, void *ptr);

/* ---- checked size arithmetic: false on overflow ---- */
bool xcat_mul_size(size_t a, size_t b, size_t *out);
bool xcat_add_size(size_t a, size_t b, size_t *out);

/* Validate a shape and allocate a handle with no memory behind it yet (*out is set to NULL
 * first; the caller fills data/handle, then stores *t in *out). */
xcat_status xcat_tensor_new_handle(xcat_context *ctx, xcat_dtype dtype, int64_t rows,
                                   int64_t cols, int64_t stride, xcat_tensor **out,
                                   xcat_tensor **t);

/* Number of elements of a tensor that is a vector (n×1 or 1×n, contiguous), or -1. */
int64_t xcat_tensor_vector_length(const xcat_tensor *t);

#endif /* XCAT_INTERNAL_H */
