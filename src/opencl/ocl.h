/* ocl.h — the OpenCL backend's internal interface: its per-context state, programs built from
 * the embedded cl/ sources, and error mapping. Only src/opencl/ includes it. */
#ifndef XCAT_OCL_H
#define XCAT_OCL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "backend.h"

#define XCAT_OCL_MAX_PROGRAMS 32

typedef struct xcat_ocl_program_entry {
    uint64_t key;      /* hash of sources + options */
    cl_program program;
} xcat_ocl_program_entry;

#define XCAT_OCL_MAX_PROFILED 48

/* One kernel name's recorded device time (XCAT_CONTEXT_PROFILE). */
typedef struct xcat_ocl_profiled {
    char name[48];
    uint64_t calls, ns;
} xcat_ocl_profiled;

typedef struct xcat_ocl_state {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    xcat_device_info info;       /* filled at context creation */
    size_t max_wg_size;          /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    size_t max_wi_sizes[3];      /* CL_DEVICE_MAX_WORK_ITEM_SIZES */
    cl_ulong local_mem;          /* CL_DEVICE_LOCAL_MEM_SIZE */
    cl_uint mem_align_bytes;     /* CL_DEVICE_MEM_BASE_ADDR_ALIGN / 8 (sub-buffer alignment) */
    char cache_dir[1024];        /* "" = no on-disk cache */
    xcat_ocl_program_entry programs[XCAT_OCL_MAX_PROGRAMS];
    int nprograms;
    bool profile;                /* record kernel times (the queue has profiling enabled) */
    xcat_ocl_profiled profiled[XCAT_OCL_MAX_PROFILED];
    int nprofiled;
    int mma_state;               /* tensor-core (inline PTX mma) programs: 0 untried, 1 build,
                                  * -1 not on this device (no NVIDIA compiler, or a build failed) */
} xcat_ocl_state;

/* The cl_mem of a tensor lives in tensor->handle; element offset 0 is at tensor->offset
 * bytes (OpenCL tensors only; tensor->data is NULL). */
static inline cl_mem xcat_ocl_mem(const xcat_tensor *t)
{
    return (cl_mem)t->handle;
}

static inline xcat_ocl_state *xcat_ocl(const xcat_context *ctx)
{
    return (xcat_ocl_state *)ctx->backend_state;
}

/* Record `err` from `what` as the last error, mapped to an xcat_status:
 * CL_MEM_OBJECT_ALLOCATION_FAILURE → DEVICE_OUT_OF_MEMORY, CL_OUT_OF_RESOURCES /
 * CL_INVALID_WORK_GROUP_SIZE → OUT_OF_RESOURCES, CL_OUT_OF_HOST_MEMORY → OUT_OF_MEMORY,
 * CL_BUILD_PROGRAM_FAILURE → BUILD_FAILED, anything else → BACKEND_FAILURE. */
xcat_status xcat_ocl_error(xcat_context *ctx, cl_int err, const char *what);
const char *xcat_ocl_error_name(cl_int err);

/* Build (or fetch from the in-memory cache, else the on-disk binary cache) the program made
 * of `prelude` (a generated block of #defines) followed by the embedded cl/ sources named in
 * `sources` (file names such as "gemm.cl", NULL-terminated list), with build `options`.
 * The program stays owned by the context (released with it). On a build failure the status is
 * BUILD_FAILED and last_error holds the compiler log. */
xcat_status xcat_ocl_program(xcat_context *ctx, const char *prelude, const char *const *sources,
                             const char *options, cl_program *out);

/* Choose the on-disk cache directory: XCAT_CACHE_DIR ("none"/"off" disables), else
 * $XDG_CACHE_HOME/xcat, else ~/.cache/xcat; created if missing; "" when unusable. */
void xcat_ocl_cache_dir_init(xcat_context *ctx);

/* Create a kernel of a program (the caller releases it with clReleaseKernel). */
xcat_status xcat_ocl_kernel(xcat_context *ctx, cl_program program, const char *name,
                            cl_kernel *out);

/* XCAT_CONTEXT_PROFILE: wait for the launch's event and add its device time to its kernel's
 * entry (or to `label`'s, when not NULL: one kernel in several roles). */
