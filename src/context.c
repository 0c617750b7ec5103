/* context.c — context creation: options and XCAT_* environment overrides, backend choice,
 * CPU ISA level and threads; info and synchronisation. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "backend.h"
#include "kernels.h"
#ifdef XCAT_HAVE_OPENCL
#include "opencl/ocl_devices.h"
#endif

void xcat_context_options_init(xcat_context_options *options)
{
    if (!options) return;
    memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
    options->backend = XCAT_BACKEND_AUTO;
    options->isa_max = -1;
}

void xcat_context_info_init(xcat_context_info *info)
{
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
}

xcat_context_options xcat_context_options_copy(const xcat_context_options *in)
{
    xcat_context_options o;
    xcat_context_options_init(&o);
    if (in) {
        size_t n = in->struct_size < sizeof o ? in->struct_size : sizeof o;
        memcpy(&o, in, n);
        o.struct_size = sizeof o;
    }
    return o;
}

xcat_status xcat_context_create_error(const xcat_context_options *o, xcat_status st,
                                      const char *fmt, ...)
{
    if (o->error_message && o->error_message_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(o->error_message, o->error_message_size, "%s: ",
                         xcat_status_string(st));
        if (n < 0 || (size_t)n >= o->error_message_size) n = 0;
        vsnprintf(o->error_message + n, o->error_message_size - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return st;
}

static bool equals_nocase(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
    return *a == *b;
}

static const char *env_value(const xcat_context_options *o, const char *name)
{
    if (o->flags & XCAT_CONTEXT_IGNORE_ENV) return NULL;
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

static xcat_status resolve_backend(xcat_context_options *o)
{
    if ((unsigned)o->backend > XCAT_BACKEND_OPENCL)
        return xcat_context_create_error(o, XCAT_ERROR_INVALID_ARGUMENT, "options.backend = %d is not a "
                            "xcat_backend_kind", (int)o->backend);
    if (o->backend != XCAT_BACKEND_AUTO) return XCAT_OK;
    const char *v = env_value(o, "XCAT_BACKEND");
    if (!v || equals_nocase(v, "auto")) return XCAT_OK;
    if (equals_nocase(v, "cpu"))
        o->backend = XCAT_BACKEND_CPU;
    else if (equals_nocase(v, "opencl"))
        o->backend = XCAT_BACKEND_OPENCL;
    else
        return xcat_context_create_error(o, XCAT_ERROR_INVALID_ARGUMENT,
                            "XCAT_BACKEND='%s': expected auto, cpu or opencl", v);
    return XCAT_OK;
}

static xcat_status resolve_isa(xcat_context_options *o, xcat_isa *isa)
{
    xcat_isa best = xcat_cpu_isa_detect();
    int cap = o->isa_max;
    const char *v = env_value(o, "XCAT_ISA_MAX");
    if (cap < 0 && v) {
        if (equals_nocase(v, "scalar"))
            cap = XCAT_ISA_SCALAR;
        else if (equals_nocase(v, "avx2"))
            cap = XCAT_ISA_AVX2;
        else if (equals_nocase(v, "avx512"))
            cap = XCAT_ISA_AVX512;
        else
            return xcat_context_create_error(o, XCAT_ERROR_INVALID_ARGUMENT,
                                "XCAT_ISA_MAX='%s': expected scalar, avx2 or avx512", v);
    }
    if (cap > XCAT_ISA_AVX512)
        return xcat_context_create_error(o, XCAT_ERROR_INVALID_ARGUMENT,
                            "options.isa_max = %d: expected -1 or a xcat_isa", cap);
    *isa = (cap >= 0 && (xcat_isa)cap < best) ? (xcat_isa)cap : best;
    return XCAT_OK;
}

static xcat_status resolve_threads(xcat_context_options *o, int32_t *threads)
{
    int32_t n = o->num_threads;
    if (n < 0)
        return xcat_context_create_error(o, XCAT_ERROR_INVALID_ARGUMENT,
                            "options.num_threads = %d: expected 0 (all cores) or more", n);
    const char *v = env_value(o, "XCAT_NUM_THREADS");
    if (n == 0 && v) {
        char *end;
        errno = 0;
        long t = strtol(v, &end, 10);
        if (errno || *end || t < 1 || t > 4096)
            return xcat_context_create_error(o, XCAT_ERROR_INVALID_ARGUMENT,
                                "XCAT_NUM_THREADS='%s': expected an integer in [1, 4096]", v);
        n = (int32_t)t;
    }
    if (n == 0) n = omp_get_num_procs();
    *threads = n > 0 ? n : 1;
    return XCAT_OK;
}

xcat_status xcat_context_create(const xcat_context_options *options, xcat_context **out)
{
    xcat_context_options o = xcat_context_options_copy(options);
    if (o.error_message && o.error_message_size) o.error_message[0] = '\0';
    if (!out) return xcat_context_create_error(&o, XCAT_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if ((o.alloc == NULL) != (o.free == NULL))
        return xcat_context_create_error(&o, XCAT_ERROR_INVALID_ARGUMENT,
                            "options.alloc and options.free must be given together");
    xcat_status st = resolve_backend(&o);
    if (st) return st;
    xcat_isa isa = XCAT_ISA_SCALAR;
    int32_t threads = 1;
    if ((st = resolve_isa(&o, &isa)) || (st = resolve_threads(&o, &threads))) return st;

    const xcat_backend_ops *ops = &xcat_cpu_backend;
    xcat_backend_kind kind = XCAT_BACKEND_CPU;
    if (o.backend == XCAT_BACKEND_OPENCL) {
#ifdef XCAT_HAVE_OPENCL
        ops = &xcat_ocl_backend;
        kind = XCAT_BACKEND_OPENCL;
#else
        return xcat_context_create_error(&o, XCAT_ERROR_BACKEND_UNAVAILABLE,
                                         "this xcat %s was built without the OpenCL backend "
                                         "(XCAT_WITH_OPENCL=OFF or no OpenCL headers)",
                                         xcat_version_string());
#endif
    }
#ifdef XCAT_HAVE_OPENCL
    char picked[16];
    if (o.backend == XCAT_BACKEND_AUTO) {
        /* auto: the first OpenCL GPU (matching the device selector if one is given), else the
         * native CPU backend: on a CPU the native kernels beat PoCL (docs/benchmarks.md). */
        const char *sel = o.device ? o.device : env_value(&o, "XCAT_DEVICE");
        int32_t index;
        if (xcat_ocl_device_select(sel, true, &index) == XCAT_OK) {
            snprintf(picked, sizeof picked, "%d", (int)index);
            o.device = picked;
            ops = &xcat_ocl_backend;
            kind = XCAT_BACKEND_OPENCL;
        }
    }
