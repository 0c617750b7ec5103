/* sampled.cl — the sampled loss kinds (SAMPLED_CE, BCE, GBCE, INBATCH) on OpenCL; needs rng.cl
 * before it. The definitions are those of xcat.h and of the CPU backend (src/cpu/cpu_sampled.c),
 * formula for formula; negatives come from the same rng.cl draws, so every backend sees the same
 * items for the same (seed, step, row, k).
 *
 *  sampled_rows   one work-group per row of a chunk of rows. Candidate t of the row (t = 0 the
 *                 positive, 1..K the negatives, K+1.. the other rows' positives for INBATCH) is
 *                 handled by lane t mod SWG: it draws the item, gathers the dot product, and
 *                 keeps a running (max, Σexp) of its corrected logits; the group combines the
 *                 lanes in a fixed tree order. Mode 0 (forward) writes the row's weighted loss
 *                 and LSE. Mode 1 (backward) writes each candidate's dℓ/dz·g into the chunk's
 *                 entry list (item, value; item −1 when masked) and then the row's dH with lanes
 *                 over the d dimensions, adding the candidates in t order (deterministic).
 *  sampled_bucket_* deterministic dE and db without float atomics: the chunk's entries
 *                 counting-sorted (stably) by item bucket, then each bucket's entries added in
 *                 entry order with lanes over d (below). Chunks run in row order, so every dE
 *                 row is a sum in (row, t) order whatever the device.
 *  sampled_zero   zero the first `cols` columns of `rows` rows (dE, db before accumulation).
 *  sampled_reduce one work-group: the rows' losses summed in a fixed order (MEAN/SUM).
 *  sampled_draw   the drawn negatives of each row (xcat_loss_draw_negatives).
 *
 * Prelude: SWG (lanes per work-group, a power of two), TEAM (lanes per candidate's dot product
 * in sampled_rows, a power of two <= SWG). */

#ifndef SWG
#define SWG 64
#endif
#ifndef TEAM
#define TEAM 1
#endif

enum { K_SAMPLED_CE = 1, K_BCE = 2, K_GBCE = 3, K_INBATCH = 4 };     /* xcat_loss_kind */
enum { S_UNIFORM = 0, S_POPULARITY = 1, S_GIVEN_ROW = 2, S_GIVEN_SHARED = 3 }; /* host maps */
enum { C_NONE = 0, C_UNIFORM = 1, C_LOGQ = 2, C_LOGQ_CORRECTED = 3 };

#define SMP_ARGS                                                                             \
    const int kind, const int sampler, const int correction, const int reject,              \
        const int distinct, const int n, const int c, const int d, const int k, const int T, \
        const float scale, const float cap, const float beta, const float corr,              \
        const float logk, const int logq_on, const int has_logq, const int withq,            \
        const ulong seed, const ulong step, __global const float *H, const ulong offH,       \
        const long ldh, __global const float *E, const ulong offE, const long lde,           \
        __global const float *bias, const ulong offb, const int has_b,                       \
        __global const void *y, const ulong offy, const int y64, const long ignore_index,    \
        __global const uint *alias_thr, __global const int *alias_idx,                       \
        __global const float *logq, __global const void *given, const ulong offg,            \
        const long ldg, const int g64, __global const long *ri_off, __global const int *ri,  \
        const int has_ri

#define SMP_PASS                                                                             \
    kind, sampler, correction, reject, distinct, n, c, d, k, T, scale, cap, beta, corr, logk, \
        logq_on, has_logq, withq, seed, step, H, offH, ldh, E, offE, lde, bias, offb, has_b,  \
        y, offy, y64, ignore_index, alias_thr, alias_idx, logq, given, offg, ldg, g64,        \
        ri_off, ri, has_ri

inline long smp_target(__global const void *y, const ulong offy, const int y64, const long i)
{
    return y64 ? ((__global const long *)y)[offy + i] : (long)((__global const int *)y)[offy + i];
}

inline int smp_in_row_items(__global const long *ri_off, __global const int *ri,
                            const int has_ri, const long row, const long item)
{
    if (!has_ri) return 0;
    long lo = ri_off[row], hi = ri_off[row + 1];
    const long end = hi;
    while (lo < hi) {
        const long mid = lo + (hi - lo) / 2;
        if (ri[mid] < item) lo = mid + 1; else hi = mid;
    }
    return lo < end && ri[lo] == item;
}