void xcat_ocl_profile_record(xcat_context *ctx, cl_kernel k, const char *label, cl_event ev);

/* Allocate / release a device buffer (zero-initialised when zero != 0). */
xcat_status xcat_ocl_buffer(xcat_context *ctx, size_t bytes, bool zero, cl_mem *out);

/* The CE loss on OpenCL (src/opencl/ocl_ce.c). */
xcat_status xcat_ocl_ce_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                       int64_t max_rows, int64_t classes, int64_t dim,
                                       size_t *bytes);
xcat_status xcat_ocl_ce_plan_init(xcat_loss_plan *plan);
void xcat_ocl_ce_plan_release(xcat_loss_plan *plan);
xcat_status xcat_ocl_ce_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                xcat_tensor *loss, xcat_tensor *lse);
xcat_status xcat_ocl_ce_backward(xcat_loss_plan *plan, const xcat_loss_call *call, bool reuse,
                                 const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                 xcat_tensor *d_items, xcat_tensor *d_bias);
/* Both passes at once where S can hold blocks of whole rows; *done = false (nothing done)
 * where it cannot. */
xcat_status xcat_ocl_ce_forward_backward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                         xcat_tensor *loss, xcat_tensor *lse,
                                         const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                         xcat_tensor *d_items, xcat_tensor *d_bias, bool *done);

/* ocl_sampled.c: the sampled kinds (SAMPLED_CE, BCE, GBCE, INBATCH). */
xcat_status xcat_ocl_sampled_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                            int64_t max_rows, int64_t classes, int64_t dim,
                                            size_t *bytes);
xcat_status xcat_ocl_sampled_plan_init(xcat_loss_plan *plan);
void xcat_ocl_sampled_plan_release(xcat_loss_plan *plan);
xcat_status xcat_ocl_sampled_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                     xcat_tensor *loss, xcat_tensor *lse);
xcat_status xcat_ocl_sampled_backward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                      bool reuse, const xcat_tensor *grad_loss,
                                      xcat_tensor *d_hidden, xcat_tensor *d_items,
                                      xcat_tensor *d_bias);
xcat_status xcat_ocl_sampled_sampling_changed(xcat_loss_plan *plan);
xcat_status xcat_ocl_sampled_draw_negatives(xcat_loss_plan *plan, const xcat_loss_call *call,
                                            xcat_tensor *out);

/* ocl_sce.c: XCAT_LOSS_SCE's bucket passes (src/sce.c does the rest). */
xcat_status xcat_ocl_sce_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                        int64_t max_rows, int64_t classes, int64_t dim,
                                        size_t *bytes);
xcat_status xcat_ocl_sce_plan_init(xcat_loss_plan *plan);
void xcat_ocl_sce_plan_release(xcat_loss_plan *plan);
xcat_status xcat_ocl_sce_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                 xcat_tensor *loss, xcat_tensor *lse);
xcat_status xcat_ocl_sce_backward(xcat_loss_plan *plan, const xcat_loss_call *call, bool reuse,
                                  const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                  xcat_tensor *d_items, xcat_tensor *d_bias);
xcat_status xcat_ocl_sce_plain_directions(xcat_loss_plan *plan, uint64_t step, xcat_tensor *dirs);
xcat_status xcat_ocl_sce_mix_directions(xcat_loss_plan *plan, const xcat_loss_call *call,
                                        xcat_tensor *dirs);

/* ocl_topk.c: fused scoring + top-K selection, and sampled evaluation ranks; whether a call's
 * exclusion CSR is read and checked in place (backend op topk_device_csr). */
bool xcat_ocl_topk_device_csr(const xcat_context *ctx, const xcat_topk_call *call);
xcat_status xcat_ocl_topk(xcat_context *ctx, const xcat_topk_call *call, xcat_tensor *indices,
                          xcat_tensor *scores);
xcat_status xcat_ocl_rank_sampled(xcat_context *ctx, const xcat_topk_call *call,
                                  const int64_t *h_targets, int64_t num_negatives, uint64_t seed,
                                  xcat_tensor *ranks);

#endif /* XCAT_OCL_H */
