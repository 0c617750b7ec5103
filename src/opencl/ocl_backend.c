/* ocl_backend.c — the OpenCL backend: one device, its context and in-order queue (ours or the
 * caller's), device buffers as tensors, error mapping, and the interop entry points of
 * include/xcat_opencl.h. */
#include <stdio.h>
#include <string.h>

#include "ocl.h"
#include "ocl_devices.h"
#include "xcat_opencl.h"

const char *xcat_ocl_error_name(cl_int err)
{
    switch (err) {
#define NAME(e) \
    case e: return #e;
        NAME(CL_DEVICE_NOT_FOUND) NAME(CL_DEVICE_NOT_AVAILABLE) NAME(CL_COMPILER_NOT_AVAILABLE)
        NAME(CL_MEM_OBJECT_ALLOCATION_FAILURE) NAME(CL_OUT_OF_RESOURCES)
        NAME(CL_OUT_OF_HOST_MEMORY) NAME(CL_BUILD_PROGRAM_FAILURE) NAME(CL_INVALID_VALUE)
        NAME(CL_INVALID_DEVICE) NAME(CL_INVALID_CONTEXT) NAME(CL_INVALID_COMMAND_QUEUE)
        NAME(CL_INVALID_MEM_OBJECT) NAME(CL_INVALID_PROGRAM) NAME(CL_INVALID_KERNEL_NAME)
        NAME(CL_INVALID_KERNEL) NAME(CL_INVALID_ARG_INDEX) NAME(CL_INVALID_ARG_VALUE)
        NAME(CL_INVALID_ARG_SIZE) NAME(CL_INVALID_KERNEL_ARGS) NAME(CL_INVALID_WORK_DIMENSION)
        NAME(CL_INVALID_WORK_GROUP_SIZE) NAME(CL_INVALID_WORK_ITEM_SIZE)
        NAME(CL_INVALID_GLOBAL_OFFSET) NAME(CL_INVALID_BUFFER_SIZE)
        NAME(CL_INVALID_OPERATION) NAME(CL_INVALID_BUILD_OPTIONS)
        NAME(CL_MISALIGNED_SUB_BUFFER_OFFSET) NAME(CL_INVALID_PROGRAM_EXECUTABLE)
#undef NAME
    default: return "CL error";
    }
}

xcat_status xcat_ocl_error(xcat_context *ctx, cl_int err, const char *what)
{
    xcat_status st = XCAT_ERROR_BACKEND_FAILURE;
    switch (err) {
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
    case CL_INVALID_BUFFER_SIZE: st = XCAT_ERROR_DEVICE_OUT_OF_MEMORY; break;
    case CL_OUT_OF_RESOURCES:
    case CL_INVALID_WORK_GROUP_SIZE: st = XCAT_ERROR_OUT_OF_RESOURCES; break;
    case CL_OUT_OF_HOST_MEMORY: st = XCAT_ERROR_OUT_OF_MEMORY; break;
    case CL_BUILD_PROGRAM_FAILURE: st = XCAT_ERROR_BUILD_FAILED; break;
    default: break;
    }
    return xcat_error(ctx, st, "%s failed: %s (%d)", what, xcat_ocl_error_name(err), (int)err);
}

xcat_status xcat_ocl_buffer(xcat_context *ctx, size_t bytes, bool zero, cl_mem *out)
{
    xcat_ocl_state *s = xcat_ocl(ctx);
    *out = NULL;
    if (bytes == 0) bytes = 4;
    if ((int64_t)bytes > s->info.max_alloc_bytes && s->info.max_alloc_bytes > 0)
        return xcat_error(ctx, XCAT_ERROR_DEVICE_OUT_OF_MEMORY,
                          "a %zu-byte buffer exceeds the device's largest allocation "
                          "(%lld bytes)", bytes, (long long)s->info.max_alloc_bytes);
    cl_int err;
    cl_mem m = clCreateBuffer(s->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) return xcat_ocl_error(ctx, err, "clCreateBuffer");
    if (zero) {
        /* Filling also makes lazy allocators commit the memory now, so an out-of-memory
         * device fails here with a clear status rather than in a later kernel. The fill goes
         * in pieces of at most 256 MiB with the widest pattern the size allows: one fill of a
         * 2.4 GB buffer with a 1-byte pattern broke NVIDIA's driver (580.159, H100). */
        const cl_uint z[4] = {0, 0, 0, 0};
        const size_t pattern = bytes % 16 == 0 ? 16 : bytes % 4 == 0 ? 4 : 1;
        const size_t piece = (size_t)256 << 20;
        err = CL_SUCCESS;
        for (size_t at = 0; at < bytes && err == CL_SUCCESS; at += piece) {
            size_t n = bytes - at < piece ? bytes - at : piece;
            err = clEnqueueFillBuffer(s->queue, m, z, pattern, at, n, 0, NULL, NULL);
        }
        if (err == CL_SUCCESS) err = clFinish(s->queue);
        if (err != CL_SUCCESS) {
            clReleaseMemObject(m);
            return xcat_ocl_error(ctx, err, "zero-filling a new buffer");
        }
    }
    *out = m;
    return XCAT_OK;
}

