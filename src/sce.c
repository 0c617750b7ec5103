/* sce.c — XCAT_LOSS_SCE, the part every backend shares (see sce.h and xcat.h).
 *
 * A call is: directions (plain ones where the backend's sce_plain_directions op generates them,
 * else on the host — the same xr_gauss12 draws; mixed ones by the backend's GEMM),
 * then the two selections through the backend's own top-K (so the n_b × C and n_b × N score
 * matrices never exist), then the backend's bucket pass fills the per-row state, and the
 * reduction below reads it back (N floats) and reduces it in double on the host, in row order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampling.h"
#include "sce.h"
#include "loss_validate.h"
#include "topk_validate.h"

#define XCAT_RNG_HOST 1
#include "../cl/rng.cl"

static int64_t default_buckets(int64_t max_rows)
{
    int64_t v = (int64_t)floor(2.0 * sqrt((double)max_rows));
    return v < 1 ? 1 : v;
}

xcat_status xcat_sce_check_desc(xcat_context *ctx, xcat_loss_desc *d, int64_t max_rows,
                                int64_t classes)
{
    if (d->label_smoothing != 0.0f || d->z_loss != 0.0f)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.label_smoothing and "
                          "desc.z_loss must be 0 for XCAT_LOSS_SCE");
    if (d->sampler != XCAT_SAMPLER_UNIFORM || d->correction != XCAT_CORRECTION_NONE ||
        d->num_negatives != 0 || d->gbce_t != 0.0f)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "XCAT_LOSS_SCE takes no sampler, "
                          "correction, num_negatives or gbce_t (leave their defaults)");
    if (d->flags & ~XCAT_LOSS_FORWARD_ONLY)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.flags = 0x%x: SCE takes "
                          "XCAT_LOSS_FORWARD_ONLY only", d->flags);
    if (classes > INT32_MAX || max_rows > INT32_MAX)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "SCE needs C and max_rows below "
                          "2^31 (selections are 32-bit)");
    if (d->sce_buckets == 0) d->sce_buckets = default_buckets(max_rows);
    if (d->sce_rows_per_bucket == 0) d->sce_rows_per_bucket = default_buckets(max_rows);
    if (d->sce_items_per_bucket == 0) d->sce_items_per_bucket = classes < 256 ? classes : 256;
    if (d->sce_buckets < 1 || d->sce_buckets > (1 << 20))
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.sce_buckets = %lld: must be "
                          "in [1, 2^20]", (long long)d->sce_buckets);
    if (d->sce_rows_per_bucket < 1 || d->sce_rows_per_bucket > INT32_MAX)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.sce_rows_per_bucket = %lld: "
                          "must be >= 1", (long long)d->sce_rows_per_bucket);
    if (d->sce_items_per_bucket < 1 || d->sce_items_per_bucket > classes)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.sce_items_per_bucket = %lld: "
                          "must be in [1, C = %lld]", (long long)d->sce_items_per_bucket,
                          (long long)classes);
    if (d->sce_mix_rows != 0 && d->sce_mix_rows != 1)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "desc.sce_mix_rows = %d: must be "
                          "0 or 1", (int)d->sce_mix_rows);
    size_t a, b;
    if (!xcat_mul_size((size_t)d->sce_buckets, (size_t)(d->sce_rows_per_bucket < max_rows
                                                            ? d->sce_rows_per_bucket
                                                            : max_rows), &a) ||
        !xcat_mul_size((size_t)d->sce_buckets, (size_t)d->sce_items_per_bucket, &b) ||
        a > INT32_MAX || b > INT32_MAX)
        return xcat_error(ctx, XCAT_ERROR_SIZE_OVERFLOW, "SCE selections of n_b·k_x or "
                          "n_b·k_y entries must stay below 2^31");
    return XCAT_OK;
}

xcat_sce_dims xcat_sce_dims_of(const xcat_loss_plan *plan, int64_t rows)
{
    const xcat_sce *s = plan->sce;
    return (xcat_sce_dims){.nb = s->nb, .kx = s->kx < rows ? s->kx : rows, .ky = s->ky};
}

xcat_tensor xcat_sce_view(const xcat_tensor *t, int64_t rows, int64_t cols)
{
    xcat_tensor v = *t;
    v.rows = rows;
    v.cols = cols;
    v.stride = cols;
    return v;
}

xcat_status xcat_sce_plan_init(xcat_loss_plan *plan)
{
    xcat_context *ctx = plan->ctx;
    xcat_sce *s = xcat_host_calloc(ctx, sizeof *s, 64);
    if (!s) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "allocating SCE state");
    plan->sce = s;
    const xcat_loss_desc *d = &plan->desc;
    s->nb = d->sce_buckets;
    s->kx = d->sce_rows_per_bucket < plan->max_rows ? d->sce_rows_per_bucket : plan->max_rows;
    s->ky = d->sce_items_per_bucket;
    const int64_t n = plan->max_rows;
    xcat_status st = xcat_tensor_create(ctx, XCAT_DTYPE_F32, s->nb, plan->dim, &s->dirs);
    if (!st) st = xcat_tensor_create(ctx, XCAT_DTYPE_I32, s->nb * s->kx, 1, &s->rows);
    if (!st) st = xcat_tensor_create(ctx, XCAT_DTYPE_I32, s->nb, s->ky, &s->items);
    if (!st) st = xcat_tensor_create(ctx, XCAT_DTYPE_F32, n, 1, &s->best_loss);
    if (!st) st = xcat_tensor_create(ctx, XCAT_DTYPE_F32, n, 1, &s->best_lse);
    if (!st) st = xcat_tensor_create(ctx, XCAT_DTYPE_I32, n, 1, &s->best_bucket);
    if (!st) st = xcat_tensor_create(ctx, XCAT_DTYPE_F32, n, 1, &s->zpos);
    if (st) xcat_sce_plan_release(plan);
    return st;
}

void xcat_sce_plan_release(xcat_loss_plan *plan)
{
    xcat_sce *s = plan->sce;
    if (!s) return;
    xcat_tensor_free(s->dirs);
    xcat_tensor_free(s->rows);
    xcat_tensor_free(s->items);
    xcat_tensor_free(s->best_loss);
    xcat_tensor_free(s->best_lse);
    xcat_tensor_free(s->best_bucket);
    xcat_tensor_free(s->zpos);
    xcat_host_free(plan->ctx, s->h_banned);
    xcat_host_free(plan->ctx, s->bwd_scratch);
    xcat_host_free(plan->ctx, s);
    plan->sce = NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

xcat_status xcat_sce_prepare_call(xcat_loss_plan *plan, const xcat_tensor *banned)
{
    xcat_context *ctx = plan->ctx;
    xcat_sce *s = plan->sce;
    xcat_host_free(ctx, s->h_banned);
    s->h_banned = NULL;
    s->num_banned = 0;
    if (banned && banned->ctx != ctx)
        return xcat_error(ctx, XCAT_ERROR_WRONG_CONTEXT, "banned_items belongs to another "
                          "context");
    int64_t n = 0, *v = NULL;
    xcat_status st = xcat_read_index_vector(ctx, banned, "banned_items", &v, &n);
    if (st) return st;
    for (int64_t i = 0; i < n; ++i)
        if (v[i] < 0 || v[i] >= plan->classes) {
            st = xcat_error(ctx, XCAT_ERROR_OUT_OF_RANGE, "banned_items[%lld] = %lld is "
                            "outside [0, %lld)", (long long)i, (long long)v[i],
                            (long long)plan->classes);
            xcat_host_free(ctx, v);
            return st;
        }
    if (n) qsort(v, (size_t)n, sizeof *v, cmp_i64);
    int64_t u = 0;
    for (int64_t i = 0; i < n; ++i)
        if (u == 0 || v[i] != v[u - 1]) v[u++] = v[i];
    s->h_banned = v;
    s->num_banned = u;
    return XCAT_OK;
}

void xcat_sce_plain_directions(uint64_t seed, uint64_t step, int64_t nb, int64_t d, float *out)
{
    const float f = (float)pow((double)d, -0.25);
    for (int64_t i = 0; i < nb * d; ++i) out[i] = f * xr_gauss12(seed, step, (uint64_t)i);
}

float xcat_sce_gauss(uint64_t seed, uint64_t step, uint64_t index)
{
    return xr_gauss12(seed, step, index);
}

size_t xcat_sce_state_bytes(const xcat_loss_desc *d, int64_t max_rows, int64_t dim)
{
    const int64_t kx = d->sce_rows_per_bucket < max_rows ? d->sce_rows_per_bucket : max_rows;
    return (size_t)(d->sce_buckets * (dim + kx + d->sce_items_per_bucket)) * 4 +
           (size_t)max_rows * 16;
}

int64_t xcat_sce_target(const xcat_loss_call *call, int64_t i)
{
    return call->h_targets64 ? ((const int64_t *)call->h_targets)[i]
                             : ((const int32_t *)call->h_targets)[i];
}

xcat_status xcat_sce_select(xcat_loss_plan *plan, const xcat_loss_call *call)
{
    xcat_context *ctx = plan->ctx;
    xcat_sce *s = plan->sce;
    const xcat_sce_dims dm = xcat_sce_dims_of(plan, call->rows);
    const int64_t n = call->rows, d = plan->dim;
    xcat_status st;
    s->pos_ready = 0; /* a new selection: the positives' grouping belongs to the last call */
    if (plan->desc.sce_mix_rows) {
        st = ctx->ops->sce_mix_directions(plan, call, s->dirs);
    } else if (ctx->ops->sce_plain_directions) {
        st = ctx->ops->sce_plain_directions(plan, call->step, s->dirs);
    } else {
        float *g = xcat_host_alloc(ctx, (size_t)(dm.nb * d) * sizeof(float), 64);
        if (!g) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "SCE directions");
        xcat_sce_plain_directions(plan->desc.seed, call->step, dm.nb, d, g);
        st = ctx->ops->tensor_write(ctx, s->dirs, g, d);
        xcat_host_free(ctx, g);
    }
    if (st) return st;
    /* ignored rows are banned from the row selection (ascending by construction) */
    int64_t *ign = xcat_host_alloc(ctx, (size_t)n * sizeof *ign + 8, 64);
    if (!ign) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "SCE ignored-row list");
    int64_t ni = 0;
    for (int64_t i = 0; i < n; ++i)
        if (xcat_sce_target(call, i) == plan->desc.ignore_index) ign[ni++] = i;
    xcat_topk_call tc = {.queries = s->dirs, .items = call->hidden, .m = dm.nb, .c = n, .d = d,
                         .k = dm.kx, .h_banned = ign, .num_banned = ni};
    xcat_tensor rv = xcat_sce_view(s->rows, dm.nb, dm.kx);
    st = ctx->ops->topk(ctx, &tc, &rv, NULL);
    xcat_host_free(ctx, ign);
    if (st) return st;
    tc = (xcat_topk_call){.queries = s->dirs, .items = call->items, .m = dm.nb,
                          .c = plan->classes, .d = d, .k = dm.ky, .h_banned = s->h_banned,
                          .num_banned = s->num_banned};
    return ctx->ops->topk(ctx, &tc, s->items, NULL);
}

