/* ocl_ce.c — full-softmax cross-entropy on an OpenCL device (kernels: cl/gemm.cl, cl/ce.cl).
 *
 * Chunked over the catalog so that no N×C buffer exists; deterministic (no atomics, every
 * reduction in a fixed order); 8·N·C·d flops for forward + backward:
 *
 *  Forward (the "LSE pass"), for each item chunk [c0, c0+nc):
 *      S = H·E_chunkᵀ                      (gemm_nt; S is max_rows × Cc)
 *      ce_fwd_rows: z = softcap(s·(S + b)); merge the chunk's (max, Σexp, Σz) into the row's
 *                   running (m, r, zs), Σ_j exp(z_ij) = exp(m_i)·(1 + r_i); record z_target
 *                   when y_i is in the chunk
 *  then ce_finish (LSE_i = m_i + log1p(r_i), row loss w_i·ℓ_i, 0 for ignored rows) and, for
 *  MEAN/SUM, ce_reduce (one work-group, fixed order; MEAN multiplies by reduction_scale).
 *
 *  Backward: the LSE pass again unless the forward's state is reused; ce_rowfactor (g_i);
 *  then for each chunk:
 *      S = H·E_chunkᵀ; ce_grad turns S into G in place,
 *      G_ij = g_i·[(1+2λ·LSE_i)·exp(z_ij − LSE_i) − ε/C − (1−ε)·δ(j = y_i)]·φ_ij
 *      dH (+)= G·E_chunk   (gemm_nn; beta 0 on the first chunk, 1 after: chunks in order)
 *      dE_chunk = Gᵀ·H     (gemm_tn)
 *      db_chunk = Σ_i G_ij (ce_colsum)
 *  Forward 2·N·C·d flops, backward 6·N·C·d.
 *
 *  Forward + backward in one call (xcat_loss_forward_backward), in blocks of fused_rows rows
 *  whose logits over the whole catalog fit S (S is then fused_rows × C):
 *      S = H_blk·Eᵀ; the LSE pass on it (one chunk: c0 = 0, nc = C); g_i; G in place;
 *      dH_blk = G·E (split K); dE (+)= Gᵀ·H_blk, db (+)= Σ_i G (beta 0 for the first block,
 *      1 after: blocks in order, still deterministic)
 *  6·N·C·d flops: the logits are computed once, not twice. Used when at least one tile's rows
 *  (BM) fit, or all of max_rows; otherwise the two passes run.
 *
 * Split K: when a GEMM's output has too few tiles to fill a GPU (dH is N×d, dE_chunk is Cc×d,
 * both with a long K), its K range is cut into P slices computed into separate partial
 * buffers and summed in slice order (ce_sum_parts): deterministic, no atomics. dH's slices
 * accumulate over all chunks and are summed once at the end.
 *
 * Tensor cores: where the device compiles inline PTX mma.sync and the tile is 128 × 128 × 16,
 * the three GEMMs are mma.cl's gemm_nt_mma / gemm_nn_mma / gemm_tn_mma in 3×TF32 (fp32-grade
 * products; H200 at 8,192 × 256,000 × 2,304: forward 266 → 176 ms, forward + backward
 * 1,018 → 704 ms, in one call 529 ms). XCAT_CL_CE_MMA=0 keeps gemm.cl's tile, =1 puts only
 * S on tensor cores.
 *
 * GEMM tiles (gemm.cl; XCAT_CL_GEMM_TILE=BMxBNxBKxTMxTN overrides unless IGNORE_ENV): GPUs
 * 128×128×16 with 8×8 outputs per work-item (256 work-items) and float4 global loads where
 * an operand's offset and stride allow; CPUs (PoCL) 64×64×16 with 4×4, scalar loads. Smaller
 * tiles when the device's work-group size or local memory can't take these.
 *
 * Testing knobs (also ignored under IGNORE_ENV): XCAT_CL_SPLIT_K=P forces P K-slices in both
 * split GEMMs; XCAT_CL_VEC_LOADS=0|1 turns the float4 loads off / on; XCAT_CL_CHUNK_MIB=M
 * caps S at M MiB instead of the default; XCAT_CL_CE_FUSED_ROWS=n caps the fused path's
 * blocks at n rows (0: no fused path).
 *
 * Workspace (device memory; plan->workspace_bytes):
 *      4·max_rows·Cc                     S (Cc chosen so this is <= min(GPUs: global_mem/32
 *                                        within [1, 4] GiB; CPUs: 256 MiB; max_alloc/2,
 *                                        global_mem/8); Cc a multiple of BN)
 *    + 4·7·max_rows                      m, r, Σz, z_target, LSE, row loss, g
 *    + 4·max(P_nn·max_rows, P_f·fused_rows)·d   dH split-K slices (where either is > 1)
 *    + 4·P_tn·Cc·d         (P_tn > 1)    dE split-K slices
 *    + 16                                scratch
 *  which never grows with N×C.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_devices.h"
#include "ocl_launch.h"

#define CHUNK_BYTES_MAX ((int64_t)256 << 20)
#define CHUNK_BYTES_MIN_GPU ((int64_t)1 << 30)
#define CHUNK_BYTES_MAX_GPU ((int64_t)4 << 30)
#define SPLIT_MAX 256

typedef struct ce_layout {
    gemm_cfg g;
    int wg;                   /* GEMM work-group size (bm/tm)·(bn/tn) */
    int row_wg, red_wg, cs_x, cs_y, ew;
    int vec_loads;            /* float4 global loads in the GEMMs (GPUs; see gemm.cl) */
    int64_t cc;               /* items per chunk; also S's row stride */
    int64_t fused_rows;       /* forward + backward at once: rows per block (0: not done) */
    int p_nn, p_tn;           /* split-K slices the partial buffers are sized for */
    int split_env;            /* XCAT_CL_SPLIT_K (testing): force this many slices; 0 = auto */
    size_t s_bytes, vec_bytes, nn_bytes, tn_bytes, total;
} ce_layout;

