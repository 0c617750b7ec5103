/* cpu_topk.c — fused scoring + top-K on the CPU backend, and sampled evaluation ranks.
 *
 * Each worker owns whole queries (blocks of `mb` queries, dynamic schedule), so results do not
 * depend on the thread count. For a block it walks the catalog in tiles of `ct` items:
 * OpenBLAS computes the mb×ct score tile into a cache-resident buffer, then, per query, the ISA's
 * select_above kernel keeps only scores above the query's current threshold (the k-th best so
 * far; one compare per lane, passing lanes are rare once k items are known) and appends them to
 * the query's candidate buffer (on AVX2 the tile is not even written: the ISA's fused_above
 * scores a few queries × a packed panel of items in registers and hands back only what passes,
 * see run_block_fused). Exclusions are applied to the candidates only, by walking the
 * query's ascending exclusion list and the global banned list alongside the ascending item ids
 * (O(nnz + candidates) per query). When a buffer fills, a quickselect keeps its k best and the
 * threshold rises. For K >= 4,096 each query's threshold starts from a strided sample of the
 * catalog instead of nothing (exact: see xcat_cpu_topk). The M×C score matrix never exists: the
 * workspace is per worker mb·ct floats + mb·(k + slack) candidates (+ the sample's scores).
 *
 * Knobs (ignored under IGNORE_ENV): XCAT_CPU_FUSED=0|1 (scoring by OpenBLAS tiles / fused
 * register tiles), XCAT_CPU_TOPK_SAMPLE=0 (no sampled starting thresholds).
 *
 * Order: score descending, ties by lower item id. Items arrive in ascending id order, so a new
 * item whose score equals the threshold always loses to the current k-th: the filter is a strict
 * `>`, exactly the tie rule. NaN scores fail every comparison and are never selected. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define XCAT_RNG_HOST 1
#include "../cl/rng.cl"

#include "baseline_guard.h"
#include "cpu_blas.h"
#include "cpu_topk.h"
#include "kernels.h"

typedef struct cand {
    float s;
    int64_t i;
} cand;

/* a ranks before b */
static inline int better(cand a, cand b)
{
    return a.s > b.s || (a.s == b.s && a.i < b.i);
}

static inline void swap_cand(cand *a, cand *b)
{
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Reorder v[0..n) so that v[0..k) are its k best (in no particular order); 0 < k < n. */
static void select_best(cand *v, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        /* median of three as the pivot, moved to hi */
        int64_t mid = lo + (hi - lo) / 2;
        if (better(v[mid], v[lo])) swap_cand(&v[mid], &v[lo]);
        if (better(v[hi], v[lo])) swap_cand(&v[hi], &v[lo]);
        if (better(v[mid], v[hi])) swap_cand(&v[mid], &v[hi]);
        const cand p = v[hi];
        int64_t store = lo;
        for (int64_t i = lo; i < hi; ++i)
            if (better(v[i], p)) swap_cand(&v[i], &v[store++]);
        swap_cand(&v[store], &v[hi]);
        if (store == k - 1 || store == k) return;
        if (store < k) lo = store + 1; else hi = store - 1;
    }
}

/* The final order of v[0..n) (score descending, lower id first) by an LSD radix sort of 64-bit
 * keys — high word the score mapped to an integer that decreases as it grows, low word the id —
 * in v's own memory (keys in its first half, the ping-pong buffer in its second, an even number
 * of passes). qsort with a comparator cost ~0.5 s for 1,024 queries × K = 10,000 on 2 cores.
 * Needs ids < 2^32 (the caller falls back to qsort otherwise). */
