/* valgrind_smoke.c — a full CE plan lifecycle on the OpenCL backend (PoCL here), an error path
 * included, for tools/valgrind-pocl.sh: every xcat allocation and cl object must be released. */
#include <stdio.h>
#include <stdlib.h>
#include "xcat.h"
#define CK(x) do { xcat_status s_ = (x); if (s_) { printf("%s:%d %s: %s\n", __FILE__, __LINE__, #x, ctx ? xcat_context_last_error(ctx) : ""); return 1; } } while (0)
int main(void) {
    xcat_context *ctx = NULL;
    xcat_context_options o; xcat_context_options_init(&o);
    o.backend = XCAT_BACKEND_OPENCL; o.flags = XCAT_CONTEXT_IGNORE_ENV;
    CK(xcat_context_create(&o, &ctx));
    int64_t N = 37, C = 1001, d = 19;
    float *h = calloc(N*d, 4), *e = calloc(C*d, 4); int32_t *y = calloc(N, 4);
    for (int i = 0; i < N*d; i++) h[i] = (i % 7) * 0.1f;
    for (int i = 0; i < C*d; i++) e[i] = (i % 5) * 0.1f;
    for (int i = 0; i < N; i++) y[i] = (i * 13) % C;
    xcat_tensor *H, *E, *Y, *L, *dH, *dE;
    CK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, N, d, &H)); CK(xcat_tensor_write(H, h, 0));
    CK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, C, d, &E)); CK(xcat_tensor_write(E, e, 0));
    CK(xcat_tensor_create(ctx, XCAT_DTYPE_I32, N, 1, &Y)); CK(xcat_tensor_write(Y, y, 0));
    CK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, 1, 1, &L));
    CK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, N, d, &dH));
    CK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, C, d, &dE));
    for (int rep = 0; rep < 3; rep++) {
        xcat_loss_desc desc; xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
        xcat_loss_plan *p; CK(xcat_loss_plan_create(ctx, &desc, N, C, d, &p));
        xcat_loss_args a; xcat_loss_args_init(&a); a.hidden = H; a.items = E; a.targets = Y;
        CK(xcat_loss_forward(p, &a, L, NULL));
        CK(xcat_loss_backward(p, &a, NULL, dH, dE, NULL));
        CK(xcat_loss_forward_backward(p, &a, L, NULL, NULL, dH, dE, NULL));
        /* an error path: wrong shape */
        a.items = H; if (xcat_loss_forward(p, &a, L, NULL) == 0) return 2;
        if (xcat_loss_forward_backward(p, &a, L, NULL, NULL, dH, dE, NULL) == 0) return 2;
        xcat_loss_plan_free(p);
    }
    /* top-K with exclusions checked on the device: a valid CSR, then one out of range */
    {
        int64_t off[3] = {0, 2, 3}, ex[3] = {1, 5, 7}, bad[3] = {1, 5, 5000};
        xcat_tensor *O, *X, *B, *I;
        CK(xcat_tensor_create(ctx, XCAT_DTYPE_I64, 3, 1, &O)); CK(xcat_tensor_write(O, off, 0));
        CK(xcat_tensor_create(ctx, XCAT_DTYPE_I64, 3, 1, &X)); CK(xcat_tensor_write(X, ex, 0));
        CK(xcat_tensor_create(ctx, XCAT_DTYPE_I64, 3, 1, &B)); CK(xcat_tensor_write(B, bad, 0));
        CK(xcat_tensor_create(ctx, XCAT_DTYPE_I64, 2, 10, &I));
        xcat_tensor *Q; CK(xcat_tensor_create(ctx, XCAT_DTYPE_F32, 2, d, &Q));
        CK(xcat_tensor_write(Q, h, 0));
        xcat_topk_args t; xcat_topk_args_init(&t);
        t.queries = Q; t.items = E; t.exclude_offsets = O; t.exclude_items = X;
        CK(xcat_topk(ctx, &t, 10, I, NULL));
        t.exclude_items = B; if (xcat_topk(ctx, &t, 10, I, NULL) == 0) return 3;
        xcat_tensor_free(O); xcat_tensor_free(X); xcat_tensor_free(B); xcat_tensor_free(I);
        xcat_tensor_free(Q);
    }
    float l; CK(xcat_tensor_read(L, &l, 0)); printf("loss %f\n", l);
    xcat_tensor_free(H); xcat_tensor_free(E); xcat_tensor_free(Y); xcat_tensor_free(L); xcat_tensor_free(dH); xcat_tensor_free(dE);
    xcat_context_free(ctx); free(h); free(e); free(y);
    return 0;
}