enum { V_M, V_R, V_ZS, V_ZT, V_LSE, V_LOSS, V_G, V_COUNT };

typedef struct ocl_ce_plan {
    ce_layout L;
    cl_kernel k_nt, k_rows, k_grad, k_nn, k_tn, k_finish, k_reduce, k_rowfactor, k_colsum,
        k_sum;
    cl_mem S, vec[V_COUNT], part_nn, part_tn, scratch;
} ocl_ce_plan;

/* ---- configuration ------------------------------------------------------------------------ */

/* How full the waves of `work` work-groups are on `slots` concurrent ones (1: no idle slot). */
static double wave_fill(int64_t work, int64_t slots)
{
    return (double)work / (double)(cdiv(work, slots) * slots);
}

/* Split-K slices for an output of `tiles` GEMM tiles with a K range of `k`, on a GPU that
 * runs about two work-groups per compute unit at once ("slots"): none when the tiles' waves
 * are at least 85 % full, else the fewest slices that make them so (each slice at least 256
 * deep), else the best fill. H200 (264 slots), the fused CE's dH = G·E at 8,192 × 256,000 ×
 * 2,304 in blocks of 2,048 rows: 288 tiles ran as two waves, the second 9 % full (fused call
 * 591 ms against 567 with blocks of 1,024, whose 144 tiles were split in 5: 91 %). CPUs (PoCL)
 * have few cores and many small tiles: no split. */
static int split_for(const xcat_ocl_state *s, const ce_layout *L, int64_t tiles, int64_t k)
{
    if (L->split_env > 0) return L->split_env;
    if (!s->info.is_gpu || tiles < 1) return 1;
    const int64_t slots = 2 * (int64_t)(s->info.compute_units > 0 ? s->info.compute_units : 1);
    double best_fill = wave_fill(tiles, slots);
    if (best_fill >= 0.85) return 1;
    const int64_t pmax = k / 256 < SPLIT_MAX ? k / 256 : SPLIT_MAX;
    int64_t best = 1;
    for (int64_t p = 2; p <= pmax; p++) {
        const double fill = wave_fill(tiles * p, slots);
        if (fill >= 0.85) return (int)p;
        if (fill > best_fill) best = p, best_fill = fill;
    }
    return (int)best;
}

