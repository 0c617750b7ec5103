/* bench_sce.c — `xcat-bench sce`: SCE (scalable CE with MIPS buckets) forward and
 * forward+backward at recommender shapes, optionally next to xcat's full CE and sampled CE
 * (K = k_y uniform negatives) on the same inputs, with the memory the reference PyTorch
 * implementation would allocate.
 *
 * The reference (AIRI-Institute/Scalable-SASRec, model.py sce_forward) materialises the n_b × N
 * row scores, the n_b × C item scores, the gathered n_b × k_x × d rows and n_b × k_y × d items and
 * the n_b × k_x × k_y logits with their gradient; its estimate below counts those tensors once
 * (autograd keeps more). xcat keeps none of the score matrices: its plan workspace is printed as
 * reported by xcat_loss_plan_workspace_size (the two top-K selections add their own bounded
 * per-call buffers, ≤ 512 MiB, see xcat_topk). */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "xcat.h"

typedef struct copts {
    int64_t n, c, ky[6], d[4], nb, kx;
    int nky, nd, repeats, compare, mix;
    const char *backend, *json;
} copts;

static int parse(int argc, char **argv, copts *o)
{
    *o = (copts){.n = 16384, .c = 1000000, .ky = {256, 1024, 4096}, .nky = 3, .d = {64},
                 .nd = 1, .repeats = 3, .backend = "cpu"};
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--compare")) { o->compare = 1; continue; }
        if (!strcmp(a, "--mix")) { o->mix = 1; continue; }
        if (!strcmp(a, "--quick")) {
            o->n = 2048; o->c = 100000; o->ky[0] = 256; o->nky = 1; o->d[0] = 64; o->nd = 1;
            o->repeats = 2;
            continue;
        }
        if (!v) { fprintf(stderr, "xcat-bench sce: %s needs a value\n", a); return -1; }
        ++i;
        if (!strcmp(a, "--n")) o->n = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--c")) o->c = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--ky")) o->nky = parse_int_list(v, o->ky, 6);
        else if (!strcmp(a, "--d")) o->nd = parse_int_list(v, o->d, 4);
        else if (!strcmp(a, "--nb")) o->nb = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--kx")) o->kx = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--repeats")) o->repeats = atoi(v);
        else if (!strcmp(a, "--backend")) o->backend = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else {
            fprintf(stderr,
                    "usage: xcat-bench sce [--n N] [--c C] [--ky K,..] [--d d,..] [--nb n_b] "
                    "[--kx k_x] [--mix] [--repeats R] [--backend cpu|opencl|auto] [--json PATH] "
                    "[--quick] [--compare]\n"
                    "  n_b and k_x default to floor(2*sqrt(N)) (the paper's choice); --mix: "
                    "directions mixed from the batch's rows; --compare: also xcat's full CE and "
                    "sampled CE (K = k_y uniform negatives) on the same inputs\n");
            return -1;
        }
    }
    return o->n < 1 || o->c < 2 || o->nky < 1 || o->nd < 1 || o->repeats < 1 ||
                   o->repeats > 16 || o->nb < 0 || o->kx < 0
               ? -1
               : 0;
}

typedef struct bench_io {
    xcat_context *ctx;
    xcat_tensor *H, *E, *y, *L, *dH, *dE;
    int64_t n, c, d;
} bench_io;

/* Median forward and forward+backward ms of one loss descriptor over `repeats` (after one
 * warm-up); the plan's workspace into *ws. Returns -1 (message printed) on failure. */
