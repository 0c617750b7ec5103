/*
 * Suite "sampled": the sampled kinds (SAMPLED_CE with corrections NONE/UNIFORM/LOGQ, BCE, GBCE;
 * uniform, distinct, popularity and given negatives) on
 * every target against the float64 reference (tests/ref/sampled_ref.c), fed with the negatives
 * the call drew (xcat_loss_draw_negatives). The draws themselves are checked separately: against
 * a direct recomputation from cl/rng.cl (the one source every backend compiles), for
 * distinctness, and for uniform frequencies. Plus: sampled CE with all C−1 distinct negatives
 * equals full CE; bitwise determinism over thread counts; finite differences; every error.
 *
 * Tolerances as in the CE suite: losses 2e-5 relative to (1 + |LSE|), gradients 1e-4 of their
 * max-abs.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XCAT_RNG_HOST 1
#include "../cl/rng.cl"

#include "sampled_ref.h"
#include "test_util.h"

typedef struct scase {
    const char *name;
    xcat_loss_kind kind;
    xcat_sampler sampler;
    xcat_correction corr;
    int64_t n, c, d, k;
    uint32_t flags;
    xcat_reduction red;
    int bias, weights, row_items, pad;
    double ignore_frac;
    float scale, softcap, gbce_t;
} scase;

static const scase CASES[] = {
    {"ce_uniform", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 37, 501, 13, 20},
    {"ce_corr_bias_w", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_UNIFORM, 29, 97, 7, 33, 0, XCAT_REDUCTION_SUM, 1, 1, 0, 3, 0.2},
    {"ce_collisions", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 40, 6, 5, 9, 0, XCAT_REDUCTION_NONE, 0, 0, 1},
    {"ce_reject", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 40, 12, 5, 9, XCAT_LOSS_REJECT_HITS, XCAT_REDUCTION_MEAN, 1, 0, 1},
    {"ce_distinct_softcap", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 19, 300, 9, 64, XCAT_LOSS_DISTINCT_NEGATIVES, XCAT_REDUCTION_MEAN, 1, 0, 1, 0, 0.1, 1.7f, 3.0f},
    {"ce_given_rows", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_GIVEN_PER_ROW, XCAT_CORRECTION_NONE, 23, 200, 11, 17, 0, XCAT_REDUCTION_MEAN, 1},
    {"ce_given_shared", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_GIVEN_SHARED, XCAT_CORRECTION_NONE, 31, 150, 6, 12, 0, XCAT_REDUCTION_NONE, 0, 1},
    {"bce", XCAT_LOSS_BCE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 33, 400, 10, 8, 0, XCAT_REDUCTION_MEAN, 1, 1, 0, 2, 0.1},
    {"gbce", XCAT_LOSS_GBCE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 25, 350, 8, 30, XCAT_LOSS_REJECT_HITS, XCAT_REDUCTION_SUM, 1, 0, 1, 0, 0.0, 1.0f, 0.0f, 0.75f},
    {"n1", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_UNIFORM, 1, 2, 3, 1},
    {"ce_pop_logq", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_POPULARITY, XCAT_CORRECTION_LOGQ, 27, 120, 6, 40, 0, XCAT_REDUCTION_MEAN, 1},
    {"ce_uniform_logq", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_LOGQ, 21, 90, 5, 16, XCAT_LOSS_REJECT_HITS, XCAT_REDUCTION_SUM},
    {"ce_given_logq", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_GIVEN_PER_ROW, XCAT_CORRECTION_LOGQ, 18, 60, 7, 10, 0, XCAT_REDUCTION_NONE, 1},
    {"bce_pop", XCAT_LOSS_BCE, XCAT_SAMPLER_POPULARITY, XCAT_CORRECTION_NONE, 22, 70, 6, 12, XCAT_LOSS_REJECT_HITS, XCAT_REDUCTION_MEAN, 0, 0, 1},
};
#define NUM_CASES ((int)(sizeof CASES / sizeof *CASES))

typedef struct sdata {
    float *H, *E, *b, *w;
    int64_t *counts; /* POPULARITY / LOGQ: item counts, some 0 */
    int64_t *y, *neg, *off, *items, nnz, kk; /* kk: the call's K */
    int64_t ld;
} sdata;

static xcat_loss_desc desc_of(const scase *s)
{
    xcat_loss_desc d;
    xcat_loss_desc_init(&d, s->kind);
    d.sampler = s->sampler;
    d.correction = s->corr;
    d.num_negatives = s->sampler == XCAT_SAMPLER_UNIFORM || s->sampler == XCAT_SAMPLER_POPULARITY
                          ? s->k : 0;
    d.flags = s->flags;
    d.reduction = s->red;
    d.scale = s->scale > 0 ? s->scale : 1.0f;
    d.softcap = s->softcap;
    d.gbce_t = s->gbce_t;
    d.seed = 0xC0FFEEull + (uint64_t)s->n;
    return d;
}

static void make(const scase *s, sdata *t)
{
    memset(t, 0, sizeof *t);
    t->ld = s->d + s->pad;
    t->H = test_alloc_floats(s->n * t->ld);
    t->E = test_alloc_floats(s->c * t->ld);
    test_fill_matrix(t->H, s->n, s->d, t->ld, -1.0f, 1.0f);
    test_fill_matrix(t->E, s->c, s->d, t->ld, -1.0f, 1.0f);
    if (s->bias) {
        t->b = test_alloc_floats(s->c);
        test_fill_matrix(t->b, 1, s->c, s->c, -0.5f, 0.5f);
    }
    if (s->weights) {
        t->w = test_alloc_floats(s->n);
        test_fill_matrix(t->w, 1, s->n, s->n, 0.2f, 2.0f);
    }
    t->y = test_alloc((size_t)s->n * sizeof *t->y);
    test_fill_targets(t->y, s->n, s->c, s->ignore_frac, -100);
    t->kk = s->k;
    if (s->sampler == XCAT_SAMPLER_POPULARITY || s->corr == XCAT_CORRECTION_LOGQ) {
        t->counts = test_alloc((size_t)s->c * sizeof *t->counts);
        for (int64_t j = 0; j < s->c; ++j)
            t->counts[j] = test_rand_int(0, 5) == 0 ? 0 : test_rand_int(1, 1000);
        t->counts[s->c - 1] = 7; /* never all zero */
    }
    if (s->sampler == XCAT_SAMPLER_GIVEN_PER_ROW || s->sampler == XCAT_SAMPLER_GIVEN_SHARED) {
        const int64_t rows = s->sampler == XCAT_SAMPLER_GIVEN_PER_ROW ? s->n : 1;
        t->neg = test_alloc((size_t)(rows * s->k) * sizeof *t->neg);
        for (int64_t i = 0; i < rows * s->k; ++i)
            t->neg[i] = test_rand_int(0, 10) == 0 ? -1 : test_rand_int(0, s->c);
    }
    if (s->row_items) {
        t->off = test_alloc((size_t)(s->n + 1) * sizeof *t->off);
        t->items = test_alloc((size_t)(s->n * 4) * sizeof *t->items);
        t->off[0] = 0;
        for (int64_t i = 0; i < s->n; ++i) {
            int64_t m = test_rand_int(0, 4), *v = t->items + t->off[i];
            int64_t last = 0;
            for (int64_t j = 0; j < m; ++j) { /* ascending with repeats */
                last += test_rand_int(0, s->c / 3 + 1);
                v[j] = last < s->c ? last : s->c - 1;
                last = v[j];
            }
            t->off[i + 1] = t->off[i] + m;
        }
        t->nnz = t->off[s->n];
    }
}

static void unmake(sdata *t)
{
    free(t->H), free(t->E), free(t->b), free(t->w), free(t->y), free(t->neg), free(t->off),
        free(t->items), free(t->counts);
}

typedef struct stensors {
    xcat_tensor *H, *E, *b, *w, *y, *neg, *off, *items;
} stensors;

