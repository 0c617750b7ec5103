/*
 * xcat-info — what the linked xcat library sees on this machine: its version, the default
 * context (backend, device, ISA level, threads), which CPU ISA levels are usable, the OpenCL
 * backend's status, and every device of every backend (xcat_device_count/get_info): index,
 * name, vendor, platform, type, compute units, memory sizes, work-group limit, OpenCL C version
 * and the fp16 / subgroup / inline-PTX capabilities.
 *
 *     xcat-info [--json]
 *
 * Exit status: 0 when the CPU backend works (an unavailable OpenCL backend, or a default
 * context that fails because XCAT_BACKEND asks for it, is reported, not an error); 1 when not
 * even a scalar CPU context can be created; 2 on a usage error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "xcat.h"

void tool_json_string(FILE *f, const char *s);
void tool_cpu_model(char *buf, size_t size);

enum { MAX_DEVICES = 64, NUM_ISA = 3 };

/* The outcome of creating one context and asking it for its info. */
typedef struct probe {
    xcat_status status;
    xcat_context_info info;
    char error[1024];
} probe;

/* One device of one backend, or the failure to describe it. */
typedef struct device {
    xcat_status status;
    xcat_device_info info;
} device;

/* A backend's device list: the status of xcat_device_count and the devices. */
typedef struct backend_devices {
    xcat_backend_kind backend;
    xcat_status count_status;
    int count;
    device devices[MAX_DEVICES];
} backend_devices;

typedef struct report {
    char cpu_model[256];
    probe default_ctx;
    probe isa[NUM_ISA];
    probe opencl; /* a context on the OpenCL backend, honouring XCAT_DEVICE */
    backend_devices cpu, ocl;
} report;

static void probe_context(xcat_context_options *options, probe *p)
{
    memset(p, 0, sizeof *p);
    xcat_context_info_init(&p->info);
    options->error_message = p->error;
    options->error_message_size = sizeof p->error;
    xcat_context *ctx = NULL;
    p->status = xcat_context_create(options, &ctx);
    if (p->status != XCAT_OK)
        return;
    p->status = xcat_context_get_info(ctx, &p->info);
    if (p->status != XCAT_OK)
        snprintf(p->error, sizeof p->error, "%s", xcat_context_last_error(ctx));
    xcat_context_free(ctx);
}

static void probe_isa(xcat_isa level, probe *p)
{
    xcat_context_options o;
    xcat_context_options_init(&o);
    o.backend = XCAT_BACKEND_CPU;
    o.flags = XCAT_CONTEXT_IGNORE_ENV;
    o.isa_max = (int32_t)level;
    probe_context(&o, p);
}

static int isa_usable(const probe *p, xcat_isa level)
{
    return p->status == XCAT_OK && p->info.isa == level;
}

static void list_devices(xcat_backend_kind backend, backend_devices *b)
{
    memset(b, 0, sizeof *b);
    b->backend = backend;
    int32_t count = 0;
    b->count_status = xcat_device_count(backend, &count);
    if (b->count_status != XCAT_OK)
        return;
    b->count = count < MAX_DEVICES ? (int)count : MAX_DEVICES;
    for (int i = 0; i < b->count; ++i) {
        xcat_device_info_init(&b->devices[i].info);
        b->devices[i].status = xcat_device_get_info(backend, i, &b->devices[i].info);
    }
}

static void collect(report *r)
{
    memset(r, 0, sizeof *r);
    tool_cpu_model(r->cpu_model, sizeof r->cpu_model);
    xcat_context_options o;
    xcat_context_options_init(&o);
    probe_context(&o, &r->default_ctx);
    for (int level = 0; level < NUM_ISA; ++level)
        probe_isa((xcat_isa)level, &r->isa[level]);
    xcat_context_options_init(&o);
    o.backend = XCAT_BACKEND_OPENCL;
    probe_context(&o, &r->opencl);
    list_devices(XCAT_BACKEND_CPU, &r->cpu);
    list_devices(XCAT_BACKEND_OPENCL, &r->ocl);
}

static const char *backend_name(xcat_backend_kind b)
{
    return b == XCAT_BACKEND_CPU ? "cpu" : b == XCAT_BACKEND_OPENCL ? "opencl" : "?";
}

static const char *device_type(const xcat_device_info *i)
{
    return i->is_gpu ? "gpu" : i->is_cpu ? "cpu" : "other";
}

/* ---- text ----------------------------------------------------------------------------- */