/* ---- contexts ------------------------------------------------------------------------------ */

typedef struct ocl_interop {
    cl_context context;
    cl_device_id device;
    cl_command_queue queue;
} ocl_interop;

static void fill_limits(xcat_ocl_state *s)
{
    clGetDeviceInfo(s->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof s->max_wg_size,
                    &s->max_wg_size, NULL);
    clGetDeviceInfo(s->device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof s->max_wi_sizes,
                    s->max_wi_sizes, NULL);
    clGetDeviceInfo(s->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof s->local_mem, &s->local_mem,
                    NULL);
    cl_uint bits = 0;
    clGetDeviceInfo(s->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof bits, &bits, NULL);
    s->mem_align_bytes = bits / 8 ? bits / 8 : 1;
}

/* Our own context and queue on the device chosen by options->device / XCAT_DEVICE. */
static xcat_status open_selected(xcat_context *ctx, xcat_ocl_state *s,
                                 const xcat_context_options *o)
{
    const char *sel = o->device;
    if (!sel && !(o->flags & XCAT_CONTEXT_IGNORE_ENV)) sel = getenv("XCAT_DEVICE");
    int32_t count = 0, index = 0;
    xcat_ocl_device_count(&count);
    if (count == 0)
        return xcat_error(ctx, XCAT_ERROR_BACKEND_UNAVAILABLE,
                          "no OpenCL platform or device is installed (the CPU backend still "
                          "works: XCAT_BACKEND=cpu or auto)");
    /* No selector: the first GPU if there is one (the reason to ask for OpenCL), else the
     * first device (e.g. PoCL). */
    bool found = (!sel || !*sel) && xcat_ocl_device_select(NULL, true, &index) == XCAT_OK;
    if (!found && xcat_ocl_device_select(sel, false, &index) != XCAT_OK)
        return xcat_error(ctx, XCAT_ERROR_DEVICE_NOT_FOUND,
                          "device '%s' matches none of the %d OpenCL devices (xcat-info lists "
                          "them)", sel ? sel : "", (int)count);
    xcat_ocl_device_at(index, &s->platform, &s->device);
    xcat_ocl_describe(s->platform, s->device, &s->info);
    s->info.index = index;
    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)s->platform, 0};
    s->context = clCreateContext(props, 1, &s->device, NULL, NULL, &err);
    if (err != CL_SUCCESS) return xcat_ocl_error(ctx, err, "clCreateContext");
    s->queue = clCreateCommandQueue(s->context, s->device,
                                    s->profile ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
    if (err != CL_SUCCESS) return xcat_ocl_error(ctx, err, "clCreateCommandQueue");
    return XCAT_OK;
}

static xcat_status adopt_interop(xcat_context *ctx, xcat_ocl_state *s, const ocl_interop *io)
{
    cl_int err;
    s->device = io->device;
    s->context = io->context;
    clRetainContext(s->context);
    err = clGetDeviceInfo(s->device, CL_DEVICE_PLATFORM, sizeof s->platform, &s->platform, NULL);
    if (err != CL_SUCCESS) return xcat_ocl_error(ctx, err, "clGetDeviceInfo(PLATFORM)");
    xcat_ocl_describe(s->platform, s->device, &s->info);
    s->info.index = -1;
    if (io->queue) {
        cl_command_queue_properties qp = 0;
        err = clGetCommandQueueInfo(io->queue, CL_QUEUE_PROPERTIES, sizeof qp, &qp, NULL);
        if (err != CL_SUCCESS) return xcat_ocl_error(ctx, err, "clGetCommandQueueInfo");
        if (qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)
            return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                              "queue is out-of-order: xcat needs an in-order queue");
        s->queue = io->queue;
        clRetainCommandQueue(s->queue);
        s->profile = s->profile && (qp & CL_QUEUE_PROFILING_ENABLE); /* the caller's choice */
        return XCAT_OK;
    }
    s->queue = clCreateCommandQueue(s->context, s->device,
                                    s->profile ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
    if (err != CL_SUCCESS) return xcat_ocl_error(ctx, err, "clCreateCommandQueue");
    return XCAT_OK;
}

