/*
 * Suite "topk": xcat_topk and xcat_rank_sampled on every target (CPU at each ISA level, every
 * OpenCL device) against the exhaustive float64 reference (tests/ref/topk_ref.c).
 *
 * Exactness: most cases use small-integer inputs (U, E in {−3..3}, b in {−4..4}), so every fp32
 * score is exact, ties are everywhere (planted by construction), and the returned indices must
 * equal the reference's bitwise — any slip in the tie rule, the exclusions or the merge of
 * candidates shows. Random-float cases check scores to fp32 accuracy and that every returned
 * item truly belongs to the top K (its reference score is at least the K-th best minus the
 * rounding margin).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XCAT_RNG_HOST 1
#include "../cl/rng.cl"

#include "test_util.h"
#include "topk_ref.h"

typedef struct topk_case {
    const char *name;
    int64_t m, c, d, k;
    int64_t pad;        /* row stride − cols of U and E */
    int bias;
    int64_t excl;       /* exclusions per query (with repeats), 0 = no CSR */
    int64_t banned;     /* banned ids (with repeats) */
    int i32;            /* I32 indices (else I64) */
    int no_scores;
    int floats;         /* random floats instead of small integers */
} topk_case;

static const topk_case CASES[] = {
    {"tiny", 1, 1, 1, 1},
    {"k1", 7, 1000, 5, 1, 0, 1, 3, 2},
    {"k_eq_c", 5, 97, 3, 97, 2, 1},
    {"k_beyond_remaining", 9, 300, 4, 280, 0, 1, 40, 5},
    {"ties_excl", 37, 4099, 7, 10, 3, 1, 50, 1, 1},
    {"m1_large_k", 1, 20000, 9, 3000, 0, 0, 100, 0, 0, 1},
    {"many_queries", 300, 2500, 8, 100, 0, 1, 20, 3},
    {"floats", 23, 3001, 33, 50, 1, 1, 10, 0, 0, 0, 1},
    {"floats_k1", 4, 1025, 64, 1, 0, 1, 0, 0, 1, 0, 1},
    /* E's rows 16-byte aligned, padded, d a multiple of 4 but not of 32 (float4 loads in the
     * OpenCL rescoring, a short last step) */
    {"aligned_rows", 11, 2003, 36, 25, 4, 1, 5, 1, 0, 0, 1},
    {"chunks", 70, 9001, 6, 40, 0, 1, 20, 3},
    {"k_sorted_globally", 3, 12000, 5, 5000, 1, 1, 30, 2, 1},
    /* K >= 4,096 on a large catalog: thresholds start from a sample of the catalog; with ties
     * everywhere (d = 2, small integers) the sampled threshold leaves fewer than K items
     * above it and the query is run again without one */
    {"sampled_threshold", 5, 100000, 8, 4096, 0, 1, 50, 3, 0, 0, 1},
    {"sampled_threshold_ties", 3, 100000, 2, 5000, 0, 0, 10, 0},
};
#define NUM_CASES ((int)(sizeof CASES / sizeof *CASES))

typedef struct topk_data {
    float *U, *E, *b;
    int64_t *off, *ex, *ban, nnz, nb;
} topk_data;

static void fill_ints(float *x, int64_t rows, int64_t cols, int64_t stride, int lo, int hi)
{
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < stride; ++j)
            x[r * stride + j] = j < cols ? (float)test_rand_int(lo, hi + 1) : NAN;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void make_data(const topk_case *tc, topk_data *t)
{
    const int64_t lu = tc->d + tc->pad;
    memset(t, 0, sizeof *t);
    t->U = test_alloc_floats(tc->m * lu);
    t->E = test_alloc_floats(tc->c * lu);
    if (tc->floats) {
        test_fill_matrix(t->U, tc->m, tc->d, lu, -1.0f, 1.0f);
        test_fill_matrix(t->E, tc->c, tc->d, lu, -1.0f, 1.0f);
    } else {
        fill_ints(t->U, tc->m, tc->d, lu, -3, 3);
        fill_ints(t->E, tc->c, tc->d, lu, -3, 3);
    }
    if (tc->bias) {
        t->b = test_alloc_floats(tc->c);
        for (int64_t j = 0; j < tc->c; ++j)
            t->b[j] = tc->floats ? (float)test_rand_uniform(-0.5, 0.5)
                                 : (float)test_rand_int(-4, 5);
    }
    if (tc->excl) {
        t->off = test_alloc((size_t)(tc->m + 1) * sizeof *t->off);
        t->ex = test_alloc((size_t)(tc->m * tc->excl + 1) * sizeof *t->ex);
        t->off[0] = 0;
        for (int64_t q = 0; q < tc->m; ++q) {
            int64_t n = test_rand_int(0, tc->excl + 1); /* ragged, some empty */
            int64_t *e = t->ex + t->off[q];
            for (int64_t i = 0; i < n; ++i) /* repeats likely on small catalogs: allowed */
                e[i] = test_rand_int(0, tc->c < 40 ? tc->c : 40) * (tc->c / 40 + 1) % tc->c;
            qsort(e, (size_t)n, sizeof *e, cmp_i64);
            t->off[q + 1] = t->off[q] + n;
        }
        t->nnz = t->off[tc->m];
    }
    if (tc->banned) {
        t->nb = tc->banned;
        t->ban = test_alloc((size_t)t->nb * sizeof *t->ban);
        for (int64_t i = 0; i < t->nb; ++i) t->ban[i] = test_rand_int(0, tc->c);
        t->ban[0] = 0; /* the padding item, as a trainer would ban it */
    }
}

