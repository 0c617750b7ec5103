/* ocl_program.c — OpenCL programs: sources (embedded, or XCAT_CL_DIR while developing), an
 * in-memory cache per context and an on-disk binary cache keyed by a hash of everything that
 * changes the binary (sources, prelude, options, device, driver, platform). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ocl.h"
#include "xcat_cl_sources.h"

/* FNV-1a, 64-bit: a cache key, not a security boundary (a collision would load a wrong binary:
 * with 64 bits and a handful of programs per device that is not a practical concern). */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t fnv1a_str(uint64_t h, const char *s)
{
    return fnv1a(h, s, strlen(s) + 1); /* the NUL separates fields */
}

/* Read a whole file; NULL if missing. The caller frees. */
static char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
            *size = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

/* The text of cl/<name>: from XCAT_CL_DIR when set (development), else embedded. */
static xcat_status load_source(xcat_context *ctx, const char *name, char **text, bool *owned)
{
    const char *dir = getenv("XCAT_CL_DIR"); /* honoured even with IGNORE_ENV: see xcat.h */
    if (dir && *dir) {
        char path[2048];
        size_t n;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        *text = read_file(path, &n);
        if (!*text)
            return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT,
                              "XCAT_CL_DIR: cannot read '%s'", path);
        *owned = true;
        return XCAT_OK;
    }
    for (const xcat_cl_source *s = xcat_cl_sources; s->name; s++)
        if (strcmp(s->name, name) == 0) {
            *text = (char *)s->text;
            *owned = false;
            return XCAT_OK;
        }
    return xcat_error(ctx, XCAT_ERROR_INTERNAL, "kernel source '%s' is not embedded", name);
}

/* Concatenate prelude + sources into one string (freed by the caller). */
static xcat_status assemble(xcat_context *ctx, const char *prelude, const char *const *sources,
                            char **out)
{
    size_t total = strlen(prelude) + 1;
    char *texts[16];
    bool owned[16];
    int n = 0;
    xcat_status st = XCAT_OK;
    for (; sources[n]; n++) {
        if (n == 16) return xcat_error(ctx, XCAT_ERROR_INTERNAL, "too many sources");
        st = load_source(ctx, sources[n], &texts[n], &owned[n]);
        if (st) break;
        total += strlen(texts[n]) + strlen(sources[n]) + 16; /* + the #line directive */
    }
    char *buf = st ? NULL : malloc(total);
    if (!st && !buf) st = xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "program source");
    if (buf) {
        char *p = buf + sprintf(buf, "%s", prelude);
        for (int i = 0; i < n; i++) p += sprintf(p, "\n#line 1 \"%s\"\n%s", sources[i], texts[i]);
    }
    for (int i = 0; i < n; i++)
        if (owned[i]) free(texts[i]);
    *out = buf;
    return st;
}

static uint64_t program_key(xcat_ocl_state *s, const char *text, const char *options)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a_str(h, text);
    h = fnv1a_str(h, options);
    h = fnv1a_str(h, s->info.name);
    h = fnv1a_str(h, s->info.vendor);
    h = fnv1a_str(h, s->info.driver_version);
    h = fnv1a_str(h, s->info.platform);
    return fnv1a_str(h, xcat_version_string());
}

static void cache_path(const xcat_ocl_state *s, uint64_t key, char *path, size_t size)
{
    snprintf(path, size, "%s/%016llx.clbin", s->cache_dir, (unsigned long long)key);
}

static cl_program load_cached(xcat_ocl_state *s, uint64_t key, const char *options)
{
    if (!s->cache_dir[0]) return NULL;
    char path[1200];
    cache_path(s, key, path, sizeof path);
    size_t n = 0;
    unsigned char *bin = (unsigned char *)read_file(path, &n);
    if (!bin) return NULL;
    cl_int err, bin_status;
    const unsigned char *bins[1] = {bin};
    cl_program p = clCreateProgramWithBinary(s->context, 1, &s->device, &n, bins, &bin_status,
                                             &err);
    free(bin);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS) {
        if (p && err == CL_SUCCESS) clReleaseProgram(p);
        return NULL;
    }
    if (clBuildProgram(p, 1, &s->device, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(p); /* stale or foreign binary: rebuild from source */
        return NULL;
    }
    return p;
}

