/* backend.h — the interface every backend implements (CPU now, OpenCL next).
 *
 * The API layer (the files in src/) validates arguments once and then calls exactly one of these
 * entries; backends never call back into the public API. Entries receive validated inputs:
 * shapes agree, dtypes are right, targets are in range. */
#ifndef XCAT_BACKEND_H
#define XCAT_BACKEND_H

#include "internal.h"

typedef enum xcat_op {
    XCAT_OP_LOSS_CE = 0,
    XCAT_OP_TOPK = 1,
    XCAT_OP_LOSS_SAMPLED = 2, /* SAMPLED_CE, BCE, GBCE, INBATCH */
    XCAT_OP_LOSS_SCE = 3,
} xcat_op;

/* One loss call, validated. Vectors are resolved to plain pointers' owners (tensors). */
typedef struct xcat_loss_call {
    const xcat_tensor *hidden, *items, *bias, *targets, *row_weights;
    int64_t rows;            /* N of this call (<= plan max_rows) */
    double reduction_scale;  /* MEAN: 1 / Σ w over non-ignored rows (0 if none); else 1 */
    /* Sampled kinds (NULL / 0 otherwise). The CSR of row items was checked on the host and is
     * also given as host int64 copies (which live in the plan until the next call). */
    const xcat_tensor *negatives;            /* GIVEN_* samplers */
    int64_t num_negatives;                   /* K of this call */
    const xcat_tensor *row_items_offsets, *row_items;
    const int64_t *h_row_items_offsets, *h_row_items; /* host copies, or NULL */
    uint64_t step;
    /* Host views of the targets and weights (the tensor's memory, or a copy in the plan's
     * host scratch), valid for the call. */
    const void *h_targets;
    bool h_targets64;
    const float *h_weights; /* NULL: all 1 */
    const xcat_tensor *banned_items; /* SCE */
} xcat_loss_call;

/* One top-K or sampled-rank call, validated (src/topk.c). The banned list was checked on the
 * host, and so was the exclusion CSR unless csr_on_device; their int64 host copies are valid
 * for the call. */
typedef struct xcat_topk_call {
    const xcat_tensor *queries, *items, *bias;
    const xcat_tensor *exclude_offsets, *exclude_items, *banned_items; /* caller's, or NULL */
    bool has_exclusions; /* per-query exclusions given (a CSR of nnz ids) */
    bool csr_on_device;  /* the backend checks the CSR where it lies (topk_device_csr):
                            h_offsets and h_exclude are NULL */
    int64_t nnz;
    const int64_t *h_offsets;  /* M+1, or NULL (no exclusions, or csr_on_device) */
    const int64_t *h_exclude;  /* nnz */
    const int64_t *h_banned;   /* num_banned, sorted ascending, unique */
    int64_t num_banned;
    int64_t m, c, d, k;
} xcat_topk_call;