/* Negative k of row `row` (target yv; −2 when the row is ignored): the item or −1 (masked). */
inline long smp_negative(SMP_ARGS, const long row, const long yv, const int kk)
{
    long item;
    if (sampler == S_GIVEN_ROW || sampler == S_GIVEN_SHARED) {
        const long at = sampler == S_GIVEN_ROW ? offg + row * ldg + kk : offg + kk;
        item = g64 ? ((__global const long *)given)[at] : (long)((__global const int *)given)[at];
        if (item < 0 || item == yv || smp_in_row_items(ri_off, ri, has_ri, row, item) ||
            (logq_on && has_logq && isinf(logq[item])))
            return -1;
        return item;
    }
    const int attempts = reject ? 16 : 1;
    xr_perm perm;
    if (distinct) perm = xr_perm_make(seed, step, (xr_u32)row, (xr_u32)(c - 1));
    for (int a = 0; a < attempts; ++a) {
        xr_u32 v;
        if (distinct) {
            v = xr_draw_distinct(&perm, (xr_u32)kk, (xr_u32)yv);
        } else if (sampler == S_POPULARITY) {
            XR_ALIAS_DRAW(seed, step, (xr_u32)row, (xr_u32)kk, (xr_u32)a, (xr_u32)c, alias_thr,
                          alias_idx, v);
        } else {
            v = xr_draw_uniform(seed, step, (xr_u32)row, (xr_u32)kk, (xr_u32)a, (xr_u32)c);
        }
        item = v;
        if (!(item == yv || smp_in_row_items(ri_off, ri, has_ri, row, item) ||
              (logq_on && has_logq && isinf(logq[item]))))
            return item;
        if (distinct) a = attempts; /* one value per k */
    }
    return -1;
}

inline float smp_phi(const float z, const float scale, const float cap)
{
    if (cap <= 0.0f) return scale;
    const float u = z / cap;
    return scale * (1.0f - u * u);
}

inline float smp_softplus(const float x)
{
    return x > 0.0f ? x + log1p(exp(-x)) : log1p(exp(x));
}

inline float smp_sigmoid(const float x)
{
    return x >= 0.0f ? 1.0f / (1.0f + exp(-x)) : exp(x) / (1.0f + exp(x));
}

/* Candidate t of row i: its item, −1 when masked. */
inline long smp_item(SMP_ARGS, const long i, const long yv, const int t)
{
    if (t == 0) return yv;
    if (t <= k) return smp_negative(SMP_PASS, i, yv, t - 1);
    /* INBATCH: the other rows' positives */
    const long r0 = t - k - 1, r = r0 < i ? r0 : r0 + 1;
    const long v = smp_target(y, offy, y64, r);
    const int m = v == ignore_index || v < 0 || v == yv ||
                  smp_in_row_items(ri_off, ri, has_ri, i, v) || (withq && isinf(logq[v]));
    return m ? -1 : v;
}

/* This lane's share of h·e when TEAM lanes split the d dimensions (float4 steps, then the
 * d % 4 tail); a team's lanes read neighbouring 16-byte pieces of the row: coalesced. */
inline float smp_partial_dot(__global const float *h, __global const float *e, const int d,
                             const int tl)
{
    float p = 0.0f;
    const int d4 = d & ~3;
    for (int j = 4 * tl; j < d4; j += 4 * TEAM) {
        const float4 a = vload4(0, h + j), b = vload4(0, e + j);
        p = mad(a.x, b.x, p);
        p = mad(a.y, b.y, p);
        p = mad(a.z, b.z, p);
        p = mad(a.w, b.w, p);
    }
    for (int j = d4 + tl; j < d; j += TEAM) p = mad(h[j], e[j], p);
    return p;
}

/* The logit from a finished dot product. */
inline float smp_finish_logit(float r, __global const float *bias, const ulong offb,
                              const int has_b, const float scale, const float cap,
                              const long item)
{
    if (has_b) r += bias[offb + item];
    r *= scale;
    return cap > 0.0f ? cap * tanh(r / cap) : r;
}

/* The corrected logit of candidate t (the one the normaliser sees). */
inline float smp_zc(SMP_ARGS, const int t, const long item, const float z, const float lq_p,
                    const float shift)
{
    if (kind == K_SAMPLED_CE) {
        if (t == 0 || !logq_on) return t == 0 ? z : z - corr;
        return z - (logk + (has_logq ? logq[item] : -log((float)c)));
    }
    /* INBATCH */
    if (t == 0) return correction == C_LOGQ ? z - lq_p : z;
    if (!withq) return z;
    if (t <= k) return z - (logk + (has_logq ? logq[item] : -log((float)c)));
    return z - logq[item] + shift;
}