static void sort_best(cand *v, int64_t n)
{
    uint64_t *key = (uint64_t *)v, *tmp = key + n;
    for (int64_t t = 0; t < n; ++t) {
        uint32_t u;
        memcpy(&u, &v[t].s, 4);
        u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* increasing with the score */
        const uint64_t k = ((uint64_t)(~u) << 32) | (uint64_t)(uint32_t)v[t].i;
        /* key[t] overlaps v[t/2]: read before written (t ascending, v[t] read above) */
        key[t] = k;
    }
    for (int pass = 0; pass < 8; ++pass) {
        const int sh = 8 * pass;
        int64_t count[257] = {0};
        for (int64_t t = 0; t < n; ++t) ++count[((key[t] >> sh) & 255u) + 1];
        for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
        for (int64_t t = 0; t < n; ++t) tmp[count[(key[t] >> sh) & 255u]++] = key[t];
        uint64_t *sw = key;
        key = tmp;
        tmp = sw;
    }
    /* 8 passes: the sorted keys are back in the first half; decode from the end, where the
     * cand being written (slots 2t, 2t+1) only covers keys already read */
    for (int64_t t = n - 1; t >= 0; --t) {
        const uint64_t k = key[t];
        uint32_t u = ~(uint32_t)(k >> 32);
        u = (u & 0x80000000u) ? (u & 0x7FFFFFFFu) : ~u;
        float sc;
        memcpy(&sc, &u, 4);
        v[t] = (cand){sc, (int64_t)(uint32_t)k};
    }
}

