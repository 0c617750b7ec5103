/* metrics.c — ranking metrics of top-K results, in float64 on the host, with RecBole's
 * definitions (recbole/evaluator/metrics.py: Hit, NDCG, MRR, Recall, Precision, ItemCoverage).
 * Result and target tensors of any backend are read back once; the work is O(M·K + nnz). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "topk_validate.h"

void xcat_metrics_init(xcat_metrics *metrics)
{
    if (!metrics) return;
    memset(metrics, 0, sizeof *metrics);
    metrics->struct_size = sizeof *metrics;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int contains(const int64_t *v, int64_t n, int64_t x) /* v ascending */
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x) lo = mid + 1; else hi = mid;
    }
    return lo < n && v[lo] == x;
}

static void store(xcat_metrics *out, const xcat_metrics *m)
{
    uint32_t size = out->struct_size;
    if (size > sizeof *m || size == 0) size = sizeof *m;
    memcpy(out, m, size);
    out->struct_size = size;
}

xcat_status xcat_metrics_from_topk(xcat_context *ctx, const xcat_tensor *indices, int64_t k_at,
                                   const xcat_tensor *target_offsets, const xcat_tensor *targets,
                                   int64_t num_items, xcat_metrics *out)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    if (!indices || !targets || !out)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "indices, targets and out are "
                          "required");
    if (indices->ctx != ctx || targets->ctx != ctx ||
        (target_offsets && target_offsets->ctx != ctx))
        return xcat_error(ctx, XCAT_ERROR_WRONG_CONTEXT, "a tensor belongs to another context");
    if (indices->dtype != XCAT_DTYPE_I32 && indices->dtype != XCAT_DTYPE_I64)
        return xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "indices must be I32 or I64");
    const int64_t m = indices->rows, kk = indices->cols;
    if (k_at < 1 || k_at > kk)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "k_at = %lld: must be in [1, %lld] "
                          "(the columns of indices)", (long long)k_at, (long long)kk);
    if (num_items < 1)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "num_items = %lld: must be >= 1",
                          (long long)num_items);
    int64_t *off = NULL, *tg = NULL, noff = 0, ntg = 0;
    xcat_status st = xcat_read_index_vector(ctx, target_offsets, "target_offsets", &off, &noff);
    if (!st) st = xcat_read_index_vector(ctx, targets, "targets", &tg, &ntg);
    const size_t es = xcat_dtype_size(indices->dtype);
    void *idx = st ? NULL : xcat_host_alloc(ctx, (size_t)(m * kk) * es, 64);
    uint8_t *seen = st ? NULL : xcat_host_calloc(ctx, (size_t)(num_items + 7) / 8, 64);
    if (!st && (!idx || !seen))
        st = xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "metrics: host copies");
    if (!st) st = ctx->ops->tensor_read(ctx, indices, idx, kk);
    if (!st && !off && ntg != m)
        st = xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "targets has %lld entries for %lld "
                        "queries (one target per query without target_offsets)",
                        (long long)ntg, (long long)m);
    if (!st && off) {
        if (noff != m + 1 || off[0] != 0 || off[m] > ntg)
            st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "target_offsets: need %lld "
                            "non-decreasing CSR offsets from 0 to at most %lld",
                            (long long)m + 1, (long long)ntg);
        for (int64_t q = 0; !st && q < m; ++q)
            if (off[q + 1] < off[q])
                st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "target_offsets[%lld] "
                                "decreases", (long long)q + 1);
    }
    xcat_metrics r;
    xcat_metrics_init(&r);
    double sh = 0, sn = 0, smrr = 0, srec = 0, sprec = 0;
    int64_t distinct = 0;
    for (int64_t q = 0; !st && q < m; ++q) {
        /* the query's distinct targets, ascending (−1 / out-of-range ids are no target) */
        int64_t lo = off ? off[q] : q, hi = off ? off[q + 1] : q + 1;
        int64_t *t = tg + lo;
        int64_t nt = 0;
        if (off) qsort(t, (size_t)(hi - lo), sizeof *t, cmp_i64);
        for (int64_t i = 0; i < hi - lo; ++i)
            if (t[i] >= 0 && (nt == 0 || t[i] != t[nt - 1])) t[nt++] = t[i];
        for (int64_t p = 0; p < k_at; ++p) {
            const int64_t id = indices->dtype == XCAT_DTYPE_I64 ? ((int64_t *)idx)[q * kk + p]
                                                                : ((int32_t *)idx)[q * kk + p];
            if (id >= 0 && id < num_items && !(seen[id >> 3] & (1u << (id & 7)))) {
                seen[id >> 3] |= (uint8_t)(1u << (id & 7));
                ++distinct;
            }
        }
        if (nt == 0) continue;
        int64_t hits = 0, first = -1;
        double dcg = 0, idcg = 0;
        for (int64_t p = 0; p < k_at; ++p) {
            const int64_t id = indices->dtype == XCAT_DTYPE_I64 ? ((int64_t *)idx)[q * kk + p]
                                                                : ((int32_t *)idx)[q * kk + p];
            if (id >= 0 && contains(t, nt, id)) {
                ++hits;
                if (first < 0) first = p;
                dcg += 1.0 / log2((double)p + 2.0);
            }
        }
        for (int64_t p = 0; p < (nt < k_at ? nt : k_at); ++p) idcg += 1.0 / log2((double)p + 2.0);
        ++r.queries;
        sh += hits > 0;
        sn += dcg / idcg;
        smrr += first >= 0 ? 1.0 / (double)(first + 1) : 0.0;
        srec += (double)hits / (double)nt;
        sprec += (double)hits / (double)k_at;
    }
    if (!st) {
        if (r.queries) {
            r.hr = sh / (double)r.queries;
            r.ndcg = sn / (double)r.queries;
            r.mrr = smrr / (double)r.queries;
            r.recall = srec / (double)r.queries;
            r.precision = sprec / (double)r.queries;
        }
        r.coverage = (double)distinct / (double)num_items;
        store(out, &r);
    }
    xcat_host_free(ctx, off);
    xcat_host_free(ctx, tg);
    xcat_host_free(ctx, idx);
    xcat_host_free(ctx, seen);
    return st;
}

xcat_status xcat_metrics_from_ranks(xcat_context *ctx, const xcat_tensor *ranks, int64_t k_at,
                                    xcat_metrics *out)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    if (!ranks || !out)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "ranks and out are required");
    if (k_at < 1)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "k_at = %lld: must be >= 1",
                          (long long)k_at);
    int64_t *v = NULL, n = 0;
    xcat_status st = xcat_read_index_vector(ctx, ranks, "ranks", &v, &n);
    if (st) return st;
    xcat_metrics r;
    xcat_metrics_init(&r);
    double sh = 0, sn = 0, smrr = 0;
    for (int64_t q = 0; q < n; ++q) {
        if (v[q] < 0) continue; /* no rank */
        ++r.queries;
        if (v[q] < k_at) {
            sh += 1;
            sn += 1.0 / log2((double)v[q] + 2.0);
            smrr += 1.0 / (double)(v[q] + 1);
        }
    }
    if (r.queries) {
        r.hr = r.recall = sh / (double)r.queries;
        r.ndcg = sn / (double)r.queries;
        r.mrr = smrr / (double)r.queries;
        r.precision = r.hr / (double)k_at;
    }
    store(out, &r);
    xcat_host_free(ctx, v);
    return XCAT_OK;
}
