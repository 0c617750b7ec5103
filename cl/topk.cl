/* topk.cl — fused scoring + top-K selection, and sampled-evaluation ranks (needs rng.cl,
 * gemm.cl and mma.cl before it in the program).
 *
 * Keys. A candidate (score s, item id) is one 64-bit key: the high word maps s to an unsigned
 * integer that DEcreases as s increases (a total order on non-NaN floats, −0 < +0), the low
 * word is the id. Smaller key = better candidate, and equal scores order by lower id: the
 * library's tie rule is plain integer order, and every (row, id) key is unique.
 *
 * Per query row the host keeps, in global memory, a candidate buffer of `cap` keys, its count,
 * and a threshold key `thr` (only keys < thr may enter; all ones until K keys are known).
 *
 *  topk_score_filter  one GEMM tile (gemm.cl's gemm_tile, queries × a chunk of items) whose
 *                     epilogue keeps the scores whose key beats the row's threshold and appends
 *                     them to the row's buffer: positions are reserved with local atomics per
 *                     row, then one global atomic per row and work-group. Appends land in any
 *                     order, but the SET of keys is fixed.
 *  topk_select        one work-group per row, when its buffer holds more than `limit` keys:
 *                     the excluded items (per-query CSR + global banned list, copied to local
 *                     memory when they fit) are dropped, then a radix select (8-bit digits from
 *                     the top, local histograms) keeps exactly the K smallest keys in place and
 *                     the threshold becomes the largest kept key. Exclusions are applied here and
 *                     not in the GEMM epilogue: there they cost a divergent binary search per
 *                     passing score (measured on the H100: +15 % at K = 10, +30 % at K = 1000);
 *                     here the lanes of a group check a row's keys side by side. An excluded
 *                     key only occupies buffer room until the next selection, and thresholds
 *                     come from valid keys only, so the result is the same.
 *  approximate path  topk_score_filter_mma (TF32 tensor cores, mma.cl) instead of
 *                     topk_score_filter; topk_norms gives each row an error margin, topk_select
 *                     keeps every key within it of the K-th, topk_rescore recomputes the
 *                     survivors in fp32 before the final exact selection (ocl_topk.c).
 *  at the end        topk_select with limit 0 (purge and selection for every row), then
 *                     topk_sort_blocks (blocks of SORT_LOCAL keys bitonic-sorted in local
 *                     memory; one block goes straight to the output) and topk_merge (the tail
 *                     −1 / −inf, and rows of several blocks merged by rank: binary searches in
 *                     the other blocks). Three kernels rather than one: PoCL 5's work-group
 *                     compiler asserted on the nested barrier loops of a single one.
 * Every step depends only on the set of keys, so results are deterministic and, on exact
 * scores, identical to the CPU backend's.
 *
 * Prelude: gemm.cl's tile defines, TOPK_EARLY_EXIT (GPUs: inactive rows of topk_select return
 * at once), SEL_WG (work-items of the per-row kernels, a power of two),
 * SORT_LOCAL (a power of two: keys sorted in local memory at once). */

#ifndef SEL_WG
#define SEL_WG 64
#endif
#ifndef SORT_LOCAL
#define SORT_LOCAL 1024
#endif

#define TOPK_NONE 0xFFFFFFFFFFFFFFFFUL

inline ulong topk_key(const float s, const uint id)
{
    uint u = as_uint(s);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* increasing with s */
    return ((ulong)(~u) << 32) | (ulong)id;
}

inline float topk_key_score(const ulong key)
{
    const uint u = ~(uint)(key >> 32);
    return as_float((u & 0x80000000u) ? (u & 0x7FFFFFFFu) : ~u);
}

/* Is x among the ascending v[lo..hi] (inclusive, lo <= hi)? */
inline int topk_in_sorted(__global const int *v, long lo, long hi, const int x)
{
    while (lo < hi) {
        const long mid = lo + (hi - lo) / 2;
        if (v[mid] < x) lo = mid + 1; else hi = mid;
    }
    return v[lo] == x;
}

/* Exclusion id i: has_ex is 1 for int32 ids, 2 for int64 ids (the caller's own tensor). */
inline int topk_ex_at(__global const int *ex, const int has_ex, const long i)
{
    return has_ex == 2 ? (int)((__global const long *)ex)[i] : ex[i];
}

/* Excluded for query q: in its CSR list or in the banned list (both ascending). */
inline int topk_excluded(const long q, const int item, __global const long *ex_off,
                         __global const int *ex, const int has_ex, __global const int *banned,
                         const int nbanned)
{
    if (has_ex) {
        long lo = ex_off[q], hi = ex_off[q + 1] - 1;
        if (lo <= hi) {
            while (lo < hi) {
                const long mid = lo + (hi - lo) / 2;
                if (topk_ex_at(ex, has_ex, mid) < item) lo = mid + 1; else hi = mid;
            }
            if (topk_ex_at(ex, has_ex, lo) == item) return 1;
        }
    }
    return nbanned > 0 && topk_in_sorted(banned, 0, nbanned - 1, item);
}

/* The caller's exclusion CSR checked where it lies (the host then needs no copy of it):
 * offsets from 0, non-decreasing, at most nnz; ids (int32 or int64: has_ex 1 / 2) in [0, C)
 * and ascending per query. One work-item per query; bad[0] (M before the launch) becomes the
 * smallest query with a problem — the host then finds and names it on its own copy. */