static int cmp_cand(const void *a, const void *b)
{
    const cand x = *(const cand *)a, y = *(const cand *)b;
    return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

/* One query's running selection. */
typedef struct qsel {
    cand *buf;
    int64_t n;
    float thr;    /* valid when full */
    int full;     /* the k-th best is known: only scores > thr can enter */
    int64_t ex;   /* next position in the query's exclusion list */
    int64_t ban;  /* next position in the banned list */
    int sampled;  /* the threshold came from a sample (see sampled_threshold) */
} qsel;

typedef struct topk_job {
    const xcat_topk_call *c;
    const xcat_row_kernels *kern;
    const float *U, *E, *b;
    int64_t ldu, lde;
    int64_t mb, ct, cap;
    const int64_t *sample; /* sampled-threshold item ids (ascending), or NULL */
    int64_t ns, nr;        /* their count; the rank whose score starts a query's threshold */
} topk_job;

static void prune(qsel *q, int64_t k)
{
    select_best(q->buf, q->n, k);
    q->n = k;
    cand worst = q->buf[0];
    for (int64_t i = 1; i < k; ++i)
        if (better(worst, q->buf[i])) worst = q->buf[i];
    q->thr = worst.s;
    q->full = 1;
}

/* Is item j excluded for query `qi`? Items are asked in ascending order per query. */
static inline int skip_item(const xcat_topk_call *c, qsel *q, int64_t qi, int64_t j)
{
    if (c->h_offsets) {
        const int64_t end = c->h_offsets[qi + 1];
        while (q->ex < end && c->h_exclude[q->ex] < j) ++q->ex;
        if (q->ex < end && c->h_exclude[q->ex] == j) return 1;
    }
    if (c->num_banned) {
        while (q->ban < c->num_banned && c->h_banned[q->ban] < j) ++q->ban;
        if (q->ban < c->num_banned && c->h_banned[q->ban] == j) return 1;
    }
    return 0;
}

static void offer(const topk_job *jb, qsel *q, int64_t qi, float s, int64_t j)
{
    if (q->full && !(s > q->thr)) return; /* the threshold may have risen within this tile */
    if (skip_item(jb->c, q, qi, j)) return;
    q->buf[q->n++] = (cand){s, j};
    if (q->n == jb->cap) prune(q, jb->c->k);
}

/* The nr-th largest of v[0..n) (1 <= nr <= n), reordering v. */
static float nth_largest(float *v, int64_t n, int64_t nr)
{
    int64_t lo = 0, hi = n - 1;
    const int64_t k = nr - 1;
    while (lo < hi) {
        const float p = v[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > p) ++i;
            while (v[j] < p) --j;
            if (i <= j) {
                const float t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break;
    }
    return v[k];
}

/* A query's starting threshold from a strided sample of the catalog (large K only, see
 * xcat_cpu_topk): the nr-th best sampled score, set below the true K-th best score with high
 * probability. Only scores above it are offered; if fewer than K (non-excluded) items beat it,
 * block_finish reports the query and it is run again without one, so results stay exact. */
static void sampled_threshold(const topk_job *jb, int64_t qi, qsel *q, float *tmp)
{
    const xcat_topk_call *c = jb->c;
    jb->kern->gather_dots(jb->U + qi * jb->ldu, jb->E, jb->lde, jb->sample, jb->ns, c->d, tmp);
    int64_t n = 0;
    for (int64_t t = 0; t < jb->ns; ++t) {
        const float s = tmp[t] + (jb->b ? jb->b[jb->sample[t]] : 0.0f);
        if (!isnan(s)) tmp[n++] = s;
    }
    if (n < jb->nr) return;
    q->thr = nth_largest(tmp, n, jb->nr);
    q->full = 1;
    q->sampled = 1;
}

static void block_begin(const topk_job *jb, int64_t q0, int64_t nq, qsel *qs, float *tmp)
{
    const xcat_topk_call *c = jb->c;
    for (int64_t r = 0; r < nq; ++r) {
        qs[r] = (qsel){.buf = qs[r].buf, .ex = c->h_offsets ? c->h_offsets[q0 + r] : 0};
        if (jb->sample) sampled_threshold(jb, q0 + r, &qs[r], tmp);
    }
}

/* Final order of each query's best k; the tail (fewer than k items left) is −1 / −inf. */
static void block_finish(const topk_job *jb, int64_t q0, int64_t nq, qsel *qs,
                         xcat_tensor *indices, xcat_tensor *scores)
{
    const xcat_topk_call *c = jb->c;
    const int64_t k = c->k;
    for (int64_t r = 0; r < nq; ++r) {
        qsel *q = &qs[r];
        if (q->sampled && q->n < k) continue; /* the sample's threshold was too high: redo */
        q->sampled = 0;
        if (q->n > k) prune(q, k);
        if (c->c <= (int64_t)UINT32_MAX && q->n > 32)
            sort_best(q->buf, q->n);
        else
            qsort(q->buf, (size_t)q->n, sizeof *q->buf, cmp_cand);
        const int64_t row = q0 + r;
        for (int64_t t = 0; t < k; ++t) {
            const int64_t id = t < q->n ? q->buf[t].i : -1;
            if (indices->dtype == XCAT_DTYPE_I64)
                ((int64_t *)indices->data)[row * indices->stride + t] = id;
            else
                ((int32_t *)indices->data)[row * indices->stride + t] = (int32_t)id;
            if (scores)
                ((float *)scores->data)[row * scores->stride + t] =
                    t < q->n ? q->buf[t].s : -INFINITY;
        }
    }
}

/* Per-worker scratch of the fused path: the packed chunk, the passing positions and scores of
 * one micro-tile's rows, their counts, thresholds and states. */
typedef struct fused_scratch {
    float *P, *sc, *thr;
    int32_t *idx;
    int64_t *cnt;
    int *full;
} fused_scratch;

/* The fused path: per chunk of ct items, pack it once for the block, then score the block's
 * queries fused_mr at a time in registers (simd/ fused_above), offering only what passes each
 * query's threshold — no mb × ct score tile is written. */
static void run_block_fused(const topk_job *jb, int64_t q0, int64_t nq, const fused_scratch *f,
                            qsel *qs, float *tmp, xcat_tensor *indices, xcat_tensor *scores)
{
    const xcat_topk_call *c = jb->c;
    const xcat_row_kernels *k = jb->kern;
    const int64_t mr = k->fused_mr;
    block_begin(jb, q0, nq, qs, tmp);
    for (int64_t j0 = 0; j0 < c->c; j0 += jb->ct) {
        const int64_t nc = c->c - j0 < jb->ct ? c->c - j0 : jb->ct;
        k->pack_items(jb->E + j0 * jb->lde, jb->lde, nc, c->d, f->P);
        for (int64_t r0 = 0; r0 < nq; r0 += mr) {
            const int nr = nq - r0 < mr ? (int)(nq - r0) : (int)mr;
            const float *hp[12];
            for (int r = 0; r < nr; ++r) {
                hp[r] = jb->U + (q0 + r0 + r) * jb->ldu;
                f->thr[r] = qs[r0 + r].thr;
                f->full[r] = qs[r0 + r].full;
            }
            k->fused_above(hp, nr, f->P, nc, c->d, jb->b ? jb->b + j0 : NULL, f->thr, f->full,
                           f->idx, f->sc, jb->ct, f->cnt);
            for (int r = 0; r < nr; ++r) {
                const int32_t *ri = f->idx + r * jb->ct;
                const float *rs = f->sc + r * jb->ct;
                for (int64_t t = 0; t < f->cnt[r]; ++t)
                    offer(jb, &qs[r0 + r], q0 + r0 + r, rs[t], j0 + ri[t]);
            }
        }
    }
    block_finish(jb, q0, nq, qs, indices, scores);
    if (jb->sample) { /* queries whose sampled threshold was too high, again without one */
        topk_job plain = *jb;
        plain.sample = NULL;
        for (int64_t r = 0; r < nq; ++r)
            if (qs[r].sampled) run_block_fused(&plain, q0 + r, 1, f, &qs[r], tmp, indices, scores);
    }
}

static void run_block(const topk_job *jb, int64_t q0, int64_t nq, float *S, int32_t *idx,
                      qsel *qs, float *tmp, xcat_tensor *indices, xcat_tensor *scores)
{
    const xcat_topk_call *c = jb->c;
    block_begin(jb, q0, nq, qs, tmp);
    for (int64_t j0 = 0; j0 < c->c; j0 += jb->ct) {
        const int64_t nc = c->c - j0 < jb->ct ? c->c - j0 : jb->ct;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nc, (int)c->d, 1.0f,
                    jb->U + q0 * jb->ldu, (int)jb->ldu, jb->E + j0 * jb->lde, (int)jb->lde,
                    0.0f, S, (int)jb->ct);
        for (int64_t r = 0; r < nq; ++r) {
            float *row = S + r * jb->ct;
            qsel *q = &qs[r];
            if (jb->b)
                for (int64_t j = 0; j < nc; ++j) row[j] += jb->b[j0 + j];
            if (!q->full) {
                /* Until k items are known every non-NaN score is a candidate (−inf too). */
                for (int64_t j = 0; j < nc; ++j)
                    if (!isnan(row[j])) offer(jb, q, q0 + r, row[j], j0 + j);
                continue;
            }
            const int64_t n = jb->kern->select_above(row, nc, q->thr, idx);
            for (int64_t t = 0; t < n; ++t) offer(jb, q, q0 + r, row[idx[t]], j0 + idx[t]);
        }
    }
    block_finish(jb, q0, nq, qs, indices, scores);
    if (jb->sample) { /* queries whose sampled threshold was too high, again without one */
        topk_job plain = *jb;
        plain.sample = NULL;
        for (int64_t r = 0; r < nq; ++r)
            if (qs[r].sampled) run_block(&plain, q0 + r, 1, S, idx, &qs[r], tmp, indices, scores);
    }
}

xcat_status xcat_cpu_topk(xcat_context *ctx, const xcat_topk_call *c, xcat_tensor *indices,
                          xcat_tensor *scores)
{
    const int threads = ctx->num_threads;
    const xcat_row_kernels *kern = xcat_row_kernels_get(ctx->isa);
    /* Scoring: the ISA's fused register tiles where they are the level's default and it is the
     * CPU's best level (as for CE's loss-only forward; XCAT_CPU_FUSED=0 / 1 forces the BLAS
     * tiles / fused), OpenBLAS tiles otherwise. */
    const char *fe = ctx->ignore_env ? NULL : getenv("XCAT_CPU_FUSED");
    const bool fused = kern->fused_above && !(fe && fe[0] == '0') &&
                       ((fe && fe[0] == '1') ||
                        (kern->fused_above_default && ctx->isa == xcat_cpu_isa_detect())) &&
                       c->c <= INT32_MAX;
    /* Candidate slack: a buffer of k + max(k, 1024) keeps pruning rare (each prune is O(cap)). */
    const int64_t cap = c->k + (c->k > 1024 ? c->k : 1024);
    /* Query block: big enough for an efficient sgemm and to read E few times (fused: to pack
     * each chunk for many queries — up to 1,024 while K <= 1,024), small enough that the
     * candidate buffers stay within ~128 MiB per worker; shrunk so every worker has work.
     * Fused at K = 10,000 with 419 queries per block ran 9 % slower than the BLAS path; with
     * 256, 5 % faster (2-core EPYC, M = 2,048, d = 64). */
    const int64_t mb_max = fused && c->k <= 1024 ? 1024 : 256;
    int64_t mb = (int64_t)((128u << 20) / ((size_t)cap * sizeof(cand)));
    if (mb > mb_max) mb = mb_max;
    if (mb < 1) mb = 1;
    const int64_t per_thread = (c->m + threads - 1) / threads;
    if (mb > per_thread) mb = per_thread;
    /* Items per tile: 1,024 for OpenBLAS; fused, a packed chunk of ~128 KiB (L2). */
    int64_t ct = 1024;
    if (fused) {
        const int64_t nr = kern->fused_nr;
        ct = (int64_t)32768 / c->d;
        if (ct > 1024) ct = 1024;
        ct = (ct + nr - 1) / nr * nr;
        if (ct < nr) ct = nr;
    }
    /* Large K: start each query's threshold from a strided sample of ns items, at the rank nr
     * whose score lies below the true K-th best with high probability (expected e = ns·K/C
     * sampled items above it; nr = e + 4·√e + 8). Without it a query offers about
     * K·(1 + ln(C/K)) candidates (56,000 at K = 10,000, C = 10⁶) and prunes its buffer several
     * times; with it about nr·C/ns ≈ 1.6·K. Exactness is kept by redoing a query that ends
     * with fewer than K items above its sampled threshold (block_finish). The sample is
     * gathered row by row, which costs more than it saves below K ≈ 4,096 (2-core EPYC,
     * M = 2,048, C = 10⁶, d = 64, on / off: K = 2,048 4.8-5.1 vs 3.3-3.5 s; K = 4,096 3.1-3.9
     * vs 4.3-4.4 s; K = 10,000 3.8 vs 5.8-6.0 s). XCAT_CPU_TOPK_SAMPLE=0 turns it off. */
    int64_t *sample = NULL, ns = 0, nrank = 0;
    const char *se = ctx->ignore_env ? NULL : getenv("XCAT_CPU_TOPK_SAMPLE"); /* 0: off */
    if (c->k >= 4096 && !(se && se[0] == '0')) {
        /* at most 1/32 of the catalog (the sample is scored twice: ~3 % more work) */
        ns = 64 * c->c / c->k;
        if (ns > c->c / 32) ns = c->c / 32;
        if (ns > 65536) ns = 65536;
        const double e = (double)ns * (double)c->k / (double)c->c;
        nrank = (int64_t)(e + 4.0 * sqrt(e) + 8.0);
        if (ns >= 1024 && nrank < ns / 2) {
            sample = xcat_host_alloc(ctx, (size_t)ns * sizeof *sample, 64);
            if (!sample)
                return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "top-K sample: %lld ids",
                                  (long long)ns);
            for (int64_t t = 0; t < ns; ++t) sample[t] = t * c->c / ns;
        } else {
            ns = 0;
        }
    }
    topk_job jb = {.c = c, .kern = kern, .sample = sample, .ns = ns, .nr = nrank,
                   .U = c->queries->data, .E = c->items->data,
                   .b = c->bias ? c->bias->data : NULL, .ldu = c->queries->stride,
                   .lde = c->items->stride, .mb = mb, .ct = ct, .cap = cap};
    const size_t mr = 12;
    const size_t tile = fused ? (size_t)ct * (size_t)c->d * sizeof(float) /* P */
                                    + mr * (size_t)ct * (sizeof(float) + sizeof(int32_t))
                                    + mr * (sizeof(int64_t) + sizeof(float) + sizeof(int))
                              : (size_t)mb * (size_t)ct * sizeof(float) +
                                    (size_t)ct * sizeof(int32_t);
    const size_t head = (tile + 63) / 64 * 64, tmp_bytes = ((size_t)ns * sizeof(float) + 63) / 64 * 64;
    const size_t per_worker = head + tmp_bytes + (size_t)mb * sizeof(qsel) +
                              (size_t)mb * (size_t)cap * sizeof(cand);
    char *ws = xcat_host_alloc(ctx, per_worker * (size_t)threads, 64);
    if (!ws) {
        xcat_host_free(ctx, sample);
        return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "top-K workspace: %zu bytes",
                          per_worker * (size_t)threads);
    }
    const int64_t nblocks = (c->m + mb - 1) / mb;
    const int saved = blas_pin_begin();