static int time_loss(const bench_io *io, const xcat_loss_desc *desc, const char *label,
                     int repeats, double *fwd, double *fb, size_t *ws)
{
    xcat_loss_plan *p = NULL;
    if (xcat_loss_plan_create(io->ctx, desc, io->n, io->c, io->d, &p)) {
        fprintf(stderr, "xcat-bench sce: %s plan: %s\n", label, xcat_context_last_error(io->ctx));
        return -1;
    }
    *ws = 0;
    xcat_loss_plan_workspace_size(p, ws);
    xcat_loss_args a;
    xcat_loss_args_init(&a);
    a.hidden = io->H;
    a.items = io->E;
    a.targets = io->y;
    double tf[16], tb[16];
    int failed = 0;
    for (int r = 0; r <= repeats && !failed; ++r) {
        progress(label, r ? "repeat" : "warm-up", r, repeats);
        a.step = (uint64_t)r; /* fresh directions / negatives each call, as in training */
        const double t0 = now_ms();
        xcat_status s = xcat_loss_forward(p, &a, io->L, NULL);
        if (!s) s = xcat_context_synchronize(io->ctx);
        const double t1 = now_ms();
        if (!s) s = xcat_loss_backward(p, &a, NULL, io->dH, io->dE, NULL);
        if (!s) s = xcat_context_synchronize(io->ctx);
        const double t2 = now_ms();
        if (s) {
            fprintf(stderr, "xcat-bench sce: %s: %s\n", label, xcat_context_last_error(io->ctx));
            failed = 1;
        }
        if (r) tf[r - 1] = t1 - t0, tb[r - 1] = t2 - t0;
    }
    progress_done();
    xcat_loss_plan_free(p);
    if (failed) return -1;
    *fwd = median_of(tf, repeats);
    *fb = median_of(tb, repeats);
    return 0;
}

/* Bytes of the reference's main tensors (see the file comment), counted once. */
static double reference_gib(int64_t n, int64_t c, int64_t d, int64_t nb, int64_t kx, int64_t ky)
{
    const double f = (double)nb * (double)n + (double)nb * (double)c +
                     (double)nb * (double)(kx + ky) * (double)d + 2.0 * nb * kx * (double)ky;
    return 4.0 * f / (1 << 30);
}