static void tensors(xcat_context *ctx, const scase *s, sdata *t, stensors *x)
{
    memset(x, 0, sizeof *x);
    x->H = test_input_matrix(ctx, s->n, s->d, t->ld, t->H);
    x->E = test_input_matrix(ctx, s->c, s->d, t->ld, t->E);
    if (t->b) x->b = test_tensor(ctx, XCAT_DTYPE_F32, s->c, 1, t->b);
    if (t->w) x->w = test_tensor(ctx, XCAT_DTYPE_F32, s->n, 1, t->w);
    x->y = test_tensor(ctx, XCAT_DTYPE_I64, s->n, 1, t->y);
    if (t->neg)
        x->neg = s->sampler == XCAT_SAMPLER_GIVEN_PER_ROW
                     ? test_tensor(ctx, XCAT_DTYPE_I64, s->n, s->k, t->neg)
                     : test_tensor(ctx, XCAT_DTYPE_I64, 1, s->k, t->neg);
    if (t->off) {
        x->off = test_tensor(ctx, XCAT_DTYPE_I64, s->n + 1, 1, t->off);
        x->items = test_tensor(ctx, XCAT_DTYPE_I64, t->nnz ? t->nnz : 1, 1,
                               t->nnz ? t->items : NULL);
    }
}

static void untensors(stensors *x)
{
    TEST_FREE_TENSORS(x->H, x->E, x->b, x->w, x->y, x->neg, x->off, x->items);
}

static xcat_loss_args args_of(const stensors *x, uint64_t step)
{
    xcat_loss_args a;
    xcat_loss_args_init(&a);
    a.hidden = x->H;
    a.items = x->E;
    a.bias = x->b;
    a.row_weights = x->w;
    a.targets = x->y;
    a.negatives = x->neg;
    a.row_items_offsets = x->off;
    a.row_items = x->items;
    a.step = step;
    return a;
}

static xcat_loss_plan *plan_create(xcat_context *ctx, const xcat_loss_desc *d, int64_t n,
                                   int64_t c, int64_t dim)
{
    xcat_loss_plan *p = NULL;
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, d, n, c, dim, &p), "plan");
    return p;
}

/* A plan for case s, with the case's item counts set when it has them. */
static xcat_loss_plan *plan_with_counts(xcat_context *ctx, const xcat_loss_desc *d,
                                        const scase *s, const sdata *t)
{
    xcat_loss_plan *p = plan_create(ctx, d, s->n, s->c, s->d);
    if (t->counts) {
        xcat_tensor *tc = test_tensor(ctx, XCAT_DTYPE_I64, s->c, 1, t->counts);
        test_expect_ok(ctx, xcat_loss_plan_set_item_counts(p, tc), "counts");
        xcat_tensor_free(tc);
    }
    return p;
}

static int64_t *read_i64(const xcat_tensor *t, int64_t count)
{
    int64_t *v = test_alloc((size_t)count * sizeof *v);
    ck_assert_int_eq(xcat_tensor_read(t, v, 0), XCAT_OK);
    return v;
}

static void run_reference_case(xcat_context *ctx, const scase *s)
{
    sdata t;
    make(s, &t);
    xcat_loss_desc d = desc_of(s);
    xcat_loss_plan *p = plan_create(ctx, &d, s->n, s->c, s->d);
    if (!p) {
        unmake(&t);
        return;
    }
    stensors x;
    tensors(ctx, s, &t, &x);
    double *logq = NULL;
    if (t.counts) {
        xcat_tensor *tc = test_tensor(ctx, XCAT_DTYPE_I64, s->c, 1, t.counts);
        test_expect_ok(ctx, xcat_loss_plan_set_item_counts(p, tc), "set_item_counts");
        xcat_tensor_free(tc);
        double sum = 0;
        for (int64_t j = 0; j < s->c; ++j) sum += (double)t.counts[j];
        logq = test_alloc_doubles(s->c);
        for (int64_t j = 0; j < s->c; ++j)
            logq[j] = t.counts[j] ? log((double)t.counts[j] / sum) : -INFINITY;
    }
    xcat_loss_args a = args_of(&x, 7);
    const int64_t nl = s->red == XCAT_REDUCTION_NONE ? s->n : 1;
    xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, nl, 1, NULL);
    xcat_tensor *S = s->kind == XCAT_LOSS_SAMPLED_CE ? test_tensor(ctx, XCAT_DTYPE_F32, s->n, 1, NULL)
                                                     : NULL;
    xcat_tensor *N = test_tensor(ctx, XCAT_DTYPE_I64, s->n, s->k, NULL);
    xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, s->n, s->d, NULL);
    xcat_tensor *dE = test_tensor(ctx, XCAT_DTYPE_F32, s->c, s->d, NULL);
    xcat_tensor *db = test_tensor(ctx, XCAT_DTYPE_F32, s->c, 1, NULL);
    test_expect_ok(ctx, xcat_loss_draw_negatives(p, &a, N), s->name);
    test_expect_ok(ctx, xcat_loss_forward(p, &a, L, S), s->name);
    test_expect_ok(ctx, xcat_loss_backward(p, &a, NULL, dH, dE, db), s->name);
    int64_t *neg = read_i64(N, s->n * s->k);
    sampled_ref_opts o = {.kind = s->kind, .reduction = s->red, .ignore_index = -100,
                          .scale = d.scale, .softcap = d.softcap,
                          .corr = s->corr == XCAT_CORRECTION_UNIFORM
                                      ? log((double)s->k / (double)(s->c - 1)) : 0.0,
                          .beta = s->kind == XCAT_LOSS_GBCE
                                      ? 1.0 - s->gbce_t * (1.0 - (double)s->k / (double)(s->c - 1))
                                      : 1.0,
                          .logq_on = s->corr == XCAT_CORRECTION_LOGQ,
                          .logk = log((double)s->k),
                          .logq = s->sampler == XCAT_SAMPLER_UNIFORM ? NULL : logq,
                          .logq_uniform = -log((double)s->c)};
    double *rl = test_alloc_doubles(nl), *rs = test_alloc_doubles(s->n);
    double *rH = test_alloc_doubles(s->n * s->d), *rE = test_alloc_doubles(s->c * s->d);
    double *rb = test_alloc_doubles(s->c);
    sampled_ref(&o, t.H, t.ld, t.E, t.ld, t.b, t.y, t.w, neg, s->n, s->c, s->d, s->k, NULL, rl,
                S ? rs : NULL, rH, rE, rb);
    /* masking rules: a drawn negative is never the positive or a listed row item */
    for (int64_t i = 0; i < s->n; ++i)
        for (int64_t k = 0; k < s->k; ++k) {
            const int64_t v = neg[i * s->k + k];
            if (v < 0 || t.y[i] == -100) continue;
            ck_assert_msg(v != t.y[i], "%s: row %lld negative %lld is the positive", s->name,
                          (long long)i, (long long)k);
            if (t.off)
                for (int64_t e = t.off[i]; e < t.off[i + 1]; ++e) ck_assert(v != t.items[e]);
            if (s->sampler == XCAT_SAMPLER_POPULARITY)
                ck_assert_msg(t.counts[v] > 0, "%s: drew item %lld of count 0", s->name,
                              (long long)v);
        }
    double lmax = 1.0;
    for (int64_t i = 0; S && i < s->n; ++i) lmax = fmax(lmax, fabs(rs[i]));
    float *gl = test_read_floats(L);
    test_check_close("loss", gl, rl, nl, 2e-5 * (1.0 + lmax), 2e-5);
    if (S) {
        float *gs = test_read_floats(S);
        test_check_close("lse", gs, rs, s->n, 2e-5 * (1.0 + lmax), 2e-5);
        free(gs);
    }
    float *gH = test_read_floats(dH), *gE = test_read_floats(dE), *gb = test_read_floats(db);
    test_check_close("dH", gH, rH, s->n * s->d, 1e-4 * test_max_abs(rH, s->n * s->d) + 1e-7, 1e-4);
    test_check_close("dE", gE, rE, s->c * s->d, 1e-4 * test_max_abs(rE, s->c * s->d) + 1e-7, 1e-4);
    test_check_close("db", gb, rb, s->c, 1e-4 * test_max_abs(rb, s->c) + 1e-7, 1e-4);
    free(gl), free(gH), free(gE), free(gb), free(neg), free(rl), free(rs), free(rH), free(rE),
        free(rb), free(logq);
    TEST_FREE_TENSORS(L, S, N, dH, dE, db);
    untensors(&x);
    xcat_loss_plan_free(p);
    unmake(&t);
}