static void ocl_context_release(xcat_context *ctx)
{
    xcat_ocl_state *s = xcat_ocl(ctx);
    if (!s) return;
    for (int i = 0; i < s->nprograms; i++) clReleaseProgram(s->programs[i].program);
    if (s->queue) clReleaseCommandQueue(s->queue);
    if (s->context) clReleaseContext(s->context);
    xcat_host_free(ctx, s);
    ctx->backend_state = NULL;
}

static xcat_status ocl_context_init(xcat_context *ctx, const xcat_context_options *o,
                                    const void *interop)
{
    xcat_ocl_state *s = xcat_host_calloc(ctx, sizeof *s, 64);
    if (!s) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "allocating OpenCL state");
    ctx->backend_state = s;
    const char *pe = ctx->ignore_env ? NULL : getenv("XCAT_PROFILE");
    s->profile = (o->flags & XCAT_CONTEXT_PROFILE) || (pe && pe[0] == '1' && !pe[1]);
    xcat_status st = interop ? adopt_interop(ctx, s, interop) : open_selected(ctx, s, o);
    if (st) {
        ocl_context_release(ctx);
        return st;
    }
    fill_limits(s);
    xcat_ocl_cache_dir_init(ctx);
    snprintf(ctx->device_name, sizeof ctx->device_name, "%.160s (%.80s)", s->info.name,
             s->info.platform);
    return XCAT_OK;
}

static bool ocl_supports(const xcat_context *ctx, xcat_op op, xcat_dtype dtype)
{
    (void)ctx;
    return (op == XCAT_OP_LOSS_CE || op == XCAT_OP_TOPK || op == XCAT_OP_LOSS_SAMPLED ||
            op == XCAT_OP_LOSS_SCE) &&
           dtype == XCAT_DTYPE_F32;
}

static xcat_status ocl_synchronize(xcat_context *ctx)
{
    cl_int err = clFinish(xcat_ocl(ctx)->queue);
    return err == CL_SUCCESS ? XCAT_OK : xcat_ocl_error(ctx, err, "clFinish");
}

/* ---- kernel profile (XCAT_CONTEXT_PROFILE) ------------------------------------------------- */

void xcat_ocl_profile_record(xcat_context *ctx, cl_kernel k, const char *label, cl_event ev)
{
    xcat_ocl_state *s = xcat_ocl(ctx);
    cl_ulong t0 = 0, t1 = 0;
    char name[sizeof s->profiled[0].name] = "";
    /* a failure here only loses the sample: profiling never fails a call */
    if (clWaitForEvents(1, &ev) == CL_SUCCESS &&
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) ==
            CL_SUCCESS &&
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) ==
            CL_SUCCESS &&
        (label ? (snprintf(name, sizeof name, "%s", label), 1)
               : clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL) ==
                     CL_SUCCESS)) {
        name[sizeof name - 1] = '\0';
        int i = 0;
        while (i < s->nprofiled && strcmp(s->profiled[i].name, name) != 0) i++;
        if (i == s->nprofiled && i < XCAT_OCL_MAX_PROFILED) {
            snprintf(s->profiled[i].name, sizeof s->profiled[i].name, "%s", name);
            s->profiled[i].calls = s->profiled[i].ns = 0; /* a slot reused after a reset */
            s->nprofiled++;
        }
        if (i < s->nprofiled) {
            s->profiled[i].calls++;
            s->profiled[i].ns += t1 > t0 ? t1 - t0 : 0;
        }
    }
    clReleaseEvent(ev);
}