static void free_data(topk_data *t)
{
    free(t->U), free(t->E), free(t->b), free(t->off), free(t->ex), free(t->ban);
}

/* Tensors for one case on ctx; *out_scores may be NULL (no_scores). */
typedef struct topk_tensors {
    xcat_tensor *U, *E, *b, *off, *ex, *ban, *idx, *sc;
} topk_tensors;

static void make_tensors(xcat_context *ctx, const topk_case *tc, topk_data *t, topk_tensors *x)
{
    const int64_t lu = tc->d + tc->pad;
    memset(x, 0, sizeof *x);
    x->U = test_input_matrix(ctx, tc->m, tc->d, lu, t->U);
    /* a stride of 4k floats gets a 16-byte aligned offset too (float4 paths), others 7 */
    x->E = test_input_matrix_at(ctx, tc->c, tc->d, lu, t->E, lu % 4 ? 7 : 8);
    if (t->b) x->b = test_tensor(ctx, XCAT_DTYPE_F32, tc->c, 1, t->b);
    if (t->off) {
        x->off = test_tensor(ctx, XCAT_DTYPE_I64, tc->m + 1, 1, t->off);
        x->ex = test_tensor(ctx, XCAT_DTYPE_I64, t->nnz ? t->nnz : 1, 1, t->nnz ? t->ex : NULL);
    }
    if (t->ban) x->ban = test_tensor(ctx, XCAT_DTYPE_I64, 1, t->nb, t->ban);
    x->idx = test_tensor(ctx, tc->i32 ? XCAT_DTYPE_I32 : XCAT_DTYPE_I64, tc->m, tc->k, NULL);
    if (!tc->no_scores) x->sc = test_tensor(ctx, XCAT_DTYPE_F32, tc->m, tc->k, NULL);
}

static void free_tensors(topk_tensors *x)
{
    TEST_FREE_TENSORS(x->U, x->E, x->b, x->off, x->ex, x->ban, x->idx, x->sc);
}

static xcat_topk_args args_of(const topk_tensors *x)
{
    xcat_topk_args a;
    xcat_topk_args_init(&a);
    a.queries = x->U;
    a.items = x->E;
    a.bias = x->b;
    a.exclude_offsets = x->off;
    a.exclude_items = x->ex;
    a.banned_items = x->ban;
    return a;
}

static int64_t *read_indices(const xcat_tensor *t, int64_t m, int64_t k)
{
    int64_t *out = test_alloc((size_t)(m * k) * sizeof *out);
    xcat_dtype dt;
    xcat_tensor_get_shape(t, &dt, NULL, NULL, NULL);
    if (dt == XCAT_DTYPE_I64) {
        ck_assert_int_eq(xcat_tensor_read(t, out, 0), XCAT_OK);
    } else {
        int32_t *tmp = test_alloc((size_t)(m * k) * sizeof *tmp);
        ck_assert_int_eq(xcat_tensor_read(t, tmp, 0), XCAT_OK);
        for (int64_t i = 0; i < m * k; ++i) out[i] = tmp[i];
        free(tmp);
    }
    return out;
}

/* One case on one context against the reference; returns the indices (caller frees). */
static int64_t *run_case(xcat_context *ctx, const topk_case *tc, topk_data *t)
{
    topk_tensors x;
    make_tensors(ctx, tc, t, &x);
    xcat_topk_args a = args_of(&x);
    xcat_status st = xcat_topk(ctx, &a, tc->k, x.idx, x.sc);
    test_expect_ok(ctx, st, tc->name);
    int64_t *got = read_indices(x.idx, tc->m, tc->k);
    float *gs = x.sc ? test_read_floats(x.sc) : NULL;
    int64_t *ri = test_alloc((size_t)(tc->m * tc->k) * sizeof *ri);
    double *rs = test_alloc_doubles(tc->m * tc->k);
    const int64_t lu = tc->d + tc->pad;
    topk_ref(t->U, lu, t->E, lu, t->b, tc->m, tc->c, tc->d, t->off, t->ex, t->ban, t->nb,
             tc->k, ri, rs);
    char label[200];
    test_context_label(ctx, label, sizeof label);
    const char *ap = getenv("XCAT_CL_TOPK_APPROX"), *em = getenv("XCAT_CL_MMA_EMULATE");
    if (ap && *ap == '1') /* the OpenCL path the knobs chose (test_reference_cases) */
        strncat(label, em && *em == '1' ? ", approximate, mma emulated" : ", approximate",
                sizeof label - strlen(label) - 1);
    for (int64_t q = 0; q < tc->m; ++q) {
        for (int64_t p = 0; p < tc->k; ++p) {
            const int64_t g = got[q * tc->k + p], r = ri[q * tc->k + p];
            if (!tc->floats) {
                ck_assert_msg(g == r, "%s [%s]: query %lld rank %lld: item %lld, reference "
                              "%lld", tc->name, label, (long long)q, (long long)p,
                              (long long)g, (long long)r);
                if (gs) ck_assert_msg(gs[q * tc->k + p] == (float)rs[q * tc->k + p],
                                      "%s: score mismatch", tc->name);
                continue;
            }
            /* floats: the tail length must agree, and every returned item must be a true
             * top-K member within rounding; scores must be sorted */
            ck_assert_msg((g < 0) == (r < 0), "%s: tail differs at query %lld rank %lld",
                          tc->name, (long long)q, (long long)p);
            if (g < 0) continue;
            double s = t->b ? (double)t->b[g] : 0.0;
            for (int64_t u = 0; u < tc->d; ++u)
                s += (double)t->U[q * lu + u] * (double)t->E[g * lu + u];
            const double kth = rs[q * tc->k + tc->k - 1], tol = 1e-5 * (1.0 + fabs(kth));
            ck_assert_msg(s >= kth - tol, "%s: item %lld (score %.9g) is not in the top %lld "
                          "(k-th %.9g)", tc->name, (long long)g, s, (long long)tc->k, kth);
            if (gs) {
                ck_assert_msg(fabs(gs[q * tc->k + p] - s) <= tol, "%s: score of %lld",
                              tc->name, (long long)g);
                if (p) ck_assert(gs[q * tc->k + p] <= gs[q * tc->k + p - 1]);
            }
        }
    }
    free(gs), free(ri), free(rs);
    free_tensors(&x);
    return got;
}

