/* bench_suite.c — `xcat-bench suite`: the versioned vendor-comparison suite, and
 * `xcat-bench report`: its JSON lines from any number of machines as one Markdown comparison.
 *
 *     xcat-bench suite [--size small|medium|large] [--repeats R] [--only TARGET-PREFIX]
 *                      [--json FILE] [--md FILE]        (targets: cpu:<isa>, opencl:<index>)
 *     xcat-bench report FILE.jsonl [FILE.jsonl ...]            (Markdown on stdout)
 *
 * Suite "xcat-suite/1": full CE at a recommender shape and at an LLM-head shape, sampled CE and
 * gBCE with uniform negatives drawn in the kernels, and fused top-K (K = 100), each at one of
 * three sizes, run on every target present: each CPU ISA level of the native backend and each
 * OpenCL device (PoCL included). Per case: warm-up + R repeats, the median, effective TFLOP/s
 * (CE 8·N·C·d, sampled 8·N·(K+1)·d, top-K 2·M·C·d), the plan's workspace, and — once per run on
 * the host — the ceilings: OpenBLAS sgemm GFLOP/s on the case's main product and memcpy GB/s.
 * The shapes are fixed per version so that reports from different machines line up. */
#include <cblas.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "xcat.h"

#define SUITE_VERSION "xcat-suite/1"
#define MAX_TARGETS 16
#define MAX_RECORDS 512

typedef enum { CASE_CE, CASE_SAMPLED, CASE_GBCE, CASE_TOPK } case_kind;

typedef struct suite_case {
    const char *name;
    case_kind kind;
    int64_t n, c, d, k; /* rows (queries), items, dim, negatives / top-K */
} suite_case;

/* small: minutes on a 2-core CPU; medium: a workstation; large: the issues' GPU shapes */
static const suite_case SMALL[] = {
    {"ce-rec", CASE_CE, 2048, 100000, 64, 0},
    {"ce-llm", CASE_CE, 512, 32000, 512, 0},
    {"sampled-ce", CASE_SAMPLED, 4096, 1000000, 64, 256},
    {"gbce", CASE_GBCE, 4096, 1000000, 64, 256},
    {"topk", CASE_TOPK, 1024, 1000000, 64, 100},
};
static const suite_case MEDIUM[] = {
    {"ce-rec", CASE_CE, 8192, 1000000, 128, 0},
    {"ce-llm", CASE_CE, 2048, 128000, 1024, 0},
    {"sampled-ce", CASE_SAMPLED, 16384, 1000000, 128, 1024},
    {"gbce", CASE_GBCE, 16384, 1000000, 128, 1024},
    {"topk", CASE_TOPK, 4096, 1000000, 128, 100},
};
static const suite_case LARGE[] = {
    {"ce-rec", CASE_CE, 32768, 1000000, 256, 0},
    {"ce-llm", CASE_CE, 8192, 256000, 2304, 0},
    {"sampled-ce", CASE_SAMPLED, 32768, 1000000, 256, 1511},
    {"gbce", CASE_GBCE, 32768, 1000000, 256, 1511},
    {"topk", CASE_TOPK, 4096, 1000000, 128, 1000},
};

typedef struct target {
    char name[32];       /* "cpu:avx2", "opencl:0" */
    xcat_backend_kind backend;
    int isa;             /* CPU: xcat_isa cap */
    int device;          /* OpenCL index */
} target;

typedef struct record {
    char size[16], cas[32], shape[64], target[32], device[256];
    double ms, tflops, workspace_mib;
} record;

static double flops_of(const suite_case *c)
{
    switch (c->kind) {
    case CASE_CE: return 8.0 * c->n * c->c * c->d;
    case CASE_TOPK: return 2.0 * c->n * c->c * c->d;
    default: return 8.0 * c->n * (c->k + 1) * c->d;
    }
}

static void shape_of(const suite_case *c, char *buf, size_t n)
{
    if (c->kind == CASE_TOPK)
        snprintf(buf, n, "M=%lld C=%lld d=%lld K=%lld", (long long)c->n, (long long)c->c,
                 (long long)c->d, (long long)c->k);
    else if (c->kind == CASE_CE)
        snprintf(buf, n, "N=%lld C=%lld d=%lld", (long long)c->n, (long long)c->c,
                 (long long)c->d);
    else
        snprintf(buf, n, "N=%lld C=%lld d=%lld K=%lld", (long long)c->n, (long long)c->c,
                 (long long)c->d, (long long)c->k);
}