START_TEST(test_reference)
{
    xcat_context *ctx = test_target_context(_i, 0);
    if (!ctx) return;
    for (int ci = 0; ci < NUM_CASES; ++ci) {
        test_rng_stream(CASES[ci].name, 0);
        run_reference_case(ctx, &CASES[ci]);
    }
    xcat_context_free(ctx);
}
END_TEST

/* The draws are exactly cl/rng.cl's (the source every backend compiles), step changes them,
 * and ignored rows' "positives" mask nothing. */
START_TEST(test_draws_match_rng_source)
{
    xcat_context *ctx = test_context(-1, 0);
    const scase s = {"draws", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE,
                     50, 1000, 4, 64};
    test_rng_stream("draws", 0);
    sdata t;
    make(&s, &t);
    xcat_loss_desc d = desc_of(&s);
    xcat_loss_plan *p = plan_create(ctx, &d, s.n, s.c, s.d);
    stensors x;
    tensors(ctx, &s, &t, &x);
    xcat_tensor *N = test_tensor(ctx, XCAT_DTYPE_I32, s.n, s.k, NULL);
    int changed = 0;
    for (uint64_t step = 0; step < 2; ++step) {
        xcat_loss_args a = args_of(&x, step);
        test_expect_ok(ctx, xcat_loss_draw_negatives(p, &a, N), "draw");
        int32_t *v = test_alloc((size_t)(s.n * s.k) * sizeof *v);
        ck_assert_int_eq(xcat_tensor_read(N, v, 0), XCAT_OK);
        for (int64_t i = 0; i < s.n; ++i)
            for (int64_t k = 0; k < s.k; ++k) {
                int64_t want = xr_draw_uniform(d.seed, step, (uint32_t)i, (uint32_t)k, 0,
                                               (uint32_t)s.c);
                if (want == t.y[i]) want = -1;
                ck_assert_int_eq(v[i * s.k + k], want);
                changed += step == 1 && want != xr_draw_uniform(d.seed, 0, (uint32_t)i,
                                                                (uint32_t)k, 0, (uint32_t)s.c);
            }
        free(v);
    }
    ck_assert_int_gt(changed, s.n * s.k / 2);
    xcat_tensor_free(N);
    untensors(&x);
    xcat_loss_plan_free(p);
    unmake(&t);
    xcat_context_free(ctx);
}
END_TEST

/* Loss, dH, dE and db of one forward + backward, concatenated (grads_total floats). */
static int64_t grads_total(const scase *s)
{
    return 1 + s->n * s->d + s->c * s->d + s->c;
}

static float *run_grads(xcat_context *ctx, xcat_loss_plan *p, const scase *s, const stensors *x)
{
    xcat_loss_args a = args_of(x, 5);
    xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
    xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, s->n, s->d, NULL);
    xcat_tensor *dE = test_tensor(ctx, XCAT_DTYPE_F32, s->c, s->d, NULL);
    xcat_tensor *db = test_tensor(ctx, XCAT_DTYPE_F32, s->c, 1, NULL);
    test_expect_ok(ctx, xcat_loss_forward(p, &a, L, NULL), "forward");
    test_expect_ok(ctx, xcat_loss_backward(p, &a, NULL, dH, dE, db), "backward");
    float *v = test_alloc_floats(grads_total(s));
    ck_assert_int_eq(xcat_tensor_read(L, v, 0), XCAT_OK);
    ck_assert_int_eq(xcat_tensor_read(dH, v + 1, 0), XCAT_OK);
    ck_assert_int_eq(xcat_tensor_read(dE, v + 1 + s->n * s->d, 0), XCAT_OK);
    ck_assert_int_eq(xcat_tensor_read(db, v + 1 + (s->n + s->c) * s->d, 0), XCAT_OK);
    TEST_FREE_TENSORS(L, dH, dE, db);
    return v;
}

/* Every backend draws the same negatives for the same seed, bit for bit (uniform, distinct,
 * popularity with rejection and listed row items), and an OpenCL target's forward/backward are
 * bitwise reproducible run to run. */
START_TEST(test_draws_across_backends)
{
    static const scase draw_cases[] = {
        {"x_uniform", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 37, 901, 5,
         50, XCAT_LOSS_REJECT_HITS, XCAT_REDUCTION_MEAN, 0, 0, 1},
        {"x_distinct", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 21, 300,
         5, 120, XCAT_LOSS_DISTINCT_NEGATIVES, XCAT_REDUCTION_MEAN, 0, 0, 1},
        {"x_popularity", XCAT_LOSS_BCE, XCAT_SAMPLER_POPULARITY, XCAT_CORRECTION_NONE, 29, 500, 5,
         40, XCAT_LOSS_REJECT_HITS, XCAT_REDUCTION_SUM, 1, 1, 1, 0, 0.1},
    };
    for (size_t ci = 0; ci < sizeof draw_cases / sizeof *draw_cases; ++ci) {
        const scase *s = &draw_cases[ci];
        test_rng_stream(s->name, 0);
        sdata t;
        make(s, &t);
        xcat_loss_desc d = desc_of(s);
        int64_t *base = NULL;
        for (int i = -1; i < test_num_targets(); ++i) {
            if (i >= 0 && i < test_first_opencl_target()) continue;
            xcat_context *ctx = i < 0 ? test_context(XCAT_ISA_SCALAR, 1) : test_target_context(i, 0);
            if (!ctx) continue;
            xcat_loss_plan *p = plan_with_counts(ctx, &d, s, &t);
            stensors x;
            tensors(ctx, s, &t, &x);
            xcat_loss_args a = args_of(&x, 5);
            xcat_tensor *N = test_tensor(ctx, XCAT_DTYPE_I64, s->n, s->k, NULL);
            test_expect_ok(ctx, xcat_loss_draw_negatives(p, &a, N), s->name);
            int64_t *v = read_i64(N, s->n * s->k);
            if (!base) {
                base = v;
            } else {
                ck_assert_msg(memcmp(base, v, (size_t)(s->n * s->k) * sizeof *v) == 0,
                              "%s: target %d draws differently from the CPU", s->name, i);
                free(v);
                /* run-to-run reproducibility of the loss and the gradients on this target */
                const int64_t total = grads_total(s);
                float *r0 = run_grads(ctx, p, s, &x), *r1 = run_grads(ctx, p, s, &x);
                ck_assert_msg(memcmp(r0, r1, (size_t)total * sizeof(float)) == 0,
                              "%s: target %d is not reproducible", s->name, i);
                free(r0), free(r1);
            }
            xcat_tensor_free(N);
            untensors(&x);
            xcat_loss_plan_free(p);
            xcat_context_free(ctx);
        }
        free(base);
        unmake(&t);
    }
}
END_TEST

/* OpenCL in the GPU layout on any device: several lanes per candidate's dot product, the
 * per-item sums of the dE step, and a popularity sampler's hot items summed by GEMM. */
START_TEST(test_reference_teams)
{
    xcat_context *ctx = test_target_context_flags(_i, 0, 0); /* reads the knobs */
    if (!ctx) return;
    if (test_context_backend(ctx) == XCAT_BACKEND_OPENCL) {
        setenv("XCAT_CL_SAMPLED_TEAM", "4", 1);
        setenv("XCAT_CL_SAMPLED_ITEMS", "1", 1);
        setenv("XCAT_CL_SAMPLED_HOT_MIN", "0.5", 1); /* popularity cases: many hot items */
        for (int ci = 0; ci < NUM_CASES; ++ci) run_reference_case(ctx, &CASES[ci]);
        unsetenv("XCAT_CL_SAMPLED_TEAM");
        unsetenv("XCAT_CL_SAMPLED_ITEMS");
        unsetenv("XCAT_CL_SAMPLED_HOT_MIN");
    }
    xcat_context_free(ctx);
}
END_TEST

/* Shared candidates (GIVEN_SHARED, in-batch) through GEMMs agree with the gathered dot
 * products they replace, on the CPU and every OpenCL target (XCAT_CPU_SHARED_GATHER=1 /
 * XCAT_CL_SAMPLED_GATHER=1, read by contexts without IGNORE_ENV). */
