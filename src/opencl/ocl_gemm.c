/* ocl_gemm.c — choosing gemm.cl's tile for a device (shared by CE and top-K). */
#include <stdio.h>
#include <stdlib.h>

#include "ocl_launch.h"

static size_t gemm_local_bytes(const gemm_cfg *g)
{
    return (size_t)2 * 4 * (size_t)g->bk * (size_t)(g->bm + 4 + g->bn + 4);
}

static bool gemm_cfg_fits(const xcat_ocl_state *s, const gemm_cfg *g)
{
    if (g->bm < 4 || g->bn < 4 || g->bk < 1 || g->tm < 4 || g->tn < 4 || g->tm % 4 ||
        g->tn % 4 || g->bm % g->tm || g->bn % g->tn || g->bm > 1024 || g->bn > 1024 ||
        g->bk > 256 || g->tm > 16 || g->tn > 16)
        return false;
    const int wg = xcat_ocl_gemm_wg(g);
    if ((g->bm * g->bk) % wg || (g->bn * g->bk) % wg) return false;
    if ((size_t)wg > s->max_wg_size || (size_t)wg > s->max_wi_sizes[0]) return false;
    return gemm_local_bytes(g) <= (size_t)s->local_mem;
}

xcat_status xcat_ocl_gemm_choose(xcat_context *ctx, bool short_k, gemm_cfg *out,
                                 int *vec_loads)
{
    const xcat_ocl_state *s = xcat_ocl(ctx);
    /* GEMM tiles: GPUs 128×128×16 with 8×8 per work-item (256 work-items), CPUs 64×64×16
     * with 4×4 (measured fastest of a handful on PoCL); smaller when the device can't. */
    static const gemm_cfg gpu[] = {{128, 128, 16, 8, 8}, {64, 64, 16, 4, 4}, {32, 32, 8, 4, 4},
                                   {16, 16, 8, 4, 4}, {8, 8, 4, 4, 4}, {4, 4, 4, 4, 4}};
    static const gemm_cfg cpu[] = {{64, 64, 16, 4, 4}, {32, 32, 8, 4, 4}, {16, 16, 8, 4, 4},
                                   {8, 8, 4, 4, 4}, {4, 4, 4, 4, 4}};
    /* Short inner dimension (top-K scoring, d <= 256): BK = 8 halves the local memory, so
     * more work-groups share an SM and one's prologue/epilogue hides behind another's FMAs
     * (H100, M = 4,096, C = 10^6, d = 128: scoring 33.0 ms vs 38.6 ms with BK = 16). */
    static const gemm_cfg gpu_short[] = {{128, 128, 8, 8, 8}, {64, 64, 16, 4, 4},
                                         {32, 32, 8, 4, 4},   {16, 16, 8, 4, 4},
                                         {8, 8, 4, 4, 4},     {4, 4, 4, 4, 4}};
    const gemm_cfg *list = s->info.is_gpu ? (short_k ? gpu_short : gpu) : cpu;
    const size_t n = s->info.is_gpu ? sizeof gpu / sizeof gpu[0] : sizeof cpu / sizeof cpu[0];
    bool found = false;
    const char *env = ctx->ignore_env ? NULL : getenv("XCAT_CL_GEMM_TILE");
    if (env && *env) {
        gemm_cfg g;
        char tail;
        if (sscanf(env, "%dx%dx%dx%dx%d%c", &g.bm, &g.bn, &g.bk, &g.tm, &g.tn, &tail) != 5 ||
            !gemm_cfg_fits(s, &g))
            return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                              "XCAT_CL_GEMM_TILE='%s': expected BMxBNxBKxTMxTN with TM, TN "
                              "multiples of 4 dividing BM, BN, (BM/TM)·(BN/TN) work-items <= "
                              "%zu dividing BM·BK and BN·BK, and 8·BK·(BM+BN+8) bytes <= %llu "
                              "of local memory", env, s->max_wg_size,
                              (unsigned long long)s->local_mem);
        *out = g;
        found = true;
    }
    for (size_t i = 0; !found && i < n; i++)
        if (gemm_cfg_fits(s, &list[i])) {
            *out = list[i];
            found = true;
        }
    if (!found)
        return xcat_error(ctx, XCAT_ERROR_OUT_OF_RESOURCES,
                          "the device's work-group size (%zu) or local memory (%llu bytes) fits "
                          "no GEMM tile", s->max_wg_size, (unsigned long long)s->local_mem);
    *vec_loads = s->info.is_gpu;
    if (!ctx->ignore_env) { /* testing: XCAT_CL_VEC_LOADS=0|1 */
        const char *v = getenv("XCAT_CL_VEC_LOADS");
        if (v && (v[0] == '0' || v[0] == '1') && !v[1]) *vec_loads = v[0] == '1';
    }
    return XCAT_OK;
}

void xcat_ocl_gemm_prelude(const gemm_cfg *g, int vec_loads, char *buf, size_t n)
{
    snprintf(buf, n,
             "#define BM %d\n#define BN %d\n#define BK %d\n#define TM %d\n#define TN %d\n"
             "#define GEMM_VEC_LOADS %d\n",
             g->bm, g->bn, g->bk, g->tm, g->tn, vec_loads);
}

xcat_status xcat_ocl_check_wg(xcat_context *ctx, const cl_kernel *ks, size_t nk, int wg)
{
    for (size_t i = 0; i < nk; i++) {
        size_t kwg = 0;
        cl_int err = clGetKernelWorkGroupInfo(ks[i], xcat_ocl(ctx)->device,
                                              CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg, NULL);
        if (err != CL_SUCCESS) return xcat_ocl_error(ctx, err, "clGetKernelWorkGroupInfo");
        if (kwg < (size_t)wg)
            return xcat_error(ctx, XCAT_ERROR_OUT_OF_RESOURCES,
                              "a GEMM kernel runs at most %zu work-items per group here, the "
                              "tile needs %d (set XCAT_CL_GEMM_TILE smaller)", kwg, wg);
    }
    return XCAT_OK;
}

xcat_status xcat_ocl_gemm_launch(xcat_context *ctx, cl_kernel k, const gemm_cfg *g, int64_t M,
                                 int64_t N, int64_t K, float alpha, mat A, mat B, float beta,
                                 mat C, int parts, uint64_t cslice)
{
    const int wg = xcat_ocl_gemm_wg(g);
    int64_t kslice = K;
    if (parts > 1) kslice = cdiv(cdiv(K, parts), g->bk) * g->bk;
    args a = {.k = k};
    A_INT(&a, M);
    A_INT(&a, N);
    A_INT(&a, K);
    A_FLOAT(&a, alpha);
    A_MEM(&a, A.mem);
    A_ULONG(&a, A.off);
    A_LONG(&a, A.ld);
    A_MEM(&a, B.mem);
    A_ULONG(&a, B.off);
    A_LONG(&a, B.ld);
    A_FLOAT(&a, beta);
    A_MEM(&a, C.mem);
    A_ULONG(&a, C.off);
    A_LONG(&a, C.ld);
    A_INT(&a, kslice);
    A_ULONG(&a, cslice);
    const size_t global[2] = {(size_t)(cdiv(M, g->bm) * cdiv(N, g->bn)) * (size_t)wg,
                              (size_t)parts};
    const size_t local[2] = {(size_t)wg, 1};
    return launch(ctx, &a, 2, global, local, "enqueueing a GEMM");
}