/* Group-wide combination of per-lane (max, Σexp(x − max)); every lane gets the result. */
inline void smp_lse_reduce(float *m, float *s, __local float *lm, __local float *ls)
{
    const int lid = get_local_id(0);
    lm[lid] = *m;
    ls[lid] = *s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = SWG / 2; w > 0; w >>= 1) {
        if (lid < w) {
            const float m1 = lm[lid], m2 = lm[lid + w];
            const float mm = fmax(m1, m2);
            const float a = m1 == -INFINITY ? 0.0f : ls[lid] * exp(m1 - mm);
            const float b = m2 == -INFINITY ? 0.0f : ls[lid + w] * exp(m2 - mm);
            lm[lid] = mm;
            ls[lid] = a + b;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    *m = lm[0];
    *s = ls[0];
    barrier(CLK_LOCAL_MEM_FENCE);
}

inline float smp_sum_reduce(float v, __local float *ls)
{
    const int lid = get_local_id(0);
    ls[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = SWG / 2; w > 0; w >>= 1) {
        if (lid < w) ls[lid] += ls[lid + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    v = ls[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return v;
}

/* Shared column of candidate t of row i (shmode 1: GIVEN_SHARED, column t − 1; shmode 2:
 * INBATCH, the other row's index), or −1 when t is gathered. */
inline int smp_shared_col(const int shmode, const int k, const long i, const int t)
{
    if (shmode == 0 || t == 0) return -1;
    if (shmode == 1) return t <= k ? t - 1 : -1;
    if (t <= k) return -1;
    const long r = t - k - 1;
    return (int)(r < i ? r : r + 1);
}

/* Rows [r0, r0 + get_num_groups(0)). Mode 0: rowloss[i] = w_i·ℓ_i (0 for ignored rows),
 * lse (optional). Mode 1: entries (item, g_i·dℓ/dz) at ent + (i − r0)·T, and dH rows. The entry
 * list also holds z between the two halves of mode 1. No early return (see topk.cl). */
#define ROWS_ARGS                                                                            \
    SMP_ARGS, const int mode, const long r0, __global const float *w, const ulong offw,      \
        const int has_w, __global const float *gfac, __global float *rowloss,                \
        __global float *lse_out, const ulong offlse, const int has_lse,                      \
        __global int *ent_item, __global float *ent_val, __global float *dH,                 \
        const ulong offdh, const long lddh, const int has_dh, __global float *ZG,            \
        const int nsh, const int shmode_arg, __global float *GH, const int nhot,             \
        __global const int *hot_col
#define ROWS_PASS                                                                            \
    SMP_PASS, mode, r0, w, offw, has_w, gfac, rowloss, lse_out, offlse, has_lse, ent_item,   \
        ent_val, dH, offdh, lddh, has_dh, ZG, nsh, shmode_arg, GH, nhot, hot_col

/* Kernels of one body: sampled_rows (every candidate gathered), sampled_rows_shared
 * (GIVEN_SHARED / INBATCH with their GEMM), and _hot variants of both (the popularity sampler's
 * hottest items summed through a GEMM, below): `shared` and `hot` are constants after
 * inlining, so the plain kernel carries none of that code (measured 10 % faster on the H100).
 *
 * Hot items (mode 1): item j with hot_col[j] >= 0 is one of the nhot most probable items of a
 * popularity sampler. Its coefficients go to the row's GH row (lane 0 adds them in t order:
 * deterministic) instead of the bucket sort, which would give one work-group millions of one
 * item's entries; the entry stays, encoded −(item + 2), for the row's dH. */
inline void smp_rows(ROWS_ARGS, const int shared, const int hot, __local float *lm,
                     __local float *ls)
{
    const int shmode = shared ? shmode_arg : 0;
    const int lid = get_local_id(0);
    const long i = r0 + get_group_id(0);
    const long yv = smp_target(y, offy, y64, i);
    const int ign = yv == ignore_index;
    const float g = mode == 1 ? gfac[i] : 1.0f;
    /* an inactive row (ignored, or no gradient) loops zero times */
    const int Tl = ign || g == 0.0f ? 0 : T;
    /* the entry list holds the gathered candidates t < TE only (TE = T without shared ones) */
    const int TE = shmode == 1 ? 1 : shmode == 2 ? k + 1 : T;
    __global int *eit = ent_item + (long)get_group_id(0) * TE;
    __global float *eval = ent_val + (long)get_group_id(0) * TE;
    /* shared candidates: their dots come from the chunk's GEMM (row i − r0 of ZG); mode 1
     * puts their coefficients back in its place (G) instead of the entry list */
    __global float *zg = ZG + (long)get_group_id(0) * nsh;

    const int ce = kind == K_SAMPLED_CE || kind == K_INBATCH;
    const float lq_p = kind == K_INBATCH && withq && !ign ? logq[yv] : 0.0f;
    const int inert = kind == K_INBATCH && withq && isinf(lq_p);
    const float shift = kind == K_INBATCH && correction == C_LOGQ_CORRECTED
                            ? log1p(-fmin(exp(lq_p), 0.99999994f))
                            : 0.0f;
    const int negonly = kind == K_INBATCH && correction == C_LOGQ_CORRECTED;

    /* pass 1: draw, gather, (max, Σexp) of the corrected logits; z kept in the entry list.
     * Gathered candidates (t < tg): teams of TEAM lanes share a candidate's dot product
     * (coalesced row reads, a tree over the team in local memory), the team's first lane keeps
     * the books — a counted loop with a uniform bound, so every barrier is reached by the whole
     * group. Shared candidates (t >= tg) take their dot from the chunk's GEMM: one lane each,
     * no barriers. */
    const int teams = SWG / TEAM, team = lid / TEAM, tl = lid % TEAM;
    const int tg = shmode == 1 ? (Tl < 1 ? Tl : 1) : shmode == 2 ? (Tl < k + 1 ? Tl : k + 1) : Tl;
    const int nit = (tg + teams - 1) / teams;
    __global const float *hrow = H + offH + i * ldh;
    float m = -INFINITY, s = 0.0f, bsum = 0.0f, z0l = -INFINITY;
#define SMP_BOOK(t, item, z)                                                                 \
    {                                                                                        \
        if ((t) < TE) {                                                                      \
            eit[t] = (int)(item);                                                            \
            eval[t] = (z);                                                                   \
        }                                                                                    \
        if ((t) == 0) z0l = (z);                                                             \
        if ((item) >= 0 && !(ce && negonly && (t) == 0)) {                                   \
            if (ce) {                                                                        \
                const float zc = smp_zc(SMP_PASS, t, item, z, lq_p, shift);                  \
                if (zc > m) {                                                                \
                    s = s * exp(m - zc) + 1.0f;                                              \
                    m = zc;                                                                  \
                } else {                                                                     \
                    s += exp(zc - m);                                                        \
                }                                                                            \
            } else {                                                                         \
                bsum += (t) == 0 ? beta * smp_softplus(-(z)) : smp_softplus(z);              \
            }                                                                                \
        }                                                                                    \
    }
    for (int it = 0; it < nit; ++it) {
        const int t = it * teams + team;
        const long item = t < tg ? smp_item(SMP_PASS, i, yv, t) : -1;
        ls[lid] = item >= 0 ? smp_partial_dot(hrow, E + offE + item * lde, d, tl) : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int w = TEAM / 2; w > 0; w >>= 1) {
            if (tl < w) ls[lid] += ls[lid + w];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        const float dot = ls[lid];
        barrier(CLK_LOCAL_MEM_FENCE); /* ls[] is rewritten by the next candidates */
        if (tl == 0 && t < tg) {
            const float z =
                item >= 0 ? smp_finish_logit(dot, bias, offb, has_b, scale, cap, item) : 0.0f;
            SMP_BOOK(t, item, z)
        }
    }
    for (int t = tg + lid; t < Tl; t += SWG) {
        const long item = smp_item(SMP_PASS, i, yv, t);
        const float z = item >= 0 ? smp_finish_logit(zg[smp_shared_col(shmode, k, i, t)], bias,
                                                      offb, has_b, scale, cap, item)
                                  : 0.0f;
        SMP_BOOK(t, item, z)
    }
#undef SMP_BOOK
    smp_lse_reduce(&m, &s, lm, ls);
    bsum = smp_sum_reduce(bsum, ls);
    lm[lid] = z0l; /* broadcast z of the positive (lane 0 led the team of t = 0) */
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    const float z0 = lm[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    const float lse = m + log(s);
    const float zp = kind == K_INBATCH && correction == C_LOGQ ? z0 - lq_p : z0;
    float loss = 0.0f, wgt = 0.0f;
    const int empty = negonly && m == -INFINITY; /* no unmasked negative */
    if (Tl == 0 || inert || empty) {
        loss = 0.0f;
    } else if (!ce) {
        loss = bsum / (float)(k + 1);
    } else if (negonly) {
        wgt = 1.0f - 1.0f / (1.0f + exp(lse - z0));
        loss = wgt * (lse - z0);
    } else {
        loss = lse - zp;
    }
    if (mode == 0 && lid == 0) {
        rowloss[i] = ign ? 0.0f : loss * (has_w ? w[offw + i] : 1.0f);
        if (has_lse) lse_out[offlse + i] = Tl == 0 || inert || empty || !ce ? 0.0f : lse;
    }
    /* pass 2 (mode 1): the coefficients, each lane on its own candidates. Straight code with
     * mode-dependent trip counts: no barrier sits under a condition (PoCL). */
    const float inv = 1.0f / (float)(k + 1);
    const int T2 = mode == 1 ? Tl : 0;
    for (int t = lid; t < T2; t += SWG) {
        const int col = smp_shared_col(shmode, k, i, t);
        long item;
        float z;
        if (col < 0) {
            item = eit[t];
            z = eval[t];
        } else { /* a shared candidate: redrawn, its logit from the GEMM's dot */
            item = smp_item(SMP_PASS, i, yv, t);
            z = item >= 0 ? smp_finish_logit(zg[col], bias, offb, has_b, scale, cap, item) : 0.0f;
        }
        float cf = 0.0f;
        if (item >= 0 && !inert && !empty) {
            const float ph = smp_phi(z, scale, cap);
            if (!ce) {
                cf = t == 0 ? -beta * (1.0f - smp_sigmoid(z)) * inv * ph
                            : smp_sigmoid(z) * inv * ph;
            } else if (negonly) {
                cf = t == 0 ? -wgt * ph
                            : wgt * exp(smp_zc(SMP_PASS, t, item, z, lq_p, shift) - lse) * ph;
            } else {
                cf = t == 0 ? (exp(zp - lse) - 1.0f) * ph
                            : exp(smp_zc(SMP_PASS, t, item, z, lq_p, shift) - lse) * ph;
            }
        }
        cf *= g;
        if (col >= 0) {
            zg[col] = cf; /* G: the GEMMs take it from here */
        } else {
            eval[t] = cf;
            if (cf == 0.0f) eit[t] = -1;
        }
    }
    /* rows that did not run leave an empty entry list and a zero G row; a row's own column of
     * the in-batch GEMM is no candidate */
    for (int t = lid; mode == 1 && Tl == 0 && t < TE; t += SWG) eit[t] = -1;
    for (int c2 = lid; mode == 1 && shmode && Tl == 0 && c2 < nsh; c2 += SWG) zg[c2] = 0.0f;
    if (mode == 1 && shmode == 2 && Tl > 0 && lid == 0) zg[i] = 0.0f;
    __global float *gh = GH + (long)get_group_id(0) * nhot;
    for (int c2 = lid; hot && mode == 1 && c2 < nhot; c2 += SWG) gh[c2] = 0.0f;
    barrier(CLK_GLOBAL_MEM_FENCE);
    if (hot && mode == 1 && lid == 0) {
        for (int t = 0; t < (Tl < TE ? Tl : TE); ++t) {
            const int it = eit[t];
            const int c3 = it >= 0 ? hot_col[it] : -1;
            if (c3 >= 0) {
                gh[c3] += eval[t];
                eit[t] = -(it + 2);
            }
        }
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    /* dH row: lanes over the dimensions, candidates in t order */
    if (mode == 1 && has_dh) {
        __global float *dh = dH + offdh + i * lddh;
        for (int j = lid; j < d; j += SWG) {
            float acc = 0.0f;
            for (int t = 0; t < (Tl < TE ? Tl : TE); ++t) {
                int it = eit[t];
                if (hot && it < -1) it = -it - 2;
                if (it >= 0) acc = mad(eval[t], E[offE + (long)it * lde + j], acc);
            }
            dh[j] = acc;
        }
    }
}

#define SMP_ROWS_KERNEL(name, shared, hot)                                                   \
    __kernel __attribute__((reqd_work_group_size(SWG, 1, 1))) void name(ROWS_ARGS)           \
    {                                                                                        \
        __local float lm[SWG], ls[SWG];                                                      \
        smp_rows(ROWS_PASS, shared, hot, lm, ls);                                            \
    }
SMP_ROWS_KERNEL(sampled_rows, 0, 0)
SMP_ROWS_KERNEL(sampled_rows_shared, 1, 0)
SMP_ROWS_KERNEL(sampled_rows_hot, 0, 1)
SMP_ROWS_KERNEL(sampled_rows_shared_hot, 1, 1)

/* dE/db for a chunk's entries without atomics on floats: a stable counting sort of the entries
 * by item bucket (bucket b = item·G / C: contiguous item ranges), then one work-group per
 * bucket adds its entries in entry order. Entry e belongs to row r0 + e / T.
 *
 *  sampled_bucket_count   group = block of BE entries: per-bucket counts (local integer
 *                         atomics: exact), written counts[b·nblk + block].
 *  sampled_bucket_scan    group = bucket: exclusive prefix of its counts over the blocks, in
 *                         place, and the bucket's total.
 *  sampled_bucket_base    one group: exclusive prefix of the totals (bucket bases).
 *  sampled_bucket_scatter group = block: each entry's place = bucket base + prefix of earlier
 *                         blocks + rank among earlier entries of the block with the same
 *                         bucket (lanes compare within sub-blocks of SWG): stable, so a
 *                         bucket lists its entries in entry order.
 *  sampled_bucket_accum   group = bucket: its entries in order, lanes over d (CPU devices);
 *  sampled_bucket_accum_items  the same per item, summed in registers (GPUs, below).
 * Prelude: NB_LOCAL (most buckets in local memory), IPB (most items per bucket, the per-item
 * form). Block size and bucket count are arguments. */
#ifndef NB_LOCAL
#define NB_LOCAL 8192
#endif

inline int smp_bucket(const int item, const int c, const int nb)
{
    return (int)(((long)item * nb) / c);
}

__kernel __attribute__((reqd_work_group_size(SWG, 1, 1))) void sampled_bucket_count(
    __global const int *ent_item, const long nent, const int c, const int nb, const int be,
    __global int *counts, const int nblk)
{
    __local int hist[NB_LOCAL];
    const int lid = get_local_id(0), blk = get_group_id(0);
    for (int b = lid; b < nb; b += SWG) hist[b] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    const long e0 = (long)blk * be, e1 = e0 + be < nent ? e0 + be : nent;
    for (long e = e0 + lid; e < e1; e += SWG) {
        const int it = ent_item[e];
        if (it >= 0) atomic_inc(&hist[smp_bucket(it, c, nb)]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int b = lid; b < nb; b += SWG) counts[(long)b * nblk + blk] = hist[b];
}

__kernel __attribute__((reqd_work_group_size(SWG, 1, 1))) void sampled_bucket_scan(
    __global int *counts, const int nblk, __global int *totals)
{
    __local int part[SWG];
    const int lid = get_local_id(0), b = get_group_id(0);
    __global int *v = counts + (long)b * nblk;
    const int seg = (nblk + SWG - 1) / SWG;
    const int lo = lid * seg < nblk ? lid * seg : nblk;
    const int hi = lo + seg < nblk ? lo + seg : nblk;
    int sum = 0;
    for (int i = lo; i < hi; ++i) sum += v[i];
    part[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        int acc = 0;
        for (int l = 0; l < SWG; ++l) {
            const int x = part[l];
            part[l] = acc;
            acc += x;
        }
        totals[b] = acc;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int acc = part[lid];
    for (int i = lo; i < hi; ++i) {
        const int x = v[i];
        v[i] = acc;
        acc += x;
    }
}

__kernel void sampled_bucket_base(__global const int *totals, const int nb, __global int *bases)
{
    if (get_global_id(0) != 0) return;
    int acc = 0;
    for (int b = 0; b < nb; ++b) {
        bases[b] = acc;
        acc += totals[b];
    }
}

__kernel __attribute__((reqd_work_group_size(SWG, 1, 1))) void sampled_bucket_scatter(
    __global const int *ent_item, const long nent, const int c, const int nb, const int be,
    __global const int *counts, const int nblk, __global const int *bases,
    __global uint *perm)
{
    __local int base[NB_LOCAL];
    __local int lb[SWG];
    const int lid = get_local_id(0), blk = get_group_id(0);
    for (int b = lid; b < nb; b += SWG) base[b] = bases[b] + counts[(long)b * nblk + blk];
    barrier(CLK_LOCAL_MEM_FENCE);
    const long e0 = (long)blk * be;
    const int nsub = (be + SWG - 1) / SWG;
    for (int sb = 0; sb < nsub; ++sb) {
        const long e = e0 + (long)sb * SWG + lid;
        int it = -1;
        if (sb * SWG + lid < be && e < nent) it = ent_item[e];
        const int bk = it >= 0 ? smp_bucket(it, c, nb) : -1;
        lb[lid] = bk;
        barrier(CLK_LOCAL_MEM_FENCE);
        int rank = 0, last = 1;
        for (int l = 0; l < SWG; ++l) {
            const int o = lb[l];
            rank += l < lid && o == bk;
            last &= !(l > lid && o == bk);
        }
        int pos = 0;
        if (bk >= 0) pos = base[bk] + rank;
        barrier(CLK_LOCAL_MEM_FENCE);
        if (bk >= 0) {
            perm[pos] = (uint)e;
            if (last) base[bk] += rank + 1;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

__kernel __attribute__((reqd_work_group_size(SWG, 1, 1))) void sampled_bucket_accum(
    __global const uint *perm, __global const int *bases, __global const int *totals,
    __global const int *ent_item, __global const float *ent_val, const int T, const long r0,
    const int d, __global const float *H, const ulong offH, const long ldh, __global float *dE,
    const ulong offdE, const long ldde, const int has_de, __global float *db, const ulong offdb,
    const int has_db)
{
    const int lid = get_local_id(0), b = get_group_id(0);
    const int u0 = bases[b], u1 = u0 + totals[b];
    for (int u = u0; u < u1; ++u) {
        const uint e = perm[u];
        const int it = ent_item[e];
        const float v = ent_val[e];
        const long row = r0 + e / T;
        if (has_de) {
            __global float *de = dE + offdE + (long)it * ldde;
            __global const float *h = H + offH + row * ldh;
            for (int j = lid; j < d; j += SWG) de[j] = mad(v, h[j], de[j]);
        }
        if (has_db && lid == 0) db[offdb + it] += v;
    }
}

/* The GPU form of the last step, for buckets of at most IPB items: the bucket's entries are
 * first placed item by item (a local counting sort, stable, so each item's entries stay in
 * entry order), then lanes over d sum each item's entries in registers and add the sum to its
 * dE row once per chunk — one read-modify-write of dE per item instead of one per entry. */
#ifndef IPB
#define IPB 256
#endif
__kernel __attribute__((reqd_work_group_size(SWG, 1, 1))) void sampled_bucket_accum_items(
    __global const uint *perm, __global uint *perm2, __global const int *bases,
    __global const int *totals, __global const int *ent_item, __global const float *ent_val,
    const int T, const long r0, const int c, const int nb, const int d,
    __global const float *H, const ulong offH, const long ldh, __global float *dE,
    const ulong offdE, const long ldde, const int has_de, __global float *db, const ulong offdb,
    const int has_db)
{
    __local int cnt[IPB + 1], pos[IPB];
    __local int lb[SWG];
    const int lid = get_local_id(0), b = get_group_id(0);
    const int u0 = bases[b], n = totals[b];
    /* items of bucket b: the smallest item with item·nb / c == b, up to the next bucket's */
    const int lo = (int)(((long)b * c + nb - 1) / nb), hi = (int)(((long)(b + 1) * c + nb - 1) / nb);
    const int ni = hi - lo;
    for (int j = lid; j <= IPB; j += SWG) cnt[j] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int u = lid; u < n; u += SWG) atomic_inc(&cnt[ent_item[perm[u0 + u]] - lo]);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        int acc = 0;
        for (int j = 0; j < ni; ++j) {
            const int x = cnt[j];
            pos[j] = acc;
            cnt[j] = acc;
            acc += x;
        }
        cnt[ni] = acc;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const int nsub = (n + SWG - 1) / SWG;
    for (int sb = 0; sb < nsub; ++sb) {
        const int u = sb * SWG + lid;
        const uint e = u < n ? perm[u0 + u] : 0;
        const int j = u < n ? ent_item[e] - lo : -1;
        lb[lid] = j;
        barrier(CLK_LOCAL_MEM_FENCE);
        int rank = 0, last = 1;
        for (int l = 0; l < SWG; ++l) {
            rank += l < lid && lb[l] == j;
            last &= !(l > lid && lb[l] == j);
        }
        const int at = j >= 0 ? pos[j] + rank : 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        if (j >= 0) {
            perm2[u0 + at] = e;
            if (last) pos[j] += rank + 1;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int j = 0; j < ni; ++j) {
        const int a = u0 + cnt[j], z = u0 + cnt[j + 1];
        if (a == z) continue;
        const int item = lo + j;
        if (has_de) {
            __global float *de = dE + offdE + (long)item * ldde;
            for (int x = lid; x < d; x += SWG) {
                float acc = 0.0f;
                for (int u = a; u < z; ++u) {
                    const uint e = perm2[u];
                    acc = mad(ent_val[e], H[offH + (r0 + e / T) * ldh + x], acc);
                }
                de[x] += acc;
            }
        }
        if (has_db && lid == 0) {
            float acc = 0.0f;
            for (int u = a; u < z; ++u) acc += ent_val[perm2[u]];
            db[offdb + item] += acc;
        }
    }
}

__kernel void sampled_zero(__global float *p, const ulong off, const long ld, const long rows,
                           const int cols)
{
    const long gid = get_global_id(0);
    const long r = gid / cols;
    if (r < rows) p[off + r * ld + gid % cols] = 0.0f;
}

/* out[0] = scale · Σ rowloss[0..n), summed by SWG lanes with a fixed assignment and tree. */
__kernel __attribute__((reqd_work_group_size(SWG, 1, 1))) void sampled_reduce(
    const long n, __global const float *rowloss, const float scale, __global float *out,
    const ulong offout)
{
    __local float ls[SWG];
    float s = 0.0f, comp = 0.0f; /* Kahan: thousands of rows per lane */
    for (long i = get_local_id(0); i < n; i += SWG) {
        const float yv = rowloss[i] - comp;
        const float t = s + yv;
        comp = (t - s) - yv;
        s = t;
    }
    s = smp_sum_reduce(s, ls);
    if (get_local_id(0) == 0) out[offout] = s * scale;
}

/* The call's negatives, N×K (−1 where masked), as xcat_loss_draw_negatives returns them. */
__kernel void sampled_draw(SMP_ARGS, __global void *out, const ulong offo, const long ldo,
                           const int o64)
{
    const long gid = get_global_id(0);
    if (gid >= (long)n * k) return;
    const long i = gid / k;
    const int kk = (int)(gid % k);
    const long yt = smp_target(y, offy, y64, i);
    const long v = smp_negative(SMP_PASS, i, yt == ignore_index ? -2 : yt, kk);
    if (o64) ((__global long *)out)[offo + i * ldo + kk] = v;
    else ((__global int *)out)[offo + i * ldo + kk] = (int)v;
}

/* g_i = reduction_scale · w_i · (upstream gradient: none, the scalar's, or row i's); 0 for
 * ignored rows. */
__kernel void sampled_gfac(const long n, __global const void *y, const ulong offy, const int y64,
                           const long ignore_index, __global const float *w, const ulong offw,
                           const int has_w, __global const float *grad, const ulong offg,
                           const int gmode, const float rscale, __global float *out)
{
    const long i = get_global_id(0);
    if (i >= n) return;
    float v = smp_target(y, offy, y64, i) == ignore_index ? 0.0f
                                                          : rscale * (has_w ? w[offw + i] : 1.0f);
    if (gmode == 2) v *= grad[offg + i];
    if (gmode == 1) v *= grad[offg];
    out[i] = v;
}

/* ---- shared candidates as GEMMs (GIVEN_SHARED, INBATCH) ------------------------------------ */

/* The shared columns' items: mode 1 the given vector (−1 stays), mode 2 the rows' targets
 * (ignored rows −1). */
__kernel void sampled_shared_items(const int nsh, const int mode, __global const void *src,
                                   const ulong offs, const int s64, const long ignore_index,
                                   __global int *out)
{
    const int c = get_global_id(0);
    if (c >= nsh) return;
    const long v = smp_target(src, offs, s64, c);
    out[c] = mode == 2 && v == ignore_index ? -1 : (int)v;
}

/* Esh[c] = E[items[c]] (zeros for −1). */
__kernel void sampled_gather_rows(const int nsh, const int d, __global const int *items,
                                  __global const float *E, const ulong offE, const long lde,
                                  __global float *Esh)
{
    const long g = get_global_id(0);
    if (g >= (long)nsh * d) return;
    const int c = g / d, j = g % d;
    const int it = items[c];
    Esh[g] = it >= 0 ? E[offE + (long)it * lde + j] : 0.0f;
}

/* acc[c] += Σ_r G[r·nsh + c], rows in order. */
__kernel void sampled_colsum_add(const int nr, const int nsh, __global const float *G,
                                 __global float *acc)
{
    const int c = get_global_id(0);
    if (c >= nsh) return;
    float s = acc[c];
    for (int r = 0; r < nr; ++r) s += G[(long)r * nsh + c];
    acc[c] = s;
}

/* After the bucket sort of the shared columns (perm: columns grouped by item bucket, in column
 * order): dE[item] += dEsh[column], db[item] += dbsh[column], one group per bucket. */
__kernel __attribute__((reqd_work_group_size(SWG, 1, 1))) void sampled_shared_accum(
    __global const uint *perm, __global const int *bases, __global const int *totals,
    __global const int *items, __global const float *dEsh, __global const float *dbsh,
    const int d, __global float *dE, const ulong offdE, const long ldde, const int has_de,
    __global float *db, const ulong offdb, const int has_db)
{
    const int lid = get_local_id(0), b = get_group_id(0);
    const int u0 = bases[b], u1 = u0 + totals[b];
    for (int u = u0; u < u1; ++u) {
        const uint col = perm[u];
        const int it = items[col];
        if (has_de) {
            __global float *de = dE + offdE + (long)it * ldde;
            __global const float *src = dEsh + (long)col * d;
            for (int j = lid; j < d; j += SWG) de[j] += src[j];
        }
        if (has_db && lid == 0) db[offdb + it] += dbsh[col];
    }
}

/* After all chunks: the hot items' gradients (distinct items) into dE/db, one group each. */
__kernel __attribute__((reqd_work_group_size(SWG, 1, 1))) void sampled_hot_add(
    __global const int *hot_items, __global const float *dEhot, __global const float *dbhot,
    const int d, __global float *dE, const ulong offdE, const long ldde, const int has_de,
    __global float *db, const ulong offdb, const int has_db)
{
    const int c = get_group_id(0), lid = get_local_id(0);
    const int it = hot_items[c];
    if (has_de)
        for (int j = lid; j < d; j += SWG) dE[offdE + (long)it * ldde + j] += dEhot[(long)c * d + j];
    if (has_db && lid == 0) db[offdb + it] += dbhot[c];
}
