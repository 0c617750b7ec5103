/*
 * Suite "ce": XCAT_LOSS_CE forward and backward on every target (test_util.h: the CPU backend
 * at each ISA level, and every OpenCL device) against the float64 reference (tests/ref/ce_ref.c)
 * on fresh random inputs with awkward shapes; every option alone and combined; all-ignored
 * rows, NaN rows, determinism across runs, thread counts and contexts, the recompute path,
 * FORWARD_ONLY plans, ragged batches, partial gradients, finite differences, workspace sizes,
 * every error the loss calls document, and CPU-vs-OpenCL agreement ("backends").
 *
 * Cost on OpenCL: Check forks every test (every loop iteration), and each child makes its own
 * context, whose programs come from the on-disk binary cache (XCAT_CACHE_DIR, set by
 * tests/CMakeLists.txt) or are compiled (seconds on PoCL). So the tests that run on OpenCL
 * group their cases: one iteration per target runs the whole reference table.
 * XCAT_TEST_CASE=<text> runs only the reference cases whose name contains <text>;
 * XCAT_TEST_VERBOSE=1 prints every case as it starts (to name the one a crash happened in).
 *
 * Tolerances. xcat accumulates in fp32 (unit roundoff u ≈ 6e-8): a logit is a d-term dot
 * product (error ≲ √d·u·|z| typically), LSE a blocked sum of C exponentials (≲ log2(C)·u
 * relative), so the loss and LSE of a row are off by a few 1e-6·(1 + |z|max). LOSS_TOL = 2e-5,
 * applied as atol = LOSS_TOL·(1 + max|LSE|) and rtol = LOSS_TOL, leaves ~10× headroom yet is
 * 1000× below the change of any formula error (a bias added twice, a wrong ε/C or λ term moves
 * the loss by >1e-2 on these inputs). Gradients are sums over N (dE, db) or C (dH) fp32 terms
 * of both signs: GRAD_TOL = 1e-4 relative to the gradient's max-abs (plus 1e-4 relative per
 * element) allows √N·u-style growth with N, C ≈ 1e3 while still catching a missing factor.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ce_ref.h"
#include "test_util.h"

#define LOSS_TOL 2e-5
#define GRAD_TOL 1e-4
/* CPU vs OpenCL: see test_backends_agree. */
#define AGREE_TOL 1e-5

/* ---- test cases ------------------------------------------------------------------------------ */

enum {
    OPT_BIAS = 1u << 0,
    OPT_WEIGHTS = 1u << 1,
    OPT_I32 = 1u << 2,    /* I32 targets (default I64) */
    OPT_PAD = 1u << 3,    /* H and E with row strides d+5, d+3 (test_input_matrix: wrapped
                             host memory on the CPU, a wrapped cl_mem at an offset on OpenCL) */
    OPT_LSE = 1u << 4,    /* request the LSE output */
    OPT_GRAD = 1u << 5,   /* random upstream gradient (scalar, or per row for NONE) */
    OPT_ROWVEC = 1u << 6, /* vectors given as 1×n instead of n×1 */
};
#define OPT_ALL (OPT_BIAS | OPT_WEIGHTS | OPT_I32 | OPT_PAD | OPT_LSE | OPT_GRAD)

typedef struct ce_case {
    const char *name;
    int64_t n, c, d;
    xcat_reduction reduction;
    unsigned opts;
    float scale; /* 0: the default 1 */
    float softcap, smoothing, z_loss;
    double ignore_frac;   /* probability that a row's target is ignore_index */
    int64_t ignore_index; /* 0: the default -100 */
} ce_case;

#define MEAN XCAT_REDUCTION_MEAN
#define SUM XCAT_REDUCTION_SUM
#define NONE XCAT_REDUCTION_NONE

static const ce_case CASES[] = {
    /* awkward shapes, plain CE */
    {"N1 C1 d1", 1, 1, 1, MEAN, OPT_LSE},
    {"C3 smaller than a tile", 7, 3, 5, MEAN, OPT_LSE},
    {"d1", 9, 17, 1, SUM, 0},
    {"N1", 1, 100, 33, MEAN, OPT_LSE},
    {"C1 smoothing z-loss", 5, 1, 8, NONE, OPT_LSE, 0, 0, 0.1f, 1e-2f},
    {"N2 C2 d2", 2, 2, 2, NONE, OPT_LSE},
    {"N257 C1031 d67", 257, 1031, 67, MEAN, OPT_LSE},
    {"N65 C129 d17", 65, 129, 17, SUM, OPT_LSE},
    /* more items than some drivers allow work-groups in NDRange dimensions beyond the first */
    {"C70001 d3", 5, 70001, 3, SUM, OPT_ALL, 1.1f, 2.0f, 0.1f, 1e-3f},
    /* each option alone */
    {"bias", 37, 203, 19, MEAN, OPT_BIAS},
    {"scale 2.5", 37, 203, 19, MEAN, 0, 2.5f},
    {"scale 0.3", 37, 203, 19, SUM, 0, 0.3f},
    {"softcap 3", 37, 203, 19, MEAN, 0, 2.0f, 3.0f},
    {"label smoothing 0.1", 37, 203, 19, MEAN, 0, 0, 0, 0.1f},
    {"z-loss 1e-2", 37, 203, 19, MEAN, 0, 0, 0, 0, 1e-2f},
    {"row weights", 37, 203, 19, MEAN, OPT_WEIGHTS},
    {"ignored rows", 37, 203, 19, MEAN, OPT_LSE, 0, 0, 0, 0, 0.3},
    {"ignore_index is class 2", 37, 7, 19, MEAN, OPT_LSE, 0, 0, 0, 0, 0, 2},
    {"SUM", 37, 203, 19, SUM, 0},
    {"NONE", 37, 203, 19, NONE, 0},
    {"NONE per-row grad", 37, 203, 19, NONE, OPT_GRAD, 0, 0, 0, 0, 0.2},
    {"MEAN scalar grad", 37, 203, 19, MEAN, OPT_GRAD},
    {"SUM scalar grad", 37, 203, 19, SUM, OPT_GRAD},
    {"I32 targets", 37, 203, 19, MEAN, OPT_I32, 0, 0, 0, 0, 0.2},
    {"row strides > d", 37, 203, 19, MEAN, OPT_PAD},
    {"lse output", 37, 203, 19, SUM, OPT_LSE},
    {"vectors 1xn", 37, 203, 19, NONE, OPT_ALL | OPT_ROWVEC, 0, 0, 0, 0, 0.2},
    {"large logits", 29, 301, 16, MEAN, OPT_LSE, 30.0f},
    /* everything combined */
    {"all MEAN", 67, 259, 21, MEAN, OPT_ALL, 1.7f, 4.0f, 0.1f, 1e-3f, 0.2},
    {"all SUM", 67, 259, 21, SUM, OPT_ALL, 0.8f, 2.5f, 0.05f, 1e-2f, 0.2},
    {"all NONE", 67, 259, 21, NONE, OPT_ALL, 1.3f, 5.0f, 0.2f, 1e-3f, 0.2},
    {"all NONE large", 257, 1031, 67, NONE, OPT_ALL, 1.2f, 6.0f, 0.1f, 1e-4f, 0.1},
    {"all MEAN ignore_index 4", 33, 11, 9, MEAN, OPT_ALL, 1.1f, 3.0f, 0.1f, 1e-3f, 0, 4},
};
#define NUM_CASES ((int)(sizeof CASES / sizeof CASES[0]))

/* ---- fixture: host data, tensors, plan and reference of one case ----------------------------- */

typedef struct ce_fixture {
    ce_case cs;
    char tag[512]; /* "case 'name' (N, C, d) isa avx2 threads 2": prefix of every failure */
    xcat_context *ctx;
    xcat_loss_desc desc;
    xcat_loss_plan *plan;
    xcat_loss_args args;
    int64_t h_stride, e_stride;
    float *h, *e, *b, *w, *g; /* host inputs; b, w, g NULL when unused */
    int64_t *y;
    xcat_tensor *th, *te, *tb, *ty, *tw, *tg;
    xcat_tensor *loss, *lse, *dh, *de, *db;
    ce_ref_model ref;
} ce_fixture;

static int has(const ce_fixture *fx, unsigned opt)
{
    return (fx->cs.opts & opt) != 0;
}

/* A vector of `len` elements: len×1, or 1×len with OPT_ROWVEC. */
static xcat_tensor *vec_tensor(const ce_fixture *fx, xcat_dtype dtype, int64_t len,
                               const void *data)
{
    return has(fx, OPT_ROWVEC) ? test_tensor(fx->ctx, dtype, 1, len, data)
                               : test_tensor(fx->ctx, dtype, len, 1, data);
}

static xcat_tensor *targets_tensor(const ce_fixture *fx)
{
    if (!has(fx, OPT_I32))
        return vec_tensor(fx, XCAT_DTYPE_I64, fx->cs.n, fx->y);
    int32_t *y32 = test_alloc((size_t)fx->cs.n * sizeof *y32);
    for (int64_t i = 0; i < fx->cs.n; ++i)
        y32[i] = (int32_t)fx->y[i];
    xcat_tensor *t = vec_tensor(fx, XCAT_DTYPE_I32, fx->cs.n, y32);
    free(y32);
    return t;
}

/* A rows×cols F32 input: copied when contiguous, else wrapped with its stride. */
static xcat_tensor *input_matrix(const ce_fixture *fx, int64_t rows, int64_t cols,
                                 int64_t stride, float *data)
{
    return test_input_matrix(fx->ctx, rows, cols, stride, data);
}

static xcat_tensor *hidden_tensor(const ce_fixture *fx)
{
    return input_matrix(fx, fx->cs.n, fx->cs.d, fx->h_stride, fx->h);
}

/* A tensor filled with a constant, so that a backward that accumulates instead of overwriting,
 * or skips elements, is caught. */
static xcat_tensor *filled_tensor(const ce_fixture *fx, int64_t rows, int64_t cols, float value)
{
    float *x = test_alloc_floats(rows * cols);
    for (int64_t k = 0; k < rows * cols; ++k)
        x[k] = value;
    xcat_tensor *t = test_tensor(fx->ctx, XCAT_DTYPE_F32, rows, cols, x);
    free(x);
    return t;
}