/* Every case on both scoring paths of each target. CPU: OpenBLAS tiles + the level's
 * select_above (XCAT_CPU_FUSED=0) and the level's fused register tiles (=1; the scalar level
 * has none). OpenCL: exact fp32 scores (XCAT_CL_TOPK_APPROX=0) and approximate ones kept with
 * a margin and rescored exactly (=1: TF32 tensor cores where the device has them, else
 * scores perturbed by up to the margin — so a margin or rescoring slip shows on PoCL too), and
 * a third path: the approximate one on the emulated tensor-core tile (XCAT_CL_MMA_EMULATE). */
START_TEST(test_reference_cases)
{
    const int cpu = _i < test_first_opencl_target();
    xcat_context *ctx = cpu ? test_target_context(_i, 0) : test_target_context_flags(_i, 0, 0);
    if (!ctx) return;
    const char *knob = cpu ? "XCAT_CPU_FUSED" : "XCAT_CL_TOPK_APPROX";
    /* OpenCL path 2: the approximate path on mma.cl's tensor-core tile with the products
     * computed without tensor cores (XCAT_CL_MMA_EMULATE=1), on every device */
    for (int path = 0; path < (cpu ? 2 : 3); ++path) {
        setenv(knob, path ? "1" : "0", 1);
        if (path == 2) setenv("XCAT_CL_MMA_EMULATE", "1", 1);
        for (int ci = 0; ci < NUM_CASES; ++ci) {
            test_rng_stream(CASES[ci].name, 0);
            topk_data t;
            make_data(&CASES[ci], &t);
            int64_t *got = run_case(ctx, &CASES[ci], &t);
            free(got);
            free_data(&t);
        }
    }
    unsetenv(knob);
    unsetenv("XCAT_CL_MMA_EMULATE");
    xcat_context_free(ctx);
}
END_TEST

/* Same indices whatever the thread count, and on every target as on the CPU reference level. */
START_TEST(test_deterministic_across_threads_and_backends)
{
    const topk_case tc = {"agree", 61, 3333, 6, 25, 0, 1, 30, 2};
    test_rng_stream("agree", 0);
    topk_data t;
    make_data(&tc, &t);
    xcat_context *c1 = test_context(XCAT_ISA_SCALAR, 1);
    int64_t *base = run_case(c1, &tc, &t);
    xcat_context_free(c1);
    for (int threads = 2; threads <= 3; ++threads) {
        xcat_context *ct = test_context(-1, threads);
        int64_t *got = run_case(ct, &tc, &t);
        ck_assert(memcmp(got, base, (size_t)(tc.m * tc.k) * sizeof *got) == 0);
        free(got);
        xcat_context_free(ct);
    }
    for (int i = test_first_opencl_target(); i < test_num_targets(); ++i) {
        xcat_context *co = test_target_context(i, 0);
        if (!co) continue;
        int64_t *got = run_case(co, &tc, &t);
        ck_assert_msg(memcmp(got, base, (size_t)(tc.m * tc.k) * sizeof *got) == 0,
                      "OpenCL target %d differs from the CPU", i);
        free(got);
        xcat_context_free(co);
    }
    free(base);
    free_data(&t);
}
END_TEST

START_TEST(test_nan_scores_never_selected)
{
    xcat_context *ctx = test_target_context(_i, 0);
    if (!ctx) return;
    const int64_t m = 3, c = 50, d = 4, k = 50;
    float *U = test_alloc_floats(m * d), *E = test_alloc_floats(c * d);
    test_rng_stream("nan", 0);
    fill_ints(U, m, d, d, -3, 3);
    fill_ints(E, c, d, d, -3, 3);
    for (int64_t j = 0; j < c; j += 7) E[j * d + 1] = NAN; /* 8 items score NaN */
    xcat_tensor *tu = test_tensor(ctx, XCAT_DTYPE_F32, m, d, U);
    xcat_tensor *te = test_tensor(ctx, XCAT_DTYPE_F32, c, d, E);
    xcat_tensor *ti = test_tensor(ctx, XCAT_DTYPE_I64, m, k, NULL);
    xcat_tensor *ts = test_tensor(ctx, XCAT_DTYPE_F32, m, k, NULL);
    xcat_topk_args a;
    xcat_topk_args_init(&a);
    a.queries = tu;
    a.items = te;
    xcat_status st = xcat_topk(ctx, &a, k, ti, ts);
    {
        test_expect_ok(ctx, st, "nan");
        int64_t *got = read_indices(ti, m, k);
        float *s = test_read_floats(ts);
        for (int64_t q = 0; q < m; ++q)
            for (int64_t p = 0; p < k; ++p) {
                const int64_t g = got[q * k + p];
                if (p < c - 8) {
                    ck_assert_msg(g >= 0 && g % 7 != 0, "NaN item %lld selected", (long long)g);
                } else {
                    ck_assert_int_eq(g, -1);
                    ck_assert(isinf(s[q * k + p]) && s[q * k + p] < 0);
                }
            }
        free(got), free(s);
    }
    TEST_FREE_TENSORS(tu, te, ti, ts);
    free(U), free(E);
    xcat_context_free(ctx);
}
END_TEST