static xcat_status make_layout(const xcat_context *cctx, int64_t max_rows, int64_t classes,
                               int64_t dim, ce_layout *L)
{
    xcat_context *ctx = (xcat_context *)cctx;
    const xcat_ocl_state *s = xcat_ocl(ctx);
    memset(L, 0, sizeof *L);
    if (max_rows > INT32_MAX || classes > INT32_MAX || dim > INT32_MAX)
        return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED,
                          "OpenCL CE: max_rows, num_classes and dim must be < 2^31 (%lld, %lld, "
                          "%lld)", (long long)max_rows, (long long)classes, (long long)dim);

    xcat_status st = xcat_ocl_gemm_choose(ctx, false, &L->g, &L->vec_loads);
    if (st) return st;
    L->wg = xcat_ocl_gemm_wg(&L->g);
    const size_t wmax = s->max_wg_size < s->max_wi_sizes[0] ? s->max_wg_size : s->max_wi_sizes[0];
    const bool gpu_dev = s->info.is_gpu;
    L->row_wg = pow2_at_most(wmax, gpu_dev ? 256 : 16);
    L->red_wg = pow2_at_most(wmax, gpu_dev ? 256 : 64);
    L->ew = pow2_at_most(wmax, gpu_dev ? 256 : 64);
    L->cs_x = pow2_at_most(wmax, gpu_dev ? 32 : 16);
    L->cs_y = pow2_at_most(wmax / (size_t)L->cs_x, gpu_dev ? 8 : 4);
    if (s->max_wi_sizes[1] < (size_t)L->cs_y) L->cs_y = pow2_at_most(s->max_wi_sizes[1], L->cs_y);

    /* Chunk width: S (max_rows × Cc floats) <= min(GPUs: global_mem/32 within [1, 4] GiB, CPU
     * devices: 256 MiB; max_alloc/2, global_mem/8). GPUs: 1 GiB rather than 256 MiB (H100,
     * 32,768 × 1,000,000 × 256: 2,224 vs 2,643 ms: fewer, larger GEMMs, less split-K); up to
     * 4 GiB where memory is plentiful, for the fused forward + backward's row blocks (H200,
     * 8,192 × 256,000 × 2,304: blocks of 1,024 rows 567 ms, of 4,096 rows 543 ms: dE's
     * accumulation over blocks is read and written once per block). */
    int64_t limit = CHUNK_BYTES_MAX;
    if (s->info.is_gpu) {
        limit = s->info.global_mem_bytes / 32;
        if (limit < CHUNK_BYTES_MIN_GPU) limit = CHUNK_BYTES_MIN_GPU;
        if (limit > CHUNK_BYTES_MAX_GPU) limit = CHUNK_BYTES_MAX_GPU;
    }
    if (!ctx->ignore_env) { /* tuning: XCAT_CL_CHUNK_MIB=M caps S at M MiB instead */
        const char *v = getenv("XCAT_CL_CHUNK_MIB");
        long long mib = v ? atoll(v) : 0;
        if (mib >= 1 && mib <= (1 << 20)) limit = (int64_t)mib << 20;
    }
    if (s->info.max_alloc_bytes > 0 && s->info.max_alloc_bytes / 2 < limit)
        limit = s->info.max_alloc_bytes / 2;
    if (s->info.global_mem_bytes > 0 && s->info.global_mem_bytes / 8 < limit)
        limit = s->info.global_mem_bytes / 8;
    int64_t cc = limit / (4 * max_rows);
    if (cc >= L->g.bn) cc -= cc % L->g.bn;
    if (cc < 1) cc = 1;
    if (cc > classes) cc = classes;
    L->cc = cc;

    L->split_env = 0;
    if (!ctx->ignore_env) {
        const char *sp = getenv("XCAT_CL_SPLIT_K");
        if (sp && *sp) {
            int v = atoi(sp);
            L->split_env = v >= 1 && v <= SPLIT_MAX ? v : 0;
        }
    }
    L->p_nn = split_for(s, L, cdiv(max_rows, L->g.bm) * cdiv(dim, L->g.bn), cc);
    L->p_tn = split_for(s, L, cdiv(cc, L->g.bm) * cdiv(dim, L->g.bn), max_rows);
    /* Keep the slice buffers within a quarter of the largest allocation. */
    const int64_t amax = s->info.max_alloc_bytes > 0 ? s->info.max_alloc_bytes / 4 : INT64_MAX;
    while (L->p_nn > 1 && (int64_t)L->p_nn * max_rows * dim * 4 > amax) L->p_nn--;
    while (L->p_tn > 1 && (int64_t)L->p_tn * cc * dim * 4 > amax) L->p_tn--;

    /* Forward + backward at once (xcat_loss_forward_backward): blocks of rows whose logits over
     * the whole catalog fit S, a multiple of the tile height; none when fewer than one tile's
     * rows fit (then the call runs the two passes). XCAT_CL_CE_FUSED_ROWS=n caps the block
     * (testing: small blocks; 0 turns it off). */
    int64_t fr = (int64_t)((double)max_rows * (double)cc / (double)classes);
    if (fr >= max_rows) fr = max_rows;
    else fr = fr >= L->g.bm ? fr - fr % L->g.bm : 0;
    if (!ctx->ignore_env) {
        const char *v = getenv("XCAT_CL_CE_FUSED_ROWS");
        if (v && *v) {
            long long n = atoll(v);
            if (n >= 0 && n < fr) fr = n;
        }
    }
    while (fr > 0 && fr * classes > max_rows * cc) fr--; /* S must hold the block */
    L->fused_rows = fr;
    /* dH_blk = G·E has few tiles and K = C: its slices share dH's partial buffer */
    int p_f = fr > 0 ? split_for(s, L, cdiv(fr, L->g.bm) * cdiv(dim, L->g.bn), classes) : 1;
    while (p_f > 1 && (int64_t)p_f * fr * dim * 4 > amax) p_f--;
    int64_t nn_elems = L->p_nn > 1 ? (int64_t)L->p_nn * max_rows * dim : 0;
    if (p_f > 1 && (int64_t)p_f * fr * dim > nn_elems) nn_elems = (int64_t)p_f * fr * dim;

    L->s_bytes = (size_t)max_rows * (size_t)cc * 4;
    L->vec_bytes = (size_t)max_rows * 4;
    L->nn_bytes = (size_t)nn_elems * 4;
    L->tn_bytes = L->p_tn > 1 ? (size_t)L->p_tn * (size_t)cc * (size_t)dim * 4 : 0;
    L->total = L->s_bytes + V_COUNT * L->vec_bytes + L->nn_bytes + L->tn_bytes + 16;
    return XCAT_OK;
}

xcat_status xcat_ocl_ce_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                       int64_t max_rows, int64_t classes, int64_t dim,
                                       size_t *bytes)
{
    (void)desc;
    ce_layout L;
    xcat_status st = make_layout(ctx, max_rows, classes, dim, &L);
    if (st) return st;
    *bytes = L.total;
    return XCAT_OK;
}

/* ---- plan ------------------------------------------------------------------------------------ */