static void fx_draw_inputs(ce_fixture *fx)
{
    const ce_case *cs = &fx->cs;
    fx->h_stride = has(fx, OPT_PAD) ? cs->d + 5 : cs->d;
    fx->e_stride = has(fx, OPT_PAD) ? cs->d + 3 : cs->d;
    fx->h = test_alloc_floats(cs->n * fx->h_stride);
    fx->e = test_alloc_floats(cs->c * fx->e_stride);
    fx->y = test_alloc((size_t)cs->n * sizeof *fx->y);
    test_fill_matrix(fx->h, cs->n, cs->d, fx->h_stride, -1.0f, 1.0f);
    test_fill_matrix(fx->e, cs->c, cs->d, fx->e_stride, -1.0f, 1.0f);
    test_fill_targets(fx->y, cs->n, cs->c, cs->ignore_frac, fx->desc.ignore_index);
    if (has(fx, OPT_BIAS)) {
        fx->b = test_alloc_floats(cs->c);
        test_fill_matrix(fx->b, cs->c, 1, 1, -1.0f, 1.0f);
    }
    if (has(fx, OPT_WEIGHTS)) {
        fx->w = test_alloc_floats(cs->n);
        test_fill_matrix(fx->w, cs->n, 1, 1, 0.0f, 2.0f);
    }
    if (has(fx, OPT_GRAD)) {
        const int per_row = cs->reduction == XCAT_REDUCTION_NONE;
        fx->g = test_alloc_floats(per_row ? cs->n : 1);
        if (per_row)
            test_fill_matrix(fx->g, cs->n, 1, 1, -1.0f, 2.0f);
        else
            fx->g[0] = (float)test_rand_uniform(0.5, 2.0);
    }
}

static void fx_make_tensors(ce_fixture *fx)
{
    const ce_case *cs = &fx->cs;
    const int none = cs->reduction == XCAT_REDUCTION_NONE;
    fx->th = hidden_tensor(fx);
    fx->te = input_matrix(fx, cs->c, cs->d, fx->e_stride, fx->e);
    fx->ty = targets_tensor(fx);
    fx->tb = fx->b ? vec_tensor(fx, XCAT_DTYPE_F32, cs->c, fx->b) : NULL;
    fx->tw = fx->w ? vec_tensor(fx, XCAT_DTYPE_F32, cs->n, fx->w) : NULL;
    fx->tg = !fx->g ? NULL : none ? vec_tensor(fx, XCAT_DTYPE_F32, cs->n, fx->g)
                                  : test_tensor(fx->ctx, XCAT_DTYPE_F32, 1, 1, fx->g);
    fx->loss = none ? vec_tensor(fx, XCAT_DTYPE_F32, cs->n, NULL)
                    : test_tensor(fx->ctx, XCAT_DTYPE_F32, 1, 1, NULL);
    fx->lse = has(fx, OPT_LSE) ? vec_tensor(fx, XCAT_DTYPE_F32, cs->n, NULL) : NULL;
    fx->dh = filled_tensor(fx, cs->n, cs->d, 3.0f);
    fx->de = filled_tensor(fx, cs->c, cs->d, 3.0f);
    fx->db = fx->b ? filled_tensor(fx, cs->c, 1, 3.0f) : NULL;

    xcat_loss_args_init(&fx->args);
    fx->args.hidden = fx->th;
    fx->args.items = fx->te;
    fx->args.bias = fx->tb;
    fx->args.targets = fx->ty;
    fx->args.row_weights = fx->tw;
}

static void fx_make_ref(ce_fixture *fx)
{
    const ce_case *cs = &fx->cs;
    ck_assert_int_eq(ce_ref_model_init(&fx->ref, cs->n, cs->c, cs->d, fx->h, fx->h_stride, fx->e,
                                       fx->e_stride, fx->b, fx->y, fx->w),
                     0);
}

/* Set up case `cs` on `ctx`: inputs from the case's own RNG stream (so every target and
 * thread count sees the same data), tensors, a plan for max_rows (0: n) with `plan_flags`. */
static void fx_init(ce_fixture *fx, const ce_case *cs, xcat_context *ctx, int64_t max_rows,
                    uint32_t plan_flags)
{
    memset(fx, 0, sizeof *fx);
    fx->cs = *cs;
    fx->ctx = ctx;
    char label[320];
    test_context_label(ctx, label, sizeof label);
    snprintf(fx->tag, sizeof fx->tag, "case '%s' (N %lld, C %lld, d %lld) %s", cs->name,
             (long long)cs->n, (long long)cs->c, (long long)cs->d, label);
    if (getenv("XCAT_TEST_VERBOSE")) { /* names the case a crash happened in */
        printf("running %s\n", fx->tag);
        fflush(stdout);
    }

    xcat_loss_desc_init(&fx->desc, XCAT_LOSS_CE);
    fx->desc.reduction = cs->reduction;
    fx->desc.scale = cs->scale != 0.0f ? cs->scale : 1.0f;
    fx->desc.softcap = cs->softcap;
    fx->desc.label_smoothing = cs->smoothing;
    fx->desc.z_loss = cs->z_loss;
    fx->desc.flags = plan_flags;
    if (cs->ignore_index != 0)
        fx->desc.ignore_index = cs->ignore_index;

    test_rng_stream(cs->name, cs->n * 1000003 + cs->c);
    fx_draw_inputs(fx);
    fx_make_tensors(fx);
    fx_make_ref(fx);
    test_expect_ok(ctx,
                   xcat_loss_plan_create(ctx, &fx->desc, max_rows ? max_rows : cs->n, cs->c,
                                         cs->d, &fx->plan),
                   fx->tag);
}

static void fx_free(ce_fixture *fx)
{
    TEST_FREE_TENSORS(fx->th, fx->te, fx->tb, fx->ty, fx->tw, fx->tg, fx->loss, fx->lse, fx->dh,
                      fx->de, fx->db);
    xcat_loss_plan_free(fx->plan);
    free(fx->h);
    free(fx->e);
    free(fx->b);
    free(fx->w);
    free(fx->g);
    free(fx->y);
    ce_ref_model_free(&fx->ref);
}

static void fx_forward(ce_fixture *fx)
{
    test_expect_ok(fx->ctx, xcat_loss_forward(fx->plan, &fx->args, fx->loss, fx->lse), fx->tag);
}

static void fx_backward(ce_fixture *fx)
{
    test_expect_ok(fx->ctx,
                   xcat_loss_backward(fx->plan, &fx->args, fx->tg, fx->dh, fx->de, fx->db),
                   fx->tag);
}

static int fx_ignored(const ce_fixture *fx, int64_t i)
{
    return fx->y[i] == fx->desc.ignore_index;
}

/* ---- comparisons with the reference ---------------------------------------------------------- */

static void check_loss_like(const ce_fixture *fx, const char *what, const xcat_tensor *t,
                            const double *ref, int64_t count, double lse_scale)
{
    char label[640];
    snprintf(label, sizeof label, "%s: %s", fx->tag, what);
    float *got = test_read_floats(t);
    test_check_close(label, got, ref, count, LOSS_TOL * lse_scale, LOSS_TOL);
    if (count == fx->cs.n) /* per-row output: ignored rows are exactly 0 */
        for (int64_t i = 0; i < count; ++i)
            ck_assert_msg(!fx_ignored(fx, i) || got[i] == 0.0f,
                          "%s: ignored row %lld is %g, not 0", label, (long long)i,
                          (double)got[i]);
    free(got);
}

static void fx_check_forward(const ce_fixture *fx)
{
    const int64_t n = fx->cs.n;
    double *rows = test_alloc_doubles(n), *lse = test_alloc_doubles(n);
    double total = ce_ref_forward(&fx->ref, &fx->desc, rows, lse);
    const double lse_scale = 1.0 + test_max_abs(lse, n);
    if (fx->cs.reduction == XCAT_REDUCTION_NONE)
        check_loss_like(fx, "row losses", fx->loss, rows, n, lse_scale);
    else
        check_loss_like(fx, "loss", fx->loss, &total, 1, lse_scale);
    if (fx->lse)
        check_loss_like(fx, "lse", fx->lse, lse, n, lse_scale);
    free(rows);
    free(lse);
}

static void check_grad(const ce_fixture *fx, const char *what, const xcat_tensor *t,
                       const double *ref, int64_t count)
{
    char label[640];
    snprintf(label, sizeof label, "%s: %s", fx->tag, what);
    float *got = test_read_floats(t);
    test_check_close(label, got, ref, count, GRAD_TOL * fmax(test_max_abs(ref, count), 1e-6),
                     GRAD_TOL);
    free(got);
}

/* The upstream gradient as the reference takes it (NULL = 1). */
static double *fx_ref_grad_loss(const ce_fixture *fx)
{
    if (!fx->g)
        return NULL;
    const int64_t len = fx->cs.reduction == XCAT_REDUCTION_NONE ? fx->cs.n : 1;
    double *g = test_alloc_doubles(len);
    for (int64_t k = 0; k < len; ++k)
        g[k] = fx->g[k];
    return g;
}

/* Compare whichever of d_hidden, d_items, d_bias are selected (1 = check) with the reference. */
static void fx_check_grads(const ce_fixture *fx, int want_dh, int want_de, int want_db)
{
    const int64_t n = fx->cs.n, c = fx->cs.c, d = fx->cs.d;
    double *g = fx_ref_grad_loss(fx);
    double *dh = test_alloc_doubles(n * d), *de = test_alloc_doubles(c * d);
    double *db = test_alloc_doubles(c);
    ce_ref_backward(&fx->ref, &fx->desc, g, dh, de, db);
    if (want_dh) {
        check_grad(fx, "d_hidden", fx->dh, dh, n * d);
        float *got = test_read_floats(fx->dh);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t k = 0; fx_ignored(fx, i) && k < d; ++k)
                ck_assert_msg(got[i * d + k] == 0.0f, "%s: d_hidden of ignored row %lld not 0",
                              fx->tag, (long long)i);
        free(got);
    }
    if (want_de)
        check_grad(fx, "d_items", fx->de, de, c * d);
    if (want_db && fx->db)
        check_grad(fx, "d_bias", fx->db, db, c);
    free(g);
    free(dh);
    free(de);
    free(db);
}

