/* bench_util.c — see bench_util.h. */
#include "bench_util.h"

#include <string.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "xcat.h"

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fill_uniform(float *x, int64_t count, float sd, uint64_t seed)
{
    const double a = sd * sqrt(3.0);
    for (int64_t i = 0; i < count; ++i) {
        double u = (double)(splitmix64(&seed) >> 11) * (1.0 / 9007199254740992.0);
        x[i] = (float)((2.0 * u - 1.0) * a);
    }
}

void *alloc_bytes(size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, rounded ? rounded : 64);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median_of(double *v, int count)
{
    qsort(v, (size_t)count, sizeof *v, cmp_double);
    return count % 2 ? v[count / 2] : 0.5 * (v[count / 2 - 1] + v[count / 2]);
}

void progress(const char *label, const char *phase, int i, int total)
{
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\r\033[K%s: %s %d/%d", label, phase, i, total);
    else
        fprintf(stderr, "%s: %s %d/%d\n", label, phase, i, total);
    fflush(stderr);
}

void progress_done(void)
{
    if (isatty(STDERR_FILENO)) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

double peak_rss_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

int parse_int_list(const char *s, int64_t *v, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        v[n++] = strtoll(s, &end, 10);
        if (end == s) return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

int bench_open_context(const char *backend, const char *tool, xcat_context **ctx,
                       xcat_context_info *info)
{
    xcat_context_options co;
    xcat_context_options_init(&co);
    co.backend = !strcmp(backend, "opencl") ? XCAT_BACKEND_OPENCL
               : !strcmp(backend, "auto") ? XCAT_BACKEND_AUTO : XCAT_BACKEND_CPU;
    char err[512] = "";
    co.error_message = err;
    co.error_message_size = sizeof err;
    *ctx = NULL;
    if (xcat_context_create(&co, ctx)) {
        fprintf(stderr, "%s: context: %s\n", tool, err);
        return -1;
    }
    xcat_context_info_init(info);
    xcat_context_get_info(*ctx, info);
    return 0;
}

void bench_print_profile(xcat_context *ctx, const char *title)
{
    const char *v = getenv("XCAT_PROFILE");
    if (!v || strcmp(v, "1") != 0) return;
    static char text[8192];
    if (xcat_context_profile(ctx, text, sizeof text, 1)) return;
    printf("# profile: %s\n", title);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        printf("%s%s\n", line[0] == '#' ? "" : "#   ", line);
    fflush(stdout);
}

void bench_reset_profile(xcat_context *ctx)
{
    char text[64];
    xcat_context_profile(ctx, text, sizeof text, 1);
}