#pragma omp parallel num_threads(threads)
    {
        blas_single_threaded();
        char *w = ws + per_worker * (size_t)omp_get_thread_num();
        float *tmp = (float *)(w + head);
        qsel *qs = (qsel *)(w + head + tmp_bytes);
        cand *bufs = (cand *)(qs + mb);
        for (int64_t r = 0; r < mb; ++r) qs[r].buf = bufs + r * cap;
        float *S = (float *)w;
        int32_t *idx = (int32_t *)(S + mb * ct);
        fused_scratch f = {0};
        if (fused) {
            f.P = (float *)w;
            f.sc = f.P + ct * c->d;
            f.idx = (int32_t *)(f.sc + mr * (size_t)ct);
            f.cnt = (int64_t *)(f.idx + mr * (size_t)ct);
            f.thr = (float *)(f.cnt + mr);
            f.full = (int *)(f.thr + mr);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < nblocks; ++blk) {
            const int64_t q0 = blk * mb, nq = c->m - q0 < mb ? c->m - q0 : mb;
            if (fused)
                run_block_fused(&jb, q0, nq, &f, qs, tmp, indices, scores);
            else
                run_block(&jb, q0, nq, S, idx, qs, tmp, indices, scores);
        }
    }
    blas_pin_end(saved);
    xcat_host_free(ctx, ws);
    xcat_host_free(ctx, sample);
    return XCAT_OK;
}