static void fx_check_backward(const ce_fixture *fx)
{
    fx_check_grads(fx, 1, 1, 1);
}

/* Forward and backward of case `cs` on `ctx` (plan for max_rows, 0: n; `plan_flags`), both
 * checked against the reference. */
static void check_case(const ce_case *cs, xcat_context *ctx, int64_t max_rows,
                       uint32_t plan_flags)
{
    ce_fixture fx;
    fx_init(&fx, cs, ctx, max_rows, plan_flags);
    fx_forward(&fx);
    fx_check_forward(&fx);
    fx_backward(&fx);
    fx_check_backward(&fx);
    fx_free(&fx);
}

/* xcat_loss_forward_backward of case `cs` on `ctx` (plan for max_rows, 0: n), checked against
 * the reference; then a separate backward after it (which must not take the fused call's
 * leftovers for per-row state) checked again. */
static void check_case_forward_backward(const ce_case *cs, xcat_context *ctx, int64_t max_rows)
{
    ce_fixture fx;
    fx_init(&fx, cs, ctx, max_rows, 0);
    test_expect_ok(ctx,
                   xcat_loss_forward_backward(fx.plan, &fx.args, fx.loss, fx.lse, fx.tg, fx.dh,
                                              fx.de, fx.db),
                   fx.tag);
    fx_check_forward(&fx);
    fx_check_backward(&fx);
    fx_backward(&fx);
    fx_check_backward(&fx);
    fx_free(&fx);
}

static const ce_case FUSED_CASES[] = {
    {"fused all MEAN", 67, 259, 21, MEAN, OPT_ALL, 1.7f, 4.0f, 0.1f, 1e-3f, 0.2},
    {"fused all NONE", 45, 130, 9, NONE, OPT_ALL, 1.3f, 5.0f, 0.2f, 1e-3f, 0.2},
    {"fused SUM bias", 50, 77, 16, SUM, OPT_BIAS | OPT_PAD | OPT_LSE},
    {"fused N1 C1 d1", 1, 1, 1, MEAN, OPT_LSE},
};
#define NUM_FUSED_CASES ((int)(sizeof FUSED_CASES / sizeof FUSED_CASES[0]))

/* ---- against the reference, every case × every target ---------------------------------------- */

/* One iteration per target runs every case on one context (see the top of the file). */
START_TEST(test_ce_vs_reference)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx)
        return;
    const char *only = getenv("XCAT_TEST_CASE");
    int ran = 0;
    for (int k = 0; k < NUM_CASES; ++k) {
        if (only && *only && !strstr(CASES[k].name, only))
            continue;
        check_case(&CASES[k], ctx, 0, 0);
        ++ran;
    }
    if (only && *only)
        printf("note: XCAT_TEST_CASE='%s': %d of %d reference cases on %s\n", only, ran,
               NUM_CASES, test_target_get(_i)->name);
    xcat_context_free(ctx);
}
END_TEST

/* ---- special inputs -------------------------------------------------------------------------- */

static void expect_all_zero_outputs(const ce_fixture *fx, const char *why)
{
    const xcat_tensor *outs[] = {fx->loss, fx->lse, fx->dh, fx->de, fx->db};
    const char *names[] = {"loss", "lse", "d_hidden", "d_items", "d_bias"};
    char label[640];
    for (size_t k = 0; k < sizeof outs / sizeof outs[0]; ++k) {
        if (!outs[k])
            continue;
        int64_t rows = 0, cols = 0;
        xcat_tensor_get_shape(outs[k], NULL, &rows, &cols, NULL);
        float *got = test_read_floats(outs[k]);
        snprintf(label, sizeof label, "%s, %s: %s", fx->tag, why, names[k]);
        test_check_all_zero(label, got, rows * cols);
        free(got);
    }
}

START_TEST(test_all_rows_ignored)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx)
        return;
    const xcat_reduction reductions[] = {MEAN, SUM, NONE};
    for (int r = 0; r < 3; ++r) {
        const ce_case cs = {"all ignored", 13, 41, 7, reductions[r],
                            OPT_BIAS | OPT_WEIGHTS | OPT_LSE, 1.5f, 0, 0.1f, 1e-2f, 1.0};
        ce_fixture fx;
        fx_init(&fx, &cs, ctx, 0, 0);
        fx_forward(&fx);
        fx_backward(&fx);
        expect_all_zero_outputs(&fx, "every row ignored");
        fx_free(&fx);
    }
    /* MEAN whose weights sum to 0: defined as 0 with zero gradients too. */
    const ce_case cs = {"zero weights", 13, 41, 7, MEAN, OPT_BIAS | OPT_WEIGHTS, 1.5f};
    ce_fixture fx;
    fx_init(&fx, &cs, ctx, 0, 0);
    memset(fx.w, 0, (size_t)cs.n * sizeof *fx.w);
    test_expect_ok(ctx, xcat_tensor_write(fx.tw, fx.w, 0), "write weights");
    fx_forward(&fx);
    fx_backward(&fx);
    expect_all_zero_outputs(&fx, "weights sum to 0");
    fx_free(&fx);
    xcat_context_free(ctx);
}
END_TEST

static int any_nan(const float *x, int64_t count)
{
    for (int64_t k = 0; k < count; ++k)
        if (isnan(x[k]))
            return 1;
    return 0;
}

START_TEST(test_nan_row)
{
    enum { BAD = 2 };
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx)
        return;
    const ce_case cs = {"nan row", 6, 50, 8, NONE, OPT_LSE};
    ce_fixture fx;
    fx_init(&fx, &cs, ctx, 0, 0);
    fx.y[BAD] = 1; /* make sure the NaN row is not ignored */
    fx.ref.y[BAD] = 1;
    fx.h[BAD * fx.h_stride + 3] = NAN;
    fx.ref.h[BAD * cs.d + 3] = NAN;
    test_expect_ok(ctx, xcat_tensor_write(fx.th, fx.h, fx.h_stride), "write hidden");
    test_expect_ok(ctx, xcat_tensor_write(fx.ty, fx.y, 0), "write targets");
    fx_forward(&fx);

    double rows[6];
    ce_ref_forward(&fx.ref, &fx.desc, rows, NULL);
    float *loss = test_read_floats(fx.loss);
    ck_assert_msg(isnan(loss[BAD]), "%s: NaN row has loss %g", fx.tag, (double)loss[BAD]);
    for (int64_t i = 0; i < cs.n; ++i) {
        if (i == BAD)
            continue;
        ck_assert_msg(isfinite(loss[i]), "%s: row %lld not finite", fx.tag, (long long)i);
        ck_assert_msg(fabs(loss[i] - rows[i]) <= LOSS_TOL * (10.0 + fabs(rows[i])),
                      "%s: row %lld: %g vs %g", fx.tag, (long long)i, (double)loss[i], rows[i]);
    }
    free(loss);

    fx_backward(&fx);
    float *dh = test_read_floats(fx.dh);
    ck_assert_msg(any_nan(dh + BAD * cs.d, cs.d), "%s: d_hidden of the NaN row has no NaN",
                  fx.tag);
    for (int64_t i = 0; i < cs.n; ++i)
        for (int64_t k = 0; i != BAD && k < cs.d; ++k)
            ck_assert_msg(isfinite(dh[i * cs.d + k]), "%s: d_hidden row %lld not finite",
                          fx.tag, (long long)i);
    free(dh);

    /* A reduced loss over the NaN row is NaN. */
    xcat_loss_desc mean = fx.desc;
    mean.reduction = XCAT_REDUCTION_MEAN;
    xcat_loss_plan *plan = NULL;
    xcat_tensor *scalar = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &mean, cs.n, cs.c, cs.d, &plan), "MEAN plan");
    test_expect_ok(ctx, xcat_loss_forward(plan, &fx.args, scalar, NULL), "MEAN forward");
    float *m = test_read_floats(scalar);
    ck_assert_msg(isnan(m[0]), "%s: MEAN over a NaN row is %g", fx.tag, (double)m[0]);
    free(m);
    xcat_tensor_free(scalar);
    xcat_loss_plan_free(plan);
    fx_free(&fx);
    xcat_context_free(ctx);
}
END_TEST

/* ---- determinism ----------------------------------------------------------------------------- */

typedef struct ce_outputs {
    float *loss, *lse, *dh, *de, *db;
    int64_t loss_len, n, c, d;
} ce_outputs;

static float *read_optional(const xcat_tensor *t)
{
    return t ? test_read_floats(t) : NULL;
}

static ce_outputs fx_collect(const ce_fixture *fx)
{
    ce_outputs o;
    o.loss = test_read_floats(fx->loss);
    o.lse = read_optional(fx->lse);
    o.dh = read_optional(fx->dh);
    o.de = read_optional(fx->de);
    o.db = read_optional(fx->db);
    o.loss_len = fx->cs.reduction == XCAT_REDUCTION_NONE ? fx->cs.n : 1;
    o.n = fx->cs.n;
    o.c = fx->cs.c;
    o.d = fx->cs.d;
    return o;
}

static void outputs_free(ce_outputs *o)
{
    free(o->loss);
    free(o->lse);
    free(o->dh);
    free(o->de);
    free(o->db);
}

static void expect_same_bits(const char *what, const char *name, const float *a, const float *b,
                             int64_t count)
{
    if (!a || !b) {
        ck_assert_msg(a == b, "%s: %s present in one run only", what, name);
        return;
    }
    for (int64_t k = 0; k < count; ++k)
        ck_assert_msg(memcmp(&a[k], &b[k], sizeof *a) == 0,
                      "%s: %s element %lld differs: %.9g vs %.9g", what, name, (long long)k,
                      (double)a[k], (double)b[k]);
}