START_TEST(test_shared_gemm_matches_gather)
{
    static const scase cases[] = {
        {"gemm_shared", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_GIVEN_SHARED, XCAT_CORRECTION_NONE, 61,
         150, 9, 17, 0, XCAT_REDUCTION_MEAN, 1, 1, 1, 2, 0.1},
        {"gemm_inbatch", XCAT_LOSS_INBATCH, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 75, 120,
         7, 3, 0, XCAT_REDUCTION_SUM, 1, 1, 1, 1, 0.1, 1.3f, 4.0f},
    };
    for (int ti = -1; ti < test_num_targets(); ++ti) {
        if (ti >= 0 && ti < test_first_opencl_target()) continue;
        xcat_context *ctx = NULL;
        if (ti < 0) {
            xcat_context_options opt;
            xcat_context_options_init(&opt);
            opt.backend = XCAT_BACKEND_CPU;
            opt.num_threads = 2;
            ck_assert_int_eq(xcat_context_create(&opt, &ctx), XCAT_OK);
        } else {
            ctx = test_target_context_flags(ti, 0, 0);
            if (!ctx) continue;
        }
        for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ++ci) {
            const scase *s = &cases[ci];
            test_rng_stream(s->name, 0);
            sdata t;
            make(s, &t);
            xcat_loss_desc d = desc_of(s);
            stensors x;
            tensors(ctx, s, &t, &x);
            xcat_loss_plan *p = plan_create(ctx, &d, s->n, s->c, s->d);
            float *gemm = run_grads(ctx, p, s, &x);
            setenv("XCAT_CPU_SHARED_GATHER", "1", 1);
            setenv("XCAT_CL_SAMPLED_GATHER", "1", 1);
            float *gath = run_grads(ctx, p, s, &x);
            unsetenv("XCAT_CPU_SHARED_GATHER");
            unsetenv("XCAT_CL_SAMPLED_GATHER");
            const int64_t total = grads_total(s);
            double num = 0, den = 0;
            int differ = 0;
            for (int64_t q = 0; q < total; ++q) {
                num += ((double)gemm[q] - gath[q]) * ((double)gemm[q] - gath[q]);
                den += (double)gath[q] * gath[q];
                differ |= gemm[q] != gath[q];
            }
            ck_assert_msg(sqrt(num) <= 1e-5 * sqrt(den), "%s (target %d): GEMM vs gather %g",
                          s->name, ti, sqrt(num / den));
            ck_assert_msg(differ, "%s (target %d): bitwise equal: the knob did not switch paths",
                          s->name, ti);
            free(gemm), free(gath);
            xcat_loss_plan_free(p);
            untensors(&x);
            unmake(&t);
        }
        xcat_context_free(ctx);
    }
}
END_TEST

/* OpenCL: many small row chunks and sort blocks (testing knobs, read at plan creation) give
 * the same bits as the defaults: every sum keeps its (row, t) order (per-item sums: the same
 * bits whatever the sort blocks). */
START_TEST(test_chunking_invariant)
{
    xcat_context *ctx = test_target_context_flags(_i, 0, 0); /* reads the knobs */
    if (!ctx) return;
    if (test_context_backend(ctx) != XCAT_BACKEND_OPENCL) {
        xcat_context_free(ctx);
        return;
    }
    static const scase cases[] = {
        {"chunks_ce", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_UNIFORM, 45, 300,
         7, 25, 0, XCAT_REDUCTION_SUM, 1, 1, 1, 2, 0.2},
        {"chunks_pop", XCAT_LOSS_GBCE, XCAT_SAMPLER_POPULARITY, XCAT_CORRECTION_NONE, 33, 41, 5,
         30, XCAT_LOSS_REJECT_HITS, XCAT_REDUCTION_MEAN, 1, 0, 1, 0, 0.1, 1.0f, 0.0f, 0.5f},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ++ci) {
        const scase *s = &cases[ci];
        test_rng_stream(s->name, 0);
        sdata t;
        make(s, &t);
        xcat_loss_desc d = desc_of(s);
        stensors x;
        tensors(ctx, s, &t, &x);
        /* items 0: entry-order sums (any chunks, any blocks); items 1: per-item sums, whose
         * rounding follows the row chunks (fixed per plan) but not the sort blocks */
        for (int items = 0; items < 2; ++items) {
            setenv("XCAT_CL_SAMPLED_ITEMS", items ? "1" : "0", 1);
            float *res[2];
            for (int v = 0; v < 2; ++v) {
                if (v) {
                    if (!items) setenv("XCAT_CL_SAMPLED_ENTRIES", "97", 1); /* 3 rows a chunk */
                    setenv("XCAT_CL_SAMPLED_BLOCK", "13", 1);
                }
                xcat_loss_plan *p = plan_with_counts(ctx, &d, s, &t);
                res[v] = run_grads(ctx, p, s, &x);
                xcat_loss_plan_free(p);
            }
            unsetenv("XCAT_CL_SAMPLED_ENTRIES");
            unsetenv("XCAT_CL_SAMPLED_BLOCK");
            ck_assert_msg(memcmp(res[0], res[1], (size_t)grads_total(s) * sizeof(float)) == 0,
                          "%s (items %d): chunking changed the result", s->name, items);
            free(res[0]), free(res[1]);
        }
        unsetenv("XCAT_CL_SAMPLED_ITEMS");
        untensors(&x);
        unmake(&t);
    }
    xcat_context_free(ctx);
}
END_TEST

/* Uniform frequencies: a chi-square over C buckets of N·K draws, fixed seed (reproducible);
 * distinct draws: no repeats within a row, never the positive, a permutation when K = C − 1. */
START_TEST(test_sampler_statistics)
{
    const uint32_t C = 97;
    const int64_t draws = 200000;
    int64_t cnt[97] = {0};
    for (int64_t r = 0; r < draws / 100; ++r)
        for (uint32_t k = 0; k < 100; ++k) ++cnt[xr_draw_uniform(42, 3, (uint32_t)r, k, 0, C)];
    double chi = 0.0, e = (double)draws / C;
    for (uint32_t j = 0; j < C; ++j) chi += (cnt[j] - e) * (cnt[j] - e) / e;
    /* 96 degrees of freedom: mean 96, sd 13.9; 160 is ~4.6 sd out */
    ck_assert_msg(chi < 160.0, "uniform sampler chi-square %.1f over 96 dof", chi);
    for (uint32_t n = 2; n < 300; n += 17) {
        const uint32_t y = n / 3;
        xr_perm p = xr_perm_make(9, 1, n, n - 1);
        char seen[300] = {0};
        for (uint32_t k = 0; k < n - 1; ++k) {
            uint32_t v = xr_draw_distinct(&p, k, y);
            ck_assert(v < n && v != y && !seen[v]);
            seen[v] = 1;
        }
    }
}
END_TEST

/* ---- XCAT_LOSS_INBATCH against its own float64 reference --------------------------------- */

typedef struct ibcase {
    const char *name;
    xcat_correction corr;
    xcat_sampler sampler; /* of the extras */
    int64_t n, c, d, k;   /* k: extra negatives */
    xcat_reduction red;
    int row_items;
    float scale, softcap;
} ibcase;

static const ibcase IB_CASES[] = {
    {"inbatch_plain", XCAT_CORRECTION_NONE, XCAT_SAMPLER_IN_BATCH, 33, 25, 6, 0, XCAT_REDUCTION_MEAN},
    {"inbatch_logq", XCAT_CORRECTION_LOGQ, XCAT_SAMPLER_IN_BATCH, 29, 40, 5, 0, XCAT_REDUCTION_SUM, 1},
    {"inbatch_corrected", XCAT_CORRECTION_LOGQ_CORRECTED, XCAT_SAMPLER_IN_BATCH, 31, 30, 7, 0, XCAT_REDUCTION_NONE, 0, 1.5f, 4.0f},
    {"mixed_logq_uniform", XCAT_CORRECTION_LOGQ, XCAT_SAMPLER_UNIFORM, 17, 60, 4, 5, XCAT_REDUCTION_MEAN},
    {"mixed_corrected_pop", XCAT_CORRECTION_LOGQ_CORRECTED, XCAT_SAMPLER_POPULARITY, 23, 50, 6, 4, XCAT_REDUCTION_MEAN, 1},
};

