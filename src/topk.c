/* topk.c — validation of top-K and sampled-rank calls, once per call, then dispatch.
 *
 * The exclusion CSR and the banned list are read to the host here (from any backend) and checked
 * in O(M + nnz): backends receive int64 host copies they may upload or walk, and never see a
 * malformed list. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "topk_validate.h"

void xcat_topk_args_init(xcat_topk_args *args)
{
    if (!args) return;
    memset(args, 0, sizeof *args);
    args->struct_size = sizeof *args;
}

/* The caller's args, read up to their struct_size. */
static xcat_status copy_args(xcat_context *ctx, const xcat_topk_args *in, xcat_topk_args *out)
{
    if (!in) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "args is NULL");
    if (in->struct_size < offsetof(xcat_topk_args, bias) + sizeof in->bias)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "args->struct_size = %u: initialise "
                          "the arguments with xcat_topk_args_init()", in->struct_size);
    xcat_topk_args_init(out);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    return XCAT_OK;
}

static xcat_status check_owner(xcat_context *ctx, const xcat_tensor *t, const char *name)
{
    if (t && t->ctx != ctx)
        return xcat_error(ctx, XCAT_ERROR_WRONG_CONTEXT, "%s belongs to another context", name);
    return XCAT_OK;
}

/* A vector of integer ids (owner, I32/I64, contiguous): its length in *len. */
static xcat_status check_index_vector(xcat_context *ctx, const xcat_tensor *t, const char *name,
                                      int64_t *len)
{
    xcat_status st = check_owner(ctx, t, name);
    if (st) return st;
    if (t->dtype != XCAT_DTYPE_I32 && t->dtype != XCAT_DTYPE_I64)
        return xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "%s must be I32 or I64", name);
    *len = xcat_tensor_vector_length(t);
    if (*len < 0)
        return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "%s must be a contiguous vector (n×1 "
                          "or 1×n); it is %lld×%lld", name, (long long)t->rows,
                          (long long)t->cols);
    return XCAT_OK;
}

/* A vector of integer ids, read to the host as int64 (NULL tensor: *out NULL, *n 0). */
xcat_status xcat_read_index_vector(xcat_context *ctx, const xcat_tensor *t, const char *name,
                                   int64_t **out, int64_t *n)
{
    *out = NULL;
    *n = 0;
    if (!t) return XCAT_OK;
    int64_t len = 0;
    xcat_status st = check_index_vector(ctx, t, name, &len);
    if (st) return st;
    int64_t *v = xcat_host_alloc(ctx, (size_t)len * sizeof *v, 64);
    if (!v) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "copying %s to the host", name);
    st = ctx->ops->tensor_read(ctx, t, v, t->stride);
    if (st) {
        xcat_host_free(ctx, v);
        return st;
    }
    if (t->dtype == XCAT_DTYPE_I32) /* widen in place, from the back */
        for (int64_t i = len - 1; i >= 0; --i) v[i] = ((const int32_t *)v)[i];
    *out = v;
    *n = len;
    return XCAT_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The exclusion CSR (offsets of m + 1 entries, nnz ids): offsets from 0, non-decreasing, at
 * most nnz; ids in [0, c) and ascending per query. The message names the first problem. */
static xcat_status check_csr(xcat_context *ctx, const int64_t *o, const int64_t *ex, int64_t nnz,
                             int64_t m, int64_t c)
{
    if (o[0] != 0)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "exclude_offsets[0] = %lld: CSR "
                          "offsets start at 0", (long long)o[0]);
    for (int64_t q = 0; q < m; ++q) {
        if (o[q + 1] < o[q] || o[q + 1] > nnz)
            return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "exclude_offsets[%lld] = %lld "
                              "after %lld: offsets must be non-decreasing and at most the "
                              "%lld exclude_items", (long long)q + 1, (long long)o[q + 1],
                              (long long)o[q], (long long)nnz);
        for (int64_t i = o[q]; i < o[q + 1]; ++i) {
            const int64_t id = ex[i];
            if (id < 0 || id >= c)
                return xcat_error(ctx, XCAT_ERROR_OUT_OF_RANGE, "exclude_items[%lld] = %lld "
                                  "(query %lld) is outside [0, %lld)", (long long)i,
                                  (long long)id, (long long)q, (long long)c);
            if (i > o[q] && id < ex[i - 1])
                return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "exclude_items of query "
                                  "%lld are not ascending (%lld after %lld at %lld)",
                                  (long long)q, (long long)id, (long long)ex[i - 1],
                                  (long long)i);
        }
    }
    return XCAT_OK;
}