static void print_probe_text(const char *label, const probe *p)
{
    if (p->status != XCAT_OK) {
        printf("%-16s unavailable: %s (%d): %s\n", label, xcat_status_string(p->status),
               (int)p->status, p->error[0] ? p->error : "(no detail)");
        return;
    }
    const xcat_context_info *i = &p->info;
    printf("%-16s backend %s, device \"%s\"", label, i->backend_name, i->device_name);
    if (i->backend == XCAT_BACKEND_CPU)
        printf(", isa %s, %d threads", xcat_isa_name(i->isa), (int)i->num_threads);
    printf("\n");
}

/* "16.0 GiB", "64 KiB", "-" for 0 (unknown). */
static const char *human_bytes(int64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (bytes <= 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    if (v == (double)(int64_t)v)
        snprintf(buf, size, "%lld %s", (long long)v, units[u]);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
    return buf;
}

static const char *yes_no(int32_t v)
{
    return v ? "yes" : "no";
}

static void print_devices_text(const backend_devices *b)
{
    if (b->count_status != XCAT_OK) {
        printf("  %-7s (%s)\n", backend_name(b->backend), xcat_status_string(b->count_status));
        return;
    }
    if (b->count == 0) {
        printf("  %-7s (no devices)\n", backend_name(b->backend));
        return;
    }
    for (int k = 0; k < b->count; ++k) {
        const device *d = &b->devices[k];
        const xcat_device_info *i = &d->info;
        if (d->status != XCAT_OK) {
            printf("  %-7s %-3d %s\n", backend_name(b->backend), k,
                   xcat_status_string(d->status));
            continue;
        }
        char gmem[32], lmem[32], amax[32], wg[32];
        snprintf(wg, sizeof wg, "%" PRId64, i->max_work_group_size);
        printf("  %-7s %-3d %-5s %4d %10s %10s %10s %6s %-4s %-4s %-4s %s\n",
               backend_name(b->backend), (int)i->index, device_type(i), (int)i->compute_units,
               human_bytes(i->global_mem_bytes, gmem, sizeof gmem),
               human_bytes(i->local_mem_bytes, lmem, sizeof lmem),
               human_bytes(i->max_alloc_bytes, amax, sizeof amax),
               i->max_work_group_size > 0 ? wg : "-", yes_no(i->has_fp16),
               yes_no(i->has_subgroups), yes_no(i->inline_ptx), i->name);
        if (b->backend == XCAT_BACKEND_CPU)
            printf("  %14s isa %s%s%s\n", "", xcat_isa_name(i->isa),
                   i->vendor[0] ? ", vendor " : "", i->vendor);
        else
            printf("  %14s vendor %s; platform %s; %s; driver %s\n", "", i->vendor, i->platform,
                   i->opencl_c_version, i->driver_version);
    }
}

static void print_text(const report *r)
{
    unsigned lib = xcat_version_number();
    printf("xcat library     %s (linked %u, header %d.%d.%d = %d)%s\n", xcat_version_string(), lib,
           XCAT_VERSION_MAJOR, XCAT_VERSION_MINOR, XCAT_VERSION_PATCH, XCAT_VERSION_NUMBER,
           lib == (unsigned)XCAT_VERSION_NUMBER ? "" : "  ** header/library mismatch **");
    printf("cpu model        %s\n", r->cpu_model);
    print_probe_text("default context", &r->default_ctx);
    printf("cpu isa levels  ");
    for (int level = 0; level < NUM_ISA; ++level)
        printf(" %s=%s", xcat_isa_name((xcat_isa)level),
               isa_usable(&r->isa[level], (xcat_isa)level) ? "yes" : "no");
    printf("\n");
    print_probe_text("opencl context", &r->opencl);
    printf("devices\n");
    printf("  %-7s %-3s %-5s %4s %10s %10s %10s %6s %-4s %-4s %-4s %s\n", "backend", "idx",
           "type", "cu", "global", "local", "max-alloc", "max-wg", "fp16", "sg", "ptx", "name");
    print_devices_text(&r->cpu);
    print_devices_text(&r->ocl);
}

/* ---- JSON ----------------------------------------------------------------------------- */

static void print_probe_json(const probe *p)
{
    printf("{\"ok\": %s, \"status\": ", p->status == XCAT_OK ? "true" : "false");
    tool_json_string(stdout, xcat_status_string(p->status));
    printf(", \"code\": %d", (int)p->status);
    if (p->status != XCAT_OK) {
        printf(", \"error\": ");
        tool_json_string(stdout, p->error);
        printf("}");
        return;
    }
    printf(", \"backend\": ");
    tool_json_string(stdout, p->info.backend_name);
    printf(", \"device\": ");
    tool_json_string(stdout, p->info.device_name);
    if (p->info.backend == XCAT_BACKEND_CPU) {
        printf(", \"isa\": ");
        tool_json_string(stdout, xcat_isa_name(p->info.isa));
        printf(", \"threads\": %d", (int)p->info.num_threads);
    }
    printf("}");
}

static const char *json_bool(int32_t v)
{
    return v ? "true" : "false";
}

static void print_device_json(xcat_backend_kind backend, int index, const device *d)
{
    const xcat_device_info *i = &d->info;
    printf("{\"backend\": \"%s\", \"index\": %d, \"ok\": %s", backend_name(backend), index,
           json_bool(d->status == XCAT_OK));
    if (d->status != XCAT_OK) {
        printf(", \"status\": ");
        tool_json_string(stdout, xcat_status_string(d->status));
        printf(", \"code\": %d}", (int)d->status);
        return;
    }
    printf(", \"name\": ");
    tool_json_string(stdout, i->name);
    printf(", \"vendor\": ");
    tool_json_string(stdout, i->vendor);
    printf(", \"platform\": ");
    tool_json_string(stdout, i->platform);
    printf(", \"driver_version\": ");
    tool_json_string(stdout, i->driver_version);
    printf(", \"opencl_c_version\": ");
    tool_json_string(stdout, i->opencl_c_version);
    printf(", \"type\": \"%s\", \"is_gpu\": %s, \"is_cpu\": %s", device_type(i),
           json_bool(i->is_gpu), json_bool(i->is_cpu));
    printf(", \"compute_units\": %d, \"global_mem_bytes\": %" PRId64
           ", \"local_mem_bytes\": %" PRId64 ", \"max_alloc_bytes\": %" PRId64
           ", \"max_work_group_size\": %" PRId64,
           (int)i->compute_units, i->global_mem_bytes, i->local_mem_bytes, i->max_alloc_bytes,
           i->max_work_group_size);
    printf(", \"fp16\": %s, \"subgroups\": %s, \"inline_ptx\": %s", json_bool(i->has_fp16),
           json_bool(i->has_subgroups), json_bool(i->inline_ptx));
    if (backend == XCAT_BACKEND_CPU) {
        printf(", \"isa\": ");
        tool_json_string(stdout, xcat_isa_name(i->isa));
    }
    printf("}");
}

static void print_json(const report *r)
{
    printf("{\"version\": {\"library\": ");
    tool_json_string(stdout, xcat_version_string());
    printf(", \"library_number\": %u, \"header\": \"%d.%d.%d\", \"header_number\": %d},\n",
           xcat_version_number(), XCAT_VERSION_MAJOR, XCAT_VERSION_MINOR, XCAT_VERSION_PATCH,
           XCAT_VERSION_NUMBER);
    printf(" \"cpu_model\": ");
    tool_json_string(stdout, r->cpu_model);
    printf(",\n \"default_context\": ");
    print_probe_json(&r->default_ctx);
    printf(",\n \"isa\": {");
    for (int level = 0; level < NUM_ISA; ++level)
        printf("%s\"%s\": %s", level ? ", " : "", xcat_isa_name((xcat_isa)level),
               isa_usable(&r->isa[level], (xcat_isa)level) ? "true" : "false");
    printf("},\n \"opencl\": ");
    print_probe_json(&r->opencl);
    const backend_devices *lists[2] = {&r->cpu, &r->ocl};
    printf(",\n \"backends\": {");
    for (int b = 0; b < 2; ++b) {
        printf("%s\"%s\": {\"status\": ", b ? ", " : "", backend_name(lists[b]->backend));
        tool_json_string(stdout, xcat_status_string(lists[b]->count_status));
        printf(", \"code\": %d, \"device_count\": %d}", (int)lists[b]->count_status,
               lists[b]->count);
    }
    printf("},\n \"devices\": [");
    int first = 1;
    for (int b = 0; b < 2; ++b)
        for (int k = 0; k < lists[b]->count; ++k) {
            printf("%s\n  ", first ? "" : ",");
            first = 0;
            print_device_json(lists[b]->backend, k, &lists[b]->devices[k]);
        }
    printf("]}\n");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: xcat-info [--json]\n"
               "Print the xcat version, the default context, the usable CPU ISA levels, the\n"
               "OpenCL backend's status and every device of every backend (the index is what\n"
               "XCAT_DEVICE accepts). Honours XCAT_BACKEND, XCAT_DEVICE, XCAT_NUM_THREADS and\n"
               "XCAT_ISA_MAX for the default context.\n");
}

int main(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "xcat-info: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    static report r;
    collect(&r);
    if (json)
        print_json(&r);
    else
        print_text(&r);
    return r.isa[XCAT_ISA_SCALAR].status == XCAT_OK ? 0 : 1;
}
