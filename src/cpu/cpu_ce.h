/* cpu_ce.h — the CPU backend's full-softmax CE: plan layout and entry points. */
#ifndef XCAT_CPU_CE_H
#define XCAT_CPU_CE_H

#include "backend.h"
#include "kernels.h"

/* Where each piece of the plan's workspace lives (byte offsets into plan->workspace). */
typedef struct xcat_cpu_ce_plan {
    int64_t tile_rows, tile_items; /* Nb rows × Cc items per logit tile */
    int32_t threads;
    bool need_phi;                 /* softcap and label smoothing: Σ_j φ_ij e_j per row */
    /* Loss-only plans where the fused forward is preferred (simd/ fused_lse): packed chunks
     * of fused_items items per thread instead of BLAS tiles; off_fused_rows: the active rows'
     * indices, running sums and maxima (N each). */
    bool fused;
    int64_t fused_items;
    size_t off_fused_rows;
    size_t off_lse, off_rowloss, off_rowgrad, off_colsum, off_scratch, scratch_bytes;
    const xcat_row_kernels *k;
} xcat_cpu_ce_plan;

/* Fill the layout for these sizes; returns the total workspace bytes in *bytes. */
xcat_status xcat_cpu_ce_layout(const xcat_context *ctx, const xcat_loss_desc *desc,
                               int64_t max_rows, int64_t classes, int64_t dim,
                               xcat_cpu_ce_plan *layout, size_t *bytes);
xcat_status xcat_cpu_ce_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                xcat_tensor *loss, xcat_tensor *lse);
xcat_status xcat_cpu_ce_backward(xcat_loss_plan *plan, const xcat_loss_call *call, bool reuse,
                                 const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                 xcat_tensor *d_items, xcat_tensor *d_bias);

#endif