__kernel void topk_check_csr(const int M, const int C, const long nnz,
                             __global const long *restrict off, __global const int *restrict ex,
                             const int has_ex, __global int *restrict bad)
{
    const int q = get_global_id(0);
    if (q >= M) return;
    const long lo = off[q], hi = off[q + 1];
    int ok = lo >= 0 && lo <= hi && hi <= nnz && (q > 0 || lo == 0);
    long prev = 0;
    for (long i = lo; ok && i < hi; i++) {
        const long id = has_ex == 2 ? ((__global const long *)ex)[i] : (long)ex[i];
        ok = id >= prev && id < C; /* prev starts at 0: a negative id fails */
        prev = id;
    }
    if (!ok) atomic_min(bad, q);
}

/* A fixed pseudo-random value in [−1, 1) per (row, item): the emulated approximate scores. */
inline float topk_noise(const uint row, const uint item)
{
    uint h = row * 0x9E3779B1u ^ item * 0x85EBCA77u;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    return (float)(int)h * 0x1p-31f;
}

/* stride: the chunk's item j is catalog item c0 + j·stride (B's rows and the bias are passed
 * with that stride): 1 in the scan, more for the strided sample of the starting thresholds. */
#define TOPK_SCORE_ARGS                                                                      \
    const int M, const int N, const int D, __global const float *restrict A, const ulong offA, \
        const long lda, __global const float *restrict B, const ulong offB, const long ldb,  \
        __global const float *restrict bias, const ulong offbias, const int has_bias,        \
        const int c0, const int stride, __global ulong *restrict cand, const long cap,       \
        __global uint *restrict cnt, __global const ulong *restrict thr,                     \
        __global const float *restrict marg

/* The scoring kernels' epilogue: the work-item's NR × NC scores acc[i][j] sit at tile row
 * ROWF(i), column COLF(j). Keys that beat the row's threshold are appended to its buffer:
 * positions reserved with local atomics per row, then one global atomic per row and group.
 * Where NR·NC <= 64 the passing scores are one bit each of a mask (bit i·NC + j) and both
 * loops after the compare (count, store) walk only its set bits: a warp then runs about as
 * many iterations as its lanes' largest count of passing scores (1–2 at K = 1,000, C = 10^6),
 * instead of the whole NC-wide inner loop for every row i in which any of its lanes had one —
 * the epilogue that was most of the scan's cost beyond its GEMM on the H200 (docs/
 * benchmarks.md, session 13). A set bit's score is taken from acc by a select tree on the
 * bit's index (TOPK_PICK: registers cannot be indexed at run time). The old loops remain for
 * larger work-item tiles (TM·TN > 64, only by XCAT_CL_GEMM_TILE) and for the emulated
 * tensor-core tile (MMA_EMULATE, a test path for devices without tensor cores): with the mask
 * there the Xeon's PoCL 5 returned rows of −1 in the topk suite (sampled_threshold_ties, every
 * seed of 3; PoCL 3.1 and the exact tile on PoCL 5 pass) — its work-group compiler and that
 * tile's barrier-per-mma emulation, not found further (docs/devices.md, session 13).
 * TOPK_PERTURB (a program of its own, for testing the approximate path on devices without
 * tensor cores): every score moves by up to 0.99 of half the row's margin, a stand-in for
 * TF32 rounding. Compiled out otherwise (a runtime flag cost registers: 50 vs 33 ms on the
 * H200's scoring pass). */
#ifndef TOPK_PERTURB
#define TOPK_PERTURB 0
#endif
/* acc[b / NC][b % NC] for a run-time b < NR·NC <= 64, into OUT: six levels of selects. */
#define TOPK_PICK(NR, NC, b, OUT)                                                            \
    {                                                                                        \
        float v_[64];                                                                        \
        for (int t_ = 0; t_ < 64; t_++)                                                      \
            v_[t_] = t_ < (NR) * (NC) ? acc[t_ / (NC)][t_ % (NC)] : 0.0f;                    \
        for (int h_ = 0; h_ < 6; h_++) {                                                     \
            const int odd_ = ((b) >> h_) & 1;                                                \
            for (int t_ = 0; t_ < (32 >> h_); t_++)                                          \
                v_[t_] = odd_ ? v_[2 * t_ + 1] : v_[2 * t_];                                 \
        }                                                                                    \
        OUT = v_[0];                                                                         \
    }