xcat_status xcat_topk_check_csr_on_host(xcat_context *ctx, const xcat_topk_call *call)
{
    int64_t *o = NULL, *ex = NULL, noff = 0, nnz = 0;
    xcat_status st = xcat_read_index_vector(ctx, call->exclude_offsets, "exclude_offsets", &o,
                                            &noff);
    if (!st) st = xcat_read_index_vector(ctx, call->exclude_items, "exclude_items", &ex, &nnz);
    if (!st) st = check_csr(ctx, o, ex, nnz, call->m, call->c);
    xcat_host_free(ctx, o);
    xcat_host_free(ctx, ex);
    return st;
}

static xcat_status check_matrix(xcat_context *ctx, const xcat_tensor *t, const char *name)
{
    if (!t) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "%s is NULL", name);
    xcat_status st = check_owner(ctx, t, name);
    if (!st && t->dtype != XCAT_DTYPE_F32)
        st = xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "%s must be F32", name);
    return st;
}

xcat_status xcat_topk_call_prepare(xcat_context *ctx, const xcat_topk_args *in,
                                   xcat_topk_call *call, xcat_topk_host *host)
{
    memset(call, 0, sizeof *call);
    memset(host, 0, sizeof *host);
    xcat_topk_args a;
    xcat_status st = copy_args(ctx, in, &a);
    if (!st) st = check_matrix(ctx, a.queries, "queries");
    if (!st) st = check_matrix(ctx, a.items, "items");
    if (st) return st;
    const int64_t m = a.queries->rows, c = a.items->rows, d = a.queries->cols;
    if (a.items->cols != d)
        return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "queries are %lld×%lld but items are "
                          "%lld×%lld: the dimensions differ", (long long)m, (long long)d,
                          (long long)c, (long long)a.items->cols);
    if (a.bias) {
        st = check_owner(ctx, a.bias, "bias");
        if (st) return st;
        if (a.bias->dtype != XCAT_DTYPE_F32)
            return xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "bias must be F32");
        if (xcat_tensor_vector_length(a.bias) != c)
            return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "bias must be a vector of %lld "
                              "(one per item)", (long long)c);
    }
    if (!a.exclude_offsets != !a.exclude_items)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "exclude_offsets and exclude_items "
                          "go together: give both or neither");
    *call = (xcat_topk_call){.queries = a.queries, .items = a.items, .bias = a.bias,
                             .exclude_offsets = a.exclude_offsets,
                             .exclude_items = a.exclude_items, .banned_items = a.banned_items,
                             .m = m, .c = c, .d = d};
    int64_t noff = 0, nnz = 0;
    if (a.exclude_offsets) {
        st = check_index_vector(ctx, a.exclude_offsets, "exclude_offsets", &noff);
        if (!st) st = check_index_vector(ctx, a.exclude_items, "exclude_items", &nnz);
        if (!st && noff != m + 1)
            st = xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "exclude_offsets has %lld entries; "
                            "CSR row pointers of %lld queries need %lld", (long long)noff,
                            (long long)m, (long long)m + 1);
        if (st) return st;
        call->has_exclusions = true;
        call->nnz = nnz;
        /* A backend that reads the caller's CSR in place checks it there (no copy to the
         * host, no synchronisation); otherwise it is copied and checked here. */
        call->csr_on_device = ctx->ops->topk_device_csr && ctx->ops->topk_device_csr(ctx, call);
    }
    if (!call->csr_on_device) {
        st = xcat_read_index_vector(ctx, a.exclude_offsets, "exclude_offsets", &host->offsets,
                                    &noff);
        if (!st) st = xcat_read_index_vector(ctx, a.exclude_items, "exclude_items",
                                             &host->exclude, &nnz);
    }
    if (!st) st = xcat_read_index_vector(ctx, a.banned_items, "banned_items", &host->banned,
                                         &host->num_banned);
    if (!st && host->offsets) st = check_csr(ctx, host->offsets, host->exclude, nnz, m, c);
    if (st) goto fail;
    if (host->banned) {
        for (int64_t i = 0; i < host->num_banned; ++i)
            if (host->banned[i] < 0 || host->banned[i] >= c) {
                st = xcat_error(ctx, XCAT_ERROR_OUT_OF_RANGE, "banned_items[%lld] = %lld is "
                                "outside [0, %lld)", (long long)i, (long long)host->banned[i],
                                (long long)c);
                goto fail;
            }
        qsort(host->banned, (size_t)host->num_banned, sizeof *host->banned, cmp_i64);
        int64_t w = 0;
        for (int64_t i = 0; i < host->num_banned; ++i)
            if (w == 0 || host->banned[i] != host->banned[w - 1])
                host->banned[w++] = host->banned[i];
        host->num_banned = w;
    }
    call->h_offsets = host->offsets;
    call->h_exclude = host->exclude;
    call->h_banned = host->banned;
    call->num_banned = host->num_banned;
    return XCAT_OK;