/* The GEMMs on tensor cores, 3×TF32 (mma.cl's MMA_SPLIT3: fp32-grade products), where the
 * device's compiler takes inline PTX mma and the GEMM tile is mma.cl's (128 × 128 × 16, 256
 * work-items): 0 none, 1 the logits (S = H·Eᵀ) only, 2 all three. XCAT_CL_CE_MMA=0 / 1 / 2
 * chooses (default 2). */
static int ce_mma_mode(xcat_context *ctx, const ce_layout *L)
{
    xcat_ocl_state *s = xcat_ocl(ctx);
    const char *v = ctx->ignore_env ? NULL : getenv("XCAT_CL_CE_MMA");
    const int want = v && (v[0] == '0' || v[0] == '1') && !v[1] ? v[0] - '0' : 2;
    if (want == 0) return 0;
    if (s->mma_state == 0 && !xcat_ocl_has_extension(s->device, "cl_nv_compiler_options"))
        s->mma_state = -1;
    const gemm_cfg *g = &L->g;
    /* mma.cl's local tiles: 2 operands × 2 buffers × 128 rows × 20 floats */
    const bool fits = g->bm == 128 && g->bn == 128 && g->bk == 16 && L->wg == 256 &&
                      (size_t)2 * 2 * 128 * 20 * 4 <= (size_t)s->local_mem;
    return (s->mma_state >= 0 || xcat_ocl_mma_emulate(ctx)) && fits ? want : 0;
}

void xcat_ocl_ce_plan_release(xcat_loss_plan *plan)
{
    ocl_ce_plan *p = plan->backend_plan;
    if (!p) return;
    cl_kernel *ks[] = {&p->k_nt,     &p->k_rows,   &p->k_grad,      &p->k_nn,
                       &p->k_tn,     &p->k_finish, &p->k_reduce,    &p->k_rowfactor,
                       &p->k_colsum, &p->k_sum};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        if (*ks[i]) clReleaseKernel(*ks[i]);
    cl_mem *ms[] = {&p->S, &p->part_nn, &p->part_tn, &p->scratch};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (*ms[i]) clReleaseMemObject(*ms[i]);
    for (int i = 0; i < V_COUNT; i++)
        if (p->vec[i]) clReleaseMemObject(p->vec[i]);
    xcat_host_free(plan->ctx, p);
    plan->backend_plan = NULL;
}

xcat_status xcat_ocl_ce_plan_init(xcat_loss_plan *plan)
{
    xcat_context *ctx = plan->ctx;
    ocl_ce_plan *p = xcat_host_calloc(ctx, sizeof *p, 64);
    if (!p) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "allocating the OpenCL CE plan");
    plan->backend_plan = p;
    xcat_status st = make_layout(ctx, plan->max_rows, plan->classes, plan->dim, &p->L);
    const ce_layout *L = &p->L;
    if (!st) {
        char gp[256], prelude[640];
        xcat_ocl_gemm_prelude(&L->g, L->vec_loads, gp, sizeof gp);
        int mma = ce_mma_mode(ctx, L);
        cl_program prog;
        for (;;) {
            snprintf(prelude, sizeof prelude,
                     "%s#define ROW_WG %d\n#define RED_WG %d\n#define CS_X %d\n#define CS_Y %d\n"
                     "#define EW %d\n%s#define MMA_EMULATE %d\n", gp, L->row_wg, L->red_wg, L->cs_x,
                     L->cs_y, L->ew,
                     mma ? "#define GEMM_MMA 1\n#define MMA_SPLIT3 1\n#define GEMM_CE_MMA 1\n" : "",
                     xcat_ocl_mma_emulate(ctx));
            static const char *const sources[] = {"gemm.cl", "mma.cl", "ce.cl", NULL};
            /* No -cl-fast-relaxed-math / -cl-mad-enable: exp, log, tanh must match the CPU. */
            st = xcat_ocl_program(ctx, prelude, sources, "-cl-std=CL1.2", &prog);
            if (!(st == XCAT_ERROR_BUILD_FAILED && mma && !xcat_ocl_mma_emulate(ctx))) break;
            /* the compiler refused the inline PTX: the device has no tensor-core programs */
            xcat_ocl(ctx)->mma_state = -1;
            ctx->last_error[0] = '\0';
            mma = 0;
        }
        if (!st && mma && !xcat_ocl_mma_emulate(ctx)) xcat_ocl(ctx)->mma_state = 1;
        struct {
            cl_kernel *k;
            const char *name;
        } ks[] = {{&p->k_nt, mma ? "gemm_nt_mma" : "gemm_nt"},
                  {&p->k_nn, mma == 2 ? "gemm_nn_mma" : "gemm_nn"},
                  {&p->k_tn, mma == 2 ? "gemm_tn_mma" : "gemm_tn"},
                  {&p->k_rows, "ce_fwd_rows"},
                  {&p->k_finish, "ce_finish"},     {&p->k_reduce, "ce_reduce"},
                  {&p->k_rowfactor, "ce_rowfactor"}, {&p->k_grad, "ce_grad"},
                  {&p->k_colsum, "ce_colsum"},     {&p->k_sum, "ce_sum_parts"}};
        for (size_t i = 0; !st && i < sizeof ks / sizeof ks[0]; i++)
            st = xcat_ocl_kernel(ctx, prog, ks[i].name, ks[i].k);
    }
    if (!st) {
        /* A kernel the compiler could not fit at the required work-group size. */
        const cl_kernel gk[] = {p->k_nt, p->k_nn, p->k_tn};
        st = xcat_ocl_check_wg(ctx, gk, 3, L->wg);
    }
    if (!st) st = xcat_ocl_buffer(ctx, L->s_bytes, false, &p->S);
    for (int i = 0; !st && i < V_COUNT; i++)
        st = xcat_ocl_buffer(ctx, L->vec_bytes, true, &p->vec[i]);
    if (!st && L->nn_bytes) st = xcat_ocl_buffer(ctx, L->nn_bytes, false, &p->part_nn);
    if (!st && L->tn_bytes) st = xcat_ocl_buffer(ctx, L->tn_bytes, false, &p->part_tn);
    if (!st) st = xcat_ocl_buffer(ctx, 16, true, &p->scratch);
    if (st) {
        xcat_ocl_ce_plan_release(plan);
        return st;
    }
    plan->workspace = NULL;
    plan->workspace_bytes = L->total;
    return XCAT_OK;
}