/* xcat_topk of the queries tu against the items te (no bias, no lists) into ti: every index
 * equal to the reference's ri (m × k); `what` and `path` name the case in a failure. */
static void expect_reference(xcat_context *ctx, xcat_tensor *tu, xcat_tensor *te, int64_t m,
                             int64_t k, xcat_tensor *ti, const int64_t *ri, const char *what,
                             int path)
{
    xcat_topk_args a;
    xcat_topk_args_init(&a);
    a.queries = tu;
    a.items = te;
    test_expect_ok(ctx, xcat_topk(ctx, &a, k, ti, NULL), what);
    int64_t *got = read_indices(ti, m, k);
    for (int64_t i = 0; i < m * k; ++i)
        ck_assert_msg(got[i] == ri[i], "%s, M = %lld, path %d: position %lld: item %lld, "
                      "reference %lld", what, (long long)m, path, (long long)i,
                      (long long)got[i], (long long)ri[i]);
    free(got);
}

/* A catalog whose strided sample is unrepresentative: every 47th item (the sample's stride at
 * C = 20,000 when XCAT_CL_TOPK_SAMPLE asks for 426 items) outscores all others, so
 * for the queries that like high values (u > 0) the sampled starting threshold lets in fewer
 * than K items, while for the others (u < 0) it is harmless. OpenCL redoes the flagged
 * queries without it: rows 0, 150 and 151 of 300 as two blocks of their own, rows 0, 2 and 3
 * of 5 with their whole block (cheaper there). The results are the reference's, on both
 * scoring paths. */
static void check_unrepresentative(xcat_context *ctx, int cpu, int64_t m)
{
    const int64_t c = 20000, d = 1, k = 3000;
    float *U = test_alloc_floats(m), *E = test_alloc_floats(c);
    for (int64_t q = 0; q < m; ++q) U[q] = -1.0f - (float)(q % 3);
    if (m == 5) U[0] = 1.0f, U[2] = 2.0f, U[3] = 3.0f;
    else U[0] = 1.0f, U[150] = 2.0f, U[151] = 3.0f;
    /* the rest descend along the catalog: the u < 0 rows' best items come last */
    for (int64_t j = 0; j < c; ++j) E[j] = j % 47 == 0 ? 10.0f : 5.0f - 5.0f * (float)j / (float)c;
    int64_t *ri = test_alloc((size_t)(m * k) * sizeof *ri);
    double *rs = test_alloc_doubles(m * k);
    topk_ref(U, d, E, d, NULL, m, c, d, NULL, NULL, NULL, 0, k, ri, rs);
    xcat_tensor *tu = test_tensor(ctx, XCAT_DTYPE_F32, m, d, U);
    xcat_tensor *te = test_tensor(ctx, XCAT_DTYPE_F32, c, d, E);
    xcat_tensor *ti = test_tensor(ctx, XCAT_DTYPE_I64, m, k, NULL);
    const char *knob = cpu ? "XCAT_CPU_FUSED" : "XCAT_CL_TOPK_APPROX";
    /* paths 2-3, spaced: no selection during the scan (XCAT_CL_TOPK_SELECT_EVERY, and no
     * mid-scan cut): the u < 0 rows take in all 20,000 items, more than their buffers hold
     * (K + slack + chunk = 19,096 on PoCL); the keys lost are the last ones, their best — the
     * loss must flag them for the redo. Paths 4-5: the one selection is a cut to K after 2 of
     * the 5 chunks (XCAT_CL_TOPK_CUT; at this shape none is scheduled by default). */
    setenv("XCAT_CL_TOPK_SAMPLE", "426", 1);
    for (int path = 0; path < 6; ++path) {
        setenv(knob, path % 2 ? "1" : "0", 1);
        if (path >= 2) setenv("XCAT_CL_TOPK_SELECT_EVERY", "1000", 1);
        if (path >= 2) setenv("XCAT_CL_TOPK_CUT", path < 4 ? "0" : "0.4", 1);
        expect_reference(ctx, tu, te, m, k, ti, ri, "unrepresentative sample", path);
    }
    unsetenv(knob);
    unsetenv("XCAT_CL_TOPK_SELECT_EVERY");
    unsetenv("XCAT_CL_TOPK_CUT");
    unsetenv("XCAT_CL_TOPK_SAMPLE");
    TEST_FREE_TENSORS(tu, te, ti);
    free(U), free(E), free(ri), free(rs);
}

START_TEST(test_unrepresentative_sample)
{
    const int cpu = _i < test_first_opencl_target();
    xcat_context *ctx = cpu ? test_target_context(_i, 0) : test_target_context_flags(_i, 0, 0);
    if (!ctx) return;
    for (int shape = 0; shape < 2; ++shape)
        check_unrepresentative(ctx, cpu, shape ? 300 : 5);
    xcat_context_free(ctx);
}
END_TEST

/* Calls of the kernel role `name` in ctx's profile (0 when absent). */
static unsigned long long profile_calls(xcat_context *ctx, const char *name)
{
    char text[8192];
    test_expect_ok(ctx, xcat_context_profile(ctx, text, sizeof text, 0), "profile");
    const char *line = strstr(text, name);
    unsigned long long calls = 0;
    if (line) ck_assert_int_eq(sscanf(line + strcspn(line, " "), "%llu", &calls), 1);
    return calls;
}