/* the lowest set bit's index (OpenCL 1.2 has clz, not ctz) */
#define TOPK_LOW_BIT(m) (63 - (int)clz((m) & (0UL - (m))))
#define TOPK_FILTER(NR, NC, ROWF, COLF, MASK_OK)                                             \
    for (int r = lid; r < BM; r += GEMM_WG) lcnt[r] = lnext[r] = 0;                          \
    barrier(CLK_LOCAL_MEM_FENCE);                                                            \
    const int masked = (MASK_OK) && (NR) * (NC) <= 64;                                       \
    ulong pm = 0;                 /* masked: bit i·NC + j set where acc[i][j] passes */      \
    uint pass[NR], off[NR];       /* else: per row i, its passing columns and offset */      \
    for (int i = 0; i < NR; i++) {                                                           \
        const int rl = ROWF(i), row = m0 + rl;                                               \
        pass[i] = 0;                                                                         \
        if (row < M) {                                                                       \
            /* key < t, decided on the float first: s > ts is enough (both non-NaN; NaN  \
             * never passes), s == ts (±0 too) goes to the keys; t of "none" → −inf, t of \
             * score-only (0: nothing passes) → NaN */                                     \
            const ulong t = thr[row];                                                        \
            const float ts = t == TOPK_NONE ? -INFINITY : topk_key_score(t);                 \
            const float hm = TOPK_PERTURB ? 0.495f * marg[row] : 0.0f;                     \
            for (int j = 0; j < NC; j++) {                                                   \
                const int col = n0 + COLF(j);                                                \
                if (col >= N) continue;                                                      \
                const uint id = (uint)(c0 + col * stride);                                   \
                float s = acc[i][j];                                                         \
                if (has_bias) s += bias[offbias + (long)col * stride];                       \
                if (TOPK_PERTURB) s += hm * topk_noise((uint)row, id);                       \
                acc[i][j] = s;                                                               \
                if (s > ts || (s == ts && topk_key(s, id) < t))                              \
                    pass[i] |= 1u << j;                                                      \
            }                                                                                \
        }                                                                                    \
        if (masked) {                                                                        \
            pm |= (ulong)pass[i] << (masked ? i * (NC) : 0);                                 \
        } else {                                                                             \
            const uint n = popcount(pass[i]);                                                \
            off[i] = n ? atomic_add(&lcnt[rl], n) : 0;                                       \
        }                                                                                    \
    }                                                                                        \
    for (ulong m = masked ? pm : 0; m; m &= m - 1)                                           \
        atomic_inc(&lcnt[ROWF(TOPK_LOW_BIT(m) / (NC))]);                                     \
    barrier(CLK_LOCAL_MEM_FENCE);                                                            \
    for (int r = lid; r < BM; r += GEMM_WG)                                                  \
        lbase[r] = lcnt[r] ? atomic_add(&cnt[m0 + r], lcnt[r]) : 0;                          \
    barrier(CLK_LOCAL_MEM_FENCE);                                                            \
    for (ulong m = masked ? pm : 0; m; m &= m - 1) {                                         \
        const int b = TOPK_LOW_BIT(m), rl = ROWF(b / (NC));                                  \
        float s;                                                                             \
        TOPK_PICK(NR, NC, b, s)                                                              \
        /* cnt + chunk <= cap, or topk_select flags the row (spaced selections) */           \
        const long pos = (long)lbase[rl] + atomic_inc(&lnext[rl]);                           \
        if (pos < cap)                                                                       \
            cand[(long)(m0 + rl) * cap + pos] =                                              \
                topk_key(s, (uint)(c0 + (n0 + COLF(b % (NC))) * stride));                    \
    }                                                                                        \
    for (int i = 0; !masked && i < NR; i++) {                                                \
        if (!pass[i]) continue;                                                              \
        const int rl = ROWF(i);                                                              \
        __global ulong *buf = cand + (long)(m0 + rl) * cap;                                  \
        long pos = (long)lbase[rl] + off[i];                                                 \
        for (int j = 0; j < NC; j++)                                                         \
            if (pass[i] & (1u << j)) {                                                       \
                if (pos < cap)                                                               \
                    buf[pos] = topk_key(acc[i][j], (uint)(c0 + (n0 + COLF(j)) * stride));    \
                pos++;                                                                       \
            }                                                                                \
    }

#define TOPK_TILE_SETUP(SA, SB)                                                              \
    __local float4 As4[2 * (SA)];                                                            \
    __local float4 Bs4[2 * (SB)];                                                            \
    __local uint lcnt[BM], lbase[BM], lnext[BM];                                             \
    const int lid = get_local_id(0);                                                         \
    const int ntn = (N + BN - 1) / BN;                                                       \
    const int gid = get_group_id(0);                                                         \
    const int m0 = (gid / ntn) * BM, n0 = (gid % ntn) * BN;

#define TOPK_GEMM_ROW(i) GEMM_ROW(ty, i)
#define TOPK_GEMM_COL(j) GEMM_COL(tx, j)

/* Exact fp32 scores (gemm.cl's tile). */
__kernel __attribute__((reqd_work_group_size(GEMM_WG, 1, 1))) void topk_score_filter(
    TOPK_SCORE_ARGS)
{
    TOPK_TILE_SETUP(GEMM_SA, GEMM_SB)
    const int tx = lid % GEMM_RN, ty = lid / GEMM_RN;
    float acc[TM][TN];
    gemm_tile(M, N, A + offA, lda, B + offB, ldb, 0, D, m0, n0, As4, Bs4, 0, 1,
              GEMM_ALIGNED(offA, lda), GEMM_ALIGNED(offB, ldb), acc);
    TOPK_FILTER(TM, TN, TOPK_GEMM_ROW, TOPK_GEMM_COL, 1)
}

#if defined(GEMM_MMA) && GEMM_MMA
/* TF32 tensor-core scores (mma.cl), within the row's margin of the exact ones. */
__kernel __attribute__((reqd_work_group_size(GEMM_WG, 1, 1))) void topk_score_filter_mma(
    TOPK_SCORE_ARGS)
{
    TOPK_TILE_SETUP(MMA_S + MMA_XS4 / 2, MMA_S) /* + mma.cl's emulation scratch, if any */
    float acc[8][8];
    gemm_tile_mma(M, N, A + offA, lda, B + offB, ldb, 0, D, m0, n0, As4, Bs4,
                  GEMM_ALIGNED(offA, lda), GEMM_ALIGNED(offB, ldb), 0, 0, acc);
    TOPK_FILTER(8, 8, MMA_ROW, MMA_COL, !MMA_EMULATE)
}
#endif