#endif
    o.isa_max = isa;
    o.num_threads = threads;
    return xcat_context_build(&o, ops, kind, NULL, out);
}

xcat_status xcat_context_build(const xcat_context_options *o, const xcat_backend_ops *ops,
                               xcat_backend_kind kind, const void *interop, xcat_context **out)
{
    xcat_context tmp = {.alloc = o->alloc, .free = o->free, .alloc_user = o->alloc_user};
    xcat_context *ctx = xcat_host_calloc(&tmp, sizeof *ctx, 64);
    if (!ctx)
        return xcat_context_create_error(o, XCAT_ERROR_OUT_OF_MEMORY,
                                         "allocating the context (%zu bytes)", sizeof *ctx);
    *ctx = tmp;
    ctx->ops = ops;
    ctx->backend = kind;
    ctx->isa = o->isa_max >= 0 ? (xcat_isa)o->isa_max : xcat_cpu_isa_detect();
    ctx->num_threads = o->num_threads > 0 ? o->num_threads : 1;
    ctx->ignore_env = (o->flags & XCAT_CONTEXT_IGNORE_ENV) != 0;
    xcat_status st = ops->context_init(ctx, o, interop);
    if (st) {
        if (o->error_message && o->error_message_size) /* already "<status>: detail" */
            snprintf(o->error_message, o->error_message_size, "%s", ctx->last_error);
        xcat_host_free(ctx, ctx);
        return st;
    }
    *out = ctx;
    return XCAT_OK;
}

void xcat_context_free(xcat_context *ctx)
{
    if (!ctx) return;
    if (ctx->ops && ctx->ops->context_release) ctx->ops->context_release(ctx);
    xcat_host_free(ctx, ctx);
}

xcat_status xcat_context_get_info(const xcat_context *ctx, xcat_context_info *info)
{
    if (!ctx || !info) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_context_info i;
    xcat_context_info_init(&i);
    i.backend = ctx->backend;
    snprintf(i.backend_name, sizeof i.backend_name, "%s", ctx->ops->name);
    snprintf(i.device_name, sizeof i.device_name, "%s", ctx->device_name);
    i.isa = ctx->isa;
    i.num_threads = ctx->num_threads;
    size_t n = info->struct_size < sizeof i ? info->struct_size : sizeof i;
    if (n < sizeof(uint32_t)) return XCAT_ERROR_INVALID_ARGUMENT;
    uint32_t keep = info->struct_size;
    memcpy(info, &i, n);
    info->struct_size = keep;
    return XCAT_OK;
}

xcat_status xcat_context_synchronize(xcat_context *ctx)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    return ctx->ops->synchronize ? ctx->ops->synchronize(ctx) : XCAT_OK;
}

xcat_status xcat_context_profile(xcat_context *ctx, char *buf, size_t size, int reset)
{
    if (!ctx || !buf || !size) return XCAT_ERROR_INVALID_ARGUMENT;
    if (ctx->ops->profile_report)
        ctx->ops->profile_report(ctx, buf, size, reset != 0);
    else
        snprintf(buf, size, "# no kernel profile: the %s backend records none\n", ctx->ops->name);
    return XCAT_OK;
}
