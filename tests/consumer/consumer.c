/*
 * consumer.c — a program that uses an *installed* xcat, found through find_package(xcat) or
 * pkg-config (see check_install.sh). It computes a small cross-entropy forward and backward on
 * the CPU backend and checks them against a double-precision computation of its own.
 * Prints "xcat consumer OK loss=..." and returns 0 on success; returns 1 otherwise.
 */
#include <xcat.h>

#include <math.h>
#include <stdio.h>

enum { N = 4, C = 7, D = 3 };

#define CHECK(call)                                                                       \
    do {                                                                                  \
        xcat_status st_ = (call);                                                         \
        if (st_ != XCAT_OK) {                                                             \
            fprintf(stderr, "xcat consumer FAILED: %s -> %d (%s): %s\n", #call, (int)st_, \
                    xcat_status_string(st_), xcat_context_last_error(ctx));               \
            goto done;                                                                    \
        }                                                                                 \
    } while (0)

int main(void) {
    static const float h[N][D] = {
        {0.5f, -1.0f, 0.25f}, {1.5f, 0.0f, -0.5f}, {-0.75f, 0.5f, 1.0f}, {0.0f, 2.0f, -1.25f}};
    static const float e[C][D] = {{1.0f, 0.0f, 0.5f},   {-0.5f, 1.0f, 0.0f}, {0.25f, 0.25f, 0.25f},
                                  {0.0f, -1.0f, 1.0f},  {2.0f, 0.5f, -0.5f}, {-1.0f, -0.5f, 0.75f},
                                  {0.5f, 1.5f, -1.0f}};
    static const float b[C] = {0.1f, -0.2f, 0.0f, 0.3f, -0.1f, 0.05f, 0.0f};
    static const int32_t y[N] = {2, 4, 0, 6};

    xcat_context *ctx = NULL;
    xcat_loss_plan *plan = NULL;
    xcat_tensor *th = NULL, *te = NULL, *tb = NULL, *ty = NULL, *tloss = NULL, *tdh = NULL;
    int ok = 0;

    if (xcat_version_number() != XCAT_VERSION_NUMBER) {
        fprintf(stderr, "xcat consumer FAILED: header %d, library %u (%s)\n", XCAT_VERSION_NUMBER,
                xcat_version_number(), xcat_version_string());
        return 1;
    }

    /* Reference in double precision: mean over rows of LSE_i - z_{i,y_i}, and dL/dH. */
    double ref_loss = 0.0, ref_dh[N][D] = {{0.0}};
    for (int i = 0; i < N; ++i) {
        double z[C], zmax = -INFINITY, sum = 0.0;
        for (int j = 0; j < C; ++j) {
            z[j] = b[j];
            for (int k = 0; k < D; ++k) z[j] += (double)h[i][k] * e[j][k];
            if (z[j] > zmax) zmax = z[j];
        }
        for (int j = 0; j < C; ++j) sum += exp(z[j] - zmax);
        double lse = zmax + log(sum);
        ref_loss += (lse - z[y[i]]) / N;
        for (int j = 0; j < C; ++j) {
            double g = (exp(z[j] - lse) - (j == y[i] ? 1.0 : 0.0)) / N;
            for (int k = 0; k < D; ++k) ref_dh[i][k] += g * e[j][k];
        }
    }

    xcat_context_options opts;
    xcat_context_options_init(&opts);
    opts.backend = XCAT_BACKEND_CPU;
    opts.flags = XCAT_CONTEXT_IGNORE_ENV;
    char msg[256] = "";
    opts.error_message = msg;
    opts.error_message_size = sizeof msg;
    xcat_status st = xcat_context_create(&opts, &ctx);
    if (st != XCAT_OK) {
        fprintf(stderr, "xcat consumer FAILED: xcat_context_create -> %d (%s): %s\n", (int)st,
                xcat_status_string(st), msg);
        return 1;
    }

    xcat_loss_desc desc;
    xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
    desc.reduction = XCAT_REDUCTION_MEAN;
    CHECK(xcat_loss_plan_create(ctx, &desc, N, C, D, &plan));

    CHECK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, N, D, &th));
    CHECK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, C, D, &te));
    CHECK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, C, 1, &tb));
    CHECK(xcat_tensor_create(ctx, XCAT_DTYPE_I32, N, 1, &ty));
    CHECK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, 1, 1, &tloss));
    CHECK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, N, D, &tdh));
    CHECK(xcat_tensor_write(th, h, 0));
    CHECK(xcat_tensor_write(te, e, 0));
    CHECK(xcat_tensor_write(tb, b, 0));
    CHECK(xcat_tensor_write(ty, y, 0));

    xcat_loss_args args;
    xcat_loss_args_init(&args);
    args.hidden = th;
    args.items = te;
    args.bias = tb;
    args.targets = ty;
    CHECK(xcat_loss_forward(plan, &args, tloss, NULL));
    CHECK(xcat_loss_backward(plan, &args, NULL, tdh, NULL, NULL));
    CHECK(xcat_context_synchronize(ctx));

    float loss = NAN, dh[N][D];
    CHECK(xcat_tensor_read(tloss, &loss, 0));
    CHECK(xcat_tensor_read(tdh, dh, 0));

    if (!isfinite(loss) || fabs((double)loss - ref_loss) > 1e-5 * (1.0 + fabs(ref_loss))) {
        fprintf(stderr, "xcat consumer FAILED: loss %.9g, expected %.9g\n", (double)loss, ref_loss);
        goto done;
    }
    for (int i = 0; i < N; ++i)
        for (int k = 0; k < D; ++k)
            if (!isfinite(dh[i][k]) || fabs((double)dh[i][k] - ref_dh[i][k]) > 1e-5) {
                fprintf(stderr, "xcat consumer FAILED: d_hidden[%d][%d] %.9g, expected %.9g\n", i,
                        k, (double)dh[i][k], ref_dh[i][k]);
                goto done;
            }
    printf("xcat consumer OK loss=%.6f (expected %.6f) xcat %s\n", (double)loss, ref_loss,
           xcat_version_string());
    ok = 1;

done:
    xcat_tensor_free(tdh);
    xcat_tensor_free(tloss);
    xcat_tensor_free(ty);
    xcat_tensor_free(tb);
    xcat_tensor_free(te);
    xcat_tensor_free(th);
    xcat_loss_plan_free(plan);
    xcat_context_free(ctx);
    return ok ? 0 : 1;
}