static void expect_same_outputs(const char *what, const ce_outputs *a, const ce_outputs *b,
                                int forward_too)
{
    if (forward_too) {
        expect_same_bits(what, "loss", a->loss, b->loss, a->loss_len);
        expect_same_bits(what, "lse", a->lse, b->lse, a->n);
    }
    expect_same_bits(what, "d_hidden", a->dh, b->dh, a->n * a->d);
    expect_same_bits(what, "d_items", a->de, b->de, a->c * a->d);
    expect_same_bits(what, "d_bias", a->db, b->db, a->c);
}

static const ce_case DETERMINISM_CASE = {
    "determinism", 131, 1031, 67, NONE, OPT_ALL, 1.3f, 5.0f, 0.1f, 1e-3f, 0.1};

/* Forward + backward of `cs` on a fresh context of `target` with `threads`, `repeats` times
 * (each repeat must reproduce the first bit for bit); returns 0 if the target cannot run. */
static int determinism_run_case(const ce_case *cs, int target, int threads, int repeats,
                                ce_outputs *out)
{
    xcat_context *ctx = test_target_context(target, threads);
    if (!ctx)
        return 0;
    ce_fixture fx;
    fx_init(&fx, cs, ctx, 0, 0);
    for (int r = 0; r < repeats; ++r) {
        fx_forward(&fx);
        fx_backward(&fx);
        ce_outputs o = fx_collect(&fx);
        if (r == 0)
            *out = o;
        else {
            expect_same_outputs("same inputs twice", out, &o, 1);
            outputs_free(&o);
        }
    }
    fx_free(&fx);
    xcat_context_free(ctx);
    return 1;
}

static int determinism_run(int target, int threads, int repeats, ce_outputs *out)
{
    return determinism_run_case(&DETERMINISM_CASE, target, threads, repeats, out);
}

/* Bitwise equal across repeats, and across thread counts (CPU) or contexts (OpenCL). */
START_TEST(test_determinism)
{
    ce_outputs one = {0}, two = {0}, three = {0};
    if (!determinism_run(_i, 1, 2, &one))
        return;
    if (test_target_get(_i)->backend == XCAT_BACKEND_OPENCL) {
        ck_assert(determinism_run(_i, 0, 1, &two));
        expect_same_outputs("first context vs a second context", &one, &two, 1);
    } else {
        ck_assert(determinism_run(_i, 2, 2, &two) && determinism_run(_i, 3, 1, &three));
        expect_same_outputs("1 thread vs 2 threads", &one, &two, 1);
        expect_same_outputs("1 thread vs 3 threads", &one, &three, 1);
    }
    outputs_free(&one);
    outputs_free(&two);
    outputs_free(&three);
}
END_TEST

/* ---- the recompute path, FORWARD_ONLY plans, ragged batches ---------------------------------- */

static const ce_case PATH_CASE = {"paths", 45, 301, 23, MEAN, OPT_ALL,
                                  1.4f, 4.0f, 0.1f, 1e-2f, 0.2};

START_TEST(test_backward_without_forward)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx)
        return;
    ce_fixture fresh, after;
    fx_init(&fresh, &PATH_CASE, ctx, 0, 0);
    fx_backward(&fresh); /* no forward on this plan: recomputes the per-row state */
    fx_check_backward(&fresh);

    fx_init(&after, &PATH_CASE, ctx, 0, 0);
    fx_forward(&after);
    fx_backward(&after);
    ce_outputs a = fx_collect(&fresh), b = fx_collect(&after);
    expect_same_outputs("backward alone vs after forward", &a, &b, 0);
    outputs_free(&a);
    outputs_free(&b);
    fx_free(&fresh);
    fx_free(&after);
    xcat_context_free(ctx);
}
END_TEST

/* Forward on the fixture's hidden tensor, then backward with a different hidden tensor: the
 * forward's state does not belong to these args and must not be reused. */
START_TEST(test_backward_other_args)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx)
        return;
    const ce_case cs = {"other args", 45, 301, 23, SUM, OPT_BIAS | OPT_LSE, 1.4f};
    ce_fixture fx;
    fx_init(&fx, &cs, ctx, 0, 0);
    fx_forward(&fx);
    test_fill_matrix(fx.h, cs.n, cs.d, fx.h_stride, -1.0f, 1.0f);
    xcat_tensor *old = fx.th;
    fx.th = hidden_tensor(&fx); /* created while the old one lives: a new address */
    fx.args.hidden = fx.th;
    xcat_tensor_free(old);
    ce_ref_model_free(&fx.ref);
    fx_make_ref(&fx);
    fx_backward(&fx);
    fx_check_backward(&fx);
    fx_free(&fx);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_forward_only_plan)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx)
        return;
    check_case(&PATH_CASE, ctx, 0, XCAT_LOSS_FORWARD_ONLY);
    xcat_context_free(ctx);
}
END_TEST

/* Loss-only plans without label smoothing take the fused forward on the SIMD levels (logit
 * tiles in registers, items packed in panels of 16 / 32, rows in blocks of at most 1,020): row
 * counts not a multiple of the 6- or 12-row micro-tile and across several blocks (2,100 rows: 4 blocks
 * on 2 threads), item counts with a partial last panel, below one panel and across several
 * packed chunks, d = 1, softcap, z-loss, ignored rows, and logits large enough that a row's
 * running max moves many times. */
START_TEST(test_forward_only_fused)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx)
        return;
    const ce_case cases[] = {
        {"fused 527x301x23", 527, 301, 23, NONE, OPT_BIAS | OPT_WEIGHTS | OPT_PAD | OPT_LSE,
         1.4f, 4.0f, 0.0f, 1e-2f, 0.2},
        {"fused C below a panel", 13, 5, 7, MEAN, OPT_LSE | OPT_I32},
        {"fused d 1", 9, 40, 1, SUM, OPT_LSE | OPT_BIAS},
        {"fused chunks", 20, 2500, 64, MEAN, OPT_LSE | OPT_BIAS, 6.0f},
        {"fused blocks", 2100, 70, 40, MEAN, OPT_LSE | OPT_BIAS, 0.3f, 0, 0, 0, 0.1},
    };
    /* Every SIMD level's kernel, also where it is not the default (AVX-512; a capped level):
     * XCAT_CPU_FUSED=1 is read when the plan is made. test_forward_only_plan covers the
     * default choice. */
    setenv("XCAT_CPU_FUSED", "1", 1);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k)
        check_case(&cases[k], ctx, 0, XCAT_LOSS_FORWARD_ONLY);
    unsetenv("XCAT_CPU_FUSED");
    xcat_context_free(ctx);
}
END_TEST

/* The CE's GEMMs on mma.cl's tensor-core tile in 3×TF32 (gemm_nt_mma, gemm_nn_mma,
 * gemm_tn_mma), with the products computed without tensor cores (XCAT_CL_MMA_EMULATE=1, the
 * 128×128×16×8×8 tile forced) on every OpenCL device: the tile's loads (k-contiguous and
 * k-major, aligned and not, ragged k steps, K slices), local layout, hi/lo split and output
 * places against the float64 reference at the fp32 tolerances. (On NVIDIA the real tensor
 * cores run in every other test.) */
START_TEST(test_tensor_core_gemms)
{
    setenv("XCAT_CL_GEMM_TILE", "128x128x16x8x8", 1);
    setenv("XCAT_CL_MMA_EMULATE", "1", 1);
    xcat_context *ctx = test_target_context_flags(_i, 2, 0); /* reads the environment */
    if (ctx) {
        const ce_case cases[] = {
            {"mma N257 C1031 d67", 257, 1031, 67, MEAN, OPT_LSE},
            {"mma padded rows, bias", 130, 300, 40, SUM, OPT_BIAS | OPT_PAD},
            {"mma every option", 37, 203, 19, NONE, OPT_ALL, 1.1f, 2.0f, 0.1f, 1e-3f, 0.2},
            {"mma N1 C5 d1", 1, 5, 1, MEAN, OPT_LSE},
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k)
            check_case(&cases[k], ctx, 0, 0);
        xcat_context_free(ctx);
        /* dH and dE in K slices (each slice's k range starting off the BK grid) */
        setenv("XCAT_CL_SPLIT_K", "3", 1);
        ctx = test_target_context_flags(_i, 2, 0);
        if (ctx) check_case(&cases[0], ctx, 0, 0);
        xcat_context_free(ctx);
        unsetenv("XCAT_CL_SPLIT_K");
        /* forward + backward at once in blocks of 128 rows (128, 128, 1) */
        setenv("XCAT_CL_CE_FUSED_ROWS", "128", 1);
        ctx = test_target_context_flags(_i, 2, 0);
        if (ctx) check_case_forward_backward(&cases[0], ctx, 0);
        xcat_context_free(ctx);
        unsetenv("XCAT_CL_CE_FUSED_ROWS");
    }
    unsetenv("XCAT_CL_MMA_EMULATE");
    unsetenv("XCAT_CL_GEMM_TILE");
}
END_TEST

/* Forward and backward in one call, on every target (the OpenCL CE's fused path with one
 * block of rows: every shape here fits its logit buffer), also ragged (max_rows > N). */
START_TEST(test_forward_backward)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx)
        return;
    for (int k = 0; k < NUM_FUSED_CASES; ++k)
        check_case_forward_backward(&FUSED_CASES[k], ctx, 0);
    check_case_forward_backward(&FUSED_CASES[0], ctx, 100);
    /* grad_loss must not be an output */
    ce_fixture fx;
    fx_init(&fx, &FUSED_CASES[1], ctx, 0, 0);
    test_expect_error(ctx,
                      xcat_loss_forward_backward(fx.plan, &fx.args, fx.loss, NULL, fx.loss,
                                                 fx.dh, NULL, NULL),
                      XCAT_ERROR_INVALID_ARGUMENT, "grad_loss", "grad_loss is the loss");
    fx_free(&fx);
    xcat_context_free(ctx);
}
END_TEST

/* The OpenCL CE's fused path in blocks of rows (XCAT_CL_CE_FUSED_ROWS: 16 rows, so several
 * blocks and a ragged last one; dE and db accumulate over blocks), with and without K slices,
 * and off (0: the two passes). */