/* Reference of one INBATCH call; neg: the N×K extras as drawn (−1 masked), counts: Q. */
static void inbatch_ref(const ibcase *ic, const sdata *t, const int64_t *neg, double *loss,
                        double *lse, double *dH, double *dE, double *db)
{
    const int64_t n = ic->n, c = ic->c, d = ic->d, K = ic->k, T = K + n - 1;
    const double sc = ic->scale > 0 ? ic->scale : 1.0, cap = ic->softcap;
    const bool withq = ic->corr != XCAT_CORRECTION_NONE;
    double qsum = 0;
    for (int64_t j = 0; j < c; ++j) qsum += (double)t->counts[j];
    double wsum = 0, total = 0;
    for (int64_t i = 0; i < n; ++i) wsum += t->y[i] != -100;
    const double ms = ic->red == XCAT_REDUCTION_MEAN ? (wsum ? 1.0 / wsum : 0.0) : 1.0;
    memset(dH, 0, (size_t)(n * d) * sizeof *dH);
    memset(dE, 0, (size_t)(c * d) * sizeof *dE);
    memset(db, 0, (size_t)c * sizeof *db);
    int64_t *it = malloc((size_t)(T + 1) * sizeof *it);
    double *z = malloc((size_t)(T + 1) * sizeof *z), *cr = malloc((size_t)(T + 1) * sizeof *cr);
    double *phi = malloc((size_t)(T + 1) * sizeof *phi), *g = malloc((size_t)(T + 1) * sizeof *g);
    for (int64_t i = 0; i < n; ++i) {
        double li = 0, lsei = 0;
        const int64_t y = t->y[i];
        if (ic->red == XCAT_REDUCTION_NONE) loss[i] = 0;
        lse[i] = 0;
        if (y == -100) continue;
        const double Qp = (double)t->counts[y] / qsum;
        it[0] = y;
        for (int64_t k = 0; k < K; ++k) it[1 + k] = neg[i * K + k];
        int64_t at = K + 1;
        for (int64_t r = 0; r < n; ++r) {
            if (r == i) continue;
            int64_t v = t->y[r];
            bool m = v == -100 || v == y || (withq && t->counts[v] == 0);
            if (!m && t->off)
                for (int64_t e = t->off[i]; e < t->off[i + 1]; ++e) m |= t->items[e] == v;
            it[at++] = m ? -1 : v;
        }
        for (int64_t k = 0; k <= T; ++k) {
            if (it[k] < 0) continue;
            double r = t->b ? t->b[it[k]] : 0.0;
            for (int64_t u = 0; u < d; ++u) r += (double)t->H[i * t->ld + u] * t->E[it[k] * t->ld + u];
            r *= sc;
            z[k] = cap > 0 ? cap * tanh(r / cap) : r;
            phi[k] = cap > 0 ? sc * (1 - (z[k] / cap) * (z[k] / cap)) : sc;
            const double Q = (double)t->counts[it[k]] / qsum;
            cr[k] = !withq ? 0.0
                  : k <= K ? log((double)K) + (ic->sampler == XCAT_SAMPLER_POPULARITY ? log(Q) : -log((double)c))
                  : log(Q) - (ic->corr == XCAT_CORRECTION_LOGQ_CORRECTED ? log(1 - Qp) : 0.0);
        }
        const double zp = ic->corr == XCAT_CORRECTION_LOGQ ? z[0] - log(Qp) : z[0];
        if (ic->corr != XCAT_CORRECTION_LOGQ_CORRECTED) {
            double m = zp, s = 0;
            for (int64_t k = 1; k <= T; ++k) if (it[k] >= 0) m = fmax(m, z[k] - cr[k]);
            s = exp(zp - m);
            for (int64_t k = 1; k <= T; ++k) if (it[k] >= 0) s += exp(z[k] - cr[k] - m);
            lsei = m + log(s);
            li = lsei - zp;
            g[0] = exp(zp - lsei) - 1;
            for (int64_t k = 1; k <= T; ++k) g[k] = it[k] >= 0 ? exp(z[k] - cr[k] - lsei) : 0;
        } else {
            double m = -INFINITY, s = 0;
            for (int64_t k = 1; k <= T; ++k) if (it[k] >= 0) m = fmax(m, z[k] - cr[k]);
            if (m == -INFINITY) continue;
            for (int64_t k = 1; k <= T; ++k) if (it[k] >= 0) s += exp(z[k] - cr[k] - m);
            const double S = m + log(s), w = 1 - 1 / (1 + exp(S - z[0]));
            lsei = S;
            li = w * (S - z[0]);
            g[0] = -w;
            for (int64_t k = 1; k <= T; ++k) g[k] = it[k] >= 0 ? w * exp(z[k] - cr[k] - S) : 0;
        }
        if (ic->red == XCAT_REDUCTION_NONE) loss[i] = li; else total += li;
        lse[i] = lsei;
        for (int64_t k = 0; k <= T; ++k) {
            if (it[k] < 0) continue;
            const double cf = ms * g[k] * phi[k];
            for (int64_t u = 0; u < d; ++u) {
                dH[i * d + u] += cf * t->E[it[k] * t->ld + u];
                dE[it[k] * d + u] += cf * t->H[i * t->ld + u];
            }
            db[it[k]] += cf;
        }
    }
    if (ic->red != XCAT_REDUCTION_NONE) loss[0] = total * ms;
    free(it), free(z), free(cr), free(phi), free(g);
}

START_TEST(test_inbatch_reference)
{
    xcat_context *ctx = test_target_context(_i, 0);
    if (!ctx) return;
    for (size_t ci = 0; ci < sizeof IB_CASES / sizeof *IB_CASES; ++ci) {
        const ibcase *ic = &IB_CASES[ci];
        test_rng_stream(ic->name, 0);
        /* borrow the sampled-case data builder: bias on, ~15 % ignored rows, row items */
        const scase sc = {ic->name, XCAT_LOSS_INBATCH, XCAT_SAMPLER_UNIFORM, ic->corr, ic->n,
                          ic->c, ic->d, ic->k, 0, ic->red, 1, 0, ic->row_items, 0, 0.15};
        sdata t;
        make(&sc, &t);
        if (!t.counts) {
            t.counts = test_alloc((size_t)ic->c * sizeof *t.counts);
            for (int64_t j = 0; j < ic->c; ++j) t.counts[j] = test_rand_int(1, 100);
        }
        for (int64_t j = 0; j < ic->c; j += 9) t.counts[j] = 0; /* some Q = 0 */
        for (int64_t i = 0; i < ic->n; ++i)
            if (t.y[i] != -100 && t.counts[t.y[i]] == 0) t.counts[t.y[i]] = 3; /* Q(p) > 0 */
        xcat_loss_desc d;
        xcat_loss_desc_init(&d, XCAT_LOSS_INBATCH);
        d.sampler = ic->sampler;
        d.correction = ic->corr;
        d.num_negatives = ic->k;
        d.reduction = ic->red;
        d.scale = ic->scale > 0 ? ic->scale : 1.0f;
        d.softcap = ic->softcap;
        d.seed = 77;
        xcat_loss_plan *p = plan_create(ctx, &d, ic->n, ic->c, ic->d);
        if (!p) {
            unmake(&t);
            break;
        }
        stensors x;
        tensors(ctx, &sc, &t, &x);
        xcat_tensor *tc = test_tensor(ctx, XCAT_DTYPE_I64, ic->c, 1, t.counts);
        test_expect_ok(ctx, xcat_loss_plan_set_item_counts(p, tc), "counts");
        xcat_loss_args a = args_of(&x, 2);
        int64_t *neg = NULL;
        if (ic->k) {
            xcat_tensor *N = test_tensor(ctx, XCAT_DTYPE_I64, ic->n, ic->k, NULL);
            test_expect_ok(ctx, xcat_loss_draw_negatives(p, &a, N), "draw");
            neg = read_i64(N, ic->n * ic->k);
            xcat_tensor_free(N);
        }
        const int64_t nl = ic->red == XCAT_REDUCTION_NONE ? ic->n : 1;
        xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, nl, 1, NULL);
        xcat_tensor *S = test_tensor(ctx, XCAT_DTYPE_F32, ic->n, 1, NULL);
        xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, ic->n, ic->d, NULL);
        xcat_tensor *dE = test_tensor(ctx, XCAT_DTYPE_F32, ic->c, ic->d, NULL);
        xcat_tensor *db = test_tensor(ctx, XCAT_DTYPE_F32, ic->c, 1, NULL);
        test_expect_ok(ctx, xcat_loss_forward(p, &a, L, S), ic->name);
        test_expect_ok(ctx, xcat_loss_backward(p, &a, NULL, dH, dE, db), ic->name);
        double *rl = test_alloc_doubles(ic->n), *rs = test_alloc_doubles(ic->n);
        double *rH = test_alloc_doubles(ic->n * ic->d), *rE = test_alloc_doubles(ic->c * ic->d);
        double *rb = test_alloc_doubles(ic->c);
        inbatch_ref(ic, &t, neg, rl, rs, rH, rE, rb);
        double lmax = 1;
        for (int64_t i = 0; i < ic->n; ++i) lmax = fmax(lmax, fabs(rs[i]));
        float *gl = test_read_floats(L), *gs = test_read_floats(S), *gH = test_read_floats(dH);
        float *gE = test_read_floats(dE), *gb = test_read_floats(db);
        test_check_close(ic->name, gl, rl, nl, 2e-5 * (1 + lmax), 2e-5);
        test_check_close("inbatch lse", gs, rs, ic->n, 2e-5 * (1 + lmax), 2e-5);
        test_check_close("inbatch dH", gH, rH, ic->n * ic->d, 1e-4 * test_max_abs(rH, ic->n * ic->d) + 1e-7, 1e-4);
        test_check_close("inbatch dE", gE, rE, ic->c * ic->d, 1e-4 * test_max_abs(rE, ic->c * ic->d) + 1e-7, 1e-4);
        test_check_close("inbatch db", gb, rb, ic->c, 1e-4 * test_max_abs(rb, ic->c) + 1e-7, 1e-4);
        free(gl), free(gs), free(gH), free(gE), free(gb), free(rl), free(rs), free(rH), free(rE),
            free(rb), free(neg);
        TEST_FREE_TENSORS(tc, L, S, dH, dE, db);
        untensors(&x);
        xcat_loss_plan_free(p);
        unmake(&t);
    }
    xcat_context_free(ctx);
}
END_TEST

