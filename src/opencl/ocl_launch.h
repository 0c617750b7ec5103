/* ocl_launch.h — what the OpenCL passes share: kernel-argument lists, launches, matrix operands
 * (buffer + element offset + row stride), the gemm.cl tile choice, and the end-of-call drain.
 * Only src/opencl/ includes it. */
#ifndef XCAT_OCL_LAUNCH_H
#define XCAT_OCL_LAUNCH_H

#include "ocl.h"

static inline int64_t cdiv(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* The largest power of two <= want and <= limit (at least 1). */
static inline int pow2_at_most(size_t limit, int want)
{
    int v = 1;
    while (v * 2 <= want && (size_t)(v * 2) <= limit) v *= 2;
    return v;
}

/* A kernel's argument list being filled: the first failure is kept and reported at launch. */
typedef struct args {
    cl_kernel k;
    cl_uint i;
    cl_int err;
    const char *label; /* the kernel profile's name for this launch (NULL: the kernel's) */
} args;

static inline void arg(args *a, size_t size, const void *v)
{
    if (a->err == CL_SUCCESS) a->err = clSetKernelArg(a->k, a->i, size, v);
    a->i++;
}

#define A_MEM(a, v) arg(a, sizeof(cl_mem), &(cl_mem){(v)})
#define A_INT(a, v) arg(a, sizeof(cl_int), &(cl_int){(cl_int)(v)})
#define A_UINT(a, v) arg(a, sizeof(cl_uint), &(cl_uint){(cl_uint)(v)})
#define A_LONG(a, v) arg(a, sizeof(cl_long), &(cl_long){(cl_long)(v)})
#define A_ULONG(a, v) arg(a, sizeof(cl_ulong), &(cl_ulong){(cl_ulong)(v)})
#define A_FLOAT(a, v) arg(a, sizeof(cl_float), &(cl_float){(cl_float)(v)})

static inline xcat_status launch(xcat_context *ctx, const args *a, cl_uint dims,
                                 const size_t *global, const size_t *local, const char *what)
{
    if (a->err != CL_SUCCESS) return xcat_ocl_error(ctx, a->err, what);
    const bool prof = xcat_ocl(ctx)->profile;
    cl_event ev = NULL;
    cl_int err = clEnqueueNDRangeKernel(xcat_ocl(ctx)->queue, a->k, dims, NULL, global, local,
                                        0, NULL, prof ? &ev : NULL);
    if (err == CL_SUCCESS && ev) xcat_ocl_profile_record(ctx, a->k, a->label, ev);
    return err == CL_SUCCESS ? XCAT_OK : xcat_ocl_error(ctx, err, what);
}

/* A matrix operand: buffer, element offset, row stride. */
typedef struct mat {
    cl_mem mem;
    uint64_t off;
    int64_t ld;
} mat;

static inline uint64_t elem_off(const xcat_tensor *t)
{
    return t->offset / xcat_dtype_size(t->dtype);
}

static inline mat tensor_mat(const xcat_tensor *t)
{
    return (mat){xcat_ocl_mem(t), elem_off(t), t->stride};
}

/* Rows [c0, ...) of a matrix operand. */
static inline mat chunk_of(mat E, int64_t c0)
{
    E.off += (uint64_t)c0 * (uint64_t)E.ld;
    return E;
}

/* Results are readable when a call returns; on an error, drain the queue so that nothing still
 * runs against the caller's buffers. */
static inline xcat_status finish(xcat_context *ctx, xcat_status st)
{
    cl_int err = clFinish(xcat_ocl(ctx)->queue);
    if (!st && err != CL_SUCCESS) st = xcat_ocl_error(ctx, err, "clFinish");
    return st;
}

/* A gemm.cl tile: BM×BN outputs per work-group, depth BK, TM×TN per work-item. */
typedef struct gemm_cfg {
    int bm, bn, bk, tm, tn;
} gemm_cfg;

/* XCAT_CL_MMA_EMULATE=1 (testing): mma.cl's tensor-core tile built with MMA_EMULATE — all of
 * it (loads, local layout, fragment loads, TF32 / 3×TF32 inputs, output places) but the
 * mma.sync instruction, which is emulated on the fragments through local memory — on any
 * device, wherever a pass would use the tile (top-K with XCAT_CL_TOPK_APPROX=1, the CE's GEMMs
 * with the 128×128×16×8×8 GEMM tile). Returns 1 when on. */
static inline int xcat_ocl_mma_emulate(const xcat_context *ctx)
{
    const char *v = ctx->ignore_env ? NULL : getenv("XCAT_CL_MMA_EMULATE");
    return v && v[0] == '1' && !v[1];
}

static inline int xcat_ocl_gemm_wg(const gemm_cfg *g)
{
    return (g->bm / g->tm) * (g->bn / g->tn);
}

/* The tile for this device (ocl_gemm.c): XCAT_CL_GEMM_TILE=BMxBNxBKxTMxTN when set (unless
 * IGNORE_ENV), else the first of a per-device-type list (`short_k`: for GEMMs whose inner
 * dimension is short, like top-K scoring) that fits the device's work-group size and local
 * memory; *vec_loads: float4 global loads (GPUs; XCAT_CL_VEC_LOADS=0|1). */
xcat_status xcat_ocl_gemm_choose(xcat_context *ctx, bool short_k, gemm_cfg *g, int *vec_loads);
/* The "#define BM … GEMM_VEC_LOADS" part of a prelude, into buf (size n). */
void xcat_ocl_gemm_prelude(const gemm_cfg *g, int vec_loads, char *buf, size_t n);
/* Whether every kernel of `ks` runs `wg` work-items per group on this device (else
 * OUT_OF_RESOURCES naming the tile override). */
xcat_status xcat_ocl_check_wg(xcat_context *ctx, const cl_kernel *ks, size_t nk, int wg);

/* C = alpha·op(A)·op(B) + beta·C with one of gemm.cl's kernels (M×N, inner K), in `parts`
 * K slices stored cslice elements apart (1: a plain GEMM). */
xcat_status xcat_ocl_gemm_launch(xcat_context *ctx, cl_kernel k, const gemm_cfg *g, int64_t M,
                                 int64_t N, int64_t K, float alpha, mat A, mat B, float beta,
                                 mat C, int parts, uint64_t cslice);

#endif /* XCAT_OCL_LAUNCH_H */
