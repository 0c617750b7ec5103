/* ocl_devices.h — OpenCL device enumeration, shared by device queries and context creation. */
#ifndef XCAT_OCL_DEVICES_H
#define XCAT_OCL_DEVICES_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "internal.h"

/* Every device of every platform, in platform order: index i is the i-th. No platform → 0. */
xcat_status xcat_ocl_device_count(int32_t *count);
/* The platform and device of global index `index` (DEVICE_NOT_FOUND when out of range). */
xcat_status xcat_ocl_device_at(int32_t index, cl_platform_id *platform, cl_device_id *device);
/* Describe a device; `probe_ptx` compiles a tiny inline-PTX kernel to see if that path works. */
xcat_status xcat_ocl_device_info(int32_t index, bool probe_ptx, xcat_device_info *info);
/* Whether the device's extension string names `ext` (a whole word). */
bool xcat_ocl_has_extension(cl_device_id device, const char *ext);
void xcat_ocl_describe(cl_platform_id platform, cl_device_id device, xcat_device_info *info);
/* Resolve a selector (index or case-insensitive name substring; NULL/"" = default) to an
 * index; `gpu_only` restricts the search to GPUs. DEVICE_NOT_FOUND if nothing matches. */
xcat_status xcat_ocl_device_select(const char *selector, bool gpu_only, int32_t *index);

#endif
