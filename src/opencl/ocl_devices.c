/* ocl_devices.c — enumerate OpenCL platforms and devices, describe them, pick one. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_devices.h"

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64

/* Visit devices in global order; stop when visit returns true. Returns the number visited. */
typedef bool (*device_visitor)(int32_t index, cl_platform_id p, cl_device_id d, void *user);

static int32_t for_each_device(device_visitor visit, void *user)
{
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint np = 0;
    /* No ICD installed answers CL_PLATFORM_NOT_FOUND_KHR (-1001): a normal "no devices". */
    if (clGetPlatformIDs(MAX_PLATFORMS, platforms, &np) != CL_SUCCESS) return 0;
    int32_t index = 0;
    for (cl_uint p = 0; p < np && p < MAX_PLATFORMS; p++) {
        cl_device_id devices[MAX_DEVICES];
        cl_uint nd = 0;
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devices, &nd) !=
            CL_SUCCESS)
            continue;
        for (cl_uint d = 0; d < nd && d < MAX_DEVICES; d++, index++)
            if (visit && visit(index, platforms[p], devices[d], user)) return index + 1;
    }
    return index;
}

xcat_status xcat_ocl_device_count(int32_t *count)
{
    *count = for_each_device(NULL, NULL);
    return XCAT_OK;
}

typedef struct find_at {
    int32_t want;
    cl_platform_id p;
    cl_device_id d;
    bool found;
} find_at;

static bool visit_at(int32_t index, cl_platform_id p, cl_device_id d, void *user)
{
    find_at *f = user;
    if (index != f->want) return false;
    f->p = p;
    f->d = d;
    f->found = true;
    return true;
}

xcat_status xcat_ocl_device_at(int32_t index, cl_platform_id *platform, cl_device_id *device)
{
    find_at f = {.want = index};
    if (index >= 0) for_each_device(visit_at, &f);
    if (!f.found) return XCAT_ERROR_DEVICE_NOT_FOUND;
    *platform = f.p;
    *device = f.d;
    return XCAT_OK;
}

static void get_string(cl_device_id d, cl_device_info what, char *out, size_t size)
{
    out[0] = '\0';
    if (clGetDeviceInfo(d, what, size, out, NULL) != CL_SUCCESS) out[0] = '\0';
    out[size - 1] = '\0';
}

bool xcat_ocl_has_extension(cl_device_id d, const char *ext)
{
    size_t n = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &n) != CL_SUCCESS || n == 0)
        return false;
    char *all = malloc(n + 1);
    if (!all) return false;
    bool found = false;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, n, all, NULL) == CL_SUCCESS) {
        all[n] = '\0';
        size_t len = strlen(ext);
        for (const char *s = strstr(all, ext); s && !found; s = strstr(s + 1, ext))
            found = (s == all || s[-1] == ' ') && (s[len] == ' ' || s[len] == '\0');
    }
    free(all);
    return found;
}

void xcat_ocl_describe(cl_platform_id platform, cl_device_id d, xcat_device_info *i)
{
    i->backend = XCAT_BACKEND_OPENCL;
    get_string(d, CL_DEVICE_NAME, i->name, sizeof i->name);
    get_string(d, CL_DEVICE_VENDOR, i->vendor, sizeof i->vendor);
    get_string(d, CL_DRIVER_VERSION, i->driver_version, sizeof i->driver_version);
    get_string(d, CL_DEVICE_OPENCL_C_VERSION, i->opencl_c_version, sizeof i->opencl_c_version);
    if (clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof i->platform, i->platform, NULL) !=
        CL_SUCCESS)
        i->platform[0] = '\0';
    i->platform[sizeof i->platform - 1] = '\0';
    cl_device_type type = 0;
    cl_uint cu = 0;
    cl_ulong gmem = 0, amax = 0, lmem = 0;
    size_t wg = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof amax, &amax, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lmem, &lmem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    i->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    i->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    i->compute_units = (int32_t)cu;
    i->global_mem_bytes = (int64_t)gmem;
    i->max_alloc_bytes = (int64_t)amax;
    i->local_mem_bytes = (int64_t)lmem;
    i->max_work_group_size = (int64_t)wg;
    i->has_fp16 = xcat_ocl_has_extension(d, "cl_khr_fp16");
    i->has_subgroups = xcat_ocl_has_extension(d, "cl_khr_subgroups") ||
                       xcat_ocl_has_extension(d, "cl_intel_subgroups");
}

/* Does a kernel with inline PTX compile here? A capability test, not a vendor check. */
static int probe_inline_ptx(cl_device_id d)
{
    static const char *src =
        "__kernel void xcat_probe(__global unsigned *o) {\n"
        "  unsigned lane;\n"
        "  asm volatile(\"mov.u32 %0, %%laneid;\" : \"=r\"(lane));\n"
        "  o[get_global_id(0)] = lane;\n"
        "}\n";
    cl_int err;
    cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
    if (err != CL_SUCCESS) return 0;
    cl_program p = clCreateProgramWithSource(c, 1, &src, NULL, &err);
    int ok = 0;
    if (err == CL_SUCCESS) {
        ok = clBuildProgram(p, 1, &d, "", NULL, NULL) == CL_SUCCESS;
        clReleaseProgram(p);
    }
    clReleaseContext(c);
    return ok;
}

xcat_status xcat_ocl_device_info(int32_t index, bool probe_ptx, xcat_device_info *info)
{
    cl_platform_id p;
    cl_device_id d;
    xcat_status st = xcat_ocl_device_at(index, &p, &d);
    if (st) return st;
    xcat_ocl_describe(p, d, info);
    info->index = index;
    /* The PTX path needs NVIDIA's compiler, which advertises cl_nv_* extensions: only such
     * devices get the (slow) test compile, and other compilers are spared printing errors. */
    if (probe_ptx && (xcat_ocl_has_extension(d, "cl_nv_compiler_options") ||
                      xcat_ocl_has_extension(d, "cl_nv_device_attribute_query")))
        info->inline_ptx = probe_inline_ptx(d);
    return XCAT_OK;
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t k = 0;
        while (k < n && hay[k] &&
               tolower((unsigned char)hay[k]) == tolower((unsigned char)needle[k]))
            k++;
        if (k == n) return true;
    }
    return false;
}

typedef struct find_sel {
    const char *sel;
    long as_index; /* -1 if the selector is not a number */
    bool gpu_only;
    int32_t found;
} find_sel;

static bool visit_sel(int32_t index, cl_platform_id p, cl_device_id d, void *user)
{
    find_sel *f = user;
    xcat_device_info i;
    memset(&i, 0, sizeof i);
    xcat_ocl_describe(p, d, &i);
    if (f->gpu_only && !i.is_gpu) return false;
    bool match = !f->sel || (f->as_index >= 0 ? f->as_index == index
                                              : contains_nocase(i.name, f->sel) ||
                                                    contains_nocase(i.vendor, f->sel) ||
                                                    contains_nocase(i.platform, f->sel));
    if (match) f->found = index;
    return match;
}

xcat_status xcat_ocl_device_select(const char *selector, bool gpu_only, int32_t *index)
{
    find_sel f = {.sel = (selector && *selector) ? selector : NULL, .as_index = -1,
                  .gpu_only = gpu_only, .found = -1};
    if (f.sel) {
        char *end;
        long v = strtol(f.sel, &end, 10);
        if (*end == '\0' && v >= 0) f.as_index = v;
    }
    for_each_device(visit_sel, &f);
    if (f.found < 0) return XCAT_ERROR_DEVICE_NOT_FOUND;
    *index = f.found;
    return XCAT_OK;
}