static void ocl_profile_report(xcat_context *ctx, char *buf, size_t size, bool reset)
{
    xcat_ocl_state *s = xcat_ocl(ctx);
    if (!s->profile) {
        snprintf(buf, size, "# no kernel profile: the context was made without "
                            "XCAT_CONTEXT_PROFILE / XCAT_PROFILE=1 (or its queue lacks "
                            "CL_QUEUE_PROFILING_ENABLE)\n");
        return;
    }
    int order[XCAT_OCL_MAX_PROFILED];
    for (int i = 0; i < s->nprofiled; i++) order[i] = i;
    for (int i = 1; i < s->nprofiled; i++) /* by decreasing total time; a handful of names */
        for (int j = i; j > 0 && s->profiled[order[j]].ns > s->profiled[order[j - 1]].ns; j--) {
            const int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    size_t n = (size_t)snprintf(buf, size, "%-32s %8s %12s %12s\n", "# kernel", "calls",
                                "total ms", "mean us");
    for (int i = 0; i < s->nprofiled && n < size; i++) {
        const xcat_ocl_profiled *p = &s->profiled[order[i]];
        n += (size_t)snprintf(buf + n, size - n, "%-32s %8llu %12.3f %12.2f\n", p->name,
                              (unsigned long long)p->calls, (double)p->ns * 1e-6,
                              p->calls ? (double)p->ns * 1e-3 / (double)p->calls : 0.0);
    }
    if (reset) s->nprofiled = 0;
}

/* ---- tensors ------------------------------------------------------------------------------- */

static size_t span_bytes(const xcat_tensor *t)
{
    return ((size_t)(t->rows - 1) * (size_t)t->stride + (size_t)t->cols) *
           xcat_dtype_size(t->dtype);
}

static xcat_status ocl_tensor_alloc(xcat_context *ctx, xcat_tensor *t)
{
    cl_mem m;
    xcat_status st = xcat_ocl_buffer(ctx, span_bytes(t), true, &m);
    if (st) return st;
    t->handle = m;
    t->offset = 0;
    return XCAT_OK;
}

static void ocl_tensor_release(xcat_context *ctx, xcat_tensor *t)
{
    (void)ctx;
    if (t->handle) clReleaseMemObject(xcat_ocl_mem(t));
    t->handle = NULL;
}

/* One rectangular copy between the tensor and host memory (strides on both sides). */
static xcat_status rect_copy(xcat_context *ctx, const xcat_tensor *t, void *host,
                             int64_t host_stride, bool to_device)
{
    const size_t es = xcat_dtype_size(t->dtype);
    const size_t buf_origin[3] = {t->offset, 0, 0}, host_origin[3] = {0, 0, 0};
    const size_t region[3] = {(size_t)t->cols * es, (size_t)t->rows, 1};
    const size_t bpitch = (size_t)t->stride * es, hpitch = (size_t)host_stride * es;
    cl_command_queue q = xcat_ocl(ctx)->queue;
    cl_int err;
    if (t->rows == 1 || (t->stride == t->cols && host_stride == t->cols)) {
        /* contiguous on both sides: one linear copy (drivers walk a rectangle row by row —
         * a column vector of 409,600 rows took milliseconds on NVIDIA's OpenCL) */
        const size_t bytes = (size_t)t->rows * (size_t)t->cols * es;
        err = to_device ? clEnqueueWriteBuffer(q, xcat_ocl_mem(t), CL_TRUE, t->offset, bytes, host,
                                               0, NULL, NULL)
                        : clEnqueueReadBuffer(q, xcat_ocl_mem(t), CL_TRUE, t->offset, bytes, host,
                                              0, NULL, NULL);
    } else {
        err = to_device
                     ? clEnqueueWriteBufferRect(q, xcat_ocl_mem(t), CL_TRUE, buf_origin,
                                                host_origin, region, bpitch, 0, hpitch, 0, host,
                                                0, NULL, NULL)
                     : clEnqueueReadBufferRect(q, xcat_ocl_mem(t), CL_TRUE, buf_origin,
                                               host_origin, region, bpitch, 0, hpitch, 0, host,
                                               0, NULL, NULL);
    }
    return err == CL_SUCCESS ? XCAT_OK
                             : xcat_ocl_error(ctx, err, to_device ? "writing a tensor"
                                                                  : "reading a tensor");
}

static xcat_status ocl_tensor_write(xcat_context *ctx, xcat_tensor *t, const void *src,
                                    int64_t src_stride)
{
    return rect_copy(ctx, t, (void *)src, src_stride, true);
}

static xcat_status ocl_tensor_read(xcat_context *ctx, const xcat_tensor *t, void *dst,
                                   int64_t dst_stride)
{
    return rect_copy(ctx, t, dst, dst_stride, false);
}

/* Loss entries: full-softmax CE (ocl_ce.c) or the sampled kinds (ocl_sampled.c). */
static xcat_status ocl_loss_workspace_size(const xcat_context *ctx, const xcat_loss_desc *desc,
                                           int64_t max_rows, int64_t classes, int64_t dim,
                                           size_t *bytes)
{
    if (desc->kind == XCAT_LOSS_CE)
        return xcat_ocl_ce_workspace_size(ctx, desc, max_rows, classes, dim, bytes);
    if (desc->kind == XCAT_LOSS_SCE)
        return xcat_ocl_sce_workspace_size(ctx, desc, max_rows, classes, dim, bytes);
    return xcat_ocl_sampled_workspace_size(ctx, desc, max_rows, classes, dim, bytes);
}

static xcat_status ocl_loss_plan_init(xcat_loss_plan *plan)
{
    if (plan->desc.kind == XCAT_LOSS_CE) return xcat_ocl_ce_plan_init(plan);
    if (plan->desc.kind == XCAT_LOSS_SCE) return xcat_ocl_sce_plan_init(plan);
    return xcat_ocl_sampled_plan_init(plan);
}

static void ocl_loss_plan_release(xcat_loss_plan *plan)
{
    if (plan->desc.kind == XCAT_LOSS_CE)
        xcat_ocl_ce_plan_release(plan);
    else if (plan->desc.kind == XCAT_LOSS_SCE)
        xcat_ocl_sce_plan_release(plan);
    else
        xcat_ocl_sampled_plan_release(plan);
}

static xcat_status ocl_loss_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                    xcat_tensor *loss, xcat_tensor *lse)
{
    if (plan->desc.kind == XCAT_LOSS_CE) return xcat_ocl_ce_forward(plan, call, loss, lse);
    if (plan->desc.kind == XCAT_LOSS_SCE) return xcat_ocl_sce_forward(plan, call, loss, lse);
    return xcat_ocl_sampled_forward(plan, call, loss, lse);
}