START_TEST(test_forward_backward_blocks)
{
    static const char *const settings[][2] = {{"16", NULL}, {"16", "3"}, {"0", NULL}};
    for (size_t k = 0; k < sizeof settings / sizeof settings[0]; ++k) {
        setenv("XCAT_CL_CE_FUSED_ROWS", settings[k][0], 1);
        if (settings[k][1]) setenv("XCAT_CL_SPLIT_K", settings[k][1], 1);
        xcat_context *ctx = test_target_context_flags(_i, 2, 0); /* reads the environment */
        if (ctx) {
            check_case_forward_backward(&FUSED_CASES[0], ctx, 0);
            check_case_forward_backward(&FUSED_CASES[1], ctx, 0);
            check_case_forward_backward(&FUSED_CASES[2], ctx, 0);
        }
        xcat_context_free(ctx);
        unsetenv("XCAT_CL_SPLIT_K");
    }
    unsetenv("XCAT_CL_CE_FUSED_ROWS");
}
END_TEST

START_TEST(test_ragged_batch)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx)
        return;
    const ce_case cases[] = {
        {"ragged 37 of 100", 37, 203, 19, MEAN, OPT_ALL, 1.2f, 3.0f, 0.1f, 1e-3f, 0.2},
        {"ragged 1 of 100", 1, 203, 19, NONE, OPT_ALL, 1.2f, 3.0f, 0.1f, 1e-3f},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k)
        check_case(&cases[k], ctx, 100, 0);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_partial_gradients)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx)
        return;
    ce_fixture fx;
    fx_init(&fx, &PATH_CASE, ctx, 0, 0);
    fx_forward(&fx);
    const xcat_tensor *g = fx.tg;
    test_expect_ok(ctx, xcat_loss_backward(fx.plan, &fx.args, g, fx.dh, NULL, NULL), "dH only");
    fx_check_grads(&fx, 1, 0, 0);
    test_expect_ok(ctx, xcat_loss_backward(fx.plan, &fx.args, g, NULL, fx.de, NULL), "dE only");
    fx_check_grads(&fx, 0, 1, 0);
    test_expect_ok(ctx, xcat_loss_backward(fx.plan, &fx.args, g, NULL, NULL, fx.db), "db only");
    fx_check_grads(&fx, 0, 0, 1);
    test_expect_error(ctx, xcat_loss_backward(fx.plan, &fx.args, g, NULL, NULL, NULL),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "backward with no output");
    fx_free(&fx);
    xcat_context_free(ctx);
}
END_TEST

/* ---- finite differences ---------------------------------------------------------------------- */

/* One differentiable input: its host floats, its tensor, its reference copy, and the gradient. */
typedef struct fd_param {
    const char *name;
    float *host;
    xcat_tensor *tensor;
    double *model;
    int64_t count;
    const float *grad;     /* xcat's analytic gradient */
    const double *ref_grad; /* the reference's analytic gradient */
} fd_param;

static float xcat_objective(const ce_fixture *fx)
{
    test_expect_ok(fx->ctx, xcat_loss_forward(fx->plan, &fx->args, fx->loss, NULL), "FD forward");
    float *l = test_read_floats(fx->loss);
    const float v = l[0];
    free(l);
    return v;
}

/* Central difference of xcat's own fp32 SUM loss against xcat's gradient. The step 1e-2 keeps
 * the rounding error of the loss (≈ 1e-6 / 2e-2) and the truncation error (≈ step²·f'''/6)
 * both near 1e-4, so a 2e-2 relative tolerance is loose enough yet catches any wrong term. */
static void fd_check_xcat(const ce_fixture *fx, const fd_param *p, double grad_scale)
{
    for (int64_t k = 0; k < p->count; ++k) {
        const float x = p->host[k];
        const float up = x + 1e-2f, down = x - 1e-2f;
        p->host[k] = up;
        test_expect_ok(fx->ctx, xcat_tensor_write(p->tensor, p->host, 0), "FD write");
        const double f_up = xcat_objective(fx);
        p->host[k] = down;
        test_expect_ok(fx->ctx, xcat_tensor_write(p->tensor, p->host, 0), "FD write");
        const double f_down = xcat_objective(fx);
        p->host[k] = x;
        test_expect_ok(fx->ctx, xcat_tensor_write(p->tensor, p->host, 0), "FD restore");
        const double fd = (f_up - f_down) / ((double)up - (double)down);
        const double an = p->grad[k];
        ck_assert_msg(fabs(fd - an) <= 2e-2 * (grad_scale + fabs(an)),
                      "%s: d%s[%lld]: analytic %.6g, finite difference of xcat %.6g", fx->tag,
                      p->name, (long long)k, an, fd);
    }
}

/* Central difference of the float64 reference (step 1e-5: error ≈ 1e-10) against both the
 * reference's analytic gradient (validates tests/ref) and xcat's gradient. */
static void fd_check_ref(const ce_fixture *fx, const fd_param *p, const double *grad_loss,
                         double grad_scale)
{
    const double step = 1e-5;
    for (int64_t k = 0; k < p->count; ++k) {
        const double x = p->model[k];
        p->model[k] = x + step;
        const double f_up = ce_ref_objective(&fx->ref, &fx->desc, grad_loss);
        p->model[k] = x - step;
        const double f_down = ce_ref_objective(&fx->ref, &fx->desc, grad_loss);
        p->model[k] = x;
        const double fd = (f_up - f_down) / (2.0 * step);
        ck_assert_msg(fabs(fd - p->ref_grad[k]) <= 1e-6 * (grad_scale + fabs(fd)),
                      "%s: reference d%s[%lld]: analytic %.10g, finite difference %.10g",
                      fx->tag, p->name, (long long)k, p->ref_grad[k], fd);
        if (p->grad)
            ck_assert_msg(fabs(fd - p->grad[k]) <= GRAD_TOL * (grad_scale + fabs(fd)),
                          "%s: d%s[%lld]: xcat %.8g, finite difference of the reference %.8g",
                          fx->tag, p->name, (long long)k, (double)p->grad[k], fd);
    }
}

/* Analytic gradients of a tiny case checked by finite differences; `through_xcat` also
 * differentiates xcat's own loss (SUM or MEAN only: a 1×1 loss). */
static void finite_difference_case(const ce_case *cs, xcat_context *ctx, int through_xcat)
{
    ce_fixture fx;
    fx_init(&fx, cs, ctx, 0, 0);
    fx_backward(&fx);
    float *dh = test_read_floats(fx.dh), *de = test_read_floats(fx.de);
    float *db = test_read_floats(fx.db);
    double *g = fx_ref_grad_loss(&fx);
    double *rdh = test_alloc_doubles(cs->n * cs->d), *rde = test_alloc_doubles(cs->c * cs->d);
    double *rdb = test_alloc_doubles(cs->c);
    ce_ref_backward(&fx.ref, &fx.desc, g, rdh, rde, rdb);
    const double scale = fmax(test_max_abs(rdh, cs->n * cs->d),
                              fmax(test_max_abs(rde, cs->c * cs->d), test_max_abs(rdb, cs->c)));
    const fd_param params[] = {
        {"hidden", fx.h, fx.th, fx.ref.h, cs->n * cs->d, dh, rdh},
        {"items", fx.e, fx.te, fx.ref.e, cs->c * cs->d, de, rde},
        {"bias", fx.b, fx.tb, fx.ref.b, cs->c, db, rdb},
    };
    for (size_t k = 0; k < sizeof params / sizeof params[0]; ++k) {
        fd_check_ref(&fx, &params[k], g, scale);
        if (through_xcat)
            fd_check_xcat(&fx, &params[k], scale);
    }
    free(dh);
    free(de);
    free(db);
    free(g);
    free(rdh);
    free(rde);
    free(rdb);
    fx_free(&fx);
}

START_TEST(test_finite_differences)
{
    xcat_context *ctx = test_target_context(_i, 1);
    if (!ctx)
        return;
    /* Row weights and one ignored row (ignore_index 3 is a class: rows with target 3 drop out). */
    const unsigned opts = OPT_BIAS | OPT_WEIGHTS;
    const ce_case sum = {"fd SUM", 4, 5, 4, SUM, opts, 1.5f, 2.0f, 0.1f, 0.05f, 0, 3};
    const ce_case mean = {"fd MEAN", 4, 5, 4, MEAN, opts | OPT_GRAD, 1.5f, 2.0f, 0.1f, 0.05f, 0, 3};
    const ce_case none = {"fd NONE", 4, 5, 4, NONE, opts | OPT_GRAD, 1.5f, 2.0f, 0.1f, 0.05f, 0, 3};
    finite_difference_case(&sum, ctx, 1);
    finite_difference_case(&mean, ctx, 0);
    finite_difference_case(&none, ctx, 0);
    xcat_context_free(ctx);
}
END_TEST

/* ---- workspace ------------------------------------------------------------------------------- */

static size_t workspace(xcat_context *ctx, int64_t n, int64_t c, int64_t d)
{
    xcat_loss_desc desc;
    xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
    size_t bytes = 0;
    test_expect_ok(ctx, xcat_loss_workspace_size(ctx, &desc, n, c, d, &bytes), "workspace_size");
    return bytes;
}

/* The workspace is O(N·d + C), far below the N×C logits, and a plan holds what was announced. */
static void workspace_checks(xcat_context *ctx)
{
    const int64_t n = 65536;
    const size_t big = workspace(ctx, n, 2000000, 128), half = workspace(ctx, n, 1000000, 128);
    const double logits_bytes = (double)n * 2e6 * 4.0;
    ck_assert_msg((double)big < logits_bytes / 100.0,
                  "workspace %zu bytes is not far below the N·C·4 = %.3g of the logits", big,
                  logits_bytes);
    /* (it may also shrink: fewer rows of the wider catalog fit the logit buffer) */
    ck_assert_msg((double)big - (double)half < 64e6,
                  "doubling C from 1e6 to 2e6 grew the workspace by %.0f bytes: not O(C)",
                  (double)big - (double)half);
    ck_assert_uint_gt(workspace(ctx, 1, 1, 1), 0);

    /* A real plan holds what xcat_loss_workspace_size() announced. */
    xcat_loss_desc desc;
    xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
    xcat_loss_plan *plan = NULL;
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &desc, 300, 5000, 40, &plan), "plan");
    size_t held = 0;
    test_expect_ok(ctx, xcat_loss_plan_workspace_size(plan, &held), "plan_workspace_size");
    ck_assert_uint_eq(held, workspace(ctx, 300, 5000, 40));
    ck_assert_int_eq(xcat_loss_plan_workspace_size(plan, NULL), XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_loss_plan_workspace_size(NULL, &held), XCAT_ERROR_INVALID_ARGUMENT);
    xcat_loss_plan_free(plan);
}