/* ---- launching ------------------------------------------------------------------------------- */

/* C = alpha·op(A)·op(B) + beta·C, M×N, inner K, in `parts` K slices stored cslice apart. */
static xcat_status gemm(xcat_context *ctx, const ocl_ce_plan *p, cl_kernel k, int64_t M,
                        int64_t N, int64_t K, float alpha, mat A, mat B, float beta, mat C,
                        int parts, uint64_t cslice)
{
    return xcat_ocl_gemm_launch(ctx, k, &p->L.g, M, N, K, alpha, A, B, beta, C, parts, cslice);
}

/* Per-call values shared by the passes. */
typedef struct ce_call {
    xcat_context *ctx;
    const ocl_ce_plan *p;
    const xcat_loss_plan *plan;
    const xcat_loss_call *call;
    int64_t N, C, d;
    int64_t cc; /* items per chunk, S's row stride (L->cc; C when S holds whole rows) */
    mat H, E;
    cl_mem y, b, w; /* b, w: a dummy buffer when absent */
    uint64_t offy, offb, offw;
    int y64, has_b, has_w;
} ce_call;

static void call_init(ce_call *c, xcat_loss_plan *plan, const xcat_loss_call *call)
{
    const ocl_ce_plan *p = plan->backend_plan;
    *c = (ce_call){.ctx = plan->ctx, .p = p, .plan = plan, .call = call, .N = call->rows,
                   .C = plan->classes, .d = plan->dim, .cc = p->L.cc,
                   .H = tensor_mat(call->hidden),
                   .E = tensor_mat(call->items), .y = xcat_ocl_mem(call->targets),
                   .offy = elem_off(call->targets),
                   .y64 = call->targets->dtype == XCAT_DTYPE_I64, .b = p->scratch,
                   .w = p->scratch};
    if (call->bias) {
        c->b = xcat_ocl_mem(call->bias);
        c->offb = elem_off(call->bias);
        c->has_b = 1;
    }
    if (call->row_weights) {
        c->w = xcat_ocl_mem(call->row_weights);
        c->offw = elem_off(call->row_weights);
        c->has_w = 1;
    }
}

/* ce_fwd_rows' and ce_grad's bias and targets arguments. */
static void args_bias_targets(args *a, const ce_call *c)
{
    A_MEM(a, c->b);
    A_ULONG(a, c->offb);
    A_INT(a, c->has_b);
    A_MEM(a, c->y);
    A_ULONG(a, c->offy);
    A_INT(a, c->y64);
}

/* The LSE pass: per-row m, r, Σz, z_target over all chunks, then LSE and the row losses.
 * `loss` (NULL: none) receives w_i·ℓ_i at element offset `offloss`; `lse_out` is optional,
 * written from its element r0 on. */
