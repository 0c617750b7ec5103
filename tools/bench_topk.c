/* bench_topk.c — `xcat-bench topk`: fused top-K against a bare sgemm of the same shape and
 * against materialise-and-select (what RecBole/RePlay/PyTorch `mm`+`topk` do), same process.
 *
 * The sgemm ceiling multiplies U (M×d) by the whole catalog in item chunks into one reused
 * M×chunk buffer with OpenBLAS's own threads: the scoring work alone, no selection. The naive
 * baseline materialises a block of queries × all items and partially sorts each row
 * (quickselect + sort of K). Exclusions: `--excl n` gives every query n random seen items. */
#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "xcat.h"

typedef struct topk_opts {
    int64_t m, c, d[4], k[8], excl[4];
    int nd, nk, nexcl, repeats, no_naive, check_exact;
    const char *backend, *json;
} topk_opts;

static int parse(int argc, char **argv, topk_opts *o)
{
    *o = (topk_opts){.m = 4096, .c = 1000000, .d = {64, 128}, .nd = 2,
                     .k = {10, 100, 1000, 10000}, .nk = 4, .excl = {0, 50}, .nexcl = 2,
                     .repeats = 3, .backend = "cpu"};
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-naive")) { o->no_naive = 1; continue; }
        if (!strcmp(a, "--check-exact")) { o->check_exact = 1; continue; }
        if (!strcmp(a, "--quick")) {
            o->m = 512; o->c = 100000; o->d[0] = 64; o->nd = 1; o->k[0] = 10; o->k[1] = 100;
            o->nk = 2; o->repeats = 2;
            continue;
        }
        if (!v) { fprintf(stderr, "xcat-bench topk: %s needs a value\n", a); return -1; }
        ++i;
        if (!strcmp(a, "--m")) o->m = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--c")) o->c = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--d")) o->nd = parse_int_list(v, o->d, 4);
        else if (!strcmp(a, "--k")) o->nk = parse_int_list(v, o->k, 8);
        else if (!strcmp(a, "--excl")) o->nexcl = parse_int_list(v, o->excl, 4);
        else if (!strcmp(a, "--repeats")) o->repeats = atoi(v);
        else if (!strcmp(a, "--backend")) o->backend = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else {
            fprintf(stderr, "usage: xcat-bench topk [--m M] [--c C] [--d d,..] [--k K,..] "
                    "[--excl n,..] [--repeats R] [--backend cpu|opencl|auto] [--json PATH] "
                    "[--no-naive] [--check-exact] [--quick]\n");
            return -1;
        }
    }
    if (o->m < 1 || o->c < 1 || o->nd < 1 || o->nk < 1 || o->nexcl < 1 || o->repeats < 1)
        return -1;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Bare sgemm of the same shape: U·Eᵀ over item chunks into a reused buffer. */
static double sgemm_ms(const float *U, const float *E, int64_t m, int64_t c, int64_t d, float *buf,
                       int64_t chunk)
{
    const double t0 = now_ms();
    for (int64_t j0 = 0; j0 < c; j0 += chunk) {
        const int64_t nc = c - j0 < chunk ? c - j0 : chunk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nc, (int)d, 1.0f, U,
                    (int)d, E + j0 * d, (int)d, 0.0f, buf, (int)nc);
    }
    return now_ms() - t0;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Materialise rows of scores and select K per row (nth-element by a partial sort of a copy). */
static double naive_ms(const float *U, const float *E, int64_t m, int64_t c, int64_t d, int64_t k,
                       float *rows, int64_t block)
{
    const double t0 = now_ms();
    for (int64_t q0 = 0; q0 < m; q0 += block) {
        const int64_t nq = m - q0 < block ? m - q0 : block;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)c, (int)d, 1.0f,
                    U + q0 * d, (int)d, E, (int)d, 0.0f, rows, (int)c);
        for (int64_t q = 0; q < nq; ++q) {
            float *r = rows + q * c;
            /* threshold by sampling, then sort the survivors: a fair, simple partial sort */
            float thr = -INFINITY;
            if (k < c) {
                float smp[1024];
                for (int i = 0; i < 1024; ++i) smp[i] = r[(int64_t)i * c / 1024];
                qsort(smp, 1024, sizeof *smp, cmp_desc);
                int64_t at = (k * 1024) / c + 1;
                thr = smp[at < 1024 ? at : 1023] - 1.0f;
            }
            int64_t n = 0;
            for (int64_t j = 0; j < c; ++j)
                if (r[j] > thr) r[n++] = r[j];
            qsort(r, (size_t)n, sizeof *r, cmp_desc);
        }
    }
    return now_ms() - t0;
}