/* The first n entries of a per-row state vector, on the host. */
static xcat_status read_rows(xcat_context *ctx, const xcat_tensor *t, int64_t n, void *dst)
{
    xcat_tensor v = xcat_sce_view(t, n, 1);
    return ctx->ops->tensor_read(ctx, &v, dst, 1);
}

static double weight_of(const xcat_loss_call *call, int64_t i)
{
    return call->h_weights ? (double)call->h_weights[i] : 1.0;
}

xcat_status xcat_sce_finish_forward(xcat_loss_plan *plan, const xcat_loss_call *call,
                                    xcat_tensor *loss, xcat_tensor *lse)
{
    xcat_context *ctx = plan->ctx;
    xcat_sce *s = plan->sce;
    const int64_t n = call->rows;
    float *bl = xcat_host_alloc(ctx, (size_t)n * 12 + 64, 64);
    if (!bl) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "SCE reduction");
    float *bs = bl + n;
    int32_t *bb = (int32_t *)(bs + n);
    xcat_status st = read_rows(ctx, s->best_loss, n, bl);
    if (!st) st = read_rows(ctx, s->best_bucket, n, bb);
    if (!st && lse) st = read_rows(ctx, s->best_lse, n, bs);
    if (st) goto out;
    double sum = 0.0, wsum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        if (bb[i] < 0) {
            bl[i] = 0.0f;
            bs[i] = 0.0f;
            continue;
        }
        const double w = weight_of(call, i), v = w * (double)bl[i];
        sum += v;
        wsum += w;
        bl[i] = (float)v;
    }
    if (plan->desc.reduction == XCAT_REDUCTION_NONE) {
        st = ctx->ops->tensor_write(ctx, loss, bl, 1);
    } else {
        if (plan->desc.reduction == XCAT_REDUCTION_MEAN) sum = wsum != 0.0 ? sum / wsum : 0.0;
        const float v = (float)sum;
        st = ctx->ops->tensor_write(ctx, loss, &v, 1);
    }
    if (!st && lse) st = ctx->ops->tensor_write(ctx, lse, bs, 1);