static xcat_status lse_pass(const ce_call *c, cl_mem loss, uint64_t offloss,
                            const xcat_tensor *lse_out, int64_t r0)
{
    const ocl_ce_plan *p = c->p;
    const ce_layout *L = &p->L;
    const xcat_loss_desc *D = &c->plan->desc;
    xcat_status st = XCAT_OK;
    for (int64_t c0 = 0; !st && c0 < c->C; c0 += c->cc) {
        const int64_t nc = c->C - c0 < c->cc ? c->C - c0 : c->cc;
        st = gemm(c->ctx, p, p->k_nt, c->N, nc, c->d, 1.0f, c->H, chunk_of(c->E, c0), 0.0f,
                  (mat){p->S, 0, c->cc}, 1, 0);
        if (st) break;
        args a = {.k = p->k_rows};
        A_MEM(&a, p->S);
        A_LONG(&a, c->cc);
        A_INT(&a, nc);
        A_LONG(&a, c0);
        args_bias_targets(&a, c);
        A_LONG(&a, D->ignore_index);
        A_FLOAT(&a, D->scale);
        A_FLOAT(&a, D->softcap);
        A_INT(&a, c0 == 0);
        A_MEM(&a, p->vec[V_M]);
        A_MEM(&a, p->vec[V_R]);
        A_MEM(&a, p->vec[V_ZS]);
        A_MEM(&a, p->vec[V_ZT]);
        const size_t global = (size_t)L->row_wg * (size_t)c->N, local = (size_t)L->row_wg;
        st = launch(c->ctx, &a, 1, &global, &local, "enqueueing ce_fwd_rows");
    }
    if (st) return st;
    args a = {.k = p->k_finish};
    A_INT(&a, c->N);
    A_MEM(&a, p->vec[V_M]);
    A_MEM(&a, p->vec[V_R]);
    A_MEM(&a, p->vec[V_ZS]);
    A_MEM(&a, p->vec[V_ZT]);
    A_MEM(&a, c->y);
    A_ULONG(&a, c->offy);
    A_INT(&a, c->y64);
    A_LONG(&a, D->ignore_index);
    A_MEM(&a, c->w);
    A_ULONG(&a, c->offw);
    A_INT(&a, c->has_w);
    A_FLOAT(&a, D->label_smoothing);
    A_FLOAT(&a, (float)c->C);
    A_FLOAT(&a, D->z_loss);
    A_MEM(&a, p->vec[V_LSE]);
    A_INT(&a, loss != NULL);
    A_MEM(&a, loss ? loss : p->scratch);
    A_ULONG(&a, offloss);
    A_INT(&a, lse_out != NULL);
    A_MEM(&a, lse_out ? xcat_ocl_mem(lse_out) : p->scratch);
    A_ULONG(&a, lse_out ? elem_off(lse_out) + (uint64_t)r0 : 0);
    const size_t local = (size_t)L->ew, global = (size_t)cdiv(c->N, L->ew) * local;
    return launch(c->ctx, &a, 1, &global, &local, "enqueueing ce_finish");
}

/* MEAN / SUM: the row losses (vec[V_LOSS]) reduced into `loss`, one work-group. */
static xcat_status reduce_pass(const ce_call *c, xcat_tensor *loss)
{
    const ocl_ce_plan *p = c->p;
    args a = {.k = p->k_reduce};
    A_INT(&a, c->N);
    A_MEM(&a, p->vec[V_LOSS]);
    A_FLOAT(&a, c->call->reduction_scale);
    A_MEM(&a, xcat_ocl_mem(loss));
    A_ULONG(&a, elem_off(loss));
    const size_t n = (size_t)p->L.red_wg;
    return launch(c->ctx, &a, 1, &n, &n, "enqueueing ce_reduce");
}

xcat_status xcat_ocl_ce_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                xcat_tensor *loss, xcat_tensor *lse)
{
    ce_call c;
    call_init(&c, plan, call);
    const ocl_ce_plan *p = c.p;
    const bool none = plan->desc.reduction == XCAT_REDUCTION_NONE;
    xcat_status st = none ? lse_pass(&c, xcat_ocl_mem(loss), elem_off(loss), lse, 0)
                          : lse_pass(&c, p->vec[V_LOSS], 0, lse, 0);
    if (!st && !none) st = reduce_pass(&c, loss);
    return finish(c.ctx, st);
}

/* g_i for rows [0, c->N) of the call; grad_loss (NONE: a vector) read from row r0 on. */
static xcat_status rowfactor_pass(const ce_call *c, const xcat_tensor *grad_loss, int64_t r0)
{
    const ocl_ce_plan *p = c->p;
    const xcat_loss_desc *D = &c->plan->desc;
    const bool none = D->reduction == XCAT_REDUCTION_NONE;
    args a = {.k = p->k_rowfactor};
    A_INT(&a, c->N);
    A_MEM(&a, c->y);
    A_ULONG(&a, c->offy);
    A_INT(&a, c->y64);
    A_LONG(&a, D->ignore_index);
    A_MEM(&a, c->w);
    A_ULONG(&a, c->offw);
    A_INT(&a, c->has_w);
    A_MEM(&a, grad_loss ? xcat_ocl_mem(grad_loss) : p->scratch);
    A_ULONG(&a, grad_loss ? elem_off(grad_loss) + (none ? (uint64_t)r0 : 0) : 0);
    A_INT(&a, !grad_loss ? 0 : none ? 2 : 1);
    A_FLOAT(&a, c->call->reduction_scale);
    A_MEM(&a, p->vec[V_G]);
    const size_t local = (size_t)p->L.ew, global = (size_t)cdiv(c->N, p->L.ew) * local;
    return launch(c->ctx, &a, 1, &global, &local, "enqueueing ce_rowfactor");
}