/* One top-K call (K = 1) with the scoring-only knob: the device's scoring pass alone. */
static double device_score_ms(xcat_context *ctx, xcat_tensor *tu, xcat_tensor *te, int64_t m)
{
    xcat_tensor *ti = NULL;
    if (xcat_tensor_create(ctx, XCAT_DTYPE_I32, m, 1, &ti)) return -1.0;
    xcat_topk_args a;
    xcat_topk_args_init(&a);
    a.queries = tu;
    a.items = te;
    setenv("XCAT_CL_TOPK_SCORE_ONLY", "1", 1);
    xcat_status st = xcat_topk(ctx, &a, 1, ti, NULL); /* warm-up (program build) */
    const double t0 = now_ms();
    if (!st) st = xcat_topk(ctx, &a, 1, ti, NULL);
    if (!st) st = xcat_context_synchronize(ctx);
    const double t = now_ms() - t0;
    unsetenv("XCAT_CL_TOPK_SCORE_ONLY");
    xcat_tensor_free(ti);
    if (st) fprintf(stderr, "xcat-bench topk: %s\n", xcat_context_last_error(ctx));
    return st ? -1.0 : t;
}

/* --check-exact (OpenCL): the same call on the exact fp32 path (XCAT_CL_TOPK_APPROX=0) must
 * return the same indices and scores as the default path just timed. */
static void check_exact(xcat_context *ctx, const xcat_topk_args *a, int64_t k, xcat_tensor *ti,
                        xcat_tensor *ts, int64_t m)
{
    const size_t n = (size_t)(m * k);
    int32_t *i0 = malloc(n * 4), *i1 = malloc(n * 4);
    float *s0 = malloc(n * 4), *s1 = malloc(n * 4);
    xcat_status st = !i0 || !i1 || !s0 || !s1 ? XCAT_ERROR_OUT_OF_MEMORY : XCAT_OK;
    if (!st) st = xcat_tensor_read(ti, i0, 0);
    if (!st) st = xcat_tensor_read(ts, s0, 0);
    setenv("XCAT_CL_TOPK_APPROX", "0", 1);
    if (!st) st = xcat_topk(ctx, a, k, ti, ts);
    unsetenv("XCAT_CL_TOPK_APPROX");
    if (!st) st = xcat_tensor_read(ti, i1, 0);
    if (!st) st = xcat_tensor_read(ts, s1, 0);
    int64_t rows = 0;
    for (int64_t q = 0; !st && q < m; ++q)
        rows += memcmp(i0 + q * k, i1 + q * k, (size_t)k * 4) != 0 ||
                memcmp(s0 + q * k, s1 + q * k, (size_t)k * 4) != 0;
    if (st) printf("# check-exact: %s\n", xcat_context_last_error(ctx));
    else printf("# check-exact K=%lld: %lld of %lld rows differ from the exact path\n",
                (long long)k, (long long)rows, (long long)m);
    free(i0), free(i1), free(s0), free(s1);
}