out:
    xcat_host_free(ctx, bl);
    return st;
}

enum { RADIX_BITS = 16, RADIX = 1 << RADIX_BITS };

/* Stable LSD radix sort of nk (item, row) pairs by item, item in [0, classes): sk holds items
 * [0, n) and rows [n, 2n), scratch [2n, 4n). O(nk) per 16-bit digit (one pass below 65,536
 * items, two up to 2^31) — qsort of the same pairs took 75 ms of host time in a 154 ms H200
 * SCE step at N = 409,600. On return *items / *rows point at the sorted halves. */
static void sort_by_item(int32_t *sk, int64_t n, int64_t nk, int64_t classes, int64_t *counts,
                         const int32_t **items, const int32_t **rows)
{
    int32_t *si = sk, *sr = sk + n, *di = sk + 2 * n, *dr = sk + 3 * n;
    for (int shift = 0; shift < 32 && (shift == 0 || ((classes - 1) >> shift) > 0);
         shift += RADIX_BITS) {
        memset(counts, 0, (size_t)RADIX * sizeof *counts);
        for (int64_t t = 0; t < nk; ++t) counts[((uint32_t)si[t] >> shift) & (RADIX - 1)]++;
        int64_t at = 0;
        for (int64_t v = 0; v < RADIX; ++v) {
            const int64_t c = counts[v];
            counts[v] = at;
            at += c;
        }
        for (int64_t t = 0; t < nk; ++t) {
            const int64_t to = counts[((uint32_t)si[t] >> shift) & (RADIX - 1)]++;
            di[to] = si[t];
            dr[to] = sr[t];
        }
        int32_t *ti = si, *tr = sr;
        si = di, sr = dr, di = ti, dr = tr;
    }
    *items = si;
    *rows = sr;
}