int xcat_bench_sce_main(int argc, char **argv)
{
    copts o;
    if (parse(argc, argv, &o)) return 2;
    const int64_t two_root = (int64_t)floor(2.0 * sqrt((double)o.n));
    const int64_t nb = o.nb ? o.nb : two_root, kx0 = o.kx ? o.kx : two_root;
    const int64_t kx = kx0 < o.n ? kx0 : o.n;
    xcat_context *ctx = NULL;
    xcat_context_info info;
    if (bench_open_context(o.backend, "xcat-bench sce", &ctx, &info)) return 1;
    FILE *json = o.json ? fopen(o.json, "w") : NULL;
    if (o.json && !json) {
        fprintf(stderr, "xcat-bench sce: cannot write %s\n", o.json);
        xcat_context_free(ctx);
        return 1;
    }
    printf("# xcat-bench sce%s — %s (%s), N=%lld C=%lld n_b=%lld k_x=%lld, median of %d\n",
           o.mix ? " (mixed directions)" : "", info.backend_name, info.device_name,
           (long long)o.n, (long long)o.c, (long long)nb, (long long)kx, o.repeats);
    printf("%5s %6s %-12s %10s %12s %12s %12s\n", "d", "k_y", "loss", "fwd ms", "fwd+bwd ms",
           "workspace", "reference");
    int failed = 0;
    for (int di = 0; di < o.nd && !failed; ++di) {
        const int64_t d = o.d[di], n = o.n, c = o.c;
        float *H = alloc_bytes((size_t)(n * d) * 4), *E = alloc_bytes((size_t)(c * d) * 4);
        int32_t *y = alloc_bytes((size_t)n * 4);
        bench_io io = {.ctx = ctx, .n = n, .c = c, .d = d};
        if (!H || !E || !y) {
            fprintf(stderr, "xcat-bench sce: out of host memory\n");
            free(H), free(E), free(y);
            failed = 1;
            break;
        }
        fill_uniform(H, n * d, 1.0f, 1);
        fill_uniform(E, c * d, 2.0f / sqrtf((float)d), 2);
        uint64_t st = 3;
        for (int64_t i = 0; i < n; ++i) y[i] = (int32_t)(splitmix64(&st) % (uint64_t)c);
        if (xcat_tensor_create(ctx, XCAT_DTYPE_F32, n, d, &io.H) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_F32, c, d, &io.E) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_I32, n, 1, &io.y) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_F32, 1, 1, &io.L) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_F32, n, d, &io.dH) ||
            xcat_tensor_create(ctx, XCAT_DTYPE_F32, c, d, &io.dE) ||
            xcat_tensor_write(io.H, H, 0) || xcat_tensor_write(io.E, E, 0) ||
            xcat_tensor_write(io.y, y, 0)) {
            fprintf(stderr, "xcat-bench sce: tensors: %s\n", xcat_context_last_error(ctx));
            failed = 1;
        }
        free(H), free(E), free(y);
        double ce_f = 0.0, ce_fb = 0.0;
        size_t ce_ws = 0;
        if (!failed && o.compare) { /* full CE once per d: it does not depend on k_y */
            xcat_loss_desc desc;
            xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
            failed = time_loss(&io, &desc, "xcat full CE", o.repeats, &ce_f, &ce_fb, &ce_ws) != 0;
        }
        for (int ki = 0; ki < o.nky && !failed; ++ki) {
            const int64_t ky = o.ky[ki] < c ? o.ky[ki] : c;
            xcat_loss_desc desc;
            xcat_loss_desc_init(&desc, XCAT_LOSS_SCE);
            desc.sce_buckets = nb;
            desc.sce_rows_per_bucket = kx;
            desc.sce_items_per_bucket = ky;
            desc.sce_mix_rows = o.mix;
            desc.seed = 1;
            double f = 0.0, fb = 0.0, sf = 0.0, sfb = 0.0;
            size_t ws = 0, sws = 0;
            bench_reset_profile(ctx);
            if (time_loss(&io, &desc, "xcat sce", o.repeats, &f, &fb, &ws)) {
                failed = 1;
                break;
            }
            const double ref = reference_gib(n, c, d, nb, kx, ky);
            printf("%5lld %6lld %-12s %10.1f %12.1f %8.1f MiB %8.2f GiB\n", (long long)d,
                   (long long)ky, "sce", f, fb, ws / 1048576.0, ref);
            char title[96];
            snprintf(title, sizeof title, "sce, d = %lld, k_y = %lld (every timed and warm-up step)",
                     (long long)d, (long long)ky);
            bench_print_profile(ctx, title);
            if (o.compare) {
                xcat_loss_desc sd;
                xcat_loss_desc_init(&sd, XCAT_LOSS_SAMPLED_CE);
                sd.num_negatives = ky;
                sd.seed = 1;
                if (time_loss(&io, &sd, "xcat sampled", o.repeats, &sf, &sfb, &sws)) {
                    failed = 1;
                    break;
                }
                printf("%5lld %6lld %-12s %10.1f %12.1f %8.1f MiB\n", (long long)d,
                       (long long)ky, "sampled-ce", sf, sfb, sws / 1048576.0);
                if (ki == 0)
                    printf("%5lld %6s %-12s %10.1f %12.1f %8.1f MiB\n", (long long)d, "-",
                           "full-ce", ce_f, ce_fb, ce_ws / 1048576.0);
            }
            fflush(stdout);
            if (json)
                fprintf(json,
                        "{\"op\": \"sce\", \"backend\": \"%s\", \"device\": \"%s\", \"n\": %lld, "
                        "\"c\": %lld, \"d\": %lld, \"nb\": %lld, \"kx\": %lld, \"ky\": %lld, "
                        "\"mix\": %d, \"fwd_ms\": %.3f, \"fwd_bwd_ms\": %.3f, "
                        "\"workspace_bytes\": %zu, \"reference_gib\": %.3f, "
                        "\"sampled_fwd_bwd_ms\": %.3f, \"full_ce_fwd_bwd_ms\": %.3f}\n",
                        info.backend_name, info.device_name, (long long)n, (long long)c,
                        (long long)d, (long long)nb, (long long)kx, (long long)ky, o.mix, f, fb,
                        ws, ref, sfb, ce_fb);
        }
        xcat_tensor *all[] = {io.H, io.E, io.y, io.L, io.dH, io.dE};
        for (int i = 0; i < 6; ++i) xcat_tensor_free(all[i]);
    }
    printf("# peak RSS %.0f MiB\n", peak_rss_mib());
    if (json) fclose(json);
    xcat_context_free(ctx);
    return failed;
}
