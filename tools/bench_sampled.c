/* bench_sampled.c — `xcat-bench sampled`: the sampled kinds forward and forward+backward, with
 * the OpenBLAS ceiling measured in the same process and the memory a materialising baseline
 * would need.
 *
 * Effective flops (DESIGN.md): forward 2·N·(K+1)·d; forward+backward 8·N·(K+1)·d (the backward
 * recomputes the logits, then dH and dE). The ceiling is OpenBLAS sgemm's rate on the same
 * (N×d)·(d×(K+1)) product, its own threads. The gather baseline (PyTorch's `E[neg]` + bmm, as in
 * the CCE⁻ paper's reference) materialises N×(K+1)×d floats: reported as bytes, run only where it
 * fits in half the memory (it never does at the shapes). */
#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "xcat.h"

typedef struct sopts {
    int64_t n, c, k[6], d[4];
    int nk, nd, repeats, naive;
    const char *backend, *kind, *sampler, *json;
} sopts;

static int parse(int argc, char **argv, sopts *o)
{
    *o = (sopts){.n = 16384, .c = 1000000, .k = {128, 1024, 4096}, .nk = 3, .d = {64, 256},
                 .nd = 2, .repeats = 3, .backend = "cpu", .kind = "sampled-ce",
                 .sampler = "uniform"};
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--naive")) { /* also time the naive baseline where it fits */
            o->naive = 1;
            continue;
        }
        if (!strcmp(a, "--quick")) {
            o->n = 2048; o->c = 100000; o->k[0] = 128; o->nk = 1; o->d[0] = 64; o->nd = 1;
            o->repeats = 2;
            continue;
        }
        if (!v) { fprintf(stderr, "xcat-bench sampled: %s needs a value\n", a); return -1; }
        ++i;
        if (!strcmp(a, "--n")) o->n = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--c")) o->c = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--k")) o->nk = parse_int_list(v, o->k, 6);
        else if (!strcmp(a, "--d")) o->nd = parse_int_list(v, o->d, 4);
        else if (!strcmp(a, "--repeats")) o->repeats = atoi(v);
        else if (!strcmp(a, "--backend")) o->backend = v;
        else if (!strcmp(a, "--kind")) o->kind = v;
        else if (!strcmp(a, "--sampler")) o->sampler = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else {
            fprintf(stderr, "usage: xcat-bench sampled [--n N] [--c C] [--k K,..] [--d d,..] "
                    "[--kind sampled-ce|bce|gbce|inbatch] [--sampler uniform|shared|popularity] "
                    "[--repeats R] [--backend cpu|opencl|auto] [--json PATH] [--quick] "
                    "[--naive]\n"
                    "  shared: K items given once for the whole batch (GIVEN_SHARED); inbatch: "
                    "the other rows' positives, K ignored\n");
            return -1;
        }
    }
    return o->n < 1 || o->c < 2 || o->nk < 1 || o->nd < 1 || o->repeats < 1 ? -1 : 0;
}

/* The naive baseline (what a PyTorch CE⁻ does): draw an N×K index tensor, gather the negatives
 * into an N×K×d tensor, materialise the N×(K+1) logits, softmax; backward: dH by a
 * matrix-vector product per row, dE by index_add of the K×d per-row gradients. Uniform draws,
 * accidental hits not masked, 2 threads over rows (dE serial, like a deterministic index_add).
 * Returns forward ms in *fwd and forward+backward ms; −1 when it does not fit in memory. */