/* Popularity draws follow the counts: chi-square over the items of non-zero count (fixed seed;
 * every row ignored, so nothing is masked), and zero-count items are never drawn. */
START_TEST(test_popularity_frequencies)
{
    xcat_context *ctx = test_context(-1, 0);
    const int64_t n = 2000, c = 40, k = 100;
    xcat_loss_desc d;
    xcat_loss_desc_init(&d, XCAT_LOSS_SAMPLED_CE);
    d.sampler = XCAT_SAMPLER_POPULARITY;
    d.num_negatives = k;
    d.seed = 5;
    xcat_loss_plan *p = NULL;
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &d, n, c, 2, &p), "plan");
    int64_t counts[40], y[2000];
    for (int64_t j = 0; j < c; ++j) counts[j] = j % 7 == 3 ? 0 : 1 + (j * 37) % 50;
    for (int64_t i = 0; i < n; ++i) y[i] = -100;
    xcat_tensor *tc = test_tensor(ctx, XCAT_DTYPE_I64, c, 1, counts);
    xcat_tensor *ty = test_tensor(ctx, XCAT_DTYPE_I64, n, 1, y);
    xcat_tensor *tH = test_tensor(ctx, XCAT_DTYPE_F32, n, 2, NULL);
    xcat_tensor *tE = test_tensor(ctx, XCAT_DTYPE_F32, c, 2, NULL);
    xcat_tensor *N = test_tensor(ctx, XCAT_DTYPE_I32, n, k, NULL);
    test_expect_ok(ctx, xcat_loss_plan_set_item_counts(p, tc), "counts");
    xcat_loss_args a;
    xcat_loss_args_init(&a);
    a.hidden = tH, a.items = tE, a.targets = ty;
    test_expect_ok(ctx, xcat_loss_draw_negatives(p, &a, N), "draw");
    int32_t *v = test_alloc((size_t)(n * k) * sizeof *v);
    ck_assert_int_eq(xcat_tensor_read(N, v, 0), XCAT_OK);
    double hist[40] = {0}, total = 0;
    for (int64_t i = 0; i < n * k; ++i) hist[v[i]] += 1;
    for (int64_t j = 0; j < c; ++j) total += (double)counts[j];
    double chi = 0;
    int dof = -1;
    for (int64_t j = 0; j < c; ++j) {
        if (!counts[j]) {
            ck_assert_msg(hist[j] == 0, "item %lld of count 0 drawn", (long long)j);
            continue;
        }
        const double e = (double)(n * k) * counts[j] / total;
        chi += (hist[j] - e) * (hist[j] - e) / e;
        ++dof;
    }
    /* ~33 degrees of freedom: mean 33, sd 8.1; 75 is > 5 sd out */
    ck_assert_msg(chi < 75.0, "popularity chi-square %.1f over %d dof", chi, dof);
    free(v);
    TEST_FREE_TENSORS(tc, ty, tH, tE, N);
    xcat_loss_plan_free(p);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_item_count_errors)
{
    xcat_context *ctx = test_context(-1, 0);
    xcat_loss_desc d;
    xcat_loss_desc_init(&d, XCAT_LOSS_SAMPLED_CE);
    d.sampler = XCAT_SAMPLER_POPULARITY;
    d.num_negatives = 3;
    xcat_loss_plan *p = NULL, *pce = NULL;
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &d, 2, 5, 2, &p), "plan");
    int64_t neg[5] = {1, 2, -1, 0, 0}, zero[5] = {0, 0, 0, 0, 0}, y[2] = {0, 1};
    float prob[5] = {0.1f, 0.2f, 0.3f, 0.1f, 0.1f}, nanp[5] = {0.2f, 0.2f, NAN, 0.2f, 0.2f};
    xcat_tensor *tn = test_tensor(ctx, XCAT_DTYPE_I64, 5, 1, neg);
    xcat_tensor *tz = test_tensor(ctx, XCAT_DTYPE_I64, 5, 1, zero);
    xcat_tensor *tp = test_tensor(ctx, XCAT_DTYPE_F32, 5, 1, prob);
    xcat_tensor *tnan = test_tensor(ctx, XCAT_DTYPE_F32, 5, 1, nanp);
    xcat_tensor *t4 = test_tensor(ctx, XCAT_DTYPE_I64, 4, 1, zero);
    test_expect_error(ctx, xcat_loss_plan_set_item_counts(p, tn), XCAT_ERROR_OUT_OF_RANGE,
                      "counts[2]", "negative count");
    test_expect_error(ctx, xcat_loss_plan_set_item_counts(p, tz), XCAT_ERROR_INVALID_ARGUMENT,
                      "sum to 0", "zero counts");
    test_expect_error(ctx, xcat_loss_plan_set_item_counts(p, tp), XCAT_ERROR_INVALID_ARGUMENT,
                      "not 1", "probabilities not summing to 1");
    test_expect_error(ctx, xcat_loss_plan_set_item_counts(p, tnan), XCAT_ERROR_OUT_OF_RANGE,
                      "finite", "NaN probability");
    test_expect_error(ctx, xcat_loss_plan_set_item_counts(p, t4), XCAT_ERROR_SHAPE_MISMATCH,
                      "vector of 5", "wrong length");
    xcat_tensor *ty = test_tensor(ctx, XCAT_DTYPE_I64, 2, 1, y);
    xcat_tensor *tH = test_tensor(ctx, XCAT_DTYPE_F32, 2, 2, NULL);
    xcat_tensor *tE = test_tensor(ctx, XCAT_DTYPE_F32, 5, 2, NULL);
    xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
    xcat_loss_args a;
    xcat_loss_args_init(&a);
    a.hidden = tH, a.items = tE, a.targets = ty;
    test_expect_error(ctx, xcat_loss_forward(p, &a, L, NULL), XCAT_ERROR_BAD_STATE,
                      "set_item_counts", "popularity without counts");
    xcat_loss_desc_init(&d, XCAT_LOSS_CE);
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &d, 2, 5, 2, &pce), "CE plan");
    test_expect_error(ctx, xcat_loss_plan_set_item_counts(pce, tp), XCAT_ERROR_INVALID_ARGUMENT,
                      "sampled kinds", "counts on a CE plan");
    TEST_FREE_TENSORS(tn, tz, tp, tnan, t4, ty, tH, tE, L);
    xcat_loss_plan_free(p);
    xcat_loss_plan_free(pce);
    xcat_context_free(ctx);
}
END_TEST