/* Statistical cuts (OpenCL: ocl_topk.c, schedule_cuts): mid-scan, each row's threshold drops to
 * a rank of the items seen so far, which only holds with high probability; a row it served
 * badly must be flagged and redone. With 1,024-item chunks the 20,000 items are 20 interleaved
 * chunks, the first holding the multiples of 20, and with a cut priced at 0 keys the first cut
 * (after that chunk) puts each row's threshold at its 7th best key of K = 10 (the smallest
 * rank of a Binomial(10, 1/20) tail of at most 10^-6). Rows 0 and 3
 * (u > 0) rank 12 planted items first, all multiples of 20, 0.1 apart (wider than the emulated
 * approximate path's margin), then items 1 and 3 (10.21, 10.15: 10th and 12th overall), which
 * come after the cut and below its threshold: without the final check against the
 * statistical threshold item 1 would be missing from their top 10. The profile shows the rank
 * cut and the redo's second final selection; the results equal the reference's on both
 * scoring paths. The other rows (u < 0) like the random rest. Then random small-integer data
 * (ties everywhere, 20 exclusions a query) with cut ranks at a 30 % tail: many rows are
 * flagged; results must still be exact. */
static void check_statistical_cuts(xcat_context *ctx)
{
    const int64_t m = 6, c = 20000, k = 10;
    float *U = test_alloc_floats(m), *E = test_alloc_floats(c);
    for (int64_t q = 0; q < m; ++q) U[q] = q % 3 ? -1.0f : 1.0f;
    test_rng_stream("statistical_cuts", 0);
    for (int64_t j = 0; j < c; ++j) E[j] = (float)test_rand_uniform(-1.0, 1.0);
    for (int64_t j = 0; j < 12; ++j) E[20 * j] = 10.0f + 0.1f * (float)j;
    E[1] = 10.21f, E[3] = 10.15f;
    int64_t *ri = test_alloc((size_t)(m * k) * sizeof *ri);
    double *rs = test_alloc_doubles(m * k);
    topk_ref(U, 1, E, 1, NULL, m, c, 1, NULL, NULL, NULL, 0, k, ri, rs);
    xcat_tensor *tu = test_tensor(ctx, XCAT_DTYPE_F32, m, 1, U);
    xcat_tensor *te = test_tensor(ctx, XCAT_DTYPE_F32, c, 1, E);
    xcat_tensor *ti = test_tensor(ctx, XCAT_DTYPE_I64, m, k, NULL);
    setenv("XCAT_CL_TOPK_CHUNK", "1024", 1);
    setenv("XCAT_CL_TOPK_SAMPLE", "426", 1);
    setenv("XCAT_CL_TOPK_CUT_COST", "0", 1);
    for (int path = 0; path < 2; ++path) {
        setenv("XCAT_CL_TOPK_APPROX", path ? "1" : "0", 1);
        char scratch[16];
        test_expect_ok(ctx, xcat_context_profile(ctx, scratch, sizeof scratch, 1), "reset");
        expect_reference(ctx, tu, te, m, k, ti, ri, "statistical cuts", path);
        ck_assert_uint_ge(profile_calls(ctx, "topk_cut_rank "), 1);
        ck_assert_uint_eq(profile_calls(ctx, "topk_select/final "), 2); /* + the redo */
    }
    TEST_FREE_TENSORS(tu, te, ti);
    free(U), free(E), free(ri), free(rs);

    static const topk_case tc = {"statistical_cuts_random", 37, 20000, 7, 50, 1, 1, 20, 3};
    setenv("XCAT_CL_TOPK_SAMPLE_MISS", "0.3", 1);
    unsetenv("XCAT_CL_TOPK_SAMPLE");
    for (int path = 0; path < 2; ++path) {
        setenv("XCAT_CL_TOPK_APPROX", path ? "1" : "0", 1);
        test_rng_stream(tc.name, path);
        topk_data t;
        make_data(&tc, &t);
        free(run_case(ctx, &tc, &t));
        free_data(&t);
    }
    unsetenv("XCAT_CL_TOPK_SAMPLE_MISS");
    unsetenv("XCAT_CL_TOPK_APPROX");
    unsetenv("XCAT_CL_TOPK_CUT_COST");
    unsetenv("XCAT_CL_TOPK_CHUNK");
}

START_TEST(test_statistical_cuts)
{
    xcat_context *ctx = test_target_context_flags(_i, 0, XCAT_CONTEXT_PROFILE);
    if (!ctx) return;
    check_statistical_cuts(ctx);
    xcat_context_free(ctx);
}
END_TEST

/* XCAT_CONTEXT_PROFILE: a top-K call's kernels appear with their calls; reset clears them; a
 * context without the flag and a CPU context say they record nothing. */
static void run_small_topk(xcat_context *ctx) /* 2 queries × 40 items, K = 5 */
{
    float U[2 * 3] = {1, 2, 3, -1, 0, 1}, E[40 * 3];
    for (int i = 0; i < 40 * 3; i++) E[i] = (float)(i % 7) - 3.0f;
    xcat_tensor *tu = test_tensor(ctx, XCAT_DTYPE_F32, 2, 3, U);
    xcat_tensor *te = test_tensor(ctx, XCAT_DTYPE_F32, 40, 3, E);
    xcat_tensor *ti = test_tensor(ctx, XCAT_DTYPE_I64, 2, 5, NULL);
    xcat_topk_args a;
    xcat_topk_args_init(&a);
    a.queries = tu;
    a.items = te;
    test_expect_ok(ctx, xcat_topk(ctx, &a, 5, ti, NULL), "topk");
    test_expect_ok(ctx, xcat_context_synchronize(ctx), "synchronize");
    TEST_FREE_TENSORS(tu, te, ti);
}