START_TEST(test_workspace_size)
{
    xcat_context *ctx = test_context(-1, 2);
    workspace_checks(ctx);
    xcat_context_free(ctx);
}
END_TEST

/* ---- errors at plan creation ----------------------------------------------------------------- */

/* Plan creation and workspace sizing with these arguments both fail with `want`. */
static void expect_plan_error(xcat_context *ctx, const xcat_loss_desc *desc, int64_t n,
                              int64_t c, int64_t d, xcat_status want, const char *needle,
                              const char *what)
{
    xcat_loss_plan *plan = NULL;
    size_t bytes = 0;
    test_expect_error(ctx, xcat_loss_plan_create(ctx, desc, n, c, d, &plan), want, needle, what);
    xcat_loss_plan_free(plan);
    test_expect_error(ctx, xcat_loss_workspace_size(ctx, desc, n, c, d, &bytes), want, needle,
                      what);
}

typedef struct bad_desc {
    const char *what;
    const char *needle; /* the field the message must name */
    xcat_status want;
    void (*apply)(xcat_loss_desc *desc);
} bad_desc;

static void scale_zero(xcat_loss_desc *x) { x->scale = 0.0f; }
static void scale_nan(xcat_loss_desc *x) { x->scale = NAN; }
static void scale_negative(xcat_loss_desc *x) { x->scale = -1.0f; }
static void scale_inf(xcat_loss_desc *x) { x->scale = INFINITY; }
static void softcap_negative(xcat_loss_desc *x) { x->softcap = -1.0f; }
static void softcap_nan(xcat_loss_desc *x) { x->softcap = NAN; }
static void smoothing_one(xcat_loss_desc *x) { x->label_smoothing = 1.0f; }
static void smoothing_negative(xcat_loss_desc *x) { x->label_smoothing = -0.1f; }
static void zloss_negative(xcat_loss_desc *x) { x->z_loss = -1e-4f; }
static void kind_bad(xcat_loss_desc *x) { x->kind = (xcat_loss_kind)99; }
static void reduction_bad(xcat_loss_desc *x) { x->reduction = (xcat_reduction)7; }
static void dtype_bad(xcat_loss_desc *x) { x->dtype = (xcat_dtype)42; }
static void sce_smoothing(xcat_loss_desc *x)
{
    x->kind = XCAT_LOSS_SCE;
    x->label_smoothing = 0.1f;
}
static void dtype_bf16(xcat_loss_desc *x) { x->dtype = XCAT_DTYPE_BF16; }

static const bad_desc BAD_DESCS[] = {
    {"scale 0", "scale", XCAT_ERROR_INVALID_ARGUMENT, scale_zero},
    {"scale NaN", "scale", XCAT_ERROR_INVALID_ARGUMENT, scale_nan},
    {"scale -1", "scale", XCAT_ERROR_INVALID_ARGUMENT, scale_negative},
    {"scale inf", "scale", XCAT_ERROR_INVALID_ARGUMENT, scale_inf},
    {"softcap -1", "softcap", XCAT_ERROR_INVALID_ARGUMENT, softcap_negative},
    {"softcap NaN", "softcap", XCAT_ERROR_INVALID_ARGUMENT, softcap_nan},
    {"label_smoothing 1", "label_smoothing", XCAT_ERROR_INVALID_ARGUMENT, smoothing_one},
    {"label_smoothing -0.1", "label_smoothing", XCAT_ERROR_INVALID_ARGUMENT, smoothing_negative},
    {"z_loss < 0", "z_loss", XCAT_ERROR_INVALID_ARGUMENT, zloss_negative},
    {"kind 99", "kind", XCAT_ERROR_INVALID_ARGUMENT, kind_bad},
    {"reduction 7", "reduction", XCAT_ERROR_INVALID_ARGUMENT, reduction_bad},
    {"dtype 42", "dtype", XCAT_ERROR_INVALID_ARGUMENT, dtype_bad},
    {"SCE with label smoothing", "label_smoothing", XCAT_ERROR_INVALID_ARGUMENT, sce_smoothing},
    {"BF16 storage reserved", NULL, XCAT_ERROR_UNSUPPORTED, dtype_bf16},
};

static void plan_error_checks(xcat_context *ctx)
{
    xcat_loss_desc desc;
    for (size_t k = 0; k < sizeof BAD_DESCS / sizeof BAD_DESCS[0]; ++k) {
        xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
        BAD_DESCS[k].apply(&desc);
        expect_plan_error(ctx, &desc, 8, 11, 5, BAD_DESCS[k].want, BAD_DESCS[k].needle,
                          BAD_DESCS[k].what);
    }
    xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
    expect_plan_error(ctx, &desc, 0, 11, 5, XCAT_ERROR_INVALID_ARGUMENT, NULL, "max_rows 0");
    expect_plan_error(ctx, &desc, 8, 0, 5, XCAT_ERROR_INVALID_ARGUMENT, NULL, "num_classes 0");
    expect_plan_error(ctx, &desc, 8, 11, -1, XCAT_ERROR_INVALID_ARGUMENT, NULL, "dim -1");
    expect_plan_error(ctx, NULL, 8, 11, 5, XCAT_ERROR_INVALID_ARGUMENT, NULL, "desc NULL");

    xcat_loss_plan *plan = NULL;
    size_t bytes = 0;
    test_expect_error(ctx, xcat_loss_plan_create(ctx, &desc, 8, 11, 5, NULL),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "out NULL");
    test_expect_error(ctx, xcat_loss_workspace_size(ctx, &desc, 8, 11, 5, NULL),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "bytes NULL");
    ck_assert_int_eq(xcat_loss_plan_create(NULL, &desc, 8, 11, 5, &plan),
                     XCAT_ERROR_INVALID_ARGUMENT);

    /* max_rows·dim elements overflow: nothing that size can be allocated or even counted. */
    test_expect_error(ctx, xcat_loss_workspace_size(ctx, &desc, INT64_MAX / 2, 11, 8, &bytes),
                      XCAT_ERROR_SIZE_OVERFLOW, NULL, "workspace of INT64_MAX/2 rows");
    const xcat_status st = xcat_loss_plan_create(ctx, &desc, INT64_MAX / 2, 11, 8, &plan);
    ck_assert_msg(st == XCAT_ERROR_SIZE_OVERFLOW || st == XCAT_ERROR_OUT_OF_MEMORY ||
                      st == XCAT_ERROR_DEVICE_OUT_OF_MEMORY,
                  "plan of INT64_MAX/2 rows: %s", xcat_status_string(st));
    ck_assert_ptr_null(plan);
    ck_assert_str_ne(xcat_context_last_error(ctx), "");
}

START_TEST(test_plan_errors)
{
    xcat_context *ctx = test_context(-1, 1);
    plan_error_checks(ctx);
    xcat_context_free(ctx);
}
END_TEST

/* ---- errors of forward / backward ------------------------------------------------------------ */

static const ce_case ERROR_CASE = {"errors", 8, 11, 5, MEAN, OPT_BIAS | OPT_WEIGHTS | OPT_LSE};

/* Checked fixture of the "call errors" tests (runs in each test's child under CK_FORK). */
static ce_fixture g_err;

static void error_fixture_setup(void)
{
    fx_init(&g_err, &ERROR_CASE, test_context(-1, 1), 0, 0);
}

static void error_fixture_teardown(void)
{
    xcat_context *ctx = g_err.ctx;
    fx_free(&g_err);
    xcat_context_free(ctx);
}

/* Both forward and backward on `args` fail with `want` (the loss/lse/grad tensors of fx). */
static void expect_call_error(ce_fixture *fx, const xcat_loss_args *args, xcat_status want,
                              const char *needle, const char *what)
{
    char label[200];
    snprintf(label, sizeof label, "forward, %s", what);
    test_expect_error(fx->ctx, xcat_loss_forward(fx->plan, args, fx->loss, fx->lse), want,
                      needle, label);
    snprintf(label, sizeof label, "backward, %s", what);
    test_expect_error(fx->ctx,
                      xcat_loss_backward(fx->plan, args, fx->tg, fx->dh, fx->de, fx->db), want,
                      needle, label);
}

static void call_errors_null(ce_fixture *fx)
{
    xcat_context *ctx = fx->ctx;
    xcat_loss_args args = fx->args;

    ck_assert_int_eq(xcat_loss_forward(NULL, &args, fx->loss, NULL), XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_loss_backward(NULL, &args, NULL, fx->dh, NULL, NULL),
                     XCAT_ERROR_INVALID_ARGUMENT);
    test_expect_error(ctx, xcat_loss_forward(fx->plan, NULL, fx->loss, NULL),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "forward args NULL");
    test_expect_error(ctx, xcat_loss_backward(fx->plan, NULL, NULL, fx->dh, NULL, NULL),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "backward args NULL");
    test_expect_error(ctx, xcat_loss_forward(fx->plan, &args, NULL, NULL),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "loss NULL");
    args.hidden = NULL;
    expect_call_error(fx, &args, XCAT_ERROR_INVALID_ARGUMENT, "hidden", "hidden NULL");
    args = fx->args;
    args.items = NULL;
    expect_call_error(fx, &args, XCAT_ERROR_INVALID_ARGUMENT, "items", "items NULL");
    args = fx->args;
    args.targets = NULL;
    expect_call_error(fx, &args, XCAT_ERROR_INVALID_ARGUMENT, "targets", "targets NULL");
    /* The plan still works after all these failures. */
    fx_forward(fx);
    fx_check_forward(fx);
}