/* The plan's host scratch, allocated once: 4-byte arrays sized by max_rows — g, winner,
 * bucket_rows, pos_items, pos_rows, upstream, the sort scratch (4×), pos_off (+1), bucket_off
 * (n_b + 1) — then the radix digit counts. */
static xcat_status scratch_of(xcat_loss_plan *plan, xcat_sce_bwd *b)
{
    xcat_sce *sc = plan->sce;
    const int64_t nb = sc->nb, nmax = plan->max_rows;
    memset(b, 0, sizeof *b);
    const size_t words = (size_t)(11 * nmax + nb + 2), at = (words * 4 + 63) / 64 * 64;
    if (!sc->bwd_scratch) {
        sc->bwd_scratch = xcat_host_alloc(plan->ctx, at + (size_t)RADIX * sizeof(int64_t), 64);
        if (!sc->bwd_scratch)
            return xcat_error(plan->ctx, XCAT_ERROR_OUT_OF_MEMORY, "SCE backward plan");
    }
    int32_t *w32 = sc->bwd_scratch;
    b->g = (float *)w32;
    b->winner = w32 + nmax;
    b->bucket_rows = w32 + 2 * nmax;
    b->pos_items = w32 + 3 * nmax;
    b->pos_rows = w32 + 4 * nmax;
    b->up = (float *)(w32 + 5 * nmax);
    b->sort = w32 + 6 * nmax; /* 4·nmax */
    b->pos_off = w32 + 10 * nmax;
    b->bucket_off = w32 + 11 * nmax + 1;
    b->counts = (int64_t *)((char *)sc->bwd_scratch + at);
    b->npos = sc->npos;
    b->pos_count = sc->pos_count;
    return XCAT_OK;
}