/* Every target, or those whose name starts with `only` ("cpu", "opencl", "opencl:1", ...). */
static int list_targets(const char *only, target *t)
{
    int n = 0;
    if (!only || !strncmp("cpu", only, strlen(only) < 3 ? strlen(only) : 3)) {
        xcat_device_info di;
        xcat_device_info_init(&di);
        int best = XCAT_ISA_SCALAR;
        if (xcat_device_get_info(XCAT_BACKEND_CPU, 0, &di) == XCAT_OK) best = di.isa;
        for (int isa = XCAT_ISA_SCALAR; isa <= best && n < MAX_TARGETS; ++isa) {
            t[n] = (target){.backend = XCAT_BACKEND_CPU, .isa = isa};
            snprintf(t[n].name, sizeof t[n].name, "cpu:%s", xcat_isa_name((xcat_isa)isa));
            ++n;
        }
    }
    if (!only || !strncmp("opencl", only, strlen(only) < 6 ? strlen(only) : 6)) {
        int32_t count = 0;
        if (xcat_device_count(XCAT_BACKEND_OPENCL, &count) != XCAT_OK) count = 0;
        for (int i = 0; i < count && n < MAX_TARGETS; ++i) {
            t[n] = (target){.backend = XCAT_BACKEND_OPENCL, .device = i};
            snprintf(t[n].name, sizeof t[n].name, "opencl:%d", i);
            ++n;
        }
    }
    int kept = 0; /* the prefix filter, on the names */
    for (int i = 0; i < n; ++i)
        if (!only || !strncmp(t[i].name, only, strlen(only))) t[kept++] = t[i];
    return kept;
}

static xcat_context *open_target(const target *t, char *device, size_t dn)
{
    xcat_context_options o;
    xcat_context_options_init(&o);
    o.backend = t->backend;
    char dev[16];
    if (t->backend == XCAT_BACKEND_CPU) {
        o.isa_max = (xcat_isa)t->isa;
    } else {
        snprintf(dev, sizeof dev, "%d", t->device);
        o.device = dev;
    }
    xcat_context *ctx = NULL;
    if (xcat_context_create(&o, &ctx) != XCAT_OK) return NULL;
    xcat_context_info info;
    xcat_context_info_init(&info);
    xcat_context_get_info(ctx, &info);
    snprintf(device, dn, "%s", info.device_name);
    return ctx;
}