/* Approximate path, before the scan: rows' Euclidean norms, NORM_LANES work-items per row
 * (neighbouring lanes read neighbouring floats of a row). mode 0 (items): the largest norm
 * goes to gmax[0] (one atomic max per group, on the bits: non-negative floats order as their
 * bits, a NaN wins); mode 1 (bias, D = 1): the largest |b| to gmax[1]; mode 2 (queries): the
 * row's margin, 2 × the bound on |approximate − exact score|:
 *   marg = 2.02·((2^-10 + (D + 4)·2^-22)·‖u‖·max‖e‖ + 2^-22·max|b|)
 * (TF32 rounding of both inputs: 2^-10 relative on the product; fp32 accumulation in both the
 * approximate and the exact sum, at most 2 ulps per add on tensor cores; the bias add's
 * rounding; 1 % for the norms' own rounding). Not finite: the row falls back to exact. */
#define NORM_LANES (SEL_WG < 8 ? SEL_WG : 8)
__kernel __attribute__((reqd_work_group_size(SEL_WG, 1, 1))) void topk_norms(
    const int rows, const int D, __global const float *X, const ulong offX, const long ldx,
    const int mode, __global uint *gmax, __global float *marg)
{
    __local float part[SEL_WG];
    const int lid = get_local_id(0), lane = lid % NORM_LANES;
    const int r = get_group_id(0) * (SEL_WG / NORM_LANES) + lid / NORM_LANES;
    __global const float *x = X + offX + (long)r * ldx;
    float ss = 0.0f;
    for (int t = lane; r < rows && t < D; t += NORM_LANES) ss = mad(x[t], x[t], ss);
    part[lid] = ss;
    barrier(CLK_LOCAL_MEM_FENCE);
    float v = 0.0f;
    if (lane == 0 && r < rows) {
        for (int l = 1; l < NORM_LANES; l++) ss += part[lid + l];
        const float nrm = sqrt(ss);
        if (mode == 2) {
            const float emax = as_float(gmax[0]), bmax = as_float(gmax[1]);
            const float c1 = 0x1p-10f + (float)(D + 4) * 0x1p-22f;
            marg[r] = 2.02f * (c1 * nrm * emax + 0x1p-22f * bmax);
        }
        v = mode == 1 ? fabs(x[0]) : nrm;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    part[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0 && mode != 2) {
        uint mx = 0;
        for (int l = 0; l < SEL_WG; l += NORM_LANES) mx = max(mx, as_uint(part[l]));
        atomic_max(&gmax[mode], mx);
    }
}

/* The row's exclusion lists in local memory when they fit (ids ascending; `ln` = -1 when the
 * lists stay in global memory). Called by the whole group. */
#define EX_LOCAL 1024
inline void topk_lists_local(const long q, __global const long *ex_off, __global const int *ex,
                             const int has_ex, __global const int *banned, const int nbanned,
                             __local int *lex, __local int *lcount)
{
    const long lo = has_ex ? ex_off[q] : 0, hi = has_ex ? ex_off[q + 1] : 0;
    const long ne = hi - lo;
    const int fits = ne + nbanned <= EX_LOCAL;
    for (long i = get_local_id(0); fits && i < ne; i += SEL_WG) lex[i] = topk_ex_at(ex, has_ex, lo + i);
    for (int i = get_local_id(0); fits && i < nbanned; i += SEL_WG) lex[ne + i] = banned[i];
    if (get_local_id(0) == 0) {
        lcount[0] = fits ? (int)ne : -1;
        lcount[1] = nbanned;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

inline int topk_in_local(__local const int *v, int lo, int hi, const int x) /* v[lo, hi) */
{
    if (lo >= hi) return 0;
    hi--;
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (v[mid] < x) lo = mid + 1; else hi = mid;
    }
    return v[lo] == x;
}

/* Drop the excluded keys of buf[0, n) in place; returns how many remain. */
inline uint topk_purge(__global ulong *buf, const uint n, const long q, __global const long *ex_off,
                       __global const int *ex, const int has_ex, __global const int *banned,
                       const int nbanned, __local const int *lex, __local const int *lcount,
                       __local uint *shared)
{
    /* No early return anywhere in these kernels: every barrier sits in straight code or in a
     * loop with one exit and a uniform trip count (PoCL's work-group compiler asserts on
     * other shapes). */
    const int lid = get_local_id(0), ne = lcount[0], nb = lcount[1];
    const int any = has_ex || nbanned;
    const uint nloop = any ? n : 0;
    if (lid == 0) shared[3] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint base = 0; base < nloop; base += SEL_WG) {
        const uint i = base + lid;
        const ulong key = i < n ? buf[i] : TOPK_NONE;
        int keep = i < n;
        if (keep) {
            const int id = (int)(uint)key;
            keep = ne >= 0 ? !(topk_in_local(lex, 0, ne, id) || topk_in_local(lex, ne, ne + nb, id))
                           : !topk_excluded(q, id, ex_off, ex, has_ex, banned, nbanned);
        }
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
        if (keep) buf[atomic_inc(&shared[3])] = key;
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    }
    const uint m = any ? shared[3] : n;
    barrier(CLK_LOCAL_MEM_FENCE);
    return m;
}

/* The bound key B such that exactly k of buf[0, n) (keys unique) are <= B, when n > k; all
 * ones when n <= k (every key stays). A radix select, 8-bit digits from the top, local
 * histograms (hist: 256 bins + 16 sums of 16 bins). levels < 8: only the top 8·levels bits
 * are resolved, and B is the upper edge of the bucket holding the k-th key (at least k keys
 * are <= B). All work-items of the group call it and get the same value. */
inline ulong topk_kth_bound(__global const ulong *buf, const uint n, const uint k,
                            __local uint *hist, __local uint *shared, const int levels)
{
    const int lid = get_local_id(0);
    ulong prefix = 0;
    uint need = k;
    int shift = 64;
    uint done = n <= k;
    /* Eight digit levels, always: a finished selection makes the rest zero-trip, so the
     * barriers stay in a counted loop (PoCL's work-group compiler asserts on barrier loops
     * whose exit depends on local memory). */
    for (int level = 0; level < levels; ++level) {
        const int sh = 56 - 8 * level;
        for (int b = lid; b < 256; b += SEL_WG) hist[b] = 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        const uint nl = done ? 0 : n;
        for (uint i = lid; i < nl; i += SEL_WG) {
            const ulong key = buf[i];
            if (sh == 56 || (key >> (sh + 8)) == prefix)
                atomic_inc(&hist[(uint)(key >> sh) & 255u]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        /* The digit: the bin where the running count reaches `need`, found through the sums
         * of 16 bins (at most 16 + 16 serial steps instead of 256: one work-item walking all
         * 256 bins was most of a selection's time on the H200, ~8 levels × ~100 dependent
         * local reads per row) */
        for (int g = lid; g < 16; g += SEL_WG) {
            uint t = 0;
            for (int b = 16 * g; b < 16 * g + 16; ++b) t += hist[b];
            hist[256 + g] = t;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid == 0 && !done) {
            uint cum = 0, g = 0;
            while (g < 15 && cum + hist[256 + g] < need) cum += hist[256 + g++];
            uint b = 16 * g;
            while (b < 16 * g + 15 && cum + hist[b] < need) cum += hist[b++];
            shared[0] = b;
            shared[1] = need - cum;
            shared[2] = hist[b] == need - cum;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (!done) {
            prefix = (prefix << 8) | shared[0];
            need = shared[1];
            shift = sh;
            done = shared[2] || sh == 0;
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* shared[] is rewritten by the next digit */
    }
    /* exactly k keys have (key >> shift) <= prefix */
    return shift == 64 ? TOPK_NONE : (prefix << shift) | ((1UL << shift) - 1UL);
}

/* Over the keys of buf[0, n) that are <= bound: their largest (0 if none) and, in *count,
 * how many. All work-items call it and get the same values. */
inline ulong topk_max_le(__global const ulong *buf, const uint n, const ulong bound,
                         __local ulong *red, __local uint *shared, uint *count)
{
    const int lid = get_local_id(0);
    if (lid == 0) shared[3] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    ulong mx = 0;
    uint c = 0;
    for (uint i = lid; i < n; i += SEL_WG) {
        const ulong key = buf[i];
        if (key <= bound) {
            c++;
            mx = key > mx ? key : mx;
        }
    }
    if (c) atomic_add(&shared[3], c);
    red[lid] = mx;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = SEL_WG / 2; s > 0; s >>= 1) {
        if (lid < s && red[lid + s] > red[lid]) red[lid] = red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    mx = red[0];
    *count = shared[3];
    barrier(CLK_LOCAL_MEM_FENCE);
    return mx;
}

/* Keep the keys of buf[0, n) that are <= bound, in place (order not kept); returns how many.
 * All work-items call it. */
inline uint topk_keep_le(__global ulong *buf, const uint n, const ulong bound,
                         __local uint *shared)
{
    const int lid = get_local_id(0);
    if (lid == 0) shared[3] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    const uint nloop = bound == TOPK_NONE ? 0 : n;
    for (uint base = 0; base < nloop; base += SEL_WG) {
        const uint i = base + lid;
        const ulong key = i < n ? buf[i] : TOPK_NONE;
        const int keep = i < n && key <= bound;
        /* every read of this block happens before any write of it; writes go below base + WG */
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
        if (keep) buf[atomic_inc(&shared[3])] = key;
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    }
    const uint m = bound == TOPK_NONE ? n : shared[3];
    barrier(CLK_LOCAL_MEM_FENCE);
    return m;
}

#define TOPK_LIST_ARGS                                                                       \
    const long q0, __global const long *ex_off, __global const int *ex, const int has_ex,    \
        __global const int *banned, const int nbanned

/* Rows whose buffer holds more than `limit` keys: exclusions out, then the k best kept and the
 * threshold raised to the worst of them (only when k keys remain).
 * approx (the buffer holds approximate scores, each within marg[row] / 2 of its exact one):
 * every key within marg[row] of the k-th best is kept as well, and that margin key becomes
 * the threshold — an item whose exact score may reach the exact k-th best is never dropped.
 * When that keeps more than keep_max keys (0: no cap), or the margin is not finite, the row
 * is cut to exactly k and flagged in flags[row]: the host redoes it exactly.
 * sthr: the row's statistical threshold — the last threshold it got from a rank below k that
 * only holds with high probability (the sampled start, a statistical cut mid-scan: both
 * topk_cut_rank; none: all ones). sthr_mode 1 (the final selection after a scan that had
 * them) checks it: every key <= the final bound (the k-th key;
 * approx: the margin key) must have been < it, else an item of the top k (or of the margin set)
 * may have been kept out: such a row — or one left with fewer than k keys — is flagged. */
__kernel __attribute__((reqd_work_group_size(SEL_WG, 1, 1))) void topk_select(
    __global ulong *restrict cand, const long cap, __global uint *restrict cnt,
    __global ulong *restrict thr, const uint k, const uint limit, const uint keep_max,
    TOPK_LIST_ARGS, const int approx, __global const float *restrict marg,
    __global uint *restrict flags, const int sthr_mode, __global ulong *restrict sthr)
{
    const int must_fill = sthr_mode == 1;
    __local uint hist[256 + 16], shared[4];
    __local ulong red[SEL_WG];
    __local int lex[EX_LOCAL], lcount[2];
    const int row = get_group_id(0);
    /* more keys than the buffer holds (only when selections are spaced out, sel_every of
     * ocl_topk.c): the appends beyond cap were dropped, the row is flagged for a redo */
    const uint n_in = cnt[row];
    const int lost = (long)n_in > cap;
    const uint n0 = lost ? (uint)cap : n_in;
    const int active = n0 > limit; /* uniform in the group; inactive rows loop zero times */
    if (must_fill && n0 < k && get_local_id(0) == 0) flags[row] = 1; /* inactive rows too */
#if TOPK_EARLY_EXIT
    /* GPUs: most rows are inactive in most launches; leaving at once saves the list loads and
     * the eight digit levels' barriers (PoCL keeps the straight-line form). */
    if (!active) return;
#endif
    __global ulong *buf = cand + (long)row * cap;
    topk_lists_local(q0 + row, ex_off, ex, has_ex, banned, nbanned, lex, lcount);
    const uint n = topk_purge(buf, active ? n0 : 0, q0 + row, ex_off, ex, has_ex, banned,
                              nbanned, lex, lcount, shared);
    ulong bound = topk_kth_bound(buf, n, k, hist, shared, 8);
    uint c;
    ulong kth = topk_max_le(buf, n >= k ? n : 0, bound, red, shared, &c); /* the k-th key */
    ulong newthr = kth;
    /* approx: the margin key (the largest key of a score marg[row] below the k-th's) and how
     * many keys are within it; every work-item reaches the barriers (no call under a branch) */
    const float m = approx ? marg[row] : 0.0f;
    int flag = (approx && !(m < INFINITY)) /* NaN / inf inputs: no bound holds */
               || (must_fill && n < k);
    const int widen = approx && n >= k;
    const ulong mk = widen && !flag ? topk_key(topk_key_score(kth) - m, 0xFFFFFFFFu) : kth;
    topk_max_le(buf, widen && !flag ? n : 0, mk, red, shared, &c);
    flag = flag || (widen && keep_max > 0 && c > keep_max) ||
           (must_fill && n >= k && (widen ? mk : kth) >= sthr[row]);
    if (widen && !flag) bound = newthr = mk;
    const uint kept = topk_keep_le(buf, n, bound, shared);
    if (active && get_local_id(0) == 0) {
        cnt[row] = kept;
        if (n >= k) thr[row] = newthr;
        if (flag || lost) flags[row] = 1;
    }
}

/* A statistical cut (ocl_topk.c, schedule_cuts): the row's threshold, and its statistical
 * threshold, become an upper bound of its k-th best valid key, if that is tighter. Cheaper
 * than topk_select with the same k: three digit levels (the top 24 bits of the key: the
 * score to 2^-15 relative) and no compaction — the keys above the new threshold stay in the
 * buffer until the next selection; the excluded items are purged first (a row with lists
 * only). approx: widened by the row's margin, as topk_select does; a row with no finite
 * margin is left alone (its final selection flags it). */
__kernel __attribute__((reqd_work_group_size(SEL_WG, 1, 1))) void topk_cut_rank(
    __global ulong *restrict cand, const long cap, __global uint *restrict cnt,
    __global ulong *restrict thr, __global ulong *restrict sthr, const uint k, TOPK_LIST_ARGS,
    const int approx, __global const float *restrict marg)
{
    __local uint hist[256 + 16], shared[4];
    __local int lex[EX_LOCAL], lcount[2];
    const int row = get_group_id(0);
    const uint n0 = cnt[row];
    /* uniform in the group; a buffer that overflowed (keys lost: redone anyway) is left as
     * it is, its count over cap */
    const int active = n0 > k && (long)n0 <= cap;
#if TOPK_EARLY_EXIT
    if (!active) return;
#endif
    __global ulong *buf = cand + (long)row * cap;
    topk_lists_local(q0 + row, ex_off, ex, has_ex, banned, nbanned, lex, lcount);
    const uint n = topk_purge(buf, active ? n0 : 0, q0 + row, ex_off, ex, has_ex, banned,
                              nbanned, lex, lcount, shared);
    if (active && n < n0 && get_local_id(0) == 0) cnt[row] = n;
    const ulong bound = topk_kth_bound(buf, active ? n : 0, k, hist, shared, 3);
    if (active && get_local_id(0) == 0 && bound != TOPK_NONE) {
        const float m = approx ? marg[row] : 0.0f;
        const ulong t = approx ? topk_key(topk_key_score(bound) - m, 0xFFFFFFFFu) : bound;
        if ((!approx || m < INFINITY) && t < thr[row]) {
            thr[row] = t;
            sthr[row] = t;
        }
    }
}

/* Approximate path, at the end (after topk_select with limit 0 left each row its margin set):
 * every key's score recomputed exactly — the same sequential fp32 sum as gemm_tile's (mad over
 * k from 0, then the bias), so the exact and approximate paths give the same scores. One
 * group per row; U is offset to the block's first query. The group's SEL_WG candidate rows
 * are staged through local memory RS_K values of k at a time, each row read whole and in
 * order (a work-item reading its own row alone touched a new cache line every few floats).
 * Two kernels from one body: topk_rescore reads E a float at a time, topk_rescore4 a float4
 * at a time where E's offset, row stride and D are multiples of 4 (the H200's rescoring at
 * K = 1,000, d = 128: 1.71 → 0.85 ms a call). The sum is the same sequence of mads in both,
 * so they give the same bits. (A run-time choice between the two load forms inside one
 * kernel's barrier loop was in both builds on which PoCL 5's work-group compiler asserted;
 * this form passes there.) */
#define RS_K 32
inline float topk_dot1(__global const float *u, const float v, const float s)
{
    return mad(u[0], v, s);
}
inline float topk_dot4(__global const float *u, const float4 v, const float s)
{
    return mad(u[3], v.w, mad(u[2], v.z, mad(u[1], v.y, mad(u[0], v.x, s))));
}
#define TOPK_RESCORE_KERNEL(NAME, T, W)                                                      \
    __kernel __attribute__((reqd_work_group_size(SEL_WG, 1, 1))) void NAME(                  \
        __global ulong *restrict cand, const long cap, __global const uint *restrict cnt,    \
        const int D, __global const float *restrict U, const ulong offU, const long ldu,     \
        __global const float *restrict E, const ulong offE, const long lde,                  \
        __global const float *restrict bias, const ulong offbias, const int has_bias)        \
    {                                                                                        \
        __local T tile[SEL_WG * (RS_K / W + 1)];                                             \
        __local uint ids[SEL_WG];                                                            \
        const int lid = get_local_id(0), row = get_group_id(0);                              \
        __global ulong *buf = cand + (long)row * cap;                                        \
        __global const float *u = U + offU + (long)row * ldu;                                \
        const uint n = cnt[row];                                                             \
        for (uint base = 0; base < n; base += SEL_WG) {                                      \
            const uint i = base + lid;                                                       \
            ids[lid] = i < n ? (uint)buf[i] : 0u;                                            \
            float s = 0.0f;                                                                  \
            for (int k0 = 0; k0 < D; k0 += RS_K) {                                           \
                const int nk = D - k0 < RS_K ? D - k0 : RS_K;                                \
                barrier(CLK_LOCAL_MEM_FENCE); /* ids written; the previous tile consumed */  \
                for (int e = lid; e < SEL_WG * (RS_K / W); e += SEL_WG) {                    \
                    const int rr = e / (RS_K / W), kk = e % (RS_K / W);                      \
                    if (W * kk < nk && base + rr < n)                                        \
                        tile[rr * (RS_K / W + 1) + kk] =                                     \
                            *(__global const T *)(E + offE + (long)ids[rr] * lde + k0 + W * kk); \
                }                                                                            \
                barrier(CLK_LOCAL_MEM_FENCE);                                                \
                for (int kk = 0; W * kk < nk; kk++)                                          \
                    s = topk_dot##W(u + k0 + W * kk, tile[lid * (RS_K / W + 1) + kk], s);    \
            }                                                                                \
            if (i < n) {                                                                     \
                const uint id = ids[lid];                                                    \
                if (has_bias) s += bias[offbias + id];                                       \
                buf[i] = topk_key(s, id);                                                    \
            }                                                                                \
            barrier(CLK_LOCAL_MEM_FENCE); /* ids[] is rewritten by the next block */         \
        }                                                                                    \
    }
TOPK_RESCORE_KERNEL(topk_rescore, float, 1)
TOPK_RESCORE_KERNEL(topk_rescore4, float4, 4)

/* Ascending bitonic sort of v[0, P) (P a power of two) by the whole group: the
 * log2(P)·(log2(P)+1)/2 (size, stride) stages walked by one counted loop, one barrier each. */
#define TOPK_BITONIC(v, P, FENCE)                                                            \
    {                                                                                        \
        uint lg_ = 0;                                                                        \
        while ((1u << lg_) < (P)) lg_++;                                                     \
        const uint nst_ = lg_ * (lg_ + 1) / 2;                                               \
        uint size_ = 2, stride_ = 1;                                                         \
        for (uint st_ = 0; st_ < nst_; ++st_) {                                              \
            for (uint t_ = get_local_id(0); t_ < (P) / 2; t_ += SEL_WG) {                    \
                const uint i_ = 2 * t_ - (t_ & (stride_ - 1)), j_ = i_ + stride_;            \
                const ulong a_ = v[i_], b_ = v[j_];                                          \
                if ((a_ > b_) == ((i_ & size_) == 0)) {                                      \
                    v[i_] = b_;                                                              \
                    v[j_] = a_;                                                              \
                }                                                                            \
            }                                                                                \
            barrier(FENCE);                                                                  \
            if (stride_ == 1) {                                                              \
                size_ <<= 1;                                                                 \
                stride_ = size_ >> 1;                                                        \
            } else {                                                                         \
                stride_ >>= 1;                                                               \
            }                                                                                \
        }                                                                                    \
    }

/* Number of keys < x in the ascending v[lo, hi). */
inline uint topk_lower_bound(__global const ulong *v, uint lo, uint hi, const ulong x)
{
    const uint base = lo;
    while (lo < hi) {
        const uint mid = lo + (hi - lo) / 2;
        if (v[mid] < x) lo = mid + 1; else hi = mid;
    }
    return lo - base;
}

/* Output position t of query q: the key's id and score, or −1 / −inf. */
#define TOPK_PUT(t, key, valid)                                                              \
    do {                                                                                     \
        const long id_ = (valid) ? (long)(uint)(key) : -1L;                                  \
        if (idx64) o64[t] = id_; else o32[t] = (int)id_;                                     \
        if (has_scores) os[t] = (valid) ? topk_key_score(key) : -INFINITY;                   \
    } while (0)

#define TOPK_OUT_ARGS                                                                        \
    __global void *idx_out, const ulong offidx, const long ldidx, const int idx64,           \
        __global float *scores, const ulong offsc, const long ldsc, const int has_scores,    \
        const long q0

#define TOPK_OUT_PTRS(q)                                                                     \
    __global int *o32 = (__global int *)idx_out + offidx + (q) * ldidx;                      \
    __global long *o64 = (__global long *)idx_out + offidx + (q) * ldidx;                    \
    __global float *os = scores + offsc + (q) * ldsc;

/* After topk_select with limit 0 (exclusions out, at most k keys left): block b of SORT_LOCAL
 * keys of a row, bitonic-sorted in local memory; written straight to the output row when the
 * row has one block, else back to the buffer for topk_merge. Work-group (row, b) =
 * group row·nblk + b. One counted loop of barriers (see topk_select_row). */
__kernel __attribute__((reqd_work_group_size(SEL_WG, 1, 1))) void topk_sort_blocks(
    __global ulong *restrict cand, const long cap, __global const uint *restrict cnt,
    const uint k, const uint nblk, TOPK_OUT_ARGS)
{
    __local ulong sv[SORT_LOCAL];
    const int lid = get_local_id(0);
    const int row = get_group_id(0) / nblk, b = get_group_id(0) % nblk;
    __global ulong *buf = cand + (long)row * cap;
    const uint n0 = cnt[row], n = n0 < k ? n0 : k;
    const uint lo = b * SORT_LOCAL;
    const uint nb = lo >= n ? 0 : (n - lo < SORT_LOCAL ? n - lo : SORT_LOCAL);
    uint P = 1;
    while (P < nb) P <<= 1;
    for (uint i = lid; i < P; i += SEL_WG) sv[i] = i < nb ? buf[lo + i] : TOPK_NONE;
    barrier(CLK_LOCAL_MEM_FENCE);
    TOPK_BITONIC(sv, P, CLK_LOCAL_MEM_FENCE)
    TOPK_OUT_PTRS(q0 + row)
    const int single = n <= SORT_LOCAL;
    for (uint t = lid; t < nb; t += SEL_WG) {
        if (single) TOPK_PUT(t, sv[t], 1);
        else buf[lo + t] = sv[t];
    }
}

/* Per row: the tail (−1 / −inf past the row's keys) and, for rows of several sorted blocks,
 * each key's final place: its place in its block plus, per other block, the number of smaller
 * keys there (binary searches; keys are unique). No barriers. */
__kernel __attribute__((reqd_work_group_size(SEL_WG, 1, 1))) void topk_merge(
    __global const ulong *restrict cand, const long cap, __global const uint *restrict cnt,
    const uint k, TOPK_OUT_ARGS)
{
    const int lid = get_local_id(0), row = get_group_id(0);
    __global const ulong *buf = cand + (long)row * cap;
    const uint n0 = cnt[row], n = n0 < k ? n0 : k;
    TOPK_OUT_PTRS(q0 + row)
    for (uint t = n + lid; t < k; t += SEL_WG) TOPK_PUT(t, TOPK_NONE, 0);
    const uint nblk = (n + SORT_LOCAL - 1) / SORT_LOCAL;
    for (uint i = lid; nblk > 1 && i < n; i += SEL_WG) {
        const ulong x = buf[i];
        const uint b = i / SORT_LOCAL;
        uint pos = i - b * SORT_LOCAL;
        for (uint o = 0; o < nblk; o++) {
            if (o == b) continue;
            const uint lo = o * SORT_LOCAL, hi = n - lo < SORT_LOCAL ? n : lo + SORT_LOCAL;
            pos += topk_lower_bound(buf, lo, hi, x);
        }
        TOPK_PUT(pos, x, 1);
    }
}

/* Sampled evaluation: rank of query q's target among R drawn negatives (uniform, step 0, row q,
 * draw r, up to 64 attempts skipping the target, excluded and banned items): the number of
 * negatives scoring above it, ties counted when the negative's id is lower. One work-item per
 * query; the dot products run in the same order as the CPU backend's. */
__kernel void topk_rank_sampled(const int M, const int C, const int D,
                                __global const float *U, const ulong offU, const long ldu,
                                __global const float *E, const ulong offE, const long lde,
                                __global const float *bias, const ulong offbias,
                                const int has_bias, __global const long *targets, const long R,
                                const ulong seed, __global const long *ex_off,
                                __global const int *ex, const int has_ex,
                                __global const int *banned, const int nbanned,
                                __global long *ranks, const ulong offrank)
{
    const int q = get_global_id(0);
    if (q >= M) return;
    __global const float *u = U + offU + (long)q * ldu;
    const long y = targets[q];
    float st = 0.0f;
    for (int t = 0; t < D; t++) st += u[t] * E[offE + y * lde + t];
    if (has_bias) st += bias[offbias + y];
    long rank = 0;
    for (long r = 0; r < R; r++) {
        for (uint a = 0; a < 64; a++) {
            const long j = (long)xr_draw_uniform(seed, 0, (xr_u32)q, (xr_u32)r, a, (xr_u32)C);
            if (j == y || topk_excluded(q, (int)j, ex_off, ex, has_ex, banned, nbanned)) continue;
            float s = 0.0f;
            for (int t = 0; t < D; t++) s += u[t] * E[offE + j * lde + t];
            if (has_bias) s += bias[offbias + j];
            rank += s > st || (s == st && j < y);
            break;
        }
    }
    ranks[offrank + q] = rank;
}
