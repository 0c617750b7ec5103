/*
 * xcat_opencl.h — interop with a caller's own OpenCL objects (include after xcat.h).
 *
 * A training stack that already runs on OpenCL hands xcat its cl_context, device and command
 * queue, and wraps its cl_mem buffers as tensors: no copies, no transfers, and xcat's kernels
 * are enqueued in order on the caller's queue (so they are ordered with the caller's own work).
 * xcat retains what it is given and releases it when the tensor / context is freed.
 */
#ifndef XCAT_OPENCL_H
#define XCAT_OPENCL_H

#include "xcat.h"

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Create an OpenCL context of xcat on the caller's `context` and `device`. `queue` may be NULL
 * (xcat creates an in-order queue of its own) or an in-order queue of that context and device.
 * `options` may be NULL; its backend/device fields are ignored. Errors: INVALID_ARGUMENT (NULL
 * context/device, out-of-order queue), BACKEND_UNAVAILABLE (OpenCL not built in),
 * BACKEND_FAILURE (a CL call failed; the message has the CL error).
 */
XCAT_API xcat_status xcat_context_create_opencl(cl_context context, cl_device_id device,
                                                cl_command_queue queue,
                                                const xcat_context_options *options,
                                                xcat_context **out);

/** The context's OpenCL objects (not retained for the caller); any output may be NULL.
 *  UNSUPPORTED for a context of another backend. */
XCAT_API xcat_status xcat_context_get_opencl(const xcat_context *ctx, cl_context *context,
                                             cl_device_id *device, cl_command_queue *queue);

/**
 * Wrap the caller's buffer zero-copy: element (r, c) is at byte offset
 * offset_bytes + (r·row_stride + c)·dtype_size of `buffer`, which must belong to the context's
 * cl_context and be large enough (checked: SHAPE_MISMATCH otherwise). The buffer is retained
 * until the tensor is freed.
 */
XCAT_API xcat_status xcat_tensor_wrap_opencl(xcat_context *ctx, xcat_dtype dtype, int64_t rows,
                                             int64_t cols, int64_t row_stride, cl_mem buffer,
                                             size_t offset_bytes, xcat_tensor **out);

/** The tensor's cl_mem and byte offset (not retained for the caller). UNSUPPORTED for tensors
 *  of another backend. */
XCAT_API xcat_status xcat_tensor_get_opencl(const xcat_tensor *tensor, cl_mem *buffer,
                                            size_t *offset_bytes);

#ifdef __cplusplus
}
#endif

#endif /* XCAT_OPENCL_H */