/* One case on one context: median ms of warm-up + R repeats (−1 on failure). */
static double run_case(xcat_context *ctx, const suite_case *c, int repeats, double *ws_mib)
{
    const int64_t rows = c->n, d = c->d;
    float *H = alloc_bytes((size_t)(rows * d) * 4), *E = alloc_bytes((size_t)(c->c * d) * 4);
    int32_t *y = alloc_bytes((size_t)rows * 4);
    fill_uniform(H, rows * d, 1.0f, 1);
    fill_uniform(E, c->c * d, 1.0f / (float)d, 2);
    uint64_t st = 3;
    for (int64_t i = 0; i < rows; ++i) y[i] = (int32_t)(splitmix64(&st) % (uint64_t)c->c);
    xcat_tensor *tH = NULL, *tE = NULL, *ty = NULL, *tL = NULL, *dH = NULL, *dE = NULL,
                *ti = NULL;
    double t[64], med = -1.0;
    xcat_loss_plan *p = NULL;
    bool ok = !xcat_tensor_create(ctx, XCAT_DTYPE_F32, rows, d, &tH) &&
              !xcat_tensor_create(ctx, XCAT_DTYPE_F32, c->c, d, &tE) &&
              !xcat_tensor_write(tH, H, 0) && !xcat_tensor_write(tE, E, 0);
    if (ok && c->kind == CASE_TOPK) {
        ok = !xcat_tensor_create(ctx, XCAT_DTYPE_I32, rows, c->k, &ti);
        xcat_topk_args a;
        xcat_topk_args_init(&a);
        a.queries = tH;
        a.items = tE;
        for (int r = 0; ok && r <= repeats; ++r) {
            const double t0 = now_ms();
            ok = !xcat_topk(ctx, &a, c->k, ti, NULL) && !xcat_context_synchronize(ctx);
            if (r) t[r - 1] = now_ms() - t0;
        }
        *ws_mib = 0.0;
    } else if (ok) {
        xcat_loss_desc desc;
        xcat_loss_desc_init(&desc, c->kind == CASE_CE        ? XCAT_LOSS_CE
                                   : c->kind == CASE_GBCE ? XCAT_LOSS_GBCE
                                                          : XCAT_LOSS_SAMPLED_CE);
        if (c->kind != CASE_CE) desc.num_negatives = c->k;
        if (c->kind == CASE_GBCE) desc.gbce_t = 0.75f;
        ok = !xcat_tensor_create(ctx, XCAT_DTYPE_I32, rows, 1, &ty) &&
             !xcat_tensor_write(ty, y, 0) &&
             !xcat_tensor_create(ctx, XCAT_DTYPE_F32, 1, 1, &tL) &&
             !xcat_tensor_create(ctx, XCAT_DTYPE_F32, rows, d, &dH) &&
             !xcat_tensor_create(ctx, XCAT_DTYPE_F32, c->c, d, &dE) &&
             !xcat_loss_plan_create(ctx, &desc, rows, c->c, d, &p);
        size_t ws = 0;
        if (ok) xcat_loss_plan_workspace_size(p, &ws);
        *ws_mib = (double)ws / 1048576.0;
        xcat_loss_args a;
        xcat_loss_args_init(&a);
        a.hidden = tH;
        a.items = tE;
        a.targets = ty;
        for (int r = 0; ok && r <= repeats; ++r) {
            a.step = (uint64_t)r;
            const double t0 = now_ms();
            ok = !xcat_loss_forward_backward(p, &a, tL, NULL, NULL, dH, dE, NULL) &&
                 !xcat_context_synchronize(ctx);
            if (r) t[r - 1] = now_ms() - t0;
        }
    }
    if (ok) med = median_of(t, repeats);
    else fprintf(stderr, "xcat-bench suite: %s: %s\n", c->name, xcat_context_last_error(ctx));
    xcat_loss_plan_free(p);
    xcat_tensor *all[] = {tH, tE, ty, tL, dH, dE, ti};
    for (size_t i = 0; i < sizeof all / sizeof *all; ++i) xcat_tensor_free(all[i]);
    free(H), free(E), free(y);
    return med;
}

/* Host ceilings, once per run: sgemm GFLOP/s on a 2048×4096×d product per distinct d, memcpy. */
static double sgemm_gflops(int64_t d)
{
    const int64_t m = 2048, n = 4096;
    float *a = alloc_bytes((size_t)(m * d) * 4), *b = alloc_bytes((size_t)(n * d) * 4),
          *c = alloc_bytes((size_t)(m * n) * 4);
    fill_uniform(a, m * d, 1.0f, 7);
    fill_uniform(b, n * d, 1.0f, 8);
    double t[5];
    for (int r = 0; r < 5; ++r) {
        const double t0 = now_ms();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)d, 1.0f, a,
                    (int)d, b, (int)d, 0.0f, c, (int)n);
        t[r] = now_ms() - t0;
    }
    free(a), free(b), free(c);
    return 2.0 * m * n * d / (median_of(t, 5) * 1e6);
}

static double memcpy_gbs(void)
{
    const size_t bytes = (size_t)256 << 20;
    char *a = alloc_bytes(bytes), *b = alloc_bytes(bytes);
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double t[5];
    for (int r = 0; r < 5; ++r) {
        const double t0 = now_ms();
        memcpy(b, a, bytes);
        t[r] = now_ms() - t0;
    }
    free(a), free(b);
    return 2.0 * (double)bytes / (median_of(t, 5) * 1e6); /* read + write */
}