fail:
    xcat_topk_host_free(ctx, host);
    return st;
}

void xcat_topk_host_free(xcat_context *ctx, xcat_topk_host *host)
{
    xcat_host_free(ctx, host->offsets);
    xcat_host_free(ctx, host->exclude);
    xcat_host_free(ctx, host->banned);
    memset(host, 0, sizeof *host);
}

static xcat_status check_result(xcat_context *ctx, const xcat_tensor *t, const char *name,
                                int64_t rows, int64_t cols, bool index, int64_t c)
{
    if (!t) return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "%s is NULL", name);
    xcat_status st = check_owner(ctx, t, name);
    if (st) return st;
    if (index ? (t->dtype != XCAT_DTYPE_I32 && t->dtype != XCAT_DTYPE_I64)
              : t->dtype != XCAT_DTYPE_F32)
        return xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "%s must be %s", name,
                          index ? "I32 or I64" : "F32");
    if (index && t->dtype == XCAT_DTYPE_I32 && c > INT32_MAX)
        return xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "%s: I32 cannot hold item ids of a "
                          "catalog of %lld items; use I64", name, (long long)c);
    if (t->rows != rows || t->cols != cols)
        return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "%s is %lld×%lld; expected %lld×%lld",
                          name, (long long)t->rows, (long long)t->cols, (long long)rows,
                          (long long)cols);
    return XCAT_OK;
}

xcat_status xcat_topk(xcat_context *ctx, const xcat_topk_args *args, int64_t k,
                      xcat_tensor *indices, xcat_tensor *scores)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_topk_call call;
    xcat_topk_host host;
    xcat_status st = xcat_topk_call_prepare(ctx, args, &call, &host);
    if (st) return st;
    if (k < 1 || k > call.c)
        st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "k = %lld: must be in [1, %lld] (the "
                        "catalog size)", (long long)k, (long long)call.c);
    if (!st) st = check_result(ctx, indices, "indices", call.m, k, true, call.c);
    if (!st && scores) st = check_result(ctx, scores, "scores", call.m, k, false, call.c);
    call.k = k;
    if (!st) st = ctx->ops->topk(ctx, &call, indices, scores);
    xcat_topk_host_free(ctx, &host);
    return st;
}

xcat_status xcat_rank_sampled(xcat_context *ctx, const xcat_topk_args *args,
                              const xcat_tensor *targets, int64_t num_negatives, uint64_t seed,
                              xcat_tensor *ranks)
{
    if (!ctx) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_topk_call call;
    xcat_topk_host host;
    xcat_status st = xcat_topk_call_prepare(ctx, args, &call, &host);
    if (st) return st;
    int64_t *y = NULL, ny = 0;
    if (!targets) st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "targets is NULL");
    if (!st) st = xcat_read_index_vector(ctx, targets, "targets", &y, &ny);
    if (!st && ny != call.m)
        st = xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "targets has %lld entries for %lld "
                        "queries", (long long)ny, (long long)call.m);
    for (int64_t q = 0; !st && q < ny; ++q)
        if (y[q] < 0 || y[q] >= call.c)
            st = xcat_error(ctx, XCAT_ERROR_OUT_OF_RANGE, "targets[%lld] = %lld is outside "
                            "[0, %lld)", (long long)q, (long long)y[q], (long long)call.c);
    if (!st && (num_negatives < 1 || num_negatives > INT32_MAX))
        st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "num_negatives = %lld: must be in "
                        "[1, 2^31)", (long long)num_negatives);
    if (!st && call.c > INT32_MAX)
        st = xcat_error(ctx, XCAT_ERROR_UNSUPPORTED, "sampled ranks draw item ids in 32 bits: "
                        "the catalog may have at most 2^31 − 1 items");
    if (!st && !ranks) st = xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "ranks is NULL");
    if (!st) st = check_owner(ctx, ranks, "ranks");
    if (!st && ranks->dtype != XCAT_DTYPE_I64)
        st = xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "ranks must be I64");
    if (!st && xcat_tensor_vector_length(ranks) != call.m)
        st = xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "ranks must be a vector of %lld",
                        (long long)call.m);
    if (!st) st = ctx->ops->rank_sampled(ctx, &call, y, num_negatives, seed, ranks);
    xcat_host_free(ctx, y);
    xcat_topk_host_free(ctx, &host);
    return st;
}