/* S (the logits of items [c0, c0 + nc), row stride c->cc) turned into G in place. */
static xcat_status grad_pass(const ce_call *c, int64_t c0, int64_t nc)
{
    const ocl_ce_plan *p = c->p;
    const xcat_loss_desc *D = &c->plan->desc;
    const int64_t nblk = cdiv(nc, p->L.ew);
    args a = {.k = p->k_grad};
    A_MEM(&a, p->S);
    A_LONG(&a, c->cc);
    A_INT(&a, nc);
    A_INT(&a, nblk);
    A_LONG(&a, c0);
    args_bias_targets(&a, c);
    A_FLOAT(&a, D->scale);
    A_FLOAT(&a, D->softcap);
    A_FLOAT(&a, D->label_smoothing);
    A_FLOAT(&a, (float)c->C);
    A_FLOAT(&a, D->z_loss);
    A_MEM(&a, p->vec[V_LSE]);
    A_MEM(&a, p->vec[V_G]);
    const size_t local = (size_t)p->L.ew;
    const size_t global = (size_t)nblk * (size_t)c->N * local;
    return launch(c->ctx, &a, 1, &global, &local, "enqueueing ce_grad");
}

/* out (rows × cols) = Σ of `parts` slices of `part` (pstride apart), in slice order. */
static xcat_status sum_parts(const ce_call *c, cl_mem part, int parts, uint64_t pstride,
                             int64_t rows, int64_t cols, mat out)
{
    const ce_layout *L = &c->p->L;
    const int64_t nblk = cdiv(cols, L->ew);
    args a = {.k = c->p->k_sum};
    A_INT(&a, cols);
    A_INT(&a, nblk);
    A_INT(&a, parts);
    A_MEM(&a, part);
    A_ULONG(&a, pstride);
    A_MEM(&a, out.mem);
    A_ULONG(&a, out.off);
    A_LONG(&a, out.ld);
    const size_t local = (size_t)L->ew, global = (size_t)nblk * (size_t)rows * local;
    return launch(c->ctx, &a, 1, &global, &local, "enqueueing ce_sum_parts");
}

/* dE[c0 : c0 + nc] = Gᵀ·H (beta 0: split in K where that fills the device better), or
 * += Gᵀ·H (beta 1: one slice, accumulating into dE). */
static xcat_status de_pass(const ce_call *c, int64_t c0, int64_t nc, mat dE, float beta)
{
    const ocl_ce_plan *p = c->p;
    const ce_layout *L = &p->L;
    const mat S = {p->S, 0, c->cc};
    dE.off += (uint64_t)c0 * (uint64_t)dE.ld;
    int pt = 1;
    if (L->p_tn > 1 && beta == 0.0f) {
        pt = split_for(xcat_ocl(c->ctx), L, cdiv(nc, L->g.bm) * cdiv(c->d, L->g.bn), c->N);
        const int64_t fit = (int64_t)L->p_tn * L->cc / nc; /* slices part_tn holds */
        if (pt > fit) pt = fit < 1 ? 1 : (int)fit;
    }
    if (pt == 1) return gemm(c->ctx, p, p->k_tn, nc, c->d, c->N, 1.0f, S, c->H, beta, dE, 1, 0);
    const uint64_t slice = (uint64_t)nc * (uint64_t)c->d;
    xcat_status st = gemm(c->ctx, p, p->k_tn, nc, c->d, c->N, 1.0f, S, c->H, 0.0f,
                          (mat){p->part_tn, 0, c->d}, pt, slice);
    return st ? st : sum_parts(c, p->part_tn, pt, slice, nc, c->d, dE);
}

/* db[c0 : c0 + nc] (+)= column sums of G. */
static xcat_status db_pass(const ce_call *c, int64_t nc, const xcat_tensor *d_bias, int64_t c0,
                           int accumulate)
{
    const ce_layout *L = &c->p->L;
    args a = {.k = c->p->k_colsum};
    A_MEM(&a, c->p->S);
    A_LONG(&a, c->cc);
    A_INT(&a, nc);
    A_INT(&a, c->N);
    A_MEM(&a, xcat_ocl_mem(d_bias));
    A_ULONG(&a, elem_off(d_bias) + (uint64_t)c0);
    A_INT(&a, accumulate);
    const size_t local[2] = {(size_t)L->cs_x, (size_t)L->cs_y};
    const size_t global[2] = {(size_t)cdiv(nc, L->cs_x) * local[0], local[1]};
    return launch(c->ctx, &a, 2, global, local, "enqueueing ce_colsum");
}

/* Split-K slices for dH = G·E over a K range of k: at most what part_nn holds for `rows`. */
static int dh_split(const ce_call *c, int64_t rows, int64_t k)
{
    const ce_layout *L = &c->p->L;
    if (!L->nn_bytes) return 1;
    int pn = split_for(xcat_ocl(c->ctx), L, cdiv(rows, L->g.bm) * cdiv(c->d, L->g.bn), k);
    const int64_t cap = (int64_t)(L->nn_bytes / ((size_t)rows * (size_t)c->d * 4));
    if (pn > cap) pn = (int)cap;
    return pn < 1 ? 1 : pn;
}