static void markdown(FILE *f, const record *r, int nr)
{
    /* columns: the distinct (target @ device) in order of appearance; rows: (size, case) */
    char cols[MAX_TARGETS * 4][320];
    int nc = 0;
    for (int i = 0; i < nr; ++i) {
        char key[320];
        snprintf(key, sizeof key, "%s (%s)", r[i].target, r[i].device);
        int seen = 0;
        for (int j = 0; j < nc; ++j) seen |= !strcmp(cols[j], key);
        if (!seen && nc < MAX_TARGETS * 4) snprintf(cols[nc++], sizeof cols[0], "%s", key);
    }
    fprintf(f, "| size | case | shape |");
    for (int j = 0; j < nc; ++j) fprintf(f, " %s |", cols[j]);
    fprintf(f, "\n|---|---|---|");
    for (int j = 0; j < nc; ++j) fprintf(f, "---:|");
    fprintf(f, "\n");
    for (int i = 0; i < nr; ++i) {
        int first = 1; /* one table row per (size, case, shape), at its first record */
        for (int j = 0; j < i; ++j)
            first &= !(!strcmp(r[j].size, r[i].size) && !strcmp(r[j].cas, r[i].cas) &&
                       !strcmp(r[j].shape, r[i].shape));
        if (!first) continue;
        fprintf(f, "| %s | %s | %s |", r[i].size, r[i].cas, r[i].shape);
        for (int j = 0; j < nc; ++j) {
            const record *hit = NULL;
            for (int q = 0; q < nr && !hit; ++q) {
                char key[320];
                snprintf(key, sizeof key, "%s (%s)", r[q].target, r[q].device);
                if (!strcmp(key, cols[j]) && !strcmp(r[q].size, r[i].size) &&
                    !strcmp(r[q].cas, r[i].cas) && !strcmp(r[q].shape, r[i].shape))
                    hit = &r[q];
            }
            if (hit && hit->ms > 0)
                fprintf(f, " %.1f ms, %.1f GFLOP/s |", hit->ms, 1000.0 * hit->tflops);
            else fprintf(f, " — |");
        }
        fprintf(f, "\n");
    }
}

static void json_line(FILE *f, const record *r, const char *date)
{
    fprintf(f, "{\"suite\": \"%s\", \"date\": \"%s\", \"size\": \"%s\", \"case\": \"%s\", "
            "\"shape\": \"%s\", \"target\": \"%s\", \"device\": \"%s\", \"ms\": %.3f, "
            "\"tflops\": %.4f, \"workspace_mib\": %.1f}\n", SUITE_VERSION, date, r->size, r->cas,
            r->shape, r->target, r->device, r->ms, r->tflops, r->workspace_mib);
}