xcat_status xcat_sce_group_positives(xcat_loss_plan *plan, const xcat_loss_call *call)
{
    xcat_sce *sc = plan->sce;
    const int64_t n = call->rows, nmax = plan->max_rows;
    xcat_sce_bwd b;
    xcat_status st = scratch_of(plan, &b);
    if (st) return st;
    int64_t nk = 0;
    for (int64_t i = 0; i < n; ++i) { /* rows ascending; the sort is stable */
        const int64_t y = xcat_sce_target(call, i);
        if (y == plan->desc.ignore_index) continue;
        b.sort[nk] = (int32_t)y;
        b.sort[nmax + nk++] = (int32_t)i;
    }
    const int32_t *item_of = b.sort, *row_of = b.sort + nmax;
    sort_by_item(b.sort, nmax, nk, plan->classes, b.counts, &item_of, &row_of);
    int64_t np = 0;
    for (int64_t t = 0; t < nk; ++t) {
        const int32_t item = item_of[t];
        if (np == 0 || b.pos_items[np - 1] != item) {
            b.pos_items[np] = item;
            b.pos_off[np++] = (int32_t)t;
        }
        b.pos_rows[t] = row_of[t];
    }
    b.pos_off[np] = (int32_t)nk;
    sc->npos = np;
    sc->pos_count = nk;
    sc->pos_ready = 1;
    return XCAT_OK;
}

xcat_status xcat_sce_backward_read(xcat_loss_plan *plan, const xcat_loss_call *call,
                                   const xcat_tensor *grad_loss, xcat_sce_bwd *b)
{
    xcat_context *ctx = plan->ctx;
    xcat_sce *sc = plan->sce;
    const int64_t n = call->rows;
    const bool none = plan->desc.reduction == XCAT_REDUCTION_NONE;
    xcat_status st = scratch_of(plan, b);
    if (!st) st = read_rows(ctx, sc->best_bucket, n, b->winner);
    if (st) return st;
    if (grad_loss) return read_rows(ctx, grad_loss, none ? n : 1, b->up);
    for (int64_t i = 0; i < (none ? n : 1); ++i) b->up[i] = 1.0f;
    return XCAT_OK;
}

void xcat_sce_backward_rows(xcat_loss_plan *plan, const xcat_loss_call *call, xcat_sce_bwd *b)
{
    const int64_t n = call->rows, nb = plan->sce->nb;
    const bool none = plan->desc.reduction == XCAT_REDUCTION_NONE;
    memset(b->bucket_off, 0, (size_t)(nb + 1) * sizeof *b->bucket_off);
    double wsum = 0.0;
    for (int64_t i = 0; i < n; ++i)
        if (b->winner[i] >= 0) wsum += weight_of(call, i);
    double scale = 1.0;
    if (plan->desc.reduction == XCAT_REDUCTION_MEAN) scale = wsum != 0.0 ? 1.0 / wsum : 0.0;
    int64_t nk = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int32_t w = b->winner[i];
        b->g[i] = 0.0f;
        if (w < 0) continue;
        b->g[i] = (float)((double)b->up[none ? i : 0] * scale * weight_of(call, i));
        b->bucket_off[w + 1]++;
        nk++;
    }
    b->contributing = nk;
    for (int64_t q = 0; q < nb; ++q) b->bucket_off[q + 1] += b->bucket_off[q];
    for (int64_t i = 0; i < n; ++i) { /* stable: rows ascending within a bucket */
        const int32_t w = b->winner[i];
        if (w >= 0) b->bucket_rows[b->bucket_off[w]++] = (int32_t)i;
    }
    for (int64_t q = nb; q > 0; --q) b->bucket_off[q] = b->bucket_off[q - 1];
    b->bucket_off[0] = 0;
}