/* Best effort: a cache that cannot be written only costs the next run a compile. */
static void store_cached(xcat_ocl_state *s, uint64_t key, cl_program p)
{
    if (!s->cache_dir[0]) return;
    size_t n = 0;
    if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof n, &n, NULL) != CL_SUCCESS || !n)
        return;
    unsigned char *bin = malloc(n);
    if (!bin) return;
    unsigned char *bins[1] = {bin};
    if (clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS) {
        char path[1200], tmp[1300];
        cache_path(s, key, path, sizeof path);
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (f) {
            bool ok = fwrite(bin, 1, n, f) == n;
            ok = (fclose(f) == 0) && ok;
            /* rename is atomic: concurrent processes never see a half-written binary */
            if (!ok || rename(tmp, path) != 0) remove(tmp);
        }
    }
    free(bin);
}

static xcat_status build_log_error(xcat_context *ctx, cl_program p, cl_int err)
{
    xcat_ocl_state *s = xcat_ocl(ctx);
    char log[XCAT_LAST_ERROR_SIZE - 200];
    size_t n = 0;
    log[0] = '\0';
    if (clGetProgramBuildInfo(p, s->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, &n) !=
        CL_SUCCESS) {
        /* The log is longer than our buffer: fetch it whole and keep its start. */
        size_t need = 0;
        clGetProgramBuildInfo(p, s->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &need);
        char *full = need ? malloc(need + 1) : NULL;
        if (full &&
            clGetProgramBuildInfo(p, s->device, CL_PROGRAM_BUILD_LOG, need, full, NULL) ==
                CL_SUCCESS) {
            snprintf(log, sizeof log, "%s", full);
        }
        free(full);
    }
    log[sizeof log - 1] = '\0';
    if (err == CL_BUILD_PROGRAM_FAILURE)
        return xcat_error(ctx, XCAT_ERROR_BUILD_FAILED, "OpenCL program build failed on %s:\n%s",
                          s->info.name, log);
    return xcat_ocl_error(ctx, err, "clBuildProgram");
}

xcat_status xcat_ocl_program(xcat_context *ctx, const char *prelude, const char *const *sources,
                             const char *options, cl_program *out)
{
    xcat_ocl_state *s = xcat_ocl(ctx);
    char *text = NULL;
    xcat_status st = assemble(ctx, prelude, sources, &text);
    if (st) return st;
    const uint64_t key = program_key(s, text, options);
    for (int i = 0; i < s->nprograms; i++)
        if (s->programs[i].key == key) {
            free(text);
            *out = s->programs[i].program;
            return XCAT_OK;
        }
    if (s->nprograms == XCAT_OCL_MAX_PROGRAMS) {
        free(text);
        return xcat_error(ctx, XCAT_ERROR_OUT_OF_RESOURCES,
                          "more than %d distinct OpenCL programs in one context",
                          XCAT_OCL_MAX_PROGRAMS);
    }
    cl_program p = load_cached(s, key, options);
    if (!p) {
        cl_int err;
        const char *src = text;
        p = clCreateProgramWithSource(s->context, 1, &src, NULL, &err);
        if (err != CL_SUCCESS) {
            free(text);
            return xcat_ocl_error(ctx, err, "clCreateProgramWithSource");
        }
        err = clBuildProgram(p, 1, &s->device, options, NULL, NULL);
        if (err != CL_SUCCESS) {
            st = build_log_error(ctx, p, err);
            clReleaseProgram(p);
            free(text);
            return st;
        }
        store_cached(s, key, p);
    }
    free(text);
    s->programs[s->nprograms++] = (xcat_ocl_program_entry){.key = key, .program = p};
    *out = p;
    return XCAT_OK;
}

xcat_status xcat_ocl_kernel(xcat_context *ctx, cl_program program, const char *name,
                            cl_kernel *out)
{
    cl_int err;
    *out = clCreateKernel(program, name, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return xcat_ocl_error(ctx, err, name);
    }
    return XCAT_OK;
}

/* mkdir -p; false if the directory cannot be made. */
static bool make_dirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int r = mkdir(path, 0755);
        *p = '/';
        if (r != 0 && errno != EEXIST) return false;
    }
    return mkdir(path, 0755) == 0 || errno == EEXIST;
}

void xcat_ocl_cache_dir_init(xcat_context *ctx)
{
    xcat_ocl_state *s = xcat_ocl(ctx);
    s->cache_dir[0] = '\0';
    const char *env = getenv("XCAT_CACHE_DIR");
    char dir[sizeof s->cache_dir];
    if (env && *env) {
        if (strcmp(env, "none") == 0 || strcmp(env, "off") == 0) return;
        snprintf(dir, sizeof dir, "%s", env);
    } else {
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(dir, sizeof dir, "%s/xcat", xdg);
        else if (home && *home)
            snprintf(dir, sizeof dir, "%s/.cache/xcat", home);
        else
            return;
    }
    if (make_dirs(dir)) snprintf(s->cache_dir, sizeof s->cache_dir, "%s", dir);
}