int xcat_bench_topk_main(int argc, char **argv)
{
    topk_opts o;
    if (parse(argc, argv, &o)) return 2;
    xcat_context *ctx = NULL;
    xcat_context_info info;
    if (bench_open_context(o.backend, "xcat-bench topk", &ctx, &info)) return 1;
    FILE *json = o.json ? fopen(o.json, "w") : NULL;
    printf("# xcat-bench topk — %s (%s), M=%lld C=%lld, median of %d\n", info.backend_name,
           info.device_name, (long long)o.m, (long long)o.c, o.repeats);
    printf("%5s %6s %5s %10s %10s %9s %10s %9s\n", "d", "K", "excl", "xcat ms",
           info.backend == XCAT_BACKEND_OPENCL ? "score ms" : "sgemm ms",
           "overhead", "naive ms", "vs naive");
    int failed = 0;
    for (int di = 0; di < o.nd && !failed; ++di) {
        const int64_t d = o.d[di], m = o.m, c = o.c;
        float *U = alloc_bytes((size_t)(m * d) * 4), *E = alloc_bytes((size_t)(c * d) * 4);
        const int64_t chunk = 16384 < c ? 16384 : c, nblock = 64 < m ? 64 : m;
        float *buf = alloc_bytes((size_t)(m * chunk) * 4);
        float *rows = o.no_naive ? NULL : alloc_bytes((size_t)(nblock * c) * 4);
        if (!U || !E || !buf || (!o.no_naive && !rows)) {
            fprintf(stderr, "xcat-bench topk: out of memory\n");
            return 1;
        }
        fill_uniform(U, m * d, 1.0f, 11);
        fill_uniform(E, c * d, 1.0f / sqrtf((float)d), 12);
        xcat_tensor *tu = NULL, *te = NULL;
        if (xcat_tensor_create(ctx, XCAT_DTYPE_F32, m, d, &tu) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_F32, c, d, &te) || xcat_tensor_write(tu, U, 0) ||
            xcat_tensor_write(te, E, 0)) {
            fprintf(stderr, "xcat-bench topk: tensors: %s\n", xcat_context_last_error(ctx));
            return 1;
        }
        /* The reference: OpenBLAS sgemm of the same shape on the host for the CPU backend; on
         * a device, xcat's own scoring pass without selection (XCAT_CL_TOPK_SCORE_ONLY). */
        const bool dev = info.backend == XCAT_BACKEND_OPENCL;
        double sg[16];
        if (dev) bench_reset_profile(ctx);
        for (int r = 0; r < o.repeats; ++r) {
            progress(dev ? "scoring pass" : "sgemm ceiling", "repeat", r + 1, o.repeats);
            sg[r] = dev ? device_score_ms(ctx, tu, te, m) : sgemm_ms(U, E, m, c, d, buf, chunk);
            if (sg[r] < 0) return 1;
        }
        progress_done();
        if (dev) {
            char title[128];
            snprintf(title, sizeof title, "d = %lld, the scoring pass alone: %d calls (+ as "
                     "many warm-ups)", (long long)d, o.repeats);
            bench_print_profile(ctx, title);
        }
        const double sgemm = median_of(sg, o.repeats);
        for (int ei = 0; ei < o.nexcl; ++ei) {
            const int64_t ne = o.excl[ei];
            xcat_tensor *toff = NULL, *tex = NULL;
            if (ne > 0) {
                int64_t *off = malloc((size_t)(m + 1) * 8), *ex = malloc((size_t)(m * ne) * 8);
                uint64_t st = 99;
                off[0] = 0;
                for (int64_t q = 0; q < m; ++q) {
                    for (int64_t i = 0; i < ne; ++i)
                        ex[q * ne + i] = (int64_t)(splitmix64(&st) % (uint64_t)c);
                    qsort(ex + q * ne, (size_t)ne, 8, cmp_i64);
                    off[q + 1] = off[q] + ne;
                }
                if (xcat_tensor_create(ctx, XCAT_DTYPE_I64, m + 1, 1, &toff) ||
                    xcat_tensor_create(ctx, XCAT_DTYPE_I64, m * ne, 1, &tex) ||
                    xcat_tensor_write(toff, off, 0) || xcat_tensor_write(tex, ex, 0))
                    failed = 1;
                free(off), free(ex);
            }
            for (int ki = 0; ki < o.nk && !failed; ++ki) {
                const int64_t k = o.k[ki];
                if (k > c) continue;
                xcat_tensor *ti = NULL, *ts = NULL;
                if (xcat_tensor_create(ctx, XCAT_DTYPE_I32, m, k, &ti) ||
                    xcat_tensor_create(ctx, XCAT_DTYPE_F32, m, k, &ts)) {
                    failed = 1;
                    break;
                }
                xcat_topk_args a;
                xcat_topk_args_init(&a);
                a.queries = tu;
                a.items = te;
                a.exclude_offsets = toff;
                a.exclude_items = tex;
                double t[16];
                bench_reset_profile(ctx);
                for (int r = 0; r <= o.repeats && !failed; ++r) { /* r = 0: warm-up */
                    progress("xcat topk", r ? "repeat" : "warm-up", r, o.repeats);
                    const double t0 = now_ms();
                    xcat_status st = xcat_topk(ctx, &a, k, ti, ts);
                    if (!st) st = xcat_context_synchronize(ctx);
                    if (st) {
                        fprintf(stderr, "xcat-bench topk: %s\n", xcat_context_last_error(ctx));
                        failed = 1;
                    }
                    if (r) t[r - 1] = now_ms() - t0;
                }
                progress_done();
                if (failed) break;
                const double xt = median_of(t, o.repeats);
                double nv = 0.0;
                if (!o.no_naive) {
                    progress("naive", "run", 1, 1);
                    nv = naive_ms(U, E, m, c, d, k, rows, nblock);
                    progress_done();
                }
                printf("%5lld %6lld %5lld %10.1f %10.1f %8.1f%% %10.1f %8.2fx\n", (long long)d,
                       (long long)k, (long long)ne, xt, sgemm, 100.0 * (xt / sgemm - 1.0), nv,
                       nv > 0 ? nv / xt : 0.0);
                fflush(stdout);
                char title[96];
                snprintf(title, sizeof title, "d = %lld, K = %lld, %lld exclusions: %d calls",
                         (long long)d, (long long)k, (long long)ne, o.repeats + 1);
                bench_print_profile(ctx, title);
                if (json)
                    fprintf(json, "{\"op\": \"topk\", \"backend\": \"%s\", \"device\": \"%s\", "
                            "\"m\": %lld, \"c\": %lld, \"d\": %lld, \"k\": %lld, \"excl\": %lld, "
                            "\"xcat_ms\": %.3f, \"sgemm_ms\": %.3f, \"naive_ms\": %.3f}\n",
                            info.backend_name, info.device_name, (long long)m, (long long)c,
                            (long long)d, (long long)k, (long long)ne, xt, sgemm, nv);
                if (o.check_exact && dev) check_exact(ctx, &a, k, ti, ts, m);
                xcat_tensor_free(ti);
                xcat_tensor_free(ts);
            }
            xcat_tensor_free(toff);
            xcat_tensor_free(tex);
        }
        xcat_tensor_free(tu);
        xcat_tensor_free(te);
        free(U), free(E), free(buf), free(rows);
    }
    printf("# peak RSS %.0f MiB\n", peak_rss_mib());
    if (json) fclose(json);
    xcat_context_free(ctx);
    return failed;
}