/* SAMPLED_CE over all C − 1 distinct negatives without correction is the full CE. */
START_TEST(test_all_negatives_equal_full_ce)
{
    xcat_context *ctx = test_target_context(_i, 0);
    if (!ctx) return;
    const int64_t n = 21, c = 77, dim = 9;
    const scase s = {"full", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE,
                     n, c, dim, c - 1, XCAT_LOSS_DISTINCT_NEGATIVES, XCAT_REDUCTION_MEAN, 1};
    test_rng_stream("full", 0);
    sdata t;
    make(&s, &t);
    xcat_loss_desc ds = desc_of(&s), dc;
    xcat_loss_desc_init(&dc, XCAT_LOSS_CE);
    xcat_loss_plan *ps = plan_create(ctx, &ds, n, c, dim), *pc = NULL;
    if (!ps) {
        unmake(&t);
        xcat_context_free(ctx);
        return;
    }
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &dc, n, c, dim, &pc), "CE plan");
    stensors x;
    tensors(ctx, &s, &t, &x);
    xcat_loss_args a = args_of(&x, 0);
    float out[2][1 + 21 * 9 + 77 * 9];
    for (int which = 0; which < 2; ++which) {
        xcat_loss_plan *p = which ? pc : ps;
        xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
        xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, n, dim, NULL);
        xcat_tensor *dE = test_tensor(ctx, XCAT_DTYPE_F32, c, dim, NULL);
        test_expect_ok(ctx, xcat_loss_forward(p, &a, L, NULL), "forward");
        test_expect_ok(ctx, xcat_loss_backward(p, &a, NULL, dH, dE, NULL), "backward");
        ck_assert_int_eq(xcat_tensor_read(L, out[which], 0), XCAT_OK);
        ck_assert_int_eq(xcat_tensor_read(dH, out[which] + 1, 0), XCAT_OK);
        ck_assert_int_eq(xcat_tensor_read(dE, out[which] + 1 + n * dim, 0), XCAT_OK);
        TEST_FREE_TENSORS(L, dH, dE);
    }
    double ref[1 + 21 * 9 + 77 * 9];
    for (size_t i = 0; i < sizeof ref / sizeof *ref; ++i) ref[i] = out[1][i];
    test_check_close("sampled(all) vs full CE", out[0], ref, (int64_t)(sizeof ref / sizeof *ref),
                     2e-5, 2e-4);
    untensors(&x);
    xcat_loss_plan_free(ps);
    xcat_loss_plan_free(pc);
    unmake(&t);
    xcat_context_free(ctx);
}
END_TEST

/* Bitwise the same loss and gradients with 1, 2 and 3 threads. */
START_TEST(test_deterministic_threads)
{
    /* gathered candidates, shared ones (GEMMs), in-batch ones (GEMMs) */
    static const scase det_cases[] = {
        {"det_gather", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_UNIFORM, 29,
         97, 7, 33, 0, XCAT_REDUCTION_SUM, 1, 1, 0, 3, 0.2},
        {"det_shared", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_GIVEN_SHARED, XCAT_CORRECTION_NONE, 70,
         150, 6, 12, 0, XCAT_REDUCTION_MEAN, 1, 1, 1, 0, 0.1},
        {"det_inbatch", XCAT_LOSS_INBATCH, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 90, 200,
         5, 4, 0, XCAT_REDUCTION_MEAN, 1, 0, 1, 1, 0.1},
    };
    for (size_t ci = 0; ci < sizeof det_cases / sizeof *det_cases; ++ci) {
        const scase *s = &det_cases[ci];
        test_rng_stream(s->name, 0);
        sdata t;
        make(s, &t);
        xcat_loss_desc d = desc_of(s);
        float *first = NULL;
        const int64_t total = 1 + s->n * s->d + s->c * s->d;
        for (int threads = 1; threads <= 3; ++threads) {
            xcat_context *ctx = test_context(-1, threads);
            xcat_loss_plan *p = plan_create(ctx, &d, s->n, s->c, s->d);
            stensors x;
            tensors(ctx, s, &t, &x);
            xcat_loss_args a = args_of(&x, 3);
            xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
            xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, s->n, s->d, NULL);
            xcat_tensor *dE = test_tensor(ctx, XCAT_DTYPE_F32, s->c, s->d, NULL);
            test_expect_ok(ctx, xcat_loss_forward(p, &a, L, NULL), "forward");
            test_expect_ok(ctx, xcat_loss_backward(p, &a, NULL, dH, dE, NULL), "backward");
            float *v = test_alloc_floats(total);
            ck_assert_int_eq(xcat_tensor_read(L, v, 0), XCAT_OK);
            ck_assert_int_eq(xcat_tensor_read(dH, v + 1, 0), XCAT_OK);
            ck_assert_int_eq(xcat_tensor_read(dE, v + 1 + s->n * s->d, 0), XCAT_OK);
            if (!first) first = v;
            else {
                ck_assert_msg(memcmp(first, v, (size_t)total * sizeof *v) == 0,
                              "%s: %d threads differ from 1", s->name, threads);
                free(v);
            }
            TEST_FREE_TENSORS(L, dH, dE);
            untensors(&x);
            xcat_loss_plan_free(p);
            xcat_context_free(ctx);
        }
        free(first);
        unmake(&t);
    }
}
END_TEST