START_TEST(test_opencl_profile)
{
    xcat_context *ctx =
        test_target_context_flags(_i, 0, XCAT_CONTEXT_IGNORE_ENV | XCAT_CONTEXT_PROFILE);
    if (!ctx)
        return;
    char text[4096];
    ck_assert_int_eq(xcat_context_profile(NULL, text, sizeof text, 0), XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_context_profile(ctx, NULL, 1, 0), XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_context_profile(ctx, text, 0, 0), XCAT_ERROR_INVALID_ARGUMENT);
    test_expect_ok(ctx, xcat_context_profile(ctx, text, sizeof text, 0), "empty profile");
    ck_assert_msg(strstr(text, "# kernel") && !strstr(text, "topk_"), "%s", text);
    /* each of the call's kernels once at least: scoring, selection (its final launch under
     * its role's label), sort, merge; the same counts again after a reset (the same call
     * launches the same kernels) */
    const char *names[] = {"topk_score_filter", "topk_select/final", "topk_sort_blocks",
                           "topk_merge"};
    unsigned long long first[4] = {0};
    for (int round = 0; round < 2; ++round) {
        run_small_topk(ctx);
        test_expect_ok(ctx, xcat_context_profile(ctx, text, sizeof text, 1), "profile");
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            const char *line = strstr(text, names[i]);
            ck_assert_msg(line != NULL, "%s missing from:\n%s", names[i], text);
            unsigned long long calls = 0;
            double total = -1.0;
            ck_assert_int_eq(sscanf(line + strcspn(line, " "), "%llu %lf", &calls, &total), 2);
            ck_assert_msg(calls >= 1 && total >= 0.0, "%s: %llu calls, %g ms", names[i], calls,
                          total);
            if (round == 0) first[i] = calls;
            else ck_assert_msg(calls == first[i], "%s: %llu calls after a reset, %llu before",
                               names[i], calls, first[i]);
        }
        test_expect_ok(ctx, xcat_context_profile(ctx, text, sizeof text, 0), "after reset");
        ck_assert_msg(!strstr(text, "topk_"), "reset left:\n%s", text);
    }
    char small[16];
    run_small_topk(ctx);
    test_expect_ok(ctx, xcat_context_profile(ctx, small, sizeof small, 0), "cut profile");
    ck_assert_uint_eq(strlen(small), sizeof small - 1); /* cut, NUL-terminated */
    xcat_context_free(ctx);

    ctx = test_target_context_flags(_i, 0, XCAT_CONTEXT_IGNORE_ENV);
    run_small_topk(ctx);
    test_expect_ok(ctx, xcat_context_profile(ctx, text, sizeof text, 0), "profile off");
    ck_assert_msg(strstr(text, "no kernel profile") && !strstr(text, "topk_"), "%s", text);
    xcat_context_free(ctx);
    xcat_context *cpu = test_context(-1, 1);
    test_expect_ok(cpu, xcat_context_profile(cpu, text, sizeof text, 0), "cpu profile");
    ck_assert_msg(strstr(text, "no kernel profile"), "%s", text);
    xcat_context_free(cpu);
}
END_TEST

/* Sampled evaluation against a recomputation of the same draws (cl/rng.cl) in double. */
START_TEST(test_rank_sampled)
{
    xcat_context *ctx = test_target_context(_i, 0);
    if (!ctx) return;
    const topk_case tc = {"ranks", 40, 700, 5, 1, 0, 1, 15, 3};
    test_rng_stream("ranks", 0);
    topk_data t;
    make_data(&tc, &t);
    int64_t *y = test_alloc((size_t)tc.m * sizeof *y);
    for (int64_t q = 0; q < tc.m; ++q) y[q] = test_rand_int(0, tc.c);
    topk_tensors x;
    make_tensors(ctx, &tc, &t, &x);
    xcat_tensor *ty = test_tensor(ctx, XCAT_DTYPE_I64, tc.m, 1, y);
    xcat_tensor *tr = test_tensor(ctx, XCAT_DTYPE_I64, tc.m, 1, NULL);
    xcat_topk_args a = args_of(&x);
    const int64_t R = 100;
    const uint64_t seed = 0x1234abcdULL;
    xcat_status st = xcat_rank_sampled(ctx, &a, ty, R, seed, tr);
    {
        test_expect_ok(ctx, st, "rank_sampled");
        int64_t *got = test_alloc((size_t)tc.m * sizeof *got);
        ck_assert_int_eq(xcat_tensor_read(tr, got, 0), XCAT_OK);
        for (int64_t q = 0; q < tc.m; ++q) {
            double sy = t.b[y[q]];
            for (int64_t u = 0; u < tc.d; ++u) sy += (double)t.U[q * tc.d + u] * t.E[y[q] * tc.d + u];
            int64_t rank = 0;
            for (int64_t r = 0; r < R; ++r)
                for (uint32_t att = 0; att < 64; ++att) {
                    int64_t j = xr_draw_uniform(seed, 0, (uint32_t)q, (uint32_t)r, att,
                                                (uint32_t)tc.c);
                    int skip = j == y[q];
                    for (int64_t e = t.off[q]; e < t.off[q + 1]; ++e) skip |= t.ex[e] == j;
                    for (int64_t e = 0; e < t.nb; ++e) skip |= t.ban[e] == j;
                    if (skip) continue;
                    double s = t.b[j];
                    for (int64_t u = 0; u < tc.d; ++u) s += (double)t.U[q * tc.d + u] * t.E[j * tc.d + u];
                    rank += s > sy || (s == sy && j < y[q]);
                    break;
                }
            ck_assert_msg(got[q] == rank, "query %lld: rank %lld, reference %lld",
                          (long long)q, (long long)got[q], (long long)rank);
        }
        /* metrics from ranks agree with their definition */
        xcat_metrics met;
        xcat_metrics_init(&met);
        test_expect_ok(ctx, xcat_metrics_from_ranks(ctx, tr, 10, &met), "metrics_from_ranks");
        double hr = 0;
        for (int64_t q = 0; q < tc.m; ++q) hr += got[q] < 10;
        ck_assert(fabs(met.hr - hr / (double)tc.m) < 1e-12);
        free(got);
    }
    TEST_FREE_TENSORS(ty, tr);
    free_tensors(&x);
    free(y);
    free_data(&t);
    xcat_context_free(ctx);
}
END_TEST