static xcat_status ocl_loss_backward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                     bool reuse, const xcat_tensor *grad_loss,
                                     xcat_tensor *d_hidden, xcat_tensor *d_items,
                                     xcat_tensor *d_bias)
{
    if (plan->desc.kind == XCAT_LOSS_CE)
        return xcat_ocl_ce_backward(plan, call, reuse, grad_loss, d_hidden, d_items, d_bias);
    if (plan->desc.kind == XCAT_LOSS_SCE)
        return xcat_ocl_sce_backward(plan, call, reuse, grad_loss, d_hidden, d_items, d_bias);
    return xcat_ocl_sampled_backward(plan, call, reuse, grad_loss, d_hidden, d_items, d_bias);
}

static xcat_status ocl_loss_forward_backward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                             xcat_tensor *loss, xcat_tensor *lse,
                                             const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                             xcat_tensor *d_items, xcat_tensor *d_bias,
                                             bool *done)
{
    *done = false;
    if (plan->desc.kind != XCAT_LOSS_CE) return XCAT_OK;
    return xcat_ocl_ce_forward_backward(plan, call, loss, lse, grad_loss, d_hidden, d_items,
                                        d_bias, done);
}

const xcat_backend_ops xcat_ocl_backend = {
    .name = "opencl",
    .context_init = ocl_context_init,
    .context_release = ocl_context_release,
    .supports = ocl_supports,
    .synchronize = ocl_synchronize,
    .profile_report = ocl_profile_report,
    .tensor_alloc = ocl_tensor_alloc,
    .tensor_release = ocl_tensor_release,
    .tensor_write = ocl_tensor_write,
    .tensor_read = ocl_tensor_read,
    .loss_workspace_size = ocl_loss_workspace_size,
    .loss_plan_init = ocl_loss_plan_init,
    .loss_plan_release = ocl_loss_plan_release,
    .loss_forward = ocl_loss_forward,
    .loss_backward = ocl_loss_backward,
    .loss_forward_backward = ocl_loss_forward_backward,
    .loss_sampling_changed = xcat_ocl_sampled_sampling_changed,
    .loss_draw_negatives = xcat_ocl_sampled_draw_negatives,
    .sce_mix_directions = xcat_ocl_sce_mix_directions,
    .sce_plain_directions = xcat_ocl_sce_plain_directions,
    .topk_device_csr = xcat_ocl_topk_device_csr,
    .topk = xcat_ocl_topk,
    .rank_sampled = xcat_ocl_rank_sampled,
};