xcat_status xcat_sce_backward_positives(xcat_loss_plan *plan, const xcat_loss_call *call,
                                        xcat_sce_bwd *b)
{
    if (!plan->sce->pos_ready) {
        xcat_status st = xcat_sce_group_positives(plan, call);
        if (st) return st;
    }
    b->npos = plan->sce->npos;
    b->pos_count = plan->sce->pos_count;
    return XCAT_OK;
}

/* Copy a selection (I32, rows × cols contiguous) into the caller's I32/I64 matrix. */
static xcat_status copy_selection(xcat_context *ctx, const xcat_tensor *src, int64_t rows,
                                  int64_t cols, xcat_tensor *out, const char *name)
{
    if (!out) return XCAT_OK;
    if (out->ctx != ctx)
        return xcat_error(ctx, XCAT_ERROR_WRONG_CONTEXT, "%s belongs to another context", name);
    if (out->dtype != XCAT_DTYPE_I32 && out->dtype != XCAT_DTYPE_I64)
        return xcat_error(ctx, XCAT_ERROR_DTYPE_MISMATCH, "%s must be I32 or I64", name);
    if (out->rows != rows || out->cols != cols)
        return xcat_error(ctx, XCAT_ERROR_SHAPE_MISMATCH, "%s is %lld×%lld: expected %lld×%lld",
                          name, (long long)out->rows, (long long)out->cols, (long long)rows,
                          (long long)cols);
    int32_t *h = xcat_host_alloc(ctx, (size_t)(rows * cols) * 8, 64);
    if (!h) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "copying %s", name);
    xcat_tensor v = xcat_sce_view(src, rows, cols);
    xcat_status st = ctx->ops->tensor_read(ctx, &v, h, cols);
    if (!st && out->dtype == XCAT_DTYPE_I64) { /* widen in place, from the back */
        int64_t *w = (int64_t *)h;
        for (int64_t i = rows * cols - 1; i >= 0; --i) w[i] = h[i];
    }
    if (!st) st = ctx->ops->tensor_write(ctx, out, h, cols);
    xcat_host_free(ctx, h);
    return st;
}

xcat_status xcat_loss_sce_buckets(xcat_loss_plan *plan, const xcat_loss_args *args,
                                  xcat_tensor *rows, xcat_tensor *items)
{
    if (!plan) return XCAT_ERROR_INVALID_ARGUMENT;
    xcat_context *ctx = plan->ctx;
    if (plan->desc.kind != XCAT_LOSS_SCE)
        return xcat_error(ctx, XCAT_ERROR_INVALID_ARGUMENT, "xcat_loss_sce_buckets needs an "
                          "XCAT_LOSS_SCE plan");
    xcat_loss_call call;
    plan->saved.valid = false; /* the selection buffers are about to change */
    xcat_status st = xcat_loss_call_prepare(plan, args, &call);
    if (st) return st;
    const xcat_sce_dims dm = xcat_sce_dims_of(plan, call.rows);
    st = xcat_sce_select(plan, &call);
    if (!st) st = copy_selection(ctx, plan->sce->rows, dm.nb, dm.kx, rows, "rows");
    if (!st) st = copy_selection(ctx, plan->sce->items, dm.nb, dm.ky, items, "items");
    if (!st) st = ctx->ops->synchronize ? ctx->ops->synchronize(ctx) : XCAT_OK;
    return st;
}
