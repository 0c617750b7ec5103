/*
 * xcat-info — what the linked xcat library sees on this machine: its version, the default
 * context (backend, device, ISA level, threads), which CPU ISA levels are usable, and the
 * OpenCL backend's status and devices.
 *
 *     xcat-info [--json]
 *
 * Exit status: 0 when the CPU backend works (an unavailable OpenCL backend, or a default
 * context that fails because XCAT_BACKEND asks for it, is reported, not an error); 1 when not
 * even a scalar CPU context can be created; 2 on a usage error.
 */
#include <stdio.h>
#include <string.h>

#include "xcat.h"

void tool_json_string(FILE *f, const char *s);
void tool_cpu_model(char *buf, size_t size);

enum { MAX_OPENCL_DEVICES = 16, NUM_ISA = 3 };

/* The outcome of creating one context and asking it for its info. */
typedef struct probe {
    xcat_status status;
    xcat_context_info info;
    char error[1024];
} probe;

typedef struct report {
    char cpu_model[256];
    probe default_ctx;
    probe isa[NUM_ISA];
    probe opencl;
    probe opencl_devices[MAX_OPENCL_DEVICES];
    int num_opencl_devices;
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

/* Probe the OpenCL backend (honouring XCAT_DEVICE), then list its devices by index. */
static void probe_opencl(report *r)
{
    xcat_context_options o;
    xcat_context_options_init(&o);
    o.backend = XCAT_BACKEND_OPENCL;
    probe_context(&o, &r->opencl);
    r->num_opencl_devices = 0;
    if (r->opencl.status != XCAT_OK)
        return;
    for (int i = 0; i < MAX_OPENCL_DEVICES; ++i) {
        char index[16];
        snprintf(index, sizeof index, "%d", i);
        xcat_context_options_init(&o);
        o.backend = XCAT_BACKEND_OPENCL;
        o.flags = XCAT_CONTEXT_IGNORE_ENV;
        o.device = index;
        probe *d = &r->opencl_devices[r->num_opencl_devices];
        probe_context(&o, d);
        if (d->status != XCAT_OK)
            break;
        r->num_opencl_devices++;
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
    probe_opencl(r);
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
    print_probe_text("opencl", &r->opencl);
    for (int i = 0; i < r->num_opencl_devices; ++i) {
        char label[32];
        snprintf(label, sizeof label, "  device %d", i);
        print_probe_text(label, &r->opencl_devices[i]);
    }
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
    printf(",\n \"opencl_devices\": [");
    for (int i = 0; i < r->num_opencl_devices; ++i) {
        if (i)
            fputs(", ", stdout);
        print_probe_json(&r->opencl_devices[i]);
    }
    printf("]}\n");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: xcat-info [--json]\n"
               "Print the xcat version, the default context, the usable CPU ISA levels and\n"
               "the OpenCL backend's status. Honours XCAT_BACKEND, XCAT_DEVICE,\n"
               "XCAT_NUM_THREADS and XCAT_ISA_MAX for the default context.\n");
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
