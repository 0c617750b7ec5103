/* Suite "metrics": xcat_metrics_from_topk / _from_ranks on hand-computed cases (RecBole's
 * definitions, see xcat.h), one and many targets per query, queries without targets, cutoffs
 * below K, I32 and I64 results, and every error the functions document. */
#include <math.h>
#include <stdlib.h>

#include "test_util.h"

#define EPS 1e-12

static const int64_t IDX[12] = {5, 2, 9, 1, /**/ 3, 4, 6, 7, /**/ 1, 2, 3, 5};

static void check(const xcat_metrics *m, int64_t queries, double hr, double ndcg, double mrr,
                  double recall, double precision, double coverage)
{
    ck_assert_int_eq(m->queries, queries);
    ck_assert_msg(fabs(m->hr - hr) < EPS, "hr %.15g vs %.15g", m->hr, hr);
    ck_assert_msg(fabs(m->ndcg - ndcg) < EPS, "ndcg %.15g vs %.15g", m->ndcg, ndcg);
    ck_assert_msg(fabs(m->mrr - mrr) < EPS, "mrr %.15g vs %.15g", m->mrr, mrr);
    ck_assert_msg(fabs(m->recall - recall) < EPS, "recall %.15g vs %.15g", m->recall, recall);
    ck_assert_msg(fabs(m->precision - precision) < EPS, "precision %.15g vs %.15g",
                  m->precision, precision);
    ck_assert_msg(fabs(m->coverage - coverage) < EPS, "coverage %.15g vs %.15g", m->coverage,
                  coverage);
}