typedef struct xcat_backend_ops {
    const char *name;
    /* Probe and open the device selected by `options` (or the caller's objects in `interop`,
     * backend-specific, NULL otherwise); fill ctx->device_name, ctx->backend_state. On failure
     * leave nothing allocated. */
    xcat_status (*context_init)(xcat_context *ctx, const xcat_context_options *options,
                                const void *interop);
    void (*context_release)(xcat_context *ctx);
    bool (*supports)(const xcat_context *ctx, xcat_op op, xcat_dtype dtype);
    xcat_status (*synchronize)(xcat_context *ctx);
    /* Optional: the kernel profile as text (xcat_context_profile); NULL: nothing recorded. */
    void (*profile_report)(xcat_context *ctx, char *buf, size_t size, bool reset);

    /* Tensors: allocate t->rows×t->stride elements (zeroed), release, copy. */
    xcat_status (*tensor_alloc)(xcat_context *ctx, xcat_tensor *t);
    void (*tensor_release)(xcat_context *ctx, xcat_tensor *t);
    xcat_status (*tensor_write)(xcat_context *ctx, xcat_tensor *t, const void *src,
                                int64_t src_stride);
    xcat_status (*tensor_read)(xcat_context *ctx, const xcat_tensor *t, void *dst,
                               int64_t dst_stride);

    /* Loss plans: size (without allocating), initialise (allocate workspace and per-plan
     * state), release. */
    xcat_status (*loss_workspace_size)(const xcat_context *ctx, const xcat_loss_desc *desc,
                                       int64_t max_rows, int64_t classes, int64_t dim,
                                       size_t *bytes);
    xcat_status (*loss_plan_init)(xcat_loss_plan *plan);
    void (*loss_plan_release)(xcat_loss_plan *plan);
    /* Forward: write the per-row losses (unweighted? no: w_i·ℓ_i, ignored rows 0) into
     * `row_loss` (vector N) or, if `reduced` is non-NULL, the reduced value; `lse` optional.
     * Keeps backward state in the plan unless FORWARD_ONLY. */
    xcat_status (*loss_forward)(xcat_loss_plan *plan, const xcat_loss_call *call,
                                xcat_tensor *loss, xcat_tensor *lse);
    /* Backward: `reuse` says the plan's saved state matches this call. */
    xcat_status (*loss_backward)(xcat_loss_plan *plan, const xcat_loss_call *call, bool reuse,
                                 const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                 xcat_tensor *d_items, xcat_tensor *d_bias);
    /* Optional (NULL: none): forward and backward in one pass, where the backend has one for
     * this plan and call; sets *done = false and does nothing where it has not (the API layer
     * then runs loss_forward and loss_backward). Leaves no per-row state for a later backward. */
    xcat_status (*loss_forward_backward)(xcat_loss_plan *plan, const xcat_loss_call *call,
                                         xcat_tensor *loss, xcat_tensor *lse,
                                         const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                         xcat_tensor *d_items, xcat_tensor *d_bias, bool *done);
    /* Sampled kinds: the plan's sampling table (plan->sampling, built on the host by the API
     * layer) changed: upload what the backend needs. NULL when nothing is to be done. */
    xcat_status (*loss_sampling_changed)(xcat_loss_plan *plan);
    /* Write the call's negatives (N×K, −1 where masked) into `out` (I32/I64). */
    xcat_status (*loss_draw_negatives)(xcat_loss_plan *plan, const xcat_loss_call *call,
                                       xcat_tensor *out);

    /* XCAT_LOSS_SCE, mixed directions: dirs (n_b × d) = d^(−1/4)·Rᵀ·H (src/sce.h). */
    xcat_status (*sce_mix_directions)(xcat_loss_plan *plan, const xcat_loss_call *call,
                                      xcat_tensor *dirs);
    /* XCAT_LOSS_SCE, plain directions d^(−1/4)·G of (seed, step) generated where dirs lives,
     * bitwise equal to xcat_sce_plain_directions(); NULL: generated on the host and written. */
    xcat_status (*sce_plain_directions)(xcat_loss_plan *plan, uint64_t step, xcat_tensor *dirs);

    /* Optional: true when the backend will read this call's exclusion CSR in place and check
     * it itself before using it (xcat_topk_check_csr_on_host gives the message of a bad one),
     * so the API layer neither copies nor checks it. */
    bool (*topk_device_csr)(const xcat_context *ctx, const xcat_topk_call *call);
    /* Top-K: `indices` M×k (I32/I64), `scores` M×k F32 or NULL. */
    xcat_status (*topk)(xcat_context *ctx, const xcat_topk_call *call, xcat_tensor *indices,
                        xcat_tensor *scores);
    /* Sampled evaluation: `h_targets` host copy of the M targets; `ranks` vector of M I64. */
    xcat_status (*rank_sampled)(xcat_context *ctx, const xcat_topk_call *call,
                                const int64_t *h_targets, int64_t num_negatives, uint64_t seed,
                                xcat_tensor *ranks);
} xcat_backend_ops;

extern const xcat_backend_ops xcat_cpu_backend;
#ifdef XCAT_HAVE_OPENCL
extern const xcat_backend_ops xcat_ocl_backend;
#endif

/* Create a context on `ops` after the options were resolved (context.c); used by
 * xcat_context_create and by the interop constructors. */
xcat_status xcat_context_build(const xcat_context_options *options, const xcat_backend_ops *ops,
                               xcat_backend_kind kind, const void *interop, xcat_context **out);
/* The caller's options (NULL = defaults), read up to their struct_size: a struct from an
 * older or newer header is honoured field by field. */
xcat_context_options xcat_context_options_copy(const xcat_context_options *in);
/* Write a creation error into options->error_message (there is no context yet). */
xcat_status xcat_context_create_error(const xcat_context_options *options, xcat_status status,
                                      const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* XCAT_BACKEND_H */