static double naive_sampled_ms(const float *H, const float *E, const int32_t *y, int64_t n,
                               int64_t c, int64_t d, int64_t k, float *dH, float *dE,
                               double *fwd)
{
    const int64_t k1 = k + 1;
    int32_t *idx = malloc((size_t)(n * k) * 4);
    float *G = malloc((size_t)(n * k) * (size_t)d * 4), *L = malloc((size_t)(n * k1) * 4);
    if (!idx || !G || !L) {
        free(idx), free(G), free(L);
        return -1.0;
    }
    const double t0 = now_ms();
    uint64_t st = 17;
    for (int64_t q = 0; q < n * k; ++q) idx[q] = (int32_t)(splitmix64(&st) % (uint64_t)c);
    double loss = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : loss)
    for (int64_t i = 0; i < n; ++i) {
        float *g = G + i * k * d, *l = L + i * k1;
        for (int64_t j = 0; j < k; ++j) memcpy(g + j * d, E + (int64_t)idx[i * k + j] * d, (size_t)d * 4);
        l[0] = cblas_sdot((int)d, H + i * d, 1, E + (int64_t)y[i] * d, 1);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)k, (int)d, 1.0f, g, (int)d, H + i * d, 1,
                    0.0f, l + 1, 1);
        float m = l[0];
        for (int64_t j = 1; j < k1; ++j) m = l[j] > m ? l[j] : m;
        double sum = 0.0;
        for (int64_t j = 0; j < k1; ++j) sum += exp((double)(l[j] - m));
        const float lse = m + (float)log(sum);
        loss += lse - l[0];
        for (int64_t j = 0; j < k1; ++j) l[j] = expf(l[j] - lse) / (float)n; /* softmax / N */
        l[0] -= 1.0f / (float)n;
    }
    *fwd = now_ms() - t0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const float *l = L + i * k1;
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, (int)d, 1.0f, G + i * k * d, (int)d,
                    l + 1, 1, 0.0f, dH + i * d, 1);
        cblas_saxpy((int)d, l[0], E + (int64_t)y[i] * d, 1, dH + i * d, 1);
    }
    memset(dE, 0, (size_t)(c * d) * 4);
    for (int64_t i = 0; i < n; ++i) { /* index_add of the gathered rows' gradients */
        const float *l = L + i * k1;
        cblas_saxpy((int)d, l[0], H + i * d, 1, dE + (int64_t)y[i] * d, 1);
        for (int64_t j = 0; j < k; ++j)
            cblas_saxpy((int)d, l[j + 1], H + i * d, 1, dE + (int64_t)idx[i * k + j] * d, 1);
    }
    const double t = now_ms() - t0;
    free(idx), free(G), free(L);
    (void)loss;
    return t;
}

static double ceiling_gflops(int64_t n, int64_t k1, int64_t d, int repeats)
{
    float *a = alloc_bytes((size_t)(n * d) * 4), *b = alloc_bytes((size_t)(k1 * d) * 4);
    const int64_t rows = n < 4096 ? n : 4096; /* bounded output: rows × (K+1) */
    float *c = alloc_bytes((size_t)(rows * k1) * 4);
    if (!a || !b || !c) return 0.0;
    fill_uniform(a, n * d, 1.0f, 5);
    fill_uniform(b, k1 * d, 1.0f, 6);
    double best[16];
    for (int r = 0; r < repeats; ++r) {
        const double t0 = now_ms();
        for (int64_t r0 = 0; r0 < n; r0 += rows)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(n - r0 < rows ? n - r0 : rows),
                        (int)k1, (int)d, 1.0f, a + r0 * d, (int)d, b, (int)d, 0.0f, c, (int)k1);
        best[r] = now_ms() - t0;
    }
    free(a), free(b), free(c);
    return 2.0 * n * k1 * d / (median_of(best, repeats) * 1e6);
}