/* dH against central finite differences of the library's own forward (gBCE, softcap). */
START_TEST(test_finite_differences)
{
    xcat_context *ctx = test_context(-1, 1);
    const scase s = {"fd", XCAT_LOSS_GBCE, XCAT_SAMPLER_UNIFORM, XCAT_CORRECTION_NONE, 3, 40, 4,
                     6, 0, XCAT_REDUCTION_SUM, 1, 0, 0, 0, 0.0, 1.3f, 2.5f, 0.5f};
    test_rng_stream("fd", 0);
    sdata t;
    make(&s, &t);
    xcat_loss_desc d = desc_of(&s);
    xcat_loss_plan *p = plan_create(ctx, &d, s.n, s.c, s.d);
    xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
    xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, s.n, s.d, NULL);
    stensors x;
    tensors(ctx, &s, &t, &x);
    xcat_loss_args a = args_of(&x, 0);
    test_expect_ok(ctx, xcat_loss_backward(p, &a, NULL, dH, NULL, NULL), "backward");
    float *g = test_read_floats(dH);
    const float h = 1e-2f;
    for (int64_t e = 0; e < s.n * s.d; ++e) {
        float lp, lm;
        const float keep = t.H[e];
        t.H[e] = keep + h;
        ck_assert_int_eq(xcat_tensor_write(x.H, t.H, 0), XCAT_OK);
        test_expect_ok(ctx, xcat_loss_forward(p, &a, L, NULL), "f+");
        ck_assert_int_eq(xcat_tensor_read(L, &lp, 0), XCAT_OK);
        t.H[e] = keep - h;
        ck_assert_int_eq(xcat_tensor_write(x.H, t.H, 0), XCAT_OK);
        test_expect_ok(ctx, xcat_loss_forward(p, &a, L, NULL), "f-");
        ck_assert_int_eq(xcat_tensor_read(L, &lm, 0), XCAT_OK);
        t.H[e] = keep;
        ck_assert_int_eq(xcat_tensor_write(x.H, t.H, 0), XCAT_OK);
        const double fd = ((double)lp - (double)lm) / (2.0 * h);
        ck_assert_msg(fabs(fd - g[e]) <= 2e-3 + 2e-2 * fabs(fd), "dH[%lld]: %g vs fd %g",
                      (long long)e, (double)g[e], fd);
    }
    free(g);
    TEST_FREE_TENSORS(L, dH);
    untensors(&x);
    xcat_loss_plan_free(p);
    unmake(&t);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_errors)
{
    xcat_context *ctx = test_context(-1, 1);
    xcat_loss_plan *p = NULL;
    xcat_loss_desc d;
#define DESC_ERR(setup, want, needle)                                                      \
    do {                                                                                   \
        xcat_loss_desc_init(&d, XCAT_LOSS_SAMPLED_CE);                                     \
        d.num_negatives = 8;                                                               \
        setup;                                                                             \
        test_expect_error(ctx, xcat_loss_plan_create(ctx, &d, 10, 50, 4, &p), want, needle, \
                          #setup);                                                         \
        ck_assert_ptr_null(p);                                                             \
    } while (0)
    DESC_ERR(d.num_negatives = 0, XCAT_ERROR_INVALID_ARGUMENT, "num_negatives");
    DESC_ERR(d.num_negatives = -3, XCAT_ERROR_INVALID_ARGUMENT, "num_negatives");
    DESC_ERR((d.flags = XCAT_LOSS_DISTINCT_NEGATIVES, d.num_negatives = 50),
             XCAT_ERROR_INVALID_ARGUMENT, "C − 1");
    DESC_ERR(d.label_smoothing = 0.1f, XCAT_ERROR_INVALID_ARGUMENT, "label_smoothing");
    DESC_ERR(d.z_loss = 0.1f, XCAT_ERROR_INVALID_ARGUMENT, "z_loss");
    DESC_ERR(d.sampler = (xcat_sampler)9, XCAT_ERROR_INVALID_ARGUMENT, "sampler");
    DESC_ERR(d.sampler = XCAT_SAMPLER_IN_BATCH, XCAT_ERROR_INVALID_ARGUMENT, "IN_BATCH");
    DESC_ERR((d.kind = XCAT_LOSS_BCE, d.correction = XCAT_CORRECTION_UNIFORM),
             XCAT_ERROR_INVALID_ARGUMENT, "correction");
    DESC_ERR((d.kind = XCAT_LOSS_GBCE, d.gbce_t = 1.5f), XCAT_ERROR_INVALID_ARGUMENT, "gbce_t");
    DESC_ERR((d.flags = XCAT_LOSS_DISTINCT_NEGATIVES, d.sampler = XCAT_SAMPLER_GIVEN_PER_ROW),
             XCAT_ERROR_INVALID_ARGUMENT, "UNIFORM");
    DESC_ERR((d.flags = XCAT_LOSS_DISTINCT_NEGATIVES, d.correction = XCAT_CORRECTION_LOGQ),
             XCAT_ERROR_INVALID_ARGUMENT, "LOGQ");
    DESC_ERR((d.kind = XCAT_LOSS_INBATCH, d.correction = XCAT_CORRECTION_UNIFORM),
             XCAT_ERROR_INVALID_ARGUMENT, "INBATCH");
    DESC_ERR((d.kind = XCAT_LOSS_INBATCH, d.sampler = XCAT_SAMPLER_IN_BATCH),
             XCAT_ERROR_INVALID_ARGUMENT, "IN_BATCH");
    /* call-time errors */
    const scase s = {"err", XCAT_LOSS_SAMPLED_CE, XCAT_SAMPLER_GIVEN_PER_ROW,
                     XCAT_CORRECTION_NONE, 4, 20, 3, 5};
    test_rng_stream("err", 0);
    sdata t;
    make(&s, &t);
    t.neg[3] = 20; /* out of range */
    d = desc_of(&s);
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &d, 4, 20, 3, &p), "plan");
    stensors x;
    tensors(ctx, &s, &t, &x);
    xcat_loss_args a = args_of(&x, 0);
    xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
    test_expect_error(ctx, xcat_loss_forward(p, &a, L, NULL), XCAT_ERROR_OUT_OF_RANGE,
                      "negatives[0][3] = 20", "negative out of range");
    a.negatives = NULL;
    test_expect_error(ctx, xcat_loss_forward(p, &a, L, NULL), XCAT_ERROR_INVALID_ARGUMENT,
                      "negatives", "missing negatives");
    xcat_tensor *short_neg = test_tensor(ctx, XCAT_DTYPE_I64, 3, 5, NULL); /* 3 rows, not 4 */
    a.negatives = short_neg;
    test_expect_error(ctx, xcat_loss_forward(p, &a, L, NULL), XCAT_ERROR_SHAPE_MISMATCH,
                      "negatives", "negatives shape");
    t.neg[3] = 2;
    ck_assert_int_eq(xcat_tensor_write(x.neg, t.neg, 0), XCAT_OK);
    a.negatives = x.neg;
    int64_t badoff[5] = {0, 2, 1, 1, 1}, items[2] = {1, 3};
    xcat_tensor *to = test_tensor(ctx, XCAT_DTYPE_I64, 5, 1, badoff);
    xcat_tensor *ti = test_tensor(ctx, XCAT_DTYPE_I64, 2, 1, items);
    a.row_items_offsets = to;
    test_expect_error(ctx, xcat_loss_forward(p, &a, L, NULL), XCAT_ERROR_INVALID_ARGUMENT,
                      "together", "half a CSR");
    a.row_items = ti;
    test_expect_error(ctx, xcat_loss_forward(p, &a, L, NULL), XCAT_ERROR_INVALID_ARGUMENT,
                      "row_items_offsets", "decreasing offsets");
    badoff[2] = 2, badoff[3] = 2, badoff[4] = 2;
    items[0] = 3, items[1] = 1;
    ck_assert_int_eq(xcat_tensor_write(to, badoff, 0), XCAT_OK);
    ck_assert_int_eq(xcat_tensor_write(ti, items, 0), XCAT_OK);
    test_expect_error(ctx, xcat_loss_forward(p, &a, L, NULL), XCAT_ERROR_INVALID_ARGUMENT,
                      "not ascending", "unsorted row items");
    xcat_tensor *N = test_tensor(ctx, XCAT_DTYPE_I64, 4, 4, NULL);
    a.row_items_offsets = a.row_items = NULL;
    test_expect_error(ctx, xcat_loss_draw_negatives(p, &a, N), XCAT_ERROR_SHAPE_MISMATCH,
                      "draws", "draw shape");
    xcat_tensor *lse = test_tensor(ctx, XCAT_DTYPE_F32, 4, 1, NULL);
    xcat_loss_plan *pb = NULL;
    xcat_loss_desc db;
    xcat_loss_desc_init(&db, XCAT_LOSS_BCE);
    db.num_negatives = 3;
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &db, 4, 20, 3, &pb), "bce plan");
    a.negatives = NULL;
    test_expect_error(ctx, xcat_loss_forward(pb, &a, L, lse), XCAT_ERROR_INVALID_ARGUMENT,
                      "lse", "lse with BCE");
    TEST_FREE_TENSORS(L, to, ti, N, lse, short_neg);
    untensors(&x);
    xcat_loss_plan_free(p);
    xcat_loss_plan_free(pb);
    unmake(&t);
    xcat_context_free(ctx);
}
END_TEST

int main(void)
{
    test_targets_init();
    const int nt = test_num_targets();
    Suite *s = suite_create("sampled");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_reference, 0, nt);
    tcase_add_loop_test(tc, test_all_negatives_equal_full_ce, 0, nt);
    tcase_add_loop_test(tc, test_inbatch_reference, 0, nt);
    tcase_add_loop_test(tc, test_chunking_invariant, 0, nt);
    tcase_add_loop_test(tc, test_reference_teams, 0, nt);
    tcase_add_test(tc, test_draws_match_rng_source);
    tcase_add_test(tc, test_draws_across_backends);
    tcase_add_test(tc, test_sampler_statistics);
    tcase_add_test(tc, test_popularity_frequencies);
    tcase_add_test(tc, test_item_count_errors);
    tcase_add_test(tc, test_deterministic_threads);
    tcase_add_test(tc, test_shared_gemm_matches_gather);
    tcase_add_test(tc, test_finite_differences);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_test(te, test_errors);
    suite_add_tcase(s, te);
    return test_run_suite(s);
}