/* Malformed exclusion CSRs (4 queries, C = 30), each on fresh tensors with offsets of
 * `off_dtype`: the status and message of the first problem. On OpenCL, int64 offsets are read
 * and checked on the device (topk_check_csr), int32 ones on the host. */
static const struct {
    int64_t off[5], ids[5];
    xcat_status want;
    const char *needle;
} BAD_CSR[] = {
    {{1, 2, 3, 3, 5}, {1, 4, 7, 2, 9}, XCAT_ERROR_INVALID_ARGUMENT, "start at 0"},
    {{0, 3, 2, 3, 5}, {1, 4, 7, 2, 9}, XCAT_ERROR_INVALID_ARGUMENT, "non-decreasing"},
    {{0, 2, 3, 3, 6}, {1, 4, 7, 2, 9}, XCAT_ERROR_INVALID_ARGUMENT, "non-decreasing"},
    {{0, 2, 3, 3, 5}, {4, 1, 7, 2, 9}, XCAT_ERROR_INVALID_ARGUMENT, "not ascending"},
    {{0, 2, 3, 3, 5}, {1, 4, 30, 2, 9}, XCAT_ERROR_OUT_OF_RANGE, "exclude_items[2] = 30"},
    {{0, 2, 3, 3, 5}, {-1, 4, 7, 2, 9}, XCAT_ERROR_OUT_OF_RANGE, "exclude_items[0] = -1"},
    {{0, 2, 3, 3, 5}, {1, 4, 7, 9, 2}, XCAT_ERROR_INVALID_ARGUMENT, "query 3 are not ascending"},
};

static void check_malformed_csr(xcat_context *ctx, const xcat_topk_args *a, xcat_tensor *idx,
                                xcat_dtype off_dtype)
{
    for (size_t i = 0; i < sizeof BAD_CSR / sizeof *BAD_CSR; ++i) {
        int32_t off32[5];
        for (int j = 0; j < 5; ++j) off32[j] = (int32_t)BAD_CSR[i].off[j];
        xcat_tensor *to = test_tensor(ctx, off_dtype, 5, 1,
                                      off_dtype == XCAT_DTYPE_I32 ? (const void *)off32
                                                                  : (const void *)BAD_CSR[i].off);
        xcat_tensor *ti = test_tensor(ctx, XCAT_DTYPE_I64, 5, 1, BAD_CSR[i].ids);
        xcat_topk_args bad = *a;
        bad.exclude_offsets = to;
        bad.exclude_items = ti;
        test_expect_error(ctx, xcat_topk(ctx, &bad, 5, idx, NULL), BAD_CSR[i].want,
                          BAD_CSR[i].needle, "malformed CSR");
        TEST_FREE_TENSORS(to, ti);
    }
}