START_TEST(test_one_target_per_query)
{
    xcat_context *ctx = test_context(-1, 1);
    int64_t y[3] = {9, 8, -1}; /* query 2 has no target: not counted */
    int32_t idx32[12];
    for (int i = 0; i < 12; ++i) idx32[i] = (int32_t)IDX[i];
    xcat_tensor *ti = _i ? test_tensor(ctx, XCAT_DTYPE_I32, 3, 4, idx32)
                         : test_tensor(ctx, XCAT_DTYPE_I64, 3, 4, IDX);
    xcat_tensor *ty = test_tensor(ctx, XCAT_DTYPE_I64, 3, 1, y);
    xcat_metrics m;
    xcat_metrics_init(&m);
    test_expect_ok(ctx, xcat_metrics_from_topk(ctx, ti, 4, NULL, ty, 10, &m), "k_at 4");
    /* q0: hit at rank 3 → NDCG 1/log2(4) = 0.5, MRR 1/3; q1: miss */
    check(&m, 2, 0.5, 0.25, 1.0 / 6.0, 0.5, 0.125, 0.8);
    test_expect_ok(ctx, xcat_metrics_from_topk(ctx, ti, 2, NULL, ty, 10, &m), "k_at 2");
    check(&m, 2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5); /* top-2 items {5, 2, 3, 4, 1} */
    TEST_FREE_TENSORS(ti, ty);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_many_targets_csr)
{
    xcat_context *ctx = test_context(-1, 1);
    int64_t off[4] = {0, 3, 3, 5}, tg[5] = {9, 2, 9, /* q1 none */ 8, 5};
    xcat_tensor *ti = test_tensor(ctx, XCAT_DTYPE_I64, 3, 4, IDX);
    xcat_tensor *to = test_tensor(ctx, XCAT_DTYPE_I64, 4, 1, off);
    xcat_tensor *tt = test_tensor(ctx, XCAT_DTYPE_I64, 5, 1, tg);
    xcat_metrics m;
    xcat_metrics_init(&m);
    test_expect_ok(ctx, xcat_metrics_from_topk(ctx, ti, 4, to, tt, 10, &m), "csr");
    const double l3 = 1.0 / log2(3.0), l4 = 0.5, l5 = 1.0 / log2(5.0);
    /* q0 targets {2, 9} (9 repeated counts once): hits at ranks 2, 3; q2 targets {5, 8}: 5 at 4 */
    const double n0 = (l3 + l4) / (1.0 + l3), n2 = l5 / (1.0 + l3);
    check(&m, 2, 1.0, (n0 + n2) / 2, (0.5 + 0.25) / 2, (1.0 + 0.5) / 2, (0.5 + 0.25) / 2, 0.8);
    TEST_FREE_TENSORS(ti, to, tt);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_from_ranks)
{
    xcat_context *ctx = test_context(-1, 1);
    int64_t r[5] = {0, 3, 10, 9, -1}; /* −1: no rank, not counted */
    xcat_tensor *tr = test_tensor(ctx, XCAT_DTYPE_I64, 5, 1, r);
    xcat_metrics m;
    xcat_metrics_init(&m);
    test_expect_ok(ctx, xcat_metrics_from_ranks(ctx, tr, 10, &m), "ranks");
    const double ndcg = (1.0 + 1.0 / log2(5.0) + 1.0 / log2(11.0)) / 4;
    check(&m, 4, 0.75, ndcg, (1.0 + 0.25 + 0.1) / 4, 0.75, 0.075, 0.0);
    TEST_FREE_TENSORS(tr);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_errors)
{
    xcat_context *ctx = test_context(-1, 1);
    int64_t y[3] = {9, 8, -1}, badoff[4] = {0, 2, 1, 3};
    xcat_tensor *ti = test_tensor(ctx, XCAT_DTYPE_I64, 3, 4, IDX);
    xcat_tensor *ty = test_tensor(ctx, XCAT_DTYPE_I64, 3, 1, y);
    xcat_tensor *tf = test_tensor(ctx, XCAT_DTYPE_F32, 3, 4, NULL);
    xcat_tensor *to = test_tensor(ctx, XCAT_DTYPE_I64, 4, 1, badoff);
    xcat_metrics m;
    xcat_metrics_init(&m);
    test_expect_error(ctx, xcat_metrics_from_topk(ctx, ti, 0, NULL, ty, 10, &m),
                      XCAT_ERROR_INVALID_ARGUMENT, "k_at", "k_at 0");
    test_expect_error(ctx, xcat_metrics_from_topk(ctx, ti, 5, NULL, ty, 10, &m),
                      XCAT_ERROR_INVALID_ARGUMENT, "k_at", "k_at > K");
    test_expect_error(ctx, xcat_metrics_from_topk(ctx, tf, 2, NULL, ty, 10, &m),
                      XCAT_ERROR_DTYPE_MISMATCH, "indices", "float indices");
    test_expect_error(ctx, xcat_metrics_from_topk(ctx, ti, 2, NULL, ti, 10, &m),
                      XCAT_ERROR_SHAPE_MISMATCH, "targets", "targets not a vector");
    test_expect_error(ctx, xcat_metrics_from_topk(ctx, ti, 2, to, ty, 10, &m),
                      XCAT_ERROR_INVALID_ARGUMENT, "target_offsets", "bad CSR");
    test_expect_error(ctx, xcat_metrics_from_topk(ctx, ti, 2, NULL, ty, 0, &m),
                      XCAT_ERROR_INVALID_ARGUMENT, "num_items", "C = 0");
    test_expect_error(ctx, xcat_metrics_from_topk(ctx, ti, 2, NULL, NULL, 10, &m),
                      XCAT_ERROR_INVALID_ARGUMENT, "required", "NULL targets");
    test_expect_error(ctx, xcat_metrics_from_ranks(ctx, ty, 0, &m),
                      XCAT_ERROR_INVALID_ARGUMENT, "k_at", "ranks k_at 0");
    TEST_FREE_TENSORS(ti, ty, tf, to);
    xcat_context_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_loop_test(tc, test_one_target_per_query, 0, 2);
    tcase_add_test(tc, test_many_targets_csr);
    tcase_add_test(tc, test_from_ranks);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