/* ---- sampled evaluation ------------------------------------------------------------------ */

static float score_of(const xcat_topk_call *c, int64_t q, int64_t j)
{
    const float *u = (const float *)c->queries->data + q * c->queries->stride;
    const float *e = (const float *)c->items->data + j * c->items->stride;
    float s = 0.0f;
    for (int64_t t = 0; t < c->d; ++t) s += u[t] * e[t];
    if (c->bias) s += ((const float *)c->bias->data)[j];
    return s;
}

/* Is x in the ascending v[lo..hi] (inclusive, lo <= hi)? */
static int in_sorted(const int64_t *v, int64_t lo, int64_t hi, int64_t x)
{
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x) lo = mid + 1; else hi = mid;
    }
    return v[lo] == x;
}

/* A drawn negative is usable when it is neither the target, nor excluded, nor banned. */
static int usable(const xcat_topk_call *c, int64_t q, int64_t target, int64_t j)
{
    if (j == target) return 0;
    if (c->h_offsets) {
        const int64_t lo = c->h_offsets[q], hi = c->h_offsets[q + 1];
        if (lo < hi && in_sorted(c->h_exclude, lo, hi - 1, j)) return 0;
    }
    if (c->num_banned && in_sorted(c->h_banned, 0, c->num_banned - 1, j)) return 0;
    return 1;
}

xcat_status xcat_cpu_rank_sampled(xcat_context *ctx, const xcat_topk_call *c,
                                  const int64_t *h_targets, int64_t num_negatives, uint64_t seed,
                                  xcat_tensor *ranks)
{
    int64_t *out = ranks->data; /* a contiguous vector */
#pragma omp parallel for schedule(static) num_threads(ctx->num_threads)
    for (int64_t q = 0; q < c->m; ++q) {
        const int64_t y = h_targets[q];
        const float st = score_of(c, q, y);
        int64_t rank = 0;
        for (int64_t r = 0; r < num_negatives; ++r) {
            for (uint32_t a = 0; a < 64; ++a) {
                const int64_t j = xr_draw_uniform(seed, 0, (xr_u32)q, (xr_u32)r, a,
                                                  (xr_u32)c->c);
                if (!usable(c, q, y, j)) continue;
                const float s = score_of(c, q, j);
                rank += s > st || (s == st && j < y);
                break;
            }
        }
        out[q] = rank;
    }
    return XCAT_OK;
}
