/* sce.h — the backend-independent half of XCAT_LOSS_SCE (src/sce.c): parameters, bucket
 * directions, selection through the backend's top-K, the per-row state every backend fills, the
 * reduction, and the host-side plan of a backward (rows by winning bucket, rows by positive).
 * The backends (cpu_sce.c, ocl_sce.c) do the per-bucket CE forward and backward. */
#ifndef XCAT_SCE_H
#define XCAT_SCE_H

#include "backend.h"

/* Effective sizes of one call. */
typedef struct xcat_sce_dims {
    int64_t nb, kx, ky; /* kx already clamped to the call's rows */
} xcat_sce_dims;

/* The plan's SCE state: backend tensors, created with the plan. */
typedef struct xcat_sce {
    int64_t nb, kx, ky;        /* the plan's values (kx before clamping) */
    xcat_tensor *dirs;         /* nb × d F32: the call's directions */
    xcat_tensor *rows;         /* nb·kx I32 (viewed as nb × kx_call) */
    xcat_tensor *items;        /* nb × ky I32 */
    /* per-row state of the last bucket pass (vectors of max_rows) */
    xcat_tensor *best_loss;    /* F32: max over buckets of ℓ_bi (unweighted) */
    xcat_tensor *best_lse;     /* F32: that bucket's log-denominator */
    xcat_tensor *best_bucket;  /* I32: winning bucket, −1 = the row contributes nothing */
    xcat_tensor *zpos;         /* F32: the row's positive logit */
    int64_t *h_banned;         /* the call's banned items (sorted, unique), host */
    int64_t num_banned;
    /* host scratch of the backward plan (see xcat_sce_bwd), allocated on first use and kept:
     * fresh pages every step cost milliseconds at N = 409,600 */
    void *bwd_scratch;
    /* rows grouped by positive item (in bwd_scratch) for the current call, when pos_ready */
    int pos_ready;
    int64_t npos, pos_count;
} xcat_sce;

/* Validate the SCE fields of `d` against C and N (loss_plan.c); fills defaults in place. */
xcat_status xcat_sce_check_desc(xcat_context *ctx, xcat_loss_desc *d, int64_t max_rows,
                                int64_t classes);
/* Create / free plan->sce (after the backend's plan init). */
xcat_status xcat_sce_plan_init(xcat_loss_plan *plan);
void xcat_sce_plan_release(xcat_loss_plan *plan);
/* Read args.banned_items into plan->sce (sorted, unique, checked in [0, C)). */
xcat_status xcat_sce_prepare_call(xcat_loss_plan *plan, const xcat_tensor *banned);

xcat_sce_dims xcat_sce_dims_of(const xcat_loss_plan *plan, int64_t rows);
/* A view of `t`'s first rows·cols elements as a contiguous rows × cols matrix. */
xcat_tensor xcat_sce_view(const xcat_tensor *t, int64_t rows, int64_t cols);

/* Plain directions d^(−1/4)·G on the host (nb × d, row-major). */
void xcat_sce_plain_directions(uint64_t seed, uint64_t step, int64_t nb, int64_t d, float *out);
/* Value `index` of the reproducible Gaussian stream (seed, step) (cl/rng.cl xr_gauss12). */
float xcat_sce_gauss(uint64_t seed, uint64_t step, uint64_t index);
/* Bytes of the plan's SCE state (directions, selections, per-row state). */
size_t xcat_sce_state_bytes(const xcat_loss_desc *d, int64_t max_rows, int64_t dim);
/* The target of row i of the call (from its host copy). */
int64_t xcat_sce_target(const xcat_loss_call *call, int64_t i);

/* Steps 1–2: directions into sce->dirs (mixed ones by the backend's sce_mix_directions), then
 * the row and item selections (sce->rows as nb × kx_call, sce->items) through its top-K. */
xcat_status xcat_sce_select(xcat_loss_plan *plan, const xcat_loss_call *call);

/* After a bucket pass: the loss (reduced or per row) and lse from the per-row state. */
xcat_status xcat_sce_finish_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                    xcat_tensor *loss, xcat_tensor *lse);

/* The host plan of a backward; its arrays live in the plan's scratch (valid until the next
 * call of the plan; nothing to free). Built in steps, so that a device backend can keep its
 * device busy meanwhile: _read (the winners and the upstream gradient: the only reads), _rows
 * (per-row factors, rows by winning bucket), _positives (rows by positive item — every row with
 * a target, whether it contributes or not, so it depends on the targets only and
 * xcat_sce_group_positives can build it during the forward; the rows that contribute nothing
 * are skipped where the positives' terms are added). */
typedef struct xcat_sce_bwd {
    float *g;            /* N: dℓ_total/dℓ_i for contributing rows (weight, reduction, upstream) */
    int32_t *winner;     /* N: winning bucket or −1 */
    int32_t *bucket_off; /* nb + 1: rows of bucket b are bucket_rows[bucket_off[b] .. [b+1]) */
    int32_t *bucket_rows;/* contributing rows, by winning bucket, ascending within */
    int64_t contributing;
    int32_t *pos_items;  /* distinct positives of the rows with a target, ascending */
    int32_t *pos_off;    /* npos + 1 */
    int32_t *pos_rows;   /* those rows (pos_count) by positive, ascending within */
    int64_t npos, pos_count;
    float *up;           /* scratch: the upstream gradient (N or 1) */
    int32_t *sort;       /* scratch: (positive, row) pairs, 4·max_rows */
    int64_t *counts;     /* scratch: radix digit counts */
} xcat_sce_bwd;

xcat_status xcat_sce_backward_read(xcat_loss_plan *plan, const xcat_loss_call *call,
                                   const xcat_tensor *grad_loss, xcat_sce_bwd *out);
void xcat_sce_backward_rows(xcat_loss_plan *plan, const xcat_loss_call *call, xcat_sce_bwd *b);
xcat_status xcat_sce_backward_positives(xcat_loss_plan *plan, const xcat_loss_call *call,
                                        xcat_sce_bwd *b);
/* Group the call's rows by positive item into the plan's scratch (host; sets pos_ready). */
xcat_status xcat_sce_group_positives(xcat_loss_plan *plan, const xcat_loss_call *call);

#endif