START_TEST(test_errors)
{
    xcat_context *ctx = test_context(-1, 0);
    xcat_context *other = test_context(-1, 0);
    const topk_case tc = {"errors", 4, 30, 3, 5, 0, 1, 4, 1};
    test_rng_stream("errors", 0);
    topk_data t;
    make_data(&tc, &t);
    topk_tensors x;
    make_tensors(ctx, &tc, &t, &x);
    xcat_topk_args a = args_of(&x);
    test_expect_error(ctx, xcat_topk(ctx, &a, 0, x.idx, NULL), XCAT_ERROR_INVALID_ARGUMENT,
                      "k = 0", "k = 0");
    test_expect_error(ctx, xcat_topk(ctx, &a, 31, x.idx, NULL), XCAT_ERROR_INVALID_ARGUMENT,
                      "k = 31", "k > C");
    test_expect_error(ctx, xcat_topk(ctx, NULL, 5, x.idx, NULL), XCAT_ERROR_INVALID_ARGUMENT,
                      "args", "NULL args");
    test_expect_error(ctx, xcat_topk(ctx, &a, 5, NULL, NULL), XCAT_ERROR_INVALID_ARGUMENT,
                      "indices", "NULL indices");
    test_expect_error(ctx, xcat_topk(ctx, &a, 4, x.idx, NULL), XCAT_ERROR_SHAPE_MISMATCH,
                      "indices", "indices shape");
    test_expect_error(ctx, xcat_topk(ctx, &a, 5, x.sc, NULL), XCAT_ERROR_DTYPE_MISMATCH,
                      "indices", "indices dtype");
    test_expect_error(ctx, xcat_topk(ctx, &a, 5, x.idx, x.idx), XCAT_ERROR_DTYPE_MISMATCH,
                      "scores", "scores dtype");
    xcat_topk_args bad = a;
    bad.exclude_items = NULL;
    test_expect_error(ctx, xcat_topk(ctx, &bad, 5, x.idx, NULL), XCAT_ERROR_INVALID_ARGUMENT,
                      "together", "half a CSR");
    xcat_tensor *wrongd = test_tensor(ctx, XCAT_DTYPE_F32, tc.c, tc.d + 1, NULL);
    bad = a;
    bad.items = wrongd;
    test_expect_error(ctx, xcat_topk(ctx, &bad, 5, x.idx, NULL), XCAT_ERROR_SHAPE_MISMATCH,
                      "dimensions", "d mismatch");
    xcat_tensor *foreign = test_tensor(other, XCAT_DTYPE_F32, tc.c, tc.d, NULL);
    bad = a;
    bad.items = foreign;
    test_expect_error(ctx, xcat_topk(ctx, &bad, 5, x.idx, NULL), XCAT_ERROR_WRONG_CONTEXT,
                      "another context", "foreign tensor");
    check_malformed_csr(ctx, &a, x.idx, XCAT_DTYPE_I64);
    int64_t badban[2] = {3, 30};
    xcat_tensor *tb = test_tensor(ctx, XCAT_DTYPE_I64, 2, 1, badban);
    bad = a;
    bad.banned_items = tb;
    test_expect_error(ctx, xcat_topk(ctx, &bad, 5, x.idx, NULL), XCAT_ERROR_OUT_OF_RANGE,
                      "banned_items[1] = 30", "banned out of range");
    xcat_tensor *fb = test_tensor(ctx, XCAT_DTYPE_F32, 2, 1, NULL);
    bad.banned_items = fb;
    test_expect_error(ctx, xcat_topk(ctx, &bad, 5, x.idx, NULL), XCAT_ERROR_DTYPE_MISMATCH,
                      "banned_items", "banned dtype");
    /* sampled ranks */
    int64_t y[4] = {1, 2, 3, 40};
    xcat_tensor *ty = test_tensor(ctx, XCAT_DTYPE_I64, 4, 1, y);
    xcat_tensor *tr = test_tensor(ctx, XCAT_DTYPE_I64, 4, 1, NULL);
    test_expect_error(ctx, xcat_rank_sampled(ctx, &a, ty, 10, 1, tr), XCAT_ERROR_OUT_OF_RANGE,
                      "targets[3] = 40", "target out of range");
    y[3] = 4;
    ck_assert_int_eq(xcat_tensor_write(ty, y, 0), XCAT_OK);
    test_expect_error(ctx, xcat_rank_sampled(ctx, &a, ty, 0, 1, tr),
                      XCAT_ERROR_INVALID_ARGUMENT, "num_negatives", "R = 0");
    test_expect_error(ctx, xcat_rank_sampled(ctx, &a, ty, 10, 1, x.idx),
                      XCAT_ERROR_SHAPE_MISMATCH, "ranks", "ranks shape");
    TEST_FREE_TENSORS(wrongd, foreign, tb, fb, ty, tr);
    free_tensors(&x);
    free_data(&t);
    xcat_context_free(other);
    xcat_context_free(ctx);
}
END_TEST

/* The malformed CSRs on every OpenCL target (device-side check with int64 offsets, host-side
 * with int32), for top-K and sampled ranks; a valid CSR still passes. */
START_TEST(test_csr_errors_on_target)
{
    xcat_context *ctx = test_target_context(_i, 0);
    if (!ctx) return;
    const topk_case tc = {"csr errors", 4, 30, 3, 5, 0, 1, 4, 1};
    test_rng_stream("csr errors", 0);
    topk_data t;
    make_data(&tc, &t);
    topk_tensors x;
    make_tensors(ctx, &tc, &t, &x);
    xcat_topk_args a = args_of(&x);
    check_malformed_csr(ctx, &a, x.idx, XCAT_DTYPE_I64);
    check_malformed_csr(ctx, &a, x.idx, XCAT_DTYPE_I32);
    int64_t y[4] = {1, 2, 3, 4};
    xcat_tensor *ty = test_tensor(ctx, XCAT_DTYPE_I64, 4, 1, y);
    xcat_tensor *tr = test_tensor(ctx, XCAT_DTYPE_I64, 4, 1, NULL);
    xcat_tensor *to = test_tensor(ctx, XCAT_DTYPE_I64, 5, 1, BAD_CSR[3].off);
    xcat_tensor *ti = test_tensor(ctx, XCAT_DTYPE_I64, 5, 1, BAD_CSR[3].ids);
    xcat_topk_args bad = a;
    bad.exclude_offsets = to;
    bad.exclude_items = ti;
    test_expect_error(ctx, xcat_rank_sampled(ctx, &bad, ty, 10, 1, tr),
                      XCAT_ERROR_INVALID_ARGUMENT, "not ascending", "sampled ranks, bad CSR");
    test_expect_ok(ctx, xcat_topk(ctx, &a, 5, x.idx, NULL), "valid CSR after bad ones");
    TEST_FREE_TENSORS(ty, tr, to, ti);
    free_tensors(&x);
    free_data(&t);
    xcat_context_free(ctx);
}
END_TEST

int main(void)
{
    test_targets_init();
    const int nt = test_num_targets();
    Suite *s = suite_create("topk");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_reference_cases, 0, nt);
    tcase_add_loop_test(tc, test_nan_scores_never_selected, 0, nt);
    tcase_add_loop_test(tc, test_unrepresentative_sample, 0, nt);
    tcase_add_loop_test(tc, test_opencl_profile, test_first_opencl_target(), nt);
    tcase_add_loop_test(tc, test_statistical_cuts, test_first_opencl_target(), nt);
    tcase_add_loop_test(tc, test_rank_sampled, 0, nt);
    tcase_add_test(tc, test_deterministic_across_threads_and_backends);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_test(te, test_errors);
    tcase_set_timeout(te, 600);
    tcase_add_loop_test(te, test_csr_errors_on_target, test_first_opencl_target(), nt);
    suite_add_tcase(s, te);
    return test_run_suite(s);
}