int xcat_bench_suite_main(int argc, char **argv)
{
    const char *size = "small", *only = NULL, *json = NULL, *md = NULL;
    int repeats = 3;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        ++i;
        if (!strcmp(a, "--size")) size = v;
        else if (!strcmp(a, "--repeats")) repeats = atoi(v);
        else if (!strcmp(a, "--only")) only = v;
        else if (!strcmp(a, "--json")) json = v;
        else if (!strcmp(a, "--md")) md = v;
        else goto usage;
    }
    const suite_case *cases = !strcmp(size, "small")    ? SMALL
                              : !strcmp(size, "medium") ? MEDIUM
                              : !strcmp(size, "large")  ? LARGE
                                                        : NULL;
    if (!cases || repeats < 1 || repeats > 60) goto usage;
    const int ncase = 5;
    target tg[MAX_TARGETS];
    const int nt = list_targets(only, tg);
    char date[32];
    const time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    printf("# xcat-bench suite %s, size %s, %d targets, median of %d, %s\n", SUITE_VERSION, size,
           nt, repeats, date);
    printf("# host ceilings: memcpy %.1f GB/s;", memcpy_gbs());
    int64_t ds[8];
    int nd = 0;
    for (int i = 0; i < ncase; ++i) {
        int seen = 0;
        for (int j = 0; j < nd; ++j) seen |= ds[j] == cases[i].d;
        if (!seen) ds[nd++] = cases[i].d;
    }
    for (int j = 0; j < nd; ++j)
        printf(" sgemm d=%lld %.1f GFLOP/s;", (long long)ds[j], sgemm_gflops(ds[j]));
    printf("\n%-12s %-12s %-34s %10s %9s %10s  %s\n", "target", "case", "shape", "ms", "TFLOP/s",
           "workspace", "device");
    static record rec[MAX_RECORDS];
    int nr = 0;
    FILE *jf = json ? fopen(json, "w") : NULL;
    for (int ti = 0; ti < nt; ++ti) {
        char device[256] = "";
        xcat_context *ctx = open_target(&tg[ti], device, sizeof device);
        if (!ctx) {
            fprintf(stderr, "xcat-bench suite: %s: no context\n", tg[ti].name);
            continue;
        }
        for (int ci = 0; ci < ncase && nr < MAX_RECORDS; ++ci) {
            progress(tg[ti].name, cases[ci].name, ci + 1, ncase);
            record *r = &rec[nr++];
            memset(r, 0, sizeof *r);
            snprintf(r->size, sizeof r->size, "%.15s", size);
            snprintf(r->cas, sizeof r->cas, "%.31s", cases[ci].name);
            shape_of(&cases[ci], r->shape, sizeof r->shape);
            snprintf(r->target, sizeof r->target, "%.31s", tg[ti].name);
            snprintf(r->device, sizeof r->device, "%s", device);
            r->ms = run_case(ctx, &cases[ci], repeats, &r->workspace_mib);
            r->tflops = r->ms > 0 ? flops_of(&cases[ci]) / (r->ms * 1e9) : 0.0;
            progress_done();
            printf("%-12s %-12s %-34s %10.1f %9.3f %6.1f MiB  %s\n", r->target, r->cas, r->shape,
                   r->ms, r->tflops, r->workspace_mib, r->device);
            fflush(stdout);
            if (jf) json_line(jf, r, date);
        }
        xcat_context_free(ctx);
    }
    if (jf) fclose(jf);
    if (md) {
        FILE *f = fopen(md, "w");
        if (!f) {
            fprintf(stderr, "xcat-bench suite: cannot write %s\n", md);
            return 1;
        }
        fprintf(f, "# xcat-bench suite %s, size %s (%s)\n\n", SUITE_VERSION, size, date);
        markdown(f, rec, nr);
        fclose(f);
    }
    return 0;
usage:
    fprintf(stderr, "usage: xcat-bench suite [--size small|medium|large] [--repeats R] "
                    "[--only TARGET-PREFIX: cpu, cpu:avx2, opencl, opencl:1, ...] [--json FILE] "
                    "[--md FILE]\n");
    return 2;
}

/* A string field of one of our own JSON lines. */
static void field(const char *line, const char *key, char *out, size_t n)
{
    char pat[48];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(line, pat);
    out[0] = 0;
    if (!p) return;
    p += strlen(pat);
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < n) out[i++] = *p++;
    out[i] = 0;
}

static double number(const char *line, const char *key)
{
    char pat[48];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    return p ? atof(p + strlen(pat)) : 0.0;
}

int xcat_bench_report_main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: xcat-bench report FILE.jsonl [FILE.jsonl ...]\n");
        return 2;
    }
    static record rec[MAX_RECORDS];
    int nr = 0;
    char line[1024];
    for (int i = 1; i < argc; ++i) {
        FILE *f = fopen(argv[i], "r");
        if (!f) {
            fprintf(stderr, "xcat-bench report: cannot read %s\n", argv[i]);
            return 1;
        }
        while (nr < MAX_RECORDS && fgets(line, sizeof line, f)) {
            char suite[32];
            field(line, "suite", suite, sizeof suite);
            if (strcmp(suite, SUITE_VERSION)) continue; /* other versions do not line up */
            record *r = &rec[nr++];
            field(line, "size", r->size, sizeof r->size);
            field(line, "case", r->cas, sizeof r->cas);
            field(line, "shape", r->shape, sizeof r->shape);
            field(line, "target", r->target, sizeof r->target);
            field(line, "device", r->device, sizeof r->device);
            r->ms = number(line, "ms");
            r->tflops = number(line, "tflops");
            r->workspace_mib = number(line, "workspace_mib");
        }
        fclose(f);
    }
    printf("# xcat-bench suite %s — %d results from %d file(s)\n\n", SUITE_VERSION, nr, argc - 1);
    markdown(stdout, rec, nr);
    return 0;
}