int xcat_bench_sampled_main(int argc, char **argv)
{
    sopts o;
    if (parse(argc, argv, &o)) return 2;
    xcat_loss_kind kind = !strcmp(o.kind, "bce")       ? XCAT_LOSS_BCE
                          : !strcmp(o.kind, "gbce")    ? XCAT_LOSS_GBCE
                          : !strcmp(o.kind, "inbatch") ? XCAT_LOSS_INBATCH
                                                       : XCAT_LOSS_SAMPLED_CE;
    const bool shared = !strcmp(o.sampler, "shared"), inbatch = kind == XCAT_LOSS_INBATCH;
    const bool popular = !strcmp(o.sampler, "popularity"); /* Zipf(1) counts over the items */
    if (inbatch) { /* one run: the candidates are the batch */
        o.k[0] = o.n - 1;
        o.nk = 1;
    }
    xcat_context *ctx = NULL;
    xcat_context_info info;
    if (bench_open_context(o.backend, "xcat-bench sampled", &ctx, &info)) return 1;
    FILE *json = o.json ? fopen(o.json, "w") : NULL;
    printf("# xcat-bench sampled (%s, %s negatives) — %s (%s), N=%lld C=%lld, median of %d\n",
           o.kind, inbatch ? "in-batch" : o.sampler, info.backend_name, info.device_name, (long long)o.n, (long long)o.c,
           o.repeats);
    printf("%5s %6s %10s %12s %10s %11s %9s %12s %12s\n", "d", "K", "fwd ms", "fwd+bwd ms",
           "GFLOP/s", "ceiling", "of ceil", "workspace", "gather-naive");
    int failed = 0;
    for (int di = 0; di < o.nd && !failed; ++di) {
        const int64_t d = o.d[di], n = o.n, c = o.c;
        float *H = alloc_bytes((size_t)(n * d) * 4), *E = alloc_bytes((size_t)(c * d) * 4);
        int32_t *y = alloc_bytes((size_t)n * 4);
        if (!H || !E || !y) { fprintf(stderr, "out of memory\n"); return 1; }
        fill_uniform(H, n * d, 1.0f, 1);
        fill_uniform(E, c * d, 2.0f / sqrtf((float)d), 2);
        uint64_t st = 3;
        for (int64_t i = 0; i < n; ++i) y[i] = (int32_t)(splitmix64(&st) % (uint64_t)c);
        xcat_tensor *tH = NULL, *tE = NULL, *ty = NULL, *tL = NULL, *dH = NULL, *dE = NULL;
        if (xcat_tensor_create(ctx, XCAT_DTYPE_F32, n, d, &tH) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_F32, c, d, &tE) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_I32, n, 1, &ty) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_F32, 1, 1, &tL) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_F32, n, d, &dH) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_F32, c, d, &dE) || xcat_tensor_write(tH, H, 0) ||
            xcat_tensor_write(tE, E, 0) || xcat_tensor_write(ty, y, 0)) {
            fprintf(stderr, "xcat-bench sampled: tensors: %s\n", xcat_context_last_error(ctx));
            return 1;
        }
        for (int ki = 0; ki < o.nk && !failed; ++ki) {
            const int64_t k = o.k[ki];
            xcat_loss_desc desc;
            xcat_loss_desc_init(&desc, kind);
            desc.num_negatives = inbatch ? 0 : k;
            desc.seed = 1;
            if (inbatch) desc.sampler = XCAT_SAMPLER_IN_BATCH;
            xcat_tensor *tneg = NULL;
            if (shared) { /* K distinct-ish random items, the same for every row */
                desc.sampler = XCAT_SAMPLER_GIVEN_SHARED;
                int32_t *neg = alloc_bytes((size_t)k * 4);
                uint64_t sn = 7;
                for (int64_t q = 0; q < k; ++q) neg[q] = (int32_t)(splitmix64(&sn) % (uint64_t)c);
                if (xcat_tensor_create(ctx, XCAT_DTYPE_I32, k, 1, &tneg) ||
                    xcat_tensor_write(tneg, neg, 0)) {
                    fprintf(stderr, "xcat-bench sampled: %s\n", xcat_context_last_error(ctx));
                    free(neg);
                    failed = 1;
                    break;
                }
                free(neg);
            }
            if (popular) desc.sampler = XCAT_SAMPLER_POPULARITY;
            xcat_loss_plan *p = NULL;
            if (xcat_loss_plan_create(ctx, &desc, n, c, d, &p)) {
                fprintf(stderr, "xcat-bench sampled: plan: %s\n", xcat_context_last_error(ctx));
                failed = 1;
                break;
            }
            if (popular) {
                int64_t *cnt = alloc_bytes((size_t)c * 8);
                for (int64_t q = 0; q < c; ++q) cnt[q] = 1 + 1000000 / (q + 1);
                xcat_tensor *tc = NULL;
                if (xcat_tensor_create(ctx, XCAT_DTYPE_I64, c, 1, &tc) ||
                    xcat_tensor_write(tc, cnt, 0) || xcat_loss_plan_set_item_counts(p, tc)) {
                    fprintf(stderr, "xcat-bench sampled: counts: %s\n",
                            xcat_context_last_error(ctx));
                    failed = 1;
                }
                xcat_tensor_free(tc);
                free(cnt);
                if (failed) break;
            }
            size_t ws = 0;
            xcat_loss_plan_workspace_size(p, &ws);
            xcat_loss_args a;
            xcat_loss_args_init(&a);
            a.hidden = tH;
            a.items = tE;
            a.targets = ty;
            a.negatives = tneg;
            double tf[16], tb[16];
            for (int r = 0; r <= o.repeats && !failed; ++r) {
                progress("xcat sampled", r ? "repeat" : "warm-up", r, o.repeats);
                a.step = (uint64_t)r;
                double t0 = now_ms();
                xcat_status s2 = xcat_loss_forward(p, &a, tL, NULL);
                if (!s2) s2 = xcat_context_synchronize(ctx);
                double t1 = now_ms();
                if (!s2) s2 = xcat_loss_backward(p, &a, NULL, dH, dE, NULL);
                if (!s2) s2 = xcat_context_synchronize(ctx);
                double t2 = now_ms();
                if (s2) {
                    fprintf(stderr, "xcat-bench sampled: %s\n", xcat_context_last_error(ctx));
                    failed = 1;
                }
                if (r) tf[r - 1] = t1 - t0, tb[r - 1] = t2 - t0;
            }
            progress_done();
            xcat_loss_plan_free(p);
            xcat_tensor_free(tneg);
            if (failed) break;
            const double f = median_of(tf, o.repeats), fb = median_of(tb, o.repeats);
            const double gf = 8.0 * n * (k + 1) * d / (fb * 1e6);
            progress("sgemm ceiling", "run", 1, 1);
            const double ceil = ceiling_gflops(n, k + 1, d, o.repeats);
            progress_done();
            const double naive_gib = (double)n * (k + 1) * d * 4.0 / (1 << 30);
            printf("%5lld %6lld %10.1f %12.1f %10.1f %11.1f %8.1f%% %9.1f MiB %8.1f GiB\n",
                   (long long)d, (long long)k, f, fb, gf, ceil, 100.0 * gf / ceil,
                   ws / 1048576.0, naive_gib);
            fflush(stdout);
            double nv = 0.0, nvf = 0.0;
            if (o.naive && !inbatch && !shared && info.backend == XCAT_BACKEND_CPU) {
                const double need = (naive_gib + (double)(n + c) * d * 4.0 / (1 << 30)) * (1 << 30);
                const double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
                float *nh = alloc_bytes((size_t)(n * d) * 4), *ne = alloc_bytes((size_t)(c * d) * 4);
                if (need < 0.75 * ram && nh && ne) {
                    progress("naive baseline", "run", 1, 1);
                    nv = naive_sampled_ms(H, E, y, n, c, d, k, nh, ne, &nvf);
                    progress_done();
                }
                if (nv > 0)
                    printf("      naive: fwd %.1f ms, fwd+bwd %.1f ms (xcat %.1f× faster), "
                           "%.1f GiB\n", nvf, nv, nv / fb, naive_gib);
                else
                    printf("      naive: does not fit (needs %.1f GiB, %.1f GiB of RAM)\n",
                           need / (1 << 30), ram / (1 << 30));
                free(nh), free(ne);
                fflush(stdout);
            }
            if (json)
                fprintf(json, "{\"op\": \"sampled\", \"kind\": \"%s\", \"backend\": \"%s\", "
                        "\"device\": \"%s\", \"n\": %lld, \"k\": %lld, \"c\": %lld, \"d\": %lld, "
                        "\"fwd_ms\": %.3f, \"fwd_bwd_ms\": %.3f, \"gflops\": %.2f, "
                        "\"ceiling_gflops\": %.2f, \"workspace_bytes\": %zu, "
                        "\"gather_naive_gib\": %.2f, \"naive_fwd_ms\": %.3f, "
                        "\"naive_fwd_bwd_ms\": %.3f}\n", o.kind, info.backend_name,
                        info.device_name, (long long)n, (long long)k, (long long)c, (long long)d,
                        f, fb, gf, ceil, ws, naive_gib, nvf, nv);
        }
        xcat_tensor *all[] = {tH, tE, ty, tL, dH, dE};
        for (int i = 0; i < 6; ++i) xcat_tensor_free(all[i]);
        free(H), free(E), free(y);
    }
    printf("# peak RSS %.0f MiB\n", peak_rss_mib());
    if (json) fclose(json);
    xcat_context_free(ctx);
    return failed;
}