START_TEST(test_call_errors_null)
{
    call_errors_null(&g_err);
}
END_TEST

static void call_errors_shapes(ce_fixture *fx)
{
    xcat_context *ctx = fx->ctx;
    const int64_t n = ERROR_CASE.n, c = ERROR_CASE.c, d = ERROR_CASE.d;
    xcat_tensor *h_i32 = test_tensor(ctx, XCAT_DTYPE_I32, n, d, NULL);
    xcat_tensor *h_wide = test_tensor(ctx, XCAT_DTYPE_F32, n, d + 1, NULL);
    xcat_tensor *h_tall = test_tensor(ctx, XCAT_DTYPE_F32, n + 1, d, NULL);
    xcat_tensor *e_short = test_tensor(ctx, XCAT_DTYPE_F32, c - 1, d, NULL);
    xcat_tensor *y_short = test_tensor(ctx, XCAT_DTYPE_I64, n - 1, 1, NULL);
    xcat_tensor *y_f32 = test_tensor(ctx, XCAT_DTYPE_F32, n, 1, NULL);
    xcat_tensor *b_long = test_tensor(ctx, XCAT_DTYPE_F32, c + 1, 1, NULL);
    xcat_tensor *w_short = test_tensor(ctx, XCAT_DTYPE_F32, n - 1, 1, NULL);
    xcat_tensor *matrix = test_tensor(ctx, XCAT_DTYPE_I64, 2, n, NULL);

    xcat_loss_args args = fx->args;
    args.hidden = h_i32;
    expect_call_error(fx, &args, XCAT_ERROR_DTYPE_MISMATCH, NULL, "hidden I32");
    args.hidden = h_wide;
    expect_call_error(fx, &args, XCAT_ERROR_SHAPE_MISMATCH, NULL, "hidden cols != d");
    args = fx->args;
    args.items = e_short;
    expect_call_error(fx, &args, XCAT_ERROR_SHAPE_MISMATCH, NULL, "items rows != C");
    args = fx->args;
    args.targets = y_short;
    expect_call_error(fx, &args, XCAT_ERROR_SHAPE_MISMATCH, NULL, "targets length != N");
    args.targets = y_f32;
    expect_call_error(fx, &args, XCAT_ERROR_DTYPE_MISMATCH, NULL, "targets F32");
    args.targets = matrix;
    expect_call_error(fx, &args, XCAT_ERROR_SHAPE_MISMATCH, NULL, "targets 2×N");
    args = fx->args;
    args.bias = b_long;
    expect_call_error(fx, &args, XCAT_ERROR_SHAPE_MISMATCH, NULL, "bias length != C");
    args = fx->args;
    args.row_weights = w_short;
    expect_call_error(fx, &args, XCAT_ERROR_SHAPE_MISMATCH, NULL, "row_weights length != N");

    /* N > max_rows: a plan for n rows given n + 1 (with matching targets). */
    xcat_tensor *y_tall = test_tensor(ctx, XCAT_DTYPE_I64, n + 1, 1, NULL);
    xcat_tensor *w_tall = test_tensor(ctx, XCAT_DTYPE_F32, n + 1, 1, NULL);
    args = fx->args;
    args.hidden = h_tall;
    args.targets = y_tall;
    args.row_weights = w_tall;
    test_expect_error(ctx, xcat_loss_forward(fx->plan, &args, fx->loss, NULL),
                      XCAT_ERROR_SHAPE_MISMATCH, NULL, "N > max_rows");

    TEST_FREE_TENSORS(h_i32, h_wide, h_tall, e_short, y_short, y_f32, b_long, w_short, matrix,
                      y_tall, w_tall);
}

START_TEST(test_call_errors_shapes)
{
    call_errors_shapes(&g_err);
}
END_TEST

static void call_errors_outputs(ce_fixture *fx)
{
    xcat_context *ctx = fx->ctx;
    const int64_t n = ERROR_CASE.n, c = ERROR_CASE.c, d = ERROR_CASE.d;
    xcat_tensor *vec_n = test_tensor(ctx, XCAT_DTYPE_F32, n, 1, NULL);
    xcat_tensor *vec_short = test_tensor(ctx, XCAT_DTYPE_F32, n - 1, 1, NULL);
    xcat_tensor *scalar_i32 = test_tensor(ctx, XCAT_DTYPE_I32, 1, 1, NULL);
    xcat_tensor *dh_bad = test_tensor(ctx, XCAT_DTYPE_F32, n, d + 2, NULL);
    xcat_tensor *de_bad = test_tensor(ctx, XCAT_DTYPE_F32, c + 1, d, NULL);
    xcat_tensor *db_bad = test_tensor(ctx, XCAT_DTYPE_F32, c - 1, 1, NULL);
    const xcat_loss_args *a = &fx->args;

    test_expect_error(ctx, xcat_loss_forward(fx->plan, a, vec_n, NULL), XCAT_ERROR_SHAPE_MISMATCH,
                      NULL, "MEAN loss of N elements");
    test_expect_error(ctx, xcat_loss_forward(fx->plan, a, scalar_i32, NULL),
                      XCAT_ERROR_DTYPE_MISMATCH, NULL, "loss I32");
    test_expect_error(ctx, xcat_loss_forward(fx->plan, a, fx->loss, vec_short),
                      XCAT_ERROR_SHAPE_MISMATCH, NULL, "lse of N-1");
    test_expect_error(ctx, xcat_loss_backward(fx->plan, a, vec_n, fx->dh, NULL, NULL),
                      XCAT_ERROR_SHAPE_MISMATCH, NULL, "MEAN grad_loss of N elements");
    test_expect_error(ctx, xcat_loss_backward(fx->plan, a, scalar_i32, fx->dh, NULL, NULL),
                      XCAT_ERROR_DTYPE_MISMATCH, NULL, "grad_loss I32");
    test_expect_error(ctx, xcat_loss_backward(fx->plan, a, NULL, dh_bad, NULL, NULL),
                      XCAT_ERROR_SHAPE_MISMATCH, NULL, "d_hidden shape");
    test_expect_error(ctx, xcat_loss_backward(fx->plan, a, NULL, NULL, de_bad, NULL),
                      XCAT_ERROR_SHAPE_MISMATCH, NULL, "d_items shape");
    test_expect_error(ctx, xcat_loss_backward(fx->plan, a, NULL, NULL, NULL, db_bad),
                      XCAT_ERROR_SHAPE_MISMATCH, NULL, "d_bias shape");

    /* NONE: the loss and grad_loss are vectors of N; a 1×1 one is a mismatch. */
    xcat_loss_desc none = fx->desc;
    none.reduction = XCAT_REDUCTION_NONE;
    xcat_loss_plan *plan = NULL;
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &none, n, c, d, &plan), "NONE plan");
    test_expect_error(ctx, xcat_loss_forward(plan, a, fx->loss, NULL), XCAT_ERROR_SHAPE_MISMATCH,
                      NULL, "NONE loss 1×1");
    test_expect_error(ctx, xcat_loss_backward(plan, a, fx->loss, fx->dh, NULL, NULL),
                      XCAT_ERROR_SHAPE_MISMATCH, NULL, "NONE grad_loss 1×1");
    test_expect_error(ctx, xcat_loss_backward(plan, a, vec_short, fx->dh, NULL, NULL),
                      XCAT_ERROR_SHAPE_MISMATCH, NULL, "NONE grad_loss of N-1");
    test_expect_ok(ctx, xcat_loss_forward(plan, a, vec_n, NULL), "NONE forward");
    xcat_loss_plan_free(plan);

    TEST_FREE_TENSORS(vec_n, vec_short, scalar_i32, dh_bad, de_bad, db_bad);
}

START_TEST(test_call_errors_outputs)
{
    call_errors_outputs(&g_err);
}
END_TEST

/* Targets out of range, as I64 and as I32: OUT_OF_RANGE naming the first bad row. */
static void expect_bad_target(ce_fixture *fx, int64_t row, int64_t value)
{
    char what[96], needle[32];
    const int64_t saved = fx->y[row], saved_next = fx->y[row + 1];
    fx->y[row] = value;
    fx->y[row + 1] = fx->cs.c + 7; /* a later bad row: the message must name the first */
    xcat_tensor *y64 = test_tensor(fx->ctx, XCAT_DTYPE_I64, fx->cs.n, 1, fx->y);
    int32_t y32[64];
    for (int64_t i = 0; i < fx->cs.n; ++i)
        y32[i] = (int32_t)fx->y[i];
    xcat_tensor *y32t = test_tensor(fx->ctx, XCAT_DTYPE_I32, fx->cs.n, 1, y32);
    snprintf(needle, sizeof needle, "row %lld", (long long)row);
    xcat_loss_args args = fx->args;
    args.targets = y64;
    snprintf(what, sizeof what, "I64 target %lld at row %lld", (long long)value, (long long)row);
    expect_call_error(fx, &args, XCAT_ERROR_OUT_OF_RANGE, needle, what);
    args.targets = y32t;
    snprintf(what, sizeof what, "I32 target %lld at row %lld", (long long)value, (long long)row);
    if (value >= INT32_MIN && value <= INT32_MAX)
        expect_call_error(fx, &args, XCAT_ERROR_OUT_OF_RANGE, needle, what);
    xcat_tensor_free(y64);
    xcat_tensor_free(y32t);
    fx->y[row] = saved;
    fx->y[row + 1] = saved_next;
}

static void call_errors_targets(ce_fixture *fx)
{
    expect_bad_target(fx, 5, ERROR_CASE.c);
    expect_bad_target(fx, 5, -3);
    expect_bad_target(fx, 0, INT64_C(1) << 40);
    expect_bad_target(fx, 3, -101); /* next to ignore_index -100 */
}

START_TEST(test_call_errors_targets)
{
    call_errors_targets(&g_err);
}
END_TEST

/* The errors of plan creation and of the loss calls, the workspace checks, on an OpenCL target
 * (one context for all: the CPU runs them as separate tests above). Targets are validated on
 * the host after a read-back there, so OUT_OF_RANGE and the weights' sum take another path. */