xcat_status xcat_ocl_ce_backward(xcat_loss_plan *plan, const xcat_loss_call *call, bool reuse,
                                 const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                 xcat_tensor *d_items, xcat_tensor *d_bias)
{
    ce_call c;
    call_init(&c, plan, call);
    const ocl_ce_plan *p = c.p;
    const ce_layout *L = &p->L;
    xcat_context *ctx = c.ctx;
    xcat_status st = reuse ? XCAT_OK : lse_pass(&c, NULL, 0, NULL, 0);
    if (!st) st = rowfactor_pass(&c, grad_loss, 0);

    const int p_nn = d_hidden ? dh_split(&c, c.N, L->cc) : 1;
    mat dH = {0};
    uint64_t dh_slice = 0;
    if (d_hidden) {
        dH = tensor_mat(d_hidden);
        if (p_nn > 1) {
            dH = (mat){p->part_nn, 0, c.d};
            dh_slice = (uint64_t)c.N * (uint64_t)c.d;
        }
    }
    const mat S = {p->S, 0, L->cc};
    for (int64_t c0 = 0; !st && c0 < c.C; c0 += L->cc) {
        const int64_t nc = c.C - c0 < L->cc ? c.C - c0 : L->cc;
        const mat Ec = chunk_of(c.E, c0);
        /* S = H·E_chunkᵀ, then G in place */
        st = gemm(ctx, p, p->k_nt, c.N, nc, c.d, 1.0f, c.H, Ec, 0.0f, S, 1, 0);
        if (!st) st = grad_pass(&c, c0, nc);
        if (!st && d_hidden) /* dH (+)= G·E_chunk, chunks in order */
            st = gemm(ctx, p, p->k_nn, c.N, c.d, nc, 1.0f, S, Ec, c0 == 0 ? 0.0f : 1.0f, dH,
                      p_nn, dh_slice);
        if (!st && d_items) st = de_pass(&c, c0, nc, tensor_mat(d_items), 0.0f);
        if (!st && d_bias) st = db_pass(&c, nc, d_bias, c0, 0);
    }
    if (!st && d_hidden && p_nn > 1) /* dH = Σ slices, in slice order */
        st = sum_parts(&c, p->part_nn, p_nn, dh_slice, c.N, c.d, tensor_mat(d_hidden));
    return finish(ctx, st);
}

/* Forward and backward at once, in blocks of L->fused_rows rows whose logits over the whole
 * catalog fit S: per block, S = H_blk·Eᵀ once, the LSE pass and G on it, then
 * dH_blk = G·E, dE (+)= Gᵀ·H_blk, db (+)= Σ_i G — three GEMMs instead of the separate calls'
 * four (6·N·C·d flops). Blocks in row order, so dE and db are still deterministic. */
xcat_status xcat_ocl_ce_forward_backward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                         xcat_tensor *loss, xcat_tensor *lse,
                                         const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                         xcat_tensor *d_items, xcat_tensor *d_bias, bool *done)
{
    const ocl_ce_plan *p = plan->backend_plan;
    const ce_layout *L = &p->L;
    *done = false;
    if (L->fused_rows < 1) return XCAT_OK; /* the catalog is too wide: separate passes */
    *done = true;
    ce_call c;
    call_init(&c, plan, call);
    xcat_context *ctx = c.ctx;
    const int64_t N = c.N;
    const bool none = plan->desc.reduction == XCAT_REDUCTION_NONE;
    c.cc = c.C; /* S holds whole rows */
    const mat S = {p->S, 0, c.C};
    xcat_status st = XCAT_OK;
    for (int64_t r0 = 0; !st && r0 < N; r0 += L->fused_rows) {
        ce_call b = c; /* the block as a call of its own: rows [r0, r0 + nr) */
        b.N = N - r0 < L->fused_rows ? N - r0 : L->fused_rows;
        b.H = chunk_of(c.H, r0);
        b.offy += (uint64_t)r0;
        if (b.has_w) b.offw += (uint64_t)r0;
        st = none ? lse_pass(&b, xcat_ocl_mem(loss), elem_off(loss) + (uint64_t)r0, lse, r0)
                  : lse_pass(&b, p->vec[V_LOSS], (uint64_t)r0, lse, r0);
        if (!st) st = rowfactor_pass(&b, grad_loss, r0);
        if (!st) st = grad_pass(&b, 0, c.C);
        if (!st && d_hidden) { /* dH_blk = G·E (K = C: split) */
            const int pn = dh_split(&b, b.N, c.C);
            const mat dH = chunk_of(tensor_mat(d_hidden), r0);
            if (pn == 1) {
                st = gemm(ctx, p, p->k_nn, b.N, c.d, c.C, 1.0f, S, c.E, 0.0f, dH, 1, 0);
            } else {
                const uint64_t slice = (uint64_t)b.N * (uint64_t)c.d;
                st = gemm(ctx, p, p->k_nn, b.N, c.d, c.C, 1.0f, S, c.E, 0.0f,
                          (mat){p->part_nn, 0, c.d}, pn, slice);
                if (!st) st = sum_parts(&b, p->part_nn, pn, slice, b.N, c.d, dH);
            }
        }
        if (!st && d_items) st = de_pass(&b, 0, c.C, tensor_mat(d_items), r0 ? 1.0f : 0.0f);
        if (!st && d_bias) st = db_pass(&b, c.C, d_bias, 0, r0 > 0);
    }
    if (!st && !none) st = reduce_pass(&c, loss);
    return finish(ctx, st);
}