/* ---- interop (include/xcat_opencl.h) ------------------------------------------------------- */

xcat_status xcat_context_create_opencl(cl_context context, cl_device_id device,
                                       cl_command_queue queue,
                                       const xcat_context_options *options, xcat_context **out)
{
    xcat_context_options o = xcat_context_options_copy(options);
    if (!out) return XCAT_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    if (!context || !device)
        return xcat_context_create_error(&o, XCAT_ERROR_INVALID_ARGUMENT,
                                         "context and device are required");
    o.isa_max = -1;
    o.num_threads = 1;
    const ocl_interop io = {.context = context, .device = device, .queue = queue};
    return xcat_context_build(&o, &xcat_ocl_backend, XCAT_BACKEND_OPENCL, &io, out);
}

xcat_status xcat_context_get_opencl(const xcat_context *ctx, cl_context *context,
                                    cl_device_id *device, cl_command_queue *queue)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    if (ctx->backend != XCAT_BACKEND_OPENCL) return XCAT_ERROR_UNSUPPORTED;
    const xcat_ocl_state *s = xcat_ocl(ctx);
    if (context) *context = s->context;
    if (device) *device = s->device;
    if (queue) *queue = s->queue;
    return XCAT_OK;
}

xcat_status xcat_tensor_wrap_opencl(xcat_context *ctx, xcat_dtype dtype, int64_t rows,
                                    int64_t cols, int64_t row_stride, cl_mem buffer,
                                    size_t offset_bytes, xcat_tensor **out)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    if (out) *out = NULL;
    if (ctx->backend != XCAT_BACKEND_OPENCL)
        return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED, "wrapping a cl_mem needs an OpenCL "
                          "context");
    if (!buffer) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "buffer is NULL");
    size_t es = xcat_dtype_size(dtype);
    if (es && offset_bytes % es)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                          "offset_bytes = %zu is not a multiple of the element size %zu",
                          offset_bytes, es);
    cl_context owner = NULL;
    size_t size = 0;
    cl_int err = clGetMemObjectInfo(buffer, CL_MEM_CONTEXT, sizeof owner, &owner, NULL);
    if (err == CL_SUCCESS) err = clGetMemObjectInfo(buffer, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS) return xcat_ocl_error(ctx, err, "clGetMemObjectInfo");
    if (owner != xcat_ocl(ctx)->context)
        return xcat_error(ctx, XCAT_ERROR_WRONG_CONTEXT,
                          "buffer belongs to another cl_context than the xcat context");
    xcat_tensor *t = NULL;
    xcat_status st = xcat_tensor_new_handle(ctx, dtype, rows, cols, row_stride, out, &t);
    if (st) return st;
    const size_t span = span_bytes(t);
    if (offset_bytes > size || span > size - offset_bytes) {
        xcat_tensor_free(t);
        return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH,
                          "a %lld x %lld tensor (stride %lld) at offset %zu needs %zu bytes; "
                          "the buffer has %zu", (long long)rows, (long long)cols,
                          (long long)row_stride, offset_bytes, span + offset_bytes, size);
    }
    clRetainMemObject(buffer);
    t->handle = buffer;
    t->offset = offset_bytes;
    t->owned = true; /* our reference is released when the tensor is freed */
    *out = t;
    return XCAT_OK;
}

xcat_status xcat_tensor_get_opencl(const xcat_tensor *tensor, cl_mem *buffer,
                                   size_t *offset_bytes)
{
    if (!tensor) return XCAT_ERROR_INVALID_ARGUMENT;
    if (tensor->ctx->backend != XCAT_BACKEND_OPENCL) return XCAT_ERROR_UNSUPPORTED;
    if (buffer) *buffer = xcat_ocl_mem(tensor);
    if (offset_bytes) *offset_bytes = tensor->offset;
    return XCAT_OK;
}