START_TEST(test_errors_on_target)
{
    xcat_context *ctx = test_target_context(_i, 1);
    if (!ctx)
        return;
    ce_fixture fx;
    fx_init(&fx, &ERROR_CASE, ctx, 0, 0);
    call_errors_null(&fx);
    call_errors_shapes(&fx);
    call_errors_outputs(&fx);
    call_errors_targets(&fx);
    fx_free(&fx);
    plan_error_checks(ctx);
    workspace_checks(ctx);
    xcat_context_free(ctx);
}
END_TEST

/* ---- CPU vs OpenCL ---------------------------------------------------------------------------- */
/*
 * Both backends evaluate the same fp32 formulas with different tilings and summation orders,
 * so on the same inputs they may differ by rounding only. For each output X (loss, LSE, dH,
 * dE, db) the difference is measured as
 *
 *     err(X) = max_k |X_opencl[k] − X_cpu[k]| / max_k |X_cpu[k]|
 *
 * i.e. the worst element's difference relative to the largest magnitude in the tensor, not
 * to the element itself: a gradient element near 0 is a sum of cancelling terms whose rounding
 * error scales with the size of those terms (≈ the tensor's scale), not with its tiny value, so
 * an elementwise relative error would be meaningless there. The K-term fp32 sums here
 * (K ≤ 2500 items for dH, ≤ 300 rows for dE, db) round to err ≈ √K·u ≈ 1e-7..3e-6 (u = 6e-8;
 * on PoCL, over 30 seeds: loss, LSE ≤ 2e-7, dE, db ≤ 1e-6, dH ≤ 4e-6 in the 2500-item softcap
 * case, where 1 − (z/c)² amplifies the ulp differences of the two tanh), so AGREE_TOL = 1e-5
 * leaves headroom, while any real divergence (a tile missed, a term scaled wrongly) is ≥ 1e-3.
 * Keep K in that range: the 70001-item case lives in the reference table (GRAD_TOL). An
 * all-zero tensor must be matched exactly. Each backend must also reproduce its own results
 * bit for bit on a second forward + backward.
 */
static const ce_case AGREE_CASES[] = {
    {"agree all MEAN", 67, 259, 21, MEAN, OPT_ALL, 1.7f, 4.0f, 0.1f, 1e-3f, 0.2},
    {"agree all SUM", 67, 259, 21, SUM, OPT_ALL, 0.8f, 2.5f, 0.05f, 1e-2f, 0.2},
    {"agree all NONE", 67, 259, 21, NONE, OPT_ALL | OPT_ROWVEC, 1.3f, 5.0f, 0.2f, 1e-3f, 0.2},
    {"agree all MEAN ignore_index 4", 33, 11, 9, MEAN, OPT_ALL, 1.1f, 3.0f, 0.1f, 1e-3f, 0, 4},
    {"agree no options", 130, 1000, 64, MEAN, OPT_LSE},
    {"agree all NONE large", 300, 2500, 96, NONE, OPT_ALL, 1.2f, 6.0f, 0.1f, 1e-4f, 0.1},
};
#define NUM_AGREE_CASES ((int)(sizeof AGREE_CASES / sizeof AGREE_CASES[0]))

/* err(X) as defined above; fails the test when it reaches AGREE_TOL. Returns err. */
static double expect_agree(const char *tag, const char *what, const float *cpu,
                           const float *ocl, int64_t count)
{
    if (!cpu && !ocl)
        return 0.0;
    ck_assert_msg(cpu && ocl, "%s: %s computed on one backend only", tag, what);
    double scale = 0.0, worst = 0.0;
    int64_t at = 0;
    for (int64_t k = 0; k < count; ++k) {
        ck_assert_msg(isfinite(cpu[k]) && isfinite(ocl[k]),
                      "%s: %s[%lld] not finite: cpu %g, opencl %g", tag, what, (long long)k,
                      (double)cpu[k], (double)ocl[k]);
        scale = fmax(scale, fabs((double)cpu[k]));
        const double diff = fabs((double)ocl[k] - (double)cpu[k]);
        if (diff > worst) {
            worst = diff;
            at = k;
        }
    }
    if (scale == 0.0) {
        ck_assert_msg(worst == 0.0, "%s: %s is all zero on the CPU but element %lld is %.9g on "
                      "OpenCL", tag, what, (long long)at, (double)ocl[at]);
        return 0.0;
    }
    const double err = worst / scale;
    ck_assert_msg(err < AGREE_TOL,
                  "%s: %s: CPU and OpenCL differ by %.3g of max|X| = %.6g (tolerance %.0e): "
                  "worst element %lld of %lld: cpu %.9g, opencl %.9g", tag, what, err, scale,
                  AGREE_TOL, (long long)at, (long long)count, (double)cpu[at], (double)ocl[at]);
    return err;
}

/* Forward + backward twice on fx; the second run must equal the first bit for bit. */
static ce_outputs run_twice(ce_fixture *fx)
{
    fx_forward(fx);
    fx_backward(fx);
    ce_outputs first = fx_collect(fx);
    fx_forward(fx);
    fx_backward(fx);
    ce_outputs second = fx_collect(fx);
    expect_same_outputs(fx->tag, &first, &second, 1);
    outputs_free(&second);
    return first;
}

START_TEST(test_backends_agree)
{
    xcat_context *ocl = test_target_context(_i, 0);
    if (!ocl)
        return;
    xcat_context *cpu = test_context(-1, 2);
    double worst[5] = {0};
    static const char *const names[5] = {"loss", "lse", "d_hidden", "d_items", "d_bias"};
    for (int k = 0; k < NUM_AGREE_CASES; ++k) {
        ce_fixture a, b;
        fx_init(&a, &AGREE_CASES[k], cpu, 0, 0);
        fx_init(&b, &AGREE_CASES[k], ocl, 0, 0);
        ce_outputs oa = run_twice(&a), ob = run_twice(&b);
        const int64_t n = oa.n, c = oa.c, d = oa.d;
        const double errs[5] = {
            expect_agree(b.tag, names[0], oa.loss, ob.loss, oa.loss_len),
            expect_agree(b.tag, names[1], oa.lse, ob.lse, n),
            expect_agree(b.tag, names[2], oa.dh, ob.dh, n * d),
            expect_agree(b.tag, names[3], oa.de, ob.de, c * d),
            expect_agree(b.tag, names[4], oa.db, ob.db, c),
        };
        for (int m = 0; m < 5; ++m)
            worst[m] = fmax(worst[m], errs[m]);
        outputs_free(&oa);
        outputs_free(&ob);
        fx_free(&a);
        fx_free(&b);
    }
    printf("note: cpu vs %s, worst err(X) over %d cases: loss %.2g, lse %.2g, d_hidden %.2g, "
           "d_items %.2g, d_bias %.2g (tolerance %.0e)\n",
           test_target_get(_i)->name, NUM_AGREE_CASES, worst[0], worst[1], worst[2], worst[3],
           worst[4], AGREE_TOL);
    fflush(stdout);
    xcat_context_free(cpu);
    xcat_context_free(ocl);
}
END_TEST

/* Every tcase that has OpenCL iterations gets this timeout (seconds): a cold program cache
 * on PoCL compiles for several seconds per program, more under sanitizers. */
#define OPENCL_TCASE_TIMEOUT 300

static Suite *ce_suite(void)
{
    const int targets = test_num_targets(), first_opencl = test_first_opencl_target();
    Suite *s = suite_create("ce");
    TCase *ref = tcase_create("reference");
    tcase_set_timeout(ref, OPENCL_TCASE_TIMEOUT);
    tcase_add_loop_test(ref, test_ce_vs_reference, 0, targets);
    suite_add_tcase(s, ref);

    TCase *special = tcase_create("special");
    tcase_set_timeout(special, OPENCL_TCASE_TIMEOUT);
    tcase_add_loop_test(special, test_all_rows_ignored, 0, targets);
    tcase_add_loop_test(special, test_nan_row, 0, targets);
    tcase_add_loop_test(special, test_determinism, 0, targets);
    tcase_add_loop_test(special, test_backward_without_forward, 0, targets);
    tcase_add_loop_test(special, test_backward_other_args, 0, targets);
    tcase_add_loop_test(special, test_forward_only_plan, 0, targets);
    tcase_add_loop_test(special, test_forward_only_fused, 0, targets);
    tcase_add_loop_test(special, test_ragged_batch, 0, targets);
    tcase_add_loop_test(special, test_forward_backward, 0, targets);
    tcase_add_loop_test(special, test_partial_gradients, 0, targets);
    tcase_add_loop_test(special, test_finite_differences, 0, targets);
    suite_add_tcase(s, special);

    TCase *plans = tcase_create("plans");
    tcase_set_timeout(plans, 60);
    tcase_add_test(plans, test_workspace_size);
    tcase_add_test(plans, test_plan_errors);
    suite_add_tcase(s, plans);

    TCase *errors = tcase_create("call errors");
    tcase_set_timeout(errors, 60);
    tcase_add_checked_fixture(errors, error_fixture_setup, error_fixture_teardown);
    tcase_add_test(errors, test_call_errors_null);
    tcase_add_test(errors, test_call_errors_shapes);
    tcase_add_test(errors, test_call_errors_outputs);
    tcase_add_test(errors, test_call_errors_targets);
    suite_add_tcase(s, errors);

    TCase *device_errors = tcase_create("opencl errors");
    tcase_set_timeout(device_errors, OPENCL_TCASE_TIMEOUT);
    tcase_add_loop_test(device_errors, test_errors_on_target, first_opencl, targets);
    suite_add_tcase(s, device_errors);

    TCase *backends = tcase_create("backends");
    tcase_set_timeout(backends, OPENCL_TCASE_TIMEOUT);
    tcase_add_loop_test(backends, test_backends_agree, first_opencl, targets);
    tcase_add_loop_test(backends, test_tensor_core_gemms, first_opencl, targets);
    tcase_add_loop_test(backends, test_forward_backward_blocks, first_opencl, targets);
    suite_add_tcase(s, backends);
    return s;
}

int main(void)
{
    test_targets_init(); /* before the suite: its loop bounds depend on the target table */
    return test_run_suite(ce_suite());
}
