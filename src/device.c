/* device.c — device enumeration across backends (the CPU backend has one device). */
#include <stdio.h>
#include <string.h>

#include <omp.h>

#include "internal.h"
#include "kernels.h"
#ifdef XCAT_HAVE_OPENCL
#include "opencl/ocl_devices.h"
#endif

void xcat_device_info_init(xcat_device_info *info)
{
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
}

xcat_status xcat_device_count(xcat_backend_kind backend, int32_t *count)
{
    if (!count) return XCAT_ERROR_INVALID_ARGUMENT;
    *count = 0;
    switch (backend) {
    case XCAT_BACKEND_CPU: *count = 1; return XCAT_OK;
    case XCAT_BACKEND_OPENCL:
#ifdef XCAT_HAVE_OPENCL
        return xcat_ocl_device_count(count);
#else
        return XCAT_ERROR_BACKEND_UNAVAILABLE;
#endif
    default: return XCAT_ERROR_INVALID_ARGUMENT;
    }
}

static void cpu_device_info(xcat_device_info *i)
{
    const char *model = xcat_cpu_model_name();
    i->backend = XCAT_BACKEND_CPU;
    i->index = 0;
    snprintf(i->name, sizeof i->name, "%s", *model ? model : "CPU");
    i->is_cpu = 1;
    i->compute_units = omp_get_num_procs();
    i->isa = xcat_cpu_isa_detect();
}

/* Copy `full` into the caller's struct, no further than its struct_size. */
static void copy_info(xcat_device_info *dst, const xcat_device_info *full)
{
    uint32_t keep = dst->struct_size;
    size_t n = keep < sizeof *full ? keep : sizeof *full;
    memcpy(dst, full, n);
    dst->struct_size = keep;
}

xcat_status xcat_device_get_info(xcat_backend_kind backend, int32_t index,
                                 xcat_device_info *info)
{
    if (!info || info->struct_size < sizeof(uint32_t) * 2) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_device_info full;
    xcat_device_info_init(&full);
    switch (backend) {
    case XCAT_BACKEND_CPU:
        if (index != 0) return XCAT_ERROR_DEVICE_NOT_FOUND;
        cpu_device_info(&full);
        break;
    case XCAT_BACKEND_OPENCL: {
#ifdef XCAT_HAVE_OPENCL
        xcat_status st = xcat_ocl_device_info(index, true, &full);
        if (st) return st;
        break;
#else
        return XCAT_ERROR_BACKEND_UNAVAILABLE;
#endif
    }
    default: return XCAT_ERROR_INVALID_ARGUMENT;
    }
    copy_info(info, &full);
    return XCAT_OK;
}
